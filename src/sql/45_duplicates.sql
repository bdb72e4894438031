-- Duplicate checks (issue 5), part one: the keys under which two spellings
-- of the same name, phone or e-mail compare equal (src/normalize.c).
CREATE FUNCTION crm.dedupe_key(kind text, value text) RETURNS text
	AS 'MODULE_PATHNAME', 'crm_dedupe_key_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.dedupe_key(text, text) IS
	'Duplicate key of a value: kind name, company, phone, email, pinyin or initials; NULL when nothing is left';
