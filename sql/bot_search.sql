-- crm.bot_search: keyword search for IM bots, within what the asker may see
-- ids named in messages start at 1400 here, whatever other test files created
SELECT setval(s, 1400, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.contact_id_seq']) s \g /dev/null
CREATE ROLE bs_a LOGIN IN ROLE crm_user;
CREATE ROLE bs_b LOGIN IN ROLE crm_user;
INSERT INTO crm.department (name) VALUES ('Bs Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT e.name, d.id, e.role FROM (VALUES ('Bs A', 'bs_a'), ('Bs B', 'bs_b')) e(name, role), crm.department d
 WHERE d.name = 'Bs Sales';
INSERT INTO crm.role (name) VALUES ('Bs rep');
INSERT INTO crm.role_scope (role_id, record_type, scope)
SELECT r.id, t, 'self' FROM crm.role r, unnest(ARRAY['customer', 'lead']) t WHERE r.name = 'Bs rep';
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.create', 'contact.create', 'lead.create']) a WHERE r.name = 'Bs rep';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e, crm.role r WHERE e.db_role LIKE 'bs\_%' AND r.name = 'Bs rep';

-- A has three Ningbo companies, one with a contact, and a lead; B has one Ningbo company
SET ROLE bs_a;
INSERT INTO crm.customer (name, uscc, phone)
SELECT format('宁波海曙%s号贸易有限公司', n), crm.uscc_with_check('9133020001400' || n || '000'), '0574-8765432' || n
  FROM generate_series(1, 3) n;
INSERT INTO crm.contact (customer_id, name, mobile)
SELECT id, '王宁波', '13905740001' FROM crm.customer WHERE name LIKE '宁波海曙1号%';
INSERT INTO crm.lead (name, company, mobile) VALUES ('张先生', '宁波北仑港务 100%', '13905740002');
RESET ROLE;
SET ROLE bs_b;
INSERT INTO crm.customer (name, uscc) VALUES ('宁波江北机械有限公司', crm.uscc_with_check('91330200014009000'));
RESET ROLE;

-- A finds her own records, newest first, two per type, with the totals; never B's
SET ROLE bs_a;
SELECT * FROM crm.bot_search('宁波', 2);
-- by phone or mobile number, or credit code; a type without hits still answers
SELECT * FROM crm.bot_search('13905740001');
SELECT record_type, total, label FROM crm.bot_search(crm.uscc_with_check('91330200014002000'));
-- only the counts; a % in the keyword is a literal %, not a wildcard
SELECT * FROM crm.bot_search('宁波', 0);
SELECT record_type, total, label FROM crm.bot_search('100%');
SELECT record_type, total FROM crm.bot_search('1%0');
RESET ROLE;
SET ROLE bs_b;
SELECT * FROM crm.bot_search(' 宁波 ');
-- too short a keyword, or too many rows asked for
SELECT * FROM crm.bot_search('宁');
SELECT * FROM crm.bot_search('宁波', 500);
RESET ROLE;
