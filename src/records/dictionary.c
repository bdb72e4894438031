/*-------------------------------------------------------------------------
 *
 * dictionary.c
 *	  Columns that take values from a data dictionary (crm.dictionary_column)
 *	  accept only its enabled codes: crm.check_dictionary(), a BEFORE INSERT
 *	  OR UPDATE row trigger on every table that has such a column.  A text
 *	  column holds one code, a text[] column (a multiple-choice field) several.
 *
 * Customers' status_id is checked here too, against crm.customer_status: a
 * foreign key would cost a query per row, and a status in use cannot be
 * deleted anyway (crm.guard_customer_status).
 *
 * The codes, the column map and the statuses are loaded once per backend and
 * change (a statement trigger on those tables broadcasts an invalidation), so
 * the check costs a hash lookup per column and row.  A row keeps a code that has since
 * been disabled for as long as it does not change it (a multiple-choice value,
 * for as long as it keeps that element).  A restore is not
 * checked (see below).
 *
 * crm.replace_dictionary_code() moves records from one code to another for an
 * administrator (src/sql/38_dictionary.sql).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_check_dictionary);
PG_FUNCTION_INFO_V1(crm_initial_customer_status);
PG_FUNCTION_INFO_V1(crm_replace_dictionary_code);

/* kind + NUL + code; the tables' CHECK constraints keep kinds <= 30, codes <= 60 */
#define DICT_KEY_LEN 128

typedef struct DictCode
{
	char		key[DICT_KEY_LEN];
	bool		enabled;
} DictCode;

typedef struct DictColumn
{
	Oid			relid;
	AttrNumber	attnum;
	bool		multiple;		/* text[] */
	char	   *column;
	char	   *kind;
} DictColumn;

static HTAB *dict_codes = NULL;
static List *dict_columns = NIL;
static Oid	customer_relid;
static int	nstatuses;
static int64 *statuses;
static int64 initial_status;	/* 0 if none */

static void load_dictionary(void);
static void forget_dictionary(void);

static CrmTableCache dict_cache = {
	.name = "crm dictionary",
	.tables = {"dictionary", "dictionary_column", "customer_status", NULL},
	.load = load_dictionary,
	.forget = forget_dictionary,
};

void
crm_dictionary_init(void)
{
	crm_table_cache_register(&dict_cache);
}

/*
 * The hash key of kind and code in key; false when they do not fit, so that
 * the pair is no code (the bounds hold whatever the tables hold).
 */
static bool
dict_key(char *key, const char *kind, const char *code, int codelen)
{
	size_t		kindlen = strlen(kind);

	if (kindlen + 1 + codelen >= DICT_KEY_LEN)
		return false;
	memset(key, 0, DICT_KEY_LEN);
	memcpy(key, kind, kindlen);
	memcpy(key + kindlen + 1, code, codelen);
	return true;
}

/* the tables may be new: find crm.customer again */
static void
forget_dictionary(void)
{
	customer_relid = get_relname_relid("customer", get_namespace_oid("crm", false));
}

static void
load_dictionary(void)
{
	Oid			nsp = get_namespace_oid("crm", false);
	HASHCTL		ctl;

	dict_columns = NIL;
	ctl.keysize = DICT_KEY_LEN;
	ctl.entrysize = sizeof(DictCode);
	ctl.hcxt = dict_cache.cxt;
	dict_codes = hash_create("crm dictionary codes", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	crm_table_cache_query(&dict_cache, "SELECT kind, code, enabled FROM crm.dictionary");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *code = SPI_getvalue(row, desc, 2);
		char		key[DICT_KEY_LEN];
		bool		isnull;
		DictCode   *entry;

		if (!dict_key(key, SPI_getvalue(row, desc, 1), code, strlen(code)))
			continue;
		entry = hash_search(dict_codes, key, HASH_ENTER, NULL);
		entry->enabled = DatumGetBool(SPI_getbinval(row, desc, 3, &isnull));
	}
	crm_table_cache_query(&dict_cache, "SELECT table_name, column_name, kind FROM crm.dictionary_column");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		DictColumn *col = palloc(sizeof(DictColumn));

		col->relid = get_relname_relid(SPI_getvalue(row, desc, 1), nsp);
		col->column = SPI_getvalue(row, desc, 2);
		col->kind = SPI_getvalue(row, desc, 3);
		col->attnum = OidIsValid(col->relid) ? get_attnum(col->relid, col->column) : InvalidAttrNumber;
		col->multiple = col->attnum != InvalidAttrNumber && get_atttype(col->relid, col->attnum) == TEXTARRAYOID;
		/* codes are text: a mapping onto another type (the table refuses one) is ignored */
		if (col->attnum != InvalidAttrNumber && !col->multiple && get_atttype(col->relid, col->attnum) != TEXTOID)
		{
			ereport(WARNING,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("dictionary column crm.%s.%s is not of type text and is not checked",
							crm_quote(SPI_getvalue(row, desc, 1), strlen(SPI_getvalue(row, desc, 1))),
							crm_quote(col->column, strlen(col->column)))));
			col->attnum = InvalidAttrNumber;
		}
		dict_columns = lappend(dict_columns, col);
	}
	crm_table_cache_query(&dict_cache, "SELECT id, is_initial FROM crm.customer_status");
	nstatuses = SPI_processed;
	statuses = palloc(sizeof(int64) * Max(nstatuses, 1));
	initial_status = 0;
	for (int i = 0; i < nstatuses; i++)
	{
		bool		isnull;

		statuses[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull)))
			initial_status = statuses[i];
	}
}

static void
check_status(TupleDesc desc, HeapTuple row, HeapTuple old)
{
	int			att = SPI_fnumber(desc, "status_id");
	bool		isnull;
	int64		status;

	if (att <= 0)
		return;
	status = DatumGetInt64(heap_getattr(row, att, desc, &isnull));
	if (isnull)
		return;
	if (old != NULL)
	{
		bool		oldnull;

		if (DatumGetInt64(heap_getattr(old, att, desc, &oldnull)) == status && !oldnull)
			return;
	}
	for (int i = 0; i < nstatuses; i++)
		if (statuses[i] == status)
			return;
	ereport(ERROR,
			(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
			 errmsg("customer.status_id %lld is not a customer status", (long long) status),
			 errhint("Use one of: SELECT id, name FROM crm.customer_status ORDER BY position.")));
}

/* code is an enabled code of the column's dictionary, or an error */
static void
check_code(Relation rel, DictColumn *col, text *code)
{
	char		key[DICT_KEY_LEN];
	DictCode   *entry;

	entry = dict_key(key, col->kind, VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code)) ?
		hash_search(dict_codes, key, HASH_FIND, NULL) : NULL;
	if (entry == NULL || !entry->enabled)
	{
		char	   *kind = crm_quote(col->kind, strlen(col->kind));

		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("%s.%s \"%s\" is %s code of dictionary \"%s\"",
						RelationGetRelationName(rel), col->column,
						crm_quote(VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code)),
						entry ? "a disabled" : "not a", kind),
				 errhint("Use one of: SELECT code, label FROM crm.dictionary WHERE kind = %s AND enabled.",
						 quote_literal_cstr(kind))));
	}
}

/*
 * Each element of a multiple-choice value is a code, but those the old value
 * (NULL: none) held already, which may have been disabled since.
 */
static void
check_codes(Relation rel, DictColumn *col, Datum value, Datum old, bool oldnull)
{
	Datum	   *codes;
	bool	   *nulls;
	int			n;
	Datum	   *kept = NULL;
	bool	   *keptnulls;
	int			nkept = 0;

	deconstruct_array(DatumGetArrayTypeP(value), TEXTOID, -1, false, TYPALIGN_INT, &codes, &nulls, &n);
	if (!oldnull)
		deconstruct_array(DatumGetArrayTypeP(old), TEXTOID, -1, false, TYPALIGN_INT, &kept, &keptnulls, &nkept);
	for (int i = 0; i < n; i++)
	{
		bool		was_there = false;

		if (nulls[i])
			continue;
		for (int j = 0; j < nkept && !was_there; j++)
			was_there = !keptnulls[j] && datumIsEqual(codes[i], kept[j], false, -1);
		if (!was_there)
			check_code(rel, col, DatumGetTextPP(codes[i]));
	}
}

/*
 * crm.check_dictionary(): BEFORE INSERT OR UPDATE row trigger.
 */
Datum
crm_check_dictionary(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	row;
	ListCell   *lc;

	crm_require_before_write_trigger(fcinfo, "crm.check_dictionary()");
	rel = td->tg_relation;
	desc = RelationGetDescr(rel);
	row = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;

	/*
	 * A restore loads customers before the dictionary rows they use (pg_dump
	 * orders tables by name where no foreign key says otherwise).
	 */
	if (crm_restoring())
		return PointerGetDatum(row);
	crm_table_cache_refresh(&dict_cache);

	if (RelationGetRelid(rel) == customer_relid)
		check_status(desc, row, TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_trigtuple : NULL);

	foreach(lc, dict_columns)
	{
		DictColumn *col = lfirst(lc);
		bool		isnull;
		Datum		value;
		bool		oldnull = true;
		Datum		old = (Datum) 0;

		if (col->relid != RelationGetRelid(rel) || col->attnum == InvalidAttrNumber)
			continue;
		value = heap_getattr(row, col->attnum, desc, &isnull);
		if (isnull)
			continue;
		if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		{
			old = heap_getattr(td->tg_trigtuple, col->attnum, desc, &oldnull);
			if (!oldnull && datumIsEqual(old, value, false, -1))
				continue;		/* unchanged: may keep a code disabled since */
		}
		if (col->multiple)
			check_codes(rel, col, value, old, oldnull);
		else
			check_code(rel, col, DatumGetTextPP(value));
	}
	return PointerGetDatum(row);
}

/*
 * crm.initial_customer_status() returns bigint
 *
 * The default of customer.status_id, evaluated for every row inserted: from
 * the cache, not a query.
 */
Datum
crm_initial_customer_status(PG_FUNCTION_ARGS)
{
	crm_table_cache_refresh(&dict_cache);
	if (initial_status == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(initial_status);
}

/*
 * crm.replace_dictionary_code(kind text, old_code text, new_code text) returns integer
 *
 * Who asks is checked here, as the caller; crm.move_dictionary_code() then
 * moves every record, as the owner.
 */
Datum
crm_replace_dictionary_code(PG_FUNCTION_ARGS)
{
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("crm.replace_dictionary_code needs the dictionary, the code to replace and the code its records move to")));
	if (!crm_may_administer("admin.fields"))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not replace dictionary codes", GetUserNameFromId(GetUserId(), false)),
				 errdetail("This needs membership in crm_admin or the permission \"admin.fields\"."),
				 errhint("Ask an administrator to grant \"admin.fields\" to one of your roles.")));
	for (int i = 0; i < 3; i++)
		values[i] = PG_GETARG_DATUM(i);
	PG_RETURN_INT32(crm_run_as_owner("SELECT crm.move_dictionary_code($1, $2, $3)", 3, types, values));
}
