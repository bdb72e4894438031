/*-------------------------------------------------------------------------
 *
 * record_scope.c
 *	  Finding the records an UPDATE moved to another scope.
 *
 * crm.record_scope_moved(), an AFTER UPDATE statement trigger on every
 * record table, hands the records whose owner (or the record they follow)
 * changed to crm.move_record_scopes(), which sets the scope of the shared rows
 * about them.  Most updates move nothing (a phone, a status), so finding the
 * moved records is the part every update pays: a join of the statement's old
 * and new rows, which the planner cannot estimate, sorted them both on disk.
 * PostgreSQL stores an updated row's old and new versions at the same
 * position of the two transition tables, so one pass over both compares them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_record_scope_moved);

/* Whether a row's scope columns hold the same values in both versions (binary: a doubt moves). */
static bool
same_columns(TupleTableSlot *o, TupleTableSlot *n, TupleDesc desc, const int *cols, int ncols)
{
	for (int i = 0; i < ncols; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, cols[i] - 1);
		bool		onull,
					nnull;
		Datum		ov = slot_getattr(o, cols[i], &onull);
		Datum		nv = slot_getattr(n, cols[i], &nnull);

		if (onull != nnull || (!onull && !datumIsEqual(ov, nv, att->attbyval, att->attlen)))
			return false;
	}
	return true;
}

/* Reads a transition table from its start, with a read pointer of its own (as a scan of it does). */
static void
start_reading(Tuplestorestate *rows)
{
	tuplestore_select_read_pointer(rows, tuplestore_alloc_read_pointer(rows, EXEC_FLAG_REWIND));
	tuplestore_rescan(rows);
}

/*
 * crm.record_scope_moved(): AFTER UPDATE FOR EACH STATEMENT, with the old and
 * new rows, on the tables of crm.record_type.
 */
Datum
crm_record_scope_moved(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	char	   *type = NULL;
	char		visibility = 0;
	char	   *parent_column = NULL;
	int			cols[2];
	int			ncols;
	int			id_column;
	TupleTableSlot *o;
	TupleTableSlot *n;
	Datum	   *moved;
	int			nmoved = 0;
	int			size = 64;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_BY_UPDATE(td->tg_event) ||
		TRIGGER_FIRED_FOR_ROW(td->tg_event) || td->tg_oldtable == NULL || td->tg_newtable == NULL ||
		!crm_record_type_of_table(RelationGetRelid(td->tg_relation), &type, &visibility, &parent_column))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("crm.record_scope_moved() runs only AFTER UPDATE FOR EACH STATEMENT on the record tables (crm.record_type), not on %s",
						CALLED_AS_TRIGGER(fcinfo) ?
						quote_qualified_identifier(get_namespace_name(RelationGetNamespace(td->tg_relation)),
												   RelationGetRelationName(td->tg_relation)) : "a query"),
				 errhint("crm attaches it to each registered type's table, with the statement's old and new rows.")));
	rel = td->tg_relation;
	desc = RelationGetDescr(rel);

	/* an owner's own records follow their owner; the others the record they name */
	if (visibility == 'o')
	{
		cols[0] = crm_trigger_column(rel, "owner_id", INT8OID);
		ncols = 1;
	}
	else if (parent_column != NULL)
	{
		cols[0] = crm_trigger_column(rel, parent_column, INT8OID);
		ncols = 1;
	}
	else
	{
		cols[0] = crm_trigger_column(rel, "record_type", TEXTOID);
		cols[1] = crm_trigger_column(rel, "record_id", INT8OID);
		ncols = 2;
	}
	id_column = crm_trigger_column(rel, "id", INT8OID);
	if (id_column == 0 || cols[0] == 0 || (ncols == 2 && cols[1] == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm.record_scope_moved(): table \"%s\" lacks the columns of its type %s",
								 RelationGetRelationName(rel), type)));

	o = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	n = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	moved = palloc(sizeof(Datum) * size);
	start_reading(td->tg_oldtable);
	start_reading(td->tg_newtable);
	for (;;)
	{
		bool		more_old = tuplestore_gettupleslot(td->tg_oldtable, true, false, o);
		bool		more_new = tuplestore_gettupleslot(td->tg_newtable, true, false, n);
		bool		isnull;
		Datum		old_id = more_old ? slot_getattr(o, id_column, &isnull) : (Datum) 0;
		Datum		new_id = more_new ? slot_getattr(n, id_column, &isnull) : (Datum) 0;

		if (!more_old && !more_new)
			break;
		if (more_old != more_new)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg_internal("crm.record_scope_moved(): an update of \"%s\" has %s old rows than new ones",
									 RelationGetRelationName(rel), more_old ? "more" : "fewer")));
		/* what names a record by its id would name another, or none */
		if (DatumGetInt64(old_id) != DatumGetInt64(new_id))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s %lld cannot change its id", type, (long long) DatumGetInt64(old_id)),
					 errdetail("Its follow-ups, tags, team entries, attachments and operation log name it by its id."),
					 errhint("Keep the id; to start over, create a new %s and merge or delete this one.", type)));
		if (same_columns(o, n, desc, cols, ncols))
			continue;
		if (nmoved == size)
		{
			size *= 2;
			moved = repalloc(moved, sizeof(Datum) * size);
		}
		moved[nmoved++] = new_id;
	}
	ExecDropSingleTupleTableSlot(o);
	ExecDropSingleTupleTableSlot(n);

	if (nmoved > 0)
	{
		Oid			types[2] = {TEXTOID, INT8ARRAYOID};
		Datum		values[2];

		values[0] = CStringGetTextDatum(type);
		values[1] = PointerGetDatum(construct_array(moved, nmoved, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		crm_run_as_owner("SELECT 0 FROM crm.move_record_scopes($1, $2)", 2, types, values);
	}
	return PointerGetDatum(NULL);
}
