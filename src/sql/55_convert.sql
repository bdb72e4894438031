-- crm.convert_lead(): a lead becomes a customer and a contact in one
-- transaction, or a contact of a customer that already exists (into_customer:
-- the company was a customer before its lead came).  It runs as the caller, so
-- the customer and contact pass every check a direct insert does (permissions,
-- scope, codes, dictionaries).  The C entry point (src/core/context.c) tells
-- duplicate checks which lead is converting; the work is
-- crm.convert_lead_apply(), which only it calls.
CREATE OR REPLACE FUNCTION crm.convert_lead(lead_id bigint, into_customer bigint DEFAULT NULL,
                                            with_opportunity boolean DEFAULT false) RETURNS bigint
	AS 'MODULE_PATHNAME', 'crm_convert_lead' LANGUAGE C;

CREATE OR REPLACE FUNCTION crm.convert_lead_apply(lead_id bigint, into_customer bigint, with_opportunity boolean) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	l        crm.lead;
	me       text := coalesce((SELECT format('employee "%s"', crm.clip(e.name)) FROM crm.employee e
	                            WHERE e.id = crm.current_employee_id()), 'nobody');
	customer crm.customer;
BEGIN
	SELECT * INTO l FROM crm.lead WHERE id = lead_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no lead % is visible to %', lead_id, me
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'Convert a lead you own or manage.';
	ELSIF l.status = 'converted' THEN
		RAISE EXCEPTION 'lead "%" was already converted into customer "%"', crm.clip(l.name),
			coalesce((SELECT crm.clip(c.name) FROM crm.customer c WHERE c.id = l.customer_id), 'deleted since')
			USING ERRCODE = 'object_not_in_prerequisite_state';
	ELSIF l.status = 'invalid' THEN
		RAISE EXCEPTION 'lead "%" is marked invalid', crm.clip(l.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Set its status back to following first.';
	ELSIF NOT crm.has_permission('lead.convert') AND NOT current_setting('is_superuser')::boolean THEN
		RAISE EXCEPTION '% may not convert lead "%"', me, crm.clip(l.name)
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'None of the employee''s roles grants the permission "lead.convert".',
			      HINT = 'Ask an administrator to add "lead.convert" to one of your roles (crm.role_permission).';
	END IF;

	IF into_customer IS NOT NULL THEN
		-- the company is a customer already: the lead's person joins its contacts
		SELECT * INTO customer FROM crm.customer c WHERE c.id = into_customer;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'lead "%" cannot be converted into customer %: no customer with that id is visible to %',
				crm.clip(l.name), into_customer, me
				USING ERRCODE = 'insufficient_privilege',
				      HINT = 'Name a customer you can see (crm.find_duplicates finds the lead''s company among them).';
		END IF;
	ELSE
		-- a lead with a company becomes a company customer; otherwise the person is the customer
		IF l.company IS NOT NULL AND l.uscc IS NULL AND (SELECT s.uscc_required FROM crm.settings s) THEN
			RAISE EXCEPTION 'lead "%" cannot become company customer "%" without its unified social credit code',
				crm.clip(l.name), crm.clip(l.company)
				USING ERRCODE = 'check_violation',
				      DETAIL = 'Company customers are identified by their 统一社会信用代码 (uscc); crm.settings.uscc_required is on.',
				      HINT = 'Give the lead its uscc first, or convert it into the customer the company already is: crm.convert_lead(lead_id, into_customer => customer_id).';
		END IF;
		INSERT INTO crm.customer (name, kind, uscc, source, industry, owner_id)
		VALUES (coalesce(l.company, l.name), CASE WHEN l.company IS NULL THEN 'individual' ELSE 'company' END,
		        l.uscc, l.source, l.industry, l.owner_id)
		RETURNING * INTO customer;
	END IF;
	-- a contact belongs to whoever owns its customer
	INSERT INTO crm.contact (customer_id, name, mobile, email, is_decision_maker, owner_id)
	VALUES (customer.id, l.name, l.mobile, l.email, into_customer IS NULL, customer.owner_id);
	UPDATE crm.lead SET status = 'converted', customer_id = customer.id, converted_at = now() WHERE id = l.id;
	-- and the deal the lead was about, from its requirement and expected amount
	-- (docs/opportunities.md), as the caller writes one
	IF with_opportunity THEN
		INSERT INTO crm.opportunity (customer_id, name, amount, requirement, lead_id, owner_id)
		VALUES (customer.id, coalesce(left(nullif(btrim(l.requirement), ''), 60), customer.name), coalesce(l.expected_amount, 0),
		        l.requirement, l.id, l.owner_id);
	END IF;
	RETURN customer.id;
END
$$;
COMMENT ON FUNCTION crm.convert_lead(bigint, bigint, boolean) IS
	'Turn a lead into a customer and a contact, or (into_customer) a contact of an existing customer, and (with_opportunity) a deal from its requirement and expected amount, through the same checks as direct inserts; the lead stays, linked and read-only';

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
