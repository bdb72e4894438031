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
