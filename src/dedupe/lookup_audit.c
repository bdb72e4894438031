/*-------------------------------------------------------------------------
 *
 * lookup_audit.c
 *	  The audit of duplicate look-ups, written whatever becomes of the
 *	  transaction that looked.
 *
 * A look-up (crm.find_duplicates, a blocking rule's refusal) answers "is this
 * someone's already?" the moment it runs, so its audit row must not belong to
 * the caller's transaction: one rolled back would leave none.  The look-up
 * puts an entry (who, when, the record type, the names of the fields) in a
 * bounded queue in shared memory, and "crm audit writer", a background worker
 * started on demand for each database, writes the entries into
 * crm.duplicate_lookup in transactions of its own.  It runs as the bootstrap
 * superuser and leaves after a few idle seconds, so that it holds no database
 * open (DROP DATABASE).
 *
 * The audit fails closed: a look-up whose entry cannot be queued, or for whose
 * database no writer can be started, is refused (53400), and so is one on a
 * standby, which cannot write (25006).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "crm.h"

PGDLLEXPORT void crm_audit_writer_main(Datum arg);

/* look-ups waiting to be written, across all databases */
#define AUDIT_QUEUE_SIZE 1024
/* databases whose look-ups are being written at once */
#define AUDIT_WRITERS 32
/* a writer with nothing to write leaves after this long */
#define WRITER_IDLE_MS 3000
/* as crm.duplicate_lookup keeps them: 40 characters of each name */
#define NAME_CHARS 40
#define TYPE_BYTES (NAME_CHARS * MAX_MULTIBYTE_CHAR_LEN + 1)
#define FIELDS_BYTES 512

typedef struct AuditEntry
{
	Oid			dbid;			/* InvalidOid: written, or never queued */
	bool		acting;
	int64		employee_id;
	TimestampTz at;
	NameData	role;
	char		record_type[TYPE_BYTES];
	int			nfields;
	char		fields[FIELDS_BYTES];	/* the names, each ending in '\0' */
} AuditEntry;

typedef struct AuditWriter
{
	Oid			dbid;			/* InvalidOid: a free slot */
	uint64		generation;		/* which start of a writer holds the slot */
	Latch	   *latch;			/* NULL until the writer runs */
} AuditWriter;

typedef struct AuditQueue
{
	LWLock	   *lock;
	uint64		head;			/* the oldest entry not yet written */
	uint64		tail;			/* where the next entry goes */
	uint64		generations;
	AuditWriter writers[AUDIT_WRITERS];
	AuditEntry	entries[AUDIT_QUEUE_SIZE];
} AuditQueue;

/* what a writer is started for (bgw_extra) */
typedef struct WriterStart
{
	int			slot;
	uint64		generation;
} WriterStart;

static AuditQueue *queue = NULL;

/* crm.c's shared memory hooks: the queue and its lock */
void
crm_lookup_audit_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(AuditQueue)));
	RequestNamedLWLockTranche("crm look-up audit", 1);
}

void
crm_lookup_audit_shmem_startup(void)
{
	bool		found;

	queue = ShmemInitStruct("crm look-up audit", sizeof(AuditQueue), &found);
	if (!found)
		memset(queue, 0, sizeof(AuditQueue));
	queue->lock = &(GetNamedLWLockTranche("crm look-up audit"))->lock;
}

/* Past the entries written at the head; the caller holds the lock. */
static void
advance_head(void)
{
	while (queue->head < queue->tail && !OidIsValid(queue->entries[queue->head % AUDIT_QUEUE_SIZE].dbid))
		queue->head++;
}

static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * A writer could not be started: give its slot back (unless the writer ran
 * after all) and withdraw the entry at pos, then refuse the look-up.
 */
static void
writer_failed(int slot, uint64 generation, uint64 pos)
{
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	if (queue->writers[slot].generation == generation && queue->writers[slot].latch == NULL)
		queue->writers[slot].dbid = InvalidOid;
	if (pos >= queue->head)
		queue->entries[pos % AUDIT_QUEUE_SIZE].dbid = InvalidOid;
	advance_head();
	LWLockRelease(queue->lock);
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("the look-up cannot be audited: the audit writer of database \"%s\" cannot start",
					get_database_name(MyDatabaseId)),
			 errdetail("crm refuses a duplicate look-up it cannot audit."),
			 errhint("Raise max_worker_processes (docs/install.md recommends 16) and restart the server.")));
}

/*
 * Queue the audit of a look-up by role (the employee it acts for, if acting)
 * of record_type with these fields, and start the database's writer if none
 * runs; refuse the look-up when it cannot be audited.
 */
void
crm_audit_lookup(bool acting, int64 employee_id, Oid role, const char *record_type,
				 const char **fields, int nfields)
{
	AuditEntry	e;
	const char **sorted = palloc(sizeof(char *) * Max(nfields, 1));
	char	   *p = e.fields;
	int			len;
	int			slot = -1;
	uint64		generation = 0;
	uint64		pos;
	Latch	   *latch = NULL;
	bool		start = false;

	if (queue == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("crm cannot audit duplicate look-ups: crm is not in shared_preload_libraries"),
				 errhint("Add crm to shared_preload_libraries and restart the server.")));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("duplicates cannot be looked up on a standby"),
				 errdetail("A look-up is audited, and a standby cannot write the audit."),
				 errhint("Look up duplicates on the primary.")));

	memset(&e, 0, sizeof(e));
	e.dbid = MyDatabaseId;
	e.acting = acting;
	e.employee_id = employee_id;
	e.at = GetCurrentTimestamp();
	namestrcpy(&e.role, GetUserNameFromId(role, false));
	len = pg_mbcharcliplen(record_type, strlen(record_type), NAME_CHARS);
	memcpy(e.record_type, record_type, len);

	/* the names in order, as many as fit: they are only ever a few */
	memcpy(sorted, fields, sizeof(char *) * nfields);
	qsort(sorted, nfields, sizeof(char *), compare_names);
	for (int i = 0; i < nfields; i++)
	{
		len = pg_mbcharcliplen(sorted[i], strlen(sorted[i]), NAME_CHARS);
		if (p + len + 1 > e.fields + FIELDS_BYTES)
			break;
		memcpy(p, sorted[i], len);
		p += len + 1;
		e.nfields++;
	}
	pfree(sorted);

	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	if (queue->tail - queue->head >= AUDIT_QUEUE_SIZE)
	{
		LWLockRelease(queue->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the look-up cannot be audited: %d look-ups are waiting to be written", AUDIT_QUEUE_SIZE),
				 errdetail("crm refuses a duplicate look-up it cannot audit."),
				 errhint("Try again in a moment; if it persists, the audit writer cannot start: raise max_worker_processes (docs/install.md).")));
	}
	for (int i = 0; i < AUDIT_WRITERS; i++)
	{
		if (queue->writers[i].dbid == MyDatabaseId)
		{
			slot = i;
			break;
		}
		if (slot < 0 && !OidIsValid(queue->writers[i].dbid))
			slot = i;
	}
	if (slot < 0)
	{
		LWLockRelease(queue->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the look-up cannot be audited: look-ups in %d databases are being written", AUDIT_WRITERS),
				 errdetail("crm refuses a duplicate look-up it cannot audit."),
				 errhint("Try again in a moment.")));
	}
	pos = queue->tail++;
	queue->entries[pos % AUDIT_QUEUE_SIZE] = e;
	if (queue->writers[slot].dbid == MyDatabaseId)
		latch = queue->writers[slot].latch;
	else
	{
		queue->writers[slot].dbid = MyDatabaseId;
		queue->writers[slot].generation = generation = ++queue->generations;
		queue->writers[slot].latch = NULL;
		start = true;
	}
	LWLockRelease(queue->lock);

	if (latch)
		SetLatch(latch);
	if (start)
	{
		BackgroundWorker worker;
		BackgroundWorkerHandle *handle;
		WriterStart ws;
		pid_t		pid;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		strlcpy(worker.bgw_library_name, "crm", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "crm_audit_writer_main", BGW_MAXLEN);
		snprintf(worker.bgw_name, BGW_MAXLEN, "crm audit writer for database %u", MyDatabaseId);
		strlcpy(worker.bgw_type, "crm audit writer", BGW_MAXLEN);
		worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
		ws.slot = slot;
		ws.generation = generation;
		memcpy(worker.bgw_extra, &ws, sizeof(ws));
		worker.bgw_notify_pid = MyProcPid;
		if (!RegisterDynamicBackgroundWorker(&worker, &handle) ||
			WaitForBackgroundWorkerStartup(handle, &pid) != BGWH_STARTED)
			writer_failed(slot, generation, pos);
		pfree(handle);
	}
}

/* ---- the writer ---- */

static WriterStart me;

/* The writer's slot is free again: the next look-up starts another. */
static void
writer_gone(int code, Datum arg)
{
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	if (queue->writers[me.slot].generation == me.generation)
	{
		queue->writers[me.slot].dbid = InvalidOid;
		queue->writers[me.slot].latch = NULL;
	}
	LWLockRelease(queue->lock);
}

/* Write the queued entries of this database; returns how many. */
static int
write_entries(AuditEntry *batch, uint64 *positions)
{
	int			n = 0;
	bool		installed;

	LWLockAcquire(queue->lock, LW_SHARED);
	for (uint64 pos = queue->head; pos < queue->tail; pos++)
		if (queue->entries[pos % AUDIT_QUEUE_SIZE].dbid == MyDatabaseId)
		{
			batch[n] = queue->entries[pos % AUDIT_QUEUE_SIZE];
			positions[n++] = pos;
		}
	LWLockRelease(queue->lock);
	if (n == 0)
		return 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "writing the audit of duplicate look-ups");
	installed = OidIsValid(get_extension_oid("crm", true));
	if (!installed)
		ereport(LOG,
				(errmsg("crm audit writer discards %d look-ups: crm is no longer installed in database \"%s\"",
						n, get_database_name(MyDatabaseId))));
	else
	{
		Oid			types[5] = {TIMESTAMPTZOID, INT8OID, NAMEOID, TEXTOID, TEXTARRAYOID};
		SPIPlanPtr	plan = SPI_prepare("INSERT INTO crm.duplicate_lookup (looked_at, employee_id, role_name, record_type, fields)"
									   " VALUES ($1, $2, $3, $4, $5)", 5, types);

		if (plan == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg_internal("crm audit writer: could not prepare the audit insert")));
		for (int i = 0; i < n; i++)
		{
			AuditEntry *e = &batch[i];
			Datum		args[5];
			char		nulls[5] = {' ', e->acting ? ' ' : 'n', ' ', ' ', ' '};
			Datum	   *names = palloc(sizeof(Datum) * Max(e->nfields, 1));
			char	   *p = e->fields;

			for (int f = 0; f < e->nfields; f++)
			{
				names[f] = CStringGetTextDatum(p);
				p += strlen(p) + 1;
			}
			args[0] = TimestampTzGetDatum(e->at);
			args[1] = Int64GetDatum(e->employee_id);
			args[2] = NameGetDatum(&e->role);
			args[3] = CStringGetTextDatum(e->record_type);
			args[4] = PointerGetDatum(construct_array(names, e->nfields, TEXTOID, -1, false, TYPALIGN_INT));
			if (SPI_execute_plan(plan, args, nulls, false, 0) != SPI_OK_INSERT)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg_internal("crm audit writer: could not write the audit of a look-up")));
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);

	/* written: only this writer takes this database's entries, so they are where they were */
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
		queue->entries[positions[i] % AUDIT_QUEUE_SIZE].dbid = InvalidOid;
	advance_head();
	LWLockRelease(queue->lock);
	return n;
}

/* Leave, unless a look-up has just been queued: then it is this writer's. */
static bool
retire(void)
{
	bool		pending = false;

	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	for (uint64 pos = queue->head; pos < queue->tail && !pending; pos++)
		pending = queue->entries[pos % AUDIT_QUEUE_SIZE].dbid == MyDatabaseId;
	if (!pending)
	{
		queue->writers[me.slot].dbid = InvalidOid;
		queue->writers[me.slot].latch = NULL;
		queue->writers[me.slot].generation = 0;
	}
	LWLockRelease(queue->lock);
	return !pending;
}

void
crm_audit_writer_main(Datum arg)
{
	AuditEntry *batch;
	uint64	   *positions;
	TimestampTz idle_since;

	memcpy(&me, MyBgworkerEntry->bgw_extra, sizeof(me));
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	before_shmem_exit(writer_gone, 0);
	BackgroundWorkerUnblockSignals();

	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	if (queue->writers[me.slot].generation == me.generation)
		queue->writers[me.slot].latch = MyLatch;
	LWLockRelease(queue->lock);

	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	pgstat_report_appname("crm audit writer");
	/* the writer runs as superuser: nobody's functions or operators may run in it */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	batch = MemoryContextAlloc(TopMemoryContext, sizeof(AuditEntry) * AUDIT_QUEUE_SIZE);
	positions = MemoryContextAlloc(TopMemoryContext, sizeof(uint64) * AUDIT_QUEUE_SIZE);
	idle_since = GetCurrentTimestamp();
	for (;;)
	{
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* what is queued is written, even when the server stops */
		if (write_entries(batch, positions) > 0)
		{
			idle_since = GetCurrentTimestamp();
			continue;
		}
		if (ShutdownRequestPending)
			break;
		if (TimestampDifferenceExceeds(idle_since, GetCurrentTimestamp(), WRITER_IDLE_MS) && retire())
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 WRITER_IDLE_MS, PG_WAIT_EXTENSION);
	}
	proc_exit(0);
}
