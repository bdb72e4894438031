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

#include "access/tupdesc.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_rewrite.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "rewrite/rewriteSupport.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

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
 * Refuse to run but as a BEFORE INSERT OR UPDATE row trigger on a table of
 * schema crm.
 */
void
crm_require_before_write_trigger(FunctionCallInfo fcinfo, const char *function)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || TRIGGER_FIRED_BY_DELETE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be a BEFORE INSERT OR UPDATE row trigger", function)));
	crm_require_crm_table(fcinfo, function);
}

/*
 * The number of a column of table's rows that crm writes or reads in binary
 * form, 0 when they have none, an error when they have one of another type.
 */
int
crm_desc_column(TupleDesc desc, const char *table, const char *column, Oid type)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || strcmp(NameStr(att->attname), column) != 0)
			continue;
		if (att->atttypid != type)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of \"%s\" is of type %s, not %s", column,
							table, format_type_be(att->atttypid), format_type_be(type)),
					 errhint("crm's trigger functions run only on crm's own tables.")));
		return i + 1;
	}
	return 0;
}

/* The same, for a column of the table a trigger runs on. */
int
crm_trigger_column(Relation rel, const char *column, Oid type)
{
	return crm_desc_column(RelationGetDescr(rel), RelationGetRelationName(rel), column, type);
}

static ProcessUtility_hook_type prev_process_utility = NULL;

/*
 * Walks a view's query, its sub-selects, CTEs and sublinks included, for a
 * crm table, as PostgreSQL's LOCK walks it to lock what the view reads.  Each
 * view is read once: a view's rules name the view itself (OLD and NEW), and
 * views over views may meet again.  Definitions are read from the catalog,
 * taking no lock: the check waits for nothing and holds nothing, so a LOCK
 * that crm lets through locks, waits and fails as PostgreSQL's own does.
 */
typedef struct LocksCrmContext
{
	Oid			crm;
	List	   *seen;			/* views already walked */
} LocksCrmContext;

static bool locks_crm_walker(Node *node, LocksCrmContext *context);

/* Does a relation (or, for a view, a relation it reads) belong to crm? */
static bool
locks_crm(Oid relid, LocksCrmContext *context)
{
	HeapTuple	rule;
	Datum		action;
	bool		isnull;
	bool		found = false;

	if (get_rel_namespace(relid) == context->crm)
		return true;
	if (get_rel_relkind(relid) != RELKIND_VIEW || list_member_oid(context->seen, relid))
		return false;
	context->seen = lappend_oid(context->seen, relid);
	CHECK_FOR_INTERRUPTS();
	check_stack_depth();
	/* a view is its _RETURN rule; one dropped meanwhile reads nothing */
	rule = SearchSysCache2(RULERELNAME, ObjectIdGetDatum(relid), CStringGetDatum(ViewSelectRuleName));
	if (!HeapTupleIsValid(rule))
		return false;
	action = SysCacheGetAttr(RULERELNAME, rule, Anum_pg_rewrite_ev_action, &isnull);
	if (!isnull)
		found = locks_crm_walker((Node *) stringToNode(TextDatumGetCString(action)), context);
	ReleaseSysCache(rule);
	return found;
}

static bool
locks_crm_walker(Node *node, LocksCrmContext *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, List))
	{
		ListCell   *lc;

		/* a rule's actions */
		foreach(lc, (List *) node)
			if (locks_crm_walker(lfirst(lc), context))
				return true;
		return false;
	}
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
 * Refuses a LOCK of staff's whose relations are, or read, crm's tables (their
 * owner excepted), as the names resolve now.  Returns whether it checked.
 */
/* crm's schema when the caller is staff (not a superuser, not crm_admin), else InvalidOid */
static Oid
staff_crm_schema(void)
{
	Oid			admin;

	/* crm's schema is crm (crm.control): a schema of that name without the extension is not */
	if (superuser() || !OidIsValid(get_extension_oid("crm", true)))
		return InvalidOid;
	admin = get_role_oid("crm_admin", true);
	if (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin))
		return InvalidOid;
	return get_namespace_oid("crm", false);
}

static bool
refuse_crm_locks(LockStmt *stmt)
{
	LocksCrmContext context;
	ListCell   *lc;

	context.crm = staff_crm_schema();
	if (!OidIsValid(context.crm))
		return false;
	foreach(lc, stmt->relations)
	{
		RangeVar   *rv = lfirst_node(RangeVar, lc);
		Oid			relid = RangeVarGetRelid(rv, NoLock, true);

		if (!OidIsValid(relid) || (get_rel_namespace(relid) == context.crm && pg_class_ownercheck(relid, GetUserId())))
			continue;
		context.seen = NIL;
		if (locks_crm(relid, &context))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("role \"%s\" may not lock \"%s\", which is or reads a table of crm's",
							GetUserNameFromId(GetUserId(), false), rv->relname),
					 errdetail("A lock held on a crm table holds up every employee's work on it."),
					 errhint("crm takes the locks its rules need; a superuser or a member of crm_admin may lock crm's tables.")));
	}
	return true;
}

/*
 * PostgreSQL locks the table some statements name before it checks the right
 * they need (a rule and a partition or child need its owner, a trigger the
 * TRIGGER privilege, a foreign key REFERENCES): one bound to be refused still
 * waits in the table's lock queue, and every employee's work waits behind it.
 * Staff naming a crm table so get the refusal first; a name that is not
 * crm's is left to PostgreSQL.  needed 0 means the owner.
 */
static void
refuse_before_locking(RangeVar *rv, AclMode needed, Oid crm)
{
	Oid			relid = rv ? RangeVarGetRelid(rv, NoLock, true) : InvalidOid;

	if (!OidIsValid(relid) || get_rel_namespace(relid) != crm)
		return;
	if (needed == 0 ? pg_class_ownercheck(relid, GetUserId())
		: (pg_class_aclcheck(relid, GetUserId(), needed) == ACLCHECK_OK ||
		   pg_attribute_aclcheck_all(relid, GetUserId(), needed, ACLMASK_ANY) == ACLCHECK_OK))
		return;
	aclcheck_error(needed == 0 ? ACLCHECK_NOT_OWNER : ACLCHECK_NO_PRIV,
				   get_relkind_objtype(get_rel_relkind(relid)), get_rel_name(relid));
}

/* the foreign keys among a table's elements, or a column's constraints */
static void
refuse_foreign_keys(List *elements, Oid crm)
{
	ListCell   *lc;

	foreach(lc, elements)
	{
		Node	   *n = lfirst(lc);

		if (IsA(n, Constraint) && ((Constraint *) n)->contype == CONSTR_FOREIGN)
			refuse_before_locking(((Constraint *) n)->pktable, ACL_REFERENCES, crm);
		else if (IsA(n, ColumnDef))
			refuse_foreign_keys(((ColumnDef *) n)->constraints, crm);
	}
}

static void
refuse_crm_table_locks(Node *stmt)
{
	Oid			crm;
	ListCell   *lc;

	if (!IsA(stmt, RuleStmt) && !IsA(stmt, CreateTrigStmt) && !IsA(stmt, CreateStmt) && !IsA(stmt, AlterTableStmt))
		return;
	crm = staff_crm_schema();
	if (!OidIsValid(crm))
		return;
	if (IsA(stmt, RuleStmt))
		refuse_before_locking(((RuleStmt *) stmt)->relation, 0, crm);
	else if (IsA(stmt, CreateTrigStmt))
		refuse_before_locking(((CreateTrigStmt *) stmt)->relation, ACL_TRIGGER, crm);
	else if (IsA(stmt, CreateStmt))
	{
		CreateStmt *create = (CreateStmt *) stmt;

		/* PARTITION OF names its parent here too */
		foreach(lc, create->inhRelations)
			refuse_before_locking(lfirst_node(RangeVar, lc), 0, crm);
		refuse_foreign_keys(create->tableElts, crm);
		refuse_foreign_keys(create->constraints, crm);
	}
	else
		foreach(lc, ((AlterTableStmt *) stmt)->cmds)
		{
			AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

			if (cmd->subtype == AT_AttachPartition)
				refuse_before_locking(((PartitionCmd *) cmd->def)->name, 0, crm);
			else if (cmd->subtype == AT_AddInherit)
				refuse_before_locking((RangeVar *) cmd->def, 0, crm);
			else if (cmd->subtype == AT_AddConstraint || cmd->subtype == AT_AddColumn)
				refuse_foreign_keys(list_make1(cmd->def), crm);
		}
}

/*
 * A LOCK of staff's runs with its names qualified by the schemas they resolve
 * to when checked: while it waits, dropping a table of that name from a
 * schema ahead of crm in search_path no longer makes it mean crm's.  Once it
 * holds what it took (and the views it read cannot change), it is checked
 * again: a view replaced while it waited is refused then, and the refusal
 * releases the locks with the transaction.
 */
static void
crm_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					ProcessUtilityContext context, ParamListInfo params,
					QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	LockStmt   *lock = NULL;

	refuse_crm_table_locks(pstmt->utilityStmt);
	if (IsA(pstmt->utilityStmt, LockStmt) && refuse_crm_locks((LockStmt *) pstmt->utilityStmt))
	{
		ListCell   *lc;

		pstmt = copyObject(pstmt);
		lock = (LockStmt *) pstmt->utilityStmt;
		foreach(lc, lock->relations)
		{
			RangeVar   *rv = lfirst_node(RangeVar, lc);
			Oid			relid = RangeVarGetRelid(rv, NoLock, true);

			if (OidIsValid(relid))
			{
				rv->schemaname = get_namespace_name(get_rel_namespace(relid));
				rv->catalogname = NULL;
			}
		}
	}
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	if (lock)
		refuse_crm_locks(lock);
}

void
crm_guard_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = crm_process_utility;
}
