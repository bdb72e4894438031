/*-------------------------------------------------------------------------
 *
 * crm.h
 *	  Declarations shared by the crm extension's C files.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CRM_H
#define CRM_H

#include "postgres.h"

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/relcache.h"

/* GUCs (crm.c) */
extern char *crm_database_name;
extern char *crm_jwt_employee_claim;
extern bool crm_restoring_setting;

/* identity.c */
extern uint64 crm_org_generation;
extern void crm_identity_init(void);
extern bool crm_current_employee(int64 *employee_id);
extern char *crm_employee_named(int64 id);
extern bool crm_change_actor(int64 *employee_id);
extern Oid	crm_employee_relid(void);
extern bool crm_restoring(void);
extern bool crm_is_pool(int64 employee_id);

/* guard.c: the tables crm's C triggers run on */
extern void crm_require_crm_table(FunctionCallInfo fcinfo, const char *function);
extern void crm_require_before_write_trigger(FunctionCallInfo fcinfo, const char *function);
extern int	crm_desc_column(TupleDesc desc, const char *table, const char *column, Oid type);
extern int	crm_trigger_column(Relation rel, const char *column, Oid type);
extern void crm_guard_init(void);

/* scope.c */
extern void crm_scope_init(void);
extern bool crm_may_administer(const char *action);
extern bool crm_acting_is_super(void);
extern bool crm_has_registry(void);
extern bool crm_acting_permission(const char *action, int64 *employee_id);
extern bool crm_team_entries_exist(const char *record_type, Oid *relid);
extern bool crm_record_type_of_table(Oid relid, char **name, char *visibility, char **parent_column);

/* validate.c */
extern char *crm_quote(const char *s, int len);

/* owner.c: crm's own queries as the owner of its tables, search_path pinned */
typedef struct CrmSwitch
{
	Oid			save_userid;
	int			save_sec;
	int			guc_level;		/* -1: the search_path was pinned already */
} CrmSwitch;

extern Oid	crm_owner(void);
extern Oid	crm_function_oid(const char *name, int nargs, const Oid *argtypes);
extern void crm_switch_to_owner(CrmSwitch *sw);
extern void crm_switch_pin(CrmSwitch *sw);
extern void crm_switch_to_invoker(CrmSwitch *sw);
extern void crm_switch_back(CrmSwitch *sw);
extern int32 crm_run_as_owner(const char *sql, int nargs, Oid *types, Datum *values);

/* table_cache.c: per-backend caches of crm's configuration tables */
#define CRM_CACHE_MAX_TABLES 4

typedef struct CrmTableCache
{
	const char *name;			/* of its memory context, for messages */
	const char *tables[CRM_CACHE_MAX_TABLES + 1];	/* crm tables it reads, NULL-ended */
	void		(*load) (void); /* fills it: as the owner, SPI connected, in cxt */
	void		(*forget) (void);	/* optional: the tables may be new; drop derived state */
	/* kept by table_cache.c */
	MemoryContext cxt;
	int			ntables;
	Oid			relids[CRM_CACHE_MAX_TABLES];
	uint64		relids_org_generation;
	uint64		generation;
	uint64		loaded;
	SubTransactionId loaded_subid;	/* loaded in this transaction, in it */
	bool		loaded_in_parallel; /* under a parallel operation's snapshot */
} CrmTableCache;

extern void crm_table_cache_register(CrmTableCache *cache);
extern void crm_table_cache_refresh(CrmTableCache *cache);
extern uint64 crm_table_cache_generation(CrmTableCache *cache);
extern void crm_table_cache_invalidate(CrmTableCache *cache);
extern void crm_table_cache_query(CrmTableCache *cache, const char *sql);

/* record_links.c */
extern uint64 crm_record_links_changes;

/* oplog.c */
extern int	crm_oplog_work_mem;
extern void crm_oplog_init(void);

/* dictionary.c */
extern void crm_dictionary_init(void);

/* opportunity.c */
extern void crm_opportunity_init(void);
extern uint64 crm_deal_writes;

/* im_sign.c */
extern char *crm_im_robot_sign(const char *platform, const char *secret, int64 ts);

/* im_payload.c */
extern char *crm_im_payload(const char *platform, const char *kind, const char *recipient,
							const char *agent_id, const char *title, const char *body,
							const char *idempotency_key);

/* im_send.c: HTTP requests of the notification worker */
typedef enum ImOutcome
{
	IM_SENT,
	IM_RETRY,					/* retry later, with backoff */
	IM_REFRESH,					/* the app token was rejected: renew it, retry once */
	IM_PERMANENT				/* will never succeed: dead */
} ImOutcome;

typedef struct ImRequest
{
	const char *url;
	const char *body;			/* POSTed as JSON; NULL: GET */
	const char *bearer;			/* Authorization: Bearer token, or NULL */
	bool		done;			/* finished (answered or failed) */
	long		http_status;
	char	   *answer;			/* the answer's body when it came */
	char	   *transport_error;	/* when no answer came */
	int			reset_seconds;	/* Feishu's x-ogw-ratelimit-reset */
} ImRequest;

extern void crm_im_perform(ImRequest *reqs, int n, long timeout_ms, bool (*stop) (void));
extern ImOutcome crm_im_classify(const char *platform, const ImRequest *r, char **code,
								 char **message, int *wait_seconds);
extern bool crm_im_token_parse(const char *platform, const char *answer, char **token, int *expires_in);
extern char *crm_im_feishu_token_body(const char *app_id, const char *app_secret);
extern char *crm_im_feishu_signed(const char *payload, int64 ts, const char *sign);
extern char *crm_im_escape(const char *value);
/* a platform's words as crm keeps them (last_error, directory_sync.error) */
#define IM_TEXT_BYTES 300
extern char *crm_im_text(const char *s, int max_bytes);

/* worker.c */
extern void crm_worker_init(void);
extern void crm_worker_shmem_request(void);
extern void crm_worker_shmem_startup(void);
extern void crm_worker_wake_at_commit(void);

/* im_directory.c: directory pages read with jansson */
typedef struct ImDirectory ImDirectory;
extern ImDirectory *crm_im_dir_create(const char *platform);
extern void crm_im_dir_free(ImDirectory *d);
extern bool crm_im_dir_departments(ImDirectory *d, const char *answer, char **next, List **listed);
extern void crm_im_dir_root(ImDirectory *d, const char *id);
extern bool crm_im_dir_users(ImDirectory *d, const char *answer, const char *dept, char **next);
extern List *crm_im_dir_department_ids(ImDirectory *d);
extern char *crm_im_dir_json(ImDirectory *d, int *departments, int *users);
extern char *crm_im_dingtalk_body(const char *dept, const char *cursor, int size);

/* notify.c */
extern void crm_notify_init(void);

/* duplicates.c */
extern void crm_duplicates_init(void);
extern void crm_duplicates_shmem_request(void);
extern void crm_duplicates_shmem_startup(void);

/* lookup_audit.c */
extern void crm_lookup_audit_shmem_request(void);
extern void crm_lookup_audit_shmem_startup(void);
extern void crm_audit_lookup(bool acting, int64 employee_id, Oid role, const char *record_type,
							 const char **fields, int nfields);

/* normalize.c */
extern char *crm_dedupe_key(const char *kind, const char *value);
extern text *crm_dedupe_key_text(const char *kind, text *value);

/* keys.c */
extern bool crm_dedupe_key_column(const char *table, const char *column);

/* chinese.c */
extern void crm_chinese_init(void);
extern void crm_load_chinese_words(void);
extern char *crm_to_simplified(char *s);
extern void crm_strip_regions(char *key);
extern int	crm_phrase_pinyin(const char *s, const char **pinyin);

/* scope_plan.c */
extern void crm_scope_plan_init(void);

#endif							/* CRM_H */
