-- The money of a contract (seeds 002, 003, 004): payment plans (回款计划),
-- payments and refunds (回款), invoices (开票).  What was received and
-- invoiced is kept on the contract and its plans by crm, under the
-- contract's row lock, so that it always adds up and never exceeds the
-- contract's amount, whatever the client and however many write at once.
-- docs/contracts.md.

INSERT INTO crm.permission (action, description) VALUES
	('payment.enter', 'Enter payments and refunds on the contracts one sees, and submit them (回款录入)'),
	('invoice.issue', 'Issue or reject requested invoices on the contracts one sees (开票)');

INSERT INTO crm.dictionary_kind (kind, label, builtin) VALUES ('payment_method', '回款方式', true);
INSERT INTO crm.dictionary (kind, code, label, position, builtin)
SELECT 'payment_method', code, label, n, true
  FROM unnest('{bank_transfer,cash,check,acceptance,alipay,wechat,other}'::text[],
              '{银行转账,现金,支票,承兑汇票,支付宝,微信,其他}'::text[]) WITH ORDINALITY u(code, label, n);

-- The label messages give a contract: "HT-2026-00001 (name)".
CREATE OR REPLACE FUNCTION crm.contract_label(contract_id bigint) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN coalesce((SELECT format('%s (%s)', crm.clip(k.number), crm.clip(k.name)) FROM crm.contract k WHERE k.id = contract_id),
                contract_label.contract_id::text);
COMMENT ON FUNCTION crm.contract_label(bigint) IS 'A contract as messages name it: number (name), or its id when the reader does not see it';

-- Payment plans: when the customer pays what.  The plans of a contract never
-- add up to more than its amount.
CREATE TABLE crm.payment_plan (
	id                  bigint GENERATED ALWAYS AS IDENTITY,
	contract_id         bigint NOT NULL,
	period              integer NOT NULL,
	amount              numeric(14, 2) NOT NULL,
	due_on              date NOT NULL,
	method              text,
	remind_days_before  integer NOT NULL DEFAULT 3,
	received_amount     numeric(14, 2) NOT NULL DEFAULT 0,
	note                text,
	created_by          bigint,
	created_at          timestamptz NOT NULL DEFAULT now(),
	updated_at          timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT payment_plan_pkey PRIMARY KEY (id),
	CONSTRAINT payment_plan_period_key UNIQUE (contract_id, period),
	CONSTRAINT payment_plan_contract_fkey FOREIGN KEY (contract_id) REFERENCES crm.contract (id) ON DELETE CASCADE,
	CONSTRAINT payment_plan_period_check CHECK (period > 0),
	CONSTRAINT payment_plan_amount_check CHECK (amount > 0 AND amount <> 'NaN'),
	CONSTRAINT payment_plan_remind_check CHECK (remind_days_before BETWEEN 0 AND 365),
	CONSTRAINT payment_plan_received_check CHECK (received_amount BETWEEN 0 AND amount),
	CONSTRAINT payment_plan_note_length CHECK (crm.check_length(note, 2000, 'payment_plan.note'))
);
COMMENT ON TABLE crm.payment_plan IS 'Payment plans (回款计划): the periods a contract is paid in; together never more than its amount';
COMMENT ON COLUMN crm.payment_plan.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.payment_plan.contract_id IS 'The contract (crm.contract.id); fixed';
COMMENT ON COLUMN crm.payment_plan.period IS 'Period number (期数), from 1; unique per contract';
COMMENT ON COLUMN crm.payment_plan.amount IS 'Planned amount in yuan; more than 0, and not below what was received on it';
COMMENT ON COLUMN crm.payment_plan.due_on IS 'When it is due';
COMMENT ON COLUMN crm.payment_plan.method IS 'Code of dictionary payment_method (crm.dictionary)';
COMMENT ON COLUMN crm.payment_plan.remind_days_before IS 'How many days before due_on the owner is reminded, 0 to 365';
COMMENT ON COLUMN crm.payment_plan.received_amount IS 'Confirmed payments on it less confirmed refunds, in yuan; kept by crm; not writable';
COMMENT ON COLUMN crm.payment_plan.note IS 'A note; at most 2,000 characters';
COMMENT ON COLUMN crm.payment_plan.created_by IS 'Employee (crm.employee.id) who added the plan; kept by crm; not writable';
COMMENT ON COLUMN crm.payment_plan.created_at IS 'When the plan was added; kept by crm; not writable';
COMMENT ON COLUMN crm.payment_plan.updated_at IS 'When the plan last changed; kept by crm; not writable';
CREATE INDEX payment_plan_due_idx ON crm.payment_plan (due_on);
ALTER TABLE crm.payment_plan ENABLE ROW LEVEL SECURITY;
GRANT SELECT, DELETE ON crm.payment_plan TO crm_user;
GRANT INSERT (contract_id, period, amount, due_on, method, remind_days_before, note),
      UPDATE (period, amount, due_on, method, remind_days_before, note) ON crm.payment_plan TO crm_user;
SELECT crm.register_record_type('payment_plan', 'crm.payment_plan', '回款计划', 'Payment plan', 'parent',
	'{dictionaries, oplog}', 'contracts.md', parent => 'contract', parent_column => 'contract_id',
	title => 'format(''第%s期'', r.period)');
INSERT INTO crm.dictionary_column (table_name, column_name, kind, builtin) VALUES ('payment_plan', 'method', 'payment_method', true);

-- Payments and refunds (回款): entered by holders of payment.enter on an
-- effective contract, then submitted; confirmed at once while no approval
-- flow applies (issue 13).
CREATE TABLE crm.payment (
	id             bigint GENERATED ALWAYS AS IDENTITY,
	contract_id    bigint NOT NULL,
	plan_id        bigint,
	kind           text NOT NULL DEFAULT 'payment',
	amount         numeric(14, 2) NOT NULL,
	received_on    date,
	method         text,
	payer_account  text,
	note           text,
	status         text NOT NULL DEFAULT 'draft',
	submitted_at   timestamptz,
	confirmed_at   timestamptz,
	created_by     bigint,
	created_at     timestamptz NOT NULL DEFAULT now(),
	updated_at     timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT payment_pkey PRIMARY KEY (id),
	-- (checked at commit: crm.record_deleted() names the record, with the hint)
	CONSTRAINT payment_contract_fkey FOREIGN KEY (contract_id) REFERENCES crm.contract (id) DEFERRABLE INITIALLY DEFERRED,
	CONSTRAINT payment_plan_fkey FOREIGN KEY (plan_id) REFERENCES crm.payment_plan (id) DEFERRABLE INITIALLY DEFERRED,
	CONSTRAINT payment_kind_check CHECK (kind IN ('payment', 'refund')),
	CONSTRAINT payment_amount_check CHECK (amount > 0 AND amount <> 'NaN'),
	CONSTRAINT payment_status_check CHECK (status IN ('draft', 'pending', 'confirmed', 'rejected')),
	CONSTRAINT payment_payer_account_length CHECK (crm.check_length(payer_account, 100, 'payment.payer_account')),
	CONSTRAINT payment_note_length CHECK (crm.check_length(note, 2000, 'payment.note'))
);
COMMENT ON CONSTRAINT payment_contract_fkey ON crm.payment IS 'A contract''s payments keep it: only a draft, which has none, is deleted.';
COMMENT ON CONSTRAINT payment_plan_fkey ON crm.payment IS 'A plan that payments name stays: keep it, or plan another amount.';
COMMENT ON TABLE crm.payment IS 'Payments and refunds (回款) on an effective contract: a draft, submitted (crm.submit_payment), then confirmed or rejected';
COMMENT ON COLUMN crm.payment.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.payment.contract_id IS 'The contract (crm.contract.id), effective; fixed';
COMMENT ON COLUMN crm.payment.plan_id IS 'The payment plan (crm.payment_plan.id) it pays, one of the contract''s; NULL for none';
COMMENT ON COLUMN crm.payment.kind IS 'payment, or refund (退款): never more than what was received';
COMMENT ON COLUMN crm.payment.amount IS 'Amount in yuan; more than 0';
COMMENT ON COLUMN crm.payment.received_on IS 'When the money came (or went back); today, in the company''s time zone, unless given';
COMMENT ON COLUMN crm.payment.method IS 'Code of dictionary payment_method (crm.dictionary)';
COMMENT ON COLUMN crm.payment.payer_account IS 'The account it came from; at most 100 characters';
COMMENT ON COLUMN crm.payment.note IS 'A note; at most 2,000 characters';
COMMENT ON COLUMN crm.payment.status IS 'draft, pending (awaiting approval), confirmed or rejected; moved by submitting (crm.submit_payment) and by crm';
COMMENT ON COLUMN crm.payment.submitted_at IS 'When it was last submitted; kept by crm; not writable';
COMMENT ON COLUMN crm.payment.confirmed_at IS 'When it was confirmed; kept by crm; not writable';
COMMENT ON COLUMN crm.payment.created_by IS 'Employee (crm.employee.id) who entered it; kept by crm; not writable';
COMMENT ON COLUMN crm.payment.created_at IS 'When it was entered; kept by crm; not writable';
COMMENT ON COLUMN crm.payment.updated_at IS 'When it last changed; kept by crm; not writable';
CREATE INDEX payment_contract_idx ON crm.payment (contract_id);
CREATE INDEX payment_plan_idx ON crm.payment (plan_id);
ALTER TABLE crm.payment ENABLE ROW LEVEL SECURITY;
GRANT SELECT, DELETE ON crm.payment TO crm_user;
GRANT INSERT (contract_id, plan_id, kind, amount, received_on, method, payer_account, note, status),
      UPDATE (plan_id, kind, amount, received_on, method, payer_account, note, status) ON crm.payment TO crm_user;
SELECT crm.register_record_type('payment', 'crm.payment', '回款', 'Payment', 'parent',
	'{attachments, dictionaries, oplog}', 'contracts.md', parent => 'contract', parent_column => 'contract_id');
INSERT INTO crm.dictionary_column (table_name, column_name, kind, builtin) VALUES ('payment', 'method', 'payment_method', true);

-- Invoices (开票): requested by whoever may edit the contract, submitted, then
-- issued (or rejected) by a holder of invoice.issue.  Submitted and issued
-- invoices together never exceed the contract's amount.
CREATE TABLE crm.invoice (
	id            bigint GENERATED ALWAYS AS IDENTITY,
	contract_id   bigint NOT NULL,
	amount        numeric(14, 2) NOT NULL,
	invoice_type  text NOT NULL DEFAULT 'general',
	title         text NOT NULL,
	tax_number    text,
	bank          text,
	bank_account  text,
	address       text,
	phone         text,
	status        text NOT NULL DEFAULT 'requested',
	number        text,
	issued_on     date,
	issued_by     bigint,
	note          text,
	submitted_at  timestamptz,
	created_by    bigint,
	created_at    timestamptz NOT NULL DEFAULT now(),
	updated_at    timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT invoice_pkey PRIMARY KEY (id),
	CONSTRAINT invoice_number_key UNIQUE (number),
	CONSTRAINT invoice_contract_fkey FOREIGN KEY (contract_id) REFERENCES crm.contract (id) DEFERRABLE INITIALLY DEFERRED,
	CONSTRAINT invoice_issued_by_fkey FOREIGN KEY (issued_by) REFERENCES crm.employee (id),
	CONSTRAINT invoice_amount_check CHECK (amount > 0 AND amount <> 'NaN'),
	CONSTRAINT invoice_type_check CHECK (invoice_type IN ('general', 'special')),
	CONSTRAINT invoice_status_check CHECK (status IN ('requested', 'pending', 'issued', 'rejected')),
	CONSTRAINT invoice_issued_check CHECK ((status = 'issued') = (number IS NOT NULL AND issued_on IS NOT NULL)),
	CONSTRAINT invoice_title_check CHECK (crm.check_length(title, 200, 'invoice.title') AND btrim(title) <> ''),
	CONSTRAINT invoice_tax_number_check CHECK (crm.check_length(tax_number, 20, 'invoice.tax_number')),
	CONSTRAINT invoice_bank_length CHECK (crm.check_length(bank, 200, 'invoice.bank')),
	CONSTRAINT invoice_bank_account_length CHECK (crm.check_length(bank_account, 100, 'invoice.bank_account')),
	CONSTRAINT invoice_address_length CHECK (crm.check_length(address, 400, 'invoice.address')),
	CONSTRAINT invoice_phone_length CHECK (crm.check_length(phone, 40, 'invoice.phone')),
	CONSTRAINT invoice_number_length CHECK (crm.check_length(number, 60, 'invoice.number')),
	CONSTRAINT invoice_note_length CHECK (crm.check_length(note, 2000, 'invoice.note'))
);
COMMENT ON CONSTRAINT invoice_contract_fkey ON crm.invoice IS 'A contract''s invoices keep it: only a draft, which has none, is deleted.';
COMMENT ON TABLE crm.invoice IS 'Invoices (开票) of a contract: requested, submitted (crm.submit_invoice), then issued (crm.issue_invoice) or rejected';
COMMENT ON COLUMN crm.invoice.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.invoice.contract_id IS 'The contract (crm.contract.id), effective; fixed';
COMMENT ON COLUMN crm.invoice.amount IS 'Amount in yuan; more than 0';
COMMENT ON COLUMN crm.invoice.invoice_type IS 'general (增值税普通发票) or special (增值税专用发票: tax number, bank, account, address and phone required)';
COMMENT ON COLUMN crm.invoice.title IS 'The buyer''s name on the invoice (发票抬头); at most 200 characters';
COMMENT ON COLUMN crm.invoice.tax_number IS 'The buyer''s taxpayer id (纳税人识别号), a unified social credit code with its check digit';
COMMENT ON COLUMN crm.invoice.bank IS 'The buyer''s bank (开户行)';
COMMENT ON COLUMN crm.invoice.bank_account IS 'The buyer''s account (账号)';
COMMENT ON COLUMN crm.invoice.address IS 'The buyer''s registered address';
COMMENT ON COLUMN crm.invoice.phone IS 'The buyer''s registered phone';
COMMENT ON COLUMN crm.invoice.status IS 'requested, pending (submitted), issued or rejected; moved by crm.submit_invoice and crm.issue_invoice';
COMMENT ON COLUMN crm.invoice.number IS 'The invoice''s number, when issued; unique';
COMMENT ON COLUMN crm.invoice.issued_on IS 'When it was issued';
COMMENT ON COLUMN crm.invoice.issued_by IS 'Employee (crm.employee.id) who issued or rejected it; kept by crm; not writable';
COMMENT ON COLUMN crm.invoice.note IS 'A note, the reason of a rejection; at most 2,000 characters';
COMMENT ON COLUMN crm.invoice.submitted_at IS 'When it was last submitted; kept by crm; not writable';
COMMENT ON COLUMN crm.invoice.created_by IS 'Employee (crm.employee.id) who requested it; kept by crm; not writable';
COMMENT ON COLUMN crm.invoice.created_at IS 'When it was requested; kept by crm; not writable';
COMMENT ON COLUMN crm.invoice.updated_at IS 'When it last changed; kept by crm; not writable';
CREATE INDEX invoice_contract_idx ON crm.invoice (contract_id);
CREATE INDEX invoice_issued_by_idx ON crm.invoice (issued_by);
ALTER TABLE crm.invoice ENABLE ROW LEVEL SECURITY;
GRANT SELECT, DELETE ON crm.invoice TO crm_user;
GRANT INSERT (contract_id, amount, invoice_type, title, tax_number, bank, bank_account, address, phone, status, note),
      UPDATE (amount, invoice_type, title, tax_number, bank, bank_account, address, phone, status, number, issued_on, note)
	ON crm.invoice TO crm_user;
SELECT crm.register_record_type('invoice', 'crm.invoice', '发票', 'Invoice', 'parent',
	'{attachments, oplog}', 'contracts.md', parent => 'contract', parent_column => 'contract_id');

-- The rules of a plan, a payment or an invoice as it is written, as the
-- writer: the contract in the state the row needs, the permission its
-- writing needs, the status moved only as submitting, issuing and crm allow.
CREATE OR REPLACE FUNCTION crm.money_write() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	row      jsonb;
	old_row  jsonb;
	ctr      crm.contract;
	label    text;
	me       text;
	action   text := CASE TG_TABLE_NAME WHEN 'payment' THEN 'payment.enter' ELSE 'contract.edit' END;
	what     text := CASE TG_TABLE_NAME WHEN 'payment_plan' THEN 'payment plans' WHEN 'payment' THEN 'payments' ELSE 'invoices' END;
	-- what a write may change on a row submitted already: its requester the
	-- note, whoever issues an invoice its status, number and date
	free     text[] := '{note, updated_at, received_amount}';
	issued   text[] := '{status, number, issued_on, issued_by, note, updated_at}';
	-- (superusers and crm's owner-run code pass row security, and the checks of who writes)
	trusted  boolean := NOT row_security_active(TG_RELID);
	issuing  boolean;
BEGIN
	IF TG_RELID NOT IN ('crm.payment_plan'::regclass, 'crm.payment'::regclass, 'crm.invoice'::regclass) THEN RAISE 'crm.money_write() runs only on crm.payment_plan, crm.payment and crm.invoice, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() OR current_setting('crm.change_source') = 'system' THEN
		RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
	END IF;
	row := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
	old_row := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
	ctr := (SELECT k FROM crm.contract k WHERE k.id = (row ->> 'contract_id')::bigint);
	label := crm.contract_label((row ->> 'contract_id')::bigint);
	me := coalesce((SELECT format('employee "%s"', crm.clip(e.name)) FROM crm.employee e WHERE e.id = crm.current_employee_id()), 'nobody');
	issuing := TG_TABLE_NAME = 'invoice' AND TG_OP = 'UPDATE' AND (old_row ->> 'status') = 'pending' AND (row ->> 'status') IN ('issued', 'rejected');
	IF TG_OP = 'UPDATE' AND row ->> 'contract_id' <> old_row ->> 'contract_id' THEN
		RAISE EXCEPTION 'the % of contract % stay with it', what, crm.contract_label((old_row ->> 'contract_id')::bigint)
			USING ERRCODE = 'check_violation', HINT = 'Delete it and enter it on the other contract.';
	END IF;
	IF NOT trusted AND ctr.id IS NULL THEN
		RAISE EXCEPTION 'no contract % is visible to %', row ->> 'contract_id', me
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'SELECT id, number, name FROM crm.contract lists the contracts you see.';
	END IF;
	IF NOT trusted AND NOT issuing AND TG_TABLE_NAME <> 'payment' AND NOT crm.record_editable('contract', ctr.id) THEN
		RAISE EXCEPTION '% may not write the % of contract %', me, what, label
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = format('Writing %s needs the contract editable: its owner in scope, or an edit team place, and contract.edit.', what),
			      HINT = 'crm.explain_access(''contract'', id) says why not you.';
	END IF;
	IF NOT trusted AND NOT issuing AND NOT crm.has_permission(action) THEN
		RAISE EXCEPTION '% may not write the % of contract %', me, what, label
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = format('Writing %s needs the permission "%s".', what, action),
			      HINT = format('Ask an administrator to grant "%s" to one of your roles.', action);
	END IF;

	IF TG_TABLE_NAME = 'payment_plan' THEN
		IF ctr.status NOT IN ('draft', 'rejected', 'effective') THEN
			RAISE EXCEPTION 'contract % is % and its payment plans are read-only', label, ctr.status
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      HINT = 'Plans are written on a draft or an effective contract.';
		ELSIF TG_OP = 'DELETE' AND OLD.received_amount > 0 THEN
			RAISE EXCEPTION 'period % of contract % has % yuan received and cannot be deleted', OLD.period, label, OLD.received_amount
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      HINT = 'Refund what was received first, or keep the plan.';
		ELSIF TG_OP = 'UPDATE' AND NEW.amount < OLD.received_amount THEN
			RAISE EXCEPTION 'period % of contract % cannot plan % yuan: % yuan was received on it', OLD.period, label, NEW.amount, OLD.received_amount
				USING ERRCODE = 'check_violation',
				      HINT = format('Plan %s yuan or more.', OLD.received_amount);
		ELSIF TG_OP <> 'DELETE' AND (NEW.amount <= 0 OR NEW.amount = 'NaN') THEN
			RAISE EXCEPTION 'period % of contract % cannot plan % yuan', NEW.period, label, NEW.amount
				USING ERRCODE = 'check_violation', HINT = 'A plan is for more than 0 yuan.';
		END IF;
		RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
	END IF;

	-- a payment or an invoice: a draft (requested) or rejected one is edited and
	-- deleted freely; submitted, it is crm's
	IF TG_OP <> 'INSERT' AND (old_row ->> 'status') IN ('pending', 'confirmed', 'issued') AND NOT issuing THEN
		IF TG_OP = 'DELETE' OR (row - free) <> (old_row - free) OR row ->> 'status' <> old_row ->> 'status' THEN
			RAISE EXCEPTION '% % of contract % is % and read-only', coalesce(old_row ->> 'kind', 'invoice'),
				OLD.id, label, old_row ->> 'status'
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      DETAIL = CASE TG_TABLE_NAME WHEN 'payment' THEN 'A submitted payment is decided by crm: confirmed, or rejected by an approval.'
				                   ELSE 'A submitted invoice is issued or rejected by a holder of invoice.issue (crm.issue_invoice).' END,
				      HINT = CASE TG_TABLE_NAME WHEN 'payment' THEN 'A confirmed payment is undone by a refund (kind refund).'
				                  ELSE 'Ask for a new invoice, or have the request rejected.' END;
		END IF;
		RETURN NEW;
	END IF;
	IF TG_OP = 'DELETE' THEN
		RETURN OLD;
	END IF;
	IF ctr.status <> 'effective' THEN
		RAISE EXCEPTION 'contract % is % and takes no %', label, ctr.status, what
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = CASE WHEN ctr.status IN ('draft', 'rejected') THEN format('Submit it first: SELECT crm.submit_contract(%s);', ctr.id)
			                  ELSE 'Payments and invoices are entered on effective contracts.' END;
	END IF;

	IF TG_TABLE_NAME = 'payment' THEN
		IF NEW.plan_id IS NOT NULL AND NOT EXISTS (SELECT FROM crm.payment_plan p WHERE p.id = NEW.plan_id AND p.contract_id = NEW.contract_id) THEN
			RAISE EXCEPTION 'a % of contract % cannot pay plan %: it is no plan of the contract', NEW.kind, label, NEW.plan_id
				USING ERRCODE = 'check_violation',
				      HINT = format('SELECT id, period FROM crm.payment_plan WHERE contract_id = %s;', NEW.contract_id);
		ELSIF NEW.amount <= 0 OR NEW.amount = 'NaN' THEN
			RAISE EXCEPTION 'a % of contract % cannot be of % yuan', NEW.kind, label, NEW.amount
				USING ERRCODE = 'check_violation', HINT = 'A payment or refund is of more than 0 yuan.';
		END IF;
		NEW.received_on := coalesce(NEW.received_on, (now() AT TIME ZONE (SELECT s.timezone FROM crm.settings s))::date);
		IF NEW.status IN ('pending', 'confirmed') AND (TG_OP = 'INSERT' OR OLD.status IN ('draft', 'rejected')) THEN
			-- submitted: confirmed at once while no approval flow applies
			NEW.status := 'confirmed';
			NEW.submitted_at := now();
			NEW.confirmed_at := now();
		ELSIF NEW.status NOT IN ('draft') AND (TG_OP = 'INSERT' OR NEW.status <> OLD.status) THEN
			RAISE EXCEPTION 'a % of contract % cannot be made %', NEW.kind, label, NEW.status
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      HINT = 'Enter it as a draft and submit it: SELECT crm.submit_payment(id), or set status = ''confirmed''.';
		END IF;
		RETURN NEW;
	END IF;

	-- an invoice
	IF issuing THEN
		IF NOT trusted AND NOT crm.has_permission('invoice.issue') THEN
			RAISE EXCEPTION '% may not issue or reject invoice % of contract %', me, OLD.id, label
				USING ERRCODE = 'insufficient_privilege',
				      DETAIL = 'Issuing invoices needs the permission "invoice.issue".',
				      HINT = 'Ask an administrator to grant "invoice.issue" to one of your roles.';
		ELSIF (row - issued) <> (old_row - issued) THEN
			RAISE EXCEPTION 'invoice % of contract % is pending: issuing it changes no more than its number, date and note', OLD.id, label
				USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Reject it, and have a new one requested.';
		ELSIF NEW.status = 'issued' AND (NEW.number IS NULL OR NEW.issued_on IS NULL) THEN
			RAISE EXCEPTION 'invoice % of contract % cannot be issued without its number and date', OLD.id, label
				USING ERRCODE = 'not_null_violation',
				      HINT = format('SELECT crm.issue_invoice(%s, <number>, <issued on>);', OLD.id);
		END IF;
		IF NEW.status = 'rejected' THEN
			NEW.number := NULL;
			NEW.issued_on := NULL;
		END IF;
		NEW.issued_by := crm.current_employee_id();
		RETURN NEW;
	END IF;
	IF NEW.amount <= 0 OR NEW.amount = 'NaN' THEN
		RAISE EXCEPTION 'an invoice of contract % cannot be of % yuan', label, NEW.amount
			USING ERRCODE = 'check_violation', HINT = 'An invoice is of more than 0 yuan.';
	ELSIF NEW.tax_number IS NOT NULL AND NOT crm.uscc_valid(NEW.tax_number) THEN
		RAISE EXCEPTION 'an invoice of contract % cannot name tax number "%"', label, crm.clip(NEW.tax_number)
			USING ERRCODE = 'check_violation',
			      DETAIL = 'A taxpayer id (纳税人识别号) is the buyer''s unified social credit code: 18 characters with a check digit.',
			      HINT = 'Copy it from the buyer''s business licence.';
	ELSIF NEW.invoice_type = 'special' AND (NEW.tax_number IS NULL OR NEW.bank IS NULL OR NEW.bank_account IS NULL
	                                         OR NEW.address IS NULL OR NEW.phone IS NULL) THEN
		RAISE EXCEPTION 'a special VAT invoice of contract % needs the buyer''s tax number, bank, account, address and phone', label
			USING ERRCODE = 'not_null_violation',
			      HINT = 'Give them all, or ask for a general invoice (invoice_type = ''general'').';
	ELSIF NEW.number IS NOT NULL OR NEW.issued_on IS NOT NULL THEN
		RAISE EXCEPTION 'an invoice of contract % gets its number and date when it is issued', label
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Submit the request; a holder of invoice.issue issues it: crm.issue_invoice(id, number, issued_on).';
	END IF;
	IF NEW.status = 'pending' AND (TG_OP = 'INSERT' OR OLD.status IN ('requested', 'rejected')) THEN
		NEW.submitted_at := now();
	ELSIF NEW.status NOT IN ('requested') AND (TG_OP = 'INSERT' OR NEW.status <> OLD.status) THEN
		RAISE EXCEPTION 'an invoice of contract % cannot be made % by its requester', label, NEW.status
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Submit the request (crm.submit_invoice); a holder of invoice.issue issues or rejects it.';
	END IF;
	RETURN NEW;
END
$$;
-- (named to run before the link and dictionary checks)
CREATE OR REPLACE TRIGGER payment_plan_rules BEFORE INSERT OR UPDATE OR DELETE ON crm.payment_plan
	FOR EACH ROW EXECUTE FUNCTION crm.money_write();
CREATE OR REPLACE TRIGGER payment_rules BEFORE INSERT OR UPDATE OR DELETE ON crm.payment
	FOR EACH ROW EXECUTE FUNCTION crm.money_write();
CREATE OR REPLACE TRIGGER invoice_rules BEFORE INSERT OR UPDATE OR DELETE ON crm.invoice
	FOR EACH ROW EXECUTE FUNCTION crm.money_write();

-- What the money of a statement's rows does to their contracts and plans,
-- per statement, as crm, under the contracts' row locks (taken in id order,
-- so that two statements on the same contracts wait rather than deadlock):
-- a contract's plans never add up to more than its amount; confirmed
-- payments less refunds are received, never more than the amount nor less
-- than 0; submitted and issued invoices are invoiced, never more than the
-- amount.  The locks make each statement see what those before it committed.
CREATE OR REPLACE FUNCTION crm.apply_money() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	changes jsonb;
	deltas  jsonb;
	bad     record;
	actor   bigint := crm.invoking_employee_id();
	h       record;
BEGIN
	IF TG_RELID NOT IN ('crm.payment_plan'::regclass, 'crm.payment'::regclass, 'crm.invoice'::regclass) THEN RAISE 'crm.apply_money() runs only on crm.payment_plan, crm.payment and crm.invoice, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	-- (each branch names only the transition tables its event has)
	IF TG_OP = 'INSERT' THEN
		changes := (SELECT jsonb_agg(to_jsonb(n)) FROM new_rows n);
	ELSE
		changes := (SELECT jsonb_agg(to_jsonb(n) || jsonb_build_object('old_status', to_jsonb(o) -> 'status', 'old_amount', o.amount))
		              FROM new_rows n JOIN old_rows o ON o.id = n.id);
	END IF;
	-- what each row adds to what its contract counts (planned, received or
	-- invoiced), and the news it is
	deltas := (SELECT jsonb_agg(jsonb_build_object('contract_id', c.contract_id, 'plan_id', c.plan_id, 'id', c.id, 'amount', c.amount,
	                                               'kind', c.kind, 'delta', d.delta, 'event', d.event))
	             FROM jsonb_to_recordset(changes) c(contract_id bigint, plan_id bigint, id bigint, kind text, amount numeric, status text,
	                                                old_status text, old_amount numeric),
	                  LATERAL (SELECT CASE TG_TABLE_NAME
	                                  WHEN 'payment_plan' THEN c.amount - coalesce(c.old_amount, 0)
	                                  WHEN 'payment' THEN CASE WHEN c.kind = 'refund' THEN -1 ELSE 1 END
	                                       * ((CASE WHEN c.status = 'confirmed' THEN c.amount ELSE 0 END)
	                                          - (CASE WHEN c.old_status = 'confirmed' THEN c.old_amount ELSE 0 END))
	                                  ELSE (CASE WHEN c.status IN ('pending', 'issued') THEN c.amount ELSE 0 END)
	                                       - (CASE WHEN c.old_status IN ('pending', 'issued') THEN c.old_amount ELSE 0 END) END AS delta,
	                                  CASE WHEN c.status IS NOT DISTINCT FROM c.old_status THEN NULL
	                                       WHEN TG_TABLE_NAME = 'payment' AND c.status = 'confirmed' THEN 'payment.confirmed'
	                                       WHEN TG_TABLE_NAME = 'invoice' AND c.status = 'pending' THEN 'invoice.requested'
	                                       WHEN TG_TABLE_NAME = 'invoice' AND c.status = 'issued' THEN 'invoice.issued' END AS event) d
	            WHERE d.delta <> 0 OR d.event IS NOT NULL);
	IF deltas IS NULL THEN
		RETURN NULL;
	END IF;
	PERFORM FROM crm.contract k
	  WHERE k.id IN (SELECT d.contract_id FROM jsonb_to_recordset(deltas) d(contract_id bigint))
	  ORDER BY k.id FOR NO KEY UPDATE;

	IF TG_TABLE_NAME = 'payment_plan' THEN
		-- (a new version of each contract: a repeatable read transaction that
		-- planned on it too fails to serialize, rather than summing plans it
		-- cannot see)
		UPDATE crm.contract k SET updated_at = now()
		 WHERE k.id IN (SELECT d.contract_id FROM jsonb_to_recordset(deltas) d(contract_id bigint, delta numeric) WHERE d.delta > 0);
		SELECT k.id, k.amount, sum(p.amount) AS planned INTO bad
		  FROM crm.contract k JOIN crm.payment_plan p ON p.contract_id = k.id
		 WHERE k.id IN (SELECT d.contract_id FROM jsonb_to_recordset(deltas) d(contract_id bigint, delta numeric) WHERE d.delta > 0)
		 GROUP BY k.id HAVING sum(p.amount) > k.amount ORDER BY k.id LIMIT 1;
		IF FOUND THEN
			RAISE EXCEPTION 'the payment plans of contract % would come to % yuan, more than its amount of % yuan', crm.contract_label(bad.id), bad.planned, bad.amount
				USING ERRCODE = 'check_violation',
				      DETAIL = format('%s yuan is left to plan.',
				                      bad.amount - bad.planned + (SELECT sum(d.delta) FROM jsonb_to_recordset(deltas) d(contract_id bigint, delta numeric)
				                                                   WHERE d.contract_id = bad.id)),
				      HINT = 'Plan less, or change the contract''s amount first.';
		END IF;
		RETURN NULL;
	END IF;

	SELECT k.id, k.amount, CASE TG_TABLE_NAME WHEN 'payment' THEN k.received_amount ELSE k.invoiced_amount END AS counted,
	       sum(d.delta) AS delta INTO bad
	  FROM crm.contract k JOIN jsonb_to_recordset(deltas) d(contract_id bigint, delta numeric) ON d.contract_id = k.id
	 GROUP BY k.id
	HAVING CASE TG_TABLE_NAME WHEN 'payment' THEN k.received_amount ELSE k.invoiced_amount END + sum(d.delta) NOT BETWEEN 0 AND k.amount
	 ORDER BY k.id LIMIT 1;
	IF FOUND AND bad.counted + bad.delta > bad.amount THEN
		RAISE EXCEPTION '% on contract % would come to % yuan, more than its amount of % yuan',
			CASE TG_TABLE_NAME WHEN 'payment' THEN 'confirmed payments' ELSE 'invoices' END,
			crm.contract_label(bad.id), bad.counted + bad.delta, bad.amount
			USING ERRCODE = 'check_violation',
			      DETAIL = format('%s yuan was %s before, so %s yuan is left.', bad.counted,
			                      CASE TG_TABLE_NAME WHEN 'payment' THEN 'received' ELSE 'invoiced' END, bad.amount - bad.counted),
			      HINT = CASE TG_TABLE_NAME WHEN 'payment' THEN 'Enter no more than is left; a change request raises the contract''s amount.'
			                  ELSE 'Ask for no more than is left.' END;
	ELSIF FOUND THEN
		RAISE EXCEPTION 'refunds on contract % would come to more than the % yuan received', crm.contract_label(bad.id), bad.counted
			USING ERRCODE = 'check_violation',
			      HINT = format('Refund %s yuan or less.', bad.counted);
	END IF;
	IF TG_TABLE_NAME = 'payment' THEN
		SELECT p.id, p.period, p.contract_id, p.amount, p.received_amount, sum(d.delta) AS delta INTO bad
		  FROM crm.payment_plan p JOIN jsonb_to_recordset(deltas) d(plan_id bigint, delta numeric) ON d.plan_id = p.id
		 GROUP BY p.id HAVING p.received_amount + sum(d.delta) NOT BETWEEN 0 AND p.amount ORDER BY p.id LIMIT 1;
		IF FOUND THEN
			RAISE EXCEPTION '% on period % of contract % would come to % yuan, % its planned % yuan',
				CASE WHEN bad.delta > 0 THEN 'payments' ELSE 'refunds' END, bad.period, crm.contract_label(bad.contract_id),
				bad.received_amount + bad.delta, CASE WHEN bad.delta > 0 THEN 'more than' ELSE 'less than 0 of' END, bad.amount
				USING ERRCODE = 'check_violation',
				      HINT = format('%s yuan was received on it; put the rest on another period, or on none.', bad.received_amount);
		END IF;
		-- what was received outside the plans never goes below 0: a refund
		-- without a plan takes back no plan's money
		SELECT k.id, k.received_amount - coalesce((SELECT sum(p.received_amount) FROM crm.payment_plan p WHERE p.contract_id = k.id), 0) AS unplanned
		  INTO bad
		  FROM crm.contract k JOIN jsonb_to_recordset(deltas) d(contract_id bigint, plan_id bigint, delta numeric) ON d.contract_id = k.id
		 WHERE d.plan_id IS NULL
		 GROUP BY k.id
		HAVING k.received_amount - coalesce((SELECT sum(p.received_amount) FROM crm.payment_plan p WHERE p.contract_id = k.id), 0) + sum(d.delta) < 0
		 ORDER BY k.id LIMIT 1;
		IF FOUND THEN
			RAISE EXCEPTION 'refunds without a plan on contract % would come to more than the % yuan received outside its plans', crm.contract_label(bad.id), bad.unplanned
				USING ERRCODE = 'check_violation',
				      HINT = 'Refund on the plan the money was paid on (plan_id).';
		END IF;
		UPDATE crm.payment_plan p SET received_amount = p.received_amount + d.delta
		  FROM (SELECT d.plan_id, sum(d.delta) AS delta FROM jsonb_to_recordset(deltas) d(plan_id bigint, delta numeric)
		         WHERE d.plan_id IS NOT NULL GROUP BY d.plan_id) d
		 WHERE p.id = d.plan_id AND d.delta <> 0;
		UPDATE crm.contract k SET received_amount = k.received_amount + d.delta
		  FROM (SELECT d.contract_id, sum(d.delta) AS delta FROM jsonb_to_recordset(deltas) d(contract_id bigint, delta numeric)
		         GROUP BY d.contract_id) d
		 WHERE k.id = d.contract_id AND d.delta <> 0;
	ELSE
		UPDATE crm.contract k SET invoiced_amount = k.invoiced_amount + d.delta
		  FROM (SELECT d.contract_id, sum(d.delta) AS delta FROM jsonb_to_recordset(deltas) d(contract_id bigint, delta numeric)
		         GROUP BY d.contract_id) d
		 WHERE k.id = d.contract_id AND d.delta <> 0;
	END IF;

	-- the news: a payment confirmed to the owner and their superior; an
	-- invoice requested to the superior and whoever issues invoices (the
	-- super admins, told to assign it, when nobody does); issued to the owner
	-- and superior.  One per recipient and event, none to whoever acted.
	FOR h IN
		SELECT d.event, r.recipient, count(*) AS n, min(d.id) AS first_id,
		       jsonb_agg(jsonb_build_object('record', k.number || ' ' || k.name, 'customer', c.name, 'amount', d.amount,
		                                    'kind', d.kind, 'owner', e.name) ORDER BY d.id) AS items
		  FROM jsonb_to_recordset(deltas) d(contract_id bigint, id bigint, amount numeric, kind text, event text)
		  JOIN crm.contract k ON k.id = d.contract_id JOIN crm.customer c ON c.id = k.customer_id
		  JOIN crm.employee e ON e.id = k.owner_id,
		       LATERAL (SELECT e.id AS recipient WHERE d.event <> 'invoice.requested'
		                UNION SELECT e.superior_id
		                UNION SELECT er.employee_id FROM crm.employee_role er JOIN crm.role_permission rp ON rp.role_id = er.role_id
		                          JOIN crm.employee i ON i.id = er.employee_id AND i.active
		                         WHERE d.event = 'invoice.requested' AND rp.action = 'invoice.issue') r
		 WHERE d.event IS NOT NULL AND r.recipient IS NOT NULL AND r.recipient IS DISTINCT FROM actor
		 GROUP BY d.event, r.recipient
	LOOP
		PERFORM crm.notify(ARRAY[h.recipient], h.event, m.title, m.body, TG_TABLE_NAME, CASE WHEN h.n = 1 THEN h.first_id END)
		  FROM crm.notification_text(h.event, jsonb_build_object('count', h.n, 'items', h.items)) m;
	END LOOP;
	IF EXISTS (SELECT FROM jsonb_to_recordset(deltas) d(event text) WHERE d.event = 'invoice.requested')
	   AND NOT EXISTS (SELECT FROM crm.employee_role er JOIN crm.role_permission rp ON rp.role_id = er.role_id
	                     JOIN crm.employee i ON i.id = er.employee_id AND i.active WHERE rp.action = 'invoice.issue') THEN
		PERFORM crm.notify(ARRAY(SELECT DISTINCT er.employee_id FROM crm.employee_role er JOIN crm.role r ON r.id = er.role_id
		                           JOIN crm.employee i ON i.id = er.employee_id AND i.active WHERE r.is_super),
		                   'permission.unassigned', m.title, m.body)
		  FROM crm.notification_text('permission.unassigned', jsonb_build_object('action', 'invoice.issue', 'what', '开票')) m;
	END IF;
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER payment_plan_apply_insert AFTER INSERT ON crm.payment_plan
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.apply_money();
CREATE OR REPLACE TRIGGER payment_plan_apply_update AFTER UPDATE ON crm.payment_plan
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.apply_money();
CREATE OR REPLACE TRIGGER payment_apply_insert AFTER INSERT ON crm.payment
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.apply_money();
CREATE OR REPLACE TRIGGER payment_apply_update AFTER UPDATE ON crm.payment
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.apply_money();
CREATE OR REPLACE TRIGGER invoice_apply_insert AFTER INSERT ON crm.invoice
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.apply_money();
CREATE OR REPLACE TRIGGER invoice_apply_update AFTER UPDATE ON crm.invoice
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.apply_money();

-- Submitting and issuing by id: what an UPDATE of the status does, with a
-- message when the row is not there for the caller.
CREATE OR REPLACE FUNCTION crm.submit_payment(payment_id bigint) RETURNS crm.payment
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	done crm.payment;
	me   text;
BEGIN
	UPDATE crm.payment p SET status = 'confirmed' WHERE p.id = payment_id RETURNING p.* INTO done;
	IF NOT FOUND THEN
		me := coalesce((SELECT format('employee "%s"', crm.clip(e.name)) FROM crm.employee e WHERE e.id = crm.current_employee_id()), 'nobody');
		RAISE EXCEPTION '%', CASE WHEN EXISTS (SELECT FROM crm.payment p WHERE p.id = payment_id) THEN format('%s may not submit payment %s', me, payment_id)
		                          ELSE format('no payment %s is visible to %s', payment_id, me) END
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'Payments are submitted by holders of payment.enter who may edit the contract by scope; SELECT id, contract_id, amount, status FROM crm.payment lists those you see.';
	END IF;
	RETURN done;
END
$$;
COMMENT ON FUNCTION crm.submit_payment(bigint) IS
	'Submit a draft (or rejected) payment or refund: pending while an approval flow applies, else confirmed at once and counted on its contract and plan; returns it';
-- (an invoice's moves: the UPDATE, as the caller)
CREATE OR REPLACE FUNCTION crm.move_invoice(invoice_id bigint, status text, number text, issued_on date)
RETURNS crm.invoice LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	done crm.invoice;
	me   text;
BEGIN
	UPDATE crm.invoice i SET status = move_invoice.status, number = coalesce(move_invoice.number, i.number),
	                         issued_on = coalesce(move_invoice.issued_on, i.issued_on)
	 WHERE i.id = invoice_id RETURNING i.* INTO done;
	IF NOT FOUND THEN
		me := coalesce((SELECT format('employee "%s"', crm.clip(e.name)) FROM crm.employee e WHERE e.id = crm.current_employee_id()), 'nobody');
		RAISE EXCEPTION '%', CASE WHEN EXISTS (SELECT FROM crm.invoice i WHERE i.id = invoice_id) THEN format('%s may not submit or issue invoice %s', me, invoice_id)
		                          ELSE format('no invoice %s is visible to %s', invoice_id, me) END
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'An invoice is submitted by whoever may edit its contract and issued by holders of invoice.issue with the contract in scope; SELECT id, contract_id, amount, status FROM crm.invoice lists those you see.';
	END IF;
	RETURN done;
END
$$;
COMMENT ON FUNCTION crm.move_invoice(bigint, text, text, date) IS
	'What crm.submit_invoice and crm.issue_invoice do: the UPDATE of an invoice''s status, as the caller';
CREATE OR REPLACE FUNCTION crm.submit_invoice(invoice_id bigint) RETURNS crm.invoice
LANGUAGE sql SET search_path = pg_catalog, pg_temp
RETURN crm.move_invoice(invoice_id, 'pending', NULL, NULL);
COMMENT ON FUNCTION crm.submit_invoice(bigint) IS
	'Submit a requested (or rejected) invoice to whoever issues invoices; it counts as invoiced from then on; returns it';
CREATE OR REPLACE FUNCTION crm.issue_invoice(invoice_id bigint, number text, issued_on date) RETURNS crm.invoice
LANGUAGE sql SET search_path = pg_catalog, pg_temp
RETURN crm.move_invoice(invoice_id, 'issued', number, issued_on);
COMMENT ON FUNCTION crm.issue_invoice(bigint, text, date) IS
	'Record a submitted invoice as issued, with its number and date (needs invoice.issue); returns it';

-- Where each plan stands, from dates and what was received: nothing stored.
CREATE OR REPLACE VIEW crm.payment_plan_status WITH (security_invoker) AS
SELECT p.id AS plan_id, p.contract_id, k.number AS contract_number, k.owner_id, p.period, p.amount, p.due_on,
       p.received_amount, p.amount - p.received_amount AS remaining,
       CASE WHEN p.received_amount >= p.amount THEN 'paid'
            WHEN p.due_on < t.today THEN 'overdue'
            WHEN p.due_on - p.remind_days_before <= t.today THEN 'due'
            ELSE 'upcoming' END AS status,
       CASE WHEN p.received_amount < p.amount AND p.due_on < t.today THEN t.today - p.due_on ELSE 0 END AS overdue_days
  FROM crm.payment_plan p JOIN crm.contract k ON k.id = p.contract_id,
       LATERAL (SELECT (now() AT TIME ZONE s.timezone)::date AS today FROM crm.settings s) t
 WHERE k.status IN ('effective', 'archived');
COMMENT ON VIEW crm.payment_plan_status IS
	'The payment plans of effective contracts the reader sees: received, remaining, and paid, upcoming, due (within its reminder days) or overdue, by today in the company''s time zone';
COMMENT ON COLUMN crm.payment_plan_status.plan_id IS 'The plan (crm.payment_plan.id)';
COMMENT ON COLUMN crm.payment_plan_status.contract_id IS 'Its contract (crm.contract.id)';
COMMENT ON COLUMN crm.payment_plan_status.contract_number IS 'The contract''s number';
COMMENT ON COLUMN crm.payment_plan_status.owner_id IS 'The contract''s owner (crm.employee.id)';
COMMENT ON COLUMN crm.payment_plan_status.period IS 'Period number';
COMMENT ON COLUMN crm.payment_plan_status.amount IS 'Planned amount in yuan';
COMMENT ON COLUMN crm.payment_plan_status.due_on IS 'When it is due';
COMMENT ON COLUMN crm.payment_plan_status.received_amount IS 'Received on it, in yuan';
COMMENT ON COLUMN crm.payment_plan_status.remaining IS 'Still to receive, in yuan';
COMMENT ON COLUMN crm.payment_plan_status.status IS 'paid, upcoming, due (within remind_days_before of due_on) or overdue';
COMMENT ON COLUMN crm.payment_plan_status.overdue_days IS 'Days past due while not paid; 0 otherwise';
GRANT SELECT ON crm.payment_plan_status TO crm_user;
