-- Duplicate keys are computed by ICU: crm records the version the stored keys were
-- built with, warns when the server runs another, and rebuilds them on request.
SELECT crm.icu_version() ~ '^\d+(\.\d+)+$' AS icu_version_reported,
       (SELECT icu_version FROM crm.key_build) = crm.icu_version() AS recorded_at_install;
SELECT crm.key_check();

-- as after an ICU upgrade: the keys were built with another version
UPDATE crm.key_build SET icu_version = '1.0';
\set VERBOSITY terse
SELECT crm.key_check();
BEGIN;
SELECT crm.run_housekeeping() >= 0 AS housekeeping_ran;
ROLLBACK;
\set VERBOSITY default
-- neither staff nor their API may rebuild nor read what was recorded
CREATE ROLE keys_user LOGIN IN ROLE crm_user;
SET ROLE keys_user;
SELECT crm.rebuild_keys();
SELECT * FROM crm.key_build;
SELECT crm.key_check();
RESET ROLE;

-- a customer named before the rebuild keeps its keys, matches as before, and nothing
-- else about it changes: no new version, no new stamp, no log entry
INSERT INTO crm.department (name) VALUES ('Keys dept');
INSERT INTO crm.employee (name, department_id) SELECT 'Keys rep', id FROM crm.department WHERE name = 'Keys dept';
INSERT INTO crm.customer (name, owner_id, uscc)
SELECT '杭州 华为（中国）有限公司', id, crm.uscc_with_check('91330100MA2E00001') FROM crm.employee WHERE name = 'Keys rep';
CREATE TEMP TABLE keys_before AS
SELECT id, name_key, name_pinyin, name_initials, updated_at, xmin::text::bigint AS version FROM crm.customer WHERE name LIKE '杭州 华为%';
SELECT count(*) AS oplog_before FROM crm.oplog \gset
SELECT crm.rebuild_keys() AS keys_rewritten;
SELECT c.name_key, c.name_pinyin, c.name_initials, c.updated_at = b.updated_at AS same_stamp,
       c.xmin::text::bigint = b.version AS row_untouched
  FROM crm.customer c JOIN keys_before b USING (id);
SELECT count(*) - :oplog_before AS new_log_entries FROM crm.oplog;
SELECT (SELECT icu_version FROM crm.key_build) = crm.icu_version() AS recorded_again, crm.key_check();
DELETE FROM crm.customer WHERE name LIKE '杭州 华为%';

-- parallel workers compute keys too: a worker loads the Chinese words under the
-- query's snapshot (a parallel operation cannot take one of its own)
SET force_parallel_mode = on;
SELECT crm.dedupe_key('company', '杭州' || g || '号茶叶有限公司') AS key FROM generate_series(1, 2) g;
RESET force_parallel_mode;
