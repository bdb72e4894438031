-- The public pool (公海, seeds 000-004): customers nobody works on wait in a
-- pool, members claim them within limits, and recycling rules send neglected
-- customers back.
--
-- A pool owns its customers through an employee row (crm.employee.is_pool)
-- whose id is the pool's id, so every policy, scope, index and check on
-- owner_id works unchanged: a pool's admins (and scope "all") see its
-- customers as records in their scope, its members browse them through
-- crm.pool_customer and crm.pool_contact with phone numbers masked.

ALTER TABLE crm.settings
	ADD COLUMN holding_limit integer,
	ADD COLUMN daily_claim_limit integer,
	ADD CONSTRAINT settings_holding_limit_check CHECK (holding_limit >= 0),
	ADD CONSTRAINT settings_daily_claim_limit_check CHECK (daily_claim_limit >= 0);
COMMENT ON COLUMN crm.settings.holding_limit IS 'Customers not yet signed an employee may hold when crm.employee.holding_limit is not set (seed 000)';
COMMENT ON COLUMN crm.settings.daily_claim_limit IS 'Customers an employee may claim from pools per day when crm.employee.daily_claim_limit is not set';

-- Times in messages, in the company's time zone whatever the session's.
CREATE OR REPLACE FUNCTION crm.local_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN (SELECT to_char(t AT TIME ZONE s.timezone, 'YYYY-MM-DD HH24:MI ') || s.timezone FROM crm.settings s);

CREATE TABLE crm.pool (
	id                     bigint NOT NULL,
	name                   text NOT NULL,
	is_default             boolean NOT NULL DEFAULT false,
	open_to_all            boolean NOT NULL DEFAULT false,
	active                 boolean NOT NULL DEFAULT true,
	mask_phones            boolean NOT NULL DEFAULT true,
	recycle_cooldown_days  integer NOT NULL DEFAULT 0,
	release_cooldown_days  integer NOT NULL DEFAULT 0,
	freeze_after_releases  integer,
	freeze_period_days     integer NOT NULL DEFAULT 30,
	freeze_days            integer NOT NULL DEFAULT 7,
	created_at             timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT pool_pkey PRIMARY KEY (id),
	CONSTRAINT pool_employee_fkey FOREIGN KEY (id) REFERENCES crm.employee (id),
	CONSTRAINT pool_name_key UNIQUE (name),
	CONSTRAINT pool_name_check CHECK (crm.check_length(name, 200, 'pool.name') AND btrim(name) <> ''),
	CONSTRAINT pool_days_check CHECK (recycle_cooldown_days >= 0 AND release_cooldown_days >= 0
	                                  AND freeze_period_days > 0 AND freeze_days > 0),
	CONSTRAINT pool_freeze_after_releases_check CHECK (freeze_after_releases > 0),
	CONSTRAINT pool_default_active CHECK (active OR NOT is_default)
);
COMMENT ON COLUMN crm.pool.id IS 'Identity: the id of the crm.employee row that owns the pool''s customers; kept by crm; not writable';
COMMENT ON COLUMN crm.pool.name IS 'Pool name; unique';
COMMENT ON COLUMN crm.pool.active IS 'Inactive pools take no customers and show none; pools are deactivated, not deleted';
COMMENT ON COLUMN crm.pool.mask_phones IS 'Members other than admins see phone numbers, mobiles and e-mails masked until they claim';
COMMENT ON COLUMN crm.pool.freeze_period_days IS 'Days over which freeze_after_releases counts releases';
COMMENT ON COLUMN crm.pool.freeze_days IS 'Days an employee may not claim from the pool once frozen';
COMMENT ON COLUMN crm.pool.created_at IS 'When the pool was created; kept by crm; not writable';
CREATE UNIQUE INDEX pool_one_default ON crm.pool (is_default) WHERE is_default;
COMMENT ON TABLE crm.pool IS 'Public pools (公海); the id is the crm.employee row that owns the pool''s customers';
COMMENT ON COLUMN crm.pool.is_default IS 'Where released and recycled customers go when nothing names another pool';
COMMENT ON COLUMN crm.pool.open_to_all IS 'Every employee is a member, as well as those crm.pool_member lists';
COMMENT ON COLUMN crm.pool.recycle_cooldown_days IS 'Days a former owner may not claim back a customer recycled from them (seed 000)';
COMMENT ON COLUMN crm.pool.release_cooldown_days IS 'Days a former owner may not claim back a customer they released (seed 000)';
COMMENT ON COLUMN crm.pool.freeze_after_releases IS 'Releases within freeze_period_days after which an employee may not claim from this pool for freeze_days (seed 002)';

-- Members and admins, by employee or by department (with its sub-departments).
CREATE TABLE crm.pool_member (
	id             bigint GENERATED ALWAYS AS IDENTITY,
	pool_id        bigint NOT NULL,
	employee_id    bigint,
	department_id  bigint,
	is_admin       boolean NOT NULL DEFAULT false,
	CONSTRAINT pool_member_pkey PRIMARY KEY (id),
	CONSTRAINT pool_member_pool_fkey FOREIGN KEY (pool_id) REFERENCES crm.pool (id) ON DELETE CASCADE,
	CONSTRAINT pool_member_employee_fkey FOREIGN KEY (employee_id) REFERENCES crm.employee (id),
	CONSTRAINT pool_member_department_fkey FOREIGN KEY (department_id) REFERENCES crm.department (id) ON DELETE CASCADE,
	CONSTRAINT pool_member_one_check CHECK ((employee_id IS NULL) <> (department_id IS NULL)),
	CONSTRAINT pool_member_key UNIQUE NULLS NOT DISTINCT (pool_id, employee_id, department_id)
);
COMMENT ON COLUMN crm.pool_member.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.pool_member.pool_id IS 'The pool (crm.pool.id)';
COMMENT ON COLUMN crm.pool_member.employee_id IS 'A member employee (crm.employee.id); or department_id';
COMMENT ON COLUMN crm.pool_member.department_id IS 'A member department (crm.department.id) with its sub-departments; or employee_id';
COMMENT ON COLUMN crm.pool_member.is_admin IS 'Admins assign the pool''s customers and see them, unmasked, as records in their scope';
CREATE INDEX pool_member_employee_idx ON crm.pool_member (employee_id);
CREATE INDEX pool_member_department_idx ON crm.pool_member (department_id);
COMMENT ON TABLE crm.pool_member IS 'Who may see and claim from a pool; is_admin: who assigns its customers and sees them unmasked';

-- Everyone's pools, computed from crm.pool and crm.pool_member.
-- security_invoker: read by staff under the tables' own policies (crm's
-- functions and views read it as the owner)
CREATE OR REPLACE VIEW crm.pool_membership WITH (security_invoker) AS
WITH RECURSIVE tree AS (
	SELECT m.pool_id, m.is_admin, m.department_id FROM crm.pool_member m WHERE m.department_id IS NOT NULL
	UNION
	SELECT t.pool_id, t.is_admin, d.id FROM tree t JOIN crm.department d ON d.parent_id = t.department_id
)
SELECT x.pool_id, x.employee_id, bool_or(x.is_admin) AS is_admin
  FROM (SELECT t.pool_id, e.id AS employee_id, t.is_admin
          FROM tree t JOIN crm.employee e ON e.department_id = t.department_id
        UNION ALL
        SELECT m.pool_id, m.employee_id, m.is_admin FROM crm.pool_member m WHERE m.employee_id IS NOT NULL
        UNION ALL
        SELECT p.id, e.id, false FROM crm.pool p JOIN crm.employee e ON NOT e.is_pool WHERE p.open_to_all) x
 GROUP BY x.pool_id, x.employee_id;
COMMENT ON VIEW crm.pool_membership IS 'Each employee''s pools, departments expanded to their sub-departments';
COMMENT ON COLUMN crm.pool_membership.pool_id IS 'The pool (crm.pool.id)';
COMMENT ON COLUMN crm.pool_membership.employee_id IS 'A member (crm.employee.id)';
COMMENT ON COLUMN crm.pool_membership.is_admin IS 'Whether the employee administers the pool';

-- A pool's employee row is made with it, follows its name and active flag,
-- and outlives it never: pools are deactivated, not deleted.
CREATE OR REPLACE FUNCTION crm.pool_holder() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.pool'::regclass THEN RAISE 'crm.pool_holder() runs only on crm.pool, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF TG_OP = 'DELETE' THEN
		RAISE EXCEPTION 'pool % (%) cannot be deleted', OLD.id, crm.clip(OLD.name)
			USING ERRCODE = 'restrict_violation',
			      DETAIL = 'A pool''s history names it, like an employee''s.',
			      HINT = format('Deactivate it instead: UPDATE crm.pool SET active = false WHERE id = %s.', OLD.id);
	END IF;
	-- before the pool's employee row takes the name, so that the error names the pool's column
	PERFORM crm.check_length(NEW.name, 200, 'pool.name');
	IF TG_OP = 'INSERT' THEN
		IF NEW.id IS NULL THEN
			INSERT INTO crm.employee (name, department_id, is_pool, in_statistics, active)
			VALUES (NEW.name, NULL, true, false, NEW.active) RETURNING id INTO NEW.id;
		ELSIF NOT EXISTS (SELECT FROM crm.employee WHERE id = NEW.id AND is_pool) THEN
			RAISE EXCEPTION 'pool % (%) needs an employee row made for a pool', NEW.id, crm.clip(NEW.name)
				USING ERRCODE = 'foreign_key_violation',
				      HINT = 'Leave crm.pool.id out: inserting a pool makes its row.';
		END IF;
		RETURN NEW;
	END IF;
	IF NEW.id <> OLD.id THEN
		RAISE EXCEPTION 'pool % (%) cannot change its id', OLD.id, crm.clip(OLD.name) USING ERRCODE = 'check_violation';
	END IF;
	IF OLD.active AND NOT NEW.active AND EXISTS (SELECT FROM crm.customer WHERE owner_id = OLD.id) THEN
		RAISE EXCEPTION 'pool % (%) still holds customers', OLD.id, crm.clip(OLD.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Assign or move its customers to another pool first.';
	END IF;
	UPDATE crm.employee SET name = NEW.name, active = NEW.active
	 WHERE id = NEW.id AND (name, active) IS DISTINCT FROM (NEW.name, NEW.active);
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER pool_holder BEFORE INSERT OR UPDATE OR DELETE ON crm.pool
	FOR EACH ROW EXECUTE FUNCTION crm.pool_holder();

-- A pool's employee row changes with its pool, never by itself.
CREATE OR REPLACE FUNCTION crm.guard_pool_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.employee'::regclass THEN RAISE 'crm.guard_pool_row() runs only on crm.employee, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF NOT OLD.is_pool THEN
		RAISE EXCEPTION 'employee % (%) cannot become a pool''s row', OLD.id, crm.clip(OLD.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Insert a crm.pool row: it makes its own.';
	END IF;
	RAISE EXCEPTION 'employee % is the row of pool "%"', OLD.id, crm.clip(OLD.name)
		USING ERRCODE = 'object_not_in_prerequisite_state',
		      HINT = format('Change the pool instead: UPDATE crm.pool SET ... WHERE id = %s.', OLD.id);
END
$$;
CREATE OR REPLACE TRIGGER employee_pool_row BEFORE UPDATE ON crm.employee
	FOR EACH ROW WHEN ((OLD.is_pool OR NEW.is_pool) AND pg_trigger_depth() = 0)
	EXECUTE FUNCTION crm.guard_pool_row();

CREATE OR REPLACE FUNCTION crm.check_pool_member() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.pool_member'::regclass THEN RAISE 'crm.check_pool_member() runs only on crm.pool_member, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF EXISTS (SELECT FROM crm.employee WHERE id = NEW.employee_id AND is_pool) THEN
		RAISE EXCEPTION 'pool % cannot have pool % as a member', NEW.pool_id, NEW.employee_id
			USING ERRCODE = 'check_violation', HINT = 'Members are people or departments.';
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER pool_member_valid BEFORE INSERT OR UPDATE ON crm.pool_member
	FOR EACH ROW EXECUTE FUNCTION crm.check_pool_member();
-- an administrator does not make themselves a pool's member or admin (src/sql/35_access.sql)
CREATE OR REPLACE TRIGGER pool_member_guard_own BEFORE INSERT OR UPDATE OR DELETE ON crm.pool_member
	FOR EACH ROW EXECUTE FUNCTION crm.guard_own_access();
CREATE OR REPLACE TRIGGER pool_guard_own BEFORE INSERT OR UPDATE OF open_to_all ON crm.pool
	FOR EACH ROW EXECUTE FUNCTION crm.guard_own_access();

DO $org$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['pool', 'pool_member'] LOOP
		EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE INSERT OR UPDATE OR DELETE ON crm.%I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin(''admin.rules'')', t || '_require_admin', t);
		-- pool admins' scopes are part of the cached organisation (src/access/scope.c)
		EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.%I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.org_changed()', t || '_org_changed', t);
		EXECUTE format('ALTER TABLE crm.%I ENABLE ALWAYS TRIGGER %I', t, t || '_org_changed');
		EXECUTE format('GRANT SELECT, DELETE ON crm.%I TO crm_user', t);
	END LOOP;
END
$org$;
-- a pool's id is its employee row's, which crm.pool_holder makes
GRANT INSERT (name, is_default, open_to_all, active, mask_phones, recycle_cooldown_days, release_cooldown_days,
              freeze_after_releases, freeze_period_days, freeze_days),
      UPDATE (name, is_default, open_to_all, active, mask_phones, recycle_cooldown_days, release_cooldown_days,
              freeze_after_releases, freeze_period_days, freeze_days)
	ON crm.pool TO crm_user;
GRANT INSERT (pool_id, employee_id, department_id, is_admin), UPDATE (pool_id, employee_id, department_id, is_admin)
	ON crm.pool_member TO crm_user;
GRANT SELECT ON crm.pool_membership TO crm_user;
GRANT UPDATE (holding_limit, daily_claim_limit, timezone) ON crm.settings TO crm_user;

-- The default pool, made when first needed (a release or recycling with no
-- pool named), so that a restore never meets a second one.
CREATE OR REPLACE FUNCTION crm.default_pool() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pool bigint;
BEGIN
	SELECT id INTO pool FROM crm.pool WHERE is_default;
	IF NOT FOUND THEN
		INSERT INTO crm.pool (name, is_default, open_to_all) VALUES ('公海', true, true)
		ON CONFLICT (is_default) WHERE is_default DO NOTHING;
		SELECT id INTO pool FROM crm.pool WHERE is_default;
	END IF;
	RETURN pool;
END
$$;

INSERT INTO crm.dictionary (kind, code, label, position, builtin)
SELECT 'pool_release_reason', code, label, n, true
  FROM unnest('{no_need,no_budget,unreachable,competitor,duplicate,other}'::text[],
              '{暂无需求,预算不足,联系不上,已选竞品,重复客户,其他}'::text[]) WITH ORDINALITY AS v(code, label, n);

INSERT INTO crm.notification_event (event, description) VALUES
	('pool.assigned',       'A pool admin assigned you a customer from a public pool'),
	('pool.recycled',       'Customers of yours were recycled to a public pool'),
	('pool.recycle_soon',   'Customers of yours will be recycled to a public pool soon');

-- Each customer's recycling clock, beside the customer row: updating it must
-- not rewrite the customer (its many indexes).  A customer
-- gets a row once it has a deadline or a new owner or status; until then it
-- has been owned and in its status since it was created, so that inserting
-- customers while no rule is enabled costs nothing here.
CREATE TABLE crm.customer_recycling (
	customer_id   bigint NOT NULL,
	owned_since   timestamptz NOT NULL,
	status_since  timestamptz NOT NULL,
	recycle_at    timestamptz,
	rule_id       bigint,
	reminded_for  timestamptz,
	CONSTRAINT customer_recycling_pkey PRIMARY KEY (customer_id),
	CONSTRAINT customer_recycling_customer_fkey FOREIGN KEY (customer_id) REFERENCES crm.customer (id) ON DELETE CASCADE
);
COMMENT ON COLUMN crm.customer_recycling.customer_id IS 'The customer (crm.customer.id); kept by crm; not writable';
COMMENT ON COLUMN crm.customer_recycling.status_since IS 'Since when the customer is in its current status; kept by crm; not writable';
COMMENT ON COLUMN crm.customer_recycling.recycle_at IS 'When the customer goes back to a pool; NULL: no rule applies; kept by crm; not writable';
COMMENT ON COLUMN crm.customer_recycling.rule_id IS 'The recycling rule (crm.recycle_rule.id) that sets recycle_at; kept by crm; not writable';
CREATE INDEX customer_recycling_due_idx ON crm.customer_recycling (recycle_at) WHERE recycle_at IS NOT NULL;
COMMENT ON TABLE crm.customer_recycling IS 'When each customer goes back to a pool (recycle_at) and under which rule; kept by triggers. No row: owned and in its status since it was created, no deadline';
COMMENT ON COLUMN crm.customer_recycling.owned_since IS 'When the current owner got the customer';
COMMENT ON COLUMN crm.customer_recycling.reminded_for IS 'The deadline the owner was last reminded of (reminders are sent once per deadline)';
ALTER TABLE crm.customer_recycling ENABLE ROW LEVEL SECURITY;
CREATE POLICY customer_recycling_visible ON crm.customer_recycling FOR SELECT TO crm_user
	USING (EXISTS (SELECT FROM crm.customer c WHERE c.id = customer_id));
GRANT SELECT ON crm.customer_recycling TO crm_user;

-- Time spent in each earlier status under the current owner (no_deal rules
-- leave out time in their exempt statuses).
CREATE TABLE crm.customer_status_time (
	customer_id  bigint NOT NULL,
	status_id    bigint NOT NULL,
	spent        interval NOT NULL,
	CONSTRAINT customer_status_time_pkey PRIMARY KEY (customer_id, status_id),
	CONSTRAINT customer_status_time_customer_fkey FOREIGN KEY (customer_id) REFERENCES crm.customer (id) ON DELETE CASCADE
);
COMMENT ON TABLE crm.customer_status_time IS 'Time each customer spent in each earlier status under its current owner, for no_deal rules (crm''s own)';
COMMENT ON COLUMN crm.customer_status_time.customer_id IS 'The customer (crm.customer.id); kept by crm; not writable';
COMMENT ON COLUMN crm.customer_status_time.status_id IS 'The status (crm.customer_status.id); kept by crm; not writable';
COMMENT ON COLUMN crm.customer_status_time.spent IS 'Time spent in the status under the current owner; kept by crm; not writable';
ALTER TABLE crm.customer_status_time ENABLE ROW LEVEL SECURITY;

-- Recycling rules (seeds 000, 002).
CREATE TABLE crm.recycle_rule (
	id                   bigint GENERATED ALWAYS AS IDENTITY,
	name                 text NOT NULL,
	kind                 text NOT NULL,
	days                 integer NOT NULL,
	pool_id              bigint,
	status_ids           bigint[] NOT NULL DEFAULT '{}',
	exempt_status_ids    bigint[] NOT NULL DEFAULT '{}',
	department_ids       bigint[] NOT NULL DEFAULT '{}',
	employee_ids         bigint[] NOT NULL DEFAULT '{}',
	exempt_employee_ids  bigint[] NOT NULL DEFAULT '{}',
	include_won          boolean NOT NULL DEFAULT false,
	remind_days_before   integer NOT NULL DEFAULT 0,
	enabled              boolean NOT NULL DEFAULT true,
	CONSTRAINT recycle_rule_pkey PRIMARY KEY (id),
	CONSTRAINT recycle_rule_pool_fkey FOREIGN KEY (pool_id) REFERENCES crm.pool (id),
	CONSTRAINT recycle_rule_name_key UNIQUE (name),
	CONSTRAINT recycle_rule_name_length CHECK (crm.check_length(name, 200, 'recycle_rule.name')),
	CONSTRAINT recycle_rule_kind_check CHECK (kind IN ('no_follow_up', 'no_deal')),
	CONSTRAINT recycle_rule_days_check CHECK (days > 0),
	CONSTRAINT recycle_rule_remind_check CHECK (remind_days_before >= 0 AND remind_days_before < days)
);
COMMENT ON COLUMN crm.recycle_rule.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.recycle_rule.name IS 'Rule name people see in reminders; unique';
COMMENT ON COLUMN crm.recycle_rule.kind IS 'no_follow_up (days without a follow-up) or no_deal (days owned without signing)';
COMMENT ON COLUMN crm.recycle_rule.days IS 'Days until the customer goes back to a pool';
COMMENT ON COLUMN crm.recycle_rule.status_ids IS 'no_follow_up: only customers in these statuses (crm.customer_status.id); empty: all';
COMMENT ON COLUMN crm.recycle_rule.exempt_status_ids IS 'no_deal: time in these statuses does not count (the clock stops while in one)';
COMMENT ON COLUMN crm.recycle_rule.employee_ids IS 'Owners the rule applies to, by employee (crm.employee.id); see department_ids';
COMMENT ON COLUMN crm.recycle_rule.exempt_employee_ids IS 'Owners the rule never applies to';
COMMENT ON COLUMN crm.recycle_rule.enabled IS 'Whether the rule applies';
CREATE INDEX recycle_rule_pool_idx ON crm.recycle_rule (pool_id);
COMMENT ON TABLE crm.recycle_rule IS 'When customers go back to a pool: no_follow_up (N days without a follow-up while in status_ids) or no_deal (N days owned without signing, not counting exempt statuses)';
COMMENT ON COLUMN crm.recycle_rule.pool_id IS 'Where the rule sends customers; NULL: the default pool';
COMMENT ON COLUMN crm.recycle_rule.department_ids IS 'Owners the rule applies to, by department (with sub-departments) or employee_ids; both empty: everyone';
COMMENT ON COLUMN crm.recycle_rule.include_won IS 'Whether signed customers (the final status) are recycled too (no_follow_up only)';
COMMENT ON COLUMN crm.recycle_rule.remind_days_before IS 'Days before the deadline the owner is reminded, once per deadline (0: never)';

CREATE OR REPLACE FUNCTION crm.check_recycle_rule() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	bad bigint[];
BEGIN
	IF TG_RELID <> 'crm.recycle_rule'::regclass THEN RAISE 'crm.check_recycle_rule() runs only on crm.recycle_rule, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF NEW.days IS NOT NULL AND NEW.days <= 0 THEN
		RAISE EXCEPTION 'recycling rule "%" needs a positive number of days, not %', crm.clip(NEW.name), NEW.days
			USING ERRCODE = 'check_violation', HINT = 'Give days > 0; disable the rule (enabled = false) to stop it.';
	END IF;
	IF NEW.remind_days_before < 0 OR NEW.remind_days_before >= NEW.days THEN
		RAISE EXCEPTION 'recycling rule "%" reminds % days before a deadline of % days', crm.clip(NEW.name), NEW.remind_days_before, NEW.days
			USING ERRCODE = 'check_violation', HINT = 'Give remind_days_before from 0 (no reminder) to days - 1.';
	END IF;
	bad := ARRAY(SELECT s FROM unnest(NEW.status_ids || NEW.exempt_status_ids) s
	              WHERE NOT EXISTS (SELECT FROM crm.customer_status t WHERE t.id = s));
	IF bad <> '{}' THEN
		RAISE EXCEPTION 'recycling rule "%" names unknown customer statuses %', crm.clip(NEW.name), crm.clip(bad::text)
			USING ERRCODE = 'foreign_key_violation', HINT = 'Name statuses of crm.customer_status.';
	END IF;
	IF NEW.kind = 'no_deal' AND NEW.status_ids <> '{}' OR NEW.kind = 'no_follow_up' AND NEW.exempt_status_ids <> '{}' THEN
		RAISE EXCEPTION 'recycling rule "%" of kind % cannot have %', crm.clip(NEW.name), NEW.kind,
			CASE NEW.kind WHEN 'no_deal' THEN 'status_ids' ELSE 'exempt_status_ids' END
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'no_follow_up rules watch status_ids; no_deal rules leave out time in exempt_status_ids.';
	END IF;
	bad := ARRAY(SELECT d FROM unnest(NEW.department_ids) d WHERE NOT EXISTS (SELECT FROM crm.department t WHERE t.id = d));
	IF bad <> '{}' THEN
		RAISE EXCEPTION 'recycling rule "%" names unknown departments %', crm.clip(NEW.name), crm.clip(bad::text)
			USING ERRCODE = 'foreign_key_violation', HINT = 'Name departments of crm.department.';
	END IF;
	bad := ARRAY(SELECT e FROM unnest(NEW.employee_ids || NEW.exempt_employee_ids) e
	              WHERE NOT EXISTS (SELECT FROM crm.employee t WHERE t.id = e AND NOT t.is_pool));
	IF bad <> '{}' THEN
		RAISE EXCEPTION 'recycling rule "%" names unknown employees %', crm.clip(NEW.name), crm.clip(bad::text)
			USING ERRCODE = 'foreign_key_violation', HINT = 'Name employees of crm.employee.';
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER recycle_rule_valid BEFORE INSERT OR UPDATE ON crm.recycle_rule
	FOR EACH ROW EXECUTE FUNCTION crm.check_recycle_rule();
CREATE OR REPLACE TRIGGER recycle_rule_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.recycle_rule
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('admin.rules');
GRANT SELECT, DELETE ON crm.recycle_rule TO crm_user;
GRANT INSERT (name, kind, days, pool_id, status_ids, exempt_status_ids, department_ids, employee_ids,
              exempt_employee_ids, include_won, remind_days_before, enabled),
      UPDATE (name, kind, days, pool_id, status_ids, exempt_status_ids, department_ids, employee_ids,
              exempt_employee_ids, include_won, remind_days_before, enabled)
	ON crm.recycle_rule TO crm_user;

-- The employees a rule applies to.
CREATE OR REPLACE FUNCTION crm.recycle_rule_employees(department_ids bigint[], employee_ids bigint[], exempt bigint[])
	RETURNS TABLE (employee_id bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
	WITH RECURSIVE tree AS (
		SELECT unnest(department_ids) AS id
		UNION
		SELECT d.id FROM tree t JOIN crm.department d ON d.parent_id = t.id
	)
	SELECT e.id FROM crm.employee e
	 WHERE NOT e.is_pool AND NOT e.id = ANY (exempt)
	   AND (cardinality(department_ids) = 0 AND cardinality(employee_ids) = 0
	        OR e.id = ANY (employee_ids) OR e.department_id IN (SELECT id FROM tree))
$$;
COMMENT ON FUNCTION crm.recycle_rule_employees(bigint[], bigint[], bigint[]) IS 'The employees a recycling rule applies to: those of the departments (with sub-departments) and the employees listed, less the exempt';

-- The one definition of when a customer goes back to a pool: the earliest
-- deadline of the enabled rules that apply to its owner.  Locked customers,
-- pool customers and signed ones (unless a no_follow_up rule includes them)
-- have none.  Filter on customer_id or owner_id: both reach the customer scan.
CREATE OR REPLACE VIEW crm.recycle_deadline AS
WITH applies AS (
	SELECT r.id AS rule_id, r.kind, r.days, r.status_ids, r.exempt_status_ids, r.include_won, x.employee_id
	  FROM crm.recycle_rule r
	 CROSS JOIN LATERAL crm.recycle_rule_employees(r.department_ids, r.employee_ids, r.exempt_employee_ids) x
	 WHERE r.enabled
)
SELECT DISTINCT ON (c.id, c.owner_id) c.id AS customer_id, c.owner_id, a.rule_id,
       k.customer_id IS NOT NULL AS kept, coalesce(k.owned_since, c.created_at) AS owned_since,
       coalesce(k.status_since, c.created_at) AS status_since,
       CASE a.kind
       WHEN 'no_follow_up' THEN greatest(c.last_follow_up_at, coalesce(k.owned_since, c.created_at)) + make_interval(days => a.days)
       WHEN 'no_deal' THEN coalesce(k.owned_since, c.created_at) + make_interval(days => a.days)
            + CASE WHEN a.exempt_status_ids = '{}' THEN interval '0'
                   ELSE coalesce((SELECT sum(t.spent) FROM crm.customer_status_time t
                                   WHERE t.customer_id = c.id AND t.status_id = ANY (a.exempt_status_ids)), interval '0') END
       END AS recycle_at
  FROM crm.customer c
  JOIN crm.customer_status s ON s.id = c.status_id
  LEFT JOIN crm.customer_recycling k ON k.customer_id = c.id
  LEFT JOIN applies a ON a.employee_id = c.owner_id AND NOT c.locked
        AND CASE a.kind
            WHEN 'no_follow_up' THEN (a.status_ids = '{}' OR c.status_id = ANY (a.status_ids)) AND (a.include_won OR s.outcome IS DISTINCT FROM 'won')
            ELSE s.outcome IS DISTINCT FROM 'won' AND NOT c.status_id = ANY (a.exempt_status_ids) END
 ORDER BY c.id, c.owner_id, recycle_at NULLS LAST;
COMMENT ON VIEW crm.recycle_deadline IS 'When each customer is due back in a pool and by which rule, computed now; crm.customer_recycling keeps it';
COMMENT ON COLUMN crm.recycle_deadline.customer_id IS 'The customer (crm.customer.id)';
COMMENT ON COLUMN crm.recycle_deadline.owner_id IS 'Its owner (crm.employee.id)';
COMMENT ON COLUMN crm.recycle_deadline.rule_id IS 'The rule (crm.recycle_rule.id) with the earliest deadline';
COMMENT ON COLUMN crm.recycle_deadline.kept IS 'Whether crm.customer_recycling has a row for the customer';
COMMENT ON COLUMN crm.recycle_deadline.owned_since IS 'Since when the owner holds it';
COMMENT ON COLUMN crm.recycle_deadline.status_since IS 'Since when it is in its status';
COMMENT ON COLUMN crm.recycle_deadline.recycle_at IS 'When it goes back to a pool';

-- Bring the kept deadlines of these customers (or of these owners' customers)
-- up to date: one pass over the view, updating the rows there are and adding
-- those a customer without one now needs.
CREATE OR REPLACE FUNCTION crm.recompute_recycling(customer_ids bigint[], owner_ids bigint[] DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
	n bigint;
BEGIN
	WITH d AS MATERIALIZED (
		SELECT * FROM crm.recycle_deadline d
		 WHERE d.customer_id = ANY (customer_ids) OR d.owner_id = ANY (owner_ids)
	), kept AS (
		UPDATE crm.customer_recycling k SET recycle_at = d.recycle_at, rule_id = d.rule_id
		  FROM d
		 WHERE d.kept AND k.customer_id = d.customer_id
		   AND (k.recycle_at, k.rule_id) IS DISTINCT FROM (d.recycle_at, d.rule_id)
		RETURNING 1
	), added AS (
		INSERT INTO crm.customer_recycling (customer_id, owned_since, status_since, recycle_at, rule_id)
		SELECT d.customer_id, d.owned_since, d.status_since, d.recycle_at, d.rule_id
		  FROM d WHERE NOT d.kept AND d.recycle_at IS NOT NULL
		RETURNING 1
	)
	SELECT (SELECT count(*) FROM kept) + (SELECT count(*) FROM added) INTO n;
	RETURN n;
END
$$;

-- New customers get a deadline when a rule applies.  (A restore brings the
-- clocks with it.)
CREATE OR REPLACE FUNCTION crm.customer_clock_start() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.customer'::regclass THEN RAISE 'crm.customer_clock_start() runs only on crm.customer, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF NOT crm.restoring() AND EXISTS (SELECT FROM crm.recycle_rule WHERE enabled) THEN
		PERFORM crm.recompute_recycling(ARRAY(SELECT id FROM new_rows));
	END IF;
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER customer_clock_start AFTER INSERT ON crm.customer
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION crm.customer_clock_start();

-- Changes of owner, status, lock or last follow-up move the clock.  An owner
-- change into or out of a pool takes the contacts along; every owner change
-- is written to the owner history: crm.owner_change says what it was
-- (the pool's functions set it); without it, a change out of a pool is an
-- assignment, one into a pool a release, any other a transfer.
CREATE OR REPLACE FUNCTION crm.customer_clock_move() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
	labelled   text := nullif(current_setting('crm.owner_change'), '');
	why        text := nullif(current_setting('crm.owner_change_reason'), '');
	pools      bigint[] := ARRAY(SELECT id FROM crm.pool);
	changed    bigint[];	-- owner, status, lock or last follow-up changed, and not into a pool
	moved      bigint[];	-- owner changed; with from_owner and to_owner
	from_owner bigint[];
	to_owner   bigint[];
	restatus   bigint[];	-- status changed, owner kept; with old_status
	old_status bigint[];
	actor      bigint;
BEGIN
	IF TG_RELID <> 'crm.customer'::regclass THEN RAISE 'crm.customer_clock_move() runs only on crm.customer, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	-- the transition tables are read once, into arrays
	SELECT array_agg(n.id) FILTER (WHERE n.owner_id <> ALL (pools)),
	       array_agg(n.id) FILTER (WHERE n.owner_id <> o.owner_id),
	       array_agg(o.owner_id) FILTER (WHERE n.owner_id <> o.owner_id),
	       array_agg(n.owner_id) FILTER (WHERE n.owner_id <> o.owner_id),
	       array_agg(n.id) FILTER (WHERE n.owner_id = o.owner_id AND n.status_id <> o.status_id),
	       array_agg(o.status_id) FILTER (WHERE n.owner_id = o.owner_id AND n.status_id <> o.status_id)
	  INTO changed, moved, from_owner, to_owner, restatus, old_status
	  FROM new_rows n JOIN old_rows o ON o.id = n.id
	 WHERE (n.owner_id, n.status_id, n.locked, n.last_follow_up_at) IS DISTINCT FROM
	       (o.owner_id, o.status_id, o.locked, o.last_follow_up_at);

	IF moved IS NOT NULL THEN
		actor := crm.invoking_employee_id();
		INSERT INTO crm.customer_owner_change (customer_id, kind, from_owner, to_owner, pool_id, rule_id, reason, changed_by)
		SELECT m.id, x.kind, m.from_owner, m.to_owner,
		       CASE WHEN m.to_owner = ANY (pools) THEN m.to_owner WHEN m.from_owner = ANY (pools) THEN m.from_owner END,
		       CASE WHEN x.kind = 'recycle' THEN r.id END,
		       CASE WHEN x.kind = 'recycle' THEN r.reason ELSE why END,
		       actor
		  FROM unnest(moved, from_owner, to_owner) AS m(id, from_owner, to_owner)
		  -- (a look-up per customer: a join hashed every clock, 600,000 of
		  -- them, for each batch of the recycling job)
		  LEFT JOIN (SELECT r.id, crm.describe_recycle_rule(r) AS reason FROM crm.recycle_rule r) r
		         ON r.id = (SELECT k.rule_id FROM crm.customer_recycling k WHERE k.customer_id = m.id)
		 CROSS JOIN LATERAL (SELECT coalesce(labelled, CASE WHEN m.from_owner = ANY (pools) THEN 'assign'
		                                                 WHEN m.to_owner = ANY (pools) THEN 'release' ELSE 'transfer' END) AS kind) x;
		-- into or out of a pool, contacts go with their customer, and a pool
		-- customer is nobody's to share.  Every trigger on contacts sees the
		-- move: crm's own stamp it and leave it out of the operation log
		-- (the owner history has it), a DBA's run as usual.
		UPDATE crm.contact k SET owner_id = m.to_owner
		  FROM unnest(moved, from_owner, to_owner) AS m(id, from_owner, to_owner)
		 WHERE k.customer_id = m.id AND k.owner_id <> m.to_owner
		   AND (m.to_owner = ANY (pools) OR m.from_owner = ANY (pools));
		IF EXISTS (SELECT FROM crm.team_member WHERE record_type = 'customer') THEN
			DELETE FROM crm.team_member t USING unnest(moved, to_owner) AS m(id, to_owner)
			 WHERE t.record_type = 'customer' AND t.record_id = m.id AND m.to_owner = ANY (pools);
		END IF;
		-- a new owner starts afresh (the deadline follows below; a pool has none)
		IF EXISTS (SELECT FROM crm.customer_status_time) THEN
			DELETE FROM crm.customer_status_time WHERE customer_id = ANY (moved);
		END IF;
		INSERT INTO crm.customer_recycling AS k (customer_id, owned_since, status_since)
		SELECT m.id, now(), now() FROM unnest(moved, to_owner) AS m(id, to_owner)
		ON CONFLICT (customer_id) DO UPDATE
		   SET owned_since = now(), status_since = now(), reminded_for = NULL, recycle_at = NULL, rule_id = NULL;
	END IF;
	-- a kept customer that changed status banks the time spent in the old one
	IF restatus IS NOT NULL THEN
		INSERT INTO crm.customer_status_time AS t (customer_id, status_id, spent)
		SELECT m.id, m.status_id, now() - coalesce(k.status_since, c.created_at)
		  FROM unnest(restatus, old_status) AS m(id, status_id)
		  JOIN crm.customer c ON c.id = m.id
		  LEFT JOIN crm.customer_recycling k ON k.customer_id = m.id
		ON CONFLICT (customer_id, status_id) DO UPDATE SET spent = t.spent + excluded.spent;
		INSERT INTO crm.customer_recycling AS k (customer_id, owned_since, status_since)
		SELECT c.id, c.created_at, now() FROM crm.customer c WHERE c.id = ANY (restatus)
		ON CONFLICT (customer_id) DO UPDATE SET status_since = now();
	END IF;

	IF changed IS NOT NULL THEN
		PERFORM crm.recompute_recycling(changed);
	END IF;
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER customer_clock_move AFTER UPDATE ON crm.customer
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION crm.customer_clock_move();

CREATE OR REPLACE FUNCTION crm.describe_recycle_rule(r crm.recycle_rule) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
RETURN format('%s: %s', crm.clip(r.name), CASE r.kind WHEN 'no_follow_up' THEN format('%s days without a follow-up', r.days)
                                            ELSE format('%s days without signing', r.days) END);
COMMENT ON FUNCTION crm.describe_recycle_rule(crm.recycle_rule) IS 'A recycling rule in words, as reminders and crm.customers_due_for_recycling give it';

-- A rule edit recomputes, in one statement, the customers of every owner the
-- rule applied to before or applies to now.
CREATE OR REPLACE FUNCTION crm.recycle_rule_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owners bigint[];
BEGIN
	IF TG_RELID <> 'crm.recycle_rule'::regclass THEN RAISE 'crm.recycle_rule_changed() runs only on crm.recycle_rule, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	IF TG_OP = 'INSERT' THEN
		owners := ARRAY(SELECT DISTINCT x.employee_id FROM new_rules r,
		                LATERAL crm.recycle_rule_employees(r.department_ids, r.employee_ids, '{}') x);
	ELSIF TG_OP = 'UPDATE' THEN
		owners := ARRAY(SELECT DISTINCT x.employee_id
		                  FROM (SELECT * FROM old_rules UNION ALL SELECT * FROM new_rules) r,
		                LATERAL crm.recycle_rule_employees(r.department_ids, r.employee_ids, '{}') x);
	ELSE
		owners := ARRAY(SELECT DISTINCT x.employee_id FROM old_rules r,
		                LATERAL crm.recycle_rule_employees(r.department_ids, r.employee_ids, '{}') x);
	END IF;
	PERFORM crm.recompute_recycling(NULL, owners);
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER recycle_rule_inserted AFTER INSERT ON crm.recycle_rule
	REFERENCING NEW TABLE AS new_rules FOR EACH STATEMENT EXECUTE FUNCTION crm.recycle_rule_changed();
CREATE OR REPLACE TRIGGER recycle_rule_updated AFTER UPDATE ON crm.recycle_rule
	REFERENCING OLD TABLE AS old_rules NEW TABLE AS new_rules FOR EACH STATEMENT EXECUTE FUNCTION crm.recycle_rule_changed();
CREATE OR REPLACE TRIGGER recycle_rule_deleted AFTER DELETE ON crm.recycle_rule
	REFERENCING OLD TABLE AS old_rules FOR EACH STATEMENT EXECUTE FUNCTION crm.recycle_rule_changed();

-- Rules name departments: an employee who moves, or a department that moves,
-- may fall under other rules.  Once per statement, however many rows it
-- moves: the employees who moved, or those in the moved departments' trees
-- (no one else's chain of departments changed).
CREATE OR REPLACE FUNCTION crm.org_moved_recycling() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owners bigint[];
BEGIN
	IF TG_RELID <> ALL ('{crm.department,crm.employee}'::regclass[]) THEN RAISE 'crm.org_moved_recycling() runs only on crm.department, crm.employee, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() OR NOT EXISTS (SELECT FROM crm.recycle_rule WHERE enabled AND department_ids <> '{}') THEN
		RETURN NULL;
	END IF;
	IF TG_TABLE_NAME = 'employee' THEN
		owners := ARRAY(SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
		                 WHERE n.department_id IS DISTINCT FROM o.department_id);
	ELSE
		owners := ARRAY(WITH RECURSIVE tree AS (
		                	SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
		                	 WHERE n.parent_id IS DISTINCT FROM o.parent_id
		                	UNION
		                	SELECT d.id FROM tree t JOIN crm.department d ON d.parent_id = t.id
		                )
		                SELECT e.id FROM crm.employee e WHERE NOT e.is_pool AND e.department_id IN (SELECT id FROM tree));
	END IF;
	IF owners <> '{}' THEN
		PERFORM crm.recompute_recycling(NULL, owners);
	END IF;
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER employee_moved_recycling AFTER UPDATE ON crm.employee
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION crm.org_moved_recycling();
CREATE OR REPLACE TRIGGER department_moved_recycling AFTER UPDATE ON crm.department
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION crm.org_moved_recycling();

-- Members browse a pool here: phone numbers and e-mail addresses are masked
-- (unless the pool says not to, or the member is its admin) until claimed.
CREATE OR REPLACE FUNCTION crm.mask_phone(phone text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN length(phone) >= 8 THEN left(phone, 3) || repeat('*', length(phone) - 7) || right(phone, 4)
            ELSE regexp_replace(phone, '.', '*', 'g') END;
COMMENT ON FUNCTION crm.mask_phone(text) IS 'A phone number as pool members see it: its first 3 and last 4 digits';
CREATE OR REPLACE FUNCTION crm.mask_email(email text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN left(email, 1) || '***' || substr(email, strpos(email, '@'));
COMMENT ON FUNCTION crm.mask_email(text) IS 'An e-mail address as pool members see it: its first character, ***, and the domain';

CREATE OR REPLACE VIEW crm.pool_customer WITH (security_barrier) AS
SELECT c.id, c.name, c.kind, p.id AS pool_id, p.name AS pool_name,
       CASE WHEN p.mask_phones AND NOT m.is_admin THEN crm.mask_phone(c.phone) ELSE c.phone END AS phone,
       c.uscc, c.industry, c.source, c.level, c.status_id, c.last_follow_up_at,
       coalesce(k.owned_since, c.created_at) AS in_pool_since, c.created_at
  FROM crm.pool_membership m
  JOIN crm.pool p ON p.id = m.pool_id AND p.active
  JOIN crm.customer c ON c.owner_id = p.id
  LEFT JOIN crm.customer_recycling k ON k.customer_id = c.id
 WHERE m.employee_id = crm.current_employee_id();
COMMENT ON VIEW crm.pool_customer IS 'The customers of my pools, phone numbers masked until claimed';
COMMENT ON COLUMN crm.pool_customer.id IS 'Customer id';
COMMENT ON COLUMN crm.pool_customer.name IS 'Customer name';
COMMENT ON COLUMN crm.pool_customer.kind IS 'company or individual';
COMMENT ON COLUMN crm.pool_customer.pool_id IS 'The pool (crm.pool.id)';
COMMENT ON COLUMN crm.pool_customer.pool_name IS 'The pool''s name';
COMMENT ON COLUMN crm.pool_customer.phone IS 'Phone, masked unless the pool shows it';
COMMENT ON COLUMN crm.pool_customer.uscc IS 'Unified social credit code';
COMMENT ON COLUMN crm.pool_customer.industry IS 'Code of dictionary industry';
COMMENT ON COLUMN crm.pool_customer.source IS 'Code of dictionary customer_source';
COMMENT ON COLUMN crm.pool_customer.level IS 'Code of dictionary customer_level';
COMMENT ON COLUMN crm.pool_customer.status_id IS 'Follow-up status (crm.customer_status.id)';
COMMENT ON COLUMN crm.pool_customer.last_follow_up_at IS 'Time of the latest follow-up';
COMMENT ON COLUMN crm.pool_customer.in_pool_since IS 'Since when the pool holds the customer';
COMMENT ON COLUMN crm.pool_customer.created_at IS 'When the customer was created';

CREATE OR REPLACE VIEW crm.pool_contact WITH (security_barrier) AS
SELECT t.id, t.customer_id, t.name, t.title, t.is_decision_maker, p.id AS pool_id,
       CASE WHEN p.mask_phones AND NOT m.is_admin THEN crm.mask_phone(t.mobile) ELSE t.mobile END AS mobile,
       CASE WHEN p.mask_phones AND NOT m.is_admin THEN crm.mask_email(t.email) ELSE t.email END AS email
  FROM crm.pool_membership m
  JOIN crm.pool p ON p.id = m.pool_id AND p.active
  JOIN crm.customer c ON c.owner_id = p.id
  JOIN crm.contact t ON t.customer_id = c.id
 WHERE m.employee_id = crm.current_employee_id();
COMMENT ON COLUMN crm.pool_contact.id IS 'Contact id';
COMMENT ON COLUMN crm.pool_contact.customer_id IS 'Customer (crm.customer.id)';
COMMENT ON COLUMN crm.pool_contact.name IS 'Contact name';
COMMENT ON COLUMN crm.pool_contact.title IS 'Job title';
COMMENT ON COLUMN crm.pool_contact.is_decision_maker IS 'Key decision maker';
COMMENT ON COLUMN crm.pool_contact.pool_id IS 'The pool (crm.pool.id)';
COMMENT ON COLUMN crm.pool_contact.mobile IS 'Mobile, masked unless the pool shows it';
COMMENT ON COLUMN crm.pool_contact.email IS 'E-mail, masked unless the pool shows it';
-- What was done with a pool customer before, for members deciding whether to
-- claim it (the follow-ups' authors and contents; no phone numbers of the customer's own).
CREATE OR REPLACE VIEW crm.pool_follow_up WITH (security_barrier) AS
SELECT f.id, f.record_id AS customer_id, p.id AS pool_id, f.method, f.content, f.created_by, f.created_at
  FROM crm.pool_membership m
  JOIN crm.pool p ON p.id = m.pool_id AND p.active
  JOIN crm.customer c ON c.owner_id = p.id
  JOIN crm.follow_up f ON f.record_type = 'customer' AND f.record_id = c.id
 WHERE m.employee_id = crm.current_employee_id();
COMMENT ON VIEW crm.pool_follow_up IS 'The follow-ups of my pools'' customers, to judge them before claiming';
COMMENT ON VIEW crm.pool_contact IS 'The contacts of my pools'' customers, mobiles and e-mails masked until claimed';
COMMENT ON COLUMN crm.pool_follow_up.id IS 'Follow-up id';
COMMENT ON COLUMN crm.pool_follow_up.customer_id IS 'Customer (crm.customer.id)';
COMMENT ON COLUMN crm.pool_follow_up.pool_id IS 'The pool (crm.pool.id)';
COMMENT ON COLUMN crm.pool_follow_up.method IS 'Code of dictionary follow_up_method';
COMMENT ON COLUMN crm.pool_follow_up.content IS 'What was said or done';
COMMENT ON COLUMN crm.pool_follow_up.created_by IS 'Author (crm.employee.id)';
COMMENT ON COLUMN crm.pool_follow_up.created_at IS 'When the follow-up happened';
GRANT SELECT ON crm.pool_customer, crm.pool_contact, crm.pool_follow_up TO crm_user;

-- Move customers to a new owner as one labelled change (their contacts
-- follow, crm.customer_clock_move).
CREATE OR REPLACE FUNCTION crm.pool_move(ids bigint[], to_owner bigint, kind text, reason text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n integer;
BEGIN
	PERFORM set_config('crm.owner_change', kind, true), set_config('crm.owner_change_reason', coalesce(reason, ''), true);
	UPDATE crm.customer SET owner_id = to_owner WHERE id = ANY (ids) AND owner_id <> to_owner;
	GET DIAGNOSTICS n = ROW_COUNT;
	PERFORM set_config('crm.owner_change', '', true), set_config('crm.owner_change_reason', '', true);
	RETURN n;
END
$$;

-- The acting employee for the pool's functions, with the permission checked.
CREATE OR REPLACE FUNCTION crm.pool_actor(action text, verb text) RETURNS crm.employee
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me crm.employee;
BEGIN
	SELECT * INTO me FROM crm.employee WHERE id = crm.invoking_employee_id() AND active;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'role "%" may not % customers of a public pool', session_user, verb
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'It is not an active employee.',
			      HINT = 'Log in as an employee (crm.employee.db_role).';
	END IF;
	IF action IS NOT NULL AND NOT crm.invoker_has_permission(action) THEN
		RAISE EXCEPTION 'employee % (%) may not % customers of a public pool', me.id, crm.clip(me.name), verb
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = format('This needs the permission "%s".', action),
			      HINT = format('Ask an administrator to add "%s" to one of your roles.', action);
	END IF;
	RETURN me;
END
$$;

-- A customer in a pool, locked for the move; a clear error when it is not.
CREATE OR REPLACE FUNCTION crm.pool_customer_for_update(customer_id bigint, me crm.employee, any_pool boolean,
                                             OUT cust crm.customer, OUT pool crm.pool, OUT is_admin boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	SELECT * INTO cust FROM crm.customer c WHERE c.id = customer_id FOR NO KEY UPDATE;
	SELECT * INTO pool FROM crm.pool p WHERE p.id = cust.owner_id;
	SELECT m.is_admin INTO is_admin FROM crm.pool_membership m WHERE m.pool_id = pool.id AND m.employee_id = me.id;
	-- a customer outside every pool is named only to whom may see it anyway
	IF cust.id IS NULL OR (pool.id IS NOT NULL AND is_admin IS NULL AND NOT any_pool)
	   OR (pool.id IS NULL AND NOT cust.owner_id = ANY (crm.invoker_scope_owners('customer'))) THEN
		RAISE EXCEPTION 'customer % is not in a pool employee % may take from', customer_id, me.id
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'Claim customers listed in crm.pool_customer; one listed a moment ago may have been claimed or assigned since.';
	ELSIF pool.id IS NULL THEN
		RAISE EXCEPTION 'customer % (%) is no longer in a public pool', cust.id, crm.clip(cust.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = CASE WHEN cust.owner_id = me.id THEN 'It is already yours.'
			                    ELSE 'Someone claimed it or was assigned it first.' END,
			      HINT = 'Pick another customer from crm.pool_customer.';
	ELSIF NOT pool.active THEN
		RAISE EXCEPTION 'pool % (%) is inactive', pool.id, crm.clip(pool.name)
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Ask an admin to reactivate it.';
	END IF;
END
$$;

-- Claim a customer from a pool (seed 000 领取): within the daily limit (only
-- self-claims count), the holding limit, the former owner's cool-down and
-- the release freeze, all checked in the claim's own transaction with the
-- claimer's row locked, so that concurrent claims cannot both slip under.
CREATE OR REPLACE FUNCTION crm.claim_customer(customer_id bigint) RETURNS TABLE (customer bigint, customer_name text, owner bigint, owner_name text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me       crm.employee := crm.pool_actor('pool.claim', 'claim');
	pick    record;
	last     crm.customer_owner_change;
	cooldown integer;
	day_tz   text := (SELECT s.timezone FROM crm.settings s);
	day_from timestamptz;
	cap      integer;
	claimed  bigint;
	frozen   timestamptz;
	releases bigint;
BEGIN
	SELECT * INTO me FROM crm.employee WHERE id = me.id FOR NO KEY UPDATE;
	pick := crm.pool_customer_for_update(customer_id, me, false);

	-- seed 000: a former owner waits before claiming back, after a recycle or a release
	SELECT * INTO last FROM crm.customer_owner_change h
	 WHERE h.customer_id = claim_customer.customer_id AND h.from_owner = me.id AND h.kind IN ('release', 'recycle')
	 ORDER BY h.changed_at DESC LIMIT 1;
	cooldown := CASE last.kind WHEN 'release' THEN (pick.pool).release_cooldown_days
	                           WHEN 'recycle' THEN (pick.pool).recycle_cooldown_days END;
	IF last.changed_at + make_interval(days => cooldown) > now() THEN
		RAISE EXCEPTION 'employee % (%) may not claim customer % (%) back before %', me.id, crm.clip(me.name),
			(pick.cust).id, crm.clip((pick.cust).name), crm.local_time(last.changed_at + make_interval(days => cooldown))
			USING ERRCODE = 'check_violation',
			      DETAIL = format('It was %s from them on %s; pool "%s" keeps it from its former owner for %s days.',
			                      CASE last.kind WHEN 'release' THEN 'released' ELSE 'recycled' END,
			                      crm.local_time(last.changed_at), crm.clip((pick.pool).name), cooldown),
			      HINT = 'A pool admin may still assign it; the cool-down stops only claims.';
	END IF;

	-- seed 002: too many releases freeze claiming from the pool for a while
	IF (pick.pool).freeze_after_releases IS NOT NULL THEN
		SELECT r.changed_at + make_interval(days => (pick.pool).freeze_days), w.n INTO frozen, releases
		  FROM crm.customer_owner_change r
		 CROSS JOIN LATERAL (SELECT count(*) AS n FROM crm.customer_owner_change w
		                      WHERE w.kind = 'release' AND w.from_owner = me.id AND w.pool_id = (pick.pool).id
		                        AND w.changed_at > r.changed_at - make_interval(days => (pick.pool).freeze_period_days)
		                        AND w.changed_at <= r.changed_at) w
		 WHERE r.kind = 'release' AND r.from_owner = me.id AND r.pool_id = (pick.pool).id
		   AND r.changed_at > now() - make_interval(days => (pick.pool).freeze_days)
		   AND w.n >= (pick.pool).freeze_after_releases
		 ORDER BY r.changed_at DESC LIMIT 1;
		IF frozen IS NOT NULL THEN
			RAISE EXCEPTION 'employee % (%) may not claim from pool "%" until %', me.id, crm.clip(me.name), crm.clip((pick.pool).name), crm.local_time(frozen)
				USING ERRCODE = 'check_violation',
				      DETAIL = format('They released %s customers to it within %s days; the limit is %s.',
				                      releases, (pick.pool).freeze_period_days, (pick.pool).freeze_after_releases),
				      HINT = format('The freeze lasts %s days from the last of those releases; a pool admin may still assign.',
				                    (pick.pool).freeze_days);
		END IF;
	END IF;

	-- seed 000: only claims count towards the daily limit
	cap := coalesce(me.daily_claim_limit, (SELECT s.daily_claim_limit FROM crm.settings s));
	IF cap IS NOT NULL THEN
		day_from := date_trunc('day', now() AT TIME ZONE day_tz) AT TIME ZONE day_tz;
		SELECT count(*) INTO claimed FROM crm.customer_owner_change h
		 WHERE h.kind = 'claim' AND h.to_owner = me.id AND h.changed_at >= day_from;
		IF claimed >= cap THEN
			RAISE EXCEPTION 'employee % (%) has claimed % customers today, their daily limit of %', me.id, crm.clip(me.name), claimed, cap
				USING ERRCODE = 'check_violation',
				      DETAIL = format('The count starts again at %s.', crm.local_time(day_from + interval '1 day')),
				      HINT = 'Assigned, transferred and self-created customers do not count; raise crm.employee.daily_claim_limit or crm.settings.daily_claim_limit.';
		END IF;
	END IF;
	PERFORM crm.pool_move(ARRAY[(pick.cust).id], me.id, 'claim', NULL);
	RETURN QUERY SELECT (pick.cust).id, (pick.cust).name, me.id, me.name;
END
$$;
COMMENT ON FUNCTION crm.claim_customer(bigint) IS
	'Claim a customer from one of my pools, within the daily claim limit, holding limit, cool-down and freeze; returns the customer and its new owner';

-- Assign a pool customer to an employee: pool admins, or holders of pool.assign.
-- Cool-downs, freezes and the daily limit stop only self-claims; the holding limit holds.
CREATE OR REPLACE FUNCTION crm.assign_customer(customer_id bigint, to_employee bigint) RETURNS TABLE (customer bigint, customer_name text, owner bigint, owner_name text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me     crm.employee := crm.pool_actor(NULL, 'assign');
	may_assign boolean := crm.invoker_has_permission('pool.assign');
	target crm.employee;
	pick  record;
BEGIN
	SELECT * INTO target FROM crm.employee e WHERE e.id = to_employee AND e.active AND NOT e.is_pool FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'employee % cannot be assigned customers', to_employee
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Assign to an active employee.';
	END IF;
	pick := crm.pool_customer_for_update(customer_id, me, may_assign);
	IF NOT coalesce(pick.is_admin, false) AND NOT may_assign THEN
		RAISE EXCEPTION 'employee % (%) may not assign customers of pool "%"', me.id, crm.clip(me.name), crm.clip((pick.pool).name)
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'Assigning needs the pool''s admin (crm.pool_member.is_admin) or the permission "pool.assign".',
			      HINT = 'Ask an administrator to make you an admin of the pool.';
	END IF;
	PERFORM crm.pool_move(ARRAY[(pick.cust).id], target.id, 'assign', NULL);
	IF target.id <> me.id THEN
		PERFORM crm.notify(ARRAY[target.id], 'pool.assigned', m.title, m.body, 'customer', (pick.cust).id)
		   FROM crm.notification_text('pool.assigned', jsonb_build_object(
		            'actor', me.name, 'record', (pick.cust).name, 'pool', (pick.pool).name)) m;
	END IF;
	RETURN QUERY SELECT (pick.cust).id, (pick.cust).name, target.id, target.name;
END
$$;
COMMENT ON FUNCTION crm.assign_customer(bigint, bigint) IS
	'Give a pool customer to an employee (pool admins and holders of pool.assign); the holding limit applies; returns the customer and its new owner';

-- Release a customer to a pool (seed 000 放弃), with a reason from the
-- dictionary pool_release_reason; to_pool defaults to the default pool.
CREATE OR REPLACE FUNCTION crm.release_customer(customer_id bigint, reason text, to_pool bigint DEFAULT NULL) RETURNS TABLE (customer bigint, customer_name text, owner bigint, owner_name text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me    crm.employee := crm.pool_actor('pool.release', 'release');
	cust  crm.customer;
	pool  crm.pool;
BEGIN
	IF NOT EXISTS (SELECT FROM crm.dictionary d WHERE d.kind = 'pool_release_reason' AND d.code = reason AND d.enabled) THEN
		RAISE EXCEPTION 'release reason "%" is not in the dictionary pool_release_reason', crm.clip(reason)
			USING ERRCODE = 'foreign_key_violation',
			      HINT = (SELECT 'Give one of: ' || string_agg(format('%s (%s)', d.code, crm.clip(d.label)), ', ' ORDER BY d.position)
			                FROM crm.dictionary d WHERE d.kind = 'pool_release_reason' AND d.enabled);
	END IF;
	SELECT * INTO pool FROM crm.pool p WHERE p.id = coalesce(to_pool, crm.default_pool()) AND p.active;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'there is no active pool %', to_pool
			USING ERRCODE = 'foreign_key_violation', HINT = 'Name an active pool of crm.pool.';
	END IF;
	SELECT * INTO cust FROM crm.customer c WHERE c.id = customer_id FOR NO KEY UPDATE;
	-- the releaser must be able to edit it: the owner, or someone with it in scope
	IF NOT FOUND OR NOT cust.owner_id = ANY (crm.invoker_scope_owners('customer')) THEN
		RAISE EXCEPTION 'employee % (%) may not release customer %', me.id, crm.clip(me.name), customer_id
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'Release customers you own or manage.';
	ELSIF EXISTS (SELECT FROM crm.pool p WHERE p.id = cust.owner_id) THEN
		RAISE EXCEPTION 'customer % (%) is already in a pool', cust.id, crm.clip(cust.name)
			USING ERRCODE = 'object_not_in_prerequisite_state';
	ELSIF cust.locked THEN
		RAISE EXCEPTION 'customer % (%) is locked', cust.id, crm.clip(cust.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = 'Locked customers stay with their owner.',
			      HINT = 'Unlock it first (needs customer.lock).';
	END IF;
	PERFORM crm.pool_move(ARRAY[cust.id], pool.id, 'release',
	                      (SELECT d.label FROM crm.dictionary d WHERE d.kind = 'pool_release_reason' AND d.code = reason));
	RETURN QUERY SELECT cust.id, cust.name, pool.id, pool.name;
END
$$;
COMMENT ON FUNCTION crm.release_customer(bigint, text, bigint) IS
	'Give a customer up to a pool (the default one unless named), with a reason from the dictionary pool_release_reason; returns the customer and the pool that owns it now';

-- What recycling would move at a time: the customers whose kept deadline has
-- passed by then, with their rule and destination pool (NULL: the default).
-- crm.run_recycling, crm.recycling_preview and crm.customers_due_for_recycling
-- all read it.
CREATE OR REPLACE FUNCTION crm.recycling_due(at timestamptz)
	RETURNS TABLE (customer_id bigint, owner_id bigint, recycle_at timestamptz, rule_id bigint, pool_id bigint,
	               remind_days_before integer, reason text)
LANGUAGE sql STABLE AS $$
	SELECT k.customer_id, c.owner_id, k.recycle_at, r.id, r.pool_id, r.remind_days_before, crm.describe_recycle_rule(r)
	  FROM crm.customer_recycling k
	  JOIN crm.customer c ON c.id = k.customer_id
	  JOIN crm.recycle_rule r ON r.id = k.rule_id
	 WHERE k.recycle_at <= at
$$;
COMMENT ON FUNCTION crm.recycling_due(timestamptz) IS 'Customers whose recycling deadline has passed by the time given, with their rule, destination pool (NULL: the default) and reason';

-- seed 000 即将回收客户: my customers (under row-level security) that go back
-- to a pool within their rule's reminder window, or are overdue.
CREATE OR REPLACE VIEW crm.customers_due_for_recycling WITH (security_invoker) AS
SELECT c.id AS customer_id, c.name, c.owner_id, d.recycle_at, d.rule_id, d.reason,
       coalesce(p.name, (SELECT q.name FROM crm.pool q WHERE q.is_default), '公海') AS pool_name,
       greatest(ceil(extract(epoch FROM d.recycle_at - now()) / 86400), 0)::integer AS days_left
  FROM crm.customer c
  JOIN LATERAL (SELECT * FROM crm.recycling_due('infinity') x WHERE x.customer_id = c.id) d ON true
  LEFT JOIN crm.pool p ON p.id = d.pool_id
 WHERE d.recycle_at <= now() + make_interval(days => d.remind_days_before);
COMMENT ON VIEW crm.customers_due_for_recycling IS 'Customers about to be recycled (即将回收客户): within their rule''s reminder window, or overdue';
COMMENT ON COLUMN crm.customers_due_for_recycling.customer_id IS 'The customer (crm.customer.id)';
COMMENT ON COLUMN crm.customers_due_for_recycling.name IS 'Customer name';
COMMENT ON COLUMN crm.customers_due_for_recycling.owner_id IS 'Current owner (crm.employee.id)';
COMMENT ON COLUMN crm.customers_due_for_recycling.recycle_at IS 'When it goes back to a pool';
COMMENT ON COLUMN crm.customers_due_for_recycling.rule_id IS 'The recycling rule (crm.recycle_rule.id)';
COMMENT ON COLUMN crm.customers_due_for_recycling.reason IS 'Why, as the rule describes it';
COMMENT ON COLUMN crm.customers_due_for_recycling.pool_name IS 'The pool it goes to';
COMMENT ON COLUMN crm.customers_due_for_recycling.days_left IS 'Whole days until recycle_at, rounded up; 0: due or overdue';
GRANT SELECT ON crm.customers_due_for_recycling TO crm_user;

-- What a run at that time would move, without moving anything, among the
-- customers the caller sees.
CREATE OR REPLACE FUNCTION crm.recycling_preview(at timestamptz DEFAULT now())
	RETURNS TABLE (customer_id bigint, owner_id bigint, recycle_at timestamptz, rule_id bigint, pool_id bigint, reason text)
LANGUAGE sql STABLE AS $$
	SELECT d.customer_id, d.owner_id, d.recycle_at, d.rule_id,
	       coalesce(d.pool_id, (SELECT p.id FROM crm.pool p WHERE p.is_default)), d.reason
	  FROM crm.recycling_due(at) d ORDER BY d.recycle_at, d.customer_id
$$;
COMMENT ON FUNCTION crm.recycling_preview(timestamptz) IS 'Dry run: the customers (of those you see) crm.run_recycling() would move at that time';

-- The recycling job: moves every customer that is due, in batches that skip
-- customers someone is editing (the next run takes them), tells former
-- owners once per run, then sends the reminders due (once per customer and
-- deadline).  Idempotent: a rerun finds nothing left to do.  The run is one
-- transaction whatever the batches: each batch's search for due clocks walks
-- past those the batches before it changed, so they are large.
CREATE OR REPLACE FUNCTION crm.run_recycling(batch_size integer DEFAULT 50000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
	started  timestamptz := clock_timestamp();
	dest     record;
	moved    integer := 0;
	n        integer;
	reminded integer;
	last_change bigint := coalesce((SELECT max(id) FROM crm.customer_owner_change), 0);
BEGIN
	IF batch_size IS NULL OR batch_size < 1 THEN
		RAISE EXCEPTION 'the recycling job takes due customers in batches of at least one, not %', coalesce(batch_size::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Call crm.run_recycling() for the default of 50,000 customers a batch.';
	END IF;
	PERFORM set_config('crm.change_source', 'job', true);
	LOOP
		n := 0;
		-- the clocks that are due, locked: one a concurrent run or a change of
		-- its customer (a follow-up, say) holds is skipped, the next run takes
		-- it; one changed meanwhile is checked again as it is now
		FOR dest IN
			SELECT coalesce(r.pool_id, crm.default_pool()) AS pool, array_agg(d.customer_id ORDER BY d.customer_id) AS ids
			  FROM (SELECT k.customer_id, k.rule_id
			          FROM crm.customer_recycling k
			         WHERE k.recycle_at <= now()
			         ORDER BY k.recycle_at LIMIT batch_size
			           FOR UPDATE SKIP LOCKED) d
			  JOIN crm.recycle_rule r ON r.id = d.rule_id
			 GROUP BY 1
		LOOP
			n := n + crm.pool_move(dest.ids, dest.pool, 'recycle', NULL);
		END LOOP;
		moved := moved + n;
		EXIT WHEN n = 0;
	END LOOP;

	-- each former owner hears once, of all their customers this run moved
	PERFORM crm.notify(ARRAY[h.from_owner], 'pool.recycled', m.title, m.body, 'customer', CASE WHEN h.n = 1 THEN h.first_id END)
	  FROM (SELECT x.from_owner, count(*) AS n, min(x.customer_id) AS first_id,
	               jsonb_agg(jsonb_build_object('record', c.name, 'pool', p.name, 'rule', r.name, 'kind', r.kind, 'days', r.days)
	                         ORDER BY x.customer_id) FILTER (WHERE x.n <= 200) AS items
	          FROM (SELECT x.*, row_number() OVER (PARTITION BY x.from_owner ORDER BY x.customer_id) AS n
	                  FROM crm.customer_owner_change x WHERE x.id > last_change AND x.kind = 'recycle') x
	          JOIN crm.customer c ON c.id = x.customer_id
	          JOIN crm.pool p ON p.id = x.pool_id
	          LEFT JOIN crm.recycle_rule r ON r.id = x.rule_id
	         GROUP BY x.from_owner) h,
	       crm.notification_text('pool.recycled', jsonb_build_object(
	           'count', h.n, 'items', h.items, 'items_more', greatest(h.n - 200, 0))) m;

	-- reminders, X days before (seed 000)
	WITH due AS (
		SELECT k.customer_id, d.owner_id, d.recycle_at, d.rule_id
		  FROM crm.recycling_due(now() + make_interval(days => (SELECT max(r.remind_days_before) FROM crm.recycle_rule r WHERE r.enabled))) d
		  JOIN crm.customer_recycling k ON k.customer_id = d.customer_id
		 WHERE d.remind_days_before > 0 AND d.recycle_at <= now() + make_interval(days => d.remind_days_before)
		   AND k.reminded_for IS DISTINCT FROM d.recycle_at
		   FOR UPDATE OF k SKIP LOCKED
	), marked AS (
		UPDATE crm.customer_recycling k SET reminded_for = due.recycle_at
		  FROM due WHERE k.customer_id = due.customer_id
		RETURNING due.*
	), told AS (
		SELECT crm.notify(ARRAY[m.owner_id], 'pool.recycle_soon', t.title, t.body, 'customer', CASE WHEN m.n = 1 THEN m.first_id END), m.n
		  FROM (SELECT marked.owner_id, count(*) AS n, min(marked.customer_id) AS first_id,
		               jsonb_agg(jsonb_build_object('record', c.name, 'rule', r.name, 'kind', r.kind, 'days', r.days,
		                                            'date', to_char(marked.recycle_at AT TIME ZONE (SELECT s.timezone FROM crm.settings s), 'YYYY-MM-DD HH24:MI'))
		                         ORDER BY marked.recycle_at, marked.customer_id) FILTER (WHERE marked.n <= 200) AS items
		          FROM (SELECT marked.*, row_number() OVER (PARTITION BY marked.owner_id ORDER BY marked.recycle_at, marked.customer_id) AS n
		                  FROM marked) marked
		          JOIN crm.customer c ON c.id = marked.customer_id
		          LEFT JOIN crm.recycle_rule r ON r.id = marked.rule_id
		         GROUP BY marked.owner_id) m,
		       crm.notification_text('pool.recycle_soon', jsonb_build_object(
		           'count', m.n, 'items', m.items, 'items_more', greatest(m.n - 200, 0))) t
	)
	SELECT coalesce(sum(told.n), 0) INTO reminded FROM told;

	INSERT INTO crm.job_run (job, started_at, processed, details)
	VALUES ('crm-recycling', started, moved, jsonb_build_object('recycled', moved, 'reminded', reminded));
	RETURN moved;
END
$$;
COMMENT ON FUNCTION crm.run_recycling(integer) IS
	'Move every customer due back to its pool, tell the former owners, and send the reminders due; returns how many moved';

INSERT INTO crm.job (name, schedule, command, builtin) VALUES
	('crm-recycling', '*/5 * * * *', 'SELECT crm.run_recycling()', true);
