-- Configuration tables that ship builtin rows (crm.job now; statuses, dictionaries
-- later) carry a "builtin" flag and are dumped with the filter WHERE NOT builtin.
-- A builtin row a DBA edits stops being builtin, so pg_dump keeps the edit; when a
-- restore (or anyone) inserts a row whose key names a builtin row, the builtin row
-- takes the new values instead of a duplicate-key error.

CREATE FUNCTION crm.builtin_edited() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	NEW.builtin := false;
	RETURN NEW;
END
$$;

-- BEFORE INSERT row trigger; TG_ARGV[0] names the key column.
CREATE FUNCTION crm.builtin_redefined() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	key     text := TG_ARGV[0];
	cols    text;
	updated integer;
BEGIN
	SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
	  FROM pg_attribute
	 WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped
	   AND attname <> key AND attidentity = '' AND attgenerated = '';
	EXECUTE format('UPDATE %1$I.%2$I t SET (%3$s) = (SELECT %3$s FROM jsonb_populate_record(NULL::%1$I.%2$I, $1))'
	               ' WHERE t.%4$I = (jsonb_populate_record(NULL::%1$I.%2$I, $1)).%4$I AND t.builtin',
	               TG_TABLE_SCHEMA, TG_TABLE_NAME, cols, key)
		USING to_jsonb(NEW);
	GET DIAGNOSTICS updated = ROW_COUNT;
	IF updated > 0 THEN
		RETURN NULL;
	END IF;
	RETURN NEW;
END
$$;
