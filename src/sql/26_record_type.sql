-- The record-type registry (docs/adding-a-record-type.md): one row per kind of
-- business record, naming its table, its labels, how its visibility is decided
-- and the shared capabilities it takes part in.  crm's own types are registered
-- by crm.register_record_type in 97_record_types.sql, which installs what each
-- capability needs; the shared tables read the registry instead of lists.

-- The capabilities a record type can take part in (shipped with crm; read-only).
-- link_table: the table of crm whose rows point at records (record_type,
-- record_id) of the types that have the capability, and of no others.
CREATE TABLE crm.record_capability (
	name         text NOT NULL,
	description  text NOT NULL,
	link_table   name,
	CONSTRAINT record_capability_pkey PRIMARY KEY (name)
);
COMMENT ON TABLE crm.record_capability IS 'The shared capabilities a record type can take part in (shipped with crm; read-only)';
COMMENT ON COLUMN crm.record_capability.name IS 'Capability name, e.g. follow_ups, tags, export';
COMMENT ON COLUMN crm.record_capability.description IS 'What taking part means';
COMMENT ON COLUMN crm.record_capability.link_table IS 'The shared table whose rows point at records of the types taking part, if any';
INSERT INTO crm.record_capability (name, description, link_table) VALUES
	('team',          '协作人: employees with read or edit access to a record', 'team_member'),
	('follow_ups',    '跟进记录: follow-ups written about a record', 'follow_up'),
	('tags',          '标签', 'record_tag'),
	('pins',          '关注: records an employee pinned', 'pin'),
	('attachments',   '附件', 'attachment'),
	('custom_fields', '自定义字段: columns an administrator adds (crm.add_field)', NULL),
	('dictionaries',  'columns whose values come from a dictionary (crm.dictionary_column)', NULL),
	('oplog',         '操作日志: every change, who made it and when (crm.oplog)', NULL),
	('timeline',      'the record''s history in one list (crm.timeline)', NULL),
	('transfer',      '转移: handing records to another owner (crm.transfer_records)', NULL),
	('handover',      '离职交接: a leaver''s records to a successor (crm.handover_employee)', NULL),
	('merge',         '合并: two records of one party made one (crm.merge_customers)', NULL),
	('export',        '导出 (crm.customer_export)', NULL),
	('import',        '导入 (crm.import_customers)', NULL),
	('duplicates',    '查重: duplicate rules compare it (crm.dedupe_rule)', NULL),
	('notifications', 'events about it tell its owner, superior, leader or team (crm.notification_rule)', NULL),
	('search',        '搜索: IM bots find it by a keyword in its search columns (crm.bot_search)', NULL);

CREATE TABLE crm.record_type (
	name           text NOT NULL,
	relation       regclass NOT NULL,
	label_zh       text NOT NULL,
	label_en       text NOT NULL,
	visibility     text NOT NULL,
	parent         text,
	parent_column  name,
	capabilities   text[] NOT NULL DEFAULT '{}',
	docs           text NOT NULL,
	position       integer NOT NULL,
	title          text,
	search_columns name[] NOT NULL DEFAULT '{}',
	CONSTRAINT record_type_pkey PRIMARY KEY (name),
	CONSTRAINT record_type_relation_key UNIQUE (relation),
	CONSTRAINT record_type_position_key UNIQUE (position),
	CONSTRAINT record_type_parent_fkey FOREIGN KEY (parent) REFERENCES crm.record_type (name),
	CONSTRAINT record_type_visibility_check CHECK (visibility IN ('owner', 'parent', 'record')),
	CONSTRAINT record_type_docs_check CHECK (docs ~ '^[a-z0-9-]+\.md$'),
	-- (src/access/scope.c keeps a slot per position)
	CONSTRAINT record_type_position_check CHECK (position BETWEEN 1 AND 64),
	CONSTRAINT record_type_parent_check CHECK
		((visibility = 'parent') = (parent IS NOT NULL AND parent_column IS NOT NULL))
);
COMMENT ON COLUMN crm.record_type.name IS 'Type name used in record_type columns, e.g. customer';
COMMENT ON COLUMN crm.record_type.relation IS 'The type''s table';
COMMENT ON COLUMN crm.record_type.label_zh IS 'Chinese name people see, e.g. 客户';
COMMENT ON COLUMN crm.record_type.label_en IS 'English name';
COMMENT ON COLUMN crm.record_type.parent IS 'visibility parent: the type whose records decide who sees these';
COMMENT ON COLUMN crm.record_type.parent_column IS 'visibility parent: the column naming the parent record';
COMMENT ON COLUMN crm.record_type.position IS 'Order of the types (1 to 64)';
CREATE INDEX record_type_parent_idx ON crm.record_type (parent);
COMMENT ON TABLE crm.record_type IS 'The business record types and the shared capabilities each takes part in (crm''s own; read-only)';
COMMENT ON COLUMN crm.record_type.visibility IS
	'owner: its owner_id under the data scope of a role, and its team; parent: with the record its parent_column names; record: its author, and whoever sees the record it is about';
COMMENT ON COLUMN crm.record_type.docs IS 'The page of docs/ that explains the type (the catalog test checks it names the type)';
COMMENT ON COLUMN crm.record_type.capabilities IS 'Names of crm.record_capability: the shared tables and functions that take this type';
COMMENT ON COLUMN crm.record_type.title IS 'How a record is named in lists and bot answers: an SQL expression over its row as r (r.name)';
COMMENT ON COLUMN crm.record_type.search_columns IS 'search: the text columns a keyword is looked for in (crm.bot_search)';

-- A type must make sense when registered: its table in crm with a bigint id,
-- an owner_id for owner visibility, a parent column that is a bigint, known
-- capabilities.
CREATE OR REPLACE FUNCTION crm.record_type_valid() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	unknown text;
BEGIN
	IF TG_RELID <> 'crm.record_type'::regclass THEN RAISE 'crm.record_type_valid() runs only on crm.record_type, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF NOT EXISTS (SELECT FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
	                WHERE c.oid = NEW.relation AND c.relnamespace = 'crm'::regnamespace AND c.relkind = 'r'
	                  AND a.attname = 'id' AND a.atttypid = 'bigint'::regtype) THEN
		RAISE EXCEPTION 'record type "%" names %, which is not a table of crm with a bigint id', NEW.name, NEW.relation
			USING ERRCODE = 'invalid_object_definition', HINT = 'A record type''s table is crm.<name> (id bigint, ...).';
	END IF;
	IF (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = NEW.relation AND NOT a.attisdropped
	     AND (a.attname, a.atttypid) IN (('created_by', 'bigint'::regtype), ('created_at', 'timestamptz'::regtype),
	                                     ('updated_at', 'timestamptz'::regtype))) < 3 THEN
		RAISE EXCEPTION 'record type "%" names %, which lacks created_by bigint, created_at or updated_at timestamptz', NEW.name, NEW.relation
			USING ERRCODE = 'invalid_object_definition', HINT = 'crm stamps every record with who created it and when (crm.stamp_record).';
	END IF;
	IF NEW.visibility = 'owner' AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = NEW.relation
	                                             AND a.attname = 'owner_id' AND a.atttypid = 'bigint'::regtype) THEN
		RAISE EXCEPTION 'record type "%" is visible by its owner, but % has no owner_id bigint', NEW.name, NEW.relation
			USING ERRCODE = 'invalid_object_definition', HINT = 'Add owner_id bigint REFERENCES crm.employee (id).';
	END IF;
	IF NEW.visibility = 'parent' AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = NEW.relation
	                                              AND a.attname = NEW.parent_column AND a.atttypid = 'bigint'::regtype) THEN
		RAISE EXCEPTION 'record type "%" follows its %, but % has no % bigint', NEW.name, NEW.parent, NEW.relation, NEW.parent_column
			USING ERRCODE = 'invalid_object_definition', HINT = 'The parent column holds the parent record''s id.';
	END IF;
	IF NEW.visibility = 'parent' AND NOT EXISTS (SELECT FROM crm.record_type p WHERE p.name = NEW.parent AND p.visibility = 'owner') THEN
		RAISE EXCEPTION 'record type "%" follows %, which is not visible by its owner', NEW.name, NEW.parent
			USING ERRCODE = 'invalid_object_definition',
			      HINT = 'A type follows a type with owner visibility (a contact its customer, a payment plan its contract).';
	END IF;
	IF NEW.title IS NOT NULL THEN
		BEGIN
			EXECUTE format('SELECT (%s)::text FROM %s r LIMIT 0', NEW.title, NEW.relation);
		EXCEPTION WHEN syntax_error OR undefined_column OR undefined_function OR datatype_mismatch THEN
			RAISE EXCEPTION 'record type "%" has a title that is no expression over its row: %', NEW.name, NEW.title
				USING ERRCODE = 'invalid_object_definition', HINT = 'Name a record by its columns, as r.name.';
		END;
	END IF;
	SELECT string_agg(c, ', ') INTO unknown FROM unnest(NEW.search_columns) c
	 WHERE NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = NEW.relation AND a.attname = c
	                                              AND a.atttypid = 'text'::regtype AND NOT a.attisdropped);
	IF unknown IS NOT NULL THEN
		RAISE EXCEPTION 'record type "%" searches %, which % no text column of %', NEW.name, unknown,
			CASE WHEN unknown LIKE '%,%' THEN 'are' ELSE 'is' END, NEW.relation
			USING ERRCODE = 'invalid_object_definition', HINT = 'Search columns are text columns of the type''s table.';
	END IF;
	IF 'search' = ANY (NEW.capabilities) AND (NEW.title IS NULL OR NEW.search_columns = '{}') THEN
		RAISE EXCEPTION 'record type "%" takes part in search without a title and search columns', NEW.name
			USING ERRCODE = 'invalid_object_definition',
			      HINT = 'A bot names what it found (title) and looks for the keyword in search_columns.';
	END IF;
	SELECT string_agg(c, ', ') INTO unknown FROM unnest(NEW.capabilities) c
	 WHERE NOT EXISTS (SELECT FROM crm.record_capability k WHERE k.name = c);
	IF unknown IS NOT NULL THEN
		RAISE EXCEPTION 'record type "%" names unknown capabilities: %', NEW.name, unknown
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = format('The capabilities are %s.', (SELECT string_agg(name, ', ' ORDER BY name) FROM crm.record_capability));
	END IF;
	NEW.capabilities := ARRAY(SELECT DISTINCT unnest(NEW.capabilities) ORDER BY 1);
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER record_type_valid BEFORE INSERT OR UPDATE ON crm.record_type
	FOR EACH ROW EXECUTE FUNCTION crm.record_type_valid();
-- the scopes of every backend follow a type registered or changed (src/access/scope.c)
CREATE OR REPLACE TRIGGER record_type_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.record_type
	FOR EACH STATEMENT EXECUTE FUNCTION crm.org_changed();
ALTER TABLE crm.record_type ENABLE ALWAYS TRIGGER record_type_changed;
GRANT SELECT ON crm.record_capability, crm.record_type TO crm_user;

-- Whether a record type takes part in a capability; a name that is no record
-- type takes part in nothing.
CREATE OR REPLACE FUNCTION crm.record_type_has(record_type text, capability text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN EXISTS (SELECT FROM crm.record_type t WHERE t.name = record_type_has.record_type
                                              AND record_type_has.capability = ANY (t.capabilities));
COMMENT ON FUNCTION crm.record_type_has(text, text) IS 'Whether the record type takes part in the capability (crm.record_type)';

-- The types of a capability, for messages: "lead, customer or contact".
CREATE OR REPLACE FUNCTION crm.record_types_with(capability text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN (SELECT coalesce(string_agg(t.name, ', ' ORDER BY t.position), 'none')
          FROM crm.record_type t WHERE record_types_with.capability = ANY (t.capabilities));
COMMENT ON FUNCTION crm.record_types_with(text) IS 'The record types taking part in a capability, for messages: "lead, customer or contact"';

-- The one way a record type is added: a row of the registry, validated, written
-- by the type's own piece right after its table (40_records.sql for crm's
-- first four).  crm.install_record_type, run after every piece
-- (97_record_types.sql), installs what it needs.  Registering a type again
-- changes its row; crm's own scripts are its only callers.
CREATE OR REPLACE FUNCTION crm.register_record_type(name text, relation regclass, label_zh text, label_en text,
                                                    visibility text, capabilities text[], docs text,
                                                    parent text DEFAULT NULL, parent_column name DEFAULT NULL,
                                                    title text DEFAULT NULL, search_columns name[] DEFAULT '{}')
RETURNS void LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	INSERT INTO crm.record_type AS x (name, relation, label_zh, label_en, visibility, parent, parent_column, capabilities, docs,
	                                  position, title, search_columns)
	VALUES (register_record_type.name, register_record_type.relation, register_record_type.label_zh,
	        register_record_type.label_en, register_record_type.visibility, register_record_type.parent,
	        register_record_type.parent_column, register_record_type.capabilities, register_record_type.docs,
	        (SELECT coalesce(max(t.position), 0) + 1 FROM crm.record_type t),
	        register_record_type.title, register_record_type.search_columns)
	ON CONFLICT ON CONSTRAINT record_type_pkey DO UPDATE
	   SET relation = excluded.relation, label_zh = excluded.label_zh, label_en = excluded.label_en,
	       visibility = excluded.visibility, parent = excluded.parent, parent_column = excluded.parent_column,
	       capabilities = excluded.capabilities, docs = excluded.docs, title = excluded.title,
	       search_columns = excluded.search_columns;
END;
COMMENT ON FUNCTION crm.register_record_type(text, regclass, text, text, text, text[], text, text, name, text, name[]) IS
	'Register a record type: its table, labels, visibility and capabilities (crm''s install and update scripts only)';
