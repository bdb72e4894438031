-- The operation log (src/oplog.c): one row per record inserted, updated or
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
	CONSTRAINT oplog_pkey PRIMARY KEY (id),
	CONSTRAINT oplog_action_check CHECK (action IN ('insert', 'update', 'delete')),
	CONSTRAINT oplog_source_check CHECK (source IN ('person', 'import', 'job', 'system'))
);
CREATE INDEX oplog_record_idx ON crm.oplog (record_type, record_id, id);
CREATE INDEX oplog_employee_idx ON crm.oplog (employee_id, at DESC);
COMMENT ON TABLE crm.oplog IS 'Operation log (操作记录): who changed which record, field by field, when and through what';
COMMENT ON COLUMN crm.oplog.changes IS 'update: {"field": [old, new]} for each changed field (updated_at and last_follow_up_at left out); delete: the row as it was';
COMMENT ON COLUMN crm.oplog.employee_id IS 'The acting employee; NULL for a superuser or a job';

CREATE FUNCTION crm.log_row() RETURNS trigger AS 'MODULE_PATHNAME', 'crm_log_row' LANGUAGE C;
CREATE FUNCTION crm.log_flush() RETURNS trigger AS 'MODULE_PATHNAME', 'crm_log_flush' LANGUAGE C;

DO $log$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['lead', 'customer', 'contact', 'follow_up'] LOOP
		EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON crm.%I'
		               ' FOR EACH ROW EXECUTE FUNCTION crm.log_row()', t || '_log_row', t);
		EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON crm.%I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.log_flush()', t || '_log_flush', t);
	END LOOP;
END
$log$;

-- An entry is visible to whoever can see its record, and to whoever made it.
ALTER TABLE crm.oplog ENABLE ROW LEVEL SECURITY;
CREATE POLICY oplog_read ON crm.oplog FOR SELECT TO crm_user
	USING (employee_id = (SELECT crm.current_employee_id()) OR crm.record_visible(record_type, record_id));
GRANT SELECT ON crm.oplog TO crm_user;

-- A record's timeline: follow-ups, owner and status changes and every other
-- logged change, newest first when ordered by at.  security_invoker: each
-- reader sees the entries of the records they may see.
CREATE VIEW crm.timeline WITH (security_invoker = true) AS
SELECT f.record_type, f.record_id, f.created_at AS at, 'follow_up' AS kind, f.created_by AS employee_id,
       f.method AS detail, f.content AS summary, NULL::jsonb AS changes
  FROM crm.follow_up f
UNION ALL
SELECT o.record_type, o.record_id, o.at,
       CASE WHEN o.action = 'update' AND o.changes ? 'owner_id' THEN 'owner_change'
            WHEN o.action = 'update' AND o.changes ? 'status_id' THEN 'status_change'
            ELSE o.action END,
       o.employee_id, o.source, NULL, o.changes
  FROM crm.oplog o;
COMMENT ON VIEW crm.timeline IS
	'Per record: follow-ups and logged changes (kind follow_up, insert, update, owner_change, status_change, delete)';
GRANT SELECT ON crm.timeline TO crm_user;
