/*-------------------------------------------------------------------------
 *
 * context.c
 *	  What crm's own functions tell its triggers, and nobody else can.
 *
 * Converting a lead makes a customer that duplicate rules must not match
 * against that lead (crm.converting_lead); an import's changes are logged as
 * an import (crm.change_source).  Both settings change a rule's outcome or an
 * audit record, so they are superuser-only: an ordinary session cannot SET
 * them.  crm.convert_lead() and crm.import_customers() set them here, for the
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

/* crm.<function>(arg) as the caller, with a superuser-only setting set meanwhile */
static Datum
call_with_setting(const char *function, Oid argtype, Datum arg, const char *setting, const char *value)
{
	Oid			oid = crm_function_oid(function, 1, &argtype);
	int			level;
	Datum		result;

	if (!OidIsValid(oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function crm.%s is missing", function),
				 errhint("crm's install script defines it: the extension was altered by hand.")));
	level = NewGUCNestLevel();
	(void) set_config_option(setting, value, PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	result = OidFunctionCall1(oid, arg);
	AtEOXact_GUC(true, level);
	return result;
}

PG_FUNCTION_INFO_V1(crm_convert_lead);

/* crm.convert_lead(lead_id bigint) returns bigint: src/sql/55_convert.sql */
Datum
crm_convert_lead(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(call_with_setting("convert_lead_apply", INT8OID, PG_GETARG_DATUM(0), "crm.converting_lead",
									  psprintf(INT64_FORMAT, PG_GETARG_INT64(0))));
}

PG_FUNCTION_INFO_V1(crm_import_customers);

/* crm.import_customers(staging regclass, OUT imported, OUT refused): src/sql/75_import.sql */
Datum
crm_import_customers(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(call_with_setting("import_customers_apply", REGCLASSOID, PG_GETARG_DATUM(0),
									  "crm.change_source", "import"));
}
