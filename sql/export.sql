-- Export views and attachments
-- ids named in messages start at 1200 here, whatever other test files created
SELECT setval(s, 1200, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.contact_id_seq', 'crm.attachment_id_seq']) s \g /dev/null
CREATE ROLE exp_mgr LOGIN IN ROLE crm_user;
CREATE ROLE exp_rep LOGIN IN ROLE crm_user;
INSERT INTO crm.department (name) VALUES ('Exp Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT e.name, d.id, e.role FROM (VALUES (0, '经理', 'exp_mgr'), (1, '销售', 'exp_rep')) e(n, name, role)
  JOIN crm.department d ON d.name = 'Exp Sales' ORDER BY e.n;
INSERT INTO crm.role (name) VALUES ('Exp manager'), ('Exp rep');
INSERT INTO crm.role_scope SELECT id, 'customer', 'department', NULL FROM crm.role WHERE name = 'Exp manager';
INSERT INTO crm.role_permission SELECT r.id, a FROM crm.role r,
       unnest(ARRAY['customer.create', 'customer.edit', 'contact.create', 'customer.export']) a WHERE r.name = 'Exp manager';
INSERT INTO crm.role_permission SELECT r.id, a FROM crm.role r,
       unnest(ARRAY['customer.create', 'customer.edit', 'contact.create']) a WHERE r.name = 'Exp rep';
INSERT INTO crm.employee_role SELECT e.id, r.id FROM crm.employee e JOIN crm.role r
    ON (e.db_role, r.name) IN (('exp_mgr', 'Exp manager'), ('exp_rep', 'Exp rep'));

SET ROLE exp_rep;
INSERT INTO crm.customer (name, uscc, industry, source, level)
VALUES ('导出客户', crm.uscc_with_check('91330100000120000'), 'it', 'referral', 'a');
INSERT INTO crm.contact (customer_id, name, mobile, is_decision_maker)
SELECT id, '王总', '13800120000', true FROM crm.customer WHERE name = '导出客户';
-- a salesperson without customer.export cannot export, even their own customers
SELECT * FROM crm.customer_export;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE exp_mgr;
INSERT INTO crm.customer (name, uscc) VALUES ('经理的客户', crm.uscc_with_check('91330100000120001'));
-- the manager exports what their scope covers, with labels instead of codes
SELECT name, kind, industry, source, level, status, owner, department, contact, contact_mobile
  FROM crm.customer_export ORDER BY id;
SELECT count(*) FROM crm.contact_export;
RESET ROLE;

-- every record the reader sees is exported: a customer in a pool the manager
-- administers has an owner without a department
INSERT INTO crm.pool (name) VALUES ('导出公海');
INSERT INTO crm.pool_member (pool_id, employee_id, is_admin)
SELECT p.id, e.id, true FROM crm.pool p, crm.employee e WHERE p.name = '导出公海' AND e.db_role = 'exp_mgr';
INSERT INTO crm.customer (name, uscc, owner_id)
SELECT '公海客户', crm.uscc_with_check('91330100000120002'), id FROM crm.pool WHERE name = '导出公海';
SET ROLE exp_mgr;
SELECT (SELECT count(*) FROM crm.customer) AS customers, (SELECT count(*) FROM crm.customer_export) AS exported;
SELECT name, owner, department FROM crm.customer_export WHERE name = '公海客户';
RESET ROLE;

-- custom fields go under their labels, choices as the dictionary's labels;
-- leads' statuses as labels too
INSERT INTO crm.role_scope SELECT id, 'lead', 'department', NULL FROM crm.role WHERE name = 'Exp manager';
INSERT INTO crm.role_permission SELECT id, a FROM crm.role, unnest(ARRAY['lead.create', 'lead.edit', 'lead.export']) a
 WHERE name = 'Exp manager';
SELECT crm.add_field('customer', 'staff', 'number', label => '员工人数');
SELECT crm.add_field('customer', 'products', 'multiple', dictionary => 'product_category', label => '意向产品');
SELECT crm.add_field('customer', 'main_product', 'single', dictionary => 'product_category', label => '意向产品');
SELECT crm.add_field('customer', 'memo', 'text');
SELECT crm.add_field('lead', 'budget_year', 'number', label => '预算年度');
SET ROLE exp_mgr;
UPDATE crm.customer SET staff = 120, products = '{software,service}', main_product = 'hardware', memo = '年底采购'
 WHERE name = '经理的客户';
SELECT name, custom_fields FROM crm.customer_export ORDER BY id;
INSERT INTO crm.lead (name, company, status, budget_year) VALUES ('导出线索', '线索公司', 'following', 2027);
SELECT name, status, owner, custom_fields FROM crm.lead_export;
RESET ROLE;
SELECT crm.drop_field(t, f) FROM (VALUES ('customer', 'staff'), ('customer', 'products'), ('customer', 'main_product'),
	('customer', 'memo'), ('lead', 'budget_year')) v(t, f) \g /dev/null
DELETE FROM crm.lead WHERE name = '导出线索';

-- attachments go with their record
SET ROLE exp_rep;
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
SELECT 'customer', id, '报价单.pdf', 48213, 'application/pdf', 'crm/2026/11/abc123' FROM crm.customer WHERE name = '导出客户';
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
SELECT 'customer', id, '../../etc/passwd', 1, 'text/plain', 'crm/2026/11/evil' FROM crm.customer WHERE name = '导出客户';
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
SELECT 'customer', id, 'x.txt', 1, 'text/plain', 'crm/2026/11/x' FROM crm.customer WHERE name = '经理的客户';
SELECT file_name, size_bytes, content_type FROM crm.attachment;
RESET ROLE;
SET ROLE exp_mgr;
SELECT file_name FROM crm.attachment;
RESET ROLE;

DELETE FROM crm.attachment;
DELETE FROM crm.customer;
-- (a pool's history names it: it is deactivated, not deleted)
UPDATE crm.pool SET active = false WHERE name = '导出公海';
DELETE FROM crm.role WHERE name LIKE 'Exp %';
DROP OWNED BY exp_mgr, exp_rep;
