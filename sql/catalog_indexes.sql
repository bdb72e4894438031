-- Every foreign key in schema crm has an index whose leading columns are the key's
-- columns: deleting or merging a referenced row then finds the referencing rows by
-- index, not by scanning the referencing table once per row.
SELECT c.conrelid::regclass AS "table", c.conname AS foreign_key
  FROM pg_constraint c
 WHERE c.contype = 'f'
   AND c.connamespace = 'crm'::regnamespace
   AND NOT EXISTS (
	SELECT FROM pg_index i
	 WHERE i.indrelid = c.conrelid
	   AND i.indpred IS NULL
	   AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
	   AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
 ORDER BY 1, 2;
-- duplicate_set names its record and its match by type and id, without foreign keys:
-- merges and deletions look both up
SELECT k.cols AS duplicate_set_lookup, (
	SELECT string_agg(i.indexrelid::regclass::text, ', ') FROM pg_index i
	 WHERE i.indrelid = 'crm.duplicate_set'::regclass AND i.indpred IS NULL
	   AND (i.indkey::int2[])[0:1] = ARRAY(SELECT a.attnum FROM unnest(k.cols) WITH ORDINALITY c(name, n)
	                                      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attname = c.name
	                                     ORDER BY c.n)) AS "index"
  FROM (VALUES (ARRAY['record_type', 'record_id']::name[]), (ARRAY['match_type', 'match_id']::name[])) k(cols);
