-- The acting employee's scope inside one transaction that changes the organisation:
-- each statement answers from the organisation as it is, however often it changes.
CREATE ROLE sc_mgr LOGIN IN ROLE crm_user;
INSERT INTO crm.department (name) SELECT v FROM unnest(ARRAY['Sc East', 'Sc South']) v;
INSERT INTO crm.employee (name, department_id, db_role)
SELECT v.name, d.id, v.role FROM (VALUES ('Sc Manager', 'sc_mgr'), ('Sc Rep', NULL)) v(name, role)
  JOIN crm.department d ON d.name = 'Sc South';
INSERT INTO crm.role (name) VALUES ('Sc department');
INSERT INTO crm.role_scope (role_id, record_type, scope) SELECT id, 'customer', 'department' FROM crm.role WHERE name = 'Sc department';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e, crm.role r WHERE e.db_role = 'sc_mgr' AND r.name = 'Sc department';
INSERT INTO crm.customer (name, owner_id, uscc)
SELECT 'Sc customer of ' || name, id, crm.uscc_with_check('91330100MA2C' || lpad(id::text, 5, '0'))
  FROM crm.employee WHERE name LIKE 'Sc %';
-- customers of someone outside the manager's scope, three shared with the manager
INSERT INTO crm.department (name) VALUES ('Sc West');
INSERT INTO crm.employee (name, department_id) SELECT 'Sc Other', id FROM crm.department WHERE name = 'Sc West';
INSERT INTO crm.customer (name, owner_id, uscc)
SELECT 'Shared ' || i, e.id, crm.uscc_with_check('91330100MA2G' || lpad(i::text, 5, '0'))
  FROM crm.employee e, generate_series(1, 30) i WHERE e.name = 'Sc Other';
INSERT INTO crm.team_member (record_type, record_id, employee_id, access)
SELECT 'customer', c.id, e.id, 'read' FROM crm.customer c, crm.employee e
 WHERE c.name IN ('Shared 1', 'Shared 2', 'Shared 3') AND e.db_role = 'sc_mgr';
-- moves the rep between the two departments, as an administrator would
CREATE SCHEMA sc;
CREATE FUNCTION sc.move_rep(dept text) RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
	UPDATE crm.employee SET department_id = (SELECT id FROM crm.department WHERE name = dept) WHERE name = 'Sc Rep';
	RETURN true;
END $$;
CREATE FUNCTION sc.sees() RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(name, ', ' ORDER BY name) FROM crm.customer WHERE name LIKE 'Sc %' $$;
-- shows two scope answers a statement took on either side of an organisation change
CREATE FUNCTION sc.both(before bigint[], moved boolean, after bigint[]) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RETURN format('%s owners, %s, then %s', cardinality(before), CASE WHEN moved THEN 'moved' END, cardinality(after));
END $$;
-- the memory of crm's scope caches (the context view is a superuser's)
CREATE FUNCTION sc.cache_bytes() RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
	SELECT coalesce(sum(total_bytes), 0)::bigint FROM pg_backend_memory_contexts
	 WHERE name IN ('crm acting scope', 'crm team entries', 'crm org') OR parent IN ('crm acting scope', 'crm team entries', 'crm org') $$;
GRANT USAGE ON SCHEMA sc TO sc_mgr;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA sc TO sc_mgr;

SET ROLE sc_mgr;
BEGIN;
SELECT sc.sees();
SELECT sc.move_rep('Sc East');
SELECT sc.sees();
SELECT sc.move_rep('Sc South');
SELECT sc.sees();
-- the rep moves back and forth: every answer follows, and the caches reuse
-- their memory (a loop like this once held 1.1 GB after 7,000 moves)
DO $$
DECLARE
	seen text;
	expected text;
	at50 bigint;
BEGIN
	FOR i IN 1..200 LOOP
		IF i = 50 THEN
			at50 := sc.cache_bytes();
		END IF;
		PERFORM sc.move_rep(CASE WHEN i % 2 = 0 THEN 'Sc South' ELSE 'Sc East' END);
		seen := sc.sees();
		expected := CASE WHEN i % 2 = 0 THEN 'Sc customer of Sc Manager, Sc customer of Sc Rep'
		                 ELSE 'Sc customer of Sc Manager' END;
		IF seen IS DISTINCT FROM expected THEN
			RAISE EXCEPTION 'after move %, the manager sees %', i, seen;
		END IF;
	END LOOP;
	IF sc.cache_bytes() - at50 > 1048576 THEN
		RAISE EXCEPTION 'the scope caches grew by % bytes in 150 moves', sc.cache_bytes() - at50;
	END IF;
END $$;
SELECT sc.sees();
-- a statement keeps the answer it had before a function it calls changed the organisation
SELECT sc.both(crm.scope_owners('customer'), sc.move_rep('Sc East'), crm.scope_owners('customer'));
SELECT sc.both(crm.scope_owners('customer'), sc.move_rep('Sc South'), crm.scope_owners('customer'));
COMMIT;
SELECT sc.sees();
RESET ROLE;

-- after an organisation change, the manager's team entries are read once for a
-- statement (and its plan), not once for each of the 30 rows its policies look at
-- (counted from here: the counts so far are flushed when this statement ends)
SELECT pg_stat_force_next_flush();
BEGIN;
SELECT sc.move_rep('Sc East');
SET ROLE sc_mgr;
SELECT string_agg(name, ', ' ORDER BY name) AS shared_with_manager FROM crm.customer WHERE name LIKE 'Shared %';
RESET ROLE;
SELECT seq_scan + coalesce(idx_scan, 0) < 10 AS team_entries_read_once FROM pg_stat_xact_user_tables
 WHERE relid = 'crm.team_member'::regclass;
COMMIT;
DELETE FROM crm.team_member WHERE record_type = 'customer'
   AND record_id IN (SELECT id FROM crm.customer WHERE name LIKE 'Shared %');
DELETE FROM crm.customer WHERE name LIKE 'Sc %' OR name LIKE 'Shared %';
