-- 100,000 companies entered by a salesperson through crm (owner and status defaulted,
-- created_by and timestamps stamped by the C trigger, permission, scope, dictionary and
-- code checks, row-level security, the foreign keys), against the same rows written by
-- the superuser into a plain table of the same shape, owner, author and status given.
-- Both compute the codes' check digits with crm.uscc_with_check.

-- setup
-- (bench_baseline.customer, the plain table of the same shape, is made by generate.sql)

-- crm
SET ROLE bench_sales;
\timing on
INSERT INTO crm.customer (name, uscc, phone, industry, source)
SELECT format('宁波%s贸易有限公司', i), crm.uscc_with_check('91330200' || lpad(i::text, 9, '0')),
       '0574-' || (80000000 + i), (ARRAY['manufacturing', 'it', 'wholesale_retail'])[i % 3 + 1], 'exhibition'
  FROM generate_series(1, 100000) i;

-- baseline
SELECT id AS sales_id FROM crm.employee WHERE db_role = 'bench_sales' \gset
\timing on
INSERT INTO bench_baseline.customer (name, uscc, phone, industry, source, owner_id, created_by, status_id)
SELECT format('宁波%s贸易有限公司', i), crm.uscc_with_check('91330200' || lpad(i::text, 9, '0')),
       '0574-' || (80000000 + i), (ARRAY['manufacturing', 'it', 'wholesale_retail'])[i % 3 + 1], 'exhibition',
       :sales_id, :sales_id, 1
  FROM generate_series(1, 100000) i;
