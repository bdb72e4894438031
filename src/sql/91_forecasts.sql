-- Win rates the data confirms, forecasts and the weekly pipeline snapshot
-- (docs/opportunities.md, "Win rates" and "Forecasts").  Jobs (90_jobs.sql)
-- refresh the win rates and take the snapshots; what people read runs as
-- them, under the deals' own row-level security.

ALTER TABLE crm.settings
	ADD COLUMN win_rate_source text NOT NULL DEFAULT 'configured',
	ADD COLUMN win_rate_prior_weight numeric(8, 2) NOT NULL DEFAULT 10,
	ADD CONSTRAINT settings_win_rate_source_check CHECK (win_rate_source IN ('configured', 'observed')),
	-- (0 would leave a stage without closed deals no rate at all)
	ADD CONSTRAINT settings_win_rate_prior_weight_check CHECK (win_rate_prior_weight > 0 AND win_rate_prior_weight <> 'NaN');
COMMENT ON COLUMN crm.settings.win_rate_source IS
	'Where a deal entering a stage gets its probability: configured (crm.stage.win_rate) or observed (the latest smoothed rate of crm.stage_win_rate, the configured one until there is one)';
COMMENT ON COLUMN crm.settings.win_rate_prior_weight IS
	'k of the smoothed win rate (won + k × configured) / (reached + k): how many closed deals the configured rate counts as';
GRANT UPDATE (win_rate_source, win_rate_prior_weight) ON crm.settings TO crm_user;

-- Each refresh's rates, kept: the rates as of any refresh are a query.
CREATE TABLE crm.stage_win_rate (
	refreshed_at   timestamptz NOT NULL,
	stage_set_id   bigint NOT NULL,
	stage_id       bigint NOT NULL,
	configured     numeric(5, 2) NOT NULL,
	reached        bigint NOT NULL,
	won            bigint NOT NULL,
	observed       numeric(5, 2),
	smoothed       numeric(5, 2) NOT NULL,
	median_days    numeric(10, 2),
	CONSTRAINT stage_win_rate_pkey PRIMARY KEY (stage_id, refreshed_at),
	CONSTRAINT stage_win_rate_stage_fkey FOREIGN KEY (stage_id) REFERENCES crm.stage (id) ON DELETE CASCADE,
	CONSTRAINT stage_win_rate_set_fkey FOREIGN KEY (stage_set_id) REFERENCES crm.stage_set (id) ON DELETE CASCADE
);
COMMENT ON TABLE crm.stage_win_rate IS
	'Win rates the data confirms, per open stage and refresh (crm.refresh_win_rates): of the closed deals that reached the stage, the share won; kept by crm';
COMMENT ON COLUMN crm.stage_win_rate.refreshed_at IS 'When the refresh ran';
COMMENT ON COLUMN crm.stage_win_rate.stage_set_id IS 'The stage''s set (crm.stage_set.id)';
COMMENT ON COLUMN crm.stage_win_rate.stage_id IS 'The stage (crm.stage.id)';
COMMENT ON COLUMN crm.stage_win_rate.configured IS 'Its configured win rate then, percent';
COMMENT ON COLUMN crm.stage_win_rate.reached IS 'Closed deals (won or lost) that reached the stage: the sample';
COMMENT ON COLUMN crm.stage_win_rate.won IS 'Of them, the deals won';
COMMENT ON COLUMN crm.stage_win_rate.observed IS 'won / reached, percent; NULL without a sample';
COMMENT ON COLUMN crm.stage_win_rate.smoothed IS '(won + k × configured) / (reached + k), percent, k = crm.settings.win_rate_prior_weight: a small sample does not swing it';
COMMENT ON COLUMN crm.stage_win_rate.median_days IS 'Median days deals spent in the stage before they left it';
CREATE INDEX stage_win_rate_refreshed_idx ON crm.stage_win_rate (refreshed_at);
CREATE INDEX stage_win_rate_set_idx ON crm.stage_win_rate (stage_set_id);
GRANT SELECT ON crm.stage_win_rate TO crm_user;
-- (crm.opportunity_write() caches the latest rates: rebuilt in every backend after a refresh)
CREATE OR REPLACE TRIGGER stage_win_rate_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.stage_win_rate
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();

-- The refresh: one statement over every deal, whoever owns it (a rate is
-- the company's, not a scope's).  Returns the number of stages rated.
CREATE OR REPLACE FUNCTION crm.refresh_win_rates() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	started timestamptz := clock_timestamp();
	k       numeric := (SELECT s.win_rate_prior_weight FROM crm.settings s);
	rated   integer;
BEGIN
	INSERT INTO crm.stage_win_rate (refreshed_at, stage_set_id, stage_id, configured, reached, won, observed, smoothed, median_days)
	SELECT started, g.stage_set_id, g.id, g.win_rate, coalesce(r.reached, 0), coalesce(r.won, 0),
	       round(100.0 * r.won / nullif(r.reached, 0), 2),
	       round((coalesce(r.won, 0) + k * g.win_rate / 100) / nullif(coalesce(r.reached, 0) + k, 0) * 100, 2),
	       d.median_days
	  FROM crm.stage g
	  LEFT JOIN (SELECT x.to_stage_id AS stage_id, count(*) AS reached, count(*) FILTER (WHERE x.status = 'won') AS won
	               FROM (SELECT DISTINCT c.opportunity_id, c.to_stage_id, o.status
	                       FROM crm.opportunity_stage_change c JOIN crm.opportunity o ON o.id = c.opportunity_id
	                      WHERE o.status <> 'open') x
	              GROUP BY x.to_stage_id) r ON r.stage_id = g.id
	  LEFT JOIN (SELECT c.from_stage_id AS stage_id,
	                    round(percentile_cont(0.5) WITHIN GROUP (ORDER BY c.days_in_stage)::numeric, 2) AS median_days
	               FROM crm.opportunity_stage_change c WHERE c.from_stage_id IS NOT NULL
	              GROUP BY c.from_stage_id) d ON d.stage_id = g.id
	 WHERE g.outcome = 'open';
	GET DIAGNOSTICS rated = ROW_COUNT;
	INSERT INTO crm.job_run (job, started_at, processed, details)
	VALUES ('crm-win-rates', started, rated, jsonb_build_object('stages', rated));
	RETURN rated;
END
$$;
COMMENT ON FUNCTION crm.refresh_win_rates() IS
	'Compute every open stage''s observed and smoothed win rate and median days into crm.stage_win_rate; returns the stages rated (the job crm-win-rates)';

-- Every week's pipeline: each open deal, and each closed since the last
-- snapshot, as it stood.  "What changed since last week" compares two.
CREATE TABLE crm.pipeline_snapshot (
	taken_on           date NOT NULL,
	opportunity_id     bigint NOT NULL,
	owner_id           bigint NOT NULL,
	stage_id           bigint NOT NULL,
	status             text NOT NULL,
	amount             numeric(14, 2) NOT NULL,
	probability        numeric(5, 2) NOT NULL,
	expected_close_on  date,
	CONSTRAINT pipeline_snapshot_pkey PRIMARY KEY (taken_on, opportunity_id),
	CONSTRAINT pipeline_snapshot_opportunity_fkey FOREIGN KEY (opportunity_id) REFERENCES crm.opportunity (id) ON DELETE CASCADE,
	-- (a stage snapshots name goes only through crm.delete_stage, which moves them)
	CONSTRAINT pipeline_snapshot_stage_fkey FOREIGN KEY (stage_id) REFERENCES crm.stage (id)
);
COMMENT ON TABLE crm.pipeline_snapshot IS
	'The pipeline as it stood each week (crm.snapshot_pipeline): every open deal and every deal closed since the snapshot before; kept by crm; seen as the deals are';
COMMENT ON COLUMN crm.pipeline_snapshot.taken_on IS 'The day of the snapshot, in the company''s time zone';
COMMENT ON COLUMN crm.pipeline_snapshot.opportunity_id IS 'The deal (crm.opportunity.id)';
COMMENT ON COLUMN crm.pipeline_snapshot.owner_id IS 'Its owner then (crm.employee.id)';
COMMENT ON COLUMN crm.pipeline_snapshot.stage_id IS 'Its stage then (crm.stage.id)';
COMMENT ON COLUMN crm.pipeline_snapshot.status IS 'open, won or lost then';
COMMENT ON COLUMN crm.pipeline_snapshot.amount IS 'Its amount then';
COMMENT ON COLUMN crm.pipeline_snapshot.probability IS 'Its probability then, percent';
COMMENT ON COLUMN crm.pipeline_snapshot.expected_close_on IS 'When it was expected to close then';
CREATE INDEX pipeline_snapshot_opportunity_idx ON crm.pipeline_snapshot (opportunity_id);
CREATE INDEX pipeline_snapshot_stage_idx ON crm.pipeline_snapshot (stage_id);
CREATE INDEX pipeline_snapshot_owner_idx ON crm.pipeline_snapshot (owner_id, taken_on);
ALTER TABLE crm.pipeline_snapshot ENABLE ROW LEVEL SECURITY;
-- (the deal's current owner decides, as for every row about a deal)
CREATE POLICY pipeline_snapshot_read ON crm.pipeline_snapshot FOR SELECT TO crm_user
	USING (EXISTS (SELECT FROM crm.opportunity o WHERE o.id = pipeline_snapshot.opportunity_id));
GRANT SELECT ON crm.pipeline_snapshot TO crm_user;

-- Taking today's snapshot (again, if it was taken today already).
CREATE OR REPLACE FUNCTION crm.snapshot_pipeline() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	started timestamptz := clock_timestamp();
	today   date := (now() AT TIME ZONE (SELECT s.timezone FROM crm.settings s))::date;
	last    date;
	taken   integer;
BEGIN
	DELETE FROM crm.pipeline_snapshot p WHERE p.taken_on = today;
	last := (SELECT max(p.taken_on) FROM crm.pipeline_snapshot p);
	INSERT INTO crm.pipeline_snapshot (taken_on, opportunity_id, owner_id, stage_id, status, amount, probability, expected_close_on)
	SELECT today, o.id, o.owner_id, o.stage_id, o.status, o.amount, o.probability, o.expected_close_on
	  FROM crm.opportunity o
	 WHERE o.status = 'open' OR o.closed_on > coalesce(last, '-infinity');
	GET DIAGNOSTICS taken = ROW_COUNT;
	INSERT INTO crm.job_run (job, started_at, processed, details)
	VALUES ('crm-pipeline-snapshot', started, taken, jsonb_build_object('taken_on', today, 'deals', taken));
	RETURN taken;
END
$$;
COMMENT ON FUNCTION crm.snapshot_pipeline() IS
	'Record today''s pipeline in crm.pipeline_snapshot (every open deal, and every deal closed since the last snapshot); returns the deals recorded (the job crm-pipeline-snapshot)';

INSERT INTO crm.job (name, schedule, command, builtin) VALUES
	('crm-win-rates', '30 2 * * *', 'SELECT crm.refresh_win_rates()', true),
	('crm-pipeline-snapshot', '0 1 * * 1', 'SELECT crm.snapshot_pipeline()', true);

-- What changed in the pipeline between two snapshots (by default the last
-- two): each deal's change, as the caller sees the deals.
CREATE OR REPLACE FUNCTION crm.pipeline_changes(since date DEFAULT NULL, until date DEFAULT NULL)
RETURNS TABLE (opportunity_id bigint, name text, owner text, change text, from_stage text, to_stage text,
               from_close date, to_close date, from_amount numeric, to_amount numeric)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	WITH d AS (
		SELECT coalesce(pipeline_changes.until, (SELECT max(p.taken_on) FROM crm.pipeline_snapshot p)) AS b),
	     a AS (
		SELECT coalesce(pipeline_changes.since, (SELECT max(p.taken_on) FROM crm.pipeline_snapshot p, d WHERE p.taken_on < d.b)) AS a),
	     pairs AS (
		SELECT coalesce(n.opportunity_id, o.opportunity_id) AS id, o AS was, n AS now
		  FROM (SELECT p.* FROM crm.pipeline_snapshot p, a WHERE p.taken_on = a.a) o
		  FULL JOIN (SELECT p.* FROM crm.pipeline_snapshot p, d WHERE p.taken_on = d.b) n ON n.opportunity_id = o.opportunity_id)
	SELECT x.id, k.name, e.name,
	       CASE WHEN (x.was).stage_id IS NULL THEN CASE (x.now).status WHEN 'open' THEN 'new' ELSE (x.now).status END
	            WHEN (x.now).stage_id IS NULL THEN 'gone'
	            WHEN (x.now).status <> (x.was).status THEN (x.now).status
	            WHEN tn.position > tw.position THEN 'advanced'
	            WHEN tn.position < tw.position THEN 'moved back'
	            WHEN (x.now).expected_close_on > (x.was).expected_close_on THEN 'slipped'
	            WHEN (x.now).expected_close_on < (x.was).expected_close_on THEN 'pulled in'
	            WHEN (x.now).amount <> (x.was).amount THEN 'amount changed' END,
	       tw.name, tn.name, (x.was).expected_close_on, (x.now).expected_close_on, (x.was).amount, (x.now).amount
	  FROM pairs x
	  JOIN crm.opportunity k ON k.id = x.id
	  LEFT JOIN crm.employee e ON e.id = k.owner_id
	  LEFT JOIN crm.stage tw ON tw.id = (x.was).stage_id
	  LEFT JOIN crm.stage tn ON tn.id = (x.now).stage_id
	 WHERE (x.was).stage_id IS NULL OR (x.now).stage_id IS NULL
	    OR ((x.was).stage_id, (x.was).status, (x.was).expected_close_on, (x.was).amount)
	       IS DISTINCT FROM ((x.now).stage_id, (x.now).status, (x.now).expected_close_on, (x.now).amount)
	 ORDER BY 4, 2;
END;
COMMENT ON FUNCTION crm.pipeline_changes(date, date) IS
	'What changed between two pipeline snapshots (by default the last two): new, advanced, moved back, slipped, pulled in, amount changed, won, lost, for the deals the caller sees';

-- The forecast: each open deal with what forecasts group it by, month of
-- expected close, owner (with their department) and forecast category, and
-- its amount, weighted by its probability; employees left out of statistics
-- (seed 000) are left out.  A row per deal, so that a reader, a report or a
-- BI tool groups as it needs in one pass (a view grouped by owner made every
-- coarser total group twice).  As the reader: their scope decides.
CREATE OR REPLACE VIEW crm.forecast WITH (security_invoker) AS
SELECT o.id AS opportunity_id, date_trunc('month', o.expected_close_on)::date AS month, o.owner_id, e.name AS owner,
       e.department_id, g.forecast_category, o.amount, round(o.amount * o.probability / 100, 2) AS weighted
  FROM crm.opportunity o
  JOIN crm.employee e ON e.id = o.owner_id
  JOIN crm.stage g ON g.id = o.stage_id
 WHERE o.status = 'open' AND e.in_statistics;
COMMENT ON VIEW crm.forecast IS
	'The open deals the reader sees, each with its month of expected close, owner, department and forecast category, amount and weighted amount (amount × probability): group them by what a forecast needs; owners in statistics only';
COMMENT ON COLUMN crm.forecast.opportunity_id IS 'The deal (crm.opportunity.id)';
COMMENT ON COLUMN crm.forecast.month IS 'First day of the month the deal is expected to close in (NULL: no date given)';
COMMENT ON COLUMN crm.forecast.owner_id IS 'Its owner (crm.employee.id)';
COMMENT ON COLUMN crm.forecast.owner IS 'The owner''s name';
COMMENT ON COLUMN crm.forecast.department_id IS 'The owner''s department (crm.department.id)';
COMMENT ON COLUMN crm.forecast.forecast_category IS 'Its stage''s forecast category: pipeline, best_case, commit or omitted';
COMMENT ON COLUMN crm.forecast.amount IS 'Its amount in yuan';
COMMENT ON COLUMN crm.forecast.weighted IS 'Its amount weighted by its probability: amount × probability / 100, to the fen';
GRANT SELECT ON crm.forecast TO crm_user;

-- A department's forecast with its sub-departments', by month and category.
CREATE OR REPLACE FUNCTION crm.department_forecast(department_id bigint, from_month date DEFAULT NULL, to_month date DEFAULT NULL)
RETURNS TABLE (month date, forecast_category text, deals bigint, amount numeric, weighted numeric)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	WITH RECURSIVE tree AS (
		SELECT d.id, 0 AS depth FROM crm.department d WHERE d.id = department_forecast.department_id
		UNION ALL
		SELECT d.id, tree.depth + 1 FROM tree JOIN crm.department d ON d.parent_id = tree.id WHERE tree.depth < 64)
	SELECT f.month, f.forecast_category, count(*), sum(f.amount), sum(f.weighted)
	  FROM crm.forecast f
	 WHERE f.department_id IN (SELECT tree.id FROM tree)
	   AND (department_forecast.from_month IS NULL OR f.month >= date_trunc('month', department_forecast.from_month))
	   AND (department_forecast.to_month IS NULL OR f.month <= date_trunc('month', department_forecast.to_month))
	 GROUP BY f.month, f.forecast_category
	 ORDER BY 1 NULLS LAST, 2;
END;
COMMENT ON FUNCTION crm.department_forecast(bigint, date, date) IS
	'The forecast (crm.forecast) of a department and its sub-departments by month and forecast category, for the deals the caller sees';

-- Forecast accuracy, shown rather than assumed: for each month, the weighted
-- pipeline expected to close in it as the last snapshot before it began saw
-- it, beside what was won in it.
CREATE OR REPLACE VIEW crm.forecast_accuracy WITH (security_invoker) AS
WITH months AS (
	SELECT DISTINCT date_trunc('month', o.closed_on)::date AS month FROM crm.opportunity o WHERE o.status = 'won'
	UNION
	SELECT DISTINCT date_trunc('month', p.expected_close_on)::date FROM crm.pipeline_snapshot p WHERE p.expected_close_on IS NOT NULL)
SELECT m.month,
       (SELECT max(p.taken_on) FROM crm.pipeline_snapshot p WHERE p.taken_on <= m.month) AS snapshot_on,
       (SELECT round(coalesce(sum(p.amount * p.probability / 100), 0), 2)
          FROM crm.pipeline_snapshot p JOIN crm.employee e ON e.id = p.owner_id AND e.in_statistics
         WHERE p.taken_on = (SELECT max(s.taken_on) FROM crm.pipeline_snapshot s WHERE s.taken_on <= m.month)
           AND p.status = 'open' AND date_trunc('month', p.expected_close_on) = m.month) AS forecast,
       (SELECT coalesce(sum(o.amount), 0) FROM crm.opportunity o JOIN crm.employee e ON e.id = o.owner_id AND e.in_statistics
         WHERE o.status = 'won' AND date_trunc('month', o.closed_on) = m.month) AS won
  FROM months m;
COMMENT ON VIEW crm.forecast_accuracy IS
	'Per month: the weighted forecast of the deals expected to close in it, as the last snapshot before the month saw them, beside the amount won in it; for the deals the reader sees, owners in statistics only';
COMMENT ON COLUMN crm.forecast_accuracy.month IS 'First day of the month';
COMMENT ON COLUMN crm.forecast_accuracy.snapshot_on IS 'The snapshot the forecast comes from: the last taken on or before the month''s first day';
COMMENT ON COLUMN crm.forecast_accuracy.forecast IS 'The weighted amount of the open deals expected to close in the month, as that snapshot saw them';
COMMENT ON COLUMN crm.forecast_accuracy.won IS 'The amount of the deals won in the month';
GRANT SELECT ON crm.forecast_accuracy TO crm_user;
