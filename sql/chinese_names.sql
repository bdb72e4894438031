-- Duplicate keys of Chinese names (docs/duplicates.md, "Chinese names"): one script,
-- no leading regions, phrases read as phrases.

-- traditional and simplified spellings of one company or person are one key
-- (OpenCC converts by phrase: 頭髮 is 头发, 皇后 stays)
SELECT kind, value, crm.dedupe_key(kind, value) AS key
  FROM (VALUES
	('company', '華為技術有限公司'),
	('company', '华为技术有限公司'),
	('company', '臺灣積體電路製造股份有限公司'),
	('name', '陳大文'),
	('name', '陈大文'),
	('name', '頭髮皇后')) v(kind, value);

-- regions in front of a company's name go, as bracketed ones do, one after the other;
-- not when nothing but company words would be left, nor a county's name without its
-- suffix (a trade name as often); names without Chinese are keyed as before
SELECT value, crm.dedupe_key('company', value) AS key
  FROM (VALUES
	('北京字节跳动科技有限公司'),
	('字节跳动（北京）科技有限公司'),
	('浙江省杭州市华为技术有限公司'),
	('内蒙古伊利实业集团股份有限公司'),
	('北京市海淀区中关村科技有限公司'),
	('黔东南苗族侗族自治州苗绣有限公司'),
	('香港華為有限公司'),
	('長沙銀行股份有限公司'),
	('北京有限公司'),
	('北京科技发展有限公司'),
	('长安汽车股份有限公司'),
	('杭州西湖茶叶有限公司'),
	('ＨＵＡＷＥＩ Technologies Co., Ltd.'),
	('Beijing Acme Inc.')) v(value);

-- pinyin reads the phrases of crm.pinyin_phrase before single characters
SELECT value, crm.dedupe_key('pinyin', value) AS pinyin, crm.dedupe_key('initials', value) AS initials
  FROM (VALUES ('重庆'), ('长沙银行'), ('長沙銀行'), ('厦门'), ('重庆重工'), ('华为'), ('Acme 2')) v(value);

-- a salesperson finds 长沙银行 and 厦门航空 by what they type
INSERT INTO crm.department (name) VALUES ('Cn dept');
INSERT INTO crm.employee (name, department_id) SELECT 'Cn rep', id FROM crm.department WHERE name = 'Cn dept';
SELECT id AS rep FROM crm.employee WHERE name = 'Cn rep' \gset
INSERT INTO crm.customer (name, owner_id, uscc) VALUES
	('长沙银行股份有限公司', :rep, crm.uscc_with_check('91430100MA4L00001')),
	('厦门航空有限公司', :rep, crm.uscc_with_check('91350200MA4L00002')),
	('字节跳动（北京）科技有限公司', :rep, crm.uscc_with_check('91110100MA4L00003'));
SELECT name, name_key, name_pinyin, name_initials FROM crm.customer WHERE owner_id = :rep ORDER BY id;
SELECT q, label, reason FROM unnest(ARRAY['changshayinhang', 'xiamen', 'xm', 'cs', '北京字节跳动科技有限公司']) q,
       crm.similar_customers(q) s ORDER BY q, label, reason;

-- the shipped rows: every province, city and county, and readings, each as the
-- tables' checks would take it
SELECT level, count(*) FROM crm.dedupe_region GROUP BY level ORDER BY level;
SELECT count(*) > 3000 AS phrases, count(*) FILTER (WHERE company_word) > 100 AS company_words FROM crm.pinyin_phrase;
SELECT count(*) AS not_as_keys FROM crm.dedupe_region WHERE crm.dedupe_key('name', name) IS DISTINCT FROM name;
SELECT count(*) AS bad_readings FROM crm.pinyin_phrase
 WHERE crm.dedupe_key('name', phrase) IS DISTINCT FROM phrase OR pinyin !~ '^[a-z]+( [a-z]+)*$'
    OR cardinality(string_to_array(pinyin, ' ')) <> char_length(phrase);
SELECT name, level FROM crm.dedupe_region WHERE name IN ('北京', '北京市', '海淀区', '海淀', '新疆', '黔东南', '香港', '城区') ORDER BY name;

-- a DBA's rows: refused unless written as keys compare them
\set VERBOSITY default
INSERT INTO crm.dedupe_region (name, level) VALUES ('西湖區', 'county');
INSERT INTO crm.dedupe_region (name, level) VALUES ('湖', 'county');
INSERT INTO crm.dedupe_region (name, level) VALUES ('西湖', 'district');
INSERT INTO crm.pinyin_phrase (phrase, pinyin) VALUES ('银行', 'yin-hang');
INSERT INTO crm.pinyin_phrase (phrase, pinyin) VALUES ('招商银行', 'zhao shang yin');
\set VERBOSITY terse

-- a DBA's change applies to new keys at once, in every session; the stored keys
-- are computed again by crm.rebuild_keys(), which crm.key_check() asks for until then
SELECT crm.key_check();
INSERT INTO crm.customer (name, owner_id, uscc) VALUES
	('湘江长沙银行有限公司', :rep, crm.uscc_with_check('91430100MA4L00004')),
	('长城汽车股份有限公司', :rep, crm.uscc_with_check('91130600MA4L00005'));
INSERT INTO crm.dedupe_region (name, level) VALUES ('湘江', 'county');
INSERT INTO crm.pinyin_phrase (phrase, pinyin) VALUES ('长城', 'chang cheng');
SELECT name, name_key, name_pinyin, crm.dedupe_key('company', name) AS new_key,
       crm.dedupe_key('pinyin', crm.dedupe_key('company', name)) AS new_pinyin
  FROM crm.customer WHERE name IN ('湘江长沙银行有限公司', '长城汽车股份有限公司') ORDER BY name;
SELECT crm.key_check();
SELECT crm.rebuild_keys() AS rekeyed;
SELECT crm.key_check();
SELECT name, name_key, name_pinyin FROM crm.customer WHERE name IN ('湘江长沙银行有限公司', '长城汽车股份有限公司') ORDER BY name;
-- turned off, a shipped row stays (dumped, as a DBA's edit) but no longer applies
UPDATE crm.dedupe_region SET enabled = false WHERE name = '长沙';
SELECT crm.dedupe_key('company', '长沙湘江科技'), builtin FROM crm.dedupe_region WHERE name = '长沙';
DELETE FROM crm.dedupe_region WHERE name IN ('湘江', '长沙');
INSERT INTO crm.dedupe_region (name, level, builtin) VALUES ('长沙', 'city', true);
DELETE FROM crm.pinyin_phrase WHERE NOT builtin;
SELECT crm.rebuild_keys() AS rekeyed;
SELECT crm.key_check();

-- staff neither read nor write them
CREATE ROLE cn_user LOGIN IN ROLE crm_user;
SET ROLE cn_user;
SELECT count(*) FROM crm.dedupe_region;
INSERT INTO crm.pinyin_phrase (phrase, pinyin) VALUES ('银行', 'yin xing');
RESET ROLE;
DROP ROLE cn_user;

DELETE FROM crm.customer WHERE owner_id = :rep;
