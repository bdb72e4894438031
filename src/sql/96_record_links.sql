-- Rows that point at a record by a pair of columns (<name>_type, <name>_id):
-- team entries, follow-ups, tags, pins, attachments, duplicate pairs,
-- notifications, the operation log, and whatever table comes next.  Foreign
-- keys cannot hold such a pair, so these triggers do what they would: a link
-- names a record that exists when it is written (the record is locked FOR KEY
-- SHARE, so that a concurrent delete waits for the writer, or the writer for
-- it), and goes with the record (a nullable link is cleared, the operation
-- log keeps its history).  The links are found in the catalog, not listed, so
-- that a new table is covered the day it is created.  Who may write links is
-- for their policies; these triggers hold for every writer, crm's own code
-- included.

-- Every pair of columns in crm that names a record, and what deleting the
-- record does to the rows: 'delete' them, 'set null' (an optional reference,
-- such as a notification about the record) or 'keep' (history).
CREATE OR REPLACE FUNCTION crm.record_links()
	RETURNS TABLE (link_table regclass, type_column name, id_column name, on_delete text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT c.oid::regclass, t.attname, i.attname,
	       CASE WHEN c.relname = 'oplog' THEN 'keep' WHEN i.attnotnull THEN 'delete' ELSE 'set null' END
	  FROM pg_class c
	  JOIN pg_attribute t ON t.attrelid = c.oid AND t.attnum > 0 AND NOT t.attisdropped
	                     AND t.atttypid = 'text'::regtype AND t.attname LIKE '%\_type'
	  JOIN pg_attribute i ON i.attrelid = c.oid AND i.attnum > 0 AND NOT i.attisdropped
	                     AND i.atttypid = 'bigint'::regtype AND i.attname = left(t.attname, -4) || 'id'
	 WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind IN ('r', 'p')
	   -- a shared row's scope is crm's copy of its deciding record, kept by
	   -- crm.record_scope_moved() and not a link (97_record_types.sql)
	   AND t.attname <> 'scope_type'
	   -- a custom field is data, never a link: a text field contact.customer_type
	   -- beside customer_id made deleting a lead delete another customer's contacts
	   AND NOT EXISTS (SELECT FROM crm.added_field f WHERE f.record_type = c.relname AND f.name IN (t.attname, i.attname))
	 ORDER BY 1, 2
$$;
COMMENT ON FUNCTION crm.record_links() IS
	'Every (type, id) column pair in crm that points at a record, and what deleting the record does to its rows: delete, set null or keep (the operation log)';

-- The registration of a record type (crm.register_record_type) attaches the
-- delete and truncate triggers below to its table; its links are found by
-- crm.record_links().

CREATE OR REPLACE FUNCTION crm.check_record_links() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	l          record;
	t          record;
	missing    bigint;
	capability text;
	relation   regclass;
	same_row   text;
	scoped     boolean;
BEGIN
	IF TG_RELID <> ALL (ARRAY(SELECT k.link_table FROM crm.record_links() k WHERE k.on_delete = 'delete')) THEN RAISE 'crm.check_record_links() runs only on tables that point at records (crm.record_links()), not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- a restore loads these rows before their records
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	scoped := TG_RELID IN (SELECT crm.scoped_tables());
	-- an update checks the rows it points elsewhere, not those it left alone
	-- (a row is known by its primary key)
	SELECT string_agg(format('o.%1$I = n.%1$I', a.attname), ' AND ') INTO same_row
	  FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
	 WHERE i.indrelid = TG_RELID AND i.indisprimary;
	FOR l IN SELECT k.type_column, k.id_column FROM crm.record_links() k WHERE k.link_table = TG_RELID LOOP
		FOR t IN EXECUTE format('SELECT n.%1$I AS record_type, array_agg(DISTINCT n.%2$I) AS ids FROM new_rows n'
		                        || CASE WHEN TG_OP = 'UPDATE' THEN ' WHERE NOT EXISTS (SELECT FROM old_rows o WHERE %3$s'
		                                                           ' AND o.%1$I = n.%1$I AND o.%2$I = n.%2$I)' ELSE '' END
		                        || ' GROUP BY 1', l.type_column, l.id_column, coalesce(same_row, 'true')) LOOP
			-- a shared table takes the types registered with its capability
			SELECT k.name INTO capability FROM crm.record_capability k WHERE k.link_table = TG_TABLE_NAME;
			IF capability IS NOT NULL AND NOT crm.record_type_has(t.record_type, capability) THEN
				RAISE EXCEPTION 'crm.% cannot point at % records', TG_TABLE_NAME, crm.clip(t.record_type)
					USING ERRCODE = 'check_violation',
					      DETAIL = format('%s records do not take part in %s (crm.record_type).', crm.clip(t.record_type), capability),
					      HINT = format('The record types with %s: %s.', capability, crm.record_types_with(capability));
			END IF;
			SELECT r.relation INTO relation FROM crm.record_type r WHERE r.name = t.record_type;
			IF relation IS NOT NULL THEN
				EXECUTE format('WITH present AS MATERIALIZED (SELECT r.id FROM %s r WHERE r.id = ANY ($1) FOR KEY SHARE)'
				               ' SELECT min(x) FROM unnest($1) x WHERE x NOT IN (SELECT id FROM present)', relation)
					INTO missing USING t.ids;
			ELSE
				missing := t.ids[1];	-- not a record type
			END IF;
			IF missing IS NOT NULL THEN
				RAISE EXCEPTION 'crm.% cannot point at % %, which does not exist', TG_TABLE_NAME, crm.clip(t.record_type), missing
					USING ERRCODE = 'foreign_key_violation',
					      DETAIL = 'Team entries, follow-ups, tags, pins and attachments belong to a record that exists, and go with it.',
					      HINT = format('Name an existing %s.', crm.clip(t.record_type));
			END IF;
			-- rows that carry a scope: the owner they were stamped with is the owner now
			IF scoped THEN
				PERFORM crm.lock_record_scopes(t.record_type, t.ids, TG_RELID);
			END IF;
		END LOOP;
	END LOOP;
	RETURN NULL;
END
$$;

-- What ON DELETE CASCADE (or SET NULL) would do for every link of the given
-- records, set-based; ids NULL: every record of the type (a TRUNCATE).  Links
-- that are records themselves (follow-ups) take their own links along, through
-- their own trigger.  Internal: only the triggers below call it.
CREATE OR REPLACE FUNCTION crm.change_record_links(statement text, record_type text, ids bigint[]) RETURNS void
	AS 'MODULE_PATHNAME', 'crm_change_record_links' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION crm.change_record_links(text, text, bigint[]) IS
	'Run a statement dropping or unsetting links of deleted records, as a foreign key''s action would (crm''s own)';

CREATE OR REPLACE FUNCTION crm.drop_record_links(record_type text, ids bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	l record;
BEGIN
	-- (a statement that deleted nothing still fires its triggers: stop here)
	IF ids = '{}' THEN
		RETURN;
	END IF;
	-- (each as a foreign key's action: a link committed after a repeatable
	-- read transaction's snapshot fails it rather than outlive its record)
	-- (history is kept, but no longer shown by the record's scope: to whoever made it)
	FOR l IN SELECT * FROM crm.record_links() k
	          WHERE k.on_delete <> 'keep' OR k.link_table IN (SELECT crm.scoped_tables()) LOOP
		PERFORM crm.change_record_links(
			format(CASE l.on_delete WHEN 'delete' THEN 'DELETE FROM %1$s WHERE %2$I = $1 AND ($2 IS NULL OR %3$I = ANY ($2))'
			                        WHEN 'keep' THEN 'UPDATE %1$s SET scope_type = NULL, scope_owner = NULL, scope_id = NULL'
			                                         ' WHERE %2$I = $1 AND ($2 IS NULL OR %3$I = ANY ($2)) AND scope_type IS NOT NULL'
			                        ELSE 'UPDATE %1$s SET %2$I = NULL, %3$I = NULL WHERE %2$I = $1 AND ($2 IS NULL OR %3$I = ANY ($2))' END,
			       l.link_table, l.type_column, l.id_column),
			record_type, ids);
	END LOOP;
END
$$;

-- After a statement deleted records: refuse when a foreign key that does not
-- cascade still names one of them (before PostgreSQL's own check at commit,
-- with the record's name and the constraint's comment as the hint), else drop
-- their links.
CREATE OR REPLACE FUNCTION crm.record_deleted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	k     record;
	hit   record;
	rtype text;
BEGIN
	IF TG_RELID <> ALL (ARRAY(SELECT r.relation FROM crm.record_type r)) THEN RAISE 'crm.record_deleted() runs only on the record tables (crm.record_type), not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	rtype := (SELECT r.name FROM crm.record_type r WHERE r.relation = TG_RELID);
	IF TG_OP = 'TRUNCATE' THEN
		PERFORM crm.drop_record_links(rtype, NULL);
		RETURN NULL;
	END IF;
	IF NOT EXISTS (SELECT FROM deleted) THEN
		RETURN NULL;
	END IF;
	FOR k IN SELECT c.oid, c.conname, c.conrelid::regclass AS tbl, a.attname AS col
	           FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
	          WHERE c.confrelid = TG_RELID AND c.contype = 'f' AND c.confdeltype IN ('a', 'r') AND cardinality(c.conkey) = 1
	          ORDER BY c.conname LOOP
		-- (the record named by its type's title, else its name)
		EXECUTE format('SELECT r.id, %s AS name, count(*) AS n FROM deleted r JOIN %s x ON x.%I = r.id'
		               ' GROUP BY r.id, 2 ORDER BY r.id LIMIT 1',
		               coalesce((SELECT t.title FROM crm.record_type t WHERE t.relation = TG_RELID), 'to_jsonb(r) ->> ''name'''),
		               k.tbl, k.col) INTO hit;
		IF hit.id IS NOT NULL THEN
			RAISE EXCEPTION '% % (%) cannot be deleted: % % of % %',
				rtype, hit.id, crm.clip(hit.name), hit.n, CASE WHEN hit.n = 1 THEN 'row' ELSE 'rows' END, k.tbl,
				CASE WHEN hit.n = 1 THEN 'points at it' ELSE 'point at it' END
				USING ERRCODE = 'foreign_key_violation',
				      DETAIL = format('Constraint %s on %s.', k.conname, k.tbl),
				      HINT = coalesce(obj_description(k.oid, 'pg_constraint'), format('Delete or change the rows of %s first.', k.tbl)),
				      CONSTRAINT = k.conname, TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
		END IF;
	END LOOP;
	PERFORM crm.drop_record_links(rtype, ARRAY(SELECT d.id FROM deleted d));
	RETURN NULL;
END
$$;

-- Attachments keep only the key of their file; when a row goes, by a delete,
-- with its record or by TRUNCATE, the key is queued here so that the file store
-- can be cleaned (docs/records.md).  Drained by the DBA or the application.
CREATE TABLE crm.file_removal (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	storage_key  text NOT NULL,
	file_name    text NOT NULL,
	size_bytes   bigint NOT NULL,
	queued_at    timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT file_removal_pkey PRIMARY KEY (id)
);
COMMENT ON COLUMN crm.file_removal.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.file_removal.storage_key IS 'Key of the object in the file store; kept by crm; not writable';
COMMENT ON COLUMN crm.file_removal.file_name IS 'The attachment''s file name; kept by crm; not writable';
COMMENT ON COLUMN crm.file_removal.size_bytes IS 'File size in bytes; kept by crm; not writable';
COMMENT ON COLUMN crm.file_removal.queued_at IS 'When the attachment went; kept by crm; not writable';
CREATE INDEX file_removal_storage_key_idx ON crm.file_removal (storage_key);
COMMENT ON TABLE crm.file_removal IS
	'Files of deleted attachments, to remove from the file store; crm.files_to_remove leaves out keys an attachment uses again';
ALTER TABLE crm.file_removal ENABLE ROW LEVEL SECURITY;

-- what the file store may delete now: a key written again since (a restored
-- attachment) is not listed
CREATE OR REPLACE VIEW crm.files_to_remove AS
SELECT f.id, f.storage_key, f.file_name, f.size_bytes, f.queued_at
  FROM crm.file_removal f
 WHERE NOT EXISTS (SELECT FROM crm.attachment a WHERE a.storage_key = f.storage_key);
COMMENT ON VIEW crm.files_to_remove IS
	'Stored files no attachment uses any more: remove each from the file store, then DELETE its row from crm.file_removal';
COMMENT ON COLUMN crm.files_to_remove.id IS 'Row of crm.file_removal to delete once the file is removed';
COMMENT ON COLUMN crm.files_to_remove.storage_key IS 'Key of the object to remove from the file store';
COMMENT ON COLUMN crm.files_to_remove.file_name IS 'The attachment''s file name';
COMMENT ON COLUMN crm.files_to_remove.size_bytes IS 'File size in bytes';
COMMENT ON COLUMN crm.files_to_remove.queued_at IS 'When the attachment went';

CREATE OR REPLACE FUNCTION crm.queue_file_removal() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.attachment'::regclass THEN RAISE 'crm.queue_file_removal() runs only on crm.attachment, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF TG_OP = 'TRUNCATE' THEN	-- (BEFORE TRUNCATE: the rows are still there)
		INSERT INTO crm.file_removal (storage_key, file_name, size_bytes)
		SELECT a.storage_key, a.file_name, a.size_bytes FROM crm.attachment a;
	ELSE
		INSERT INTO crm.file_removal (storage_key, file_name, size_bytes)
		SELECT d.storage_key, d.file_name, d.size_bytes FROM deleted d;
	END IF;
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER attachment_file_removal AFTER DELETE ON crm.attachment REFERENCING OLD TABLE AS deleted
	FOR EACH STATEMENT EXECUTE FUNCTION crm.queue_file_removal();
CREATE OR REPLACE TRIGGER attachment_file_removal_truncate BEFORE TRUNCATE ON crm.attachment
	FOR EACH STATEMENT EXECUTE FUNCTION crm.queue_file_removal();

-- (this piece comes after every table of crm, so that all links are found)
DO $links$
DECLARE
	t text;
BEGIN
	FOR t IN SELECT DISTINCT c.relname FROM crm.record_links() k JOIN pg_class c ON c.oid = k.link_table
	          WHERE k.on_delete = 'delete' ORDER BY 1 LOOP
		EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER INSERT ON crm.%I REFERENCING NEW TABLE AS new_rows'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.check_record_links()', t || '_record_exists', t);
		EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER UPDATE ON crm.%I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.check_record_links()', t || '_record_still_exists', t);
	END LOOP;
END
$links$;
