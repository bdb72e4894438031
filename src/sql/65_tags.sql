-- Tags (标签) in groups, set by administrators; tagging a record needs to be
-- able to edit it.  Pins (置顶) are each employee's own.
CREATE TABLE crm.tag_group (
	id        bigint GENERATED ALWAYS AS IDENTITY,
	name      text NOT NULL,
	position  integer NOT NULL DEFAULT 0,
	CONSTRAINT tag_group_pkey PRIMARY KEY (id),
	CONSTRAINT tag_group_name_key UNIQUE (name),
	CONSTRAINT tag_group_name_check CHECK (crm.check_length(name, 200, 'tag_group.name') AND btrim(name) <> '')
);
COMMENT ON TABLE crm.tag_group IS 'Groups of tags, e.g. 客户类型';
COMMENT ON COLUMN crm.tag_group.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.tag_group.name IS 'Group name; unique';
COMMENT ON COLUMN crm.tag_group.position IS 'Order of the groups';
CREATE TABLE crm.tag (
	id        bigint GENERATED ALWAYS AS IDENTITY,
	group_id  bigint NOT NULL,
	name      text NOT NULL,
	color     text,
	position  integer NOT NULL DEFAULT 0,
	CONSTRAINT tag_pkey PRIMARY KEY (id),
	CONSTRAINT tag_group_fkey FOREIGN KEY (group_id) REFERENCES crm.tag_group (id) ON DELETE CASCADE,
	CONSTRAINT tag_name_key UNIQUE (group_id, name),
	CONSTRAINT tag_name_check CHECK (crm.check_length(name, 200, 'tag.name') AND btrim(name) <> ''),
	CONSTRAINT tag_color_check CHECK (color ~ '^#[0-9a-fA-F]{6}$')
);
COMMENT ON TABLE crm.tag IS 'Tags (标签), in groups';
COMMENT ON COLUMN crm.tag.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.tag.group_id IS 'The group (crm.tag_group.id)';
COMMENT ON COLUMN crm.tag.name IS 'Tag name; unique in its group';
COMMENT ON COLUMN crm.tag.color IS 'Colour as #rrggbb';
COMMENT ON COLUMN crm.tag.position IS 'Order within the group';
-- a colour is # and six hex digits: said with the tag's name (the CHECK above
-- stays the rule)
CREATE OR REPLACE FUNCTION crm.tag_color_valid() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.tag'::regclass THEN RAISE 'crm.tag_color_valid() runs only on crm.tag, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF NEW.color !~ '^#[0-9a-fA-F]{6}$' THEN
		RAISE EXCEPTION 'tag "%" cannot have colour "%"', crm.clip(NEW.name), crm.clip(NEW.color)
			USING ERRCODE = 'check_violation',
			      HINT = 'Give # and six hexadecimal digits, such as #1E90FF, or NULL for the default.';
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER tag_color_valid BEFORE INSERT OR UPDATE OF color ON crm.tag
	FOR EACH ROW WHEN (NEW.color IS NOT NULL) EXECUTE FUNCTION crm.tag_color_valid();

CREATE TABLE crm.record_tag (
	record_type  text NOT NULL,
	record_id    bigint NOT NULL,
	tag_id       bigint NOT NULL,
	created_by   bigint DEFAULT crm.current_employee_id(),
	created_at   timestamptz NOT NULL DEFAULT now(),
	-- who sees this row: crm's copy of the deciding record (97_record_types.sql)
	scope_type   text,
	scope_owner  bigint,
	scope_id     bigint,
	CONSTRAINT record_tag_pkey PRIMARY KEY (record_type, record_id, tag_id),
	CONSTRAINT record_tag_tag_fkey FOREIGN KEY (tag_id) REFERENCES crm.tag (id) ON DELETE CASCADE
);
COMMENT ON COLUMN crm.record_tag.record_type IS 'Type of the tagged record';
COMMENT ON COLUMN crm.record_tag.record_id IS 'Id of the tagged record';
COMMENT ON COLUMN crm.record_tag.tag_id IS 'The tag (crm.tag.id)';
COMMENT ON COLUMN crm.record_tag.created_by IS 'Employee (crm.employee.id) who tagged the record; kept by crm; not writable';
COMMENT ON COLUMN crm.record_tag.created_at IS 'When the record was tagged; kept by crm; not writable';
COMMENT ON COLUMN crm.record_tag.scope_type IS 'Type of the record that decides who sees this row (a contact''s customer, a follow-up''s record); kept by crm; not writable';
COMMENT ON COLUMN crm.record_tag.scope_owner IS 'Owner (crm.employee.id) of the deciding record, copied so the read policy is an index test; kept by crm; not writable';
COMMENT ON COLUMN crm.record_tag.scope_id IS 'Id of the deciding record; kept by crm; not writable';
CREATE INDEX record_tag_tag_idx ON crm.record_tag (tag_id);
CREATE INDEX record_tag_scope_owner_idx ON crm.record_tag (scope_type, scope_owner);
-- (the id leads its index: with the type first, the planner took it for a
-- policy arm's type test alone and filtered every row by the whole policy)
CREATE INDEX record_tag_scope_id_idx ON crm.record_tag (scope_id, scope_type);
CREATE TABLE crm.pin (
	employee_id  bigint NOT NULL DEFAULT crm.current_employee_id(),
	record_type  text NOT NULL,
	record_id    bigint NOT NULL,
	pinned_at    timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT pin_pkey PRIMARY KEY (employee_id, record_type, record_id)
);
COMMENT ON TABLE crm.record_tag IS 'Tags on records; visible and writable with the record (writing needs <type>.edit)';
COMMENT ON TABLE crm.pin IS 'Records an employee pinned to the top of their lists; each sees only their own';
COMMENT ON COLUMN crm.pin.employee_id IS 'Employee (crm.employee.id) who pinned the record; kept by crm; not writable';
COMMENT ON COLUMN crm.pin.record_type IS 'Type of the pinned record';
COMMENT ON COLUMN crm.pin.record_id IS 'Id of the pinned record';
COMMENT ON COLUMN crm.pin.pinned_at IS 'When the record was pinned; kept by crm; not writable';

DO $tags$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['tag_group', 'tag'] LOOP
		EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE INSERT OR UPDATE OR DELETE ON crm.%I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin(''admin.fields'')', t || '_require_admin', t);
		EXECUTE format('GRANT SELECT, DELETE ON crm.%I TO crm_user', t);
	END LOOP;
END
$tags$;
GRANT INSERT (name, position), UPDATE (name, position) ON crm.tag_group TO crm_user;
GRANT INSERT (group_id, name, color, position), UPDATE (group_id, name, color, position) ON crm.tag TO crm_user;

ALTER TABLE crm.record_tag ENABLE ROW LEVEL SECURITY;
-- (record_tag_read comes with the record types: 97_record_types.sql)
CREATE OR REPLACE TRIGGER record_tag_reach BEFORE INSERT ON crm.record_tag
	FOR EACH ROW EXECUTE FUNCTION crm.check_record_reach('editable', 'tag');
CREATE POLICY record_tag_write ON crm.record_tag FOR INSERT TO crm_user
	WITH CHECK (crm.record_editable(record_type, record_id));
CREATE POLICY record_tag_remove ON crm.record_tag FOR DELETE TO crm_user
	USING (crm.record_editable(record_type, record_id));
-- created_by and created_at are crm's: a tag's author is whoever put it there
GRANT SELECT, DELETE ON crm.record_tag TO crm_user;
GRANT INSERT (record_type, record_id, tag_id) ON crm.record_tag TO crm_user;

ALTER TABLE crm.pin ENABLE ROW LEVEL SECURITY;
CREATE POLICY pin_own ON crm.pin TO crm_user
	USING (employee_id = crm.current_employee_id())
	WITH CHECK (employee_id = crm.current_employee_id() AND crm.record_visible(record_type, record_id));
-- a pin is the acting employee's, made now, on a record they see; it is removed, not moved
GRANT SELECT, DELETE ON crm.pin TO crm_user;
GRANT INSERT (record_type, record_id) ON crm.pin TO crm_user;
CREATE INDEX pin_record_idx ON crm.pin (record_type, record_id);
