/*-------------------------------------------------------------------------
 *
 * context.c
 *	  What crm's own functions tell its triggers, and nobody else can.
 *
 * Converting a lead makes a customer that duplicate rules must not match
 * against that lead (crm.converting_lead); an import's changes are logged as
 * an import (crm.change_source); reopening a deal lets it leave its won or
 * lost stage (crm.reopening_opportunity).  These settings change a rule's outcome or an
 * audit record, so they are superuser-only: an ordinary session cannot SET
 * them.  crm.convert_lead(), the imports and crm.reopen_opportunity() set
 * them here, for the
 * duration of their work, and run that work as the caller, under row-level
 * security and every check a direct write meets, in owner-only PL/pgSQL
 * functions that nothing but these entry points can reach (fmgr, unlike SQL,
 * does not check EXECUTE).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "crm.h"

/*
 * crm.<function>(args) as the caller, with a superuser-only setting set
 * meanwhile; the result is the caller's.
 */
static Datum
call_with_args(FunctionCallInfo caller, const char *function, int nargs, Oid *argtypes, NullableDatum *args,
			   const char *setting, const char *value)
{
	Oid			oid = crm_function_oid(function, nargs, argtypes);
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fcinfo, FUNC_MAX_ARGS);
	int			level;
	Datum		result;

	if (!OidIsValid(oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function crm.%s is missing", function),
				 errhint("crm's install script defines it: the extension was altered by hand.")));
	fmgr_info(oid, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, nargs, InvalidOid, NULL, NULL);
	for (int i = 0; i < nargs; i++)
		fcinfo->args[i] = args[i];
	level = NewGUCNestLevel();
	(void) set_config_option(setting, value, PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	result = FunctionCallInvoke(fcinfo);
	AtEOXact_GUC(true, level);
	caller->isnull = fcinfo->isnull;
	return result;
}

/* The same, with the caller's arguments (NULL ones too). */
static Datum
call_with_setting(FunctionCallInfo caller, const char *function, Oid *argtypes, const char *setting, const char *value)
{
	return call_with_args(caller, function, caller->nargs, argtypes, caller->args, setting, value);
}

PG_FUNCTION_INFO_V1(crm_convert_lead);

/* crm.convert_lead(lead_id bigint, into_customer bigint, with_opportunity boolean) returns bigint: src/sql/55_convert.sql */
Datum
crm_convert_lead(PG_FUNCTION_ARGS)
{
	Oid			types[3] = {INT8OID, INT8OID, BOOLOID};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("crm.convert_lead needs the lead to convert")));
	return call_with_setting(fcinfo, "convert_lead_apply", types, "crm.converting_lead",
							 psprintf(INT64_FORMAT, PG_GETARG_INT64(0)));
}

PG_FUNCTION_INFO_V1(crm_import_customers);

/* crm.import_customers(staging regclass, OUT imported, OUT refused): src/sql/75_import.sql */
Datum
crm_import_customers(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {REGCLASSOID};

	return call_with_setting(fcinfo, "import_customers_apply", types, "crm.change_source", "import");
}

/*
 * crm.import_products(staging regclass) and crm.import_opportunities(staging
 * regclass), OUT imported, OUT refused: src/sql/76_import_deals.sql
 */
static Datum
import_records(FunctionCallInfo fcinfo, const char *record_type)
{
	Oid			types[2] = {TEXTOID, REGCLASSOID};
	NullableDatum args[2] = {{CStringGetTextDatum(record_type), false}, fcinfo->args[0]};

	return call_with_args(fcinfo, "import_records_apply", 2, types, args, "crm.change_source", "import");
}

PG_FUNCTION_INFO_V1(crm_import_products);

Datum
crm_import_products(PG_FUNCTION_ARGS)
{
	return import_records(fcinfo, "product");
}

PG_FUNCTION_INFO_V1(crm_import_opportunities);

Datum
crm_import_opportunities(PG_FUNCTION_ARGS)
{
	return import_records(fcinfo, "opportunity");
}

PG_FUNCTION_INFO_V1(crm_reopen_opportunity);

/* crm.reopen_opportunity(opportunity_id bigint, stage_id bigint) returns crm.opportunity: src/sql/57_opportunities.sql */
Datum
crm_reopen_opportunity(PG_FUNCTION_ARGS)
{
	Oid			types[2] = {INT8OID, INT8OID};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("crm.reopen_opportunity needs the deal to reopen")));
	return call_with_setting(fcinfo, "reopen_opportunity_apply", types, "crm.reopening_opportunity",
							 psprintf(INT64_FORMAT, PG_GETARG_INT64(0)));
}
