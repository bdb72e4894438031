/*-------------------------------------------------------------------------
 *
 * im_payload_sql.c
 *	  crm.im_payload(): the SQL face of crm_im_payload() (im_payload.c), kept
 *	  apart because utils/builtins.h and jansson.h both define json_object.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_im_payload_sql);

/*
 * crm.im_payload(platform, kind, recipient, agent_id, title, body,
 * idempotency_key) returns text.  Not STRICT: recipient, agent_id and
 * idempotency_key may be NULL, the others may not.
 */
Datum
crm_im_payload_sql(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"platform", "kind", "recipient", "agent_id",
	"title", "body", "idempotency_key"};
	static const bool optional[] = {false, false, true, true, false, false, true};
	const char *args[lengthof(names)];

	for (int i = 0; i < (int) lengthof(names); i++)
	{
		if (!PG_ARGISNULL(i))
			args[i] = text_to_cstring(PG_GETARG_TEXT_PP(i));
		else if (optional[i])
			args[i] = NULL;
		else
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be NULL", names[i])));
	}
	PG_RETURN_TEXT_P(cstring_to_text(crm_im_payload(args[0], args[1], args[2], args[3],
													args[4], args[5], args[6])));
}
