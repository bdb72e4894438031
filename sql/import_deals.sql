-- Importing and exporting products and deals, with a result per row
-- ids named in messages start at 93000 here, whatever other test files created
SELECT setval(s, 93000, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.opportunity_id_seq', 'crm.product_id_seq']) s \g /dev/null
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['id_catalog', 'id_rep', 'id_other', 'id_plain'] LOOP
		EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
	END LOOP;
END $$;
INSERT INTO crm.department (name) VALUES ('Id Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT e.name, d.id, e.role FROM (VALUES ('Id Catalog', 'id_catalog'), ('Id Rep', 'id_rep'), ('Id Other', 'id_other'),
	('Id Plain', 'id_plain')) e(name, role), crm.department d WHERE d.name = 'Id Sales';
INSERT INTO crm.role (name) VALUES ('Id catalog'), ('Id sales'), ('Id plain');
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM (VALUES ('Id catalog', '{product.manage}'),
	('Id sales', '{customer.create,opportunity.create,opportunity.edit,opportunity.import,opportunity.export}'),
	('Id plain', '{opportunity.create,opportunity.edit}')) v(role, actions)
  JOIN crm.role r ON r.name = v.role, unnest(v.actions::text[]) a;
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM (VALUES ('id_catalog', 'Id catalog'), ('id_rep', 'Id sales'), ('id_other', 'Id sales'),
	('id_plain', 'Id plain')) v(emp, role)
  JOIN crm.employee e ON e.db_role = v.emp JOIN crm.role r ON r.name = v.role;
INSERT INTO crm.customer (name, uscc, owner_id)
SELECT v.name, crm.uscc_with_check(v.code), e.id
  FROM (VALUES ('Id 华东客户', '91330100MA2D00001', 'id_rep'), ('Id 同名客户', '91330100MA2D00002', 'id_rep'),
               ('Id 同名客户', '91330100MA2D00003', 'id_rep'), ('Id 别人的客户', '91330100MA2D00004', 'id_other')) v(name, code, role)
  JOIN crm.employee e ON e.db_role = v.role;

-- == Products: whoever holds product.manage loads a price list
SET ROLE id_catalog;
CREATE TEMP TABLE staged_products (LIKE crm.product_import INCLUDING ALL);
INSERT INTO staged_products (line, code, name, category, unit, list_price, on_shelf) VALUES
	(2, 'ID-CRM', 'Id 客户管理', 'software', 'set', 12000, NULL),
	(3, 'ID-SRV', 'Id 实施服务', 'service', 'person_day', 2800, true),
	(4, 'ID-CRM', 'Id 重复编码', NULL, NULL, 1, NULL),          -- the code is taken by line 2
	(5, 'ID-BAD', 'Id 坏单位', NULL, 'barrel', 1, NULL),        -- no such unit
	(6, 'ID-NEG', 'Id 负价', NULL, NULL, -5, NULL),
	(7, NULL, 'Id 无编码', NULL, NULL, 1, NULL),
	(8, 'ID-OFF', 'Id 下架', NULL, NULL, 100, false);
SELECT * FROM crm.import_products('staged_products');
SELECT line, status, sqlstate, message, product_id IS NOT NULL AS has_id FROM staged_products ORDER BY line;
SELECT p.code, p.name, p.unit, p.list_price, p.on_shelf FROM crm.product p JOIN staged_products s ON s.product_id = p.id ORDER BY s.line;
-- a clean file goes in with one statement
CREATE TEMP TABLE staged_more (LIKE crm.product_import INCLUDING ALL);
INSERT INTO staged_more (line, code, name, list_price) VALUES (2, 'ID-HW1', 'Id 扫码枪', 680), (3, 'ID-HW2', 'Id 打印机', 1500);
SELECT * FROM crm.import_products('staged_more');
SELECT line, status, product_id - min(product_id) OVER () AS id_order FROM staged_more ORDER BY line;
-- the product export: labels, and who may sell each (anyone: empty)
SELECT code, name, category, unit, list_price, on_shelf, sellers FROM crm.product_export WHERE code LIKE 'ID-%' ORDER BY code;
RESET ROLE;
-- a salesperson may read the catalogue but not load it
SET ROLE id_rep;
CREATE TEMP TABLE staged_rep (LIKE crm.product_import INCLUDING ALL);
INSERT INTO staged_rep (line, code, name) VALUES (2, 'ID-REP', 'Id 私货');
SELECT * FROM crm.import_products('staged_rep');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS exported FROM crm.product_export WHERE code LIKE 'ID-%';
RESET ROLE;

-- == Deals: by customer id or exact name, in a stage named in the owner's set
SET ROLE id_rep;
CREATE TEMP TABLE staged_deals (LIKE crm.opportunity_import INCLUDING ALL);
INSERT INTO staged_deals (line, customer_id, customer, name, amount, expected_close_on, stage_set, stage, lost_reason) VALUES
	(2, NULL, 'Id 华东客户', 'Id 新系统', 300000, '2027-03-31', NULL, '方案报价', NULL),
	(3, NULL, 'Id 华东客户', 'Id 旧项目', 80000, NULL, '标准销售流程', '输单', 'price'),
	(4, NULL, 'Id 同名客户', 'Id 不知哪家', 1, NULL, NULL, NULL, NULL),          -- two customers have that name
	(5, NULL, 'Id 别人的客户', 'Id 越界', 1, NULL, NULL, NULL, NULL),           -- not one the importer sees
	(6, NULL, 'Id 华东客户', 'Id 无此阶段', 1, NULL, NULL, '立项', NULL),
	(7, NULL, 'Id 华东客户', 'Id 无此流程', 1, NULL, '大客户流程', NULL, NULL),
	(8, NULL, NULL, 'Id 无客户', 1, NULL, NULL, NULL, NULL),
	(9, NULL, 'Id 华东客户', 'Id 开着却有原因', 1, NULL, NULL, NULL, 'price'),  -- the rules of a deal refuse it: open
	(10, NULL, 'Id 华东客户', NULL, 1, NULL, NULL, NULL, NULL);
SELECT * FROM crm.import_opportunities('staged_deals');
SELECT line, status, sqlstate, message, opportunity_id IS NOT NULL AS has_id FROM staged_deals ORDER BY line;
SELECT o.name, c.name AS customer, o.amount, g.name AS stage, o.probability, o.status, o.lost_reason
  FROM crm.opportunity o JOIN crm.customer c ON c.id = o.customer_id JOIN crm.stage g ON g.id = o.stage_id
  JOIN staged_deals s ON s.opportunity_id = o.id ORDER BY s.line;
-- logged as an import, with each deal's first stage in its history
SELECT DISTINCT l.action, l.source FROM crm.oplog l
 WHERE l.record_type = 'opportunity' AND l.record_ids && (SELECT range_agg(int8range(opportunity_id, opportunity_id, '[]')) FROM staged_deals);
SELECT count(*) AS first_stages FROM crm.opportunity_stage_change c JOIN staged_deals s ON s.opportunity_id = c.opportunity_id
 WHERE c.from_stage_id IS NULL;
-- the export: each reader their own scope, codes as labels
SELECT name, customer, amount, stage_set, stage, probability, status, lost_reason, owner, department
  FROM crm.opportunity_export WHERE name LIKE 'Id %' ORDER BY name;
RESET ROLE;
SET ROLE id_other;
SELECT count(*) AS others_see FROM crm.opportunity_export WHERE name LIKE 'Id %';
RESET ROLE;
-- without opportunity.import or opportunity.export: refused, naming the permission
SET ROLE id_plain;
CREATE TEMP TABLE staged_plain (LIKE crm.opportunity_import INCLUDING ALL);
SELECT * FROM crm.import_opportunities('staged_plain');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM crm.opportunity_export;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- a staging table that would run code of the importer's is refused whole
SET ROLE id_rep;
CREATE TEMP TABLE staged_trap (LIKE crm.opportunity_import INCLUDING ALL);
CREATE FUNCTION pg_temp.trap() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER trap BEFORE UPDATE ON staged_trap FOR EACH ROW EXECUTE FUNCTION pg_temp.trap();
SELECT * FROM crm.import_opportunities('staged_trap');
\echo :LAST_ERROR_SQLSTATE
-- so is a table of another shape
SELECT * FROM crm.import_opportunities('staged_rep');
\echo :LAST_ERROR_SQLSTATE
-- and an import under a snapshot older than its lock (a trigger added while it
-- waited would not be seen)
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM crm.import_opportunities('staged_deals');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;

-- (this file's deals, products and customers go: later files count them)
DELETE FROM crm.opportunity WHERE name LIKE 'Id %';
DELETE FROM crm.product WHERE code LIKE 'ID-%';
DELETE FROM crm.customer WHERE name LIKE 'Id %';
