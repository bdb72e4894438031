-- A reader's scan runs in parallel, as the same query on a table without
-- policies does: each worker works out the leader's acting employee and scope
-- (src/access/scope.c, docs/access.md "Parallel queries")
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['par_sales', 'par_manager', 'par_gone', 'par_nobody'] LOOP
		EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
	END LOOP;
END $$;
CREATE ROLE par_postgrest LOGIN NOINHERIT IN ROLE crm_authenticator;
CREATE ROLE par_web NOLOGIN IN ROLE crm_user;
GRANT par_web TO par_postgrest;
INSERT INTO crm.department (name) VALUES ('Par North');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT e.name, d.id, e.role FROM crm.department d,
	(VALUES ('Par Sales', 'par_sales'), ('Par Manager', 'par_manager'), ('Par Gone', 'par_gone'),
	        ('Par Other', NULL)) e(name, role)
 WHERE d.name = 'Par North';
SELECT id AS sales FROM crm.employee WHERE name = 'Par Sales' \gset
SELECT id AS manager FROM crm.employee WHERE name = 'Par Manager' \gset
SELECT id AS gone FROM crm.employee WHERE name = 'Par Gone' \gset
SELECT id AS other FROM crm.employee WHERE name = 'Par Other' \gset
UPDATE crm.employee SET superior_id = :manager WHERE id IN (:sales, :gone);
INSERT INTO crm.role (name) VALUES ('Par manager');
INSERT INTO crm.role_scope (role_id, record_type, scope) SELECT id, 'customer', 'subordinates' FROM crm.role WHERE name = 'Par manager';
INSERT INTO crm.employee_role (employee_id, role_id) SELECT :manager, id FROM crm.role WHERE name = 'Par manager';
-- 300 customers each for Sales, Gone and Other; Sales is on the team of one of Other's
UPDATE crm.settings SET uscc_required = false;
INSERT INTO crm.customer (name, owner_id)
SELECT format('Par customer %s of %s', n, e.name), e.id
  FROM crm.employee e, generate_series(1, 300) n WHERE e.id IN (:sales, :gone, :other);
UPDATE crm.settings SET uscc_required = true;
INSERT INTO crm.team_member (record_type, record_id, employee_id)
SELECT 'customer', min(id), :sales FROM crm.customer WHERE owner_id = :other;
UPDATE crm.employee SET active = false WHERE id = :gone;
ANALYZE crm.customer;

-- every scan parallel, whatever its size, and the workers scan it all
SET parallel_leader_participation = off;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
CREATE VIEW par_seen WITH (security_invoker) AS
SELECT count(*) AS seen, count(DISTINCT owner_id) AS owners FROM crm.customer WHERE name LIKE 'Par %';
GRANT SELECT ON par_seen TO crm_user;

SET ROLE par_sales;
EXPLAIN (COSTS OFF) SELECT count(*) FROM crm.customer WHERE name LIKE 'Par %';
-- their own 300 and the one whose team they are on, in parallel as in one process
SELECT * FROM par_seen;
SET max_parallel_workers_per_gather = 0;
SELECT * FROM par_seen;
SET max_parallel_workers_per_gather = 2;
RESET ROLE;
-- a manager: their reports', a deactivated one's too
SET ROLE par_manager;
SELECT * FROM par_seen;
RESET ROLE;
-- a deactivated employee and a login mapped to nobody see nothing
SET ROLE par_gone;
SELECT * FROM par_seen;
RESET ROLE;
SET ROLE par_nobody;
SELECT * FROM par_seen;
RESET ROLE;
-- an API server's request: the workers act for the employee its claims name
SET SESSION AUTHORIZATION par_postgrest;
SET ROLE par_web;
SELECT set_config('request.jwt.claims', format('{"role": "par_web", "employee_id": %s}', :sales), false) IS NOT NULL AS claims_set;
SELECT * FROM par_seen;
SELECT set_config('request.jwt.claims', format('{"role": "par_web", "employee_id": %s}', :gone), false) IS NOT NULL AS claims_set;
SELECT * FROM par_seen;
RESET request.jwt.claims;
SELECT * FROM par_seen;
RESET ROLE;
RESET SESSION AUTHORIZATION;
-- a change of scope reaches the next parallel statement
UPDATE crm.role_scope SET scope = 'self' WHERE role_id = (SELECT id FROM crm.role WHERE name = 'Par manager');
SET ROLE par_manager;
SELECT * FROM par_seen;
RESET ROLE;
RESET parallel_leader_participation;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET enable_indexscan;
RESET enable_bitmapscan;

DROP VIEW par_seen;
DELETE FROM crm.customer WHERE name LIKE 'Par %';
DROP OWNED BY par_sales, par_manager, par_gone, par_nobody, par_postgrest, par_web;
DROP ROLE par_sales, par_manager, par_gone, par_nobody, par_postgrest, par_web;
