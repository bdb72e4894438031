/*-------------------------------------------------------------------------
 *
 * crm.c
 *	  Module entry point: the crm.* settings and per-backend initialisation.
 *
 * Every setting lives under the reserved "crm." prefix, so a typo such as
 * SET crm.jwt_employe_claim fails instead of silently creating a placeholder.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "utils/guc.h"

#include "crm.h"

PG_MODULE_MAGIC;

/* Database whose jobs and notification worker this cluster serves. */
char	   *crm_database_name = NULL;

/* Claim that carries the employee id in a trusted authenticator's JWT. */
char	   *crm_jwt_employee_claim = NULL;

/*
 * The lead crm.convert_lead is converting: duplicate checks skip it.  Like
 * crm.change_source, a superuser setting that src/core/context.c sets for crm's own
 * functions: a session that could set it would switch rules off or label its
 * own changes as an import's.
 */
static char *crm_converting_lead = NULL;

/* The deal crm.reopen_opportunity is reopening: a closed deal is otherwise read-only. */
static char *crm_reopening_opportunity = NULL;

/*
 * What owner changes are (crm.customer_owner_change.kind) and why; superuser
 * settings, so that only the pool's SECURITY DEFINER functions label them.
 */
static int	crm_owner_change = 0;
static char *crm_owner_change_reason = NULL;
static const struct config_enum_entry owner_changes[] = {
	{"", 0, false},
	{"transfer", 1, false},
	{"claim", 2, false},
	{"assign", 3, false},
	{"release", 4, false},
	{"recycle", 5, false},
	{NULL, 0, false}
};

/*
 * A restore says so (docs/backup.md): crm's triggers then neither check the
 * rows it loads against rows not restored yet, nor log or notify them again.
 * Superuser-only, and it counts only in a superuser's session (crm_restoring()).
 */
bool		crm_restoring_setting = false;

/* Where changes come from, for the operation log. */
static int	crm_change_source = 0;
static const struct config_enum_entry change_sources[] = {
	{"", 0, false},
	{"person", 1, false},
	{"import", 2, false},
	{"job", 3, false},
	{"system", 4, false},
	{NULL, 0, false}
};

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* crm's shared memory: the notification worker's latch, the duplicate look-up buckets and audit queue */
static void
crm_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	crm_worker_shmem_request();
	crm_duplicates_shmem_request();
	crm_lookup_audit_shmem_request();
}

static void
crm_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	crm_worker_shmem_startup();
	crm_duplicates_shmem_startup();
	crm_lookup_audit_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}

/* A claim name is a JSON key and part of a setting name: keep it plain. */
static bool
check_claim_name(char **newval, void **extra, GucSource source)
{
	const char *p;

	if (*newval == NULL || (*newval)[0] == '\0')
	{
		GUC_check_errdetail("The claim name must not be empty.");
		return false;
	}
	for (p = *newval; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_'))
		{
			GUC_check_errdetail("The claim name may contain only ASCII letters, digits and underscores.");
			return false;
		}
	}
	return true;
}

void
_PG_init(void)
{
	DefineCustomStringVariable("crm.database_name",
							   "Database whose crm jobs and notification worker this cluster runs.",
							   NULL,
							   &crm_database_name,
							   "postgres",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("crm.jwt_employee_claim",
							   "JWT claim that holds the acting employee's id for sessions of a crm_authenticator member.",
							   "Read from request.jwt.claims (PostgREST) or jwt.claims.<name> (PostGraphile).",
							   &crm_jwt_employee_claim,
							   "employee_id",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY,
							   check_claim_name, NULL, NULL);

	DefineCustomEnumVariable("crm.change_source",
							 "Where the current changes come from, as the operation log records it.",
							 "Empty: a person when an employee acts, else the system.  Imports and jobs set it.",
							 &crm_change_source,
							 0,
							 change_sources,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("crm.converting_lead",
							   "The lead crm.convert_lead is converting, which duplicate checks do not match.",
							   "Set by crm.convert_lead for its own statements.",
							   &crm_converting_lead,
							   "",
							   PGC_SUSET,
							   GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("crm.reopening_opportunity",
							   "The deal crm.reopen_opportunity is reopening, which may leave its won or lost stage.",
							   "Set by crm.reopen_opportunity for its own statements.",
							   &crm_reopening_opportunity,
							   "",
							   PGC_SUSET,
							   GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, NULL);

	DefineCustomEnumVariable("crm.owner_change",
							 "What the current customer owner changes are, as the owner history records them.",
							 "Empty: a transfer.  Set by the public pool's functions and the recycling job.",
							 &crm_owner_change,
							 0,
							 owner_changes,
							 PGC_SUSET,
							 GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("crm.owner_change_reason",
							   "Why the current customer owner changes happen, as the owner history records it.",
							   "Set by crm.release_customer.",
							   &crm_owner_change_reason,
							   "",
							   PGC_SUSET,
							   GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("crm.oplog_work_mem",
							"Memory a subtransaction's pending operation-log notes of one table may take before they are written out.",
							"A statement that changes more rows writes their log entries as it goes, not all at its end.",
							&crm_oplog_work_mem,
							8192,
							64,
							MAX_KILOBYTES,
							PGC_SUSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("crm.restoring",
							 "Whether this session restores a dump: crm's triggers neither check, log nor notify the rows it loads.",
							 "Set by a restore, e.g. PGOPTIONS='-c crm.restoring=on' pg_restore ...; it counts only in a superuser's session.",
							 &crm_restoring_setting,
							 false,
							 PGC_SUSET,
							 GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							 NULL, NULL, NULL);

	/* the worker's and the duplicate look-ups' settings, before the prefix is closed */
	crm_worker_init();
	crm_duplicates_init();
	if (process_shared_preload_libraries_in_progress)
	{
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = crm_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = crm_shmem_startup;
	}
	MarkGUCPrefixReserved("crm");

	crm_identity_init();
	crm_scope_init();
	crm_scope_plan_init();
	crm_guard_init();
	crm_dictionary_init();
	crm_opportunity_init();
	crm_oplog_init();
	crm_notify_init();
	crm_chinese_init();
}
