/*-------------------------------------------------------------------------
 *
 * duplicates.c
 *	  crm.find_duplicates(record_type, candidate): what a record would
 *	  duplicate, visibility-aware, rate-limited and audited.
 *
 * The exact search (crm.dedupe_candidates, the rules' keys) runs as crm's
 * owner, so that a match the caller may not see is still found: "is this
 * already someone's?" must have one answer for everybody.  Each match is then
 * looked up again as the caller, under row-level security: a visible one
 * shows its id and name, an invisible one only whose it is.  Similar names
 * (crm.similar_customers) are searched as the caller, among what they see.
 *
 * Since an exact answer about invisible records is an oracle (a masked pool
 * phone can be enumerated), look-ups are audited (crm.duplicate_lookup, by
 * lookup_audit.c, whatever becomes of the caller's transaction) and, for
 * everyone outside crm_admin, limited per employee and minute
 * (crm.duplicate_lookups_per_minute, a superuser setting) with a token bucket
 * in shared memory: it holds across sessions and a rollback does not refund it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/xact.h"
#include "access/table.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_find_duplicates);

/* a candidate holds a few short fields (names of at most 200 characters) */
#define CANDIDATE_MAX_BYTES 8192

static int	lookups_per_minute = 60;

/* employees with look-ups in the last minute that one table holds */
#define LOOKUP_BUCKETS 4096

typedef struct LookupKey
{
	Oid			dbid;
	int64		employee_id;
} LookupKey;

/* a token bucket: up to the limit, refilled at the limit per minute */
typedef struct LookupBucket
{
	LookupKey	key;
	double		tokens;
	TimestampTz at;
} LookupBucket;

static void pending_xact_callback(XactEvent event, void *arg);
static void pending_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									 SubTransactionId parentSubid, void *arg);

static HTAB *lookup_buckets = NULL;
static LWLock *lookup_lock = NULL;
/* crm.c's shared memory hooks: the buckets and their lock */
void
crm_duplicates_shmem_request(void)
{
	RequestAddinShmemSpace(hash_estimate_size(LOOKUP_BUCKETS, sizeof(LookupBucket)));
	RequestNamedLWLockTranche("crm duplicate look-ups", 1);
}

void
crm_duplicates_shmem_startup(void)
{
	HASHCTL		info;

	info.keysize = sizeof(LookupKey);
	info.entrysize = sizeof(LookupBucket);
	lookup_buckets = ShmemInitHash("crm duplicate look-ups", LOOKUP_BUCKETS, LOOKUP_BUCKETS, &info,
								   HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
	lookup_lock = &(GetNamedLWLockTranche("crm duplicate look-ups"))->lock;
}

void
crm_duplicates_init(void)
{
	RegisterXactCallback(pending_xact_callback, NULL);
	RegisterSubXactCallback(pending_subxact_callback, NULL);
	DefineCustomIntVariable("crm.duplicate_lookups_per_minute",
							"Look-ups of crm.find_duplicates an employee outside crm_admin may make per minute.",
							"Counted per employee across all their sessions; a superuser setting.",
							&lookups_per_minute, 60, 1, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/*
 * Take n look-ups from the employee's bucket.  When fewer are left, refuse
 * with 54000 and take them all the same: a statement under blocking rules is
 * refused only when it matched, so the refusal too answered each of its rows.
 * The bucket then owes what it lacked, up to an hour's look-ups, and refills
 * before it serves again.
 * n = 0 only checks that one is left.  refuse = false takes them without
 * refusing: a (sub)transaction's abort, which may not fail.
 */
static void
take_lookup(int64 employee_id, int64 n, bool refuse)
{
	LookupKey	key;
	LookupBucket *b;
	TimestampTz now = GetCurrentTimestamp();
	double		limit = lookups_per_minute;
	bool		found;
	bool		allowed = false;

	if (lookup_buckets == NULL)
	{
		if (!refuse)
			return;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("crm.find_duplicates cannot count look-ups: crm is not in shared_preload_libraries"),
				 errhint("Add crm to shared_preload_libraries and restart the server.")));
	}
	memset(&key, 0, sizeof(key));	/* the padding is hashed too */
	key.dbid = MyDatabaseId;
	key.employee_id = employee_id;

	LWLockAcquire(lookup_lock, LW_EXCLUSIVE);
	b = hash_search(lookup_buckets, &key, HASH_ENTER_NULL, &found);
	if (b == NULL)
	{
		/* full: forget every bucket that has refilled, it is as good as new */
		HASH_SEQ_STATUS seq;
		LookupBucket *old;

		hash_seq_init(&seq, lookup_buckets);
		while ((old = hash_seq_search(&seq)) != NULL)
			if (old->tokens + (double) (now - old->at) / USECS_PER_SEC * limit / 60.0 >= limit)
				hash_search(lookup_buckets, &old->key, HASH_REMOVE, NULL);
		b = hash_search(lookup_buckets, &key, HASH_ENTER_NULL, &found);
	}
	if (b != NULL)
	{
		if (!found)
			b->tokens = limit;
		else
			b->tokens = Min(limit, b->tokens + (double) (now - b->at) / USECS_PER_SEC * limit / 60.0);
		b->at = now;
		allowed = b->tokens >= Max(n, 1);
		/* owing at most an hour's look-ups: a rolled-back paste of 100,000 rows is no day's ban */
		b->tokens = Max(b->tokens - n, 1.0 - 60.0 * limit);
	}
	LWLockRelease(lookup_lock);

	if (!refuse)
		return;
	if (b == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many employees are looking up duplicates at once"),
				 errdetail("crm counts the look-ups of at most %d employees a minute.", LOOKUP_BUCKETS),
				 errhint("Try again in a minute.")));
	if (!allowed)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("employee " INT64_FORMAT " has looked up duplicates more than %d times a minute",
						employee_id, lookups_per_minute),
				 errdetail("Look-ups are counted across all of the employee's sessions, and one rolled back counts too."),
				 errhint("Wait a little; look up what you are about to enter, not lists of guesses; a superuser may raise crm.duplicate_lookups_per_minute.")));
}

/*
 * The rows a statement under blocking rules compared, each a guess at whose a
 * key is: the statement tells whether any matched by succeeding.  Rows that
 * are written stay, in the operation log and in somebody's list; rows that are
 * not are charged as look-ups when their (sub)transaction aborts.
 */
typedef struct PendingLookups
{
	SubTransactionId subid;
	int64		employee_id;
	int64		lookups;
} PendingLookups;

static PendingLookups *pending = NULL;
static int	npending = 0;
static int	maxpending = 0;

static void
pending_xact_callback(XactEvent event, void *arg)
{
	if (npending == 0)
		return;
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* a prepared transaction may yet be rolled back, by anyone, unseen */
		case XACT_EVENT_PREPARE:
			for (int i = 0; i < npending; i++)
				take_lookup(pending[i].employee_id, pending[i].lookups, false);
			npending = 0;
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			npending = 0;
			break;
		default:
			break;
	}
}

static void
pending_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	int			kept = 0;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	for (int i = 0; i < npending; i++)
	{
		if (pending[i].subid == mySubid)
		{
			if (event == SUBXACT_EVENT_ABORT_SUB)
			{
				take_lookup(pending[i].employee_id, pending[i].lookups, false);
				continue;
			}
			pending[i].subid = parentSubid;
		}
		pending[kept++] = pending[i];
	}
	npending = kept;
}

/* Whether an employee's look-ups are counted: everyone's outside crm_admin. */
static bool
lookups_counted(Oid role)
{
	Oid			admin = get_role_oid("crm_admin", true);

	return !superuser_arg(role) && !(OidIsValid(admin) && has_privs_of_role(role, admin));
}

/* The employee a definer's caller acts as, and whether their look-ups count. */
static bool
outer_employee_counted(int64 *employee_id, bool *acting)
{
	CrmSwitch	sw;

	crm_switch_to_invoker(&sw);
	*acting = crm_current_employee(employee_id);
	crm_switch_back(&sw);
	return *acting && lookups_counted(GetOuterUserId());
}

PG_FUNCTION_INFO_V1(crm_pend_duplicate_lookups);

/*
 * crm.pend_duplicate_lookups(lookups): crm.dedupe_check (a definer) is about
 * to compare this many rows under blocking rules, for the employee it acts
 * for.  One with no look-ups left is refused whether the rows match or not;
 * otherwise they are charged unless the statement's (sub)transaction commits.
 */
Datum
crm_pend_duplicate_lookups(PG_FUNCTION_ARGS)
{
	int64		employee_id = 0;
	bool		acting;
	int64		lookups = PG_ARGISNULL(0) ? 0 : Max(PG_GETARG_INT64(0), 0);

	if (!outer_employee_counted(&employee_id, &acting) || lookups == 0)
		PG_RETURN_VOID();
	take_lookup(employee_id, 0, true);
	if (npending == maxpending)
	{
		maxpending = Max(16, maxpending * 2);
		pending = pending == NULL ? MemoryContextAlloc(TopMemoryContext, maxpending * sizeof(PendingLookups))
			: repalloc(pending, maxpending * sizeof(PendingLookups));
	}
	pending[npending].subid = GetCurrentSubTransactionId();
	pending[npending].employee_id = employee_id;
	pending[npending].lookups = lookups;
	npending++;
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(crm_take_duplicate_lookup);

/*
 * crm.take_duplicate_lookup(record_type, fields, lookups): a blocking rule's
 * refusal tells whose a key is, as a look-up does, so crm.dedupe_check (a
 * definer) counts it against the limit of the employee it acts for, as many
 * look-ups as the statement had rows (each was a guess), and audits it.  The
 * rows it pended are charged now, not again when the refusal aborts.
 */
Datum
crm_take_duplicate_lookup(PG_FUNCTION_ARGS)
{
	int64		employee_id = 0;
	bool		acting;
	Datum	   *names = NULL;
	bool	   *nulls;
	int			n = 0;
	const char **fields;
	int			nfields = 0;
	int64		lookups = PG_ARGISNULL(2) ? 1 : Max(PG_GETARG_INT64(2), 1);

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("crm.take_duplicate_lookup needs a record type")));
	if (!PG_ARGISNULL(1))
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT, &names, &nulls, &n);
	fields = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			fields[nfields++] = TextDatumGetCString(names[i]);

	if (outer_employee_counted(&employee_id, &acting))
	{
		if (npending > 0 && pending[npending - 1].subid == GetCurrentSubTransactionId())
			npending--;
		take_lookup(employee_id, lookups, true);
	}
	crm_audit_lookup(acting, employee_id, GetOuterUserId(), text_to_cstring(PG_GETARG_TEXT_PP(0)), fields, nfields);
	PG_RETURN_VOID();
}

/* The names of a candidate's fields that hold something: what is audited, never the values. */
static int
candidate_fields(Jsonb *candidate, const char ***fields)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken r;
	char	   *key = NULL;
	int			n = 0;

	*fields = NULL;
	if (candidate == NULL || !JB_ROOT_IS_OBJECT(candidate))
		return 0;
	*fields = palloc(sizeof(char *) * Max(JB_ROOT_COUNT(candidate), 1));
	it = JsonbIteratorInit(&candidate->root);
	while ((r = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (r == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (r == WJB_VALUE && v.type != jbvNull && !(v.type == jbvString && v.val.string.len == 0))
			(*fields)[n++] = key;
	}
	return n;
}

Datum
crm_find_duplicates(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			types[3] = {TEXTOID, JSONBOID, JSONBOID};
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};
	CrmSwitch	sw;
	int64		employee_id = 0;
	bool		acting = crm_current_employee(&employee_id);
	const char **fields;
	int			nfields;
	bool		isnull;
	int			ret;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("crm.find_duplicates needs a record type"),
				 errhint("The record types are lead, customer and contact.")));
	/* before any work: the search pastes the candidate's values into queries */
	if (!PG_ARGISNULL(1) && toast_raw_datum_size(PG_GETARG_DATUM(1)) > CANDIDATE_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("a duplicate search candidate of %zu bytes is too long (at most %d)",
						toast_raw_datum_size(PG_GETARG_DATUM(1)), CANDIDATE_MAX_BYTES),
				 errhint("Pass the record's name, phone, mobile, e-mail and credit code only; docs/records.md lists their limits.")));
	/* whose a record is, is nobody's business but an employee's */
	if (!acting && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not look for duplicates", GetUserNameFromId(GetUserId(), false)),
				 errdetail("The role maps to no active employee and carries no trusted claim."),
				 errhint("Log in with your employee's role, or have crm.employee.db_role name this role.")));
	if (lookups_counted(GetUserId()))
		take_lookup(employee_id, 1, true);
	nfields = candidate_fields(PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1), &fields);
	crm_audit_lookup(acting, employee_id, GetUserId(), text_to_cstring(PG_GETARG_TEXT_PP(0)), fields, nfields);

	InitMaterializedSRF(fcinfo, 0);
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';

	SPI_connect();
	crm_switch_to_owner(&sw);
	ret = SPI_execute_with_args("SELECT pg_catalog.jsonb_agg(c) FROM crm.dedupe_candidates($1, $2) c",
								2, types, args, nulls, false, 0);
	crm_switch_back(&sw);
	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: could not search for duplicates")));

	/*
	 * As the caller: row-level security decides which matches show their id
	 * and name, and which records the similar names come from; the caller's
	 * operators and functions do not.
	 */
	args[2] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	nulls[2] = isnull ? 'n' : ' ';
	crm_switch_pin(&sw);
	ret = SPI_execute_with_args(
		"SELECT h.match_type, CASE WHEN v.visible THEN h.match_id END, v.label,"
		"       max(CASE WHEN e.is_pool THEN format('pool \"%s\"', e.name) ELSE e.name END),"
		"       string_agg(DISTINCT h.rule, ', '), max(h.score), string_agg(DISTINCT h.reason, ', ')"
		"  FROM (SELECT * FROM pg_catalog.jsonb_to_recordset($3)"
		"                AS x(match_type text, match_id bigint, owner_id bigint, rule text, score real, reason text)"
		"        UNION ALL"
		"        SELECT 'customer', s.id, s.owner_id, NULL, s.score, s.reason"
		"          FROM crm.similar_customers(CASE $1 WHEN 'customer' THEN $2 ->> 'name' WHEN 'lead' THEN $2 ->> 'company' END,"
		"                                     coalesce($2 ->> 'kind', 'company')) s) h"
		"  LEFT JOIN crm.employee e ON e.id = h.owner_id"
		"  LEFT JOIN LATERAL (SELECT true, r.name FROM crm.customer r WHERE h.match_type = 'customer' AND r.id = h.match_id"
		"                     UNION ALL SELECT true, r.name FROM crm.lead r WHERE h.match_type = 'lead' AND r.id = h.match_id"
		"                     UNION ALL SELECT true, r.name FROM crm.contact r WHERE h.match_type = 'contact' AND r.id = h.match_id"
		"                    ) v(visible, label) ON true"
		" GROUP BY h.match_type, h.match_id, v.visible, v.label ORDER BY 6 DESC, 1, h.match_id LIMIT 50",
		3, types, args, nulls, true, 0);
	crm_switch_back(&sw);
	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: could not show duplicates")));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		values[7];
		bool		isnulls[7];

		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, values, isnulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnulls);
	}
	SPI_finish();
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(crm_merge_customers);

/*
 * crm.merge_customers(keep_id, merge_id): checked as the caller (the
 * customer.merge permission, both customers editable by them), then done as
 * crm's owner by crm.merge_customers_apply, so that rows the caller may not
 * write themselves (a colleague's follow-ups, team places) move too.
 */
Datum
crm_merge_customers(PG_FUNCTION_ARGS)
{
	int64		keep;
	int64		merge;
	int64		employee = 0;
	Oid			types[3] = {INT8OID, INT8OID, INT8OID};
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};
	CrmSwitch	sw;
	bool		isnull;
	int64		audit;
	int			ret;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("crm.merge_customers needs the customer to keep and the one to merge into it")));
	keep = PG_GETARG_INT64(0);
	merge = PG_GETARG_INT64(1);
	if (keep == merge)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("customer " INT64_FORMAT " cannot be merged into itself", keep)));
	if (!crm_acting_permission("customer.merge", &employee) && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s may not merge customers", employee ? psprintf("employee " INT64_FORMAT, employee) : "nobody acting"),
				 errdetail("Merging needs the permission \"customer.merge\"."),
				 errhint("Ask an administrator to add \"customer.merge\" to one of your roles (crm.role_permission).")));

	SPI_connect();
	args[0] = Int64GetDatum(keep);
	args[1] = Int64GetDatum(merge);
	/*
	 * as the caller: a merge changes one customer and deletes the other, so
	 * both must be theirs to edit, not only to see (the caller's operators
	 * take no part in the answer)
	 */
	crm_switch_pin(&sw);
	ret = SPI_execute_with_args("SELECT crm.record_editable('customer', $1), crm.record_editable('customer', $2)",
								2, types, args, NULL, true, 0);
	crm_switch_back(&sw);
	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: could not look up the customers to merge")));
	for (int i = 0; i < 2 && !superuser(); i++)
		if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("customer " INT64_FORMAT " does not exist or is not yours to edit", DatumGetInt64(args[i])),
					 errdetail("A merge changes one customer and deletes the other."),
					 errhint("Both customers of a merge must be ones you may edit (\"customer.edit\", owned in your scope or shared with you to edit).")));

	args[2] = Int64GetDatum(employee);
	nulls[2] = employee ? ' ' : 'n';
	crm_switch_to_owner(&sw);
	ret = SPI_execute_with_args("SELECT crm.merge_customers_apply($1, $2, $3)", 3, types, args, nulls, false, 0);
	crm_switch_back(&sw);
	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: could not merge customers")));
	audit = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_INT64(audit);
}

PG_FUNCTION_INFO_V1(crm_xid_horizon);

/*
 * crm.xid_horizon(rel): the oldest transaction that some snapshot may still
 * see as running, for rows of rel.  A duplicate key claimed by an older one
 * is settled for every snapshot, so housekeeping may drop its claim.
 */
Datum
crm_xid_horizon(PG_FUNCTION_ARGS)
{
	Relation	rel = table_open(PG_GETARG_OID(0), AccessShareLock);
	TransactionId horizon = GetOldestNonRemovableTransactionId(rel);

	table_close(rel, AccessShareLock);
	PG_RETURN_TRANSACTIONID(horizon);
}
