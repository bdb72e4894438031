/*-------------------------------------------------------------------------
 *
 * im_payload.c
 *	  The JSON bodies the notification worker sends to WeCom, Feishu and
 *	  DingTalk robots and apps (shapes and limits: docs/im-platforms.md).
 *
 * This file must not include utils/builtins.h: its json_object() would
 * collide with jansson's.  The SQL wrapper lives in im_payload_sql.c.
 *
 * Each shape names the field its platform measures and that field's byte
 * limit.  When the message would not fit, the body (never the title) is cut
 * at a UTF-8 character boundary, keeping as much as fits, and ends with "…".
 * Cutting takes some ten times the message in memory, so a title and body
 * longer than the largest limit of any platform (MESSAGE_MAX_BYTES) are
 * refused before any work.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>
#include <jansson.h>

#include "mb/pg_wchar.h"

#include "crm.h"

#define ELLIPSIS "\xE2\x80\xA6"	/* U+2026 "…", 3 bytes */

/* Feishu robot: the worker adds these to the body after us (im_sign.c). */
#define FEISHU_SIGN_FIELDS \
	(sizeof(",\"timestamp\":\"1599360473\",\"sign\":\"\"") - 1 + 44)	/* 10-digit s, Base64 of 32 bytes */

/* WeCom duplicate check window: the doc's default (1.3) */
#define WECOM_DUPLICATE_INTERVAL 1800
/* Feishu im/v1 uuid: at most 50 characters (2.4) */
#define FEISHU_UUID_MAX 50
/* the largest limit below: Feishu im/v1 text, 150 KB (2.4) */
#define MESSAGE_MAX_BYTES (150 * 1024)

typedef struct Message
{
	const char *recipient;
	json_int_t	agent_id;
	const char *title;
	const char *idempotency_key;
} Message;

/* The whole payload for message m with this body; NULL when out of memory. */
typedef json_t *(*BuildFn) (const Message *m, const char *body);

/* The byte size of the field the platform limits; SIZE_MAX when out of memory. */
typedef size_t (*MeasureFn) (const json_t *payload);

typedef struct Shape
{
	const char *platform;
	const char *kind;
	bool		needs_agent;	/* app messages name the sending app's agent id */
	BuildFn		build;
	MeasureFn	measure;
	size_t		limit;
} Shape;

/* ---- builders ---- */

static json_t *
wecom_robot(const Message *m, const char *body)
{
	return json_pack("{s:s, s:{s:s}}", "msgtype", "markdown",
					 "markdown", "content", psprintf("**%s**\n\n%s", m->title, body));
}

static json_t *
feishu_robot(const Message *m, const char *body)
{
	/* the webhook's content is an object (2.2) */
	return json_pack("{s:s, s:{s:s}}", "msg_type", "text",
					 "content", "text", psprintf("%s\n%s", m->title, body));
}

static json_t *
dingtalk_robot(const Message *m, const char *body)
{
	/* msgUuid is the robot's idempotency key (3.2); omitted when NULL */
	return json_pack("{s:s, s:{s:s, s:s}, s:s*}", "msgtype", "markdown",
					 "markdown", "title", m->title, "text", psprintf("### %s\n\n%s", m->title, body),
					 "msgUuid", m->idempotency_key);
}

static json_t *
wecom_app(const Message *m, const char *body)
{
	json_t	   *p = json_pack("{s:s, s:s, s:I, s:{s:s}}", "touser", m->recipient,
							  "msgtype", "markdown", "agentid", m->agent_id,
							  "markdown", "content", psprintf("**%s**\n\n%s", m->title, body));

	/* WeCom has no key field: it drops an identical body within the interval (1.3) */
	if (p && m->idempotency_key &&
		(json_object_set_new(p, "enable_duplicate_check", json_integer(1)) < 0 ||
		 json_object_set_new(p, "duplicate_check_interval", json_integer(WECOM_DUPLICATE_INTERVAL)) < 0))
	{
		json_decref(p);
		return NULL;
	}
	return p;
}

static json_t *
feishu_app(const Message *m, const char *body)
{
	/* im/v1's content is a JSON string, unlike the webhook's object (2.4) */
	json_t	   *text = json_pack("{s:s}", "text", psprintf("%s\n%s", m->title, body));
	char	   *content = text ? json_dumps(text, JSON_COMPACT) : NULL;
	json_t	   *p = NULL;

	json_decref(text);
	if (content)
		p = json_pack("{s:s, s:s, s:s, s:s*}", "receive_id", m->recipient, "msg_type", "text",
					  "content", content, "uuid", m->idempotency_key);
	free(content);
	return p;
}

static json_t *
dingtalk_app(const Message *m, const char *body)
{
	/* asyncsend_v2's msg is an object (3.3) */
	return json_pack("{s:I, s:s, s:{s:s, s:{s:s, s:s}}}", "agent_id", m->agent_id,
					 "userid_list", m->recipient,
					 "msg", "msgtype", "markdown",
					 "markdown", "title", m->title, "text", psprintf("### %s\n\n%s", m->title, body));
}

/* ---- measures ---- */

static size_t
dumped_size(const json_t *value, size_t flags)
{
	char	   *s = json_dumps(value, flags);
	size_t		n = s ? strlen(s) : SIZE_MAX;

	free(s);
	return n;
}

/* WeCom: markdown.content's UTF-8 bytes, the raw string, not its JSON form */
static size_t
wecom_content(const json_t *p)
{
	return json_string_length(json_object_get(json_object_get(p, "markdown"), "content"));
}

/* Feishu robot: the whole request body, as sent once the worker has signed it */
static size_t
feishu_robot_body(const json_t *p)
{
	size_t		n = dumped_size(p, JSON_COMPACT);

	return n == SIZE_MAX ? n : n + FEISHU_SIGN_FIELDS;
}

/* DingTalk robot, Feishu app: the whole request body, compact as we send it */
static size_t
request_body(const json_t *p)
{
	return dumped_size(p, JSON_COMPACT);
}

/*
 * DingTalk app: msg serialized with ", " and ": " separators, as the fake
 * measures it (Python's json.dumps); a few bytes more than compact, so safe.
 */
static size_t
dingtalk_msg(const json_t *p)
{
	return dumped_size(json_object_get(p, "msg"), 0);
}

static const Shape shapes[] = {
	{"wecom", "robot", false, wecom_robot, wecom_content, 4096},	/* 1.2 */
	{"feishu", "robot", false, feishu_robot, feishu_robot_body, 20 * 1024},	/* 2.2: body <= 20 KB */
	{"dingtalk", "robot", false, dingtalk_robot, request_body, 20000},	/* 3.2: "exceed 20000 bytes" */
	{"wecom", "app", true, wecom_app, wecom_content, 4096},	/* 1.3 + 5.1: markdown 4096 */
	{"feishu", "app", false, feishu_app, request_body, 150 * 1024},	/* 2.4: text body <= 150 KB */
	{"dingtalk", "app", true, dingtalk_app, dingtalk_msg, 2048},	/* 3.3: msg <= 2048 bytes */
};

/*
 * The payload for m, its body cut if need be so that the measured field fits
 * the shape's limit: the longest prefix of whole characters followed by "…".
 * The size only grows with the prefix, so a binary search over character
 * starts finds it.  Returns NULL with *title_too_long set when even an empty
 * body does not fit, NULL alone when out of memory.
 */
static json_t *
fit_body(const Shape *s, const Message *m, const char *body, bool *title_too_long)
{
	json_t	   *best = s->build(m, body);
	size_t		len = strlen(body);
	int		   *starts;
	int			n = 0,
				lo = -1,
				hi;
	char	   *cut;

	*title_too_long = false;
	if (best == NULL || s->measure(best) <= s->limit)
		return best;
	json_decref(best);
	best = NULL;

	/* byte offsets where a character starts (UTF-8 continuation bytes are 10xxxxxx) */
	starts = palloc(sizeof(int) * (len + 1));
	for (size_t i = 0; i < len; i++)
		if ((body[i] & 0xC0) != 0x80)
			starts[n++] = (int) i;
	cut = palloc(len + sizeof(ELLIPSIS));

	/* invariant: prefix starts[lo] fits (lo = -1: none yet), starts[hi] does not */
	hi = n;
	starts[n] = (int) len;		/* the whole body plus "…" is longer than the body */
	while (hi - lo > 1)
	{
		int			mid = (lo + hi) / 2;
		json_t	   *p;

		memcpy(cut, body, starts[mid]);
		strcpy(cut + starts[mid], ELLIPSIS);
		p = s->build(m, cut);
		if (p == NULL)
		{
			json_decref(best);
			return NULL;
		}
		if (s->measure(p) <= s->limit)
		{
			json_decref(best);
			best = p;
			lo = mid;
		}
		else
		{
			json_decref(p);
			hi = mid;
		}
	}
	pfree(cut);
	pfree(starts);
	*title_too_long = best == NULL;
	return best;
}

/* msg is a literal with one %s, for value (quoted clipped); hint a literal */
#define bad_parameter(msg, value, hint) \
	ereport(ERROR, \
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE), \
			 errmsg(msg, crm_quote((value), strlen(value))), \
			 errhint(hint)))

/*
 * The JSON body (compact, UTF-8) for one message; palloc'd.  recipient and
 * agent_id are for apps (Feishu apps need no agent_id); idempotency_key may
 * be NULL.  The worker adds a Feishu robot's timestamp and sign.
 */
char *
crm_im_payload(const char *platform, const char *kind, const char *recipient,
			   const char *agent_id, const char *title, const char *body,
			   const char *idempotency_key)
{
	const Shape *s = NULL;
	size_t		bytes = strlen(title) + strlen(body);
	bool		known_platform = false;
	Message		m = {recipient, 0, title, idempotency_key};
	json_t	   *payload;
	bool		title_too_long;
	char	   *json;
	char	   *result;

	for (size_t i = 0; i < lengthof(shapes); i++)
	{
		known_platform |= strcmp(shapes[i].platform, platform) == 0;
		if (strcmp(shapes[i].platform, platform) == 0 && strcmp(shapes[i].kind, kind) == 0)
			s = &shapes[i];
	}
	if (!known_platform)
		bad_parameter("unknown IM platform \"%s\"", platform,
					  "The platform must be wecom, feishu or dingtalk.");
	if (s == NULL)
		bad_parameter("unknown IM message kind \"%s\"", kind, "The kind must be robot or app.");
	if (bytes > MESSAGE_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("an IM message of %zu bytes is longer than any platform takes (%d bytes)",
						bytes, MESSAGE_MAX_BYTES),
				 errdetail("The title is \"%s\".", crm_quote(title, strlen(title))),
				 errhint("A message says what happened and names the record; longer text belongs in crm.")));
	/* jansson needs UTF-8, and the byte limits are counted in it */
	if (GetDatabaseEncoding() != PG_UTF8)
		bad_parameter("IM messages need a UTF8 database, not %s", GetDatabaseEncodingName(),
					  "Create the database with ENCODING 'UTF8'.");

	if (strcmp(kind, "app") == 0 && (recipient == NULL || recipient[0] == '\0'))
		bad_parameter("a %s app message needs a recipient", platform,
					  "Pass the user id the app sends to.");
	if (s->needs_agent)
	{
		char	   *end;

		if (agent_id == NULL || agent_id[0] == '\0')
			bad_parameter("a %s app message needs an agent_id", platform,
						  "Pass the app's agent id, a positive integer.");
		errno = 0;
		m.agent_id = strtoll(agent_id, &end, 10);
		if (errno != 0 || *end != '\0' || m.agent_id <= 0)
			bad_parameter("invalid agent_id \"%s\"", agent_id,
						  "The agent id is a positive integer.");
	}
	if (s->build == feishu_app && idempotency_key &&
		pg_mbstrlen(idempotency_key) > FEISHU_UUID_MAX)
		bad_parameter("idempotency key \"%s\" is too long for feishu", idempotency_key,
					  "Feishu takes a uuid of at most 50 characters.");

	payload = fit_body(s, &m, body, &title_too_long);
	if (payload == NULL && title_too_long)
		bad_parameter("the title is too long for a %s message", psprintf("%s %s", platform, kind),
					  "The body is cut to fit, the title is not: shorten the title.");
	json = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	json_decref(payload);
	if (json == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory building an IM message")));
	result = pstrdup(json);
	free(json);
	return result;
}
