/*-------------------------------------------------------------------------
 *
 * directory.c
 *	  Directory sync, run by the notification worker: a queued
 *	  crm.directory_sync row is read from its platform page by page with the
 *	  platform's app channel (tokens from im_token.c, pages parsed in
 *	  im_directory.c), then applied by crm.directory_apply in one
 *	  transaction.  A run that fails records the platform's or crm's error
 *	  and changes nothing.  A run is bounded: at most MAX_REQUESTS requests,
 *	  and DingTalk's walk down the tree visits each department once, so that
 *	  a platform that keeps answering "more" cannot hold the worker.  Each
 *	  round of the worker reads for at most a second (SLICE), after its
 *	  deliveries, so that a large directory never holds up notifications.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "worker.h"

/* Feishu pages hold at most 50 (2.5), DingTalk's user pages 100 (3.5) */
#define FEISHU_PAGE "50"
#define DINGTALK_PAGE 100
/* attempts per request when the platform is busy or rate-limits us */
#define ATTEMPTS 3
/* requests per run: a directory of 10,000 departments needs some 20,000 */
#define MAX_REQUESTS 50000
/* how long a round reads before the worker turns back to its deliveries */
#define SLICE (USECS_PER_SEC)

typedef enum Step
{
	STEP_MORE,					/* more pages to read */
	STEP_READ,					/* the whole directory is read */
	STEP_FAILED					/* run->error says why */
} Step;

/* a run under way: it lives across rounds, in its own memory context */
typedef struct Run
{
	int64		id;
	char	   *platform;
	ImApp		app;			/* its app channel */
	const char *token;			/* for this round's requests */
	bool		renewed;		/* the token was renewed once already */
	int			requests;
	char	   *error;			/* why the run failed */
	MemoryContext cxt;
	ImDirectory *dir;
	bool		departments_read;
	List	   *queue;			/* departments to list (DingTalk), then to read the users of */
	char	   *next;			/* the next page's token or cursor, or NULL */
	HTAB	   *visited;		/* DingTalk: departments listed */
} Run;

static Run *run = NULL;

/* A run that was running when the worker stopped starts over. */
static void
recover(void)
{
	if (SPI_execute("UPDATE crm.directory_sync SET status = 'queued', started_at = NULL WHERE status = 'running'",
					false, 0) != SPI_OK_UPDATE)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not requeue directory syncs")));
}

/* The answer to one request on the run's token (GET without a body), or NULL with run->error. */
static char *
fetch(Run *run, const char *path, const char *body)
{
	for (int attempt = 1;; attempt++)
	{
		ImRequest	r = {0};
		char	   *code;
		char	   *message;
		int			wait;
		ImOutcome	outcome;

		if (run->token == NULL)
		{
			run->error = psprintf("no access token: %s", run->error ? run->error : "");
			return NULL;
		}
		if (run->requests >= MAX_REQUESTS)
		{
			run->error = psprintf("stopped after %d requests, the most a run makes", run->requests);
			return NULL;
		}
		if (strcmp(run->platform, "feishu") == 0)
		{
			r.url = psprintf("%s%s", run->app.api_base, path);
			r.bearer = run->token;
		}
		else
			r.url = psprintf("%s%s%caccess_token=%s", run->app.api_base, path, strchr(path, '?') ? '&' : '?',
							 crm_im_escape(run->token));
		r.body = body;
		crm_im_perform(&r, 1, crm_im_request_timeout, crm_worker_stopping);
		run->requests++;
		if (!r.done)
		{
			run->error = pstrdup("the worker was stopped");
			return NULL;
		}
		outcome = crm_im_classify(run->platform, &r, &code, &message, &wait);
		if (outcome == IM_SENT)
			return r.answer;
		if (outcome == IM_REFRESH && !run->renewed)
		{
			run->renewed = true;
			run->token = crm_im_app_token(&run->app, true, crm_im_request_timeout, &run->error);
			continue;
		}
		if (outcome == IM_RETRY && attempt < ATTEMPTS && !crm_worker_stopping())
		{
			(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(Max(wait, attempt), 10) * 1000L, PG_WAIT_EXTENSION);
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		run->error = psprintf("%s %s: %s", path, code ? code : "", message ? message : "");
		return NULL;
	}
}

static char *
esc(const char *s)
{
	return crm_im_escape(s);
}

/* the ids (strings) appended to the run's queue, copied into the run's memory */
static void
enqueue(Run *r, List *ids)
{
	MemoryContext old = MemoryContextSwitchTo(r->cxt);
	ListCell   *lc;

	foreach(lc, ids)
		r->queue = lappend(r->queue, pstrdup(lfirst(lc)));
	MemoryContextSwitchTo(old);
}

static void
set_next(Run *r, const char *next)
{
	r->next = next ? MemoryContextStrdup(r->cxt, next) : NULL;
}

/*
 * One request of the run.  Departments first: WeCom's whole tree at once,
 * Feishu's page by page, DingTalk's one level per call down the tree (3.5),
 * each department once; then the users, department by department and page
 * by page (WeCom: every member at once, 1.4).  An empty answer stands for a
 * request not made: an id that is not a DingTalk number.
 */
static Step
step(Run *r)
{
	bool		wecom = strcmp(r->platform, "wecom") == 0;
	bool		feishu = strcmp(r->platform, "feishu") == 0;
	char	   *answer;
	char	   *next = NULL;
	List	   *listed = NIL;
	char	   *dept;

	if (!r->departments_read)
	{
		if (wecom)
			answer = fetch(r, "/cgi-bin/department/list", NULL);
		else if (feishu)
			answer = fetch(r, psprintf("/open-apis/contact/v3/departments/0/children?fetch_child=true"
									   "&page_size=" FEISHU_PAGE "%s%s",
									   r->next ? "&page_token=" : "", r->next ? esc(r->next) : ""), NULL);
		else
		{
			char	   *body = NULL;
			bool		seen = true;

			/* the next department not listed yet: a listing may name one twice, or an ancestor */
			while (r->queue != NIL && (body == NULL || seen))
			{
				dept = linitial(r->queue);
				r->queue = list_delete_first(r->queue);
				body = strlen(dept) < NAMEDATALEN ? crm_im_dingtalk_body(dept, NULL, 0) : NULL;
				if (body)
					(void) hash_search(r->visited, dept, HASH_ENTER, &seen);
			}
			answer = body && !seen ? fetch(r, "/topapi/v2/department/listsub", body) : "";
		}
		if (answer == NULL)
			return STEP_FAILED;
		if (answer[0] != '\0' && !crm_im_dir_departments(r->dir, answer, &next, &listed))
		{
			r->error = pstrdup("unreadable departments page");
			return STEP_FAILED;
		}
		if (feishu)
			set_next(r, next);
		else if (!wecom)
			enqueue(r, listed);
		if (wecom || (feishu ? r->next == NULL : r->queue == NIL))
		{
			r->departments_read = true;
			enqueue(r, wecom ? list_make1("1") : crm_im_dir_department_ids(r->dir));
		}
		return STEP_MORE;
	}

	if (r->queue == NIL)
		return STEP_READ;
	dept = linitial(r->queue);
	if (wecom)
		answer = fetch(r, "/cgi-bin/user/list?department_id=1&fetch_child=1", NULL);
	else if (feishu)
		answer = fetch(r, psprintf("/open-apis/contact/v3/users/find_by_department?department_id=%s"
								   "&page_size=" FEISHU_PAGE "%s%s", esc(dept),
								   r->next ? "&page_token=" : "", r->next ? esc(r->next) : ""), NULL);
	else
	{
		char	   *body = crm_im_dingtalk_body(dept, r->next, DINGTALK_PAGE);

		answer = body ? fetch(r, "/topapi/v2/user/list", body) : "";
	}
	if (answer == NULL)
		return STEP_FAILED;
	if (answer[0] != '\0' && !crm_im_dir_users(r->dir, answer, dept, &next))
	{
		r->error = psprintf("unreadable users page of department %s", dept);
		return STEP_FAILED;
	}
	set_next(r, next);
	if (r->next == NULL)
		r->queue = list_delete_first(r->queue);
	return r->queue == NIL ? STEP_READ : STEP_MORE;
}

typedef struct Applied
{
	int64		id;
	const char *doc;
} Applied;

static void
apply_document(void *arg)
{
	Applied    *a = arg;
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		args[2] = {Int64GetDatum(a->id), CStringGetTextDatum(a->doc)};

	if (SPI_execute_with_args("SELECT crm.directory_apply($1, $2::jsonb)", 2, types, args, NULL, false, 0)
		!= SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not apply the directory")));
}

/* Apply what was read; false with run->error if crm refused it. */
static bool
apply(Run *run, const char *doc)
{
	Applied		a = {run->id, doc};
	ErrorData  *e;

	if (crm_worker_subxact(apply_document, &a, &e))
		return true;
	run->error = e->hint ? psprintf("%s (%s)", e->message, e->hint) : e->message;
	return false;
}

/* Start the oldest queued directory sync, if any. */
static bool
start(void)
{
	static bool recovered = false;

	crm_worker_begin("looking for a queued directory sync");
	if (!recovered)
	{
		recover();
		recovered = true;
	}
	if (SPI_execute("UPDATE crm.directory_sync s SET status = 'running', started_at = now() "
					"  FROM crm.im_channel c "
					" WHERE s.id = (SELECT id FROM crm.directory_sync WHERE status = 'queued' ORDER BY id LIMIT 1) "
					"   AND c.id = s.channel_id AND c.platform = s.platform AND c.reads_directory AND c.enabled "
					"RETURNING s.id, s.platform, c.id, c.app_id, c.app_secret, c.api_base, c.name",
					false, 0) != SPI_OK_UPDATE_RETURNING)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not start a directory sync")));
	if (SPI_processed > 0)
	{
		HeapTuple	t = SPI_tuptable->vals[0];
		TupleDesc	d = SPI_tuptable->tupdesc;
		MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "crm directory sync", ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);
		Run		   *r = palloc0(sizeof(Run));

		r->cxt = cxt;
		r->id = pg_strtoint64(SPI_getvalue(t, d, 1));
		r->platform = SPI_getvalue(t, d, 2);
		r->app.channel_id = pg_strtoint64(SPI_getvalue(t, d, 3));
		r->app.app_id = SPI_getvalue(t, d, 4);
		r->app.app_secret = SPI_getvalue(t, d, 5);
		r->app.api_base = SPI_getvalue(t, d, 6);
		r->app.name = SPI_getvalue(t, d, 7);
		r->app.platform = r->platform;
		r->dir = crm_im_dir_create(r->platform);
		/* the company itself, which child listings do not name */
		if (strcmp(r->platform, "feishu") == 0)
			crm_im_dir_root(r->dir, "0");
		else if (strcmp(r->platform, "dingtalk") == 0)
		{
			HASHCTL		ctl = {.keysize = NAMEDATALEN, .entrysize = NAMEDATALEN, .hcxt = cxt};

			crm_im_dir_root(r->dir, "1");
			r->queue = list_make1(pstrdup("1"));
			r->visited = hash_create("crm DingTalk departments listed", 256, &ctl,
									 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		}
		MemoryContextSwitchTo(old);
		run = r;
	}
	/* a run whose app was deleted, disabled or no longer reads the directory does not read it */
	SPI_execute("UPDATE crm.directory_sync s SET status = 'failed', finished_at = now(), "
				"       error = 'its app channel no longer reads the directory' "
				" WHERE status = 'queued' AND NOT EXISTS (SELECT FROM crm.im_channel c WHERE c.id = s.channel_id "
				"   AND c.platform = s.platform AND c.reads_directory AND c.enabled)",
				false, 0);
	crm_worker_end();
	return run != NULL;
}

/* Apply what the run read, if it read it all (ok), and record how it ended. */
static void
record_run(Run *r, bool ok)
{
	char	   *doc = NULL;
	int			departments = 0;
	int			users = 0;
	Oid			types[4] = {INT8OID, TEXTOID, INT4OID, TEXTOID};
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	if (ok)
		doc = crm_im_dir_json(r->dir, &departments, &users);
	crm_worker_begin("applying a directory sync");
	if (ok)
		ok = apply(r, doc);
	args[0] = Int64GetDatum(r->id);
	args[1] = CStringGetTextDatum(ok ? "done" : "failed");
	args[2] = Int32GetDatum(r->requests);
	nulls[3] = ok ? 'n' : ' ';
	args[3] = ok ? (Datum) 0 : CStringGetTextDatum(r->error ? r->error : "unknown error");
	if (SPI_execute_with_args("UPDATE crm.directory_sync SET status = $2, requests = $3, error = $4, "
							  "       finished_at = coalesce(finished_at, clock_timestamp()) WHERE id = $1",
							  4, types, args, nulls, false, 0) != SPI_OK_UPDATE)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not record a directory sync")));
	crm_worker_end();
	ereport(LOG,
			(errmsg("crm notification worker: %s directory sync %lld %s after %d requests%s%s",
					r->platform, (long long) r->id, ok ? "done" : "failed", r->requests,
					ok ? "" : ": ", ok ? "" : r->error)));
}

static void
release(Run *r)
{
	crm_im_dir_free(r->dir);
	MemoryContextDelete(r->cxt);
}

/* The run ends: recorded, and its memory and documents released whatever happens. */
static void
finish(bool read_all)
{
	Run		   *r = run;

	run = NULL;
	PG_TRY();
	{
		record_run(r, read_all);
	}
	PG_CATCH();
	{
		release(r);
		PG_RE_THROW();
	}
	PG_END_TRY();
	release(r);
}

/*
 * Read the directory sync under way, or the oldest queued one, for a slice
 * of time; true if one is under way or ended, so that the worker comes back
 * at once.
 */
bool
crm_directory_round(void)
{
	TimestampTz until = GetCurrentTimestamp() + SLICE;
	MemoryContext cxt = CurrentMemoryContext;
	volatile Step result = STEP_MORE;

	if (run == NULL && !start())
		return false;
	pgstat_report_activity(STATE_RUNNING, psprintf("reading the %s directory", run->platform));
	/* a page crm fails to read fails the run, which records why */
	PG_TRY();
	{
		do
		{
			run->token = crm_im_app_token(&run->app, false, crm_im_request_timeout, &run->error);
			result = step(run);
		} while (result == STEP_MORE && GetCurrentTimestamp() < until && !crm_worker_stopping());
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		run->error = e->message;
		result = STEP_FAILED;
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	if (result != STEP_MORE)
		finish(result == STEP_READ);
	return true;
}
