-- Fail closed on every table: a session in crm_user that is no active
-- employee (a login mapped to nobody, a deactivated employee, a pool's row)
-- reads nothing of crm's, the organisation and configuration included, and
-- writes nothing.  Tables with policies of their own already say so; every
-- other table staff may read gets a policy that lets staff (an acting
-- employee, or crm_admin) through, asked once per statement.  Run last, so
-- that no table added later is forgotten.
DO $staff$
DECLARE
	t regclass;
BEGIN
	FOR t IN
		SELECT c.oid FROM pg_catalog.pg_class c
		 WHERE c.relnamespace OPERATOR(pg_catalog.=) 'crm'::regnamespace AND c.relkind OPERATOR(pg_catalog.=) 'r'
		   AND NOT c.relrowsecurity AND pg_catalog.has_any_column_privilege('crm_user', c.oid, 'SELECT')
		 ORDER BY c.oid
	LOOP
		EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
		EXECUTE format('CREATE POLICY staff_only ON %s TO crm_user USING ((SELECT crm.staff_session()))'
		               ' WITH CHECK ((SELECT crm.staff_session()))', t);
	END LOOP;
END
$staff$;

-- Configuration is changed by its administrators only (a statement trigger,
-- crm.require_admin, refuses anyone else), and only they lock its rows: a
-- SELECT ... FOR UPDATE or FOR SHARE, which fires no trigger, passes the UPDATE
-- policies, so without this one any employee could hold the organisation's
-- rows and stall every write that checks them.
DO $admin$
DECLARE
	t record;
BEGIN
	FOR t IN
		SELECT g.tgrelid::regclass AS rel, pg_catalog.split_part(pg_catalog.encode(g.tgargs, 'escape'), '\000', 1) AS action
		  FROM pg_catalog.pg_trigger g
		 WHERE g.tgfoid OPERATOR(pg_catalog.=) 'crm.require_admin()'::regprocedure
		 ORDER BY g.tgrelid
	LOOP
		-- (an update runs this again: the policy it made before goes first)
		IF EXISTS (SELECT FROM pg_catalog.pg_policy y WHERE y.polrelid OPERATOR(pg_catalog.=) t.rel
		                                               AND y.polname OPERATOR(pg_catalog.=) 'admin_only_updates') THEN
			EXECUTE format('DROP POLICY admin_only_updates ON %s', t.rel);
		END IF;
		EXECUTE format('CREATE POLICY admin_only_updates ON %s AS RESTRICTIVE FOR UPDATE TO crm_user USING (crm.may_administer(%L))',
		               t.rel, t.action);
	END LOOP;
END
$admin$;
