-- Duplicate checks, Chinese names (src/dedupe/chinese.c): China's administrative
-- divisions, dropped from the front of a company's name (北京字节跳动科技 is
-- 字节跳动科技, as 字节跳动（北京）科技 is), and the readings of phrases, taken
-- before single characters' in pinyin (重庆 is chongqing).  crm ships the rows
-- (46_chinese_names_rows.sql, generated from openly licensed data by
-- src/dedupe/chinese_words.js: the sources and their licences are named there);
-- a DBA may add rows, change them or turn them off.  A change does not compute
-- the stored keys again: crm.key_check() warns until crm.rebuild_keys() has
-- (docs/duplicates.md, "Chinese names").
CREATE TABLE crm.dedupe_region (
	name     text NOT NULL,
	level    text NOT NULL,
	enabled  boolean NOT NULL DEFAULT true,
	builtin  boolean NOT NULL DEFAULT false,
	CONSTRAINT dedupe_region_pkey PRIMARY KEY (name),
	CONSTRAINT dedupe_region_level_check CHECK (level IN ('province', 'city', 'county'))
);
COMMENT ON TABLE crm.dedupe_region IS 'Regions dropped from the front of company names for duplicate keys, unless nothing but company words would be left';
COMMENT ON COLUMN crm.dedupe_region.name IS 'The region as written in company names: 浙江, 浙江省, 杭州市, 西湖区 (2 to 20 characters)';
COMMENT ON COLUMN crm.dedupe_region.level IS 'province, city (prefecture level) or county (county level, districts included)';
COMMENT ON COLUMN crm.dedupe_region.enabled IS 'Whether duplicate keys drop it (false keeps a shipped row without deleting it)';
COMMENT ON COLUMN crm.dedupe_region.builtin IS 'Shipped by crm (edits are kept by pg_dump and updates)';

CREATE TABLE crm.pinyin_phrase (
	phrase        text NOT NULL,
	pinyin        text NOT NULL,
	company_word  boolean NOT NULL DEFAULT false,
	enabled       boolean NOT NULL DEFAULT true,
	builtin       boolean NOT NULL DEFAULT false,
	CONSTRAINT pinyin_phrase_pkey PRIMARY KEY (phrase)
);
COMMENT ON TABLE crm.pinyin_phrase IS 'Readings of phrases, taken before single characters'' in pinyin keys (longest first)';
COMMENT ON COLUMN crm.pinyin_phrase.phrase IS 'The phrase in simplified characters (2 to 20): 重庆, 银行';
COMMENT ON COLUMN crm.pinyin_phrase.pinyin IS 'One syllable a character, without tones, separated by spaces (ü as v): chong qing';
COMMENT ON COLUMN crm.pinyin_phrase.company_word IS 'A trade or business word: a region followed only by such words stays in the key (长沙银行)';
COMMENT ON COLUMN crm.pinyin_phrase.enabled IS 'Whether pinyin keys read it (false keeps a shipped row without deleting it)';
COMMENT ON COLUMN crm.pinyin_phrase.builtin IS 'Shipped by crm (edits are kept by pg_dump and updates)';
