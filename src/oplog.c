/*-------------------------------------------------------------------------
 *
 * oplog.c
 *	  The operation log (操作记录): who changed which field of which record
 *	  from what to what, when, and through what (a person, an import, a job).
 *
 * Two triggers on every business table:
 *	 crm.log_row()	 AFTER row trigger: notes the record and, for an UPDATE,
 *					 each changed field's old and new value (updated_at,
 *					 last_follow_up_at and generated keys, which crm maintains,
 *					 are left out),
 *					 for a DELETE the row as it was;
 *	 crm.log_flush() AFTER statement trigger: writes what the statement's
 *					 rows noted into crm.oplog with one INSERT, and the
 *					 records it inserted as one row.
 * So a statement that changes 100,000 rows costs 100,000 small notes in
 * memory and one set-based insert, not 100,000 inserts.  Notes live in
 * transaction memory and are dropped if the transaction aborts.
 *
 * Values are logged as their text output, so that every type logs alike.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
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

/* What the rows of one statement on one table noted. */
typedef struct OplogNotes
{
	Oid			relid;
	int			count;
	int			size;
	int64	   *ids;
	const char **actions;
	char	  **changes;		/* JSON text, or NULL */
} OplogNotes;

static MemoryContext notes_cxt = NULL;
static List *notes = NIL;

static void
oplog_xact_callback(XactEvent event, void *arg)
{
	/* the context is a child of TopTransactionContext: it goes with it */
	notes_cxt = NULL;
	notes = NIL;
}

/* A failed statement's rows were rolled back: so are its notes. */
static void
oplog_subxact_callback(SubXactEvent event, SubTransactionId sub, SubTransactionId parent, void *arg)
{
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	foreach(lc, notes)
		((OplogNotes *) lfirst(lc))->count = 0;
}

void
crm_oplog_init(void)
{
	RegisterXactCallback(oplog_xact_callback, NULL);
	RegisterSubXactCallback(oplog_subxact_callback, NULL);
}

static OplogNotes *
notes_for(Oid relid)
{
	ListCell   *lc;
	OplogNotes *n;
	MemoryContext old;

	foreach(lc, notes)
	{
		n = lfirst(lc);
		if (n->relid == relid)
			return n;
	}
	if (notes_cxt == NULL)
		notes_cxt = AllocSetContextCreate(TopTransactionContext, "crm oplog notes", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(notes_cxt);
	n = palloc0(sizeof(OplogNotes));
	n->relid = relid;
	notes = lappend(notes, n);
	MemoryContextSwitchTo(old);
	return n;
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
skipped_column(Form_pg_attribute att)
{
	return att->attisdropped || att->attgenerated != '\0' || strcmp(NameStr(att->attname), "updated_at") == 0 ||
		strcmp(NameStr(att->attname), "last_follow_up_at") == 0;
}

/*
 * {"field": ["old", "new"], ...} for the fields an UPDATE changed, or NULL;
 * *only is the column number when just one changed.
 */
static char *
changed_fields(TupleDesc desc, HeapTuple old, HeapTuple new, int *only)
{
	StringInfoData buf;
	int			changed = 0;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 1; i <= desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i - 1);
		bool		oldnull,
					newnull;
		Datum		oldval,
					newval;

		if (skipped_column(att))
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
		changes = changed_fields(desc, td->tg_trigtuple, td->tg_newtuple, &only);
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

	n = notes_for(RelationGetRelid(rel));
	old = MemoryContextSwitchTo(notes_cxt);
	if (n->count == n->size)
	{
		n->size = Max(64, n->size * 2);
		n->ids = n->ids ? repalloc(n->ids, sizeof(int64) * n->size) : palloc(sizeof(int64) * n->size);
		n->actions = n->actions ? repalloc(n->actions, sizeof(char *) * n->size) : palloc(sizeof(char *) * n->size);
		n->changes = n->changes ? repalloc(n->changes, sizeof(char *) * n->size) : palloc(sizeof(char *) * n->size);
	}
	n->ids[n->count] = DatumGetInt64(id);
	n->actions[n->count] = action;
	n->changes[n->count] = changes ? pstrdup(changes) : NULL;
	n->count++;
	MemoryContextSwitchTo(old);
	return PointerGetDatum(NULL);
}

/* the change's origin: crm.change_source if set, else a person or the system */
static const char *
change_source(bool employee_acting)
{
	const char *source = GetConfigOption("crm.change_source", true, false);

	if (source != NULL && source[0] != '\0')
		return source;
	return employee_acting ? "person" : "system";
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
 * crm.log_flush(): AFTER INSERT OR UPDATE OR DELETE statement trigger.
 *
 * Updates and deletes get a row each (their changes differ); the records a
 * statement inserted get one row together, their ids as a multirange in
 * record_ids (record_id is the first): a bulk insert logs in one row, not
 * thousands.
 */
Datum
crm_log_flush(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	OplogNotes *n;
	int			count;
	int			nchanged = 0;
	int			ninserted = 0;
	int64	   *inserted;
	Datum	   *ids;
	Datum	   *actions;
	Datum	   *changes;
	bool	   *change_nulls;
	int			dims[1];
	int			lbs[1] = {1};
	Oid			types[6] = {TEXTOID, INT8ARRAYOID, TEXTARRAYOID, INT8OID, TEXTOID, TEXTARRAYOID};
	Datum		values[6];
	char		nulls[7] = "      ";
	int64		employee_id;
	bool		acting;
	CrmSwitch	sw;

	require_trigger(fcinfo, false, "crm.log_flush()");
	if (notes == NIL)
		return PointerGetDatum(NULL);
	n = notes_for(RelationGetRelid(td->tg_relation));
	count = n->count;
	if (count == 0)
		return PointerGetDatum(NULL);

	inserted = palloc(sizeof(int64) * count);
	ids = palloc(sizeof(Datum) * count);
	actions = palloc(sizeof(Datum) * count);
	changes = palloc(sizeof(Datum) * count);
	change_nulls = palloc(sizeof(bool) * count);
	for (int i = 0; i < count; i++)
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
		nchanged++;
	}
	/* the statement's notes are taken: start afresh for the next one */
	n->count = 0;

	acting = crm_current_employee(&employee_id);
	values[0] = CStringGetTextDatum(RelationGetRelationName(td->tg_relation));
	values[3] = Int64GetDatum(employee_id);
	nulls[3] = acting ? ' ' : 'n';
	values[4] = CStringGetTextDatum(change_source(acting));

	/* the log is written by its owner: nobody else may write it */
	crm_switch_to_owner(&sw);
	SPI_connect();
	if (ninserted > 0)
	{
		values[1] = Int64GetDatum(inserted[0]);
		values[2] = CStringGetTextDatum(id_ranges(inserted, ninserted));
		types[1] = INT8OID;
		types[2] = TEXTOID;
		if (SPI_execute_with_args("INSERT INTO crm.oplog (record_type, record_id, action, employee_id, source, record_ids)"
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
		if (SPI_execute_with_args("INSERT INTO crm.oplog (record_type, record_id, action, employee_id, source, changes)"
								  " SELECT $1, r.id, r.action, $4, $5, r.changes::jsonb"
								  "   FROM unnest($2, $3, $6) AS r (id, action, changes)",
								  6, types, values, nulls, false, 0) != SPI_OK_INSERT)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg_internal("crm: writing the operation log failed")));
	}
	SPI_finish();
	crm_switch_back(&sw);
	return PointerGetDatum(NULL);
}
