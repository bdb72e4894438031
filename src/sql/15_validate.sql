-- Formats (src/core/validate.c): boolean tests, and the checking forms CHECK constraints use.

CREATE OR REPLACE FUNCTION crm.uscc_valid(code text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_uscc_valid' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION crm.mobile_valid(mobile text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_mobile_valid' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION crm.email_valid(email text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_email_valid' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION crm.uscc_with_check(first17 text) RETURNS text
	AS 'MODULE_PATHNAME', 'crm_uscc_with_check' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.uscc_valid(text) IS 'A unified social credit code (统一社会信用代码) with a correct check digit';
COMMENT ON FUNCTION crm.mobile_valid(text) IS 'A mainland mobile number: 11 digits from 13 to 19, optionally after +86';
COMMENT ON FUNCTION crm.email_valid(text) IS 'One plain e-mail address';
COMMENT ON FUNCTION crm.uscc_with_check(text) IS 'The first 17 characters of a code followed by its check digit';

-- raise check_violation with the reason, or return true
CREATE OR REPLACE FUNCTION crm.check_uscc(code text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_check_uscc' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.check_uscc(text) IS 'True, or a check_violation saying why the unified social credit code is malformed or its check digit wrong (a CHECK)';
CREATE OR REPLACE FUNCTION crm.check_mobile(mobile text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_check_mobile' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.check_mobile(text) IS 'True, or a check_violation saying why the mobile number is malformed (a CHECK)';
CREATE OR REPLACE FUNCTION crm.check_email(email text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_check_email' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.check_email(text) IS 'True, or a check_violation saying why the e-mail address is malformed (a CHECK)';

-- A value as messages quote it: whole up to 64 bytes, else its first whole
-- characters and "..." (src/core/validate.c).
CREATE OR REPLACE FUNCTION crm.clip(value text) RETURNS text
	AS 'MODULE_PATHNAME', 'crm_clip' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.clip(text) IS 'A value as messages quote it: whole up to 64 bytes, else its first whole characters and "..."';

-- The length limits of text columns (docs/records.md lists them): raise
-- string_data_right_truncation naming the column, or return true.
CREATE OR REPLACE FUNCTION crm.check_length(value text, max_chars integer, what text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_check_length' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.check_length(text, integer, text) IS 'True, or a string_data_right_truncation naming the column when the text is longer than max_chars characters (a CHECK)';
