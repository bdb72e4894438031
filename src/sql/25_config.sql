-- Configuration tables that ship builtin rows (crm.job now; statuses, dictionaries
-- later) carry a "builtin" flag and are dumped with the filter WHERE NOT builtin.
-- A builtin row a DBA edits stops being builtin, so pg_dump keeps the edit; when a
-- restore (or anyone) inserts a row whose key names a builtin row, the builtin row
-- takes the new values instead of a duplicate-key error.

CREATE OR REPLACE FUNCTION crm.builtin_edited() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_TABLE_SCHEMA <> 'crm' THEN RAISE 'crm.builtin_edited() cannot run on %.%', TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'wrong_object_type'; END IF;
	NEW.builtin := false;
	RETURN NEW;
END
$$;

-- BEFORE INSERT row trigger; the arguments name the key columns.  It runs as
-- the caller, who writes the columns staff may write: the builtin flag is
-- left to crm.builtin_edited (a redefinition equal to the shipped row stays
-- builtin).
CREATE OR REPLACE FUNCTION crm.builtin_redefined() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	cols    text;
	keys    text;
	updated integer;
BEGIN
	IF TG_TABLE_SCHEMA <> 'crm' THEN RAISE 'crm.builtin_redefined() cannot run on %.%', TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'wrong_object_type'; END IF;
	SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
	  FROM pg_attribute
	 WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped
	   AND attname <> ALL (TG_ARGV || 'builtin'::text) AND attidentity = '' AND attgenerated = '';
	SELECT string_agg(format('t.%1$I = (jsonb_populate_record(NULL::%2$I.%3$I, $1)).%1$I',
	                         k, TG_TABLE_SCHEMA, TG_TABLE_NAME), ' AND ') INTO keys
	  FROM unnest(TG_ARGV) k;
	EXECUTE format('UPDATE %1$I.%2$I t SET (%3$s) = (SELECT %3$s FROM jsonb_populate_record(NULL::%1$I.%2$I, $1))'
	               ' WHERE %4$s AND t.builtin',
	               TG_TABLE_SCHEMA, TG_TABLE_NAME, cols, keys)
		USING to_jsonb(NEW);
	GET DIAGNOSTICS updated = ROW_COUNT;
	IF updated > 0 THEN
		RETURN NULL;
	END IF;
	RETURN NEW;
END
$$;

-- Both triggers, for a configuration table that ships builtin rows.
CREATE OR REPLACE FUNCTION crm.keep_builtin_edits(tab regclass, VARIADIC keys text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	name text := (SELECT relname FROM pg_class WHERE oid = tab);
BEGIN
	EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE UPDATE ON %s FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)'
	               ' EXECUTE FUNCTION crm.builtin_edited()', name || '_builtin_edited', tab);
	EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION crm.builtin_redefined(%s)',
	               name || '_builtin_redefined', tab,
	               (SELECT string_agg(quote_literal(k), ', ') FROM unnest(keys) k));
END
$$;
