-- The regression suite on a database updated from 0.1 (make installcheck
-- UPDATE_FROM=0.1 runs this first; test/run.sh does): crm 0.1 is installed, then
-- updated to the version in the making, and every later test runs on the result.
CREATE EXTENSION crm VERSION '0.1';
ALTER EXTENSION crm UPDATE;
SELECT e.extversion = a.default_version AS updated, e.extversion <> '0.1' AS past_0_1
  FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname
 WHERE e.extname = 'crm';
