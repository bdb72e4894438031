-- Customers and contacts: formats, statuses, dictionaries, follow-up time
-- ids named in messages start at 500 here, whatever other test files created
SELECT setval(s, 500, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.follow_up_id_seq', 'crm.contact_id_seq']) s \g /dev/null
CREATE ROLE cus_rep LOGIN IN ROLE crm_user;
CREATE ROLE cus_admin LOGIN IN ROLE crm_user;
INSERT INTO crm.department (name) VALUES ('Cus Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT v, id, lower(replace(v, ' ', '_')) FROM crm.department, unnest(ARRAY['Cus Rep', 'Cus Admin']) v
 WHERE name = 'Cus Sales';
INSERT INTO crm.role (name) VALUES ('Cus sales'), ('Cus admin');
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r,
       unnest(ARRAY['customer.create', 'customer.edit', 'contact.create', 'contact.edit', 'contact.delete']) a
 WHERE r.name = 'Cus sales'
UNION ALL
SELECT r.id, a FROM crm.role r, unnest(ARRAY['admin.rules', 'admin.fields']) a WHERE r.name = 'Cus admin';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e JOIN crm.role r ON (e.db_role, r.name) IN (('cus_rep', 'Cus sales'), ('cus_admin', 'Cus admin'));

-- formats
SELECT code, crm.uscc_valid(code) AS valid
  FROM unnest(ARRAY['91350100M000100Y43', '91350100M000100Y44', '9135010OM000100Y4', '91350100M000100Y4',
                    crm.uscc_with_check('91330106MA2B0A1X2')]) code;
SELECT m, crm.mobile_valid(m) AS valid FROM unnest(ARRAY['13812345678', '+8613812345678', '12812345678', '1381234567', '0571-88886666']) m;
SELECT e, crm.email_valid(e) AS valid FROM unnest(ARRAY['li.na@example.com', 'li na@example.com', 'li@example', '@example.com', 'a@b.c']) e;
SELECT crm.uscc_with_check('9133010OMA2B0A1X2');

SET ROLE cus_rep;
-- a company needs a valid unified social credit code
INSERT INTO crm.customer (name) VALUES ('杭州无码公司');
INSERT INTO crm.customer (name, uscc) VALUES ('杭州错码公司', '91330106MA2B0A1X2K');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.customer (name, uscc, industry, source, level)
VALUES ('杭州西湖茶业有限公司', crm.uscc_with_check('91330106MA2B0A1X2'), 'agriculture_food', 'exhibition', 'a')
RETURNING name, kind, (SELECT name FROM crm.customer_status s WHERE s.id = status_id) AS status;
SELECT id AS tea FROM crm.customer WHERE name = '杭州西湖茶业有限公司' \gset

-- dictionary columns take enabled codes only
INSERT INTO crm.customer (name, uscc, industry) VALUES ('宁波港联物流', crm.uscc_with_check('91330201MA2C3D4E5'), '物流');
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.customer SET source = 'carrier_pigeon' WHERE id = :tea;
RESET ROLE;
UPDATE crm.dictionary SET enabled = false WHERE kind = 'customer_source' AND code = 'exhibition';
SET ROLE cus_rep;
UPDATE crm.customer SET phone = '0571-88886666' WHERE id = :tea;   -- keeps its disabled source
INSERT INTO crm.customer (name, uscc, source) VALUES ('新展会客户', crm.uscc_with_check('91330201MA2C3D4E6'), 'exhibition');
RESET ROLE;
UPDATE crm.dictionary SET enabled = true WHERE kind = 'customer_source' AND code = 'exhibition';
-- staff cannot edit dictionaries; an administrator adds a code and it is usable at once
SET ROLE cus_rep;
INSERT INTO crm.dictionary (kind, code, label) VALUES ('industry', 'aerospace', '航空航天');
RESET ROLE;
SET ROLE cus_admin;
INSERT INTO crm.dictionary (kind, code, label) VALUES ('industry', 'aerospace', '航空航天');
INSERT INTO crm.dictionary (kind, code, label) VALUES ('industry', 'Aero Space', '航空航天');
RESET ROLE;
SET ROLE cus_rep;
UPDATE crm.customer SET industry = 'aerospace' WHERE id = :tea RETURNING industry;

-- an individual customer needs a contact with a mobile number by commit
INSERT INTO crm.customer (name, kind) VALUES ('陈先生', 'individual');
\echo :LAST_ERROR_SQLSTATE
BEGIN;
INSERT INTO crm.customer (name, kind) VALUES ('林女士', 'individual');
INSERT INTO crm.contact (customer_id, name, mobile) SELECT id, '林女士', '13912340013' FROM crm.customer WHERE name = '林女士';
COMMIT;
SELECT c.name, c.kind, k.mobile FROM crm.customer c JOIN crm.contact k ON k.customer_id = c.id WHERE c.kind = 'individual';
UPDATE crm.contact SET mobile = NULL WHERE name = '林女士';

-- contacts: validated, several per customer, decision makers flagged
INSERT INTO crm.contact (customer_id, name, mobile, email, is_decision_maker)
VALUES (:tea, '王总', '13800001111', 'wang@xihu-tea.example', true),
       (:tea, '采购小李', '+8613800002222', NULL, false);
INSERT INTO crm.contact (customer_id, name, mobile) VALUES (:tea, '错号', '1380000');
INSERT INTO crm.contact (customer_id, name, email) VALUES (:tea, '错邮', 'wang at xihu');
SELECT name, is_decision_maker FROM crm.contact WHERE customer_id = :tea ORDER BY name;
RESET ROLE;
-- someone who cannot see the customer sees none of its contacts, and cannot add one
CREATE ROLE cus_other LOGIN IN ROLE crm_user;
INSERT INTO crm.employee (name, department_id, db_role) SELECT 'Cus Other', id, 'cus_other' FROM crm.department WHERE name = 'Cus Sales';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e, crm.role r WHERE e.db_role = 'cus_other' AND r.name = 'Cus sales';
SET ROLE cus_other;
SELECT count(*) AS contacts_seen FROM crm.contact;
INSERT INTO crm.contact (customer_id, name, mobile) VALUES (:tea, '潜入者', '13800003333');
RESET ROLE;

-- follow-ups keep last_follow_up_at, for many customers in one statement too
SET ROLE cus_rep;
INSERT INTO crm.follow_up (record_type, record_id, method, content, created_at)
VALUES ('customer', :tea, 'visit', '上门拜访', '2026-03-01 10:00+08'),
       ('customer', :tea, 'phone', '电话回访', '2026-03-05 09:00+08');
SELECT last_follow_up_at = '2026-03-05 09:00+08' AS latest FROM crm.customer WHERE id = :tea;
INSERT INTO crm.follow_up (record_type, record_id, method, content, created_at)
VALUES ('customer', :tea, 'email', '补录旧记录', '2026-01-01 09:00+08');
SELECT last_follow_up_at = '2026-03-05 09:00+08' AS still_latest FROM crm.customer WHERE id = :tea;
INSERT INTO crm.follow_up (record_type, record_id, method, content) VALUES ('customer', :tea, 'pigeon', '飞鸽传书');

-- a status is one of the list
UPDATE crm.customer SET status_id = 999 WHERE id = :tea;
\echo :LAST_ERROR_SQLSTATE

-- statuses move forward only
UPDATE crm.customer SET status_id = (SELECT id FROM crm.customer_status WHERE position = 3) WHERE id = :tea;
UPDATE crm.customer SET status_id = (SELECT id FROM crm.customer_status WHERE position = 2) WHERE id = :tea;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE cus_admin;
UPDATE crm.settings SET status_reversible = true;
RESET ROLE;
SET ROLE cus_rep;
UPDATE crm.customer SET status_id = (SELECT id FROM crm.customer_status WHERE position = 2) WHERE id = :tea
RETURNING (SELECT name FROM crm.customer_status s WHERE s.id = status_id) AS status;
RESET ROLE;
SELECT status_reversible, builtin FROM crm.settings;

-- the status list: at most 10 and one initial; final statuses end it, each won
-- or lost (seed 001: 成单 and 丢单), and a won one remains
SET ROLE cus_admin;
UPDATE crm.settings SET status_reversible = false;
UPDATE crm.customer_status SET name = '成单' WHERE outcome = 'won';
INSERT INTO crm.customer_status (name, position, is_final, outcome) VALUES ('丢单', 6, true, 'lost');
INSERT INTO crm.customer_status (name, position, is_final) VALUES ('搁置', 7, true);
INSERT INTO crm.customer_status (name, position) VALUES ('回访', 7);
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.customer_status SET position = position + 10 WHERE is_final;
INSERT INTO crm.customer_status (name, position) SELECT '状态' || n, 5 + n FROM generate_series(1, 4) n;
INSERT INTO crm.customer_status (name, position) VALUES ('状态5', 10);
UPDATE crm.customer_status SET outcome = 'lost' WHERE outcome = 'won';
UPDATE crm.customer_status SET is_initial = false WHERE is_initial;
UPDATE crm.customer_status SET name = '首次接触' WHERE is_initial;
DELETE FROM crm.customer_status WHERE is_initial;
RESET ROLE;
-- a customer the team lost: that status now means something for it
SET ROLE cus_rep;
UPDATE crm.customer SET status_id = (SELECT id FROM crm.customer_status WHERE name = '丢单') WHERE id = :tea;
RESET ROLE;
SET ROLE cus_admin;
UPDATE crm.customer_status SET outcome = 'won' WHERE name = '丢单';
DELETE FROM crm.customer_status WHERE name = '丢单';
-- deleting it moves its customers where the admin says, here back to 需求确认
-- (customers themselves move forward only), in one statement
SELECT crm.delete_customer_status((SELECT id FROM crm.customer_status WHERE name = '丢单'),
                                  (SELECT id FROM crm.customer_status WHERE name = '需求确认')) AS moved;
SELECT crm.delete_customer_status((SELECT id FROM crm.customer_status WHERE name = '需求确认'), 999999);
SELECT name, position, is_initial, is_final, outcome, builtin FROM crm.customer_status ORDER BY position;
RESET ROLE;
SELECT c.name, s.name AS status FROM crm.customer c JOIN crm.customer_status s ON s.id = c.status_id WHERE c.id = :tea;
SET ROLE cus_rep;
SELECT crm.delete_customer_status(3, 4);
RESET ROLE;

-- cleanup (statuses and settings back to the shipped ones)
DELETE FROM crm.follow_up;
DELETE FROM crm.customer;
ALTER TABLE crm.customer_status DISABLE TRIGGER USER;
UPDATE crm.customer_status SET name = '初步接触', builtin = true WHERE is_initial;
UPDATE crm.customer_status SET name = '成交客户', position = 5, builtin = true WHERE outcome = 'won';
DELETE FROM crm.customer_status WHERE NOT builtin;
INSERT INTO crm.customer_status (id, name, position, builtin) OVERRIDING SYSTEM VALUE
SELECT 2, '需求确认', 2, true WHERE NOT EXISTS (SELECT FROM crm.customer_status WHERE id = 2);
ALTER TABLE crm.customer_status ENABLE TRIGGER USER;
ALTER TABLE crm.settings DISABLE TRIGGER USER;
UPDATE crm.settings SET status_reversible = false, builtin = true;
ALTER TABLE crm.settings ENABLE TRIGGER USER;
DELETE FROM crm.dictionary WHERE code = 'aerospace';
DELETE FROM crm.role WHERE name LIKE 'Cus %';
DROP OWNED BY cus_rep, cus_admin, cus_other;
