-- Dictionaries: those administrators add, codes in use, custom fields on follow-ups
-- ids named in messages start at 3100 here, whatever other test files created
SELECT setval(s, 3100, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.follow_up_id_seq']) s \g /dev/null
CREATE ROLE dic_admin LOGIN IN ROLE crm_user;
CREATE ROLE dic_rep LOGIN IN ROLE crm_user;
INSERT INTO crm.department (name) VALUES ('Dic Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT v, id, 'dic_' || lower(v) FROM crm.department, unnest(ARRAY['Admin', 'Rep']) v WHERE name = 'Dic Sales';
INSERT INTO crm.role (name) VALUES ('Dic admin'), ('Dic sales');
INSERT INTO crm.role_permission SELECT id, 'admin.fields' FROM crm.role WHERE name = 'Dic admin';
INSERT INTO crm.role_permission SELECT id, a FROM crm.role, unnest(ARRAY['customer.create', 'customer.edit', 'contact.create',
	'lead.create', 'lead.edit', 'lead.convert']) a WHERE name = 'Dic sales';
INSERT INTO crm.employee_role SELECT e.id, r.id FROM crm.employee e JOIN crm.role r
    ON (e.db_role, r.name) IN (('dic_admin', 'Dic admin'), ('dic_rep', 'Dic sales'));

-- == An administrator adds a dictionary of their own (seed 002, 自定义字典)
SET ROLE dic_admin;
INSERT INTO crm.dictionary_kind (kind, label) VALUES ('visit_purpose', '拜访目的');
INSERT INTO crm.dictionary (kind, code, label, position) VALUES
	('visit_purpose', 'demo', '产品演示', 1), ('visit_purpose', 'quote', '报价', 2), ('visit_purpose', 'contract', '签约', 3);
SELECT k.label, string_agg(d.label, '、' ORDER BY d.position) AS codes
  FROM crm.dictionary_kind k JOIN crm.dictionary d USING (kind) WHERE k.kind = 'visit_purpose' GROUP BY k.label;
-- a code needs its dictionary; a kind is a plain name
INSERT INTO crm.dictionary (kind, code, label) VALUES ('horoscope', 'leo', '狮子座');
INSERT INTO crm.dictionary_kind (kind, label) VALUES ('Visit Purpose', '拜访目的');
-- a dictionary's name stays: only its label changes
UPDATE crm.dictionary_kind SET kind = 'purpose' WHERE kind = 'visit_purpose';
UPDATE crm.dictionary_kind SET label = '拜访类型' WHERE kind = 'visit_purpose' RETURNING kind, label;
RESET ROLE;
-- staff do not add dictionaries
SET ROLE dic_rep;
INSERT INTO crm.dictionary_kind (kind, label) VALUES ('rep_kind', '我的字典');
RESET ROLE;

-- == Custom fields on follow-ups (seed 001's follow-up template: 地址, and a purpose
-- from the new dictionary)
SET ROLE dic_admin;
SELECT crm.add_field('follow_up', 'purpose', 'single', dictionary => 'visit_purpose', label => '拜访目的');
SELECT crm.add_field('follow_up', 'address', 'text', label => '地址');
SELECT crm.add_field('customer', 'dic_purposes', 'multiple', dictionary => 'visit_purpose');
RESET ROLE;
SET ROLE dic_rep;
INSERT INTO crm.customer (name, uscc, source) VALUES ('常州字典机电有限公司', crm.uscc_with_check('91320400MA1DCC001'), 'exhibition');
INSERT INTO crm.follow_up (record_type, record_id, method, content, purpose, address)
SELECT 'customer', id, 'visit', '上门演示了能耗系统', 'demo', '常州市武进区' FROM crm.customer WHERE name = '常州字典机电有限公司'
RETURNING content, purpose, address;
INSERT INTO crm.follow_up (record_type, record_id, content, purpose)
SELECT 'customer', id, '聊了聊', 'gossip' FROM crm.customer WHERE name = '常州字典机电有限公司';
UPDATE crm.customer SET dic_purposes = '{quote,demo}' WHERE name = '常州字典机电有限公司' RETURNING dic_purposes;
-- a purpose reads as its label
SELECT f.purpose, d.label FROM crm.follow_up f JOIN crm.dictionary d ON d.kind = 'visit_purpose' AND d.code = f.purpose;
-- a lead from the exhibition, converted: read-only from then on
INSERT INTO crm.lead (name, company, uscc, mobile, source)
VALUES ('赵字典', '嘉兴字典电气有限公司', crm.uscc_with_check('91330400MA2DCC002'), '13700001101', 'exhibition');
SELECT crm.convert_lead(id) IS NOT NULL AS converted FROM crm.lead WHERE name = '赵字典';
RESET ROLE;

-- == A code records use is not deleted, nor renamed
SET ROLE dic_admin;
\set VERBOSITY verbose
DELETE FROM crm.dictionary WHERE kind = 'customer_source' AND code = 'exhibition';
\set VERBOSITY default
UPDATE crm.dictionary SET code = 'expo' WHERE kind = 'customer_source' AND code = 'exhibition';
DELETE FROM crm.dictionary WHERE kind = 'visit_purpose' AND code = 'demo';
-- nor the dictionary of codes (its codes go first)
DELETE FROM crm.dictionary_kind WHERE kind = 'visit_purpose';
-- a code nobody uses goes
DELETE FROM crm.dictionary WHERE kind = 'visit_purpose' AND code = 'contract' RETURNING code;

-- == Disabled, a code stays on the records that have it and is not chosen again
UPDATE crm.dictionary SET enabled = false WHERE kind = 'visit_purpose' AND code = 'quote';
RESET ROLE;
SET ROLE dic_rep;
UPDATE crm.follow_up SET address = '常州市新北区' WHERE purpose = 'demo' RETURNING purpose, address;
INSERT INTO crm.follow_up (record_type, record_id, content, purpose)
SELECT 'customer', id, '再报一次价', 'quote' FROM crm.customer WHERE name = '常州字典机电有限公司';
-- a multiple-choice value too: it keeps the element, but gains it nowhere
-- (a constraint refused every change of a record keeping a disabled element)
UPDATE crm.customer SET phone = '0519-86660000' WHERE name = '常州字典机电有限公司' RETURNING phone, dic_purposes;
UPDATE crm.customer SET dic_purposes = '{quote}' WHERE name = '常州字典机电有限公司' RETURNING dic_purposes;
UPDATE crm.customer SET dic_purposes = '{quote,demo}' WHERE name = '常州字典机电有限公司' RETURNING dic_purposes;
INSERT INTO crm.customer (name, uscc, dic_purposes) VALUES ('无锡字典', crm.uscc_with_check('91320200MA1DCC003'), '{demo,quote}');
RESET ROLE;

-- == crm.replace_dictionary_code moves every record, then removes the code
SET ROLE dic_rep;
SELECT crm.replace_dictionary_code('customer_source', 'exhibition', 'referral');
RESET ROLE;
SET ROLE dic_admin;
SELECT crm.replace_dictionary_code('customer_source', 'exhibition', 'carrier_pigeon');
SELECT crm.replace_dictionary_code('customer_source', 'exhibition', 'exhibition');
SELECT crm.replace_dictionary_code('customer_source', 'no_such_code', 'referral');
SELECT crm.replace_dictionary_code('visit_purpose', 'quote', NULL);
-- the customers it made, the customer the lead became and the converted lead itself, seen or not
SELECT crm.replace_dictionary_code('customer_source', 'exhibition', 'referral') AS moved;
SELECT crm.replace_dictionary_code('visit_purpose', 'quote', 'demo') AS moved;
RESET ROLE;
SELECT name, source FROM crm.customer WHERE name IN ('常州字典机电有限公司', '嘉兴字典电气有限公司') ORDER BY name;
SELECT name, status, source FROM crm.lead WHERE name = '赵字典';
SELECT dic_purposes FROM crm.customer WHERE name = '常州字典机电有限公司';
SELECT count(*) AS exhibition_left FROM crm.dictionary WHERE kind = 'customer_source' AND code IN ('exhibition', 'quote');
-- the log says the system made the changes
SELECT record_type, source, changes FROM crm.oplog
 WHERE changes ? 'source' AND record_type IN ('customer', 'lead') ORDER BY id DESC LIMIT 2;

-- cleanup
ALTER TABLE crm.lead DISABLE TRIGGER lead_converted_kept;
DELETE FROM crm.lead WHERE name = '赵字典';
ALTER TABLE crm.lead ENABLE TRIGGER lead_converted_kept;
DELETE FROM crm.customer WHERE name IN ('常州字典机电有限公司', '嘉兴字典电气有限公司');
DELETE FROM crm.added_field WHERE record_type = 'follow_up' OR name = 'dic_purposes';
DELETE FROM crm.dictionary WHERE kind = 'visit_purpose';
DELETE FROM crm.dictionary_kind WHERE kind = 'visit_purpose';
INSERT INTO crm.dictionary (kind, code, label, position, builtin) VALUES ('customer_source', 'exhibition', '展会', 3, true);
DELETE FROM crm.role WHERE name LIKE 'Dic %';
DROP OWNED BY dic_admin, dic_rep;
DROP ROLE dic_admin, dic_rep;
