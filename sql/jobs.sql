-- Periodic work: crm.job rows, crm.schedule_jobs() and the run log
SELECT name, schedule, command, enabled, builtin FROM crm.job ORDER BY name;

-- without pg_cron in this database, scheduling says what to run where
\set SHOW_CONTEXT never
SELECT crm.schedule_jobs();
\echo :LAST_ERROR_SQLSTATE

CREATE EXTENSION pg_cron;
SELECT crm.schedule_jobs() AS scheduled;
SELECT jobname, schedule, command, database FROM cron.job ORDER BY jobname;
-- idempotent
SELECT crm.schedule_jobs() AS scheduled;
SELECT count(*) AS cron_jobs FROM cron.job;

-- a DBA reschedules a builtin job: the row becomes the DBA's and pg_dump keeps it
UPDATE crm.job SET schedule = '45 2 * * *' WHERE name = 'crm-housekeeping';
SELECT name, schedule, builtin FROM crm.job ORDER BY name;
-- (back to the shipped row; only a superuser disabling the trigger can do that)
ALTER TABLE crm.job DISABLE TRIGGER job_builtin_edited;
UPDATE crm.job SET schedule = '17 3 * * *', builtin = true WHERE name = 'crm-housekeeping';
ALTER TABLE crm.job ENABLE TRIGGER job_builtin_edited;
-- a restore inserting the edited row updates the builtin one instead of failing
INSERT INTO crm.job (name, schedule, command) VALUES ('crm-housekeeping', '45 2 * * *', 'SELECT crm.run_housekeeping()');
SELECT name, schedule, builtin FROM crm.job ORDER BY name;
SELECT crm.schedule_jobs() AS scheduled;
SELECT jobname, schedule FROM cron.job ORDER BY jobname;

-- disabling a job unschedules it
UPDATE crm.job SET enabled = false WHERE name = 'crm-housekeeping';
SELECT crm.schedule_jobs() AS scheduled;
SELECT count(*) AS cron_jobs FROM cron.job;

-- bad rows are refused
INSERT INTO crm.job (name, schedule, command) VALUES ('nightly', '0 1 * * *', 'SELECT 1');
INSERT INTO crm.job (name, schedule, command) VALUES ('crm-fast', '30 seconds', 'SELECT 1');

-- jobs run by hand too, and log what they did
INSERT INTO crm.job_run (job, started_at, processed) VALUES ('crm-old', now() - interval '90 days', 5);
-- settled IM deliveries older than 30 days go; pending and recent ones stay
INSERT INTO crm.im_delivery (notification_id, channel_id, status, next_attempt_at, sent_at) VALUES
	(1, 1, 'sent', now() - interval '90 days', now() - interval '90 days'),
	(2, 1, 'dead', now() - interval '40 days', NULL),
	(3, 1, 'sent', now() - interval '2 days', now() - interval '2 days'),
	(4, 1, 'pending', now() - interval '90 days', NULL);
-- a duplicate key claimed by an ended transaction goes; one claimed by a
-- running transaction stays (here: the housekeeping's own)
DELETE FROM crm.dedupe_claim;
INSERT INTO crm.dedupe_claim VALUES (42);
BEGIN;
INSERT INTO crm.dedupe_claim VALUES (43);
SELECT crm.run_housekeeping() AS removed;
SELECT key FROM crm.dedupe_claim;
ROLLBACK;
SELECT crm.run_housekeeping() AS removed;
SELECT key FROM crm.dedupe_claim;
SELECT job, processed, details FROM crm.job_run ORDER BY id;
SELECT notification_id, status FROM crm.im_delivery ORDER BY notification_id;
DELETE FROM crm.im_delivery;

-- crm_admin may neither run nor schedule jobs, nor change what they run: only when
CREATE ROLE regress_admin IN ROLE crm_admin;
SET ROLE regress_admin;
SELECT crm.run_housekeeping();
SELECT crm.schedule_jobs();
UPDATE crm.job SET command = 'SELECT pg_sleep(1)';
UPDATE crm.job SET schedule = '0 4 * * *' WHERE name = 'crm-housekeeping';
RESET ROLE;
-- and that change reaches pg_cron at once (here the job was disabled above:
-- enabling it is a change too), in UTC: 04:00 in Beijing is 20:00 UTC
SET ROLE regress_admin;
UPDATE crm.job SET enabled = true WHERE name = 'crm-housekeeping';
RESET ROLE;
SELECT jobname, schedule FROM cron.job ORDER BY jobname;

-- schedules are checked when written, and read in the company's time zone
UPDATE crm.job SET schedule = '99 * * * *' WHERE name = 'crm-housekeeping';
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.job SET schedule = '0 3 * *' WHERE name = 'crm-housekeeping';
UPDATE crm.job SET schedule = '0 3 * 13 *' WHERE name = 'crm-housekeeping';
UPDATE crm.job SET schedule = '*/0 * * * *' WHERE name = 'crm-housekeeping';
UPDATE crm.job SET schedule = (SELECT string_agg('*/1', ',') FROM generate_series(1, 20000)) || ' 3 * * *' WHERE name = 'crm-housekeeping';
SELECT s AS beijing, crm.cron_in_utc(s) AS utc
  FROM unnest(ARRAY['17 3 * * *', '*/5 * * * *', '40 */2 * * *', '30 2 * * mon', '0 8-20 * * 1-5', '0,30 9 * jan-mar *']) s;
-- the first of the month at 03:00 in Beijing is another day in UTC: no single line says it
SELECT crm.cron_in_utc('0 3 1 * *');
UPDATE crm.settings SET timezone = 'Asia/Kolkata';
SELECT s AS kolkata, crm.cron_in_utc(s) AS utc FROM unnest(ARRAY['0 9 * * *', '15 3 * * 1']) s;
SELECT crm.cron_in_utc('0,45 9 * * *');
-- a company that moves its time zone has its jobs moved with it
SELECT jobname, schedule FROM cron.job WHERE jobname = 'crm-housekeeping';
UPDATE crm.settings SET timezone = 'Asia/Shanghai';

ALTER TABLE crm.job DISABLE TRIGGER job_builtin_edited;
UPDATE crm.job SET enabled = true, builtin = true, schedule = '17 3 * * *' WHERE name = 'crm-housekeeping';
ALTER TABLE crm.job ENABLE TRIGGER job_builtin_edited;
DROP EXTENSION pg_cron;
DELETE FROM crm.job_run;
DROP ROLE regress_admin;
