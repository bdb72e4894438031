-- Reading customers under row-level security: a manager whose
-- department_tree scope covers about 10% of the customers, a salesperson with
-- scope self, and a super admin; for each, the first page of 50 visible
-- customers by updated_at and the count of visible customers.  The baseline runs
-- the same query on a plain table with the visible owners written in.  Each
-- session runs its query once untimed first: pooled connections are warm (crm
-- loads the organisation once per backend and change, not per query).  Queries
-- of a few tenths of a millisecond are repeated 100 times, the others 20.

-- needs: customers
-- setup
-- (bench_baseline.customer and bench_baseline.visible are made by generate.sql)

-- crm manager_page
SET ROLE bench_manager;
SELECT id, name, updated_at FROM crm.customer ORDER BY updated_at DESC LIMIT 50;
-- repeat 100
\timing on
SELECT id, name, updated_at FROM crm.customer ORDER BY updated_at DESC LIMIT 50;

-- baseline manager_page
SELECT owners FROM bench_baseline.visible WHERE who = 'bench_manager' \gset
SELECT id, name, updated_at FROM bench_baseline.customer WHERE owner_id = ANY (:'owners'::bigint[])
 ORDER BY updated_at DESC LIMIT 50;
-- repeat 100
\timing on
SELECT id, name, updated_at FROM bench_baseline.customer WHERE owner_id = ANY (:'owners'::bigint[])
 ORDER BY updated_at DESC LIMIT 50;

-- crm manager_count
SET ROLE bench_manager;
SELECT count(*) FROM crm.customer;
-- repeat 20
\timing on
SELECT count(*) FROM crm.customer;

-- baseline manager_count
SELECT owners FROM bench_baseline.visible WHERE who = 'bench_manager' \gset
SELECT count(*) FROM bench_baseline.customer WHERE owner_id = ANY (:'owners'::bigint[]);
-- repeat 20
\timing on
SELECT count(*) FROM bench_baseline.customer WHERE owner_id = ANY (:'owners'::bigint[]);

-- crm sales_page
SET ROLE bench_sales;
SELECT id, name, updated_at FROM crm.customer ORDER BY updated_at DESC LIMIT 50;
-- repeat 100
\timing on
SELECT id, name, updated_at FROM crm.customer ORDER BY updated_at DESC LIMIT 50;

-- baseline sales_page
SELECT owners FROM bench_baseline.visible WHERE who = 'bench_sales' \gset
SELECT id, name, updated_at FROM bench_baseline.customer WHERE owner_id = ANY (:'owners'::bigint[])
 ORDER BY updated_at DESC LIMIT 50;
-- repeat 100
\timing on
SELECT id, name, updated_at FROM bench_baseline.customer WHERE owner_id = ANY (:'owners'::bigint[])
 ORDER BY updated_at DESC LIMIT 50;

-- crm sales_count
SET ROLE bench_sales;
SELECT count(*) FROM crm.customer;
-- repeat 100
\timing on
SELECT count(*) FROM crm.customer;

-- baseline sales_count
SELECT owners FROM bench_baseline.visible WHERE who = 'bench_sales' \gset
SELECT count(*) FROM bench_baseline.customer WHERE owner_id = ANY (:'owners'::bigint[]);
-- repeat 100
\timing on
SELECT count(*) FROM bench_baseline.customer WHERE owner_id = ANY (:'owners'::bigint[]);

-- crm admin_page
SET ROLE bench_admin;
SELECT id, name, updated_at FROM crm.customer ORDER BY updated_at DESC LIMIT 50;
-- repeat 100
\timing on
SELECT id, name, updated_at FROM crm.customer ORDER BY updated_at DESC LIMIT 50;

-- baseline admin_page
SELECT owners FROM bench_baseline.visible WHERE who = 'bench_admin' \gset
SELECT id, name, updated_at FROM bench_baseline.customer WHERE owner_id = ANY (:'owners'::bigint[])
 ORDER BY updated_at DESC LIMIT 50;
-- repeat 100
\timing on
SELECT id, name, updated_at FROM bench_baseline.customer WHERE owner_id = ANY (:'owners'::bigint[])
 ORDER BY updated_at DESC LIMIT 50;

-- crm admin_count
SET ROLE bench_admin;
SELECT count(*) FROM crm.customer;
-- repeat 20
\timing on
SELECT count(*) FROM crm.customer;

-- baseline admin_count
SELECT owners FROM bench_baseline.visible WHERE who = 'bench_admin' \gset
SELECT count(*) FROM bench_baseline.customer WHERE owner_id = ANY (:'owners'::bigint[]);
-- repeat 20
\timing on
SELECT count(*) FROM bench_baseline.customer WHERE owner_id = ANY (:'owners'::bigint[]);
