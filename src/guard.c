/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  The tables crm's C trigger functions run on.
 *
 * A trigger function attached to somebody else's table would take that
 * table's NEW, OLD, name and column types for crm's: stamps written into a
 * text column, log entries for a temporary table named "customer".  Nobody
 * but crm's owner can attach them (EXECUTE is not granted, src/sql/98_grants.sql),
 * and each one still refuses any table outside schema crm, where only the
 * owner creates tables, and any column of a type it does not expect.
 *
 * Also the locks crm's tables take.  Whoever may UPDATE or DELETE a table
 * may LOCK it in any mode, and every employee may delete some rows of most
 * crm tables: one open transaction holding ACCESS EXCLUSIVE on crm.employee
 * would stall everyone's work.  crm takes the locks its rules need itself;
 * LOCK on crm's tables (or on a view over them) is for superusers, the
 * tables' owner and crm_admin.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tupdesc.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "rewrite/rewriteHandler.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "crm.h"

/* Refuse to run as a trigger on a table outside schema crm. */
void
crm_require_crm_table(FunctionCallInfo fcinfo, const char *function)
{
	Relation	rel = ((TriggerData *) fcinfo->context)->tg_relation;
	Oid			nsp = get_namespace_oid("crm", true);

	if (!OidIsValid(nsp) || RelationGetNamespace(rel) != nsp)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s cannot run on table \"%s\"", function, RelationGetRelationName(rel)),
				 errdetail("It is a trigger function of crm's own tables."),
				 errhint("crm attaches its trigger functions itself; write a trigger function of your own.")));
}

/*
 * The number of a column a trigger writes or reads in binary form, 0 when the
 * table has none, an error when it has one of another type.
 */
int
crm_trigger_column(Relation rel, const char *column, Oid type)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || strcmp(NameStr(att->attname), column) != 0)
			continue;
		if (att->atttypid != type)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of \"%s\" is of type %s, not %s", column,
							RelationGetRelationName(rel), format_type_be(att->atttypid), format_type_be(type)),
					 errhint("crm's trigger functions run only on crm's own tables.")));
		return i + 1;
	}
	return 0;
}

static ProcessUtility_hook_type prev_process_utility = NULL;

/*
 * Walks a view's query, its sub-selects, CTEs and sublinks included, for a
 * crm table, as PostgreSQL's LOCK walks it to lock what the view reads.  Each
 * view is read once: a view's rules name the view itself (OLD and NEW), and
 * views over views may meet again.  Each view walked stays share-locked to
 * the end of the transaction, so that its definition is the one LOCK reads.
 */
typedef struct LocksCrmContext
{
	Oid			crm;
	LOCKMODE	mode;			/* what LOCK asks for */
	List	   *seen;			/* views already walked */
} LocksCrmContext;

static bool locks_crm_walker(Node *node, LocksCrmContext *context);

/* Does a relation (or, for a view, a relation it reads) belong to crm? */
static bool
locks_crm(Oid relid, LocksCrmContext *context)
{
	Relation	view;
	bool		found;

	if (get_rel_namespace(relid) == context->crm)
		return true;
	if (get_rel_relkind(relid) != RELKIND_VIEW || list_member_oid(context->seen, relid))
		return false;
	context->seen = lappend_oid(context->seen, relid);
	CHECK_FOR_INTERRUPTS();
	check_stack_depth();
	view = table_open(relid, AccessShareLock);
	found = locks_crm_walker((Node *) get_view_query(view), context);
	table_close(view, NoLock);
	return found;
}

static bool
locks_crm_walker(Node *node, LocksCrmContext *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *query = (Query *) node;
		ListCell   *lc;

		foreach(lc, query->rtable)
		{
			RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

			if (rte->rtekind == RTE_RELATION && locks_crm(rte->relid, context))
				return true;
		}
		/* sub-selects in FROM, CTEs and sublinks */
		return query_tree_walker(query, locks_crm_walker, (void *) context, 0);
	}
	return expression_tree_walker(node, locks_crm_walker, (void *) context);
}

/*
 * Refuses what LOCK may not take, before it is taken: a relation of a kind
 * LOCK does not lock, one that is crm's or reads crm's (its owner excepted),
 * one the caller lacks the privilege the mode needs (as LOCK's documentation
 * lists them).  RangeVarGetRelidExtended calls it before each lock it takes,
 * so that the name is checked as it resolves; it runs again once locked.
 */
static void
refuse_crm_lock(const RangeVar *rv, Oid relid, Oid oldrelid, void *arg)
{
	LocksCrmContext *context = (LocksCrmContext *) arg;
	char		relkind;
	AclMode		needed;

	if (!OidIsValid(relid))
		return;
	relkind = get_rel_relkind(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE && relkind != RELKIND_VIEW)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot lock relation \"%s\"", rv->relname),
				 errdetail_relkind_not_supported(relkind)));
	context->seen = NIL;
	if (!(get_rel_namespace(relid) == context->crm && pg_class_ownercheck(relid, GetUserId())) &&
		locks_crm(relid, context))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not lock \"%s\", which is or reads a table of crm's",
						GetUserNameFromId(GetUserId(), false), rv->relname),
				 errdetail("A lock held on a crm table holds up every employee's work on it."),
				 errhint("crm takes the locks its rules need; a superuser or a member of crm_admin may lock crm's tables.")));
	needed = context->mode == AccessShareLock ? ACL_SELECT
		: context->mode == RowExclusiveLock ? (ACL_INSERT | ACL_UPDATE | ACL_DELETE | ACL_TRUNCATE)
		: (ACL_UPDATE | ACL_DELETE | ACL_TRUNCATE);
	if (pg_class_aclcheck(relid, GetUserId(), needed) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(relkind), rv->relname);
}

/*
 * For staff, LOCK takes each relation as its name resolves now: checked,
 * locked in the mode asked for (with the views it reads share-locked, so
 * that it can be neither dropped nor redefined), checked again, and named by
 * its schema for PostgreSQL's LOCK, which then finds it held and resolves
 * nothing new.  A LOCK whose name came to mean crm's table while it waited
 * once queued every employee's work behind it.  Returns the statement to
 * run: the caller's, or the copy with schemas.
 */
static PlannedStmt *
refuse_crm_locks(PlannedStmt *pstmt)
{
	LockStmt   *stmt;
	LocksCrmContext context;
	Oid			admin;
	ListCell   *lc;

	/* crm's schema is crm (crm.control): a schema of that name without the extension is not */
	if (superuser() || !OidIsValid(get_extension_oid("crm", true)))
		return pstmt;
	admin = get_role_oid("crm_admin", true);
	if (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin))
		return pstmt;
	pstmt = copyObject(pstmt);
	stmt = (LockStmt *) pstmt->utilityStmt;
	context.crm = get_namespace_oid("crm", false);
	context.mode = stmt->mode;
	foreach(lc, stmt->relations)
	{
		RangeVar   *rv = lfirst_node(RangeVar, lc);
		Oid			relid = RangeVarGetRelidExtended(rv, stmt->mode,
													 RVR_MISSING_OK | (stmt->nowait ? RVR_NOWAIT : 0),
													 refuse_crm_lock, &context);

		if (!OidIsValid(relid))
			continue;			/* LOCK says it does not exist */
		refuse_crm_lock(rv, relid, InvalidOid, &context);
		rv->schemaname = get_namespace_name(get_rel_namespace(relid));
		rv->catalogname = NULL;
	}
	return pstmt;
}

static void
crm_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					ProcessUtilityContext context, ParamListInfo params,
					QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (IsA(pstmt->utilityStmt, LockStmt))
		pstmt = refuse_crm_locks(pstmt);
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

void
crm_guard_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = crm_process_utility;
}
