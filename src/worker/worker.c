/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The notification worker: a background worker, started when crm is in
 *	  shared_preload_libraries, that sends the IM messages of the outbox
 *	  (crm.im_delivery) in crm.database_name, and runs directory syncs.
 *	  This file is its life: settings, start, wake-ups at commit, the loop
 *	  of rounds (deliver.c, then a slice of directory sync, directory.c),
 *	  a failed round survived, SIGTERM.  worker.h lists the other files.
 *
 * Transactions that enqueue wake the worker at commit (crm.im_wake); it
 * also polls every crm.im_poll_interval.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "worker.h"

PGDLLEXPORT void crm_worker_main(Datum arg);

/* settings (all reloadable) */
int			crm_im_poll_interval = 10000;
int			crm_im_batch_size = 500;
int			crm_im_request_timeout = 10000;
int			crm_im_retry_delay = 5000;
int			crm_im_max_attempts = 8;

/* after a failed round the worker waits 1 s, then twice as long each time, at most a minute */
#define ERROR_BACKOFF_MIN 1000
#define ERROR_BACKOFF_MAX (60 * 1000)

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
	AbortOutOfAnyTransaction();
	crm_worker_between();
	crm_deliver_after_error();
	crm_worker_between();
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

	crm_windows_init();
	crm_deliver_init();
	cxt = crm_worker_xact_init();
	ereport(LOG, (errmsg("crm notification worker started in database \"%s\"", crm_database_name)));

	for (;;)
	{
		volatile long sleep_ms = crm_im_poll_interval;

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
				bool		active = false;

				sleep_ms = crm_deliver_round(cxt, &active);
				/* then a slice of a directory sync, if one is queued or under way */
				if (active && crm_directory_round())
					sleep_ms = 0;
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
							NULL, &crm_im_poll_interval, 10000, 100, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("crm.im_batch_size",
							"Due deliveries the notification worker takes per channel and round.",
							NULL, &crm_im_batch_size, 500, 1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("crm.im_request_timeout",
							"How long the notification worker waits for an IM platform's answer.",
							NULL, &crm_im_request_timeout, 10000, 100, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("crm.im_retry_delay",
							"Delay before a failed IM delivery's first retry; each further retry waits twice as long.",
							NULL, &crm_im_retry_delay, 5000, 10, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("crm.im_max_attempts",
							"Attempts after which an IM delivery that keeps failing is dead.",
							NULL, &crm_im_max_attempts, 8, 1, 100,
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
