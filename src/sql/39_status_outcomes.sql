-- Several final customer statuses (seed 001: 成单 won and 丢单 lost): each
-- final status says whether it is won or lost; final ones end the list and a
-- won one remains.  Signed means won (holding limits, recycling).

ALTER TABLE crm.customer_status ADD COLUMN outcome text;
COMMENT ON COLUMN crm.customer_status.outcome IS 'What a final status means: won (the customer signed) or lost; NULL for the others';
-- (0.1's one final status, shipped or renamed, meant signed)
ALTER TABLE crm.customer_status DISABLE TRIGGER customer_status_builtin_edited, DISABLE TRIGGER customer_status_guard;
UPDATE crm.customer_status SET outcome = 'won' WHERE is_final;
ALTER TABLE crm.customer_status ENABLE TRIGGER customer_status_builtin_edited, ENABLE TRIGGER customer_status_guard;
-- (and 0.1 let statuses follow it: it moves to the end, its customers with it;
-- an edit, which pg_dump keeps)
UPDATE crm.customer_status s SET position = s.position + (SELECT max(x.position) FROM crm.customer_status x)
 WHERE s.is_final AND EXISTS (SELECT FROM crm.customer_status x WHERE NOT x.is_final AND x.position > s.position);
ALTER TABLE crm.customer_status ADD CONSTRAINT customer_status_outcome_check
	CHECK ((outcome IS NOT NULL) = is_final AND (outcome IS NULL OR outcome IN ('won', 'lost')));
DROP INDEX crm.customer_status_one_final;
GRANT INSERT (outcome), UPDATE (outcome) ON crm.customer_status TO crm_user;

-- The list as a whole, once its statement (or, deferred, its transaction) is
-- done: final statuses come last and a won one remains.
CREATE OR REPLACE FUNCTION crm.check_customer_status_order() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	early crm.customer_status;
	final crm.customer_status;
BEGIN
	IF TG_RELID <> 'crm.customer_status'::regclass THEN RAISE 'crm.check_customer_status_order() runs only on crm.customer_status, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- (a restore loads the rows in its own order: they were in order when dumped)
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	SELECT * INTO final FROM crm.customer_status s WHERE s.is_final ORDER BY s.position LIMIT 1;
	SELECT * INTO early FROM crm.customer_status s WHERE NOT s.is_final AND s.position > final.position ORDER BY s.position LIMIT 1;
	IF early.id IS NOT NULL THEN
		RAISE EXCEPTION 'customer status "%" comes after the final status "%"', crm.clip(early.name), crm.clip(final.name)
			USING ERRCODE = 'check_violation',
			      DETAIL = 'Final statuses (won or lost) end the list: a customer in one has nowhere further to go.',
			      HINT = format('Give "%s" a position below %s.', crm.clip(early.name), final.position);
	ELSIF NOT EXISTS (SELECT FROM crm.customer_status s WHERE s.outcome = 'won') THEN
		RAISE EXCEPTION 'the customer statuses need a final status that is won'
			USING ERRCODE = 'check_violation',
			      DETAIL = 'Customers in a won status count as signed (holding limits, recycling, contracts).',
			      HINT = 'Keep one status with is_final and outcome = ''won''.';
	END IF;
	RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER customer_status_order AFTER INSERT OR UPDATE OR DELETE ON crm.customer_status
	DEFERRABLE INITIALLY IMMEDIATE FOR EACH ROW EXECUTE FUNCTION crm.check_customer_status_order();

