/*-------------------------------------------------------------------------
 *
 * duplicates.c
 *	  crm.find_duplicates(record_type, candidate): what a record would
 *	  duplicate, visibility-aware.
 *
 * The search (crm.dedupe_candidates) runs as crm's owner, so that a match
 * the caller may not see is still found: "is this already someone's?" must
 * have one answer for everybody.  Each match is then looked up again as the
 * caller, under row-level security: a visible one shows its id and name, an
 * invisible one only whose it is.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_find_duplicates);

/* a candidate holds a few short fields (names of at most 200 characters) */
#define CANDIDATE_MAX_BYTES 8192

Datum
crm_find_duplicates(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			types[2] = {TEXTOID, JSONBOID};
	Datum		args[2];
	char		nulls[2] = {' ', ' '};
	CrmSwitch	sw;
	SPITupleTable *hits;
	uint64		n;
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
	InitMaterializedSRF(fcinfo, 0);
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';

	SPI_connect();
	crm_switch_to_owner(&sw);
	ret = SPI_execute_with_args(
		"SELECT c.match_type, c.match_id, CASE WHEN e.is_pool THEN format('pool \"%s\"', e.name) ELSE e.name END, string_agg(DISTINCT c.rule, ', '), max(c.score), "
		"       string_agg(DISTINCT c.reason, ', ') "
		"  FROM crm.dedupe_candidates($1, $2) c LEFT JOIN crm.employee e ON e.id = c.owner_id "
		" GROUP BY 1, 2, 3 ORDER BY 5 DESC, 1, 2 LIMIT 50",
		2, types, args, nulls, true, 0);
	crm_switch_back(&sw);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "crm: could not search for duplicates");
	hits = SPI_tuptable;
	n = SPI_processed;

	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	hit = hits->vals[i];
		TupleDesc	desc = hits->tupdesc;
		Datum		values[7];
		bool		isnull[7];
		char	   *type = SPI_getvalue(hit, desc, 1);
		Oid			idtype[1] = {INT8OID};
		Datum		id[1];

		for (int col = 0; col < 7; col++)
			values[col] = col == 2 ? (Datum) 0 :
				SPI_getbinval(hit, desc, col < 2 ? col + 1 : col, &isnull[col]);
		isnull[2] = true;
		/* as the caller: row-level security decides what they may know */
		id[0] = values[1];
		crm_switch_pin(&sw);
		ret = SPI_execute_with_args(psprintf("SELECT name FROM crm.%s WHERE id = $1", quote_identifier(type)),
									1, idtype, id, NULL, true, 1);
		crm_switch_back(&sw);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "crm: could not look up %s", type);
		if (SPI_processed > 0)
			values[2] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull[2]);
		else
			isnull[1] = true;	/* neither its id nor its name */
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnull);
	}
	SPI_finish();
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(crm_merge_customers);

/*
 * crm.merge_customers(keep_id, merge_id): checked as the caller (the
 * customer.merge permission, both customers visible to them), then done as
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
		elog(ERROR, "crm: could not look up the customers to merge");
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
		elog(ERROR, "crm: could not merge customers");
	audit = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_INT64(audit);
}
