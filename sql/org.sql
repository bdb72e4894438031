-- The organisation: tree integrity, who may change it, super admins, handover
-- ids named in messages start at 300 here, whatever other test files created
SELECT setval(s, 300, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.follow_up_id_seq']) s \g /dev/null
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['org_super', 'org_super2', 'org_hr', 'org_rep', 'org_rep2', 'org_dba', 'org_gone'] LOOP
		EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
	END LOOP;
END $$;
GRANT crm_admin TO org_dba;

INSERT INTO crm.department (name) VALUES ('Org HQ');
INSERT INTO crm.department (name, parent_id) SELECT 'Org Sales', id FROM crm.department WHERE name = 'Org HQ';
INSERT INTO crm.department (name, parent_id) SELECT 'Org East', id FROM crm.department WHERE name = 'Org Sales';
INSERT INTO crm.employee (name, department_id, db_role)
SELECT e.name, d.id, e.role FROM (VALUES ('Super', 'Org HQ', 'org_super'), ('Super Two', 'Org HQ', 'org_super2'),
	('HR', 'Org HQ', 'org_hr'), ('Rep', 'Org East', 'org_rep'), ('Rep Two', 'Org East', 'org_rep2'),
	('Gone', 'Org HQ', 'org_gone')) e(name, dept, role)
JOIN crm.department d ON d.name = e.dept;
UPDATE crm.employee SET active = false WHERE db_role = 'org_gone';
SELECT id AS gone FROM crm.employee WHERE db_role = 'org_gone' \gset
SELECT id AS sup FROM crm.employee WHERE db_role = 'org_super' \gset
SELECT id AS sup2 FROM crm.employee WHERE db_role = 'org_super2' \gset
SELECT id AS hr FROM crm.employee WHERE db_role = 'org_hr' \gset
SELECT id AS rep FROM crm.employee WHERE db_role = 'org_rep' \gset
SELECT id AS rep2 FROM crm.employee WHERE db_role = 'org_rep2' \gset
SELECT id AS hq FROM crm.department WHERE name = 'Org HQ' \gset
SELECT id AS sales FROM crm.department WHERE name = 'Org Sales' \gset
SELECT id AS east FROM crm.department WHERE name = 'Org East' \gset
UPDATE crm.employee SET superior_id = :hr WHERE id = :rep;
UPDATE crm.employee SET superior_id = :rep WHERE id = :rep2;

-- the department tree and the superior chain stay trees
UPDATE crm.department SET parent_id = :east WHERE id = :hq;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
UPDATE crm.department SET parent_id = id WHERE id = :sales;
\set VERBOSITY default
UPDATE crm.employee SET superior_id = :rep2 WHERE id = :hr;
UPDATE crm.department SET parent_id = :hq WHERE id = :east;      -- moving a sub-tree is fine
SELECT name, (SELECT name FROM crm.department p WHERE p.id = d.parent_id) AS parent
  FROM crm.department d WHERE name LIKE 'Org %' ORDER BY id;

-- departments with people or sub-departments stay; employees are never deleted
DELETE FROM crm.department WHERE id = :hq;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM crm.employee WHERE id = :rep2;
\echo :LAST_ERROR_SQLSTATE
-- (the tables the cascade names come in catalog order, which an update changes)
SET client_min_messages = warning;
TRUNCATE crm.employee CASCADE;
RESET client_min_messages;

-- only administrators change the organisation and the roles
SET ROLE org_rep;
UPDATE crm.department SET name = 'Rep''s department' WHERE id = :east;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.role_scope (role_id, record_type, scope)
SELECT id, 'customer', 'all' FROM crm.role LIMIT 1;
DELETE FROM crm.employee_role;
RESET ROLE;
-- a crm_admin member may
SET ROLE org_dba;
INSERT INTO crm.role (name) VALUES ('Org HR');
INSERT INTO crm.role_permission SELECT id, 'admin.org' FROM crm.role WHERE name = 'Org HR';
INSERT INTO crm.employee_role SELECT :hr, id FROM crm.role WHERE name = 'Org HR';
RESET ROLE;
-- and so may an employee whose role grants admin.org, for the organisation only
SET ROLE org_hr;
UPDATE crm.department SET name = 'Org East Region' WHERE id = :east;
INSERT INTO crm.role_permission SELECT id, 'admin.role' FROM crm.role WHERE name = 'Org HR';
RESET ROLE;

-- super admins: a superuser bootstraps the first; then only a super admin changes one
INSERT INTO crm.role (name, is_super) VALUES ('Org super', true);
INSERT INTO crm.employee_role SELECT :sup, id FROM crm.role WHERE name = 'Org super';
SET ROLE org_dba;
INSERT INTO crm.employee_role SELECT :hr, id FROM crm.role WHERE name = 'Org super';
UPDATE crm.role SET name = 'Org tyrant' WHERE name = 'Org super';
UPDATE crm.employee SET mobile = '13900000000' WHERE id = :sup;
RESET ROLE;
SET ROLE org_super;
SELECT crm.acting_is_super() AS is_super, crm.has_permission('invoice.approve') AS has_everything;
INSERT INTO crm.employee_role SELECT :sup2, id FROM crm.role WHERE name = 'Org super';
UPDATE crm.employee SET mobile = '13900000001' WHERE id = :sup2;
RESET ROLE;
-- the last active super admin cannot go, not even by a superuser
SELECT count(*) AS super_admins FROM crm.employee_role er JOIN crm.role r ON r.id = er.role_id WHERE r.is_super;
SET ROLE org_super;
DELETE FROM crm.employee_role WHERE employee_id = :sup2 AND role_id = (SELECT id FROM crm.role WHERE name = 'Org super');
DELETE FROM crm.employee_role WHERE employee_id = :sup AND role_id = (SELECT id FROM crm.role WHERE name = 'Org super');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
UPDATE crm.role SET is_super = false WHERE name = 'Org super';
UPDATE crm.employee SET active = false WHERE id = :sup;
DELETE FROM crm.role WHERE name = 'Org super';

-- deactivating hands the work over, in one transaction
INSERT INTO crm.role (name) VALUES ('Org sales');
INSERT INTO crm.role_permission SELECT id, a FROM crm.role, unnest(ARRAY['customer.create', 'lead.create']) a WHERE name = 'Org sales';
INSERT INTO crm.employee_role SELECT e, id FROM crm.role, unnest(ARRAY[:rep, :rep2]) e WHERE name = 'Org sales';
SET ROLE org_rep;
INSERT INTO crm.customer (name, uscc) VALUES ('Org customer 1', crm.uscc_with_check('91330100MA2B00011')), ('Org customer 2', crm.uscc_with_check('91330100MA2B00012'));
INSERT INTO crm.lead (name) VALUES ('Org lead');
RESET ROLE;
INSERT INTO crm.team_member (record_type, record_id, employee_id, access)
SELECT 'customer', id, :rep, 'edit' FROM crm.customer WHERE owner_id = :hr LIMIT 1;
UPDATE crm.department SET leader_id = :rep WHERE id = :east;
-- a salesperson may not
SET ROLE org_rep2;
SELECT crm.deactivate_employee(:rep, :rep2);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- nor may work go to nobody, to oneself or to someone inactive
SET ROLE org_hr;
SELECT crm.deactivate_employee(:rep, NULL);
SELECT crm.deactivate_employee(:rep, :rep);
SELECT crm.deactivate_employee(:rep, :gone);
SELECT crm.deactivate_employee(:rep, 999999);
-- HR (admin.org) hands Rep's work to Rep Two, including what HR cannot see
SELECT crm.deactivate_employee(:rep, :rep2) AS handed_over;
SELECT crm.deactivate_employee(:rep, :rep2);
RESET ROLE;
SELECT (SELECT count(*) FROM crm.customer WHERE owner_id = :rep2) AS customers,
       (SELECT count(*) FROM crm.lead WHERE owner_id = :rep2) AS leads,
       (SELECT leader_id = :rep2 FROM crm.department WHERE id = :east) AS leads_east,
       (SELECT superior_id = :hr FROM crm.employee WHERE id = :rep2) AS reports_to_hr,
       (SELECT active FROM crm.employee WHERE id = :rep) AS rep_active;
SET ROLE org_rep;
SELECT crm.current_employee_id() IS NULL AS rep_is_nobody, count(*) AS rep_sees FROM crm.customer;
RESET ROLE;
-- a super admin is deactivated only by another super admin
INSERT INTO crm.role (name, is_super) VALUES ('Org super again', true);
INSERT INTO crm.employee_role SELECT :sup2, id FROM crm.role WHERE name = 'Org super again';
SET ROLE org_hr;
SELECT crm.deactivate_employee(:sup2, :hr);
RESET ROLE;

DELETE FROM crm.team_member;
DELETE FROM crm.customer;
DELETE FROM crm.lead;
ALTER TABLE crm.employee_role DISABLE TRIGGER employee_role_keep_super;
DELETE FROM crm.employee_role WHERE employee_id IN (:sup, :sup2, :hr, :rep, :rep2);
ALTER TABLE crm.employee_role ENABLE TRIGGER employee_role_keep_super;
ALTER TABLE crm.role DISABLE TRIGGER role_keep_super;
DELETE FROM crm.role WHERE name LIKE 'Org %';
ALTER TABLE crm.role ENABLE TRIGGER role_keep_super;
DROP OWNED BY org_super, org_super2, org_hr, org_rep, org_rep2, org_dba, org_gone;
