-- Settings, data dictionaries and customer follow-up statuses: rows a DBA or an
-- administrator edits; crm ships defaults marked builtin (see 25_config.sql).

-- One row of switches.
CREATE TABLE crm.settings (
	singleton          boolean NOT NULL DEFAULT true,
	status_reversible  boolean NOT NULL DEFAULT false,
	builtin            boolean NOT NULL DEFAULT false,
	CONSTRAINT settings_pkey PRIMARY KEY (singleton),
	CONSTRAINT settings_singleton_check CHECK (singleton)
);
COMMENT ON TABLE crm.settings IS 'crm''s switches: one row';
COMMENT ON COLUMN crm.settings.status_reversible IS 'Whether a customer''s status may move back to an earlier one (off: only forward)';
COMMENT ON COLUMN crm.settings.singleton IS 'Always true: one row; kept by crm; not writable';
COMMENT ON COLUMN crm.settings.builtin IS 'Shipped with crm (a dump leaves it out); kept by crm; not writable';
INSERT INTO crm.settings (builtin) VALUES (true);
-- (added to the row as crm 0.1 added it, so that a fresh install and an
-- updated one store it alike: the jobs' trigger names it before 94_pool.sql)
ALTER TABLE crm.settings ADD COLUMN timezone text NOT NULL DEFAULT 'Asia/Shanghai',
	ADD CONSTRAINT settings_timezone_check CHECK (now() AT TIME ZONE timezone IS NOT NULL);
COMMENT ON COLUMN crm.settings.timezone IS 'The company''s time zone: where its day starts and ends (daily claim limits), the times notifications give, and when jobs run (crm.job)';
SELECT crm.keep_builtin_edits('crm.settings', 'singleton');

-- The dictionaries: crm's own kinds (builtin) and those administrators add
-- (seed 002, 自定义字典), each with its codes in crm.dictionary.
-- src/records/dictionary.c copies kinds into fixed-size keys: the lengths are bounded here.
CREATE TABLE crm.dictionary_kind (
	kind     text NOT NULL,
	label    text NOT NULL,
	builtin  boolean NOT NULL DEFAULT false,
	CONSTRAINT dictionary_kind_pkey PRIMARY KEY (kind),
	CONSTRAINT dictionary_kind_kind_check CHECK (octet_length(kind) <= 30 AND kind ~ '^[a-z][a-z0-9_]{0,29}$'),
	CONSTRAINT dictionary_kind_label_check CHECK (crm.check_length(label, 200, 'dictionary_kind.label') AND btrim(label) <> '')
);
COMMENT ON TABLE crm.dictionary_kind IS 'The data dictionaries (数据字典): crm''s own and those administrators add; their codes are rows of crm.dictionary';
COMMENT ON COLUMN crm.dictionary_kind.kind IS 'The dictionary''s stable name, as crm.dictionary.kind, crm.dictionary_column.kind and crm.added_field.dictionary name it';
COMMENT ON COLUMN crm.dictionary_kind.label IS 'The dictionary''s name for people';
COMMENT ON COLUMN crm.dictionary_kind.builtin IS 'Shipped with crm (pg_dump leaves it out); an edited row stops being builtin';
INSERT INTO crm.dictionary_kind (kind, label, builtin) VALUES
	('customer_source', '客户来源', true),
	('industry', '行业', true),
	('customer_level', '客户级别', true),
	('follow_up_method', '跟进方式', true),
	('product_category', '产品类别', true),
	('unit', '单位', true),
	('pool_release_reason', '公海释放原因', true);
SELECT crm.keep_builtin_edits('crm.dictionary_kind', 'kind');

-- Data dictionaries: stable codes, labels for people.
CREATE TABLE crm.dictionary (
	kind      text NOT NULL,
	code      text NOT NULL,
	label     text NOT NULL,
	position  integer NOT NULL DEFAULT 0,
	enabled   boolean NOT NULL DEFAULT true,
	builtin   boolean NOT NULL DEFAULT false,
	CONSTRAINT dictionary_pkey PRIMARY KEY (kind, code),
	CONSTRAINT dictionary_kind_fkey FOREIGN KEY (kind) REFERENCES crm.dictionary_kind (kind),
	CONSTRAINT dictionary_code_check CHECK (octet_length(code) <= 60 AND code ~ '^[a-z0-9_]{1,60}$'),
	CONSTRAINT dictionary_label_check CHECK (crm.check_length(label, 200, 'dictionary.label') AND btrim(label) <> '')
);
COMMENT ON TABLE crm.dictionary IS 'Data dictionaries (数据字典): codes are stable, labels and order may change; disable instead of delete';
COMMENT ON COLUMN crm.dictionary.kind IS 'Dictionary: customer_source, industry, customer_level, follow_up_method, product_category, unit or pool_release_reason';
COMMENT ON COLUMN crm.dictionary.code IS 'Stable code stored in records: lowercase letters, digits, underscores; at most 60';
COMMENT ON COLUMN crm.dictionary.label IS 'What people see; may change';
COMMENT ON COLUMN crm.dictionary.position IS 'Order within the dictionary';
COMMENT ON COLUMN crm.dictionary.enabled IS 'Disabled codes stay in old records but cannot be chosen any more';
COMMENT ON COLUMN crm.dictionary.builtin IS 'Shipped with crm (a dump leaves it out); kept by crm; not writable';

INSERT INTO crm.dictionary (kind, code, label, position, builtin)
SELECT kind, code, label, n, true FROM (VALUES
	('customer_source', '{website,phone,exhibition,referral,search_ads,visit,wechat,douyin,repeat,tender}',
	                    '{官网咨询,电话营销,展会,客户转介绍,搜索推广,线下拜访,微信公众号,抖音,老客户复购,招投标}'),
	('industry', '{manufacturing,it,wholesale_retail,construction,healthcare,education,finance,logistics,hospitality,real_estate,energy_chemicals,agriculture_food}',
	             '{制造业,信息技术,批发零售,建筑工程,医疗健康,教育培训,金融服务,物流运输,餐饮酒店,房地产,能源化工,农业食品}'),
	('customer_level', '{a,b,c,d}', '{A（重点客户）,B（普通客户）,C（非优先客户）,D（待定）}'),
	('follow_up_method', '{phone,email,visit,sms,im,other}', '{电话,邮件,上门拜访,短信,即时消息,其他}'),
	('product_category', '{software,hardware,service}', '{软件,硬件,服务}'),
	('unit', '{piece,set,year,month,hour}', '{个,套,年,月,小时}')
) v(kind, codes, labels),
LATERAL unnest(codes::text[], labels::text[]) WITH ORDINALITY AS u(code, label, n);
SELECT crm.keep_builtin_edits('crm.dictionary', 'kind', 'code');

-- A mapping names a text column of a crm table whose writes
-- crm.check_dictionary() checks (a trigger on the table): it compares the
-- column's values with codes as text (each element of a text[] column, a
-- multiple-choice field's).  A mapping no trigger would enforce is
-- refused rather than ignored.
CREATE OR REPLACE FUNCTION crm.check_dictionary_column(table_name text, column_name text) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	rel     regclass := to_regclass(format('crm.%I', table_name));
	coltype regtype;
	derived boolean;
BEGIN
	SELECT a.atttypid INTO coltype FROM pg_attribute a
	 WHERE a.attrelid = rel AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped;
	-- nor onto one crm reads: a name or number keys are made of, or one whose
	-- values crm checks by a rule of its own (a lead's status, a customer's
	-- kind, a credit code, a mobile number); a length limit is no such rule
	derived := EXISTS (SELECT FROM crm.dedupe_key_columns() k
	                    WHERE k.table_name = check_dictionary_column.table_name
	                      AND check_dictionary_column.column_name IN (SELECT k.key_column UNION ALL SELECT unnest(k.sources)))
	  -- (the pair naming the record a follow-up is about)
	  OR column_name IN ('record_type', 'record_id')
	     AND EXISTS (SELECT FROM crm.record_type t WHERE t.relation = rel AND t.visibility = 'record')
	  OR EXISTS (
		SELECT FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = rel AND a.attname = column_name
		 WHERE c.conrelid = rel AND c.contype = 'c' AND c.conkey = ARRAY[a.attnum]
		   AND (pg_get_constraintdef(c.oid) LIKE '%= ANY (ARRAY[%'
		        OR pg_get_constraintdef(c.oid) LIKE 'CHECK (crm.check\_%' AND pg_get_constraintdef(c.oid) NOT LIKE 'CHECK (crm.check\_length(%'));
	IF derived THEN
		RAISE EXCEPTION 'dictionary codes cannot go into crm.%.%, a column crm derives or reads', crm.clip(table_name), crm.clip(column_name)
			USING ERRCODE = 'wrong_object_type',
			      HINT = 'Map a dictionary onto a text column people write; crm.add_field(record_type, name, ''single'', dictionary => kind) adds one.';
	END IF;
	IF coltype IS NULL OR coltype NOT IN ('text'::regtype, 'text[]'::regtype) THEN
		RAISE EXCEPTION 'dictionary codes cannot go into crm.%.%, %', crm.clip(table_name), crm.clip(column_name),
			CASE WHEN coltype IS NULL THEN 'which does not exist' ELSE format('a column of type %s', coltype) END
			USING ERRCODE = CASE WHEN coltype IS NULL THEN 'undefined_column' ELSE 'datatype_mismatch' END,
			      HINT = 'Map a dictionary onto a text column of a crm table; '
			             'crm.add_field(record_type, name, ''single'', dictionary => kind) adds one.';
	END IF;
	-- (the record types with dictionaries, and the catalogues with the trigger:
	-- their writes are checked, crm.check_dictionary)
	IF NOT EXISTS (SELECT FROM crm.record_type t WHERE t.relation = rel AND 'dictionaries' = ANY (t.capabilities))
	   AND NOT EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = rel AND g.tgfoid = 'crm.check_dictionary()'::regprocedure) THEN
		RAISE EXCEPTION 'dictionary codes cannot go into crm.%.%, a table whose writes are not checked against dictionaries',
			crm.clip(table_name), crm.clip(column_name)
			USING ERRCODE = 'wrong_object_type',
			      HINT = (SELECT 'Map a dictionary onto a text column of ' || string_agg(t.relation::text, ', ' ORDER BY t.relation::text)
			                FROM crm.record_type t WHERE 'dictionaries' = ANY (t.capabilities)) || '.';
	END IF;
	RETURN true;
END
$$;
COMMENT ON FUNCTION crm.check_dictionary_column(text, text) IS 'True, or an error saying why the column cannot take dictionary codes (a CHECK of crm.dictionary_column)';

-- Which columns take which dictionary's codes; add_field registers its own.
-- src/records/dictionary.c copies kinds into fixed-size keys: the lengths are bounded here.
CREATE TABLE crm.dictionary_column (
	table_name   text NOT NULL,
	column_name  text NOT NULL,
	kind         text NOT NULL,
	builtin      boolean NOT NULL DEFAULT false,
	CONSTRAINT dictionary_column_pkey PRIMARY KEY (table_name, column_name),
	CONSTRAINT dictionary_column_kind_check CHECK (octet_length(kind) <= 30 AND kind ~ '^[a-z][a-z0-9_]{0,29}$'),
	CONSTRAINT dictionary_column_name_check CHECK (octet_length(table_name) < 64 AND octet_length(column_name) < 64),
	CONSTRAINT dictionary_column_text_check CHECK (crm.check_dictionary_column(table_name, column_name))
);
COMMENT ON TABLE crm.dictionary_column IS 'Columns of crm tables whose values must be enabled codes of a dictionary';
COMMENT ON COLUMN crm.dictionary_column.table_name IS 'crm table, e.g. customer';
COMMENT ON COLUMN crm.dictionary_column.column_name IS 'Text column of the table whose values are codes';
COMMENT ON COLUMN crm.dictionary_column.kind IS 'Dictionary (crm.dictionary.kind) the codes come from';
COMMENT ON COLUMN crm.dictionary_column.builtin IS 'Shipped with crm (a dump leaves it out); kept by crm; not writable';
-- (the shipped mappings come with their tables, src/sql/40_records.sql)

CREATE OR REPLACE FUNCTION crm.check_dictionary() RETURNS trigger
	AS 'MODULE_PATHNAME', 'crm_check_dictionary' LANGUAGE C;

-- Where a dictionary's codes are stored: the columns mapped to it, custom
-- fields' among them (multiple: a text[] of codes).
CREATE OR REPLACE FUNCTION crm.dictionary_code_columns(kind text)
RETURNS TABLE (table_name text, column_name text, multiple boolean)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT c.table_name, c.column_name, a.atttypid = 'text[]'::regtype
	  FROM crm.dictionary_column c
	  JOIN pg_attribute a ON a.attrelid = to_regclass(format('crm.%I', c.table_name)) AND a.attname = c.column_name
	                     AND NOT a.attisdropped
	 WHERE c.kind = dictionary_code_columns.kind;
END;
COMMENT ON FUNCTION crm.dictionary_code_columns(text) IS
	'The columns of crm tables that hold codes of the dictionary (multiple: a text[] of codes)';

-- A code records use is neither deleted nor renamed (nor moved to another
-- kind): they would keep a code that is no longer there.  Runs as the owner,
-- so that it counts every record, seen by the administrator or not.
CREATE OR REPLACE FUNCTION crm.guard_dictionary_code() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	col    record;
	n      bigint;
	total  bigint := 0;
	uses   text[] := '{}';
BEGIN
	IF TG_RELID <> 'crm.dictionary'::regclass THEN RAISE 'crm.guard_dictionary_code() runs only on crm.dictionary, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() THEN
		RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
	END IF;
	FOR col IN SELECT * FROM crm.dictionary_code_columns(OLD.kind) ORDER BY 1, 2 LOOP
		EXECUTE format(CASE WHEN col.multiple THEN 'SELECT count(*) FROM crm.%I WHERE %I @> ARRAY[$1]'
		                    ELSE 'SELECT count(*) FROM crm.%I WHERE %I = $1' END, col.table_name, col.column_name)
			INTO n USING OLD.code;
		IF n > 0 THEN
			total := total + n;
			uses := uses || format('%s in crm.%s.%s', n, col.table_name, col.column_name);
		END IF;
	END LOOP;
	IF total > 0 THEN
		RAISE EXCEPTION 'code "%" of dictionary "%" cannot be %: % record% use it', crm.clip(OLD.code), crm.clip(OLD.kind),
			CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE 'renamed' END, total, CASE WHEN total = 1 THEN '' ELSE 's' END
			USING ERRCODE = 'foreign_key_violation',
			      DETAIL = format('Used: %s.', array_to_string(uses, ', ')),
			      HINT = format('Move them to another code with SELECT crm.replace_dictionary_code(%L, %L, <new code>), '
			                    'or keep it on them and stop offering it: UPDATE crm.dictionary SET enabled = false WHERE kind = %1$L AND code = %2$L.',
			                    OLD.kind, OLD.code);
	END IF;
	RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
CREATE OR REPLACE TRIGGER dictionary_code_guard BEFORE UPDATE OF kind, code OR DELETE ON crm.dictionary
	FOR EACH ROW EXECUTE FUNCTION crm.guard_dictionary_code();

-- Moves every record from one code to another, in one statement per column,
-- then deletes the old code; returns how many records moved.  Run as the
-- owner by crm.replace_dictionary_code() (src/records/dictionary.c), which
-- checks who asks: every record moves, seen by the administrator or not.  The
-- changes are the system's (crm.change_source): a converted lead, read-only,
-- takes them too.
CREATE OR REPLACE FUNCTION crm.move_dictionary_code(kind text, old_code text, new_code text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET crm.change_source = 'system' AS $$
DECLARE
	col    record;
	n      integer;
	moved  integer := 0;
BEGIN
	IF NOT EXISTS (SELECT FROM crm.dictionary d WHERE d.kind = move_dictionary_code.kind AND d.code = old_code) THEN
		RAISE EXCEPTION 'dictionary "%" has no code "%"', crm.clip(kind), crm.clip(old_code)
			USING ERRCODE = 'no_data_found',
			      HINT = format('SELECT code, label FROM crm.dictionary WHERE kind = %L lists its codes.', kind);
	ELSIF new_code = old_code OR NOT EXISTS (SELECT FROM crm.dictionary d WHERE d.kind = move_dictionary_code.kind
	                                                                      AND d.code = new_code AND d.enabled) THEN
		RAISE EXCEPTION 'records cannot move from code "%" of dictionary "%" to "%"', crm.clip(old_code), crm.clip(kind), crm.clip(new_code)
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = format('Name another enabled code: SELECT code, label FROM crm.dictionary WHERE kind = %L AND enabled.', kind);
	END IF;
	FOR col IN SELECT * FROM crm.dictionary_code_columns(kind) ORDER BY 1, 2 LOOP
		-- (a multiple field holding both codes keeps the new one once, where it was first)
		EXECUTE format(CASE WHEN col.multiple
		                    THEN 'UPDATE crm.%1$I SET %2$I = ARRAY(SELECT c FROM unnest(array_replace(%2$I, $1, $2)) WITH ORDINALITY u(c, i)'
		                         ' GROUP BY c ORDER BY min(i)) WHERE %2$I @> ARRAY[$1]'
		                    ELSE 'UPDATE crm.%1$I SET %2$I = $2 WHERE %2$I = $1' END, col.table_name, col.column_name)
			USING old_code, new_code;
		GET DIAGNOSTICS n = ROW_COUNT;
		moved := moved + n;
	END LOOP;
	DELETE FROM crm.dictionary d WHERE d.kind = move_dictionary_code.kind AND d.code = old_code;
	RETURN moved;
END
$$;
CREATE OR REPLACE FUNCTION crm.replace_dictionary_code(kind text, old_code text, new_code text) RETURNS integer
	AS 'MODULE_PATHNAME', 'crm_replace_dictionary_code' LANGUAGE C;
COMMENT ON FUNCTION crm.replace_dictionary_code(text, text, text) IS
	'Move every record from one code of a dictionary to another, then delete the old code; returns how many records moved';

-- Customer follow-up statuses (跟进状态): at most 10, in order.  One initial
-- status; final ones come last, each won (成单: the customer signed) or lost
-- (丢单), and a won one always exists (39_status_outcomes.sql).
CREATE TABLE crm.customer_status (
	id          bigint GENERATED ALWAYS AS IDENTITY,
	name        text NOT NULL,
	position    integer NOT NULL,
	is_initial  boolean NOT NULL DEFAULT false,
	is_final    boolean NOT NULL DEFAULT false,
	builtin     boolean NOT NULL DEFAULT false,
	CONSTRAINT customer_status_pkey PRIMARY KEY (id),
	CONSTRAINT customer_status_name_key UNIQUE (name),
	CONSTRAINT customer_status_position_key UNIQUE (position) DEFERRABLE INITIALLY IMMEDIATE,
	CONSTRAINT customer_status_name_check CHECK (crm.check_length(name, 200, 'customer_status.name') AND btrim(name) <> ''),
	CONSTRAINT customer_status_not_both CHECK (NOT (is_initial AND is_final))
);
COMMENT ON TABLE crm.customer_status IS 'Customer follow-up statuses (跟进状态): at most 10, in order; one initial, final ones (won or lost) last';
COMMENT ON COLUMN crm.customer_status.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.customer_status.name IS 'Status name people see; unique';
COMMENT ON COLUMN crm.customer_status.position IS 'Order of the statuses; unique';
COMMENT ON COLUMN crm.customer_status.is_initial IS 'The status new customers get; exactly one, which stays initial';
COMMENT ON COLUMN crm.customer_status.is_final IS 'A final status (its outcome says won or lost): its customers have nowhere further to go; fixed while customers have it';
COMMENT ON COLUMN crm.customer_status.builtin IS 'Shipped with crm (a dump leaves it out); kept by crm; not writable';
CREATE UNIQUE INDEX customer_status_one_initial ON crm.customer_status (is_initial) WHERE is_initial;
CREATE UNIQUE INDEX customer_status_one_final ON crm.customer_status (is_final) WHERE is_final;
INSERT INTO crm.customer_status (name, position, is_initial, is_final, builtin) VALUES
	('初步接触', 1, true, false, true),
	('需求确认', 2, false, false, true),
	('方案报价', 3, false, false, true),
	('商务谈判', 4, false, false, true),
	('成交客户', 5, false, true, true);
SELECT crm.keep_builtin_edits('crm.customer_status', 'id');

CREATE OR REPLACE FUNCTION crm.guard_customer_status() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.customer_status'::regclass THEN RAISE 'crm.guard_customer_status() runs only on crm.customer_status, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF TG_OP <> 'DELETE' AND NEW.is_final <> (NEW.outcome IS NOT NULL) THEN
		RAISE EXCEPTION 'customer status "%" %', crm.clip(NEW.name),
			CASE WHEN NEW.is_final THEN 'is final and needs an outcome' ELSE 'is not final and can have no outcome' END
			USING ERRCODE = 'check_violation',
			      DETAIL = 'A final status says whether its customers were won (signed) or lost.',
			      HINT = 'Set is_final and outcome (''won'' or ''lost'') together, or neither.';
	END IF;
	IF TG_OP = 'INSERT' THEN
		IF (SELECT count(*) FROM crm.customer_status) >= 10 THEN
			RAISE EXCEPTION 'customer status "%" would be the 11th', crm.clip(NEW.name)
				USING ERRCODE = 'check_violation',
				      DETAIL = 'A follow-up status list has at most 10 statuses.',
				      HINT = 'Rename or delete a status instead.';
		ELSIF NEW.is_initial THEN
			RAISE EXCEPTION 'customer status "%" cannot be a second initial status', crm.clip(NEW.name)
				USING ERRCODE = 'check_violation',
				      HINT = 'Rename the existing initial status instead.';
		END IF;
	ELSIF TG_OP = 'UPDATE' THEN
		IF NEW.is_initial <> OLD.is_initial THEN
			RAISE EXCEPTION 'customer status "%" cannot change whether it is the initial status', crm.clip(OLD.name)
				USING ERRCODE = 'check_violation',
				      DETAIL = 'New customers start in the initial status; there is always exactly one.',
				      HINT = 'Rename or reorder the statuses instead.';
		ELSIF (NEW.is_final, NEW.outcome) IS DISTINCT FROM (OLD.is_final, OLD.outcome)
		      AND EXISTS (SELECT FROM crm.customer WHERE status_id = OLD.id) THEN
			RAISE EXCEPTION 'customer status "%" is in use and cannot change what it means', crm.clip(OLD.name)
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      DETAIL = 'Whether a status is final, won or lost decides whether its customers count as signed.',
				      HINT = format('Add a status with the new meaning and move the customers: SELECT crm.delete_customer_status(%s, <new status>).', OLD.id);
		END IF;
	ELSIF OLD.is_initial THEN
		RAISE EXCEPTION 'customer status "%" cannot be deleted: it is the initial status', crm.clip(OLD.name)
			USING ERRCODE = 'restrict_violation',
			      DETAIL = 'New customers start in the initial status; there is always exactly one.',
			      HINT = 'Rename it instead.';
	ELSIF EXISTS (SELECT FROM crm.customer WHERE status_id = OLD.id) THEN
		RAISE EXCEPTION 'customer status "%" is still in use', crm.clip(OLD.name)
			USING ERRCODE = 'foreign_key_violation',
			      DETAIL = format('%s customers have it.', (SELECT count(*) FROM crm.customer WHERE status_id = OLD.id)),
			      HINT = format('Use SELECT crm.delete_customer_status(%s, <status its customers move to>).', OLD.id);
	END IF;
	RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
-- runs as the owner: the in-use check must see every customer
ALTER FUNCTION crm.guard_customer_status() SECURITY DEFINER;
-- a restore loads the shipped statuses' edits through crm.builtin_redefined first
CREATE OR REPLACE TRIGGER customer_status_guard BEFORE INSERT OR UPDATE OR DELETE ON crm.customer_status
	FOR EACH ROW EXECUTE FUNCTION crm.guard_customer_status();

CREATE OR REPLACE FUNCTION crm.initial_customer_status() RETURNS bigint
	AS 'MODULE_PATHNAME', 'crm_initial_customer_status' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION crm.initial_customer_status() IS 'The id of the initial customer status: the default of crm.customer.status_id';

-- Deleting a status names where its customers go, in one statement:
-- crm.delete_customer_status() (src/access/org.c) checks who asks, then runs this as
-- the owner, so that every customer of the status moves.
CREATE OR REPLACE FUNCTION crm.move_customer_status(status_id bigint, move_to bigint) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	gone   crm.customer_status := (SELECT s FROM crm.customer_status s WHERE s.id = move_customer_status.status_id);
	target crm.customer_status := (SELECT s FROM crm.customer_status s WHERE s.id = move_to);
	moved  integer;
BEGIN
	IF gone.id IS NULL OR target.id IS NULL OR target.id = gone.id THEN
		RAISE EXCEPTION 'customers of status % cannot move to status %',
			CASE WHEN gone.id IS NULL THEN format('%s, which does not exist,', status_id) ELSE format('"%s"', crm.clip(gone.name)) END,
			CASE WHEN target.id IS NULL THEN format('%s, which does not exist', move_to) ELSE format('"%s"', crm.clip(target.name)) END
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Name another existing status (crm.customer_status).';
	END IF;
	-- forward or backward alike: the status that goes first sorts before every
	-- other, so that no move is back from it (checked when the transaction ends)
	SET CONSTRAINTS crm.customer_status_order, crm.customer_status_position_key DEFERRED;
	UPDATE crm.customer_status SET position = (SELECT min(s.position) - 1 FROM crm.customer_status s) WHERE id = gone.id;
	UPDATE crm.customer SET status_id = move_to WHERE customer.status_id = move_customer_status.status_id;
	GET DIAGNOSTICS moved = ROW_COUNT;
	DELETE FROM crm.customer_status WHERE id = gone.id;
	RETURN moved;
END
$$;
CREATE OR REPLACE FUNCTION crm.delete_customer_status(status_id bigint, move_to bigint) RETURNS integer
	AS 'MODULE_PATHNAME', 'crm_delete_customer_status' LANGUAGE C;
COMMENT ON FUNCTION crm.delete_customer_status(bigint, bigint) IS
	'Delete a customer status, moving its customers to another; returns how many moved';

DO $rules$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['settings', 'dictionary_kind', 'dictionary', 'dictionary_column', 'customer_status'] LOOP
		EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE INSERT OR UPDATE OR DELETE ON crm.%I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin(%L)',
		               t || '_require_admin', t, CASE WHEN t LIKE 'dictionary%' THEN 'admin.fields' ELSE 'admin.rules' END);
		EXECUTE format('GRANT SELECT, DELETE ON crm.%I TO crm_user', t);
	END LOOP;
END
$rules$;
-- "builtin" marks what crm shipped (and pg_dump leaves out): crm's alone, like ids
GRANT UPDATE (status_reversible) ON crm.settings TO crm_user;
GRANT INSERT (kind, code, label, position, enabled), UPDATE (kind, code, label, position, enabled)
	ON crm.dictionary TO crm_user;
GRANT INSERT (kind, label), UPDATE (label) ON crm.dictionary_kind TO crm_user;
GRANT INSERT (table_name, column_name, kind), UPDATE (table_name, column_name, kind) ON crm.dictionary_column TO crm_user;
GRANT INSERT (name, position, is_initial, is_final), UPDATE (name, position, is_initial, is_final)
	ON crm.customer_status TO crm_user;
CREATE OR REPLACE TRIGGER dictionary_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.dictionary
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
CREATE OR REPLACE TRIGGER dictionary_column_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.dictionary_column
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
CREATE OR REPLACE TRIGGER customer_status_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.customer_status
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
ALTER TABLE crm.customer_status ENABLE ALWAYS TRIGGER customer_status_changed;
ALTER TABLE crm.dictionary ENABLE ALWAYS TRIGGER dictionary_changed;
ALTER TABLE crm.dictionary_column ENABLE ALWAYS TRIGGER dictionary_column_changed;

SELECT pg_catalog.pg_extension_config_dump('crm.settings', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('crm.dictionary_kind', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('crm.dictionary', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('crm.dictionary_column', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('crm.customer_status', 'WHERE NOT builtin');
