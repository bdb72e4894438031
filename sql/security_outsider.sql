-- crm leaves alone every statement that does not touch it, whoever runs it: a role with
-- no grants at all (a monitoring or backup role) and a NOINHERIT authenticator, which
-- may not use schema crm until it switches role.  Each starts a fresh session, whose
-- first plan is where crm's planner hook finds its functions.
SELECT current_user AS regress_superuser \gset
CREATE ROLE regress_outsider LOGIN;
CREATE ROLE regress_gateway LOGIN NOINHERIT IN ROLE crm_authenticator;

\c - regress_outsider
SELECT 1 AS one;
SELECT has_schema_privilege('crm', 'USAGE') AS may_use_crm;
CREATE TEMP TABLE probe (x int, label text);
INSERT INTO probe SELECT g, 'row ' || g FROM generate_series(1, 5) g;
SELECT count(*) FILTER (WHERE x = ANY (ARRAY[1, 3])) AS matched, max(label) FROM probe;
PREPARE probe_by (int) AS SELECT label FROM probe WHERE x = $1;
EXECUTE probe_by(2);
UPDATE probe SET label = upper(label) WHERE x IN (SELECT x FROM probe WHERE x > 4) RETURNING *;
DO $$ BEGIN PERFORM count(*) FROM probe; END $$;
EXPLAIN (COSTS OFF) SELECT * FROM probe WHERE x = 1;
-- what a monitoring tool or a schema introspection reads
SELECT count(*) > 0 AS sees_sessions FROM pg_stat_activity;
SELECT count(*) > 0 AS sees_crm_catalog FROM pg_class WHERE relnamespace = 'crm'::regnamespace;
-- touching crm is refused by PostgreSQL's own privileges, and the session goes on
SELECT count(*) FROM crm.customer;
SELECT 2 AS still_fine;

-- an org change makes every session look its functions up again
\c - :regress_superuser
INSERT INTO crm.department (name) VALUES ('Outsider test');
SET ROLE regress_outsider;
SELECT 3 AS after_org_change;
RESET ROLE;

\c - regress_gateway
SELECT 1 AS one;
SELECT count(*) > 0 AS sees_crm_functions FROM pg_proc WHERE pronamespace = 'crm'::regnamespace;
SELECT count(*) FROM crm.customer;   -- NOINHERIT: crm_user's rights only after SET ROLE
\c - :regress_superuser
