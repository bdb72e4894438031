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
 * crm.notification_text() writes what a notification says from the rows of
 * crm.notification_template in the company's language, cached per backend
 * the same way.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

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

typedef struct Text
{
	char	   *event;
	char	   *title;
	char	   *body;			/* or NULL */
	char	   *item;			/* or NULL */
} Text;

static List *texts;				/* Text *: each event's, in the company's language */

static void load_texts(void);

static CrmTableCache text_cache = {
	.name = "crm notification texts",
	.tables = {"notification_template", "settings", NULL},
	.load = load_texts,
};

void
crm_notify_init(void)
{
	crm_table_cache_register(&notify_cache);
	crm_table_cache_register(&text_cache);
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

/* an event without a text in the company's language speaks zh-CN */
static void
load_texts(void)
{
	texts = NIL;
	crm_table_cache_query(&text_cache,
						  "SELECT DISTINCT ON (t.event) t.event, t.title, t.body, t.item "
						  "  FROM crm.notification_template t, crm.settings s "
						  " WHERE t.language IN (s.language, 'zh-CN') "
						  " ORDER BY t.event, t.language = s.language DESC");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Text	   *t = palloc(sizeof(Text));

		t->event = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		t->title = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		t->body = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);
		t->item = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 4);
		texts = lappend(texts, t);
	}
}

/* what notification.title and .body hold; a list takes at most ITEM_CHARS of a body */
#define TITLE_CHARS 200
#define BODY_CHARS 2000
#define ITEM_CHARS 1800

static const char *
ellipsis(void)
{
	return GetDatabaseEncoding() == PG_UTF8 ? "\u2026" : "...";
}

/*
 * The value of placeholder name (len bytes) as text: from params, else from
 * outer; NULL when neither has it.  Names are quoted as messages quote them.
 */
static char *
value_of(JsonbContainer *params, JsonbContainer *outer, const char *name, int len)
{
	JsonbValue	buf;
	JsonbValue *v = NULL;

	if (params)
		v = getKeyJsonValueFromContainer(params, name, len, &buf);
	if (v == NULL && outer)
		v = getKeyJsonValueFromContainer(outer, name, len, &buf);
	if (v == NULL)
		return NULL;
	switch (v->type)
	{
		case jbvString:
			return crm_quote(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return v->val.boolean ? "true" : "false";
		default:
			return NULL;
	}
}

/* {name|a=text|*=text}: the text of the option value names, else of "*" */
static void
choose(StringInfo out, const char *options, const char *end, const char *value)
{
	for (const char *o = options; o < end;)
	{
		const char *start = o + 1;
		const char *next = memchr(start, '|', end - start);
		const char *eq;

		if (next == NULL)
			next = end;
		eq = memchr(start, '=', next - start);
		if (eq && ((eq - start == 1 && *start == '*') ||
				   (value && strlen(value) == (size_t) (eq - start) && strncmp(value, start, eq - start) == 0)))
		{
			appendBinaryStringInfo(out, eq + 1, next - eq - 1);
			return;
		}
		o = next;
	}
}

static void fill(StringInfo out, const char *tmpl, JsonbContainer *params, JsonbContainer *outer, const char *item);

/* {items}: the item line once per element of params' items, as many as fit, then "… +N" */
static void
list_items(StringInfo out, JsonbContainer *params, const char *item)
{
	JsonbValue	buf;
	JsonbValue *items = params ? getKeyJsonValueFromContainer(params, "items", 5, &buf) : NULL;
	JsonbValue *more;
	JsonbContainer *list;
	StringInfoData line;
	int64		n;				/* with items_more, a caller's value: kept in int range */
	int			shown = 0,
				used = 0;

	if (items == NULL || items->type != jbvBinary || !JsonContainerIsArray(items->val.binary.data))
		return;
	list = items->val.binary.data;
	n = JsonContainerSize(list);
	initStringInfo(&line);
	for (; shown < (int) JsonContainerSize(list); shown++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(list, shown);
		int			chars;

		resetStringInfo(&line);
		fill(&line, item, e->type == jbvBinary && JsonContainerIsObject(e->val.binary.data) ? e->val.binary.data : NULL,
			 params, NULL);
		chars = pg_mbstrlen_with_len(line.data, line.len) + 1;
		if (used + chars > ITEM_CHARS)
			break;
		if (shown > 0)
			appendStringInfoChar(out, '\n');
		appendBinaryStringInfo(out, line.data, line.len);
		used += chars;
	}
	/* callers with thousands of items pass the first ones and how many more */
	more = getKeyJsonValueFromContainer(params, "items_more", 10, &buf);
	if (more && more->type == jbvNumeric)
		n += Min(Max(DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(more->val.numeric))), 0), PG_INT32_MAX);
	if (shown < n)
		appendStringInfo(out, "%s%s +" INT64_FORMAT, shown > 0 ? "\n" : "", ellipsis(), n - shown);
	pfree(line.data);
}

/*
 * tmpl with each {name} replaced by its value, each {name|a=text|*=text} by
 * the text its value chooses and {items} by the list (when item is given).
 * A brace without its pair is text.
 */
static void
fill(StringInfo out, const char *tmpl, JsonbContainer *params, JsonbContainer *outer, const char *item)
{
	const char *p = tmpl;

	while (*p)
	{
		const char *close = *p == '{' ? strchr(p + 1, '}') : NULL;
		const char *name = p + 1;
		const char *bar;
		int			len;

		if (close == NULL || memchr(name, '{', close - name) != NULL)
		{
			appendStringInfoChar(out, *p++);
			continue;
		}
		bar = memchr(name, '|', close - name);
		len = (bar ? bar : close) - name;
		if (item && len == 5 && strncmp(name, "items", 5) == 0)
			list_items(out, params, item);
		else
		{
			char	   *value = value_of(params, outer, name, len);

			if (bar)
				choose(out, bar, close, value);
			else if (value)
				appendStringInfoString(out, value);
		}
		p = close + 1;
	}
}

/* s cut to max_chars characters, the last of them "…" */
static Datum
fitted(StringInfo s, int max_chars)
{
	if (pg_mbstrlen_with_len(s->data, s->len) > max_chars)
	{
		s->len = pg_mbcharcliplen(s->data, s->len, max_chars - 1);
		s->data[s->len] = '\0';
		appendStringInfoString(s, ellipsis());
	}
	return PointerGetDatum(cstring_to_text_with_len(s->data, s->len));
}

PG_FUNCTION_INFO_V1(crm_notification_text);

/* crm.notification_text(event, params, OUT title, OUT body) */
Datum
crm_notification_text(PG_FUNCTION_ARGS)
{
	char	   *event;
	JsonbContainer *params = NULL;
	Text	   *found = NULL;
	ListCell   *lc;
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	StringInfoData s;

	/* the company's texts are for its staff (crm's own callers run as the owner) */
	{
		int64		me;
		Oid			admin = get_role_oid("crm_admin", true);

		if (!superuser() && !crm_current_employee(&me) && !(OidIsValid(admin) && has_privs_of_role(GetUserId(), admin)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("role \"%s\" is no working employee of crm", GetUserNameFromId(GetUserId(), false)),
					 errhint("Log in as an active employee (crm.employee.db_role).")));
	}
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a notification text needs an event")));
	event = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(1))
	{
		Jsonb	   *jb = PG_GETARG_JSONB_P(1);

		if (!JB_ROOT_IS_OBJECT(jb))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the values of a notification text of \"%s\" must be a JSON object", crm_quote(event, strlen(event))),
					 errhint("Pass jsonb_build_object('name', value, ...).")));
		params = &jb->root;
	}
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "crm.notification_text must return a record");
	crm_table_cache_refresh(&text_cache);
	foreach(lc, texts)
		if (strcmp(((Text *) lfirst(lc))->event, event) == 0)
			found = lfirst(lc);
	if (found == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("notification event \"%s\" has no text", crm_quote(event, strlen(event))),
				 errhint("The texts are the rows of crm.notification_template; every event has a zh-CN one.")));
	initStringInfo(&s);
	fill(&s, found->title, params, NULL, found->item);
	values[0] = fitted(&s, TITLE_CHARS);
	if (found->body == NULL)
		nulls[1] = true;
	else
	{
		initStringInfo(&s);
		fill(&s, found->body, params, NULL, found->item);
		values[1] = fitted(&s, BODY_CHARS);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
