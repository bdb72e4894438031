-- The security suite: crm's own code never acts for an employee (docs/security.md).
-- Each attack runs as the role that tried it; the catalog checks hold for every
-- function, table and setting, present and future.
SELECT setval(s, 9000, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.follow_up_id_seq', 'crm.contact_id_seq']) s \g /dev/null
CREATE ROLE sec_rep LOGIN IN ROLE crm_user;
INSERT INTO crm.department (name) VALUES ('Sec Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT 'Sec Rep', id, 'sec_rep' FROM crm.department WHERE name = 'Sec Sales';
INSERT INTO crm.role (name) VALUES ('Sec sales');
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.create', 'customer.edit', 'lead.create', 'lead.convert']) a
 WHERE r.name = 'Sec sales';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e, crm.role r WHERE e.db_role = 'sec_rep' AND r.name = 'Sec sales';
\set VERBOSITY default

-- == Catalog: what crm_user may execute is exactly the documented surface
-- (docs/security.md lists it; a function added later shows up here)
SELECT p.oid::regprocedure AS executable_by_crm_user
  FROM pg_proc p
 WHERE p.pronamespace = 'crm'::regnamespace AND has_function_privilege('crm_user', p.oid, 'EXECUTE')
 ORDER BY p.oid::regprocedure::text;

-- nothing of crm's is executable by PUBLIC, and no trigger function by crm_user
SELECT p.oid::regprocedure AS executable_by_public
  FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
 WHERE p.pronamespace = 'crm'::regnamespace AND a.grantee = 0 AND a.privilege_type = 'EXECUTE';
SELECT p.oid::regprocedure AS trigger_function_executable
  FROM pg_proc p
 WHERE p.pronamespace = 'crm'::regnamespace AND p.prorettype = 'trigger'::regtype
   AND has_function_privilege('crm_user', p.oid, 'EXECUTE');

-- every SECURITY DEFINER function pins search_path
SELECT p.oid::regprocedure AS definer_without_search_path
  FROM pg_proc p
 WHERE p.pronamespace = 'crm'::regnamespace AND p.prosecdef
   AND NOT coalesce(p.proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp'];

-- every PL/pgSQL trigger function checks the table it runs on first (C ones: below)
SELECT p.oid::regprocedure AS trigger_without_table_check
  FROM pg_proc p
 WHERE p.pronamespace = 'crm'::regnamespace AND p.prorettype = 'trigger'::regtype
   AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')
   AND substring(p.prosrc FROM '^\s*?(?:DECLARE.*?)?BEGIN\s*IF (TG_RELID|TG_TABLE_SCHEMA) ') IS NULL;
-- and touches no NEW or OLD before that check (a declaration's initial value ran
-- a cast of the attacker's, as the owner, before the body)
SELECT p.oid::regprocedure AS trigger_reading_row_in_declare
  FROM pg_proc p
 WHERE p.pronamespace = 'crm'::regnamespace AND p.prorettype = 'trigger'::regtype
   AND substring(p.prosrc FROM '^\s*?DECLARE(.*?)\mBEGIN\M') ~* '\m(NEW|OLD)\M';

-- no crm.* setting that changes an outcome or an audit record is the session's to set
SELECT name AS user_settable FROM pg_settings WHERE name LIKE 'crm.%' AND context = 'user';

-- == Attack: attach crm's trigger functions to a table of one's own
-- (a definer trigger on a temp table ran a cast as the owner: superuser for a
-- salesperson; crm.stamp_record() on a text column crashed the server)
SET ROLE sec_rep;
CREATE TEMP TABLE tp (id bigint, name text, active boolean, created_at text, updated_at text);
CREATE TRIGGER t BEFORE INSERT ON tp FOR EACH ROW EXECUTE FUNCTION crm.pool_holder();
CREATE TRIGGER s BEFORE INSERT ON tp FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();
-- every one of them, present and future
DO $$
DECLARE
	f regprocedure;
	refused integer := 0;
	attached text[] := '{}';
BEGIN
	FOR f IN SELECT p.oid FROM pg_proc p
	          WHERE p.pronamespace = 'crm'::regnamespace AND p.prorettype = 'trigger'::regtype
	LOOP
		BEGIN
			EXECUTE format('CREATE TRIGGER x AFTER INSERT ON tp FOR EACH ROW EXECUTE FUNCTION %s()',
			               (SELECT p.oid::regproc FROM pg_proc p WHERE p.oid = f));
			attached := attached || f::text;
			DROP TRIGGER x ON tp;
		EXCEPTION WHEN insufficient_privilege THEN
			refused := refused + 1;
		END;
	END LOOP;
	RAISE NOTICE 'crm trigger functions refused to sec_rep: %, attached: %', refused, attached;
END
$$;
RESET ROLE;

-- Even attached by their owner to another table, each refuses to run
-- (the C ones check the schema and the types of the columns they write)
CREATE TEMP TABLE customer (id bigint, name text, owner_id bigint, created_by bigint,
                            created_at text, updated_at text, active boolean, is_pool boolean);
CREATE TEMP TABLE outcome (function regproc, kind text, sqlstate text);
DO $$
DECLARE
	f regproc;
	kind text;
	state text;
BEGIN
	FOR f IN SELECT p.oid FROM pg_proc p
	          WHERE p.pronamespace = 'crm'::regnamespace AND p.prorettype = 'trigger'::regtype
	LOOP
		FOREACH kind IN ARRAY ARRAY['BEFORE INSERT OR UPDATE OR DELETE ON pg_temp.customer FOR EACH ROW',
		                            'AFTER INSERT OR UPDATE OR DELETE ON pg_temp.customer FOR EACH ROW',
		                            'AFTER INSERT OR UPDATE OR DELETE ON pg_temp.customer FOR EACH STATEMENT']
		LOOP
			BEGIN
				EXECUTE format('CREATE TRIGGER x %s EXECUTE FUNCTION %s(''customer'')', kind, f);
				INSERT INTO pg_temp.customer VALUES (1, 'x', 1, 1, 'now', 'now', true, false);
				UPDATE pg_temp.customer SET name = 'y';
				DELETE FROM pg_temp.customer;
				state := 'ran';
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
			END;
			INSERT INTO pg_temp.outcome VALUES (f, split_part(kind, ' ', 1) || ' ' || split_part(kind, ' ', -1), state);
		END LOOP;
	END LOOP;
END
$$;
-- 42809: refused on this table; 39P01: refused as the wrong kind of trigger
SELECT sqlstate, count(*) FROM pg_temp.outcome GROUP BY 1 ORDER BY 1;
SELECT * FROM pg_temp.outcome WHERE sqlstate NOT IN ('42809', '39P01');
DROP TABLE pg_temp.outcome;
DROP TABLE pg_temp.customer;
-- inside schema crm (only its owner creates tables there) a C trigger still
-- checks the type of each column it writes: this one crashed the server
CREATE TABLE crm.sec_stamped (id bigint, updated_at text);
CREATE TRIGGER s BEFORE INSERT ON crm.sec_stamped FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();
INSERT INTO crm.sec_stamped (id) VALUES (1);
DROP TABLE crm.sec_stamped;

-- == Attack: the owner's code with the caller's search_path
-- (in a database whose public schema is writable, a salesperson's
-- public.lower(int8multirange) ran as superuser from the operation log)
GRANT CREATE ON SCHEMA public TO sec_rep;
SET ROLE sec_rep;
CREATE FUNCTION public.lower(int8multirange) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'hijacked: running as %', current_user;
END
$$;
CREATE FUNCTION public.int8eq_evil(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'hijacked = as %', current_user;
END
$$;
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.int8eq_evil);
SET search_path = public, pg_catalog;
INSERT INTO crm.customer (name, uscc) VALUES ('路径客户', crm.uscc_with_check('91330100000170001'));
UPDATE crm.customer SET phone = '0571-1' WHERE name = '路径客户';
SELECT count(*) AS mine FROM crm.customer;
RESET search_path;
DROP OPERATOR public.= (bigint, bigint);
DROP FUNCTION public.int8eq_evil(bigint, bigint), public.lower(int8multirange);
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM sec_rep;
SELECT record_type, action, source FROM crm.oplog
 WHERE record_type = 'customer' AND record_id = (SELECT id FROM crm.customer WHERE name = '路径客户') ORDER BY id;

-- == Attack: settings that change a rule's outcome or an audit record
SET ROLE sec_rep;
SET crm.converting_lead = '5';                   -- switched off lead matching in blocking rules
SET crm.change_source = 'job';                   -- labelled a person's edits as a job's
SELECT set_config('crm.change_source', 'import', true);
SELECT crm.convert_lead_apply(1);                -- the work behind crm.convert_lead, without it
RESET ROLE;

-- crm's own functions still set them for their own work: an import is logged as one
CREATE TEMP TABLE sec_import (LIKE crm.customer_import INCLUDING ALL);
GRANT ALL ON sec_import TO sec_rep;
INSERT INTO sec_import (line, name, uscc) VALUES (1, '导入客户', crm.uscc_with_check('91330100000170002'));
INSERT INTO crm.role_permission (role_id, action) SELECT id, 'customer.import' FROM crm.role WHERE name = 'Sec sales';
SET ROLE sec_rep;
SELECT * FROM crm.import_customers('sec_import');
SHOW crm.change_source;
RESET ROLE;
SELECT source FROM crm.oplog
 WHERE record_type = 'customer' AND record_ids @> (SELECT id FROM crm.customer WHERE name = '导入客户');
DROP TABLE sec_import;
