/*-------------------------------------------------------------------------
 *
 * oplog.c
 *	  The operation log (操作记录): who changed which field of which record
 *	  from what to what, when, and through what (a person, an import, a job).
 *
 * Two triggers on every business table:
 *	 crm.log_row()	 AFTER row trigger: notes the record and, for an UPDATE,
 *					 each changed field's old and new value (updated_at,
 *					 last_follow_up_at and duplicate keys, which crm maintains,
 *					 are left out, as is a deal's move between stages, which
 *					 its stage history holds),
 *					 for a DELETE the row as it was;
 *	 crm.log_flush() AFTER statement trigger: writes what the statement's
 *					 rows noted into crm.oplog with one INSERT, and the
 *					 records it inserted as one row.
 * So a statement that changes 100,000 rows costs 100,000 small notes in
 * memory and one set-based insert, not 100,000 inserts.  Notes belong to the
 * subtransaction whose rows made them: they are dropped when it aborts (a
 * savepoint rolled back, an exception block that caught an error) and pass
 * to its parent when it commits.  Past crm.oplog_work_mem, a table's notes
 * are written out before the statement ends, into the same subtransaction.
 *
 * The employee logged is the one acting, or, for the changes crm's own
 * functions make as the owner of the crm tables (a transfer, a handover, a
 * pool claim), the employee who called them; a job's changes have none.
 *
 * Values are logged as their text output, so that every type logs alike.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_log_row);
PG_FUNCTION_INFO_V1(crm_log_flush);

/*
 * What rows of one table noted within one subtransaction.  A subtransaction
 * that aborts takes its notes with it (its rows are gone), one that commits
 * hands them to its parent; a statement trigger writes those of its own
 * subtransaction, so that what it writes rolls back with it.
 */
typedef struct OplogNotes
{
	Oid			relid;
	SubTransactionId subxact;
	MemoryContext cxt;			/* holds the notes, counted against crm.oplog_work_mem */
	int			count;
	int			size;
	int64	   *ids;
	const char **actions;
	char	  **changes;		/* JSON text, or NULL */
	Datum	   *owners;			/* a record with an owner of its own: its owner */
	bool	   *owner_nulls;	/* true: looked up when written (crm.record_scope) */
	uint64		owners_since;	/* crm_record_links_changes at the first note */
} OplogNotes;

/* in TopTransactionContext, and so are the notes: an abort drops them all */
static List *notes = NIL;

/* crm.oplog_work_mem, in kB: past it, a subtransaction's notes of a table are written out */
int			crm_oplog_work_mem = 8192;

static void
oplog_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
		notes = NIL;
}

static void
oplog_subxact_callback(SubXactEvent event, SubTransactionId sub, SubTransactionId parent, void *arg)
{
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	foreach(lc, notes)
	{
		OplogNotes *n = lfirst(lc);

		if (n->subxact != sub)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			n->subxact = parent;
		else
		{
			MemoryContextDelete(n->cxt);
			pfree(n);
			notes = foreach_delete_current(notes, lc);
		}
	}
}

void
crm_oplog_init(void)
{
	RegisterXactCallback(oplog_xact_callback, NULL);
	RegisterSubXactCallback(oplog_subxact_callback, NULL);
}

/* The notes of a table in the current subtransaction, made if need be. */
static OplogNotes *
notes_for(Oid relid)
{
	SubTransactionId subxact = GetCurrentSubTransactionId();
	ListCell   *lc;
	OplogNotes *n;
	MemoryContext old;

	foreach(lc, notes)
	{
		n = lfirst(lc);
		if (n->relid == relid && n->subxact == subxact)
			return n;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	n = palloc0(sizeof(OplogNotes));
	n->relid = relid;
	n->subxact = subxact;
	n->cxt = AllocSetContextCreate(TopTransactionContext, "crm oplog notes", ALLOCSET_DEFAULT_SIZES);
	notes = lappend(notes, n);
	MemoryContextSwitchTo(old);
	return n;
}

static void write_notes(Relation rel, List *sets);

/*
 * Takes sets of notes out of the list, writes and frees them.  Taken first:
 * writing the log runs its triggers, a DBA's among them, whose changes to
 * logged tables note afresh, and are written by their own statements.  Freed
 * even when the writing fails: off the list, no subtransaction's abort would.
 */
static void
write_taken_notes(Relation rel, List *sets)
{
	ListCell   *lc;

	foreach(lc, sets)
		notes = list_delete_ptr(notes, lfirst(lc));
	PG_TRY();
	{
		write_notes(rel, sets);
	}
	PG_FINALLY();
	{
		foreach(lc, sets)
		{
			OplogNotes *n = lfirst(lc);

			MemoryContextDelete(n->cxt);
			pfree(n);
		}
	}
	PG_END_TRY();
}

/* "name": "value" (or null) into a JSON object under construction */
static void
append_field(StringInfo buf, TupleDesc desc, int attno, Datum value, bool isnull)
{
	Form_pg_attribute att = TupleDescAttr(desc, attno - 1);

	if (isnull)
		appendStringInfoString(buf, "null");
	else
	{
		Oid			output;
		bool		varlena;

		getTypeOutputInfo(att->atttypid, &output, &varlena);
		escape_json(buf, OidOutputFunctionCall(output, value));
	}
}

/* Columns crm maintains itself, duplicate keys among them, change as a consequence, not as a change. */
static bool
skipped_column(const char *table, Form_pg_attribute att)
{
	return att->attisdropped || crm_dedupe_key_column(table, NameStr(att->attname)) ||
		strcmp(NameStr(att->attname), "updated_at") == 0 || strcmp(NameStr(att->attname), "last_follow_up_at") == 0;
}

/* what a deal's move between stages sets, kept in its stage history */
static bool
stage_move_column(Form_pg_attribute att)
{
	static const char *const moved[] = {"stage_id", "probability", "status", "closed_on", "stage_entered_at"};

	for (int i = 0; i < (int) lengthof(moved); i++)
		if (strcmp(NameStr(att->attname), moved[i]) == 0)
			return true;
	return false;
}

/*
 * {"field": ["old", "new"], ...} for the fields an UPDATE changed, or NULL;
 * *only is the column number when just one changed.
 */
static char *
changed_fields(const char *table, TupleDesc desc, HeapTuple old, HeapTuple new, int *only)
{
	StringInfoData buf;
	int			changed = 0;
	bool		stage_moved = false;

	/*
	 * A deal's move between stages, and what crm sets with it, is in
	 * crm.opportunity_stage_change (who, when, from, to, probability).
	 */
	if (strcmp(table, "opportunity") == 0)
	{
		int			stage = crm_desc_column(desc, table, "stage_id", INT8OID);
		bool		oldnull,
					newnull;

		stage_moved = stage > 0 &&
			DatumGetInt64(heap_getattr(old, stage, desc, &oldnull)) != DatumGetInt64(heap_getattr(new, stage, desc, &newnull));
	}

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 1; i <= desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i - 1);
		bool		oldnull,
					newnull;
		Datum		oldval,
					newval;

		if (skipped_column(table, att) || (stage_moved && stage_move_column(att)))
			continue;
		oldval = heap_getattr(old, i, desc, &oldnull);
		newval = heap_getattr(new, i, desc, &newnull);
		if (oldnull == newnull &&
			(oldnull || datumIsEqual(oldval, newval, att->attbyval, att->attlen)))
			continue;
		*only = changed ? 0 : i;
		if (changed++)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, NameStr(att->attname));
		appendStringInfoString(&buf, ": [");
		append_field(&buf, desc, i, oldval, oldnull);
		appendStringInfoString(&buf, ", ");
		append_field(&buf, desc, i, newval, newnull);
		appendStringInfoChar(&buf, ']');
	}
	appendStringInfoChar(&buf, '}');
	return changed ? buf.data : NULL;
}

/* {"field": "value", ...}: a deleted row as it was */
static char *
whole_row(TupleDesc desc, HeapTuple tuple)
{
	StringInfoData buf;
	int			n = 0;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 1; i <= desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i - 1);
		bool		isnull;
		Datum		value;

		if (att->attisdropped)
			continue;
		value = heap_getattr(tuple, i, desc, &isnull);
		if (n++)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, NameStr(att->attname));
		appendStringInfoString(&buf, ": ");
		append_field(&buf, desc, i, value, isnull);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

static void
require_trigger(FunctionCallInfo fcinfo, bool row, const char *name)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		(TRIGGER_FIRED_FOR_ROW(td->tg_event) != 0) != row || TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be an AFTER INSERT OR UPDATE OR DELETE %s trigger", name,
						row ? "row" : "statement")));
	crm_require_crm_table(fcinfo, name);
}

/*
 * Whether a row version was updated or deleted after it was written: its
 * xmax is set, and not by a mere lock (a foreign key's check locks records).
 * An update rolled back whose hint is not yet set counts too: the owner is
 * then looked up, which is never wrong.
 */
static bool
row_superseded(HeapTuple tuple)
{
	uint16		infomask = tuple->t_data->t_infomask;

	return !(infomask & HEAP_XMAX_INVALID) && !HEAP_XMAX_IS_LOCKED_ONLY(infomask);
}

/*
 * crm.log_row(): AFTER INSERT OR UPDATE OR DELETE row trigger.
 */
Datum
crm_log_row(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	row;
	const char *action;
	char	   *changes = NULL;
	bool		isnull;
	Datum		id;
	int			id_column;
	Datum		owner = (Datum) 0;
	bool		owner_null = true;
	OplogNotes *n;
	MemoryContext old;

	require_trigger(fcinfo, true, "crm.log_row()");
	if (crm_restoring())
		return PointerGetDatum(NULL);	/* the dump holds the log already */
	rel = td->tg_relation;
	desc = RelationGetDescr(rel);
	row = td->tg_trigtuple;
	id_column = crm_trigger_column(rel, "id", INT8OID);
	if (id_column == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm.log_row(): table \"%s\" has no id", RelationGetRelationName(rel))));
	id = heap_getattr(row, id_column, desc, &isnull);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		action = "insert";
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		int			only = 0;

		action = "update";
		changes = changed_fields(RelationGetRelationName(rel), desc, td->tg_trigtuple, td->tg_newtuple, &only);
		if (changes == NULL)
			return PointerGetDatum(NULL);	/* only updated_at moved */
		/* moves into and out of a public pool are in crm.customer_owner_change */
		if (only > 0 && strcmp(NameStr(TupleDescAttr(desc, only - 1)->attname), "owner_id") == 0 &&
			(crm_is_pool(DatumGetInt64(heap_getattr(td->tg_trigtuple, only, desc, &isnull))) ||
			 crm_is_pool(DatumGetInt64(heap_getattr(td->tg_newtuple, only, desc, &isnull)))))
			return PointerGetDatum(NULL);
	}
	else
	{
		action = "delete";
		changes = whole_row(desc, row);
	}

	/*
	 * A type visible by its owner (the trigger's argument, from crm's
	 * registry) decides its own scope: its owner is in the row, and the log
	 * need not look it up.  A deleted record has no scope.  A row that a
	 * trigger firing before this one updated or deleted again (a DBA's, giving
	 * the customer to someone else, whose moves ran then) is looked up when
	 * written, as the record is then.
	 */
	if (td->tg_trigger->tgnargs > 0 && strcmp(td->tg_trigger->tgargs[0], "owner") == 0 &&
		!TRIGGER_FIRED_BY_DELETE(td->tg_event))
	{
		HeapTuple	current = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : row;
		int			owner_column = crm_trigger_column(rel, "owner_id", INT8OID);

		if (owner_column > 0 && !row_superseded(current))
			owner = heap_getattr(current, owner_column, desc, &owner_null);
	}

	n = notes_for(RelationGetRelid(rel));
	old = MemoryContextSwitchTo(n->cxt);
	if (n->count == 0)
		n->owners_since = crm_record_links_changes;
	if (n->count == n->size)
	{
		n->size = Max(64, n->size * 2);
		n->ids = n->ids ? repalloc(n->ids, sizeof(int64) * n->size) : palloc(sizeof(int64) * n->size);
		n->actions = n->actions ? repalloc(n->actions, sizeof(char *) * n->size) : palloc(sizeof(char *) * n->size);
		n->changes = n->changes ? repalloc(n->changes, sizeof(char *) * n->size) : palloc(sizeof(char *) * n->size);
		n->owners = n->owners ? repalloc(n->owners, sizeof(Datum) * n->size) : palloc(sizeof(Datum) * n->size);
		n->owner_nulls = n->owner_nulls ? repalloc(n->owner_nulls, sizeof(bool) * n->size) : palloc(sizeof(bool) * n->size);
	}
	n->ids[n->count] = DatumGetInt64(id);
	n->actions[n->count] = action;
	n->changes[n->count] = changes ? pstrdup(changes) : NULL;
	n->owners[n->count] = owner;
	n->owner_nulls[n->count] = owner_null;
	n->count++;
	MemoryContextSwitchTo(old);

	/*
	 * A statement that changes millions of rows writes its notes as it goes,
	 * in the current subtransaction, so that they still roll back with it.
	 */
	if (MemoryContextMemAllocated(n->cxt, false) > (Size) crm_oplog_work_mem * 1024)
		write_taken_notes(td->tg_relation, list_make1(n));
	return PointerGetDatum(NULL);
}

/* the change's origin as crm.change_source says it, or "" */
static const char *
change_source(void)
{
	const char *source = GetConfigOption("crm.change_source", true, false);

	return source ? source : "";
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/* "{[1,5],[7,7]}": the ids as a multirange (a statement's new ids are mostly consecutive) */
static char *
id_ranges(int64 *ids, int count)
{
	StringInfoData buf;
	int			i = 0;

	qsort(ids, count, sizeof(int64), cmp_int64);
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	while (i < count)
	{
		int			j = i;

		while (j + 1 < count && ids[j + 1] <= ids[j] + 1)
			j++;
		appendStringInfo(&buf, "%s[" INT64_FORMAT "," INT64_FORMAT "]", i ? "," : "", ids[i], ids[j]);
		i = j + 1;
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * Write the notes of a table into crm.oplog, as its owner.
 *
 * Updates and deletes get a row each (their changes differ); the records
 * inserted get one row together, their ids as a multirange in record_ids
 * (record_id is the first): a bulk insert logs in one row, not thousands.
 * Each row takes the scope of its record (crm.record_scope, which the planner
 * inlines), the first record's for an insert; a deleted record has none.  A
 * record whose owner the row trigger noted is not looked up (OFFSET 0 keeps
 * that test inside the look-up: pulled up into the join, it came after one).
 */
static void
write_notes(Relation rel, List *sets)
{
	ListCell   *lc;
	int			count = 0;
	int			nchanged = 0;
	int			ninserted = 0;
	int64	   *inserted;
	Datum	   *ids;
	Datum	   *actions;
	Datum	   *changes;
	bool	   *change_nulls;
	Datum	   *owners;
	bool	   *owner_nulls;
	Datum	   *looked_up;		/* records whose scope the log looked up */
	int			nlooked_up = 0;
	int			dims[1];
	int			lbs[1] = {1};
	Oid			types[7] = {TEXTOID, INT8ARRAYOID, TEXTARRAYOID, INT8OID, TEXTOID, TEXTARRAYOID, INT8ARRAYOID};
	Datum		values[7];
	char		nulls[8] = "       ";
	int64		employee_id;
	bool		acting;
	const char *source;
	CrmSwitch	sw;
	Oid			oplog;
	bool		scoped;

	foreach(lc, sets)
		count += ((OplogNotes *) lfirst(lc))->count;
	if (count == 0)
		return;
	inserted = palloc(sizeof(int64) * count);
	ids = palloc(sizeof(Datum) * count);
	actions = palloc(sizeof(Datum) * count);
	changes = palloc(sizeof(Datum) * count);
	change_nulls = palloc(sizeof(bool) * count);
	owners = palloc(sizeof(Datum) * count);
	owner_nulls = palloc(sizeof(bool) * count);
	looked_up = palloc(sizeof(Datum) * count);
	foreach(lc, sets)
	{
		OplogNotes *n = lfirst(lc);

		/*
		 * The owners noted hold unless shared rows changed scope since (a
		 * nested statement, in a subtransaction of a DBA's trigger, gave a
		 * customer away or deleted it: its moves did not see these notes).
		 */
		bool		owners_current = (n->owners_since == crm_record_links_changes);

		for (int i = 0; i < n->count; i++)
		{
			if (strcmp(n->actions[i], "insert") == 0)
			{
				inserted[ninserted++] = n->ids[i];
				continue;
			}
			ids[nchanged] = Int64GetDatum(n->ids[i]);
			actions[nchanged] = CStringGetTextDatum(n->actions[i]);
			change_nulls[nchanged] = (n->changes[i] == NULL);
			changes[nchanged] = n->changes[i] ? CStringGetTextDatum(n->changes[i]) : (Datum) 0;
			owners[nchanged] = n->owners[i];
			owner_nulls[nchanged] = n->owner_nulls[i] || !owners_current;
			if (owner_nulls[nchanged] && strcmp(n->actions[i], "delete") != 0)
				looked_up[nlooked_up++] = Int64GetDatum(n->ids[i]);
			nchanged++;
		}
	}

	/* a job acts for nobody; crm's own functions act for their caller */
	source = change_source();
	acting = strcmp(source, "job") != 0 && crm_change_actor(&employee_id);
	if (source[0] == '\0')
		source = acting ? "person" : "system";
	values[0] = CStringGetTextDatum(RelationGetRelationName(rel));
	values[3] = Int64GetDatum(acting ? employee_id : 0);
	nulls[3] = acting ? ' ' : 'n';
	values[4] = CStringGetTextDatum(source);

	/*
	 * crm 0.1's log has no scopes: until ALTER EXTENSION crm UPDATE, write it
	 * as 0.1 did.  Locked first, so that an update running now has committed
	 * (or not) before the columns are looked at.
	 */
	oplog = get_relname_relid("oplog", get_namespace_oid("crm", false));
	if (OidIsValid(oplog))
		LockRelationOid(oplog, RowExclusiveLock);
	scoped = OidIsValid(oplog) && get_attnum(oplog, "scope_type") != InvalidAttrNumber;

	/* the log is written by its owner: nobody else may write it */
	crm_switch_to_owner(&sw);
	SPI_connect();
	if (ninserted > 0)
	{
		looked_up[nlooked_up++] = Int64GetDatum(inserted[0]);
		values[1] = Int64GetDatum(inserted[0]);
		values[2] = CStringGetTextDatum(id_ranges(inserted, ninserted));
		types[1] = INT8OID;
		types[2] = TEXTOID;
		if (SPI_execute_with_args(scoped ?
								  "INSERT INTO crm.oplog (record_type, record_id, action, employee_id, source, record_ids,"
								  "                       scope_type, scope_owner, scope_id)"
								  " SELECT $1, lower($3::int8multirange), 'insert', $4, $5, $3::int8multirange,"
								  "        s.scope_type, s.scope_owner, s.scope_id"
								  "   FROM (VALUES (1)) v LEFT JOIN crm.record_scope($1, lower($3::int8multirange)) s ON true" :
								  "INSERT INTO crm.oplog (record_type, record_id, action, employee_id, source, record_ids)"
								  " VALUES ($1, lower($3::int8multirange), 'insert', $4, $5, $3::int8multirange)",
								  5, types, values, nulls, false, 0) != SPI_OK_INSERT)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg_internal("crm: writing the operation log failed")));
	}
	if (nchanged > 0)
	{
		dims[0] = nchanged;
		types[1] = INT8ARRAYOID;
		types[2] = TEXTARRAYOID;
		values[1] = PointerGetDatum(construct_array(ids, nchanged, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[2] = PointerGetDatum(construct_array(actions, nchanged, TEXTOID, -1, false, TYPALIGN_INT));
		values[5] = PointerGetDatum(construct_md_array(changes, change_nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
		values[6] = PointerGetDatum(construct_md_array(owners, owner_nulls, 1, dims, lbs, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (SPI_execute_with_args(scoped ?
								  "INSERT INTO crm.oplog (record_type, record_id, action, employee_id, source, changes,"
								  "                       scope_type, scope_owner, scope_id)"
								  " SELECT $1, r.id, r.action, $4, $5, r.changes::jsonb,"
								  "        coalesce(s.scope_type, CASE WHEN r.owner IS NOT NULL THEN $1 END),"
								  "        coalesce(s.scope_owner, r.owner), coalesce(s.scope_id, CASE WHEN r.owner IS NOT NULL THEN r.id END)"
								  "   FROM unnest($2, $3, $6, $7) AS r (id, action, changes, owner)"
								  "   LEFT JOIN LATERAL (SELECT * FROM crm.record_scope($1, r.id) x WHERE r.owner IS NULL OFFSET 0) s ON true" :
								  "INSERT INTO crm.oplog (record_type, record_id, action, employee_id, source, changes)"
								  " SELECT $1, r.id, r.action, $4, $5, r.changes::jsonb"
								  "   FROM unnest($2, $3, $6) AS r (id, action, changes)",
								  7, types, values, nulls, false, 0) != SPI_OK_INSERT)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg_internal("crm: writing the operation log failed")));
	}

	/*
	 * The owners looked up were read without a lock: lock the records that
	 * decide, and set the rows again if one changed hands meanwhile (an owner
	 * type's own rows were locked by the change itself).
	 */
	if (scoped && nlooked_up > 0)
	{
		Oid			lock_types[2] = {TEXTOID, INT8ARRAYOID};
		Datum		lock_values[2];

		lock_values[0] = values[0];
		lock_values[1] = PointerGetDatum(construct_array(looked_up, nlooked_up, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (SPI_execute_with_args("SELECT crm.lock_record_scopes($1, $2, 'crm.oplog')",
								  2, lock_types, lock_values, NULL, false, 0) != SPI_OK_SELECT)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg_internal("crm: locking the operation log's scopes failed")));
	}
	SPI_finish();
	crm_switch_back(&sw);
}

/*
 * crm.log_flush(): AFTER INSERT OR UPDATE OR DELETE statement trigger:
 * writes what the table's rows noted in this subtransaction (the statement's,
 * and those of subtransactions it ran that committed).
 */
Datum
crm_log_flush(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Oid			relid;
	SubTransactionId subxact = GetCurrentSubTransactionId();
	List	   *sets = NIL;
	ListCell   *lc;

	require_trigger(fcinfo, false, "crm.log_flush()");
	relid = RelationGetRelid(td->tg_relation);
	foreach(lc, notes)
	{
		OplogNotes *n = lfirst(lc);

		if (n->relid == relid && n->subxact == subxact)
			sets = lappend(sets, n);
	}
	if (sets != NIL)
		write_taken_notes(td->tg_relation, sets);
	return PointerGetDatum(NULL);
}
