/*-------------------------------------------------------------------------
 *
 * im_directory.c
 *	  Reading WeCom, Feishu and DingTalk directory pages (docs/im-platforms.md 1.4,
 *	  2.5, 3.5) into one document for crm.directory_apply:
 *	    {"departments": [{"id", "name", "parent", "leader"}],
 *	     "users": [{"id", "name", "mobile", "departments", "superior", "active"}]}
 *	  with the platform's ids as strings.  A user listed in several
 *	  departments' pages appears once, in all of them.
 *
 * This file must not include utils/builtins.h: its json_object() would
 * collide with jansson's, which cannot be called at all: the server exports
 * a function of that name, and it is the one a call binds to.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <jansson.h>

#include "nodes/pg_list.h"

#include "crm.h"

struct ImDirectory
{
	char		platform[16];
	json_t	   *departments;	/* id -> department */
	json_t	   *users;			/* id -> user */
	json_t	   *page;			/* the answer being read: released here if reading it fails */
};

ImDirectory *
crm_im_dir_create(const char *platform)
{
	ImDirectory *d = palloc0(sizeof(ImDirectory));

	strlcpy(d->platform, platform, sizeof(d->platform));
	/* not json_object(): the server's SQL function of that name wins at run time */
	d->departments = json_pack("{}");
	d->users = json_pack("{}");
	if (d->departments == NULL || d->users == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return d;
}

void
crm_im_dir_free(ImDirectory *d)
{
	json_decref(d->departments);
	json_decref(d->users);
	json_decref(d->page);
	pfree(d);
}

/* a JSON id (string or integer) as a string; NULL if neither or empty */
static json_t *
id_of(json_t *v)
{
	if (json_is_integer(v))
		return json_sprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	if (json_is_string(v) && json_string_length(v) > 0)
		return json_incref(v);
	return json_null();
}

static json_t *
first_id(json_t *array)
{
	return json_is_array(array) && json_array_size(array) > 0 ? id_of(json_array_get(array, 0)) : json_null();
}

static json_t *
ids_of(json_t *array)
{
	json_t	   *out = json_array();
	size_t		i;
	json_t	   *v;

	json_array_foreach(array, i, v)
		json_array_append_new(out, id_of(v));
	return out;
}

static void
add_department(ImDirectory *d, json_t *id, json_t *name, json_t *parent, json_t *leader)
{
	json_t	   *dept;

	if (json_is_null(id))
	{
		json_decref(id);
		json_decref(parent);
		json_decref(leader);
		return;
	}
	dept = json_pack("{s:o, s:O, s:o, s:o}", "id", json_incref(id), "name", name ? name : json_null(),
					 "parent", parent, "leader", leader);
	json_object_set_new(d->departments, json_string_value(id), dept);
	json_decref(id);
}

/* merge a user listed again (another department's page) into the first listing */
static void
add_user(ImDirectory *d, json_t *user)
{
	const char *id = json_string_value(json_object_get(user, "id"));
	json_t	   *seen;
	size_t		i;
	json_t	   *dept;

	if (id == NULL)
	{
		json_decref(user);
		return;
	}
	seen = json_object_get(d->users, id);
	if (seen == NULL)
	{
		json_object_set_new(d->users, id, user);
		return;
	}
	json_array_foreach(json_object_get(user, "departments"), i, dept)
	{
		size_t		j;
		json_t	   *have;
		bool		found = false;

		json_array_foreach(json_object_get(seen, "departments"), j, have)
			found |= json_equal(have, dept);
		if (!found)
			json_array_append(json_object_get(seen, "departments"), dept);
	}
	json_decref(user);
}

static void
release_page(ImDirectory *d)
{
	json_decref(d->page);
	d->page = NULL;
}

static json_t *
parse(const char *answer)
{
	json_t	   *root = json_loads(answer, 0, NULL);

	if (!json_is_object(root))
	{
		json_decref(root);
		return NULL;
	}
	return root;
}

/* Feishu pages: data.items, data.page_token while data.has_more */
static json_t *
feishu_items(json_t *root, char **next)
{
	json_t	   *data = json_object_get(root, "data");

	*next = json_is_true(json_object_get(data, "has_more")) &&
		json_string_value(json_object_get(data, "page_token")) ?
		pstrdup(json_string_value(json_object_get(data, "page_token"))) : NULL;
	return json_object_get(data, "items");
}

/*
 * The array of items in a page: WeCom's under wecom_key, Feishu's under
 * data.items, DingTalk's under dingtalk_key ("result", or "result.list" for
 * user pages, whose cursor is result.next_cursor).  *next is the next page's
 * token or cursor, or NULL.  NULL when the answer has no such array; else
 * *root must be released by the caller.
 */
static json_t *
page_items(ImDirectory *d, const char *answer, const char *wecom_key, const char *dingtalk_key,
		   json_t **root, char **next)
{
	json_t	   *items;

	*next = NULL;
	*root = d->page = parse(answer);
	if (*root == NULL)
		return NULL;
	if (strcmp(d->platform, "wecom") == 0)
		items = json_object_get(*root, wecom_key);
	else if (strcmp(d->platform, "feishu") == 0)
		items = feishu_items(*root, next);
	else if (strcmp(dingtalk_key, "result.list") == 0)
	{
		json_t	   *result = json_object_get(*root, "result");

		items = json_object_get(result, "list");
		if (json_is_true(json_object_get(result, "has_more")) &&
			json_is_integer(json_object_get(result, "next_cursor")))
			*next = psprintf("%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(result, "next_cursor")));
	}
	else
		items = json_object_get(*root, dingtalk_key);
	if (!json_is_array(items))
	{
		release_page(d);
		return NULL;
	}
	return items;
}

/*
 * One departments answer: WeCom department/list (the whole tree), a Feishu
 * children page, a DingTalk listsub (one level).  *next is Feishu's next
 * page token or NULL; *listed the ids it named, for DingTalk's walk down the
 * tree.  False if the answer is not a department list.
 */
bool
crm_im_dir_departments(ImDirectory *d, const char *answer, char **next, List **listed)
{
	json_t	   *root;
	json_t	   *items = page_items(d, answer, "department", "result", &root, next);
	size_t		i;
	json_t	   *it;

	*listed = NIL;
	if (items == NULL)
		return false;
	json_array_foreach(items, i, it)
	{
		json_t	   *id;

		if (strcmp(d->platform, "wecom") == 0)
		{
			json_t	   *parent = json_object_get(it, "parentid");

			id = id_of(json_object_get(it, "id"));
			add_department(d, json_incref(id), json_object_get(it, "name"),
						   json_integer_value(parent) == 0 ? json_null() : id_of(parent),
						   first_id(json_object_get(it, "department_leader")));
		}
		else if (strcmp(d->platform, "feishu") == 0)
		{
			json_t	   *leader = id_of(json_object_get(it, "leader_user_id"));

			id = id_of(json_object_get(it, "open_department_id"));
			add_department(d, json_incref(id), json_object_get(it, "name"),
						   id_of(json_object_get(it, "parent_department_id")), leader);
		}
		else
		{
			id = id_of(json_object_get(it, "dept_id"));
			add_department(d, json_incref(id), json_object_get(it, "name"),
						   id_of(json_object_get(it, "parent_id")), json_null());
		}
		if (json_is_string(id))
			*listed = lappend(*listed, pstrdup(json_string_value(id)));
		json_decref(id);
	}
	release_page(d);
	return true;
}

/* The company itself, which child listings do not name (Feishu "0", DingTalk 1). */
void
crm_im_dir_root(ImDirectory *d, const char *id)
{
	if (json_object_get(d->departments, id) == NULL)
		add_department(d, json_string(id), NULL, json_null(), json_null());
}

/*
 * One users answer for department dept: WeCom user/list (fetch_child: every
 * member at once), a Feishu find_by_department page, a DingTalk user/list
 * page.  *next is the next page's token or cursor, or NULL.
 */
bool
crm_im_dir_users(ImDirectory *d, const char *answer, const char *dept, char **next)
{
	json_t	   *root;
	json_t	   *items = page_items(d, answer, "userlist", "result.list", &root, next);
	size_t		i;
	json_t	   *it;

	if (items == NULL)
		return false;
	json_array_foreach(items, i, it)
	{
		json_t	   *user;

		if (strcmp(d->platform, "wecom") == 0)
		{
			/* status 1 active, 2 disabled, 4 not yet joined, 5 left (1.4) */
			json_t	   *main = json_object_get(it, "main_department");
			json_t	   *depts = ids_of(json_object_get(it, "department"));

			if (json_integer_value(main) > 0)
				json_array_insert_new(depts, 0, id_of(main));
			user = json_pack("{s:o, s:O, s:O, s:o, s:o, s:b}",
							 "id", id_of(json_object_get(it, "userid")),
							 "name", json_object_get(it, "name"),
							 "mobile", json_object_get(it, "mobile") ? json_object_get(it, "mobile") : json_null(),
							 "departments", depts,
							 "superior", first_id(json_object_get(it, "direct_leader")),
							 "active", json_integer_value(json_object_get(it, "status")) == 1);
		}
		else if (strcmp(d->platform, "feishu") == 0)
		{
			json_t	   *status = json_object_get(it, "status");

			user = json_pack("{s:o, s:O, s:O, s:o, s:o, s:b}",
							 "id", id_of(json_object_get(it, "open_id")),
							 "name", json_object_get(it, "name"),
							 "mobile", json_object_get(it, "mobile") ? json_object_get(it, "mobile") : json_null(),
							 "departments", ids_of(json_object_get(it, "department_ids")),
							 "superior", id_of(json_object_get(it, "leader_user_id")),
							 "active", json_is_true(json_object_get(status, "is_activated")) &&
							 !json_is_true(json_object_get(status, "is_resigned")) &&
							 !json_is_true(json_object_get(status, "is_frozen")));
		}
		else
		{
			user = json_pack("{s:o, s:O, s:O, s:o, s:n, s:b}",
							 "id", id_of(json_object_get(it, "userid")),
							 "name", json_object_get(it, "name"),
							 "mobile", json_object_get(it, "mobile") ? json_object_get(it, "mobile") : json_null(),
							 "departments", ids_of(json_object_get(it, "dept_id_list")),
							 "superior",
							 "active", !json_is_false(json_object_get(it, "active")));
			/* DingTalk names a department's leaders on their own rows */
			if (user && json_is_true(json_object_get(it, "leader")))
			{
				json_t	   *dep = json_object_get(d->departments, dept);

				if (dep && json_is_null(json_object_get(dep, "leader")))
					json_object_set(dep, "leader", json_object_get(user, "id"));
			}
		}
		if (user == NULL)
			continue;			/* a row without the fields we need */
		add_user(d, user);
	}
	release_page(d);
	return true;
}

/* the ids of the departments read so far */
List *
crm_im_dir_department_ids(ImDirectory *d)
{
	List	   *ids = NIL;
	const char *key;
	json_t	   *v;

	json_object_foreach(d->departments, key, v)
		ids = lappend(ids, pstrdup(key));
	return ids;
}

/* the document for crm.directory_apply, with the counts read */
char *
crm_im_dir_json(ImDirectory *d, int *departments, int *users)
{
	json_t	   *doc = json_pack("{s:[], s:[]}", "departments", "users");
	const char *key;
	json_t	   *v;
	char	   *s;
	char	   *result;

	json_object_foreach(d->departments, key, v)
		json_array_append(json_object_get(doc, "departments"), v);
	json_object_foreach(d->users, key, v)
		json_array_append(json_object_get(doc, "users"), v);
	*departments = (int) json_object_size(d->departments);
	*users = (int) json_object_size(d->users);
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	result = pstrdup(s);
	free(s);
	return result;
}

/* a DingTalk id (department, cursor) as a JSON integer; false if it is not one */
static bool
dingtalk_id(const char *text, json_int_t *id)
{
	char	   *end;

	if (text[0] < '0' || text[0] > '9')
		return false;
	errno = 0;
	*id = strtoll(text, &end, 10);
	return errno == 0 && *end == '\0';
}

/*
 * A DingTalk directory request body: {"dept_id"} for a listsub,
 * {"dept_id", "cursor", "size"} for a user page when size > 0 (3.5).  NULL
 * when the department or cursor the platform gave is not a number.
 */
char *
crm_im_dingtalk_body(const char *dept, const char *cursor, int size)
{
	json_int_t	dept_id;
	json_int_t	cursor_id = 0;
	json_t	   *o;
	char	   *s;
	char	   *result;

	if (!dingtalk_id(dept, &dept_id) || (cursor && !dingtalk_id(cursor, &cursor_id)))
		return NULL;
	o = size > 0 ? json_pack("{s:I, s:I, s:i}", "dept_id", dept_id, "cursor", cursor_id, "size", size)
		: json_pack("{s:I}", "dept_id", dept_id);
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	result = pstrdup(s);
	free(s);
	return result;
}
