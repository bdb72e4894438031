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

/* GUCs (crm.c) */
extern char *crm_database_name;
extern char *crm_jwt_employee_claim;

/* identity.c */
extern uint64 crm_org_generation;
extern void crm_identity_init(void);
extern bool crm_current_employee(int64 *employee_id);
extern Oid	crm_employee_relid(void);
extern bool crm_restoring(void);

/* scope.c */
extern void crm_scope_init(void);
extern bool crm_may_administer(const char *action);
extern bool crm_acting_is_super(void);
extern bool crm_acting_permission(const char *action, int64 *employee_id);
extern Oid	crm_owner(void);
extern bool crm_team_entries_exist(const char *record_type, Oid *relid);

/* org.c */
extern int32 crm_run_as_owner(const char *sql, int nargs, Oid *types, Datum *values);

/* oplog.c */
extern void crm_oplog_init(void);

/* dictionary.c */
extern void crm_dictionary_init(void);

/* im_sign.c */
extern char *crm_im_robot_sign(const char *platform, const char *secret, int64 ts);

/* im_payload.c */
extern char *crm_im_payload(const char *platform, const char *kind, const char *recipient,
							const char *agent_id, const char *title, const char *body,
							const char *idempotency_key);

/* scope_plan.c */
extern void crm_scope_plan_init(void);

#endif							/* CRM_H */
