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

-- crm insert_customers_contacts
-- (issue 3) the same companies, each with a contact, through the full stack
SET ROLE bench_sales;
\timing on
INSERT INTO crm.customer (name, uscc, phone, industry, source)
SELECT format('宁波%s贸易有限公司', i), crm.uscc_with_check('91330200' || lpad(i::text, 9, '0')),
       '0574-' || (80000000 + i), (ARRAY['manufacturing', 'it', 'wholesale_retail'])[i % 3 + 1], 'exhibition'
  FROM generate_series(1, 100000) i;
INSERT INTO crm.contact (customer_id, name, mobile, is_decision_maker)
SELECT id, '联系人' || id, '139' || lpad((id % 100000000)::text, 8, '0'), true
  FROM crm.customer WHERE name LIKE '宁波%贸易有限公司' AND created_at = now();

-- baseline insert_customers_contacts
SELECT id AS sales_id FROM crm.employee WHERE db_role = 'bench_sales' \gset
\timing on
INSERT INTO bench_baseline.customer (name, uscc, phone, industry, source, owner_id, created_by, status_id)
SELECT format('宁波%s贸易有限公司', i), crm.uscc_with_check('91330200' || lpad(i::text, 9, '0')),
       '0574-' || (80000000 + i), (ARRAY['manufacturing', 'it', 'wholesale_retail'])[i % 3 + 1], 'exhibition',
       :sales_id, :sales_id, 1
  FROM generate_series(1, 100000) i;
INSERT INTO bench_baseline.contact (customer_id, name, mobile, is_decision_maker, owner_id, created_by)
SELECT id, '联系人' || id, '139' || lpad((id % 100000000)::text, 8, '0'), true, :sales_id, :sales_id
  FROM bench_baseline.customer WHERE name LIKE '宁波%贸易有限公司' AND created_at = now();
