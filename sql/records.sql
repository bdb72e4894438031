-- Business records: ownership, stamping, and what salespeople with scope "self" see
-- ids named in messages start at 400 here, whatever other test files created
SELECT setval(s, 400, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.follow_up_id_seq']) s \g /dev/null
CREATE ROLE regress_sales1 LOGIN IN ROLE crm_user;
CREATE ROLE regress_sales2 LOGIN IN ROLE crm_user;
CREATE ROLE regress_outsider LOGIN IN ROLE crm_user;   -- staff role, no employee row

INSERT INTO crm.department (name) VALUES ('Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT v.name, d.id, v.role FROM crm.department d,
	(VALUES ('Sun Li', 'regress_sales1'), ('Zhou Jie', 'regress_sales2')) v(name, role)
 WHERE d.name = 'Sales';
SELECT id AS s1 FROM crm.employee WHERE db_role = 'regress_sales1' \gset
SELECT id AS s2 FROM crm.employee WHERE db_role = 'regress_sales2' \gset
INSERT INTO crm.role (name) VALUES ('Records sales');
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r,
       unnest(ARRAY['lead.create', 'lead.edit', 'lead.delete', 'customer.create', 'customer.edit', 'customer.delete']) a
 WHERE r.name = 'Records sales';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e, crm.role r WHERE e.id IN (:s1, :s2) AND r.name = 'Records sales';

-- a salesperson's new customer is theirs, stamped with who and when
SET ROLE regress_sales1;
BEGIN;
INSERT INTO crm.customer (name, phone, uscc) VALUES ('Hangzhou Tea Co', '0571-88886666', crm.uscc_with_check('91330100MA2B00021'));
SELECT name, owner_id = :s1 AS mine, created_by = :s1 AS created_by_me,
       created_at = now() AS created_now, updated_at = now() AS updated_now
  FROM crm.customer;
COMMIT;
INSERT INTO crm.lead (name, company, mobile) VALUES ('Chen Jing', 'Ningbo Port Logistics', '13800000001');
INSERT INTO crm.follow_up (record_type, record_id, content)
SELECT 'customer', id, 'Called about spring order' FROM crm.customer;
-- writing a record for someone else, or in someone else's name, is refused
INSERT INTO crm.customer (name, owner_id, uscc) VALUES ('Not mine', :s2, crm.uscc_with_check('91330100MA2B00022'));
INSERT INTO crm.customer (name, created_by, uscc) VALUES ('Forged author', :s2, crm.uscc_with_check('91330100MA2B00023'));
\echo :LAST_ERROR_SQLSTATE
-- but a follow-up may record a visit that happened earlier
INSERT INTO crm.follow_up (record_type, record_id, content, created_at)
SELECT 'customer', id, 'Visited yesterday', now() - interval '1 day' FROM crm.customer
RETURNING created_by = :s1 AS by_me, created_at < now() AS earlier;
RESET ROLE;

-- the other salesperson sees none of it and cannot touch it
SET ROLE regress_sales2;
SELECT count(*) AS customers, (SELECT count(*) FROM crm.lead) AS leads,
       (SELECT count(*) FROM crm.follow_up) AS follow_ups
  FROM crm.customer;
UPDATE crm.customer SET name = 'Stolen' WHERE name = 'Hangzhou Tea Co';
DELETE FROM crm.lead;
-- nor add follow-ups to a customer they cannot see
INSERT INTO crm.follow_up (record_type, record_id, content)
SELECT 'customer', id, 'sneaky' FROM crm.customer;
INSERT INTO crm.follow_up (record_type, record_id, content)
VALUES ('customer', (SELECT max(id) FROM crm.customer), 'guessing ids');
RESET ROLE;

-- a staff role that maps to no employee sees nothing and writes nothing
SET ROLE regress_outsider;
SELECT count(*) AS visible FROM crm.customer;
INSERT INTO crm.customer (name, uscc) VALUES ('Orphan', crm.uscc_with_check('91330100MA2B00024'));
RESET ROLE;

-- updates keep history: updated_at moves, created_by and created_at do not
SET ROLE regress_sales1;
BEGIN;
UPDATE crm.customer SET phone = '0571-88887777' WHERE name = 'Hangzhou Tea Co';
SELECT updated_at = now() AS updated_now FROM crm.customer;
COMMIT;
UPDATE crm.customer SET created_by = :s2;
UPDATE crm.customer SET created_at = '2020-01-01';
RESET ROLE;

-- imported history keeps its own time; rows written by nobody have no author
INSERT INTO crm.follow_up (record_type, record_id, content, created_at)
SELECT 'customer', id, 'Visit in 2023 (imported)', '2023-05-04 10:00+08' FROM crm.customer;
SELECT content, created_at = '2023-05-04 10:00+08' AS kept_time, created_by IS NULL AS no_author
  FROM crm.follow_up WHERE content LIKE '%imported%';

-- bad values are refused by constraints (terse: the failing rows carry timestamps)
\set VERBOSITY terse
INSERT INTO crm.customer (name, kind, owner_id, uscc) VALUES ('Kind?', 'partnership', :s1, crm.uscc_with_check('91330100MA2B00025'));
INSERT INTO crm.customer (name, owner_id, uscc) VALUES ('   ', :s1, crm.uscc_with_check('91330100MA2B00026'));
INSERT INTO crm.follow_up (record_type, record_id, content) VALUES ('invoice', 1, 'x');
-- a superuser acting as nobody must name an owner
INSERT INTO crm.customer (name, uscc) VALUES ('Ownerless', crm.uscc_with_check('91330100MA2B00027'));

\set VERBOSITY default

-- owners and authors are employees, owners active ones (checked for superusers too)
INSERT INTO crm.customer (name, uscc, owner_id) VALUES ('Ghost owned', crm.uscc_with_check('91330100MA2B00028'), 999999);
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.employee SET active = false WHERE id = :s2;
INSERT INTO crm.customer (name, uscc, owner_id) VALUES ('Gone owned', crm.uscc_with_check('91330100MA2B00029'), :s2);
UPDATE crm.employee SET active = true WHERE id = :s2;
INSERT INTO crm.customer (name, uscc, owner_id, created_by) VALUES ('Ghost written', crm.uscc_with_check('91330100MA2B00030'), :s1, 999999);

-- stamp_record is a BEFORE row trigger only
CREATE TABLE stamped (id int, updated_at timestamptz);
CREATE TRIGGER wrong AFTER INSERT ON stamped FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();
INSERT INTO stamped VALUES (1, NULL);
DROP TABLE stamped;

DELETE FROM crm.follow_up;
DELETE FROM crm.lead;
DELETE FROM crm.customer;
DELETE FROM crm.role WHERE name = 'Records sales';
DROP OWNED BY regress_sales1, regress_sales2, regress_outsider;
DROP ROLE regress_sales1, regress_sales2, regress_outsider;
