-- Forecasts, win rates the data confirms, pipeline snapshots and what changed
-- ids named in messages start at 97000 here, whatever other test files created
SELECT setval(s, 97000, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.opportunity_id_seq']) s \g /dev/null
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['fc_mgr', 'fc_rep', 'fc_sub', 'fc_west', 'fc_intern'] LOOP
		EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
	END LOOP;
END $$;
-- Fc Sales > Fc East > Fc East-A, Fc Sales > Fc West
INSERT INTO crm.department (name) VALUES ('Fc Sales');
INSERT INTO crm.department (name, parent_id) SELECT v, id FROM crm.department, unnest(ARRAY['Fc East', 'Fc West']) v WHERE name = 'Fc Sales';
INSERT INTO crm.department (name, parent_id) SELECT 'Fc East-A', id FROM crm.department WHERE name = 'Fc East';
INSERT INTO crm.employee (name, department_id, db_role, in_statistics)
SELECT e.name, d.id, e.role, e.stats FROM (VALUES ('Fc Manager', 'Fc East', 'fc_mgr', true), ('Fc Rep', 'Fc East', 'fc_rep', true),
	('Fc Sub', 'Fc East-A', 'fc_sub', true), ('Fc West', 'Fc West', 'fc_west', true),
	('Fc Intern', 'Fc East', 'fc_intern', false)) e(name, dept, role, stats)
JOIN crm.department d ON d.name = e.dept;
INSERT INTO crm.role (name) VALUES ('Fc manager'), ('Fc sales');
INSERT INTO crm.role_scope (role_id, record_type, scope)
SELECT r.id, t, 'department_tree' FROM crm.role r, unnest(ARRAY['customer', 'opportunity']) t WHERE r.name = 'Fc manager';
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.create', 'customer.edit', 'opportunity.create', 'opportunity.edit']) a
 WHERE r.name IN ('Fc manager', 'Fc sales');
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e JOIN crm.role r ON r.name = CASE e.db_role WHEN 'fc_mgr' THEN 'Fc manager' ELSE 'Fc sales' END
 WHERE e.db_role LIKE 'fc\_%';
INSERT INTO crm.customer (name, uscc, owner_id)
SELECT 'Fc customer of ' || e.name, crm.uscc_with_check('91330100MA2D' || lpad((e.id - 96000)::text, 5, '0')), e.id
  FROM crm.employee e WHERE e.db_role LIKE 'fc\_%';
-- the open pipeline: deals by owner, month and stage
INSERT INTO crm.opportunity (customer_id, name, amount, expected_close_on, stage_id, owner_id)
SELECT c.id, v.deal, v.amount, v.close_on::date, g.id, c.owner_id
  FROM (VALUES ('Fc Rep', 'Fc 一', 100000, '2027-01-15', '初步接洽'), ('Fc Rep', 'Fc 二', 200000, '2027-01-20', '方案报价'),
               ('Fc Rep', 'Fc 三', 50000, '2027-02-10', '谈判审核'), ('Fc Sub', 'Fc 四', 80000, '2027-01-31', '需求确认'),
               ('Fc West', 'Fc 五', 300000, '2027-01-10', '谈判审核'), ('Fc Intern', 'Fc 六', 999999, '2027-01-10', '谈判审核'))
       v(owner, deal, amount, close_on, stage)
  JOIN crm.customer c ON c.name = 'Fc customer of ' || v.owner JOIN crm.stage g ON g.name = v.stage;

-- == The forecast, as the East's manager: the East and East-A, not the West,
-- and not the intern, who is left out of statistics
SET ROLE fc_mgr;
SELECT month, owner, forecast_category, count(*) AS deals, sum(amount) AS amount, sum(weighted) AS weighted FROM crm.forecast
 GROUP BY 1, 2, 3 ORDER BY month, owner, forecast_category;
SELECT * FROM crm.department_forecast((SELECT id FROM crm.department WHERE name = 'Fc East'));
SELECT * FROM crm.department_forecast((SELECT id FROM crm.department WHERE name = 'Fc East-A'), '2027-01-01', '2027-01-31');
SELECT count(*) AS west_rows FROM crm.department_forecast((SELECT id FROM crm.department WHERE name = 'Fc West'));
RESET ROLE;
-- a super admin's view of the whole company
SELECT month, count(*) AS deals, sum(amount) AS amount, sum(weighted) AS weighted FROM crm.forecast
 WHERE owner LIKE 'Fc %' GROUP BY month ORDER BY month;

-- == Win rates the data confirms: ten closed deals, four of which reached
-- 方案报价 and three of those were won
INSERT INTO crm.opportunity (customer_id, name, amount, owner_id)
SELECT c.id, 'Fc closed ' || n, 1000, c.owner_id FROM crm.customer c, generate_series(1, 10) n WHERE c.name = 'Fc customer of Fc Rep';
SET ROLE fc_rep;
UPDATE crm.opportunity SET stage_id = (SELECT id FROM crm.stage WHERE name = '需求确认' AND stage_set_id = 1)
 WHERE name IN ('Fc closed 1', 'Fc closed 2', 'Fc closed 3', 'Fc closed 4', 'Fc closed 5', 'Fc closed 6');
UPDATE crm.opportunity SET stage_id = (SELECT id FROM crm.stage WHERE name = '方案报价' AND stage_set_id = 1)
 WHERE name IN ('Fc closed 1', 'Fc closed 2', 'Fc closed 3', 'Fc closed 4');
SELECT count(*) FROM (SELECT crm.close_opportunity(id, name IN ('Fc closed 1', 'Fc closed 2', 'Fc closed 3', 'Fc closed 5'))
                        FROM crm.opportunity WHERE name LIKE 'Fc closed %') x;
-- the refresh is the job's, not an employee's
SELECT crm.refresh_win_rates();
RESET ROLE;
SELECT crm.refresh_win_rates() AS stages_rated;
SELECT g.name, w.configured, w.reached, w.won, w.observed, w.smoothed, w.median_days IS NOT NULL AS has_days
  FROM crm.stage_win_rate w JOIN crm.stage g ON g.id = w.stage_id
 WHERE w.refreshed_at = (SELECT max(refreshed_at) FROM crm.stage_win_rate) AND g.stage_set_id = 1 ORDER BY g.position;
SELECT job, processed FROM crm.job_run WHERE job = 'crm-win-rates' ORDER BY id DESC LIMIT 1;
-- observed rates for new probabilities: a new deal in 方案报价 gets its smoothed rate
UPDATE crm.settings SET win_rate_source = 'observed';
SET ROLE fc_rep;
INSERT INTO crm.opportunity (customer_id, name, stage_id)
SELECT id, 'Fc observed', (SELECT id FROM crm.stage WHERE name = '方案报价' AND stage_set_id = 1) FROM crm.customer WHERE name = 'Fc customer of Fc Rep';
SELECT probability FROM crm.opportunity WHERE name = 'Fc observed';
RESET ROLE;
UPDATE crm.settings SET win_rate_source = 'configured';
-- (terse: the failing row's columns come in the order an update added them)
\set VERBOSITY terse
UPDATE crm.settings SET win_rate_source = 'guessed';
UPDATE crm.settings SET win_rate_prior_weight = 0;
\set VERBOSITY default

-- == Snapshots and what changed since: a snapshot, a week of work, another
-- (taken a week ago, as the job would have)
SELECT crm.snapshot_pipeline() > 0 AS taken;
UPDATE crm.pipeline_snapshot SET taken_on = taken_on - 7;
SET ROLE fc_rep;
SELECT (crm.advance_stage(id, (SELECT id FROM crm.stage WHERE name = '需求确认' AND stage_set_id = 1))).status FROM crm.opportunity WHERE name = 'Fc 一';
UPDATE crm.opportunity SET expected_close_on = '2027-03-31' WHERE name = 'Fc 三';
SELECT (crm.close_opportunity(id, true)).status FROM crm.opportunity WHERE name = 'Fc 二';
INSERT INTO crm.opportunity (customer_id, name, amount, expected_close_on)
SELECT id, 'Fc 七', 70000, '2027-02-28' FROM crm.customer WHERE name = 'Fc customer of Fc Rep';
RESET ROLE;
SELECT crm.snapshot_pipeline() > 0 AS taken;
-- (the two snapshots, dated as if taken before and on 2027-01-01, for the accuracy below)
UPDATE crm.pipeline_snapshot SET taken_on = CASE WHEN taken_on < current_date THEN date '2026-12-25' ELSE date '2027-01-01' END;
SET ROLE fc_mgr;
SELECT name, owner, change, from_stage, to_stage, from_close, to_close FROM crm.pipeline_changes()
 WHERE name NOT LIKE 'Fc closed %' AND name <> 'Fc observed';
RESET ROLE;
SET ROLE fc_west;
SELECT count(*) AS east_changes_seen FROM crm.pipeline_changes() WHERE owner <> 'Fc West';
SELECT count(*) AS snapshots_seen FROM crm.pipeline_snapshot WHERE owner_id <> crm.current_employee_id();
RESET ROLE;

-- == Forecast accuracy: January's weighted forecast as the snapshot of
-- 2027-01-01 saw it, beside what was won in January
SET session_replication_role = replica;   -- (a won deal's day, for the test)
UPDATE crm.opportunity SET closed_on = '2027-01-18' WHERE name = 'Fc 二';
RESET session_replication_role;
SET ROLE fc_mgr;
SELECT month, snapshot_on, forecast, won FROM crm.forecast_accuracy WHERE month IN ('2027-01-01', '2027-02-01') ORDER BY month;
RESET ROLE;

-- (this file's deals and customers go: later files count customers)
DELETE FROM crm.opportunity WHERE name LIKE 'Fc %';
DELETE FROM crm.customer WHERE name LIKE 'Fc customer of %';
