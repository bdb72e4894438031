-- Reading the shared tables under row-level security, as bench_manager (about 10%
-- of the customers in his department tree) and bench_sales (scope self):
--   *_oplog_count     the operation log he may read (~600,000 rows in all)
--   *_tag_count       the tags he may read (~300,000 in all)
--   *_timeline_page   the latest 50 entries of his customers' timeline
--                     (crm.timeline: creations, follow-ups, logged changes)
-- The baseline runs the same query on the same tables as a superuser, which row-level
-- security leaves alone and the planner hook too (no scope function is called),
-- with the visible owners written in, as bench/scope_reads.sql does for customers.

-- needs: customers follow_ups shared
-- setup
-- (the rows are made by generate.sql; the baseline's timeline is crm.timeline's
-- union written by hand, with the visible owners and the reader given)
CREATE OR REPLACE FUNCTION bench_baseline.timeline_page(owners bigint[], me bigint)
	RETURNS TABLE (record_type text, record_id bigint, at timestamptz, kind text, employee_id bigint,
	               detail text, summary text, changes jsonb)
LANGUAGE sql STABLE AS $$
SELECT * FROM (
	SELECT 'customer' AS record_type, r.id AS record_id, r.created_at AS at, 'insert' AS kind, r.created_by AS employee_id,
	       NULL::text AS detail, NULL::text AS summary, NULL::jsonb AS changes
	  FROM crm.customer r WHERE r.owner_id = ANY (owners)
	UNION ALL
	SELECT f.record_type, f.record_id, f.created_at, 'follow_up', f.created_by, f.method, f.content, NULL
	  FROM crm.follow_up f JOIN crm.customer r ON r.id = f.record_id
	 WHERE f.record_type = 'customer' AND r.owner_id = ANY (owners)
	UNION ALL
	SELECT o.record_type, o.record_id, o.at,
	       CASE WHEN o.action = 'update' AND o.changes ? 'owner_id' THEN 'owner_change'
	            WHEN o.action = 'update' AND o.changes ? 'status_id' THEN 'status_change' ELSE o.action END,
	       o.employee_id, o.source, NULL, o.changes
	  FROM crm.oplog o
	 WHERE o.action <> 'insert' AND o.record_type = 'customer' AND (o.employee_id = me OR (o.scope_type IN ('customer', 'lead') AND o.scope_owner = ANY (owners)))
	UNION ALL
	SELECT 'customer', h.customer_id, h.changed_at, 'owner_change', h.changed_by, h.kind, h.reason,
	       jsonb_build_object('owner_id', jsonb_build_array(h.from_owner, h.to_owner))
	  FROM crm.customer_owner_change h
	 WHERE h.kind <> 'transfer'
	   AND (h.customer_id IN (SELECT c.id FROM crm.customer c WHERE c.owner_id = ANY (owners)) OR me IN (h.from_owner, h.to_owner))
) t ORDER BY at DESC LIMIT 50
$$;

-- crm manager_oplog_count
SET ROLE bench_manager;
SELECT count(*) FROM crm.oplog;
-- repeat 20
\timing on
SELECT count(*) FROM crm.oplog;

-- baseline manager_oplog_count
SELECT owners FROM bench_baseline.visible WHERE who = 'bench_manager' \gset
SELECT id AS me FROM crm.employee WHERE db_role = 'bench_manager' \gset
SELECT count(*) FROM crm.oplog WHERE employee_id = :me OR (scope_type IN ('customer', 'lead') AND scope_owner = ANY (:'owners'::bigint[]));
-- repeat 20
\timing on
SELECT count(*) FROM crm.oplog WHERE employee_id = :me OR (scope_type IN ('customer', 'lead') AND scope_owner = ANY (:'owners'::bigint[]));

-- crm sales_oplog_count
SET ROLE bench_sales;
SELECT count(*) FROM crm.oplog;
-- repeat 100
\timing on
SELECT count(*) FROM crm.oplog;

-- baseline sales_oplog_count
SELECT owners FROM bench_baseline.visible WHERE who = 'bench_sales' \gset
SELECT id AS me FROM crm.employee WHERE db_role = 'bench_sales' \gset
SELECT count(*) FROM crm.oplog WHERE employee_id = :me OR (scope_type IN ('customer', 'lead') AND scope_owner = ANY (:'owners'::bigint[]));
-- repeat 100
\timing on
SELECT count(*) FROM crm.oplog WHERE employee_id = :me OR (scope_type IN ('customer', 'lead') AND scope_owner = ANY (:'owners'::bigint[]));

-- crm manager_tag_count
SET ROLE bench_manager;
SELECT count(*) FROM crm.record_tag;
-- repeat 20
\timing on
SELECT count(*) FROM crm.record_tag;

-- baseline manager_tag_count
SELECT owners FROM bench_baseline.visible WHERE who = 'bench_manager' \gset
SELECT count(*) FROM crm.record_tag WHERE scope_type IN ('customer', 'lead') AND scope_owner = ANY (:'owners'::bigint[]);
-- repeat 20
\timing on
SELECT count(*) FROM crm.record_tag WHERE scope_type IN ('customer', 'lead') AND scope_owner = ANY (:'owners'::bigint[]);

-- crm sales_tag_count
SET ROLE bench_sales;
SELECT count(*) FROM crm.record_tag;
-- repeat 100
\timing on
SELECT count(*) FROM crm.record_tag;

-- baseline sales_tag_count
SELECT owners FROM bench_baseline.visible WHERE who = 'bench_sales' \gset
SELECT count(*) FROM crm.record_tag WHERE scope_type IN ('customer', 'lead') AND scope_owner = ANY (:'owners'::bigint[]);
-- repeat 100
\timing on
SELECT count(*) FROM crm.record_tag WHERE scope_type IN ('customer', 'lead') AND scope_owner = ANY (:'owners'::bigint[]);

-- crm manager_timeline_page
SET ROLE bench_manager;
SELECT * FROM crm.timeline WHERE record_type = 'customer' ORDER BY at DESC LIMIT 50;
-- repeat 5
\timing on
SELECT * FROM crm.timeline WHERE record_type = 'customer' ORDER BY at DESC LIMIT 50;

-- baseline manager_timeline_page
SELECT owners FROM bench_baseline.visible WHERE who = 'bench_manager' \gset
SELECT id AS me FROM crm.employee WHERE db_role = 'bench_manager' \gset
SELECT * FROM bench_baseline.timeline_page(:'owners', :me);
-- repeat 5
\timing on
SELECT * FROM bench_baseline.timeline_page(:'owners', :me);

-- crm sales_timeline_page
SET ROLE bench_sales;
SELECT * FROM crm.timeline WHERE record_type = 'customer' ORDER BY at DESC LIMIT 50;
-- repeat 20
\timing on
SELECT * FROM crm.timeline WHERE record_type = 'customer' ORDER BY at DESC LIMIT 50;

-- baseline sales_timeline_page
SELECT owners FROM bench_baseline.visible WHERE who = 'bench_sales' \gset
SELECT id AS me FROM crm.employee WHERE db_role = 'bench_sales' \gset
SELECT * FROM bench_baseline.timeline_page(:'owners', :me);
-- repeat 20
\timing on
SELECT * FROM bench_baseline.timeline_page(:'owners', :me);
