-- Exports: views shaped for a spreadsheet, with codes turned into labels.
-- security_invoker: each reader gets the rows of their own scope; and
-- reading them needs the <type>.export permission.

CREATE OR REPLACE FUNCTION crm.require_permission(action text) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF NOT crm.has_permission(action) AND NOT current_setting('is_superuser')::boolean THEN
		RAISE EXCEPTION 'employee % lacks the permission "%"', coalesce(crm.current_employee_id()::text, 'nobody'), crm.clip(action)
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'None of the employee''s roles grants it.',
			      HINT = format('Ask an administrator to add "%s" to one of your roles (crm.role_permission).', crm.clip(action));
	END IF;
	RETURN true;
END
$$;
COMMENT ON FUNCTION crm.require_permission(text) IS 'True, or an insufficient_privilege error naming the missing permission';

CREATE OR REPLACE VIEW crm.customer_export WITH (security_invoker = true) AS
SELECT c.id, c.name, CASE c.kind WHEN 'company' THEN '企业' ELSE '个人' END AS kind, c.uscc, c.phone,
       ind.label AS industry, src.label AS source, lvl.label AS level, st.name AS status,
       o.name AS owner, d.name AS department, c.locked,
       k.name AS contact, k.mobile AS contact_mobile, k.email AS contact_email,
       c.last_follow_up_at, c.created_at, c.updated_at
  FROM crm.customer c
  JOIN crm.employee o ON o.id = c.owner_id
  JOIN crm.department d ON d.id = o.department_id
  JOIN crm.customer_status st ON st.id = c.status_id
  LEFT JOIN crm.dictionary ind ON ind.kind = 'industry' AND ind.code = c.industry
  LEFT JOIN crm.dictionary src ON src.kind = 'customer_source' AND src.code = c.source
  LEFT JOIN crm.dictionary lvl ON lvl.kind = 'customer_level' AND lvl.code = c.level
  LEFT JOIN LATERAL (SELECT name, mobile, email FROM crm.contact WHERE customer_id = c.id
                      ORDER BY is_decision_maker DESC, id LIMIT 1) k ON true
 WHERE crm.require_permission('customer.export');

CREATE OR REPLACE VIEW crm.contact_export WITH (security_invoker = true) AS
SELECT k.id, k.name, k.mobile, k.email, k.title, k.is_decision_maker, c.name AS customer, o.name AS owner,
       k.created_at, k.updated_at
  FROM crm.contact k
  JOIN crm.customer c ON c.id = k.customer_id
  JOIN crm.employee o ON o.id = k.owner_id
 WHERE crm.require_permission('contact.export');

CREATE OR REPLACE VIEW crm.lead_export WITH (security_invoker = true) AS
SELECT l.id, l.name, l.company, l.uscc, l.mobile, l.email, src.label AS source, ind.label AS industry,
       l.requirement, l.expected_amount, l.status, o.name AS owner, l.customer_id, l.converted_at, l.created_at
  FROM crm.lead l
  JOIN crm.employee o ON o.id = l.owner_id
  LEFT JOIN crm.dictionary src ON src.kind = 'customer_source' AND src.code = l.source
  LEFT JOIN crm.dictionary ind ON ind.kind = 'industry' AND ind.code = l.industry
 WHERE crm.require_permission('lead.export');

GRANT SELECT ON crm.customer_export, crm.contact_export, crm.lead_export TO crm_user;

-- Attachments (附件): metadata of files kept elsewhere (object storage), on
-- any record; visible with the record, added by whoever may edit it (a
-- follow-up: its author).
CREATE TABLE crm.attachment (
	id            bigint GENERATED ALWAYS AS IDENTITY,
	record_type   text NOT NULL,
	record_id     bigint NOT NULL,
	file_name     text NOT NULL,
	size_bytes    bigint NOT NULL,
	content_type  text NOT NULL,
	storage_key   text NOT NULL,
	created_by    bigint DEFAULT crm.current_employee_id(),
	created_at    timestamptz NOT NULL DEFAULT now(),
	-- who sees this row: crm's copy of the deciding record (97_record_types.sql)
	scope_type    text,
	scope_owner   bigint,
	scope_id      bigint,
	CONSTRAINT attachment_pkey PRIMARY KEY (id),
	CONSTRAINT attachment_storage_key_key UNIQUE (storage_key),
	CONSTRAINT attachment_file_name_check CHECK (crm.check_length(file_name, 255, 'attachment.file_name')
		AND btrim(file_name) <> '' AND file_name !~ '[/\\]'),
	CONSTRAINT attachment_size_check CHECK (size_bytes >= 0),
	CONSTRAINT attachment_content_type_check CHECK (crm.check_length(content_type, 255, 'attachment.content_type')
		AND content_type ~ '^[a-z]+/[a-zA-Z0-9.+-]+$'),
	CONSTRAINT attachment_storage_key_length CHECK (crm.check_length(storage_key, 1024, 'attachment.storage_key'))
);
-- a file's name and content type, said with the name (the CHECKs above stay the rule)
CREATE OR REPLACE FUNCTION crm.attachment_valid() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.attachment'::regclass THEN RAISE 'crm.attachment_valid() runs only on crm.attachment, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF btrim(NEW.file_name) = '' OR NEW.file_name ~ '[/\\]' THEN
		RAISE EXCEPTION 'an attachment cannot be named "%"', crm.clip(NEW.file_name)
			USING ERRCODE = 'check_violation',
			      HINT = 'Give the file''s own name, without folders or slashes, such as 报价单.pdf.';
	ELSIF NEW.content_type !~ '^[a-z]+/[a-zA-Z0-9.+-]+$' THEN
		RAISE EXCEPTION 'attachment "%" cannot have content type "%"', crm.clip(NEW.file_name), crm.clip(NEW.content_type)
			USING ERRCODE = 'check_violation',
			      HINT = 'Give a media type such as application/pdf or image/png.';
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER attachment_valid BEFORE INSERT OR UPDATE OF file_name, content_type ON crm.attachment
	FOR EACH ROW EXECUTE FUNCTION crm.attachment_valid();
CREATE INDEX attachment_record_idx ON crm.attachment (record_type, record_id);
CREATE INDEX attachment_scope_owner_idx ON crm.attachment (scope_type, scope_owner);
-- (the id leads its index: with the type first, the planner took it for a
-- policy arm's type test alone and filtered every row by the whole policy)
CREATE INDEX attachment_scope_id_idx ON crm.attachment (scope_id, scope_type);
COMMENT ON TABLE crm.attachment IS 'Files on records: name, size, content type and the key of the object in the file store';
ALTER TABLE crm.attachment ENABLE ROW LEVEL SECURITY;
-- (attachment_read, for whoever sees the record, comes with the record types:
-- 97_record_types.sql); whoever added a file sees it, as they may remove it
CREATE POLICY attachment_own ON crm.attachment FOR SELECT TO crm_user
	USING (created_by = (SELECT crm.current_employee_id()));
CREATE OR REPLACE TRIGGER attachment_reach BEFORE INSERT ON crm.attachment
	FOR EACH ROW EXECUTE FUNCTION crm.check_record_reach('editable', 'attach files to');
CREATE POLICY attachment_add ON crm.attachment FOR INSERT TO crm_user
	WITH CHECK (crm.record_editable(record_type, record_id));
CREATE POLICY attachment_remove ON crm.attachment FOR DELETE TO crm_user
	USING (created_by = crm.current_employee_id() OR crm.record_editable(record_type, record_id));
-- the id, author and time are crm's
GRANT SELECT, DELETE ON crm.attachment TO crm_user;
GRANT INSERT (record_type, record_id, file_name, size_bytes, content_type, storage_key) ON crm.attachment TO crm_user;
