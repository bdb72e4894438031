/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The notification worker: a background worker, started when crm is in
 *	  shared_preload_libraries, that sends the IM messages of the outbox
 *	  (crm.im_delivery) in crm.database_name.
 *
 * Each round it turns pending notifications into deliveries (crm.im_expand),
 * claims the due deliveries of every enabled channel, commits, sends them all
 * at once over HTTP (im_send.c), and records each outcome in a second
 * transaction.  Nothing is marked before it is sent: a crash between the two
 * transactions sends those deliveries again, with the same idempotency key.
 *
 * Every channel is held to its platform's sliding window (rate_per_minute,
 * and Feishu robots' 5 a second), and app messages to each person to the
 * platform's per-person limit, by a log of recent requests, stamped when the
 * answer arrived, which is never earlier than when the platform counted them.
 * When a robot has more due than its window allows, the excess goes out as
 * one digest; so do an app's messages to one person beyond a few a round.
 * App tokens are kept until they expire and refreshed once when the platform
 * says they are no longer valid.
 *
 * Transactions that enqueue wake the worker at commit (crm.im_wake); it
 * also polls every crm.im_poll_interval.  After the deliveries, a round runs
 * a queued directory sync (directory.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/pmsignal.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "crm.h"

PGDLLEXPORT void crm_worker_main(Datum arg);

/* settings (all reloadable) */
static int	im_poll_interval = 10000;
static int	im_batch_size = 500;
static int	im_request_timeout = 10000;
static int	im_retry_delay = 5000;
static int	im_max_attempts = 8;

/* notifications turned into deliveries per round */
#define EXPAND_BATCH 2000
/* a digest stops growing at this many body bytes: under every platform's
 * limit, but DingTalk work notices, whose msg holds 2048 */
#define DIGEST_BUDGET 3000
#define DINGTALK_APP_DIGEST_BUDGET 1500
/* more than this many messages for one person in a round go as one digest */
#define APP_DIGEST_AFTER 3
/* tokens are renewed this long before they expire */
#define TOKEN_MARGIN (60 * USECS_PER_SEC)
#define MAX_BACKOFF (3600 * INT64CONST(1000))
/* after a failed round the worker waits 1 s, then twice as long each time, at most a minute */
#define ERROR_BACKOFF_MIN 1000
#define ERROR_BACKOFF_MAX (60 * 1000)

int
crm_im_request_timeout(void)
{
	return im_request_timeout;
}

/* ---- waking the worker at commit ---- */

typedef struct WorkerShared
{
	slock_t		mutex;
	Latch	   *latch;			/* the worker's, while it runs */
} WorkerShared;

static WorkerShared *shared = NULL;
static bool wake_at_commit = false;

/* crm.c's shared memory hooks: the worker's latch */
void
crm_worker_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(WorkerShared)));
}

void
crm_worker_shmem_startup(void)
{
	bool		found;

	shared = ShmemInitStruct("crm notification worker", sizeof(WorkerShared), &found);
	if (!found)
	{
		SpinLockInit(&shared->mutex);
		shared->latch = NULL;
	}
}

static void
wake_worker_at_commit(XactEvent event, void *arg)
{
	Latch	   *latch = NULL;

	if (!wake_at_commit)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
	{
		if (shared)
		{
			SpinLockAcquire(&shared->mutex);
			latch = shared->latch;
			SpinLockRelease(&shared->mutex);
		}
		if (latch)
			SetLatch(latch);
	}
	/* committed, aborted or prepared (COMMIT PREPARED is left to polling) */
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		wake_at_commit = false;
}

/* Wake the worker when this transaction commits. */
void
crm_worker_wake_at_commit(void)
{
	static bool registered = false;

	if (!registered)
	{
		RegisterXactCallback(wake_worker_at_commit, NULL);
		registered = true;
	}
	wake_at_commit = true;
}

PG_FUNCTION_INFO_V1(crm_im_wake);

/* crm.im_wake() */
Datum
crm_im_wake(PG_FUNCTION_ARGS)
{
	crm_worker_wake_at_commit();
	PG_RETURN_VOID();
}

static void
clear_latch(int code, Datum arg)
{
	SpinLockAcquire(&shared->mutex);
	shared->latch = NULL;
	SpinLockRelease(&shared->mutex);
}

/* ---- per-channel state kept across rounds ---- */

/* the times of a channel's last requests within span, oldest first */
typedef struct Window
{
	int			limit;
	TimestampTz span;
	TimestampTz *times;			/* ring of limit entries */
	int			head;
	int			count;
} Window;

typedef struct ChannelState
{
	int64		id;				/* hash key */
	Window		minute;
	Window		second;			/* limit 0: none */
	TimestampTz blocked_until;	/* a DingTalk robot's 10-minute penalty */
	char	   *credentials;	/* what the token was issued for */
	char	   *token;
	TimestampTz token_expires;
} ChannelState;

static HTAB *channel_states = NULL;

/*
 * An app's limit per recipient (5.4): WeCom silently drops a member's 31st
 * message in a minute, Feishu refuses a user's 6th in a second.  (WeCom's
 * 1000 an hour is not tracked: 30 a minute for 33 minutes on end.)
 */
#define RECIPIENT_KEY 128
typedef struct RecipientState
{
	char		key[RECIPIENT_KEY];	/* channel id ":" IM id */
	Window		window;
	uint64		round;			/* the round "planned" counts for */
	int			planned;
} RecipientState;

static HTAB *recipient_states = NULL;
/*
 * Deliveries sent whose outcome could not be recorded: this process never
 * claims them again, so that a row that cannot be updated is not sent in
 * every round.
 */
static HTAB *unrecorded = NULL;
static uint64 current_round = 0;
static ResourceOwner worker_owner = NULL;
static MemoryContext round_cxt = NULL;	/* what a round allocates between transactions */

static void
window_resize(Window *w, int limit, TimestampTz span)
{
	TimestampTz *times;
	int			keep = Min(w->count, limit);

	w->span = span;
	if (w->limit == limit)
		return;
	times = limit > 0 ? MemoryContextAllocZero(TopMemoryContext, sizeof(TimestampTz) * limit) : NULL;
	for (int i = 0; i < keep; i++)
		times[i] = w->times[(w->head + w->count - keep + i) % w->limit];
	if (w->times)
		pfree(w->times);
	w->times = times;
	w->limit = limit;
	w->head = 0;
	w->count = keep;
}

/* room left in the window at now; INT_MAX without a limit */
static int
window_room(Window *w, TimestampTz now)
{
	if (w->limit == 0)
		return INT_MAX;
	while (w->count > 0 && w->times[w->head] <= now - w->span)
	{
		w->head = (w->head + 1) % w->limit;
		w->count--;
	}
	return w->limit - w->count;
}

static void
window_add(Window *w, TimestampTz t)
{
	if (w->limit == 0)
		return;
	if (w->count == w->limit)
	{
		w->head = (w->head + 1) % w->limit;
		w->count--;
	}
	w->times[(w->head + w->count) % w->limit] = t;
	w->count++;
}

/* when the window next has room; 0 if it has now */
static TimestampTz
window_opens(Window *w)
{
	return w->limit > 0 && w->count >= w->limit ? w->times[w->head] + w->span : 0;
}

/* ---- one round ---- */

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
	ChannelState *st;
	List	   *due;			/* Delivery * */
	bool		refreshed;		/* its token was renewed this round */
	char	   *token_error;	/* why the last token request failed */
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

/*
 * Polled while requests run: a dead postmaster ends us at once, as WaitLatch
 * would; SIGTERM stops the requests, and the round records what was answered
 * before the worker exits.
 */
bool
crm_worker_stopping(void)
{
	if (!PostmasterIsAlive())
		proc_exit(1);
	return ProcDiePending;
}

/*
 * Run fn(arg) outside any transaction, where a failure holds no locks or
 * buffers; false with the error, in the caller's memory context, if it
 * failed.
 */
static bool
attempt(void (*fn) (void *), void *arg, ErrorData **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	uint32		holdoff = InterruptHoldoffCount;
	volatile bool ok = true;

	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		/* an error clears the holdoff of interrupts: the round's must stay */
		InterruptHoldoffCount = holdoff;
		MemoryContextSwitchTo(cxt);
		*error = CopyErrorData();
		FlushErrorState();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * Run fn(arg) in a subtransaction of the worker's transaction; false with the
 * error, in the caller's memory context, if it failed and was rolled back.
 */
bool
crm_worker_subxact(void (*fn) (void *), void *arg, ErrorData **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	uint32		holdoff = InterruptHoldoffCount;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		InterruptHoldoffCount = holdoff;
		MemoryContextSwitchTo(cxt);
		*error = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return ok;
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

	if (outcome == IM_PERMANENT || d->attempts + 1 >= im_max_attempts)
	{
		settle(d, D_DEAD, now, code, error);
		return;
	}
	delay_ms = (int64) im_retry_delay << Min(d->attempts, 20);
	delay_ms = Min(delay_ms, MAX_BACKOFF);
	delay_ms = (int64) (delay_ms * (0.5 + pg_prng_double(&pg_global_prng_state)));
	settle(d, D_RETRY, Max(now + delay_ms * 1000, not_before), code, error);
}

typedef enum Claimed
{
	CLAIMED,
	NOT_INSTALLED,				/* crm is not in crm.database_name (yet) */
	PAUSED						/* crm.settings.im_paused */
} Claimed;

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

	if (!OidIsValid(get_extension_oid("crm", true)))
		return NOT_INSTALLED;
	ret = SPI_execute("SELECT im_paused FROM crm.settings", false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read crm.settings: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) && !isnull)
		return PAUSED;

	args[0] = Int32GetDatum(EXPAND_BATCH);
	ret = SPI_execute_with_args("SELECT crm.im_expand($1)", 1, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not expand pending notifications: %s", SPI_result_code_string(ret));
	*expanded = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	ret = SPI_execute("SELECT id, name, platform, kind, webhook_url, secret, app_id, app_secret, agent_id, "
					  "       api_base, rate_per_minute "
					  "  FROM crm.im_channel WHERE enabled ORDER BY id", false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read IM channels: %s", SPI_result_code_string(ret));
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
	args[0] = Int32GetDatum(im_batch_size);
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
		elog(ERROR, "could not read due IM deliveries: %s", SPI_result_code_string(ret));
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

/* The channel's state, its windows sized to the row; its token dropped if the credentials changed. */
static ChannelState *
channel_state(Channel *ch)
{
	bool		found;
	ChannelState *st = hash_search(channel_states, &ch->id, HASH_ENTER, &found);
	char	   *credentials = psprintf("%s\n%s\n%s", ch->app_id ? ch->app_id : "",
									   ch->app_secret ? ch->app_secret : "", ch->api_base);

	if (!found)
	{
		memset((char *) st + sizeof(int64), 0, sizeof(ChannelState) - sizeof(int64));
	}
	/* the platforms count in their own clocks: a second of margin, a tenth for Feishu's 5/s */
	window_resize(&st->minute, ch->rate, 61 * USECS_PER_SEC);
	window_resize(&st->second, is_robot(ch) && strcmp(ch->platform, "feishu") == 0 ? 5 : 0,
				  USECS_PER_SEC + USECS_PER_SEC / 10);
	if (st->credentials == NULL || strcmp(st->credentials, credentials) != 0)
	{
		if (st->credentials)
			pfree(st->credentials);
		if (st->token)
			pfree(st->token);
		st->credentials = MemoryContextStrdup(TopMemoryContext, credentials);
		st->token = NULL;
		st->token_expires = 0;
	}
	return st;
}

/* Requests sent in the last minute (before a restart) still count. */
static void
load_history(void)
{
	int			ret = SPI_execute("SELECT channel_id, sent_at FROM crm.im_delivery "
								  " WHERE status = 'sent' AND sent_in = id "
								  "   AND sent_at > now() - interval '61 seconds' ORDER BY sent_at", false, 0);

	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read recent IM deliveries: %s", SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		TimestampTz at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		ChannelState *st = hash_search(channel_states, &id, HASH_FIND, NULL);

		if (st)
		{
			window_add(&st->minute, at);
			window_add(&st->second, at);
		}
	}
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

	if (!attempt(payload_of, &a, &e))
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

static RecipientState *
recipient_state(Channel *ch, const char *im_id)
{
	char		key[RECIPIENT_KEY] = {0};
	bool		found;
	RecipientState *rs;
	int			limit = strcmp(ch->platform, "wecom") == 0 ? 30 : strcmp(ch->platform, "feishu") == 0 ? 5 : 0;

	snprintf(key, sizeof(key), INT64_FORMAT ":%s", ch->id, im_id);
	rs = hash_search(recipient_states, key, HASH_ENTER, &found);
	if (!found)
		memset(&rs->window, 0, sizeof(RecipientState) - offsetof(RecipientState, window));
	window_resize(&rs->window, limit, limit == 30 ? 61 * USECS_PER_SEC : USECS_PER_SEC + USECS_PER_SEC / 10);
	if (rs->round != current_round)
	{
		rs->round = current_round;
		rs->planned = 0;
	}
	return rs;
}

/* Whether d's recipient may get one more message now; if not, *wake when they may. */
static bool
recipient_room(Channel *ch, Delivery *d, TimestampTz now, TimestampTz *wake)
{
	RecipientState *rs = recipient_state(ch, d->im_id);

	if (window_room(&rs->window, now) > rs->planned)
	{
		rs->planned++;
		return true;
	}
	if (*wake == 0 || window_opens(&rs->window) < *wake)
		*wake = Max(window_opens(&rs->window), now + 1000);
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
	ChannelState *st = ch->st;
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
	room = Min(window_room(&st->minute, now), window_room(&st->second, now));
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
		TimestampTz opens = Max(window_opens(&st->minute), window_opens(&st->second));

		if (opens > 0 && (*wake == 0 || opens < *wake))
			*wake = opens;
	}
	return sends;
}

/* ---- HTTP ---- */

static void
token_request(Channel *ch, ImRequest *r)
{
	memset(r, 0, sizeof(ImRequest));
	if (strcmp(ch->platform, "wecom") == 0)
		r->url = psprintf("%s/cgi-bin/gettoken?corpid=%s&corpsecret=%s", ch->api_base,
						  crm_im_escape(ch->app_id), crm_im_escape(ch->app_secret));
	else if (strcmp(ch->platform, "feishu") == 0)
	{
		r->url = psprintf("%s/open-apis/auth/v3/tenant_access_token/internal", ch->api_base);
		r->body = crm_im_feishu_token_body(ch->app_id, ch->app_secret);
	}
	else
		r->url = psprintf("%s/gettoken?appkey=%s&appsecret=%s", ch->api_base,
						  crm_im_escape(ch->app_id), crm_im_escape(ch->app_secret));
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

/*
 * Fetch tokens for the channels, all at once.  A channel that gets none has
 * its planned deliveries failed with the platform's answer.
 */
static void
fetch_tokens(List *channels, List *sends)
{
	int			n = list_length(channels);
	ImRequest  *reqs;
	ListCell   *lc;
	TimestampTz now;

	if (n == 0)
		return;
	reqs = palloc0(sizeof(ImRequest) * n);
	foreach(lc, channels)
		token_request(lfirst(lc), &reqs[foreach_current_index(lc)]);
	pgstat_report_activity(STATE_RUNNING, psprintf("fetching %d access tokens", n));
	crm_im_perform(reqs, n, im_request_timeout, crm_worker_stopping);
	now = GetCurrentTimestamp();
	foreach(lc, channels)
	{
		Channel    *ch = lfirst(lc);
		ImRequest  *r = &reqs[foreach_current_index(lc)];
		char	   *token;
		int			ttl;
		char	   *code;
		char	   *message;
		int			wait;
		ImOutcome	outcome;

		if (!r->done)
		{
			/* shutting down: these wait for the next start */
			drop_sends(ch, sends, IM_SENT, now, NULL, NULL);
			continue;
		}
		if (r->answer && r->http_status == 200 && crm_im_token_parse(ch->platform, r->answer, &token, &ttl))
		{
			if (ch->st->token)
				pfree(ch->st->token);
			ch->st->token = MemoryContextStrdup(TopMemoryContext, token);
			ch->st->token_expires = now + ttl * USECS_PER_SEC;
			continue;
		}
		outcome = crm_im_classify(ch->platform, r, &code, &message, &wait);
		if (outcome == IM_SENT || outcome == IM_REFRESH)
			outcome = IM_RETRY; /* code 0 without a token, or a token error asking for a token */
		ereport(LOG,
				(errmsg("crm notification worker: channel \"%s\" got no access token: %s %s",
						crm_quote(ch->name, strlen(ch->name)), code ? code : "", message ? message : "")));
		ch->token_error = psprintf("%s: %s", code ? code : "no token", message ? message : "");
		drop_sends(ch, sends, outcome, now, code, psprintf("access token: %s", message ? message : ""));
	}
}

/*
 * An app channel's access token for the directory sync, renewed if asked or
 * about to expire; NULL with *error when the platform gives none.
 */
char *
crm_worker_app_token(int64 channel_id, const char *platform, const char *app_id, const char *app_secret,
					 const char *api_base, int rate, bool renew, char **error)
{
	Channel		ch = {0};

	ch.id = channel_id;
	ch.name = psprintf("%s app", platform);
	ch.platform = pstrdup(platform);
	ch.kind = "app";
	ch.app_id = pstrdup(app_id);
	ch.app_secret = pstrdup(app_secret);
	ch.api_base = pstrdup(api_base);
	ch.rate = rate;
	ch.st = channel_state(&ch);
	if (renew || ch.st->token == NULL || ch.st->token_expires - TOKEN_MARGIN <= GetCurrentTimestamp())
	{
		if (ch.st->token)
			pfree(ch.st->token);
		ch.st->token = NULL;
		fetch_tokens(list_make1(&ch), NIL);
	}
	*error = ch.token_error ? ch.token_error : pstrdup("interrupted");
	return ch.st->token;
}

/* Fill in s->req: URL, signature, token. */
static void
prepare(Send *s)
{
	Channel    *ch = s->ch;
	ImRequest  *r = &s->req;

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
						  crm_im_escape(ch->st->token));
	else if (strcmp(ch->platform, "feishu") == 0)
	{
		r->url = psprintf("%s/open-apis/im/v1/messages?receive_id_type=open_id", ch->api_base);
		r->bearer = ch->st->token;
	}
	else
		r->url = psprintf("%s/topapi/message/corpconversation/asyncsend_v2?access_token=%s",
						  ch->api_base, crm_im_escape(ch->st->token));
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
	ChannelState *st = s->ch->st;
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
	crm_im_perform(reqs, n, im_request_timeout, crm_worker_stopping);
	end = GetCurrentTimestamp();

	n = 0;
	foreach(lc, sends)
	{
		Send	   *s = lfirst(lc);
		ChannelState *st = s->ch->st;
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
		window_add(&st->minute, end);
		window_add(&st->second, end);
		if (!is_robot(s->ch))
			window_add(&recipient_state(s->ch, ((Delivery *) linitial(s->items))->im_id)->window, end);
		if (!a.r->done)
			continue;			/* shutting down: sent again, same key, after the restart */
		busy_with(s->ch, linitial(s->items));
		if (attempt(settle_answer, &a, &e))
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
		elog(ERROR, "could not record IM deliveries: %s", SPI_result_code_string(ret));
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
		elog(ERROR, "could not read the next due IM delivery: %s", SPI_result_code_string(ret));
	v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? -1 : (long) Max(DatumGetInt64(v), 0);
}

void
crm_worker_begin(const char *what)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

void
crm_worker_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	/* signing between transactions needs an owner for its HMAC contexts */
	CurrentResourceOwner = worker_owner;
	MemoryContextSwitchTo(round_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* the channels of a round whose outcomes are not recorded yet */
static List *unrecorded_round = NIL;

/* One round; returns how long to sleep, in ms (0: go on at once). */
static long
round_trip(MemoryContext cxt)
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
	long		sleep_ms = im_poll_interval;
	long		due;
	uint32		holdoff = InterruptHoldoffCount;

	current_round++;
	crm_worker_begin("claiming due IM deliveries");
	claimed = claim(cxt, &channels, &expanded, &claimed_count);
	if (claimed == CLAIMED)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		foreach(lc, channels)
			((Channel *) lfirst(lc))->st = channel_state(lfirst(lc));
		MemoryContextSwitchTo(old);
		if (!history_loaded)
		{
			load_history();
			crm_directory_recover();
			history_loaded = true;
		}
	}
	crm_worker_end();
	if (claimed != CLAIMED)
	{
		pgstat_report_activity(STATE_IDLE, claimed == PAUSED ? "paused: crm.settings.im_paused" : "crm is not installed");
		return im_poll_interval;
	}

	/*
	 * From the first request until the outcomes are committed, SIGTERM only
	 * stops the requests: what was answered is recorded before the worker
	 * exits, and not sent again after its restart.
	 */
	HOLD_INTERRUPTS();			/* an error clears it: see recover_from_error */
	unrecorded_round = channels;
	now = GetCurrentTimestamp();
	foreach(lc, channels)
	{
		Channel    *ch = lfirst(lc);
		List	   *planned;

		busy_with(ch, NULL);
		planned = plan(ch, now, &wake);
		if (planned != NIL && !is_robot(ch) &&
			(ch->st->token == NULL || ch->st->token_expires - TOKEN_MARGIN <= now))
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
	InterruptHoldoffCount = holdoff;
	elog(DEBUG1, "crm notification worker round " UINT64_FORMAT ": %d notifications expanded, %d deliveries claimed, %d recorded",
		 current_round, expanded, claimed_count, recorded);

	if (crm_directory_round())
		return 0;
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
static void
record_failed_round(void)
{
	List	   *channels = unrecorded_round;
	ListCell   *lc;
	uint32		holdoff = InterruptHoldoffCount;

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
		AbortCurrentTransaction();
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

/*
 * A failed round: reported with what it was busy with, its transaction rolled
 * back, what it sent recorded.  The windows and tokens kept across rounds
 * stay as they were.
 */
static void
recover_from_error(MemoryContext cxt)
{
	/* no SIGTERM until the outcomes of what was sent are recorded */
	HOLD_INTERRUPTS();
	MemoryContextSwitchTo(cxt);
	EmitErrorReport();
	FlushErrorState();
	AbortCurrentTransaction();
	busy_with(NULL, NULL);
	CurrentResourceOwner = worker_owner;
	MemoryContextSwitchTo(cxt);
	record_failed_round();
	CurrentResourceOwner = worker_owner;
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	RESUME_INTERRUPTS();
}

/* Wait until ms have passed; a wake-up at commit ends the wait unless it is a back-off. */
static void
wait_for(long ms, bool backoff)
{
	TimestampTz until = GetCurrentTimestamp() + ms * 1000;

	for (;;)
	{
		long		left = (until - GetCurrentTimestamp()) / 1000;
		int			rc;

		if (left <= 0)
			break;
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if ((rc & WL_LATCH_SET) && !backoff)
			break;
	}
}

void
crm_worker_main(Datum arg)
{
	MemoryContext cxt;
	HASHCTL		ctl;
	ErrorContextCallback context;
	volatile long backoff = 0;

	/* SIGTERM as PostgreSQL's own workers take it: the next CHECK_FOR_INTERRUPTS exits */
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(crm_database_name, NULL, 0);
	pgstat_report_appname("crm notification worker");
	/* the worker runs as superuser: nobody's public.lower() may run in it */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	SpinLockAcquire(&shared->mutex);
	shared->latch = MyLatch;
	SpinLockRelease(&shared->mutex);
	before_shmem_exit(clear_latch, 0);

	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(ChannelState);
	channel_states = hash_create("crm IM channel states", 16, &ctl, HASH_ELEM | HASH_BLOBS);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(int64);
	unrecorded = hash_create("crm IM deliveries not recorded", 16, &ctl, HASH_ELEM | HASH_BLOBS);
	ctl.keysize = RECIPIENT_KEY;
	ctl.entrysize = sizeof(RecipientState);
	recipient_states = hash_create("crm IM recipient states", 256, &ctl, HASH_ELEM | HASH_STRINGS);
	cxt = round_cxt = AllocSetContextCreate(TopMemoryContext, "crm notification round", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(round_cxt);
	worker_owner = ResourceOwnerCreate(NULL, "crm notification worker");
	ereport(LOG, (errmsg("crm notification worker started in database \"%s\"", crm_database_name)));

	/* an error names the delivery or channel the round was busy with */
	context.callback = round_context;
	context.arg = NULL;
	context.previous = NULL;
	error_context_stack = &context;

	for (;;)
	{
		volatile long sleep_ms = im_poll_interval;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (RecoveryInProgress())
		{
			/* a standby sends nothing: its primary's worker does */
			pgstat_report_activity(STATE_IDLE, "standby: waiting for promotion");
		}
		else
		{
			/*
			 * A round that fails (a row it cannot read or write, an answer it
			 * cannot parse, memory) is logged and retried after a pause that
			 * grows while it keeps failing; the worker itself goes on, so
			 * nothing it claimed is sent again by a restart.
			 */
			PG_TRY();
			{
				sleep_ms = round_trip(cxt);
				backoff = 0;
			}
			PG_CATCH();
			{
				recover_from_error(cxt);
				backoff = backoff == 0 ? ERROR_BACKOFF_MIN : Min(backoff * 2, ERROR_BACKOFF_MAX);
				sleep_ms = backoff;
			}
			PG_END_TRY();
			MemoryContextReset(cxt);
		}
		wait_for(sleep_ms, backoff > 0);
	}
}

void
crm_worker_init(void)
{
	BackgroundWorker worker;

	DefineCustomIntVariable("crm.im_poll_interval",
							"How often the notification worker looks for due deliveries without being woken.",
							NULL, &im_poll_interval, 10000, 100, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("crm.im_batch_size",
							"Due deliveries the notification worker takes per channel and round.",
							NULL, &im_batch_size, 500, 1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("crm.im_request_timeout",
							"How long the notification worker waits for an IM platform's answer.",
							NULL, &im_request_timeout, 10000, 100, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("crm.im_retry_delay",
							"Delay before a failed IM delivery's first retry; each further retry waits twice as long.",
							NULL, &im_retry_delay, 5000, 10, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("crm.im_max_attempts",
							"Attempts after which an IM delivery that keeps failing is dead.",
							NULL, &im_max_attempts, 8, 1, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	/* started on a standby too, where it idles until promotion */
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 10;
	strlcpy(worker.bgw_library_name, "crm", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "crm_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "crm notification worker", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "crm notification worker", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}
