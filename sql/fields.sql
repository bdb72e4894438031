-- Custom fields: real, typed columns
-- ids named in messages start at 1000 here, whatever other test files created
SELECT setval(s, 1000, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq']) s \g /dev/null
CREATE ROLE fld_admin LOGIN IN ROLE crm_user;
CREATE ROLE fld_rep LOGIN IN ROLE crm_user;
INSERT INTO crm.department (name) VALUES ('Fld Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT v, id, 'fld_' || lower(v) FROM crm.department, unnest(ARRAY['Admin', 'Rep']) v WHERE name = 'Fld Sales';
INSERT INTO crm.role (name) VALUES ('Fld admin'), ('Fld sales');
INSERT INTO crm.role_permission SELECT id, 'admin.fields' FROM crm.role WHERE name = 'Fld admin';
INSERT INTO crm.role_permission SELECT id, a FROM crm.role, unnest(ARRAY['customer.create', 'customer.edit', 'contact.create', 'contact.edit']) a WHERE name = 'Fld sales';
INSERT INTO crm.employee_role SELECT e.id, r.id FROM crm.employee e JOIN crm.role r
    ON (e.db_role, r.name) IN (('fld_admin', 'Fld admin'), ('fld_rep', 'Fld sales'));
INSERT INTO crm.dictionary (kind, code, label) VALUES ('product_category', 'consulting', '咨询');

SET ROLE fld_admin;
SELECT crm.add_field('customer', 'employees', 'number', filterable => true, label => '员工人数');
SELECT crm.add_field('customer', 'annual_revenue', 'money');
SELECT crm.add_field('customer', 'founded_on', 'date');
SELECT crm.add_field('customer', 'listed', 'boolean');
SELECT crm.add_field('customer', 'interests', 'multiple', dictionary => 'product_category');
SELECT crm.add_field('customer', 'main_product', 'single', dictionary => 'product_category');
SELECT crm.add_field('contact', 'wechat_email', 'email');
SELECT crm.add_field('contact', 'office_phone', 'phone');
SELECT crm.add_field('contact', 'interest', 'single', dictionary => 'product_category');
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_schema = 'crm' AND table_name IN ('customer', 'contact')
   AND column_name IN (SELECT name FROM crm.added_field) ORDER BY table_name, column_name;
SELECT indexname FROM pg_indexes WHERE schemaname = 'crm' AND indexname LIKE 'customer_employees%';

-- bad definitions are refused, and nothing is left behind
SELECT crm.add_field('customer', 'phone', 'text');
SELECT crm.add_field('customer', 'x; DROP TABLE crm.customer', 'text');
SELECT crm.add_field('customer', 'Revenue', 'text');
SELECT crm.add_field('customer', 'colour', 'rainbow');
SELECT crm.add_field('customer', 'segment', 'single');
SELECT crm.add_field('customer', 'segment', 'single', dictionary => 'horoscope');
SELECT crm.add_field('invoice', 'segment', 'text');
RESET ROLE;
-- a required field on a table with rows needs its values first
INSERT INTO crm.customer (name, uscc, owner_id) SELECT 'Fld customer', crm.uscc_with_check('91330100000095000'), id
  FROM crm.employee WHERE db_role = 'fld_rep';
SET ROLE fld_admin;
SELECT crm.add_field('customer', 'region', 'text', required => true);
SELECT count(*) AS region_fields FROM crm.added_field WHERE name = 'region';
SELECT crm.add_field('customer', 'region', 'text');
UPDATE crm.customer SET region = '华东';
RESET ROLE;
UPDATE crm.customer SET region = '华东';
SET ROLE fld_admin;
UPDATE crm.added_field SET required = true WHERE name = 'region';
UPDATE crm.added_field SET type = 'number' WHERE name = 'region';
RESET ROLE;

-- employees fill them in; the values are checked like built-in ones
SET ROLE fld_rep;
UPDATE crm.customer SET employees = 120, annual_revenue = 3500000.50, founded_on = '2015-06-01', listed = false,
       interests = '{software,consulting}', main_product = 'software'
 WHERE name = 'Fld customer'
RETURNING employees, annual_revenue, founded_on, listed, interests, main_product, region;
UPDATE crm.customer SET interests = '{software,horoscope}' WHERE name = 'Fld customer';
UPDATE crm.customer SET main_product = 'horoscope' WHERE name = 'Fld customer';
UPDATE crm.customer SET annual_revenue = -1 WHERE name = 'Fld customer';
-- contacts' dictionary columns too, custom or built in
INSERT INTO crm.contact (customer_id, name, interest) SELECT id, '王经理', 'horoscope' FROM crm.customer WHERE name = 'Fld customer';
INSERT INTO crm.contact (customer_id, name, interest) SELECT id, '王经理', 'consulting' FROM crm.customer WHERE name = 'Fld customer'
RETURNING name, interest;
UPDATE crm.contact SET interest = 'horoscope' WHERE name = '王经理';
INSERT INTO crm.customer (name, uscc) VALUES ('No region', crm.uscc_with_check('91330100000095001'));
-- and staff cannot add fields
SELECT crm.add_field('customer', 'rep_notes', 'text');
RESET ROLE;
SET ROLE fld_admin;
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('contact', 'title', 'customer_level');
RESET ROLE;
SET ROLE fld_rep;
UPDATE crm.contact SET title = '采购总监' WHERE name = '王经理';
UPDATE crm.contact SET title = 'a' WHERE name = '王经理' RETURNING title;
RESET ROLE;
-- a dictionary maps only onto a table whose writes are checked
SET ROLE fld_admin;
DELETE FROM crm.dictionary_column WHERE table_name = 'contact' AND column_name = 'title';
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('tag', 'name', 'industry');
RESET ROLE;

-- dropping a field drops its column, its checks and its index
SET ROLE fld_admin;
SELECT crm.drop_field('customer', 'employees');
SELECT crm.drop_field('customer', 'main_product');
RESET ROLE;
SELECT count(*) AS employees_columns FROM information_schema.columns
 WHERE table_schema = 'crm' AND table_name = 'customer' AND column_name = 'employees';
SELECT count(*) AS main_product_checked FROM crm.dictionary_column WHERE column_name = 'main_product';

-- cleanup: drop the remaining fields
DELETE FROM crm.customer;
DELETE FROM crm.added_field;
DELETE FROM crm.dictionary WHERE code = 'consulting';
DELETE FROM crm.role WHERE name LIKE 'Fld %';
DROP OWNED BY fld_admin, fld_rep;
