-- Duplicate checks, part one: the keys under which two spellings
-- of the same name, phone or e-mail compare equal (src/normalize.c).
CREATE FUNCTION crm.dedupe_key(kind text, value text) RETURNS text
	AS 'MODULE_PATHNAME', 'crm_dedupe_key_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.dedupe_key(text, text) IS
	'Duplicate key of a value: kind name, company, phone, email, pinyin or initials; NULL when nothing is left';

-- The keys, kept by PostgreSQL itself on every path (INSERT, UPDATE, COPY,
-- restore) and never writable by clients.  A customer's name is a company
-- name or a person's, by its kind.
ALTER TABLE crm.customer
	ADD COLUMN name_key text GENERATED ALWAYS AS
		(crm.dedupe_key(CASE kind WHEN 'company' THEN 'company' ELSE 'name' END, name)) STORED,
	ADD COLUMN phone_key text GENERATED ALWAYS AS (crm.dedupe_key('phone', phone)) STORED;
ALTER TABLE crm.lead
	ADD COLUMN name_key text GENERATED ALWAYS AS (crm.dedupe_key('name', name)) STORED,
	ADD COLUMN company_key text GENERATED ALWAYS AS (crm.dedupe_key('company', company)) STORED,
	ADD COLUMN mobile_key text GENERATED ALWAYS AS (crm.dedupe_key('phone', mobile)) STORED,
	ADD COLUMN email_key text GENERATED ALWAYS AS (crm.dedupe_key('email', email)) STORED;
ALTER TABLE crm.contact
	ADD COLUMN name_key text GENERATED ALWAYS AS (crm.dedupe_key('name', name)) STORED,
	ADD COLUMN mobile_key text GENERATED ALWAYS AS (crm.dedupe_key('phone', mobile)) STORED,
	ADD COLUMN email_key text GENERATED ALWAYS AS (crm.dedupe_key('email', email)) STORED;
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
COMMENT ON COLUMN crm.customer.name_key IS 'Duplicate key of the name: crm.dedupe_key(''company'' or ''name'', name)';

-- For the fuzzy search of crm.find_duplicates: a customer's name key in
-- pinyin (trigram-indexed: "hua wei" and 华为 meet as huawei) and its initials.
ALTER TABLE crm.customer
	ADD COLUMN name_pinyin text GENERATED ALWAYS AS (crm.dedupe_key('pinyin',
		crm.dedupe_key(CASE kind WHEN 'company' THEN 'company' ELSE 'name' END, name))) STORED,
	ADD COLUMN name_initials text GENERATED ALWAYS AS (crm.dedupe_key('initials',
		crm.dedupe_key(CASE kind WHEN 'company' THEN 'company' ELSE 'name' END, name))) STORED;
CREATE INDEX customer_name_pinyin_idx ON crm.customer USING gin (name_pinyin gin_trgm_ops);
CREATE INDEX customer_name_initials_idx ON crm.customer (name_initials text_pattern_ops);
