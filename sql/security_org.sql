-- The organisation stays a tree: cycles are refused on INSERT as on UPDATE, also among the
-- rows of one statement, chains are at most 100 levels, and no walk of the tree runs long,
-- even over a cycle that a load without triggers left in the data.  Everything here is
-- rolled back at the end; the timeout turns a hang into a failure.
SET statement_timeout = '60s';
\set ON_ERROR_ROLLBACK on
BEGIN;
CREATE ROLE regress_org_hr LOGIN IN ROLE crm_user;
CREATE ROLE regress_org_viewer LOGIN IN ROLE crm_user;
INSERT INTO crm.department (id, name) OVERRIDING SYSTEM VALUE VALUES (900000, 'Cyc HQ');
INSERT INTO crm.employee (id, name, department_id, db_role) OVERRIDING SYSTEM VALUE
VALUES (900000, 'Cyc HR', 900000, 'regress_org_hr');
INSERT INTO crm.role (id, name) OVERRIDING SYSTEM VALUE VALUES (900000, 'Cyc org admin');
INSERT INTO crm.role_permission VALUES (900000, 'admin.org');
INSERT INTO crm.employee_role VALUES (900000, 900000);

-- the reproduction: two departments that are each other's parent, in one INSERT (as a
-- superuser: ids are not staff's to choose); updates below run as an admin.org holder
INSERT INTO crm.department (id, name, parent_id) OVERRIDING SYSTEM VALUE
VALUES (900001, 'a', 900002), (900002, 'b', 900001);
\echo :LAST_ERROR_SQLSTATE
-- three rows closing a cycle among themselves, whatever their order
INSERT INTO crm.department (id, name, parent_id) OVERRIDING SYSTEM VALUE
VALUES (900003, 'c', 900001), (900001, 'a', 900002), (900002, 'b', 900003);
-- the same rows as a tree are fine, and so is the next update of a parent
INSERT INTO crm.department (id, name, parent_id) OVERRIDING SYSTEM VALUE
VALUES (900001, 'a', 900000), (900002, 'b', 900001), (900003, 'c', 900002);
SET ROLE regress_org_hr;
UPDATE crm.department SET parent_id = 900000 WHERE id = 900003;
UPDATE crm.department SET parent_id = 900003 WHERE id = 900001;
-- one UPDATE whose rows make a cycle together
UPDATE crm.department SET parent_id = CASE id WHEN 900001 THEN 900002 ELSE 900001 END WHERE id IN (900001, 900002);
-- one UPDATE that passes through a cycle row by row but leaves a tree: fine
UPDATE crm.department SET parent_id = CASE id WHEN 900001 THEN 900000 ELSE 900001 END WHERE id IN (900001, 900002);
SELECT id, name, parent_id FROM crm.department WHERE id > 900000 ORDER BY id;
-- long names are clipped in messages
UPDATE crm.department SET name = repeat('长', 80) WHERE id = 900001;
UPDATE crm.department SET parent_id = 900002 WHERE id = 900001;
UPDATE crm.department SET name = 'a' WHERE id = 900001;
RESET ROLE;

-- superiors: a cycle in one INSERT, and an update that would close one
INSERT INTO crm.employee (id, name, department_id, superior_id) OVERRIDING SYSTEM VALUE
VALUES (900001, 'Ma', 900000, 900002), (900002, 'Niu', 900000, 900001);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.employee (id, name, department_id, superior_id) OVERRIDING SYSTEM VALUE
VALUES (900001, 'Ma', 900000, NULL), (900002, 'Niu', 900000, 900001), (900003, 'Yang', 900000, 900002);
SET ROLE regress_org_hr;
UPDATE crm.employee SET superior_id = 900003 WHERE id = 900001;
\set VERBOSITY terse
UPDATE crm.employee SET superior_id = id WHERE id = 900001;   -- the table's own check
\set VERBOSITY default
UPDATE crm.employee SET mobile = '13900009001' WHERE id = 900001;   -- other columns: no walk
RESET ROLE;

-- depth: a 10,000-deep chain is refused at once, from the top or from the bottom
INSERT INTO crm.employee (id, name, department_id, superior_id) OVERRIDING SYSTEM VALUE
SELECT 910000 + g, 'Chain ' || g, 900000, CASE WHEN g > 1 THEN 910000 + g - 1 END FROM generate_series(1, 10000) g;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.employee (id, name, department_id, superior_id) OVERRIDING SYSTEM VALUE
SELECT 910000 + g, 'Chain ' || g, 900000, CASE WHEN g > 1 THEN 910000 + g - 1 END FROM generate_series(10000, 1, -1) g;
-- 100 levels are fine
INSERT INTO crm.employee (id, name, department_id, superior_id) OVERRIDING SYSTEM VALUE
SELECT 910000 + g, 'Chain ' || g, 900000, CASE WHEN g > 1 THEN 910000 + g - 1 END FROM generate_series(1, 100) g;
SELECT count(*) AS chain FROM crm.employee WHERE id > 910000;
-- a move that puts a sub-tree below the 100th level is refused: Niu has Yang under her
UPDATE crm.employee SET superior_id = 910099 WHERE id = 900002;
UPDATE crm.employee SET superior_id = 910098 WHERE id = 900002;
-- the same for departments
INSERT INTO crm.department (id, name, parent_id) OVERRIDING SYSTEM VALUE
SELECT 910000 + g, 'Level ' || g, CASE WHEN g > 1 THEN 910000 + g - 1 ELSE 900000 END FROM generate_series(1, 100) g;
INSERT INTO crm.department (id, name, parent_id) OVERRIDING SYSTEM VALUE
SELECT 910000 + g, 'Level ' || g, CASE WHEN g > 1 THEN 910000 + g - 1 ELSE 900000 END FROM generate_series(1, 99) g;
UPDATE crm.department SET parent_id = 910099 WHERE id = 900001;   -- a, with b under it

-- a cycle already in the data (loaded with triggers off) hangs nothing
SET session_replication_role = replica;
INSERT INTO crm.department (id, name, parent_id) OVERRIDING SYSTEM VALUE
VALUES (900011, 'Loop x', 900012), (900012, 'Loop y', 900011);
INSERT INTO crm.employee (id, name, department_id, superior_id, db_role) OVERRIDING SYSTEM VALUE
VALUES (900011, 'Loop Xu', 900011, 900012, 'regress_org_viewer'), (900012, 'Loop Yu', 900012, 900011, NULL);
RESET session_replication_role;
UPDATE crm.department SET parent_id = 900011 WHERE id = 900003;
UPDATE crm.employee SET superior_id = 900012 WHERE id = 900003;
-- scopes over it: Xu sees the customers of the loop's departments, and both as subordinates
INSERT INTO crm.role (id, name) OVERRIDING SYSTEM VALUE VALUES (900001, 'Cyc tree'), (900002, 'Cyc subordinates');
INSERT INTO crm.role_scope VALUES (900001, 'customer', 'department_tree'), (900002, 'lead', 'subordinates');
INSERT INTO crm.employee_role VALUES (900011, 900001), (900011, 900002);
INSERT INTO crm.customer (name, kind, owner_id) VALUES ('Loop customer', 'individual', 900012);
SET ROLE regress_org_viewer;
SELECT name FROM crm.customer;
SELECT cardinality(crm.scope_owners('lead')) AS lead_owners;
RESET ROLE;
-- the pool and recycling views walk departments too
INSERT INTO crm.pool (name) VALUES ('Loop pool') RETURNING id AS loop_pool \gset
INSERT INTO crm.pool_member (pool_id, department_id) VALUES (:loop_pool, 900011);
SELECT count(*) AS members FROM crm.pool_membership WHERE pool_id = :loop_pool;
SELECT count(*) AS covered FROM crm.recycle_rule_employees(ARRAY[900011]::bigint[], '{}', '{}');
-- and the cycle can be repaired
UPDATE crm.department SET parent_id = NULL WHERE id = 900011;
UPDATE crm.department SET parent_id = 900000 WHERE id = 900011;
UPDATE crm.employee SET superior_id = 900000 WHERE id = 900011;

-- nobody stalls crm by hand: an employee may delete some rows of crm.employee,
-- which PostgreSQL takes as leave to LOCK it in any mode, and crm refuses;
-- a view over crm's tables is no way round it
SET ROLE regress_org_viewer;
LOCK TABLE crm.employee IN ACCESS EXCLUSIVE MODE;
\echo :LAST_ERROR_SQLSTATE
CREATE TEMP VIEW staff_view AS SELECT * FROM crm.department;
LOCK staff_view;
\echo :LAST_ERROR_SQLSTATE
-- nor one that reads them in a sub-select, a CTE or a sublink
CREATE TEMP VIEW staff_sub AS SELECT * FROM (SELECT id FROM crm.department) d;
LOCK staff_sub;
\echo :LAST_ERROR_SQLSTATE
CREATE TEMP VIEW staff_cte AS WITH e AS (SELECT id FROM crm.employee) SELECT * FROM e;
LOCK staff_cte;
\echo :LAST_ERROR_SQLSTATE
CREATE TEMP VIEW staff_exists AS SELECT 1 AS one WHERE EXISTS (SELECT FROM crm.employee);
LOCK staff_exists;
\echo :LAST_ERROR_SQLSTATE
-- a view that reads no crm table locks as PostgreSQL says, at once (each view
-- names itself as OLD and NEW, and views over views meet again)
CREATE TEMP VIEW plain_view AS SELECT 1 AS one;
CREATE TEMP VIEW plain_twice AS SELECT a.one FROM plain_view a, plain_view b, plain_view c;
CREATE TEMP VIEW plain_more AS SELECT a.one FROM plain_twice a, plain_twice b, plain_twice c;
LOCK plain_view, plain_more;
SELECT count(*) AS views_locked FROM pg_locks
 WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' AND pid = pg_backend_pid()
   AND relation IN ('plain_view'::regclass, 'plain_twice'::regclass, 'plain_more'::regclass);
-- nor locks the organisation's rows: FOR UPDATE and FOR SHARE take none
SELECT count(*) AS locked FROM (SELECT id FROM crm.employee FOR UPDATE) x;
SELECT count(*) AS locked FROM (SELECT id FROM crm.department FOR SHARE) x;
-- nor holds the lock the tree checks take (it is a row of crm's own)
SELECT count(*) FROM crm.org_tree_lock;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- an administrator who is not a super admin manages everyone's access but
-- their own: HR (admin.org and admin.role) tries to widen their own
INSERT INTO crm.role_permission VALUES (900000, 'admin.role');
INSERT INTO crm.role (id, name) OVERRIDING SYSTEM VALUE VALUES (900009, 'Cyc all');
INSERT INTO crm.role_scope VALUES (900009, 'customer', 'all', NULL);
SET ROLE regress_org_hr;
INSERT INTO crm.employee_role VALUES (900000, 900009);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.role_scope VALUES (900000, 'customer', 'all', NULL);
UPDATE crm.employee SET department_id = 900011 WHERE id = 900000;
UPDATE crm.employee SET superior_id = 900000 WHERE id = 900012;
-- (900012 is in no scope of HR's)
SELECT crm.deactivate_employee(900012, 900000);
-- not even with an = of their own that says every employee is in scope
RESET ROLE;
CREATE SCHEMA regress_hr_own AUTHORIZATION regress_org_hr;
SET ROLE regress_org_hr;
CREATE FUNCTION regress_hr_own.always(bigint, bigint) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR regress_hr_own.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_hr_own.always);
SET search_path = regress_hr_own, pg_catalog;
SELECT crm.deactivate_employee(900012, 900000);
RESET search_path;
RESET ROLE;
DROP SCHEMA regress_hr_own CASCADE;
-- nor hands them to a report of theirs, into their view; a successor outside
-- their scope widens nothing
SAVEPOINT hr_report;
INSERT INTO crm.role_scope VALUES (900000, 'customer', 'subordinates', NULL);
INSERT INTO crm.employee (id, name, department_id, superior_id) OVERRIDING SYSTEM VALUE
VALUES (900030, 'HR report', 900000, 900000), (900031, 'Leaver Qin', 900000, NULL), (900032, 'Successor Pan', 900000, NULL);
INSERT INTO crm.customer (name, kind, owner_id) VALUES ('Leaver customer', 'individual', 900031);
SET ROLE regress_org_hr;
SELECT crm.deactivate_employee(900031, 900030);
\echo :LAST_ERROR_SQLSTATE
SELECT crm.deactivate_employee(900031, 900032) AS handed_outside_their_scope;
RESET ROLE;
SELECT c.name, e.name AS owner FROM crm.customer c JOIN crm.employee e ON e.id = c.owner_id WHERE c.name = 'Leaver customer';
-- nor takes over a report's places on the teams of records outside their
-- scope (a team place shows a record whatever the scope); a report of theirs
-- may take them over: the place shows the record to the report alone
INSERT INTO crm.employee (id, name, department_id, superior_id) OVERRIDING SYSTEM VALUE
VALUES (900033, 'HR report two', 900000, 900000);
INSERT INTO crm.customer (id, name, kind, owner_id) OVERRIDING SYSTEM VALUE
VALUES (900034, 'Outside customer', 'individual', 900032);
INSERT INTO crm.team_member (record_type, record_id, employee_id, access) VALUES ('customer', 900034, 900030, 'edit');
SET ROLE regress_org_hr;
SELECT count(*) AS hr_sees FROM crm.customer WHERE id = 900034;
SELECT crm.handover_employee(900030, 900000);
\echo :LAST_ERROR_SQLSTATE
SELECT crm.handover_employee(900030, 900033) AS handed_to_a_report;
SELECT count(*) AS hr_sees FROM crm.customer WHERE id = 900034;
RESET ROLE;
SELECT e.name FROM crm.team_member m JOIN crm.employee e ON e.id = m.employee_id WHERE m.record_type = 'customer' AND m.record_id = 900034;
-- nor a leader's post, for themselves (a leader hears of their department's
-- records); a report of theirs may take it over
INSERT INTO crm.department (name, leader_id) VALUES ('Cyc Far', 900033);
DELETE FROM crm.team_member WHERE employee_id = 900033;
INSERT INTO crm.role_scope SELECT 900000, t, 'subordinates', NULL FROM unnest(ARRAY['lead', 'opportunity', 'contract']) t;
SET ROLE regress_org_hr;
SELECT crm.handover_employee(900033, 900000);
\echo :LAST_ERROR_SQLSTATE
SELECT crm.handover_employee(900033, 900030) AS handed_to_a_report;
RESET ROLE;
SELECT d.name, e.name AS leader FROM crm.department d JOIN crm.employee e ON e.id = d.leader_id WHERE d.name = 'Cyc Far';
ROLLBACK TO SAVEPOINT hr_report;
SET ROLE regress_org_hr;
-- nor brings anyone within their reach: under someone below them, into a
-- department under theirs, a department under theirs, or themselves into a pool
RESET ROLE;
INSERT INTO crm.role_permission VALUES (900000, 'admin.rules');
INSERT INTO crm.department (id, name) OVERRIDING SYSTEM VALUE VALUES (900020, 'Cyc Outside');
INSERT INTO crm.employee (id, name, department_id) OVERRIDING SYSTEM VALUE VALUES (900021, 'Outsider Lu', 900020);
SET ROLE regress_org_hr;
UPDATE crm.employee SET superior_id = 900012 WHERE id = 900021;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.employee SET department_id = 900001 WHERE id = 900021;
UPDATE crm.department SET parent_id = 900003 WHERE id = 900020;
INSERT INTO crm.pool_member (pool_id, employee_id, is_admin) VALUES (:loop_pool, 900000, true);
INSERT INTO crm.pool_member (pool_id, department_id, is_admin) VALUES (:loop_pool, 900000, true);
-- nor opens a pool to all, moves their own department (or one above it: a
-- pool takes a department with those under it), or leads a department
UPDATE crm.pool SET open_to_all = true WHERE id = :loop_pool;
UPDATE crm.department SET parent_id = 900020 WHERE id = 900000;
UPDATE crm.department SET leader_id = 900000 WHERE id = 900020;
INSERT INTO crm.department (name, leader_id) VALUES ('Cyc led by HR', 900000);
UPDATE crm.department SET leader_id = 900021 WHERE id = 900020;
-- within their reach, out of it, and others' pools are the job
UPDATE crm.employee SET department_id = 900003 WHERE id = 900002;
UPDATE crm.employee SET department_id = 900020, superior_id = NULL WHERE id = 900003;
UPDATE crm.pool_member SET is_admin = true WHERE pool_id = :loop_pool AND department_id = 900011;
INSERT INTO crm.pool_member (pool_id, employee_id) VALUES (:loop_pool, 900021);
SELECT e.name, d.name AS department, s.name AS superior FROM crm.employee e JOIN crm.department d ON d.id = e.department_id
  LEFT JOIN crm.employee s ON s.id = e.superior_id WHERE e.id IN (900002, 900003, 900021) ORDER BY e.id;
-- for others it is the job
INSERT INTO crm.employee_role VALUES (900012, 900009);
SELECT count(*) AS granted FROM crm.employee_role WHERE employee_id = 900012;
-- nor makes a group role somebody's login: every member of crm_user could
-- SET ROLE crm_user and act as that employee
UPDATE crm.employee SET db_role = 'crm_user' WHERE id = 900012;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.employee SET db_role = 'crm_admin' WHERE id = 900012;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- a login role that gains a member after it was mapped acts as nobody, for
-- the member and for itself, until the membership goes
CREATE ROLE regress_org_shared LOGIN IN ROLE crm_user;
UPDATE crm.employee SET db_role = 'regress_org_shared' WHERE id = 900012;
SET ROLE regress_org_shared;
SELECT crm.current_employee_id() AS acting;
RESET ROLE;
GRANT regress_org_shared TO regress_org_viewer;
SET ROLE regress_org_viewer;
SET ROLE regress_org_shared;
SELECT crm.current_employee_id() AS acting;
RESET ROLE;
UPDATE crm.employee SET db_role = NULL WHERE id = 900012;
UPDATE crm.employee SET db_role = 'regress_org_shared' WHERE id = 900012;
\echo :LAST_ERROR_SQLSTATE
REVOKE regress_org_shared FROM regress_org_viewer;
UPDATE crm.employee SET db_role = 'regress_org_shared' WHERE id = 900012;
SET ROLE regress_org_shared;
SELECT crm.current_employee_id() AS acting;
RESET ROLE;
ROLLBACK;
