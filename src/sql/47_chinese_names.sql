-- Duplicate checks, Chinese names (46_chinese_names.sql): the tables' checks, and
-- the stored keys computed again with them.

-- A name or phrase is written as keys compare it, or it could never match.
CREATE OR REPLACE FUNCTION crm.chinese_word_valid() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	word text;
	what text;
BEGIN
	IF TG_RELID = 'crm.dedupe_region'::regclass THEN
		word := NEW.name;
		what := 'region';
	ELSIF TG_RELID = 'crm.pinyin_phrase'::regclass THEN
		word := NEW.phrase;
		what := 'pinyin phrase';
	ELSE
		RAISE 'crm.chinese_word_valid() runs only on crm.dedupe_region and crm.pinyin_phrase, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type';
	END IF;
	IF char_length(word) NOT BETWEEN 2 AND 20 THEN
		RAISE EXCEPTION '% "%" has % characters', what, crm.clip(word), char_length(word)
			USING ERRCODE = 'check_violation', HINT = 'Regions and phrases have 2 to 20 characters.';
	END IF;
	IF crm.dedupe_key('name', word) IS DISTINCT FROM word THEN
		RAISE EXCEPTION '% "%" is not written as duplicate keys compare names', what, crm.clip(word)
			USING ERRCODE = 'check_violation',
			      HINT = format('Write it as crm.dedupe_key(''name'', ...) gives it, in simplified characters without spaces or punctuation: %s.',
			                    coalesce(crm.clip(crm.dedupe_key('name', word)), 'nothing is left of this one'));
	END IF;
	IF TG_RELID = 'crm.dedupe_region'::regclass THEN
		IF NEW.level NOT IN ('province', 'city', 'county') THEN
			RAISE EXCEPTION 'region "%" has level "%"', crm.clip(word), crm.clip(NEW.level)
				USING ERRCODE = 'check_violation', HINT = 'The levels are province, city (prefecture level) and county (county level, districts included).';
		END IF;
	ELSIF NEW.pinyin !~ '^[a-z]+( [a-z]+)*$' OR cardinality(string_to_array(NEW.pinyin, ' ')) <> char_length(word) THEN
		RAISE EXCEPTION 'pinyin phrase "%" reads "%", not one syllable for each of its % characters', crm.clip(word), crm.clip(NEW.pinyin), char_length(word)
			USING ERRCODE = 'check_violation',
			      HINT = 'Write the syllables in letters a to z without tones (ü as v), separated by single spaces: ''chong qing''.';
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER dedupe_region_valid BEFORE INSERT OR UPDATE ON crm.dedupe_region
	FOR EACH ROW EXECUTE FUNCTION crm.chinese_word_valid();
CREATE OR REPLACE TRIGGER pinyin_phrase_valid BEFORE INSERT OR UPDATE ON crm.pinyin_phrase
	FOR EACH ROW EXECUTE FUNCTION crm.chinese_word_valid();
SELECT crm.keep_builtin_edits('crm.dedupe_region', 'name');
SELECT crm.keep_builtin_edits('crm.pinyin_phrase', 'phrase');
-- every backend loads the tables again
CREATE OR REPLACE TRIGGER dedupe_region_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.dedupe_region
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
CREATE OR REPLACE TRIGGER pinyin_phrase_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.pinyin_phrase
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
ALTER TABLE crm.dedupe_region ENABLE ALWAYS TRIGGER dedupe_region_changed;
ALTER TABLE crm.pinyin_phrase ENABLE ALWAYS TRIGGER pinyin_phrase_changed;
SELECT pg_catalog.pg_extension_config_dump('crm.dedupe_region', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('crm.pinyin_phrase', 'WHERE NOT builtin');

-- What the keys are computed with, for crm.key_build: a digest of the rows in use.
CREATE OR REPLACE FUNCTION crm.chinese_words_digest() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT md5(coalesce((SELECT string_agg(r.name || ' ' || r.level, ',' ORDER BY r.name COLLATE "C")
	                       FROM crm.dedupe_region r WHERE r.enabled), '')
	           || ';' || coalesce((SELECT string_agg(p.phrase || ' ' || p.pinyin || ' ' || p.company_word::text, ',' ORDER BY p.phrase COLLATE "C")
	                                 FROM crm.pinyin_phrase p WHERE p.enabled), ''));
END;
COMMENT ON FUNCTION crm.chinese_words_digest() IS 'A digest of the regions and pinyin phrases duplicate keys are computed with (crm.key_build)';

-- Keys computed before crm knew regions, phrases and traditional characters (an
-- update from 0.1) are computed again; a new install has none yet.
SELECT crm.rebuild_keys();

-- A DBA's change tells them what it means for the stored keys (after the shipped
-- rows, which the keys were just built with).
CREATE OR REPLACE FUNCTION crm.chinese_words_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> ALL (ARRAY['crm.dedupe_region'::regclass, 'crm.pinyin_phrase'::regclass]) THEN
		RAISE 'crm.chinese_words_changed() runs only on crm.dedupe_region and crm.pinyin_phrase, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type';
	END IF;
	-- once per statement of the DBA's (crm.builtin_redefined's updates are nested)
	IF pg_trigger_depth() = 1 THEN
		PERFORM crm.key_check();
	END IF;
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER dedupe_region_keys_stale AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.dedupe_region
	FOR EACH STATEMENT EXECUTE FUNCTION crm.chinese_words_changed();
CREATE OR REPLACE TRIGGER pinyin_phrase_keys_stale AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.pinyin_phrase
	FOR EACH STATEMENT EXECUTE FUNCTION crm.chinese_words_changed();
