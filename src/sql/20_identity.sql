-- Identity: who is acting (src/access/identity.c).

CREATE OR REPLACE FUNCTION crm.current_employee_id() RETURNS bigint
	AS 'MODULE_PATHNAME', 'crm_current_employee_id'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION crm.current_employee_id() IS
	'The acting employee: by login role, else by a trusted authenticator''s JWT claim; NULL for anyone else';

CREATE OR REPLACE FUNCTION crm.invoking_employee_id() RETURNS bigint
	AS 'MODULE_PATHNAME', 'crm_invoking_employee_id'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION crm.invoking_employee_id() IS
	'The employee a SECURITY DEFINER function acts for: crm.current_employee_id() of the role outside it';

CREATE OR REPLACE FUNCTION crm.restoring() RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_restoring_sql'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION crm.restoring() IS
	'Whether this session restores a dump: crm.restoring on, in a superuser''s session (outside any definer function); restored rows are not checked, logged or notified again';

CREATE OR REPLACE FUNCTION crm.staff_session() RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_staff_session'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION crm.staff_session() IS
	'Whether an employee is acting or the role is in crm_admin: who may read crm''s organisation and configuration';

-- Statement trigger on organisation tables: invalidates cached identities in every backend.
CREATE OR REPLACE FUNCTION crm.org_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'crm_org_changed'
	LANGUAGE C;

-- Statement trigger on tables backends cache (team entries, dictionaries).
CREATE OR REPLACE FUNCTION crm.table_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'crm_table_changed' LANGUAGE C;

-- Row trigger on business tables: created_by, created_at, updated_at (src/records/record_stamp.c).
CREATE OR REPLACE FUNCTION crm.stamp_record() RETURNS trigger
	AS 'MODULE_PATHNAME', 'crm_stamp_record'
	LANGUAGE C;
