/*-------------------------------------------------------------------------
 *
 * im_sign.c
 *	  Signatures for Feishu and DingTalk group robots (WeCom robots are not
 *	  signed: the key in the webhook URL is the only credential).
 *
 * Both are Base64(HMAC-SHA256) over a timestamp and the robot's secret, but
 * with key and message swapped (docs/im-platforms.md, section 4):
 *	 Feishu:	key = ts "\n" secret, message empty, ts in seconds
 *	 DingTalk:	key = secret, message = ts "\n" secret, ts in milliseconds,
 *				percent-encoded for the query string
 * The worker signs every robot message with crm_im_robot_sign();
 * crm.im_robot_sign() exposes it so tests can check it against the
 * platforms' published vectors.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/base64.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_im_robot_sign_sql);

/*
 * The signature a robot of this platform expects for timestamp ts, ready to
 * put where the platform reads it (DingTalk: percent-encoded).  palloc'd.
 */
char *
crm_im_robot_sign(const char *platform, const char *secret, int64 ts)
{
	bool		dingtalk = strcmp(platform, "dingtalk") == 0;
	char	   *string_to_sign;
	pg_hmac_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	int			b64len;
	char	   *b64;
	StringInfoData out;

	if (!dingtalk && strcmp(platform, "feishu") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s robots are not signed", crm_quote(platform, strlen(platform))),
				 errhint("Only feishu and dingtalk robots take a signature.")));

	string_to_sign = psprintf(INT64_FORMAT "\n%s", ts, secret);
	ctx = pg_hmac_create(PG_SHA256);
	if (ctx == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if ((dingtalk ?
		 pg_hmac_init(ctx, (const uint8 *) secret, strlen(secret)) < 0 ||
		 pg_hmac_update(ctx, (const uint8 *) string_to_sign, strlen(string_to_sign)) < 0 :
		 pg_hmac_init(ctx, (const uint8 *) string_to_sign, strlen(string_to_sign)) < 0) ||
		pg_hmac_final(ctx, digest, sizeof(digest)) < 0)
	{
		const char *reason = pg_hmac_error(ctx);

		pg_hmac_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not compute HMAC-SHA256: %s", reason),
				 errhint("The server's cryptographic library refused HMAC-SHA256, as a FIPS policy may.")));
	}
	pg_hmac_free(ctx);

	b64len = pg_b64_enc_len(sizeof(digest));
	b64 = palloc(b64len + 1);
	b64len = pg_b64_encode((const char *) digest, sizeof(digest), b64, b64len);
	if (b64len < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not encode the signature")));
	b64[b64len] = '\0';
	if (!dingtalk)
		return b64;

	/* Base64's only characters that are not URL-safe */
	initStringInfo(&out);
	for (const char *c = b64; *c; c++)
	{
		if (*c == '+')
			appendStringInfoString(&out, "%2B");
		else if (*c == '/')
			appendStringInfoString(&out, "%2F");
		else if (*c == '=')
			appendStringInfoString(&out, "%3D");
		else
			appendStringInfoChar(&out, *c);
	}
	pfree(b64);
	return out.data;
}

/* crm.im_robot_sign(platform text, secret text, ts bigint) returns text */
Datum
crm_im_robot_sign_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(crm_im_robot_sign(text_to_cstring(PG_GETARG_TEXT_PP(0)),
													   text_to_cstring(PG_GETARG_TEXT_PP(1)),
													   PG_GETARG_INT64(2))));
}
