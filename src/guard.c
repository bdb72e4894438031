/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  The tables crm's C trigger functions run on.
 *
 * A trigger function attached to somebody else's table would take that
 * table's NEW, OLD, name and column types for crm's: stamps written into a
 * text column, log entries for a temporary table named "customer".  Nobody
 * but crm's owner can attach them (EXECUTE is not granted, src/sql/98_grants.sql),
 * and each one still refuses any table outside schema crm, where only the
 * owner creates tables, and any column of a type it does not expect.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "crm.h"

/* Refuse to run as a trigger on a table outside schema crm. */
void
crm_require_crm_table(FunctionCallInfo fcinfo, const char *function)
{
	Relation	rel = ((TriggerData *) fcinfo->context)->tg_relation;
	Oid			nsp = get_namespace_oid("crm", true);

	if (!OidIsValid(nsp) || RelationGetNamespace(rel) != nsp)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s cannot run on table \"%s\"", function, RelationGetRelationName(rel)),
				 errdetail("It is a trigger function of crm's own tables."),
				 errhint("crm attaches its trigger functions itself; write a trigger function of your own.")));
}

/*
 * The number of a column a trigger writes or reads in binary form, 0 when the
 * table has none, an error when it has one of another type.
 */
int
crm_trigger_column(Relation rel, const char *column, Oid type)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || strcmp(NameStr(att->attname), column) != 0)
			continue;
		if (att->atttypid != type)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of \"%s\" is of type %s, not %s", column,
							RelationGetRelationName(rel), format_type_be(att->atttypid), format_type_be(type)),
					 errhint("crm's trigger functions run only on crm's own tables.")));
		return i + 1;
	}
	return 0;
}
