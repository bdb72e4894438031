/*-------------------------------------------------------------------------
 *
 * im_token.c
 *	  App access tokens of the IM platforms, for the notification worker's
 *	  app messages and for directory sync: fetched concurrently, kept per
 *	  channel until shortly before they expire, dropped when the channel's
 *	  credentials change (docs/im-platforms.md 1.6, 2.3, 3.4).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "pgstat.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "worker.h"

/* tokens are renewed this long before they expire */
#define TOKEN_MARGIN (60 * USECS_PER_SEC)

typedef struct Token
{
	int64		channel_id;		/* hash key */
	char	   *credentials;	/* what the token was issued for */
	char	   *token;
	TimestampTz expires;
} Token;

static HTAB *tokens = NULL;

/* the app's entry; its token dropped if the credentials changed */
static Token *
entry(const ImApp *app)
{
	bool		found;
	Token	   *t;
	char	   *credentials = psprintf("%s\n%s\n%s", app->app_id ? app->app_id : "",
									   app->app_secret ? app->app_secret : "", app->api_base);

	if (tokens == NULL)
	{
		HASHCTL		ctl = {.keysize = sizeof(int64), .entrysize = sizeof(Token)};

		tokens = hash_create("crm IM app tokens", 16, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	t = hash_search(tokens, &app->channel_id, HASH_ENTER, &found);
	if (!found)
	{
		t->credentials = NULL;
		t->token = NULL;
		t->expires = 0;
	}
	if (t->credentials == NULL || strcmp(t->credentials, credentials) != 0)
	{
		if (t->credentials)
			pfree(t->credentials);
		if (t->token)
			pfree(t->token);
		t->credentials = MemoryContextStrdup(TopMemoryContext, credentials);
		t->token = NULL;
		t->expires = 0;
	}
	return t;
}

/* The app's token, or NULL; with fresh, NULL also when it is about to expire. */
const char *
crm_im_token(const ImApp *app, bool fresh)
{
	Token	   *t = entry(app);

	if (fresh && t->token && t->expires - TOKEN_MARGIN <= GetCurrentTimestamp())
		return NULL;
	return t->token;
}

static void
token_request(const ImApp *app, ImRequest *r)
{
	memset(r, 0, sizeof(ImRequest));
	if (strcmp(app->platform, "wecom") == 0)
		r->url = psprintf("%s/cgi-bin/gettoken?corpid=%s&corpsecret=%s", app->api_base,
						  crm_im_escape(app->app_id), crm_im_escape(app->app_secret));
	else if (strcmp(app->platform, "feishu") == 0)
	{
		r->url = psprintf("%s/open-apis/auth/v3/tenant_access_token/internal", app->api_base);
		r->body = crm_im_feishu_token_body(app->app_id, app->app_secret);
	}
	else
		r->url = psprintf("%s/gettoken?appkey=%s&appsecret=%s", app->api_base,
						  crm_im_escape(app->app_id), crm_im_escape(app->app_secret));
}

/*
 * Fetch new tokens for the apps, all at once, and keep those the platforms
 * give; results[i] says how each went.
 */
void
crm_im_tokens_fetch(const ImApp *apps, int n, long timeout_ms, ImTokenResult *results)
{
	ImRequest  *reqs;
	TimestampTz now;

	if (n == 0)
		return;
	reqs = palloc0(sizeof(ImRequest) * n);
	for (int i = 0; i < n; i++)
		token_request(&apps[i], &reqs[i]);
	pgstat_report_activity(STATE_RUNNING, psprintf("fetching %d access tokens", n));
	crm_im_perform(reqs, n, timeout_ms, crm_worker_stopping);
	now = GetCurrentTimestamp();
	for (int i = 0; i < n; i++)
	{
		const ImApp *app = &apps[i];
		ImRequest  *r = &reqs[i];
		ImTokenResult *res = &results[i];
		char	   *token;
		int			ttl;
		int			wait;

		memset(res, 0, sizeof(ImTokenResult));
		res->done = r->done;
		if (!r->done)
			continue;			/* shutting down */
		if (r->answer && r->http_status == 200 && crm_im_token_parse(app->platform, r->answer, &token, &ttl))
		{
			Token	   *t = entry(app);

			if (t->token)
				pfree(t->token);
			t->token = MemoryContextStrdup(TopMemoryContext, token);
			t->expires = now + ttl * USECS_PER_SEC;
			res->ok = true;
			continue;
		}
		res->outcome = crm_im_classify(app->platform, r, &res->code, &res->message, &wait);
		if (res->outcome == IM_SENT || res->outcome == IM_REFRESH)
			res->outcome = IM_RETRY;	/* code 0 without a token, or a token error asking for a token */
		ereport(LOG,
				(errmsg("crm notification worker: channel \"%s\" got no access token: %s %s",
						crm_quote(app->name, strlen(app->name)), res->code ? res->code : "",
						res->message ? res->message : "")));
	}
}

/*
 * The app's token, renewed if asked or about to expire; NULL with *error
 * when the platform gives none.
 */
const char *
crm_im_app_token(const ImApp *app, bool renew, long timeout_ms, char **error)
{
	ImTokenResult res;
	const char *token = renew ? NULL : crm_im_token(app, true);

	*error = NULL;
	if (token)
		return token;
	crm_im_tokens_fetch(app, 1, timeout_ms, &res);
	if (res.ok)
		return crm_im_token(app, false);
	*error = !res.done ? pstrdup("interrupted")
		: psprintf("%s: %s", res.code ? res.code : "no token", res.message ? res.message : "");
	return NULL;
}
