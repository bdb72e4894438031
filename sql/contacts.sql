-- Contacts: mobiles as people write them, a landline, follow-ups written on a contact
-- ids named in messages start at 3200 here, whatever other test files created
SELECT setval(s, 3200, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.contact_id_seq', 'crm.lead_id_seq', 'crm.follow_up_id_seq']) s \g /dev/null
CREATE ROLE con_rep LOGIN IN ROLE crm_user;
CREATE ROLE con_other LOGIN IN ROLE crm_user;
INSERT INTO crm.department (name) VALUES ('Con Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT v, id, 'con_' || lower(v) FROM crm.department, unnest(ARRAY['Rep', 'Other']) v WHERE name = 'Con Sales';
INSERT INTO crm.role (name) VALUES ('Con sales');
INSERT INTO crm.role_permission SELECT id, a FROM crm.role, unnest(ARRAY['customer.create', 'customer.edit',
	'contact.create', 'contact.edit', 'contact.delete', 'lead.create', 'customer.import']) a WHERE name = 'Con sales';
INSERT INTO crm.employee_role SELECT e.id, r.id FROM crm.employee e, crm.role r
 WHERE e.db_role IN ('con_rep', 'con_other') AND r.name = 'Con sales';
SELECT id AS other FROM crm.employee WHERE db_role = 'con_other' \gset

SET ROLE con_rep;
INSERT INTO crm.customer (name, uscc) VALUES ('杭州联系人科技有限公司', crm.uscc_with_check('91330100MA2CNN001')),
	('宁波联系人贸易有限公司', crm.uscc_with_check('91330200MA2CNN002'));
SELECT id AS hz FROM crm.customer WHERE name = '杭州联系人科技有限公司' \gset
SELECT id AS nb FROM crm.customer WHERE name = '宁波联系人贸易有限公司' \gset

-- == Mobiles as people write them are stored as their 11 digits
INSERT INTO crm.contact (customer_id, name, mobile) VALUES
	(:hz, '王经理', '+86 139-1234-5678'), (:hz, '李工', '139 1234 5679'), (:hz, '陈总', '0086 (139) 1234.5680'),
	(:nb, '赵会计', '+8613912345681')
RETURNING name, mobile;
UPDATE crm.contact SET mobile = '+86 138 0000 0001' WHERE name = '李工' RETURNING mobile;
INSERT INTO crm.lead (name, mobile) VALUES ('周先生', '+86 137-0000-3201') RETURNING mobile;
-- what is no mobile is refused as before, as written
INSERT INTO crm.contact (customer_id, name, mobile) VALUES (:hz, '错号', '139-1234-567');
INSERT INTO crm.contact (customer_id, name, mobile) VALUES (:hz, '错号', 'tel 13912345678');
INSERT INTO crm.contact (customer_id, name, mobile) VALUES (:hz, '错号', '0571-8888 6666');
-- an import takes them as a direct insert does
CREATE TEMP TABLE staging (LIKE crm.customer_import INCLUDING ALL);
INSERT INTO staging (line, name, kind, contact_name, contact_mobile) VALUES
	(1, '钱女士（个人）', 'individual', '钱女士', '+86 139-0000-3299'), (2, '孙先生（个人）', 'individual', '孙先生', '139-0000-329');
SELECT * FROM crm.import_customers('staging');
SELECT line, status, message FROM staging ORDER BY line;
SELECT mobile FROM crm.contact WHERE name = '钱女士';
-- duplicate keys read the stored digits
SELECT name, mobile_key = mobile AS key_is_mobile FROM crm.contact WHERE customer_id = :hz ORDER BY id;

-- == A landline of its own (座机)
UPDATE crm.contact SET phone = '0571-88886666 转 8' WHERE name = '王经理' RETURNING name, phone, mobile;
UPDATE crm.contact SET phone = repeat('8', 41) WHERE name = '王经理';

-- == Follow-ups written on a contact (seed 003: a contact's detail has its follow-ups)
SELECT id AS wang FROM crm.contact WHERE name = '王经理' \gset
SELECT id AS zhao FROM crm.contact WHERE name = '赵会计' \gset
-- the contact alone: the follow-up is its customer's
INSERT INTO crm.follow_up (contact_id, method, content) VALUES (:wang, 'phone', '王经理确认了报价')
RETURNING record_type, record_id = :hz AS on_customer, contact_id = :wang AS on_contact;
INSERT INTO crm.follow_up (record_type, record_id, contact_id, method, content)
VALUES ('customer', :hz, :wang, 'visit', '上门拜访王经理') RETURNING contact_id = :wang AS on_contact;
-- a contact of another customer, or of no customer: refused
INSERT INTO crm.follow_up (record_type, record_id, contact_id, content) VALUES ('customer', :hz, :zhao, '记错了客户');
INSERT INTO crm.follow_up (record_type, record_id, contact_id, content)
SELECT 'lead', id, :wang, '线索没有联系人' FROM crm.lead WHERE name = '周先生';
INSERT INTO crm.follow_up (contact_id, content) VALUES (999999, '不存在的联系人');
-- nor moved to another customer while naming the contact
UPDATE crm.follow_up SET record_id = :nb WHERE content = '上门拜访王经理';
-- the contact's follow-ups
SELECT method, content FROM crm.follow_up WHERE contact_id = :wang ORDER BY id;
-- and on the customer's timeline, keeping it current
SELECT kind, detail, summary FROM crm.timeline WHERE record_type = 'customer' AND record_id = :hz AND kind = 'follow_up' ORDER BY summary;
SELECT last_follow_up_at IS NOT NULL AS followed_up FROM crm.customer WHERE id = :hz;
RESET ROLE;

-- == Seen exactly by who sees the customer
SET ROLE con_other;
SELECT count(*) AS follow_ups, (SELECT count(*) FROM crm.timeline WHERE kind = 'follow_up') AS on_timeline
  FROM crm.follow_up WHERE contact_id = :wang;
INSERT INTO crm.follow_up (contact_id, content) VALUES (:wang, '冒名跟进');
RESET ROLE;
SET ROLE con_rep;
INSERT INTO crm.team_member (record_type, record_id, employee_id, access) VALUES ('customer', :hz, :other, 'read');
RESET ROLE;
SET ROLE con_other;
SELECT count(*) AS follow_ups, (SELECT count(*) FROM crm.timeline WHERE kind = 'follow_up') AS on_timeline
  FROM crm.follow_up WHERE contact_id = :wang;
RESET ROLE;

-- == A contact deleted leaves its customer's follow-ups, without the contact
SET ROLE con_rep;
DELETE FROM crm.contact WHERE id = :wang;
SELECT record_type, contact_id, content FROM crm.follow_up WHERE record_id = :hz ORDER BY id;
RESET ROLE;

-- cleanup
DELETE FROM crm.customer WHERE id IN (:hz, :nb) OR name = '钱女士（个人）';
DELETE FROM crm.lead WHERE name = '周先生';
DELETE FROM crm.role WHERE name = 'Con sales';
DROP OWNED BY con_rep, con_other;
DROP ROLE con_rep, con_other;
