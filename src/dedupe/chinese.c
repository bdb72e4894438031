/*-------------------------------------------------------------------------
 *
 * chinese.c
 *	  What duplicate keys know of Chinese names beyond Unicode:
 *
 *	  one script   traditional characters in simplified ones, by OpenCC's t2s
 *	               configuration, which converts by phrase rather than by
 *	               character (華為 and 华为 are one company);
 *	  regions      China's administrative divisions (crm.dedupe_region), dropped
 *	               from the front of a company's name as brackets are dropped
 *	               from within it (北京字节跳动科技 and 字节跳动（北京）科技);
 *	  readings     whole phrases' pinyin (crm.pinyin_phrase) before single
 *	               characters' (重庆 is chongqing, not zhongqing).
 *
 *	  Both tables are rows a DBA may extend; each backend keeps them in one
 *	  hash table, loaded again after any change (table_cache.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <opencc/opencc.h>
#include <unicode/utf8.h>

#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "crm.h"

/* the longest name or phrase the tables take: 20 characters of up to 4 bytes */
#define WORD_MAX_CHARS 20
#define WORD_KEY_BYTES (WORD_MAX_CHARS * 4 + 1)

/* a name in either table, or both */
typedef struct ChineseWord
{
	char		word[WORD_KEY_BYTES];	/* hash key */
	bool		region;		/* in crm.dedupe_region */
	bool		company_word;	/* a trade or business word (银行, 科技) */
	char	   *pinyin;			/* syllables separated by spaces, or NULL */
} ChineseWord;

static HTAB *words = NULL;
static int	longest_word = 0;	/* in characters */

static void load_words(void);

static CrmTableCache words_cache = {
	.name = "crm Chinese words",
	.tables = {"dedupe_region", "pinyin_phrase", NULL},
	.load = load_words,
};

void
crm_chinese_init(void)
{
	crm_table_cache_register(&words_cache);
}

/* The tables as they are now: before crm_strip_regions and crm_phrase_pinyin. */
void
crm_load_chinese_words(void)
{
	crm_table_cache_refresh(&words_cache);
}

/* as the owner, SPI connected, in the cache's context */
static void
load_words(void)
{
	HASHCTL		ctl;

	ctl.keysize = WORD_KEY_BYTES;
	ctl.entrysize = sizeof(ChineseWord);
	ctl.hcxt = words_cache.cxt;
	words = hash_create("crm Chinese words", 16384, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	longest_word = 0;

	/* during an update from a version without them, the tables come later */
	if (!OidIsValid(words_cache.relids[0]) || !OidIsValid(words_cache.relids[1]))
		return;
	crm_table_cache_query(&words_cache,
						  "SELECT name, true, NULL, false FROM crm.dedupe_region WHERE enabled"
						  " UNION ALL SELECT phrase, NULL, pinyin, company_word FROM crm.pinyin_phrase WHERE enabled");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *word = SPI_getvalue(row, desc, 1);
		char	   *region = SPI_getvalue(row, desc, 2);
		char	   *pinyin = SPI_getvalue(row, desc, 3);
		bool		isnull;
		ChineseWord *entry;
		bool		found;

		/* (the tables' triggers refuse longer ones) */
		if (strlen(word) >= WORD_KEY_BYTES)
			continue;
		entry = hash_search(words, word, HASH_ENTER, &found);
		if (!found)
		{
			entry->region = false;
			entry->company_word = false;
			entry->pinyin = NULL;
			longest_word = Max(longest_word, pg_mbstrlen(word));
		}
		if (region)
			entry->region = true;
		if (pinyin)
			entry->pinyin = pinyin;
		if (DatumGetBool(SPI_getbinval(row, desc, 4, &isnull)))
			entry->company_word = true;
	}
}

/*
 * The longest word of the tables that s starts with and that accept()s,
 * and its length in bytes (0: none).
 */
static int
match_word(const char *s, bool (*accept) (const ChineseWord *, void *), void *arg, const ChineseWord **match)
{
	int32_t		ends[WORD_MAX_CHARS + 1];
	int32_t		len = strnlen(s, WORD_KEY_BYTES - 1);
	int32_t		i = 0;
	int			n = 0;

	while (i < len && n < Min(longest_word, WORD_MAX_CHARS))
	{
		UChar32		c;

		U8_NEXT(s, i, len, c);
		if (c < 0)
			break;
		ends[++n] = i;
	}
	/* words have two characters or more */
	for (; n >= 2; n--)
	{
		char		key[WORD_KEY_BYTES];
		const ChineseWord *entry;

		memcpy(key, s, ends[n]);
		key[ends[n]] = '\0';
		entry = hash_search(words, key, HASH_FIND, NULL);
		if (entry && accept(entry, arg))
		{
			*match = entry;
			return ends[n];
		}
	}
	return 0;
}

static bool
is_company_word(const ChineseWord *w, void *arg)
{
	return w->company_word;
}

static bool
is_region(const ChineseWord *w, void *arg)
{
	return w->region;
}

static bool
has_pinyin(const ChineseWord *w, void *arg)
{
	return w->pinyin != NULL;
}

/* whether s is nothing, or nothing but company words (银行, 科技发展) */
static bool
only_company_words(const char *s)
{
	const ChineseWord *w;
	int			n;

	for (; *s; s += n)
		if ((n = match_word(s, is_company_word, NULL, &w)) == 0)
			return false;
	return true;
}

/*
 * A company key (UTF-8, in place) without the regions it starts with, one
 * after the other (浙江杭州华为 is 华为), unless nothing but company words
 * would be left (长沙银行 stays: it is no 银行).
 */
void
crm_strip_regions(char *key)
{
	char	   *rest = key;
	const ChineseWord *w;
	int			n;

	while ((n = match_word(rest, is_region, NULL, &w)) > 0 && !only_company_words(rest + n))
		rest += n;
	if (rest != key)
		memmove(key, rest, strlen(rest) + 1);
}

/*
 * The phrase of crm.pinyin_phrase that s starts with: its syllables
 * (separated by spaces) in *pinyin and its length in bytes; 0 when none.
 */
int
crm_phrase_pinyin(const char *s, const char **pinyin)
{
	const ChineseWord *w;
	int			n = match_word(s, has_pinyin, NULL, &w);

	if (n > 0)
		*pinyin = w->pinyin;
	return n;
}

/*
 * s in simplified characters, palloc'd (s itself when it has no CJK
 * character: U+3000 and above start with byte 0xE3 or higher).  OpenCC's
 * configuration is loaded once per backend.
 */
char *
crm_to_simplified(char *s)
{
	static opencc_t t2s = NULL;
	char	   *converted;
	char	   *out;
	size_t		len;
	bool		cjk = false;

	for (const unsigned char *p = (const unsigned char *) s; *p && !cjk; p++)
		cjk = *p >= 0xE3;
	if (!cjk)
		return s;
	if (t2s == NULL)
	{
		opencc_t	od = opencc_open(OPENCC_DEFAULT_CONFIG_TRAD_TO_SIMP);

		if (od == (opencc_t) -1)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FILE),
					 errmsg("OpenCC cannot load its configuration \"%s\": %s",
							OPENCC_DEFAULT_CONFIG_TRAD_TO_SIMP, opencc_error()),
					 errdetail("Duplicate keys fold traditional Chinese characters into simplified ones with OpenCC."),
					 errhint("Install OpenCC's data (Debian: libopencc-data, as test/deps.sh does) on this server.")));
		t2s = od;
	}
	converted = opencc_convert_utf8(t2s, s, strlen(s));
	if (converted == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("OpenCC could not convert a name to simplified characters: %s", opencc_error())));
	/* OpenCC's string is malloc'd: freed before anything can raise an error */
	len = strlen(converted);
	out = palloc_extended(len + 1, MCXT_ALLOC_NO_OOM);
	if (out)
		memcpy(out, converted, len + 1);
	opencc_convert_utf8_free(converted);
	if (out == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return out;
}
