-- Duplicate keys: what each kind of value normalises to (NULL: never matches anything)
SELECT kind, value, crm.dedupe_key(kind, value) AS key
  FROM (VALUES
	('company', '华为技术有限公司'),
	('company', '华为技术（深圳）有限公司'),
	('company', '华为技术(深圳)有限公司'),
	('company', '华为技术股份有限公司'),
	('company', '华为技术有限责任公司'),
	('company', '华为集团'),
	('company', '　华为技术 有限公司　'),
	('company', 'ＨＵＡＷＥＩ Technologies Co., Ltd.'),
	('company', 'Huawei Technologies Co Ltd'),
	('company', 'Acme Inc.'),
	('company', '【杭州】西湖茶叶有限公司'),
	('company', '有限公司'),
	('company', '（北京）'),
	('company', '— · —'),
	('name', '张 三'),
	('name', 'Zhang San'),
	('name', 'ＺＨＡＮＧ　ＳＡＮ'),
	('name', 'Straße'),
	('name', '   '),
	('phone', '+86 138-0013-8000'),
	('phone', '0086 13800138000'),
	('phone', '86 138 0013 8000'),
	('phone', '１３８００１３８０００'),
	('phone', '(010) 6552-9988'),
	('phone', '8613800138000 ext'),
	('phone', '---'),
	('phone', '+86 755 2878 0808'),
	('phone', '0086-571-8888-0000'),
	('phone', '+1 415 555 0100'),
	('email', '  Zhang.San@Example.COM '),
	('email', 'ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ'),
	('pinyin', '华为'),
	('pinyin', '西湖茶叶'),
	('initials', '华为'),
	('initials', '西湖 茶叶'),
	('pinyin', 'ＨＵＡＷＥＩ 华为'),
	('initials', 'Acme Tea Co'),
	('pinyin', '—')
  ) v(kind, value);
-- a polyphonic character in a phrase of crm.pinyin_phrase takes the phrase's reading: 重庆 is
-- chongqing, not zhongqing (docs/duplicates.md, "Chinese names")
SELECT crm.dedupe_key('pinyin', '重庆') AS polyphone;
SELECT crm.dedupe_key('color', 'red');

-- every record keeps its keys, whatever writes it
SELECT setval(s, 1500, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.customer_id_seq',
	'crm.lead_id_seq', 'crm.contact_id_seq']) s \g /dev/null
INSERT INTO crm.department (name) VALUES ('Dd Sales');
INSERT INTO crm.employee (name, department_id) SELECT 'Dd Admin', id FROM crm.department WHERE name = 'Dd Sales';
SELECT id AS admin FROM crm.employee WHERE name = 'Dd Admin' \gset
INSERT INTO crm.customer (name, uscc, phone, owner_id)
VALUES ('杭州西湖茶叶（中国）有限公司', crm.uscc_with_check('91330100MA2B00150'), '+86 138 0571 0001', :admin);
SELECT name_key, phone_key FROM crm.customer WHERE owner_id = :admin;
UPDATE crm.customer SET phone = '0571-8888 0000' WHERE owner_id = :admin;
SELECT name_key, phone_key FROM crm.customer WHERE owner_id = :admin;
-- not even a superuser writes them: crm puts them right
UPDATE crm.customer SET name_key = 'forged', name_pinyin = 'forged' WHERE owner_id = :admin;
SELECT name_key, name_pinyin, name_initials, phone_key FROM crm.customer WHERE owner_id = :admin;
-- a key is computed when what it comes from changes, not on every update: with a
-- region added (and the keys not yet rebuilt), locking the customer keeps the
-- stored keys, a change of phone computes the phone's alone, a change of name
-- computes the name's with the region
UPDATE crm.customer SET name = '杭州西湖龙井茶业有限公司' WHERE owner_id = :admin;
INSERT INTO crm.dedupe_region (name, level) VALUES ('西湖', 'county');
UPDATE crm.customer SET locked = true WHERE owner_id = :admin;
SELECT name_key, name_pinyin FROM crm.customer WHERE owner_id = :admin;
UPDATE crm.customer SET phone = '0571-8888 0001' WHERE owner_id = :admin;
SELECT name_key, name_pinyin, phone_key FROM crm.customer WHERE owner_id = :admin;
UPDATE crm.customer SET name = '杭州西湖龙井茶业' WHERE owner_id = :admin;
SELECT name_key, name_pinyin FROM crm.customer WHERE owner_id = :admin;
DELETE FROM crm.dedupe_region WHERE name = '西湖';
SELECT crm.rebuild_keys() AS keys_rewritten;
SELECT name_key, name_pinyin FROM crm.customer WHERE owner_id = :admin;
UPDATE crm.customer SET name = '杭州西湖茶叶（中国）有限公司', phone = '0571-8888 0000', locked = false WHERE owner_id = :admin;

-- rules are rows, checked when written
-- (errors without their PL/pgSQL context: which line raised them is no one's business)
\set SHOW_CONTEXT never
SET client_min_messages = warning;
INSERT INTO crm.employee (name, department_id, superior_id)
SELECT n, d.id, :admin FROM unnest(ARRAY['Dd 张三', 'Dd 李四']) n, crm.department d WHERE d.name = 'Dd Sales';
SELECT id AS zhang FROM crm.employee WHERE name = 'Dd 张三' \gset
SELECT id AS li FROM crm.employee WHERE name = 'Dd 李四' \gset
INSERT INTO crm.dedupe_rule (name, record_type, fields) VALUES ('no fields', 'customer', '{}');
INSERT INTO crm.dedupe_rule (name, record_type, fields) VALUES ('typo', 'customer', '{nmae}');
INSERT INTO crm.dedupe_rule (name, record_type, fields, match) VALUES ('all of one', 'customer', '{name, name}', 'all');
INSERT INTO crm.dedupe_rule (name, record_type, fields, against) VALUES ('nowhere', 'customer', '{name}', '{}');
INSERT INTO crm.dedupe_rule (name, record_type, customer_kind, fields) VALUES ('kind of lead', 'lead', 'company', '{name}');
INSERT INTO crm.dedupe_rule (name, record_type, fields, against) VALUES
	('company name', 'customer', '{name}', '{customers, pool, leads}'),
	('credit code', 'customer', '{uscc}', '{customers, leads}'),
	('lead mobile', 'lead', '{mobile}', '{customers, leads, contacts}');
INSERT INTO crm.dedupe_rule (name, record_type, fields, action, against) VALUES
	('phone', 'customer', '{phone}', 'warn', '{customers, contacts}');
SELECT name, record_type, fields, match, action, against FROM crm.dedupe_rule ORDER BY id;

-- block: the same company under another spelling, whoever owns it, in the same statement or not
INSERT INTO crm.customer (name, uscc, phone, owner_id)
VALUES ('华为技术（深圳）有限公司', crm.uscc_with_check('91440300MA5F00151'), '0755-2878 0808', :zhang);
INSERT INTO crm.customer (name, uscc, owner_id)
VALUES ('华为技术股份有限公司', crm.uscc_with_check('91440300MA5F00152'), :li);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.customer (name, uscc, owner_id)
VALUES ('宁波港务有限公司', crm.uscc_with_check('91330200MA5F00153'), :li),
       ('宁波港务集团', crm.uscc_with_check('91330200MA5F00154'), :li);
INSERT INTO crm.customer (name, uscc, owner_id)
VALUES ('深圳华为', crm.uscc_with_check('91440300MA5F00151'), :li);
-- an update that changes a key is checked too; one that does not is not
INSERT INTO crm.customer (name, uscc, owner_id) VALUES ('中兴通讯', crm.uscc_with_check('91440300MA5F00155'), :li);
UPDATE crm.customer SET name = '华为技术' WHERE name = '中兴通讯';
UPDATE crm.customer SET industry = 'it' WHERE name_key = '华为技术';
-- a company waiting in a public pool: the message says which, and to claim it there
INSERT INTO crm.pool (name) VALUES ('Dd 公海');
INSERT INTO crm.customer (name, uscc, owner_id)
VALUES ('丽水青田石雕有限公司', crm.uscc_with_check('91330100MA5F00157'), (SELECT id FROM crm.pool WHERE name = 'Dd 公海'));
INSERT INTO crm.customer (name, uscc, owner_id) VALUES ('丽水青田石雕股份有限公司', crm.uscc_with_check('91330100MA5F00158'), :li);
SELECT match_type, label, owner, rules FROM crm.find_duplicates('customer', '{"name": "丽水青田石雕集团"}') WHERE rules IS NOT NULL;
DELETE FROM crm.customer WHERE name = '丽水青田石雕有限公司';
-- leads: an unconverted lead's mobile against customers' phones, leads and contacts
INSERT INTO crm.lead (name, company, mobile, owner_id) VALUES ('王先生', '宁波港务', '+8613905740001', :li);
INSERT INTO crm.lead (name, company, mobile, owner_id) VALUES ('王先生', '宁波港务', '13905740001', :zhang);
-- names made only of punctuation never match each other
INSERT INTO crm.customer (name, uscc, owner_id)
VALUES ('—', crm.uscc_with_check('91440300MA5F00157'), :zhang), ('…', crm.uscc_with_check('91440300MA5F00158'), :li);

-- warn: the row is written, the pair recorded, the existing owner and the uploader's superior told
INSERT INTO crm.customer (name, uscc, phone, owner_id)
VALUES ('深圳云计算', crm.uscc_with_check('91440300MA5F00156'), '+86 755 2878 0808', :li);
SELECT r.name AS rule, s.record_type, c.name, s.match_type, m.name AS matches
  FROM crm.duplicate_set s JOIN crm.dedupe_rule r ON r.id = s.rule_id
  JOIN crm.customer c ON c.id = s.record_id JOIN crm.customer m ON m.id = s.match_id;
SELECT e.name, n.title, n.body FROM crm.notification n JOIN crm.employee e ON e.id = n.recipient_id
 WHERE n.event = 'duplicate.found' ORDER BY e.name;
-- find_duplicates: exact matches by rule, then similar names (pinyin trigrams) and initials, best first
SELECT match_type, label, owner, rules, round(score::numeric, 2) AS score, reasons
  FROM crm.find_duplicates('customer', '{"name": "华为技术（北京）有限公司"}');
SELECT match_type, label, owner, round(score::numeric, 2) AS score, reasons FROM crm.find_duplicates('customer', '{"name": "hua wei ji shu"}');
SELECT match_type, label, owner, reasons FROM crm.find_duplicates('customer', '{"name": "HW"}');
SELECT match_type, label, owner, rules FROM crm.find_duplicates('lead', '{"mobile": "+86 139 0574 0001"}');
SELECT count(*) FROM crm.find_duplicates('customer', '{"name": "—"}');
SELECT * FROM crm.find_duplicates('invoice', '{}');
-- a salesperson sees whose a match is, but not the record itself unless they may
DO $$ BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dd_li') THEN CREATE ROLE dd_li LOGIN IN ROLE crm_user; END IF;
END $$;
UPDATE crm.employee SET db_role = 'dd_li' WHERE id = :li;
INSERT INTO crm.role (name) VALUES ('Dd rep');
INSERT INTO crm.role_scope (role_id, record_type, scope) SELECT id, 'customer', 'self' FROM crm.role WHERE name = 'Dd rep';
INSERT INTO crm.employee_role (employee_id, role_id) SELECT :li, id FROM crm.role WHERE name = 'Dd rep';
SET ROLE dd_li;
SELECT match_type, match_id IS NOT NULL AS id_shown, label, owner, rules
  FROM crm.find_duplicates('customer', '{"name": "华为技术"}') ORDER BY owner;
RESET ROLE;

-- merge: one transaction moves everything of the merged customer to the kept one
SELECT id AS keep FROM crm.customer WHERE name = '华为技术（深圳）有限公司' \gset
INSERT INTO crm.customer (name, uscc, phone, industry, owner_id)
VALUES ('深圳市华为投资控股', crm.uscc_with_check('91440300MA5F00160'), NULL, 'it', :li) RETURNING id AS merge \gset
INSERT INTO crm.contact (customer_id, name, mobile, owner_id) VALUES (:merge, '余先生', '13800000160', :li);
INSERT INTO crm.follow_up (record_type, record_id, content, created_by) VALUES ('customer', :merge, '约了下周拜访', :li);
INSERT INTO crm.team_member (record_type, record_id, employee_id, access)
VALUES ('customer', :merge, :zhang, 'edit'), ('customer', :keep, :li, 'edit'), ('customer', :merge, :li, 'edit');
SET ROLE dd_li;
SELECT crm.merge_customers(:keep, :merge);
RESET ROLE;
INSERT INTO crm.role_permission (role_id, action)
SELECT id, a FROM crm.role, unnest(ARRAY['customer.merge', 'customer.edit']) a WHERE name = 'Dd rep';
SELECT id AS hidden FROM crm.customer WHERE name = '—' \gset
SET ROLE dd_li;
-- (李四 edits the kept customer through its team, and may not touch 张三's other customers)
SELECT crm.merge_customers(:keep, :hidden);
SELECT crm.merge_customers(:merge, :merge);
SELECT crm.merge_customers(:keep, :merge) > 0 AS merged;
RESET ROLE;
SELECT (SELECT count(*) FROM crm.customer WHERE id = :merge) AS merged_left,
       (SELECT string_agg(name, ', ') FROM crm.contact WHERE customer_id = :keep) AS contacts,
       (SELECT string_agg(content, ', ') FROM crm.follow_up WHERE record_type = 'customer' AND record_id = :keep) AS follow_ups,
       (SELECT string_agg(e.name || ':' || t.access, ', ' ORDER BY e.name) FROM crm.team_member t JOIN crm.employee e ON e.id = t.employee_id
         WHERE t.record_type = 'customer' AND t.record_id = :keep) AS team,
       (SELECT industry FROM crm.customer WHERE id = :keep) AS industry_filled;
SELECT merged_row ->> 'name' AS merged, moved, merged_by = :li AS by_li FROM crm.customer_merge;
-- the kept customer takes the merged one's phone even under a blocking phone
-- rule: the merged one is gone first, so the kept one duplicates nobody
UPDATE crm.dedupe_rule SET action = 'block' WHERE name = 'phone';
INSERT INTO crm.customer (name, uscc, owner_id) VALUES ('杭州合并甲', crm.uscc_with_check('91330100MA5F00171'), :li) RETURNING id AS keep2 \gset
INSERT INTO crm.customer (name, uscc, phone, owner_id)
VALUES ('杭州合并乙', crm.uscc_with_check('91330100MA5F00172'), '0571-8800 1717', :li) RETURNING id AS merge2 \gset
SET ROLE dd_li;
SELECT crm.merge_customers(:keep2, :merge2) > 0 AS merged;
RESET ROLE;
SELECT name, phone FROM crm.customer WHERE id IN (:keep2, :merge2);
UPDATE crm.dedupe_rule SET action = 'warn' WHERE name = 'phone';

-- a rule of either kind compares a company's name with companies' and a
-- person's with people's, whichever was entered first (seed 001)
WITH c AS (INSERT INTO crm.customer (name, kind, owner_id) VALUES ('华为技术', 'individual', :li) RETURNING id, owner_id)
INSERT INTO crm.contact (customer_id, name, mobile, owner_id) SELECT id, '华为技术', '13905770011', owner_id FROM c;
WITH c AS (INSERT INTO crm.customer (name, kind, owner_id) VALUES ('华为 技术', 'individual', :zhang) RETURNING id, owner_id)
INSERT INTO crm.contact (customer_id, name, mobile, owner_id) SELECT id, '华为技术', '13905770012', owner_id FROM c;
WITH c AS (INSERT INTO crm.customer (name, kind, owner_id) VALUES ('台州渔业', 'individual', :li) RETURNING id, owner_id)
INSERT INTO crm.contact (customer_id, name, mobile, owner_id) SELECT id, '台州渔业', '13905770013', owner_id FROM c;
INSERT INTO crm.customer (name, uscc, owner_id) VALUES ('台州渔业有限公司', crm.uscc_with_check('91331000MA5F00162'), :zhang);
SELECT name, kind, (SELECT name FROM crm.employee e WHERE e.id = owner_id) AS owner
  FROM crm.customer WHERE name_key IN ('华为技术', '台州渔业') ORDER BY kind, name;
DELETE FROM crm.customer WHERE name_key = '台州渔业' OR (name_key = '华为技术' AND kind = 'individual');
-- a company rule on both fields: one company with that name and that phone
UPDATE crm.dedupe_rule SET enabled = false WHERE name = 'company name';
INSERT INTO crm.dedupe_rule (name, record_type, customer_kind, fields, match, against) VALUES
	('name and phone', 'customer', 'company', '{name, phone}', 'all', '{customers}');
INSERT INTO crm.customer (name, uscc, phone, owner_id) VALUES ('华为技术有限公司', crm.uscc_with_check('91440300MA5F00163'), '0755 2878 0808', :li);
DELETE FROM crm.dedupe_rule WHERE name = 'name and phone';
UPDATE crm.dedupe_rule SET enabled = true WHERE name = 'company name';

-- an individual customer is the same person by name together with a contact's mobile (seed 001),
-- checked when the contact is written; the team's name rule is narrowed to companies
UPDATE crm.dedupe_rule SET customer_kind = 'company' WHERE name = 'company name';
INSERT INTO crm.dedupe_rule (name, record_type, customer_kind, fields, match) VALUES
	('person and mobile', 'customer', 'individual', '{name, contact_mobile}', 'all');
BEGIN;
INSERT INTO crm.customer (name, kind, owner_id) VALUES ('陈先生', 'individual', :zhang) RETURNING id AS chen \gset
INSERT INTO crm.contact (customer_id, name, mobile, owner_id) VALUES (:chen, '陈先生', '13812340008', :zhang);
COMMIT;
BEGIN;
INSERT INTO crm.customer (name, kind, owner_id) VALUES ('陈 先生', 'individual', :li) RETURNING id AS chen2 \gset
INSERT INTO crm.contact (customer_id, name, mobile, owner_id) VALUES (:chen2, '陈先生', '+8613812340008', :li);
ROLLBACK;
BEGIN;
INSERT INTO crm.customer (name, kind, owner_id) VALUES ('陈先生', 'individual', :li) RETURNING id AS chen3 \gset
INSERT INTO crm.contact (customer_id, name, mobile, owner_id) VALUES (:chen3, '陈先生', '13912340009', :li);
COMMIT;
SELECT c.name, k.mobile, e.name AS owner FROM crm.customer c JOIN crm.contact k ON k.customer_id = c.id
  JOIN crm.employee e ON e.id = c.owner_id WHERE c.kind = 'individual' AND c.name = '陈先生' ORDER BY k.mobile;
-- a contact's mobile changed to the other 陈先生's is refused too
UPDATE crm.contact SET mobile = '13812340008' WHERE customer_id = :chen3;
SELECT match_type, label, owner, rules FROM crm.find_duplicates('customer',
	'{"name": "陈先生", "kind": "individual", "contact_mobile": "+86 138 1234 0008"}') WHERE rules IS NOT NULL;

-- an import reports a duplicate on its own line and goes on with the others
CREATE TEMP TABLE dd_import (LIKE crm.customer_import INCLUDING ALL);
INSERT INTO dd_import (line, name, uscc, owner_id) VALUES
	(1, '华为技术有限责任公司', crm.uscc_with_check('91440300MA5F00161'), :li),
	(2, '温州眼镜有限公司', crm.uscc_with_check('91330300MA5F00162'), :li);
SELECT * FROM crm.import_customers('dd_import');
SELECT line, status, sqlstate, message FROM dd_import ORDER BY line;

-- converting a lead makes a customer and a contact that are not duplicates of the lead itself
BEGIN;
INSERT INTO crm.lead (name, company, uscc, mobile, owner_id)
VALUES ('孙女士', '温州鞋业有限公司', crm.uscc_with_check('91330300MA5F00159'), '13905770002', :zhang);
SELECT crm.convert_lead(id) > 0 AS converted FROM crm.lead WHERE company = '温州鞋业有限公司';
ROLLBACK;
RESET client_min_messages;

-- a rule checks only the keys an update changes: two companies that shared a
-- name before the rule existed may still have their phones changed
UPDATE crm.dedupe_rule SET enabled = false WHERE name = 'company name';
INSERT INTO crm.customer (name, uscc, owner_id)
VALUES ('温州鹿城鞋业', crm.uscc_with_check('91330300MA5F00159'), :li),
       ('温州鹿城鞋业有限公司', crm.uscc_with_check('91330300MA5F00160'), :zhang);
UPDATE crm.dedupe_rule SET enabled = true WHERE name = 'company name';
UPDATE crm.customer SET phone = '0577-8800 1234' WHERE name = '温州鹿城鞋业';
DELETE FROM crm.customer WHERE name LIKE '温州鹿城%';

-- converted and invalid leads are history: they neither match nor are
-- checked; one set back to following is checked again
INSERT INTO crm.lead (name, company, mobile, owner_id, status) VALUES ('王先生', '宁波港务', '13905740001', :zhang, 'invalid');
UPDATE crm.lead SET status = 'following' WHERE owner_id = :zhang AND status = 'invalid';
DELETE FROM crm.lead WHERE owner_id = :zhang AND status = 'invalid';
-- a lead and a customer that happen to have the same id are still compared
INSERT INTO crm.customer (id, name, uscc, phone, owner_id) OVERRIDING SYSTEM VALUE
VALUES (990001, '台州海运', crm.uscc_with_check('91331000MA5F00161'), '13905760003', :li);
INSERT INTO crm.lead (id, name, mobile, owner_id) OVERRIDING SYSTEM VALUE VALUES (990001, '赵先生', '13905760003', :zhang);
DELETE FROM crm.customer WHERE id = 990001;

-- (the rules go, so that other test files insert freely)
DELETE FROM crm.dedupe_rule;
