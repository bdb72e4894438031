-- Refusals people read name the people and records by name, never by an id that
-- does not exist, with crm's own reason and a hint, where PostgreSQL would
-- name a policy or a constraint
-- ids named in messages start at 4800 here, whatever other test files created
SELECT setval('crm.customer_id_seq', 4800, false) \g /dev/null
DO $$
BEGIN
	CREATE ROLE ms_rep LOGIN IN ROLE crm_user;
	CREATE ROLE ms_other LOGIN IN ROLE crm_user;
	CREATE ROLE ms_admin LOGIN IN ROLE crm_user;
END $$;
INSERT INTO crm.department (name) VALUES ('Ms Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT e.name, d.id, e.role FROM (VALUES ('Ms 刘洋', 'ms_rep'), ('Ms 杨磊', 'ms_other'), ('Ms Admin', 'ms_admin')) e(name, role),
       crm.department d WHERE d.name = 'Ms Sales';
INSERT INTO crm.role (name) VALUES ('Ms sales'), ('Ms admin');
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.create', 'customer.edit']) a WHERE r.name = 'Ms sales'
UNION ALL SELECT r.id, a FROM crm.role r, unnest(ARRAY['admin.role', 'admin.org', 'admin.fields']) a WHERE r.name = 'Ms admin';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e JOIN crm.role r ON r.name = CASE e.db_role WHEN 'ms_admin' THEN 'Ms admin' ELSE 'Ms sales' END
 WHERE e.db_role LIKE 'ms_%';
SELECT id AS other FROM crm.employee WHERE db_role = 'ms_other' \gset
SET ROLE ms_other;
INSERT INTO crm.customer (name, uscc) VALUES ('Ms 杨磊的客户', crm.uscc_with_check('91330100MA2B04801')) RETURNING id AS theirs \gset
RESET ROLE;
INSERT INTO crm.tag_group (name) VALUES ('Ms 等级');
INSERT INTO crm.tag (group_id, name, color) SELECT id, 'Ms 重点', '#FF0000' FROM crm.tag_group WHERE name = 'Ms 等级';

-- a record never created is named by its name, the employees by theirs
SET ROLE ms_rep;
INSERT INTO crm.contact (customer_id, name, mobile) VALUES (:theirs, 'Ms 联系人', '13900004801');
INSERT INTO crm.customer (name, uscc, owner_id) VALUES ('Ms 代建客户', crm.uscc_with_check('91330100MA2B04802'), :other);
-- what is written about a record out of reach: the record and the reason, not a policy
INSERT INTO crm.follow_up (record_type, record_id, content) VALUES ('customer', :theirs, '路过');
INSERT INTO crm.record_tag (record_type, record_id, tag_id) SELECT 'customer', :theirs, id FROM crm.tag WHERE name = 'Ms 重点';
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
VALUES ('customer', :theirs, '报价单.pdf', 1, 'application/pdf', 'ms/1');
INSERT INTO crm.team_member (record_type, record_id, employee_id) VALUES ('customer', :theirs, :other);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- values a rule refuses, said with the row's name
SET ROLE ms_admin;
INSERT INTO crm.tag (group_id, name, color) SELECT id, 'Ms 次要', 'red' FROM crm.tag_group WHERE name = 'Ms 等级';
INSERT INTO crm.role_permission (role_id, action) SELECT id, 'customer.fly' FROM crm.role WHERE name = 'Ms sales';
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.employee SET db_role = 'ms_nobody_yet' WHERE db_role = 'ms_rep';
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.employee SET db_role = 'ms_rep' WHERE db_role = 'ms_other';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE ms_other;
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
VALUES ('customer', :theirs, 'C:\docs\报价单.pdf', 1, 'application/pdf', 'ms/2');
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
VALUES ('customer', :theirs, '报价单.pdf', 1, 'pdf', 'ms/3');
RESET ROLE;

DELETE FROM crm.customer WHERE name LIKE 'Ms %';
DELETE FROM crm.tag_group WHERE name LIKE 'Ms %';
DELETE FROM crm.role WHERE name LIKE 'Ms %';
