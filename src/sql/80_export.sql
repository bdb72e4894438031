-- Exports: views shaped for a spreadsheet, with codes turned into labels.
-- security_invoker: each reader gets the rows of their own scope; and
-- reading them needs the <type>.export permission.

CREATE OR REPLACE FUNCTION crm.require_permission(action text) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF NOT crm.has_permission(action) AND NOT current_setting('is_superuser')::boolean THEN
		RAISE EXCEPTION '% lacks the permission "%"',
			coalesce((SELECT format('employee "%s"', crm.clip(e.name)) FROM crm.employee e WHERE e.id = crm.current_employee_id()), 'nobody'),
			crm.clip(action)
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'None of the employee''s roles grants it.',
			      HINT = format('Ask an administrator to add "%s" to one of your roles (crm.role_permission).', crm.clip(action));
	END IF;
	RETURN true;
END
$$;
COMMENT ON FUNCTION crm.require_permission(text) IS 'True, or an insufficient_privilege error naming the missing permission';

-- A record's custom fields (crm.added_field) for an export: {label: value},
-- choices as their dictionary labels.  A label two fields share is told apart
-- by the field's name; a field without a label goes by its name.  It reads the
-- row as jsonb, so the views do not depend on the columns a field adds.
CREATE OR REPLACE FUNCTION crm.export_fields(record_type text, record jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce(jsonb_object_agg(f.key, CASE
	               WHEN f.type = 'single' THEN to_jsonb(coalesce(
	                    (SELECT d.label FROM crm.dictionary d WHERE d.kind = f.dictionary AND d.code = record ->> f.name),
	                    record ->> f.name))
	               WHEN f.type = 'multiple' AND jsonb_typeof(record -> f.name) = 'array' THEN
	                    (SELECT jsonb_agg(coalesce(d.label, u.code) ORDER BY u.n)
	                       FROM jsonb_array_elements_text(record -> f.name) WITH ORDINALITY u(code, n)
	                       LEFT JOIN crm.dictionary d ON d.kind = f.dictionary AND d.code = u.code)
	               ELSE record -> f.name END), '{}')
	  FROM (SELECT a.name, a.type, a.dictionary,
	               CASE WHEN count(*) OVER (PARTITION BY coalesce(a.label, a.name)) > 1
	                    THEN format('%s (%s)', coalesce(a.label, a.name), a.name)
	                    ELSE coalesce(a.label, a.name) END AS key
	          FROM crm.added_field a WHERE a.record_type = export_fields.record_type) f;
END;
COMMENT ON FUNCTION crm.export_fields(text, jsonb) IS
	'A record''s custom fields as {label: value}, choices as their dictionary labels: the custom_fields column of the export views';

-- Outer joins throughout: a pool's customers have an owner without a
-- department, and an export leaves out no record the reader sees.
CREATE OR REPLACE VIEW crm.customer_export WITH (security_invoker = true) AS
SELECT c.id, c.name, CASE c.kind WHEN 'company' THEN '企业' ELSE '个人' END AS kind, c.uscc, c.phone,
       ind.label AS industry, src.label AS source, lvl.label AS level, st.name AS status,
       o.name AS owner, d.name AS department, c.locked,
       k.name AS contact, k.mobile AS contact_mobile, k.email AS contact_email,
       c.last_follow_up_at, c.created_at, c.updated_at,
       crm.export_fields('customer', to_jsonb(c)) AS custom_fields
  FROM crm.customer c
  LEFT JOIN crm.employee o ON o.id = c.owner_id
  LEFT JOIN crm.department d ON d.id = o.department_id
  LEFT JOIN crm.customer_status st ON st.id = c.status_id
  LEFT JOIN crm.dictionary ind ON ind.kind = 'industry' AND ind.code = c.industry
  LEFT JOIN crm.dictionary src ON src.kind = 'customer_source' AND src.code = c.source
  LEFT JOIN crm.dictionary lvl ON lvl.kind = 'customer_level' AND lvl.code = c.level
  LEFT JOIN LATERAL (SELECT name, mobile, email FROM crm.contact WHERE customer_id = c.id
                      ORDER BY is_decision_maker DESC, id LIMIT 1) k ON true
 WHERE crm.require_permission('customer.export');
COMMENT ON VIEW crm.customer_export IS 'Customers for a spreadsheet, codes as labels; each reader exports their own scope; needs customer.export';
COMMENT ON COLUMN crm.customer_export.id IS 'Customer id';
COMMENT ON COLUMN crm.customer_export.name IS 'Customer name';
COMMENT ON COLUMN crm.customer_export.kind IS '企业 (company) or 个人 (individual)';
COMMENT ON COLUMN crm.customer_export.uscc IS 'Unified social credit code';
COMMENT ON COLUMN crm.customer_export.phone IS 'Main phone number';
COMMENT ON COLUMN crm.customer_export.industry IS 'Industry label';
COMMENT ON COLUMN crm.customer_export.source IS 'Source label';
COMMENT ON COLUMN crm.customer_export.level IS 'Level label';
COMMENT ON COLUMN crm.customer_export.status IS 'Follow-up status name';
COMMENT ON COLUMN crm.customer_export.owner IS 'Owner''s name, or the pool''s';
COMMENT ON COLUMN crm.customer_export.department IS 'Owner''s department (none for a pool)';
COMMENT ON COLUMN crm.customer_export.locked IS 'Locked customers are never recycled to a pool';
COMMENT ON COLUMN crm.customer_export.contact IS 'Key contact: a decision maker first, else the first contact';
COMMENT ON COLUMN crm.customer_export.contact_mobile IS 'Key contact''s mobile';
COMMENT ON COLUMN crm.customer_export.contact_email IS 'Key contact''s e-mail';
COMMENT ON COLUMN crm.customer_export.last_follow_up_at IS 'Time of the latest follow-up';
COMMENT ON COLUMN crm.customer_export.created_at IS 'When the customer was created';
COMMENT ON COLUMN crm.customer_export.updated_at IS 'When the customer last changed';
COMMENT ON COLUMN crm.customer_export.custom_fields IS 'Custom fields as a JSON object keyed by label, choices as labels (crm.export_fields)';

CREATE OR REPLACE VIEW crm.contact_export WITH (security_invoker = true) AS
SELECT k.id, k.name, k.mobile, k.email, k.title, k.is_decision_maker, c.name AS customer, o.name AS owner,
       k.created_at, k.updated_at,
       crm.export_fields('contact', to_jsonb(k)) AS custom_fields
  FROM crm.contact k
  LEFT JOIN crm.customer c ON c.id = k.customer_id
  LEFT JOIN crm.employee o ON o.id = k.owner_id
 WHERE crm.require_permission('contact.export');
COMMENT ON VIEW crm.contact_export IS 'Contacts for a spreadsheet; each reader exports their own scope; needs contact.export';
COMMENT ON COLUMN crm.contact_export.id IS 'Contact id';
COMMENT ON COLUMN crm.contact_export.name IS 'Contact name';
COMMENT ON COLUMN crm.contact_export.mobile IS 'Mobile';
COMMENT ON COLUMN crm.contact_export.email IS 'E-mail';
COMMENT ON COLUMN crm.contact_export.title IS 'Job title';
COMMENT ON COLUMN crm.contact_export.is_decision_maker IS 'Key decision maker (关键决策人)';
COMMENT ON COLUMN crm.contact_export.customer IS 'Customer name';
COMMENT ON COLUMN crm.contact_export.owner IS 'Owner''s name';
COMMENT ON COLUMN crm.contact_export.created_at IS 'When the contact was created';
COMMENT ON COLUMN crm.contact_export.updated_at IS 'When the contact last changed';
COMMENT ON COLUMN crm.contact_export.custom_fields IS 'Custom fields as a JSON object keyed by label, choices as labels (crm.export_fields)';

CREATE OR REPLACE VIEW crm.lead_export WITH (security_invoker = true) AS
SELECT l.id, l.name, l.company, l.uscc, l.mobile, l.email, src.label AS source, ind.label AS industry,
       l.requirement, l.expected_amount,
       CASE l.status WHEN 'new' THEN '新线索' WHEN 'following' THEN '跟进中'
                     WHEN 'converted' THEN '已转化' WHEN 'invalid' THEN '无效' END AS status,
       o.name AS owner, l.customer_id, l.converted_at, l.created_at,
       c.name AS customer,
       crm.export_fields('lead', to_jsonb(l)) AS custom_fields
  FROM crm.lead l
  LEFT JOIN crm.employee o ON o.id = l.owner_id
  LEFT JOIN crm.customer c ON c.id = l.customer_id
  LEFT JOIN crm.dictionary src ON src.kind = 'customer_source' AND src.code = l.source
  LEFT JOIN crm.dictionary ind ON ind.kind = 'industry' AND ind.code = l.industry
 WHERE crm.require_permission('lead.export');
COMMENT ON VIEW crm.lead_export IS 'Leads for a spreadsheet, codes as labels; each reader exports their own scope; needs lead.export';
COMMENT ON COLUMN crm.lead_export.id IS 'Lead id';
COMMENT ON COLUMN crm.lead_export.name IS 'Person''s name';
COMMENT ON COLUMN crm.lead_export.company IS 'Company name';
COMMENT ON COLUMN crm.lead_export.uscc IS 'Unified social credit code';
COMMENT ON COLUMN crm.lead_export.mobile IS 'Mobile';
COMMENT ON COLUMN crm.lead_export.email IS 'E-mail';
COMMENT ON COLUMN crm.lead_export.source IS 'Source label';
COMMENT ON COLUMN crm.lead_export.industry IS 'Industry label';
COMMENT ON COLUMN crm.lead_export.requirement IS 'What the lead needs';
COMMENT ON COLUMN crm.lead_export.expected_amount IS 'Expected deal size in yuan';
COMMENT ON COLUMN crm.lead_export.status IS '新线索 (new), 跟进中 (following), 已转化 (converted) or 无效 (invalid)';
COMMENT ON COLUMN crm.lead_export.owner IS 'Owner''s name';
COMMENT ON COLUMN crm.lead_export.customer_id IS 'Id of the customer the lead became';
COMMENT ON COLUMN crm.lead_export.converted_at IS 'When the lead was converted';
COMMENT ON COLUMN crm.lead_export.created_at IS 'When the lead was created';
COMMENT ON COLUMN crm.lead_export.customer IS 'Name of the customer the lead became, if the reader sees it';
COMMENT ON COLUMN crm.lead_export.custom_fields IS 'Custom fields as a JSON object keyed by label, choices as labels (crm.export_fields)';

CREATE OR REPLACE VIEW crm.opportunity_export WITH (security_invoker = true) AS
SELECT o.id, o.name, c.name AS customer, o.amount, o.expected_close_on, t.name AS stage_set, g.name AS stage,
       o.probability, CASE o.status WHEN 'open' THEN '进行中' WHEN 'won' THEN '赢单' ELSE '输单' END AS status,
       o.closed_on, lr.label AS lost_reason, e.name AS owner, d.name AS department,
       o.requirement, o.budget, o.decision_on, o.created_at, o.updated_at,
       crm.export_fields('opportunity', to_jsonb(o)) AS custom_fields
  FROM crm.opportunity o
  LEFT JOIN crm.customer c ON c.id = o.customer_id
  LEFT JOIN crm.stage_set t ON t.id = o.stage_set_id
  LEFT JOIN crm.stage g ON g.id = o.stage_id
  LEFT JOIN crm.employee e ON e.id = o.owner_id
  LEFT JOIN crm.department d ON d.id = e.department_id
  LEFT JOIN crm.dictionary lr ON lr.kind = 'lost_reason' AND lr.code = o.lost_reason
 WHERE crm.require_permission('opportunity.export');
COMMENT ON VIEW crm.opportunity_export IS 'Deals for a spreadsheet, codes as labels; each reader exports their own scope; needs opportunity.export';
COMMENT ON COLUMN crm.opportunity_export.id IS 'Deal id';
COMMENT ON COLUMN crm.opportunity_export.name IS 'Name of the deal';
COMMENT ON COLUMN crm.opportunity_export.customer IS 'Customer name, if the reader sees it';
COMMENT ON COLUMN crm.opportunity_export.amount IS 'Deal amount in yuan';
COMMENT ON COLUMN crm.opportunity_export.expected_close_on IS 'Expected close date';
COMMENT ON COLUMN crm.opportunity_export.stage_set IS 'Stage set name';
COMMENT ON COLUMN crm.opportunity_export.stage IS 'Stage name';
COMMENT ON COLUMN crm.opportunity_export.probability IS 'Chance of winning in percent';
COMMENT ON COLUMN crm.opportunity_export.status IS '进行中 (open), 赢单 (won) or 输单 (lost)';
COMMENT ON COLUMN crm.opportunity_export.closed_on IS 'The day it was won or lost';
COMMENT ON COLUMN crm.opportunity_export.lost_reason IS 'Lost reason label';
COMMENT ON COLUMN crm.opportunity_export.owner IS 'Owner''s name';
COMMENT ON COLUMN crm.opportunity_export.department IS 'Owner''s department';
COMMENT ON COLUMN crm.opportunity_export.requirement IS 'What the customer needs';
COMMENT ON COLUMN crm.opportunity_export.budget IS 'The customer''s budget in yuan';
COMMENT ON COLUMN crm.opportunity_export.decision_on IS 'When the customer decides';
COMMENT ON COLUMN crm.opportunity_export.created_at IS 'When the deal was created';
COMMENT ON COLUMN crm.opportunity_export.updated_at IS 'When the deal last changed';
COMMENT ON COLUMN crm.opportunity_export.custom_fields IS 'Custom fields as a JSON object keyed by label, choices as labels (crm.export_fields)';

-- products are a catalogue every employee reads: exporting it needs no permission
CREATE OR REPLACE VIEW crm.product_export WITH (security_invoker = true) AS
SELECT p.id, p.code, p.name, cat.label AS category, u.label AS unit, p.list_price, p.description, p.on_shelf,
       (SELECT s.sellers FROM crm.product_sellers(p.id, NULL) s) AS sellers,
       p.created_at, p.updated_at
  FROM crm.product p
  LEFT JOIN crm.dictionary cat ON cat.kind = 'product_category' AND cat.code = p.category
  LEFT JOIN crm.dictionary u ON u.kind = 'unit' AND u.code = p.unit;
COMMENT ON VIEW crm.product_export IS 'Products for a spreadsheet, codes as labels, with who may sell each';
COMMENT ON COLUMN crm.product_export.id IS 'Product id';
COMMENT ON COLUMN crm.product_export.code IS 'Product code';
COMMENT ON COLUMN crm.product_export.name IS 'Product name';
COMMENT ON COLUMN crm.product_export.category IS 'Category label';
COMMENT ON COLUMN crm.product_export.unit IS 'Unit label';
COMMENT ON COLUMN crm.product_export.list_price IS 'List price in yuan';
COMMENT ON COLUMN crm.product_export.description IS 'Description';
COMMENT ON COLUMN crm.product_export.on_shelf IS 'On the shelf: may go on new lines';
COMMENT ON COLUMN crm.product_export.sellers IS 'Who may sell it (employees, departments), empty when anyone may';
COMMENT ON COLUMN crm.product_export.created_at IS 'When the product was entered';
COMMENT ON COLUMN crm.product_export.updated_at IS 'When the product last changed';

GRANT SELECT ON crm.customer_export, crm.contact_export, crm.lead_export, crm.opportunity_export, crm.product_export TO crm_user;

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
COMMENT ON COLUMN crm.attachment.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.attachment.record_type IS 'Type of the record the file is on (crm.record_type.name)';
COMMENT ON COLUMN crm.attachment.record_id IS 'Id of the record the file is on';
COMMENT ON COLUMN crm.attachment.file_name IS 'Original file name, without path separators; at most 255 characters';
COMMENT ON COLUMN crm.attachment.size_bytes IS 'File size in bytes';
COMMENT ON COLUMN crm.attachment.content_type IS 'MIME type, e.g. application/pdf';
COMMENT ON COLUMN crm.attachment.storage_key IS 'Key of the object in the file store; unique';
COMMENT ON COLUMN crm.attachment.created_by IS 'Employee (crm.employee.id) who added the file; kept by crm; not writable';
COMMENT ON COLUMN crm.attachment.created_at IS 'When the file was added; kept by crm; not writable';
COMMENT ON COLUMN crm.attachment.scope_type IS 'Type of the record that decides who sees this row (a contact''s customer, a follow-up''s record); kept by crm; not writable';
COMMENT ON COLUMN crm.attachment.scope_owner IS 'Owner (crm.employee.id) of the deciding record, copied so the read policy is an index test; kept by crm; not writable';
COMMENT ON COLUMN crm.attachment.scope_id IS 'Id of the deciding record; kept by crm; not writable';
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
