-- Tags and pins
-- ids named in messages start at 900 here, whatever other test files created
SELECT setval(s, 900, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.tag_id_seq', 'crm.tag_group_id_seq']) s \g /dev/null
CREATE ROLE tag_rep LOGIN IN ROLE crm_user;
CREATE ROLE tag_other LOGIN IN ROLE crm_user;
INSERT INTO crm.department (name) VALUES ('Tag Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT v, id, 'tag_' || lower(v) FROM crm.department, unnest(ARRAY['Rep', 'Other']) v WHERE name = 'Tag Sales';
INSERT INTO crm.role (name) VALUES ('Tag sales');
INSERT INTO crm.role_permission SELECT id, a FROM crm.role, unnest(ARRAY['customer.create', 'customer.edit']) a WHERE name = 'Tag sales';
INSERT INTO crm.employee_role SELECT e.id, r.id FROM crm.employee e, crm.role r WHERE e.db_role LIKE 'tag_%' AND r.name = 'Tag sales';

INSERT INTO crm.tag_group (name) VALUES ('客户价值'), ('来源活动');
INSERT INTO crm.tag (group_id, name, color)
SELECT g.id, t.name, t.color FROM crm.tag_group g,
       (VALUES ('客户价值', '高价值', '#d4380d'), ('客户价值', '潜力', '#fa8c16'), ('来源活动', '2026 秋季展会', NULL)) t(grp, name, color)
 WHERE g.name = t.grp;
INSERT INTO crm.tag (group_id, name, color) SELECT id, '红', 'red' FROM crm.tag_group WHERE name = '客户价值';

SET ROLE tag_rep;
INSERT INTO crm.tag_group (name) VALUES ('私人标签');
INSERT INTO crm.customer (name, uscc) VALUES ('标签客户', crm.uscc_with_check('91330100000090000'));
SELECT id AS cust FROM crm.customer WHERE name = '标签客户' \gset
INSERT INTO crm.record_tag (record_type, record_id, tag_id)
SELECT 'customer', :cust, id FROM crm.tag WHERE name IN ('高价值', '2026 秋季展会');
INSERT INTO crm.pin (record_type, record_id) VALUES ('customer', :cust);
SELECT g.name AS grp, t.name AS tag FROM crm.record_tag rt JOIN crm.tag t ON t.id = rt.tag_id JOIN crm.tag_group g ON g.id = t.group_id
 WHERE rt.record_type = 'customer' AND rt.record_id = :cust ORDER BY g.position, g.name, t.name;
SELECT count(*) AS my_pins FROM crm.pin;
RESET ROLE;

-- another employee sees neither the customer's tags nor the pin, and cannot tag it
SET ROLE tag_other;
SELECT (SELECT count(*) FROM crm.record_tag) AS tags_seen, (SELECT count(*) FROM crm.pin) AS pins_seen;
INSERT INTO crm.record_tag (record_type, record_id, tag_id) SELECT 'customer', :cust, id FROM crm.tag WHERE name = '潜力';
INSERT INTO crm.pin (record_type, record_id) VALUES ('customer', :cust);
RESET ROLE;

-- a deleted tag leaves the records it was on
DELETE FROM crm.tag WHERE name = '高价值';
SELECT count(*) AS tags_left FROM crm.record_tag WHERE record_id = :cust;

DELETE FROM crm.record_tag;
DELETE FROM crm.pin;
DELETE FROM crm.customer;
DELETE FROM crm.tag_group;
DELETE FROM crm.role WHERE name = 'Tag sales';
DROP OWNED BY tag_rep, tag_other;
