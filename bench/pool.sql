-- The public pool's recycling, on the default dataset with a
-- no_follow_up rule over the departments that hold about half the customers,
-- its days chosen so that a tenth of all customers (100,000 at scale 1) are due.
--   recycling:        crm.run_recycling() moving every due customer (with its
--                     contacts, owner history, clocks and the former owners'
--                     notifications), against one hand-written statement
--                     giving the same customers, and their contacts, to the
--                     pool in plain tables of the same shape
--   recycle_recompute: a rule edit (its days) that moves the deadline of those
--                     ~500,000 customers, against the equivalent UPDATE of a
--                     plain copy of crm.customer_recycling

-- needs: customers follow_ups shared
-- (the customers moved take their log rows and tags along: measured with them,
-- as in a full run)
-- setup
INSERT INTO crm.pool (name, is_default, open_to_all) VALUES ('bench pool', true, true) ON CONFLICT DO NOTHING;
-- second-level departments (with their trees), largest first, until they hold
-- half the customers
CREATE TEMP TABLE half AS
WITH RECURSIVE tree (top, id) AS (
	SELECT d.id, d.id FROM crm.department d
	 WHERE d.parent_id IN (SELECT id FROM crm.department WHERE parent_id = (SELECT id FROM crm.department WHERE parent_id IS NULL))
	UNION ALL
	SELECT t.top, d.id FROM tree t JOIN crm.department d ON d.parent_id = t.id
), share AS (
	SELECT t.top, count(c.id) AS n
	  FROM tree t JOIN crm.employee e ON e.department_id = t.id JOIN crm.customer c ON c.owner_id = e.id
	 GROUP BY t.top
)
SELECT top FROM (SELECT top, sum(n) OVER (ORDER BY n DESC, top) - n AS before FROM share) s
 WHERE before < (SELECT count(*) / 2 FROM crm.customer);
-- the clock of those customers, and the days that leave 100,000 of them due
CREATE TEMP TABLE half_owner AS
SELECT x.employee_id AS id FROM crm.recycle_rule_employees(ARRAY(SELECT top FROM half), '{}', '{}') x;
SELECT ceil(extract(epoch FROM now() - percentile_disc((SELECT count(*) / 10.0 FROM crm.customer) / (SELECT count(*) FROM crm.customer WHERE owner_id IN (SELECT id FROM half_owner)))
            WITHIN GROUP (ORDER BY greatest(c.last_follow_up_at, coalesce(k.owned_since, c.created_at)))) / 86400)::int AS due_days
  FROM crm.customer c LEFT JOIN crm.customer_recycling k ON k.customer_id = c.id
 WHERE c.owner_id IN (SELECT id FROM half_owner) \gset
INSERT INTO crm.recycle_rule (name, kind, days, department_ids)
SELECT 'bench quiet', 'no_follow_up', :due_days, ARRAY(SELECT top FROM half)
ON CONFLICT (name) DO UPDATE SET days = excluded.days, department_ids = excluded.department_ids;
DROP TABLE IF EXISTS bench_baseline.customer_recycling, bench_baseline.half_owner;
-- the contacts' side of the move
TRUNCATE bench_baseline.contact;
SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS contact_columns
  FROM pg_attribute WHERE attrelid = 'crm.contact'::regclass AND attnum > 0 AND NOT attisdropped \gset
INSERT INTO bench_baseline.contact (:contact_columns) OVERRIDING SYSTEM VALUE SELECT :contact_columns FROM crm.contact;
CREATE TABLE bench_baseline.customer_recycling (LIKE crm.customer_recycling INCLUDING ALL);
INSERT INTO bench_baseline.customer_recycling SELECT * FROM crm.customer_recycling;
CREATE TABLE bench_baseline.half_owner AS SELECT array_agg(id) AS ids FROM half_owner;
SELECT count(*) AS due, (SELECT count(*) FROM crm.customer_recycling WHERE rule_id IS NOT NULL) AS under_rule
  FROM crm.customer_recycling WHERE recycle_at <= now();
ANALYZE;

-- crm recycling
\timing on
SELECT crm.run_recycling();

-- baseline recycling
SELECT id AS pool_id FROM crm.pool WHERE is_default \gset
\timing on
WITH moved AS (
	UPDATE bench_baseline.customer SET owner_id = :pool_id
	 WHERE id IN (SELECT customer_id FROM bench_baseline.customer_recycling WHERE recycle_at <= now())
	RETURNING id
)
UPDATE bench_baseline.contact SET owner_id = :pool_id WHERE customer_id IN (SELECT id FROM moved);

-- crm recycle_recompute
\timing on
UPDATE crm.recycle_rule SET days = days + 7 WHERE name = 'bench quiet';

-- baseline recycle_recompute
SELECT days + 7 AS days FROM crm.recycle_rule WHERE name = 'bench quiet' \gset
\timing on
UPDATE bench_baseline.customer_recycling k
   SET recycle_at = greatest(c.last_follow_up_at, k.owned_since) + make_interval(days => :days)
  FROM bench_baseline.customer c
 WHERE c.id = k.customer_id AND c.owner_id = ANY ((SELECT ids FROM bench_baseline.half_owner)::bigint[]);
