/*-------------------------------------------------------------------------
 *
 * identity.c
 *	  Who is acting: crm.current_employee_id() and its per-transaction cache.
 *
 * The acting employee is:
 *	 - if session_user is a member of crm_authenticator, the employee named
 *	   by the JWT claim crm.jwt_employee_claim, read from request.jwt.claims
 *	   (PostgREST) or jwt.claims.<claim> (PostGraphile), and only that: the
 *	   role an API server switches to is every request's, so an employee row
 *	   whose db_role names it must not make every request that employee;
 *	 - otherwise the employee whose db_role is current_user (psql, BI tools,
 *	   an app server that does SET ROLE);
 *	 - else nobody (NULL), which grants nothing.
 * Deactivated employees, and the rows through which public pools own their
 * customers (crm.employee.is_pool), resolve to nobody.
 *
 * The answer is cached for the rest of the transaction.  Any change to the
 * organisation tables fires crm.org_changed(), which broadcasts a relcache
 * invalidation of crm.employee; every backend drops its cache when it reads
 * that invalidation, which we force at each call so that a change committed
 * elsewhere is seen by the next statement.
 *
 * Lookups scan crm.employee's indexes directly: they neither need nor obey
 * the caller's privileges or row-level security on the table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_current_employee_id);
PG_FUNCTION_INFO_V1(crm_invoking_employee_id);
PG_FUNCTION_INFO_V1(crm_staff_session);
PG_FUNCTION_INFO_V1(crm_org_changed);
PG_FUNCTION_INFO_V1(crm_table_changed);

/* Where crm.employee and the columns we read live; looked up lazily. */
typedef struct EmployeeCatalog
{
	bool		valid;
	Oid			relid;
	Oid			pkey_index;		/* on (id) */
	Oid			role_index;		/* on (db_role) */
	AttrNumber	att_id;
	AttrNumber	att_db_role;
	AttrNumber	att_active;
	AttrNumber	att_is_pool;
} EmployeeCatalog;

/* The last answer and the inputs it was computed from. */
typedef struct IdentityCache
{
	bool		valid;
	LocalTransactionId lxid;
	Oid			userid;
	Oid			session_userid;
	bool		trusts_claims;	/* session_userid is a crm_authenticator */
	char	   *claims;			/* trusted claim text used, or NULL */
	bool		found;
	int64		employee_id;
	bool		in_parallel;	/* found in a parallel operation */
} IdentityCache;

static EmployeeCatalog employee_catalog;
static IdentityCache identity_cache;

/* Bumped whenever the organisation may have changed; scope.c compares it. */
uint64		crm_org_generation = 1;

static void
identity_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == employee_catalog.relid)
	{
		identity_cache.valid = false;
		employee_catalog.valid = false;
		crm_org_generation++;
	}
}

/* Role renames and membership changes alter who maps to whom. */
static void
identity_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	identity_cache.valid = false;
}

void
crm_identity_init(void)
{
	CacheRegisterRelcacheCallback(identity_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, identity_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, identity_syscache_callback, (Datum) 0);
}

static Oid
crm_relation_oid(Oid nsp, const char *name)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"crm.%s\" does not exist", name),
				 errhint("Install the extension with CREATE EXTENSION crm.")));
	return relid;
}

static void
load_employee_catalog(void)
{
	Oid			nsp;

	if (employee_catalog.valid)
		return;
	/* the relid we compare invalidations with must be current before anyone caches */
	crm_org_generation++;
	nsp = get_namespace_oid("crm", false);
	employee_catalog.relid = crm_relation_oid(nsp, "employee");
	employee_catalog.pkey_index = crm_relation_oid(nsp, "employee_pkey");
	employee_catalog.role_index = crm_relation_oid(nsp, "employee_db_role_key");
	employee_catalog.att_id = get_attnum(employee_catalog.relid, "id");
	employee_catalog.att_db_role = get_attnum(employee_catalog.relid, "db_role");
	employee_catalog.att_active = get_attnum(employee_catalog.relid, "active");
	employee_catalog.att_is_pool = get_attnum(employee_catalog.relid, "is_pool");
	employee_catalog.valid = true;
}

/*
 * Find one employee by a unique key; true if a row exists, with its id and
 * whether it may act: an active person, not a pool's row.  Read under a
 * snapshot taken now, not the statement's: a repeatable read transaction, or a
 * PL/pgSQL statement planned under its block's older snapshot, would otherwise
 * find, and cache for the transaction, someone deactivated since (a parallel
 * query cannot take one, and reads its own).
 */
static bool
lookup_employee(Oid index, AttrNumber keyatt, RegProcedure eqproc, Datum key,
				int64 *id, bool *may_act)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData skey;
	HeapTuple	tuple;
	bool		found = false;
	Snapshot	snapshot = IsInParallelMode() ?
		(ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot()) : GetLatestSnapshot();

	rel = table_open(employee_catalog.relid, AccessShareLock);
	ScanKeyInit(&skey, keyatt, BTEqualStrategyNumber, eqproc, key);
	scan = systable_beginscan(rel, index, true, snapshot, 1, &skey);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		TupleDesc	desc = RelationGetDescr(rel);
		bool		isnull;
		bool		active;
		bool		is_pool;

		*id = DatumGetInt64(heap_getattr(tuple, employee_catalog.att_id, desc, &isnull));
		active = DatumGetBool(heap_getattr(tuple, employee_catalog.att_active, desc, &isnull)) && !isnull;
		is_pool = DatumGetBool(heap_getattr(tuple, employee_catalog.att_is_pool, desc, &isnull)) && !isnull;
		*may_act = active && !is_pool;
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* Only members of crm_authenticator (never implicitly, as superusers) are trusted. */
static bool
session_trusts_claims(Oid session_userid)
{
	Oid			authenticator = get_role_oid("crm_authenticator", true);

	return OidIsValid(authenticator) && is_member_of_role_nosuper(session_userid, authenticator);
}

/*
 * The JWT claims text of this request, or NULL.  PostgREST publishes all
 * claims as a JSON object; PostGraphile sets one setting per claim.
 */
static const char *
jwt_claims(bool *is_json)
{
	const char *value;
	char		setting[NAMEDATALEN + 16];

	value = GetConfigOption("request.jwt.claims", true, false);
	if (value != NULL && value[0] != '\0')
	{
		*is_json = true;
		return value;
	}
	snprintf(setting, sizeof(setting), "jwt.claims.%s", crm_jwt_employee_claim);
	value = GetConfigOption(setting, true, false);
	if (value != NULL && value[0] != '\0')
	{
		*is_json = false;
		return value;
	}
	return NULL;
}

/* The employee id a claim names; malformed claims are an error, not a guess. */
static int64
claim_employee_id(const char *claims, bool is_json)
{
	const char *text = claims;
	char	   *owned = NULL;

	if (is_json)
	{
		Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(claims)));
		JsonbValue *v = NULL;

		if (JB_ROOT_IS_OBJECT(jb))
			v = getKeyJsonValueFromContainer(&jb->root, crm_jwt_employee_claim,
											 strlen(crm_jwt_employee_claim), NULL);
		if (v == NULL || v->type == jbvNull)
			return 0;
		if (v->type == jbvNumeric)
			owned = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		else if (v->type == jbvString)
			owned = pnstrdup(v->val.string.val, v->val.string.len);
		text = owned;
	}
	if (text == NULL || strspn(text, "0123456789") != strlen(text) || strlen(text) > 18 || text[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("JWT claim \"%s\" is not an employee id", crm_jwt_employee_claim),
				 errdetail("The claim must be a positive integer, given as a JSON number or string."),
				 errhint("Issue tokens whose \"%s\" claim is the id of a row in crm.employee.",
						 crm_jwt_employee_claim)));
	return pg_strtoint64(text);
}

/* Is any role a member of this one? */
static bool
role_has_members(Oid roleid)
{
	CatCList   *members = SearchSysCacheList1(AUTHMEMROLEMEM, ObjectIdGetDatum(roleid));
	bool		found = members->n_members > 0;

	ReleaseSysCacheList(members);
	return found;
}

static bool
resolve_employee(Oid userid, bool trusts_claims, const char *claims, bool is_json, int64 *employee_id)
{
	NameData	rolename;
	char	   *username = GetUserNameFromId(userid, true);
	int64		id;
	bool		may_act;

	load_employee_catalog();

	if (!trusts_claims && username != NULL)
	{
		namestrcpy(&rolename, username);
		if (lookup_employee(employee_catalog.role_index, employee_catalog.att_db_role,
							F_NAMEEQ, NameGetDatum(&rolename), &id, &may_act))
		{
			*employee_id = id;
			/* its members could SET ROLE to it and act as the employee */
			return may_act && !role_has_members(userid);
		}
	}

	if (claims != NULL)
	{
		int64		claimed = claim_employee_id(claims, is_json);

		if (claimed > 0 &&
			lookup_employee(employee_catalog.pkey_index, employee_catalog.att_id,
							F_INT8EQ, Int64GetDatum(claimed), &id, &may_act))
		{
			*employee_id = id;
			return may_act;
		}
	}
	return false;
}

/*
 * The acting employee's id; false when nobody is acting.  After the first
 * call in a transaction this costs a check for invalidations and, for an
 * authenticator's session, a comparison of the claims.
 */
bool
crm_current_employee(int64 *employee_id)
{
	Oid			userid = GetUserId();
	Oid			session_userid = GetSessionUserId();
	bool		is_json = false;
	bool		trusts_claims;
	const char *claims;

	/* see org changes that other sessions committed since our last call */
	AcceptInvalidationMessages();

	/*
	 * an answer found in a parallel operation was read under its snapshot,
	 * which may be older than a deactivation already announced: it serves
	 * that operation only
	 */
	if (identity_cache.in_parallel && !IsInParallelMode())
		identity_cache.valid = false;
	if (identity_cache.valid &&
		identity_cache.lxid == MyProc->lxid &&
		identity_cache.userid == userid &&
		identity_cache.session_userid == session_userid)
	{
		trusts_claims = identity_cache.trusts_claims;
		claims = trusts_claims ? jwt_claims(&is_json) : NULL;
		if (claims == NULL ? identity_cache.claims == NULL :
			identity_cache.claims != NULL && strcmp(claims, identity_cache.claims) == 0)
		{
			*employee_id = identity_cache.employee_id;
			return identity_cache.found;
		}
	}
	else
	{
		trusts_claims = session_trusts_claims(session_userid);
		claims = trusts_claims ? jwt_claims(&is_json) : NULL;
	}

	identity_cache.valid = false;
	if (identity_cache.claims)
		pfree(identity_cache.claims);
	identity_cache.claims = claims ? MemoryContextStrdup(TopMemoryContext, claims) : NULL;
	identity_cache.found = resolve_employee(userid, trusts_claims, claims, is_json, &identity_cache.employee_id);
	identity_cache.userid = userid;
	identity_cache.session_userid = session_userid;
	identity_cache.trusts_claims = trusts_claims;
	identity_cache.lxid = MyProc->lxid;
	identity_cache.in_parallel = IsInParallelMode();
	identity_cache.valid = true;

	*employee_id = identity_cache.employee_id;
	return identity_cache.found;
}

/*
 * The employee of the role outside every security-restricted switch (the
 * login role, or the role SET ROLE chose), where crm_current_employee()
 * inside a definer function or an owner switch sees the owner, who is nobody.
 */
static bool
outer_employee(int64 *employee_id)
{
	CrmSwitch	sw;
	bool		found;

	crm_switch_to_invoker(&sw);
	found = crm_current_employee(employee_id);
	crm_switch_back(&sw);
	return found;
}

/*
 * The employee a change is made by, for the operation log: the acting
 * employee, or, while crm's own code runs as the owner of the crm tables (a
 * transfer, a handover, a pool claim), the employee it runs for.  The
 * owner's own session acts for nobody.
 */
bool
crm_change_actor(int64 *employee_id)
{
	Oid			userid = GetUserId();

	if (crm_current_employee(employee_id))
		return true;
	if (userid != crm_owner() || GetOuterUserId() == userid)
		return false;
	return outer_employee(employee_id);
}

/*
 * crm.current_employee_id() returns bigint
 */
Datum
crm_current_employee_id(PG_FUNCTION_ARGS)
{
	int64		id;

	if (!crm_current_employee(&id))
		PG_RETURN_NULL();
	PG_RETURN_INT64(id);
}

/*
 * crm.invoking_employee_id() returns bigint
 *
 * The employee on whose behalf a SECURITY DEFINER function or trigger runs:
 * the identity of the role that was current outside every security-restricted
 * switch (the login role, or the role SET ROLE chose), where
 * crm.current_employee_id() would see the function's owner, who is nobody.
 */
Datum
crm_invoking_employee_id(PG_FUNCTION_ARGS)
{
	int64		id;

	if (!outer_employee(&id))
		PG_RETURN_NULL();
	PG_RETURN_INT64(id);
}

/*
 * crm.staff_session() returns boolean
 *
 * Whether the session may read crm's organisation and configuration tables:
 * an employee is acting, or the role is a member of crm_admin.  Their
 * policies call it once per statement, as an InitPlan.
 */
Datum
crm_staff_session(PG_FUNCTION_ARGS)
{
	int64		id;
	Oid			admin;

	if (crm_current_employee(&id))
		PG_RETURN_BOOL(true);
	admin = get_role_oid("crm_admin", true);
	PG_RETURN_BOOL(OidIsValid(admin) && has_privs_of_role(GetUserId(), admin));
}

/*
 * Whether this session restores a dump, which it says with crm.restoring
 * (docs/backup.md).  A restore loads rows, it does not make changes: they are
 * not logged or notified again, and rows that need rows of tables restored
 * later pass.  Only a superuser's session counts: the role outside every
 * definer switch, not the current user, which inside crm's definer functions
 * and owner switches is a superuser.
 *
 * pg_dump's scripts and pg_restore turn row_security off, which changes
 * nothing else for a superuser: a superuser writing to crm with it off but
 * without crm.restoring is a restore that forgot the switch, stopped before
 * its rows are checked against missing ones, logged and notified again.
 */
bool
crm_restoring(void)
{
	if (!crm_restoring_setting && row_security)
		return false;
	if (!superuser_arg(GetOuterUserId()))
		return false;
	if (!crm_restoring_setting)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("row_security is off, as in a restore, but crm.restoring is not on"),
				 errdetail("A restore must say so: crm would otherwise check the rows it loads against rows not restored yet, and log and notify each of them again."),
				 errhint("Restore with PGOPTIONS='-c crm.restoring=on' (docs/backup.md); to write to crm as usual, SET row_security = on.")));
	return true;
}

PG_FUNCTION_INFO_V1(crm_restoring_sql);

/* crm.restoring() returns boolean: crm_restoring(), for crm's PL/pgSQL triggers */
Datum
crm_restoring_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(crm_restoring());
}

/* crm.employee's oid; organisation caches are invalidated through it. */
Oid
crm_employee_relid(void)
{
	load_employee_catalog();
	return employee_catalog.relid;
}

/*
 * Statement trigger on the organisation tables: tell every backend, at
 * commit, that cached identities and scopes are stale.
 */
Datum
crm_org_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crm.org_changed() must be called as a trigger")));
	crm_require_crm_table(fcinfo, "crm.org_changed()");
	load_employee_catalog();
	CacheInvalidateRelcacheByRelid(employee_catalog.relid);
	return PointerGetDatum(NULL);
}

/*
 * Statement trigger on tables that backends cache (team entries,
 * dictionaries): tell every backend, at commit, to drop what it built from
 * the table.
 */
Datum
crm_table_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crm.table_changed() must be called as a trigger")));
	crm_require_crm_table(fcinfo, "crm.table_changed()");
	CacheInvalidateRelcache(((TriggerData *) fcinfo->context)->tg_relation);
	return PointerGetDatum(NULL);
}
