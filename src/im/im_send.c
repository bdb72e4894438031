/*-------------------------------------------------------------------------
 *
 * im_send.c
 *	  HTTP for the notification worker: requests run concurrently on one
 *	  libcurl multi handle (whose connection cache keeps connections to each
 *	  host open between batches), answers parsed and classified with jansson
 *	  (codes: docs/im-platforms.md 5.7).
 *
 * This file must not include utils/builtins.h: its json_object() would
 * collide with jansson's.
 *
 * libcurl calls back into this file while it runs; the callbacks use
 * malloc, never palloc, so that no ereport can jump over libcurl's frames.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <jansson.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "storage/ipc.h"

#include "crm.h"

/* answers larger than this are cut (and then fail to parse): 16 MB */
#define MAX_ANSWER (16 * 1024 * 1024)

static CURLM *multi = NULL;

typedef struct Transfer Transfer;
static void run_transfers(Transfer *ts, ImRequest *reqs, int n, long timeout_ms, bool (*stop) (void));

struct Transfer
{
	ImRequest  *req;
	CURL	   *easy;
	struct curl_slist *headers;
	char	   *answer;			/* malloc'd */
	size_t		len;
	char		error[CURL_ERROR_SIZE];
};

static size_t
collect(char *data, size_t size, size_t nmemb, void *arg)
{
	Transfer   *t = arg;
	size_t		n = size * nmemb;
	char	   *grown;

	if (t->len + n > MAX_ANSWER)
		return 0;				/* libcurl fails the transfer with CURLE_WRITE_ERROR */
	grown = realloc(t->answer, t->len + n + 1);
	if (grown == NULL)
		return 0;
	memcpy(grown + t->len, data, n);
	t->answer = grown;
	t->len += n;
	t->answer[t->len] = '\0';
	return n;
}

/* Feishu's rate-limit answer says when its window resets (2.6) */
static size_t
header_line(char *data, size_t size, size_t nmemb, void *arg)
{
	Transfer   *t = arg;
	size_t		n = size * nmemb;
	static const char name[] = "x-ogw-ratelimit-reset:";

	if (n > sizeof(name) - 1 && pg_strncasecmp(data, name, sizeof(name) - 1) == 0)
		t->req->reset_seconds = atoi(data + sizeof(name) - 1);
	return n;
}

/* the connections kept open close with the process */
static void
close_connections(int code, Datum arg)
{
	if (multi)
		curl_multi_cleanup(multi);
	multi = NULL;
	curl_global_cleanup();
}

/*
 * Run every request concurrently; returns when all have finished or stop()
 * says so.  Unfinished requests keep done = false: the caller treats them as
 * never sent.  An error on the way releases every handle it made.
 */
void
crm_im_perform(ImRequest *reqs, int n, long timeout_ms, bool (*stop) (void))
{
	Transfer   *ts = palloc0(sizeof(Transfer) * n);

	if (multi == NULL)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (multi = curl_multi_init()) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("could not initialise libcurl")));
		on_proc_exit(close_connections, 0);
		/* a robot or app host is one platform: be a polite client */
		curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 16L);
		curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 64L);
	}

	PG_TRY();
	{
		run_transfers(ts, reqs, n, timeout_ms, stop);
	}
	PG_FINALLY();
	{
		for (int i = 0; i < n; i++)
		{
			if (ts[i].easy)
			{
				curl_multi_remove_handle(multi, ts[i].easy);
				curl_easy_cleanup(ts[i].easy);
			}
			curl_slist_free_all(ts[i].headers);
			free(ts[i].answer);
		}
	}
	PG_END_TRY();
	pfree(ts);
}

static void
run_transfers(Transfer *ts, ImRequest *reqs, int n, long timeout_ms, bool (*stop) (void))
{
	int			running = 0;

	for (int i = 0; i < n; i++)
	{
		Transfer   *t = &ts[i];
		ImRequest  *r = &reqs[i];
		CURL	   *e = curl_easy_init();

		r->done = false;
		r->http_status = 0;
		r->answer = NULL;
		r->transport_error = NULL;
		r->reset_seconds = 0;
		if (e == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not create a libcurl handle")));
		t->req = r;
		t->easy = e;
		curl_easy_setopt(e, CURLOPT_URL, r->url);
		/* channel rows name the URLs: never let one reach file:// or gopher:// */
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, Min(timeout_ms, 5000L));
		curl_easy_setopt(e, CURLOPT_USERAGENT, "crm-notification-worker");
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
		curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_line);
		curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
		curl_easy_setopt(e, CURLOPT_PRIVATE, t);
		if (r->body)
		{
			t->headers = curl_slist_append(t->headers, "Content-Type: application/json; charset=utf-8");
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
		}
		if (r->bearer)
			t->headers = curl_slist_append(t->headers, psprintf("Authorization: Bearer %s", r->bearer));
		/* no "Expect: 100-continue" round trip for bodies over 1 KB */
		t->headers = curl_slist_append(t->headers, "Expect:");
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
		curl_multi_add_handle(multi, e);
	}

	do
	{
		CURLMsg    *msg;
		int			left;

		if (curl_multi_perform(multi, &running) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		{
			Transfer   *t;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
			t->req->done = true;
			if (msg->data.result == CURLE_OK)
			{
				curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &t->req->http_status);
				t->req->answer = t->answer ? pstrdup(t->answer) : pstrdup("");
			}
			else
				t->req->transport_error = pstrdup(t->error[0] ? t->error : curl_easy_strerror(msg->data.result));
		}
		if (running > 0 && curl_multi_poll(multi, NULL, 0, 100, NULL) != CURLM_OK)
			break;
	} while (running > 0 && !stop());
}

/* value for a URL's query string */
char *
crm_im_escape(const char *value)
{
	char	   *e = curl_easy_escape(NULL, value, 0);
	char	   *result;

	if (e == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	result = pstrdup(e);
	curl_free(e);
	return result;
}

static bool
in(long code, const long *codes, int n)
{
	for (int i = 0; i < n; i++)
		if (codes[i] == code)
			return true;
	return false;
}

/*
 * Text from outside crm (a platform's words, a proxy's page, libcurl's
 * message) as crm stores and logs it: at most max_bytes, cut on a character
 * boundary, bytes that are not UTF-8 each replaced by U+FFFD, so that a
 * dump of crm.im_delivery restores.  In a database whose encoding is neither
 * UTF8 nor SQL_ASCII, characters beyond ASCII become "?".
 */
char *
crm_im_text(const char *s, int max_bytes)
{
	const unsigned char *p = (const unsigned char *) s;
	int			encoding = GetDatabaseEncoding();
	bool		ascii = encoding != PG_UTF8 && encoding != PG_SQL_ASCII;
	StringInfoData out;

	initStringInfo(&out);
	while (*p)
	{
		int			len = pg_utf_mblen(p);
		const char *c = (const char *) p;
		int			clen = len;

		if (strnlen(c, len) < (size_t) len || !pg_utf8_islegal(p, len))
		{
			c = "\xEF\xBF\xBD";
			clen = 3;
			len = 1;
		}
		if (ascii && clen > 1)
		{
			c = "?";
			clen = 1;
		}
		if (out.len + clen > max_bytes)
			break;
		appendBinaryStringInfo(&out, c, clen);
		p += len;
	}
	return out.data;
}

/* what the answer, parsed into root (NULL if it is not JSON), means */
static ImOutcome
classify_answer(const char *platform, const ImRequest *r, json_t *root, char **code, char **message,
				int *wait_seconds)
{
	static const long wecom_refresh[] = {40014, 42001};
	static const long wecom_retry[] = {-1, 45009, 45033, 6000};
	static const long feishu_refresh[] = {99991663, 99991664, 99991671};
	static const long feishu_retry[] = {99991400, 11232, 230020};
	static const long dingtalk_refresh[] = {40014, 42001};
	static const long dingtalk_retry[] = {-1, 90001, 90002, 90003, 90005, 90006};
	static const long dingtalk_rate[] = {410100, 130101, 660026};
	json_t	   *c;
	long		value;
	const char *words;
	ImOutcome	outcome;

	c = NULL;
	if (json_is_object(root))
		c = json_object_get(root, strcmp(platform, "feishu") == 0 ? "code" : "errcode");
	if (!json_is_integer(c))
	{
		/* no platform answer: a proxy's page, a cut body, an IP ban (3.6) */
		*code = psprintf("http %ld", r->http_status);
		*message = crm_im_text(r->answer, IM_TEXT_BYTES);
		if (r->http_status >= 500 || r->http_status == 429 || (r->http_status >= 200 && r->http_status < 300))
			return IM_RETRY;	/* a 2xx with a broken body may have been delivered: the retry carries the same key */
		return IM_PERMANENT;
	}
	value = (long) json_integer_value(c);
	words = json_string_value(json_object_get(root, strcmp(platform, "feishu") == 0 ? "msg" : "errmsg"));
	*message = crm_im_text(words ? words : "", IM_TEXT_BYTES);
	if (value == 0 && r->http_status >= 200 && r->http_status < 300)
	{
		*message = NULL;
		return IM_SENT;
	}
	*code = psprintf("%ld", value);

	if (strcmp(platform, "wecom") == 0)
		outcome = in(value, wecom_refresh, lengthof(wecom_refresh)) ? IM_REFRESH :
			in(value, wecom_retry, lengthof(wecom_retry)) ? IM_RETRY : IM_PERMANENT;
	else if (strcmp(platform, "feishu") == 0)
	{
		outcome = in(value, feishu_refresh, lengthof(feishu_refresh)) ? IM_REFRESH :
			in(value, feishu_retry, lengthof(feishu_retry)) ? IM_RETRY : IM_PERMANENT;
		if (value == 99991400 && r->reset_seconds > 0)
			*wait_seconds = r->reset_seconds;
	}
	else
	{
		const char *sub = json_string_value(json_object_get(root, "sub_code"));

		/* the sub-code is the platform's text too: checked and clipped as its message */
		if (value == 88 && sub)
			*code = psprintf("88/%s", crm_im_text(sub, 32));
		if (value == 88 && sub && strcmp(sub, "40014") == 0)
			outcome = IM_REFRESH;
		else if (in(value, dingtalk_refresh, lengthof(dingtalk_refresh)))
			outcome = IM_REFRESH;
		else if (in(value, dingtalk_rate, lengthof(dingtalk_rate)))
		{
			/* a robot over 20 a minute is silenced for 10 minutes (3.2) */
			outcome = IM_RETRY;
			*wait_seconds = 600;
		}
		else
			outcome = in(value, dingtalk_retry, lengthof(dingtalk_retry)) ? IM_RETRY : IM_PERMANENT;
	}
	/* whatever the code, a server error is the server's */
	if (outcome == IM_PERMANENT && r->http_status >= 500)
		outcome = IM_RETRY;
	return outcome;
}

/*
 * What a finished request's answer means, per docs/im-platforms.md 5.7.  code is
 * the platform's ("93000", DingTalk "88/40014", "http 502", "transport"),
 * NULL when sent; message its words.  wait_seconds > 0 when the platform
 * says how long the channel must rest.
 */
ImOutcome
crm_im_classify(const char *platform, const ImRequest *r, char **code, char **message, int *wait_seconds)
{
	json_t	   *root;
	volatile ImOutcome outcome = IM_RETRY;

	*code = NULL;
	*message = NULL;
	*wait_seconds = 0;
	if (r->transport_error)
	{
		*code = pstrdup("transport");
		*message = crm_im_text(r->transport_error, IM_TEXT_BYTES);
		return IM_RETRY;
	}
	root = json_loads(r->answer, 0, NULL);
	PG_TRY();
	{
		outcome = classify_answer(platform, r, root, code, message, wait_seconds);
	}
	PG_FINALLY();
	{
		json_decref(root);
	}
	PG_END_TRY();
	return outcome;
}

/* The access token in a token answer and its lifetime in seconds; false if none. */
bool
crm_im_token_parse(const char *platform, const char *answer, char **token, int *expires_in)
{
	bool		feishu = strcmp(platform, "feishu") == 0;
	json_t	   *root = json_loads(answer, 0, NULL);
	const char *t = json_string_value(json_object_get(root, feishu ? "tenant_access_token" : "access_token"));
	json_t	   *ttl = json_object_get(root, feishu ? "expire" : "expires_in");
	bool		ok = t != NULL && t[0] != '\0' && json_is_integer(ttl) && json_integer_value(ttl) > 0;

	PG_TRY();
	{
		if (ok)
		{
			*token = pstrdup(t);
			*expires_in = (int) Min(json_integer_value(ttl), 7 * 24 * 3600);
		}
	}
	PG_FINALLY();
	{
		json_decref(root);
	}
	PG_END_TRY();
	return ok;
}

/* Feishu's token request body: {"app_id", "app_secret"} (2.3) */
char *
crm_im_feishu_token_body(const char *app_id, const char *app_secret)
{
	json_t	   *o = json_pack("{s:s, s:s}", "app_id", app_id, "app_secret", app_secret);
	char	   *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	char	   *result;

	json_decref(o);
	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	result = pstrdup(s);
	free(s);
	return result;
}

/* A Feishu robot payload with its "timestamp" (seconds, a string) and "sign" (2.2) */
char *
crm_im_feishu_signed(const char *payload, int64 ts, const char *sign)
{
	char	   *seconds = psprintf(INT64_FORMAT, ts);	/* before o exists: an error here leaks nothing */
	json_t	   *o = json_loads(payload, 0, NULL);
	char	   *s = NULL;
	char	   *result;

	if (json_is_object(o) &&
		json_object_set_new(o, "timestamp", json_string(seconds)) == 0 &&
		json_object_set_new(o, "sign", json_string(sign)) == 0)
		s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not sign a Feishu robot message")));
	result = pstrdup(s);
	free(s);
	return result;
}
