-- Business records: leads, customers, contacts, follow-ups.
--
-- owner_id and created_by of leads, customers and contacts are checked by
-- crm.check_write() against the cached organisation instead of by foreign keys
-- (a query per row): employees are never deleted, so a reference stays right.
--
-- Who sees a lead or customer: its owner is in the acting employee's scope
-- for the record type, or a current team entry shares it.  Writing also needs
-- the action permission, checked with a precise error by crm.check_write().
-- Sessions that resolve to no employee see nothing (fail closed).

CREATE TABLE crm.lead (
	id               bigint GENERATED ALWAYS AS IDENTITY,
	name             text NOT NULL,
	company          text,
	uscc             text,
	mobile           text,
	email            text,
	source           text,
	industry         text,
	requirement      text,
	expected_amount  numeric(14, 2),
	owner_id         bigint NOT NULL DEFAULT crm.current_employee_id(),
	status           text NOT NULL DEFAULT 'new',
	customer_id      bigint,
	converted_at     timestamptz,
	created_by       bigint,
	created_at       timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT lead_pkey PRIMARY KEY (id),
	CONSTRAINT lead_name_check CHECK (crm.check_length(name, 200, 'lead.name') AND btrim(name) <> ''),
	CONSTRAINT lead_company_length CHECK (crm.check_length(company, 200, 'lead.company')),
	CONSTRAINT lead_requirement_length CHECK (crm.check_length(requirement, 20000, 'lead.requirement')),
	CONSTRAINT lead_status_check CHECK (status IN ('new', 'following', 'converted', 'invalid')),
	CONSTRAINT lead_converted_check CHECK ((status = 'converted') = (customer_id IS NOT NULL AND converted_at IS NOT NULL)),
	CONSTRAINT lead_uscc_check CHECK (crm.check_uscc(uscc)),
	CONSTRAINT lead_mobile_check CHECK (crm.check_mobile(mobile)),
	CONSTRAINT lead_email_check CHECK (crm.check_email(email)),
	CONSTRAINT lead_expected_amount_check CHECK (expected_amount >= 0 AND expected_amount <> 'NaN')
);
COMMENT ON COLUMN crm.lead.customer_id IS 'The customer the lead was converted into (crm.convert_lead); a converted lead is read-only';
COMMENT ON COLUMN crm.lead.requirement IS 'What the lead needs; with expected_amount, the start of an opportunity';
COMMENT ON TABLE crm.lead IS 'Leads (线索): prospects not yet customers; converted into a customer with crm.convert_lead';
COMMENT ON COLUMN crm.lead.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.lead.name IS 'Name of the person; at most 200 characters';
COMMENT ON COLUMN crm.lead.company IS 'Company name; at most 200 characters';
COMMENT ON COLUMN crm.lead.uscc IS 'Unified social credit code (统一社会信用代码) of the company, check digit verified';
COMMENT ON COLUMN crm.lead.mobile IS 'Mobile number, stored as its 11 digits however it was written (+86 139-1234-5678)';
COMMENT ON COLUMN crm.lead.email IS 'E-mail address (checked)';
COMMENT ON COLUMN crm.lead.source IS 'Code of dictionary customer_source (crm.dictionary)';
COMMENT ON COLUMN crm.lead.industry IS 'Code of dictionary industry (crm.dictionary)';
COMMENT ON COLUMN crm.lead.expected_amount IS 'Expected deal size in yuan; not negative';
COMMENT ON COLUMN crm.lead.owner_id IS 'Owning employee (crm.employee.id); defaults to the acting employee';
COMMENT ON COLUMN crm.lead.status IS 'new, following, converted (set by crm.convert_lead, with customer_id and converted_at) or invalid';
COMMENT ON COLUMN crm.lead.converted_at IS 'When the lead was converted; set by crm.convert_lead';
COMMENT ON COLUMN crm.lead.created_by IS 'Employee (crm.employee.id) who created the lead; kept by crm; not writable';
COMMENT ON COLUMN crm.lead.created_at IS 'When the lead was created; kept by crm; not writable';
COMMENT ON COLUMN crm.lead.updated_at IS 'When the lead last changed; kept by crm; not writable';

CREATE TABLE crm.customer (
	id                bigint GENERATED ALWAYS AS IDENTITY,
	name              text NOT NULL,
	kind              text NOT NULL DEFAULT 'company',
	uscc              text,
	phone             text,
	industry          text,
	source            text,
	level             text,
	status_id         bigint NOT NULL DEFAULT crm.initial_customer_status(),
	owner_id          bigint NOT NULL DEFAULT crm.current_employee_id(),
	locked            boolean NOT NULL DEFAULT false,
	last_follow_up_at timestamptz,
	created_by        bigint,
	created_at        timestamptz NOT NULL DEFAULT now(),
	updated_at        timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT customer_pkey PRIMARY KEY (id),
	CONSTRAINT customer_name_check CHECK (crm.check_length(name, 200, 'customer.name') AND btrim(name) <> ''),
	CONSTRAINT customer_phone_length CHECK (crm.check_length(phone, 40, 'customer.phone')),
	CONSTRAINT customer_kind_check CHECK (kind IN ('company', 'individual')),
	-- seed 001: a company is identified by its unified social credit code
	CONSTRAINT customer_uscc_check CHECK (crm.check_uscc(uscc))
);
COMMENT ON COLUMN crm.customer.uscc IS 'Unified social credit code (统一社会信用代码); check digit verified; required for companies while crm.settings.uscc_required';
COMMENT ON COLUMN crm.customer.status_id IS 'Follow-up status (crm.customer_status); moves only forward unless crm.settings.status_reversible';
COMMENT ON COLUMN crm.customer.locked IS 'Locked customers are never recycled to a pool';
COMMENT ON TABLE crm.customer IS 'Customers (客户): companies and individuals, each owned by an employee or a public pool';
COMMENT ON COLUMN crm.customer.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.customer.name IS 'Company or person name; at most 200 characters';
COMMENT ON COLUMN crm.customer.kind IS 'company (企业, needs a uscc) or individual (个人)';
COMMENT ON COLUMN crm.customer.phone IS 'Switchboard or main phone number; at most 40 characters';
COMMENT ON COLUMN crm.customer.industry IS 'Code of dictionary industry (crm.dictionary)';
COMMENT ON COLUMN crm.customer.source IS 'Code of dictionary customer_source (crm.dictionary): how the customer came';
COMMENT ON COLUMN crm.customer.level IS 'Code of dictionary customer_level (crm.dictionary), e.g. a to d';
COMMENT ON COLUMN crm.customer.owner_id IS 'Owning employee (crm.employee.id), or the pool holding the customer; defaults to the acting employee';
COMMENT ON COLUMN crm.customer.last_follow_up_at IS 'Time of the latest follow-up on the customer; kept by crm; not writable';
COMMENT ON COLUMN crm.customer.created_by IS 'Employee (crm.employee.id) who created the customer; kept by crm; not writable';
COMMENT ON COLUMN crm.customer.created_at IS 'When the customer was created; kept by crm; not writable';
COMMENT ON COLUMN crm.customer.updated_at IS 'When the customer last changed; kept by crm; not writable';

-- Checked at commit: a delete of the customer is refused at the end of its
-- statement by crm.record_deleted(), which names the customer and gives the
-- hint below (src/sql/96_record_links.sql).
ALTER TABLE crm.lead ADD CONSTRAINT lead_customer_fkey FOREIGN KEY (customer_id) REFERENCES crm.customer (id)
	DEFERRABLE INITIALLY DEFERRED;
COMMENT ON CONSTRAINT lead_customer_fkey ON crm.lead IS
	'A converted lead keeps the customer it became: merge the customer into another (crm.merge_customers) instead of deleting it.';
-- deleting or merging a customer looks up the leads converted into it
CREATE INDEX lead_customer_idx ON crm.lead (customer_id);

-- Contacts (联系人): many per customer; visible with their customer.
CREATE TABLE crm.contact (
	id                 bigint GENERATED ALWAYS AS IDENTITY,
	customer_id        bigint NOT NULL,
	name               text NOT NULL,
	mobile             text,
	phone              text,
	email              text,
	title              text,
	is_decision_maker  boolean NOT NULL DEFAULT false,
	owner_id           bigint NOT NULL DEFAULT crm.current_employee_id(),
	created_by         bigint,
	created_at         timestamptz NOT NULL DEFAULT now(),
	updated_at         timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT contact_pkey PRIMARY KEY (id),
	CONSTRAINT contact_customer_fkey FOREIGN KEY (customer_id) REFERENCES crm.customer (id) ON DELETE CASCADE,
	CONSTRAINT contact_name_check CHECK (crm.check_length(name, 200, 'contact.name') AND btrim(name) <> ''),
	CONSTRAINT contact_title_length CHECK (crm.check_length(title, 200, 'contact.title')),
	CONSTRAINT contact_phone_length CHECK (crm.check_length(phone, 40, 'contact.phone')),
	CONSTRAINT contact_mobile_check CHECK (crm.check_mobile(mobile)),
	CONSTRAINT contact_email_check CHECK (crm.check_email(email))
);
COMMENT ON COLUMN crm.contact.is_decision_maker IS 'Key decision maker (关键决策人)';
COMMENT ON TABLE crm.contact IS 'Contacts (联系人) of customers; visible and writable with their customer';
COMMENT ON COLUMN crm.contact.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.contact.customer_id IS 'The customer (crm.customer.id) the contact belongs to; deleting the customer deletes its contacts';
COMMENT ON COLUMN crm.contact.name IS 'Full name; at most 200 characters';
COMMENT ON COLUMN crm.contact.mobile IS 'Mobile number, stored as its 11 digits however it was written (+86 139-1234-5678)';
COMMENT ON COLUMN crm.contact.email IS 'E-mail address (checked)';
COMMENT ON COLUMN crm.contact.title IS 'Job title; at most 200 characters';
COMMENT ON COLUMN crm.contact.owner_id IS 'Owning employee (crm.employee.id); defaults to the acting employee';
COMMENT ON COLUMN crm.contact.created_by IS 'Employee (crm.employee.id) who created the contact; kept by crm; not writable';
COMMENT ON COLUMN crm.contact.created_at IS 'When the contact was created; kept by crm; not writable';
COMMENT ON COLUMN crm.contact.updated_at IS 'When the contact last changed; kept by crm; not writable';
COMMENT ON COLUMN crm.contact.phone IS 'Landline (座机), as written: 0571-88886666 ext. 8 (a mobile goes in mobile)';

CREATE TABLE crm.follow_up (
	id               bigint GENERATED ALWAYS AS IDENTITY,
	record_type      text NOT NULL,
	record_id        bigint NOT NULL,
	contact_id       bigint,
	method           text NOT NULL DEFAULT 'phone',
	content          text NOT NULL,
	next_contact_at  timestamptz,
	created_by       bigint,
	created_at       timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT follow_up_pkey PRIMARY KEY (id),
	CONSTRAINT follow_up_created_by_fkey FOREIGN KEY (created_by) REFERENCES crm.employee (id),
	CONSTRAINT follow_up_contact_fkey FOREIGN KEY (contact_id) REFERENCES crm.contact (id) ON DELETE SET NULL,
	CONSTRAINT follow_up_content_check CHECK (crm.check_length(content, 20000, 'follow_up.content') AND btrim(content) <> '')
);
COMMENT ON COLUMN crm.follow_up.created_at IS 'When the follow-up happened; defaults to now(), may be given for imported history';
COMMENT ON TABLE crm.follow_up IS 'Follow-ups (跟进记录) on leads and customers; visible with their record, written by their author';
COMMENT ON COLUMN crm.follow_up.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.follow_up.record_type IS 'Type of the record followed up (lead or customer)';
COMMENT ON COLUMN crm.follow_up.record_id IS 'Id of the record followed up';
COMMENT ON COLUMN crm.follow_up.method IS 'Code of dictionary follow_up_method (crm.dictionary): phone, email, visit, sms, im, other';
COMMENT ON COLUMN crm.follow_up.content IS 'What was said or done; at most 20,000 characters';
COMMENT ON COLUMN crm.follow_up.next_contact_at IS 'When to contact again, if planned';
COMMENT ON COLUMN crm.follow_up.created_by IS 'Author (crm.employee.id); kept by crm; not writable';
COMMENT ON COLUMN crm.follow_up.updated_at IS 'When the follow-up last changed; kept by crm; not writable';
COMMENT ON COLUMN crm.follow_up.contact_id IS 'The contact spoken to, one of the customer''s (seed 003: a contact''s follow-ups); the follow-up is the customer''s, seen with it';

-- Scope columns lead the indexes: RLS filters on them first.
CREATE INDEX lead_owner_idx ON crm.lead (owner_id, updated_at DESC);
CREATE INDEX customer_owner_idx ON crm.customer (owner_id, updated_at DESC);
CREATE INDEX customer_updated_idx ON crm.customer (updated_at DESC);
CREATE INDEX follow_up_record_idx ON crm.follow_up (record_type, record_id, created_at DESC);
CREATE INDEX follow_up_created_by_idx ON crm.follow_up (created_by, created_at DESC);
CREATE INDEX follow_up_contact_idx ON crm.follow_up (contact_id, created_at DESC);
CREATE INDEX contact_customer_idx ON crm.contact (customer_id);
CREATE INDEX contact_owner_idx ON crm.contact (owner_id);
CREATE INDEX customer_status_idx ON crm.customer (status_id);

-- The stamps, write checks, dictionary checks and (for leads and customers) the
-- policies of the data scopes come with each type's registration
-- (97_record_types.sql).

-- A converted lead keeps its link to the customer and is read-only; the link
-- alone may follow the customer into another (crm.merge_customers).  (Its
-- duplicate keys are as they were here: crm computes them in a later trigger.)
CREATE OR REPLACE FUNCTION crm.refuse_converted_lead() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	same text[];
BEGIN
	IF TG_RELID <> 'crm.lead'::regclass THEN RAISE 'crm.refuse_converted_lead() runs only on crm.lead, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF TG_OP = 'UPDATE' THEN
		same := ARRAY['customer_id', 'updated_at'];
		-- (and the codes crm.replace_dictionary_code moves, as the system)
		IF current_setting('crm.change_source') = 'system' THEN
			same := same || ARRAY(SELECT c.column_name FROM crm.dictionary_column c WHERE c.table_name = 'lead');
		END IF;
		IF to_jsonb(OLD) - same = to_jsonb(NEW) - same THEN
			RETURN NEW;
		END IF;
	END IF;
	RAISE EXCEPTION 'lead % (%) was converted into customer % and is read-only', OLD.id, crm.clip(OLD.name), OLD.customer_id
		USING ERRCODE = 'object_not_in_prerequisite_state',
		      HINT = format('Work on customer %s instead.', OLD.customer_id);
END
$$;
CREATE OR REPLACE TRIGGER lead_converted_read_only BEFORE UPDATE ON crm.lead
	FOR EACH ROW WHEN (OLD.status = 'converted') EXECUTE FUNCTION crm.refuse_converted_lead();
CREATE OR REPLACE TRIGGER lead_converted_kept BEFORE DELETE ON crm.lead
	FOR EACH ROW WHEN (OLD.status = 'converted') EXECUTE FUNCTION crm.refuse_converted_lead();
-- the columns these triggers check (crm.dictionary_column, src/sql/38_dictionary.sql)
-- crm's first record types (crm.record_type; installed by 97_record_types.sql)
SELECT crm.register_record_type('customer', 'crm.customer', '客户', 'Customer', 'owner',
	'{team, follow_ups, tags, pins, attachments, custom_fields, dictionaries, oplog, timeline, transfer, handover, merge, export, import, duplicates, notifications, search}',
	'records.md', title => 'r.name', search_columns => '{name, phone, uscc}');
SELECT crm.register_record_type('lead', 'crm.lead', '线索', 'Lead', 'owner',
	'{team, follow_ups, tags, pins, attachments, custom_fields, dictionaries, oplog, timeline, transfer, handover, duplicates, notifications, search}',
	'records.md', title => 'concat_ws('' · '', r.name, r.company)', search_columns => '{name, company, mobile, uscc}');
SELECT crm.register_record_type('contact', 'crm.contact', '联系人', 'Contact', 'parent',
	'{tags, pins, attachments, custom_fields, dictionaries, oplog, timeline, duplicates, notifications, search}',
	'records.md', parent => 'customer', parent_column => 'customer_id',
	title => 'concat_ws('' · '', r.name, r.mobile)', search_columns => '{name, mobile, email}');
SELECT crm.register_record_type('follow_up', 'crm.follow_up', '跟进记录', 'Follow-up', 'record',
	'{attachments, custom_fields, dictionaries, oplog, timeline}', 'records.md');

-- The duplicate keys these tables get (45_duplicates.sql) and what they come
-- from: crm's own columns, which a dictionary does not check (38_dictionary.sql).
CREATE OR REPLACE FUNCTION crm.dedupe_key_columns(OUT table_name text, OUT key_column text, OUT sources text[])
	RETURNS SETOF record AS 'MODULE_PATHNAME', 'crm_dedupe_key_columns' LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 11;
COMMENT ON FUNCTION crm.dedupe_key_columns() IS
	'The duplicate key columns crm keeps in crm.customer, crm.lead and crm.contact, and the columns each is computed from';

INSERT INTO crm.dictionary_column (table_name, column_name, kind, builtin) VALUES
	('customer', 'source', 'customer_source', true),
	('customer', 'industry', 'industry', true),
	('customer', 'level', 'customer_level', true),
	('lead', 'source', 'customer_source', true),
	('lead', 'industry', 'industry', true),
	('follow_up', 'method', 'follow_up_method', true);

-- A customer's status moves forward only, unless crm.settings.status_reversible.
CREATE OR REPLACE FUNCTION crm.check_status_move() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	old_status crm.customer_status;
	new_status crm.customer_status;
BEGIN
	IF TG_RELID <> 'crm.customer'::regclass THEN RAISE 'crm.check_status_move() runs only on crm.customer, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	SELECT * INTO old_status FROM crm.customer_status WHERE id = OLD.status_id;
	SELECT * INTO new_status FROM crm.customer_status WHERE id = NEW.status_id;
	IF new_status.position < old_status.position
	   AND NOT (SELECT status_reversible FROM crm.settings) THEN
		RAISE EXCEPTION 'customer % (%) cannot move back from status "%" to "%"',
			NEW.id, crm.clip(NEW.name), crm.clip(old_status.name), crm.clip(new_status.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = 'Follow-up statuses only move forward.',
			      HINT = 'An administrator can allow it: UPDATE crm.settings SET status_reversible = true.';
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER customer_status_move BEFORE UPDATE OF status_id ON crm.customer
	FOR EACH ROW WHEN (OLD.status_id IS DISTINCT FROM NEW.status_id) EXECUTE FUNCTION crm.check_status_move();

-- Seed 001's form requires a company's unified social credit code; many teams
-- only have it at signing: a setting, on by default.  The trigger runs only
-- for a company row without one.
ALTER TABLE crm.settings ADD COLUMN uscc_required boolean NOT NULL DEFAULT true;
COMMENT ON COLUMN crm.settings.uscc_required IS
	'Whether a company customer needs its unified social credit code (seed 001); off: it can wait until signing';
GRANT UPDATE (uscc_required) ON crm.settings TO crm_user;
CREATE OR REPLACE FUNCTION crm.require_company_uscc() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.customer'::regclass THEN RAISE 'crm.require_company_uscc() runs only on crm.customer, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF (SELECT s.uscc_required FROM crm.settings s) AND NOT crm.restoring() THEN
		RAISE EXCEPTION 'company customer "%" needs its unified social credit code', crm.clip(NEW.name)
			USING ERRCODE = 'check_violation',
			      DETAIL = 'Company customers are identified by their 统一社会信用代码 (uscc); crm.settings.uscc_required is on.',
			      HINT = 'Give uscc, or record a person with kind ''individual''; an administrator can let it wait until signing: UPDATE crm.settings SET uscc_required = false.';
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER customer_company_uscc BEFORE INSERT OR UPDATE OF kind, uscc ON crm.customer
	FOR EACH ROW WHEN (NEW.kind = 'company' AND NEW.uscc IS NULL) EXECUTE FUNCTION crm.require_company_uscc();

-- seed 001: an individual customer needs a contact with a mobile number, checked
-- when the transaction commits so that both can be written in either order.
CREATE OR REPLACE FUNCTION crm.check_individual_contact() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	target   bigint;
	customer text;
BEGIN
	IF TG_RELID <> ALL ('{crm.contact,crm.customer}'::regclass[]) THEN RAISE 'crm.check_individual_contact() runs only on crm.contact, crm.customer, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- (branches: plpgsql resolves NEW and OLD fields only where it runs them)
	IF TG_TABLE_NAME = 'customer' THEN
		target := NEW.id;
	ELSIF TG_OP = 'DELETE' THEN
		target := OLD.customer_id;
	ELSE
		target := NEW.customer_id;
	END IF;
	SELECT c.name INTO customer FROM crm.customer c
	 WHERE c.id = target AND c.kind = 'individual'
	   AND NOT EXISTS (SELECT FROM crm.contact k WHERE k.customer_id = c.id AND k.mobile IS NOT NULL);
	IF FOUND THEN
		RAISE EXCEPTION 'individual customer % (%) has no contact with a mobile number', target, crm.clip(customer)
			USING ERRCODE = 'check_violation',
			      DETAIL = 'An individual customer is reached through a contact''s mobile number.',
			      HINT = 'Insert a crm.contact row with a mobile number for this customer in the same transaction.';
	END IF;
	RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER customer_individual_contact AFTER INSERT OR UPDATE OF kind ON crm.customer
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.kind = 'individual')
	EXECUTE FUNCTION crm.check_individual_contact();
CREATE CONSTRAINT TRIGGER contact_individual_contact AFTER UPDATE OF mobile, customer_id OR DELETE ON crm.contact
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION crm.check_individual_contact();

-- Mobiles are taken as people write them (+86 139-1234-5678, 139 1234 5678,
-- 0086 13912345678) and stored as the 11 digits: the digits the duplicate
-- keys keep (crm.dedupe_key), when they are a mobile and the value held
-- nothing but digits, spaces, dashes, dots, brackets and a leading +.
-- Anything else stays as written, for crm.check_mobile to refuse.
-- (PL/pgSQL: crm.dedupe_key comes with 45_duplicates.sql)
CREATE OR REPLACE FUNCTION crm.normal_mobile(mobile text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	digits text;
BEGIN
	IF octet_length(mobile) <= 40 AND mobile ~ '^[[:space:]]*\+?[0-9][0-9[:space:]().-]*$' THEN
		digits := crm.dedupe_key('phone', mobile);
		IF crm.mobile_valid(digits) THEN
			RETURN digits;
		END IF;
	END IF;
	RETURN mobile;
END
$$;
COMMENT ON FUNCTION crm.normal_mobile(text) IS
	'A mobile as crm stores it: 11 digits, without +86, spaces or dashes (the value as given when it is no mobile)';
CREATE OR REPLACE FUNCTION crm.normalize_mobile() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> ALL ('{crm.contact,crm.lead}'::regclass[]) THEN RAISE 'crm.normalize_mobile() runs only on crm.contact, crm.lead, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	NEW.mobile := crm.normal_mobile(NEW.mobile);
	RETURN NEW;
END
$$;
-- (not for 11 bytes, the length of every mobile it stores: such a value has no
-- room for a separator, and stays as written; a regular expression here took
-- 2 to 3 us a row, some 8 % of a bulk insert of contacts, the length 0.4 us)
CREATE OR REPLACE TRIGGER contact_mobile_normal BEFORE INSERT OR UPDATE OF mobile ON crm.contact
	FOR EACH ROW WHEN (octet_length(NEW.mobile) <> 11) EXECUTE FUNCTION crm.normalize_mobile();
CREATE OR REPLACE TRIGGER lead_mobile_normal BEFORE INSERT OR UPDATE OF mobile ON crm.lead
	FOR EACH ROW WHEN (octet_length(NEW.mobile) <> 11) EXECUTE FUNCTION crm.normalize_mobile();

-- A follow-up written on a contact is its customer's: seen by whoever sees the
-- customer, on the customer's timeline, keeping its last_follow_up_at.  Given
-- the contact alone, it is about the contact's customer; given a record too,
-- the contact must be that customer's (when written: a contact moved to
-- another customer later leaves its talks with the first one there).  Runs as
-- the writer: a contact they cannot see is one that does not exist.
CREATE OR REPLACE FUNCTION crm.follow_up_contact() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	customer_id bigint;
BEGIN
	IF TG_RELID <> 'crm.follow_up'::regclass THEN RAISE 'crm.follow_up_contact() runs only on crm.follow_up, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	SELECT c.customer_id INTO customer_id FROM crm.contact c WHERE c.id = NEW.contact_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'follow-up names contact %, which does not exist', NEW.contact_id
			USING ERRCODE = 'foreign_key_violation',
			      HINT = 'Name a contact of a customer you see: SELECT id, name FROM crm.contact.';
	ELSIF TG_OP = 'INSERT' AND NEW.record_type IS NULL AND NEW.record_id IS NULL THEN
		NEW.record_type := 'customer';
		NEW.record_id := customer_id;
	ELSIF NEW.record_type IS DISTINCT FROM 'customer' OR NEW.record_id IS DISTINCT FROM customer_id THEN
		RAISE EXCEPTION 'a follow-up about % % cannot name contact %, a contact of customer %',
			coalesce(NEW.record_type, 'no record'), coalesce(NEW.record_id::text, ''), NEW.contact_id, customer_id
			USING ERRCODE = 'check_violation',
			      HINT = format('A follow-up on a contact is its customer''s: give record_type ''customer'' and record_id %s, or the contact alone.', customer_id);
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER follow_up_contact BEFORE INSERT OR UPDATE OF contact_id, record_type, record_id ON crm.follow_up
	FOR EACH ROW WHEN (NEW.contact_id IS NOT NULL) EXECUTE FUNCTION crm.follow_up_contact();

-- Follow-ups keep their customer's last_follow_up_at, set-based per statement.
CREATE OR REPLACE FUNCTION crm.touch_last_follow_up() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.follow_up'::regclass THEN RAISE 'crm.touch_last_follow_up() runs only on crm.follow_up, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	UPDATE crm.customer c SET last_follow_up_at = f.last
	  FROM (SELECT record_id, max(created_at) AS last FROM new_follow_ups
	         WHERE record_type = 'customer' GROUP BY record_id) f
	 WHERE c.id = f.record_id AND (c.last_follow_up_at IS NULL OR c.last_follow_up_at < f.last);
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER follow_up_touches_customer AFTER INSERT ON crm.follow_up
	REFERENCING NEW TABLE AS new_follow_ups
	FOR EACH STATEMENT EXECUTE FUNCTION crm.touch_last_follow_up();

ALTER TABLE crm.lead ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.customer ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.follow_up ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.contact ENABLE ROW LEVEL SECURITY;

-- The policies of owned records (leads, customers) come with their registration
-- (crm.register_record_type).  The scope arms are written so that the planner
-- can turn each into an index condition (see src/access/scope.c); UPDATE may move the
-- owner out of scope, which crm.check_write() allows only with the transfer
-- permission.

-- A follow-up is visible to its author and to whoever may see its record, and
-- written by its author about a record they see: follow_up_read and
-- follow_up_write come with the record types (97_record_types.sql).
-- (moved to another record, a follow-up must be one its author may add there)
CREATE OR REPLACE TRIGGER follow_up_reach BEFORE INSERT OR UPDATE OF record_type, record_id ON crm.follow_up
	FOR EACH ROW EXECUTE FUNCTION crm.check_record_reach('visible', 'write a follow-up on');
CREATE POLICY follow_up_edit ON crm.follow_up FOR UPDATE TO crm_user
	USING (created_by = (SELECT crm.current_employee_id()))
	WITH CHECK (created_by = (SELECT crm.current_employee_id()) AND crm.record_visible(record_type, record_id));
CREATE POLICY follow_up_delete ON crm.follow_up FOR DELETE TO crm_user
	USING (created_by = (SELECT crm.current_employee_id()));

-- Contacts follow their customer (crm.record_type visibility parent): their
-- policies come with the install of the type (97_record_types.sql).

-- Ids, created_by, the stamps, last_follow_up_at and the keys are crm's alone;
-- a follow-up's time may be given when it is written (history, never the
-- future: crm.stamp_record), not changed.  Custom fields grant their own
-- columns (src/sql/70_fields.sql).
GRANT SELECT, DELETE ON crm.lead, crm.customer, crm.contact, crm.follow_up TO crm_user;
GRANT INSERT (name, company, uscc, mobile, email, source, industry, requirement, expected_amount, owner_id, status,
              customer_id, converted_at),
      UPDATE (name, company, uscc, mobile, email, source, industry, requirement, expected_amount, owner_id, status,
              customer_id, converted_at)
	ON crm.lead TO crm_user;
GRANT INSERT (name, kind, uscc, phone, industry, source, level, status_id, owner_id, locked),
      UPDATE (name, kind, uscc, phone, industry, source, level, status_id, owner_id, locked)
	ON crm.customer TO crm_user;
GRANT INSERT (customer_id, name, mobile, email, title, is_decision_maker, owner_id),
      UPDATE (customer_id, name, mobile, email, title, is_decision_maker, owner_id)
	ON crm.contact TO crm_user;
GRANT INSERT (record_type, record_id, method, content, next_contact_at, created_at),
      UPDATE (record_type, record_id, method, content, next_contact_at)
	ON crm.follow_up TO crm_user;
GRANT INSERT (contact_id), UPDATE (contact_id) ON crm.follow_up TO crm_user;
GRANT INSERT (phone), UPDATE (phone) ON crm.contact TO crm_user;
