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
	CONSTRAINT oplog_pkey PRIMARY KEY (id),
	CONSTRAINT oplog_record_ids_check CHECK ((record_ids IS NULL) = (action <> 'insert')),
	CONSTRAINT oplog_action_check CHECK (action IN ('insert', 'update', 'delete')),
	CONSTRAINT oplog_source_check CHECK (source IN ('person', 'import', 'job', 'system'))
);
CREATE INDEX oplog_record_idx ON crm.oplog (record_type, record_id, id);
CREATE INDEX oplog_employee_idx ON crm.oplog (employee_id, at DESC);
CREATE INDEX oplog_record_ids_idx ON crm.oplog USING gist (record_ids) WHERE record_ids IS NOT NULL;
COMMENT ON TABLE crm.oplog IS 'Operation log (操作记录): who changed which record, field by field, when and through what';
COMMENT ON COLUMN crm.oplog.changes IS 'update: {"field": [old, new]} for each changed field (updated_at and last_follow_up_at left out); delete: the row as it was';
COMMENT ON COLUMN crm.oplog.employee_id IS 'The acting employee; NULL for a superuser or a job';
COMMENT ON COLUMN crm.oplog.record_ids IS 'insert: every record the statement inserted (record_id is the first); find one with record_ids @> id';

CREATE OR REPLACE FUNCTION crm.log_row() RETURNS trigger AS 'MODULE_PATHNAME', 'crm_log_row' LANGUAGE C;
CREATE OR REPLACE FUNCTION crm.log_flush() RETURNS trigger AS 'MODULE_PATHNAME', 'crm_log_flush' LANGUAGE C;

-- (the triggers come with the registration of each type with capability oplog)

-- An entry is visible to whoever can see its record, and to whoever made it.
ALTER TABLE crm.oplog ENABLE ROW LEVEL SECURITY;
CREATE POLICY oplog_read ON crm.oplog FOR SELECT TO crm_user
	USING (employee_id = (SELECT crm.current_employee_id()) OR crm.record_visible(record_type, record_id));
GRANT SELECT ON crm.oplog TO crm_user;

-- A record's timeline: its creation, follow-ups, owner and status changes and
-- every other logged change.  security_invoker: each reader sees the entries
-- of the records they may see.  Creation comes from the records themselves
-- (created_by, created_at), since the log keeps a statement's inserts in one row.
CREATE OR REPLACE VIEW crm.timeline WITH (security_invoker = true) AS
SELECT 'lead' AS record_type, l.id AS record_id, l.created_at AS at, 'insert' AS kind, l.created_by AS employee_id,
       NULL::text AS detail, NULL::text AS summary, NULL::jsonb AS changes
  FROM crm.lead l
UNION ALL
SELECT 'customer', c.id, c.created_at, 'insert', c.created_by, NULL, NULL, NULL FROM crm.customer c
UNION ALL
SELECT 'contact', k.id, k.created_at, 'insert', k.created_by, NULL, NULL, NULL FROM crm.contact k
UNION ALL
SELECT f.record_type, f.record_id, f.created_at, 'follow_up', f.created_by, f.method, f.content, NULL
  FROM crm.follow_up f
UNION ALL
SELECT o.record_type, o.record_id, o.at,
       CASE WHEN o.action = 'update' AND o.changes ? 'owner_id' THEN 'owner_change'
            WHEN o.action = 'update' AND o.changes ? 'status_id' THEN 'status_change'
            ELSE o.action END,
       o.employee_id, o.source, NULL, o.changes
  FROM crm.oplog o
 WHERE o.action <> 'insert'
UNION ALL
-- moves into and out of a public pool are in the owner history, not the log
SELECT 'customer', h.customer_id, h.changed_at, 'owner_change', h.changed_by, h.kind, h.reason,
       jsonb_build_object('owner_id', jsonb_build_array(h.from_owner, h.to_owner))
  FROM crm.customer_owner_change h
 WHERE h.kind <> 'transfer';
COMMENT ON VIEW crm.timeline IS
	'Per record: creation, follow-ups, logged changes and pool moves (kind insert, follow_up, update, owner_change, status_change, delete)';
GRANT SELECT ON crm.timeline TO crm_user;
