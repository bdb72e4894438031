/*-------------------------------------------------------------------------
 *
 * parts.c
 *	  crm.part_write() and crm.check_line_seller(): what is written on a deal
 *	  or a contract, its lines (crm.opportunity_product, crm.contract_product)
 *	  and a deal's competitors (crm.opportunity_competitor)
 *	  (docs/opportunities.md, docs/contracts.md).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/rls.h"

#include "crm.h"

/*
 * crm.part_write(): what is written on a deal or a contract, a line or a
 * competitor, needs the deal open (the contract a draft, or rejected) and
 * editable by the writer, who is told which record before row security would
 * name a policy; a line's product must be on the shelf and one the record's
 * owner may sell when the line gets it (lines keep theirs), and its unit
 * price is the product's list price unless given.  A BEFORE INSERT OR UPDATE
 * OR DELETE row trigger, as the writer.  The record is read locked, so that
 * writers of one record's lines take turns and each statement's total sees
 * the others' lines.
 *
 * A statement writing many lines reads each product once, and each deal
 * once: what it read is kept with the trigger's call state (one per
 * statement) for as long as nothing else ran a command (the command counter
 * has not moved: a function the statement calls between rows cannot close
 * the deal unseen) and no deal was written (a writable CTE of the statement's
 * own closing it).  A contract is read again for each line: its rules are
 * PL/pgSQL, which counts no writes.
 */
PG_FUNCTION_INFO_V1(crm_part_write);

/* What parts are written on: a deal or a contract. */
typedef struct PartParent
{
	const char *type;			/* its record type: opportunity, contract */
	const char *noun;			/* for hints: deal, contract */
	const char *row_sql;		/* label, status, owner, writable; for $1, locked, if the writer may edit it */
	const char *label_sql;		/* label, for $1 */
	const char *read_only;		/* what is read-only once it is no longer writable */
	const char *hint_before;	/* the hint then, around the id */
	const char *hint_after;
	bool		memo;			/* kept for the statement (see above) */
	SPIPlanPtr	plan;
} PartParent;

static PartParent deal_parent = {
	"opportunity", "deal",
	"SELECT o.id || ' (' || crm.clip(o.name) || ')', o.status, o.owner_id, o.status = 'open' FROM crm.opportunity o"
	" WHERE o.id = $1 AND crm.has_permission('opportunity.edit') FOR NO KEY UPDATE",
	"SELECT o.id || ' (' || crm.clip(o.name) || ')' FROM crm.opportunity o WHERE o.id = $1",
	"read-only",
	"Reopen it first: SELECT crm.reopen_opportunity(", ");",
	true, NULL
};
static PartParent contract_parent = {
	"contract", "contract",
	"SELECT crm.clip(o.number) || ' (' || crm.clip(o.name) || ')', o.status, o.owner_id, o.status IN ('draft', 'rejected')"
	"  FROM crm.contract o WHERE o.id = $1 AND crm.has_permission('contract.edit') FOR NO KEY UPDATE",
	"SELECT crm.clip(o.number) || ' (' || crm.clip(o.name) || ')' FROM crm.contract o WHERE o.id = $1",
	"its lines are read-only",
	"A contract submitted or in effect changes only through a request: a crm.contract_request of kind change on contract ", ".",
	false, NULL
};

/* The tables parts are written to. */
static const struct
{
	const char *table;
	const char *parent_column;
	PartParent *parent;
	const char *parts;			/* for messages */
	bool		line;			/* a line: product, quantity, price, discount */
}			part_tables[] = {
	{"opportunity_product", "opportunity_id", &deal_parent, "lines", true},
	{"opportunity_competitor", "opportunity_id", &deal_parent, "competitors", false},
	{"contract_product", "contract_id", &contract_parent, "lines", true},
};

static int
part_table(Relation rel, const char *function)
{
	for (int i = 0; i < (int) lengthof(part_tables); i++)
		if (strcmp(RelationGetRelationName(rel), part_tables[i].table) == 0)
			return i;
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("%s runs only on crm.opportunity_product, crm.opportunity_competitor and crm.contract_product, not on %s",
					function, RelationGetRelationName(rel))));
	return -1;
}

typedef struct PartProduct
{
	int64		id;				/* hash key */
	bool		exists;
	bool		on_shelf;
	bool		has_sellers;
	bool		price_null;
	Datum		list_price;
	char	   *name;
	char	   *code;
} PartProduct;

typedef struct PartMemo
{
	MemoryContext cxt;
	Oid			userid;
	CommandId	cid;
	uint64		deal_writes;
	int64		deal;			/* the deal or contract read, or 0 */
	int64		owner;
	char	   *deal_label;		/* "12 (name)", "HT-2026-00001 (name)" */
	HTAB	   *products;
} PartMemo;

static SPIPlanPtr product_plan;

/* a column the trigger reads, which crm's tables have */
static int
required_column(Relation rel, const char *column, Oid type)
{
	int			att = crm_trigger_column(rel, column, type);

	if (att == 0)
		elog(ERROR, "crm.part_write(): %s has no column %s", RelationGetRelationName(rel), column);
	return att;
}

static const char *
employee_label(void)
{
	int64		me;

	if (crm_current_employee(&me))
		return psprintf("employee %s", crm_employee_named(me));
	return "nobody";
}

static SPIPlanPtr
keep_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "crm.part_write(): could not prepare its query: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	return *plan;
}

/* The memo of this statement's rows, forgotten once another command ran. */
static PartMemo *
part_memo(FunctionCallInfo fcinfo)
{
	PartMemo   *memo = fcinfo->flinfo->fn_extra;

	if (memo == NULL)
	{
		memo = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(PartMemo));
		memo->cxt = fcinfo->flinfo->fn_mcxt;
		fcinfo->flinfo->fn_extra = memo;
	}
	if (memo->products == NULL || memo->userid != GetUserId() || memo->cid != GetCurrentCommandId(false) ||
		memo->deal_writes != crm_deal_writes)
	{
		HASHCTL		ctl;

		if (memo->products)
			hash_destroy(memo->products);
		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(PartProduct);
		ctl.hcxt = memo->cxt;
		memo->products = hash_create("crm line products", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		memo->deal = 0;
		memo->userid = GetUserId();
		memo->deal_writes = crm_deal_writes;
	}
	return memo;
}

static PartProduct *
part_product(PartMemo *memo, int64 id)
{
	bool		found;
	PartProduct *p = hash_search(memo->products, &id, HASH_ENTER, &found);
	Oid			type = INT8OID;
	Datum		arg = Int64GetDatum(id);
	bool		isnull;

	if (found)
		return p;
	p->exists = false;
	SPI_connect();
	if (SPI_execute_plan(keep_plan(&product_plan,
								   "SELECT p.name, p.code, p.on_shelf, p.list_price,"
								   "       EXISTS (SELECT FROM crm.product_seller s WHERE s.product_id = p.id)"
								   "  FROM crm.product p WHERE p.id = $1", 1, &type),
						 &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "crm.part_write(): could not read the product");
	if (SPI_processed == 1)
	{
		HeapTuple	row = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(memo->cxt);
		char	   *name = SPI_getvalue(row, desc, 1);
		char	   *code = SPI_getvalue(row, desc, 2);
		Datum		price = SPI_getbinval(row, desc, 4, &p->price_null);

		p->name = crm_quote(name, strlen(name));
		p->code = crm_quote(code, strlen(code));
		p->on_shelf = DatumGetBool(SPI_getbinval(row, desc, 3, &isnull));
		p->list_price = p->price_null ? (Datum) 0 : datumCopy(price, false, -1);
		p->has_sellers = DatumGetBool(SPI_getbinval(row, desc, 5, &isnull));
		p->exists = true;
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return p;
}

/* The deal or contract, read locked if the writer may edit it: refused if not, or if read-only. */
static void
part_parent(PartMemo *memo, PartParent *parent, Datum id, bool id_null, const char *parts)
{
	Oid			type = INT8OID;
	bool		isnull;
	char	   *status;

	if (!id_null && memo->deal == DatumGetInt64(id))
		return;
	memo->deal = 0;
	SPI_connect();
	/* (row security's UPDATE policy applies to a row lock) */
	if (SPI_execute_plan(keep_plan(&parent->plan, parent->row_sql, 1, &type),
						 &id, id_null ? "n" : NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "crm.part_write(): could not read the %s", parent->type);
	if (SPI_processed == 0)
	{
		char	   *label = NULL;

		if (!id_null &&
			SPI_execute_with_args(parent->label_sql, 1, &type, &id, NULL, true, 1) == SPI_OK_SELECT &&
			SPI_processed == 1)
			label = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s may not change the %s of %s %s", employee_label(), parts, parent->type,
						label ? label :
						id_null ? psprintf("NULL: no such %s is visible to them", parent->type) :
						psprintf(INT64_FORMAT ": no such %s is visible to them", DatumGetInt64(id), parent->type)),
				 errhint("Its owner, someone who manages them, or an edit collaborator with %s.edit can; crm.explain_access('%s', id) says why not you.",
						 parent->type, parent->type)));
	}
	{
		HeapTuple	row = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		status = SPI_getvalue(row, desc, 2);
		if (memo->deal_label)
			pfree(memo->deal_label);
		memo->deal_label = MemoryContextStrdup(memo->cxt, SPI_getvalue(row, desc, 1));
		memo->owner = DatumGetInt64(SPI_getbinval(row, desc, 3, &isnull));
		if (!DatumGetBool(SPI_getbinval(row, desc, 4, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("%s %s is %s and %s", parent->type, memo->deal_label, status, parent->read_only),
					 errhint("%s" INT64_FORMAT "%s", parent->hint_before, DatumGetInt64(id), parent->hint_after)));
	}
	SPI_finish();
	if (parent->memo)
		memo->deal = DatumGetInt64(id);
}

/* a line's product, on the shelf and one the deal's owner may sell */
static void
check_line_product(PartMemo *memo, PartProduct *p, Datum product, bool product_null, const char *what)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		args[2] = {product, Int64GetDatum(memo->owner)};
	bool		isnull;

	if (product_null || !p->exists)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("%s cannot be for product %s, which does not exist", what,
						product_null ? "NULL" : psprintf(INT64_FORMAT, DatumGetInt64(product))),
				 errhint("SELECT id, code, name FROM crm.product WHERE on_shelf lists what can be sold.")));
	if (!p->on_shelf)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s cannot be for product \"%s\" (%s): it is off the shelf", what, p->name, p->code),
				 errdetail("Only products on the shelf go on new lines; lines that have it keep it."),
				 errhint("Pick a product on the shelf, or ask whoever holds product.manage to put it back: UPDATE crm.product SET on_shelf = true.")));
	if (!p->has_sellers)
		return;
	SPI_connect();
	if (SPI_execute_with_args("SELECT s.allowed, s.sellers FROM crm.product_sellers($1, $2) s", 2, types, args,
							  NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "crm.part_write(): could not read the product's sellers");
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s cannot be for product \"%s\" (%s): employee %s may not sell it", what, p->name, p->code,
						crm_employee_named(memo->owner)),
				 errdetail("Product \"%s\" is sold by %s only (crm.product_seller).", p->name,
						   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2)),
				 errhint("Pick another product, or ask whoever holds product.manage to add the owner to its sellers.")));
	SPI_finish();
}

/* a quantity above 0, a unit price of 0 or more, a discount from 0 to 100 */
static void
check_line_values(Relation rel, HeapTuple row, Datum price, bool price_null, const char *what, const char *product)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		quantity_null,
				discount_null;
	Datum		quantity = heap_getattr(row, required_column(rel, "quantity", NUMERICOID), desc, &quantity_null);
	Datum		discount = heap_getattr(row, required_column(rel, "discount", NUMERICOID), desc, &discount_null);
	Datum		zero = DirectFunctionCall1(int4_numeric, Int32GetDatum(0));
	Datum		hundred = DirectFunctionCall1(int4_numeric, Int32GetDatum(100));
	const char *wrong = NULL;

	if (quantity_null || DatumGetBool(DirectFunctionCall2(numeric_le, quantity, zero)) ||
		numeric_is_nan(DatumGetNumeric(quantity)))
		wrong = psprintf("a quantity of %s", quantity_null ? "NULL" : DatumGetCString(DirectFunctionCall1(numeric_out, quantity)));
	else if (!price_null && (DatumGetBool(DirectFunctionCall2(numeric_lt, price, zero)) || numeric_is_nan(DatumGetNumeric(price))))
		wrong = psprintf("a unit price of %s", DatumGetCString(DirectFunctionCall1(numeric_out, price)));
	else if (discount_null || DatumGetBool(DirectFunctionCall2(numeric_lt, discount, zero)) ||
			 DatumGetBool(DirectFunctionCall2(numeric_gt, discount, hundred)))
		wrong = psprintf("a discount of %s %%", discount_null ? "NULL" : DatumGetCString(DirectFunctionCall1(numeric_out, discount)));
	if (wrong)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("%s for product \"%s\" cannot have %s", what, product, wrong),
				 errhint("A line has a quantity above 0, a unit price of 0 or more and a discount from 0 to 100 (percent).")));
}

Datum
crm_part_write(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	row;
	int			kind;
	bool		line,
				delete,
				parent_null,
				product_null = true,
				price_null = true;
	int			product_att = 0,
				price_att = 0;
	Datum		parent,
				product = (Datum) 0,
				price = (Datum) 0;
	PartMemo   *memo;
	PartProduct *p = NULL;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crm.part_write() must be a BEFORE INSERT OR UPDATE OR DELETE row trigger")));
	crm_require_crm_table(fcinfo, "crm.part_write()");
	rel = td->tg_relation;
	kind = part_table(rel, "crm.part_write()");
	line = part_tables[kind].line;
	delete = TRIGGER_FIRED_BY_DELETE(td->tg_event);
	row = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	if (crm_restoring())
		return PointerGetDatum(row);
	desc = RelationGetDescr(rel);
	parent = heap_getattr(row, required_column(rel, part_tables[kind].parent_column, INT8OID), desc, &parent_null);
	memo = part_memo(fcinfo);
	if (line && !delete)
	{
		product_att = required_column(rel, "product_id", INT8OID);
		price_att = required_column(rel, "unit_price", NUMERICOID);
		product = heap_getattr(row, product_att, desc, &product_null);
		price = heap_getattr(row, price_att, desc, &price_null);
		if (!product_null)
			p = part_product(memo, DatumGetInt64(product));
	}

	/* crm's own code, and superusers, pass row security and these checks */
	if (check_enable_rls(RelationGetRelid(rel), InvalidOid, true) == RLS_ENABLED)
	{
		part_parent(memo, part_tables[kind].parent, parent, parent_null, part_tables[kind].parts);
		if (line && !delete)
		{
			char	   *what = psprintf("a line of %s %s", part_tables[kind].parent->type, memo->deal_label);
			bool		product_given = TRIGGER_FIRED_BY_INSERT(td->tg_event);

			if (!product_given)
			{
				bool		oldnull;
				Datum		old = heap_getattr(td->tg_trigtuple, product_att, desc, &oldnull);

				product_given = product_null || oldnull || DatumGetInt64(old) != DatumGetInt64(product);
			}
			if (product_given)
				check_line_product(memo, p, product, product_null, what);
			check_line_values(rel, row, price_null && p ? p->list_price : price, price_null && p ? p->price_null : price_null,
							  what, p && p->exists ? p->name : "?");
		}
	}
	memo->cid = GetCurrentCommandId(false);

	/* the list price unless given, whoever writes the line */
	if (price_null && p && p->exists && !p->price_null)
		row = heap_modify_tuple_by_cols(row, desc, 1, &price_att, &p->list_price, &p->price_null);
	return PointerGetDatum(row);
}

/*
 * crm.check_line_seller(): a line's product is one the owner of its deal or
 * contract may sell when the transaction commits, too: a deal handed to an
 * allowed seller for the line and back in one transaction would otherwise
 * carry it.  (Lines a record had before a transfer keep their products.)  A
 * deferred AFTER INSERT OR UPDATE OF product_id row trigger on the lines'
 * tables, as crm's owner (the record may have left the writer's scope); a
 * line whose product anyone may sell, most of them, costs a hash look-up.
 */
PG_FUNCTION_INFO_V1(crm_check_line_seller);

Datum
crm_check_line_seller(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	HeapTuple	row;
	bool		isnull;
	Datum		args[2];
	Oid			types[2] = {INT8OID, INT8OID};
	PartMemo   *memo;
	PartProduct *p;
	CrmSwitch	sw;
	int			kind;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		TRIGGER_FIRED_BY_DELETE(td->tg_event) || TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crm.check_line_seller() must be an AFTER INSERT OR UPDATE row trigger")));
	crm_require_crm_table(fcinfo, "crm.check_line_seller()");
	rel = td->tg_relation;
	kind = part_table(rel, "crm.check_line_seller()");
	if (!part_tables[kind].line)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("crm.check_line_seller() runs only on crm.opportunity_product and crm.contract_product, not on %s",
						RelationGetRelationName(rel))));
	if (crm_restoring())
		return PointerGetDatum(NULL);
	row = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	args[0] = heap_getattr(row, required_column(rel, "product_id", INT8OID), RelationGetDescr(rel), &isnull);
	if (isnull)
		return PointerGetDatum(NULL);
	memo = part_memo(fcinfo);
	crm_switch_to_owner(&sw);
	p = part_product(memo, DatumGetInt64(args[0]));
	memo->cid = GetCurrentCommandId(false);
	if (p->exists && p->has_sellers)
	{
		/* the line as it is now, if it still has the product, and its record */
		args[1] = heap_getattr(row, required_column(rel, "id", INT8OID), RelationGetDescr(rel), &isnull);
		SPI_connect();
		if (SPI_execute_with_args(psprintf("SELECT o.id, o.name, o.owner_id, s.allowed, s.sellers"
										   "  FROM crm.%s l JOIN crm.%s o ON o.id = l.%s,"
										   "       crm.product_sellers(l.product_id, o.owner_id) s"
										   " WHERE l.id = $2 AND l.product_id = $1",
										   part_tables[kind].table, part_tables[kind].parent->type, part_tables[kind].parent_column),
								  2, types, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "crm.check_line_seller(): could not read the line");
		if (SPI_processed == 1 && !DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull)))
		{
			HeapTuple	found = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			char	   *name = SPI_getvalue(found, desc, 2);

			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("a line of %s %s (%s) has product \"%s\", which its owner %s may not sell",
							part_tables[kind].parent->type, SPI_getvalue(found, desc, 1), crm_quote(name, strlen(name)), p->name,
							crm_employee_named(DatumGetInt64(SPI_getbinval(found, desc, 3, &isnull)))),
					 errdetail("It is sold by %s only (crm.product_seller); checked when the transaction commits.",
							   SPI_getvalue(found, desc, 5)),
					 errhint("Put the line on a %s of one of its sellers, or ask whoever holds product.manage to add the owner to its sellers.",
							 part_tables[kind].parent->noun)));
		}
		SPI_finish();
	}
	crm_switch_back(&sw);
	return PointerGetDatum(NULL);
}
