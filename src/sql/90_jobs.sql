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
		                         name, schedule, command, current_database()), E'\n' ORDER BY name)
		  INTO commands FROM crm.job WHERE enabled;
		RAISE EXCEPTION 'pg_cron is not installed in database "%"', current_database()
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('crm.schedule_jobs() registers crm.job rows with pg_cron, whose database is "%s" (cron.database_name).',
			                      current_setting('cron.database_name', true)),
			      HINT = E'Run CREATE EXTENSION pg_cron here if this is the cron database; otherwise run in the cron database:\n' || commands;
	END IF;
	FOR j IN SELECT * FROM crm.job ORDER BY name LOOP
		IF j.enabled THEN
			PERFORM cron.schedule_in_database(j.name, j.schedule, j.command, current_database());
			scheduled := scheduled + 1;
		ELSIF EXISTS (SELECT FROM cron.job WHERE jobname = j.name AND username = current_user) THEN
			PERFORM cron.unschedule(j.name);
		END IF;
	END LOOP;
	RETURN scheduled;
END
$$;
COMMENT ON FUNCTION crm.schedule_jobs() IS 'Register the enabled rows of crm.job with pg_cron (and drop disabled ones); idempotent';

GRANT SELECT ON crm.job, crm.job_run TO crm_admin;
GRANT UPDATE (schedule, enabled) ON crm.job TO crm_admin;

SELECT pg_catalog.pg_extension_config_dump('crm.job', 'WHERE NOT builtin');
