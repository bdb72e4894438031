-- Products, who may sell them, competitors, and a deal's lines and competitors
-- ids named in messages start at 95000 here, whatever other test files created
SELECT setval(s, 95000, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.opportunity_id_seq', 'crm.product_id_seq', 'crm.competitor_id_seq']) s \g /dev/null
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['pr_catalog', 'pr_rep', 'pr_south', 'pr_viewer', 'pr_lead'] LOOP
		EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
	END LOOP;
END $$;
INSERT INTO crm.department (name) VALUES ('Pr Sales');
INSERT INTO crm.department (name, parent_id) SELECT v, id FROM crm.department, unnest(ARRAY['Pr East', 'Pr South']) v WHERE name = 'Pr Sales';
INSERT INTO crm.employee (name, department_id, db_role)
SELECT e.name, d.id, e.role FROM (VALUES ('Pr Catalog', 'Pr Sales', 'pr_catalog'), ('Pr Rep', 'Pr East', 'pr_rep'),
	('Pr South', 'Pr South', 'pr_south'), ('Pr Viewer', 'Pr Sales', 'pr_viewer'), ('Pr Lead', 'Pr Sales', 'pr_lead')) e(name, dept, role)
JOIN crm.department d ON d.name = e.dept;
INSERT INTO crm.role (name) VALUES ('Pr catalog'), ('Pr sales'), ('Pr viewer'), ('Pr lead');
INSERT INTO crm.role_scope (role_id, record_type, scope)
SELECT r.id, t, CASE r.name WHEN 'Pr viewer' THEN 'all' ELSE 'department_tree' END
  FROM crm.role r, unnest(ARRAY['customer', 'opportunity']) t WHERE r.name IN ('Pr viewer', 'Pr lead');
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM (VALUES ('Pr catalog', '{product.manage}'),
	('Pr sales', '{customer.create,customer.edit,opportunity.create,opportunity.edit}'),
	('Pr lead', '{opportunity.edit,opportunity.transfer}')) v(role, actions)
  JOIN crm.role r ON r.name = v.role, unnest(v.actions::text[]) a;
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM (VALUES ('pr_catalog', 'Pr catalog'), ('pr_rep', 'Pr sales'), ('pr_south', 'Pr sales'),
	('pr_viewer', 'Pr viewer'), ('pr_lead', 'Pr lead')) v(emp, role)
  JOIN crm.employee e ON e.db_role = v.emp JOIN crm.role r ON r.name = v.role;
INSERT INTO crm.customer (name, uscc, owner_id)
SELECT 'Pr customer of ' || e.name, crm.uscc_with_check('91330100MA2C' || lpad(e.id::text, 5, '0')), e.id
  FROM crm.employee e WHERE e.db_role IN ('pr_rep', 'pr_south');

-- the units and categories are dictionaries (seed 004)
SELECT kind, string_agg(code || ' ' || label, ', ' ORDER BY position) FROM crm.dictionary
 WHERE kind IN ('product_category', 'unit') GROUP BY kind ORDER BY kind;

-- products: written with product.manage, read by every employee
\set VERBOSITY default
\set SHOW_CONTEXT never
SET ROLE pr_rep;
INSERT INTO crm.product (code, name, list_price) VALUES ('X-1', 'Not mine to add', 1);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE pr_catalog;
INSERT INTO crm.product (code, name, category, unit, list_price, on_shelf) VALUES
	('CRM-STD', '云帆CRM标准版', 'software', 'license', 12000, true),
	('SRV-IMPL', '实施服务', 'service', 'person_day', 3000, true),
	('HW-SCAN', '扫码枪', 'hardware', 'piece', 800, false),
	('AI-PRO', '智能外呼', 'software', 'year', 50000, true);
INSERT INTO crm.product_seller (product_id, department_id)
SELECT p.id, d.id FROM crm.product p, crm.department d WHERE p.code = 'AI-PRO' AND d.name = 'Pr East';
INSERT INTO crm.product (code, name, category) VALUES ('X-2', 'Bad category', 'furniture');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.product (code, name) VALUES ('CRM-STD', 'Same code');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.competitor (name, strengths, weaknesses, website)
VALUES ('纷享销客', '品牌知名度高，移动端体验好', '价格高，定制周期长', 'https://www.fxiaoke.com');
RESET ROLE;
SET ROLE pr_south;
SELECT code, name, category, unit, list_price, on_shelf FROM crm.product WHERE code IN ('CRM-STD', 'SRV-IMPL', 'HW-SCAN', 'AI-PRO') ORDER BY id;
SELECT p.code, s.* FROM crm.product p, crm.product_sellers(p.id, crm.current_employee_id()) s WHERE p.code IN ('CRM-STD', 'AI-PRO') ORDER BY p.id;
RESET ROLE;

-- lines: the unit price defaults to the list price, the amount is crm's, and a
-- deal with lines is worth their total
SET ROLE pr_rep;
INSERT INTO crm.opportunity (customer_id, name) SELECT id, '全渠道改造' FROM crm.customer WHERE name = 'Pr customer of Pr Rep';
SELECT id AS deal FROM crm.opportunity WHERE name = '全渠道改造' \gset
INSERT INTO crm.opportunity_product (opportunity_id, product_id, quantity, discount)
SELECT :deal, id, 10, 10 FROM crm.product WHERE code = 'CRM-STD';
INSERT INTO crm.opportunity_product (opportunity_id, product_id, quantity, unit_price)
SELECT :deal, id, 20, 2800 FROM crm.product WHERE code = 'SRV-IMPL';
INSERT INTO crm.opportunity_product (opportunity_id, product_id, quantity)
SELECT :deal, id, 1 FROM crm.product WHERE code = 'AI-PRO';    -- East may sell it
SELECT p.code, l.quantity, l.unit_price, l.discount, l.amount
  FROM crm.opportunity_product l JOIN crm.product p ON p.id = l.product_id WHERE l.opportunity_id = :deal ORDER BY l.id;
SELECT amount FROM crm.opportunity WHERE id = :deal;
UPDATE crm.opportunity_product SET quantity = 12 WHERE opportunity_id = :deal AND discount = 10;
DELETE FROM crm.opportunity_product WHERE opportunity_id = :deal AND unit_price = 50000;
SELECT amount FROM crm.opportunity WHERE id = :deal;
-- the amount of a deal with lines, and a line's amount, are crm's
UPDATE crm.opportunity SET amount = 1 WHERE id = :deal;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.opportunity_product SET amount = 1 WHERE opportunity_id = :deal;
-- an off-shelf product, a negative quantity, a discount over 100
INSERT INTO crm.opportunity_product (opportunity_id, product_id) SELECT :deal, id FROM crm.product WHERE code = 'HW-SCAN';
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.opportunity_product (opportunity_id, product_id, quantity) SELECT :deal, id, -2 FROM crm.product WHERE code = 'SRV-IMPL';
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.opportunity_product SET discount = 120 WHERE opportunity_id = :deal AND discount = 10;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.opportunity_product SET unit_price = -1 WHERE opportunity_id = :deal AND discount = 10;
\echo :LAST_ERROR_SQLSTATE
-- a competitor on the deal
INSERT INTO crm.opportunity_competitor (opportunity_id, competitor_id, threat_level, note)
SELECT :deal, id, 'high', '报价低 15%' FROM crm.competitor WHERE name = '纷享销客';
SELECT c.name, oc.threat_level, oc.note, c.weaknesses FROM crm.opportunity_competitor oc
  JOIN crm.competitor c ON c.id = oc.competitor_id WHERE oc.opportunity_id = :deal;
RESET ROLE;

-- a product limited to the East is not sold by the South, with who may
SET ROLE pr_south;
INSERT INTO crm.opportunity (customer_id, name) SELECT id, '南区外呼' FROM crm.customer WHERE name = 'Pr customer of Pr South';
INSERT INTO crm.opportunity_product (opportunity_id, product_id)
SELECT o.id, p.id FROM crm.opportunity o, crm.product p WHERE o.name = '南区外呼' AND p.code = 'AI-PRO';
\echo :LAST_ERROR_SQLSTATE
-- nor does anyone write on a deal they cannot edit
INSERT INTO crm.opportunity_product (opportunity_id, product_id) SELECT :deal, id FROM crm.product WHERE code = 'SRV-IMPL';
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS lines_seen FROM crm.opportunity_product WHERE opportunity_id = :deal;
RESET ROLE;
-- nor does a manager, by handing the South's deal to an East seller for the
-- line and back: the line's product is checked again when the transaction commits
SET ROLE pr_lead;
BEGIN;
UPDATE crm.opportunity SET owner_id = (SELECT id FROM crm.employee WHERE db_role = 'pr_rep') WHERE name = '南区外呼';
INSERT INTO crm.opportunity_product (opportunity_id, product_id)
SELECT o.id, p.id FROM crm.opportunity o, crm.product p WHERE o.name = '南区外呼' AND p.code = 'AI-PRO';
UPDATE crm.opportunity SET owner_id = (SELECT id FROM crm.employee WHERE db_role = 'pr_south') WHERE name = '南区外呼';
COMMIT;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE pr_viewer;
SELECT count(*) AS lines_seen, sum(amount) FROM crm.opportunity_product WHERE opportunity_id = :deal;
DELETE FROM crm.opportunity_competitor WHERE opportunity_id = :deal;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- a product taken off the shelf stays on the lines that have it
SET ROLE pr_catalog;
UPDATE crm.product SET on_shelf = false WHERE code = 'CRM-STD';
RESET ROLE;
SET ROLE pr_rep;
UPDATE crm.opportunity_product SET quantity = 15 WHERE opportunity_id = :deal AND discount = 10;
SELECT amount FROM crm.opportunity WHERE id = :deal;
-- a statement writing many lines reads their deal once, but not past a close
-- that a function it calls makes between two of its rows
INSERT INTO crm.opportunity_product (opportunity_id, product_id, quantity)
SELECT :deal, p.id, g FROM crm.product p, generate_series(1, 2) g
 WHERE p.code = 'SRV-IMPL' AND (g = 1 OR (SELECT c.status FROM crm.close_opportunity(:deal, true) c) = 'won');
\echo :LAST_ERROR_SQLSTATE
SELECT status, amount FROM crm.opportunity WHERE id = :deal;
-- nor past a close by a writable CTE of its own
WITH closed AS (UPDATE crm.opportunity SET stage_id = (SELECT id FROM crm.stage WHERE name = '赢单') WHERE id = :deal RETURNING id)
INSERT INTO crm.opportunity_product (opportunity_id, product_id, quantity)
SELECT :deal, p.id, g FROM crm.product p, generate_series(1, 2) g
 WHERE p.code = 'SRV-IMPL' AND (g = 1 OR EXISTS (SELECT FROM closed));
\echo :LAST_ERROR_SQLSTATE
SELECT status, amount FROM crm.opportunity WHERE id = :deal;
-- a closed deal's lines and competitors are read-only
SELECT status FROM crm.close_opportunity(:deal, true);
UPDATE crm.opportunity_product SET quantity = 16 WHERE opportunity_id = :deal AND discount = 10;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM crm.opportunity_competitor WHERE opportunity_id = :deal;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- a product on lines is not deleted: it goes off the shelf
SET ROLE pr_catalog;
DELETE FROM crm.product WHERE code = 'CRM-STD';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
\set VERBOSITY terse
-- (this file's deals and customers go: later files count customers)
DELETE FROM crm.opportunity WHERE name IN ('全渠道改造', '南区外呼');
DELETE FROM crm.customer WHERE name LIKE 'Pr customer of %';
