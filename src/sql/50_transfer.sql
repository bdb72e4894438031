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
-- default) counts the customers not yet signed (not in a won status).  It
-- holds on every path that gives an employee customers: creating them, an
-- import, a transfer, a claim or assignment from a pool, an UPDATE of owner_id.
-- So it is checked once the statement has given them (the new owners' rows
-- locked, which serialises everything that hands them customers), and the
-- statement fails whole.  Public pools hold without a limit.
CREATE OR REPLACE FUNCTION crm.check_holding_limit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	default_cap integer := (SELECT s.holding_limit FROM crm.settings s);
	ids      bigint[];
	target   crm.employee;
	cap      integer;
	held     bigint;
	incoming bigint;
BEGIN
	IF TG_RELID <> 'crm.customer'::regclass THEN RAISE 'crm.check_holding_limit() runs only on crm.customer, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() OR default_cap IS NULL AND NOT EXISTS (SELECT FROM crm.employee e WHERE e.holding_limit IS NOT NULL) THEN
		RETURN NULL;
	END IF;
	-- the customers the statement gave someone: every row inserted, the rows
	-- updated whose owner changed, and those that left a won status (a lost
	-- one counts again)
	IF TG_OP = 'INSERT' THEN
		ids := ARRAY(SELECT n.id FROM given n);
	ELSE
		ids := ARRAY(SELECT n.id FROM given n JOIN taken o ON o.id = n.id
		              WHERE o.owner_id IS DISTINCT FROM n.owner_id
		                 OR o.status_id IS DISTINCT FROM n.status_id
		                    AND EXISTS (SELECT FROM crm.customer_status s WHERE s.id = o.status_id AND s.outcome = 'won')
		                    AND NOT EXISTS (SELECT FROM crm.customer_status s WHERE s.id = n.status_id AND s.outcome = 'won'));
	END IF;
	FOR target IN
		SELECT e.* FROM crm.employee e
		 WHERE e.id IN (SELECT c.owner_id FROM crm.customer c WHERE c.id = ANY (ids))
		   AND NOT e.is_pool AND coalesce(e.holding_limit, default_cap) IS NOT NULL
		 ORDER BY e.id FOR NO KEY UPDATE OF e
	LOOP
		cap := coalesce(target.holding_limit, default_cap);
		SELECT count(*), count(*) FILTER (WHERE c.id = ANY (ids)) INTO held, incoming
		  FROM crm.customer c JOIN crm.customer_status s ON s.id = c.status_id
		 WHERE c.owner_id = target.id AND s.outcome IS DISTINCT FROM 'won';
		IF incoming > 0 AND held > cap THEN
			RAISE EXCEPTION 'employee "%" would hold % customers, over their limit of %',
				crm.clip(target.name), held, cap
				USING ERRCODE = 'check_violation',
				      DETAIL = format('They hold %s customers not yet signed; this brings %s more.', held - incoming, incoming),
				      HINT = 'Hand over fewer, or raise crm.employee.holding_limit (or crm.settings.holding_limit); signed customers do not count.';
		END IF;
	END LOOP;
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER customer_holding_limit_insert AFTER INSERT ON crm.customer
	REFERENCING NEW TABLE AS given FOR EACH STATEMENT EXECUTE FUNCTION crm.check_holding_limit();
CREATE OR REPLACE TRIGGER customer_holding_limit_update AFTER UPDATE ON crm.customer
	REFERENCING OLD TABLE AS taken NEW TABLE AS given FOR EACH STATEMENT EXECUTE FUNCTION crm.check_holding_limit();

-- crm.transfer() (src/records/transfer.c) checks the caller, then runs this as the owner.
CREATE OR REPLACE FUNCTION crm.transfer_records(record_type text, ids bigint[], to_employee bigint,
                                     with_related boolean, keep_old_owner_on_team boolean) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	target   crm.employee;
	actor    crm.employee := (SELECT e FROM crm.employee e WHERE e.id = crm.invoking_employee_id());
	moved_ids bigint[];
	from_owners bigint[];
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

	IF keep_old_owner_on_team THEN
		EXECUTE format('INSERT INTO crm.team_member (record_type, record_id, employee_id, access, added_by)'
		               ' SELECT %L, id, owner_id, ''edit'', $3 FROM %s WHERE id = ANY ($1) AND owner_id <> $2'
		               ' ON CONFLICT (record_type, record_id, employee_id) DO UPDATE SET access = ''edit'', expires_at = NULL',
		               record_type, relation)
			USING ids, target.id, actor.id;
	END IF;
	-- (with the old owners, read beside the rows the update locks)
	EXECUTE format('WITH m AS (UPDATE %1$s r SET owner_id = $2 FROM %1$s o'
	               ' WHERE o.id = r.id AND r.id = ANY ($1) AND r.owner_id <> $2 RETURNING r.id, o.owner_id)'
	               ' SELECT array_agg(m.id ORDER BY m.id), array_agg(m.owner_id ORDER BY m.id) FROM m', relation)
		INTO moved_ids, from_owners USING ids, target.id;
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
	-- the new owner hears what came, and each old owner but the one who acted what went
	IF moved > 0 THEN
		PERFORM crm.notify(ARRAY[target.id], 'transfer.received', m.title, m.body,
		                   record_type, CASE WHEN moved = 1 THEN moved_ids[1] END)
		  FROM crm.notification_text('transfer.received', jsonb_build_object(
		           'actor', coalesce(actor.name, 'crm'), 'count', moved, 'type', crm.record_type_label(record_type),
		           'items', crm.record_items(record_type, moved_ids), 'items_more', greatest(moved - 200, 0))) m;
		PERFORM crm.notify(ARRAY[a.owner_id], 'transfer.away', m.title, m.body,
		                   record_type, CASE WHEN cardinality(a.ids) = 1 THEN a.ids[1] END)
		  FROM (SELECT f.owner_id, array_agg(f.id ORDER BY f.id) AS ids FROM unnest(moved_ids, from_owners) f(id, owner_id)
		         WHERE f.owner_id IS DISTINCT FROM actor.id GROUP BY f.owner_id) a,
		       crm.notification_text('transfer.away', jsonb_build_object(
		           'actor', coalesce(actor.name, 'crm'), 'count', cardinality(a.ids), 'type', crm.record_type_label(record_type),
		           'to', target.name, 'kept', keep_old_owner_on_team,
		           'items', crm.record_items(record_type, a.ids), 'items_more', greatest(cardinality(a.ids) - 200, 0))) m;
	END IF;
	RETURN moved;
END
$$;

CREATE OR REPLACE FUNCTION crm.transfer(record_type text, ids bigint[], to_employee bigint,
                             with_related boolean DEFAULT true, keep_old_owner_on_team boolean DEFAULT true)
	RETURNS integer AS 'MODULE_PATHNAME', 'crm_transfer' LANGUAGE C;
COMMENT ON FUNCTION crm.transfer(text, bigint[], bigint, boolean, boolean) IS
	'Hand records to another employee (with their contacts, keeping the old owners on the team), within holding limits';
