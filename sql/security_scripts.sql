-- crm's install and update scripts run as a superuser, with employees already
-- logged in when it is an update: nothing anyone else can create runs in them
-- or is bound by the functions they create (docs/security.md).  Where public is
-- writable (a database upgraded from before PostgreSQL 15, a DBA's grant), an
-- exact-match public.format(text, text, text) was called by crm's DO blocks and
-- bound into crm's functions ahead of pg_catalog.format(text, VARIADIC "any").
SELECT current_database() AS regress_db \gset
CREATE ROLE ss_planter LOGIN;
CREATE DATABASE ss_fresh;
CREATE DATABASE ss_updated;

-- a database at 0.1, before anything is planted
\c ss_updated
CREATE EXTENSION crm VERSION '0.1' CASCADE;

-- the plant, in both: overloads of pg_catalog's functions that note who ran them
\set plant 'GRANT CREATE ON SCHEMA public TO ss_planter; SET ROLE ss_planter; CREATE TABLE public.ss_calls (who text, fn text); GRANT INSERT ON public.ss_calls TO PUBLIC; CREATE FUNCTION public.format(f text, a text) RETURNS text LANGUAGE plpgsql AS $f$ BEGIN INSERT INTO public.ss_calls VALUES (current_user, $$format2$$); RETURN pg_catalog.format(f, a); END $f$; CREATE FUNCTION public.format(f text, a text, b text) RETURNS text LANGUAGE plpgsql AS $f$ BEGIN INSERT INTO public.ss_calls VALUES (current_user, $$format3$$); RETURN pg_catalog.format(f, a, b); END $f$; CREATE FUNCTION public.format(f text, a text, b text, c text) RETURNS text LANGUAGE plpgsql AS $f$ BEGIN INSERT INTO public.ss_calls VALUES (current_user, $$format4$$); RETURN pg_catalog.format(f, a, b, c); END $f$; CREATE FUNCTION public.unnest(a text[]) RETURNS SETOF text LANGUAGE plpgsql AS $f$ BEGIN INSERT INTO public.ss_calls VALUES (current_user, $$unnest$$); RETURN QUERY SELECT pg_catalog.unnest(a); END $f$; RESET ROLE;'
\set check 'SELECT count(*) AS calls FROM public.ss_calls; SELECT p.oid::regprocedure AS crm_function, r.oid::regprocedure AS bound_to FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid JOIN pg_proc r ON r.oid = d.refobjid WHERE d.classid = $$pg_proc$$::regclass AND d.refclassid = $$pg_proc$$::regclass AND p.pronamespace = $$crm$$::regnamespace AND r.pronamespace = $$public$$::regnamespace;'
:plant
ALTER EXTENSION crm UPDATE;
-- none ran, and no function of crm's is bound to one of them
:check

\c ss_fresh
:plant
CREATE EXTENSION crm CASCADE;
:check
-- pg_trgm's operator class is still found where pg_trgm is
SELECT pg_get_indexdef('crm.customer_name_pinyin_idx'::regclass);

-- 0.1 installed after such a plant bound its tables to it (0.1's script searched
-- public): the update refuses to run there, naming what is bound
\c :regress_db
CREATE DATABASE ss_bound;
\c ss_bound
GRANT CREATE ON SCHEMA public TO ss_planter;
SET ROLE ss_planter;
CREATE FUNCTION public.ge(a numeric, b integer) RETURNS boolean LANGUAGE sql AS 'SELECT a OPERATOR(pg_catalog.>=) b';
CREATE OPERATOR public.>= (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.ge);
RESET ROLE;
CREATE EXTENSION crm VERSION '0.1' CASCADE;
ALTER EXTENSION crm UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'crm';

-- and neither runs where someone else owns schema crm, or pg_trgm
\c :regress_db
CREATE DATABASE ss_owned;
\c ss_owned
CREATE SCHEMA crm AUTHORIZATION ss_planter;
CREATE EXTENSION crm CASCADE;
DROP SCHEMA crm;
GRANT CREATE ON DATABASE ss_owned TO ss_planter;	-- pg_trgm is a trusted extension
SET ROLE ss_planter;
CREATE EXTENSION pg_trgm;
RESET ROLE;
CREATE EXTENSION crm;

\c :regress_db
DROP DATABASE ss_fresh;
DROP DATABASE ss_updated;
DROP DATABASE ss_bound;
DROP DATABASE ss_owned;
DROP ROLE ss_planter;
