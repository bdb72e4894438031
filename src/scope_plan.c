/*-------------------------------------------------------------------------
 *
 * scope_plan.c
 *	  Planner hook: the policies' membership tests against crm's scope arrays
 *	  are evaluated with a hash table, as PostgreSQL does for constant arrays.
 *
 * PostgreSQL hashes "x = ANY (array)" only when the array is a constant known
 * at plan time (convert_saop_to_hashed_saop).  crm.scope_owners() and
 * crm.team_records() return the same array for the whole of a statement:
 * they are STABLE, and scope.c answers every call of a statement from one
 * cache.  That is all the executor's hashed evaluation needs, since it builds
 * its table from the first value and probes it for every row.  Without it, a
 * manager's policy compares every row it filters with each of hundreds of
 * owners in turn.  Index scans are unaffected: they read the array once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/planner.h"
#include "parser/parse_func.h"
#include "utils/lsyscache.h"

#include "crm.h"

static planner_hook_type prev_planner_hook = NULL;

/* the scope functions' oids, looked up again after any org change */
static uint64 oids_generation = 0;
static Oid	scope_owners_oid = InvalidOid;
static Oid	team_records_oid = InvalidOid;

static bool
lookup_scope_functions(void)
{
	Oid			owners_args[1] = {TEXTOID};
	Oid			team_args[2] = {TEXTOID, BOOLOID};

	if (oids_generation == crm_org_generation)
		return OidIsValid(scope_owners_oid);
	oids_generation = crm_org_generation;
	scope_owners_oid = team_records_oid = InvalidOid;
	if (!OidIsValid(get_namespace_oid("crm", true)))
		return false;
	scope_owners_oid = LookupFuncName(list_make2(makeString("crm"), makeString("scope_owners")),
									  1, owners_args, true);
	team_records_oid = LookupFuncName(list_make2(makeString("crm"), makeString("team_records")),
									  2, team_args, true);
	return OidIsValid(scope_owners_oid);
}

static bool
hash_scope_arrays(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *saop = (ScalarArrayOpExpr *) node;
		Node	   *array = lsecond(saop->args);
		Oid			lefthash;
		Oid			righthash;

		if (saop->useOr && !OidIsValid(saop->hashfuncid) && IsA(array, FuncExpr) &&
			(((FuncExpr *) array)->funcid == scope_owners_oid ||
			 ((FuncExpr *) array)->funcid == team_records_oid) &&
			get_op_hash_functions(saop->opno, &lefthash, &righthash) && lefthash == righthash)
			saop->hashfuncid = lefthash;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, hash_scope_arrays, context, 0);
	return expression_tree_walker(node, hash_scope_arrays, context);
}

static PlannedStmt *
crm_planner(Query *parse, const char *query_string, int cursor_options, ParamListInfo bound_params)
{
	/* row-level security has added the policies to the range table by now */
	if (lookup_scope_functions())
		query_tree_walker(parse, hash_scope_arrays, NULL, 0);
	if (prev_planner_hook)
		return prev_planner_hook(parse, query_string, cursor_options, bound_params);
	return standard_planner(parse, query_string, cursor_options, bound_params);
}

void
crm_scope_plan_init(void)
{
	prev_planner_hook = planner_hook;
	planner_hook = crm_planner;
}
