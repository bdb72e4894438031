-- Custom fields (自定义字段): real, typed columns on lead, customer or contact,
-- described by rows of crm.added_field.  Inserting a row adds the column (and
-- its checks and index); deleting it drops the column.  crm.add_field() and
-- crm.drop_field() are the friendly way to do both.
--
-- The name sorts before contact, customer and lead on purpose: a restore loads
-- tables in name order, and must re-create the columns before their data.
CREATE TABLE crm.added_field (
	record_type  text NOT NULL,
	name         text NOT NULL,
	type         text NOT NULL,
	label        text,
	required     boolean NOT NULL DEFAULT false,
	filterable   boolean NOT NULL DEFAULT false,
	dictionary   text,
	created_at   timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT added_field_pkey PRIMARY KEY (record_type, name),
	CONSTRAINT added_field_name_check CHECK (name ~ '^[a-z][a-z0-9_]{1,40}$'),
	CONSTRAINT added_field_type_check CHECK (type IN
		('text', 'number', 'money', 'date', 'datetime', 'boolean', 'single', 'multiple', 'phone', 'email')),
	CONSTRAINT added_field_dictionary_check CHECK ((type IN ('single', 'multiple')) = (dictionary IS NOT NULL)),
	CONSTRAINT added_field_label_length CHECK (crm.check_length(label, 200, 'added_field.label')),
	CONSTRAINT added_field_dictionary_kind_check CHECK (octet_length(dictionary) <= 30 AND dictionary ~ '^[a-z][a-z0-9_]{0,29}$')
);
COMMENT ON TABLE crm.added_field IS 'Custom fields: each row is a real column of its record table; insert or delete rows to add or drop them';
COMMENT ON COLUMN crm.added_field.record_type IS 'Record type the field is a column of: lead, customer or contact (types with custom_fields)';
COMMENT ON COLUMN crm.added_field.name IS 'Column name: 2 to 41 lowercase letters, digits and underscores; cannot change';
COMMENT ON COLUMN crm.added_field.type IS 'text, number, money, date, datetime, boolean, single, multiple, phone or email; cannot change';
COMMENT ON COLUMN crm.added_field.label IS 'What people see for the field (exports key its values by it); at most 200 characters';
COMMENT ON COLUMN crm.added_field.required IS 'The column is NOT NULL; refused on a table with rows lacking a value';
COMMENT ON COLUMN crm.added_field.filterable IS 'The column is indexed (GIN for multiple)';
COMMENT ON COLUMN crm.added_field.dictionary IS 'Dictionary kind (crm.dictionary) whose enabled codes a single or multiple field takes; cannot change';
COMMENT ON COLUMN crm.added_field.created_at IS 'When the field was added; kept by crm; not writable';

CREATE OR REPLACE FUNCTION crm.added_field_ddl() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	f        crm.added_field;
	coltype  text;
	restoring boolean := crm.restoring();
BEGIN
	IF TG_RELID <> 'crm.added_field'::regclass THEN RAISE 'crm.added_field_ddl() runs only on crm.added_field, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	f := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
	-- the table's checks come after this trigger: say precisely what is wrong first
	IF TG_OP = 'INSERT' THEN
		IF NOT crm.record_type_has(f.record_type, 'custom_fields') THEN
			RAISE EXCEPTION 'custom fields cannot be added to % records', crm.clip(f.record_type)
				USING ERRCODE = 'invalid_parameter_value',
				      HINT = format('Add them to %s (the record types with custom_fields).', crm.record_types_with('custom_fields'));
		ELSIF f.name IS NULL OR f.name !~ '^[a-z][a-z0-9_]{1,40}$' THEN
			RAISE EXCEPTION 'custom field name "%" is not a plain lowercase name', crm.clip(f.name)
				USING ERRCODE = 'invalid_name',
				      HINT = 'Use 2 to 41 lowercase letters, digits and underscores, starting with a letter.';
		ELSIF f.type IS NULL OR f.type <> ALL (ARRAY['text', 'number', 'money', 'date', 'datetime', 'boolean',
		                                            'single', 'multiple', 'phone', 'email']) THEN
			RAISE EXCEPTION 'custom field type "%" does not exist', crm.clip(f.type)
				USING ERRCODE = 'invalid_parameter_value',
				      HINT = 'Types: text, number, money, date, datetime, boolean, single, multiple, phone, email.';
		ELSIF (f.type IN ('single', 'multiple')) <> (f.dictionary IS NOT NULL) THEN
			RAISE EXCEPTION 'custom field "%" of type % %', crm.clip(f.name), f.type,
				CASE WHEN f.dictionary IS NULL THEN 'needs a dictionary' ELSE 'takes no dictionary' END
				USING ERRCODE = 'invalid_parameter_value',
				      HINT = 'Single and multiple choice fields take their options from a dictionary, e.g. dictionary => ''industry''.';
		END IF;
	END IF;
	IF TG_OP = 'DELETE' THEN
		EXECUTE format('ALTER TABLE crm.%I DROP COLUMN %I', f.record_type, f.name);
		DELETE FROM crm.dictionary_column WHERE table_name = f.record_type AND column_name = f.name;
		RETURN OLD;
	END IF;
	IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = format('crm.%I', f.record_type)::regclass
	                                        AND attname = f.name AND NOT attisdropped) THEN
		RAISE EXCEPTION 'crm.% already has a column named "%"', f.record_type, crm.clip(f.name)
			USING ERRCODE = 'duplicate_column',
			      HINT = 'Choose another name for the custom field.';
	END IF;
	IF f.dictionary IS NOT NULL AND NOT EXISTS (SELECT FROM crm.dictionary_kind WHERE kind = f.dictionary) AND NOT restoring THEN
		RAISE EXCEPTION 'custom field "%" names dictionary "%", which does not exist', crm.clip(f.name), crm.clip(f.dictionary)
			USING ERRCODE = 'foreign_key_violation',
			      HINT = 'SELECT kind, label FROM crm.dictionary_kind lists the dictionaries; INSERT INTO crm.dictionary_kind (kind, label) adds one.';
	END IF;
	coltype := CASE f.type WHEN 'number' THEN 'numeric' WHEN 'money' THEN 'numeric(14,2)' WHEN 'date' THEN 'date'
	                       WHEN 'datetime' THEN 'timestamptz' WHEN 'boolean' THEN 'boolean'
	                       WHEN 'multiple' THEN 'text[]' ELSE 'text' END;
	EXECUTE format('ALTER TABLE crm.%I ADD COLUMN %I %s', f.record_type, f.name, coltype);
	-- staff write the columns they are granted (src/sql/40_records.sql): a custom field is theirs
	EXECUTE format('GRANT INSERT (%2$I), UPDATE (%2$I) ON crm.%1$I TO crm_user', f.record_type, f.name);
	IF f.type = 'email' THEN
		EXECUTE format('ALTER TABLE crm.%I ADD CONSTRAINT %I CHECK (crm.check_email(%I))',
		               f.record_type, f.record_type || '_' || f.name || '_check', f.name);
	ELSIF f.type = 'phone' THEN
		EXECUTE format('ALTER TABLE crm.%I ADD CONSTRAINT %I CHECK (%I ~ ''^\+?[0-9][0-9 -]{4,19}$'')',
		               f.record_type, f.record_type || '_' || f.name || '_check', f.name);
	ELSIF f.type = 'text' THEN
		EXECUTE format('ALTER TABLE crm.%I ADD CONSTRAINT %I CHECK (crm.check_length(%I, 2000, %L))',
		               f.record_type, f.record_type || '_' || f.name || '_check', f.name, f.record_type || '.' || f.name);
	ELSIF f.type = 'money' THEN
		EXECUTE format('ALTER TABLE crm.%I ADD CONSTRAINT %I CHECK (%I >= 0)',
		               f.record_type, f.record_type || '_' || f.name || '_check', f.name);
	END IF;
	-- (a restore brings the mapping with crm.dictionary_column's rows)
	IF f.type IN ('single', 'multiple') AND NOT restoring THEN
		INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES (f.record_type, f.name, f.dictionary)
		ON CONFLICT DO NOTHING;
	END IF;
	-- (a restore creates the column before loading any row: NOT NULL holds then too)
	IF f.required THEN
		BEGIN
			EXECUTE format('ALTER TABLE crm.%I ALTER COLUMN %I SET NOT NULL', f.record_type, f.name);
		EXCEPTION WHEN not_null_violation THEN
			RAISE EXCEPTION 'required custom field "%" cannot be added to crm.%, which has rows', crm.clip(f.name), f.record_type
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      DETAIL = 'Existing rows would have no value for it.',
				      HINT = 'Add it as not required, fill it in, then UPDATE crm.added_field SET required = true.';
		END;
	END IF;
	IF f.filterable THEN
		EXECUTE format('CREATE INDEX %I ON crm.%I %s (%I)', f.record_type || '_' || f.name || '_idx', f.record_type,
		               CASE WHEN f.type = 'multiple' THEN 'USING gin' ELSE '' END, f.name);
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER added_field_ddl BEFORE INSERT OR DELETE ON crm.added_field
	FOR EACH ROW EXECUTE FUNCTION crm.added_field_ddl();

-- Switching required or filterable later.
CREATE OR REPLACE FUNCTION crm.added_field_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.added_field'::regclass THEN RAISE 'crm.added_field_change() runs only on crm.added_field, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF (NEW.record_type, NEW.name, NEW.type, NEW.dictionary) IS DISTINCT FROM (OLD.record_type, OLD.name, OLD.type, OLD.dictionary) THEN
		RAISE EXCEPTION 'custom field "%" of crm.% cannot change its name, type or dictionary', crm.clip(OLD.name), OLD.record_type
			USING ERRCODE = 'feature_not_supported',
			      HINT = 'Add a new field and copy the values over, then drop this one.';
	END IF;
	IF NEW.required <> OLD.required THEN
		EXECUTE format('ALTER TABLE crm.%I ALTER COLUMN %I %s NOT NULL', NEW.record_type, NEW.name,
		               CASE WHEN NEW.required THEN 'SET' ELSE 'DROP' END);
	END IF;
	IF NEW.filterable <> OLD.filterable THEN
		EXECUTE CASE WHEN NEW.filterable
		             THEN format('CREATE INDEX %I ON crm.%I %s (%I)', NEW.record_type || '_' || NEW.name || '_idx', NEW.record_type,
		                         CASE WHEN NEW.type = 'multiple' THEN 'USING gin' ELSE '' END, NEW.name)
		             ELSE format('DROP INDEX crm.%I', NEW.record_type || '_' || NEW.name || '_idx') END;
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER added_field_change BEFORE UPDATE ON crm.added_field
	FOR EACH ROW EXECUTE FUNCTION crm.added_field_change();

-- crm 0.1 checked multiple-choice fields with a constraint, which refused
-- every change of a record keeping a code disabled since: their values are
-- checked as single ones are now, through a mapping (src/records/dictionary.c).
DO $multiple$
DECLARE
	f crm.added_field;
BEGIN
	FOR f IN SELECT * FROM crm.added_field a WHERE a.type = 'multiple'
	          AND NOT EXISTS (SELECT FROM crm.dictionary_column c WHERE c.table_name = a.record_type AND c.column_name = a.name) LOOP
		EXECUTE format('ALTER TABLE crm.%I DROP CONSTRAINT IF EXISTS %I', f.record_type, f.record_type || '_' || f.name || '_check');
		INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES (f.record_type, f.name, f.dictionary);
	END LOOP;
	DROP FUNCTION IF EXISTS crm.check_codes(text, text[]);
END
$multiple$;

-- Who may is checked as the caller (the statement trigger fires first); the
-- DDL then runs as the owner of the crm tables.
CREATE OR REPLACE TRIGGER added_field_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.added_field
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('admin.fields');
ALTER FUNCTION crm.added_field_ddl() SECURITY DEFINER;
ALTER FUNCTION crm.added_field_change() SECURITY DEFINER;
GRANT SELECT, DELETE ON crm.added_field TO crm_user;
GRANT INSERT (record_type, name, type, label, required, filterable, dictionary),
      UPDATE (record_type, name, type, label, required, filterable, dictionary)
	ON crm.added_field TO crm_user;

-- The friendly forms.  They run as the caller: crm.added_field's rules decide.
CREATE OR REPLACE FUNCTION crm.add_field(record_type text, name text, type text, required boolean DEFAULT false,
                              filterable boolean DEFAULT false, dictionary text DEFAULT NULL, label text DEFAULT NULL)
RETURNS void LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	INSERT INTO crm.added_field (record_type, name, type, required, filterable, dictionary, label)
	VALUES (record_type, name, type, required, filterable, dictionary, label);
END;
CREATE OR REPLACE FUNCTION crm.drop_field(record_type text, name text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	DELETE FROM crm.added_field f WHERE f.record_type = drop_field.record_type AND f.name = drop_field.name;
END;
COMMENT ON FUNCTION crm.drop_field(text, text) IS 'Drop a custom field: its crm.added_field row and its column, with the values';
COMMENT ON FUNCTION crm.add_field(text, text, text, boolean, boolean, text, text) IS
	'Add a custom field: a typed column (text, number, money, date, datetime, boolean, single, multiple, phone, email)';
