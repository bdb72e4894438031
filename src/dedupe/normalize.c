/*-------------------------------------------------------------------------
 *
 * normalize.c
 *	  Duplicate keys: the forms of names, phones and e-mails under which two
 *	  spellings of the same customer compare equal, so that duplicate rules
 *	  catch them.
 *
 *	  fold     Unicode NFKC with case folding (ICU's NFKC_Casefold: full-width
 *	           to half-width, ligatures and compatibility forms, case), then
 *	           without whitespace, punctuation and symbols, traditional Chinese
 *	           characters in simplified ones (OpenCC, chinese.c).
 *	  company  fold, after dropping bracketed parts (（北京）, (China)), then
 *	           legal-form suffixes (有限公司, 股份有限公司, 集团, Co., Ltd. ...),
 *	           then the regions it starts with (北京, 浙江省杭州市: chinese.c).
 *	  phone    the digits; a mainland mobile without +86 / 0086 / 86.
 *	  email    trimmed, NFKC case-folded.
 *	  pinyin   Han characters spelt in pinyin, phrases as crm.pinyin_phrase
 *	           reads them (重庆 → chongqing) and other characters by ICU's
 *	           Han-Latin transform (华为 → huawei), letters and digits kept;
 *	           and the initials of each syllable or word (hw).
 *
 *	  The keys are only as stable as ICU: its normalisation and transliteration
 *	  data change between versions, so crm records the version the stored keys
 *	  were built with (crm.key_build, crm.key_check()).
 *
 *	  A key that comes out empty is NULL: names made only of spaces or
 *	  punctuation never match each other.  So is the key of a value longer
 *	  than KEY_MAX_BYTES: no keyed column may hold one (docs/records.md),
 *	  and as crm computes a row's keys before its CHECK constraints
 *	  (keys.c), the column's limit then refuses it without the work of a key.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf8.h>
#include <unicode/utrans.h>
#include <unicode/uversion.h>

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_dedupe_key_sql);
PG_FUNCTION_INFO_V1(crm_icu_version_sql);

/* longer than a keyed column's value may be: 254 characters of up to 4 bytes */
#define KEY_MAX_BYTES 1024

/* legal forms, as fold() leaves them, longest first; stripped from the end repeatedly */
static const char *const legal_forms[] = {
	"集团股份有限公司", "集团有限责任公司", "股份有限公司", "有限责任公司", "集团有限公司",
	"有限公司", "集团公司", "分公司", "总公司", "集团", "公司",
	"corporation", "incorporated", "colimited", "limited", "company", "coltd", "corp",
	"gmbh", "llc", "ltd", "inc", "co",
};

static void
icu_check(UErrorCode status, const char *what)
{
	if (U_FAILURE(status))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("ICU could not %s: %s", what, u_errorName(status))));
}

/* UTF-8 to a palloc'd UTF-16 string; *len its length (at most one unit a byte) */
static UChar *
to_utf16(const char *s, int32_t bytes, int32_t *len)
{
	UErrorCode status = U_ZERO_ERROR;
	UChar	   *out = palloc(sizeof(UChar) * (bytes + 1));

	u_strFromUTF8(out, bytes + 1, len, s, bytes, &status);
	icu_check(status, "read UTF-8");
	return out;
}

/* UTF-16 to a palloc'd UTF-8 string (at most 3 bytes a unit) */
static char *
to_utf8(const UChar *s, int32_t len)
{
	UErrorCode status = U_ZERO_ERROR;
	int32_t		bytes;
	char	   *out = palloc(len * 3 + 1);

	u_strToUTF8(out, len * 3 + 1, &bytes, s, len, &status);
	icu_check(status, "write UTF-8");
	return out;
}

/* NFKC_Casefold of s; *len its length */
static UChar *
casefold(const UChar *s, int32_t len, int32_t *outlen)
{
	UErrorCode status = U_ZERO_ERROR;
	const UNormalizer2 *nfkc = unorm2_getNFKCCasefoldInstance(&status);
	int32_t		cap = len * 2 + 16;
	UChar	   *out;

	icu_check(status, "load NFKC_Casefold");
	out = palloc(sizeof(UChar) * cap);
	*outlen = unorm2_normalize(nfkc, s, len, out, cap, &status);
	if (status == U_BUFFER_OVERFLOW_ERROR)
	{
		/* folding can grow a string past any ratio (ﷺ: 18 characters); ICU said how far */
		cap = *outlen + 1;
		pfree(out);
		out = palloc(sizeof(UChar) * cap);
		status = U_ZERO_ERROR;
		*outlen = unorm2_normalize(nfkc, s, len, out, cap, &status);
	}
	icu_check(status, "normalize");
	return out;
}

/* s without the parts in brackets; run on folded text, where （） became () */
static int32_t
drop_brackets(UChar *s, int32_t len)
{
	int32_t		n = 0;
	int			depth = 0;

	for (int32_t i = 0; i < len; i++)
	{
		if (s[i] == '(' || s[i] == '[' || s[i] == 0x3010 /* 【 */ )
			depth++;
		else if ((s[i] == ')' || s[i] == ']' || s[i] == 0x3011 /* 】 */ ) && depth > 0)
			depth--;
		else if (depth == 0)
			s[n++] = s[i];
	}
	return n;
}

/* s with only letters, marks and digits left, in place */
static int32_t
keep_word_characters(UChar *s, int32_t len)
{
	int32_t		n = 0;
	int32_t		i = 0;

	while (i < len)
	{
		UChar32		c;
		int32_t		start = i;

		U16_NEXT(s, i, len, c);
		if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_isdigit(c) ||
			(U_GET_GC_MASK(c) & U_GC_M_MASK))
			while (start < i)
				s[n++] = s[start++];
	}
	return n;
}

/*
 * s (UTF-8, in place) without the legal forms that end it, repeatedly; a
 * name that is nothing but a legal form ("有限公司") is left whole.
 */
static void
strip_legal_forms(char *s)
{
	for (;;)
	{
		size_t		len = strlen(s);
		size_t		i;

		for (i = 0; i < lengthof(legal_forms); i++)
		{
			size_t		k = strlen(legal_forms[i]);

			if (len >= k && strcmp(s + len - k, legal_forms[i]) == 0)
				break;
		}
		if (i == lengthof(legal_forms) || strlen(legal_forms[i]) == len)
			return;
		s[len - strlen(legal_forms[i])] = '\0';
	}
}

/*
 * A Han character's pinyin without tones, from ICU's Han-Latin
 * transliterator.  It takes some 40 µs a call, so each character is asked
 * once per backend and remembered.
 */
typedef struct HanSyllable
{
	UChar32		c;				/* hash key */
	char		pinyin[12];
} HanSyllable;

static const char *
han_syllable(UChar32 c)
{
	static UTransliterator *trans = NULL;
	static HTAB *cache = NULL;
	HanSyllable *entry;
	bool		found;

	if (cache == NULL)
	{
		HASHCTL		ctl;
		UErrorCode	status = U_ZERO_ERROR;
		UChar		id[32];

		u_uastrcpy(id, "Han-Latin; Latin-ASCII");
		trans = utrans_openU(id, -1, UTRANS_FORWARD, NULL, 0, NULL, &status);
		icu_check(status, "open the Han-Latin transliterator");
		ctl.keysize = sizeof(UChar32);
		ctl.entrysize = sizeof(HanSyllable);
		cache = hash_create("crm pinyin", 4096, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	entry = hash_search(cache, &c, HASH_ENTER, &found);
	if (!found)
	{
		UChar		buf[32];
		int32_t		len = 0;
		int32_t		limit;
		UErrorCode	status = U_ZERO_ERROR;
		int			n = 0;
		UBool		error = false;

		U16_APPEND(buf, len, 32, c, error);
		limit = len;
		utrans_transUChars(trans, buf, &len, 32, 0, &limit, &status);
		for (int32_t i = 0; i < len && n < (int) sizeof(entry->pinyin) - 1; i++)
			if (buf[i] < 128 && u_isalpha(buf[i]))
				entry->pinyin[n++] = (char) u_tolower(buf[i]);
		entry->pinyin[n] = '\0';
		if (U_FAILURE(status) || error)
			entry->pinyin[0] = '\0';
	}
	return entry->pinyin;
}

/*
 * s's pinyin (Han characters spelt, letters and digits kept), or its
 * initials: a phrase of crm.pinyin_phrase as the table reads it, any other
 * Han character as ICU does.  s is UTF-8, simplified.
 */
static char *
pinyin(const char *s, bool initials)
{
	StringInfoData out;
	int32_t		len = strlen(s);
	int32_t		i = 0;
	bool		word = false;	/* inside a run of letters or digits */

	initStringInfo(&out);
	crm_load_chinese_words();
	while (i < len)
	{
		UChar32		c;
		int32_t		start = i;
		const char *phrase;
		int			n;

		U8_NEXT(s, i, len, c);
		if (u_hasBinaryProperty(c, UCHAR_IDEOGRAPHIC) && (n = crm_phrase_pinyin(s + start, &phrase)) > 0)
		{
			/* syllables separated by spaces */
			for (const char *p = phrase; *p; p++)
				if (*p != ' ' && (!initials || p == phrase || p[-1] == ' '))
					appendStringInfoChar(&out, *p);
			i = start + n;
			word = false;
		}
		else if (u_hasBinaryProperty(c, UCHAR_IDEOGRAPHIC))
		{
			const char *p = han_syllable(c);

			if (initials && p[0])
				appendStringInfoChar(&out, p[0]);
			else if (!initials)
				appendStringInfoString(&out, p);
			word = false;
		}
		else if (c >= 0 && c < 128 && u_isalnum(c))
		{
			if (!initials || !word)
				appendStringInfoChar(&out, (char) c);
			word = true;
		}
		else
			word = false;
	}
	return out.data;
}

/*
 * The digits of a phone number (full-width ones too); without China's
 * country code (+86, 0086, or 86 before a mobile), a mobile as is and a
 * landline with its trunk 0 (+86 755 ... becomes 0755...).
 */
static char *
phone_key(const char *value)
{
	int32_t		len;
	int32_t		flen;
	UChar	   *u = to_utf16(value, strlen(value), &len);
	UChar	   *f = casefold(u, len, &flen);
	char	   *folded = to_utf8(f, flen);
	char	   *digits = palloc(strlen(folded) + 1);
	int			n = 0;
	bool		plus = false;
	const char *rest = NULL;

	for (const char *p = folded; *p; p++)
	{
		if (*p >= '0' && *p <= '9')
			digits[n++] = *p;
		else if (*p == '+' && n == 0)
			plus = true;
	}
	digits[n] = '\0';
	if (plus && n > 2 && memcmp(digits, "86", 2) == 0)
		rest = digits + 2;
	else if (n > 4 && memcmp(digits, "0086", 4) == 0)
		rest = digits + 4;
	else if (n == 13 && memcmp(digits, "861", 3) == 0)
		rest = digits + 2;
	if (rest)
		return rest[0] == '1' && strlen(rest) == 11 ? pstrdup(rest) : psprintf("0%s", rest);
	return n > 0 ? digits : NULL;
}

/*
 * The key of value for kind (name, company, phone, email, pinyin,
 * initials), palloc'd; NULL when nothing is left.
 */
char *
crm_dedupe_key(const char *kind, const char *value)
{
	int32_t		len;
	int32_t		flen;
	UChar	   *u;
	UChar	   *f;
	char	   *out;

	if (GetDatabaseEncoding() != PG_UTF8)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("duplicate keys need a UTF8 database, not %s", GetDatabaseEncodingName())));
	if (strcmp(kind, "phone") == 0)
		return phone_key(value);

	u = to_utf16(value, strlen(value), &len);
	f = casefold(u, len, &flen);
	if (strcmp(kind, "email") == 0)
	{
		char	   *end;

		out = to_utf8(f, flen);
		while (*out == ' ' || *out == '\t')
			out++;
		end = out + strlen(out);
		while (end > out && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		return out[0] ? out : NULL;
	}
	if (strcmp(kind, "company") == 0)
		flen = drop_brackets(f, flen);
	else if (strcmp(kind, "pinyin") == 0 || strcmp(kind, "initials") == 0)
	{
		out = pinyin(crm_to_simplified(to_utf8(f, flen)), strcmp(kind, "initials") == 0);
		return out[0] ? out : NULL;
	}
	else if (strcmp(kind, "name") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown duplicate key kind \"%s\"", crm_quote(kind, strlen(kind))),
				 errhint("The kinds are name, company, phone, email, pinyin and initials.")));
	flen = keep_word_characters(f, flen);
	out = crm_to_simplified(to_utf8(f, flen));
	if (strcmp(kind, "company") == 0)
	{
		strip_legal_forms(out);
		crm_load_chinese_words();
		crm_strip_regions(out);
	}
	return out[0] ? out : NULL;
}

/* The key of a text value for kind, as text; NULL when there is none. */
text *
crm_dedupe_key_text(const char *kind, text *value)
{
	char	   *key;

	if (VARSIZE_ANY_EXHDR(value) > KEY_MAX_BYTES)
		return NULL;
	key = crm_dedupe_key(kind, text_to_cstring(value));
	return key ? cstring_to_text(key) : NULL;
}

/* crm.dedupe_key(kind, value) */
Datum
crm_dedupe_key_sql(PG_FUNCTION_ARGS)
{
	text	   *key = crm_dedupe_key_text(text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_TEXT_PP(1));

	if (key == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(key);
}

/* crm.icu_version(): the version of the ICU library this server computes keys with */
Datum
crm_icu_version_sql(PG_FUNCTION_ARGS)
{
	UVersionInfo version;
	char		text[U_MAX_VERSION_STRING_LENGTH];

	u_getVersion(version);
	u_versionToString(version, text);
	PG_RETURN_TEXT_P(cstring_to_text(text));
}
