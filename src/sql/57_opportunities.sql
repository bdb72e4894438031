-- Opportunities (商机, seeds 002, 003, 004): deals on a customer that move
-- through the stages of a stage set (销售阶段), each stage with its win rate
-- (赢率), until won or lost.  docs/opportunities.md.
--
-- The rules of a move live in one trigger, crm.opportunity_write(), so that
-- crm.advance_stage(), crm.close_opportunity(), crm.reopen_opportunity() and a
-- plain UPDATE ... SET stage_id behave alike: the database is the API.

-- Stage sets: different teams can sell differently.  A set is used by the
-- departments it lists (and their sub-departments, unless one lists its own);
-- the default set by everyone else.
CREATE TABLE crm.stage_set (
	id              bigint GENERATED ALWAYS AS IDENTITY,
	name            text NOT NULL,
	allow_backward  boolean NOT NULL DEFAULT true,
	departments     bigint[] NOT NULL DEFAULT '{}',
	is_default      boolean NOT NULL DEFAULT false,
	builtin         boolean NOT NULL DEFAULT false,
	CONSTRAINT stage_set_pkey PRIMARY KEY (id),
	CONSTRAINT stage_set_name_key UNIQUE (name),
	CONSTRAINT stage_set_name_check CHECK (crm.check_length(name, 200, 'stage_set.name') AND btrim(name) <> '')
);
COMMENT ON TABLE crm.stage_set IS 'Stage sets (销售流程): the stages deals of some departments go through; one is the default';
COMMENT ON COLUMN crm.stage_set.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.stage_set.name IS 'Name people see; unique';
COMMENT ON COLUMN crm.stage_set.allow_backward IS 'Whether a deal may move back to an earlier open stage';
COMMENT ON COLUMN crm.stage_set.departments IS 'Departments (crm.department.id) whose employees'' new deals use this set, with their sub-departments';
COMMENT ON COLUMN crm.stage_set.is_default IS 'The set of deals whose owner''s department no set lists; exactly one';
COMMENT ON COLUMN crm.stage_set.builtin IS 'Shipped with crm (a dump leaves it out); kept by crm; not writable';
CREATE UNIQUE INDEX stage_set_one_default ON crm.stage_set (is_default) WHERE is_default;

CREATE TABLE crm.stage (
	id                 bigint GENERATED ALWAYS AS IDENTITY,
	stage_set_id       bigint NOT NULL,
	position           integer NOT NULL,
	name               text NOT NULL,
	win_rate           numeric(5, 2) NOT NULL,
	forecast_category  text NOT NULL DEFAULT 'pipeline',
	outcome            text NOT NULL DEFAULT 'open',
	builtin            boolean NOT NULL DEFAULT false,
	CONSTRAINT stage_pkey PRIMARY KEY (id),
	CONSTRAINT stage_set_fkey FOREIGN KEY (stage_set_id) REFERENCES crm.stage_set (id) ON DELETE CASCADE,
	CONSTRAINT stage_position_key UNIQUE (stage_set_id, position) DEFERRABLE INITIALLY IMMEDIATE,
	CONSTRAINT stage_name_key UNIQUE (stage_set_id, name),
	CONSTRAINT stage_name_check CHECK (crm.check_length(name, 200, 'stage.name') AND btrim(name) <> ''),
	-- (crm.stage_valid says which rule a row breaks; these hold whoever writes)
	CONSTRAINT stage_win_rate_check CHECK (win_rate BETWEEN 0 AND 100),
	CONSTRAINT stage_outcome_check CHECK (outcome IN ('open', 'won', 'lost')),
	CONSTRAINT stage_forecast_category_check CHECK
		(forecast_category IN ('pipeline', 'best_case', 'commit', 'closed', 'omitted')
		 AND (outcome <> 'won' OR (forecast_category = 'closed' AND win_rate = 100))
		 AND (outcome <> 'lost' OR (forecast_category = 'omitted' AND win_rate = 0))
		 AND (outcome <> 'open' OR forecast_category <> 'closed'))
);
COMMENT ON TABLE crm.stage IS 'Sales stages (销售阶段) of a stage set, in order: open stages, then one won and at least one lost';
COMMENT ON COLUMN crm.stage.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.stage.stage_set_id IS 'The set (crm.stage_set.id) the stage belongs to; fixed';
COMMENT ON COLUMN crm.stage.position IS 'Order within the set; unique there; won and lost stages come after the open ones';
COMMENT ON COLUMN crm.stage.name IS 'Name people see; unique within the set';
COMMENT ON COLUMN crm.stage.win_rate IS 'Configured win rate (赢率) in percent, 0 to 100: a new deal''s probability in this stage; won 100, lost 0';
COMMENT ON COLUMN crm.stage.forecast_category IS 'pipeline, best_case, commit, closed (the won stage) or omitted (lost stages, or open ones left out of forecasts)';
COMMENT ON COLUMN crm.stage.outcome IS 'open, won (exactly one per set) or lost (at least one): a deal in a won or lost stage is closed; fixed while deals are in it';
COMMENT ON COLUMN crm.stage.builtin IS 'Shipped with crm (a dump leaves it out); kept by crm; not writable';
CREATE INDEX stage_set_idx ON crm.stage (stage_set_id, position);

-- seed 004's stages, in Chinese
INSERT INTO crm.stage_set (name, allow_backward, is_default, builtin) VALUES ('标准销售流程', true, true, true);
INSERT INTO crm.stage (stage_set_id, position, name, win_rate, forecast_category, outcome, builtin)
SELECT (SELECT id FROM crm.stage_set WHERE name = '标准销售流程'), v.* , true FROM (VALUES
	(1, '初步接洽', 10, 'pipeline', 'open'),
	(2, '需求确认', 30, 'pipeline', 'open'),
	(3, '方案报价', 60, 'best_case', 'open'),
	(4, '谈判审核', 80, 'commit', 'open'),
	(5, '赢单', 100, 'closed', 'won'),
	(6, '输单', 0, 'omitted', 'lost')) v(position, name, win_rate, forecast_category, outcome);
SELECT crm.keep_builtin_edits('crm.stage_set', 'name');
SELECT crm.keep_builtin_edits('crm.stage', 'stage_set_id', 'position');

-- One stage as it is written: each rule named, with the stage.
CREATE OR REPLACE FUNCTION crm.stage_valid() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	set_name text;
BEGIN
	IF TG_RELID <> 'crm.stage'::regclass THEN RAISE 'crm.stage_valid() runs only on crm.stage, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	set_name := (SELECT s.name FROM crm.stage_set s WHERE s.id = NEW.stage_set_id);
	IF TG_OP = 'UPDATE' AND NEW.stage_set_id <> OLD.stage_set_id THEN
		RAISE EXCEPTION 'stage "%" cannot move to another stage set', crm.clip(OLD.name)
			USING ERRCODE = 'check_violation',
			      HINT = 'Add a stage to the other set instead.';
	END IF;
	IF NEW.win_rate IS NULL OR NEW.win_rate NOT BETWEEN 0 AND 100 THEN
		RAISE EXCEPTION 'stage "%" of "%" cannot have a win rate of %', crm.clip(NEW.name), crm.clip(set_name), coalesce(NEW.win_rate::text, 'NULL')
			USING ERRCODE = 'check_violation',
			      DETAIL = 'A win rate is the percentage of deals in the stage that end won.',
			      HINT = 'Give a win_rate from 0 to 100.';
	END IF;
	IF NEW.outcome IN ('won', 'lost')
	   AND (NEW.win_rate, NEW.forecast_category) IS DISTINCT FROM
	       (CASE NEW.outcome WHEN 'won' THEN 100 ELSE 0 END, CASE NEW.outcome WHEN 'won' THEN 'closed' ELSE 'omitted' END) THEN
		RAISE EXCEPTION 'stage "%" of "%" is % and needs a win rate of % and forecast category %', crm.clip(NEW.name), crm.clip(set_name),
			NEW.outcome, CASE NEW.outcome WHEN 'won' THEN 100 ELSE 0 END, CASE NEW.outcome WHEN 'won' THEN 'closed' ELSE 'omitted' END
			USING ERRCODE = 'check_violation',
			      DETAIL = 'A deal in a won stage was won; one in a lost stage was lost.',
			      HINT = format('Set win_rate = %s, forecast_category = %L.', CASE NEW.outcome WHEN 'won' THEN 100 ELSE 0 END,
			                    CASE NEW.outcome WHEN 'won' THEN 'closed' ELSE 'omitted' END);
	ELSIF NEW.outcome = 'open' AND NEW.forecast_category = 'closed' THEN
		RAISE EXCEPTION 'open stage "%" of "%" cannot have forecast category closed', crm.clip(NEW.name), crm.clip(set_name)
			USING ERRCODE = 'check_violation',
			      HINT = 'closed is the won stage''s; an open stage is pipeline, best_case, commit or omitted.';
	END IF;
	-- (deals moving into it meanwhile commit first, and the check sees them)
	IF TG_OP = 'UPDATE' AND NEW.outcome <> OLD.outcome THEN
		LOCK TABLE crm.opportunity IN SHARE MODE;
	END IF;
	IF TG_OP = 'UPDATE' AND NEW.outcome <> OLD.outcome AND EXISTS (SELECT FROM crm.opportunity o WHERE o.stage_id = OLD.id) THEN
		RAISE EXCEPTION 'stage "%" of "%" is in use and cannot change its outcome', crm.clip(OLD.name), crm.clip(set_name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = 'Whether a stage is open, won or lost decides whether its deals are closed.',
			      HINT = format('Add a stage with the new outcome and move the deals: SELECT crm.delete_stage(%s, <new stage>).', OLD.id);
	END IF;
	RETURN NEW;
END
$$;
-- runs as the owner: the in-use check must see every deal
ALTER FUNCTION crm.stage_valid() SECURITY DEFINER;
CREATE OR REPLACE TRIGGER stage_valid BEFORE INSERT OR UPDATE ON crm.stage
	FOR EACH ROW EXECUTE FUNCTION crm.stage_valid();

-- The sets as a whole, when the transaction commits (a set is written stage by
-- stage): each has an open stage, exactly one won and at least one lost stage,
-- its won and lost stages after the open ones; a department names one set;
-- exactly one set is the default.
CREATE OR REPLACE FUNCTION crm.check_stage_sets() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	bad record;
BEGIN
	IF TG_RELID <> ALL ('{crm.stage,crm.stage_set}'::regclass[]) THEN RAISE 'crm.check_stage_sets() runs only on crm.stage, crm.stage_set, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	SELECT s.name, count(*) FILTER (WHERE g.outcome = 'won') AS won, count(*) FILTER (WHERE g.outcome = 'lost') AS lost,
	       count(*) FILTER (WHERE g.outcome = 'open') AS open,
	       max(g.position) FILTER (WHERE g.outcome = 'open') > min(g.position) FILTER (WHERE g.outcome <> 'open') AS unordered
	  INTO bad
	  FROM crm.stage_set s LEFT JOIN crm.stage g ON g.stage_set_id = s.id
	 GROUP BY s.id, s.name
	HAVING count(*) FILTER (WHERE g.outcome = 'won') <> 1 OR count(*) FILTER (WHERE g.outcome = 'lost') = 0
	    OR count(*) FILTER (WHERE g.outcome = 'open') = 0
	    OR max(g.position) FILTER (WHERE g.outcome = 'open') > min(g.position) FILTER (WHERE g.outcome <> 'open')
	 ORDER BY s.id LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'stage set "%" %', crm.clip(bad.name),
			CASE WHEN bad.won = 0 THEN 'has no won stage' WHEN bad.won > 1 THEN format('has %s won stages', bad.won)
			     WHEN bad.lost = 0 THEN 'has no lost stage' WHEN bad.open = 0 THEN 'has no open stage'
			     ELSE 'has an open stage after a won or lost one' END
			USING ERRCODE = 'check_violation',
			      DETAIL = 'A stage set has open stages, then exactly one won stage and at least one lost stage.',
			      HINT = CASE WHEN bad.unordered THEN 'Give the won and lost stages positions after every open stage.'
			                  ELSE 'Add or change stages (crm.stage: outcome open, won or lost) in the same transaction.' END;
	END IF;
	SELECT d.name, array_agg(s.name ORDER BY s.name) AS sets INTO bad
	  FROM crm.stage_set s, unnest(s.departments) x(id) LEFT JOIN crm.department d ON d.id = x.id
	 GROUP BY x.id, d.name HAVING count(*) > 1 OR d.name IS NULL LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION '%', CASE WHEN bad.name IS NULL THEN format('stage set "%s" names a department that does not exist', crm.clip(bad.sets[1]))
		                          ELSE format('department "%s" is named by stage sets "%s" and "%s"', crm.clip(bad.name), crm.clip(bad.sets[1]), crm.clip(bad.sets[2])) END
			USING ERRCODE = 'check_violation',
			      HINT = 'A department''s new deals use one set: name it in one stage_set.departments, by its id (crm.department).';
	END IF;
	IF (SELECT count(*) FROM crm.stage_set s WHERE s.is_default) <> 1 THEN
		RAISE EXCEPTION 'no stage set is the default'
			USING ERRCODE = 'check_violation',
			      DETAIL = 'Deals whose owner''s department no set names use the default set.',
			      HINT = 'UPDATE crm.stage_set SET is_default = true WHERE name = ...';
	END IF;
	RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER stage_sets_whole AFTER INSERT OR UPDATE OR DELETE ON crm.stage
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION crm.check_stage_sets();
CREATE CONSTRAINT TRIGGER stage_sets_whole AFTER INSERT OR UPDATE OR DELETE ON crm.stage_set
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION crm.check_stage_sets();

-- Why deals are lost (输单原因): a dictionary.
INSERT INTO crm.dictionary_kind (kind, label, builtin) VALUES ('lost_reason', '输单原因', true);
INSERT INTO crm.dictionary (kind, code, label, position, builtin)
SELECT 'lost_reason', code, label, n, true
  FROM unnest('{price,competitor,no_budget,no_need,timing,relationship,other}'::text[],
              '{价格偏高,选择了竞争对手,预算不足,需求取消,时机未到,关系不到位,其他}'::text[]) WITH ORDINALITY u(code, label, n);

CREATE TABLE crm.opportunity (
	id                 bigint GENERATED ALWAYS AS IDENTITY,
	customer_id        bigint NOT NULL,
	name               text NOT NULL,
	amount             numeric(14, 2) NOT NULL DEFAULT 0,
	expected_close_on  date,
	stage_set_id       bigint NOT NULL,
	stage_id           bigint NOT NULL,
	probability        numeric(5, 2) NOT NULL,
	owner_id           bigint NOT NULL DEFAULT crm.current_employee_id(),
	lead_id            bigint,
	requirement        text,
	budget             numeric(14, 2),
	decision_on        date,
	status             text NOT NULL DEFAULT 'open',
	closed_on          date,
	lost_reason        text,
	stage_entered_at   timestamptz NOT NULL DEFAULT now(),
	created_by         bigint,
	created_at         timestamptz NOT NULL DEFAULT now(),
	updated_at         timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT opportunity_pkey PRIMARY KEY (id),
	-- (checked at commit: crm.record_deleted() refuses the customer's delete
	-- at the end of its statement, naming it, with the hint below)
	CONSTRAINT opportunity_customer_fkey FOREIGN KEY (customer_id) REFERENCES crm.customer (id) DEFERRABLE INITIALLY DEFERRED,
	CONSTRAINT opportunity_lead_fkey FOREIGN KEY (lead_id) REFERENCES crm.lead (id) ON DELETE SET NULL,
	CONSTRAINT opportunity_stage_set_fkey FOREIGN KEY (stage_set_id) REFERENCES crm.stage_set (id),
	CONSTRAINT opportunity_stage_fkey FOREIGN KEY (stage_id) REFERENCES crm.stage (id),
	CONSTRAINT opportunity_name_check CHECK (crm.check_length(name, 200, 'opportunity.name') AND btrim(name) <> ''),
	CONSTRAINT opportunity_requirement_length CHECK (crm.check_length(requirement, 20000, 'opportunity.requirement')),
	CONSTRAINT opportunity_amount_check CHECK (amount >= 0 AND amount <> 'NaN'),
	CONSTRAINT opportunity_budget_check CHECK (budget >= 0 AND budget <> 'NaN'),
	CONSTRAINT opportunity_probability_check CHECK (probability BETWEEN 0 AND 100),
	CONSTRAINT opportunity_status_check CHECK (status IN ('open', 'won', 'lost')),
	CONSTRAINT opportunity_closed_check CHECK ((status = 'open') = (closed_on IS NULL)),
	CONSTRAINT opportunity_lost_reason_check CHECK (lost_reason IS NULL OR status = 'lost')
);
COMMENT ON CONSTRAINT opportunity_customer_fkey ON crm.opportunity IS
	'A customer''s deals keep it: merge the customer into another (crm.merge_customers), or delete its deals first.';
COMMENT ON TABLE crm.opportunity IS 'Opportunities (商机): deals on a customer, moving through the stages of a stage set until won or lost';
COMMENT ON COLUMN crm.opportunity.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.opportunity.customer_id IS 'The customer (crm.customer.id), one the writer sees';
COMMENT ON COLUMN crm.opportunity.name IS 'Name of the deal; at most 200 characters';
COMMENT ON COLUMN crm.opportunity.amount IS 'Deal amount in yuan; not negative';
COMMENT ON COLUMN crm.opportunity.expected_close_on IS 'When the deal is expected to close (预计成交日期): the month forecasts put it in';
COMMENT ON COLUMN crm.opportunity.stage_set_id IS 'The stage set (crm.stage_set.id), given or the set of the owner''s department when the deal is created; fixed';
COMMENT ON COLUMN crm.opportunity.stage_id IS 'The current stage (crm.stage.id), one of its set''s; by default the set''s first; a won or lost stage closes the deal';
COMMENT ON COLUMN crm.opportunity.probability IS 'Chance of winning in percent: the stage''s win rate, unless given; a move of stage sets it again unless the same statement gives it';
COMMENT ON COLUMN crm.opportunity.owner_id IS 'Owning employee (crm.employee.id); defaults to the acting employee';
COMMENT ON COLUMN crm.opportunity.lead_id IS 'The lead (crm.lead.id) the deal came from, if any';
COMMENT ON COLUMN crm.opportunity.requirement IS 'What the customer needs (商机要素); at most 20,000 characters';
COMMENT ON COLUMN crm.opportunity.budget IS 'The customer''s budget in yuan, if known';
COMMENT ON COLUMN crm.opportunity.decision_on IS 'When the customer decides, if known';
COMMENT ON COLUMN crm.opportunity.status IS 'open, won or lost: what its stage says; kept by crm; not writable';
COMMENT ON COLUMN crm.opportunity.closed_on IS 'The day the deal was won or lost (company time zone); kept by crm; not writable';
COMMENT ON COLUMN crm.opportunity.lost_reason IS 'Code of dictionary lost_reason (crm.dictionary), for a lost deal';
COMMENT ON COLUMN crm.opportunity.stage_entered_at IS 'When the deal entered its stage; kept by crm; not writable';
COMMENT ON COLUMN crm.opportunity.created_by IS 'Employee (crm.employee.id) who created the deal; kept by crm; not writable';
COMMENT ON COLUMN crm.opportunity.created_at IS 'When the deal was created; kept by crm; not writable';
COMMENT ON COLUMN crm.opportunity.updated_at IS 'When the deal last changed; kept by crm; not writable';
CREATE INDEX opportunity_owner_idx ON crm.opportunity (owner_id, updated_at DESC);
CREATE INDEX opportunity_customer_idx ON crm.opportunity (customer_id);
CREATE INDEX opportunity_lead_idx ON crm.opportunity (lead_id);
CREATE INDEX opportunity_stage_idx ON crm.opportunity (stage_id);
CREATE INDEX opportunity_stage_set_idx ON crm.opportunity (stage_set_id);
ALTER TABLE crm.opportunity ENABLE ROW LEVEL SECURITY;
GRANT SELECT, DELETE ON crm.opportunity TO crm_user;
GRANT INSERT (customer_id, name, amount, expected_close_on, stage_set_id, stage_id, probability, owner_id, lead_id,
              requirement, budget, decision_on, lost_reason),
      UPDATE (customer_id, name, amount, expected_close_on, stage_id, probability, owner_id, lead_id,
              requirement, budget, decision_on, lost_reason)
	ON crm.opportunity TO crm_user;

SELECT crm.register_record_type('opportunity', 'crm.opportunity', '商机', 'Opportunity', 'owner',
	'{team, follow_ups, tags, pins, attachments, custom_fields, dictionaries, oplog, timeline, transfer, handover, export, import, notifications, search}',
	'opportunities.md', title => 'r.name', search_columns => '{name}');
INSERT INTO crm.dictionary_column (table_name, column_name, kind, builtin) VALUES ('opportunity', 'lost_reason', 'lost_reason', true);

-- Lines (商机产品): what the deal would sell.  A deal with lines is worth their
-- total, kept by crm.  Registered as a type that follows its deal: seen with
-- it, written by whoever may edit it.
CREATE TABLE crm.opportunity_product (
	id              bigint GENERATED ALWAYS AS IDENTITY,
	opportunity_id  bigint NOT NULL,
	product_id      bigint NOT NULL,
	quantity        numeric(14, 3) NOT NULL DEFAULT 1,
	unit_price      numeric(14, 2) NOT NULL,
	discount        numeric(5, 2) NOT NULL DEFAULT 0,
	amount          numeric(14, 2) GENERATED ALWAYS AS (round(quantity * unit_price * (100 - discount) / 100, 2)) STORED,
	note            text,
	created_by      bigint,
	created_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT opportunity_product_pkey PRIMARY KEY (id),
	CONSTRAINT opportunity_product_opportunity_fkey FOREIGN KEY (opportunity_id) REFERENCES crm.opportunity (id) ON DELETE CASCADE,
	CONSTRAINT opportunity_product_product_fkey FOREIGN KEY (product_id) REFERENCES crm.product (id),
	CONSTRAINT opportunity_product_quantity_check CHECK (quantity > 0 AND quantity <> 'NaN'),
	CONSTRAINT opportunity_product_unit_price_check CHECK (unit_price >= 0 AND unit_price <> 'NaN'),
	CONSTRAINT opportunity_product_discount_check CHECK (discount BETWEEN 0 AND 100),
	CONSTRAINT opportunity_product_note_length CHECK (crm.check_length(note, 2000, 'opportunity_product.note'))
);
COMMENT ON TABLE crm.opportunity_product IS 'Lines of a deal (商机产品): product, quantity, unit price, discount; the deal''s amount is their total';
COMMENT ON COLUMN crm.opportunity_product.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.opportunity_product.opportunity_id IS 'The deal (crm.opportunity.id)';
COMMENT ON COLUMN crm.opportunity_product.product_id IS 'The product (crm.product.id): on the shelf and one the deal''s owner may sell, when the line gets it';
COMMENT ON COLUMN crm.opportunity_product.quantity IS 'How many units; more than 0';
COMMENT ON COLUMN crm.opportunity_product.unit_price IS 'Price per unit in yuan; the product''s list price unless given; not negative';
COMMENT ON COLUMN crm.opportunity_product.discount IS 'Discount in percent, 0 to 100';
COMMENT ON COLUMN crm.opportunity_product.amount IS 'quantity × unit_price × (100 − discount) / 100, rounded to the fen; kept by crm; not writable';
COMMENT ON COLUMN crm.opportunity_product.note IS 'A note on the line; at most 2,000 characters';
COMMENT ON COLUMN crm.opportunity_product.created_by IS 'Employee (crm.employee.id) who added the line; kept by crm; not writable';
COMMENT ON COLUMN crm.opportunity_product.created_at IS 'When the line was added; kept by crm; not writable';
COMMENT ON COLUMN crm.opportunity_product.updated_at IS 'When the line last changed; kept by crm; not writable';
CREATE INDEX opportunity_product_opportunity_idx ON crm.opportunity_product (opportunity_id);
CREATE INDEX opportunity_product_product_idx ON crm.opportunity_product (product_id);
ALTER TABLE crm.opportunity_product ENABLE ROW LEVEL SECURITY;
GRANT SELECT, DELETE ON crm.opportunity_product TO crm_user;
GRANT INSERT (opportunity_id, product_id, quantity, unit_price, discount, note),
      UPDATE (product_id, quantity, unit_price, discount, note) ON crm.opportunity_product TO crm_user;
SELECT crm.register_record_type('opportunity_product', 'crm.opportunity_product', '商机产品', 'Opportunity line', 'parent',
	'{oplog}', 'opportunities.md', parent => 'opportunity', parent_column => 'opportunity_id');

-- Competitors met on a deal (seed 004), with how much of a threat each is.
CREATE TABLE crm.opportunity_competitor (
	id              bigint GENERATED ALWAYS AS IDENTITY,
	opportunity_id  bigint NOT NULL,
	competitor_id   bigint NOT NULL,
	threat_level    text NOT NULL DEFAULT 'medium',
	note            text,
	created_by      bigint,
	created_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT opportunity_competitor_pkey PRIMARY KEY (id),
	CONSTRAINT opportunity_competitor_key UNIQUE (opportunity_id, competitor_id),
	CONSTRAINT opportunity_competitor_opportunity_fkey FOREIGN KEY (opportunity_id) REFERENCES crm.opportunity (id) ON DELETE CASCADE,
	CONSTRAINT opportunity_competitor_competitor_fkey FOREIGN KEY (competitor_id) REFERENCES crm.competitor (id),
	CONSTRAINT opportunity_competitor_threat_check CHECK (threat_level IN ('low', 'medium', 'high')),
	CONSTRAINT opportunity_competitor_note_length CHECK (crm.check_length(note, 2000, 'opportunity_competitor.note'))
);
COMMENT ON TABLE crm.opportunity_competitor IS 'Competitors met on a deal (商机竞争对手), with their threat';
COMMENT ON COLUMN crm.opportunity_competitor.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.opportunity_competitor.opportunity_id IS 'The deal (crm.opportunity.id)';
COMMENT ON COLUMN crm.opportunity_competitor.competitor_id IS 'The competitor (crm.competitor.id)';
COMMENT ON COLUMN crm.opportunity_competitor.threat_level IS 'low, medium or high';
COMMENT ON COLUMN crm.opportunity_competitor.note IS 'What they offer on this deal; at most 2,000 characters';
COMMENT ON COLUMN crm.opportunity_competitor.created_by IS 'Employee (crm.employee.id) who added it; kept by crm; not writable';
COMMENT ON COLUMN crm.opportunity_competitor.created_at IS 'When it was added; kept by crm; not writable';
COMMENT ON COLUMN crm.opportunity_competitor.updated_at IS 'When it last changed; kept by crm; not writable';
CREATE INDEX opportunity_competitor_competitor_idx ON crm.opportunity_competitor (competitor_id);
ALTER TABLE crm.opportunity_competitor ENABLE ROW LEVEL SECURITY;
GRANT SELECT, DELETE ON crm.opportunity_competitor TO crm_user;
GRANT INSERT (opportunity_id, competitor_id, threat_level, note), UPDATE (threat_level, note)
	ON crm.opportunity_competitor TO crm_user;
SELECT crm.register_record_type('opportunity_competitor', 'crm.opportunity_competitor', '商机竞争对手', 'Opportunity competitor',
	'parent', '{oplog}', 'opportunities.md', parent => 'opportunity', parent_column => 'opportunity_id');

-- What is written on a deal or a contract (a line, a competitor) needs the
-- deal open (the contract a draft) and editable by the writer, who names it
-- before row security would name a policy; a line's product must be on the
-- shelf and one the owner may sell when the line gets it (existing lines keep
-- theirs); its unit price is the product's list price unless given.  Runs as
-- the writer (src/records/parts.c).
CREATE OR REPLACE FUNCTION crm.part_write() RETURNS trigger
	AS 'MODULE_PATHNAME', 'crm_part_write' LANGUAGE C;
CREATE OR REPLACE TRIGGER opportunity_product_rules BEFORE INSERT OR UPDATE OR DELETE ON crm.opportunity_product
	FOR EACH ROW EXECUTE FUNCTION crm.part_write();
CREATE OR REPLACE TRIGGER opportunity_competitor_rules BEFORE INSERT OR UPDATE OR DELETE ON crm.opportunity_competitor
	FOR EACH ROW EXECUTE FUNCTION crm.part_write();

-- A line's product is one the owner may sell when the transaction commits,
-- too: a deal handed to an allowed seller for the line and back in one
-- transaction would otherwise carry it.  (Lines a record had before a
-- transfer keep their products.)  As the owner: the record may have left the
-- writer's scope (src/records/parts.c).
CREATE OR REPLACE FUNCTION crm.check_line_seller() RETURNS trigger
	AS 'MODULE_PATHNAME', 'crm_check_line_seller' LANGUAGE C;
CREATE CONSTRAINT TRIGGER opportunity_product_seller AFTER INSERT OR UPDATE OF product_id ON crm.opportunity_product
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION crm.check_line_seller();

-- A deal or contract with lines is worth their total: set per statement, for
-- those whose lines changed, as crm (the write was checked already).
CREATE OR REPLACE FUNCTION crm.total_lines() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	parent  text := CASE TG_RELID WHEN 'crm.opportunity_product'::regclass THEN 'opportunity' ELSE 'contract' END;
	records bigint[];
BEGIN
	IF TG_RELID NOT IN ('crm.opportunity_product'::regclass, to_regclass('crm.contract_product')) THEN RAISE 'crm.total_lines() runs only on crm.opportunity_product and crm.contract_product, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	-- (each branch names only the transition table its event has)
	IF TG_OP = 'DELETE' THEN
		records := ARRAY(SELECT DISTINCT (to_jsonb(o) ->> (parent || '_id'))::bigint FROM old_lines o);
	ELSE
		records := ARRAY(SELECT DISTINCT (to_jsonb(n) ->> (parent || '_id'))::bigint FROM new_lines n);
	END IF;
	EXECUTE format('UPDATE crm.%1$I r SET amount = t.total
	                  FROM (SELECT l.%2$I AS id, sum(l.amount) AS total FROM crm.%3$I l
	                         WHERE l.%2$I = ANY ($1) GROUP BY l.%2$I) t
	                 WHERE r.id = t.id AND r.amount <> t.total', parent, parent || '_id', TG_TABLE_NAME)
		USING records;
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER opportunity_product_total_insert AFTER INSERT ON crm.opportunity_product
	REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION crm.total_lines();
CREATE OR REPLACE TRIGGER opportunity_product_total_update AFTER UPDATE ON crm.opportunity_product
	REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION crm.total_lines();
CREATE OR REPLACE TRIGGER opportunity_product_total_delete AFTER DELETE ON crm.opportunity_product
	REFERENCING OLD TABLE AS old_lines FOR EACH STATEMENT EXECUTE FUNCTION crm.total_lines();

-- A product lines name is not deleted: it goes off the shelf, and what was
-- sold stays readable.  As the owner, to count every deal's lines.
CREATE OR REPLACE FUNCTION crm.guard_product_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	lines bigint;
BEGIN
	IF TG_RELID <> 'crm.product'::regclass THEN RAISE 'crm.guard_product_delete() runs only on crm.product, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	lines := (SELECT count(*) FROM crm.opportunity_product l WHERE l.product_id = OLD.id);
	IF lines > 0 THEN
		RAISE EXCEPTION 'product "%" (%) is on % lines of deals and cannot be deleted', crm.clip(OLD.name), crm.clip(OLD.code), lines
			USING ERRCODE = 'foreign_key_violation',
			      HINT = format('Take it off the shelf instead: UPDATE crm.product SET on_shelf = false WHERE id = %s;', OLD.id);
	END IF;
	RETURN OLD;
END
$$;
CREATE OR REPLACE TRIGGER product_in_use BEFORE DELETE ON crm.product
	FOR EACH ROW EXECUTE FUNCTION crm.guard_product_delete();

-- Every move of a deal from one stage to another (and its first stage): the
-- history that win rates, days in stage and "what changed" are computed from.
-- Written by crm alone; seen with the deal.
CREATE TABLE crm.opportunity_stage_change (
	id              bigint GENERATED ALWAYS AS IDENTITY,
	opportunity_id  bigint NOT NULL,
	from_stage_id   bigint,
	to_stage_id     bigint NOT NULL,
	changed_at      timestamptz NOT NULL DEFAULT now(),
	changed_by      bigint,
	amount          numeric(14, 2) NOT NULL,
	probability     numeric(5, 2) NOT NULL,
	days_in_stage   numeric(10, 2),
	CONSTRAINT opportunity_stage_change_pkey PRIMARY KEY (id),
	CONSTRAINT opportunity_stage_change_opportunity_fkey FOREIGN KEY (opportunity_id) REFERENCES crm.opportunity (id) ON DELETE CASCADE,
	CONSTRAINT opportunity_stage_change_from_fkey FOREIGN KEY (from_stage_id) REFERENCES crm.stage (id),
	CONSTRAINT opportunity_stage_change_to_fkey FOREIGN KEY (to_stage_id) REFERENCES crm.stage (id)
);
COMMENT ON TABLE crm.opportunity_stage_change IS 'Every stage move of a deal, its first stage included: from, to, when, who, amount and probability then; kept by crm; not writable';
COMMENT ON COLUMN crm.opportunity_stage_change.id IS 'Identity; kept by crm';
COMMENT ON COLUMN crm.opportunity_stage_change.opportunity_id IS 'The deal (crm.opportunity.id)';
COMMENT ON COLUMN crm.opportunity_stage_change.from_stage_id IS 'The stage left (crm.stage.id); NULL for a new deal''s first stage';
COMMENT ON COLUMN crm.opportunity_stage_change.to_stage_id IS 'The stage entered (crm.stage.id)';
COMMENT ON COLUMN crm.opportunity_stage_change.changed_at IS 'When the move happened';
COMMENT ON COLUMN crm.opportunity_stage_change.changed_by IS 'Employee (crm.employee.id) who moved it; NULL for crm''s own moves';
COMMENT ON COLUMN crm.opportunity_stage_change.amount IS 'The deal''s amount at that moment';
COMMENT ON COLUMN crm.opportunity_stage_change.probability IS 'The deal''s probability after the move';
COMMENT ON COLUMN crm.opportunity_stage_change.days_in_stage IS 'Days the deal spent in the stage it left';
CREATE INDEX opportunity_stage_change_opportunity_idx ON crm.opportunity_stage_change (opportunity_id, changed_at);
CREATE INDEX opportunity_stage_change_to_idx ON crm.opportunity_stage_change (to_stage_id);
CREATE INDEX opportunity_stage_change_from_idx ON crm.opportunity_stage_change (from_stage_id);
ALTER TABLE crm.opportunity_stage_change ENABLE ROW LEVEL SECURITY;
CREATE POLICY opportunity_stage_change_read ON crm.opportunity_stage_change FOR SELECT TO crm_user
	USING (EXISTS (SELECT FROM crm.opportunity o WHERE o.id = opportunity_stage_change.opportunity_id));
GRANT SELECT ON crm.opportunity_stage_change TO crm_user;

-- The set a new deal of an employee's follows: that of the nearest department
-- up their tree that a set lists, else the default set.
CREATE OR REPLACE FUNCTION crm.owner_stage_set(employee_id bigint) RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce((SELECT s.id FROM crm.department_path(owner_stage_set.employee_id) p
	                   JOIN crm.stage_set s ON p.department_id = ANY (s.departments)
	                  ORDER BY p.depth LIMIT 1),
	                (SELECT s.id FROM crm.stage_set s WHERE s.is_default));
END;
COMMENT ON FUNCTION crm.owner_stage_set(bigint) IS
	'The stage set (crm.stage_set.id) a new deal of the employee follows: the nearest department''s up their tree, else the default';

-- The rules of a deal as it is written (src/records/opportunity.c): the stage
-- of its set, moves back where the set allows them, the probability, status,
-- closed_on and the stage clock, a closed deal read-only, a deal with lines
-- worth their total.  Runs as the writer.  A restore loads rows as they were.
CREATE OR REPLACE FUNCTION crm.opportunity_write() RETURNS trigger
	AS 'MODULE_PATHNAME', 'crm_opportunity_write' LANGUAGE C;
-- (named to run before the write check, which sees the owner)
CREATE OR REPLACE TRIGGER opportunity_rules BEFORE INSERT OR UPDATE ON crm.opportunity
	FOR EACH ROW EXECUTE FUNCTION crm.opportunity_write();

-- A deal's customer, and its lead if it names one, are ones the writer sees:
-- once per statement for new deals, and for each deal an UPDATE gives another
-- customer or lead.  Runs as the writer; crm's own code (a merge) passes.
CREATE OR REPLACE FUNCTION crm.check_opportunity_links() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	bad record;
	me  text;
BEGIN
	IF TG_RELID <> 'crm.opportunity'::regclass THEN RAISE 'crm.check_opportunity_links() runs only on crm.opportunity, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() OR NOT row_security_active('crm.customer') THEN
		RETURN NULL;
	END IF;
	-- (each branch names only what its event has)
	IF TG_OP = 'INSERT' THEN
		SELECT n.id, n.name, NULL::text AS old_name, n.customer_id, n.lead_id,
		       NOT EXISTS (SELECT FROM crm.customer c WHERE c.id = n.customer_id) AS hidden_customer INTO bad
		  FROM new_deals n
		 WHERE NOT EXISTS (SELECT FROM crm.customer c WHERE c.id = n.customer_id)
		    OR (n.lead_id IS NOT NULL AND NOT EXISTS (SELECT FROM crm.lead l WHERE l.id = n.lead_id))
		 ORDER BY n.id LIMIT 1;
	ELSE
		SELECT NEW.id, NEW.name, OLD.name AS old_name, NEW.customer_id, NEW.lead_id,
		       NEW.customer_id <> OLD.customer_id AND NOT EXISTS (SELECT FROM crm.customer c WHERE c.id = NEW.customer_id) AS hidden_customer INTO bad
		 WHERE (NEW.customer_id <> OLD.customer_id AND NOT EXISTS (SELECT FROM crm.customer c WHERE c.id = NEW.customer_id))
		    OR (NEW.lead_id IS DISTINCT FROM OLD.lead_id AND NEW.lead_id IS NOT NULL
		        AND NOT EXISTS (SELECT FROM crm.lead l WHERE l.id = NEW.lead_id));
	END IF;
	IF bad.id IS NULL THEN
		RETURN NULL;
	END IF;
	me := coalesce((SELECT format('employee "%s"', crm.clip(e.name)) FROM crm.employee e WHERE e.id = crm.current_employee_id()), 'nobody');
	IF bad.hidden_customer THEN
		RAISE EXCEPTION 'opportunity % cannot be for customer %: no such customer is visible to %',
			CASE WHEN TG_OP = 'INSERT' THEN format('"%s"', crm.clip(bad.name)) ELSE format('%s (%s)', bad.id, crm.clip(bad.old_name)) END,
			bad.customer_id, me
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'A deal is for a customer you see: SELECT id, name FROM crm.customer.';
	END IF;
	RAISE EXCEPTION 'opportunity % cannot come from lead %: no such lead is visible to %',
		CASE WHEN TG_OP = 'INSERT' THEN format('"%s"', crm.clip(bad.name)) ELSE format('%s (%s)', bad.id, crm.clip(bad.old_name)) END,
		bad.lead_id, me
		USING ERRCODE = 'insufficient_privilege',
		      HINT = 'Name a lead you see: SELECT id, name FROM crm.lead.';
END
$$;
CREATE OR REPLACE TRIGGER opportunity_links_insert AFTER INSERT ON crm.opportunity
	REFERENCING NEW TABLE AS new_deals FOR EACH STATEMENT EXECUTE FUNCTION crm.check_opportunity_links();
CREATE OR REPLACE TRIGGER opportunity_links_update AFTER UPDATE OF customer_id, lead_id ON crm.opportunity
	FOR EACH ROW WHEN (NEW.customer_id <> OLD.customer_id OR NEW.lead_id IS DISTINCT FROM OLD.lead_id)
	EXECUTE FUNCTION crm.check_opportunity_links();

-- The history of moves, per statement, and the news of it (seed 002: the
-- leader hears which customers intend to buy; owner and superior hear of a
-- deal won or lost): one notification per recipient and statement, listing
-- the deals, and none to whoever made the change.
CREATE OR REPLACE FUNCTION crm.log_stage_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	actor bigint := crm.invoking_employee_id();
	news  jsonb;
	h     record;
BEGIN
	IF TG_RELID <> 'crm.opportunity'::regclass THEN RAISE 'crm.log_stage_changes() runs only on crm.opportunity, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() OR current_setting('crm.change_source') = 'system' THEN
		RETURN NULL;
	END IF;
	IF TG_OP = 'INSERT' THEN
		INSERT INTO crm.opportunity_stage_change (opportunity_id, from_stage_id, to_stage_id, changed_at, changed_by, amount, probability)
		SELECT n.id, NULL, n.stage_id, n.stage_entered_at, actor, n.amount, n.probability FROM new_rows n;
	ELSE
		INSERT INTO crm.opportunity_stage_change (opportunity_id, from_stage_id, to_stage_id, changed_at, changed_by, amount, probability,
		                                          days_in_stage)
		SELECT n.id, o.stage_id, n.stage_id, n.stage_entered_at, actor, n.amount, n.probability,
		       round((extract(epoch FROM n.stage_entered_at - o.stage_entered_at) / 86400)::numeric, 2)
		  FROM new_rows n JOIN old_rows o ON o.id = n.id
		 WHERE n.stage_id <> o.stage_id;
	END IF;
	-- (each branch names only the transition tables its event has)
	IF TG_OP = 'INSERT' THEN
		news := (SELECT jsonb_agg(jsonb_build_object('event', 'opportunity.created', 'recipient', e.superior_id, 'owner', e.name,
		                                             'id', n.id, 'name', n.name, 'customer_id', n.customer_id, 'amount', n.amount))
		           FROM new_rows n JOIN crm.employee e ON e.id = n.owner_id);
	ELSIF EXISTS (SELECT FROM new_rows n WHERE n.status <> 'open') THEN
		news := (SELECT jsonb_agg(jsonb_build_object('event', 'opportunity.' || n.status, 'recipient', r.id, 'owner', e.name,
		                                             'id', n.id, 'name', n.name, 'customer_id', n.customer_id, 'amount', n.amount,
		                                             'reason', (SELECT k.label FROM crm.dictionary k
		                                                         WHERE k.kind = 'lost_reason' AND k.code = n.lost_reason)))
		           FROM new_rows n JOIN old_rows o ON o.id = n.id JOIN crm.employee e ON e.id = n.owner_id
		           JOIN crm.employee r ON r.id IN (e.id, e.superior_id)
		          WHERE n.status <> 'open' AND o.status <> n.status);
	END IF;
	IF news IS NULL THEN
		RETURN NULL;
	END IF;
	FOR h IN
		SELECT x.event, x.recipient, x.owner, count(*) AS n, min(x.id) AS first_id,
		       jsonb_agg(jsonb_build_object('record', x.name, 'customer', c.name, 'amount', x.amount, 'reason', x.reason)
		                 ORDER BY x.id) FILTER (WHERE x.rank <= 200) AS items
		  FROM (SELECT d.*, row_number() OVER (PARTITION BY d.event, d.recipient ORDER BY d.id) AS rank
		          FROM jsonb_to_recordset(news) d(event text, recipient bigint, owner text, id bigint, name text, customer_id bigint,
		                                          amount numeric, reason text)
		         WHERE d.recipient IS NOT NULL AND d.recipient IS DISTINCT FROM actor) x
		  JOIN crm.customer c ON c.id = x.customer_id
		 GROUP BY x.event, x.recipient, x.owner
	LOOP
		PERFORM crm.notify(ARRAY[h.recipient], h.event, m.title, m.body, 'opportunity', CASE WHEN h.n = 1 THEN h.first_id END)
		  FROM crm.notification_text(h.event, jsonb_build_object('owner', h.owner, 'count', h.n, 'items', h.items,
		                                                         'items_more', greatest(h.n - 200, 0))) m;
	END LOOP;
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER opportunity_stage_insert AFTER INSERT ON crm.opportunity
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.log_stage_changes();
CREATE OR REPLACE TRIGGER opportunity_stage_update AFTER UPDATE ON crm.opportunity
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.log_stage_changes();

-- Moving a deal by name: what an UPDATE of stage_id (and lost_reason, for a
-- lost stage) does, with a message when the deal is not there for the caller.
CREATE OR REPLACE FUNCTION crm.advance_stage(opportunity_id bigint, stage_id bigint, lost_reason text DEFAULT NULL)
RETURNS crm.opportunity LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	moved crm.opportunity;
	me    text;
BEGIN
	UPDATE crm.opportunity o SET stage_id = advance_stage.stage_id, lost_reason = coalesce(advance_stage.lost_reason, o.lost_reason)
	 WHERE o.id = advance_stage.opportunity_id RETURNING o.* INTO moved;
	IF NOT FOUND THEN
		me := coalesce((SELECT format('employee "%s"', crm.clip(e.name)) FROM crm.employee e WHERE e.id = crm.current_employee_id()), 'nobody');
		IF EXISTS (SELECT FROM crm.opportunity o WHERE o.id = advance_stage.opportunity_id) THEN
			RAISE EXCEPTION '% may not change opportunity %', me, opportunity_id
				USING ERRCODE = 'insufficient_privilege',
				      HINT = 'Its owner, someone who manages them, or an edit collaborator can; crm.explain_access(''opportunity'', id) says why not you.';
		END IF;
		RAISE EXCEPTION 'no opportunity % is visible to %', opportunity_id, me
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'SELECT id, name FROM crm.opportunity lists the deals you see.';
	END IF;
	RETURN moved;
END
$$;
COMMENT ON FUNCTION crm.advance_stage(bigint, bigint, text) IS
	'Move a deal to a stage of its set (with a lost_reason code for a lost stage), as an UPDATE of crm.opportunity does; returns the deal';

-- Closing by outcome: the set's won stage, or its first lost stage.
CREATE OR REPLACE FUNCTION crm.close_opportunity(opportunity_id bigint, won boolean, reason text DEFAULT NULL)
RETURNS crm.opportunity LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF won IS NULL THEN
		RAISE EXCEPTION 'crm.close_opportunity needs to know whether opportunity % was won', opportunity_id
			USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass won => true or won => false.';
	ELSIF won AND reason IS NOT NULL THEN
		RAISE EXCEPTION 'opportunity % is won and takes no lost reason', opportunity_id
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Leave reason out for a won deal.';
	END IF;
	RETURN crm.advance_stage(opportunity_id,
		(SELECT s.id FROM crm.opportunity o JOIN crm.stage s ON s.stage_set_id = o.stage_set_id
		  WHERE o.id = close_opportunity.opportunity_id AND s.outcome = CASE WHEN won THEN 'won' ELSE 'lost' END
		  ORDER BY s.position LIMIT 1),
		reason);
END
$$;
COMMENT ON FUNCTION crm.close_opportunity(bigint, boolean, text) IS
	'Close a deal as won (its set''s won stage) or lost (its first lost stage, with a lost_reason code); returns the deal';

-- Reopening: back to the open stage it was closed from, or the one named.
-- The C entry point (src/core/context.c) names the deal in
-- crm.reopening_opportunity, which lets crm.opportunity_write() move it out
-- of its won or lost stage; the work, as the caller, is
-- crm.reopen_opportunity_apply(), which only it calls.
CREATE OR REPLACE FUNCTION crm.reopen_opportunity(opportunity_id bigint, stage_id bigint DEFAULT NULL) RETURNS crm.opportunity
	AS 'MODULE_PATHNAME', 'crm_reopen_opportunity' LANGUAGE C;
COMMENT ON FUNCTION crm.reopen_opportunity(bigint, bigint) IS
	'Reopen a won or lost deal into the open stage it was closed from, or the one named (needs opportunity.edit on it); returns the deal';
CREATE OR REPLACE FUNCTION crm.reopen_opportunity_apply(opportunity_id bigint, stage_id bigint)
RETURNS crm.opportunity LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	deal        crm.opportunity := (SELECT o FROM crm.opportunity o WHERE o.id = reopen_opportunity_apply.opportunity_id);
	closed_from crm.stage := (SELECT s FROM crm.opportunity_stage_change c JOIN crm.stage s ON s.id = c.from_stage_id
	                           WHERE c.opportunity_id = deal.id AND c.to_stage_id = deal.stage_id AND s.outcome = 'open'
	                           ORDER BY c.changed_at DESC, c.id DESC LIMIT 1);
	target      crm.stage := (SELECT s FROM crm.stage s WHERE s.id = reopen_opportunity_apply.stage_id);
BEGIN
	IF deal.status = 'open' THEN
		RAISE EXCEPTION 'opportunity % (%) is open already', deal.id, crm.clip(deal.name)
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Move it with crm.advance_stage.';
	END IF;
	-- (a forward-only set reopens a deal where it was closed from, or later:
	-- closing and reopening is no way back)
	IF target.position < closed_from.position AND NOT (SELECT s.allow_backward FROM crm.stage_set s WHERE s.id = deal.stage_set_id) THEN
		RAISE EXCEPTION 'opportunity % (%) cannot reopen in stage "%", before "%" it was closed from', deal.id, crm.clip(deal.name),
			crm.clip(target.name), crm.clip(closed_from.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = 'Its stage set moves deals forward only.',
			      HINT = format('Reopen it in "%s" or a later stage.', crm.clip(closed_from.name));
	END IF;
	RETURN crm.advance_stage(opportunity_id,
		coalesce(target.id, closed_from.id,
		         (SELECT s.id FROM crm.stage s WHERE s.stage_set_id = deal.stage_set_id AND s.outcome = 'open'
		           ORDER BY s.position DESC LIMIT 1)));
END
$$;

-- Deleting a stage names where its deals go, in one statement: a stage of the
-- same set with the same outcome.  The deals keep their probability and their
-- time in the stage; its history counts as the stage that replaces it (win
-- rates merge, and a move between the two is no move).  crm.delete_stage() (src/access/org.c)
-- checks who asks, then runs this as the owner, so that every deal moves.
CREATE OR REPLACE FUNCTION crm.move_stage(stage_id bigint, move_to bigint) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET crm.change_source = 'system' AS $$
DECLARE
	gone   crm.stage := (SELECT s FROM crm.stage s WHERE s.id = move_stage.stage_id);
	target crm.stage := (SELECT s FROM crm.stage s WHERE s.id = move_to);
	moved  integer;
BEGIN
	IF gone.id IS NULL OR target.id IS NULL OR target.id = gone.id OR target.stage_set_id <> gone.stage_set_id
	   OR target.outcome <> gone.outcome THEN
		RAISE EXCEPTION 'the deals of stage % cannot move to stage %',
			CASE WHEN gone.id IS NULL THEN format('%s, which does not exist,', stage_id) ELSE format('"%s"', crm.clip(gone.name)) END,
			CASE WHEN target.id IS NULL THEN format('%s, which does not exist', move_to) ELSE format('"%s"', crm.clip(target.name)) END
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'They move to another stage of the same set with the same outcome (open, won or lost).',
			      HINT = CASE WHEN gone.id IS NULL THEN 'Name an existing stage (crm.stage).'
			                  ELSE format('SELECT id, name FROM crm.stage WHERE stage_set_id = %s AND outcome = %L;', gone.stage_set_id, gone.outcome) END;
	END IF;
	-- (the system's change: no rule of a move applies, and it is no move of the history)
	UPDATE crm.opportunity o SET stage_id = move_to WHERE o.stage_id = gone.id;
	GET DIAGNOSTICS moved = ROW_COUNT;
	UPDATE crm.opportunity_stage_change c SET from_stage_id = move_to WHERE c.from_stage_id = gone.id;
	UPDATE crm.opportunity_stage_change c SET to_stage_id = move_to WHERE c.to_stage_id = gone.id;
	UPDATE crm.pipeline_snapshot p SET stage_id = move_to WHERE p.stage_id = gone.id;
	-- (a move between the two stages is no move any more)
	DELETE FROM crm.opportunity_stage_change c WHERE c.from_stage_id = move_to AND c.to_stage_id = move_to;
	DELETE FROM crm.stage WHERE id = gone.id;
	RETURN moved;
END
$$;
CREATE OR REPLACE FUNCTION crm.delete_stage(stage_id bigint, move_to bigint) RETURNS integer
	AS 'MODULE_PATHNAME', 'crm_delete_stage' LANGUAGE C;
COMMENT ON FUNCTION crm.delete_stage(bigint, bigint) IS
	'Delete a stage, moving its deals (and counting its history) to another stage of the set with the same outcome; returns how many deals moved';

-- A stage in use goes only through crm.delete_stage.
CREATE OR REPLACE FUNCTION crm.guard_stage_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.stage'::regclass THEN RAISE 'crm.guard_stage_delete() runs only on crm.stage, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF EXISTS (SELECT FROM crm.opportunity o WHERE o.stage_id = OLD.id)
	   OR EXISTS (SELECT FROM crm.opportunity_stage_change c WHERE c.to_stage_id = OLD.id OR c.from_stage_id = OLD.id)
	   OR EXISTS (SELECT FROM crm.pipeline_snapshot p WHERE p.stage_id = OLD.id) THEN
		RAISE EXCEPTION 'stage "%" is in use', crm.clip(OLD.name)
			USING ERRCODE = 'foreign_key_violation',
			      DETAIL = format('%s deals are in it, and %s moves in their history (and their snapshots) name it.',
			                      (SELECT count(*) FROM crm.opportunity o WHERE o.stage_id = OLD.id),
			                      (SELECT count(*) FROM crm.opportunity_stage_change c WHERE c.to_stage_id = OLD.id OR c.from_stage_id = OLD.id)),
			      HINT = format('Use SELECT crm.delete_stage(%s, <stage its deals move to>).', OLD.id);
	END IF;
	RETURN OLD;
END
$$;
CREATE OR REPLACE TRIGGER stage_in_use BEFORE DELETE ON crm.stage
	FOR EACH ROW EXECUTE FUNCTION crm.guard_stage_delete();

-- Stage sets and stages are rules: their administrators write them, one
-- transaction at a time, so that the check at commit sees what the other
-- wrote (two deleting a set's two lost stages at once would each leave one).
-- (as the owner: crm refuses LOCK to staff, src/core/crm.c)
CREATE OR REPLACE FUNCTION crm.lock_stage_sets() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> ALL ('{crm.stage,crm.stage_set}'::regclass[]) THEN RAISE 'crm.lock_stage_sets() runs only on crm.stage, crm.stage_set, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	LOCK TABLE crm.stage_set IN SHARE ROW EXCLUSIVE MODE;
	RETURN NULL;
END
$$;
-- crm.opportunity_write() reads the sets and stages from its cache: rebuilt in
-- every backend after a change
CREATE OR REPLACE TRIGGER stage_set_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.stage_set
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
CREATE OR REPLACE TRIGGER stage_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.stage
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
-- (named to run after the administrator check)
CREATE OR REPLACE TRIGGER stage_set_serial BEFORE INSERT OR UPDATE OR DELETE ON crm.stage_set
	FOR EACH STATEMENT EXECUTE FUNCTION crm.lock_stage_sets();
CREATE OR REPLACE TRIGGER stage_serial BEFORE INSERT OR UPDATE OR DELETE ON crm.stage
	FOR EACH STATEMENT EXECUTE FUNCTION crm.lock_stage_sets();
CREATE OR REPLACE TRIGGER stage_set_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.stage_set
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('admin.rules');
CREATE OR REPLACE TRIGGER stage_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.stage
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('admin.rules');
GRANT SELECT, DELETE ON crm.stage_set, crm.stage TO crm_user;
GRANT INSERT (name, allow_backward, departments, is_default), UPDATE (name, allow_backward, departments, is_default)
	ON crm.stage_set TO crm_user;
GRANT INSERT (stage_set_id, position, name, win_rate, forecast_category, outcome),
      UPDATE (position, name, win_rate, forecast_category, outcome)
	ON crm.stage TO crm_user;
SELECT pg_catalog.pg_extension_config_dump('crm.stage_set', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('crm.stage', 'WHERE NOT builtin');
