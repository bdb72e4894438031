/*-------------------------------------------------------------------------
 *
 * owner.c
 *	  Running crm's own queries as the owner of the crm tables, under a
 *	  search_path the caller cannot choose.
 *
 * Code that must read or write rows the acting employee cannot (the org
 * cache, the operation log, the inbox, duplicate candidates) switches to the
 * owner of the crm tables.  The caller chose the session's search_path, and a
 * query parsed or planned under it would call the caller's public.lower() or
 * operator = as the owner; so every such query runs under the pinned
 * search_path pg_catalog, pg_temp (pg_temp is never searched for functions or
 * operators, and names of crm's objects are always qualified).  An error's
 * abort restores both the user and the setting.  This file is the one place
 * crm changes the current user: to the owner, or back to the invoker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/syscache.h"

#include "crm.h"

#define PINNED_SEARCH_PATH "pg_catalog, pg_temp"

/*
 * crm.<name>(<argtypes>) by catalog lookup, InvalidOid when there is none.
 * Not LookupFuncName(): that checks USAGE on schema crm, which a role
 * outside crm has not, and crm's own code needs no permission to find its
 * functions.
 */
Oid
crm_function_oid(const char *name, int nargs, const Oid *argtypes)
{
	Oid			nsp = get_namespace_oid("crm", true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid, CStringGetDatum(name),
						   PointerGetDatum(buildoidvector(argtypes, nargs)), ObjectIdGetDatum(nsp));
}

/* The owner of the crm tables: the role that created the extension. */
Oid
crm_owner(void)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(crm_employee_relid()));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("cache lookup failed for crm.employee")));
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * Pin the search_path until crm_switch_back(), without changing the user:
 * for statements crm prepared that its own trusted callers execute.  Costs
 * nothing when crm's own SET clause pinned it already.
 */
void
crm_switch_pin(CrmSwitch *sw)
{
	GetUserIdAndSecContext(&sw->save_userid, &sw->save_sec);
	sw->guc_level = -1;
	if (namespace_search_path != NULL && strcmp(namespace_search_path, PINNED_SEARCH_PATH) == 0)
		return;
	sw->guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", PINNED_SEARCH_PATH, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/* Act as the owner of the crm tables, search_path pinned, until crm_switch_back(). */
void
crm_switch_to_owner(CrmSwitch *sw)
{
	Oid			owner = crm_owner();

	crm_switch_pin(sw);
	SetUserIdAndSecContext(owner, sw->save_sec | SECURITY_LOCAL_USERID_CHANGE);
}

/*
 * Act as the role outside every SECURITY DEFINER switch (the login role, or
 * the role SET ROLE chose) until crm_switch_back(): whom a definer function
 * or an owner switch acts for.  The search_path stays the caller's.
 */
void
crm_switch_to_invoker(CrmSwitch *sw)
{
	GetUserIdAndSecContext(&sw->save_userid, &sw->save_sec);
	sw->guc_level = -1;
	SetUserIdAndSecContext(GetOuterUserId(), sw->save_sec);
}

void
crm_switch_back(CrmSwitch *sw)
{
	if (sw->guc_level >= 0)
		AtEOXact_GUC(true, sw->guc_level);
	SetUserIdAndSecContext(sw->save_userid, sw->save_sec);
}

/*
 * Run "SELECT owner_only_function($1, ...)" as the owner of the crm tables and
 * return its integer result.  The caller has checked who asks.
 */
int32
crm_run_as_owner(const char *sql, int nargs, Oid *types, Datum *values)
{
	CrmSwitch	sw;
	bool		isnull;
	int32		result;

	crm_switch_to_owner(&sw);
	SPI_connect();
	if (SPI_execute_with_args(sql, nargs, types, values, NULL, false, 1) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: %s failed", sql)));
	result = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	crm_switch_back(&sw);
	return result;
}
