/*-------------------------------------------------------------------------
 *
 * opportunity.c
 *	  crm.opportunity_write(): the rules of a deal as it is written, the
 *	  BEFORE INSERT OR UPDATE row trigger of crm.opportunity
 *	  (docs/opportunities.md).
 *
 * crm.advance_stage(), crm.close_opportunity(), crm.reopen_opportunity() and a
 * plain UPDATE ... SET stage_id all come here, so they behave alike: the
 * stage must be one of the deal's set, a set may forbid moving back, the
 * probability becomes the stage's win rate (configured, or observed as
 * crm.settings.win_rate_source says) unless the statement gives one, and
 * status, closed_on and the stage clock are crm's.  A won or lost deal is
 * read-only but for its owner (a transfer), its customer (crm's own code: a
 * merge) and a reopening (crm.reopening_opportunity names the deal).  A deal
 * with lines is worth their total.
 *
 * It runs for every deal written, so it is C: the stage sets, their stages,
 * the latest observed win rates and the settings it needs are cached per
 * backend (table_cache.c), and a move costs hash look-ups, not queries.
 * Whether the customer and lead are ones the writer sees is checked once per
 * statement (crm.check_opportunity_links()).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/timestamp.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_opportunity_write);

typedef struct Stage
{
	int64		id;				/* hash key */
	int64		stage_set_id;
	int32		position;
	char		outcome;		/* 'o'pen, 'w'on, 'l'ost */
	char	   *name;
	Datum		win_rate;		/* numeric */
	Datum		observed;		/* numeric: the latest smoothed rate, or 0 */
} Stage;

typedef struct StageSet
{
	int64		id;				/* hash key */
	bool		allow_backward;
	int64		first_open;		/* its first open stage, or 0 */
	char	   *name;
} StageSet;

static HTAB *stages;
static HTAB *stage_sets;
uint64		crm_deal_writes;	/* deals this backend wrote: what a line's check read may be stale (parts.c) */
static int64 default_set;		/* 0 if none */
static bool sets_name_departments;	/* a set lists departments */
static bool observed_rates;		/* crm.settings.win_rate_source = 'observed' */
static char *company_timezone;

static void load_stages(void);

static CrmTableCache stage_cache = {
	.name = "crm stages",
	.tables = {"stage", "stage_set", "stage_win_rate", "settings", NULL},
	.load = load_stages,
};

void
crm_opportunity_init(void)
{
	crm_table_cache_register(&stage_cache);
}

static HTAB *
int64_hash(const char *name, Size entrysize)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(int64);
	ctl.entrysize = entrysize;
	ctl.hcxt = stage_cache.cxt;
	return hash_create(name, 32, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

static void
load_stages(void)
{
	bool		isnull;

	stages = int64_hash("crm stages", sizeof(Stage));
	stage_sets = int64_hash("crm stage sets", sizeof(StageSet));
	default_set = 0;
	sets_name_departments = false;

	crm_table_cache_query(&stage_cache,
						  "SELECT s.id, s.stage_set_id, s.position, s.name, s.win_rate, s.outcome,"
						  "       (SELECT w.smoothed FROM crm.stage_win_rate w WHERE w.stage_id = s.id"
						  "         ORDER BY w.refreshed_at DESC LIMIT 1)"
						  "  FROM crm.stage s");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		int64		id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
		Stage	   *s = hash_search(stages, &id, HASH_ENTER, NULL);
		Datum		observed;

		s->stage_set_id = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
		s->position = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
		s->name = SPI_getvalue(row, desc, 4);
		s->win_rate = datumCopy(SPI_getbinval(row, desc, 5, &isnull), false, -1);
		s->outcome = SPI_getvalue(row, desc, 6)[0];
		observed = SPI_getbinval(row, desc, 7, &isnull);
		s->observed = isnull ? (Datum) 0 : datumCopy(observed, false, -1);
	}

	crm_table_cache_query(&stage_cache,
						  "SELECT t.id, t.name, t.allow_backward, t.is_default, t.departments <> '{}',"
						  "       (SELECT s.id FROM crm.stage s WHERE s.stage_set_id = t.id AND s.outcome = 'open'"
						  "         ORDER BY s.position LIMIT 1)"
						  "  FROM crm.stage_set t");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		int64		id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
		StageSet   *t = hash_search(stage_sets, &id, HASH_ENTER, NULL);
		Datum		first;

		t->name = SPI_getvalue(row, desc, 2);
		t->allow_backward = DatumGetBool(SPI_getbinval(row, desc, 3, &isnull));
		if (DatumGetBool(SPI_getbinval(row, desc, 4, &isnull)))
			default_set = id;
		sets_name_departments |= DatumGetBool(SPI_getbinval(row, desc, 5, &isnull));
		first = SPI_getbinval(row, desc, 6, &isnull);
		t->first_open = isnull ? 0 : DatumGetInt64(first);
	}

	crm_table_cache_query(&stage_cache, "SELECT s.win_rate_source = 'observed', s.timezone FROM crm.settings s");
	observed_rates = SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	company_timezone = SPI_processed == 1 ? SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2) : NULL;
}

/* The columns of crm.opportunity the rules read or set. */
enum
{
	C_ID, C_NAME, C_AMOUNT, C_STAGE_SET, C_STAGE, C_PROBABILITY, C_OWNER, C_CUSTOMER,
	C_STATUS, C_CLOSED_ON, C_LOST_REASON, C_STAGE_ENTERED_AT, C_UPDATED_AT, NCOLUMNS
};

static const struct
{
	const char *name;
	Oid			type;
}			columns[NCOLUMNS] = {
	{"id", INT8OID}, {"name", TEXTOID}, {"amount", NUMERICOID}, {"stage_set_id", INT8OID},
	{"stage_id", INT8OID}, {"probability", NUMERICOID}, {"owner_id", INT8OID}, {"customer_id", INT8OID},
	{"status", TEXTOID}, {"closed_on", DATEOID}, {"lost_reason", TEXTOID}, {"stage_entered_at", TIMESTAMPTZOID},
	{"updated_at", TIMESTAMPTZOID},
};

/* A row being written: its values, as the rules change them. */
typedef struct Deal
{
	int			att[NCOLUMNS];
	Datum		values[NCOLUMNS];
	bool		nulls[NCOLUMNS];
	bool		changed[NCOLUMNS];
	char	   *label;			/* "opportunity 12 (name)" */
} Deal;

static void
set_value(Deal *d, int c, Datum value, bool isnull)
{
	d->values[c] = value;
	d->nulls[c] = isnull;
	d->changed[c] = true;
}

static bool
numeric_equal(Datum a, Datum b)
{
	return DatumGetBool(DirectFunctionCall2(numeric_eq, a, b));
}

static char *
text_quoted(Datum t)
{
	text	   *s = DatumGetTextPP(t);

	return crm_quote(VARDATA_ANY(s), VARSIZE_ANY_EXHDR(s));
}

static Stage *
find_stage(int64 id)
{
	return hash_search(stages, &id, HASH_FIND, NULL);
}

static StageSet *
find_set(int64 id)
{
	return hash_search(stage_sets, &id, HASH_FIND, NULL);
}

/* The set of a new deal's owner (crm.owner_stage_set), a query only when a set lists departments. */
static int64
owner_stage_set(Datum owner, bool owner_null)
{
	CrmSwitch	sw;
	Oid			type = INT8OID;
	int64		set = default_set;
	bool		isnull;

	if (!sets_name_departments || owner_null)
		return set;
	crm_switch_to_owner(&sw);
	SPI_connect();
	if (SPI_execute_with_args("SELECT crm.owner_stage_set($1)", 1, &type, &owner, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "crm.opportunity_write(): could not read the stage sets");
	if (SPI_processed == 1)
	{
		Datum		found = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			set = DatumGetInt64(found);
	}
	SPI_finish();
	crm_switch_back(&sw);
	return set;
}

/* The total of a deal's lines, and whether it has any. */
static bool
lines_total(Datum deal, Datum *total)
{
	CrmSwitch	sw;
	Oid			type = INT8OID;
	bool		isnull = true;

	crm_switch_to_owner(&sw);
	SPI_connect();
	if (SPI_execute_with_args("SELECT sum(l.amount) FROM crm.opportunity_product l WHERE l.opportunity_id = $1",
							  1, &type, &deal, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "crm.opportunity_write(): could not read the lines");
	*total = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		*total = SPI_datumTransfer(*total, false, -1);
	SPI_finish();
	crm_switch_back(&sw);
	return !isnull;
}

/* Whether a column other than those a closed deal may change differs. */
static bool
closed_deal_edited(TupleDesc desc, HeapTuple old, HeapTuple new, const Deal *d)
{
	const int	may_change[] = {C_STAGE, C_PROBABILITY, C_LOST_REASON, C_OWNER, C_CUSTOMER, C_UPDATED_AT};

	for (int i = 1; i <= desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i - 1);
		bool		skip = att->attisdropped;
		bool		oldnull,
					newnull;
		Datum		oldval,
					newval;

		for (int k = 0; k < (int) lengthof(may_change) && !skip; k++)
			skip = d->att[may_change[k]] == i;
		if (skip)
			continue;
		oldval = heap_getattr(old, i, desc, &oldnull);
		newval = heap_getattr(new, i, desc, &newnull);
		if (oldnull != newnull || (!oldnull && !datumIsEqual(oldval, newval, att->attbyval, att->attlen)))
			return true;
	}
	return false;
}

static void
refuse_closed(const Deal *d, Datum id, const char *status)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("%s is %s and read-only", d->label, status),
			 errdetail("A won or lost deal keeps what it was closed with."),
			 errhint("Reopen it first: SELECT crm.reopen_opportunity(%lld);", (long long) DatumGetInt64(id))));
}

/* today in the company's time zone */
static Datum
company_today(void)
{
	Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	Datum		local = DirectFunctionCall2(timestamptz_zone, CStringGetTextDatum(company_timezone ? company_timezone : "UTC"), now);

	return DirectFunctionCall1(timestamp_date, local);
}

Datum
crm_opportunity_write(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	new,
				old = NULL;
	bool		insert;
	const char *source;
	Deal		d;
	Datum		oldv[NCOLUMNS];
	bool		oldnull[NCOLUMNS];
	int			cols[NCOLUMNS];
	Datum		vals[NCOLUMNS];
	bool		nuls[NCOLUMNS];
	int			ncols = 0;
	Stage	   *stage = NULL;

	crm_require_before_write_trigger(fcinfo, "crm.opportunity_write()");
	crm_deal_writes++;
	rel = td->tg_relation;
	if (strcmp(RelationGetRelationName(rel), "opportunity") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("crm.opportunity_write() runs only on crm.opportunity, not on %s", RelationGetRelationName(rel))));
	insert = TRIGGER_FIRED_BY_INSERT(td->tg_event);
	new = insert ? td->tg_trigtuple : td->tg_newtuple;
	/* a restore loads rows as they were; a stage or a code replaced is the system's */
	source = GetConfigOption("crm.change_source", true, false);
	if (crm_restoring() || (source && strcmp(source, "system") == 0))
		return PointerGetDatum(new);

	crm_table_cache_refresh(&stage_cache);
	desc = RelationGetDescr(rel);
	memset(&d, 0, sizeof(d));
	for (int c = 0; c < NCOLUMNS; c++)
	{
		d.att[c] = crm_trigger_column(rel, columns[c].name, columns[c].type);
		if (d.att[c] == 0)
			elog(ERROR, "crm.opportunity_write(): crm.opportunity has no column %s", columns[c].name);
		d.values[c] = heap_getattr(new, d.att[c], desc, &d.nulls[c]);
	}
	/* a stage or set the cache has not seen yet is loaded once more (pointers into it are taken after) */
	if ((!d.nulls[C_STAGE] && !find_stage(DatumGetInt64(d.values[C_STAGE]))) ||
		(!d.nulls[C_STAGE_SET] && !find_set(DatumGetInt64(d.values[C_STAGE_SET]))))
	{
		crm_table_cache_invalidate(&stage_cache);
		crm_table_cache_refresh(&stage_cache);
	}
	if (insert)
		d.label = psprintf("opportunity \"%s\"", d.nulls[C_NAME] ? "" : text_quoted(d.values[C_NAME]));
	else
	{
		old = td->tg_trigtuple;
		for (int c = 0; c < NCOLUMNS; c++)
			oldv[c] = heap_getattr(old, d.att[c], desc, &oldnull[c]);
		d.label = psprintf("opportunity %lld (%s)", (long long) DatumGetInt64(oldv[C_ID]), text_quoted(oldv[C_NAME]));
	}

	/* a deal is always in a stage: NULL would mean "the first one" and reopen a closed deal */
	if (!insert && d.nulls[C_STAGE])
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("%s needs a stage", d.label),
				 errhint("Name one of its set's stages: SELECT id, name FROM crm.stage WHERE stage_set_id = %lld ORDER BY position;",
						 (long long) DatumGetInt64(oldv[C_STAGE_SET]))));

	/*
	 * A closed deal is read-only: crm's own code may move its customer (a
	 * merge), a transfer its owner, and crm.reopen_opportunity moves it to an
	 * open stage.
	 */
	if (!insert && strcmp(TextDatumGetCString(oldv[C_STATUS]), "open") != 0)
	{
		char	   *status = TextDatumGetCString(oldv[C_STATUS]);
		bool		moved = DatumGetInt64(d.values[C_STAGE]) != DatumGetInt64(oldv[C_STAGE]);

		if (closed_deal_edited(desc, old, new, &d))
			refuse_closed(&d, oldv[C_ID], status);
		if (DatumGetInt64(d.values[C_CUSTOMER]) != DatumGetInt64(oldv[C_CUSTOMER]) &&
			check_enable_rls(RelationGetRelid(rel), InvalidOid, true) == RLS_ENABLED)
			refuse_closed(&d, oldv[C_ID], status);
		if (!moved &&
			(d.nulls[C_PROBABILITY] || !numeric_equal(d.values[C_PROBABILITY], oldv[C_PROBABILITY]) ||
			 d.nulls[C_LOST_REASON] != oldnull[C_LOST_REASON] ||
			 (!oldnull[C_LOST_REASON] && !datumIsEqual(d.values[C_LOST_REASON], oldv[C_LOST_REASON], false, -1))))
			refuse_closed(&d, oldv[C_ID], status);
		if (moved)
		{
			const char *reopening = GetConfigOption("crm.reopening_opportunity", true, false);
			Stage	   *to = find_stage(DatumGetInt64(d.values[C_STAGE]));
			char		id[32];

			snprintf(id, sizeof(id), INT64_FORMAT, DatumGetInt64(oldv[C_ID]));
			if (reopening == NULL || strcmp(reopening, id) != 0 || to == NULL || to->outcome != 'o')
				refuse_closed(&d, oldv[C_ID], status);
		}
	}

	/*
	 * The set and the stage: given, or the set of the owner's department and
	 * its first stage.
	 */
	if (insert || DatumGetInt64(d.values[C_STAGE]) != DatumGetInt64(oldv[C_STAGE]))
	{
		StageSet   *set;

		if (!d.nulls[C_STAGE])
		{
			stage = find_stage(DatumGetInt64(d.values[C_STAGE]));
			if (stage == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
						 errmsg("%s cannot be in stage %lld, which does not exist", d.label,
								(long long) DatumGetInt64(d.values[C_STAGE])),
						 errhint("The stages are the rows of crm.stage.")));
			if (d.nulls[C_STAGE_SET])
				set_value(&d, C_STAGE_SET, Int64GetDatum(stage->stage_set_id), false);
		}
		if (d.nulls[C_STAGE_SET])
			set_value(&d, C_STAGE_SET, Int64GetDatum(owner_stage_set(d.values[C_OWNER], d.nulls[C_OWNER])), false);
		set = find_set(DatumGetInt64(d.values[C_STAGE_SET]));
		if (set == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
					 errmsg("%s cannot use stage set %lld, which does not exist", d.label,
							(long long) DatumGetInt64(d.values[C_STAGE_SET])),
					 errhint("The stage sets are the rows of crm.stage_set.")));
		if (stage == NULL)
		{
			stage = find_stage(set->first_open);
			if (stage == NULL)
				elog(ERROR, "crm.opportunity_write(): stage set \"%s\" has no open stage", set->name);
			set_value(&d, C_STAGE, Int64GetDatum(stage->id), false);
		}
		else if (stage->stage_set_id != set->id)
		{
			StageSet   *its = find_set(stage->stage_set_id);

			ereport(ERROR,
					(errcode(ERRCODE_CHECK_VIOLATION),
					 errmsg("%s cannot move to stage \"%s\": it belongs to stage set \"%s\", and the deal follows \"%s\"",
							d.label, crm_quote(stage->name, strlen(stage->name)),
							its ? crm_quote(its->name, strlen(its->name)) : "?", crm_quote(set->name, strlen(set->name))),
					 errhint("Pick a stage of \"%s\": SELECT id, name FROM crm.stage WHERE stage_set_id = %lld ORDER BY position;",
							 crm_quote(set->name, strlen(set->name)), (long long) set->id)));
		}
		if (!insert)
		{
			Stage	   *from = find_stage(DatumGetInt64(oldv[C_STAGE]));

			if (from && !set->allow_backward && stage->outcome == 'o' && from->outcome == 'o' &&
				from->stage_set_id == stage->stage_set_id && stage->position < from->position)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("%s cannot move back from stage \"%s\" to \"%s\"", d.label,
								crm_quote(from->name, strlen(from->name)), crm_quote(stage->name, strlen(stage->name))),
						 errdetail("Stage set \"%s\" moves deals forward only.", crm_quote(set->name, strlen(set->name))),
						 errhint("Move it to a later stage or close it; an administrator can allow it: UPDATE crm.stage_set SET allow_backward = true WHERE id = %lld;",
								 (long long) set->id)));
		}

		/*
		 * The time of the move, not of its transaction's start: a move never
		 * enters a stage before the last one did.
		 */
		if (insert)
			set_value(&d, C_STAGE_ENTERED_AT, TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()), false);
		else
			set_value(&d, C_STAGE_ENTERED_AT,
					  TimestampTzGetDatum(Max(GetCurrentTimestamp(), DatumGetTimestampTz(oldv[C_STAGE_ENTERED_AT]))), false);
		/* the stage's win rate, unless the statement gives a probability */
		if (d.nulls[C_PROBABILITY] || stage->outcome != 'o' ||
			(!insert && numeric_equal(d.values[C_PROBABILITY], oldv[C_PROBABILITY])))
			set_value(&d, C_PROBABILITY,
					  stage->outcome == 'o' && observed_rates && stage->observed ? stage->observed : stage->win_rate, false);
		set_value(&d, C_STATUS, CStringGetTextDatum(stage->outcome == 'o' ? "open" : stage->outcome == 'w' ? "won" : "lost"), false);
		if (stage->outcome == 'o')
			set_value(&d, C_CLOSED_ON, (Datum) 0, true);
		else
			set_value(&d, C_CLOSED_ON, company_today(), false);
		/* (leaving a lost stage drops its reason, unless the statement gives one: refused below) */
		if (stage->outcome != 'l' && !insert && d.nulls[C_LOST_REASON] == oldnull[C_LOST_REASON] &&
			(d.nulls[C_LOST_REASON] || datumIsEqual(d.values[C_LOST_REASON], oldv[C_LOST_REASON], false, -1)))
			set_value(&d, C_LOST_REASON, (Datum) 0, true);
	}

	/* a deal with lines is worth their total (crm's own code keeps it so) */
	if (!insert && !d.nulls[C_AMOUNT] && !numeric_equal(d.values[C_AMOUNT], oldv[C_AMOUNT]) &&
		check_enable_rls(RelationGetRelid(rel), InvalidOid, true) == RLS_ENABLED)
	{
		Datum		total;

		if (lines_total(oldv[C_ID], &total) && !numeric_equal(total, d.values[C_AMOUNT]))
			ereport(ERROR,
					(errcode(ERRCODE_CHECK_VIOLATION),
					 errmsg("%s has lines and is worth their total, %s", d.label,
							DatumGetCString(DirectFunctionCall1(numeric_out, total))),
					 errhint("Change its lines (crm.opportunity_product) instead; crm keeps the amount.")));
	}

	if (d.nulls[C_PROBABILITY])
	{
		if (stage == NULL)
			stage = find_stage(DatumGetInt64(d.values[C_STAGE]));
		if (stage)
			set_value(&d, C_PROBABILITY, stage->win_rate, false);
	}
	else if (DatumGetBool(DirectFunctionCall2(numeric_lt, d.values[C_PROBABILITY], DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))) ||
			 DatumGetBool(DirectFunctionCall2(numeric_gt, d.values[C_PROBABILITY], DirectFunctionCall1(int4_numeric, Int32GetDatum(100)))))
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("%s cannot have a probability of %s", d.label,
						DatumGetCString(DirectFunctionCall1(numeric_out, d.values[C_PROBABILITY]))),
				 errhint("Give a probability from 0 to 100 (percent), or leave it to the stage's win rate.")));
	if (!d.nulls[C_LOST_REASON] && strcmp(TextDatumGetCString(d.values[C_STATUS]), "lost") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("%s is %s and has no lost reason", d.label, TextDatumGetCString(d.values[C_STATUS])),
				 errhint("Give the reason when it is lost: SELECT crm.close_opportunity(%s, false, %s);",
						 insert ? "<id>" : psprintf(INT64_FORMAT, DatumGetInt64(oldv[C_ID])),
						 quote_literal_cstr(TextDatumGetCString(d.values[C_LOST_REASON])))));

	for (int c = 0; c < NCOLUMNS; c++)
		if (d.changed[c])
		{
			cols[ncols] = d.att[c];
			vals[ncols] = d.values[c];
			nuls[ncols++] = d.nulls[c];
		}
	if (ncols > 0)
		new = heap_modify_tuple_by_cols(new, desc, ncols, cols, vals, nuls);
	return PointerGetDatum(new);
}
