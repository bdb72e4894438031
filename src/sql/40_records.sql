-- Business records: leads, customers, follow-ups.
--
-- Who sees a lead or customer: its owner is in the acting employee's scope
-- for the record type, or a current team entry shares it.  Writing also needs
-- the action permission, checked with a precise error by crm.check_write().
-- Sessions that resolve to no employee see nothing (fail closed).

CREATE TABLE crm.lead (
	id          bigint GENERATED ALWAYS AS IDENTITY,
	name        text NOT NULL,
	company     text,
	mobile      text,
	owner_id    bigint NOT NULL DEFAULT crm.current_employee_id(),
	status      text NOT NULL DEFAULT 'new',
	created_by  bigint,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT lead_pkey PRIMARY KEY (id),
	CONSTRAINT lead_owner_fkey FOREIGN KEY (owner_id) REFERENCES crm.employee (id),
	CONSTRAINT lead_created_by_fkey FOREIGN KEY (created_by) REFERENCES crm.employee (id),
	CONSTRAINT lead_name_check CHECK (btrim(name) <> ''),
	CONSTRAINT lead_status_check CHECK (status IN ('new', 'following', 'converted', 'invalid'))
);

CREATE TABLE crm.customer (
	id                bigint GENERATED ALWAYS AS IDENTITY,
	name              text NOT NULL,
	kind              text NOT NULL DEFAULT 'company',
	uscc              text,
	phone             text,
	industry          text,
	source            text,
	owner_id          bigint NOT NULL DEFAULT crm.current_employee_id(),
	last_follow_up_at timestamptz,
	created_by        bigint,
	created_at        timestamptz NOT NULL DEFAULT now(),
	updated_at        timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT customer_pkey PRIMARY KEY (id),
	CONSTRAINT customer_owner_fkey FOREIGN KEY (owner_id) REFERENCES crm.employee (id),
	CONSTRAINT customer_created_by_fkey FOREIGN KEY (created_by) REFERENCES crm.employee (id),
	CONSTRAINT customer_name_check CHECK (btrim(name) <> ''),
	CONSTRAINT customer_kind_check CHECK (kind IN ('company', 'individual'))
);

CREATE TABLE crm.follow_up (
	id               bigint GENERATED ALWAYS AS IDENTITY,
	record_type      text NOT NULL,
	record_id        bigint NOT NULL,
	method           text NOT NULL DEFAULT 'phone',
	content          text NOT NULL,
	next_contact_at  timestamptz,
	created_by       bigint,
	created_at       timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT follow_up_pkey PRIMARY KEY (id),
	CONSTRAINT follow_up_created_by_fkey FOREIGN KEY (created_by) REFERENCES crm.employee (id),
	CONSTRAINT follow_up_record_type_check CHECK (record_type IN ('lead', 'customer')),
	CONSTRAINT follow_up_content_check CHECK (btrim(content) <> '')
);
COMMENT ON COLUMN crm.follow_up.created_at IS 'When the follow-up happened; defaults to now(), may be given for imported history';

-- Scope columns lead the indexes: RLS filters on them first.
CREATE INDEX lead_owner_idx ON crm.lead (owner_id, updated_at DESC);
CREATE INDEX customer_owner_idx ON crm.customer (owner_id, updated_at DESC);
CREATE INDEX customer_updated_idx ON crm.customer (updated_at DESC);
CREATE INDEX follow_up_record_idx ON crm.follow_up (record_type, record_id, created_at DESC);
CREATE INDEX follow_up_created_by_idx ON crm.follow_up (created_by, created_at DESC);

CREATE TRIGGER lead_stamp BEFORE INSERT OR UPDATE ON crm.lead
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();
CREATE TRIGGER customer_stamp BEFORE INSERT OR UPDATE ON crm.customer
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();
CREATE TRIGGER follow_up_stamp BEFORE INSERT OR UPDATE ON crm.follow_up
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();
-- named to run after the stamp trigger (triggers fire in name order)
CREATE TRIGGER lead_write_check BEFORE INSERT OR UPDATE OR DELETE ON crm.lead
	FOR EACH ROW EXECUTE FUNCTION crm.check_write('lead');
CREATE TRIGGER customer_write_check BEFORE INSERT OR UPDATE OR DELETE ON crm.customer
	FOR EACH ROW EXECUTE FUNCTION crm.check_write('customer');

ALTER TABLE crm.lead ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.customer ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.follow_up ENABLE ROW LEVEL SECURITY;

-- The policies of owned records, one set per table.  The scope arms are written
-- so that the planner can turn each into an index condition (see src/scope.c);
-- UPDATE may move the owner out of scope, which crm.check_write() allows only
-- with the transfer permission.
DO $policies$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['lead', 'customer'] LOOP
		EXECUTE format($p$
			CREATE POLICY %1$s_read ON crm.%1$I FOR SELECT TO crm_user USING (
				owner_id = ANY (crm.scope_owners(%2$L)) OR id = ANY (crm.team_records(%2$L, false)))$p$, t, t);
		EXECUTE format($p$
			CREATE POLICY %1$s_insert ON crm.%1$I FOR INSERT TO crm_user WITH CHECK (
				owner_id = ANY (crm.scope_owners(%2$L)))$p$, t, t);
		EXECUTE format($p$
			CREATE POLICY %1$s_update ON crm.%1$I FOR UPDATE TO crm_user USING (
				owner_id = ANY (crm.scope_owners(%2$L)) OR id = ANY (crm.team_records(%2$L, true)))
				WITH CHECK (true)$p$, t, t);
		EXECUTE format($p$
			CREATE POLICY %1$s_delete ON crm.%1$I FOR DELETE TO crm_user USING (
				owner_id = ANY (crm.scope_owners(%2$L)))$p$, t, t);
	END LOOP;
END
$policies$;

-- A follow-up is visible to its author and to whoever may see its record
-- (the sub-selects below run under the record tables' own policies).
CREATE POLICY follow_up_read ON crm.follow_up FOR SELECT TO crm_user
	USING (created_by = (SELECT crm.current_employee_id())
		OR (record_type = 'customer' AND EXISTS (SELECT FROM crm.customer c WHERE c.id = record_id))
		OR (record_type = 'lead' AND EXISTS (SELECT FROM crm.lead l WHERE l.id = record_id)));
CREATE POLICY follow_up_write ON crm.follow_up FOR INSERT TO crm_user
	WITH CHECK (created_by = (SELECT crm.current_employee_id())
		AND ((record_type = 'customer' AND EXISTS (SELECT FROM crm.customer c WHERE c.id = record_id))
			OR (record_type = 'lead' AND EXISTS (SELECT FROM crm.lead l WHERE l.id = record_id))));
CREATE POLICY follow_up_edit ON crm.follow_up FOR UPDATE TO crm_user
	USING (created_by = (SELECT crm.current_employee_id()));
CREATE POLICY follow_up_delete ON crm.follow_up FOR DELETE TO crm_user
	USING (created_by = (SELECT crm.current_employee_id()));

GRANT SELECT, INSERT, UPDATE, DELETE ON crm.lead, crm.customer, crm.follow_up TO crm_user;
