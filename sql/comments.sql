-- Every table, view and column of crm, and every function staff may call,
-- carries a COMMENT, so that BI tools and API schemas (PostgREST,
-- PostGraphile) explain themselves.  A custom field's column is left out: it
-- is the administrator's, described by its crm.added_field row.
SELECT c.oid::regclass AS uncommented_relation
  FROM pg_class c
 WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND obj_description(c.oid, 'pg_class') IS NULL
 ORDER BY 1::text;
SELECT format('%s.%I', c.oid::regclass, a.attname) AS uncommented_column
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND col_description(c.oid, a.attnum) IS NULL
   AND NOT EXISTS (SELECT FROM crm.added_field f WHERE f.record_type = c.relname AND f.name = a.attname)
 ORDER BY 1;
SELECT p.oid::regprocedure AS uncommented_function
  FROM pg_proc p
 WHERE p.pronamespace = 'crm'::regnamespace AND has_function_privilege('crm_user', p.oid, 'EXECUTE')
   AND obj_description(p.oid, 'pg_proc') IS NULL
 ORDER BY 1::text;
-- (not vacuous)
SELECT count(*) > 500 AS columns_checked
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind IN ('r', 'v');
