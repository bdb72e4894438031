-- Every table and sequence of crm holds data a dump must keep, except
-- crm.permission, crm.notification_event, crm.dedupe_field, crm.org_tree_lock and the
-- record-type registry (crm.record_type, crm.record_capability), whose
-- rows ship with crm, and crm.key_build, which a restore writes anew (src/sql/45_duplicates.sql).  Tables that ship builtin rows were
-- marked with their filter already; mark all the others here, so that no table
-- added later can be forgotten.
DO $dump$
DECLARE
	rel regclass;
BEGIN
	FOR rel IN
		SELECT c.oid FROM pg_catalog.pg_class c
		 WHERE c.relnamespace OPERATOR(pg_catalog.=) 'crm'::regnamespace
		   AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'S'])
		   AND c.relname OPERATOR(pg_catalog.<>) ALL (ARRAY['permission', 'notification_event', 'dedupe_field', 'org_tree_lock', 'key_build', 'record_type', 'record_capability'])
		   AND NOT c.oid OPERATOR(pg_catalog.=) ANY (
		       SELECT unnest(extconfig) FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'crm')
		 ORDER BY c.oid
	LOOP
		PERFORM pg_catalog.pg_extension_config_dump(rel, '');
	END LOOP;
END
$dump$;
