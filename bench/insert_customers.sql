-- 100,000 customers entered by a salesperson through crm (owner defaulted to the acting
-- employee, created_by and timestamps stamped by the C trigger, the row-level security
-- check, the foreign keys to crm.employee), against the same rows written by the
-- superuser into a plain table of the same shape, owner and author given.

-- setup
-- (bench_baseline.customer, the plain table of the same shape, is made by generate.sql)

-- crm
SET ROLE bench_sales;
\timing on
INSERT INTO crm.customer (name, kind, phone, industry, source)
SELECT format('宁波%s贸易有限公司', i), CASE WHEN i % 10 = 0 THEN 'individual' ELSE 'company' END,
       '0574-' || (80000000 + i), (ARRAY['制造业', '信息技术', '批发零售'])[i % 3 + 1], '展会'
  FROM generate_series(1, 100000) i;

-- baseline
SELECT id AS sales_id FROM crm.employee WHERE db_role = 'bench_sales' \gset
\timing on
INSERT INTO bench_baseline.customer (name, kind, phone, industry, source, owner_id, created_by)
SELECT format('宁波%s贸易有限公司', i), CASE WHEN i % 10 = 0 THEN 'individual' ELSE 'company' END,
       '0574-' || (80000000 + i), (ARRAY['制造业', '信息技术', '批发零售'])[i % 3 + 1], '展会',
       :sales_id, :sales_id
  FROM generate_series(1, 100000) i;
