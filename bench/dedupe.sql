-- 100,000 companies entered by a salesperson through crm with three duplicate
-- rules active: company name against customers and leads, credit
-- code against customers (both blocking), phone against customers (warning),
-- over the 1,000,000 existing customers; against the same rows written into a
-- plain table of the same shape (keys and their indexes included).  The rules
-- are made inside the measured transaction, so other benchmarks run without.

-- needs: customers shared
-- (the changes are logged into an operation log that holds rows already, as
-- in a full run)
-- setup
CREATE VIEW bench_baseline.new_dedupe_company AS
SELECT format('温州%s鞋业有限公司', i) AS name, crm.uscc_with_check('91330300' || lpad(i::text, 9, '0')) AS uscc,
       '0577-' || (10000000 + i) AS phone, 'manufacturing' AS industry, 'exhibition' AS source
  FROM generate_series(1, 100000) i;
GRANT USAGE ON SCHEMA bench_baseline TO bench_sales;
GRANT SELECT ON bench_baseline.new_dedupe_company TO bench_sales;

-- crm
INSERT INTO crm.dedupe_rule (name, record_type, fields, action, against) VALUES
	('company name', 'customer', '{name}', 'block', '{customers, leads}'),
	('credit code', 'customer', '{uscc}', 'block', '{customers}'),
	('phone', 'customer', '{phone}', 'warn', '{customers}');
SET ROLE bench_sales;
\timing on
INSERT INTO crm.customer (name, uscc, phone, industry, source)
SELECT name, uscc, phone, industry, source FROM bench_baseline.new_dedupe_company;

-- baseline
SELECT id AS sales_id FROM crm.employee WHERE db_role = 'bench_sales' \gset
\timing on
INSERT INTO bench_baseline.customer (name, uscc, phone, industry, source, owner_id, created_by, status_id,
	name_key, name_pinyin, name_initials, phone_key)
SELECT n.name, n.uscc, n.phone, n.industry, n.source, :sales_id, :sales_id, 1, k.*
  FROM bench_baseline.new_dedupe_company n, LATERAL bench_baseline.customer_keys('company', n.name, n.phone) k;

-- crm find_fuzzy
-- a fuzzy look-up before entering a company (no rules: similar names and initials
-- among the customers the salesperson sees), against the pg_trgm query on the same
-- index written by hand over the same customers, for the pinyin crm searches (the
-- company key's: 杭州 is dropped)
SET ROLE bench_sales;
\timing on
-- repeat 20
SELECT count(*) FROM crm.find_duplicates('customer', '{"name": "杭州华盛电子有限公司"}');

-- baseline find_fuzzy
\timing on
-- repeat 20
SELECT count(*) FROM (SELECT id, similarity(name_pinyin, 'huashengdianzi') FROM crm.customer
 WHERE owner_id = ANY ((SELECT owners FROM bench_baseline.visible WHERE who = 'bench_sales')::bigint[])
   AND name_pinyin % 'huashengdianzi' ORDER BY 2 DESC LIMIT 20) s;

-- crm dedupe_update
-- the phones of 100,000 customers changed in one statement by a super admin under
-- the rules of dedupe, against the same UPDATE of the plain table (the blocking
-- rules compare names and credit codes, which do not change: only the phone rule runs)
INSERT INTO crm.dedupe_rule (name, record_type, fields, action, against) VALUES
	('company name', 'customer', '{name}', 'block', '{customers, leads}'),
	('credit code', 'customer', '{uscc}', 'block', '{customers}'),
	('phone', 'customer', '{phone}', 'warn', '{customers}');
SET ROLE bench_admin;
\timing on
UPDATE crm.customer SET phone = '0579-' || (10000000 + id) WHERE id <= 100000;

-- baseline dedupe_update
\timing on
UPDATE bench_baseline.customer SET phone = '0579-' || (10000000 + id), phone_key = crm.dedupe_key('phone', '0579-' || (10000000 + id))
 WHERE id <= 100000;

-- crm dedupe_many_rules
-- 10,000 companies entered by a salesperson under 20 rules (names, phones, credit
-- codes and both, blocking and warning, against customers, leads and the pools),
-- against the same rows written into the plain table
INSERT INTO crm.dedupe_rule (name, record_type, fields, action, against)
SELECT 'rule ' || i, 'customer', (ARRAY['{name}', '{phone}', '{uscc}', '{name,phone}'])[1 + i % 4]::text[],
       (ARRAY['warn', 'block'])[1 + i % 2], (ARRAY['{customers}', '{customers,leads}', '{pool}'])[1 + i % 3]::text[]
  FROM generate_series(1, 20) i;
SET ROLE bench_sales;
\timing on
INSERT INTO crm.customer (name, uscc, phone, industry, source)
SELECT name, uscc, phone, industry, source FROM bench_baseline.new_dedupe_company LIMIT 10000;

-- baseline dedupe_many_rules
SELECT id AS sales_id FROM crm.employee WHERE db_role = 'bench_sales' \gset
\timing on
INSERT INTO bench_baseline.customer (name, uscc, phone, industry, source, owner_id, created_by, status_id,
	name_key, name_pinyin, name_initials, phone_key)
SELECT n.name, n.uscc, n.phone, n.industry, n.source, :sales_id, :sales_id, 1, k.*
  FROM (SELECT * FROM bench_baseline.new_dedupe_company LIMIT 10000) n, LATERAL bench_baseline.customer_keys('company', n.name, n.phone) k;
