-- Periodic work.  crm.job lists what should run and when (a DBA may change the
-- schedule or disable a job); crm.schedule_jobs() hands the list to pg_cron.
-- Every job is an idempotent function that can also be called by hand and that
-- records what it did in crm.job_run.

CREATE TABLE crm.job (
	name      text NOT NULL,
	schedule  text NOT NULL,
	command   text NOT NULL,
	enabled   boolean NOT NULL DEFAULT true,
	builtin   boolean NOT NULL DEFAULT false,
	CONSTRAINT job_pkey PRIMARY KEY (name),
	CONSTRAINT job_name_check CHECK (name ~ '^crm-[a-z0-9-]+$'),
	-- pg_cron 1.4 (Debian 12) takes five-field cron schedules in GMT
	CONSTRAINT job_schedule_check CHECK (schedule ~ '^\S+( \S+){4}$')
);
COMMENT ON TABLE crm.job IS 'Jobs crm.schedule_jobs() registers with pg_cron; edit schedule or enabled, then call it again';
COMMENT ON COLUMN crm.job.name IS 'Job name, crm-<name>; the pg_cron job''s name';
COMMENT ON COLUMN crm.job.schedule IS 'Five-field cron schedule, in GMT (pg_cron)';
COMMENT ON COLUMN crm.job.command IS 'SQL the job runs';
COMMENT ON COLUMN crm.job.enabled IS 'Whether crm.schedule_jobs() registers the job';
COMMENT ON COLUMN crm.job.builtin IS 'Shipped with crm (a dump leaves it out); kept by crm; not writable';

SELECT crm.keep_builtin_edits('crm.job', 'name');

-- The values a cron field stands for (pg_cron's syntax: *, n, a-b, each with
-- /step, in a comma list; month and weekday names), or NULL when it stands for
-- none pg_cron would run.
CREATE OR REPLACE FUNCTION crm.cron_values(field text, lo integer, hi integer) RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	item   text;
	m      text[];
	a      integer;
	b      integer;
	result integer[] := '{}';
BEGIN
	field := lower(field);
	IF hi = 12 THEN
		FOR a IN 1 .. 12 LOOP
			field := replace(field, (ARRAY['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'])[a], a::text);
		END LOOP;
	ELSIF hi = 7 THEN
		FOR a IN 0 .. 6 LOOP
			field := replace(field, (ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'])[a + 1], a::text);
		END LOOP;
	END IF;
	FOREACH item IN ARRAY string_to_array(field, ',') LOOP
		m := regexp_match(item, '^(?:(\*)|(\d{1,2})(?:-(\d{1,2}))?)(?:/(\d{1,2}))?$');
		IF m IS NULL OR m[4]::integer = 0 THEN
			RETURN NULL;
		END IF;
		a := coalesce(m[2]::integer, lo);
		b := CASE WHEN m[1] IS NOT NULL OR (m[3] IS NULL AND m[4] IS NOT NULL) THEN hi ELSE coalesce(m[3]::integer, a) END;
		IF a < lo OR b > hi OR a > b THEN
			RETURN NULL;
		END IF;
		result := result || ARRAY(SELECT generate_series(a, b, coalesce(m[4]::integer, 1)));
	END LOOP;
	RETURN ARRAY(SELECT DISTINCT v FROM unnest(result) v ORDER BY v);
END
$$;

-- A cron field for the values, as written when they are the same ones (*/2
-- shifted by whole days of hours is still */2), else as a list of runs (0-12).
CREATE OR REPLACE FUNCTION crm.cron_field(written text, vals integer[], lo integer, hi integer) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN ARRAY(SELECT DISTINCT v FROM unnest(vals) v ORDER BY v) = crm.cron_values(written, lo, hi) THEN written
            ELSE (SELECT string_agg(CASE WHEN r.a = r.b THEN r.a::text ELSE r.a || '-' || r.b END, ',' ORDER BY r.a)
                    FROM (SELECT min(x.v) AS a, max(x.v) AS b
                            FROM (SELECT d.v, d.v - row_number() OVER (ORDER BY d.v) AS run
                                    FROM (SELECT DISTINCT v FROM unnest(vals) v) d) x
                           GROUP BY x.run) r) END;

-- pg_cron 1.4 (Debian 12) reads schedules in UTC; crm.job's are in the
-- company's time zone (crm.settings.timezone).  The same schedule in UTC, at
-- the zone's offset now, or an error naming what one cron line cannot say
-- (a day of the month that moves, minutes that carry differently).
CREATE OR REPLACE FUNCTION crm.cron_in_utc(schedule text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tz      text := (SELECT s.timezone FROM crm.settings s);
	delta   integer := -round(extract(epoch FROM (now() AT TIME ZONE tz) - (now() AT TIME ZONE 'UTC')) / 60)::integer;
	f       text[] := regexp_split_to_array(schedule, ' ');
	dmin    integer := ((delta % 60) + 60) % 60;
	dhour   integer := (delta - dmin) / 60;
	carry   integer[];
	hours   integer[];
	days    integer[];
	problem text;
BEGIN
	IF delta = 0 THEN
		RETURN schedule;
	END IF;
	-- minutes: each moves by dmin, and the hour with it when it passes 59
	IF f[1] = '*' THEN
		IF dmin <> 0 AND f[2] <> '*' THEN
			problem := 'every minute of its hours would start and end mid-hour';
		END IF;
	ELSIF dmin <> 0 THEN
		-- (every hour's minutes are every hour's, whatever they carry)
		carry := ARRAY(SELECT DISTINCT (m + dmin) / 60 FROM unnest(crm.cron_values(f[1], 0, 59)) m);
		IF cardinality(carry) > 1 AND f[2] <> '*' THEN
			problem := format('minutes %s would fall in different hours', f[1]);
		END IF;
		f[1] := crm.cron_field(f[1], ARRAY(SELECT (m + dmin) % 60 FROM unnest(crm.cron_values(f[1], 0, 59)) m), 0, 59);
	END IF;
	-- hours: each moves by dhour (and the minutes' carry), the day with it past midnight
	IF f[2] <> '*' AND problem IS NULL THEN
		hours := ARRAY(SELECT h + dhour + coalesce(carry[1], 0) FROM unnest(crm.cron_values(f[2], 0, 23)) h);
		days := ARRAY(SELECT DISTINCT floor(h / 24.0)::integer FROM unnest(hours) h);
		f[2] := crm.cron_field(f[2], ARRAY(SELECT ((h % 24) + 24) % 24 FROM unnest(hours) h), 0, 23);
		IF (f[3] <> '*' OR f[5] <> '*') AND cardinality(days) > 1 THEN
			problem := format('hours %s would fall on different days', split_part(schedule, ' ', 2));
		ELSIF f[3] <> '*' AND days[1] <> 0 THEN
			problem := format('day of the month %s would be another day', f[3]);
		ELSIF f[5] <> '*' AND days[1] <> 0 THEN
			f[5] := crm.cron_field(f[5], ARRAY(SELECT (((d % 7) + days[1]) % 7 + 7) % 7 FROM unnest(crm.cron_values(f[5], 0, 7)) d), 0, 7);
		END IF;
	ELSIF problem IS NULL AND (f[3] <> '*' OR f[5] <> '*') THEN
		problem := 'every hour of its days would span two days';
	END IF;
	IF problem IS NOT NULL THEN
		RAISE EXCEPTION 'schedule "%" in time zone % is no single schedule in UTC', schedule, tz
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('pg_cron reads schedules in UTC, %s minutes off %s, where %s.', -delta, tz, problem),
			      HINT = 'Choose a time of day that is the same day in UTC, with minutes that stay in one hour, or run the job on every day (*).';
	END IF;
	RETURN array_to_string(f, ' ');
END
$$;
COMMENT ON FUNCTION crm.cron_in_utc(text) IS
	'A crm.job schedule (in crm.settings.timezone) as pg_cron reads it, in UTC at the zone''s offset now';

-- A schedule is checked when written: every field within its range, and
-- expressible in UTC (crm.cron_in_utc).
CREATE OR REPLACE FUNCTION crm.job_schedule_valid() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	f   text[];
	bad text;
BEGIN
	IF TG_RELID <> 'crm.job'::regclass THEN RAISE 'crm.job_schedule_valid() runs only on crm.job, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- (a list of thousands of values would cost a core for long, and pg_cron refuses it)
	IF length(NEW.schedule) > 100 THEN
		RAISE EXCEPTION 'job "%" cannot run on a schedule of % characters', crm.clip(NEW.name), length(NEW.schedule)
			USING ERRCODE = 'check_violation',
			      HINT = 'A schedule has at most 100 characters: use ranges (1-5) and steps (*/10) rather than long lists.';
	END IF;
	f := regexp_split_to_array(NEW.schedule, ' ');
	SELECT format('its %s field "%s" is not %s', x.what, v.field, x.span) INTO bad
	  FROM (VALUES (1, 'minute', 0, 59, 'from 0 to 59'), (2, 'hour', 0, 23, 'from 0 to 23'),
	               (3, 'day of the month', 1, 31, 'from 1 to 31'), (4, 'month', 1, 12, 'from 1 to 12 (or jan to dec)'),
	               (5, 'day of the week', 0, 7, 'from 0 to 7 (or sun to sat; 0 and 7 are Sunday)')) x(n, what, lo, hi, span)
	       CROSS JOIN LATERAL (SELECT f[x.n] AS field) v
	 WHERE cardinality(f) = 5 AND crm.cron_values(f[x.n], x.lo, x.hi) IS NULL
	 ORDER BY x.n LIMIT 1;
	IF cardinality(f) <> 5 OR bad IS NOT NULL THEN
		RAISE EXCEPTION 'job "%" cannot run on schedule "%"', crm.clip(NEW.name), crm.clip(NEW.schedule)
			USING ERRCODE = 'check_violation',
			      DETAIL = coalesce(initcap(left(bad, 1)) || substr(bad, 2) || '.', 'A schedule has five fields separated by single spaces.'),
			      HINT = 'Five fields: minute hour day-of-month month day-of-week, each *, a number, a range a-b, a step */n or a list of them, in crm.settings.timezone: 17 3 * * * is 03:17 every day.';
	END IF;
	PERFORM crm.cron_in_utc(NEW.schedule);
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER job_schedule_valid BEFORE INSERT OR UPDATE OF schedule ON crm.job
	FOR EACH ROW EXECUTE FUNCTION crm.job_schedule_valid();

CREATE TABLE crm.job_run (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	job          text NOT NULL,
	started_at   timestamptz NOT NULL,
	finished_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
	processed    integer NOT NULL,
	details      jsonb NOT NULL DEFAULT '{}',
	CONSTRAINT job_run_pkey PRIMARY KEY (id)
);
COMMENT ON COLUMN crm.job_run.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.job_run.job IS 'Job name (crm.job.name); kept by crm; not writable';
COMMENT ON COLUMN crm.job_run.started_at IS 'When the run started; kept by crm; not writable';
COMMENT ON COLUMN crm.job_run.finished_at IS 'When the run finished; kept by crm; not writable';
COMMENT ON COLUMN crm.job_run.processed IS 'Rows the run processed; kept by crm; not writable';
COMMENT ON COLUMN crm.job_run.details IS 'What the run did, per kind, as JSON; kept by crm; not writable';
CREATE INDEX job_run_job_idx ON crm.job_run (job, started_at DESC);
COMMENT ON TABLE crm.job_run IS 'What each job run did: rows processed and why';

-- Housekeeping: prune old run logs (ours, and pg_cron's for our jobs), the
-- IM deliveries that were settled long ago (the inbox itself is kept) and the
-- duplicate keys claimed by transactions every snapshot sees as ended; warn
-- when the stored duplicate keys were built with another ICU (crm.key_check()).
CREATE OR REPLACE FUNCTION crm.run_housekeeping(keep interval DEFAULT '30 days') RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	started    timestamptz := clock_timestamp();
	own        integer;
	cron_runs  integer := 0;
	deliveries integer;
	claims     integer;
BEGIN
	PERFORM crm.key_check();
	DELETE FROM crm.job_run WHERE started_at < started - keep;
	GET DIAGNOSTICS own = ROW_COUNT;
	DELETE FROM crm.im_delivery
	 WHERE status IN ('sent', 'dead') AND coalesce(sent_at, next_attempt_at) < started - keep;
	GET DIAGNOSTICS deliveries = ROW_COUNT;
	-- a settled claim that a running transaction claims again is its now: skip it
	DELETE FROM crm.dedupe_claim
	 WHERE key IN (SELECT c.key FROM crm.dedupe_claim c
	                WHERE age(c.xmin) > age(crm.xid_horizon('crm.dedupe_claim'))
	                  FOR UPDATE SKIP LOCKED);
	GET DIAGNOSTICS claims = ROW_COUNT;
	IF to_regclass('cron.job_run_details') IS NOT NULL THEN
		DELETE FROM cron.job_run_details d
		 USING cron.job j
		 WHERE j.jobid = d.jobid AND j.jobname LIKE 'crm-%' AND d.end_time < started - keep;
		GET DIAGNOSTICS cron_runs = ROW_COUNT;
	END IF;
	INSERT INTO crm.job_run (job, started_at, processed, details)
	VALUES ('crm-housekeeping', started, own + cron_runs + deliveries + claims,
	        jsonb_build_object('job_run_deleted', own, 'cron_run_details_deleted', cron_runs,
	                           'im_deliveries_deleted', deliveries, 'dedupe_claims_deleted', claims));
	RETURN own + cron_runs + deliveries + claims;
END
$$;

INSERT INTO crm.job (name, schedule, command, builtin) VALUES
	('crm-housekeeping', '17 3 * * *', 'SELECT crm.run_housekeeping()', true);

CREATE OR REPLACE FUNCTION crm.schedule_jobs() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	j         record;
	scheduled integer := 0;
	commands  text;
BEGIN
	IF to_regnamespace('cron') IS NULL OR to_regclass('cron.job') IS NULL THEN
		SELECT string_agg(format('SELECT cron.schedule_in_database(%L, %L, %L, %L);',
		                         name, crm.cron_in_utc(schedule), command, current_database()), E'\n' ORDER BY name)
		  INTO commands FROM crm.job WHERE enabled;
		RAISE EXCEPTION 'pg_cron is not installed in database "%"', current_database()
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('crm.schedule_jobs() registers crm.job rows with pg_cron, whose database is "%s" (cron.database_name).',
			                      current_setting('cron.database_name', true)),
			      HINT = E'Run CREATE EXTENSION pg_cron here if this is the cron database; otherwise run in the cron database:\n' || commands;
	END IF;
	FOR j IN SELECT * FROM crm.job ORDER BY name LOOP
		IF j.enabled THEN
			PERFORM cron.schedule_in_database(j.name, crm.cron_in_utc(j.schedule), j.command, current_database());
			scheduled := scheduled + 1;
		ELSIF EXISTS (SELECT FROM cron.job WHERE jobname = j.name AND username = current_user) THEN
			PERFORM cron.unschedule(j.name);
		END IF;
	END LOOP;
	RETURN scheduled;
END
$$;
COMMENT ON FUNCTION crm.schedule_jobs() IS 'Register the enabled rows of crm.job with pg_cron, in UTC (and drop disabled ones); idempotent';

-- A crm_admin's change of a schedule, and a change of the company's time
-- zone, reach pg_cron at once where pg_cron is installed (crm.schedule_jobs
-- as the owner, who may schedule); elsewhere a notice says what to run.
CREATE OR REPLACE FUNCTION crm.jobs_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID NOT IN ('crm.job'::regclass, 'crm.settings'::regclass) THEN RAISE 'crm.jobs_changed() runs only on crm.job and crm.settings, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() THEN
		RETURN NULL;
	ELSIF to_regclass('cron.job') IS NULL THEN
		RAISE NOTICE 'pg_cron is not installed in database "%": the change reaches it when a superuser runs SELECT crm.schedule_jobs() where it is', current_database();
	ELSE
		PERFORM crm.schedule_jobs();
	END IF;
	RETURN NULL;
END
$$;
-- (by row: a statement that changes nothing, such as the update by which a
-- builtin row is redefined, says nothing)
CREATE OR REPLACE TRIGGER job_changed AFTER UPDATE OF schedule, enabled ON crm.job
	FOR EACH ROW WHEN (OLD.schedule IS DISTINCT FROM NEW.schedule OR OLD.enabled IS DISTINCT FROM NEW.enabled)
	EXECUTE FUNCTION crm.jobs_changed();
CREATE OR REPLACE TRIGGER settings_timezone_changed AFTER UPDATE OF timezone ON crm.settings
	FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone) EXECUTE FUNCTION crm.jobs_changed();

-- Jobs registered already (an update: 0.1 registered schedules as UTC) are
-- registered again, as the company's time; a fresh install leaves pg_cron to
-- the superuser's crm.schedule_jobs().
DO $jobs$
BEGIN
	-- (nested: cron.job is named only where it exists)
	IF to_regclass('cron.job') IS NOT NULL THEN
		IF EXISTS (SELECT FROM cron.job j WHERE j.jobname LIKE 'crm-%') THEN
			PERFORM crm.schedule_jobs();
		END IF;
	END IF;
END
$jobs$;

GRANT SELECT ON crm.job, crm.job_run TO crm_admin;
GRANT UPDATE (schedule, enabled) ON crm.job TO crm_admin;

SELECT pg_catalog.pg_extension_config_dump('crm.job', 'WHERE NOT builtin');
