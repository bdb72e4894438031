/*-------------------------------------------------------------------------
 *
 * worker_xact.c
 *	  Transactions and errors of the notification worker: its short
 *	  transactions, the memory and resource owner a round keeps between
 *	  them, and the two ways it contains a failure: outside a transaction
 *	  (a pure computation: no locks or buffers to release) and in a
 *	  subtransaction.  Used by the delivery rounds and by directory sync.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "worker.h"

static ResourceOwner worker_owner = NULL;
static MemoryContext round_cxt = NULL;	/* what a round allocates between transactions */

/* The memory a round allocates between transactions, reset after each. */
MemoryContext
crm_worker_xact_init(void)
{
	round_cxt = AllocSetContextCreate(TopMemoryContext, "crm notification round", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(round_cxt);
	worker_owner = ResourceOwnerCreate(NULL, "crm notification worker");
	return round_cxt;
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
	crm_worker_between();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Between transactions: the round's memory, and an owner for signing's HMAC contexts. */
void
crm_worker_between(void)
{
	CurrentResourceOwner = worker_owner;
	MemoryContextSwitchTo(round_cxt);
}

/*
 * Run fn(arg) outside any transaction, where a failure holds no locks or
 * buffers; false with the error, in the caller's memory context, if it
 * failed.
 */
bool
crm_worker_attempt(void (*fn) (void *), void *arg, ErrorData **error)
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
