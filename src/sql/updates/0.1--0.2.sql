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
-- notification texts are rows now (95_notification_text.sql), lists are their items
DROP FUNCTION crm.notification_lines(text[]);
-- the holding limit is a trigger on every path that gives customers (50_transfer.sql)
DROP FUNCTION crm.check_holding_limit(crm.employee, bigint[]);
-- claims, assignments and releases return what they did
DROP FUNCTION crm.claim_customer(bigint);
DROP FUNCTION crm.assign_customer(bigint, bigint);
DROP FUNCTION crm.release_customer(bigint, text, bigint);
-- a lead converts into a new customer or an existing one (55_convert.sql)
DROP FUNCTION crm.convert_lead(bigint);
DROP FUNCTION crm.convert_lead_apply(bigint);
-- whether a company customer needs its credit code is a setting (40_records.sql)
ALTER TABLE crm.customer DROP CONSTRAINT customer_company_uscc_check;
DROP FUNCTION crm.check_company_uscc(text, text);
ALTER TABLE crm.settings ADD COLUMN uscc_required boolean NOT NULL DEFAULT true;

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

-- (after the check above: the constraint it replaces is one it reads)
-- a lead's expected amount is a number (NaN passed ">= 0"; a deal made from it
-- would be refused, 57_opportunities.sql)
ALTER TABLE crm.lead DROP CONSTRAINT lead_expected_amount_check,
	ADD CONSTRAINT lead_expected_amount_check CHECK (expected_amount >= 0 AND expected_amount <> 'NaN');

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

-- Administrators add dictionaries of their own (38_dictionary.sql): the kinds
-- are rows of crm.dictionary_kind, which the codes reference.
CREATE TABLE crm.dictionary_kind (
	kind     text NOT NULL,
	label    text NOT NULL,
	builtin  boolean NOT NULL DEFAULT false,
	CONSTRAINT dictionary_kind_pkey PRIMARY KEY (kind),
	CONSTRAINT dictionary_kind_kind_check CHECK (octet_length(kind) <= 30 AND kind ~ '^[a-z][a-z0-9_]{0,29}$'),
	CONSTRAINT dictionary_kind_label_check CHECK (crm.check_length(label, 200, 'dictionary_kind.label') AND btrim(label) <> '')
);
INSERT INTO crm.dictionary_kind (kind, label, builtin) VALUES
	('customer_source', '客户来源', true),
	('industry', '行业', true),
	('customer_level', '客户级别', true),
	('follow_up_method', '跟进方式', true),
	('product_category', '产品类别', true),
	('unit', '单位', true),
	('pool_release_reason', '公海释放原因', true);
ALTER TABLE crm.dictionary DROP CONSTRAINT dictionary_kind_check,
	ADD CONSTRAINT dictionary_kind_fkey FOREIGN KEY (kind) REFERENCES crm.dictionary_kind (kind);

-- Contacts get a landline; a follow-up may name the contact spoken to (40_records.sql).
-- (mobiles stored before keep their form, +86 or not, until edited: the duplicate keys
-- were the same digits already)
ALTER TABLE crm.contact ADD COLUMN phone text,
	ADD CONSTRAINT contact_phone_length CHECK (crm.check_length(phone, 40, 'contact.phone'));
ALTER TABLE crm.follow_up ADD COLUMN contact_id bigint,
	ADD CONSTRAINT follow_up_contact_fkey FOREIGN KEY (contact_id) REFERENCES crm.contact (id) ON DELETE SET NULL;
CREATE INDEX follow_up_contact_idx ON crm.follow_up (contact_id, created_at DESC);

-- Duplicate keys of Chinese names (46_chinese_names.sql, 47_chinese_names.sql, which
-- computes the stored keys again): what they were built with besides ICU.
ALTER TABLE crm.key_build ADD COLUMN words_digest text;

-- The duplicate keys are kept by a trigger, crm.keep_dedupe_keys(), that computes
-- them when what they come from changes, not by generated columns computed again
-- on every UPDATE (src/dedupe/keys.c); the values stay.
ALTER TABLE crm.customer ALTER COLUMN name_key DROP EXPRESSION, ALTER COLUMN phone_key DROP EXPRESSION,
	ALTER COLUMN name_pinyin DROP EXPRESSION, ALTER COLUMN name_initials DROP EXPRESSION;
ALTER TABLE crm.lead ALTER COLUMN name_key DROP EXPRESSION, ALTER COLUMN company_key DROP EXPRESSION,
	ALTER COLUMN mobile_key DROP EXPRESSION, ALTER COLUMN email_key DROP EXPRESSION;
ALTER TABLE crm.contact ALTER COLUMN name_key DROP EXPRESSION, ALTER COLUMN mobile_key DROP EXPRESSION,
	ALTER COLUMN email_key DROP EXPRESSION;
