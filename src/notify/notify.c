/*-------------------------------------------------------------------------
 *
 * notify.c
 *	  crm.notify(): events become inbox rows, in the business transaction.
 *
 * Transfers notify one recipient per call, reminder runs thousands: both
 * must cost about what inserting the rows costs.  So the facts each row
 * needs (is the event known, is the recipient active and on an IM platform,
 * what did they choose, does a channel want the event) come from a
 * per-backend cache, and the rows go in with one prepared INSERT.  The cache
 * is rebuilt after a change to employees (crm_org_generation), channels or
 * preferences (statement triggers send relcache invalidations).  Events are
 * shipped rows that never change outside an extension update; an unknown one
 * reloads the cache once before it is refused.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"

#include "crm.h"

#define EVENT_LEN 64

typedef struct Recipient
{
	int64		id;				/* hash key */
	bool		active;
	bool		on_im;			/* has an id on some IM platform */
	List	   *choices;		/* Choice *: the employee's preferences */
} Recipient;

typedef struct Choice
{
	char	   *event;			/* or "*" */
	char	   *delivery;		/* inapp, app, none */
} Choice;

typedef struct Rule
{
	char	   *event;
	char	   *rule;			/* owner, superior, leader, team */
} Rule;

static HTAB *recipients;
static List *events;			/* char *: the known events */
static bool app_channels;		/* an enabled app channel exists */
static List *robot_events;		/* char *: events enabled robots list, "*" for all */
static List *rules;				/* Rule *: the rows of crm.notification_rule */
static SPIPlanPtr insert_plan = NULL;	/* many recipients */
static SPIPlanPtr insert_one_plan = NULL;	/* one: 1.5 µs less per call */

static void load(void);
static void forget(void);

/* (employees are followed through crm_org_generation, which forgets) */
static CrmTableCache notify_cache = {
	.name = "crm notify",
	.tables = {"im_channel", "notification_preference", "notification_rule", NULL},
	.load = load,
	.forget = forget,
};

void
crm_notify_init(void)
{
	crm_table_cache_register(&notify_cache);
}

static bool
listed(List *list, const char *s)
{
	ListCell   *lc;

	foreach(lc, list)
		if (strcmp(lfirst(lc), s) == 0)
			return true;
	return false;
}

static SPIPlanPtr
prepare(const char *sql, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(sql, 7, types);

	if (plan == NULL || SPI_keepplan(plan) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: could not prepare the inbox insert: %s", SPI_result_code_string(SPI_result))));
	return plan;
}

/* the tables may be new: the inbox inserts are planned again */
static void
forget(void)
{
	if (insert_plan)
		SPI_freeplan(insert_plan);
	if (insert_one_plan)
		SPI_freeplan(insert_one_plan);
	insert_plan = insert_one_plan = NULL;
}

static void
load(void)
{
	HASHCTL		ctl;

	events = NIL;
	robot_events = NIL;
	rules = NIL;
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(Recipient);
	ctl.hcxt = notify_cache.cxt;
	recipients = hash_create("crm notify recipients", 1024, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	crm_table_cache_query(&notify_cache, "SELECT id, active AND NOT is_pool, coalesce(wecom_userid, feishu_open_id, dingtalk_userid) IS NOT NULL "
					"  FROM crm.employee");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		Recipient  *r = hash_search(recipients, &id, HASH_ENTER, NULL);

		r->active = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		r->on_im = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
		r->choices = NIL;
	}
	crm_table_cache_query(&notify_cache, "SELECT employee_id, event, delivery FROM crm.notification_preference");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		Recipient  *r = hash_search(recipients, &id, HASH_FIND, NULL);
		Choice	   *c = palloc(sizeof(Choice));

		c->event = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		c->delivery = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);
		if (r)
			r->choices = lappend(r->choices, c);
	}
	crm_table_cache_query(&notify_cache, "SELECT event, rule FROM crm.notification_rule");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Rule	   *r = palloc(sizeof(Rule));

		r->event = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		r->rule = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		rules = lappend(rules, r);
	}
	crm_table_cache_query(&notify_cache, "SELECT event FROM crm.notification_event WHERE event <> '*'");
	for (uint64 i = 0; i < SPI_processed; i++)
		events = lappend(events, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	crm_table_cache_query(&notify_cache, "SELECT coalesce(bool_or(kind = 'app'), false), "
					"       array_to_string(array(SELECT DISTINCT unnest(events) FROM crm.im_channel "
					"                              WHERE enabled AND kind = 'robot'), E'\\n') "
					"  FROM crm.im_channel WHERE enabled");
	{
		bool		isnull;
		char	   *list = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

		app_channels = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		for (char *tok = list ? strtok(list, "\n") : NULL; tok; tok = strtok(NULL, "\n"))
			robot_events = lappend(robot_events, tok);
	}
	if (insert_plan == NULL)
	{
		Oid			types[7] = {INT8ARRAYOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, BOOLARRAYOID};
		Oid			one_types[7] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, BOOLOID};

		insert_plan = prepare("INSERT INTO crm.notification "
							  "       (recipient_id, event, title, body, record_type, record_id, im_pending) "
							  "SELECT u.r, $2, $3, $4, $5, $6, u.p FROM unnest($1, $7) u(r, p)", types);
		insert_one_plan = prepare("INSERT INTO crm.notification "
								  "       (recipient_id, event, title, body, record_type, record_id, im_pending) "
								  "VALUES ($1, $2, $3, $4, $5, $6, $7)", one_types);
	}
}

/* the recipient's choice for event: their own, else their "*", else app */
static const char *
delivery_of(Recipient *r, const char *event)
{
	const char *every = "app";
	ListCell   *lc;

	foreach(lc, r->choices)
	{
		Choice	   *c = lfirst(lc);

		if (strcmp(c->event, event) == 0)
			return c->delivery;
		if (strcmp(c->event, "*") == 0)
			every = c->delivery;
	}
	return every;
}

/* The employees event's rules name for the record; none without rules or a record. */
static ArrayType *
rule_recipients(const char *event, text *record_type, Datum record_id)
{
	Datum	   *names = palloc(sizeof(Datum) * Max(list_length(rules), 1));
	int			n = 0;
	ListCell   *lc;
	Oid			types[3] = {TEXTOID, INT8OID, TEXTARRAYOID};
	Datum		args[3];
	bool		isnull;
	ArrayType  *result = NULL;
	CrmSwitch	sw;

	foreach(lc, rules)
	{
		Rule	   *r = lfirst(lc);

		if (strcmp(r->event, event) == 0)
			names[n++] = CStringGetTextDatum(r->rule);
	}
	if (n == 0)
		return NULL;
	args[0] = PointerGetDatum(record_type);
	args[1] = record_id;
	args[2] = PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
	crm_switch_pin(&sw);
	SPI_connect();
	if (SPI_execute_with_args("SELECT crm.record_recipients($1, $2, $3)", 3, types, args, NULL, true, 1)
		!= SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: could not resolve the recipients of %s", event)));
	result = DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	crm_switch_back(&sw);
	return result;
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	return x < y ? -1 : x > y;
}

PG_FUNCTION_INFO_V1(crm_notify);

/*
 * crm.notify(recipients, event, title, body, record_type, record_id): the
 * number of inbox rows written.  The event's rules (crm.notification_rule)
 * add the record's owner, superior, leader or team.  Inactive or unknown
 * recipients and those who chose "none" get nothing; a recipient named twice
 * gets one row.
 */
Datum
crm_notify(PG_FUNCTION_ARGS)
{
	ArrayType  *arr;
	char	   *event;
	Datum	   *elems = NULL;
	bool	   *nulls = NULL;
	int			n;
	Datum	   *extra = NULL;
	bool	   *extra_nulls = NULL;
	int			nextra;
	int			kept = 0;
	bool		robots;
	bool		pending_any = false;
	Datum	   *ids;
	Datum	   *pending;
	Datum		args[7];
	char		argnulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int			ret;
	CrmSwitch	sw;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a notification needs an event and a title")));
	event = text_to_cstring(PG_GETARG_TEXT_PP(1));
	crm_table_cache_refresh(&notify_cache);
	if (!listed(events, event))
	{
		crm_table_cache_invalidate(&notify_cache);	/* an extension update may have shipped it */
		crm_table_cache_refresh(&notify_cache);
		if (!listed(events, event))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown notification event \"%s\"", crm_quote(event, strlen(event))),
					 errhint("The events are the rows of crm.notification_event.")));
	}
	/* the recipients named, and those the event's rules name for the record */
	n = 0;
	if (!PG_ARGISNULL(0))
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &elems, &nulls, &n);
	nextra = 0;
	if (rules != NIL && !PG_ARGISNULL(4) && !PG_ARGISNULL(5) &&
		(arr = rule_recipients(event, PG_GETARG_TEXT_PP(4), PG_GETARG_DATUM(5))) != NULL)
		deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &extra, &extra_nulls, &nextra);
	robots = listed(robot_events, event) || listed(robot_events, "*");
	ids = palloc(sizeof(Datum) * Max(n + nextra, 1));
	pending = palloc(sizeof(Datum) * Max(n + nextra, 1));
	{
		int64	   *sorted = palloc(sizeof(int64) * Max(n + nextra, 1));
		int			m = 0;

		for (int i = 0; i < n; i++)
			if (!nulls[i])
				sorted[m++] = DatumGetInt64(elems[i]);
		for (int i = 0; i < nextra; i++)
			if (!extra_nulls[i])
				sorted[m++] = DatumGetInt64(extra[i]);
		qsort(sorted, m, sizeof(int64), cmp_int64);
		for (int i = 0; i < m; i++)
		{
			Recipient  *r;
			const char *delivery;
			bool		p;

			if (i > 0 && sorted[i] == sorted[i - 1])
				continue;
			r = hash_search(recipients, &sorted[i], HASH_FIND, NULL);
			if (r == NULL || !r->active)
				continue;
			delivery = delivery_of(r, event);
			if (strcmp(delivery, "none") == 0)
				continue;
			p = robots || (app_channels && r->on_im && strcmp(delivery, "app") == 0);
			pending_any |= p;
			ids[kept] = Int64GetDatum(sorted[i]);
			pending[kept++] = BoolGetDatum(p);
		}
	}
	if (kept == 0)
		PG_RETURN_INT32(0);

	args[0] = kept == 1 ? ids[0] :
		PointerGetDatum(construct_array(ids, kept, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[1] = PG_GETARG_DATUM(1);
	args[2] = PG_GETARG_DATUM(2);
	for (int i = 3; i <= 5; i++)
	{
		argnulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
		args[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	args[6] = kept == 1 ? pending[0] :
		PointerGetDatum(construct_array(pending, kept, BOOLOID, 1, true, TYPALIGN_CHAR));
	/* planned under the pinned search_path: executed under it too */
	crm_switch_pin(&sw);
	SPI_connect();
	ret = SPI_execute_plan(kept == 1 ? insert_one_plan : insert_plan, args, argnulls, false, 0);
	if (ret != SPI_OK_INSERT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: could not write notifications: %s", SPI_result_code_string(ret))));
	SPI_finish();
	crm_switch_back(&sw);
	if (pending_any)
		crm_worker_wake_at_commit();
	PG_RETURN_INT32(kept);
}
