-- crm 0.1 to 0.2: what changes in the tables, indexes, constraints and shipped rows
-- of 0.1.  The build appends the pieces added since (NEW_PIECES in the Makefile) and
-- every function, view, trigger, policy, grant and comment of the others
-- (src/sql/replay.pl), so this file holds only what 0.1 created once.

-- The record-type registry (26_record_type.sql) replaces the lists of types the
-- shared tables checked; each check now reads it.
ALTER TABLE crm.team_member DROP CONSTRAINT team_member_record_type_check;
ALTER TABLE crm.follow_up DROP CONSTRAINT follow_up_record_type_check;
ALTER TABLE crm.record_tag DROP CONSTRAINT record_tag_record_type_check;
ALTER TABLE crm.pin DROP CONSTRAINT pin_record_type_check;
ALTER TABLE crm.added_field DROP CONSTRAINT added_field_record_type_check;
ALTER TABLE crm.attachment DROP CONSTRAINT attachment_record_type_check;
ALTER TABLE crm.dedupe_rule DROP CONSTRAINT dedupe_rule_record_type_check;
-- (a data scope of a type crm does not have yet is kept, and applies when the
-- type comes; new ones are refused by crm.role_scope_valid)
ALTER TABLE crm.role_scope DROP CONSTRAINT role_scope_record_type_check;

DROP FUNCTION crm.record_tables();

-- crm 0.1's install script resolved names under a path that held public: where
-- others could create objects there before it ran, its constraints, defaults,
-- views or functions may call theirs (docs/security.md).  This update rebinds
-- every function, view, trigger and policy, but not what tables were created
-- with; it refuses to run on such a database rather than leave it so.
DO $bound$
DECLARE
	found text;
BEGIN
	SELECT pg_catalog.string_agg(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) OPERATOR(pg_catalog.||) ' uses '
	                             OPERATOR(pg_catalog.||) pg_catalog.pg_describe_object(d.refclassid, d.refobjid, 0), '; ')
	  INTO found
	  FROM pg_catalog.pg_depend d
	  JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) CASE d.classid
	           WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN (SELECT c.conrelid FROM pg_catalog.pg_constraint c WHERE c.oid OPERATOR(pg_catalog.=) d.objid)
	           WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN (SELECT a.adrelid FROM pg_catalog.pg_attrdef a WHERE a.oid OPERATOR(pg_catalog.=) d.objid)
	           WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN d.objid END
	 WHERE t.relnamespace OPERATOR(pg_catalog.=) 'crm'::pg_catalog.regnamespace
	   AND d.refclassid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.pg_proc'::pg_catalog.regclass, 'pg_catalog.pg_operator'::pg_catalog.regclass,
	                                              'pg_catalog.pg_type'::pg_catalog.regclass, 'pg_catalog.pg_collation'::pg_catalog.regclass])
	   AND CASE d.refclassid
	           WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN (SELECT p.pronamespace FROM pg_catalog.pg_proc p WHERE p.oid OPERATOR(pg_catalog.=) d.refobjid)
	           WHEN 'pg_catalog.pg_operator'::pg_catalog.regclass THEN (SELECT o.oprnamespace FROM pg_catalog.pg_operator o WHERE o.oid OPERATOR(pg_catalog.=) d.refobjid)
	           WHEN 'pg_catalog.pg_type'::pg_catalog.regclass THEN (SELECT y.typnamespace FROM pg_catalog.pg_type y WHERE y.oid OPERATOR(pg_catalog.=) d.refobjid)
	           ELSE (SELECT l.collnamespace FROM pg_catalog.pg_collation l WHERE l.oid OPERATOR(pg_catalog.=) d.refobjid) END
	       OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog'::pg_catalog.regnamespace, 'crm'::pg_catalog.regnamespace])
	   -- pg_trgm's own objects are crm's to use
	   AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend x JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) x.refobjid
	                    WHERE x.classid OPERATOR(pg_catalog.=) d.refclassid AND x.objid OPERATOR(pg_catalog.=) d.refobjid
	                      AND x.deptype OPERATOR(pg_catalog.=) 'e' AND e.extname OPERATOR(pg_catalog.=) 'pg_trgm');
	IF found IS NOT NULL THEN
		RAISE EXCEPTION 'crm 0.1 here was installed while others could create objects its tables now use: %', found
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'Whoever owns those objects runs code as anyone who writes crm''s tables, crm''s own code included.',
			      HINT = 'Dump the data (pg_dump), drop and recreate the database with public closed, install crm 0.2 and restore (docs/backup.md); drop those objects'' owners'' access.';
	END IF;
END
$bound$;

-- The shared tables' rows carry the scope of the record that decides who sees
-- them (97_record_types.sql sets it on the rows kept here, crm.refresh_record_scopes).
ALTER TABLE crm.team_member ADD COLUMN scope_type text, ADD COLUMN scope_owner bigint, ADD COLUMN scope_id bigint;
ALTER TABLE crm.record_tag ADD COLUMN scope_type text, ADD COLUMN scope_owner bigint, ADD COLUMN scope_id bigint;
ALTER TABLE crm.attachment ADD COLUMN scope_type text, ADD COLUMN scope_owner bigint, ADD COLUMN scope_id bigint;
ALTER TABLE crm.oplog ADD COLUMN scope_type text, ADD COLUMN scope_owner bigint, ADD COLUMN scope_id bigint;
CREATE INDEX team_member_scope_owner_idx ON crm.team_member (scope_type, scope_owner);
CREATE INDEX team_member_scope_id_idx ON crm.team_member (scope_id, scope_type);
CREATE INDEX record_tag_scope_owner_idx ON crm.record_tag (scope_type, scope_owner);
CREATE INDEX record_tag_scope_id_idx ON crm.record_tag (scope_id, scope_type);
CREATE INDEX attachment_scope_owner_idx ON crm.attachment (scope_type, scope_owner);
CREATE INDEX attachment_scope_id_idx ON crm.attachment (scope_id, scope_type);
CREATE INDEX oplog_scope_owner_idx ON crm.oplog (scope_type, scope_owner);
CREATE INDEX oplog_scope_id_idx ON crm.oplog (scope_id, scope_type);
-- (one policy per command now: team_member_add, _change and _remove)
DROP POLICY team_member_write ON crm.team_member;

-- Duplicate keys of Chinese names (46_chinese_names.sql, 47_chinese_names.sql, which
-- computes the stored keys again): what they were built with besides ICU.
ALTER TABLE crm.key_build ADD COLUMN words_digest text;
