-- Contracts (合同, seeds 002, 003, 004): what a customer signed, numbered by a
-- pattern a DBA edits, with lines of products; a draft is submitted and takes
-- effect, which marks its customer signed and its deal won.  docs/contracts.md.
--
-- The rules of a contract live in one trigger, crm.contract_write(), so that
-- crm.submit_contract() and a plain UPDATE ... SET status behave alike.

-- Numbers (合同编号) come from a pattern per record type: {yyyy}, {yy}, {mm}
-- and {dd} are today's date in the company's time zone, {seq:N} a counter of
-- N digits or more that starts again at 1 whenever the rest of the number
-- changes (each year, for HT-{yyyy}-{seq:5}).
CREATE TABLE crm.number_pattern (
	record_type  text NOT NULL,
	pattern      text NOT NULL,
	builtin      boolean NOT NULL DEFAULT false,
	CONSTRAINT number_pattern_pkey PRIMARY KEY (record_type),
	CONSTRAINT number_pattern_record_type_fkey FOREIGN KEY (record_type) REFERENCES crm.record_type (name),
	CONSTRAINT number_pattern_pattern_check CHECK (crm.check_length(pattern, 60, 'number_pattern.pattern'))
);
COMMENT ON TABLE crm.number_pattern IS 'How new records of a type are numbered when no number is given: {yyyy} {yy} {mm} {dd} of today, {seq:N} a counter of N digits per distinct rest';
COMMENT ON COLUMN crm.number_pattern.record_type IS 'The record type (crm.record_type) numbered';
COMMENT ON COLUMN crm.number_pattern.pattern IS 'E.g. HT-{yyyy}-{seq:5}: exactly one {seq:N}, N from 1 to 12; at most 60 characters';
COMMENT ON COLUMN crm.number_pattern.builtin IS 'Shipped with crm (a dump leaves it out unless edited); kept by crm; not writable';

-- The counters, one per type and rest of the number: crm's own.
CREATE TABLE crm.number_counter (
	record_type  text NOT NULL,
	prefix       text NOT NULL,
	last_value   bigint NOT NULL,
	CONSTRAINT number_counter_pkey PRIMARY KEY (record_type, prefix)
);
COMMENT ON TABLE crm.number_counter IS 'The last {seq} given per record type and rest of the number (the pattern with today''s date); kept by crm';
COMMENT ON COLUMN crm.number_counter.record_type IS 'The record type numbered';
COMMENT ON COLUMN crm.number_counter.prefix IS 'The number with today''s date and {seq} in place of the counter';
COMMENT ON COLUMN crm.number_counter.last_value IS 'The last counter value given';

CREATE OR REPLACE FUNCTION crm.number_pattern_valid() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	unknown text;
BEGIN
	IF TG_RELID <> 'crm.number_pattern'::regclass THEN RAISE 'crm.number_pattern_valid() runs only on crm.number_pattern, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	unknown := (SELECT m[1] FROM regexp_matches(NEW.pattern, '(\{[^}]*\}?)', 'g') m
	             WHERE m[1] !~ '^\{(yyyy|yy|mm|dd|seq:([1-9]|1[0-2]))\}$' LIMIT 1);
	-- (and no number it gives is longer than a number may be)
	IF unknown IS NULL AND length(regexp_replace(replace(replace(replace(replace(NEW.pattern, '{yyyy}', 'YYYY'), '{yy}', 'YY'), '{mm}', 'MM'), '{dd}', 'DD'),
	                                             '\{seq:(\d+)\}', repeat('9', coalesce(substring(NEW.pattern FROM '\{seq:(\d+)\}')::integer, 0)))) > 60 THEN
		RAISE EXCEPTION 'number pattern "%" of % gives numbers longer than 60 characters', crm.clip(NEW.pattern), NEW.record_type
			USING ERRCODE = 'check_violation',
			      HINT = 'Shorten its text or its {seq:N}: a number has at most 60 characters.';
	END IF;
	IF unknown IS NOT NULL OR (SELECT count(*) FROM regexp_matches(NEW.pattern, '\{seq:', 'g')) <> 1 THEN
		RAISE EXCEPTION 'number pattern "%" of % %', crm.clip(NEW.pattern), NEW.record_type,
			CASE WHEN unknown IS NOT NULL THEN format('has an unknown part %s', crm.clip(unknown)) ELSE 'needs exactly one {seq:N}' END
			USING ERRCODE = 'check_violation',
			      DETAIL = 'A pattern is text with {yyyy}, {yy}, {mm} and {dd} (today) and one {seq:N}, a counter of N digits (1 to 12).',
			      HINT = 'For example HT-{yyyy}-{seq:5} numbers HT-2026-00001, HT-2026-00002 and from 2027 on HT-2027-00001.';
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER number_pattern_valid BEFORE INSERT OR UPDATE ON crm.number_pattern
	FOR EACH ROW EXECUTE FUNCTION crm.number_pattern_valid();
CREATE OR REPLACE TRIGGER number_pattern_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.number_pattern
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('admin.rules');
GRANT SELECT, DELETE ON crm.number_pattern TO crm_user;
GRANT INSERT (record_type, pattern), UPDATE (pattern) ON crm.number_pattern TO crm_user;

-- The next free number of a type, for a new record that gives none: the
-- counter of today's rest of the number, past numbers someone gave by hand.
-- As the owner (the counters are crm's, and given numbers may be on records
-- the writer does not see); only crm's number triggers call it.
CREATE OR REPLACE FUNCTION crm.next_number(record_type text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	today    date := (now() AT TIME ZONE (SELECT s.timezone FROM crm.settings s))::date;
	pattern  text := (SELECT p.pattern FROM crm.number_pattern p WHERE p.record_type = next_number.record_type);
	prefix   text;
	digits   integer;
	relation regclass := (SELECT t.relation FROM crm.record_type t WHERE t.name = next_number.record_type);
	seq      bigint;
	number   text;
	taken    boolean;
BEGIN
	IF pattern IS NULL THEN
		RAISE EXCEPTION 'no number pattern numbers % records', record_type
			USING ERRCODE = 'not_null_violation',
			      HINT = format('Give the number, or a pattern: INSERT INTO crm.number_pattern VALUES (%L, ''HT-{yyyy}-{seq:5}'');', record_type);
	END IF;
	prefix := replace(replace(replace(replace(pattern, '{yyyy}', to_char(today, 'YYYY')), '{yy}', to_char(today, 'YY')),
	                          '{mm}', to_char(today, 'MM')), '{dd}', to_char(today, 'DD'));
	digits := substring(prefix FROM '\{seq:(\d+)\}')::integer;
	prefix := regexp_replace(prefix, '\{seq:\d+\}', '{seq}');
	LOOP
		INSERT INTO crm.number_counter AS c (record_type, prefix, last_value) VALUES (next_number.record_type, prefix, 1)
		ON CONFLICT ON CONSTRAINT number_counter_pkey DO UPDATE SET last_value = c.last_value + 1
		RETURNING c.last_value INTO seq;
		number := replace(prefix, '{seq}', lpad(seq::text, greatest(digits, length(seq::text)), '0'));
		EXECUTE format('SELECT EXISTS (SELECT FROM %s r WHERE r.number = $1)', relation) INTO taken USING number;
		EXIT WHEN NOT taken;
	END LOOP;
	RETURN number;
END
$$;

-- A new record of a numbered type without a number gets the next.
CREATE OR REPLACE FUNCTION crm.assign_number() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.contract'::regclass THEN RAISE 'crm.assign_number() runs only on crm.contract, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF NEW.number IS NULL THEN
		NEW.number := crm.next_number(TG_TABLE_NAME);
	END IF;
	RETURN NEW;
END
$$;

CREATE TABLE crm.contract (
	id                 bigint GENERATED ALWAYS AS IDENTITY,
	number             text NOT NULL,
	customer_id        bigint NOT NULL,
	opportunity_id     bigint,
	name               text NOT NULL,
	signer_contact_id  bigint,
	signed_on          date,
	start_date         date,
	end_date           date,
	owner_id           bigint NOT NULL DEFAULT crm.current_employee_id(),
	amount             numeric(14, 2) NOT NULL DEFAULT 0,
	status             text NOT NULL DEFAULT 'draft',
	received_amount    numeric(14, 2) NOT NULL DEFAULT 0,
	invoiced_amount    numeric(14, 2) NOT NULL DEFAULT 0,
	note               text,
	submitted_at       timestamptz,
	effective_at       timestamptz,
	created_by         bigint,
	created_at         timestamptz NOT NULL DEFAULT now(),
	updated_at         timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT contract_pkey PRIMARY KEY (id),
	CONSTRAINT contract_number_key UNIQUE (number),
	-- (checked at commit, as a deal's: crm.record_deleted() names the customer)
	CONSTRAINT contract_customer_fkey FOREIGN KEY (customer_id) REFERENCES crm.customer (id) DEFERRABLE INITIALLY DEFERRED,
	CONSTRAINT contract_opportunity_fkey FOREIGN KEY (opportunity_id) REFERENCES crm.opportunity (id) DEFERRABLE INITIALLY DEFERRED,
	CONSTRAINT contract_signer_fkey FOREIGN KEY (signer_contact_id) REFERENCES crm.contact (id) ON DELETE SET NULL,
	CONSTRAINT contract_number_check CHECK (crm.check_length(number, 60, 'contract.number') AND btrim(number) <> ''),
	CONSTRAINT contract_name_check CHECK (crm.check_length(name, 200, 'contract.name') AND btrim(name) <> ''),
	CONSTRAINT contract_note_length CHECK (crm.check_length(note, 20000, 'contract.note')),
	-- (crm.contract_write says which rule a row breaks; these hold whoever writes)
	CONSTRAINT contract_amount_check CHECK (amount >= 0 AND amount <> 'NaN'),
	CONSTRAINT contract_dates_check CHECK (end_date >= start_date),
	CONSTRAINT contract_status_check CHECK (status IN ('draft', 'pending', 'effective', 'rejected', 'void', 'archived')),
	CONSTRAINT contract_money_check CHECK (received_amount BETWEEN 0 AND amount AND invoiced_amount BETWEEN 0 AND amount)
);
COMMENT ON CONSTRAINT contract_customer_fkey ON crm.contract IS
	'A customer''s contracts keep it: merge the customer into another (crm.merge_customers), or delete its draft contracts first.';
COMMENT ON CONSTRAINT contract_opportunity_fkey ON crm.contract IS
	'A deal a contract closes stays: delete the draft contract first, or name another deal on it.';
COMMENT ON TABLE crm.contract IS 'Contracts (合同): what a customer signed; a draft is submitted (crm.submit_contract) and takes effect, then takes payments and invoices';
COMMENT ON COLUMN crm.contract.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.contract.number IS 'Contract number (合同编号); unique; from crm.number_pattern unless given';
COMMENT ON COLUMN crm.contract.customer_id IS 'The customer (crm.customer.id), one the writer sees';
COMMENT ON COLUMN crm.contract.opportunity_id IS 'The deal (crm.opportunity.id) it closes, if any: one of the same customer''s, not lost';
COMMENT ON COLUMN crm.contract.name IS 'Name of the contract; at most 200 characters';
COMMENT ON COLUMN crm.contract.signer_contact_id IS 'The customer''s contact who signed (crm.contact.id), if known';
COMMENT ON COLUMN crm.contract.signed_on IS 'When it was signed (签约日期)';
COMMENT ON COLUMN crm.contract.start_date IS 'When it starts';
COMMENT ON COLUMN crm.contract.end_date IS 'When it ends: not before start_date';
COMMENT ON COLUMN crm.contract.owner_id IS 'Owning employee (crm.employee.id); defaults to the acting employee';
COMMENT ON COLUMN crm.contract.amount IS 'Contract amount in yuan: the total of its lines when it has lines; more than 0 when submitted';
COMMENT ON COLUMN crm.contract.status IS 'draft, pending (awaiting approval), effective, rejected, void (作废) or archived (归档); moved by submitting (crm.submit_contract) and by crm';
COMMENT ON COLUMN crm.contract.received_amount IS 'Confirmed payments less confirmed refunds, in yuan; kept by crm; not writable';
COMMENT ON COLUMN crm.contract.invoiced_amount IS 'Invoices submitted or issued, in yuan; kept by crm; not writable';
COMMENT ON COLUMN crm.contract.note IS 'Terms and remarks; at most 20,000 characters';
COMMENT ON COLUMN crm.contract.submitted_at IS 'When it was last submitted; kept by crm; not writable';
COMMENT ON COLUMN crm.contract.effective_at IS 'When it took effect; kept by crm; not writable';
COMMENT ON COLUMN crm.contract.created_by IS 'Employee (crm.employee.id) who created the contract; kept by crm; not writable';
COMMENT ON COLUMN crm.contract.created_at IS 'When the contract was created; kept by crm; not writable';
COMMENT ON COLUMN crm.contract.updated_at IS 'When the contract last changed; kept by crm; not writable';
CREATE INDEX contract_owner_idx ON crm.contract (owner_id, updated_at DESC);
CREATE INDEX contract_customer_idx ON crm.contract (customer_id);
CREATE INDEX contract_opportunity_idx ON crm.contract (opportunity_id);
CREATE INDEX contract_signer_idx ON crm.contract (signer_contact_id);
ALTER TABLE crm.contract ENABLE ROW LEVEL SECURITY;
GRANT SELECT, DELETE ON crm.contract TO crm_user;
GRANT INSERT (number, customer_id, opportunity_id, name, signer_contact_id, signed_on, start_date, end_date, owner_id,
              amount, status, note),
      UPDATE (number, customer_id, opportunity_id, name, signer_contact_id, signed_on, start_date, end_date, owner_id,
              amount, status, note)
	ON crm.contract TO crm_user;
SELECT crm.register_record_type('contract', 'crm.contract', '合同', 'Contract', 'owner',
	'{team, follow_ups, tags, pins, attachments, custom_fields, oplog, timeline, transfer, handover, notifications, search}',
	'contracts.md', title => 'concat_ws('' · '', r.number, r.name)', search_columns => '{number, name}');
INSERT INTO crm.number_pattern (record_type, pattern, builtin) VALUES ('contract', 'HT-{yyyy}-{seq:5}', true);
SELECT crm.keep_builtin_edits('crm.number_pattern', 'record_type');
SELECT pg_catalog.pg_extension_config_dump('crm.number_pattern', 'WHERE NOT builtin');
CREATE OR REPLACE TRIGGER contract_number BEFORE INSERT ON crm.contract
	FOR EACH ROW EXECUTE FUNCTION crm.assign_number();

-- The rules of a contract as it is written, as the writer: its customer,
-- deal and signer are ones the writer sees and belong together; dates in
-- order; a draft (or a rejected one) is edited freely and submitted, which
-- needs an amount and a deal not lost; a contract pending or effective keeps
-- its business fields (changes go through a request) and changes status only
-- by crm.  What the status becomes on submitting is crm's: pending while an
-- approval flow applies (issue 13), effective otherwise.  Its owner may
-- change in any state (transfer, handover).
CREATE OR REPLACE FUNCTION crm.contract_write() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	label    text;
	me       text;
	deal     crm.opportunity;
	-- what a contract that is no draft may still change
	free     text[] := '{owner_id, status, received_amount, invoiced_amount, submitted_at, effective_at, updated_at}';
BEGIN
	IF TG_RELID <> 'crm.contract'::regclass THEN RAISE 'crm.contract_write() runs only on crm.contract, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() OR current_setting('crm.change_source') = 'system' THEN
		RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
	END IF;
	IF TG_OP = 'DELETE' THEN
		IF OLD.status NOT IN ('draft', 'rejected') THEN
			RAISE EXCEPTION 'contract % (%) is % and cannot be deleted', crm.clip(OLD.number), crm.clip(OLD.name), OLD.status
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      DETAIL = 'A contract that was submitted stays, with its money: it is voided or archived instead.',
				      HINT = 'Void and archive requests come with approvals (docs/contracts.md).';
		END IF;
		RETURN OLD;
	END IF;
	label := CASE WHEN TG_OP = 'INSERT' THEN format('"%s"', crm.clip(NEW.name)) ELSE format('%s (%s)', crm.clip(OLD.number), crm.clip(OLD.name)) END;
	me := coalesce((SELECT format('employee "%s"', crm.clip(e.name)) FROM crm.employee e WHERE e.id = crm.current_employee_id()), 'nobody');

	IF TG_OP = 'UPDATE' AND OLD.status NOT IN ('draft', 'rejected') THEN
		-- (crm's own code moves a contract to the customer it merges into)
		IF NOT row_security_active('crm.contract') THEN
			free := free || '{customer_id}'::text[];
		END IF;
		IF (to_jsonb(NEW) - free) <> (to_jsonb(OLD) - free) THEN
			RAISE EXCEPTION 'contract % is % and its terms are read-only', label, OLD.status
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      DETAIL = 'A contract keeps the terms it was submitted with: changing them takes an approved change request.',
				      HINT = 'Its owner may still change (crm.transfer); change requests come with approvals (docs/contracts.md).';
		ELSIF NEW.status <> OLD.status THEN
			RAISE EXCEPTION 'contract % is % and cannot be made % directly', label, OLD.status, NEW.status
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      DETAIL = 'Only crm moves a contract on once it is submitted: an approval decides a pending one, an approved request voids or archives an effective one.',
				      HINT = 'Void and archive requests come with approvals (docs/contracts.md).';
		END IF;
		RETURN NEW;
	END IF;

	-- a draft (or a rejected contract, editable again)
	IF NEW.start_date > NEW.end_date THEN
		RAISE EXCEPTION 'contract % cannot end on % before it starts on %', label, to_char(NEW.end_date, 'YYYY-MM-DD'), to_char(NEW.start_date, 'YYYY-MM-DD')
			USING ERRCODE = 'check_violation',
			      HINT = 'Give an end_date on or after start_date.';
	END IF;
	IF NEW.amount < 0 OR NEW.amount = 'NaN' THEN
		RAISE EXCEPTION 'contract % cannot have an amount of % yuan', label, NEW.amount
			USING ERRCODE = 'check_violation', HINT = 'Give an amount of 0 or more (more than 0 to submit it).';
	ELSIF TG_OP = 'UPDATE' AND NEW.amount < OLD.amount
	      AND NEW.amount < (SELECT sum(p.amount) FROM crm.payment_plan p WHERE p.contract_id = NEW.id) THEN
		RAISE EXCEPTION 'contract % cannot be worth % yuan: its payment plans come to % yuan', label, NEW.amount,
			(SELECT sum(p.amount) FROM crm.payment_plan p WHERE p.contract_id = NEW.id)
			USING ERRCODE = 'check_violation',
			      HINT = 'Plan less first (crm.payment_plan), then lower the amount.';
	END IF;
	IF TG_OP = 'UPDATE' AND NEW.amount <> OLD.amount
	   AND EXISTS (SELECT FROM crm.contract_product l WHERE l.contract_id = NEW.id)
	   AND NEW.amount <> (SELECT sum(l.amount) FROM crm.contract_product l WHERE l.contract_id = NEW.id) THEN
		RAISE EXCEPTION 'contract % has lines: its amount is their total, % yuan', label,
			(SELECT sum(l.amount) FROM crm.contract_product l WHERE l.contract_id = NEW.id)
			USING ERRCODE = 'check_violation',
			      HINT = 'Change its lines (crm.contract_product), or delete them to give an amount of its own.';
	END IF;
	-- the customer (marked signed when the contract takes effect) and the
	-- deal (then won) are ones the writer may change, not only see
	IF row_security_active('crm.customer')
	   AND (TG_OP = 'INSERT' OR NEW.customer_id <> OLD.customer_id OR NEW.status <> OLD.status)
	   AND NOT crm.record_editable('customer', NEW.customer_id) THEN
		RAISE EXCEPTION 'contract % cannot be for customer %', label,
			coalesce((SELECT format('%s (%s): %s may not change it', c.id, crm.clip(c.name), me) FROM crm.customer c WHERE c.id = NEW.customer_id),
			         format('%s: no such customer is visible to %s', NEW.customer_id, me))
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'A contract that takes effect marks its customer signed.',
			      HINT = 'A contract is for a customer you may edit; crm.explain_access(''customer'', id) says why not.';
	END IF;
	IF NEW.opportunity_id IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.opportunity_id IS DISTINCT FROM OLD.opportunity_id
	                                       OR NEW.customer_id <> OLD.customer_id OR NEW.status <> OLD.status) THEN
		SELECT * INTO deal FROM crm.opportunity o WHERE o.id = NEW.opportunity_id;
		IF deal.id IS NULL THEN
			RAISE EXCEPTION 'contract % cannot close opportunity %: no such opportunity is visible to %', label, NEW.opportunity_id, me
				USING ERRCODE = 'insufficient_privilege',
				      HINT = 'SELECT id, name FROM crm.opportunity WHERE customer_id = ... lists the customer''s deals you see.';
		ELSIF deal.customer_id <> NEW.customer_id THEN
			RAISE EXCEPTION 'contract % cannot close opportunity % (%): it is another customer''s', label, deal.id, crm.clip(deal.name)
				USING ERRCODE = 'check_violation',
				      HINT = format('Name a deal of customer %s, or none.', NEW.customer_id);
		ELSIF deal.status = 'lost' THEN
			RAISE EXCEPTION 'contract % cannot close opportunity % (%): it was lost', label, deal.id, crm.clip(deal.name)
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      HINT = format('Reopen it first (SELECT crm.reopen_opportunity(%s)), or name no deal.', deal.id);
		ELSIF row_security_active('crm.opportunity') AND NOT crm.record_editable('opportunity', deal.id) THEN
			RAISE EXCEPTION 'contract % cannot close opportunity % (%): % may not change it', label, deal.id, crm.clip(deal.name), me
				USING ERRCODE = 'insufficient_privilege',
				      DETAIL = 'A contract that takes effect wins its deal.',
				      HINT = 'Name a deal you may edit, or none; crm.explain_access(''opportunity'', id) says why not.';
		END IF;
	END IF;
	IF NEW.signer_contact_id IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.signer_contact_id IS DISTINCT FROM OLD.signer_contact_id
	                                          OR NEW.customer_id <> OLD.customer_id)
	   AND NOT EXISTS (SELECT FROM crm.contact k WHERE k.id = NEW.signer_contact_id AND k.customer_id = NEW.customer_id) THEN
		RAISE EXCEPTION 'contract % cannot be signed by contact %: no contact of customer % by that id is visible to %',
			label, NEW.signer_contact_id, NEW.customer_id, me
			USING ERRCODE = 'check_violation',
			      HINT = 'SELECT id, name FROM crm.contact WHERE customer_id = ... lists the customer''s contacts.';
	END IF;

	IF TG_OP = 'INSERT' AND NEW.status = 'draft' OR TG_OP = 'UPDATE' AND NEW.status = OLD.status THEN
		RETURN NEW;
	ELSIF NEW.status NOT IN ('pending', 'effective') THEN
		RAISE EXCEPTION 'contract % cannot be made % from %', label, NEW.status, CASE WHEN TG_OP = 'INSERT' THEN 'nothing' ELSE OLD.status END
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = 'A contract starts as a draft and is submitted; crm moves it on from there.',
			      HINT = 'Submit it: SELECT crm.submit_contract(id), or set status = ''effective''.';
	END IF;
	-- submitted
	IF NEW.amount <= 0 THEN
		RAISE EXCEPTION 'contract % cannot be submitted with an amount of % yuan', label, NEW.amount
			USING ERRCODE = 'check_violation',
			      HINT = 'Give it an amount, or lines (crm.contract_product) whose total is its amount.';
	END IF;
	NEW.status := 'effective';
	NEW.submitted_at := now();
	NEW.effective_at := now();
	RETURN NEW;
END
$$;
-- (named to run before the write check, which sees the owner, and after the number)
CREATE OR REPLACE TRIGGER contract_rules BEFORE INSERT OR UPDATE OR DELETE ON crm.contract
	FOR EACH ROW EXECUTE FUNCTION crm.contract_write();

-- A contract in effect: its customer is signed (the first won status: seed
-- 002, signed customers count toward no holding limit) and its deal won, in
-- the same transaction; the owner's superior hears of it.  Per statement, as
-- crm: the submitter may not edit the customer or the deal.
CREATE OR REPLACE FUNCTION crm.contract_took_effect() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	actor bigint := crm.invoking_employee_id();
	took  bigint[];
	h     record;
BEGIN
	IF TG_RELID <> 'crm.contract'::regclass THEN RAISE 'crm.contract_took_effect() runs only on crm.contract, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	-- (each branch names only the transition tables its event has)
	IF TG_OP = 'INSERT' THEN
		took := ARRAY(SELECT n.id FROM new_rows n WHERE n.status = 'effective');
	ELSE
		took := ARRAY(SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE n.status = 'effective' AND o.status <> 'effective');
	END IF;
	IF cardinality(took) = 0 THEN
		RETURN NULL;
	END IF;
	UPDATE crm.customer c SET status_id = (SELECT s.id FROM crm.customer_status s WHERE s.outcome = 'won' ORDER BY s.position LIMIT 1)
	  FROM crm.contract k
	 WHERE k.id = ANY (took) AND c.id = k.customer_id
	   AND c.status_id NOT IN (SELECT s.id FROM crm.customer_status s WHERE s.outcome = 'won');
	UPDATE crm.opportunity o SET stage_id = s.id
	  FROM crm.contract k, crm.stage s
	 WHERE k.id = ANY (took) AND o.id = k.opportunity_id AND o.status = 'open'
	   AND s.stage_set_id = o.stage_set_id AND s.outcome = 'won';
	FOR h IN
		SELECT e.superior_id AS recipient, e.name AS owner, count(*) AS n, min(k.id) AS first_id,
		       jsonb_agg(jsonb_build_object('record', k.number || ' ' || k.name, 'customer', c.name, 'amount', k.amount) ORDER BY k.id)
		         FILTER (WHERE true) AS items
		  FROM crm.contract k JOIN crm.employee e ON e.id = k.owner_id JOIN crm.customer c ON c.id = k.customer_id
		 WHERE k.id = ANY (took) AND e.superior_id IS NOT NULL AND e.superior_id IS DISTINCT FROM actor
		 GROUP BY e.superior_id, e.name
	LOOP
		PERFORM crm.notify(ARRAY[h.recipient], 'contract.effective', m.title, m.body, 'contract', CASE WHEN h.n = 1 THEN h.first_id END)
		  FROM crm.notification_text('contract.effective', jsonb_build_object('owner', h.owner, 'count', h.n, 'items', h.items)) m;
	END LOOP;
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER contract_effective_insert AFTER INSERT ON crm.contract
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.contract_took_effect();
CREATE OR REPLACE TRIGGER contract_effective_update AFTER UPDATE ON crm.contract
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.contract_took_effect();

-- Submitting by id, with a message when the contract is not there for the caller.
CREATE OR REPLACE FUNCTION crm.submit_contract(contract_id bigint) RETURNS crm.contract
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	done crm.contract;
	me   text;
BEGIN
	UPDATE crm.contract k SET status = 'effective' WHERE k.id = submit_contract.contract_id RETURNING k.* INTO done;
	IF NOT FOUND THEN
		me := coalesce((SELECT format('employee "%s"', crm.clip(e.name)) FROM crm.employee e WHERE e.id = crm.current_employee_id()), 'nobody');
		IF EXISTS (SELECT FROM crm.contract k WHERE k.id = submit_contract.contract_id) THEN
			RAISE EXCEPTION '% may not submit contract %', me, contract_id
				USING ERRCODE = 'insufficient_privilege',
				      HINT = 'Its owner, someone who manages them, or an edit collaborator with contract.edit can; crm.explain_access(''contract'', id) says why not you.';
		END IF;
		RAISE EXCEPTION 'no contract % is visible to %', contract_id, me
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'SELECT id, number, name FROM crm.contract lists the contracts you see.';
	END IF;
	RETURN done;
END
$$;
COMMENT ON FUNCTION crm.submit_contract(bigint) IS
	'Submit a draft (or rejected) contract: pending while an approval flow applies, else effective at once (its customer signed, its deal won); returns it';

-- Lines (合同产品): what the contract sells, as a deal's lines; written while
-- it is a draft, by whoever may edit it.  A contract with lines is worth their
-- total, kept by crm.
CREATE TABLE crm.contract_product (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	contract_id  bigint NOT NULL,
	product_id   bigint NOT NULL,
	quantity     numeric(14, 3) NOT NULL DEFAULT 1,
	unit_price   numeric(14, 2) NOT NULL,
	discount     numeric(5, 2) NOT NULL DEFAULT 0,
	amount       numeric(14, 2) GENERATED ALWAYS AS (round(quantity * unit_price * (100 - discount) / 100, 2)) STORED,
	note         text,
	created_by   bigint,
	created_at   timestamptz NOT NULL DEFAULT now(),
	updated_at   timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT contract_product_pkey PRIMARY KEY (id),
	CONSTRAINT contract_product_contract_fkey FOREIGN KEY (contract_id) REFERENCES crm.contract (id) ON DELETE CASCADE,
	CONSTRAINT contract_product_product_fkey FOREIGN KEY (product_id) REFERENCES crm.product (id),
	CONSTRAINT contract_product_quantity_check CHECK (quantity > 0 AND quantity <> 'NaN'),
	CONSTRAINT contract_product_unit_price_check CHECK (unit_price >= 0 AND unit_price <> 'NaN'),
	CONSTRAINT contract_product_discount_check CHECK (discount BETWEEN 0 AND 100),
	CONSTRAINT contract_product_note_length CHECK (crm.check_length(note, 2000, 'contract_product.note'))
);
COMMENT ON TABLE crm.contract_product IS 'Lines of a contract (合同产品): product, quantity, unit price, discount; the contract''s amount is their total';
COMMENT ON COLUMN crm.contract_product.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.contract_product.contract_id IS 'The contract (crm.contract.id), a draft';
COMMENT ON COLUMN crm.contract_product.product_id IS 'The product (crm.product.id): on the shelf and one the contract''s owner may sell, when the line gets it';
COMMENT ON COLUMN crm.contract_product.quantity IS 'How many units; more than 0';
COMMENT ON COLUMN crm.contract_product.unit_price IS 'Price per unit in yuan; the product''s list price unless given; not negative';
COMMENT ON COLUMN crm.contract_product.discount IS 'Discount in percent, 0 to 100';
COMMENT ON COLUMN crm.contract_product.amount IS 'quantity × unit_price × (100 − discount) / 100, rounded to the fen; kept by crm; not writable';
COMMENT ON COLUMN crm.contract_product.note IS 'A note on the line; at most 2,000 characters';
COMMENT ON COLUMN crm.contract_product.created_by IS 'Employee (crm.employee.id) who added the line; kept by crm; not writable';
COMMENT ON COLUMN crm.contract_product.created_at IS 'When the line was added; kept by crm; not writable';
COMMENT ON COLUMN crm.contract_product.updated_at IS 'When the line last changed; kept by crm; not writable';
CREATE INDEX contract_product_contract_idx ON crm.contract_product (contract_id);
CREATE INDEX contract_product_product_idx ON crm.contract_product (product_id);
ALTER TABLE crm.contract_product ENABLE ROW LEVEL SECURITY;
GRANT SELECT, DELETE ON crm.contract_product TO crm_user;
GRANT INSERT (contract_id, product_id, quantity, unit_price, discount, note),
      UPDATE (product_id, quantity, unit_price, discount, note) ON crm.contract_product TO crm_user;
SELECT crm.register_record_type('contract_product', 'crm.contract_product', '合同产品', 'Contract line', 'parent',
	'{oplog}', 'contracts.md', parent => 'contract', parent_column => 'contract_id');
CREATE OR REPLACE TRIGGER contract_product_rules BEFORE INSERT OR UPDATE OR DELETE ON crm.contract_product
	FOR EACH ROW EXECUTE FUNCTION crm.part_write();
CREATE CONSTRAINT TRIGGER contract_product_seller AFTER INSERT OR UPDATE OF product_id ON crm.contract_product
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION crm.check_line_seller();
CREATE OR REPLACE TRIGGER contract_product_total_insert AFTER INSERT ON crm.contract_product
	REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION crm.total_lines();
CREATE OR REPLACE TRIGGER contract_product_total_update AFTER UPDATE ON crm.contract_product
	REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION crm.total_lines();
CREATE OR REPLACE TRIGGER contract_product_total_delete AFTER DELETE ON crm.contract_product
	REFERENCING OLD TABLE AS old_lines FOR EACH STATEMENT EXECUTE FUNCTION crm.total_lines();
