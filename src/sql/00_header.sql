-- crm extension install script, assembled at build time from src/sql/NN_*.sql.
\echo Use "CREATE EXTENSION crm" to load this file. \quit

-- The script resolves names under this path, not the one PostgreSQL gives an
-- extension's script (crm, then pg_trgm's schema: public by default).  Whoever
-- may create objects in public could otherwise put a public.format(text, text,
-- text) ahead of pg_catalog's for a DO block the superuser runs, or for a
-- function body bound when the script creates it.  LOCAL: it ends with the
-- script.
SET LOCAL search_path = crm, pg_catalog, pg_temp;
