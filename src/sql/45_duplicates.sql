-- Duplicate checks, part one: the keys under which two spellings
-- of the same name, phone or e-mail compare equal (src/dedupe/normalize.c).
CREATE OR REPLACE FUNCTION crm.dedupe_key(kind text, value text) RETURNS text
	AS 'MODULE_PATHNAME', 'crm_dedupe_key_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.dedupe_key(text, text) IS
	'Duplicate key of a value: kind name, company, phone, email, pinyin or initials; NULL when nothing is left';

-- The keys, kept by crm on every path (INSERT, UPDATE, COPY, restore) and
-- never writable by clients (src/dedupe/keys.c says why they are not generated
-- columns).  A customer's name is a company name or a person's, by its kind.
ALTER TABLE crm.customer ADD COLUMN name_key text, ADD COLUMN phone_key text;
COMMENT ON COLUMN crm.customer.phone_key IS 'Duplicate key of phone (digits only); kept by crm; not writable';
ALTER TABLE crm.lead ADD COLUMN name_key text, ADD COLUMN company_key text, ADD COLUMN mobile_key text, ADD COLUMN email_key text;
COMMENT ON COLUMN crm.lead.name_key IS 'Duplicate key of name; kept by crm; not writable';
COMMENT ON COLUMN crm.lead.company_key IS 'Duplicate key of company (normalised with ICU); kept by crm; not writable';
COMMENT ON COLUMN crm.lead.mobile_key IS 'Duplicate key of mobile; kept by crm; not writable';
COMMENT ON COLUMN crm.lead.email_key IS 'Duplicate key of email; kept by crm; not writable';
ALTER TABLE crm.contact ADD COLUMN name_key text, ADD COLUMN mobile_key text, ADD COLUMN email_key text;
COMMENT ON COLUMN crm.contact.name_key IS 'Duplicate key of name (normalised with ICU, crm.dedupe_key); kept by crm; not writable';
COMMENT ON COLUMN crm.contact.mobile_key IS 'Duplicate key of mobile (digits only); kept by crm; not writable';
COMMENT ON COLUMN crm.contact.email_key IS 'Duplicate key of email (lowercased); kept by crm; not writable';
CREATE OR REPLACE FUNCTION crm.keep_dedupe_keys() RETURNS trigger
	AS 'MODULE_PATHNAME', 'crm_keep_dedupe_keys' LANGUAGE C;
COMMENT ON FUNCTION crm.keep_dedupe_keys() IS
	'Trigger: computes a customer''s, lead''s or contact''s duplicate keys on insert and when what they come from changes';
-- (named to fire after the BEFORE triggers that change what the keys come from,
-- such as *_mobile_normal; enabled always: a logical replication subscriber and
-- crm.rebuild_keys() compute the keys with their own ICU)
CREATE OR REPLACE TRIGGER customer_set_dedupe_keys BEFORE INSERT OR UPDATE ON crm.customer
	FOR EACH ROW EXECUTE FUNCTION crm.keep_dedupe_keys();
CREATE OR REPLACE TRIGGER lead_set_dedupe_keys BEFORE INSERT OR UPDATE ON crm.lead
	FOR EACH ROW EXECUTE FUNCTION crm.keep_dedupe_keys();
CREATE OR REPLACE TRIGGER contact_set_dedupe_keys BEFORE INSERT OR UPDATE ON crm.contact
	FOR EACH ROW EXECUTE FUNCTION crm.keep_dedupe_keys();
ALTER TABLE crm.customer ENABLE ALWAYS TRIGGER customer_set_dedupe_keys;
ALTER TABLE crm.lead ENABLE ALWAYS TRIGGER lead_set_dedupe_keys;
ALTER TABLE crm.contact ENABLE ALWAYS TRIGGER contact_set_dedupe_keys;
CREATE INDEX customer_name_key_idx ON crm.customer (name_key);
CREATE INDEX customer_phone_key_idx ON crm.customer (phone_key);
CREATE INDEX customer_uscc_idx ON crm.customer (uscc);
CREATE INDEX lead_name_key_idx ON crm.lead (name_key);
CREATE INDEX lead_company_key_idx ON crm.lead (company_key);
CREATE INDEX lead_mobile_key_idx ON crm.lead (mobile_key);
CREATE INDEX lead_email_key_idx ON crm.lead (email_key);
CREATE INDEX lead_uscc_idx ON crm.lead (uscc);
CREATE INDEX contact_name_key_idx ON crm.contact (name_key);
CREATE INDEX contact_mobile_key_idx ON crm.contact (mobile_key);
CREATE INDEX contact_email_key_idx ON crm.contact (email_key);
COMMENT ON COLUMN crm.customer.name_key IS 'Duplicate key of the name: crm.dedupe_key(''company'' or ''name'', name); kept by crm; not writable';

-- The keys (and the pinyin below) are computed by ICU, whose data changes
-- between versions: after an upgrade, new rows could get keys the old rows,
-- stored and indexed, do not share, and duplicate checks would miss.  crm
-- records the version the stored keys were built with: the row is written here
-- (a restore computes every key anew, with this server's ICU, so the row is not
-- dumped) and by crm.rebuild_keys(); pg_upgrade carries it over with the keys.
-- So it does the regions and phrases a DBA may change (47_chinese_names.sql).
CREATE OR REPLACE FUNCTION crm.icu_version() RETURNS text
	AS 'MODULE_PATHNAME', 'crm_icu_version_sql' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.icu_version() IS 'The ICU version this server computes duplicate keys with';
CREATE TABLE crm.key_build (
	only_row     boolean NOT NULL DEFAULT true,
	icu_version  text NOT NULL,
	built_at     timestamptz NOT NULL DEFAULT now(),
	words_digest text,
	CONSTRAINT key_build_pkey PRIMARY KEY (only_row),
	CONSTRAINT key_build_only_row CHECK (only_row)
);
COMMENT ON TABLE crm.key_build IS 'The ICU version the stored duplicate keys were computed with (crm.key_check(), crm.rebuild_keys())';
COMMENT ON COLUMN crm.key_build.only_row IS 'Always true: one row; kept by crm; not writable';
COMMENT ON COLUMN crm.key_build.icu_version IS 'ICU version the stored duplicate keys were computed with; kept by crm; not writable';
COMMENT ON COLUMN crm.key_build.built_at IS 'When the keys were last computed; kept by crm; not writable';
COMMENT ON COLUMN crm.key_build.words_digest IS 'The regions and pinyin phrases the stored keys were computed with (crm.chinese_words_digest())';
INSERT INTO crm.key_build (icu_version) VALUES (crm.icu_version());

-- Whether the stored keys were built with the ICU this server runs; a WARNING
-- that says what to do when not (the housekeeping job checks every night).
CREATE OR REPLACE FUNCTION crm.key_check() RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	built text;
	words text;
BEGIN
	SELECT k.icu_version, k.words_digest INTO built, words FROM crm.key_build k;
	IF built IS DISTINCT FROM crm.icu_version() THEN
		RAISE WARNING 'duplicate keys were built with ICU %, not with the ICU this server runs', coalesce(crm.clip(built), 'of unknown version')
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('This server runs ICU %s: new names, phones and e-mails may get keys the stored ones do not share, so duplicate checks can miss.', crm.icu_version()),
			      HINT = 'As a superuser, run SELECT crm.rebuild_keys(); (docs/backup.md).';
		RETURN false;
	END IF;
	IF words IS DISTINCT FROM crm.chinese_words_digest() THEN
		RAISE WARNING 'duplicate keys were built with other regions or pinyin phrases than crm.dedupe_region and crm.pinyin_phrase hold now'
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = 'Company names and pinyin written since get keys the stored ones may not share, so duplicate checks can miss.',
			      HINT = 'As a superuser, run SELECT crm.rebuild_keys(); once the tables are as they should be (docs/duplicates.md).';
		RETURN false;
	END IF;
	RETURN true;
END
$$;
COMMENT ON FUNCTION crm.key_check() IS 'Whether the stored duplicate keys were built with the running ICU and the regions and phrases in use; warns when not';

-- Compute every stored key again with the running ICU and the regions and
-- phrases in use, rewriting only the rows whose keys change, without firing
-- crm's other triggers (nothing a user sees changes but the keys), rebuild the
-- indexes of the keyed tables and record what the keys were built with.
CREATE OR REPLACE FUNCTION crm.dedupe_keys_stale(record) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_dedupe_keys_stale' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION crm.dedupe_keys_stale(record) IS
	'Whether a row of crm.customer, crm.lead or crm.contact holds other duplicate keys than it would get now (crm.rebuild_keys())';
CREATE OR REPLACE FUNCTION crm.rebuild_keys() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET session_replication_role = replica AS $$
DECLARE
	t      record;
	n      bigint;
	total  bigint := 0;
BEGIN
	FOR t IN
		SELECT DISTINCT g.tgrelid::regclass AS rel
		  FROM pg_trigger g
		 WHERE g.tgfoid = 'crm.keep_dedupe_keys()'::regprocedure
		 ORDER BY 1
	LOOP
		-- (in replica mode, crm.keep_dedupe_keys() computes the keys of every row
		-- an UPDATE writes, and no other crm trigger fires; every keyed table has a name_key)
		EXECUTE format('UPDATE %s r SET name_key = r.name_key WHERE crm.dedupe_keys_stale(r)', t.rel);
		GET DIAGNOSTICS n = ROW_COUNT;
		total := total + n;
		EXECUTE format('REINDEX TABLE %s', t.rel);
	END LOOP;
	UPDATE crm.key_build SET icu_version = crm.icu_version(), words_digest = crm.chinese_words_digest(), built_at = now();
	RETURN total;
END
$$;
COMMENT ON FUNCTION crm.rebuild_keys() IS 'After an ICU upgrade or a change of regions or pinyin phrases: compute the stored duplicate keys again, reindex, record what they were built with (superuser or DBA)';

-- For the fuzzy search of crm.find_duplicates: a customer's name key in
-- pinyin (trigram-indexed: "hua wei" and 华为 meet as huawei) and its initials.
ALTER TABLE crm.customer ADD COLUMN name_pinyin text, ADD COLUMN name_initials text;
COMMENT ON COLUMN crm.customer.name_pinyin IS 'Name in pinyin, for search and similar names; kept by crm; not writable';
COMMENT ON COLUMN crm.customer.name_initials IS 'Initials of the name''s pinyin, for search; kept by crm; not writable';
-- pg_trgm's operator class, named in whichever schema pg_trgm was installed: the
-- script does not search that schema (00_header.sql)
DO $trgm$
BEGIN
	IF to_regclass('crm.customer_name_pinyin_idx') IS NULL THEN
		EXECUTE format('CREATE INDEX customer_name_pinyin_idx ON crm.customer USING gin (name_pinyin %I.gin_trgm_ops)',
		               (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		                 WHERE e.extname = 'pg_trgm'));
	END IF;
END
$trgm$;
CREATE INDEX customer_name_initials_idx ON crm.customer (name_initials text_pattern_ops);
