/*-------------------------------------------------------------------------
 *
 * deliver.c
 *	  One round of the notification worker's deliveries: it turns pending
 *	  notifications into deliveries (crm.im_expand), claims the due
 *	  deliveries of every enabled channel, commits, sends them all at once
 *	  over HTTP (im_send.c), and records each outcome in a second
 *	  transaction.  Nothing is marked before it is sent: a crash between the
 *	  two transactions sends those deliveries again, with the same
 *	  idempotency key.
 *
 * Each channel sends what its rate windows allow (im_window.c); when a
 * robot has more due than its window allows, the excess goes out as one
 * digest; so do an app's messages to one person beyond a few a round.  App
 * tokens (im_token.c) are refreshed once when the platform says they are no
 * longer valid.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "worker.h"

/* notifications turned into deliveries per round */
#define EXPAND_BATCH 2000
/* a digest stops growing at this many body bytes: under every platform's
 * limit, but DingTalk work notices, whose msg holds 2048 */
#define DIGEST_BUDGET 3000
#define DINGTALK_APP_DIGEST_BUDGET 1500
/* more than this many messages for one person in a round go as one digest */
#define APP_DIGEST_AFTER 3
#define MAX_BACKOFF (3600 * INT64CONST(1000))

/* the round under way, counted for the per-person windows and the log */
static uint64 current_round = 0;

/*
 * Deliveries sent whose outcome could not be recorded: this process never
 * claims them again, so that a row that cannot be updated is not sent in
 * every round.
 */
static HTAB *unrecorded = NULL;

typedef enum DeliveryState
{
	D_UNTOUCHED,				/* not handled this round */
	D_SENT,
	D_RETRY,					/* failed: try again at "at" */
	D_DEAD,
	D_DEFER						/* not attempted: due again at "at" */
} DeliveryState;

typedef struct Delivery
{
	int64		id;
	int			attempts;
	char	   *key;
	char	   *title;
	char	   *body;
	char	   *name;			/* the recipient's */
	char	   *im_id;			/* the recipient's on this channel's platform */
	bool		gone;			/* its notification was deleted */
	DeliveryState state;
	TimestampTz at;
	int64		sent_in;		/* the delivery whose request carried it */
	char	   *code;
	char	   *error;
	List	   *more;			/* an app digest's other deliveries, when this one carries it */
} Delivery;

typedef struct Channel
{
	int64		id;
	char	   *name;
	char	   *platform;
	char	   *kind;
	char	   *webhook_url;
	char	   *secret;
	char	   *app_id;
	char	   *app_secret;
	char	   *agent_id;
	char	   *api_base;
	int			rate;
	ChannelWindows *st;
	List	   *due;			/* Delivery * */
	bool		refreshed;		/* its token was renewed this round */
} Channel;

/* one HTTP request carrying one delivery, or a digest of several */
typedef struct Send
{
	Channel    *ch;
	List	   *items;			/* Delivery *; the first is the carrier */
	char	   *body;			/* unsigned payload */
	ImRequest	req;
	bool		refresh;		/* its token was rejected: renew and resend */
} Send;

/* what the round is busy with, named in the context of an error */
static Channel *busy_channel = NULL;
static Delivery *busy_delivery = NULL;

static void
round_context(void *arg)
{
	if (busy_channel && busy_delivery)
		errcontext("IM delivery %lld on channel \"%s\"", (long long) busy_delivery->id,
				   crm_quote(busy_channel->name, strlen(busy_channel->name)));
	else if (busy_channel)
		errcontext("IM channel \"%s\"", crm_quote(busy_channel->name, strlen(busy_channel->name)));
}

static void
busy_with(Channel *ch, Delivery *d)
{
	busy_channel = ch;
	busy_delivery = d;
}

static char *
value(HeapTuple tup, TupleDesc desc, int col)
{
	return SPI_getvalue(tup, desc, col);
}

static bool
is_robot(Channel *ch)
{
	return strcmp(ch->kind, "robot") == 0;
}

static void
settle(Delivery *d, DeliveryState state, TimestampTz at, const char *code, const char *error)
{
	d->state = state;
	d->at = at;
	d->code = code ? pstrdup(code) : NULL;
	d->error = error ? pstrdup(error) : NULL;
}

/* a failed attempt: retried after an exponential, jittered delay, or dead */
static void
fail(Delivery *d, ImOutcome outcome, TimestampTz now, TimestampTz not_before,
	 const char *code, const char *error)
{
	int64		delay_ms;

	if (outcome == IM_PERMANENT || d->attempts + 1 >= crm_im_max_attempts)
	{
		settle(d, D_DEAD, now, code, error);
		return;
	}
	delay_ms = (int64) crm_im_retry_delay << Min(d->attempts, 20);
	delay_ms = Min(delay_ms, MAX_BACKOFF);
	delay_ms = (int64) (delay_ms * (0.5 + pg_prng_double(&pg_global_prng_state)));
	settle(d, D_RETRY, Max(now + delay_ms * 1000, not_before), code, error);
}

typedef enum Claimed
{
	CLAIMED,
	NOT_INSTALLED,				/* crm is not in crm.database_name (yet) */
	NOT_UPDATED,				/* the database's crm is another version than this library */
	PAUSED						/* crm.settings.im_paused */
} Claimed;

/* the installed version the worker last said it waits on, so that it says so once */
static char *waiting_on = NULL;

/* the deliveries this process leaves alone, as an int8[] */
static Datum
unrecorded_ids(void)
{
	HASH_SEQ_STATUS seq;
	int64	   *id;
	Datum	   *ids = palloc(sizeof(Datum) * (hash_get_num_entries(unrecorded) + 1));
	int			n = 0;

	hash_seq_init(&seq, unrecorded);
	while ((id = hash_seq_search(&seq)) != NULL)
		ids[n++] = Int64GetDatum(*id);
	return PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * Read the channels and their due deliveries.  Each statement reads with a
 * snapshot of its own, so that the due deliveries include those the
 * expansion just wrote.
 */
static Claimed
claim(MemoryContext cxt, List **channels, int *expanded, int *claimed)
{
	int			ret;
	uint64		n;
	MemoryContext old;
	Oid			argtypes[2] = {INT4OID, INT8ARRAYOID};
	Datum		args[2];
	bool		isnull;

	/*
	 * A new library is installed (and the server restarted) before ALTER
	 * EXTENSION crm UPDATE changes the tables it reads: until then the worker
	 * sends nothing and the outbox keeps filling.
	 */
	ret = SPI_execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'crm'",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not read crm's version: %s", SPI_result_code_string(ret))));
	if (SPI_processed == 0)
		return NOT_INSTALLED;
	{
		char	   *installed = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (strcmp(installed, CRM_VERSION) != 0)
		{
			if (waiting_on == NULL || strcmp(waiting_on, installed) != 0)
			{
				ereport(LOG,
						(errmsg("crm notification worker waits: database \"%s\" has crm %s, its library is %s",
								crm_database_name, installed, CRM_VERSION),
						 errhint("Run ALTER EXTENSION crm UPDATE in that database; the outbox is sent after it.")));
				if (waiting_on)
					pfree(waiting_on);
				waiting_on = MemoryContextStrdup(TopMemoryContext, installed);
			}
			return NOT_UPDATED;
		}
		if (waiting_on)
		{
			ereport(LOG, (errmsg("crm notification worker resumes: database \"%s\" has crm %s",
								 crm_database_name, installed)));
			pfree(waiting_on);
			waiting_on = NULL;
		}
	}
	ret = SPI_execute("SELECT im_paused FROM crm.settings", false, 0);
	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not read crm.settings: %s", SPI_result_code_string(ret))));
	if (SPI_processed > 0 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) && !isnull)
		return PAUSED;

	args[0] = Int32GetDatum(EXPAND_BATCH);
	ret = SPI_execute_with_args("SELECT crm.im_expand($1)", 1, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not expand pending notifications: %s", SPI_result_code_string(ret))));
	*expanded = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	ret = SPI_execute("SELECT id, name, platform, kind, webhook_url, secret, app_id, app_secret, agent_id, "
					  "       api_base, rate_per_minute "
					  "  FROM crm.im_channel WHERE enabled ORDER BY id", false, 0);
	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not read IM channels: %s", SPI_result_code_string(ret))));
	n = SPI_processed;
	old = MemoryContextSwitchTo(cxt);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		Channel    *c = palloc0(sizeof(Channel));

		c->id = pg_strtoint64(value(t, d, 1));
		c->name = value(t, d, 2);
		c->platform = value(t, d, 3);
		c->kind = value(t, d, 4);
		c->webhook_url = value(t, d, 5);
		c->secret = value(t, d, 6);
		c->app_id = value(t, d, 7);
		c->app_secret = value(t, d, 8);
		c->agent_id = value(t, d, 9);
		c->api_base = value(t, d, 10);
		c->rate = pg_strtoint32(value(t, d, 11));
		*channels = lappend(*channels, c);
	}
	MemoryContextSwitchTo(old);

	/* each channel's oldest due deliveries, so that no channel starves another */
	args[0] = Int32GetDatum(crm_im_batch_size);
	args[1] = unrecorded_ids();
	ret = SPI_execute_with_args(
		"SELECT d.id, d.channel_id, d.attempts, d.idempotency_key, n.id IS NULL, n.title, "
		"       coalesce(n.body, ''), e.name, "
		"       CASE c.platform WHEN 'wecom' THEN e.wecom_userid WHEN 'feishu' THEN e.feishu_open_id "
		"                       ELSE e.dingtalk_userid END "
		"  FROM crm.im_channel c "
		" CROSS JOIN LATERAL (SELECT * FROM crm.im_delivery d "
		"                      WHERE d.channel_id = c.id AND d.status IN ('pending', 'failed') "
		"                        AND d.next_attempt_at <= now() AND d.id <> ALL ($2) "
		"                      ORDER BY d.next_attempt_at, d.id LIMIT $1) d "
		"  LEFT JOIN crm.notification n ON n.id = d.notification_id "
		"  LEFT JOIN crm.employee e ON e.id = n.recipient_id "
		" WHERE c.enabled "
		" ORDER BY d.channel_id, d.next_attempt_at, d.id",
		2, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not read due IM deliveries: %s", SPI_result_code_string(ret))));
	n = SPI_processed;
	*claimed = (int) n;
	old = MemoryContextSwitchTo(cxt);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Delivery   *d = palloc0(sizeof(Delivery));
		int64		channel_id = pg_strtoint64(value(t, desc, 2));
		Channel    *ch = NULL;
		ListCell   *lc;

		d->id = pg_strtoint64(value(t, desc, 1));
		d->attempts = pg_strtoint32(value(t, desc, 3));
		d->key = value(t, desc, 4);
		d->gone = strcmp(value(t, desc, 5), "t") == 0;
		d->title = value(t, desc, 6);
		d->body = value(t, desc, 7);
		d->name = value(t, desc, 8);
		d->im_id = value(t, desc, 9);
		/* a channel enabled since the first query waits for the next round */
		foreach(lc, *channels)
			if (((Channel *) lfirst(lc))->id == channel_id)
				ch = lfirst(lc);
		if (ch)
			ch->due = lappend(ch->due, d);
	}
	MemoryContextSwitchTo(old);
	return CLAIMED;
}

typedef struct PayloadArgs
{
	Channel    *ch;
	Delivery   *d;
	const char *title;
	const char *body;
	const char *key;
	char	   *payload;
} PayloadArgs;

static void
payload_of(void *arg)
{
	PayloadArgs *a = arg;

	a->payload = crm_im_payload(a->ch->platform, a->ch->kind, is_robot(a->ch) ? NULL : a->d->im_id,
								a->ch->agent_id, a->title, a->body, a->key);
}

/* The payload for one message, or NULL with the delivery dead when it cannot be built. */
static char *
build_payload(Channel *ch, Delivery *d, const char *title, const char *body, const char *key)
{
	PayloadArgs a = {ch, d, title, body, key, NULL};
	ErrorData  *e;

	if (!crm_worker_attempt(payload_of, &a, &e))
		settle(d, D_DEAD, GetCurrentTimestamp(), "payload", e->message);
	return a.payload;
}

static Send *
new_send(Channel *ch, List *items, char *body)
{
	Send	   *s = palloc0(sizeof(Send));

	s->ch = ch;
	s->items = items;
	s->body = body;
	return s;
}

/*
 * A digest of the items, the first of which carries it, as many as fit the
 * budget: a robot's names each recipient, an app's goes to one person.
 */
static Send *
digest(Channel *ch, List *items)
{
	StringInfoData body;
	List	   *taken = NIL;
	ListCell   *lc;
	Delivery   *carrier = linitial(items);
	char	   *payload;
	int			budget = !is_robot(ch) && strcmp(ch->platform, "dingtalk") == 0
		? DINGTALK_APP_DIGEST_BUDGET : DIGEST_BUDGET;

	initStringInfo(&body);
	foreach(lc, items)
	{
		Delivery   *d = lfirst(lc);
		char	   *line = is_robot(ch) ? psprintf("• %s · %s\n", d->name ? d->name : "", d->title)
			: psprintf("• %s\n", d->title);

		if (taken != NIL && (int) (body.len + strlen(line)) > budget)
			break;
		appendStringInfoString(&body, line);
		taken = lappend(taken, d);
	}
	payload = build_payload(ch, carrier, psprintf("%d notifications", list_length(taken)),
							body.data, carrier->key);
	if (payload == NULL)
		return NULL;
	return new_send(ch, taken, payload);
}

/* Whether d's recipient may get one more message now; if not, *wake when they may. */
static bool
recipient_room(Channel *ch, Delivery *d, TimestampTz now, TimestampTz *wake)
{
	RecipientWindow *rs = crm_recipient_window(ch->id, ch->platform, d->im_id, current_round);

	if (crm_window_room(&rs->window, now) > rs->planned)
	{
		rs->planned++;
		return true;
	}
	if (*wake == 0 || crm_window_opens(&rs->window) < *wake)
		*wake = Max(crm_window_opens(&rs->window), now + 1000);
	return false;
}

/*
 * An app's deliveries with each person's first standing for all of theirs
 * when they have more than APP_DIGEST_AFTER (the rest hang on its "more").
 */
static List *
group_by_recipient(List *deliveries)
{
	List	   *out = NIL;
	ListCell   *lc;

	foreach(lc, deliveries)
	{
		Delivery   *d = lfirst(lc);
		ListCell   *oc;
		Delivery   *first = NULL;
		int			count = 0;

		foreach(oc, deliveries)
		{
			Delivery   *o = lfirst(oc);

			if (strcmp(o->im_id, d->im_id) != 0)
				continue;
			if (first == NULL)
				first = o;
			count++;
		}
		if (count <= APP_DIGEST_AFTER)
			out = lappend(out, d);
		else if (first == d)
			out = lappend(out, d);
		else
			first->more = lappend(first->more, d);
	}
	return out;
}

/* Sends for the channel's due deliveries that its window allows now. */
static List *
plan(Channel *ch, TimestampTz now, TimestampTz *wake)
{
	ChannelWindows *st = ch->st;
	List	   *sendable = NIL;
	List	   *sends = NIL;
	ListCell   *lc;
	int			room;
	int			n;
	int			i;

	foreach(lc, ch->due)
	{
		Delivery   *d = lfirst(lc);

		if (d->gone)
			settle(d, D_DEAD, now, "gone", "the notification was deleted");
		else if (!is_robot(ch) && d->im_id == NULL)
			settle(d, D_DEAD, now, "no_recipient",
				   psprintf("%s has no %s id", d->name ? d->name : "the recipient", ch->platform));
		else if (st->blocked_until > now)
			settle(d, D_DEFER, st->blocked_until, NULL, NULL);
		else
			sendable = lappend(sendable, d);
	}
	room = Min(crm_window_room(&st->minute, now), crm_window_room(&st->second, now));
	if (!is_robot(ch))
		sendable = group_by_recipient(sendable);
	n = list_length(sendable);
	i = 0;
	foreach(lc, sendable)
	{
		Delivery   *d = lfirst(lc);
		char	   *payload;

		if (i >= room)
			break;
		busy_with(ch, d);
		if (!is_robot(ch) && !recipient_room(ch, d, now, wake))
			continue;
		/* a person with many messages this round gets them as one */
		if (!is_robot(ch) && d->more != NIL)
		{
			Send	   *s = digest(ch, lcons(d, d->more));

			if (s)
				sends = lappend(sends, s);
			i++;
			continue;
		}
		/* a robot short of room sends the rest as one digest in its last slot */
		if (is_robot(ch) && n > room && i == room - 1)
		{
			Send	   *s = digest(ch, list_copy_tail(sendable, i));

			if (s)
				sends = lappend(sends, s);
			break;
		}
		payload = is_robot(ch)
			? build_payload(ch, d, d->name ? psprintf("%s · %s", d->name, d->title) : d->title, d->body, d->key)
			: build_payload(ch, d, d->title, d->body, d->key);
		if (payload)
			sends = lappend(sends, new_send(ch, list_make1(d), payload));
		i++;
	}
	if (n > room)
	{
		TimestampTz opens = Max(crm_window_opens(&st->minute), crm_window_opens(&st->second));

		if (opens > 0 && (*wake == 0 || opens < *wake))
			*wake = opens;
	}
	return sends;
}

/*
 * Take the channel's sends off the round: their deliveries fail with outcome,
 * or (IM_SENT) stay untouched, due again next round.
 */
static void
drop_sends(Channel *ch, List *sends, ImOutcome outcome, TimestampTz now, const char *code, const char *error)
{
	ListCell   *sc;

	foreach(sc, sends)
	{
		Send	   *s = lfirst(sc);
		ListCell   *ic;

		if (s->ch != ch)
			continue;
		if (outcome != IM_SENT)
			foreach(ic, s->items)
				fail(lfirst(ic), outcome, now, 0, code, error);
		s->items = NIL;
	}
}

/* the channel as an app whose token im_token.c keeps */
static ImApp
app_of(Channel *ch)
{
	ImApp		app = {ch->id, ch->name, ch->platform, ch->app_id, ch->app_secret, ch->api_base};

	return app;
}

/*
 * Fetch tokens for the channels, all at once.  A channel that gets none has
 * its planned deliveries failed with the platform's answer.
 */
static void
fetch_tokens(List *channels, List *sends)
{
	int			n = list_length(channels);
	ImApp	   *apps;
	ImTokenResult *results;
	ListCell   *lc;
	TimestampTz now;

	if (n == 0)
		return;
	apps = palloc(sizeof(ImApp) * n);
	results = palloc(sizeof(ImTokenResult) * n);
	foreach(lc, channels)
		apps[foreach_current_index(lc)] = app_of(lfirst(lc));
	crm_im_tokens_fetch(apps, n, crm_im_request_timeout, results);
	now = GetCurrentTimestamp();
	foreach(lc, channels)
	{
		ImTokenResult *res = &results[foreach_current_index(lc)];

		if (!res->done)
			drop_sends(lfirst(lc), sends, IM_SENT, now, NULL, NULL);	/* shutting down: they wait */
		else if (!res->ok)
			drop_sends(lfirst(lc), sends, res->outcome, now, res->code,
					   psprintf("access token: %s", res->message ? res->message : ""));
	}
}

/* Fill in s->req: URL, signature, token. */
static void
prepare(Send *s)
{
	Channel    *ch = s->ch;
	ImRequest  *r = &s->req;
	ImApp		app = app_of(ch);
	const char *token = is_robot(ch) ? NULL : crm_im_token(&app, false);

	memset(r, 0, sizeof(ImRequest));
	r->body = s->body;
	if (is_robot(ch))
	{
		r->url = ch->webhook_url;
		if (ch->secret && strcmp(ch->platform, "feishu") == 0)
		{
			int64		ts = (int64) time(NULL);

			r->body = crm_im_feishu_signed(s->body, ts, crm_im_robot_sign("feishu", ch->secret, ts));
		}
		else if (ch->secret && strcmp(ch->platform, "dingtalk") == 0)
		{
			int64		ts = (int64) time(NULL) * 1000;

			r->url = psprintf("%s%ctimestamp=" INT64_FORMAT "&sign=%s", ch->webhook_url,
							  strchr(ch->webhook_url, '?') ? '&' : '?', ts,
							  crm_im_robot_sign("dingtalk", ch->secret, ts));
		}
	}
	else if (strcmp(ch->platform, "wecom") == 0)
		r->url = psprintf("%s/cgi-bin/message/send?access_token=%s", ch->api_base,
						  crm_im_escape(token));
	else if (strcmp(ch->platform, "feishu") == 0)
	{
		r->url = psprintf("%s/open-apis/im/v1/messages?receive_id_type=open_id", ch->api_base);
		r->bearer = token;
	}
	else
		r->url = psprintf("%s/topapi/message/corpconversation/asyncsend_v2?access_token=%s",
						  ch->api_base, crm_im_escape(token));
}

typedef struct Answer
{
	Send	   *s;
	ImRequest  *r;
	TimestampTz end;
} Answer;

/* Settle a send's items by the platform's answer; a rejected token sets refresh instead. */
static void
settle_answer(void *arg)
{
	Answer	   *a = arg;
	Send	   *s = a->s;
	ChannelWindows *st = s->ch->st;
	ImOutcome	outcome;
	char	   *code;
	char	   *message;
	int			wait;
	ListCell   *ic;

	outcome = crm_im_classify(s->ch->platform, a->r, &code, &message, &wait);
	if (outcome == IM_REFRESH && !s->ch->refreshed)
	{
		s->refresh = true;
		return;
	}
	if (wait > 0)
		st->blocked_until = a->end + wait * USECS_PER_SEC;
	foreach(ic, s->items)
	{
		Delivery   *d = lfirst(ic);

		if (outcome == IM_SENT)
		{
			settle(d, D_SENT, a->end, NULL, NULL);
			d->sent_in = ((Delivery *) linitial(s->items))->id;
		}
		else
			fail(d, outcome == IM_REFRESH ? IM_RETRY : outcome, a->end,
				 wait > 0 ? st->blocked_until : 0, code, message);
	}
}

/* Send them all at once and settle their items; those whose token was rejected get refresh set. */
static void
perform(List *sends)
{
	int			n = 0;
	ImRequest  *reqs;
	ListCell   *lc;
	TimestampTz end;

	foreach(lc, sends)
		n += ((Send *) lfirst(lc))->items != NIL;
	if (n == 0)
		return;
	reqs = palloc0(sizeof(ImRequest) * n);
	n = 0;
	foreach(lc, sends)
	{
		Send	   *s = lfirst(lc);

		if (s->items == NIL)
			continue;
		prepare(s);
		reqs[n++] = s->req;
	}
	pgstat_report_activity(STATE_RUNNING, psprintf("sending %d IM messages", n));
	crm_im_perform(reqs, n, crm_im_request_timeout, crm_worker_stopping);
	end = GetCurrentTimestamp();

	n = 0;
	foreach(lc, sends)
	{
		Send	   *s = lfirst(lc);
		ChannelWindows *st = s->ch->st;
		Answer		a;
		ErrorData  *e;
		ListCell   *ic;

		if (s->items == NIL)
			continue;
		a.s = s;
		a.r = &reqs[n++];
		a.end = end;
		s->refresh = false;
		/* answered or not, the platform may have counted it */
		crm_window_add(&st->minute, end);
		crm_window_add(&st->second, end);
		if (!is_robot(s->ch))
			crm_window_add(&crm_recipient_window(s->ch->id, s->ch->platform,
												 ((Delivery *) linitial(s->items))->im_id, current_round)->window, end);
		if (!a.r->done)
			continue;			/* shutting down: sent again, same key, after the restart */
		busy_with(s->ch, linitial(s->items));
		if (crm_worker_attempt(settle_answer, &a, &e))
			continue;
		/* an answer crm failed to read is tried again later, as a garbled one is */
		ereport(WARNING,
				(errcode(e->sqlerrcode),
				 errmsg("crm notification worker could not read the answer to IM delivery %lld on channel \"%s\": %s",
						(long long) ((Delivery *) linitial(s->items))->id,
						crm_quote(s->ch->name, strlen(s->ch->name)), e->message)));
		foreach(ic, s->items)
			fail(lfirst(ic), IM_RETRY, end, 0, "crm", e->message);
	}
	busy_with(NULL, NULL);
}

/* Renew the tokens the platforms rejected, once per channel, and resend. */
static void
refresh_and_resend(List *sends)
{
	List	   *channels = NIL;
	List	   *again = NIL;
	ListCell   *lc;

	foreach(lc, sends)
	{
		Send	   *s = lfirst(lc);

		if (!s->refresh)
			continue;
		if (!s->ch->refreshed)
		{
			s->ch->refreshed = true;
			channels = lappend(channels, s->ch);
		}
		again = lappend(again, s);
	}
	if (again == NIL)
		return;
	fetch_tokens(channels, again);
	perform(again);
}

static const char *const state_names[] = {NULL, "sent", "failed", "dead", NULL};

/* one UPDATE: the new state of the deliveries (a List of Delivery *) */
static void
record_rows(void *arg)
{
	List	   *ds = arg;
	int			n = list_length(ds);
	int			i = 0;
	ListCell   *lc;
	Datum	   *ids = palloc(sizeof(Datum) * n),
			   *states = palloc(sizeof(Datum) * n),
			   *counted = palloc(sizeof(Datum) * n),
			   *ats = palloc(sizeof(Datum) * n),
			   *sent_in = palloc(sizeof(Datum) * n),
			   *codes = palloc(sizeof(Datum) * n),
			   *errors = palloc(sizeof(Datum) * n);
	bool	   *state_nulls = palloc0(sizeof(bool) * n),
			   *sent_nulls = palloc0(sizeof(bool) * n),
			   *code_nulls = palloc0(sizeof(bool) * n),
			   *error_nulls = palloc0(sizeof(bool) * n);
	Oid			types[7] = {INT8ARRAYOID, TEXTARRAYOID, BOOLARRAYOID, TIMESTAMPTZARRAYOID,
	INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		args[7];
	int			ret;

	foreach(lc, ds)
	{
		Delivery   *d = lfirst(lc);

		ids[i] = Int64GetDatum(d->id);
		state_nulls[i] = state_names[d->state] == NULL;
		states[i] = state_nulls[i] ? (Datum) 0 : CStringGetTextDatum(state_names[d->state]);
		counted[i] = BoolGetDatum(d->state != D_DEFER);
		ats[i] = TimestampTzGetDatum(d->at);
		sent_nulls[i] = d->state != D_SENT;
		sent_in[i] = Int64GetDatum(d->sent_in);
		code_nulls[i] = d->code == NULL;
		codes[i] = d->code ? CStringGetTextDatum(d->code) : (Datum) 0;
		error_nulls[i] = d->error == NULL;
		errors[i] = d->error ? CStringGetTextDatum(d->error) : (Datum) 0;
		i++;
	}
	args[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[1] = PointerGetDatum(construct_md_array(states, state_nulls, 1, &n, &(int){1}, TEXTOID, -1, false, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_array(counted, n, BOOLOID, 1, true, TYPALIGN_CHAR));
	args[3] = PointerGetDatum(construct_array(ats, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[4] = PointerGetDatum(construct_md_array(sent_in, sent_nulls, 1, &n, &(int){1}, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[5] = PointerGetDatum(construct_md_array(codes, code_nulls, 1, &n, &(int){1}, TEXTOID, -1, false, TYPALIGN_INT));
	args[6] = PointerGetDatum(construct_md_array(errors, error_nulls, 1, &n, &(int){1}, TEXTOID, -1, false, TYPALIGN_INT));

	ret = SPI_execute_with_args(
		"UPDATE crm.im_delivery d "
		"   SET status = coalesce(r.status, d.status), "
		"       attempts = d.attempts + r.counted::int, "
		"       next_attempt_at = CASE WHEN r.status IS NULL OR r.status = 'failed' THEN r.at ELSE d.next_attempt_at END, "
		"       sent_at = CASE WHEN r.status = 'sent' THEN r.at END, "
		"       sent_in = r.sent_in, "
		"       last_code = CASE WHEN r.counted THEN r.code ELSE d.last_code END, "
		"       last_error = CASE WHEN r.counted THEN r.error ELSE d.last_error END "
		"  FROM unnest($1, $2, $3, $4, $5, $6, $7) AS r(id, status, counted, at, sent_in, code, error) "
		" WHERE d.id = r.id",
		7, types, args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not record IM deliveries: %s", SPI_result_code_string(ret))));
}

/*
 * One transaction: every settled delivery's new state; returns how many.  A
 * row that cannot be written (a trigger or a value someone planted) spoils
 * only itself: the others are then written one by one, and the worker
 * leaves it alone until it restarts.
 */
static int
record(List *channels)
{
	List	   *ds = NIL;
	ListCell   *lc;
	ErrorData  *e;

	foreach(lc, channels)
	{
		ListCell   *dc;

		foreach(dc, ((Channel *) lfirst(lc))->due)
			if (((Delivery *) lfirst(dc))->state != D_UNTOUCHED)
				ds = lappend(ds, lfirst(dc));
	}
	if (ds == NIL)
		return 0;
	/*
	 * This commit need not wait for the disk: a crash can lose only the
	 * record of sends, which are then sent again with the same keys.  (The
	 * claim's commit must: the keys it wrote go out before the record.)
	 */
	(void) set_config_option("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	if (crm_worker_subxact(record_rows, ds, &e))
		return list_length(ds);
	foreach(lc, ds)
	{
		Delivery   *d = lfirst(lc);

		if (crm_worker_subxact(record_rows, list_make1(d), &e))
			continue;
		(void) hash_search(unrecorded, &d->id, HASH_ENTER, NULL);
		ereport(WARNING,
				(errcode(e->sqlerrcode),
				 errmsg("crm notification worker could not record the outcome of IM delivery %lld: %s",
						(long long) d->id, e->message),
				 errdetail("Its outcome was %s; it is not sent again until the worker restarts.",
						   state_names[d->state] ? state_names[d->state] : "deferred"),
				 errhint("Find what refuses the update of that row of crm.im_delivery.")));
	}
	return list_length(ds);
}

/* milliseconds until the earliest delivery not yet due falls due; -1 if none */
static long
next_due(void)
{
	bool		isnull;
	Datum		v;
	int			ret = SPI_execute("SELECT ceil(extract(epoch FROM min(m) - now()) * 1000)::bigint "
								  "  FROM crm.im_channel c, LATERAL (SELECT min(next_attempt_at) AS m "
								  "         FROM crm.im_delivery d WHERE d.channel_id = c.id "
								  "          AND d.status IN ('pending', 'failed')) d "
								  " WHERE c.enabled", false, 1);

	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not read the next due IM delivery: %s", SPI_result_code_string(ret))));
	v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? -1 : (long) Max(DatumGetInt64(v), 0);
}

/* the channels of a round whose outcomes are not recorded yet */
static List *unrecorded_round = NIL;

/*
 * One round; returns how long to sleep, in ms (0: go on at once), and
 * whether crm is installed and not paused (*active).
 */
long
crm_deliver_round(MemoryContext cxt, bool *active)
{
	static bool history_loaded = false;
	List	   *channels = NIL;
	List	   *sends = NIL;
	List	   *need_token = NIL;
	ListCell   *lc;
	int			expanded = 0;
	int			claimed_count = 0;
	int			recorded;
	Claimed		claimed;
	TimestampTz now;
	TimestampTz wake = 0;
	long		sleep_ms = crm_im_poll_interval;
	long		due;
	uint32		holdoff = InterruptHoldoffCount;
	ErrorContextCallback context;

	current_round++;
	crm_worker_begin("claiming due IM deliveries");
	claimed = claim(cxt, &channels, &expanded, &claimed_count);
	if (claimed == CLAIMED)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		foreach(lc, channels)
		{
			Channel    *ch = lfirst(lc);

			ch->st = crm_channel_windows(ch->id, ch->rate, is_robot(ch) && strcmp(ch->platform, "feishu") == 0);
		}
		MemoryContextSwitchTo(old);
		if (!history_loaded)
		{
			crm_windows_load_history();
			history_loaded = true;
		}
	}
	crm_worker_end();
	*active = claimed == CLAIMED;
	if (claimed != CLAIMED)
	{
		pgstat_report_activity(STATE_IDLE,
							   claimed == PAUSED ? "paused: crm.settings.im_paused" :
							   claimed == NOT_UPDATED ? "waiting for ALTER EXTENSION crm UPDATE" :
							   "crm is not installed");
		return crm_im_poll_interval;
	}

	/*
	 * From the first request until the outcomes are committed, SIGTERM only
	 * stops the requests: what was answered is recorded before the worker
	 * exits, and not sent again after its restart.
	 */
	HOLD_INTERRUPTS();			/* an error clears it: see crm_deliver_after_error */
	unrecorded_round = channels;
	/* an error names the delivery or channel the round was busy with */
	context.callback = round_context;
	context.arg = NULL;
	context.previous = error_context_stack;
	error_context_stack = &context;
	now = GetCurrentTimestamp();
	foreach(lc, channels)
	{
		Channel    *ch = lfirst(lc);
		ImApp		app = app_of(ch);
		List	   *planned;

		busy_with(ch, NULL);
		planned = plan(ch, now, &wake);
		if (planned != NIL && !is_robot(ch) &&
			crm_im_token(&app, true) == NULL)
			need_token = lappend(need_token, ch);
		sends = list_concat(sends, planned);
	}
	busy_with(NULL, NULL);
	fetch_tokens(need_token, sends);
	perform(sends);
	refresh_and_resend(sends);

	crm_worker_begin("recording IM deliveries");
	recorded = record(channels);
	due = next_due();
	crm_worker_end();
	unrecorded_round = NIL;
	error_context_stack = context.previous;
	InterruptHoldoffCount = holdoff;
	elog(DEBUG1, "crm notification worker round " UINT64_FORMAT ": %d notifications expanded, %d deliveries claimed, %d recorded",
		 current_round, expanded, claimed_count, recorded);

	if (due >= 0)
		sleep_ms = Min(sleep_ms, due);
	if (wake > 0)
		sleep_ms = Min(sleep_ms, Max((wake - GetCurrentTimestamp()) / 1000, 1));
	return expanded >= EXPAND_BATCH ? 0 : sleep_ms;
}

/*
 * After a failed round: the outcomes of what it sent are recorded if they
 * can be; if not, those deliveries are left alone until the worker restarts
 * rather than sent again in every round.
 */
void
crm_deliver_after_error(void)
{
	List	   *channels = unrecorded_round;
	ListCell   *lc;
	uint32		holdoff = InterruptHoldoffCount;

	busy_with(NULL, NULL);
	unrecorded_round = NIL;
	if (channels == NIL)
		return;
	PG_TRY();
	{
		crm_worker_begin("recording IM deliveries");
		(void) record(channels);
		crm_worker_end();
	}
	PG_CATCH();
	{
		InterruptHoldoffCount = holdoff;
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		crm_worker_between();
		foreach(lc, channels)
		{
			ListCell   *dc;

			foreach(dc, ((Channel *) lfirst(lc))->due)
			{
				Delivery   *d = lfirst(dc);

				if (d->state != D_UNTOUCHED)
					(void) hash_search(unrecorded, &d->id, HASH_ENTER, NULL);
			}
		}
	}
	PG_END_TRY();
}

void
crm_deliver_init(void)
{
	HASHCTL		ctl = {.keysize = sizeof(int64), .entrysize = sizeof(int64)};

	unrecorded = hash_create("crm IM deliveries not recorded", 16, &ctl, HASH_ELEM | HASH_BLOBS);
}
