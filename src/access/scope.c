/*-------------------------------------------------------------------------
 *
 * scope.c
 *	  Data scopes and action permissions: which records the acting employee
 *	  may see and what they may do with them.
 *
 * A role grants action permissions (crm.role_permission) and, per record
 * type, one data scope (crm.role_scope): self, subordinates (self and all
 * below in the superior chain), department, department_tree, all, or custom
 * (listed departments).  An employee's scope is the union over their roles;
 * a record type no role mentions falls back to self, and an employee always
 * sees what they own.  Super admins have every permission and scope all.
 *
 * Wording: the "org" is the in-memory copy of departments, employees, roles
 * and their grants, loaded once per change of the organisation (see
 * crm_org_generation in identity.c).  The "acting scope" is what the org
 * grants the acting employee, computed once per transaction and record type.
 *
 * The row-level security policies read scopes through crm.scope_owners()
 * and crm.team_records(), in a form the planner can turn into index scans:
 *		owner_id = ANY (crm.scope_owners(t)) OR id = ANY (crm.team_records(t, ...))
 * (scope_plan.c hashes those arrays and drops the team test while no team
 * entry of the record type exists).  crm.explain_access() answers from the
 * same structures.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_scope_owners);
PG_FUNCTION_INFO_V1(crm_scope_owners_any);
PG_FUNCTION_INFO_V1(crm_common_scope_owners);
PG_FUNCTION_INFO_V1(crm_invoker_scope_owners);
PG_FUNCTION_INFO_V1(crm_invoker_has_permission);
PG_FUNCTION_INFO_V1(crm_team_records);
PG_FUNCTION_INFO_V1(crm_has_permission);
PG_FUNCTION_INFO_V1(crm_check_write);
PG_FUNCTION_INFO_V1(crm_explain_access);
PG_FUNCTION_INFO_V1(crm_may_administer_sql);
PG_FUNCTION_INFO_V1(crm_acting_is_super_sql);

/*
 * Record types come from the registry, crm.record_type.  A type's slot in the
 * per-type arrays below is its registry position less one: positions are
 * never reused or moved, so a slot means the same type across reloads of the
 * organisation, and the registry keeps them under MAX_RECORD_TYPES.
 */
#define MAX_RECORD_TYPES 64

typedef struct RecordType
{
	char	   *name;			/* NULL: no type in this slot */
	Oid			relid;			/* its table; invalid for a type with none yet */
	char		visibility;		/* 'o'wner, 'p'arent or 'r'ecord, as crm.record_type says */
	int			parent;			/* the slot of the type whose access it follows, or -1 */
	char	   *parent_column;	/* the column naming that record */
} RecordType;

/* crm 0.1 had no registry: until ALTER EXTENSION crm UPDATE its library knows these */
static const char *const types_0_1[] = {
	"lead", "customer", "contact", "opportunity", "contract", "payment", "invoice"
};

typedef enum ScopeKind
{
	SCOPE_NONE = 0,
	SCOPE_SELF,
	SCOPE_SUBORDINATES,
	SCOPE_DEPARTMENT,
	SCOPE_DEPARTMENT_TREE,
	SCOPE_CUSTOM,
	SCOPE_ALL
} ScopeKind;

static const char *const scope_names[] = {
	"none", "self", "subordinates", "department", "department_tree", "custom", "all"
};

typedef struct RoleScope
{
	ScopeKind	kind;
	int			ndepts;
	int64	   *depts;			/* custom: the listed departments */
} RoleScope;

typedef struct Role
{
	int64		id;
	char	   *name;
	bool		is_super;
	RoleScope	scopes[MAX_RECORD_TYPES];
	List	   *actions;		/* of char * */
} Role;

/* Employees and departments refer to each other by array index; -1 is none. */
typedef struct Emp
{
	int64		id;
	int			dept;
	int			superior;
	bool		active;
	bool		is_pool;		/* a public pool's row, not a person */
	char	   *name;			/* quoted for messages */
	int			first_sub;		/* direct subordinates: first_sub, next_sub... */
	int			next_sub;
	int			next_in_dept;	/* members of a department: first_member... */
	List	   *roles;			/* of int: indexes into org.roles */
	List	   *admin_pools;	/* of int: the pools (their employee rows) it administers */
} Emp;

typedef struct Dept
{
	int64		id;
	int			first_child;
	int			next_sibling;
	int			first_member;
} Dept;

typedef struct IdIndex
{
	int64		id;
	int			index;
} IdIndex;

typedef struct Org
{
	uint64		generation;		/* crm_org_generation when loaded; 0 = never */
	MemoryContext cxt;
	int			nemps;
	int			ndepts;
	int			nroles;
	Emp		   *emps;
	Dept	   *depts;
	Role	   *roles;
	RecordType	types[MAX_RECORD_TYPES];
	int			nslots;			/* slots past the last type are empty */
	HTAB	   *emp_index;
	HTAB	   *dept_index;
	HTAB	   *role_index;
} Org;

typedef struct TypeScope
{
	bool		computed;
	bool		all;
	int			nowners;
	int64	   *owners;			/* sorted */
	Datum		owners_array;	/* the same, as bigint[] */
	uint64		serial;			/* of owners_array, see caller_array() */
} TypeScope;

typedef struct TeamRecords
{
	bool		loaded;
	Datum		read;			/* bigint[] of records shared with the employee */
	Datum		edit;			/* the subset shared for editing */
	uint64		serial;			/* of read; edit's is serial + 1 */
} TeamRecords;

typedef struct ActingScope
{
	bool		valid;
	LocalTransactionId lxid;
	uint64		generation;
	int64		employee_id;
	int			emp;			/* index into org.emps */
	bool		is_super;
	int			nactions;
	char	  **actions;		/* sorted */
	TypeScope	types[MAX_RECORD_TYPES];
} ActingScope;

/*
 * The acting employee's team entries, kept across transactions until any
 * session changes crm.team_member or the organisation, or the next entry
 * expires.  A reload reuses the cache's memory: callers only ever hold copies
 * (caller_array()).
 */
typedef struct TeamCache
{
	bool		valid;
	bool		loaded_in_parallel;
	uint64		generation;
	int64		employee_id;
	TimestampTz valid_until;	/* the next expiry; DT_NOEND if none */
	MemoryContext cxt;
	TeamRecords types[MAX_RECORD_TYPES];
} TeamCache;

static Org	org;
static ActingScope acting;

/* the acting employee's entries, loaded again when any session changes crm.team_member */
static CrmTableCache team_table = {.name = "crm team entries", .tables = {"team_member", NULL}};
static TeamCache team_cache;

/* numbers the arrays the caches build, so that a caller's copy knows its source */
static uint64 array_serial = 0;

/* Allocations for the acting scope, reset when it is computed again. */
static MemoryContext acting_cxt = NULL;

void
crm_scope_init(void)
{
	acting_cxt = AllocSetContextCreate(TopMemoryContext, "crm acting scope",
									   ALLOCSET_SMALL_SIZES);
	team_cache.cxt = AllocSetContextCreate(TopMemoryContext, "crm team entries",
										   ALLOCSET_SMALL_SIZES);
	crm_table_cache_register(&team_table);
}

static void load_org(void);

/* The slot of the named record type; -1 for no type. */
static int
type_slot(const char *name, int len)
{
	for (int i = 0; i < org.nslots; i++)
		if (org.types[i].name && strlen(org.types[i].name) == (size_t) len &&
			memcmp(org.types[i].name, name, len) == 0)
			return i;
	return -1;
}

static int
record_type_index(text *t, bool missing_ok)
{
	const char *s = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	int			slot;
	StringInfoData known;

	load_org();
	slot = type_slot(s, len);
	if (slot >= 0 || missing_ok)
		return slot;
	initStringInfo(&known);
	for (int i = 0; i < org.nslots; i++)
		if (org.types[i].name)
			appendStringInfo(&known, "%s%s", known.len > 0 ? ", " : "", org.types[i].name);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown record type \"%s\"", crm_quote(s, len)),
			 errhint("The record types are %s (crm.record_type).", known.data)));
	return -1;					/* keep compiler quiet */
}

/* The name of the record type in a slot record_type_index() returned. */
static const char *
type_name(int t)
{
	return org.types[t].name;
}

static int
id_lookup(HTAB *index, int64 id)
{
	IdIndex    *entry = hash_search(index, &id, HASH_FIND, NULL);

	return entry ? entry->index : -1;
}

static HTAB *
id_index_create(const char *name, int size)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(IdIndex);
	ctl.hcxt = org.cxt;
	return hash_create(name, Max(size, 16), &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

static void
id_index_add(HTAB *index, int64 id, int i)
{
	IdIndex    *entry = hash_search(index, &id, HASH_ENTER, NULL);

	entry->index = i;
}

static int64
spi_int8(HeapTuple tuple, TupleDesc desc, int col, bool *isnull)
{
	Datum		d = SPI_getbinval(tuple, desc, col, isnull);

	return *isnull ? 0 : DatumGetInt64(d);
}

/*
 * The caches are stamped with the generation read before they are built and
 * may outlive the transaction, so they read under a snapshot taken then, not
 * the asking statement's: that may be older than a change already announced.
 */
static void
cache_query_begin(void)
{
	SPI_connect();
	PushActiveSnapshot(IsInParallelMode() ? GetActiveSnapshot() : GetLatestSnapshot());
}

/*
 * A parallel operation cannot take a snapshot: the leader, running crm's
 * functions above its workers, reads under the operation's, which may be
 * older than a change already announced, so a cache loaded in one is loaded
 * again after it.  The organisation counts as changed then: the acting scope
 * holds places in its lists.
 */
static bool org_loaded_in_parallel = false;

static void
forget_parallel_loads(void)
{
	if (IsInParallelMode())
		return;
	if (org_loaded_in_parallel)
	{
		org_loaded_in_parallel = false;
		crm_org_generation++;
	}
	if (team_cache.loaded_in_parallel)
		team_cache.valid = false;
}

static void
cache_query_end(void)
{
	PopActiveSnapshot();
	SPI_finish();				/* back to the caller's memory context */
}

/* Run one organisation query; what the caller builds from it lives in org.cxt. */
static void
org_query(const char *sql)
{
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: organisation query failed: %s", sql)));
	/* SPI returns in its own procedure context */
	MemoryContextSwitchTo(org.cxt);
}

/*
 * Whether this database's crm has the record-type registry: crm 0.1 had
 * none, and a database keeps running 0.1's scripts against this library
 * until ALTER EXTENSION crm UPDATE.
 */
bool
crm_has_registry(void)
{
	return OidIsValid(get_relname_relid("record_type", get_namespace_oid("crm", false)));
}

/* The registry's types into their slots (org.types), in org.cxt. */
static void
load_record_types(void)
{
	Oid			nsp = get_namespace_oid("crm", false);
	SPITupleTable *tt;

	memset(org.types, 0, sizeof(org.types));
	org.nslots = 0;
	if (!crm_has_registry())
	{
		MemoryContextSwitchTo(org.cxt);	/* as org_query() leaves it */
		for (int i = 0; i < (int) lengthof(types_0_1); i++)
		{
			org.types[i].name = pstrdup(types_0_1[i]);
			org.types[i].relid = get_relname_relid(types_0_1[i], nsp);
			org.types[i].visibility = 'o';
			org.types[i].parent = -1;
		}
		org.types[2].visibility = 'p';	/* a contact follows its customer */
		org.types[2].parent = 1;
		org.nslots = lengthof(types_0_1);
		org.types[2].parent_column = pstrdup("customer_id");
		return;
	}
	org_query("SELECT t.position, t.name, t.relation, p.position, t.parent_column, t.visibility"
			  "  FROM crm.record_type t LEFT JOIN crm.record_type p ON p.name = t.parent");
	tt = SPI_tuptable;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int			slot = DatumGetInt32(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull)) - 1;
		Datum		parent = SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull);

		if (slot < 0 || slot >= MAX_RECORD_TYPES)
			continue;			/* the registry's check keeps positions in range */
		org.types[slot].name = SPI_getvalue(tt->vals[i], tt->tupdesc, 2);
		org.types[slot].relid = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
		org.types[slot].parent = isnull ? -1 : DatumGetInt32(parent) - 1;
		org.types[slot].parent_column = SPI_getvalue(tt->vals[i], tt->tupdesc, 5);
		org.types[slot].visibility = SPI_getvalue(tt->vals[i], tt->tupdesc, 6)[0];
		org.nslots = Max(org.nslots, slot + 1);
	}
}

static void
load_org(void)
{
	uint64		generation;
	CrmSwitch	sw;
	SPITupleTable *tt;

	crm_employee_relid();		/* sets up the invalidation we rely on */
	forget_parallel_loads();
	generation = crm_org_generation;
	if (org.generation == generation)
		return;

	if (org.cxt == NULL)
		org.cxt = AllocSetContextCreate(TopMemoryContext, "crm org", ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(org.cxt);
	org.generation = 0;

	crm_switch_to_owner(&sw);
	cache_query_begin();

	load_record_types();

	/* departments */
	org_query("SELECT id, parent_id FROM crm.department");
	tt = SPI_tuptable;
	org.ndepts = SPI_processed;
	org.depts = palloc(sizeof(Dept) * Max(org.ndepts, 1));
	org.dept_index = id_index_create("crm departments", org.ndepts);
	for (int i = 0; i < org.ndepts; i++)
	{
		bool		isnull;

		org.depts[i].id = spi_int8(tt->vals[i], tt->tupdesc, 1, &isnull);
		org.depts[i].first_child = org.depts[i].first_member = -1;
		id_index_add(org.dept_index, org.depts[i].id, i);
	}
	for (int i = 0; i < org.ndepts; i++)
	{
		bool		isnull;
		int			parent = id_lookup(org.dept_index, spi_int8(tt->vals[i], tt->tupdesc, 2, &isnull));

		org.depts[i].next_sibling = -1;
		if (!isnull && parent >= 0)
		{
			org.depts[i].next_sibling = org.depts[parent].first_child;
			org.depts[parent].first_child = i;
		}
	}

	/* employees */
	org_query("SELECT id, department_id, superior_id, active, is_pool, name FROM crm.employee");
	tt = SPI_tuptable;
	org.nemps = SPI_processed;
	org.emps = palloc0(sizeof(Emp) * Max(org.nemps, 1));
	org.emp_index = id_index_create("crm employees", org.nemps);
	for (int i = 0; i < org.nemps; i++)
	{
		Emp		   *e = &org.emps[i];
		bool		isnull;

		e->id = spi_int8(tt->vals[i], tt->tupdesc, 1, &isnull);
		e->dept = id_lookup(org.dept_index, spi_int8(tt->vals[i], tt->tupdesc, 2, &isnull));
		e->active = DatumGetBool(SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull));
		e->is_pool = DatumGetBool(SPI_getbinval(tt->vals[i], tt->tupdesc, 5, &isnull));
		e->name = SPI_getvalue(tt->vals[i], tt->tupdesc, 6);
		e->name = psprintf("\"%s\"", crm_quote(e->name, strlen(e->name)));
		e->first_sub = -1;
		e->roles = NIL;
		id_index_add(org.emp_index, e->id, i);
		e->next_in_dept = -1;
		if (e->dept >= 0)
		{
			e->next_in_dept = org.depts[e->dept].first_member;
			org.depts[e->dept].first_member = i;
		}
	}
	for (int i = 0; i < org.nemps; i++)
	{
		Emp		   *e = &org.emps[i];
		bool		isnull;
		int64		superior = spi_int8(tt->vals[i], tt->tupdesc, 3, &isnull);

		e->superior = isnull ? -1 : id_lookup(org.emp_index, superior);
		e->next_sub = -1;
		if (e->superior >= 0)
		{
			e->next_sub = org.emps[e->superior].first_sub;
			org.emps[e->superior].first_sub = i;
		}
	}

	/* roles */
	org_query("SELECT id, name, is_super FROM crm.role");
	tt = SPI_tuptable;
	org.nroles = SPI_processed;
	org.roles = palloc0(sizeof(Role) * Max(org.nroles, 1));
	org.role_index = id_index_create("crm roles", org.nroles);
	for (int i = 0; i < org.nroles; i++)
	{
		bool		isnull;

		org.roles[i].id = spi_int8(tt->vals[i], tt->tupdesc, 1, &isnull);
		org.roles[i].name = SPI_getvalue(tt->vals[i], tt->tupdesc, 2);
		org.roles[i].is_super = DatumGetBool(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
		id_index_add(org.role_index, org.roles[i].id, i);
	}

	org_query("SELECT role_id, record_type, scope, departments FROM crm.role_scope");
	tt = SPI_tuptable;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int			role = id_lookup(org.role_index, spi_int8(tt->vals[i], tt->tupdesc, 1, &isnull));
		char	   *type = SPI_getvalue(tt->vals[i], tt->tupdesc, 2);
		char	   *kind = SPI_getvalue(tt->vals[i], tt->tupdesc, 3);
		Datum		depts = SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull);
		RoleScope  *rs;
		int			t;

		t = type_slot(type, strlen(type));
		if (role < 0 || t < 0)
			continue;			/* a scope prepared for a type crm has no records of yet */
		rs = &org.roles[role].scopes[t];
		for (int k = SCOPE_SELF; k <= SCOPE_ALL; k++)
			if (strcmp(scope_names[k], kind) == 0)
				rs->kind = k;
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *nulls;

			deconstruct_array(DatumGetArrayTypeP(depts), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
							  &elems, &nulls, &rs->ndepts);
			rs->depts = palloc(sizeof(int64) * Max(rs->ndepts, 1));
			for (int d = 0; d < rs->ndepts; d++)
				rs->depts[d] = nulls[d] ? -1 : DatumGetInt64(elems[d]);
		}
	}

	org_query("SELECT role_id, action FROM crm.role_permission");
	tt = SPI_tuptable;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int			role = id_lookup(org.role_index, spi_int8(tt->vals[i], tt->tupdesc, 1, &isnull));

		if (role >= 0)
			org.roles[role].actions = lappend(org.roles[role].actions,
											  SPI_getvalue(tt->vals[i], tt->tupdesc, 2));
	}

	org_query("SELECT employee_id, role_id FROM crm.employee_role");
	tt = SPI_tuptable;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int			emp = id_lookup(org.emp_index, spi_int8(tt->vals[i], tt->tupdesc, 1, &isnull));
		int			role = id_lookup(org.role_index, spi_int8(tt->vals[i], tt->tupdesc, 2, &isnull));

		if (emp >= 0 && role >= 0)
			org.emps[emp].roles = lappend_int(org.emps[emp].roles, role);
	}

	/* a pool's admins see its customers as their own scope (src/sql/94_pool.sql) */
	org_query("SELECT m.employee_id, m.pool_id FROM crm.pool_membership m WHERE m.is_admin");
	tt = SPI_tuptable;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int			e = id_lookup(org.emp_index, spi_int8(tt->vals[i], tt->tupdesc, 1, &isnull));
		int			pool = id_lookup(org.emp_index, spi_int8(tt->vals[i], tt->tupdesc, 2, &isnull));

		if (e >= 0 && pool >= 0)
			org.emps[e].admin_pools = lappend_int(org.emps[e].admin_pools, pool);
	}
	cache_query_end();
	crm_switch_back(&sw);
	org.generation = generation;
	org_loaded_in_parallel = IsInParallelMode();
}

/* Mark the employees one role scope covers for employee e. */
static void
mark_scope(int e, const RoleScope *rs, bool *marked)
{
	int		   *stack;
	int			top = 0;
	bool	   *seen;

	switch (rs->kind)
	{
		case SCOPE_NONE:
		case SCOPE_ALL:
			break;
		case SCOPE_SELF:
			marked[e] = true;
			break;
		case SCOPE_SUBORDINATES:
			/* depth-first down the superior chain; seen guards against cycles */
			stack = palloc(sizeof(int) * org.nemps);
			seen = palloc0(sizeof(bool) * org.nemps);
			stack[top++] = e;
			seen[e] = true;
			while (top > 0)
			{
				int			i = stack[--top];

				marked[i] = true;
				for (int s = org.emps[i].first_sub; s >= 0; s = org.emps[s].next_sub)
					if (!seen[s])
					{
						seen[s] = true;
						stack[top++] = s;
					}
			}
			break;
		case SCOPE_DEPARTMENT:
			if (org.emps[e].dept >= 0)
				for (int m = org.depts[org.emps[e].dept].first_member; m >= 0; m = org.emps[m].next_in_dept)
					marked[m] = true;
			break;
		case SCOPE_DEPARTMENT_TREE:
			if (org.emps[e].dept < 0)
				break;
			stack = palloc(sizeof(int) * org.ndepts);
			seen = palloc0(sizeof(bool) * org.ndepts);
			stack[top++] = org.emps[e].dept;
			seen[org.emps[e].dept] = true;
			while (top > 0)
			{
				int			d = stack[--top];

				for (int m = org.depts[d].first_member; m >= 0; m = org.emps[m].next_in_dept)
					marked[m] = true;
				for (int c = org.depts[d].first_child; c >= 0; c = org.depts[c].next_sibling)
					if (!seen[c])
					{
						seen[c] = true;
						stack[top++] = c;
					}
			}
			break;
		case SCOPE_CUSTOM:
			for (int i = 0; i < rs->ndepts; i++)
			{
				int			d = id_lookup(org.dept_index, rs->depts[i]);

				if (d >= 0)
					for (int m = org.depts[d].first_member; m >= 0; m = org.emps[m].next_in_dept)
						marked[m] = true;
			}
			break;
	}
}

static const RoleScope self_scope = {SCOPE_SELF, 0, NULL};

/*
 * The role scopes that apply to employee e for record type t: each of its
 * roles' scope for t, or self when no role has one.
 */
static List *
applicable_scopes(int e, int t)
{
	List	   *scopes = NIL;
	ListCell   *lc;

	foreach(lc, org.emps[e].roles)
	{
		const RoleScope *rs = &org.roles[lfirst_int(lc)].scopes[t];

		if (rs->kind != SCOPE_NONE)
			scopes = lappend(scopes, (void *) rs);
	}
	if (scopes == NIL)
		scopes = list_make1((void *) &self_scope);
	return scopes;
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static void
compute_type_scope(int t)
{
	TypeScope  *ts = &acting.types[t];
	MemoryContext oldcxt = MemoryContextSwitchTo(acting_cxt);
	ListCell   *lc;
	bool	   *marked;
	Datum	   *elems;

	ts->all = acting.is_super;
	ts->nowners = 0;
	ts->owners = palloc(sizeof(int64) * Max(org.nemps, 1));
	marked = palloc0(sizeof(bool) * Max(org.nemps, 1));
	marked[acting.emp] = true;	/* everyone sees what they own */
	foreach(lc, applicable_scopes(acting.emp, t))
	{
		const RoleScope *rs = lfirst(lc);

		ts->all |= rs->kind == SCOPE_ALL;
		mark_scope(acting.emp, rs, marked);
	}
	foreach(lc, org.emps[acting.emp].admin_pools)
		marked[lfirst_int(lc)] = true;
	/* every record has an employee as owner: "all" is every employee */
	for (int i = 0; i < org.nemps; i++)
		if (marked[i] || ts->all)
			ts->owners[ts->nowners++] = org.emps[i].id;
	pfree(marked);
	qsort(ts->owners, ts->nowners, sizeof(int64), cmp_int64);

	elems = palloc(sizeof(Datum) * Max(ts->nowners, 1));
	for (int i = 0; i < ts->nowners; i++)
		elems[i] = Int64GetDatum(ts->owners[i]);
	ts->owners_array = PointerGetDatum(construct_array(elems, ts->nowners, INT8OID, 8,
													   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	ts->serial = ++array_serial;
	ts->computed = true;
	MemoryContextSwitchTo(oldcxt);
}

/*
 * The acting employee's scope and permissions, current for this transaction
 * and organisation; false when nobody (or a deactivated employee) is acting.
 */
static bool
load_acting(void)
{
	int64		employee_id;
	ListCell   *lc;
	List	   *actions = NIL;
	MemoryContext oldcxt;

	if (!crm_current_employee(&employee_id))
		return false;
	forget_parallel_loads();
	if (acting.valid && acting.lxid == MyProc->lxid && acting.generation == crm_org_generation &&
		acting.employee_id == employee_id)
		return true;

	/* callers hold copies only (caller_array()) */
	MemoryContextReset(acting_cxt);
	acting.valid = false;
	load_org();

	memset(&acting, 0, sizeof(acting));
	acting.emp = id_lookup(org.emp_index, employee_id);
	if (acting.emp < 0)
		return false;
	acting.employee_id = employee_id;

	oldcxt = MemoryContextSwitchTo(acting_cxt);
	foreach(lc, org.emps[acting.emp].roles)
	{
		Role	   *role = &org.roles[lfirst_int(lc)];

		acting.is_super |= role->is_super;
		actions = list_concat(actions, role->actions);
	}
	acting.nactions = list_length(actions);
	acting.actions = palloc(sizeof(char *) * Max(acting.nactions, 1));
	for (int i = 0; i < acting.nactions; i++)
		acting.actions[i] = list_nth(actions, i);
	qsort(acting.actions, acting.nactions, sizeof(char *), cmp_str);
	MemoryContextSwitchTo(oldcxt);

	acting.lxid = MyProc->lxid;
	acting.generation = org.generation;
	acting.valid = true;
	return true;
}

/*
 * The policies call the scope functions for every row they filter, so the
 * second and later calls of a statement skip the identity and invalidation
 * checks: within one statement (same transaction, statement start and
 * command id) for the same user, the answer cannot have changed.  Unless the
 * organisation was loaded again meanwhile (another session's change, taken
 * in by any function of the statement that reads it): the acting employee is
 * a place in its lists, which a reload may give to someone else.
 */
typedef struct StatementKey
{
	LocalTransactionId lxid;
	TimestampTz statement;
	CommandId	command;
	Oid			userid;
	bool		acting;			/* load_acting()'s answer */
} StatementKey;

static StatementKey last_statement;

static bool
load_acting_for_statement(void)
{
	StatementKey key;

	key.lxid = MyProc->lxid;
	key.statement = GetCurrentStatementStartTimestamp();
	key.command = GetCurrentCommandId(false);
	key.userid = GetUserId();
	if (acting.valid && acting.generation == org.generation && last_statement.lxid == key.lxid &&
		last_statement.statement == key.statement && last_statement.command == key.command &&
		last_statement.userid == key.userid)
		return last_statement.acting;
	key.acting = load_acting();
	last_statement = key;
	return key.acting;
}

static TypeScope *
acting_type_scope(int t)
{
	if (!load_acting_for_statement())
		return NULL;
	if (!acting.types[t].computed)
		compute_type_scope(t);
	return &acting.types[t];
}

static bool
acting_has_permission(const char *action)
{
	if (acting.is_super)
		return true;
	return bsearch(&action, acting.actions, acting.nactions, sizeof(char *), cmp_str) != NULL;
}

static bool
owner_in_scope(TypeScope *ts, int64 owner)
{
	return ts->all || bsearch(&owner, ts->owners, ts->nowners, sizeof(int64), cmp_int64) != NULL;
}

/* What an employee's scope for t is made of, for messages: "department, custom". */
static char *
describe_scope(int e, int t)
{
	StringInfoData buf;
	ListCell   *lc;

	if (acting.is_super)
		return "all (super admin)";
	initStringInfo(&buf);
	foreach(lc, applicable_scopes(e, t))
	{
		const RoleScope *rs = lfirst(lc);

		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", scope_names[rs->kind]);
	}
	return buf.data;
}

/*
 * The policies call the scope functions for every row they filter, and a
 * statement may still hold an answer when the caches are built again (a
 * function it calls may change the organisation).  So each call site keeps
 * its own copy of the array, made once per array built, in the call site's
 * memory; the caches are then free to reuse theirs.
 */
typedef struct CallerArray
{
	uint64		serial;			/* 0 while no copy is held */
	Datum		copy;
} CallerArray;

static Datum
caller_array(FunctionCallInfo fcinfo, Datum array, uint64 serial)
{
	FmgrInfo   *flinfo = fcinfo->flinfo;
	CallerArray *held;

	if (flinfo == NULL)
		return datumCopy(array, false, -1);
	held = flinfo->fn_extra;
	if (held == NULL)
		held = flinfo->fn_extra = MemoryContextAllocZero(flinfo->fn_mcxt, sizeof(CallerArray));
	if (held->serial != serial)
	{
		MemoryContext old = MemoryContextSwitchTo(flinfo->fn_mcxt);

		/* the call site's previous answer is used up before it asks again */
		if (held->serial != 0)
			pfree(DatumGetPointer(held->copy));
		held->copy = datumCopy(array, false, -1);
		held->serial = serial;
		MemoryContextSwitchTo(old);
	}
	return held->copy;
}

/*
 * crm.scope_owners(record_type text) returns bigint[]
 *
 * The owners whose records of this type the acting employee sees, sorted:
 * every employee for scope all, none for nobody.
 */
Datum
crm_scope_owners(PG_FUNCTION_ARGS)
{
	TypeScope  *ts = acting_type_scope(record_type_index(PG_GETARG_TEXT_PP(0), false));

	if (ts == NULL)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT8OID));
	PG_RETURN_DATUM(caller_array(fcinfo, ts->owners_array, ts->serial));
}

/*
 * The acting employee's scopes of the types named in a text array, in slot
 * order; -1 when nobody is acting.  The types are looked up first: looking one
 * up may load the organisation again, and with it the acting employee's
 * scopes, so these are taken after.
 */
static int
acting_type_scopes(ArrayType *types, TypeScope **scopes)
{
	Datum	   *names;
	bool	   *nulls;
	int			nnames;
	uint64		slots = 0;
	int			nscopes = 0;

	deconstruct_array(types, TEXTOID, -1, false, TYPALIGN_INT, &names, &nulls, &nnames);
	for (int i = 0; i < nnames; i++)
		if (!nulls[i])
			slots |= UINT64CONST(1) << record_type_index(DatumGetTextPP(names[i]), false);
	for (int t = 0; t < (int) lengthof(org.types); t++)
	{
		if (!(slots & (UINT64CONST(1) << t)))
			continue;
		scopes[nscopes] = acting_type_scope(t);
		if (scopes[nscopes] == NULL)
			return -1;
		nscopes++;
	}
	return nscopes;
}

/*
 * crm.scope_owners(record_types text[]) returns bigint[]
 *
 * The owners whose records of any of these types the acting employee sees,
 * sorted: the union of crm.scope_owners(t).  A policy over rows of several
 * types (the shared tables) reads its index once with it, and tests each
 * type's own scope on the index's columns, with no visit to the table.
 */
typedef struct UnionArray
{
	uint64		slots;			/* the types asked for, by slot */
	uint64		newest;			/* the newest serial of their scopes' arrays */
	Datum		copy;			/* the union, in the call site's memory */
} UnionArray;

Datum
crm_scope_owners_any(PG_FUNCTION_ARGS)
{
	FmgrInfo   *flinfo = fcinfo->flinfo;
	uint64		slots = 0;
	uint64		newest = 0;
	TypeScope  *scopes[lengthof(org.types)];
	int			nscopes = acting_type_scopes(PG_GETARG_ARRAYTYPE_P(0), scopes);
	int			total = 0;
	int64	   *owners;
	Datum	   *elems;
	Datum		result;
	int			n = 0;
	UnionArray *held = flinfo ? flinfo->fn_extra : NULL;
	MemoryContext oldcxt;

	if (nscopes < 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT8OID));
	for (int i = 0; i < nscopes; i++)
	{
		slots |= UINT64CONST(1) << (scopes[i] - acting.types);
		newest = Max(newest, scopes[i]->serial);
		total += scopes[i]->nowners;
	}

	/*
	 * Each array a scope is built from gets a serial newer than any before,
	 * so the newest of them tells whether the union held is still right.
	 */
	if (held != NULL && held->slots == slots && held->newest == newest)
		PG_RETURN_DATUM(held->copy);

	owners = palloc(sizeof(int64) * Max(total, 1));
	for (int i = 0; i < nscopes; i++)
	{
		memcpy(owners + n, scopes[i]->owners, sizeof(int64) * scopes[i]->nowners);
		n += scopes[i]->nowners;
	}
	qsort(owners, n, sizeof(int64), cmp_int64);
	elems = palloc(sizeof(Datum) * Max(n, 1));
	total = 0;
	for (int i = 0; i < n; i++)
		if (i == 0 || owners[i] != owners[i - 1])
			elems[total++] = Int64GetDatum(owners[i]);
	result = PointerGetDatum(construct_array(elems, total, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (flinfo == NULL)
		PG_RETURN_DATUM(result);
	if (held == NULL)
		held = flinfo->fn_extra = MemoryContextAllocZero(flinfo->fn_mcxt, sizeof(UnionArray));
	else
		pfree(DatumGetPointer(held->copy));
	oldcxt = MemoryContextSwitchTo(flinfo->fn_mcxt);
	held->copy = datumCopy(result, false, -1);
	MemoryContextSwitchTo(oldcxt);
	held->slots = slots;
	held->newest = newest;
	PG_RETURN_DATUM(held->copy);
}

/*
 * crm.common_scope_owners(record_types text[]) returns bigint[]
 *
 * The owners whose records of every one of these types the acting employee
 * sees, sorted: the intersection of crm.scope_owners(t).  The tags' policy asks
 * it once per statement (a sub-select): a row whose owner is among them is
 * visible whatever its type.  The scopes are all taken from one organisation.
 */
Datum
crm_common_scope_owners(PG_FUNCTION_ARGS)
{
	TypeScope  *scopes[lengthof(org.types)];
	int			nscopes = acting_type_scopes(PG_GETARG_ARRAYTYPE_P(0), scopes);
	TypeScope  *narrowest = NULL;
	Datum	   *elems;
	int			n = 0;

	for (int i = 0; i < nscopes; i++)
		if (narrowest == NULL || scopes[i]->nowners < narrowest->nowners)
			narrowest = scopes[i];
	if (narrowest == NULL)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT8OID));

	elems = palloc(sizeof(Datum) * Max(narrowest->nowners, 1));
	for (int i = 0; i < narrowest->nowners; i++)
	{
		bool		everywhere = true;

		for (int k = 0; k < nscopes && everywhere; k++)
			everywhere = owner_in_scope(scopes[k], narrowest->owners[i]);
		if (everywhere)
			elems[n++] = Int64GetDatum(narrowest->owners[i]);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* Whether an employee row is a public pool's (src/sql/94_pool.sql). */
bool
crm_is_pool(int64 employee_id)
{
	int			e;

	load_org();
	e = id_lookup(org.emp_index, employee_id);
	return e >= 0 && org.emps[e].is_pool;
}

/*
 * crm.invoker_scope_owners(record_type text) returns bigint[]
 *
 * crm.scope_owners() for the employee a SECURITY DEFINER function acts for.
 */
Datum
crm_invoker_scope_owners(PG_FUNCTION_ARGS)
{
	CrmSwitch	sw;
	TypeScope  *ts;

	crm_switch_to_invoker(&sw);
	ts = acting_type_scope(record_type_index(PG_GETARG_TEXT_PP(0), false));
	crm_switch_back(&sw);
	if (ts == NULL)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT8OID));
	PG_RETURN_DATUM(caller_array(fcinfo, ts->owners_array, ts->serial));
}

/*
 * crm.invoker_has_permission(action text) returns boolean
 *
 * crm.has_permission() for the employee a SECURITY DEFINER function acts for.
 */
Datum
crm_invoker_has_permission(PG_FUNCTION_ARGS)
{
	CrmSwitch	sw;
	int64		employee_id;
	bool		result;

	crm_switch_to_invoker(&sw);
	result = crm_acting_permission(text_to_cstring(PG_GETARG_TEXT_PP(0)), &employee_id);
	crm_switch_back(&sw);
	PG_RETURN_BOOL(result);
}

/* Run a query as the owner of the crm tables; the caller connected SPI. */
static void
execute_as_owner(const char *sql, int nargs, Oid *types, Datum *values)
{
	CrmSwitch	sw;

	crm_switch_to_owner(&sw);
	if (SPI_execute_with_args(sql, nargs, types, values, NULL, true, 0) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: query failed: %s", sql)));
	crm_switch_back(&sw);
}

static void
load_team_cache(uint64 generation)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(acting.employee_id)};
	MemoryContext cxt = team_cache.cxt;
	bool		isnull;

	/* callers hold copies only (caller_array()) */
	MemoryContextReset(cxt);
	memset(&team_cache, 0, sizeof(team_cache));
	team_cache.cxt = cxt;
	team_cache.generation = generation;
	team_cache.employee_id = acting.employee_id;

	cache_query_begin();
	execute_as_owner("SELECT record_type, array_agg(record_id),"
					 "       coalesce(array_agg(record_id) FILTER (WHERE access = 'edit'), '{}'),"
					 "       min(expires_at) FILTER (WHERE expires_at > now())"
					 "  FROM crm.team_member"
					 " WHERE employee_id = $1 AND (expires_at IS NULL OR expires_at > now())"
					 " GROUP BY record_type",
					 1, types, values);
	team_cache.valid_until = DT_NOEND;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *type = SPI_getvalue(row, desc, 1);
		bool		no_expiry;
		Datum		expiry = SPI_getbinval(row, desc, 4, &no_expiry);
		MemoryContext old;
		int			t;

		t = type_slot(type, strlen(type));
		if (t < 0)
			continue;
		old = MemoryContextSwitchTo(cxt);
		team_cache.types[t].read = datumCopy(SPI_getbinval(row, desc, 2, &isnull), false, -1);
		team_cache.types[t].edit = datumCopy(SPI_getbinval(row, desc, 3, &isnull), false, -1);
		team_cache.types[t].serial = array_serial + 1;
		array_serial += 2;
		team_cache.types[t].loaded = true;
		MemoryContextSwitchTo(old);
		if (!no_expiry && DatumGetTimestampTz(expiry) < team_cache.valid_until)
			team_cache.valid_until = DatumGetTimestampTz(expiry);
	}
	cache_query_end();
	team_cache.loaded_in_parallel = IsInParallelMode();
	team_cache.valid = true;
}

/*
 * crm.team_records(record_type text, for_edit boolean) returns bigint[]
 *
 * The records of this type shared with the acting employee through a team
 * entry unexpired at the start of the transaction (with edit access, if
 * for_edit).
 */
Datum
crm_team_records(PG_FUNCTION_ARGS)
{
	int			t = record_type_index(PG_GETARG_TEXT_PP(0), false);
	bool		for_edit = PG_GETARG_BOOL(1);
	TeamRecords *tr;
	uint64		generation;

	if (!load_acting_for_statement())
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT8OID));
	generation = crm_table_cache_generation(&team_table);
	if (!team_cache.valid || team_cache.generation != generation ||
		team_cache.employee_id != acting.employee_id ||
		GetCurrentTransactionStartTimestamp() >= team_cache.valid_until)
		load_team_cache(generation);
	tr = &team_cache.types[t];
	if (!tr->loaded)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT8OID));
	PG_RETURN_DATUM(for_edit ? caller_array(fcinfo, tr->edit, tr->serial + 1)
					: caller_array(fcinfo, tr->read, tr->serial));
}

/*
 * The registered type whose records a table holds: its name, how its records
 * are seen ('o'wner, 'p'arent, 'r'ecord, as crm.record_type says) and the
 * column naming the record it follows (NULL: its record_type and record_id),
 * copied into the current memory context.  false for any other table.
 */
bool
crm_record_type_of_table(Oid relid, char **name, char *visibility, char **parent_column)
{
	load_org();
	for (int i = 0; i < org.nslots; i++)
	{
		if (org.types[i].name == NULL || org.types[i].relid != relid || !OidIsValid(relid))
			continue;
		*name = pstrdup(org.types[i].name);
		*visibility = org.types[i].visibility;
		*parent_column = org.types[i].parent_column ? pstrdup(org.types[i].parent_column) : NULL;
		return true;
	}
	return false;
}

/*
 * Whether crm.team_member holds any entry for the record type; answered once
 * per change of that table.  Also returns the table's oid, on which a plan
 * relying on the answer must depend.
 */
bool
crm_team_entries_exist(const char *record_type, Oid *relid)
{
	static uint64 generation = 0;
	static int	known[MAX_RECORD_TYPES];	/* 0 unknown, 1 none, 2 some */
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(record_type)};
	int			t;
	bool		isnull;
	uint64		changes = crm_table_cache_generation(&team_table);

	*relid = team_table.relids[0];
	/* (an answer read under a parallel operation's snapshot may be stale: keep the test) */
	if (!OidIsValid(*relid) || IsInParallelMode())
		return true;
	t = record_type_index(cstring_to_text(record_type), true);
	if (t < 0)
		return true;
	if (generation != changes)
	{
		memset(known, 0, sizeof(known));
		generation = changes;
	}
	if (known[t] == 0)
	{
		/* kept past this transaction: read what is committed now */
		cache_query_begin();
		execute_as_owner("SELECT EXISTS (SELECT FROM crm.team_member WHERE record_type = $1)",
						 1, types, values);
		known[t] = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) ? 2 : 1;
		cache_query_end();
	}
	return known[t] == 2;
}

/*
 * crm.has_permission(action text) returns boolean
 */
Datum
crm_has_permission(PG_FUNCTION_ARGS)
{
	char	   *action = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_BOOL(load_acting() && acting_has_permission(action));
}

static int64
tuple_int8(HeapTuple tuple, Relation rel, const char *column, bool *isnull)
{
	int			att = crm_trigger_column(rel, column, INT8OID);
	Datum		d;

	if (att <= 0)
	{
		*isnull = true;
		return 0;
	}
	d = heap_getattr(tuple, att, RelationGetDescr(rel), isnull);
	return *isnull ? 0 : DatumGetInt64(d);
}

/* an employee as messages name them: by name, else (a row written meanwhile) by id */
static char *
employee_named(int64 id)
{
	int			i = id_lookup(org.emp_index, id);

	return i >= 0 ? org.emps[i].name : psprintf("%lld", (long long) id);
}

/* the same for callers outside this file, which have not loaded the organisation */
char *
crm_employee_named(int64 id)
{
	load_org();
	return employee_named(id);
}

/*
 * A record as messages name it: by its name when its table has one (a row
 * being inserted has no id anyone could look up), else by its id.
 */
static char *
record_named(Relation rel, HeapTuple row)
{
	int			att = crm_trigger_column(rel, "name", TEXTOID);
	bool		isnull;
	Datum		d;

	if (att > 0)
	{
		d = heap_getattr(row, att, RelationGetDescr(rel), &isnull);
		if (!isnull)
		{
			char	   *name = TextDatumGetCString(d);

			return psprintf("\"%s\"", crm_quote(name, strlen(name)));
		}
	}
	return psprintf("%lld", (long long) tuple_int8(row, rel, "id", &isnull));
}

static void
require_permission(int t, const char *verb, const char *action, Relation rel, HeapTuple row)
{
	char	   *permission = psprintf("%s.%s", type_name(t), action);

	if (!acting_has_permission(permission))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("employee %s may not %s %s %s",
						employee_named(acting.employee_id), verb, type_name(t), record_named(rel, row)),
				 errdetail("None of the employee's roles grants the permission \"%s\".", permission),
				 errhint("Ask an administrator to add \"%s\" to one of your roles (crm.role_permission).",
						 permission)));
}

/*
 * owner_id and created_by name employees.  They are checked here against the
 * cached organisation rather than by foreign keys, which would cost a query
 * per row: employees are never deleted nor truncated, so a reference that
 * was right when written stays right.  An owner must also be active.
 */
static void
check_employee_reference(int t, Relation rel, HeapTuple row, HeapTuple old, TriggerEvent event,
						 const char *column, bool must_be_active)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			att = crm_trigger_column(rel, column, INT8OID);
	bool		isnull;
	int64		employee;
	int			e;

	if (att <= 0)
		return;
	employee = DatumGetInt64(heap_getattr(row, att, desc, &isnull));
	if (isnull)
		return;
	if (TRIGGER_FIRED_BY_UPDATE(event))
	{
		bool		oldnull;
		int64		before = DatumGetInt64(heap_getattr(old, att, desc, &oldnull));

		if (!oldnull && before == employee)
			return;
	}
	load_org();
	e = id_lookup(org.emp_index, employee);
	if (e < 0 || (must_be_active && !org.emps[e].active))
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("%s.%s %lld is not %s employee", type_name(t), column, (long long) employee,
						e < 0 ? "an" : "an active"),
				 errhint("%s", e < 0 ? "Name an id from crm.employee." :
						 "Deactivated employees own nothing; name their successor.")));
}

/*
 * crm.check_write(): BEFORE INSERT OR UPDATE OR DELETE row trigger on every
 * business table, argument the record type.  Row-level security decides
 * which rows a statement can reach; this trigger refuses, with a message
 * that names the rule, what the acting employee's roles do not allow:
 *	 INSERT needs <type>.create and an owner within the employee's scope;
 *	 UPDATE needs <type>.edit, <type>.lock to lock or unlock, and
 *	 <type>.transfer to change the owner of a record whose owner is
 *	 within scope, to someone within scope (crm.transfer() hands records
 *	 outside it);
 *	 DELETE needs <type>.delete.
 * Superusers pass (they bypass row-level security too); sessions that are
 * nobody may not write.
 */
Datum
crm_check_write(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	row;
	int			t;
	bool		isnull;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || td->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crm.check_write() must be a BEFORE row trigger with the record type as argument")));
	crm_require_crm_table(fcinfo, "crm.check_write()");
	t = record_type_index(cstring_to_text(td->tg_trigger->tgargs[0]), false);
	desc = RelationGetDescr(td->tg_relation);
	row = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;

	if (!TRIGGER_FIRED_BY_DELETE(td->tg_event) && !crm_restoring())
	{
		check_employee_reference(t, td->tg_relation, row, td->tg_trigtuple, td->tg_event, "owner_id", true);
		check_employee_reference(t, td->tg_relation, row, td->tg_trigtuple, td->tg_event, "created_by", false);
	}
	/* superusers bypass row-level security, and these checks with it */
	if (superuser())
		return PointerGetDatum(row);
	if (!load_acting_for_statement())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no active employee is acting, so %s rows cannot be written", type_name(t)),
				 errdetail("Role \"%s\" maps to no active employee and carries no trusted claim.",
						   GetUserNameFromId(GetUserId(), false)),
				 errhint("Log in with your employee's role, or have crm.employee.db_role name this role.")));

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		int64		owner = tuple_int8(row, td->tg_relation, "owner_id", &isnull);
		int			locked = crm_trigger_column(td->tg_relation, "locked", BOOLOID);
		TypeScope  *ts;
		bool		lock_null;

		require_permission(t, "create", "create", td->tg_relation, row);
		/* a record created locked is never recycled: locking it needs the permission, as by UPDATE */
		if (locked > 0 && DatumGetBool(heap_getattr(row, locked, desc, &lock_null)) && !lock_null)
			require_permission(t, "lock", "lock", td->tg_relation, row);
		ts = acting_type_scope(t);
		if (!isnull && !owner_in_scope(ts, owner))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("employee %s may not create %s %s for employee %s",
							employee_named(acting.employee_id), type_name(t), record_named(td->tg_relation, row),
							employee_named(owner)),
					 errdetail("Employee %s is outside the employee's %s scope (%s).",
							   employee_named(owner), type_name(t), describe_scope(acting.emp, t)),
					 errhint("Create it for yourself or someone in your scope; giving records to others needs \"%s.transfer\".",
							 type_name(t))));
	}
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		bool		oldnull;
		int64		old_owner = tuple_int8(td->tg_trigtuple, td->tg_relation, "owner_id", &oldnull);
		int64		new_owner = tuple_int8(row, td->tg_relation, "owner_id", &isnull);

		int			locked = crm_trigger_column(td->tg_relation, "locked", BOOLOID);

		require_permission(t, "edit", "edit", td->tg_relation, row);
		if (locked > 0)
		{
			bool		was_null,
						is_null;
			bool		was = DatumGetBool(heap_getattr(td->tg_trigtuple, locked, desc, &was_null));
			bool		now = DatumGetBool(heap_getattr(row, locked, desc, &is_null));

			if (was != now)
				require_permission(t, now ? "lock" : "unlock", "lock", td->tg_relation, row);
		}
		if (oldnull != isnull || old_owner != new_owner)
		{
			require_permission(t, "transfer", "transfer", td->tg_relation, row);

			/*
			 * as crm.transfer(): only records the writer owns or manages; a
			 * collaborator's edit access reaches the row but not its owner
			 */
			if (!oldnull && !owner_in_scope(acting_type_scope(t), old_owner))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("employee %s may not transfer %s %s by UPDATE",
								employee_named(acting.employee_id), type_name(t), record_named(td->tg_relation, row)),
						 errdetail("Its owner, employee %s, is outside the employee's %s scope (%s); editing it as a team member does not include giving it away.",
								   employee_named(old_owner), type_name(t), describe_scope(acting.emp, t)),
						 errhint("Transfer only records you own or manage.")));
			/* PostgreSQL will not let an UPDATE hide the row it changes from its writer */
			if (!isnull && !owner_in_scope(acting_type_scope(t), new_owner))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("employee %s may not move %s %s out of their scope by UPDATE",
								employee_named(acting.employee_id), type_name(t), record_named(td->tg_relation, row)),
						 errdetail("Employee %s is outside the employee's %s scope (%s).",
								   employee_named(new_owner), type_name(t), describe_scope(acting.emp, t)),
						 errhint("Use crm.transfer(), which hands records to anyone when a role grants \"%s.transfer\".",
								 type_name(t))));
		}
	}
	else
		require_permission(t, "delete", "delete", td->tg_relation, row);

	return PointerGetDatum(row);
}

static void
explain_row(ReturnSetInfo *rsinfo, const char *rule, bool grants, const char *detail)
{
	Datum		values[3] = {CStringGetTextDatum(rule), BoolGetDatum(grants), CStringGetTextDatum(detail)};
	bool		nulls[3] = {false, false, false};

	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * crm.explain_access(record_type text, id bigint)
 *	 returns table (rule text, grants boolean, detail text)
 *
 * Why the acting employee can or cannot reach one record, from the pieces
 * crm.scope_owners() and crm.team_records() are made of, so that every line
 * agrees with the policies: identity, ownership, each role's scope (a super
 * admin's is all), public pools administered, team entries, and the record
 * type's action permissions.  Of a record the employee cannot see, it says
 * only that: not whether it exists, nor whose it is.  To a role the policies
 * do not apply to (a superuser), it says so.
 */
Datum
crm_explain_access(PG_FUNCTION_ARGS)
{
	CrmSwitch	pin;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			t = record_type_index(PG_GETARG_TEXT_PP(0), false);
	int64		id = PG_GETARG_INT64(1);
	const char *type = pstrdup(type_name(t));	/* org.cxt may be reloaded below */
	const char *asked = type;
	static const char *const actions[] = {"create", "edit", "delete", "transfer", "export"};
	Oid			types[3] = {INT8OID, TEXTOID, INT8OID};
	Datum		values[3];
	bool		isnull;
	Oid			relid;
	int64		owner = 0;
	int			owner_index = -1;
	bool		any_scope = false;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);

	relid = org.types[t].relid;
	if (OidIsValid(relid) && check_enable_rls(relid, InvalidOid, true) != RLS_ENABLED)
	{
		explain_row(rsinfo, "row_security", true,
					psprintf("role \"%s\" bypasses row-level security on crm.%s, so the policies do not limit it",
							 GetUserNameFromId(GetUserId(), false), type));
		PG_RETURN_NULL();
	}
	if (!load_acting())
	{
		explain_row(rsinfo, "identity", false,
					psprintf("role \"%s\" maps to no active employee and carries no trusted claim, so it sees nothing",
							 GetUserNameFromId(GetUserId(), false)));
		PG_RETURN_NULL();
	}
	explain_row(rsinfo, "identity", true, psprintf("acting as employee %lld", (long long) acting.employee_id));

	if (!OidIsValid(relid))
	{
		explain_row(rsinfo, "record", false, psprintf("crm has no %s records yet", type));
		PG_RETURN_NULL();
	}
	if (org.types[t].visibility == 'r')
	{
		explain_row(rsinfo, "record", false,
					psprintf("a %s is seen by its author and with the record it is about: explain that record's access", type));
		PG_RETURN_NULL();
	}

	SPI_connect();
	values[0] = Int64GetDatum(id);
	/*
	 * As the caller, under row-level security: of a record they may not see,
	 * they learn no more than of one that does not exist (and their own
	 * operators take no part in the answer).
	 */
	crm_switch_pin(&pin);
	if (SPI_execute_with_args(psprintf("SELECT FROM crm.%s WHERE id = $1", quote_identifier(get_rel_name(relid))),
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: could not look up %s %lld", type, (long long) id)));
	crm_switch_back(&pin);
	if (SPI_processed == 0)
	{
		SPI_finish();
		explain_row(rsinfo, "record", false, psprintf("employee %lld has no access to %s %lld",
													   (long long) acting.employee_id, type, (long long) id));
		PG_RETURN_NULL();
	}
	explain_row(rsinfo, "record", true, psprintf("%s %lld exists", type, (long long) id));

	/*
	 * A type that follows a parent has its parent's policies (a contact its
	 * customer's): who sees or writes the parent sees or writes it, so the
	 * answer is the parent's.
	 */
	if (org.types[t].visibility == 'p' && org.types[t].parent >= 0)
	{
		int			parent = org.types[t].parent;

		execute_as_owner(psprintf("SELECT %s FROM crm.%s WHERE id = $1", quote_identifier(org.types[t].parent_column),
								  quote_identifier(get_rel_name(relid))),
						 1, types, values);
		id = spi_int8(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		explain_row(rsinfo, type_name(parent), true,
					psprintf("%s %lld belongs to %s %lld, whose access it follows",
							 type, (long long) DatumGetInt64(values[0]), type_name(parent), (long long) id));
		t = parent;
		type = pstrdup(type_name(t));
		relid = org.types[t].relid;
		values[0] = Int64GetDatum(id);
	}
	execute_as_owner(psprintf("SELECT owner_id FROM crm.%s WHERE id = $1", quote_identifier(get_rel_name(relid))),
					 1, types, values);
	if (SPI_processed > 0)
	{
		owner = spi_int8(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		owner_index = isnull ? -1 : id_lookup(org.emp_index, owner);
	}

	if (owner_index == acting.emp)
		explain_row(rsinfo, "owner", true, psprintf("employee %lld owns %s %lld",
													 (long long) owner, type, (long long) id));

	/* as compute_type_scope(): a super admin's scope is all, whatever the roles set */
	foreach(lc, org.emps[acting.emp].roles)
	{
		Role	   *role = &org.roles[lfirst_int(lc)];
		const RoleScope *rs = &role->scopes[t];
		bool	   *marked;
		bool		grants;

		if (role->is_super)
		{
			explain_row(rsinfo, "scope", true,
						psprintf("role \"%s\" makes the employee a super admin, with %s scope all and every permission",
								 role->name, type));
			any_scope = true;
			continue;
		}
		if (rs->kind == SCOPE_NONE || acting.is_super)
			continue;
		any_scope = true;
		marked = palloc0(sizeof(bool) * Max(org.nemps, 1));
		mark_scope(acting.emp, rs, marked);
		grants = rs->kind == SCOPE_ALL || (owner_index >= 0 && marked[owner_index]);
		explain_row(rsinfo, "scope", grants,
					psprintf("role \"%s\" gives %s scope %s, which %s the owner",
							 role->name, type, scope_names[rs->kind], grants ? "includes" : "does not include"));
	}
	if (!any_scope)
		explain_row(rsinfo, "scope", owner_index == acting.emp,
					psprintf("no role of the employee sets a %s scope, so it is self", type));
	/* (to anyone else, which pool holds it is the owner, and not theirs to know) */
	if (owner_index >= 0 && list_member_int(org.emps[acting.emp].admin_pools, owner_index))
		explain_row(rsinfo, "pool_admin", true,
					psprintf("%s %lld is in public pool %lld, which the employee administers",
							 type, (long long) id, (long long) owner));

	values[0] = Int64GetDatum(acting.employee_id);
	values[1] = CStringGetTextDatum(type);
	values[2] = Int64GetDatum(id);
	execute_as_owner("SELECT access, expires_at IS NULL OR expires_at > now(),"
					 "       coalesce(' until ' || expires_at, ''), coalesce(' at ' || expires_at, '')"
					 "  FROM crm.team_member WHERE employee_id = $1 AND record_type = $2 AND record_id = $3",
					 3, types, values);
	if (SPI_processed > 0)
	{
		HeapTuple	row = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *access = SPI_getvalue(row, desc, 1);
		bool		current = DatumGetBool(SPI_getbinval(row, desc, 2, &isnull));

		explain_row(rsinfo, "team", current,
					current ? psprintf("team member with %s access%s", access, SPI_getvalue(row, desc, 3))
					: psprintf("team entry with %s access expired%s", access, SPI_getvalue(row, desc, 4)));
	}
	SPI_finish();

	for (size_t i = 0; i < lengthof(actions); i++)
	{
		char	   *permission = psprintf("%s.%s", asked, actions[i]);

		explain_row(rsinfo, "permission", acting_has_permission(permission), permission);
	}
	PG_RETURN_NULL();
}

/*
 * Whether the session may change configuration guarded by an admin action
 * (admin.org, admin.role, ...): superusers, members of crm_admin, and
 * employees whose roles grant the action (super admins grant every action).
 */
bool
crm_may_administer(const char *action)
{
	Oid			admin = get_role_oid("crm_admin", true);

	if (superuser() || (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin)))
		return true;
	return load_acting() && acting_has_permission(action);
}

/* Whether an employee is acting (its id in *employee_id) and may do the action. */
bool
crm_acting_permission(const char *action, int64 *employee_id)
{
	if (!load_acting())
		return false;
	*employee_id = acting.employee_id;
	return acting_has_permission(action);
}

/* The acting employee is a super admin (false for nobody). */
bool
crm_acting_is_super(void)
{
	return load_acting() && acting.is_super;
}

/*
 * crm.may_administer(action text) returns boolean
 */
Datum
crm_may_administer_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(crm_may_administer(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

/*
 * crm.acting_is_super() returns boolean
 */
Datum
crm_acting_is_super_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(crm_acting_is_super());
}
