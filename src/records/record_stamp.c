/*-------------------------------------------------------------------------
 *
 * record_stamp.c
 *	  crm.stamp_record(): the BEFORE INSERT OR UPDATE row trigger that every
 *	  business table carries.
 *
 * On INSERT it sets created_by to the acting employee (an employee cannot write
 * a row in someone else's name; a session that is nobody, such as an import
 * run by the DBA, may give it), fills created_at with now() unless given (a
 * follow-up may record a visit that happened earlier, never one to come), and
 * sets updated_at.
 * On UPDATE it sets updated_at and refuses changes to created_by and
 * created_at, which are history.  It runs for every row written, so it is C.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/datum.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_stamp_record);

#define STAMP_COLUMNS 3
/* how far ahead of the server's clock a given created_at may be (a client's clock skew) */
#define CREATED_AT_SKEW (5 * 60 * USECS_PER_SEC)

static void
refuse_history_change(Relation rel, const char *column)
{
	ereport(ERROR,
			(errcode(ERRCODE_GENERATED_ALWAYS),
			 errmsg("column \"%s\" of \"%s\" cannot be changed", column, RelationGetRelationName(rel)),
			 errdetail("%s records who created the row and when; crm sets it on insert.", column),
			 errhint("Leave %s out of the UPDATE.", column)));
}

Datum
crm_stamp_record(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	tuple;
	int			cols[STAMP_COLUMNS];
	Datum		values[STAMP_COLUMNS];
	bool		nulls[STAMP_COLUMNS];
	int			ncols = 0;
	int			created_by,
				created_at,
				updated_at;
	Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	bool		isnull;

	crm_require_before_write_trigger(fcinfo, "crm.stamp_record()");

	rel = trigdata->tg_relation;
	desc = RelationGetDescr(rel);
	created_by = crm_trigger_column(rel, "created_by", INT8OID);
	created_at = crm_trigger_column(rel, "created_at", TIMESTAMPTZOID);
	updated_at = crm_trigger_column(rel, "updated_at", TIMESTAMPTZOID);

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		tuple = trigdata->tg_trigtuple;
		if (created_by > 0)
		{
			int64		employee_id;
			Datum		given = heap_getattr(tuple, created_by, desc, &isnull);

			if (crm_current_employee(&employee_id))
			{
				if (!isnull && DatumGetInt64(given) != employee_id)
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("employee %lld cannot write a row of \"%s\" created by employee %lld",
									(long long) employee_id, RelationGetRelationName(rel),
									(long long) DatumGetInt64(given)),
							 errdetail("created_by records the employee who wrote the row."),
							 errhint("Leave created_by out; crm sets it to the acting employee.")));
				cols[ncols] = created_by;
				values[ncols] = Int64GetDatum(employee_id);
				nulls[ncols++] = false;
			}
		}
		if (created_at > 0)
		{
			Datum		given = heap_getattr(tuple, created_at, desc, &isnull);

			/* a future creation time would hold recycling clocks and timelines */
			if (!isnull && DatumGetTimestampTz(given) > GetCurrentTimestamp() + CREATED_AT_SKEW)
				ereport(ERROR,
						(errcode(ERRCODE_CHECK_VIOLATION),
						 errmsg("a new row of \"%s\" cannot have been created in the future, at %s",
								RelationGetRelationName(rel), timestamptz_to_str(DatumGetTimestampTz(given))),
						 errdetail("created_at may be given for history that already happened (up to 5 minutes ahead of the server's clock)."),
						 errhint("Leave created_at out for something that happens now.")));
			if (isnull)
			{
				cols[ncols] = created_at;
				values[ncols] = now;
				nulls[ncols++] = false;
			}
		}
	}
	else
	{
		HeapTuple	old = trigdata->tg_trigtuple;
		int			history[2] = {created_by, created_at};
		const char *names[2] = {"created_by", "created_at"};

		tuple = trigdata->tg_newtuple;
		for (int i = 0; i < 2; i++)
		{
			Form_pg_attribute att;
			bool		oldnull;
			Datum		oldval,
						newval;

			if (history[i] <= 0)
				continue;
			att = TupleDescAttr(desc, history[i] - 1);
			oldval = heap_getattr(old, history[i], desc, &oldnull);
			newval = heap_getattr(tuple, history[i], desc, &isnull);
			if (oldnull != isnull ||
				(!isnull && !datumIsEqual(oldval, newval, att->attbyval, att->attlen)))
				refuse_history_change(rel, names[i]);
		}
	}

	if (updated_at > 0)
	{
		cols[ncols] = updated_at;
		values[ncols] = now;
		nulls[ncols++] = false;
	}

	if (ncols > 0)
		tuple = heap_modify_tuple_by_cols(tuple, desc, ncols, cols, values, nulls);
	return PointerGetDatum(tuple);
}
