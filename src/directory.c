/*-------------------------------------------------------------------------
 *
 * directory.c
 *	  Directory sync, run by the notification worker: a queued
 *	  crm.directory_sync row is read from its platform page by page with the
 *	  platform's app channel (tokens from worker.c, pages parsed in
 *	  im_directory.c), then applied by crm.directory_apply in one
 *	  transaction.  A run that fails records the platform's or crm's error
 *	  and changes nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "crm.h"

/* Feishu pages hold at most 50 (2.5), DingTalk's user pages 100 (3.5) */
#define FEISHU_PAGE "50"
#define DINGTALK_PAGE 100
/* attempts per request when the platform is busy or rate-limits us */
#define ATTEMPTS 3

typedef struct Run
{
	int64		id;
	char	   *platform;
	int64		channel_id;
	char	   *app_id;
	char	   *app_secret;
	char	   *api_base;
	int			rate;
	char	   *token;
	bool		renewed;		/* the token was renewed once already */
	int			requests;
	char	   *error;			/* why the run failed */
} Run;

/* A run that was running when the worker stopped starts over. */
void
crm_directory_recover(void)
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
		if (strcmp(run->platform, "feishu") == 0)
		{
			r.url = psprintf("%s%s", run->api_base, path);
			r.bearer = run->token;
		}
		else
			r.url = psprintf("%s%s%caccess_token=%s", run->api_base, path, strchr(path, '?') ? '&' : '?',
							 crm_im_escape(run->token));
		r.body = body;
		crm_im_perform(&r, 1, crm_im_request_timeout(), crm_worker_stopping);
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
			run->token = crm_worker_app_token(run->channel_id, run->platform, run->app_id, run->app_secret,
											  run->api_base, run->rate, true, &run->error);
			continue;
		}
		if (outcome == IM_RETRY && attempt < ATTEMPTS && !crm_worker_stopping())
		{
			pg_usleep(Min(Max(wait, attempt), 10) * 1000000L);
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

/* every page of users of one department */
static bool
read_users(Run *run, ImDirectory *dir, const char *dept)
{
	char	   *next = NULL;

	do
	{
		char	   *answer;

		if (strcmp(run->platform, "feishu") == 0)
			answer = fetch(run, psprintf("/open-apis/contact/v3/users/find_by_department?department_id=%s"
										 "&page_size=" FEISHU_PAGE "%s%s", esc(dept),
										 next ? "&page_token=" : "", next ? esc(next) : ""), NULL);
		else
			answer = fetch(run, "/topapi/v2/user/list",
						   psprintf("{\"dept_id\":%s,\"cursor\":%s,\"size\":%d}", dept, next ? next : "0",
									DINGTALK_PAGE));
		if (answer == NULL)
			return false;
		if (!crm_im_dir_users(dir, answer, dept, &next))
		{
			run->error = psprintf("unreadable users page of department %s", dept);
			return false;
		}
	} while (next);
	return true;
}

/* the platform's directory into dir: departments, then their users */
static bool
read_directory(Run *run, ImDirectory *dir)
{
	char	   *next = NULL;
	List	   *listed;
	char	   *answer;
	ListCell   *lc;

	if (strcmp(run->platform, "wecom") == 0)
	{
		/* the whole tree, then every member at once (1.4) */
		return (answer = fetch(run, "/cgi-bin/department/list", NULL)) != NULL &&
			crm_im_dir_departments(dir, answer, &next, &listed) &&
			(answer = fetch(run, "/cgi-bin/user/list?department_id=1&fetch_child=1", NULL)) != NULL &&
			crm_im_dir_users(dir, answer, "1", &next);
	}
	if (strcmp(run->platform, "feishu") == 0)
	{
		crm_im_dir_root(dir, "0");
		do
		{
			answer = fetch(run, psprintf("/open-apis/contact/v3/departments/0/children?fetch_child=true"
										 "&page_size=" FEISHU_PAGE "%s%s",
										 next ? "&page_token=" : "", next ? esc(next) : ""), NULL);
			if (answer == NULL || !crm_im_dir_departments(dir, answer, &next, &listed))
				return false;
		} while (next);
	}
	else
	{
		/* one level per call: walk down the tree (3.5) */
		List	   *queue = list_make1("1");

		crm_im_dir_root(dir, "1");
		while (queue != NIL)
		{
			char	   *dept = linitial(queue);

			queue = list_delete_first(queue);
			if (strspn(dept, "0123456789") != strlen(dept))
				continue;		/* DingTalk department ids are numbers */
			answer = fetch(run, "/topapi/v2/department/listsub", psprintf("{\"dept_id\":%s}", dept));
			if (answer == NULL || !crm_im_dir_departments(dir, answer, &next, &listed))
				return false;
			queue = list_concat(queue, listed);
		}
	}
	foreach(lc, crm_im_dir_department_ids(dir))
		if (!read_users(run, dir, lfirst(lc)))
			return false;
	return true;
}

/* Apply what was read; false with run->error if crm refused it. */
static bool
apply(Run *run, const char *doc)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		args[2] = {Int64GetDatum(run->id), CStringGetTextDatum(doc)};
	bool		ok = true;

	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		if (SPI_execute_with_args("SELECT crm.directory_apply($1, $2::jsonb)", 2, types, args, NULL, false, 0)
			!= SPI_OK_SELECT)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg_internal("could not apply the directory")));
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		run->error = e->hint ? psprintf("%s (%s)", e->message, e->hint) : e->message;
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return ok;
}

/* Run the oldest queued directory sync, if any; true if one ran. */
bool
crm_directory_round(void)
{
	Run			run = {0};
	ImDirectory *dir;
	bool		ok;
	char	   *doc = NULL;
	int			departments = 0;
	int			users = 0;
	Oid			types[4] = {INT8OID, TEXTOID, INT4OID, TEXTOID};
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	MemoryContext cxt = CurrentMemoryContext;

	crm_worker_begin("looking for a queued directory sync");
	if (SPI_execute("UPDATE crm.directory_sync s SET status = 'running', started_at = now() "
					"  FROM crm.im_channel c "
					" WHERE s.id = (SELECT id FROM crm.directory_sync WHERE status = 'queued' ORDER BY id LIMIT 1) "
					"   AND c.id = s.channel_id "
					"RETURNING s.id, s.platform, c.id, c.app_id, c.app_secret, c.api_base, c.rate_per_minute",
					false, 0) != SPI_OK_UPDATE_RETURNING)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not start a directory sync")));
	if (SPI_processed > 0)
	{
		HeapTuple	t = SPI_tuptable->vals[0];
		TupleDesc	d = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(cxt);

		run.id = pg_strtoint64(SPI_getvalue(t, d, 1));
		run.platform = SPI_getvalue(t, d, 2);
		run.channel_id = pg_strtoint64(SPI_getvalue(t, d, 3));
		run.app_id = SPI_getvalue(t, d, 4);
		run.app_secret = SPI_getvalue(t, d, 5);
		run.api_base = SPI_getvalue(t, d, 6);
		run.rate = pg_strtoint32(SPI_getvalue(t, d, 7));
		MemoryContextSwitchTo(old);
	}
	/* a run whose channel was deleted cannot read anything */
	SPI_execute("UPDATE crm.directory_sync s SET status = 'failed', finished_at = now(), "
				"       error = 'its app channel was deleted' "
				" WHERE status = 'queued' AND NOT EXISTS (SELECT FROM crm.im_channel c WHERE c.id = s.channel_id)",
				false, 0);
	crm_worker_end();
	if (run.id == 0)
		return false;

	pgstat_report_activity(STATE_RUNNING, psprintf("reading the %s directory", run.platform));
	dir = crm_im_dir_create(run.platform);
	run.token = crm_worker_app_token(run.channel_id, run.platform, run.app_id, run.app_secret,
									 run.api_base, run.rate, false, &run.error);
	ok = read_directory(&run, dir);
	if (ok)
		doc = crm_im_dir_json(dir, &departments, &users);
	crm_im_dir_free(dir);

	crm_worker_begin("applying a directory sync");
	if (ok)
		ok = apply(&run, doc);
	args[0] = Int64GetDatum(run.id);
	args[1] = CStringGetTextDatum(ok ? "done" : "failed");
	args[2] = Int32GetDatum(run.requests);
	nulls[3] = ok ? 'n' : ' ';
	args[3] = ok ? (Datum) 0 : CStringGetTextDatum(run.error ? run.error : "unknown error");
	if (SPI_execute_with_args("UPDATE crm.directory_sync SET status = $2, requests = $3, error = $4, "
							  "       finished_at = coalesce(finished_at, clock_timestamp()) WHERE id = $1",
							  4, types, args, nulls, false, 0) != SPI_OK_UPDATE)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not record a directory sync")));
	crm_worker_end();
	ereport(LOG,
			(errmsg("crm notification worker: %s directory sync %lld %s after %d requests%s%s",
					run.platform, (long long) run.id, ok ? "done" : "failed", run.requests,
					ok ? "" : ": ", ok ? "" : run.error)));
	return true;
}
