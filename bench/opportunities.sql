-- Deals (docs/opportunities.md) at 1,000,000 deals with 3 lines each, against bare
-- PostgreSQL doing the same work on copies of the same rows (bench_baseline, made
-- by generate.sql):
--   advance_stage         100,000 deals moved one stage by a super admin through crm
--                         (rules, probability, clock, history, log, notifications) vs a
--                         plain UPDATE plus the INSERT of their history rows
--   insert_opportunities  100,000 deals with 3 lines each entered by a salesperson vs
--                         plain inserts of the deals, lines and first history rows, and
--                         the deals' totals
--   forecast_manager      the forecast of a manager's department tree, as the manager
--                         (crm.department_forecast) vs the hand-written aggregate
--   forecast_admin        the company's forecast by month and category, as the super
--                         admin (crm.forecast) vs the hand-written aggregate
--   win_rate_refresh      the nightly job (crm.refresh_win_rates) vs the hand-written
--                         aggregate into a plain table

-- needs: customers opportunities
-- setup
-- the deals moved: the first 100,000 open ones in stages 1 to 3 (each to the next)
CREATE TABLE bench_baseline.advance_ids AS
SELECT id FROM crm.opportunity WHERE status = 'open' AND stage_id < 4 ORDER BY id LIMIT 100000;
ALTER TABLE bench_baseline.advance_ids ADD PRIMARY KEY (id);
-- the deals entered: 100,000 on the salesperson's customers, in turn
CREATE TABLE bench_baseline.new_deal AS
SELECT n, c.id AS customer_id, '新商机' || n AS name, date '2026-06-30' + (n % 90) AS close_on
  FROM generate_series(1, 100000) n
  JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k, count(*) OVER () AS m
          FROM crm.customer WHERE owner_id = (SELECT id FROM crm.employee WHERE db_role = 'bench_sales')) c
    ON c.k = n % c.m;
CREATE TABLE bench_baseline.stage_win_rate (LIKE crm.stage_win_rate INCLUDING ALL);
GRANT USAGE ON SCHEMA bench_baseline TO bench_sales, bench_manager, bench_admin;
GRANT SELECT ON bench_baseline.advance_ids, bench_baseline.new_deal TO bench_sales, bench_manager, bench_admin;
ANALYZE bench_baseline.advance_ids, bench_baseline.new_deal;

-- crm advance_stage
SET ROLE bench_admin;
\timing on
UPDATE crm.opportunity o SET stage_id = o.stage_id + 1 FROM bench_baseline.advance_ids a WHERE o.id = a.id;

-- baseline advance_stage
\timing on
UPDATE bench_baseline.opportunity o
   SET stage_id = o.stage_id + 1, probability = s.win_rate, stage_entered_at = clock_timestamp(), updated_at = now()
  FROM bench_baseline.advance_ids a, crm.stage s
 WHERE o.id = a.id AND s.id = o.stage_id + 1;
INSERT INTO bench_baseline.opportunity_stage_change (opportunity_id, from_stage_id, to_stage_id, changed_at, changed_by,
                                                     amount, probability, days_in_stage)
SELECT o.id, o.stage_id - 1, o.stage_id, o.stage_entered_at, 1, o.amount, o.probability, 1
  FROM bench_baseline.opportunity o JOIN bench_baseline.advance_ids a ON a.id = o.id;

-- crm insert_opportunities
SET ROLE bench_sales;
\timing on
INSERT INTO crm.opportunity (customer_id, name, expected_close_on)
SELECT customer_id, name, close_on FROM bench_baseline.new_deal;
INSERT INTO crm.opportunity_product (opportunity_id, product_id, quantity, discount)
SELECT o.id, 1 + (o.id * 3 + j) % 200, 1 + j, 5 * j FROM crm.opportunity o, generate_series(0, 2) j
 WHERE o.created_at = now();

-- baseline insert_opportunities
SELECT id AS sales_id FROM crm.employee WHERE db_role = 'bench_sales' \gset
\timing on
INSERT INTO bench_baseline.opportunity (customer_id, name, expected_close_on, stage_set_id, stage_id, probability, owner_id,
                                        created_by)
SELECT customer_id, name, close_on, 1, 1, 10, :sales_id, :sales_id FROM bench_baseline.new_deal;
INSERT INTO bench_baseline.opportunity_stage_change (opportunity_id, to_stage_id, changed_at, changed_by, amount, probability)
SELECT o.id, 1, o.stage_entered_at, :sales_id, 0, 10 FROM bench_baseline.opportunity o WHERE o.created_at = now();
INSERT INTO bench_baseline.opportunity_product (opportunity_id, product_id, quantity, unit_price, discount, created_by)
SELECT o.id, p.id, 1 + j, p.list_price, 5 * j, :sales_id
  FROM bench_baseline.opportunity o, generate_series(0, 2) j, crm.product p
 WHERE o.created_at = now() AND p.id = 1 + (o.id * 3 + j) % 200;
UPDATE bench_baseline.opportunity o SET amount = t.total
  FROM (SELECT l.opportunity_id, sum(l.amount) AS total FROM bench_baseline.opportunity_product l
         WHERE l.created_at = now() GROUP BY l.opportunity_id) t
 WHERE o.id = t.opportunity_id;

-- crm forecast_manager
SET ROLE bench_manager;
\timing on
-- repeat 5
SELECT * FROM crm.department_forecast((SELECT department_id FROM crm.employee WHERE db_role = 'bench_manager')) \g /dev/null

-- baseline forecast_manager
\timing on
-- repeat 5
WITH RECURSIVE tree AS (
	SELECT department_id AS id FROM crm.employee WHERE db_role = 'bench_manager'
	UNION ALL
	SELECT d.id FROM tree t JOIN crm.department d ON d.parent_id = t.id)
SELECT date_trunc('month', o.expected_close_on)::date AS month, g.forecast_category, count(*),
       sum(o.amount), round(sum(o.amount * o.probability / 100), 2)
  FROM bench_baseline.opportunity o JOIN crm.employee e ON e.id = o.owner_id JOIN crm.stage g ON g.id = o.stage_id
 WHERE o.status = 'open' AND e.in_statistics AND e.department_id IN (SELECT id FROM tree)
 GROUP BY 1, 2 ORDER BY 1, 2 \g /dev/null

-- crm forecast_admin
SET ROLE bench_admin;
\timing on
-- repeat 3
SELECT month, forecast_category, count(*), sum(amount), sum(weighted) FROM crm.forecast GROUP BY 1, 2 ORDER BY 1, 2 \g /dev/null

-- baseline forecast_admin
\timing on
-- repeat 3
SELECT date_trunc('month', o.expected_close_on)::date AS month, g.forecast_category, count(*),
       sum(o.amount), round(sum(o.amount * o.probability / 100), 2)
  FROM bench_baseline.opportunity o JOIN crm.employee e ON e.id = o.owner_id JOIN crm.stage g ON g.id = o.stage_id
 WHERE o.status = 'open' AND e.in_statistics
 GROUP BY 1, 2 ORDER BY 1, 2 \g /dev/null

-- crm win_rate_refresh
\timing on
SELECT crm.refresh_win_rates();

-- baseline win_rate_refresh
\timing on
INSERT INTO bench_baseline.stage_win_rate (refreshed_at, stage_set_id, stage_id, configured, reached, won, observed, smoothed, median_days)
SELECT now(), g.stage_set_id, g.id, g.win_rate, coalesce(r.reached, 0), coalesce(r.won, 0),
       round(100.0 * r.won / nullif(r.reached, 0), 2),
       round((coalesce(r.won, 0) + 10 * g.win_rate / 100) / (coalesce(r.reached, 0) + 10) * 100, 2), d.median_days
  FROM crm.stage g
  LEFT JOIN (SELECT x.to_stage_id AS stage_id, count(*) AS reached, count(*) FILTER (WHERE x.status = 'won') AS won
               FROM (SELECT DISTINCT c.opportunity_id, c.to_stage_id, o.status
                       FROM bench_baseline.opportunity_stage_change c JOIN bench_baseline.opportunity o ON o.id = c.opportunity_id
                      WHERE o.status <> 'open') x
              GROUP BY x.to_stage_id) r ON r.stage_id = g.id
  LEFT JOIN (SELECT c.from_stage_id AS stage_id, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY c.days_in_stage)::numeric, 2) AS median_days
               FROM bench_baseline.opportunity_stage_change c WHERE c.from_stage_id IS NOT NULL GROUP BY c.from_stage_id) d ON d.stage_id = g.id
 WHERE g.outcome = 'open';
