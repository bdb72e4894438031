-- crm.convert_lead(): a lead becomes a customer and a contact in one
-- transaction.  It runs as the caller, so the customer and contact pass every
-- check a direct insert does (permissions, scope, codes, dictionaries).  The C
-- entry point (src/core/context.c) tells duplicate checks which lead is converting;
-- the work is crm.convert_lead_apply(), which only it calls.
CREATE OR REPLACE FUNCTION crm.convert_lead(lead_id bigint) RETURNS bigint
	AS 'MODULE_PATHNAME', 'crm_convert_lead' LANGUAGE C STRICT;

CREATE OR REPLACE FUNCTION crm.convert_lead_apply(lead_id bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	l        crm.lead;
	customer bigint;
BEGIN
	SELECT * INTO l FROM crm.lead WHERE id = lead_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'lead % is not visible to employee %', lead_id, coalesce(crm.current_employee_id()::text, 'nobody')
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'Convert a lead you own or manage.';
	ELSIF l.status = 'converted' THEN
		RAISE EXCEPTION 'lead % (%) was already converted into customer %', l.id, crm.clip(l.name), l.customer_id
			USING ERRCODE = 'object_not_in_prerequisite_state';
	ELSIF l.status = 'invalid' THEN
		RAISE EXCEPTION 'lead % (%) is marked invalid', l.id, crm.clip(l.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Set its status back to following first.';
	ELSIF NOT crm.has_permission('lead.convert') AND NOT current_setting('is_superuser')::boolean THEN
		RAISE EXCEPTION 'employee % may not convert lead %', crm.current_employee_id(), l.id
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'None of the employee''s roles grants the permission "lead.convert".',
			      HINT = 'Ask an administrator to add "lead.convert" to one of your roles (crm.role_permission).';
	END IF;

	-- a lead with a company becomes a company customer; otherwise the person is the customer
	INSERT INTO crm.customer (name, kind, uscc, source, industry, owner_id)
	VALUES (coalesce(l.company, l.name), CASE WHEN l.company IS NULL THEN 'individual' ELSE 'company' END,
	        l.uscc, l.source, l.industry, l.owner_id)
	RETURNING id INTO customer;
	INSERT INTO crm.contact (customer_id, name, mobile, email, is_decision_maker, owner_id)
	VALUES (customer, l.name, l.mobile, l.email, true, l.owner_id);
	UPDATE crm.lead SET status = 'converted', customer_id = customer, converted_at = now() WHERE id = l.id;
	RETURN customer;
END
$$;
COMMENT ON FUNCTION crm.convert_lead(bigint) IS
	'Turn a lead into a customer and a contact, through the same checks as direct inserts; the lead stays, linked and read-only';

-- Only crm.convert_lead converts: a lead becomes converted, or names a customer,
-- while crm.converting_lead (superuser-only, set by src/core/context.c) names it, or
-- in crm's own owner-run code (a merge moves the links of converted leads).
CREATE OR REPLACE FUNCTION crm.guard_lead_conversion() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.lead'::regclass THEN RAISE 'crm.guard_lead_conversion() runs only on crm.lead, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF current_setting('crm.converting_lead') IS DISTINCT FROM NEW.id::text
	   AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
		RAISE EXCEPTION 'lead % (%) can become a customer only through crm.convert_lead', NEW.id, crm.clip(NEW.name)
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'A lead''s status "converted", its customer and its conversion time are written by the conversion.',
			      HINT = format('SELECT crm.convert_lead(%s);', NEW.id);
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER lead_conversion_new BEFORE INSERT ON crm.lead
	FOR EACH ROW WHEN (NEW.status = 'converted' OR NEW.customer_id IS NOT NULL OR NEW.converted_at IS NOT NULL)
	EXECUTE FUNCTION crm.guard_lead_conversion();
CREATE OR REPLACE TRIGGER lead_conversion BEFORE UPDATE OF status, customer_id, converted_at ON crm.lead
	FOR EACH ROW WHEN ((NEW.status = 'converted') <> (OLD.status = 'converted')
	                   OR NEW.customer_id IS DISTINCT FROM OLD.customer_id OR NEW.converted_at IS DISTINCT FROM OLD.converted_at)
	EXECUTE FUNCTION crm.guard_lead_conversion();
