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
extern void crm_identity_init(void);
extern bool crm_current_employee(int64 *employee_id);

#endif							/* CRM_H */
