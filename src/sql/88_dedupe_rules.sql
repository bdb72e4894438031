-- Duplicate checks, part two: rules as rows, checked on every
-- insert and update of leads, customers and contacts, after the statement,
-- with the keys of src/sql/45_duplicates.sql.

-- What each record's fields are compared as (a class), and where each class
-- is found.  Shipped with crm, read-only: rules name fields, this maps them.
CREATE TABLE crm.dedupe_field (
	record_type  text NOT NULL,
	field        text NOT NULL,
	class        text NOT NULL,
	key_column   text NOT NULL,
	CONSTRAINT dedupe_field_pkey PRIMARY KEY (record_type, field)
);
COMMENT ON COLUMN crm.dedupe_field.record_type IS 'Record type (lead, customer or contact); shipped with crm';
COMMENT ON COLUMN crm.dedupe_field.field IS 'Field a rule may name, e.g. name, uscc, phone; shipped with crm';
COMMENT ON COLUMN crm.dedupe_field.class IS 'What the field is compared as (company, person, phone, email, uscc); shipped with crm';
COMMENT ON COLUMN crm.dedupe_field.key_column IS 'Column holding the field''s duplicate key; shipped with crm';
INSERT INTO crm.dedupe_field VALUES
	('customer', 'name', 'company', 'name_key'),
	('customer', 'phone', 'phone', 'phone_key'),
	('customer', 'uscc', 'uscc', 'uscc'),
	('lead', 'name', 'person', 'name_key'),
	('lead', 'company', 'company', 'company_key'),
	('lead', 'mobile', 'phone', 'mobile_key'),
	('lead', 'email', 'email', 'email_key'),
	('lead', 'uscc', 'uscc', 'uscc'),
	('contact', 'name', 'person', 'name_key'),
	('contact', 'mobile', 'phone', 'mobile_key'),
	('contact', 'email', 'email', 'email_key'),
	-- an individual customer by its contacts' mobiles (seed 001: name together with mobile)
	('customer', 'contact_mobile', 'contact_phone', 'contact_mobile_key');
COMMENT ON TABLE crm.dedupe_field IS 'The fields duplicate rules may name, the class each is compared as and its key column (shipped)';
GRANT SELECT ON crm.dedupe_field TO crm_user;

CREATE TABLE crm.dedupe_rule (
	id             bigint GENERATED ALWAYS AS IDENTITY,
	name           text NOT NULL,
	record_type    text NOT NULL,
	customer_kind  text,
	fields         text[] NOT NULL,
	match          text NOT NULL DEFAULT 'any',
	action         text NOT NULL DEFAULT 'block',
	against        text[] NOT NULL DEFAULT '{customers, pool}',
	enabled        boolean NOT NULL DEFAULT true,
	CONSTRAINT dedupe_rule_pkey PRIMARY KEY (id),
	CONSTRAINT dedupe_rule_name_key UNIQUE (name),
	CONSTRAINT dedupe_rule_name_length CHECK (crm.check_length(name, 200, 'dedupe_rule.name')),
	CONSTRAINT dedupe_rule_customer_kind_check CHECK (customer_kind IS NULL
		OR (customer_kind IN ('company', 'individual') AND record_type = 'customer')),
	CONSTRAINT dedupe_rule_match_check CHECK (match IN ('any', 'all')),
	CONSTRAINT dedupe_rule_action_check CHECK (action IN ('block', 'warn')),
	CONSTRAINT dedupe_rule_against_check CHECK (against <> '{}' AND against <@ ARRAY['customers', 'pool', 'leads', 'contacts'])
);
COMMENT ON TABLE crm.dedupe_rule IS 'Duplicate rules: a new or changed record whose fields match one already in "against" is blocked or flagged';
COMMENT ON COLUMN crm.dedupe_rule.match IS 'any: one field matching is a duplicate; all: every field on the same record';
COMMENT ON COLUMN crm.dedupe_rule.against IS 'Where to look: customers (owned by employees), pool (customers in a public pool), leads (unconverted) and contacts';
COMMENT ON COLUMN crm.dedupe_rule.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.dedupe_rule.name IS 'Rule name people see in refusals and warnings; unique';
COMMENT ON COLUMN crm.dedupe_rule.record_type IS 'Record type the rule checks: lead, customer or contact';
COMMENT ON COLUMN crm.dedupe_rule.customer_kind IS 'company or individual: the rule checks only customers of that kind; NULL: all';
COMMENT ON COLUMN crm.dedupe_rule.fields IS 'Fields compared (crm.dedupe_field.field)';
COMMENT ON COLUMN crm.dedupe_rule.action IS 'block: refuse the write; warn: let it through and flag it in crm.duplicate_set';
COMMENT ON COLUMN crm.dedupe_rule.enabled IS 'Whether the rule applies';
CREATE OR REPLACE TRIGGER dedupe_rule_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.dedupe_rule
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('admin.rules');
GRANT SELECT, DELETE ON crm.dedupe_rule TO crm_user;
GRANT INSERT (name, record_type, customer_kind, fields, match, action, against, enabled),
      UPDATE (name, record_type, customer_kind, fields, match, action, against, enabled)
	ON crm.dedupe_rule TO crm_user;

-- a rule must make sense when written, not when it first fires
CREATE OR REPLACE FUNCTION crm.dedupe_rule_valid() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	unknown text;
BEGIN
	IF TG_RELID <> 'crm.dedupe_rule'::regclass THEN RAISE 'crm.dedupe_rule_valid() runs only on crm.dedupe_rule, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF NOT crm.record_type_has(NEW.record_type, 'duplicates') THEN
		RAISE EXCEPTION 'duplicate rule "%" compares % records, which take no duplicate rules', crm.clip(NEW.name), crm.clip(NEW.record_type)
			USING ERRCODE = 'check_violation',
			      HINT = format('Rules compare %s (the record types with duplicates).', crm.record_types_with('duplicates'));
	END IF;
	IF coalesce(cardinality(NEW.fields), 0) = 0 THEN
		RAISE EXCEPTION 'duplicate rule "%" names no fields', crm.clip(NEW.name)
			USING ERRCODE = 'check_violation',
			      HINT = 'List the fields to compare, e.g. ''{name}'' or ''{name, phone}''.';
	END IF;
	SELECT string_agg(f, ', ') INTO unknown FROM unnest(NEW.fields) f
	 WHERE NOT EXISTS (SELECT FROM crm.dedupe_field d WHERE d.record_type = NEW.record_type AND d.field = f);
	IF unknown IS NOT NULL THEN
		RAISE EXCEPTION 'duplicate rule "%" names unknown % fields: %', crm.clip(NEW.name), crm.clip(NEW.record_type), crm.clip(unknown)
			USING ERRCODE = 'check_violation',
			      HINT = format('A %s rule may name %s.', crm.clip(NEW.record_type),
			                    (SELECT string_agg(field, ', ' ORDER BY field) FROM crm.dedupe_field d
			                      WHERE d.record_type = NEW.record_type));
	END IF;
	IF NEW.match = 'all' AND cardinality(ARRAY(SELECT DISTINCT unnest(NEW.fields))) < 2 THEN
		RAISE EXCEPTION 'duplicate rule "%" matches all of one field', crm.clip(NEW.name)
			USING ERRCODE = 'check_violation',
			      HINT = 'Use match ''any'' for one field, or name two or more.';
	END IF;
	NEW.fields := ARRAY(SELECT DISTINCT unnest(NEW.fields) ORDER BY 1);
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER dedupe_rule_valid BEFORE INSERT OR UPDATE ON crm.dedupe_rule
	FOR EACH ROW EXECUTE FUNCTION crm.dedupe_rule_valid();

-- Pairs a warn rule flagged: the new or changed record and the one it matches.
CREATE TABLE crm.duplicate_set (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	rule_id      bigint NOT NULL,
	record_type  text NOT NULL,
	record_id    bigint NOT NULL,
	match_type   text NOT NULL,
	match_id     bigint NOT NULL,
	found_at     timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT duplicate_set_pkey PRIMARY KEY (id),
	CONSTRAINT duplicate_set_pair_key UNIQUE (rule_id, record_type, record_id, match_type, match_id),
	CONSTRAINT duplicate_set_rule_fkey FOREIGN KEY (rule_id) REFERENCES crm.dedupe_rule (id) ON DELETE CASCADE
);
COMMENT ON COLUMN crm.duplicate_set.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.duplicate_set.rule_id IS 'The warn rule (crm.dedupe_rule.id) that matched; kept by crm; not writable';
COMMENT ON COLUMN crm.duplicate_set.record_type IS 'Type of the record written; kept by crm; not writable';
COMMENT ON COLUMN crm.duplicate_set.record_id IS 'Id of the record written; kept by crm; not writable';
COMMENT ON COLUMN crm.duplicate_set.match_type IS 'Type of the record it matches; kept by crm; not writable';
COMMENT ON COLUMN crm.duplicate_set.match_id IS 'Id of the record it matches; kept by crm; not writable';
COMMENT ON COLUMN crm.duplicate_set.found_at IS 'When the match was found; kept by crm; not writable';
-- a pair goes with either of its records (src/sql/96_record_links.sql)
CREATE INDEX duplicate_set_record_idx ON crm.duplicate_set (record_type, record_id);
CREATE INDEX duplicate_set_match_idx ON crm.duplicate_set (match_type, match_id);
COMMENT ON TABLE crm.duplicate_set IS 'Possible duplicates flagged by warn rules: a record, the one it matches, and the rule';
ALTER TABLE crm.duplicate_set ENABLE ROW LEVEL SECURITY;
-- (visible to whoever sees both records, so that the pair tells no one of a
-- record they may not see: duplicate_set_visible, 97_record_types.sql)
GRANT SELECT ON crm.duplicate_set TO crm_user;

INSERT INTO crm.notification_event (event, description) VALUES
	('duplicate.found', 'A record was flagged as a possible duplicate of yours or of your report''s');

-- Where a class of key is found in each target: the column and which rows count.
CREATE OR REPLACE FUNCTION crm.dedupe_targets() RETURNS TABLE (target text, record_type text, class text, key_column text, condition text)
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT t.target, t.record_type, t.class, t.key_column,
	       coalesce(t.condition, 'x.status IN (''new'', ''following'') AND x.id::text IS DISTINCT FROM current_setting(''crm.converting_lead'')'
	                             ' AND x.owner_id IS DISTINCT FROM (SELECT l.owner_id FROM crm.lead l'
	                             ' WHERE l.id = nullif(current_setting(''crm.converting_lead''), '''')::bigint)')
	  FROM (VALUES
		('customers', 'customer', 'company', 'name_key', 'x.kind = ''company'' AND NOT x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('customers', 'customer', 'person', 'name_key', 'x.kind = ''individual'' AND NOT x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('customers', 'customer', 'phone', 'phone_key', 'NOT x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('customers', 'customer', 'uscc', 'uscc', 'NOT x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('customers', 'customer', 'contact_phone', 'contact_mobile_key', 'x.kind = ''individual'' AND NOT x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('pool', 'customer', 'company', 'name_key', 'x.kind = ''company'' AND x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('pool', 'customer', 'person', 'name_key', 'x.kind = ''individual'' AND x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('pool', 'customer', 'phone', 'phone_key', 'x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('pool', 'customer', 'uscc', 'uscc', 'x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('pool', 'customer', 'contact_phone', 'contact_mobile_key', 'x.kind = ''individual'' AND x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		-- (open leads, but neither the lead crm.convert_lead is converting nor
		-- the other leads of its owner: one person's two leads of a company
		-- are not two people's)
		('leads', 'lead', 'company', 'company_key', NULL),
		('leads', 'lead', 'person', 'name_key', NULL),
		('leads', 'lead', 'phone', 'mobile_key', NULL),
		('leads', 'lead', 'email', 'email_key', NULL),
		('leads', 'lead', 'uscc', 'uscc', NULL),
		('contacts', 'contact', 'person', 'name_key', 'true'),
		('contacts', 'contact', 'phone', 'mobile_key', 'true'),
		('contacts', 'contact', 'email', 'email_key', 'true')) t(target, record_type, class, key_column, condition);
END;

-- The query finding what rule r matches for the rows of cands (a query
-- returning rows shaped like the rule's table, keys included; id NULL for a
-- row not yet written): one SELECT per field ("any") or per target ("all").
-- Each row probes the target's key index (a lateral subquery the planner
-- cannot turn into a hash of the whole table: 1,000,000 customers hashed take
-- 0.5 s where a statement's probes take 0.09 s); the statement's own rows may
-- be hashed (an update's new rows against its old ones).
CREATE OR REPLACE FUNCTION crm.dedupe_rule_query(r crm.dedupe_rule, cands text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t     record;
	parts text[] := '{}';
BEGIN
	-- per target, each field's join and the rows of the target it counts
	-- (an "all" rule's row must count for every field: a company's name and
	-- a phone are both an owned customer's)
	FOR t IN SELECT g.record_type AS target_type,
	                array_agg(format('x.%I = n.%I', g.key_column, f.key_column) ORDER BY f.field) AS joins,
	                array_agg(g.condition ORDER BY f.field) AS conds
	           FROM crm.dedupe_targets() g
	           JOIN crm.dedupe_field f ON f.record_type = r.record_type AND f.field = ANY (r.fields)
	            -- an individual customer's name is a person's
	            AND g.class = CASE WHEN f.class = 'company' AND r.customer_kind = 'individual' THEN 'person' ELSE f.class END
	          WHERE g.target = ANY (r.against)
	          GROUP BY g.target, g.record_type ORDER BY g.target LOOP
		parts := parts || ARRAY(
			SELECT format('SELECT n.id AS new_id, n.name AS new_name, %L AS match_type, x.id AS match_id, x.owner_id
			                 FROM (%s) n
			                 CROSS JOIN LATERAL (SELECT x.id, x.owner_id FROM %s x
			                                      WHERE %s %s OFFSET 0) x
			                WHERE true %s',
			              t.target_type, cands,
			              CASE WHEN t.target_type = 'customer' AND 'contact_mobile' = ANY (r.fields)
			                   THEN '(SELECT c.*, k.mobile_key AS contact_mobile_key FROM crm.customer c JOIN crm.contact k ON k.customer_id = c.id)'
			                   ELSE format('crm.%I', t.target_type) END,
			              c,
			              -- a row never matches itself; a lead may match the customer of the same id
			              CASE WHEN t.target_type = r.record_type THEN 'AND x.id IS DISTINCT FROM n.id' END,
			              CASE WHEN r.customer_kind IS NOT NULL THEN format('AND n.kind = %L', r.customer_kind) END)
			  FROM (SELECT t.joins[i] || ' AND ' || t.conds[i] FROM generate_subscripts(t.joins, 1) i WHERE r.match = 'any'
			        UNION ALL
			        SELECT array_to_string(t.joins || ARRAY(SELECT DISTINCT unnest(t.conds)), ' AND ')
			         WHERE r.match = 'all' AND cardinality(t.joins) = cardinality(r.fields)) w(c));
	END LOOP;
	RETURN nullif(array_to_string(parts, ' UNION ALL '), '');
END
$$;

-- The enabled rules as they compare: a customer rule on names of either kind
-- is one rule per kind, as a company's name is compared with companies' and
-- a person's with people's (seed 001; the two are normalised differently).
CREATE OR REPLACE FUNCTION crm.dedupe_rules_by_kind() RETURNS SETOF crm.dedupe_rule
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT d.id, d.name, d.record_type, coalesce(d.customer_kind, k.kind), d.fields, d.match, d.action, d.against, d.enabled
	  FROM crm.dedupe_rule d
	  LEFT JOIN LATERAL (SELECT k.kind FROM unnest(ARRAY['company', 'individual']) k(kind)
	                      WHERE d.record_type = 'customer' AND d.customer_kind IS NULL AND 'name' = ANY (d.fields)) k ON true
	 WHERE d.enabled;
END;

-- The keys blocking rules compare, claimed by the transactions that write
-- them (crm.dedupe_check): a lock per key that takes no lock-table entry.
-- A 64-bit hash of class and key; unlogged, as a claim outlives no crash.
-- crm.run_housekeeping drops the claims every snapshot sees as settled.
CREATE UNLOGGED TABLE crm.dedupe_claim (
	key  bigint,
	CONSTRAINT dedupe_claim_pkey PRIMARY KEY (key)
);
COMMENT ON TABLE crm.dedupe_claim IS 'Duplicate keys claimed by the transactions writing them (crm''s own; pruned by housekeeping)';
COMMENT ON COLUMN crm.dedupe_claim.key IS 'A 64-bit hash of a duplicate key''s class and value; kept by crm; not writable';

CREATE OR REPLACE FUNCTION crm.xid_horizon(rel regclass) RETURNS xid
	AS 'MODULE_PATHNAME', 'crm_xid_horizon' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION crm.xid_horizon(regclass) IS
	'The oldest transaction some snapshot may still see as running, for the rows of a table';

-- The test that an update changed what a duplicate check compares: a
-- column, or the customer left a public pool for an owner (from_pool) or
-- went back to one (to_pool).
CREATE OR REPLACE FUNCTION crm.dedupe_changed(col text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
RETURN CASE col WHEN 'from_pool'
            THEN '(o.owner_id IN (SELECT p.id FROM crm.pool p) AND NOT n.owner_id IN (SELECT p.id FROM crm.pool p))'
            WHEN 'to_pool'
            THEN '(NOT o.owner_id IN (SELECT p.id FROM crm.pool p) AND n.owner_id IN (SELECT p.id FROM crm.pool p))'
            ELSE format('n.%1$I IS DISTINCT FROM o.%1$I', col) END;

-- The statement's rows that match an enabled rule's targets: one query per
-- rule and target, all keys of the statement at once.
-- (Without JIT: a statement's estimates can reach its threshold, and
-- compiling its queries took seconds where running them took milliseconds.)
CREATE OR REPLACE FUNCTION crm.dedupe_check() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
	rt      text := TG_TABLE_NAME;
	r       crm.dedupe_rule;
	rules   crm.dedupe_rule[];
	checked crm.dedupe_rule[] := '{}';
	changed text[];		-- an update's changed columns that rules compare
	kinds   text[];		-- the kinds of customer the statement wrote
	hits    jsonb;		-- a warn rule's flagged pairs, each with whom to tell
	notices jsonb := '[]';	-- and all of the statement's
	quiet   bigint[];	-- who has a notice of possible duplicates unread
	last_notice bigint;	-- the last notification before this rule's
	rows    text[];		-- per rule: the statement's rows as that rule compares them
	targets text[];		-- the keys this table's rows are compared by, as blocking rules find them
	target_keys text[];	-- and the column of each
	compared text[];	-- an update's rows that blocking rules compare
	hit     record;
	q       text;
	cands   text;
	found   boolean;
	n       integer;
BEGIN
	IF TG_RELID <> ALL ('{crm.contact,crm.customer,crm.lead}'::regclass[]) THEN RAISE 'crm.dedupe_check() runs only on crm.contact, crm.customer, crm.lead, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- a restore loads what was checked when it was written
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	-- the rules that apply: an individual customer's rule on its contacts'
	-- mobiles also runs when contacts are written
	SELECT array_agg(d ORDER BY d.action, d.id, d.customer_kind) INTO rules
	  FROM crm.dedupe_rules_by_kind() d
	 WHERE (d.record_type = rt OR (rt = 'contact' AND d.record_type = 'customer'
	                                            AND 'contact_mobile' = ANY (d.fields)));
	-- and the keys by which blocking rules find this table's rows, each as a
	-- query over rows (%s) that keeps the rows the rule's target counts
	SELECT array_agg(t.q ORDER BY t.q), array_agg(t.key_column ORDER BY t.q) INTO targets, target_keys
	  FROM (SELECT DISTINCT format('SELECT %L AS class, x.%I AS key FROM (%%s) x WHERE %s', g.class, g.key_column, g.condition), g.key_column
	          FROM crm.dedupe_rules_by_kind() d
	          JOIN crm.dedupe_field f ON f.record_type = d.record_type AND f.field = ANY (d.fields)
	          JOIN crm.dedupe_targets() g ON g.target = ANY (d.against) AND g.record_type = rt AND g.key_column <> 'contact_mobile_key'
	           AND g.class = CASE WHEN f.class = 'company' AND d.customer_kind = 'individual' THEN 'person' ELSE f.class END
	         WHERE d.action = 'block') t(q, key_column);
	-- a table no rule concerns stops here
	IF rules IS NULL AND targets IS NULL THEN
		RETURN NULL;
	END IF;
	-- an update: which of the columns rules compare it changed, in one pass;
	-- a customer claimed from a pool counts as changed (it joins the owned ones),
	-- and one put back (it joins the pool's, where blocking rules find it)
	IF TG_OP = 'UPDATE' THEN
		SELECT string_agg(format('bool_or(%s) AS %I', crm.dedupe_changed(a.attname), a.attname), ', ') INTO q
		  FROM (SELECT a.attname::text FROM pg_attribute a
		         WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped
		           AND a.attname IN (SELECT f.key_column FROM crm.dedupe_field f UNION VALUES ('kind'), ('customer_id'), ('mobile_key'), ('status'))
		        UNION ALL SELECT v FROM unnest(ARRAY['from_pool', 'to_pool']) v WHERE rt = 'customer') a;
		EXECUTE format('SELECT array_agg(c.key) FROM (SELECT %s FROM new_rows n JOIN old_rows o ON o.id = n.id) x,
		                jsonb_each_text(to_jsonb(x)) c WHERE c.value = ''true''', q) INTO changed;
	END IF;
	-- a rule of a kind the statement wrote none of has nothing to check
	IF rt = 'customer' AND EXISTS (SELECT FROM unnest(rules) d WHERE d.customer_kind IS NOT NULL) THEN
		kinds := ARRAY(SELECT DISTINCT n.kind FROM new_rows n);
	END IF;
	-- the rows each rule compares: all inserted ones, or those whose keys for
	-- the rule an update changed (a customer's kind too; a contact's mobile
	-- for its customer's rule, and its customer; a lead's status, as one set
	-- back from invalid is open again; a customer claimed from a pool, but
	-- not one put back).  A rule none of whose keys changed has nothing to
	-- check.  Only open leads are compared: converted and invalid ones are
	-- history.
	FOREACH r IN ARRAY coalesce(rules, '{}') LOOP
		CONTINUE WHEN r.customer_kind <> ALL (kinds);
		IF TG_OP = 'INSERT' THEN
			cands := 'SELECT * FROM new_rows n';
		ELSE
			SELECT string_agg(crm.dedupe_changed(c), ' OR ' ORDER BY c) INTO q
			  FROM unnest(changed) c
			 WHERE c IN (SELECT f.key_column FROM crm.dedupe_field f
			              WHERE f.record_type = r.record_type AND f.field = ANY (r.fields))
			    OR c = CASE rt WHEN 'customer' THEN 'kind' WHEN 'contact' THEN 'customer_id' WHEN 'lead' THEN 'status' END
			    OR c = 'from_pool'
			    OR r.record_type <> rt AND c = 'mobile_key';
			CONTINUE WHEN q IS NULL;
			cands := format('SELECT n.* FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE (%s)', q);
			IF r.action = 'block' THEN
				compared := compared || q;
			END IF;
		END IF;
		IF rt = 'lead' THEN
			cands := cands || CASE TG_OP WHEN 'INSERT' THEN ' WHERE' ELSE ' AND' END || ' n.status IN (''new'', ''following'')';
		END IF;
		checked := checked || r;
		rows := rows || CASE
			WHEN r.record_type <> rt THEN format(
				'SELECT c.*, k.mobile_key AS contact_mobile_key FROM (%s) k JOIN crm.customer c ON c.id = k.customer_id', cands)
			WHEN 'contact_mobile' = ANY (r.fields) THEN format(
				'SELECT n.*, k.mobile_key AS contact_mobile_key FROM (%s) n LEFT JOIN crm.contact k ON k.customer_id = n.id', cands)
			ELSE cands END;
		-- a rule of one kind compares (and claims) that kind's customers only
		IF r.customer_kind IS NOT NULL THEN
			rows[cardinality(rows)] := format('SELECT * FROM (%s) n WHERE n.kind = %L', rows[cardinality(rows)], r.customer_kind);
		END IF;
	END LOOP;
	rules := checked;

	-- blocking is race-free: the statement claims the keys its blocking rules
	-- compare, and the keys by which blocking rules find its rows, a row per
	-- key in crm.dedupe_claim that its transaction holds until it ends.  A writer of the same key waits, as on a unique index;
	-- writers of other keys never do, and the lock table holds nothing however
	-- many rows a transaction writes.  Keys go in order, so that statements do
	-- not deadlock.  Under repeatable read a key claimed by a transaction the
	-- snapshot cannot see raises serialization_failure.
	SELECT string_agg(DISTINCT k, ' UNION ALL ') INTO q
	  FROM (SELECT format('SELECT %L AS class, c.%I AS key FROM (%s) c',
	                      -- as the rule compares it: an individual customer's name is a person's
	                      CASE WHEN f.class = 'company' AND rules[i].customer_kind = 'individual' THEN 'person' ELSE f.class END,
	                      f.key_column, rows[i])
	          FROM generate_subscripts(rules, 1) i CROSS JOIN LATERAL unnest(rules[i].fields) rf(field)
	          JOIN crm.dedupe_field f ON f.record_type = rules[i].record_type AND f.field = rf.field
	         WHERE rules[i].action = 'block'
	        UNION ALL
	        -- an update's rows whose key for the target changed, or that joined
	        -- it (a customer's kind, a lead's status, a customer claimed from
	        -- or put back to a pool)
	        SELECT format(targets[i], CASE WHEN TG_OP = 'INSERT' THEN 'SELECT * FROM new_rows'
	                                       ELSE format('SELECT n.* FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE %s', w) END)
	          FROM generate_subscripts(targets, 1) i
	          LEFT JOIN LATERAL (SELECT string_agg(crm.dedupe_changed(c), ' OR ' ORDER BY c) FROM unnest(changed) c
	                              WHERE c IN (target_keys[i], 'kind', 'status', 'from_pool', 'to_pool')) m(w) ON true
	         WHERE TG_OP = 'INSERT' OR w IS NOT NULL) c(k);
	IF q IS NOT NULL THEN
		-- each row compared is a guess at whose a key is, answered by whether
		-- the statement succeeds: charged as a look-up unless it is written.
		-- Past the look-up limit a statement under blocking rules fails
		-- whether it matches or not: otherwise failing would tell it matched
		IF EXISTS (SELECT FROM unnest(rules) b WHERE b.action = 'block') THEN
			EXECUTE CASE TG_OP WHEN 'INSERT' THEN 'SELECT count(*) FROM new_rows'
			        ELSE format('SELECT count(*) FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE %s',
			                    array_to_string(compared, ' OR ')) END INTO n;
			PERFORM crm.pend_duplicate_lookups(n);
		END IF;
		q := format('INSERT INTO crm.dedupe_claim (key)
		             SELECT DISTINCT hashtextextended(x.class || '' '' || x.key, 0) FROM (%s) x WHERE x.key IS NOT NULL ORDER BY 1
		             ON CONFLICT (key) DO UPDATE SET key = excluded.key', q);
		IF current_setting('transaction_isolation') = 'read committed' THEN
			EXECUTE q;
		ELSE
			BEGIN
				EXECUTE q;
			EXCEPTION WHEN serialization_failure THEN
				-- which tells that one of the keys is being written: a look-up
				PERFORM crm.take_duplicate_lookup(rt, ARRAY(SELECT DISTINCT f FROM unnest(rules) b, unnest(b.fields) f
				                                            WHERE b.action = 'block' ORDER BY f), n);
				RAISE EXCEPTION 'a concurrent transaction was writing the same duplicate keys'
					USING ERRCODE = 'serialization_failure',
					      HINT = 'Retry the transaction: under repeatable read it cannot see what the other one committed.';
			END;
		END IF;
	END IF;

	FOR i IN 1 .. coalesce(cardinality(rules), 0) LOOP
		r := rules[i];
		q := crm.dedupe_rule_query(r, rows[i]);
		CONTINUE WHEN q IS NULL;

		IF r.action = 'block' THEN
			EXECUTE format('SELECT h.*, crm.clip(e.name) AS owner, e.is_pool FROM (%s) h LEFT JOIN crm.employee e ON e.id = h.owner_id ORDER BY h.new_id, h.match_type, h.match_id LIMIT 1', q) INTO hit;
			IF hit.new_id IS NOT NULL THEN
				-- the refusal answers what a look-up would for each row the
				-- statement compared (10,000 guessed mobiles in one INSERT are
				-- 10,000 look-ups), and names the row: count them all first
				PERFORM crm.take_duplicate_lookup(r.record_type, r.fields, n);
				RAISE EXCEPTION '% "%" duplicates % by rule "%"', r.record_type, crm.clip(hit.new_name),
				                CASE WHEN hit.match_type = 'customer' AND hit.is_pool THEN format('a customer in pool "%s"', hit.owner)
				                     WHEN hit.match_type = 'customer' THEN 'a customer owned by ' || coalesce(hit.owner, 'nobody')
				                     WHEN hit.match_type = 'lead' THEN 'a lead of ' || coalesce(hit.owner, 'nobody')
				                     ELSE 'a contact of a customer owned by ' || coalesce(hit.owner, 'nobody') END,
				                crm.clip(r.name)
					USING ERRCODE = 'unique_violation',
					      DETAIL = format('Rule "%s" compares %s with %s and blocks a match.', crm.clip(r.name),
					                      array_to_string(r.fields, ', '), array_to_string(r.against, ', ')),
					      HINT = CASE WHEN hit.is_pool THEN format('Claim it from pool "%s" (crm.pool_customer lists it to the pool''s members), or look with crm.find_duplicates.', hit.owner)
					                  WHEN hit.owner_id = crm.invoking_employee_id() THEN 'It is yours already: work on that one (crm.find_duplicates shows it), or convert a lead into it with crm.convert_lead(lead_id, into_customer => id).'
					                  ELSE format('It is %s''s already: ask them to transfer it or add you to its team, or look with crm.find_duplicates.',
					                              coalesce(hit.owner, 'nobody')) END;
			END IF;
		ELSE
			-- most statements flag nothing: find that out with the probes alone
			EXECUTE format('SELECT EXISTS (%s)', q) INTO found;
			CONTINUE WHEN NOT found;
			EXECUTE format(
				'WITH h AS (%s),
				 flagged AS (
					INSERT INTO crm.duplicate_set (rule_id, record_type, record_id, match_type, match_id)
					SELECT $1, $2, h.new_id, h.match_type, h.match_id FROM h
					ON CONFLICT DO NOTHING
					RETURNING record_id, match_type, match_id)
				 SELECT jsonb_agg(jsonb_build_object(''recipient'', t.recipient, ''record_type'', $2, ''record_id'', f.record_id,
				                                     ''name'', n.name, ''rule'', $3, ''match_type'', crm.record_type_label(f.match_type),
				                                     ''match_owner'', coalesce(o.name, ''?'')))
				   FROM flagged f
				   JOIN crm.%I n ON n.id = f.record_id
				   JOIN h x ON x.new_id = f.record_id AND x.match_type = f.match_type AND x.match_id = f.match_id
				   LEFT JOIN crm.employee o ON o.id = x.owner_id
				   LEFT JOIN crm.employee s ON s.id = n.owner_id
				  CROSS JOIN LATERAL (SELECT DISTINCT u FROM unnest(ARRAY[x.owner_id, s.superior_id]) u WHERE u IS NOT NULL) t(recipient)',
				q, r.record_type) INTO hits USING r.id, r.record_type, r.name;
			notices := notices || coalesce(hits, '[]');
		END IF;
	END LOOP;

	-- one notification per person and statement, however many rows and rules
	-- flagged.  Whoever has one from the last day unread is told the next in
	-- their inbox only, not on their phone: a colleague's thirty inserts are
	-- not thirty messages, and nothing is hidden (a harmless duplicate made
	-- first once hid the next)
	IF jsonb_array_length(notices) > 0 THEN
		quiet := ARRAY(SELECT DISTINCT p.recipient_id FROM crm.notification p
		                WHERE p.recipient_id IN (SELECT (x ->> 'recipient')::bigint FROM jsonb_array_elements(notices) x)
		                  AND p.event = 'duplicate.found' AND p.read_at IS NULL AND p.created_at > now() - interval '1 day');
		last_notice := coalesce((SELECT max(p.id) FROM crm.notification p), 0);
		PERFORM crm.notify(ARRAY[h.recipient], 'duplicate.found', m.title, m.body, h.record_type, h.record_id)
		  FROM (SELECT t.recipient, count(DISTINCT (t.record_type, t.record_id)) AS n,
		               CASE WHEN count(DISTINCT (t.record_type, t.record_id)) = 1 THEN min(t.record_type) END AS record_type,
		               CASE WHEN count(DISTINCT (t.record_type, t.record_id)) = 1 THEN min(t.record_id) END AS record_id,
		               jsonb_agg(jsonb_build_object('type', crm.record_type_label(t.record_type), 'record', t.name, 'rule', t.rule,
		                                            'match_type', t.match_type, 'match_owner', t.match_owner)
		                         ORDER BY t.record_type, t.record_id, t.rule) AS items
		          FROM jsonb_to_recordset(notices) t(recipient bigint, record_type text, record_id bigint, name text,
		                                             rule text, match_type text, match_owner text)
		         GROUP BY t.recipient) h,
		       crm.notification_text('duplicate.found', jsonb_build_object('count', h.n, 'items', h.items)) m;
		UPDATE crm.notification p SET im_pending = false
		 WHERE p.id > last_notice AND p.created_at = now() AND p.recipient_id = ANY (quiet)
		   AND p.event = 'duplicate.found' AND p.im_pending;
	END IF;
	RETURN NULL;
END
$$;

-- (the triggers come with the registration of each type with capability duplicates)

-- What a candidate record would match exactly, for crm.find_duplicates: the
-- matches by every enabled rule of its type.  Runs as crm's owner and sees
-- every record; crm.find_duplicates hides what the caller may not see.
CREATE OR REPLACE FUNCTION crm.dedupe_candidates(record_type text, candidate jsonb)
	RETURNS TABLE (match_type text, match_id bigint, owner_id bigint, rule text, score real, reason text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c       jsonb := coalesce(candidate, '{}');
	cands   text;
	r       crm.dedupe_rule;
	q       text;
BEGIN
	-- the candidate as a row of its table would be, keys included
	cands := CASE record_type
		WHEN 'customer' THEN format(
			'SELECT NULL::bigint AS id, %1$L::text AS name, %2$L::text AS kind, %3$L::text AS uscc,
			        crm.dedupe_key(CASE %2$L WHEN ''individual'' THEN ''name'' ELSE ''company'' END, %1$L) AS name_key,
			        crm.dedupe_key(''phone'', %4$L) AS phone_key, crm.dedupe_key(''phone'', %5$L) AS contact_mobile_key',
			c ->> 'name', coalesce(c ->> 'kind', 'company'), c ->> 'uscc', c ->> 'phone', c ->> 'contact_mobile')
		WHEN 'lead' THEN format(
			'SELECT NULL::bigint AS id, %1$L::text AS name, %2$L::text AS uscc, crm.dedupe_key(''name'', %1$L) AS name_key,
			        crm.dedupe_key(''company'', %3$L) AS company_key, crm.dedupe_key(''phone'', %4$L) AS mobile_key,
			        crm.dedupe_key(''email'', %5$L) AS email_key',
			c ->> 'name', c ->> 'uscc', c ->> 'company', c ->> 'mobile', c ->> 'email')
		WHEN 'contact' THEN format(
			'SELECT NULL::bigint AS id, %1$L::text AS name, crm.dedupe_key(''name'', %1$L) AS name_key,
			        crm.dedupe_key(''phone'', %2$L) AS mobile_key, crm.dedupe_key(''email'', %3$L) AS email_key',
			c ->> 'name', c ->> 'mobile', c ->> 'email') END;
	IF cands IS NULL THEN
		RAISE EXCEPTION 'unknown record type "%" for duplicates', crm.clip(record_type)
			USING ERRCODE = 'invalid_parameter_value', HINT = 'The record types are lead, customer and contact.';
	END IF;
	FOR r IN SELECT * FROM crm.dedupe_rules_by_kind() d WHERE d.record_type = dedupe_candidates.record_type ORDER BY d.id, d.customer_kind LOOP
		q := crm.dedupe_rule_query(r, cands);
		CONTINUE WHEN q IS NULL;
		RETURN QUERY EXECUTE format('SELECT DISTINCT h.match_type, h.match_id, h.owner_id, %L::text, 1::real, %L::text FROM (%s) h',
		                            r.name, 'same ' || array_to_string(r.fields, ' and '), q);
	END LOOP;
END
$$;

-- Customers the caller may see whose name is like a company's (or, for kind
-- individual, a person's): pinyin trigrams (pg_trgm), then initials.  Runs as
-- the caller, under row-level security: a fuzzy match is a hint for finding
-- one's own records, never a way to learn about others' (only exact keys,
-- crm.dedupe_candidates, answer "is this already someone's?").
CREATE OR REPLACE FUNCTION crm.similar_customers(name text, kind text DEFAULT 'company')
	RETURNS TABLE (id bigint, label text, owner_id bigint, score real, reason text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	company  text := crm.dedupe_key(CASE kind WHEN 'individual' THEN 'name' ELSE 'company' END, similar_customers.name);
	-- a few Latin letters may be initials themselves: "hw" finds 华为技术 (hwjs)
	initials text := CASE WHEN company ~ '^[a-z]{2,6}$' THEN company ELSE crm.dedupe_key('initials', company) END;
	trgm     text;
BEGIN
	IF company IS NULL THEN
		RETURN;
	END IF;
	SELECT n.nspname INTO trgm FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
	 WHERE e.extname = 'pg_trgm';
	RETURN QUERY EXECUTE format(
		'SELECT x.id, x.name, x.owner_id, %1$I.similarity(x.name_pinyin, $1), ''similar name''::text
		   FROM crm.customer x WHERE x.name_pinyin OPERATOR(%1$I.%%) $1
		  ORDER BY x.name_pinyin OPERATOR(%1$I.<->) $1 LIMIT 20', trgm)
		USING crm.dedupe_key('pinyin', company);
	-- (planned for the value: the prefix search uses the index)
	RETURN QUERY EXECUTE
		'SELECT x.id, x.name, x.owner_id, 0.5::real, ''same initials''::text
		   FROM crm.customer x WHERE length($1) >= 2 AND x.name_initials LIKE $1 || ''%'' ORDER BY x.id DESC LIMIT 20'
		USING initials;
END
$$;
COMMENT ON FUNCTION crm.similar_customers(text, text) IS
	'Customers the caller may see with a name like this one (pinyin trigrams, then initials), best first';

-- Every look-up by crm.find_duplicates and every refusal by a blocking rule:
-- who, when, for which record type, with which fields (not their values).
-- Written by the audit writer (lookup_audit.c) in its own transactions, so a
-- look-up rolled back is audited too; super admins read it.
CREATE TABLE crm.duplicate_lookup (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	looked_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
	employee_id  bigint,
	role_name    name NOT NULL,
	record_type  text NOT NULL,
	fields       text[] NOT NULL,
	CONSTRAINT duplicate_lookup_pkey PRIMARY KEY (id)
);
COMMENT ON COLUMN crm.duplicate_lookup.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.duplicate_lookup.looked_at IS 'When the look-up ran; kept by crm; not writable';
COMMENT ON COLUMN crm.duplicate_lookup.employee_id IS 'Employee (crm.employee.id) who looked; kept by crm; not writable';
COMMENT ON COLUMN crm.duplicate_lookup.role_name IS 'Database role the look-up ran as; kept by crm; not writable';
COMMENT ON COLUMN crm.duplicate_lookup.record_type IS 'Record type looked up; kept by crm; not writable';
COMMENT ON COLUMN crm.duplicate_lookup.fields IS 'Names of the candidate''s fields (not their values); kept by crm; not writable';
CREATE INDEX duplicate_lookup_employee_idx ON crm.duplicate_lookup (employee_id, looked_at);

COMMENT ON TABLE crm.duplicate_lookup IS 'Look-ups of crm.find_duplicates: who, when, the record type and the candidate''s fields (not their values); super admins read it';
ALTER TABLE crm.duplicate_lookup ENABLE ROW LEVEL SECURITY;
CREATE POLICY duplicate_lookup_super_admin ON crm.duplicate_lookup FOR SELECT TO crm_user
	USING (crm.acting_is_super());
GRANT SELECT ON crm.duplicate_lookup TO crm_user;

-- (as crm's owner, from crm.dedupe_check: a statement under blocking rules
-- is a look-up per row it compared, charged when it does not commit; a
-- blocking rule's refusal is charged at once and audited as a look-up of the
-- rule's record type and fields)
CREATE OR REPLACE FUNCTION crm.pend_duplicate_lookups(lookups bigint) RETURNS void
	AS 'MODULE_PATHNAME', 'crm_pend_duplicate_lookups' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION crm.take_duplicate_lookup(record_type text, fields text[], lookups bigint DEFAULT 1) RETURNS void
	AS 'MODULE_PATHNAME', 'crm_take_duplicate_lookup' LANGUAGE C VOLATILE;

CREATE OR REPLACE FUNCTION crm.find_duplicates(record_type text, candidate jsonb)
	RETURNS TABLE (match_type text, match_id bigint, label text, owner text, rules text, score real, reasons text)
	AS 'MODULE_PATHNAME', 'crm_find_duplicates' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION crm.find_duplicates(text, jsonb) IS
	'What a candidate lead, customer or contact would duplicate: exact matches by rule anywhere (a record the caller may not see shows only whose it is), similar names among what the caller sees; rate-limited and audited';

-- Merging two customers (seed 002): what was merged, kept for the record.
CREATE TABLE crm.customer_merge (
	id          bigint GENERATED ALWAYS AS IDENTITY,
	keep_id     bigint NOT NULL,
	merged_id   bigint NOT NULL,
	merged_row  jsonb NOT NULL,
	moved       jsonb NOT NULL,
	merged_by   bigint,
	merged_at   timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT customer_merge_pkey PRIMARY KEY (id)
);
COMMENT ON TABLE crm.customer_merge IS 'Customers merged into others: the merged row as it was, and how many rows of each table moved';
COMMENT ON COLUMN crm.customer_merge.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.customer_merge.keep_id IS 'The customer kept (crm.customer.id); kept by crm; not writable';
COMMENT ON COLUMN crm.customer_merge.merged_id IS 'The id the merged customer had; kept by crm; not writable';
COMMENT ON COLUMN crm.customer_merge.merged_row IS 'The merged customer''s row as it was, as JSON; kept by crm; not writable';
COMMENT ON COLUMN crm.customer_merge.moved IS 'Rows moved to the kept customer, per table: {"contact": 2, ...}; kept by crm; not writable';
COMMENT ON COLUMN crm.customer_merge.merged_by IS 'Employee (crm.employee.id) who merged; kept by crm; not writable';
COMMENT ON COLUMN crm.customer_merge.merged_at IS 'When the merge happened; kept by crm; not writable';
ALTER TABLE crm.customer_merge ENABLE ROW LEVEL SECURITY;
CREATE POLICY customer_merge_visible ON crm.customer_merge FOR SELECT TO crm_user
	USING (EXISTS (SELECT FROM crm.customer c WHERE c.id = customer_merge.keep_id));
GRANT SELECT ON crm.customer_merge TO crm_user;

-- The merge itself, as crm's owner (crm.merge_customers checks the caller
-- first): every reference to the merged customer moves to the kept one, found
-- from the catalog (foreign keys, crm.record_links()) so that tables added
-- later (opportunities, contracts) move too; rows that would collide with the kept customer's (a team place, a tag,
-- a pin it already has) go; empty fields of the kept customer are filled.
CREATE OR REPLACE FUNCTION crm.merge_customers_apply(keep_id bigint, merge_id bigint, merged_by bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	m      crm.customer;
	t      record;
	moved  jsonb := '{}';
	n      bigint;
	audit  bigint;
BEGIN
	PERFORM FROM crm.customer WHERE id = keep_id FOR UPDATE;
	SELECT * INTO m FROM crm.customer WHERE id = merge_id FOR UPDATE;
	-- the merged customer's recycling clock goes with it; the kept one's runs on
	DELETE FROM crm.customer_recycling WHERE customer_id = merge_id;
	DELETE FROM crm.customer_status_time WHERE customer_id = merge_id;
	-- foreign keys to crm.customer
	FOR t IN SELECT c.conrelid::regclass AS tbl, a.attname AS col
	           FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
	          WHERE c.confrelid = 'crm.customer'::regclass AND c.contype = 'f' AND cardinality(c.conkey) = 1
	            AND c.conrelid <> ALL (ARRAY['crm.customer_recycling'::regclass, 'crm.customer_status_time'::regclass])
	          ORDER BY 1, 2 LOOP
		EXECUTE format('UPDATE %s SET %I = $1 WHERE %I = $2', t.tbl, t.col, t.col) USING keep_id, merge_id;
		GET DIAGNOSTICS n = ROW_COUNT;
		moved := moved || jsonb_build_object(t.tbl::text, n);
	END LOOP;
	-- rows naming a customer by a (type, id) pair (crm.record_links(); the
	-- operation log keeps its history); a customer is no duplicate of itself
	FOR t IN SELECT k.link_table AS tbl, k.type_column AS tcol, k.id_column AS icol,
	                (SELECT array_agg(a.attname ORDER BY a.attname)
	                   FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
	                  WHERE i.indrelid = k.link_table AND i.indisunique
	                    AND a.attname NOT IN (k.type_column, k.id_column)
	                    AND EXISTS (SELECT FROM pg_attribute r WHERE r.attrelid = k.link_table AND r.attname = k.id_column
	                                AND r.attnum = ANY (i.indkey))) AS others
	           FROM crm.record_links() k WHERE k.on_delete <> 'keep' ORDER BY 1, 2 LOOP
		IF t.others IS NOT NULL THEN
			EXECUTE format('DELETE FROM %1$s m WHERE m.%2$I = ''customer'' AND m.%3$I = $2
			                  AND EXISTS (SELECT FROM %1$s k WHERE k.%2$I = ''customer'' AND k.%3$I = $1 AND %4$s)',
			               t.tbl, t.tcol, t.icol, (SELECT string_agg(format('k.%1$I = m.%1$I', o), ' AND ') FROM unnest(t.others) o))
				USING keep_id, merge_id;
		END IF;
		EXECUTE format('UPDATE %s SET %I = $1 WHERE %I = ''customer'' AND %I = $2', t.tbl, t.icol, t.tcol, t.icol)
			USING keep_id, merge_id;
		GET DIAGNOSTICS n = ROW_COUNT;
		moved := moved || jsonb_build_object(t.tbl::text, coalesce((moved ->> t.tbl::text)::bigint, 0) + n);
	END LOOP;
	DELETE FROM crm.duplicate_set WHERE record_type = 'customer' AND match_type = 'customer' AND record_id = match_id;

	INSERT INTO crm.customer_merge (keep_id, merged_id, merged_row, moved, merged_by)
	VALUES (keep_id, merge_id, to_jsonb(m), moved, merged_by) RETURNING id INTO audit;
	-- gone before the kept one takes its phone or credit code, which would
	-- otherwise duplicate it under a blocking rule
	DELETE FROM crm.customer WHERE id = merge_id;
	UPDATE crm.customer k
	   SET phone = coalesce(k.phone, m.phone), industry = coalesce(k.industry, m.industry),
	       source = coalesce(k.source, m.source), level = coalesce(k.level, m.level),
	       uscc = coalesce(k.uscc, m.uscc), locked = k.locked OR m.locked
	 WHERE k.id = keep_id;
	RETURN audit;
END
$$;

CREATE OR REPLACE FUNCTION crm.merge_customers(keep_id bigint, merge_id bigint) RETURNS bigint
	AS 'MODULE_PATHNAME', 'crm_merge_customers' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION crm.merge_customers(bigint, bigint) IS
	'Merge customer merge_id into keep_id in one transaction (needs customer.merge and both visible); returns the crm.customer_merge id';
