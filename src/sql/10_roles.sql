-- Group roles.  Roles are cluster-wide, so a second database with crm reuses them.
--   crm_user           ordinary staff; every employee's login role is a member
--   crm_admin          configuration (organisation, rules); also a crm_user
--   crm_authenticator  granted by the DBA to PostgREST's or PostGraphile's login role
--                      and to nobody else: only its members' JWT claims are trusted
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'crm_user') THEN
		CREATE ROLE crm_user NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'crm_admin') THEN
		CREATE ROLE crm_admin NOLOGIN IN ROLE crm_user;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'crm_authenticator') THEN
		CREATE ROLE crm_authenticator NOLOGIN NOINHERIT;
	END IF;
END
$roles$;

GRANT USAGE ON SCHEMA crm TO crm_user;
