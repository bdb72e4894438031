/*-------------------------------------------------------------------------
 *
 * org.c
 *	  crm.deactivate_employee(): hand an employee's work over and deactivate
 *	  them, in one transaction.
 *
 * The handover must move every record the employee owns, including records
 * the administrator doing it cannot see, so the moves run as the owner of
 * the crm tables (crm.handover_employee, not executable by anyone else).
 * Who may ask is decided here, with the caller's own identity, before the
 * switch.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_deactivate_employee);

/*
 * crm.deactivate_employee(employee_id bigint, handover_to bigint) returns integer
 *
 * Returns the number of records, team places and other items handed over.
 */
Datum
crm_deactivate_employee(PG_FUNCTION_ARGS)
{
	int64		employee_id;
	int64		handover_to;
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2];
	Oid			save_userid;
	int			save_sec;
	bool		isnull;
	int32		moved;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("crm.deactivate_employee needs the employee and the employee who takes over"),
				 errhint("Name an active employee as handover_to; records are never left without an owner.")));
	employee_id = PG_GETARG_INT64(0);
	handover_to = PG_GETARG_INT64(1);

	if (!crm_may_administer("admin.org"))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not deactivate employee %lld",
						GetUserNameFromId(GetUserId(), false), (long long) employee_id),
				 errdetail("Deactivating employees needs membership in crm_admin or the permission \"admin.org\"."),
				 errhint("Ask an administrator to grant \"admin.org\" to one of your roles.")));

	values[0] = Int64GetDatum(employee_id);
	values[1] = Int64GetDatum(handover_to);
	SPI_connect();
	/* super admins are handled by the acting employee, not the table owner */
	if (SPI_execute_with_args("SELECT crm.is_super_admin($1)", 1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "crm: super admin check failed");
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) &&
		!superuser() && !crm_acting_is_super())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a super admin may deactivate super admin %lld", (long long) employee_id),
				 errhint("Ask another super admin.")));

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(crm_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_execute_with_args("SELECT crm.handover_employee($1, $2)", 2, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "crm: handover failed");
	moved = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SetUserIdAndSecContext(save_userid, save_sec);
	SPI_finish();
	PG_RETURN_INT32(moved);
}
