-- The owner history: every change of a customer's owner, with what it was
-- (transfer, claim, assign, release, recycle), the pool, rule and reason
-- (kept by crm.customer_clock_move, src/sql/94_pool.sql).
CREATE TABLE crm.customer_owner_change (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	customer_id  bigint NOT NULL,
	kind         text NOT NULL,
	from_owner   bigint NOT NULL,
	to_owner     bigint NOT NULL,
	pool_id      bigint,
	rule_id      bigint,
	reason       text,
	changed_by   bigint,
	changed_at   timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT customer_owner_change_pkey PRIMARY KEY (id),
	CONSTRAINT customer_owner_change_customer_fkey FOREIGN KEY (customer_id) REFERENCES crm.customer (id) ON DELETE CASCADE,
	CONSTRAINT customer_owner_change_kind_check CHECK (kind IN ('transfer', 'claim', 'assign', 'release', 'recycle'))
);
COMMENT ON COLUMN crm.customer_owner_change.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.customer_owner_change.customer_id IS 'The customer (crm.customer.id); kept by crm; not writable';
COMMENT ON COLUMN crm.customer_owner_change.kind IS 'transfer, claim, assign, release or recycle; kept by crm; not writable';
COMMENT ON COLUMN crm.customer_owner_change.from_owner IS 'Owner before (crm.employee.id; a pool''s id when it came from a pool); kept by crm; not writable';
COMMENT ON COLUMN crm.customer_owner_change.to_owner IS 'Owner after (crm.employee.id; a pool''s id when it went to a pool); kept by crm; not writable';
COMMENT ON COLUMN crm.customer_owner_change.pool_id IS 'The pool (crm.pool.id) of a claim, assignment, release or recycling; kept by crm; not writable';
COMMENT ON COLUMN crm.customer_owner_change.rule_id IS 'The recycling rule (crm.recycle_rule.id) of a recycling; kept by crm; not writable';
COMMENT ON COLUMN crm.customer_owner_change.reason IS 'Why, as given to the release or by the recycling rule; kept by crm; not writable';
COMMENT ON COLUMN crm.customer_owner_change.changed_by IS 'Employee (crm.employee.id) who made the change; NULL for a job; kept by crm; not writable';
COMMENT ON COLUMN crm.customer_owner_change.changed_at IS 'When the owner changed; kept by crm; not writable';
CREATE INDEX customer_owner_change_customer_idx ON crm.customer_owner_change (customer_id, changed_at DESC);
-- daily claim counts, cool-downs and freezes read these
CREATE INDEX customer_owner_change_claims_idx ON crm.customer_owner_change (to_owner, changed_at) WHERE kind = 'claim';
CREATE INDEX customer_owner_change_releases_idx ON crm.customer_owner_change (from_owner, pool_id, changed_at) WHERE kind = 'release';
COMMENT ON TABLE crm.customer_owner_change IS 'Every change of a customer''s owner: transfers and the public pool''s claims, assignments, releases and recycling';
ALTER TABLE crm.customer_owner_change ENABLE ROW LEVEL SECURITY;
CREATE POLICY customer_owner_change_visible ON crm.customer_owner_change FOR SELECT TO crm_user
	USING (EXISTS (SELECT FROM crm.customer c WHERE c.id = customer_id)
	       OR crm.current_employee_id() IN (from_owner, to_owner));
GRANT SELECT ON crm.customer_owner_change TO crm_user;

-- seeds 000, 002: a holding limit (the employee's own, else crm.settings'
-- default) counts the customers not yet signed.  The caller has locked the
-- employee's row, which serialises everything that hands them customers.
CREATE OR REPLACE FUNCTION crm.check_holding_limit(target crm.employee, ids bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	cap      integer := coalesce(target.holding_limit, (SELECT s.holding_limit FROM crm.settings s));
	held     bigint;
	incoming bigint;
BEGIN
	IF cap IS NULL THEN
		RETURN;
	END IF;
	SELECT count(*) FILTER (WHERE c.owner_id = target.id AND NOT c.id = ANY (ids)),
	       count(*) FILTER (WHERE c.id = ANY (ids) AND c.owner_id <> target.id)
	  INTO held, incoming
	  FROM crm.customer c JOIN crm.customer_status s ON s.id = c.status_id
	 WHERE NOT s.is_final AND (c.owner_id = target.id OR c.id = ANY (ids));
	IF incoming > 0 AND held + incoming > cap THEN
		RAISE EXCEPTION 'employee % (%) would hold % customers, over their limit of %',
			target.id, crm.clip(target.name), held + incoming, cap
			USING ERRCODE = 'check_violation',
			      DETAIL = format('They hold %s customers not yet signed; this brings %s more.', held, incoming),
			      HINT = 'Hand over fewer, or raise crm.employee.holding_limit (or crm.settings.holding_limit); signed customers do not count.';
	END IF;
END
$$;

-- crm.transfer() (src/records/transfer.c) checks the caller, then runs this as the owner.
CREATE OR REPLACE FUNCTION crm.transfer_records(record_type text, ids bigint[], to_employee bigint,
                                     with_related boolean, keep_old_owner_on_team boolean) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	target   crm.employee;
	moved_ids bigint[];
	moved    integer;
	relation regclass := (SELECT t.relation FROM crm.record_type t WHERE t.name = transfer_records.record_type);
	related  record;
BEGIN
	-- nothing to move: nothing to lock either (a lock on somebody's row, held
	-- in an open transaction, would stop their claims)
	IF cardinality(ids) = 0 THEN
		RETURN 0;
	END IF;
	-- locking the new owner serialises transfers (and claims) to them, so two
	-- of them cannot both slip under the holding limit
	SELECT * INTO target FROM crm.employee WHERE id = to_employee FOR NO KEY UPDATE;
	IF target.is_pool THEN
		RAISE EXCEPTION 'employee % (%) is a public pool', target.id, crm.clip(target.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Give customers up to a pool with crm.release_customer(id, reason, to_pool), which records why.';
	END IF;
	IF NOT FOUND OR NOT target.active THEN
		RAISE EXCEPTION 'employee % cannot take over % records', to_employee, record_type
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = CASE WHEN target.id IS NULL THEN 'There is no such employee.' ELSE 'The employee is deactivated.' END,
			      HINT = 'Transfer to an active employee.';
	END IF;

	IF record_type = 'customer' THEN
		PERFORM crm.check_holding_limit(target, ids);
	END IF;

	IF keep_old_owner_on_team THEN
		EXECUTE format('INSERT INTO crm.team_member (record_type, record_id, employee_id, access)'
		               ' SELECT %L, id, owner_id, ''edit'' FROM %s WHERE id = ANY ($1) AND owner_id <> $2'
		               ' ON CONFLICT (record_type, record_id, employee_id) DO UPDATE SET access = ''edit'', expires_at = NULL',
		               record_type, relation)
			USING ids, target.id;
	END IF;
	EXECUTE format('WITH m AS (UPDATE %s SET owner_id = $2 WHERE id = ANY ($1) AND owner_id <> $2 RETURNING id)'
	               ' SELECT array_agg(id) FROM m', relation)
		INTO moved_ids USING ids, target.id;
	moved := coalesce(cardinality(moved_ids), 0);
	-- an owner needs no team place on their own records
	DELETE FROM crm.team_member t
	 WHERE t.record_type = transfer_records.record_type AND t.record_id = ANY (ids) AND t.employee_id = target.id;
	-- the records that follow these (a customer's contacts) and have an owner of their own
	FOR related IN SELECT t.relation, t.parent_column FROM crm.record_type t
	                WHERE with_related AND t.parent = transfer_records.record_type
	                  AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = t.relation AND a.attname = 'owner_id' AND NOT a.attisdropped)
	                ORDER BY t.position LOOP
		EXECUTE format('UPDATE %s SET owner_id = $2 WHERE %I = ANY ($1) AND owner_id <> $2', related.relation, related.parent_column)
			USING ids, target.id;
	END LOOP;
	IF moved > 0 THEN
		PERFORM crm.notify(ARRAY[target.id], 'transfer.received',
		                   format('%s %s %s transferred to you', moved, record_type,
		                          CASE WHEN moved = 1 THEN 'record was' ELSE 'records were' END),
		                   NULL, record_type, CASE WHEN moved = 1 THEN moved_ids[1] END);
	END IF;
	RETURN moved;
END
$$;

CREATE OR REPLACE FUNCTION crm.transfer(record_type text, ids bigint[], to_employee bigint,
                             with_related boolean DEFAULT true, keep_old_owner_on_team boolean DEFAULT true)
	RETURNS integer AS 'MODULE_PATHNAME', 'crm_transfer' LANGUAGE C;
COMMENT ON FUNCTION crm.transfer(text, bigint[], bigint, boolean, boolean) IS
	'Hand records to another employee (with their contacts, keeping the old owners on the team), within holding limits';
