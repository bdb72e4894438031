-- The operation log (src/records/oplog.c): one row per record inserted, updated or
-- deleted, with the fields an update changed, written by the crm owner only.
CREATE TABLE crm.oplog (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	at           timestamptz NOT NULL DEFAULT now(),
	record_type  text NOT NULL,
	record_id    bigint NOT NULL,
	action       text NOT NULL,
	employee_id  bigint,
	source       text NOT NULL,
	changes      jsonb,
	record_ids   int8multirange,
	-- who sees this row: crm's copy of the deciding record (97_record_types.sql)
	scope_type   text,
	scope_owner  bigint,
	scope_id     bigint,
	CONSTRAINT oplog_pkey PRIMARY KEY (id),
	CONSTRAINT oplog_record_ids_check CHECK ((record_ids IS NULL) = (action <> 'insert')),
	CONSTRAINT oplog_action_check CHECK (action IN ('insert', 'update', 'delete')),
	CONSTRAINT oplog_source_check CHECK (source IN ('person', 'import', 'job', 'system'))
);
COMMENT ON COLUMN crm.oplog.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.oplog.at IS 'When the change was made; kept by crm; not writable';
COMMENT ON COLUMN crm.oplog.record_type IS 'Type of the record changed; kept by crm; not writable';
COMMENT ON COLUMN crm.oplog.record_id IS 'Id of the record changed; kept by crm; not writable';
COMMENT ON COLUMN crm.oplog.action IS 'insert, update or delete; kept by crm; not writable';
COMMENT ON COLUMN crm.oplog.source IS 'person, import, job or system: what made the change; kept by crm; not writable';
COMMENT ON COLUMN crm.oplog.scope_type IS 'Type of the record that decides who sees this row (a contact''s customer, a follow-up''s record); kept by crm; not writable';
COMMENT ON COLUMN crm.oplog.scope_owner IS 'Owner (crm.employee.id) of the deciding record, copied so the read policy is an index test; kept by crm; not writable';
COMMENT ON COLUMN crm.oplog.scope_id IS 'Id of the deciding record; kept by crm; not writable';
CREATE INDEX oplog_record_idx ON crm.oplog (record_type, record_id, id);
CREATE INDEX oplog_employee_idx ON crm.oplog (employee_id, at DESC);
CREATE INDEX oplog_scope_owner_idx ON crm.oplog (scope_type, scope_owner);
-- (the id leads its index: with the type first, the planner took it for a
-- policy arm's type test alone and filtered every row by the whole policy)
CREATE INDEX oplog_scope_id_idx ON crm.oplog (scope_id, scope_type);
CREATE INDEX oplog_record_ids_idx ON crm.oplog USING gist (record_ids) WHERE record_ids IS NOT NULL;
COMMENT ON TABLE crm.oplog IS 'Operation log (操作记录): who changed which record, field by field, when and through what';
COMMENT ON COLUMN crm.oplog.changes IS 'update: {"field": [old, new]} for each changed field (updated_at and last_follow_up_at left out); delete: the row as it was';
COMMENT ON COLUMN crm.oplog.employee_id IS 'The acting employee; NULL for a superuser or a job';
COMMENT ON COLUMN crm.oplog.record_ids IS 'insert: every record the statement inserted (record_id is the first); find one with record_ids @> id';

CREATE OR REPLACE FUNCTION crm.log_row() RETURNS trigger AS 'MODULE_PATHNAME', 'crm_log_row' LANGUAGE C;
CREATE OR REPLACE FUNCTION crm.log_flush() RETURNS trigger AS 'MODULE_PATHNAME', 'crm_log_flush' LANGUAGE C;

-- (the triggers come with the registration of each type with capability oplog)

-- An entry is visible to whoever made it, and to whoever can see its record
-- (oplog_read, installed with the record types: 97_record_types.sql).
ALTER TABLE crm.oplog ENABLE ROW LEVEL SECURITY;
CREATE POLICY oplog_own ON crm.oplog FOR SELECT TO crm_user
	USING (employee_id = (SELECT crm.current_employee_id()));
GRANT SELECT ON crm.oplog TO crm_user;

-- (crm.timeline, each record's history in one list, comes with the record
-- types: 97_record_types.sql)
