/*-------------------------------------------------------------------------
 *
 * keys.c
 *	  The stored duplicate keys of customers, leads and contacts (normalize.c
 *	  computes them), kept by crm.keep_dedupe_keys(), a BEFORE INSERT OR
 *	  UPDATE row trigger on each of those tables.
 *
 *	  They were stored generated columns, which PostgreSQL computes again on
 *	  every UPDATE of a table with BEFORE row triggers, whatever it changes: a
 *	  company's key goes through OpenCC, the regions and pinyin, some 20 us a
 *	  row, for every recycling clock, transfer or follow-up stamp.  The trigger
 *	  computes them on INSERT, and on UPDATE those whose source changed (a phone
 *	  key when the phone did), or that were written (only a superuser can: it
 *	  is put right).
 *	  Under session_replication_role replica (a logical replication apply,
 *	  crm.rebuild_keys()) it computes them always, with this server's ICU.
 *
 *	  crm.dedupe_keys_stale(row) tells whether a stored row's keys differ from
 *	  what they would be now, for crm.rebuild_keys(); crm.dedupe_key_columns()
 *	  lists the key columns and what they come from, for crm's own checks of
 *	  what a column is.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/typcache.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_keep_dedupe_keys);
PG_FUNCTION_INFO_V1(crm_dedupe_keys_stale);
PG_FUNCTION_INFO_V1(crm_dedupe_key_columns);

/*
 * Every stored key: its table, column, the kind of key (crm.dedupe_key) and
 * the column it is computed from, which may be a key listed before it.  A
 * customer's name is a company's or a person's by its kind column.
 */
typedef struct DedupeKeyColumn
{
	const char *table;
	const char *key;
	const char *kind;			/* NULL: "company" or "name" by the row's kind */
	const char *source;
} DedupeKeyColumn;

static const DedupeKeyColumn dedupe_key_columns[] = {
	{"customer", "name_key", NULL, "name"},
	{"customer", "name_pinyin", "pinyin", "name_key"},
	{"customer", "name_initials", "initials", "name_key"},
	{"customer", "phone_key", "phone", "phone"},
	{"lead", "name_key", "name", "name"},
	{"lead", "company_key", "company", "company"},
	{"lead", "mobile_key", "phone", "mobile"},
	{"lead", "email_key", "email", "email"},
	{"contact", "name_key", "name", "name"},
	{"contact", "mobile_key", "phone", "mobile"},
	{"contact", "email_key", "email", "email"},
};

#define MAX_TABLE_KEYS 4

/* A table's keys, with their columns' and sources' numbers in its rows. */
typedef struct TableKeys
{
	int			nkeys;
	const DedupeKeyColumn *spec[MAX_TABLE_KEYS];
	int			key[MAX_TABLE_KEYS];
	int			source[MAX_TABLE_KEYS];
	int			kind;			/* the customer's kind column, 0 for others */
} TableKeys;

static void
table_keys(const char *table, TupleDesc desc, TableKeys *keys)
{
	keys->nkeys = 0;
	keys->kind = 0;
	for (int i = 0; i < (int) lengthof(dedupe_key_columns); i++)
	{
		const DedupeKeyColumn *c = &dedupe_key_columns[i];

		if (strcmp(c->table, table) != 0)
			continue;
		if (keys->nkeys == MAX_TABLE_KEYS)
			elog(ERROR, "crm.%s has more than %d duplicate keys", table, MAX_TABLE_KEYS);
		keys->spec[keys->nkeys] = c;
		keys->key[keys->nkeys] = crm_desc_column(desc, table, c->key, TEXTOID);
		keys->source[keys->nkeys] = crm_desc_column(desc, table, c->source, TEXTOID);
		if (keys->key[keys->nkeys] <= 0 || keys->source[keys->nkeys] <= 0)
			elog(ERROR, "crm.%s has no column %s or %s", table, c->key, c->source);
		if (c->kind == NULL && (keys->kind = crm_desc_column(desc, table, "kind", TEXTOID)) <= 0)
			elog(ERROR, "crm.%s has no column kind", table);
		keys->nkeys++;
	}
	if (keys->nkeys == 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("crm.%s has no duplicate keys", table),
				 errhint("Duplicate keys are kept on crm.customer, crm.lead and crm.contact.")));
}

/*
 * The keys of a row, in the order of keys->spec: those need marks (all when
 * need is NULL), from the row's columns or from a key computed before.
 */
static void
compute_keys(const TableKeys *keys, const bool *need, HeapTuple tuple, TupleDesc desc, Datum *values, bool *nulls)
{
	for (int i = 0; i < keys->nkeys; i++)
	{
		const DedupeKeyColumn *c = keys->spec[i];
		const char *kind = c->kind;
		Datum		source;
		bool		isnull = true;
		text	   *key = NULL;
		int			computed = -1;

		if (need && !need[i])
			continue;
		if (kind == NULL)
		{
			Datum		k = heap_getattr(tuple, keys->kind, desc, &isnull);

			kind = !isnull && strcmp(TextDatumGetCString(k), "company") == 0 ? "company" : "name";
		}
		for (int j = 0; j < i; j++)
			if (keys->key[j] == keys->source[i] && (need == NULL || need[j]))
				computed = j;
		if (computed >= 0)
		{
			source = values[computed];
			isnull = nulls[computed];
		}
		else
			source = heap_getattr(tuple, keys->source[i], desc, &isnull);
		if (!isnull)
			key = crm_dedupe_key_text(kind, DatumGetTextPP(source));
		values[i] = PointerGetDatum(key);
		nulls[i] = key == NULL;
	}
}

static bool
same_text(Datum a, Datum b)
{
	text	   *x = DatumGetTextPP(a);
	text	   *y = DatumGetTextPP(b);

	return VARSIZE_ANY_EXHDR(x) == VARSIZE_ANY_EXHDR(y) &&
		memcmp(VARDATA_ANY(x), VARDATA_ANY(y), VARSIZE_ANY_EXHDR(x)) == 0;
}

/* whether two rows hold the same text in a column */
static bool
same_value(HeapTuple a, HeapTuple b, int attnum, TupleDesc desc)
{
	bool		anull,
				bnull;
	Datum		av = heap_getattr(a, attnum, desc, &anull);
	Datum		bv = heap_getattr(b, attnum, desc, &bnull);

	return anull == bnull && (anull || same_text(av, bv));
}

/* crm.keep_dedupe_keys(): BEFORE INSERT OR UPDATE row trigger */
Datum
crm_keep_dedupe_keys(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	tuple;
	TableKeys	keys;
	Datum		values[MAX_TABLE_KEYS];
	bool		nulls[MAX_TABLE_KEYS];

	crm_require_before_write_trigger(fcinfo, "crm.keep_dedupe_keys()");

	rel = trigdata->tg_relation;
	desc = RelationGetDescr(rel);
	table_keys(RelationGetRelationName(rel), desc, &keys);
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
	{
		tuple = TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ? trigdata->tg_trigtuple : trigdata->tg_newtuple;
		compute_keys(&keys, NULL, tuple, desc, values, nulls);
		return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, keys.nkeys, keys.key, values, nulls));
	}
	else
	{
		/*
		 * An update computes a key when what it comes from changed (the
		 * source column, the customer's kind, or the key it is computed
		 * from), or when the key itself was written.
		 */
		HeapTuple	old = trigdata->tg_trigtuple;
		bool		need[MAX_TABLE_KEYS];
		int			cols[MAX_TABLE_KEYS];
		Datum		changed[MAX_TABLE_KEYS];
		bool		changed_nulls[MAX_TABLE_KEYS];
		int			n = 0;

		tuple = trigdata->tg_newtuple;
		for (int i = 0; i < keys.nkeys; i++)
		{
			need[i] = !same_value(old, tuple, keys.source[i], desc) ||
				!same_value(old, tuple, keys.key[i], desc) ||
				(keys.spec[i]->kind == NULL && !same_value(old, tuple, keys.kind, desc));
			for (int j = 0; j < i; j++)
				need[i] |= need[j] && keys.key[j] == keys.source[i];
		}
		compute_keys(&keys, need, tuple, desc, values, nulls);
		for (int i = 0; i < keys.nkeys; i++)
			if (need[i])
			{
				cols[n] = keys.key[i];
				changed[n] = values[i];
				changed_nulls[n++] = nulls[i];
			}
		return n == 0 ? PointerGetDatum(tuple) :
			PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, n, cols, changed, changed_nulls));
	}
}

/* crm.dedupe_keys_stale(row): whether a row's stored keys differ from its keys now */
Datum
crm_dedupe_keys_stale(PG_FUNCTION_ARGS)
{
	HeapTupleHeader row = PG_GETARG_HEAPTUPLEHEADER(0);
	Oid			relid = get_typ_typrelid(HeapTupleHeaderGetTypeId(row));
	Oid			nsp = get_namespace_oid("crm", true);
	TupleDesc	desc;
	HeapTupleData tuple;
	TableKeys	keys;
	Datum		values[MAX_TABLE_KEYS];
	bool		nulls[MAX_TABLE_KEYS];
	bool		stale = false;

	if (!OidIsValid(relid) || !OidIsValid(nsp) || get_rel_namespace(relid) != nsp)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("crm.dedupe_keys_stale() takes a row of crm.customer, crm.lead or crm.contact")));
	desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(row), HeapTupleHeaderGetTypMod(row));
	tuple.t_len = HeapTupleHeaderGetDatumLength(row);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = row;
	table_keys(get_rel_name(relid), desc, &keys);
	compute_keys(&keys, NULL, &tuple, desc, values, nulls);
	for (int i = 0; i < keys.nkeys && !stale; i++)
	{
		bool		isnull;
		Datum		stored = heap_getattr(&tuple, keys.key[i], desc, &isnull);

		stale = isnull != nulls[i] || (!isnull && !same_text(stored, values[i]));
	}
	ReleaseTupleDesc(desc);
	PG_RETURN_BOOL(stale);
}

/* Whether column of crm.table is a duplicate key, which crm keeps. */
bool
crm_dedupe_key_column(const char *table, const char *column)
{
	for (int i = 0; i < (int) lengthof(dedupe_key_columns); i++)
		if (strcmp(dedupe_key_columns[i].table, table) == 0 && strcmp(dedupe_key_columns[i].key, column) == 0)
			return true;
	return false;
}

/* crm.dedupe_key_columns(): table_name, key_column, sources */
Datum
crm_dedupe_key_columns(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < (int) lengthof(dedupe_key_columns); i++)
	{
		const DedupeKeyColumn *c = &dedupe_key_columns[i];
		Datum		sources[2] = {CStringGetTextDatum(c->source), CStringGetTextDatum("kind")};
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(c->table);
		values[1] = CStringGetTextDatum(c->key);
		values[2] = PointerGetDatum(construct_array(sources, c->kind ? 1 : 2, TEXTOID, -1, false, TYPALIGN_INT));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
