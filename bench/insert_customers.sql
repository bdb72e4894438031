-- 100,000 companies entered by a salesperson through crm (owner and status defaulted,
-- created_by and timestamps stamped by the C trigger, permission, scope, dictionary and
-- code checks, row-level security, the operation log), against the same rows written by
-- the superuser into a plain table of the same shape, owner, author and status given.
-- The second pair adds a contact to each.

-- needs: customers
-- setup
-- (bench_baseline.customer and .contact, the plain tables, are made by generate.sql)
CREATE VIEW bench_baseline.new_company AS
SELECT format('宁波%s贸易有限公司', i) AS name, crm.uscc_with_check('91330200' || lpad(i::text, 9, '0')) AS uscc,
       '0574-' || (80000000 + i) AS phone, (ARRAY['manufacturing', 'it', 'wholesale_retail'])[i % 3 + 1] AS industry,
       'exhibition' AS source
  FROM generate_series(1, 100000) i;
GRANT USAGE ON SCHEMA bench_baseline TO bench_sales;
GRANT SELECT ON bench_baseline.new_company TO bench_sales;

-- crm
SET ROLE bench_sales;
\timing on
INSERT INTO crm.customer (name, uscc, phone, industry, source)
SELECT name, uscc, phone, industry, source FROM bench_baseline.new_company;

-- baseline
SELECT id AS sales_id FROM crm.employee WHERE db_role = 'bench_sales' \gset
\timing on
INSERT INTO bench_baseline.customer (name, uscc, phone, industry, source, owner_id, created_by, status_id,
	name_key, name_pinyin, name_initials, phone_key)
SELECT n.name, n.uscc, n.phone, n.industry, n.source, :sales_id, :sales_id, 1, k.*
  FROM bench_baseline.new_company n, LATERAL bench_baseline.customer_keys('company', n.name, n.phone) k;

-- crm insert_customers_contacts
SET ROLE bench_sales;
\timing on
INSERT INTO crm.customer (name, uscc, phone, industry, source)
SELECT name, uscc, phone, industry, source FROM bench_baseline.new_company;
INSERT INTO crm.contact (customer_id, name, mobile, is_decision_maker)
SELECT id, '联系人' || id, '139' || lpad((id % 100000000)::text, 8, '0'), true
  FROM crm.customer WHERE created_at = now();

-- baseline insert_customers_contacts
SELECT id AS sales_id FROM crm.employee WHERE db_role = 'bench_sales' \gset
\timing on
INSERT INTO bench_baseline.customer (name, uscc, phone, industry, source, owner_id, created_by, status_id,
	name_key, name_pinyin, name_initials, phone_key)
SELECT n.name, n.uscc, n.phone, n.industry, n.source, :sales_id, :sales_id, 1, k.*
  FROM bench_baseline.new_company n, LATERAL bench_baseline.customer_keys('company', n.name, n.phone) k;
INSERT INTO bench_baseline.contact (customer_id, name, mobile, is_decision_maker, owner_id, created_by, name_key, mobile_key, email_key)
SELECT n.id, n.name, n.mobile, true, :sales_id, :sales_id, k.*
  FROM (SELECT id, '联系人' || id AS name, '139' || lpad((id % 100000000)::text, 8, '0') AS mobile
          FROM bench_baseline.customer WHERE created_at = now()) n, LATERAL bench_baseline.contact_keys(n.name, n.mobile, NULL) k;
