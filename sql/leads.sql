-- Leads and their conversion into customers
-- ids named in messages start at 700 here, whatever other test files created
SELECT setval(s, 700, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.follow_up_id_seq', 'crm.contact_id_seq']) s \g /dev/null
CREATE ROLE ld_rep LOGIN IN ROLE crm_user;
CREATE ROLE ld_intern LOGIN IN ROLE crm_user;
INSERT INTO crm.department (name) VALUES ('Ld Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT v, id, 'ld_' || lower(v) FROM crm.department, unnest(ARRAY['Rep', 'Intern']) v WHERE name = 'Ld Sales';
INSERT INTO crm.role (name) VALUES ('Ld sales'), ('Ld intern');
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r,
       unnest(ARRAY['lead.create', 'lead.edit', 'lead.convert', 'customer.create', 'contact.create']) a WHERE r.name = 'Ld sales'
UNION ALL
SELECT r.id, a FROM crm.role r, unnest(ARRAY['lead.create', 'lead.edit']) a WHERE r.name = 'Ld intern';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e JOIN crm.role r ON (e.db_role, r.name) IN (('ld_rep', 'Ld sales'), ('ld_intern', 'Ld intern'));

SET ROLE ld_rep;
INSERT INTO crm.lead (name, company, uscc, mobile, email, source, industry, requirement, expected_amount)
VALUES ('赵磊', '嘉兴南湖电气有限公司', crm.uscc_with_check('91330402MA2B7C8D9'), '13700000001', 'zhao@nanhu.example',
        'exhibition', 'manufacturing', '车间能耗监测', 180000);
INSERT INTO crm.lead (name, mobile, source) VALUES ('钱女士', '13700000002', 'referral');
INSERT INTO crm.lead (name) VALUES ('孙强');
-- bad input is refused like anywhere else
INSERT INTO crm.lead (name, mobile) VALUES ('错号', '137000');
INSERT INTO crm.lead (name, source) VALUES ('错来源', 'billboard');
INSERT INTO crm.lead (name, uscc) VALUES ('错码', '91330402MA2B7C8D90');

-- a lead with a company becomes a company customer with the lead as its decision maker
SELECT crm.convert_lead(id) AS customer FROM crm.lead WHERE name = '赵磊' \gset
SELECT c.name, c.kind, c.uscc = crm.uscc_with_check('91330402MA2B7C8D9') AS uscc_kept, c.source, c.industry,
       k.name AS contact, k.mobile, k.email, k.is_decision_maker
  FROM crm.customer c JOIN crm.contact k ON k.customer_id = c.id WHERE c.id = :customer;
SELECT status, customer_id = :customer AS linked, converted_at IS NOT NULL AS dated FROM crm.lead WHERE name = '赵磊';
-- a person becomes an individual customer
SELECT crm.convert_lead(id) AS person FROM crm.lead WHERE name = '钱女士' \gset
SELECT c.name, c.kind, k.mobile FROM crm.customer c JOIN crm.contact k ON k.customer_id = c.id WHERE c.id = :person;
-- a person without a mobile number cannot be an individual customer
SELECT crm.convert_lead(id) FROM crm.lead WHERE name = '孙强';
SELECT status FROM crm.lead WHERE name = '孙强';

-- a converted lead is read-only, and cannot be converted twice
UPDATE crm.lead SET mobile = '13700000009' WHERE name = '赵磊';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM crm.lead WHERE name = '赵磊';
SELECT crm.convert_lead(id) FROM crm.lead WHERE name = '赵磊';
RESET ROLE;

-- converting needs lead.convert, and a lead one can see
SET ROLE ld_intern;
INSERT INTO crm.lead (name, mobile) VALUES ('周涛', '13700000005');
SELECT crm.convert_lead(id) FROM crm.lead WHERE name = '周涛';
SELECT crm.convert_lead((SELECT max(id) FROM crm.lead) - 1);
RESET ROLE;

-- the company is a customer already: the lead's person joins its contacts
SET ROLE ld_rep;
INSERT INTO crm.lead (name, company, mobile) VALUES ('李工', '嘉兴南湖电气有限公司', '13700000006');
SELECT crm.convert_lead(id, into_customer => :customer) = :customer AS same_customer FROM crm.lead WHERE name = '李工';
SELECT k.name, k.mobile, k.is_decision_maker FROM crm.contact k WHERE k.customer_id = :customer ORDER BY k.id;
SELECT l.status, c.name AS customer FROM crm.lead l JOIN crm.customer c ON c.id = l.customer_id WHERE l.name = '李工';
INSERT INTO crm.lead (name, mobile) VALUES ('王工', '13700000010');
SELECT crm.convert_lead(id, into_customer => 999999) FROM crm.lead WHERE name = '王工';
\echo :LAST_ERROR_SQLSTATE

-- a company customer needs its credit code while crm.settings.uscc_required:
-- the refusal names the lead, or the customer
INSERT INTO crm.lead (name, company, mobile) VALUES ('吴经理', '湖州织里童装有限公司', '13700000007');
SELECT crm.convert_lead(id) FROM crm.lead WHERE name = '吴经理';
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.customer (name) VALUES ('湖州织里童装有限公司');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- a team that has it only at signing turns the requirement off
UPDATE crm.settings SET uscc_required = false;
SET ROLE ld_rep;
SELECT crm.convert_lead(id) AS wu FROM crm.lead WHERE name = '吴经理' \gset
SELECT c.name, c.kind, c.uscc FROM crm.customer c WHERE c.id = :wu;
RESET ROLE;

-- one person's two leads of one company: converting one is not blocked by the
-- other; a colleague's lead of the company is, and so is a customer one
-- already has, with a hint that does not tell them to ask themselves
INSERT INTO crm.dedupe_rule (name, record_type, fields, against) VALUES ('Ld company', 'customer', '{name}', '{customers, leads}');
SET ROLE ld_intern;
INSERT INTO crm.lead (name, company, mobile) VALUES ('冯实习', '宁波北仑港务有限公司', '13700000013');
RESET ROLE;
SET ROLE ld_rep;
INSERT INTO crm.lead (name, company, mobile) VALUES ('郑一', '绍兴柯桥纺织有限公司', '13700000011'),
	('郑二', '绍兴柯桥纺织有限公司', '13700000012'), ('冯一', '宁波北仑港务有限公司', '13700000014');
SELECT crm.convert_lead(id) AS zheng FROM crm.lead WHERE name = '郑一' \gset
SELECT c.name FROM crm.customer c WHERE c.id = :zheng;
SELECT crm.convert_lead(id) FROM crm.lead WHERE name = '冯一';
INSERT INTO crm.customer (name) VALUES ('绍兴柯桥纺织有限公司');
RESET ROLE;
DELETE FROM crm.dedupe_rule WHERE name = 'Ld company';
ALTER TABLE crm.settings DISABLE TRIGGER USER;
UPDATE crm.settings SET uscc_required = true, builtin = true;
ALTER TABLE crm.settings ENABLE TRIGGER USER;

ALTER TABLE crm.lead DISABLE TRIGGER lead_converted_kept;
DELETE FROM crm.lead;
ALTER TABLE crm.lead ENABLE TRIGGER lead_converted_kept;
DELETE FROM crm.customer;
DELETE FROM crm.role WHERE name LIKE 'Ld %';
DROP OWNED BY ld_rep, ld_intern;
