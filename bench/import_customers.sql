-- Importing 100,000 customers with a contact each: COPY into a
-- temporary staging table and crm.import_customers (checks, owner, limits,
-- customers and contacts through every rule, operation log), against bare
-- PostgreSQL doing the same import: COPY into a plain staging table, then one
-- INSERT into plain customer and contact tables of the same shape.

-- needs: customers
-- setup
COPY (SELECT i AS line, format('温州%s鞋业有限公司', i) AS name, 'company' AS kind,
             crm.uscc_with_check('91330300' || lpad(i::text, 9, '0')) AS uscc, NULL AS phone,
             'manufacturing' AS industry, 'referral' AS source, NULL AS level, NULL AS owner_id,
             '联系人' || i AS contact_name, '139' || lpad(i::text, 8, '0') AS contact_mobile, NULL AS contact_email
        FROM generate_series(1, 100000) i) TO '/tmp/crm-bench-import.csv' (FORMAT csv);
CREATE TABLE bench_baseline.import_plain (LIKE crm.customer_import INCLUDING DEFAULTS);

-- crm
SET ROLE bench_sales;
CREATE TEMP TABLE staging (LIKE crm.customer_import INCLUDING ALL);
\timing on
\copy staging (line, name, kind, uscc, phone, industry, source, level, owner_id, contact_name, contact_mobile, contact_email) FROM '/tmp/crm-bench-import.csv' (FORMAT csv)
SELECT * FROM crm.import_customers('staging');

-- baseline
SELECT id AS sales_id FROM crm.employee WHERE db_role = 'bench_sales' \gset
\timing on
\copy bench_baseline.import_plain (line, name, kind, uscc, phone, industry, source, level, owner_id, contact_name, contact_mobile, contact_email) FROM '/tmp/crm-bench-import.csv' (FORMAT csv)
WITH customers AS (
	INSERT INTO bench_baseline.customer (name, kind, uscc, phone, industry, source, level, owner_id, created_by, status_id,
	                                     name_key, name_pinyin, name_initials, phone_key)
	SELECT i.name, i.kind, i.uscc, i.phone, i.industry, i.source, i.level, :sales_id, :sales_id, 1, k.*
	  FROM bench_baseline.import_plain i, LATERAL bench_baseline.customer_keys(i.kind, i.name, i.phone) k ORDER BY i.line
	RETURNING id, uscc
)
INSERT INTO bench_baseline.contact (customer_id, name, mobile, email, is_decision_maker, owner_id, created_by, name_key, mobile_key, email_key)
SELECT c.id, i.contact_name, i.contact_mobile, i.contact_email, true, :sales_id, :sales_id, k.*
  FROM customers c JOIN bench_baseline.import_plain i USING (uscc),
       LATERAL bench_baseline.contact_keys(i.contact_name, i.contact_mobile, i.contact_email) k;
