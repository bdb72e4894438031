/*-------------------------------------------------------------------------
 *
 * scope_plan.c
 *	  Planner hook that makes the access policies as cheap as the queries a
 *	  DBA would write by hand.
 *
 * The policies read "owner_id = ANY (crm.scope_owners(t)) OR id = ANY
 * (crm.team_records(t, ...))".  Before planning, this hook
 *
 *	 - drops the team test while no team entry of the record type exists
 *	   anywhere: the array is then empty, "x op ANY" of it false and "x op
 *	   ALL" true, so the policy is one indexable condition, which allows
 *	   index-only scans.  The plan depends on crm.team_member, so the first
 *	   team entry (crm.table_changed() invalidates that table) makes every
 *	   cached plan plan again;
 *
 *	 - hashes the membership tests.  PostgreSQL hashes "x = ANY (array)"
 *	   only for arrays that are constants at plan time, but a scope array is
 *	   the same for the whole of a statement when its arguments are (scope.c
 *	   answers every call of a statement from one cache), which is all the
 *	   executor's hashed evaluation needs: it builds its table from the first
 *	   value and probes it for every row.  A manager's policy otherwise
 *	   compares each row it filters with hundreds of owners in turn.
 *
 * Hashed too is a test against the sub-select "(SELECT
 * crm.common_scope_owners(...))", which PostgreSQL evaluates once (an init
 * plan), and against no other sub-select.
 *
 * Dropping and hashing apply only to calls whose arguments cannot change
 * during the statement and are not null (a null argument makes the array null, which
 * hashed evaluation cannot take): constants, or parameters whose value the
 * planner is given.  crm.scope_owners(x) of a column, or of a parameter of a
 * generic plan, is left to the executor.  Nor is anything hashed in a query
 * without a range table or sub-select: PL/pgSQL runs such a query ("x = ANY
 * (...)" in an IF) as a simple expression whose executor state, hash tables
 * included, it keeps for the rest of the transaction, while the acting
 * employee, the organisation and the team entries may change; and it scans
 * no rows.  And a test is hashed only where it decides whether a row is
 * kept (a WHERE or JOIN condition, a policy, a WITH CHECK, through AND,
 * OR and a CASE's results, or a CASE's WHEN): there null and false are
 * alike, while over an empty array the hashed test answers null for a null
 * on the left where PostgreSQL answers false, which "IS FALSE" or NOT would
 * tell apart.
 *
 * Neither depends on who is acting, so cached plans stay right for everyone.
 * A query that calls neither scope function is left alone, and finding the
 * functions checks no privilege: roles outside crm plan as if crm were absent.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "crm.h"

static planner_hook_type prev_planner_hook = NULL;

/* the scope functions' oids, looked up again after any org change */
static uint64 oids_generation = 0;
static Oid	scope_owners_oid = InvalidOid;
static Oid	scope_owners_any_oid = InvalidOid;	/* crm.scope_owners(text[]) */
static Oid	common_scope_owners_oid = InvalidOid;
static Oid	team_records_oid = InvalidOid;

typedef struct ScopePlanContext
{
	ParamListInfo bound_params; /* the planner's parameter values, if any */
	bool		hash;			/* the query is no PL/pgSQL simple expression */
	Oid			team_relid;		/* set when a team test was dropped */
	bool		in_qual;		/* the node decides whether a row is kept */
	List	   *qual_lists;		/* the security quals of the query at hand */
} ScopePlanContext;

static bool
lookup_scope_functions(void)
{
	Oid			owners_args[1] = {TEXTOID};
	Oid			owners_any_args[1] = {TEXTARRAYOID};
	Oid			team_args[2] = {TEXTOID, BOOLOID};
	if (oids_generation == crm_org_generation)
		return OidIsValid(scope_owners_oid);
	oids_generation = crm_org_generation;
	scope_owners_oid = scope_owners_any_oid = common_scope_owners_oid = team_records_oid = InvalidOid;
	/* a schema named crm is not enough: the functions must be the extension's */
	if (!OidIsValid(get_extension_oid("crm", true)))
		return false;
	scope_owners_oid = crm_function_oid("scope_owners", 1, owners_args);
	scope_owners_any_oid = crm_function_oid("scope_owners", 1, owners_any_args);
	common_scope_owners_oid = crm_function_oid("common_scope_owners", 1, owners_any_args);
	team_records_oid = crm_function_oid("team_records", 2, team_args);
	if (!OidIsValid(team_records_oid))
		scope_owners_oid = InvalidOid;
	return OidIsValid(scope_owners_oid);
}

static bool
is_scope_function(Oid funcid)
{
	return funcid == scope_owners_oid || funcid == scope_owners_any_oid || funcid == common_scope_owners_oid ||
		funcid == team_records_oid;
}

/* Does the query (its policies included) call a scope function? */
static bool
calls_scope_functions(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr) && is_scope_function(((FuncExpr *) node)->funcid))
		return true;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, calls_scope_functions, context, 0);
	return expression_tree_walker(node, calls_scope_functions, context);
}

/*
 * Is the argument fixed for the whole statement, and not null: a constant, or
 * a parameter whose value the planner is given (a custom plan, which folds it
 * into a constant)?  Not a column, nor a parameter of a generic plan, which
 * may be null at run time.
 */
static bool
fixed_argument(Node *arg, ParamListInfo bound_params)
{
	Param	   *param = (Param *) arg;
	ParamExternData *prm;
	ParamExternData prmdata;

	if (IsA(arg, Const))
		return !((Const *) arg)->constisnull;
	if (!IsA(arg, Param) || param->paramkind != PARAM_EXTERN || bound_params == NULL ||
		param->paramid <= 0 || param->paramid > bound_params->numParams)
		return false;
	/* as eval_const_expressions() reads it */
	if (bound_params->paramFetch != NULL)
		prm = bound_params->paramFetch(bound_params, param->paramid, true, &prmdata);
	else
		prm = &bound_params->params[param->paramid - 1];
	return (prm->pflags & PARAM_FLAG_CONST) && !prm->isnull && prm->ptype == param->paramtype;
}

static bool
fixed_arguments(FuncExpr *func, ParamListInfo bound_params)
{
	ListCell   *lc;

	foreach(lc, func->args)
		if (!fixed_argument(lfirst(lc), bound_params))
			return false;
	return true;
}

/*
 * Is the array the sub-select "(SELECT crm.common_scope_owners(<types>))", and
 * nothing more?  PostgreSQL evaluates it once per execution (an init plan),
 * its answer is never null and its elements are held by value, so a hashed
 * test may build its table from it once (the tags' policy asks it for the
 * owners the reader sees for every type).  Any other sub-select is left alone:
 * one that can answer no row gives a null array, which the hashed test cannot
 * take, and others are evaluated again for each row of a query around them.
 */
static bool
fixed_sublink(Node *array, ParamListInfo bound_params)
{
	SubLink    *sublink = (SubLink *) array;
	Query	   *sub;
	Node	   *expr;

	if (!IsA(array, SubLink) || sublink->subLinkType != EXPR_SUBLINK || !IsA(sublink->subselect, Query))
		return false;
	sub = (Query *) sublink->subselect;
	if (sub->commandType != CMD_SELECT || sub->rtable != NIL || sub->jointree == NULL ||
		sub->jointree->fromlist != NIL || sub->jointree->quals != NULL || sub->cteList != NIL ||
		sub->setOperations != NULL || sub->hasAggs || sub->hasWindowFuncs || sub->hasTargetSRFs ||
		sub->hasSubLinks || sub->groupClause != NIL || sub->groupingSets != NIL || sub->havingQual != NULL ||
		sub->distinctClause != NIL || sub->sortClause != NIL || sub->limitCount != NULL ||
		sub->limitOffset != NULL || sub->rowMarks != NIL || list_length(sub->targetList) != 1)
		return false;
	expr = (Node *) ((TargetEntry *) linitial(sub->targetList))->expr;
	return IsA(expr, FuncExpr) && ((FuncExpr *) expr)->funcid == common_scope_owners_oid &&
		((FuncExpr *) expr)->funcresulttype == INT8ARRAYOID && fixed_arguments((FuncExpr *) expr, bound_params);
}

static Node *scope_mutator(Node *node, ScopePlanContext *context);

/* The node's parts mutated, as conditions that keep or drop rows (in_qual) or not. */
static Node *
mutate_children(Node *node, ScopePlanContext *context, bool in_qual)
{
	bool		saved = context->in_qual;
	Node	   *result;

	context->in_qual = in_qual;
	result = expression_tree_mutator(node, scope_mutator, context);
	context->in_qual = saved;
	return result;
}

/* One node mutated as a condition (in_qual) or not. */
static Node *
mutate_as(Node *node, ScopePlanContext *context, bool in_qual)
{
	bool		saved = context->in_qual;
	Node	   *result;

	context->in_qual = in_qual;
	result = scope_mutator(node, context);
	context->in_qual = saved;
	return result;
}

/* A query's parts mutated, its policies (security quals) as conditions. */
static Query *
mutate_query(Query *query, ScopePlanContext *context, int flags)
{
	List	   *saved_lists = context->qual_lists;
	bool		saved = context->in_qual;
	ListCell   *lc;
	Query	   *result;

	context->qual_lists = NIL;
	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		if (rte->securityQuals != NIL)
			context->qual_lists = lappend(context->qual_lists, rte->securityQuals);
	}
	context->in_qual = false;
	result = query_tree_mutator(query, scope_mutator, context, flags);
	context->qual_lists = saved_lists;
	context->in_qual = saved;
	return result;
}

static Node *
scope_mutator(Node *node, ScopePlanContext *context)
{
	if (node == NULL)
		return NULL;
	/* where a value only keeps or drops rows: policies, WHERE, JOIN ON, WITH CHECK */
	if (IsA(node, List) && list_member_ptr(context->qual_lists, node))
		return mutate_children(node, context, true);
	if (IsA(node, FromExpr))
	{
		FromExpr   *from = (FromExpr *) node;

		return (Node *) makeFromExpr((List *) mutate_as((Node *) from->fromlist, context, false),
									 mutate_as(from->quals, context, true));
	}
	if (IsA(node, JoinExpr))
	{
		JoinExpr   *join = makeNode(JoinExpr);

		memcpy(join, node, sizeof(JoinExpr));

		join->larg = mutate_as(join->larg, context, false);
		join->rarg = mutate_as(join->rarg, context, false);
		join->quals = mutate_as(join->quals, context, true);
		return (Node *) join;
	}
	if (IsA(node, WithCheckOption))
	{
		WithCheckOption *wco = makeNode(WithCheckOption);

		memcpy(wco, node, sizeof(WithCheckOption));

		wco->qual = mutate_as(wco->qual, context, true);
		return (Node *) wco;
	}
	/* AND and OR keep a condition a condition (implicit ANDs, lists, too); NOT does not */
	if ((IsA(node, BoolExpr) && ((BoolExpr *) node)->boolop != NOT_EXPR) || IsA(node, List))
		return mutate_children(node, context, context->in_qual);

	/*
	 * A CASE's results are what its condition is (the shared tables' policies
	 * test each type's scope in one); a WHEN takes null for false anyway.
	 */
	if (IsA(node, CaseExpr))
	{
		CaseExpr   *expr = makeNode(CaseExpr);
		ListCell   *lc;

		memcpy(expr, node, sizeof(CaseExpr));

		expr->arg = (Expr *) mutate_as((Node *) expr->arg, context, false);
		expr->args = NIL;
		foreach(lc, ((CaseExpr *) node)->args)
		{
			CaseWhen   *when = makeNode(CaseWhen);

			memcpy(when, lfirst(lc), sizeof(CaseWhen));

			when->expr = (Expr *) mutate_as((Node *) when->expr, context, true);
			when->result = (Expr *) mutate_as((Node *) when->result, context, context->in_qual);
			expr->args = lappend(expr->args, when);
		}
		expr->defresult = (Expr *) mutate_as((Node *) expr->defresult, context, context->in_qual);
		return (Node *) expr;
	}
	if (IsA(node, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *saop = (ScalarArrayOpExpr *) node;
		Node	   *scalar = linitial(saop->args);
		Node	   *array = lsecond(saop->args);
		FuncExpr   *func = IsA(array, FuncExpr) ? (FuncExpr *) array : NULL;
		Oid			lefthash;
		Oid			righthash;

		if (func == NULL ? !fixed_sublink(array, context->bound_params) :
			(!is_scope_function(func->funcid) || !fixed_arguments(func, context->bound_params)))
			return expression_tree_mutator(node, scope_mutator, context);

		/*
		 * No team entry: the array is empty whatever its arguments (they are
		 * not null), so the test is false for ANY and true for ALL, whatever
		 * the operator and even for a null on the left.  Only a left side
		 * that is evaluated for nothing but the test may go with it.
		 */
		if (func != NULL && func->funcid == team_records_oid && IsA(linitial(func->args), Const) &&
			(IsA(scalar, Var) || IsA(scalar, Const) || IsA(scalar, Param)))
		{
			Const	   *type = linitial(func->args);
			Oid			relid;

			if (!crm_team_entries_exist(TextDatumGetCString(type->constvalue), &relid))
			{
				context->team_relid = relid;
				return (Node *) makeBoolConst(!saop->useOr, false);
			}
		}
		saop = (ScalarArrayOpExpr *) mutate_children(node, context, false);
		if (context->hash && context->in_qual && saop->useOr &&
			get_op_hash_functions(saop->opno, &lefthash, &righthash) && lefthash == righthash)
			saop->hashfuncid = lefthash;
		return (Node *) saop;
	}
	if (IsA(node, Query))
		return (Node *) mutate_query((Query *) node, context, 0);
	return mutate_children(node, context, false);
}

static PlannedStmt *
crm_planner(Query *parse, const char *query_string, int cursor_options, ParamListInfo bound_params)
{
	ScopePlanContext context = {bound_params, parse->rtable != NIL || parse->hasSubLinks, InvalidOid, false, NIL};
	PlannedStmt *result;

	/* row-level security has added the policies to the range table by now */
	if (lookup_scope_functions() &&
		query_tree_walker(parse, calls_scope_functions, NULL, 0))
		parse = mutate_query(parse, &context, QTW_DONT_COPY_QUERY);
	if (prev_planner_hook)
		result = prev_planner_hook(parse, query_string, cursor_options, bound_params);
	else
		result = standard_planner(parse, query_string, cursor_options, bound_params);
	if (OidIsValid(context.team_relid))
		result->relationOids = lappend_oid(result->relationOids, context.team_relid);
	return result;
}

void
crm_scope_plan_init(void)
{
	prev_planner_hook = planner_hook;
	planner_hook = crm_planner;
}
