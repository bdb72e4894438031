-- crm extension install script, assembled at build time from src/sql/NN_*.sql.
\echo Use "CREATE EXTENSION crm" to load this file. \quit

-- The script resolves names under this path, not the one PostgreSQL gives an
-- extension's script (crm, then pg_trgm's schema: public by default).  Whoever
-- may create objects in public could otherwise put a public.format(text, text,
-- text) ahead of pg_catalog's for a DO block the superuser runs, or for a
-- function body bound when the script creates it.  LOCAL: it ends with the
-- script.
SET LOCAL search_path = crm, pg_catalog, pg_temp;

-- Schema crm comes first in that path, and pg_trgm is crm's to depend on: both
-- must be a superuser's.  A role with CREATE on the database could have made
-- the schema beforehand (PostgreSQL adopts it) and put a crm.format() ahead of
-- pg_catalog's, or installed the trusted pg_trgm and then dropped crm with it.
-- (Every name below is qualified: the path above is not to be trusted yet.)
DO $owners$
DECLARE
	what text;
	who  name;
BEGIN
	SELECT 'schema crm', r.rolname INTO what, who
	  FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
	 WHERE n.nspname OPERATOR(pg_catalog.=) 'crm' AND NOT r.rolsuper;
	IF what IS NULL THEN
		SELECT 'extension pg_trgm', r.rolname INTO what, who
		  FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) e.extowner
		 WHERE e.extname OPERATOR(pg_catalog.=) 'pg_trgm' AND NOT r.rolsuper;
	END IF;
	IF what IS NOT NULL THEN
		RAISE EXCEPTION 'crm cannot be installed or updated: % belongs to role "%", who is no superuser', what, who
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'Its owner could run code as the superuser installing crm, or drop crm with it.',
			      HINT = 'Have a superuser own it (ALTER SCHEMA crm OWNER TO ...; pg_trgm: drop it and create it again as a superuser), then run the statement again.';
	END IF;
END
$owners$;
