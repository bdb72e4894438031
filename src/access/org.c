/*-------------------------------------------------------------------------
 *
 * org.c
 *	  Administrative actions that must change rows the administrator cannot
 *	  see: crm.deactivate_employee() (hand an employee's work over and
 *	  deactivate them), crm.delete_customer_status() (move a status's
 *	  customers and delete it) and crm.delete_stage() (move a stage's deals
 *	  and delete it).
 *
 * Who may ask is decided here, with the caller's own identity; the work then
 * runs as the owner of the crm tables, in an owner-only PL/pgSQL function
 * (crm.hand_over_work, crm.move_customer_status, crm.move_stage).  A SECURITY DEFINER
 * function could not do this: inside it, the caller's identity is gone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_deactivate_employee);
PG_FUNCTION_INFO_V1(crm_handover_employee);
PG_FUNCTION_INFO_V1(crm_delete_customer_status);
PG_FUNCTION_INFO_V1(crm_delete_stage);

/* crm_run_as_owner for an admin action with two bigint arguments */
static int32
call_as_owner(const char *action, const char *what, const char *sql, int64 arg1, int64 arg2)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2] = {Int64GetDatum(arg1), Int64GetDatum(arg2)};

	if (!crm_may_administer(action))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not %s", GetUserNameFromId(GetUserId(), false), what),
				 errdetail("This needs membership in crm_admin or the permission \"%s\".", action),
				 errhint("Ask an administrator to grant \"%s\" to one of your roles.", action)));
	return crm_run_as_owner(sql, 2, types, values);
}

/*
 * An employee's work to another, as crm.hand_over_work, deactivating them or
 * not; returns the number of records, team places and other items handed over.
 */
static int32
hand_over(FunctionCallInfo fcinfo, bool deactivate)
{
	int64		employee_id;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;
	bool		is_super;
	CrmSwitch	sw;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("crm.%s needs the employee and the employee who takes over",
						deactivate ? "deactivate_employee" : "handover_employee"),
				 errhint("Name an active employee as handover_to; records are never left without an owner.")));
	employee_id = PG_GETARG_INT64(0);

	/* only a super admin deactivates a super admin (a superuser may bootstrap): a fact read as the owner */
	values[0] = Int64GetDatum(employee_id);
	crm_switch_to_owner(&sw);
	SPI_connect();
	if (SPI_execute_with_args("SELECT crm.is_super_admin($1)", 1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: super admin check failed")));
	is_super = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	crm_switch_back(&sw);
	if (is_super && crm_may_administer("admin.org") && !superuser() && !crm_acting_is_super())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a super admin may %s super admin %s",
						deactivate ? "deactivate" : "hand over the work of", crm_employee_named(employee_id)),
				 errhint("Ask another super admin.")));

	/* nobody but a DBA deactivates themselves (crm.guard_own_access says so for an UPDATE) */
	{
		int64		me;

		if (deactivate && crm_current_employee(&me) && me == employee_id && !superuser())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("employee %s may not deactivate themselves", crm_employee_named(me)),
					 errhint("Ask another administrator.")));
	}

	/*
	 * nor hands the records of someone outside their own scope to someone
	 * inside it (themselves, or a report), nor to themselves places on the
	 * teams of records outside it, unless a super admin or a DBA: an
	 * administrator does not widen their own access (a report's team place
	 * shows the record to the report alone)
	 */
	{
		int64		me;
		Oid			admin = get_role_oid("crm_admin", true);

		if (crm_current_employee(&me) && crm_may_administer("admin.org") &&
			!superuser() && !crm_acting_is_super() && !(OidIsValid(admin) && has_privs_of_role(GetUserId(), admin)))
		{
			Oid			both[2] = {INT8OID, INT8OID};
			Datum		args[2] = {Int64GetDatum(employee_id), PG_GETARG_DATUM(1)};
			char	   *outside = NULL;
			char	   *places = NULL;
			CrmSwitch	pin;
			SPITupleTable *types;

			/*
			 * as the caller (the scopes are theirs), but under crm's
			 * search_path: not their =; the types are the registry's
			 */
			crm_switch_pin(&pin);
			SPI_connect();
			if (SPI_execute_with_args(crm_has_registry() ?
									  "SELECT t.name, t.relation::text, $2 = ANY (crm.scope_owners(t.name)) AND NOT $1 = ANY (crm.scope_owners(t.name))"
									  "  FROM crm.record_type t WHERE 'handover' = ANY (t.capabilities) AND t.visibility = 'owner'"
									  " ORDER BY t.position" :
									  "SELECT t, 'crm.' || t, $2 = ANY (crm.scope_owners(t)) AND NOT $1 = ANY (crm.scope_owners(t))"
									  "  FROM unnest(ARRAY['lead', 'customer']) t",
									  2, both, args, NULL, true, 0) != SPI_OK_SELECT)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg_internal("crm: handover scope check failed")));

			/*
			 * what the leaver holds is read as the owner (the caller does not
			 * see it).  A leaver outside the scope of a type and a successor
			 * inside it: records, team places or a leader's post (which
			 * widens every type) widen it.  Otherwise, the caller their own
			 * successor: places on the teams of records the caller does not
			 * see (a team place shows a record whatever the scope).
			 */
			types = SPI_tuptable;
			for (uint64 i = 0; i < types->numvals; i++)
			{
				char	   *name = SPI_getvalue(types->vals[i], types->tupdesc, 1);
				char	   *relation = SPI_getvalue(types->vals[i], types->tupdesc, 2);
				bool		isnull;
				bool		brought_inside = DatumGetBool(SPI_getbinval(types->vals[i], types->tupdesc, 3, &isnull));
				CrmSwitch	owner;
				bool		widens;

				if (!brought_inside && PG_GETARG_INT64(1) != me)
					continue;
				crm_switch_to_owner(&owner);
				if (SPI_execute_with_args(!brought_inside ?
										  psprintf("SELECT array_agg(m.record_id) FROM crm.team_member m"
												   " WHERE m.employee_id = $1 AND m.record_type = %s",
												   quote_literal_cstr(name)) :
										  psprintf("SELECT FROM crm.department d WHERE d.leader_id = $1"
												   " UNION ALL SELECT FROM %s r WHERE r.owner_id = $1"
												   " UNION ALL SELECT FROM crm.team_member m WHERE m.employee_id = $1 AND m.record_type = %s"
												   " LIMIT 1", relation, quote_literal_cstr(name)),
										  1, both, args, NULL, true, 1) != SPI_OK_SELECT)
					ereport(ERROR,
							(errcode(ERRCODE_INTERNAL_ERROR),
							 errmsg_internal("crm: handover scope check failed")));
				crm_switch_back(&owner);
				widens = SPI_processed > 0;
				if (!brought_inside)
				{
					Oid			ids_type[1] = {INT8ARRAYOID};
					Datum		ids[1];

					ids[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
					widens = false;
					/* the records' own policies, as the caller, say which they see */
					if (!isnull)
					{
						if (SPI_execute_with_args(psprintf("SELECT FROM unnest($1) i WHERE NOT EXISTS (SELECT FROM %s r WHERE r.id = i) LIMIT 1",
														   relation),
												  1, ids_type, ids, NULL, true, 1) != SPI_OK_SELECT)
							ereport(ERROR,
									(errcode(ERRCODE_INTERNAL_ERROR),
									 errmsg_internal("crm: handover scope check failed")));
						widens = SPI_processed > 0;
					}
					if (widens)
						places = places ? psprintf("%s, %s", places, name) : name;
				}
				else if (widens)
					outside = outside ? psprintf("%s, %s", outside, name) : name;
			}
			/*
			 * nor takes a leader's post themselves (crm.guard_own_access
			 * refuses it by UPDATE): a leader hears of the records of their
			 * department, whoever it is outside their scope.  A report may
			 * take it: the post moves between two people the caller reached
			 * already.
			 */
			if (outside == NULL && places == NULL && PG_GETARG_INT64(1) == me)
			{
				CrmSwitch	owner;

				crm_switch_to_owner(&owner);
				if (SPI_execute_with_args("SELECT d.name FROM crm.department d WHERE d.leader_id = $1 ORDER BY d.id LIMIT 1",
										  1, both, args, NULL, true, 1) != SPI_OK_SELECT)
					ereport(ERROR,
							(errcode(ERRCODE_INTERNAL_ERROR),
							 errmsg_internal("crm: handover scope check failed")));
				crm_switch_back(&owner);
				if (SPI_processed > 0)
				{
					char	   *department = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("employee %s may not take over the lead of department \"%s\" from employee %s",
									crm_employee_named(me), crm_quote(department, strlen(department)), crm_employee_named(employee_id)),
							 errdetail("An administrator who is not a super admin does not make themselves a leader: a leader hears of the records of their department."),
							 errhint("Name another successor, or ask a super admin.")));
				}
			}
			if (outside != NULL || places != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("employee %s may not hand the records of employee %s to employee %s",
								crm_employee_named(me), crm_employee_named(employee_id), crm_employee_named(PG_GETARG_INT64(1))),
						 outside != NULL ?
						 errdetail("Employee %s is outside their %s scope and employee %s is inside it; an administrator who is not a super admin does not widen their own access.",
								   crm_employee_named(employee_id), outside, crm_employee_named(PG_GETARG_INT64(1))) :
						 errdetail("Employee %s is on the teams of %s records outside the scope of employee %s; an administrator who is not a super admin does not widen their own access.",
								   crm_employee_named(employee_id), places, crm_employee_named(me)),
						 errhint(outside != NULL ? "Name a successor outside your scope, or ask a super admin." :
								 "Name another successor, or ask a super admin.")));
			SPI_finish();
			crm_switch_back(&pin);
		}
	}

	return call_as_owner("admin.org",
						 psprintf(deactivate ? "deactivate employee %lld" : "hand over the work of employee %lld", (long long) employee_id),
						 deactivate ? "SELECT crm.hand_over_work($1, $2, true)" : "SELECT crm.hand_over_work($1, $2, false)",
						 employee_id, PG_GETARG_INT64(1));
}

/* crm.deactivate_employee(employee_id bigint, handover_to bigint) returns integer */
Datum
crm_deactivate_employee(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(hand_over(fcinfo, true));
}

/*
 * crm.handover_employee(employee_id bigint, handover_to bigint) returns integer
 *
 * The same for an employee who stays as they are: one deactivated already
 * (directory sync, an UPDATE) or changing jobs.
 */
Datum
crm_handover_employee(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(hand_over(fcinfo, false));
}

/*
 * crm.delete_customer_status(status_id bigint, move_to bigint) returns integer
 *
 * Deletes a follow-up status after moving its customers, all of them, to
 * another; returns how many moved.
 */
Datum
crm_delete_customer_status(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("crm.delete_customer_status needs the status and the status its customers move to")));
	PG_RETURN_INT32(call_as_owner("admin.rules", "delete customer statuses",
								  "SELECT crm.move_customer_status($1, $2)",
								  PG_GETARG_INT64(0), PG_GETARG_INT64(1)));
}

/*
 * crm.delete_stage(stage_id bigint, move_to bigint) returns integer
 *
 * Deletes a sales stage after moving its deals, all of them, to another stage
 * of the set with the same outcome; returns how many moved.
 */
Datum
crm_delete_stage(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("crm.delete_stage needs the stage and the stage its deals move to")));
	PG_RETURN_INT32(call_as_owner("admin.rules", "delete stages",
								  "SELECT crm.move_stage($1, $2)",
								  PG_GETARG_INT64(0), PG_GETARG_INT64(1)));
}
