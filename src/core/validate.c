/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  Formats a CRM must not accept wrong: the unified social credit code
 *	  (统一社会信用代码, GB 32100-2015) with its check digit, mainland mobile
 *	  numbers and e-mail addresses.
 *
 * Each format has a boolean test (crm.uscc_valid, crm.mobile_valid,
 * crm.email_valid) for queries and imports, and a checking form that the
 * tables' CHECK constraints call, which raises check_violation with a
 * message and hint that say what is wrong instead of returning false.
 * crm.check_length is the checking form of the text columns' lengths.
 *
 * Messages quote values through crm_quote(): clipped on a character
 * boundary, so that a huge value is never copied whole into a message and a
 * client in another encoding can always convert it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_uscc_valid);
PG_FUNCTION_INFO_V1(crm_mobile_valid);
PG_FUNCTION_INFO_V1(crm_email_valid);
PG_FUNCTION_INFO_V1(crm_check_uscc);
PG_FUNCTION_INFO_V1(crm_check_mobile);
PG_FUNCTION_INFO_V1(crm_check_email);
PG_FUNCTION_INFO_V1(crm_uscc_with_check);
PG_FUNCTION_INFO_V1(crm_check_company_uscc);
PG_FUNCTION_INFO_V1(crm_check_length);
PG_FUNCTION_INFO_V1(crm_clip);

/* bytes of a value a message quotes, as PostgreSQL's "Failing row contains" */
#define QUOTE_BYTES 64

/*
 * s (len bytes in the database encoding) for a message, palloc'd: whole when
 * short, else its first whole characters and "...".
 */
char *
crm_quote(const char *s, int len)
{
	if (len <= QUOTE_BYTES)
		return pnstrdup(s, len);
	return psprintf("%.*s...", pg_mbcliplen(s, len, QUOTE_BYTES), s);
}

static char *
quote_text(text *t)
{
	return crm_quote(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/* crm.clip(value text) returns text: crm_quote() for PL/pgSQL messages */
Datum
crm_clip(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(quote_text(PG_GETARG_TEXT_PP(0))));
}

/* GB 32100-2015: the 31 characters a code may use, and the position weights. */
static const char uscc_chars[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
static const int uscc_weights[17] = {1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28};

static bool
uscc_valid(const char *s, int len)
{
	int			sum = 0;
	int			check;

	if (len != 18)
		return false;
	for (int i = 0; i < 18; i++)
	{
		const char *p = s[i] ? strchr(uscc_chars, s[i]) : NULL;

		if (p == NULL)
			return false;
		if (i < 17)
			sum += (int) (p - uscc_chars) * uscc_weights[i];
	}
	/* the administrative division code (characters 3 to 8) is numeric */
	for (int i = 2; i < 8; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	check = (31 - sum % 31) % 31;
	return s[17] == uscc_chars[check];
}

/* 11 digits starting 13 to 19, optionally written with the +86 country code */
static bool
mobile_valid(const char *s, int len)
{
	if (len == 14 && strncmp(s, "+86", 3) == 0)
	{
		s += 3;
		len -= 3;
	}
	if (len != 11 || s[0] != '1' || s[1] < '3' || s[1] > '9')
		return false;
	for (int i = 2; i < 11; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* local@domain.tld: printable, no spaces, one @, a dot in the domain, not at its ends */
static bool
email_valid(const char *s, int len)
{
	const char *at = NULL;
	const char *dot = NULL;

	if (len < 5 || len > 254)
		return false;
	for (int i = 0; i < len; i++)
	{
		unsigned char c = s[i];

		if (c <= ' ' || c == 0x7f || c == ',' || c == ';' || c == '<' || c == '>' || c == '"')
			return false;
		if (c == '@')
		{
			if (at != NULL)
				return false;
			at = s + i;
		}
		else if (c == '.' && at != NULL)
			dot = s + i;
	}
	return at != NULL && at > s && dot != NULL && dot > at + 1 && dot < s + len - 1 &&
		at[1] != '.' && s[len - 1] != '.';
}

Datum
crm_uscc_valid(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(uscc_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

Datum
crm_mobile_valid(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(mobile_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

Datum
crm_email_valid(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(email_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

Datum
crm_check_uscc(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	if (!uscc_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)))
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("\"%s\" is not a valid unified social credit code", quote_text(t)),
				 errdetail("A code (统一社会信用代码) has 18 characters from 0-9 and A-Y without I, O, S, V and Z; characters 3 to 8 are digits and the last is a check digit (GB 32100-2015)."),
				 errhint("Copy the code from the business licence; crm.uscc_valid(code) tests one.")));
	PG_RETURN_BOOL(true);
}

Datum
crm_check_mobile(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	if (!mobile_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)))
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("\"%s\" is not a valid mobile number", quote_text(t)),
				 errdetail("A mobile number has 11 digits and starts with 13 to 19, optionally after +86."),
				 errhint("Write its 11 digits, as 13812345678, 138 1234 5678 or +86 138-1234-5678; landlines go in phone.")));
	PG_RETURN_BOOL(true);
}

Datum
crm_check_email(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	if (!email_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)))
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("\"%s\" is not a valid e-mail address", quote_text(t)),
				 errhint("Write one address such as name@example.com, without spaces or display names.")));
	PG_RETURN_BOOL(true);
}

/*
 * crm.uscc_with_check(first17 text) returns text
 *
 * The 18-character code whose first 17 characters are given: for fixtures,
 * generators and forms that compute the check digit.
 */
Datum
crm_uscc_with_check(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(t);
	int			sum = 0;
	char		code[19];

	if (VARSIZE_ANY_EXHDR(t) != 17)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("crm.uscc_with_check needs the first 17 characters of a code, not %d",
						pg_mbstrlen_with_len(s, VARSIZE_ANY_EXHDR(t)))));
	for (int i = 0; i < 17; i++)
	{
		const char *p = s[i] ? strchr(uscc_chars, s[i]) : NULL;

		/* quote the whole character, never one byte of it */
		if (p == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("\"%s\" cannot appear in a unified social credit code",
							crm_quote(s + i, Min(pg_mblen(s + i), 17 - i))),
					 errhint("Codes use 0-9 and A-Y without I, O, S, V and Z.")));
		sum += (int) (p - uscc_chars) * uscc_weights[i];
		code[i] = s[i];
	}
	code[17] = uscc_chars[(31 - sum % 31) % 31];
	code[18] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(code));
}

/*
 * crm.check_company_uscc(kind text, uscc text) returns boolean
 *
 * Seed 001: a company customer is identified by its code; an individual is not.
 * crm 0.1's install script makes it a CHECK of crm.customer, and a database
 * keeps running 0.1's scripts against this library until it is updated; 0.2
 * asks crm.settings.uscc_required first (crm.require_company_uscc()).
 */
Datum
crm_check_company_uscc(PG_FUNCTION_ARGS)
{
	if (!PG_ARGISNULL(0) && PG_ARGISNULL(1) &&
		strcmp(text_to_cstring(PG_GETARG_TEXT_PP(0)), "company") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("a company customer needs its unified social credit code"),
				 errdetail("Company customers are identified by their 统一社会信用代码 (uscc)."),
				 errhint("Give uscc, or record a person with kind 'individual' and a contact's mobile number.")));
	PG_RETURN_BOOL(true);
}

/*
 * crm.check_length(value text, max_chars integer, what text) returns boolean
 *
 * The length limit of a text column (what names it: "customer.name"), as a
 * CHECK constraint calls it.  A value no longer in bytes than the limit is
 * short enough without counting its characters.
 */
Datum
crm_check_length(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	int32		max_chars = PG_GETARG_INT32(1);
	int			bytes = VARSIZE_ANY_EXHDR(t);
	int			chars;

	if (bytes <= max_chars)
		PG_RETURN_BOOL(true);
	chars = pg_mbstrlen_with_len(VARDATA_ANY(t), bytes);
	if (chars > max_chars)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is too long: %d characters, at most %d",
						quote_text(PG_GETARG_TEXT_PP(2)), chars, max_chars),
				 errdetail("The value begins \"%s\".", quote_text(t)),
				 errhint("Shorten it; docs/records.md lists the limit of every text column.")));
	PG_RETURN_BOOL(true);
}
