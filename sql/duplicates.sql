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
-- polyphonic characters take their most common reading: 重庆 is read zhongqing, not chongqing
SELECT crm.dedupe_key('pinyin', '重庆') AS polyphone;
SELECT crm.dedupe_key('color', 'red');

-- every record keeps its keys in generated columns, whatever writes it
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
UPDATE crm.customer SET name_key = 'forged' WHERE owner_id = :admin;
