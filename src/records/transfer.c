/*-------------------------------------------------------------------------
 *
 * transfer.c
 *	  crm.transfer(): hand a batch of records to another employee (seed 003
 *	  转移), optionally with their related records and keeping the old owners
 *	  on the team, within the new owner's holding limit.
 *
 * The caller's side is checked here, with the caller's identity: the
 * <type>.transfer permission, and every record in the caller's scope (an id
 * that is not is refused without saying whether it exists).  The move itself
 * runs as the owner of the crm tables (crm.transfer_records), because the
 * new owner is usually outside the caller's scope, which row-level security
 * would not let an UPDATE reach.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_transfer);

/*
 * crm.transfer(record_type text, ids bigint[], to_employee bigint,
 *				with_related boolean, keep_old_owner_on_team boolean) returns integer
 *
 * Returns the number of records whose owner changed.
 */
Datum
crm_transfer(PG_FUNCTION_ARGS)
{
	char	   *type;
	char	   *relation;
	char	   *permission;
	Oid			types[5] = {TEXTOID, INT8ARRAYOID, INT8OID, BOOLOID, BOOLOID};
	Datum		values[5];
	int64		employee_id;
	MemoryContext caller = CurrentMemoryContext;
	CrmSwitch	pin;

	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("crm.transfer needs a record type, record ids, the employee who takes them and both options")));
	type = text_to_cstring(PG_GETARG_TEXT_PP(0));
	for (int i = 0; i < 5; i++)
		values[i] = PG_GETARG_DATUM(i);

	/* The types that take part in transfer, and their tables, are the registry's. */
	crm_switch_pin(&pin);
	SPI_connect();
	if (SPI_execute_with_args(crm_has_registry() ?
							  "SELECT (SELECT t.relation::pg_catalog.text FROM crm.record_type t"
							  "         WHERE t.name = $1 AND 'transfer' = ANY (t.capabilities)),"
							  "       crm.record_types_with('transfer')" :
							  "SELECT CASE WHEN $1 IN ('lead', 'customer') THEN 'crm.' || $1 END, 'lead, customer'",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: could not look up record type %s", type)));
	relation = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (relation == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("crm.transfer cannot transfer %s records", crm_quote(type, strlen(type))),
				 errhint("The record types that take part in transfer: %s (crm.record_type); a record's own records, such as a customer's contacts, go with it (with_related).",
						 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2))));
	relation = MemoryContextStrdup(caller, relation);
	SPI_finish();
	crm_switch_back(&pin);
	permission = psprintf("%s.transfer", type);

	if (!superuser())
	{
		bool		isnull;
		Datum		outside;

		if (!crm_acting_permission(permission, &employee_id))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("role \"%s\" may not transfer %s records", GetUserNameFromId(GetUserId(), false), type),
					 errdetail("Transferring needs an active employee whose roles grant \"%s\".", permission),
					 errhint("Ask an administrator to add \"%s\" to one of your roles.", permission)));
		/*
		 * as the caller: the records must be in the caller's own scope; the
		 * answer lets the owner work, so the caller's operators do not count
		 */
		crm_switch_pin(&pin);
		SPI_connect();
		/* the message names the first few ids: a list of thousands helps no one */
		if (SPI_execute_with_args(psprintf("SELECT array_to_string((array_agg(i ORDER BY i))[1:5], ', ')"
										   " || CASE WHEN count(*) > 5 THEN format(' and %%s more', count(*) - 5) ELSE '' END"
										   " FROM unnest($2) i"
										   " WHERE NOT EXISTS (SELECT FROM %s r WHERE r.id = i"
										   " AND r.owner_id = ANY (crm.scope_owners($1)))",
										   relation),
								  2, types, values, NULL, true, 1) != SPI_OK_SELECT)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("crm.transfer could not check the caller's scope")));
		outside = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("employee %lld may not transfer %s %s", (long long) employee_id, type,
							TextDatumGetCString(outside)),
					 errdetail("Those records are not owned by anyone in the employee's %s scope.", type),
					 errhint("Transfer only records you own or manage.")));
		SPI_finish();
		crm_switch_back(&pin);
	}
	PG_RETURN_INT32(crm_run_as_owner("SELECT crm.transfer_records($1, $2, $3, $4, $5)", 5, types, values));
}
