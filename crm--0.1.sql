-- crm extension install script, assembled at build time from src/sql/NN_*.sql.
\echo Use "CREATE EXTENSION crm" to load this file. \quit
-- Group roles.  Roles are cluster-wide, so a second database with crm reuses them.
--   crm_user           ordinary staff; every employee's login role is a member
--   crm_admin          configuration (organisation, rules); also a crm_user
--   crm_authenticator  granted by the DBA to PostgREST's or PostGraphile's login role
--                      and to nobody else: only its members' JWT claims are trusted
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'crm_user') THEN
		CREATE ROLE crm_user NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'crm_admin') THEN
		CREATE ROLE crm_admin NOLOGIN IN ROLE crm_user;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'crm_authenticator') THEN
		CREATE ROLE crm_authenticator NOLOGIN NOINHERIT;
	END IF;
END
$roles$;

GRANT USAGE ON SCHEMA crm TO crm_user;
-- Formats (src/validate.c): boolean tests, and the checking forms CHECK constraints use.

CREATE FUNCTION crm.uscc_valid(code text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_uscc_valid' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION crm.mobile_valid(mobile text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_mobile_valid' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION crm.email_valid(email text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_email_valid' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION crm.uscc_with_check(first17 text) RETURNS text
	AS 'MODULE_PATHNAME', 'crm_uscc_with_check' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.uscc_valid(text) IS 'A unified social credit code (统一社会信用代码) with a correct check digit';
COMMENT ON FUNCTION crm.mobile_valid(text) IS 'A mainland mobile number: 11 digits from 13 to 19, optionally after +86';
COMMENT ON FUNCTION crm.email_valid(text) IS 'One plain e-mail address';
COMMENT ON FUNCTION crm.uscc_with_check(text) IS 'The first 17 characters of a code followed by its check digit';

-- raise check_violation with the reason, or return true
CREATE FUNCTION crm.check_uscc(code text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_check_uscc' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION crm.check_mobile(mobile text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_check_mobile' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION crm.check_email(email text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_check_email' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION crm.check_company_uscc(kind text, uscc text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_check_company_uscc' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- A value as messages quote it: whole up to 64 bytes, else its first whole
-- characters and "..." (src/validate.c).
CREATE FUNCTION crm.clip(value text) RETURNS text
	AS 'MODULE_PATHNAME', 'crm_clip' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The length limits of text columns (docs/records.md lists them): raise
-- string_data_right_truncation naming the column, or return true.
CREATE FUNCTION crm.check_length(value text, max_chars integer, what text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_check_length' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- Identity: who is acting (src/identity.c).

CREATE FUNCTION crm.current_employee_id() RETURNS bigint
	AS 'MODULE_PATHNAME', 'crm_current_employee_id'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION crm.current_employee_id() IS
	'The acting employee: by login role, else by a trusted authenticator''s JWT claim; NULL for anyone else';

CREATE FUNCTION crm.invoking_employee_id() RETURNS bigint
	AS 'MODULE_PATHNAME', 'crm_invoking_employee_id'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION crm.invoking_employee_id() IS
	'The employee a SECURITY DEFINER function acts for: crm.current_employee_id() of the role outside it';

CREATE FUNCTION crm.restoring() RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_restoring_sql'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION crm.restoring() IS
	'Whether this session restores a dump: crm.restoring on, in a superuser''s session (outside any definer function); restored rows are not checked, logged or notified again';

CREATE FUNCTION crm.staff_session() RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_staff_session'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION crm.staff_session() IS
	'Whether an employee is acting or the role is in crm_admin: who may read crm''s organisation and configuration';

-- Statement trigger on organisation tables: invalidates cached identities in every backend.
CREATE FUNCTION crm.org_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'crm_org_changed'
	LANGUAGE C;

-- Statement trigger on tables backends cache (team entries, dictionaries).
CREATE FUNCTION crm.table_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'crm_table_changed' LANGUAGE C;

-- Row trigger on business tables: created_by, created_at, updated_at (src/record_stamp.c).
CREATE FUNCTION crm.stamp_record() RETURNS trigger
	AS 'MODULE_PATHNAME', 'crm_stamp_record'
	LANGUAGE C;
-- Configuration tables that ship builtin rows (crm.job now; statuses, dictionaries
-- later) carry a "builtin" flag and are dumped with the filter WHERE NOT builtin.
-- A builtin row a DBA edits stops being builtin, so pg_dump keeps the edit; when a
-- restore (or anyone) inserts a row whose key names a builtin row, the builtin row
-- takes the new values instead of a duplicate-key error.

CREATE FUNCTION crm.builtin_edited() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_TABLE_SCHEMA <> 'crm' THEN RAISE 'crm.builtin_edited() cannot run on %.%', TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'wrong_object_type'; END IF;
	NEW.builtin := false;
	RETURN NEW;
END
$$;

-- BEFORE INSERT row trigger; the arguments name the key columns.  It runs as
-- the caller, who writes the columns staff may write: the builtin flag is
-- left to crm.builtin_edited (a redefinition equal to the shipped row stays
-- builtin).
CREATE FUNCTION crm.builtin_redefined() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	cols    text;
	keys    text;
	updated integer;
BEGIN
	IF TG_TABLE_SCHEMA <> 'crm' THEN RAISE 'crm.builtin_redefined() cannot run on %.%', TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'wrong_object_type'; END IF;
	SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
	  FROM pg_attribute
	 WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped
	   AND attname <> ALL (TG_ARGV || 'builtin'::text) AND attidentity = '' AND attgenerated = '';
	SELECT string_agg(format('t.%1$I = (jsonb_populate_record(NULL::%2$I.%3$I, $1)).%1$I',
	                         k, TG_TABLE_SCHEMA, TG_TABLE_NAME), ' AND ') INTO keys
	  FROM unnest(TG_ARGV) k;
	EXECUTE format('UPDATE %1$I.%2$I t SET (%3$s) = (SELECT %3$s FROM jsonb_populate_record(NULL::%1$I.%2$I, $1))'
	               ' WHERE %4$s AND t.builtin',
	               TG_TABLE_SCHEMA, TG_TABLE_NAME, cols, keys)
		USING to_jsonb(NEW);
	GET DIAGNOSTICS updated = ROW_COUNT;
	IF updated > 0 THEN
		RETURN NULL;
	END IF;
	RETURN NEW;
END
$$;

-- Both triggers, for a configuration table that ships builtin rows.
CREATE FUNCTION crm.keep_builtin_edits(tab regclass, VARIADIC keys text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	name text := (SELECT relname FROM pg_class WHERE oid = tab);
BEGIN
	EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %s FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)'
	               ' EXECUTE FUNCTION crm.builtin_edited()', name || '_builtin_edited', tab);
	EXECUTE format('CREATE TRIGGER %I BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION crm.builtin_redefined(%s)',
	               name || '_builtin_redefined', tab,
	               (SELECT string_agg(quote_literal(k), ', ') FROM unnest(keys) k));
END
$$;
-- Organisation: departments and employees.

CREATE TABLE crm.department (
	id          bigint GENERATED ALWAYS AS IDENTITY,
	name        text NOT NULL,
	parent_id   bigint,
	leader_id   bigint,
	position    integer NOT NULL DEFAULT 0,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT department_pkey PRIMARY KEY (id),
	CONSTRAINT department_parent_fkey FOREIGN KEY (parent_id) REFERENCES crm.department (id),
	CONSTRAINT department_name_check CHECK (crm.check_length(name, 200, 'department.name') AND btrim(name) <> ''),
	CONSTRAINT department_not_own_parent CHECK (parent_id <> id),
	CONSTRAINT department_name_key UNIQUE NULLS NOT DISTINCT (parent_id, name)
);
COMMENT ON TABLE crm.department IS 'Department tree (parent_id NULL for a top department)';

CREATE TABLE crm.employee (
	id                bigint GENERATED ALWAYS AS IDENTITY,
	name              text NOT NULL,
	mobile            text,
	email             text,
	department_id     bigint,
	superior_id       bigint,
	db_role           name,
	active            boolean NOT NULL DEFAULT true,
	in_statistics     boolean NOT NULL DEFAULT true,
	is_pool           boolean NOT NULL DEFAULT false,
	holding_limit     integer,
	daily_claim_limit integer,
	wecom_userid      text,
	feishu_open_id    text,
	dingtalk_userid   text,
	created_at        timestamptz NOT NULL DEFAULT now(),
	updated_at        timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT employee_pkey PRIMARY KEY (id),
	-- the identity lookup (src/identity.c) scans these two indexes by name
	CONSTRAINT employee_db_role_key UNIQUE (db_role),
	CONSTRAINT employee_department_fkey FOREIGN KEY (department_id) REFERENCES crm.department (id),
	CONSTRAINT employee_superior_fkey FOREIGN KEY (superior_id) REFERENCES crm.employee (id),
	CONSTRAINT employee_wecom_userid_key UNIQUE (wecom_userid),
	CONSTRAINT employee_feishu_open_id_key UNIQUE (feishu_open_id),
	CONSTRAINT employee_dingtalk_userid_key UNIQUE (dingtalk_userid),
	CONSTRAINT employee_name_check CHECK (crm.check_length(name, 200, 'employee.name') AND btrim(name) <> ''),
	CONSTRAINT employee_mobile_length CHECK (crm.check_length(mobile, 40, 'employee.mobile')),
	CONSTRAINT employee_email_length CHECK (crm.check_length(email, 254, 'employee.email')),
	CONSTRAINT employee_wecom_userid_length CHECK (crm.check_length(wecom_userid, 64, 'employee.wecom_userid')),
	CONSTRAINT employee_feishu_open_id_length CHECK (crm.check_length(feishu_open_id, 64, 'employee.feishu_open_id')),
	CONSTRAINT employee_dingtalk_userid_length CHECK (crm.check_length(dingtalk_userid, 64, 'employee.dingtalk_userid')),
	CONSTRAINT employee_not_own_superior CHECK (superior_id <> id),
	CONSTRAINT employee_holding_limit_check CHECK (holding_limit >= 0),
	CONSTRAINT employee_daily_claim_limit_check CHECK (daily_claim_limit >= 0),
	CONSTRAINT employee_department_check CHECK (department_id IS NOT NULL OR is_pool),
	-- a public pool holds its customers as an employee row that is nobody (src/sql/94_pool.sql)
	CONSTRAINT employee_pool_check CHECK (NOT is_pool OR (department_id IS NULL AND superior_id IS NULL
		AND db_role IS NULL AND NOT in_statistics AND holding_limit IS NULL AND daily_claim_limit IS NULL
		AND wecom_userid IS NULL AND feishu_open_id IS NULL AND dingtalk_userid IS NULL))
);
COMMENT ON TABLE crm.employee IS 'Employees; db_role is the login role that acts as this employee';
COMMENT ON COLUMN crm.employee.db_role IS 'Login role mapped to this employee (crm.current_employee_id())';
COMMENT ON COLUMN crm.employee.active IS 'Deactivated employees resolve to nobody; employees are never deleted';
COMMENT ON COLUMN crm.employee.is_pool IS 'The row through which a public pool (crm.pool) owns its customers; not a person';

-- department.leader_id and employee.department_id reference each other, and a dump
-- restores departments first: the leader check waits for the end of the transaction,
-- so a dump restores in one transaction (psql -1, pg_restore --single-transaction).
ALTER TABLE crm.department
	ADD CONSTRAINT department_leader_fkey FOREIGN KEY (leader_id) REFERENCES crm.employee (id)
	DEFERRABLE INITIALLY DEFERRED;

CREATE INDEX employee_department_idx ON crm.employee (department_id);
CREATE INDEX employee_superior_idx ON crm.employee (superior_id);
CREATE INDEX department_parent_idx ON crm.department (parent_id);
CREATE INDEX department_leader_idx ON crm.department (leader_id);

CREATE TRIGGER department_stamp BEFORE INSERT OR UPDATE ON crm.department
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();
CREATE TRIGGER employee_stamp BEFORE INSERT OR UPDATE ON crm.employee
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();

-- Whoever can become an employee's login role acts as that employee: a role
-- other roles are members of (crm_user, crm_admin, a department's group role)
-- would make each of them that employee by SET ROLE.  crm.current_employee_id()
-- resolves such a role to nobody (src/identity.c); this names the mistake.
CREATE FUNCTION crm.check_db_role() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.employee'::regclass THEN RAISE 'crm.check_db_role() runs only on crm.employee, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF NEW.db_role IS NOT NULL AND NOT crm.restoring()
	   AND (NEW.db_role IN ('crm_user', 'crm_admin', 'crm_authenticator')
	        OR EXISTS (SELECT FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE r.rolname = NEW.db_role)) THEN
		RAISE EXCEPTION 'employee "%" may not log in as role "%", which other roles can become', crm.clip(NEW.name), crm.clip(NEW.db_role)
			USING ERRCODE = 'invalid_authorization_specification',
			      DETAIL = 'Every member of a role may SET ROLE to it and would act as this employee.',
			      HINT = 'Give the employee a login role of their own (CREATE ROLE ... LOGIN IN ROLE crm_user).';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER employee_db_role_check BEFORE INSERT OR UPDATE OF db_role ON crm.employee
	FOR EACH ROW EXECUTE FUNCTION crm.check_db_role();

-- The tree and the superior chain stay trees of at most 100 levels; employees are
-- never deleted.  Checked once per statement, on what it leaves: the rows whose
-- parent it set (inserted or moved), the chain above each and the sub-tree below
-- each.  Every walk stops at 100 levels, so no check runs long, even on a cycle
-- that a trigger-less load left in the data (which then counts as too deep).
-- Two transactions that each close half of a cycle take turns: each locks its
-- tree's row here first.  A table of crm's own, which nobody else may read or
-- lock (an advisory lock would not do: anyone may take one and hold it).
CREATE TABLE crm.org_tree_lock (
	tree  text,
	CONSTRAINT org_tree_lock_pkey PRIMARY KEY (tree)
);
COMMENT ON TABLE crm.org_tree_lock IS 'A row per tree (department, employee) that a change of the tree locks while it is checked (crm''s own)';
INSERT INTO crm.org_tree_lock VALUES ('department'), ('employee');

-- (as its owner: to lock crm.org_tree_lock)
CREATE FUNCTION crm.check_org_tree() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	max_levels CONSTANT integer := 100;
	is_dept    boolean := TG_TABLE_NAME = 'department';
	link       text := CASE WHEN is_dept THEN 'parent_id' ELSE 'superior_id' END;
	placed     text;
	any_placed boolean;
	bad        record;
	names      text[];
BEGIN
	IF TG_RELID <> ALL ('{crm.department,crm.employee}'::regclass[]) THEN RAISE 'crm.check_org_tree() runs only on crm.department, crm.employee, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- the rows this statement placed in the tree
	placed := format('SELECT n.id, n.name, n.%1$I AS next FROM new_rows n WHERE n.%1$I IS NOT NULL %2$s', link,
	                 CASE WHEN TG_OP = 'UPDATE'
	                      THEN format('AND NOT EXISTS (SELECT FROM old_rows o WHERE o.id = n.id AND o.%1$I = n.%1$I)', link) END);
	EXECUTE format('SELECT EXISTS (%s)', placed) INTO any_placed;
	IF NOT any_placed THEN
		RETURN NULL;
	END IF;
	-- two transactions that each close half of a cycle: the second waits here
	-- for the first, and its walk (a new snapshot, at read committed) sees it
	PERFORM FROM crm.org_tree_lock WHERE tree = TG_TABLE_NAME FOR UPDATE;
	EXECUTE format($q$
		WITH RECURSIVE placed AS (%3$s
		), up AS (
			SELECT p.id AS start, t.id, t.%1$I AS next, 1 AS depth FROM placed p JOIN crm.%2$I t ON t.id = p.next
			UNION ALL
			SELECT u.start, t.id, t.%1$I, u.depth + 1 FROM up u JOIN crm.%2$I t ON t.id = u.next
			 WHERE u.id <> u.start AND u.depth < $1
		), down AS (
			-- an inserted row has nothing below it but rows of its statement, each walked up itself
			SELECT p.id AS start, t.id, 1 AS height FROM placed p JOIN crm.%2$I t ON t.%1$I = p.id WHERE $2
			UNION ALL
			SELECT d.start, t.id, d.height + 1 FROM down d JOIN crm.%2$I t ON t.%1$I = d.id WHERE d.height < $1
		), above AS (
			SELECT u.start, bool_or(u.id = u.start) AS cycle, max(u.depth) AS levels FROM up u GROUP BY u.start
		), below AS (
			SELECT d.start, max(d.height) AS levels FROM down d GROUP BY d.start
		)
		SELECT p.name, p.next, t.name AS next_name, coalesce(a.cycle, false) AS cycle,
		       coalesce(a.levels, 0) + 1 + coalesce(b.levels, 0) AS levels
		  FROM placed p JOIN crm.%2$I t ON t.id = p.next
		  LEFT JOIN above a ON a.start = p.id LEFT JOIN below b ON b.start = p.id
		 WHERE a.cycle OR coalesce(a.levels, 0) + 1 + coalesce(b.levels, 0) > $1
		 ORDER BY coalesce(a.cycle, false) DESC, p.id
		 LIMIT 1
	$q$, link, TG_TABLE_NAME, placed)
	INTO bad USING max_levels, TG_OP = 'UPDATE';
	IF bad IS NULL THEN
		RETURN NULL;
	END IF;
	names := ARRAY[crm.clip(bad.name), crm.clip(bad.next_name)];

	IF bad.cycle THEN
		RAISE EXCEPTION '% "%" cannot %', TG_TABLE_NAME, names[1],
			format(CASE WHEN is_dept THEN 'be placed under department "%s" (%s)' ELSE 'report to employee "%s" (%s)' END,
			       names[2], bad.next)
			USING ERRCODE = 'check_violation',
			      DETAIL = format(CASE WHEN is_dept THEN '"%s" is inside the sub-tree of "%s", which would make a cycle.'
			                           ELSE '"%s" already reports, directly or not, to "%s", which would make a cycle.' END,
			                      names[2], names[1]),
			      HINT = CASE WHEN is_dept THEN 'Move it under a department outside its sub-tree.'
			                  ELSE 'Choose a superior who is not among the employee''s subordinates.' END;
	END IF;
	RAISE EXCEPTION '% "%" would make % more than % levels deep', TG_TABLE_NAME, names[1],
		CASE WHEN is_dept THEN 'the department tree' ELSE 'a reporting chain' END, max_levels
		USING ERRCODE = 'check_violation',
		      DETAIL = format('Under "%s", with the %s below it, there would be %s or more levels.',
		                      names[2], CASE WHEN is_dept THEN 'departments' ELSE 'subordinates' END, bad.levels),
		      HINT = CASE WHEN is_dept THEN 'Place it higher up the tree.' ELSE 'Choose a superior higher up the chain.' END;
END
$$;
CREATE TRIGGER department_tree_insert AFTER INSERT ON crm.department
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.check_org_tree();
CREATE TRIGGER department_tree_update AFTER UPDATE ON crm.department
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.check_org_tree();
CREATE TRIGGER employee_superior_insert AFTER INSERT ON crm.employee
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.check_org_tree();
CREATE TRIGGER employee_superior_update AFTER UPDATE ON crm.employee
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.check_org_tree();

CREATE FUNCTION crm.refuse_org_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	members  bigint;
	children bigint;
BEGIN
	IF TG_RELID <> ALL ('{crm.department,crm.employee}'::regclass[]) THEN RAISE 'crm.refuse_org_delete() runs only on crm.department, crm.employee, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF TG_TABLE_NAME = 'employee' THEN
		RAISE EXCEPTION 'employee % (%) cannot be deleted', OLD.id, crm.clip(OLD.name)
			USING ERRCODE = 'restrict_violation',
			      DETAIL = 'Employees are never deleted: their name stays on the history they wrote.',
			      HINT = format('Use SELECT crm.deactivate_employee(%s, <successor id>) to hand their work over.', OLD.id);
	END IF;
	SELECT count(*) INTO members FROM crm.employee WHERE department_id = OLD.id;
	SELECT count(*) INTO children FROM crm.department WHERE parent_id = OLD.id;
	IF members > 0 OR children > 0 THEN
		RAISE EXCEPTION 'department % (%) still has % employees and % sub-departments', OLD.id, crm.clip(OLD.name), members, children
			USING ERRCODE = 'foreign_key_violation',
			      HINT = 'Move its employees and sub-departments elsewhere first.';
	END IF;
	RETURN OLD;
END
$$;
CREATE TRIGGER department_delete_check BEFORE DELETE ON crm.department
	FOR EACH ROW EXECUTE FUNCTION crm.refuse_org_delete();
CREATE TRIGGER employee_delete_check BEFORE DELETE ON crm.employee
	FOR EACH ROW EXECUTE FUNCTION crm.refuse_org_delete();
CREATE FUNCTION crm.refuse_truncate() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.employee'::regclass THEN RAISE 'crm.refuse_truncate() runs only on crm.employee, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	RAISE EXCEPTION 'crm.% cannot be truncated', TG_TABLE_NAME
		USING ERRCODE = 'restrict_violation',
		      HINT = 'Employees are never deleted; deactivate them instead.';
END
$$;
CREATE TRIGGER employee_no_truncate BEFORE TRUNCATE ON crm.employee
	FOR EACH STATEMENT EXECUTE FUNCTION crm.refuse_truncate();
-- Access: roles, action permissions, data scopes, teams (src/scope.c).

CREATE TABLE crm.permission (
	action       text NOT NULL,
	description  text NOT NULL,
	CONSTRAINT permission_pkey PRIMARY KEY (action)
);
COMMENT ON TABLE crm.permission IS 'The actions a role can grant (shipped with crm; read-only)';

INSERT INTO crm.permission (action, description)
SELECT t || '.' || a, format('%s %s', initcap(a), replace(t, '_', ' ') || 's')
  FROM unnest(ARRAY['lead', 'customer', 'contact', 'opportunity', 'contract', 'payment', 'invoice']) t,
       unnest(ARRAY['create', 'edit', 'delete', 'import', 'export', 'transfer']) a
UNION ALL VALUES
	('lead.convert',      'Convert leads into customers'),
	('pool.assign',       'Assign pool customers to employees'),
	('customer.merge',    'Merge duplicate customers'),
	('customer.lock',     'Lock and unlock customers'),
	('pool.claim',        'Claim customers from a public pool'),
	('pool.release',      'Release customers to a public pool'),
	('contract.approve',  'Approve contracts'),
	('payment.approve',   'Approve payments'),
	('invoice.approve',   'Approve invoices'),
	('admin.org',         'Manage departments and employees'),
	('admin.role',        'Manage roles, permissions and data scopes'),
	('admin.rules',       'Manage duplicate, pool, recycling, reminder and approval rules'),
	('admin.fields',      'Manage custom fields and dictionaries'),
	('admin.im',          'Manage IM channels');

CREATE TABLE crm.role (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	name         text NOT NULL,
	is_super     boolean NOT NULL DEFAULT false,
	description  text,
	created_at   timestamptz NOT NULL DEFAULT now(),
	updated_at   timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT role_pkey PRIMARY KEY (id),
	CONSTRAINT role_name_key UNIQUE (name),
	CONSTRAINT role_name_check CHECK (crm.check_length(name, 200, 'role.name') AND btrim(name) <> ''),
	CONSTRAINT role_description_length CHECK (crm.check_length(description, 2000, 'role.description'))
);
COMMENT ON TABLE crm.role IS 'Roles: action permissions and a data scope per record type; is_super grants everything';

CREATE TABLE crm.role_permission (
	role_id  bigint NOT NULL,
	action   text NOT NULL,
	CONSTRAINT role_permission_pkey PRIMARY KEY (role_id, action),
	CONSTRAINT role_permission_role_fkey FOREIGN KEY (role_id) REFERENCES crm.role (id) ON DELETE CASCADE,
	CONSTRAINT role_permission_action_fkey FOREIGN KEY (action) REFERENCES crm.permission (action),
	CONSTRAINT role_permission_action_check CHECK (crm.check_length(action, 100, 'role_permission.action'))
);
CREATE INDEX role_permission_action_idx ON crm.role_permission (action);

CREATE TABLE crm.role_scope (
	role_id      bigint NOT NULL,
	record_type  text NOT NULL,
	scope        text NOT NULL,
	departments  bigint[],
	CONSTRAINT role_scope_pkey PRIMARY KEY (role_id, record_type),
	CONSTRAINT role_scope_role_fkey FOREIGN KEY (role_id) REFERENCES crm.role (id) ON DELETE CASCADE,
	CONSTRAINT role_scope_record_type_check CHECK (record_type IN
		('lead', 'customer', 'contact', 'opportunity', 'contract', 'payment', 'invoice')),
	CONSTRAINT role_scope_scope_check CHECK (scope IN
		('self', 'subordinates', 'department', 'department_tree', 'all', 'custom')),
	CONSTRAINT role_scope_departments_check CHECK
		((scope = 'custom') = (departments IS NOT NULL AND cardinality(departments) > 0))
);
COMMENT ON COLUMN crm.role_scope.departments IS 'For scope custom: the departments whose members'' records are visible';

CREATE TABLE crm.employee_role (
	employee_id  bigint NOT NULL,
	role_id      bigint NOT NULL,
	CONSTRAINT employee_role_pkey PRIMARY KEY (employee_id, role_id),
	CONSTRAINT employee_role_employee_fkey FOREIGN KEY (employee_id) REFERENCES crm.employee (id),
	CONSTRAINT employee_role_role_fkey FOREIGN KEY (role_id) REFERENCES crm.role (id) ON DELETE CASCADE
);
CREATE INDEX employee_role_role_idx ON crm.employee_role (role_id);

CREATE TABLE crm.team_member (
	record_type  text NOT NULL,
	record_id    bigint NOT NULL,
	employee_id  bigint NOT NULL,
	access       text NOT NULL DEFAULT 'read',
	expires_at   timestamptz,
	created_at   timestamptz NOT NULL DEFAULT now(),
	added_by     bigint DEFAULT crm.current_employee_id(),
	CONSTRAINT team_member_pkey PRIMARY KEY (record_type, record_id, employee_id),
	CONSTRAINT team_member_employee_fkey FOREIGN KEY (employee_id) REFERENCES crm.employee (id),
	CONSTRAINT team_member_added_by_fkey FOREIGN KEY (added_by) REFERENCES crm.employee (id),
	CONSTRAINT team_member_record_type_check CHECK (record_type IN
		('lead', 'customer', 'contact', 'opportunity', 'contract', 'payment', 'invoice')),
	CONSTRAINT team_member_access_check CHECK (access IN ('read', 'edit'))
);
CREATE INDEX team_member_employee_idx ON crm.team_member (employee_id, record_type);
CREATE INDEX team_member_added_by_idx ON crm.team_member (added_by);
COMMENT ON TABLE crm.team_member IS 'Collaborators (协作人) on a record: read or edit access, until expires_at';

-- Scope helpers for the policies (see src/scope.c).  STABLE: the planner may
-- evaluate them to estimate a query, and index scans evaluate them once.
CREATE FUNCTION crm.scope_owners(record_type text) RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'crm_scope_owners' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION crm.invoker_scope_owners(record_type text) RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'crm_invoker_scope_owners' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION crm.invoker_has_permission(action text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_invoker_has_permission' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION crm.team_records(record_type text, for_edit boolean) RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'crm_team_records' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION crm.has_permission(action text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_has_permission' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION crm.may_administer(action text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_may_administer_sql' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION crm.acting_is_super() RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_acting_is_super_sql' LANGUAGE C STABLE PARALLEL RESTRICTED;
CREATE FUNCTION crm.check_write() RETURNS trigger
	AS 'MODULE_PATHNAME', 'crm_check_write' LANGUAGE C;
CREATE FUNCTION crm.explain_access(record_type text, id bigint)
	RETURNS TABLE (rule text, grants boolean, detail text)
	AS 'MODULE_PATHNAME', 'crm_explain_access' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION crm.scope_owners(text) IS 'Owners whose records of this type the acting employee sees (every employee for scope all)';
COMMENT ON FUNCTION crm.invoker_scope_owners(text) IS 'crm.scope_owners() of the employee a SECURITY DEFINER function acts for';
COMMENT ON FUNCTION crm.invoker_has_permission(text) IS 'crm.has_permission() of the employee a SECURITY DEFINER function acts for';
COMMENT ON FUNCTION crm.team_records(text, boolean) IS 'Records shared with the acting employee through a current team entry';
COMMENT ON FUNCTION crm.explain_access(text, bigint) IS 'Why the acting employee can or cannot reach a record';

CREATE FUNCTION crm.is_super_admin(employee_id bigint) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN EXISTS (SELECT FROM crm.employee_role er JOIN crm.role r ON r.id = er.role_id
                WHERE er.employee_id = is_super_admin.employee_id AND r.is_super);

-- Writes to organisation and access tables: superusers, crm_admin members, and
-- employees whose roles grant the admin action named by the trigger argument.
CREATE FUNCTION crm.require_admin() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_TABLE_SCHEMA <> 'crm' THEN RAISE 'crm.require_admin() cannot run on %.%', TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'wrong_object_type'; END IF;
	IF NOT crm.may_administer(TG_ARGV[0]) THEN
		RAISE EXCEPTION 'role "%" may not change crm.%', current_user, TG_TABLE_NAME
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = format('Changing crm.%s needs membership in crm_admin or the permission "%s"%s.',
			                      TG_TABLE_NAME, TG_ARGV[0],
			                      coalesce((SELECT format(' (employee "%s" has neither)', crm.clip(e.name)) FROM crm.employee e
			                                 WHERE e.id = crm.current_employee_id()), ', and the role acts as no active employee')),
			      HINT = format('Ask an administrator to grant "%s" to one of your roles.', TG_ARGV[0]);
	END IF;
	RETURN NULL;
END
$$;

-- Super admins (seeds 000, 003): only a super admin changes one, and the last
-- active one cannot be removed.  A superuser may bootstrap the first.
CREATE FUNCTION crm.guard_super_admin() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	touched text;
BEGIN
	IF TG_RELID <> ALL ('{crm.employee,crm.employee_role,crm.role}'::regclass[]) THEN RAISE 'crm.guard_super_admin() runs only on crm.employee, crm.employee_role, crm.role, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF TG_TABLE_NAME = 'role' THEN
		IF (TG_OP <> 'INSERT' AND OLD.is_super) OR (TG_OP <> 'DELETE' AND NEW.is_super) THEN
			touched := format('super admin role "%s"', crm.clip(CASE WHEN TG_OP = 'INSERT' THEN NEW.name ELSE OLD.name END));
		END IF;
	ELSIF TG_TABLE_NAME = 'employee_role' THEN
		IF EXISTS (SELECT FROM crm.role r WHERE r.is_super AND r.id IN (
			       CASE WHEN TG_OP <> 'INSERT' THEN OLD.role_id END,
			       CASE WHEN TG_OP <> 'DELETE' THEN NEW.role_id END)) THEN
			touched := format('the super admin role of employee %s',
			                  CASE WHEN TG_OP = 'DELETE' THEN OLD.employee_id ELSE NEW.employee_id END);
		END IF;
	ELSIF TG_TABLE_NAME = 'employee' THEN
		IF crm.is_super_admin(OLD.id) THEN
			touched := format('super admin %s (%s)', OLD.id, crm.clip(OLD.name));
		END IF;
	END IF;
	IF touched IS NOT NULL AND NOT current_setting('is_superuser')::boolean
	   AND NOT crm.acting_is_super() THEN
		RAISE EXCEPTION 'only a super admin may change %', touched
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = format('%s is not a super admin.',
			                      coalesce('Employee ' || crm.current_employee_id(), format('Role "%s" acts as no employee and', current_user))),
			      HINT = 'Ask a super admin to make this change.';
	END IF;
	RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;

CREATE FUNCTION crm.keep_a_super_admin() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> ALL ('{crm.employee,crm.employee_role,crm.role}'::regclass[]) THEN RAISE 'crm.keep_a_super_admin() runs only on crm.employee, crm.employee_role, crm.role, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- only the removal of a super admin matters (a deleted super role is caught by its own trigger)
	IF TG_TABLE_NAME = 'employee_role' THEN
		IF NOT EXISTS (SELECT FROM crm.role WHERE id = OLD.role_id AND is_super) THEN
			RETURN NULL;
		END IF;
	ELSIF TG_TABLE_NAME = 'employee' THEN
		IF NOT crm.is_super_admin(OLD.id) THEN
			RETURN NULL;
		END IF;
	END IF;
	IF NOT EXISTS (SELECT FROM crm.employee e
	                 JOIN crm.employee_role er ON er.employee_id = e.id
	                 JOIN crm.role r ON r.id = er.role_id
	                WHERE r.is_super AND e.active) THEN
		RAISE EXCEPTION 'crm must keep at least one active super admin'
			USING ERRCODE = 'check_violation',
			      DETAIL = format('This change to crm.%s would remove the last one.', TG_TABLE_NAME),
			      HINT = 'Make another employee a super admin first.';
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER role_guard_super BEFORE INSERT OR UPDATE OR DELETE ON crm.role
	FOR EACH ROW EXECUTE FUNCTION crm.guard_super_admin();
CREATE TRIGGER employee_role_guard_super BEFORE INSERT OR UPDATE OR DELETE ON crm.employee_role
	FOR EACH ROW EXECUTE FUNCTION crm.guard_super_admin();
CREATE TRIGGER employee_guard_super BEFORE UPDATE ON crm.employee
	FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION crm.guard_super_admin();
-- AFTER ROW triggers see the whole statement's effect
CREATE TRIGGER role_keep_super AFTER UPDATE OR DELETE ON crm.role
	FOR EACH ROW WHEN (OLD.is_super) EXECUTE FUNCTION crm.keep_a_super_admin();
CREATE TRIGGER employee_role_keep_super AFTER UPDATE OR DELETE ON crm.employee_role
	FOR EACH ROW EXECUTE FUNCTION crm.keep_a_super_admin();
CREATE TRIGGER employee_keep_super AFTER UPDATE OF active ON crm.employee
	FOR EACH ROW WHEN (OLD.active AND NOT NEW.active) EXECUTE FUNCTION crm.keep_a_super_admin();

-- An administrator who is not a super admin manages everyone's access but
-- their own: not their own roles, nor the scopes and permissions of a role they
-- hold, nor their own place in the organisation (department, superior, login,
-- active), nor who comes within their reach: nobody is moved to report to them
-- or to anyone below them, nor into their department or a department under it
-- or one their custom scopes list, no department is moved under theirs, and
-- no pool lists them or a department they are in.  Otherwise admin.org,
-- admin.role or admin.rules would be every scope there is.  Super admins,
-- crm_admin and superusers may.
CREATE FUNCTION crm.guard_own_access() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me    bigint;
	what  text;
	below bigint[];   -- the employees below them, and they
	tree  bigint[];   -- the departments whose people they reach
	moved boolean := false;   -- an employee changes department
BEGIN
	IF TG_RELID <> ALL ('{crm.employee,crm.department,crm.employee_role,crm.role_scope,crm.role_permission,crm.pool_member,crm.pool}'::regclass[]) THEN RAISE 'crm.guard_own_access() runs only on crm.employee, crm.department, crm.employee_role, crm.role_scope, crm.role_permission, crm.pool_member, crm.pool, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	me := crm.current_employee_id();
	IF me IS NULL OR pg_has_role('crm_admin', 'USAGE') OR crm.acting_is_super() THEN
		RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
	END IF;
	IF TG_TABLE_NAME = 'employee' AND TG_OP = 'UPDATE' THEN
		moved := OLD.department_id IS DISTINCT FROM NEW.department_id;
	END IF;
	IF TG_TABLE_NAME = 'department' OR moved THEN
		-- whose records their scopes reach by department: theirs and those under
		-- it, and for people the departments their custom scopes list
		WITH RECURSIVE down AS (
			SELECT e.department_id AS id FROM crm.employee e WHERE e.id = me
			UNION
			SELECT d.id FROM crm.department d JOIN down t ON d.parent_id = t.id)
		SELECT ARRAY(SELECT id FROM down
		             UNION
		             SELECT unnest(rs.departments) FROM crm.employee_role er JOIN crm.role_scope rs ON rs.role_id = er.role_id
		              WHERE TG_TABLE_NAME = 'employee' AND er.employee_id = me) INTO tree;
	END IF;
	IF TG_TABLE_NAME = 'employee' THEN
		IF TG_OP = 'UPDATE' AND OLD.id = me
		   AND (NEW.department_id, NEW.superior_id, NEW.db_role, NEW.active)
		       IS DISTINCT FROM (OLD.department_id, OLD.superior_id, OLD.db_role, OLD.active) THEN
			what := 'their own department, superior, login or active flag';
		ELSIF NEW.superior_id IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.superior_id IS DISTINCT FROM NEW.superior_id) THEN
			WITH RECURSIVE down AS (
				SELECT me AS id
				UNION
				SELECT e.id FROM crm.employee e JOIN down d ON e.superior_id = d.id)
			SELECT array_agg(id) INTO below FROM down;
			IF NEW.superior_id = ANY (below) AND (TG_OP = 'INSERT' OR NOT coalesce(OLD.superior_id = ANY (below), false)) THEN
				what := format('who reports to them or to those below them (%s)', crm.clip(NEW.name));
			END IF;
		END IF;
		IF what IS NULL AND moved THEN
			IF NEW.department_id = ANY (tree) AND NOT coalesce(OLD.department_id = ANY (tree), false) THEN
				what := format('who is in their departments (%s)', crm.clip(NEW.name));
			END IF;
		END IF;
	ELSIF TG_TABLE_NAME = 'department' THEN
		IF TG_OP = 'UPDATE' AND NEW.parent_id = ANY (tree) AND NOT coalesce(OLD.parent_id = ANY (tree), false) THEN
			what := format('which departments are under theirs (%s)', crm.clip(NEW.name));
		-- their department or one above it, moved, lands under whatever a pool
		-- lists (pools take a department with those below it)
		ELSIF TG_OP = 'UPDATE' AND NEW.parent_id IS DISTINCT FROM OLD.parent_id
		      AND NEW.id IN (WITH RECURSIVE above AS (
		                         SELECT e.department_id AS id FROM crm.employee e WHERE e.id = me
		                         UNION
		                         SELECT d.parent_id FROM crm.department d JOIN above a ON d.id = a.id WHERE d.parent_id IS NOT NULL)
		                     SELECT id FROM above) THEN
			what := format('where their own department sits (%s)', crm.clip(NEW.name));
		-- a leader is told of their department's records
		ELSIF NEW.leader_id = me AND (TG_OP = 'INSERT' OR OLD.leader_id IS DISTINCT FROM me) THEN
			what := format('who leads department "%s"', crm.clip(NEW.name));
		END IF;
	ELSIF TG_TABLE_NAME = 'pool' THEN
		IF NEW.open_to_all AND (TG_OP = 'INSERT' OR NOT OLD.open_to_all)
		   AND NOT EXISTS (SELECT FROM crm.pool_membership m WHERE m.pool_id = NEW.id AND m.employee_id = me) THEN
			what := format('the members of pool "%s" (open to all, they would be among them)', crm.clip(NEW.name));
		END IF;
	ELSIF TG_TABLE_NAME = 'pool_member' THEN
		IF EXISTS (WITH RECURSIVE above AS (
		               SELECT e.department_id AS id FROM crm.employee e WHERE e.id = me
		               UNION
		               SELECT d.parent_id FROM crm.department d JOIN above a ON d.id = a.id WHERE d.parent_id IS NOT NULL)
		           SELECT FROM (VALUES (CASE WHEN TG_OP <> 'INSERT' THEN OLD.employee_id END, CASE WHEN TG_OP <> 'INSERT' THEN OLD.department_id END),
		                               (CASE WHEN TG_OP <> 'DELETE' THEN NEW.employee_id END, CASE WHEN TG_OP <> 'DELETE' THEN NEW.department_id END)) r(employee_id, department_id)
		            WHERE r.employee_id = me OR r.department_id IN (SELECT id FROM above)) THEN
			what := format('the members of pool "%s", which they are among',
			               (SELECT crm.clip(p.name) FROM crm.pool p WHERE p.id = CASE WHEN TG_OP = 'DELETE' THEN OLD.pool_id ELSE NEW.pool_id END));
		END IF;
	ELSIF TG_TABLE_NAME = 'employee_role' THEN
		IF me IN (CASE WHEN TG_OP <> 'INSERT' THEN OLD.employee_id END, CASE WHEN TG_OP <> 'DELETE' THEN NEW.employee_id END) THEN
			what := 'their own roles';
		END IF;
	ELSIF EXISTS (SELECT FROM crm.employee_role er
	               WHERE er.employee_id = me
	                 AND er.role_id IN (CASE WHEN TG_OP <> 'INSERT' THEN OLD.role_id END, CASE WHEN TG_OP <> 'DELETE' THEN NEW.role_id END)) THEN
		what := format('the %s of role "%s", which they hold',
		               CASE TG_TABLE_NAME WHEN 'role_scope' THEN 'scopes' ELSE 'permissions' END,
		               (SELECT crm.clip(r.name) FROM crm.role r WHERE r.id = CASE WHEN TG_OP = 'DELETE' THEN OLD.role_id ELSE NEW.role_id END));
	END IF;
	IF what IS NOT NULL THEN
		RAISE EXCEPTION 'employee "%" may not change %', (SELECT crm.clip(e.name) FROM crm.employee e WHERE e.id = me), what
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'An administrator who is not a super admin does not change their own access.',
			      HINT = 'Ask a super admin (or another administrator) to make this change.';
	END IF;
	RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
CREATE TRIGGER employee_guard_own BEFORE INSERT OR UPDATE ON crm.employee
	FOR EACH ROW EXECUTE FUNCTION crm.guard_own_access();
CREATE TRIGGER department_guard_own BEFORE INSERT OR UPDATE OF parent_id, leader_id ON crm.department
	FOR EACH ROW EXECUTE FUNCTION crm.guard_own_access();
CREATE TRIGGER employee_role_guard_own BEFORE INSERT OR UPDATE OR DELETE ON crm.employee_role
	FOR EACH ROW EXECUTE FUNCTION crm.guard_own_access();
CREATE TRIGGER role_scope_guard_own BEFORE INSERT OR UPDATE OR DELETE ON crm.role_scope
	FOR EACH ROW EXECUTE FUNCTION crm.guard_own_access();
CREATE TRIGGER role_permission_guard_own BEFORE INSERT OR UPDATE OR DELETE ON crm.role_permission
	FOR EACH ROW EXECUTE FUNCTION crm.guard_own_access();

-- Every organisation and access table: readable by staff, written by whoever
-- crm.require_admin() lets through, and each change invalidates the cached
-- identities and scopes of every session (ENABLE ALWAYS, so that logical
-- replication's apply, which runs as a replica, invalidates too).
DO $org$
DECLARE
	t record;
BEGIN
	FOR t IN SELECT * FROM (VALUES ('department', 'admin.org'), ('employee', 'admin.org'),
	                               ('role', 'admin.role'), ('role_permission', 'admin.role'),
	                               ('role_scope', 'admin.role'), ('employee_role', 'admin.role')) v(name, action)
	LOOP
		EXECUTE format('CREATE TRIGGER %1$I BEFORE INSERT OR UPDATE OR DELETE ON crm.%2$I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin(%3$L)',
		               t.name || '_require_admin', t.name, t.action);
		EXECUTE format('CREATE TRIGGER %1$I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.%2$I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.org_changed()',
		               t.name || '_org_changed', t.name);
		EXECUTE format('ALTER TABLE crm.%I ENABLE ALWAYS TRIGGER %I', t.name, t.name || '_org_changed');
		EXECUTE format('GRANT SELECT, DELETE ON crm.%I TO crm_user', t.name);
	END LOOP;
END
$org$;
-- Ids, stamps and pool rows are crm's: staff write the other columns (each
-- table that crm_user may write names its columns so; a column added later is
-- crm's until granted).
GRANT INSERT (name, parent_id, leader_id, position), UPDATE (name, parent_id, leader_id, position)
	ON crm.department TO crm_user;
GRANT INSERT (name, mobile, email, department_id, superior_id, db_role, active, in_statistics, holding_limit,
              daily_claim_limit, wecom_userid, feishu_open_id, dingtalk_userid),
      UPDATE (name, mobile, email, department_id, superior_id, db_role, active, in_statistics, holding_limit,
              daily_claim_limit, wecom_userid, feishu_open_id, dingtalk_userid)
	ON crm.employee TO crm_user;
GRANT INSERT (name, is_super, description), UPDATE (name, is_super, description) ON crm.role TO crm_user;
GRANT INSERT, UPDATE ON crm.role_permission, crm.role_scope, crm.employee_role TO crm_user;
GRANT SELECT ON crm.permission TO crm_user;

-- Team entries: visible to the collaborator and to whoever sees the record.
-- Changing a record's team needs edit access to the record itself (its owner
-- in scope, or an edit entry) and <type>.edit; nobody writes their own entry
-- (a collaborator may only leave), and added_by is the acting employee.
ALTER TABLE crm.team_member ENABLE ROW LEVEL SECURITY;
CREATE FUNCTION crm.record_visible(record_type text, record_id bigint) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	-- runs as the caller: the record tables' own policies decide
	RETURN CASE record_type
		WHEN 'customer' THEN EXISTS (SELECT FROM crm.customer r WHERE r.id = record_visible.record_id)
		WHEN 'lead' THEN EXISTS (SELECT FROM crm.lead r WHERE r.id = record_visible.record_id)
		WHEN 'contact' THEN EXISTS (SELECT FROM crm.contact r WHERE r.id = record_visible.record_id)
		WHEN 'follow_up' THEN EXISTS (SELECT FROM crm.follow_up r WHERE r.id = record_visible.record_id)
		ELSE false END;
END
$$;
-- What the record tables' update policies let the caller change, with the
-- permission to edit: a lead or customer by scope or an edit entry, a contact
-- with its customer, a follow-up by its author.
CREATE FUNCTION crm.record_editable(record_type text, record_id bigint) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RETURN CASE record_type
		WHEN 'customer' THEN crm.has_permission('customer.edit') AND EXISTS (
			SELECT FROM crm.customer r WHERE r.id = record_editable.record_id
			   AND (r.owner_id = ANY (crm.scope_owners('customer')) OR r.id = ANY (crm.team_records('customer', true))))
		WHEN 'lead' THEN crm.has_permission('lead.edit') AND EXISTS (
			SELECT FROM crm.lead r WHERE r.id = record_editable.record_id
			   AND (r.owner_id = ANY (crm.scope_owners('lead')) OR r.id = ANY (crm.team_records('lead', true))))
		WHEN 'contact' THEN crm.has_permission('contact.edit') AND EXISTS (
			SELECT FROM crm.contact k JOIN crm.customer r ON r.id = k.customer_id
			 WHERE k.id = record_editable.record_id
			   AND (r.owner_id = ANY (crm.scope_owners('customer')) OR r.id = ANY (crm.team_records('customer', true))))
		WHEN 'follow_up' THEN EXISTS (SELECT FROM crm.follow_up r WHERE r.id = record_editable.record_id
		                                 AND r.created_by = crm.current_employee_id())
		ELSE false END;
END
$$;
COMMENT ON FUNCTION crm.record_visible(text, bigint) IS 'Whether the caller sees the record';
COMMENT ON FUNCTION crm.record_editable(text, bigint) IS 'Whether the caller may change the record (and so its team, tags and attachments)';
CREATE POLICY team_member_read ON crm.team_member FOR SELECT TO crm_user
	USING (employee_id = crm.current_employee_id() OR crm.record_visible(record_type, record_id));
CREATE POLICY team_member_write ON crm.team_member TO crm_user
	USING (crm.record_editable(record_type, record_id))
	WITH CHECK (crm.record_editable(record_type, record_id));
CREATE POLICY team_member_leave ON crm.team_member FOR DELETE TO crm_user
	USING (employee_id = crm.current_employee_id());
-- restrictive: a violation names the policy
CREATE POLICY team_member_not_own_entry ON crm.team_member AS RESTRICTIVE TO crm_user
	USING (true)
	WITH CHECK (employee_id IS DISTINCT FROM crm.current_employee_id());
GRANT SELECT, DELETE ON crm.team_member TO crm_user;
-- an entry's record and employee stay what they were: adding someone is an insert, which tells them
GRANT INSERT (record_type, record_id, employee_id, access, expires_at), UPDATE (access, expires_at)
	ON crm.team_member TO crm_user;
CREATE TRIGGER team_member_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.team_member
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
ALTER TABLE crm.team_member ENABLE ALWAYS TRIGGER team_member_changed;

-- crm.deactivate_employee() (src/org.c) checks who asks, then runs this as the
-- owner of the crm tables: every record moves, whoever can see it.
CREATE FUNCTION crm.handover_employee(employee_id bigint, handover_to bigint) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	leaving   crm.employee;
	successor crm.employee;
	moved     integer := 0;
	n         integer;
BEGIN
	SELECT * INTO leaving FROM crm.employee e WHERE e.id = handover_employee.employee_id FOR NO KEY UPDATE;
	SELECT * INTO successor FROM crm.employee e WHERE e.id = handover_to FOR SHARE;
	IF leaving.id IS NULL OR successor.id IS NULL THEN
		RAISE EXCEPTION 'employee % does not exist', CASE WHEN leaving.id IS NULL THEN employee_id ELSE handover_to END
			USING ERRCODE = 'no_data_found', HINT = 'Name employees by their crm.employee id.';
	ELSIF NOT leaving.active THEN
		RAISE EXCEPTION 'employee % (%) is already deactivated', leaving.id, crm.clip(leaving.name)
			USING ERRCODE = 'object_not_in_prerequisite_state';
	ELSIF NOT successor.active OR successor.id = leaving.id THEN
		RAISE EXCEPTION 'employee % (%) cannot take over from employee % (%)', successor.id, crm.clip(successor.name), leaving.id, crm.clip(leaving.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = CASE WHEN successor.id = leaving.id THEN 'An employee cannot hand over to themselves.'
			                    ELSE 'The successor is deactivated.' END,
			      HINT = 'Hand over to another active employee.';
	END IF;

	UPDATE crm.lead SET owner_id = successor.id WHERE owner_id = leaving.id;
	GET DIAGNOSTICS n = ROW_COUNT; moved := moved + n;
	UPDATE crm.customer SET owner_id = successor.id WHERE owner_id = leaving.id;
	GET DIAGNOSTICS n = ROW_COUNT; moved := moved + n;
	-- team places move unless the successor already has one on that record
	UPDATE crm.team_member t SET employee_id = successor.id
	 WHERE t.employee_id = leaving.id
	   AND NOT EXISTS (SELECT FROM crm.team_member s
	                    WHERE s.record_type = t.record_type AND s.record_id = t.record_id
	                      AND s.employee_id = successor.id);
	GET DIAGNOSTICS n = ROW_COUNT; moved := moved + n;
	DELETE FROM crm.team_member WHERE team_member.employee_id = leaving.id;
	UPDATE crm.department SET leader_id = successor.id WHERE leader_id = leaving.id;
	GET DIAGNOSTICS n = ROW_COUNT; moved := moved + n;
	-- subordinates report to the leaver's own superior: the chain loses a link, never gains a cycle
	UPDATE crm.employee SET superior_id = leaving.superior_id WHERE superior_id = leaving.id;
	UPDATE crm.employee SET active = false WHERE id = leaving.id;
	PERFORM crm.notify(ARRAY[successor.id], 'handover.received',
	                   format('Handover from %s: %s %s now yours', crm.clip(leaving.name), moved,
		                          CASE WHEN moved = 1 THEN 'record is' ELSE 'records are' END), NULL, 'employee', leaving.id);
	RETURN moved;
END
$$;

CREATE FUNCTION crm.deactivate_employee(employee_id bigint, handover_to bigint) RETURNS integer
	AS 'MODULE_PATHNAME', 'crm_deactivate_employee' LANGUAGE C;
COMMENT ON FUNCTION crm.deactivate_employee(bigint, bigint) IS
	'Hand over an employee''s records, team places and leadership to another, then deactivate them';
-- Settings, data dictionaries and customer follow-up statuses: rows a DBA or an
-- administrator edits; crm ships defaults marked builtin (see 25_config.sql).

-- One row of switches.
CREATE TABLE crm.settings (
	singleton          boolean NOT NULL DEFAULT true,
	status_reversible  boolean NOT NULL DEFAULT false,
	builtin            boolean NOT NULL DEFAULT false,
	CONSTRAINT settings_pkey PRIMARY KEY (singleton),
	CONSTRAINT settings_singleton_check CHECK (singleton)
);
COMMENT ON TABLE crm.settings IS 'crm''s switches: one row';
COMMENT ON COLUMN crm.settings.status_reversible IS 'Whether a customer''s status may move back to an earlier one (off: only forward)';
INSERT INTO crm.settings (builtin) VALUES (true);
SELECT crm.keep_builtin_edits('crm.settings', 'singleton');

-- Data dictionaries: stable codes, labels for people.
CREATE TABLE crm.dictionary (
	kind      text NOT NULL,
	code      text NOT NULL,
	label     text NOT NULL,
	position  integer NOT NULL DEFAULT 0,
	enabled   boolean NOT NULL DEFAULT true,
	builtin   boolean NOT NULL DEFAULT false,
	CONSTRAINT dictionary_pkey PRIMARY KEY (kind, code),
	CONSTRAINT dictionary_kind_check CHECK (kind IN
		('customer_source', 'industry', 'customer_level', 'follow_up_method', 'product_category', 'unit',
		 'pool_release_reason')),
	CONSTRAINT dictionary_code_check CHECK (octet_length(code) <= 60 AND code ~ '^[a-z0-9_]{1,60}$'),
	CONSTRAINT dictionary_label_check CHECK (crm.check_length(label, 200, 'dictionary.label') AND btrim(label) <> '')
);
COMMENT ON TABLE crm.dictionary IS 'Data dictionaries (数据字典): codes are stable, labels and order may change; disable instead of delete';

INSERT INTO crm.dictionary (kind, code, label, position, builtin)
SELECT kind, code, label, n, true FROM (VALUES
	('customer_source', '{website,phone,exhibition,referral,search_ads,visit,wechat,douyin,repeat,tender}',
	                    '{官网咨询,电话营销,展会,客户转介绍,搜索推广,线下拜访,微信公众号,抖音,老客户复购,招投标}'),
	('industry', '{manufacturing,it,wholesale_retail,construction,healthcare,education,finance,logistics,hospitality,real_estate,energy_chemicals,agriculture_food}',
	             '{制造业,信息技术,批发零售,建筑工程,医疗健康,教育培训,金融服务,物流运输,餐饮酒店,房地产,能源化工,农业食品}'),
	('customer_level', '{a,b,c,d}', '{A（重点客户）,B（普通客户）,C（非优先客户）,D（待定）}'),
	('follow_up_method', '{phone,email,visit,sms,im,other}', '{电话,邮件,上门拜访,短信,即时消息,其他}'),
	('product_category', '{software,hardware,service}', '{软件,硬件,服务}'),
	('unit', '{piece,set,year,month,hour}', '{个,套,年,月,小时}')
) v(kind, codes, labels),
LATERAL unnest(codes::text[], labels::text[]) WITH ORDINALITY AS u(code, label, n);
SELECT crm.keep_builtin_edits('crm.dictionary', 'kind', 'code');

-- A mapping names a text column of a crm table whose writes
-- crm.check_dictionary() checks (a trigger on the table): it compares the
-- column's values with codes as text.  A mapping no trigger would enforce is
-- refused rather than ignored.
CREATE FUNCTION crm.check_dictionary_column(table_name text, column_name text) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	rel     regclass := to_regclass(format('crm.%I', table_name));
	coltype regtype;
	derived boolean;
BEGIN
	SELECT a.atttypid, a.attgenerated <> '' INTO coltype, derived FROM pg_attribute a
	 WHERE a.attrelid = rel AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped;
	-- nor onto one crm reads: a name or number keys are made of, or one whose
	-- values crm checks by a rule of its own (a lead's status, a customer's
	-- kind, a credit code, a mobile number); a length limit is no such rule
	derived := derived OR EXISTS (
		SELECT FROM pg_depend d
		  JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
		  JOIN pg_attribute g ON g.attrelid = ad.adrelid AND g.attnum = ad.adnum AND g.attgenerated <> ''
		  JOIN pg_attribute a ON a.attrelid = rel AND a.attname = column_name
		 WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = rel AND d.refobjsubid = a.attnum)
	  OR EXISTS (
		SELECT FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = rel AND a.attname = column_name
		 WHERE c.conrelid = rel AND c.contype = 'c' AND c.conkey = ARRAY[a.attnum]
		   AND (pg_get_constraintdef(c.oid) LIKE '%= ANY (ARRAY[%'
		        OR pg_get_constraintdef(c.oid) LIKE 'CHECK (crm.check\_%' AND pg_get_constraintdef(c.oid) NOT LIKE 'CHECK (crm.check\_length(%'));
	IF derived THEN
		RAISE EXCEPTION 'dictionary codes cannot go into crm.%.%, a column crm derives or reads', crm.clip(table_name), crm.clip(column_name)
			USING ERRCODE = 'wrong_object_type',
			      HINT = 'Map a dictionary onto a text column people write; crm.add_field(record_type, name, ''single'', dictionary => kind) adds one.';
	END IF;
	IF coltype IS DISTINCT FROM 'text'::regtype THEN
		RAISE EXCEPTION 'dictionary codes cannot go into crm.%.%, %', crm.clip(table_name), crm.clip(column_name),
			CASE WHEN coltype IS NULL THEN 'which does not exist' ELSE format('a column of type %s', coltype) END
			USING ERRCODE = CASE WHEN coltype IS NULL THEN 'undefined_column' ELSE 'datatype_mismatch' END,
			      HINT = 'Map a dictionary onto a text column of a crm table; '
			             'crm.add_field(record_type, name, ''single'', dictionary => kind) adds one.';
	END IF;
	IF NOT EXISTS (SELECT FROM pg_trigger t
	                WHERE t.tgrelid = rel AND t.tgfoid = 'crm.check_dictionary()'::regprocedure) THEN
		RAISE EXCEPTION 'dictionary codes cannot go into crm.%.%, a table whose writes are not checked against dictionaries',
			crm.clip(table_name), crm.clip(column_name)
			USING ERRCODE = 'wrong_object_type',
			      HINT = (SELECT 'Map a dictionary onto a text column of ' || string_agg(t.tgrelid::regclass::text, ', ' ORDER BY t.tgrelid::regclass::text)
			                FROM pg_trigger t WHERE t.tgfoid = 'crm.check_dictionary()'::regprocedure) || '.';
	END IF;
	RETURN true;
END
$$;

-- Which columns take which dictionary's codes; add_field registers its own.
-- src/dictionary.c copies kinds into fixed-size keys: the lengths are bounded here.
CREATE TABLE crm.dictionary_column (
	table_name   text NOT NULL,
	column_name  text NOT NULL,
	kind         text NOT NULL,
	builtin      boolean NOT NULL DEFAULT false,
	CONSTRAINT dictionary_column_pkey PRIMARY KEY (table_name, column_name),
	CONSTRAINT dictionary_column_kind_check CHECK (octet_length(kind) <= 30 AND kind ~ '^[a-z][a-z0-9_]{0,29}$'),
	CONSTRAINT dictionary_column_name_check CHECK (octet_length(table_name) < 64 AND octet_length(column_name) < 64),
	CONSTRAINT dictionary_column_text_check CHECK (crm.check_dictionary_column(table_name, column_name))
);
COMMENT ON TABLE crm.dictionary_column IS 'Columns of crm tables whose values must be enabled codes of a dictionary';
-- (the shipped mappings come with their tables, src/sql/40_records.sql)

CREATE FUNCTION crm.check_dictionary() RETURNS trigger
	AS 'MODULE_PATHNAME', 'crm_check_dictionary' LANGUAGE C;

-- Customer follow-up statuses (跟进状态): at most 10, in order; the initial
-- and final ones always exist, and the final one's meaning (signed) is fixed.
CREATE TABLE crm.customer_status (
	id          bigint GENERATED ALWAYS AS IDENTITY,
	name        text NOT NULL,
	position    integer NOT NULL,
	is_initial  boolean NOT NULL DEFAULT false,
	is_final    boolean NOT NULL DEFAULT false,
	builtin     boolean NOT NULL DEFAULT false,
	CONSTRAINT customer_status_pkey PRIMARY KEY (id),
	CONSTRAINT customer_status_name_key UNIQUE (name),
	CONSTRAINT customer_status_position_key UNIQUE (position) DEFERRABLE INITIALLY IMMEDIATE,
	CONSTRAINT customer_status_name_check CHECK (crm.check_length(name, 200, 'customer_status.name') AND btrim(name) <> ''),
	CONSTRAINT customer_status_not_both CHECK (NOT (is_initial AND is_final))
);
CREATE UNIQUE INDEX customer_status_one_initial ON crm.customer_status (is_initial) WHERE is_initial;
CREATE UNIQUE INDEX customer_status_one_final ON crm.customer_status (is_final) WHERE is_final;
INSERT INTO crm.customer_status (name, position, is_initial, is_final, builtin) VALUES
	('初步接触', 1, true, false, true),
	('需求确认', 2, false, false, true),
	('方案报价', 3, false, false, true),
	('商务谈判', 4, false, false, true),
	('成交客户', 5, false, true, true);
SELECT crm.keep_builtin_edits('crm.customer_status', 'id');

CREATE FUNCTION crm.guard_customer_status() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.customer_status'::regclass THEN RAISE 'crm.guard_customer_status() runs only on crm.customer_status, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF TG_OP = 'INSERT' THEN
		IF (SELECT count(*) FROM crm.customer_status) >= 10 THEN
			RAISE EXCEPTION 'customer status "%" would be the 11th', crm.clip(NEW.name)
				USING ERRCODE = 'check_violation',
				      DETAIL = 'A follow-up status list has at most 10 statuses.',
				      HINT = 'Rename or delete a status instead.';
		ELSIF NEW.is_initial OR NEW.is_final THEN
			RAISE EXCEPTION 'customer status "%" cannot be a second initial or final status', crm.clip(NEW.name)
				USING ERRCODE = 'check_violation',
				      HINT = 'Rename the existing initial or final status instead.';
		END IF;
	ELSIF TG_OP = 'UPDATE' THEN
		IF NEW.is_initial <> OLD.is_initial OR NEW.is_final <> OLD.is_final
		   OR (OLD.is_final AND NEW.name <> OLD.name) THEN
			RAISE EXCEPTION 'customer status % (%) cannot change %', OLD.id, crm.clip(OLD.name),
				CASE WHEN OLD.is_final AND NEW.name <> OLD.name THEN 'its name: it is the final status'
				     ELSE 'whether it is the initial or the final status' END
				USING ERRCODE = 'check_violation',
				      DETAIL = 'The initial and final statuses are fixed; the final one means the customer signed.',
				      HINT = 'Rename or reorder the statuses between them.';
		END IF;
	ELSIF OLD.is_initial OR OLD.is_final THEN
		RAISE EXCEPTION 'customer status % (%) cannot be deleted', OLD.id, crm.clip(OLD.name)
			USING ERRCODE = 'restrict_violation',
			      DETAIL = 'The initial and final statuses always exist.';
	ELSIF EXISTS (SELECT FROM crm.customer WHERE status_id = OLD.id) THEN
		RAISE EXCEPTION 'customer status % (%) is still in use', OLD.id, crm.clip(OLD.name)
			USING ERRCODE = 'foreign_key_violation',
			      HINT = format('Use SELECT crm.delete_customer_status(%s, <status its customers move to>).', OLD.id);
	END IF;
	RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
-- runs as the owner: the in-use check must see every customer
ALTER FUNCTION crm.guard_customer_status() SECURITY DEFINER;
-- a restore loads the shipped statuses' edits through crm.builtin_redefined first
CREATE TRIGGER customer_status_guard BEFORE INSERT OR UPDATE OR DELETE ON crm.customer_status
	FOR EACH ROW EXECUTE FUNCTION crm.guard_customer_status();

CREATE FUNCTION crm.initial_customer_status() RETURNS bigint
	AS 'MODULE_PATHNAME', 'crm_initial_customer_status' LANGUAGE C STABLE PARALLEL RESTRICTED;

-- Deleting a status names where its customers go, in one statement:
-- crm.delete_customer_status() (src/org.c) checks who asks, then runs this as
-- the owner, so that every customer of the status moves.
CREATE FUNCTION crm.move_customer_status(status_id bigint, move_to bigint) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	moved integer;
BEGIN
	IF move_to = status_id OR NOT EXISTS (SELECT FROM crm.customer_status WHERE id = move_to) THEN
		RAISE EXCEPTION 'customers of status % cannot move to status %', status_id, move_to
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Name another existing status.';
	END IF;
	UPDATE crm.customer SET status_id = move_to WHERE customer.status_id = move_customer_status.status_id;
	GET DIAGNOSTICS moved = ROW_COUNT;
	DELETE FROM crm.customer_status WHERE id = status_id;
	RETURN moved;
END
$$;
CREATE FUNCTION crm.delete_customer_status(status_id bigint, move_to bigint) RETURNS integer
	AS 'MODULE_PATHNAME', 'crm_delete_customer_status' LANGUAGE C;
COMMENT ON FUNCTION crm.delete_customer_status(bigint, bigint) IS
	'Delete a customer status, moving its customers to another; returns how many moved';

DO $rules$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['settings', 'dictionary', 'dictionary_column', 'customer_status'] LOOP
		EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OR DELETE ON crm.%I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin(%L)',
		               t || '_require_admin', t, CASE WHEN t LIKE 'dictionary%' THEN 'admin.fields' ELSE 'admin.rules' END);
		EXECUTE format('GRANT SELECT, DELETE ON crm.%I TO crm_user', t);
	END LOOP;
END
$rules$;
-- "builtin" marks what crm shipped (and pg_dump leaves out): crm's alone, like ids
GRANT UPDATE (status_reversible) ON crm.settings TO crm_user;
GRANT INSERT (kind, code, label, position, enabled), UPDATE (kind, code, label, position, enabled)
	ON crm.dictionary TO crm_user;
GRANT INSERT (table_name, column_name, kind), UPDATE (table_name, column_name, kind) ON crm.dictionary_column TO crm_user;
GRANT INSERT (name, position, is_initial, is_final), UPDATE (name, position, is_initial, is_final)
	ON crm.customer_status TO crm_user;
CREATE TRIGGER dictionary_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.dictionary
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
CREATE TRIGGER dictionary_column_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.dictionary_column
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
CREATE TRIGGER customer_status_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.customer_status
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
ALTER TABLE crm.customer_status ENABLE ALWAYS TRIGGER customer_status_changed;
ALTER TABLE crm.dictionary ENABLE ALWAYS TRIGGER dictionary_changed;
ALTER TABLE crm.dictionary_column ENABLE ALWAYS TRIGGER dictionary_column_changed;

SELECT pg_catalog.pg_extension_config_dump('crm.settings', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('crm.dictionary', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('crm.dictionary_column', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('crm.customer_status', 'WHERE NOT builtin');
-- Business records: leads, customers, contacts, follow-ups.
--
-- owner_id and created_by of leads, customers and contacts are checked by
-- crm.check_write() against the cached organisation instead of by foreign keys
-- (a query per row): employees are never deleted, so a reference stays right.
--
-- Who sees a lead or customer: its owner is in the acting employee's scope
-- for the record type, or a current team entry shares it.  Writing also needs
-- the action permission, checked with a precise error by crm.check_write().
-- Sessions that resolve to no employee see nothing (fail closed).

CREATE TABLE crm.lead (
	id               bigint GENERATED ALWAYS AS IDENTITY,
	name             text NOT NULL,
	company          text,
	uscc             text,
	mobile           text,
	email            text,
	source           text,
	industry         text,
	requirement      text,
	expected_amount  numeric(14, 2),
	owner_id         bigint NOT NULL DEFAULT crm.current_employee_id(),
	status           text NOT NULL DEFAULT 'new',
	customer_id      bigint,
	converted_at     timestamptz,
	created_by       bigint,
	created_at       timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT lead_pkey PRIMARY KEY (id),
	CONSTRAINT lead_name_check CHECK (crm.check_length(name, 200, 'lead.name') AND btrim(name) <> ''),
	CONSTRAINT lead_company_length CHECK (crm.check_length(company, 200, 'lead.company')),
	CONSTRAINT lead_requirement_length CHECK (crm.check_length(requirement, 20000, 'lead.requirement')),
	CONSTRAINT lead_status_check CHECK (status IN ('new', 'following', 'converted', 'invalid')),
	CONSTRAINT lead_converted_check CHECK ((status = 'converted') = (customer_id IS NOT NULL AND converted_at IS NOT NULL)),
	CONSTRAINT lead_uscc_check CHECK (crm.check_uscc(uscc)),
	CONSTRAINT lead_mobile_check CHECK (crm.check_mobile(mobile)),
	CONSTRAINT lead_email_check CHECK (crm.check_email(email)),
	CONSTRAINT lead_expected_amount_check CHECK (expected_amount >= 0)
);
COMMENT ON COLUMN crm.lead.customer_id IS 'The customer the lead was converted into (crm.convert_lead); a converted lead is read-only';
COMMENT ON COLUMN crm.lead.requirement IS 'What the lead needs; with expected_amount, the start of an opportunity';

CREATE TABLE crm.customer (
	id                bigint GENERATED ALWAYS AS IDENTITY,
	name              text NOT NULL,
	kind              text NOT NULL DEFAULT 'company',
	uscc              text,
	phone             text,
	industry          text,
	source            text,
	level             text,
	status_id         bigint NOT NULL DEFAULT crm.initial_customer_status(),
	owner_id          bigint NOT NULL DEFAULT crm.current_employee_id(),
	locked            boolean NOT NULL DEFAULT false,
	last_follow_up_at timestamptz,
	created_by        bigint,
	created_at        timestamptz NOT NULL DEFAULT now(),
	updated_at        timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT customer_pkey PRIMARY KEY (id),
	CONSTRAINT customer_name_check CHECK (crm.check_length(name, 200, 'customer.name') AND btrim(name) <> ''),
	CONSTRAINT customer_phone_length CHECK (crm.check_length(phone, 40, 'customer.phone')),
	CONSTRAINT customer_kind_check CHECK (kind IN ('company', 'individual')),
	-- seed 001: a company is identified by its unified social credit code
	CONSTRAINT customer_company_uscc_check CHECK (crm.check_company_uscc(kind, uscc)),
	CONSTRAINT customer_uscc_check CHECK (crm.check_uscc(uscc))
);
COMMENT ON COLUMN crm.customer.uscc IS 'Unified social credit code (统一社会信用代码); required for companies, check digit verified';
COMMENT ON COLUMN crm.customer.status_id IS 'Follow-up status (crm.customer_status); moves only forward unless crm.settings.status_reversible';
COMMENT ON COLUMN crm.customer.locked IS 'Locked customers are never recycled to a pool';

-- Checked at commit: a delete of the customer is refused at the end of its
-- statement by crm.record_deleted(), which names the customer and gives the
-- hint below (src/sql/96_record_links.sql).
ALTER TABLE crm.lead ADD CONSTRAINT lead_customer_fkey FOREIGN KEY (customer_id) REFERENCES crm.customer (id)
	DEFERRABLE INITIALLY DEFERRED;
COMMENT ON CONSTRAINT lead_customer_fkey ON crm.lead IS
	'A converted lead keeps the customer it became: merge the customer into another (crm.merge_customers) instead of deleting it.';
-- deleting or merging a customer looks up the leads converted into it
CREATE INDEX lead_customer_idx ON crm.lead (customer_id);

-- Contacts (联系人): many per customer; visible with their customer.
CREATE TABLE crm.contact (
	id                 bigint GENERATED ALWAYS AS IDENTITY,
	customer_id        bigint NOT NULL,
	name               text NOT NULL,
	mobile             text,
	email              text,
	title              text,
	is_decision_maker  boolean NOT NULL DEFAULT false,
	owner_id           bigint NOT NULL DEFAULT crm.current_employee_id(),
	created_by         bigint,
	created_at         timestamptz NOT NULL DEFAULT now(),
	updated_at         timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT contact_pkey PRIMARY KEY (id),
	CONSTRAINT contact_customer_fkey FOREIGN KEY (customer_id) REFERENCES crm.customer (id) ON DELETE CASCADE,
	CONSTRAINT contact_name_check CHECK (crm.check_length(name, 200, 'contact.name') AND btrim(name) <> ''),
	CONSTRAINT contact_title_length CHECK (crm.check_length(title, 200, 'contact.title')),
	CONSTRAINT contact_mobile_check CHECK (crm.check_mobile(mobile)),
	CONSTRAINT contact_email_check CHECK (crm.check_email(email))
);
COMMENT ON COLUMN crm.contact.is_decision_maker IS 'Key decision maker (关键决策人)';

CREATE TABLE crm.follow_up (
	id               bigint GENERATED ALWAYS AS IDENTITY,
	record_type      text NOT NULL,
	record_id        bigint NOT NULL,
	method           text NOT NULL DEFAULT 'phone',
	content          text NOT NULL,
	next_contact_at  timestamptz,
	created_by       bigint,
	created_at       timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT follow_up_pkey PRIMARY KEY (id),
	CONSTRAINT follow_up_created_by_fkey FOREIGN KEY (created_by) REFERENCES crm.employee (id),
	CONSTRAINT follow_up_record_type_check CHECK (record_type IN ('lead', 'customer')),
	CONSTRAINT follow_up_content_check CHECK (crm.check_length(content, 20000, 'follow_up.content') AND btrim(content) <> '')
);
COMMENT ON COLUMN crm.follow_up.created_at IS 'When the follow-up happened; defaults to now(), may be given for imported history';

-- Scope columns lead the indexes: RLS filters on them first.
CREATE INDEX lead_owner_idx ON crm.lead (owner_id, updated_at DESC);
CREATE INDEX customer_owner_idx ON crm.customer (owner_id, updated_at DESC);
CREATE INDEX customer_updated_idx ON crm.customer (updated_at DESC);
CREATE INDEX follow_up_record_idx ON crm.follow_up (record_type, record_id, created_at DESC);
CREATE INDEX follow_up_created_by_idx ON crm.follow_up (created_by, created_at DESC);
CREATE INDEX contact_customer_idx ON crm.contact (customer_id);
CREATE INDEX contact_owner_idx ON crm.contact (owner_id);
CREATE INDEX customer_status_idx ON crm.customer (status_id);

CREATE TRIGGER lead_stamp BEFORE INSERT OR UPDATE ON crm.lead
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();
CREATE TRIGGER customer_stamp BEFORE INSERT OR UPDATE ON crm.customer
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();
CREATE TRIGGER follow_up_stamp BEFORE INSERT OR UPDATE ON crm.follow_up
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();
-- named to run after the stamp trigger (triggers fire in name order)
CREATE TRIGGER lead_write_check BEFORE INSERT OR UPDATE OR DELETE ON crm.lead
	FOR EACH ROW EXECUTE FUNCTION crm.check_write('lead');
CREATE TRIGGER customer_write_check BEFORE INSERT OR UPDATE OR DELETE ON crm.customer
	FOR EACH ROW EXECUTE FUNCTION crm.check_write('customer');
CREATE TRIGGER contact_stamp BEFORE INSERT OR UPDATE ON crm.contact
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();
CREATE TRIGGER contact_write_check BEFORE INSERT OR UPDATE OR DELETE ON crm.contact
	FOR EACH ROW EXECUTE FUNCTION crm.check_write('contact');
CREATE TRIGGER customer_dictionary_check BEFORE INSERT OR UPDATE ON crm.customer
	FOR EACH ROW EXECUTE FUNCTION crm.check_dictionary();
CREATE TRIGGER lead_dictionary_check BEFORE INSERT OR UPDATE ON crm.lead
	FOR EACH ROW EXECUTE FUNCTION crm.check_dictionary();
CREATE TRIGGER contact_dictionary_check BEFORE INSERT OR UPDATE ON crm.contact
	FOR EACH ROW EXECUTE FUNCTION crm.check_dictionary();

-- A converted lead keeps its link to the customer and is read-only; the link
-- alone may follow the customer into another (crm.merge_customers).  Generated
-- columns (the duplicate keys) are not compared: a BEFORE trigger sees them
-- only as they were.
CREATE FUNCTION crm.refuse_converted_lead() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	same text[];
BEGIN
	IF TG_RELID <> 'crm.lead'::regclass THEN RAISE 'crm.refuse_converted_lead() runs only on crm.lead, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF TG_OP = 'UPDATE' THEN
		same := ARRAY['customer_id', 'updated_at'] || ARRAY(SELECT a.attname::text FROM pg_attribute a
		                                                     WHERE a.attrelid = TG_RELID AND a.attgenerated <> '');
		IF to_jsonb(OLD) - same = to_jsonb(NEW) - same THEN
			RETURN NEW;
		END IF;
	END IF;
	RAISE EXCEPTION 'lead % (%) was converted into customer % and is read-only', OLD.id, crm.clip(OLD.name), OLD.customer_id
		USING ERRCODE = 'object_not_in_prerequisite_state',
		      HINT = format('Work on customer %s instead.', OLD.customer_id);
END
$$;
CREATE TRIGGER lead_converted_read_only BEFORE UPDATE ON crm.lead
	FOR EACH ROW WHEN (OLD.status = 'converted') EXECUTE FUNCTION crm.refuse_converted_lead();
CREATE TRIGGER lead_converted_kept BEFORE DELETE ON crm.lead
	FOR EACH ROW WHEN (OLD.status = 'converted') EXECUTE FUNCTION crm.refuse_converted_lead();
CREATE TRIGGER follow_up_dictionary_check BEFORE INSERT OR UPDATE ON crm.follow_up
	FOR EACH ROW EXECUTE FUNCTION crm.check_dictionary();
-- the columns these triggers check (crm.dictionary_column, src/sql/38_dictionary.sql)
INSERT INTO crm.dictionary_column (table_name, column_name, kind, builtin) VALUES
	('customer', 'source', 'customer_source', true),
	('customer', 'industry', 'industry', true),
	('customer', 'level', 'customer_level', true),
	('lead', 'source', 'customer_source', true),
	('lead', 'industry', 'industry', true),
	('follow_up', 'method', 'follow_up_method', true);

-- A customer's status moves forward only, unless crm.settings.status_reversible.
CREATE FUNCTION crm.check_status_move() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	old_status crm.customer_status;
	new_status crm.customer_status;
BEGIN
	IF TG_RELID <> 'crm.customer'::regclass THEN RAISE 'crm.check_status_move() runs only on crm.customer, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	SELECT * INTO old_status FROM crm.customer_status WHERE id = OLD.status_id;
	SELECT * INTO new_status FROM crm.customer_status WHERE id = NEW.status_id;
	IF new_status.position < old_status.position
	   AND NOT (SELECT status_reversible FROM crm.settings) THEN
		RAISE EXCEPTION 'customer % (%) cannot move back from status "%" to "%"',
			NEW.id, crm.clip(NEW.name), crm.clip(old_status.name), crm.clip(new_status.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = 'Follow-up statuses only move forward.',
			      HINT = 'An administrator can allow it: UPDATE crm.settings SET status_reversible = true.';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER customer_status_move BEFORE UPDATE OF status_id ON crm.customer
	FOR EACH ROW WHEN (OLD.status_id IS DISTINCT FROM NEW.status_id) EXECUTE FUNCTION crm.check_status_move();

-- seed 001: an individual customer needs a contact with a mobile number, checked
-- when the transaction commits so that both can be written in either order.
CREATE FUNCTION crm.check_individual_contact() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	target   bigint;
	customer text;
BEGIN
	IF TG_RELID <> ALL ('{crm.contact,crm.customer}'::regclass[]) THEN RAISE 'crm.check_individual_contact() runs only on crm.contact, crm.customer, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- (branches: plpgsql resolves NEW and OLD fields only where it runs them)
	IF TG_TABLE_NAME = 'customer' THEN
		target := NEW.id;
	ELSIF TG_OP = 'DELETE' THEN
		target := OLD.customer_id;
	ELSE
		target := NEW.customer_id;
	END IF;
	SELECT c.name INTO customer FROM crm.customer c
	 WHERE c.id = target AND c.kind = 'individual'
	   AND NOT EXISTS (SELECT FROM crm.contact k WHERE k.customer_id = c.id AND k.mobile IS NOT NULL);
	IF FOUND THEN
		RAISE EXCEPTION 'individual customer % (%) has no contact with a mobile number', target, crm.clip(customer)
			USING ERRCODE = 'check_violation',
			      DETAIL = 'An individual customer is reached through a contact''s mobile number.',
			      HINT = 'Insert a crm.contact row with a mobile number for this customer in the same transaction.';
	END IF;
	RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER customer_individual_contact AFTER INSERT OR UPDATE OF kind ON crm.customer
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.kind = 'individual')
	EXECUTE FUNCTION crm.check_individual_contact();
CREATE CONSTRAINT TRIGGER contact_individual_contact AFTER UPDATE OF mobile, customer_id OR DELETE ON crm.contact
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION crm.check_individual_contact();

-- Follow-ups keep their customer's last_follow_up_at, set-based per statement.
CREATE FUNCTION crm.touch_last_follow_up() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.follow_up'::regclass THEN RAISE 'crm.touch_last_follow_up() runs only on crm.follow_up, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	UPDATE crm.customer c SET last_follow_up_at = f.last
	  FROM (SELECT record_id, max(created_at) AS last FROM new_follow_ups
	         WHERE record_type = 'customer' GROUP BY record_id) f
	 WHERE c.id = f.record_id AND (c.last_follow_up_at IS NULL OR c.last_follow_up_at < f.last);
	RETURN NULL;
END
$$;
CREATE TRIGGER follow_up_touches_customer AFTER INSERT ON crm.follow_up
	REFERENCING NEW TABLE AS new_follow_ups
	FOR EACH STATEMENT EXECUTE FUNCTION crm.touch_last_follow_up();

ALTER TABLE crm.lead ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.customer ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.follow_up ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.contact ENABLE ROW LEVEL SECURITY;

-- The policies of owned records, one set per table.  The scope arms are written
-- so that the planner can turn each into an index condition (see src/scope.c);
-- UPDATE may move the owner out of scope, which crm.check_write() allows only
-- with the transfer permission.
DO $policies$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['lead', 'customer'] LOOP
		EXECUTE format($p$
			CREATE POLICY %1$s_read ON crm.%1$I FOR SELECT TO crm_user USING (
				owner_id = ANY (crm.scope_owners(%2$L)) OR id = ANY (crm.team_records(%2$L, false)))$p$, t, t);
		EXECUTE format($p$
			CREATE POLICY %1$s_insert ON crm.%1$I FOR INSERT TO crm_user WITH CHECK (
				owner_id = ANY (crm.scope_owners(%2$L)))$p$, t, t);
		EXECUTE format($p$
			CREATE POLICY %1$s_update ON crm.%1$I FOR UPDATE TO crm_user USING (
				owner_id = ANY (crm.scope_owners(%2$L)) OR id = ANY (crm.team_records(%2$L, true)))
				WITH CHECK (true)$p$, t, t);
		EXECUTE format($p$
			CREATE POLICY %1$s_delete ON crm.%1$I FOR DELETE TO crm_user USING (
				owner_id = ANY (crm.scope_owners(%2$L)))$p$, t, t);
	END LOOP;
END
$policies$;

-- A follow-up is visible to its author and to whoever may see its record
-- (the sub-selects below run under the record tables' own policies).
CREATE POLICY follow_up_read ON crm.follow_up FOR SELECT TO crm_user
	USING (created_by = (SELECT crm.current_employee_id())
		OR (record_type = 'customer' AND EXISTS (SELECT FROM crm.customer c WHERE c.id = record_id))
		OR (record_type = 'lead' AND EXISTS (SELECT FROM crm.lead l WHERE l.id = record_id)));
CREATE POLICY follow_up_write ON crm.follow_up FOR INSERT TO crm_user
	WITH CHECK (created_by = (SELECT crm.current_employee_id())
		AND ((record_type = 'customer' AND EXISTS (SELECT FROM crm.customer c WHERE c.id = record_id))
			OR (record_type = 'lead' AND EXISTS (SELECT FROM crm.lead l WHERE l.id = record_id))));
-- (moved to another record, a follow-up must be one its author may add there)
CREATE POLICY follow_up_edit ON crm.follow_up FOR UPDATE TO crm_user
	USING (created_by = (SELECT crm.current_employee_id()))
	WITH CHECK (created_by = (SELECT crm.current_employee_id()) AND crm.record_visible(record_type, record_id));
CREATE POLICY follow_up_delete ON crm.follow_up FOR DELETE TO crm_user
	USING (created_by = (SELECT crm.current_employee_id()));

-- Contacts follow their customer: visible with it, written by whoever may edit it
-- (the sub-selects run under the customer table's own policies).
CREATE POLICY contact_read ON crm.contact FOR SELECT TO crm_user
	USING (EXISTS (SELECT FROM crm.customer c WHERE c.id = customer_id));
-- (a read collaborator of the customer sees its contacts but does not write them)
CREATE POLICY contact_insert ON crm.contact FOR INSERT TO crm_user
	WITH CHECK (EXISTS (SELECT FROM crm.customer c WHERE c.id = customer_id
	                       AND (c.owner_id = ANY (crm.scope_owners('customer')) OR c.id = ANY (crm.team_records('customer', true)))));
CREATE POLICY contact_update ON crm.contact FOR UPDATE TO crm_user
	USING (EXISTS (SELECT FROM crm.customer c WHERE c.id = customer_id
	                  AND (c.owner_id = ANY (crm.scope_owners('customer')) OR c.id = ANY (crm.team_records('customer', true)))));
CREATE POLICY contact_delete ON crm.contact FOR DELETE TO crm_user
	USING (EXISTS (SELECT FROM crm.customer c WHERE c.id = customer_id
	                  AND (c.owner_id = ANY (crm.scope_owners('customer')) OR c.id = ANY (crm.team_records('customer', true)))));

-- Ids, created_by, the stamps, last_follow_up_at and the keys are crm's alone;
-- a follow-up's time may be given when it is written (history, never the
-- future: crm.stamp_record), not changed.  Custom fields grant their own
-- columns (src/sql/70_fields.sql).
GRANT SELECT, DELETE ON crm.lead, crm.customer, crm.contact, crm.follow_up TO crm_user;
GRANT INSERT (name, company, uscc, mobile, email, source, industry, requirement, expected_amount, owner_id, status,
              customer_id, converted_at),
      UPDATE (name, company, uscc, mobile, email, source, industry, requirement, expected_amount, owner_id, status,
              customer_id, converted_at)
	ON crm.lead TO crm_user;
GRANT INSERT (name, kind, uscc, phone, industry, source, level, status_id, owner_id, locked),
      UPDATE (name, kind, uscc, phone, industry, source, level, status_id, owner_id, locked)
	ON crm.customer TO crm_user;
GRANT INSERT (customer_id, name, mobile, email, title, is_decision_maker, owner_id),
      UPDATE (customer_id, name, mobile, email, title, is_decision_maker, owner_id)
	ON crm.contact TO crm_user;
GRANT INSERT (record_type, record_id, method, content, next_contact_at, created_at),
      UPDATE (record_type, record_id, method, content, next_contact_at)
	ON crm.follow_up TO crm_user;
-- Duplicate checks, part one: the keys under which two spellings
-- of the same name, phone or e-mail compare equal (src/normalize.c).
CREATE FUNCTION crm.dedupe_key(kind text, value text) RETURNS text
	AS 'MODULE_PATHNAME', 'crm_dedupe_key_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.dedupe_key(text, text) IS
	'Duplicate key of a value: kind name, company, phone, email, pinyin or initials; NULL when nothing is left';

-- The keys, kept by PostgreSQL itself on every path (INSERT, UPDATE, COPY,
-- restore) and never writable by clients.  A customer's name is a company
-- name or a person's, by its kind.
ALTER TABLE crm.customer
	ADD COLUMN name_key text GENERATED ALWAYS AS
		(crm.dedupe_key(CASE kind WHEN 'company' THEN 'company' ELSE 'name' END, name)) STORED,
	ADD COLUMN phone_key text GENERATED ALWAYS AS (crm.dedupe_key('phone', phone)) STORED;
ALTER TABLE crm.lead
	ADD COLUMN name_key text GENERATED ALWAYS AS (crm.dedupe_key('name', name)) STORED,
	ADD COLUMN company_key text GENERATED ALWAYS AS (crm.dedupe_key('company', company)) STORED,
	ADD COLUMN mobile_key text GENERATED ALWAYS AS (crm.dedupe_key('phone', mobile)) STORED,
	ADD COLUMN email_key text GENERATED ALWAYS AS (crm.dedupe_key('email', email)) STORED;
ALTER TABLE crm.contact
	ADD COLUMN name_key text GENERATED ALWAYS AS (crm.dedupe_key('name', name)) STORED,
	ADD COLUMN mobile_key text GENERATED ALWAYS AS (crm.dedupe_key('phone', mobile)) STORED,
	ADD COLUMN email_key text GENERATED ALWAYS AS (crm.dedupe_key('email', email)) STORED;
CREATE INDEX customer_name_key_idx ON crm.customer (name_key);
CREATE INDEX customer_phone_key_idx ON crm.customer (phone_key);
CREATE INDEX customer_uscc_idx ON crm.customer (uscc);
CREATE INDEX lead_name_key_idx ON crm.lead (name_key);
CREATE INDEX lead_company_key_idx ON crm.lead (company_key);
CREATE INDEX lead_mobile_key_idx ON crm.lead (mobile_key);
CREATE INDEX lead_email_key_idx ON crm.lead (email_key);
CREATE INDEX lead_uscc_idx ON crm.lead (uscc);
CREATE INDEX contact_name_key_idx ON crm.contact (name_key);
CREATE INDEX contact_mobile_key_idx ON crm.contact (mobile_key);
CREATE INDEX contact_email_key_idx ON crm.contact (email_key);
COMMENT ON COLUMN crm.customer.name_key IS 'Duplicate key of the name: crm.dedupe_key(''company'' or ''name'', name)';

-- The keys (and the pinyin below) are computed by ICU, whose data changes
-- between versions: after an upgrade, new rows could get keys the old rows,
-- stored and indexed, do not share, and duplicate checks would miss.  crm
-- records the version the stored keys were built with: the row is written here
-- (a restore computes every key anew, with this server's ICU, so the row is not
-- dumped) and by crm.rebuild_keys(); pg_upgrade carries it over with the keys.
CREATE FUNCTION crm.icu_version() RETURNS text
	AS 'MODULE_PATHNAME', 'crm_icu_version_sql' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.icu_version() IS 'The ICU version this server computes duplicate keys with';
CREATE TABLE crm.key_build (
	only_row     boolean NOT NULL DEFAULT true,
	icu_version  text NOT NULL,
	built_at     timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT key_build_pkey PRIMARY KEY (only_row),
	CONSTRAINT key_build_only_row CHECK (only_row)
);
COMMENT ON TABLE crm.key_build IS 'The ICU version the stored duplicate keys were computed with (crm.key_check(), crm.rebuild_keys())';
INSERT INTO crm.key_build (icu_version) VALUES (crm.icu_version());

-- Whether the stored keys were built with the ICU this server runs; a WARNING
-- that says what to do when not (the housekeeping job checks every night).
CREATE FUNCTION crm.key_check() RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	built text;
BEGIN
	SELECT k.icu_version INTO built FROM crm.key_build k;
	IF built IS DISTINCT FROM crm.icu_version() THEN
		RAISE WARNING 'duplicate keys were built with ICU %, not with the ICU this server runs', coalesce(crm.clip(built), 'of unknown version')
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('This server runs ICU %s: new names, phones and e-mails may get keys the stored ones do not share, so duplicate checks can miss.', crm.icu_version()),
			      HINT = 'As a superuser, run SELECT crm.rebuild_keys(); (docs/backup.md).';
		RETURN false;
	END IF;
	RETURN true;
END
$$;
COMMENT ON FUNCTION crm.key_check() IS 'Whether the stored duplicate keys were built with the running ICU; warns when not';

-- Compute every stored key again with the running ICU, rewriting only the rows
-- whose keys change, without firing crm's triggers (nothing a user sees changes
-- but the keys), rebuild the indexes of the keyed tables and record the version.
CREATE FUNCTION crm.rebuild_keys() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET session_replication_role = replica AS $$
DECLARE
	t      record;
	n      bigint;
	total  bigint := 0;
BEGIN
	FOR t IN
		SELECT c.oid::regclass AS rel,
		       -- the columns the keys are computed from, set to themselves
		       (SELECT string_agg(DISTINCT format('%I = %I', b.attname, b.attname), ', ')
		          FROM pg_attrdef g
		          JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = g.oid
		                          AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid
		          JOIN pg_attribute b ON b.attrelid = c.oid AND b.attnum = d.refobjsubid AND b.attgenerated = ''
		         WHERE g.adrelid = c.oid) AS sources,
		       string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) AS keys,
		       string_agg(pg_get_expr(e.adbin, e.adrelid), ', ' ORDER BY a.attnum) AS computed
		  FROM pg_class c
		  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attgenerated = 's' AND NOT a.attisdropped
		  JOIN pg_attrdef e ON e.adrelid = c.oid AND e.adnum = a.attnum
		 WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'r'
		 GROUP BY c.oid
		 ORDER BY c.oid
	LOOP
		EXECUTE format('UPDATE %s SET %s WHERE ROW(%s) IS DISTINCT FROM ROW(%s)', t.rel, t.sources, t.keys, t.computed);
		GET DIAGNOSTICS n = ROW_COUNT;
		total := total + n;
		EXECUTE format('REINDEX TABLE %s', t.rel);
	END LOOP;
	UPDATE crm.key_build SET icu_version = crm.icu_version(), built_at = now();
	RETURN total;
END
$$;
COMMENT ON FUNCTION crm.rebuild_keys() IS 'After an ICU upgrade: compute the stored duplicate keys again, reindex, record the version (superuser or DBA)';

-- For the fuzzy search of crm.find_duplicates: a customer's name key in
-- pinyin (trigram-indexed: "hua wei" and 华为 meet as huawei) and its initials.
ALTER TABLE crm.customer
	ADD COLUMN name_pinyin text GENERATED ALWAYS AS (crm.dedupe_key('pinyin',
		crm.dedupe_key(CASE kind WHEN 'company' THEN 'company' ELSE 'name' END, name))) STORED,
	ADD COLUMN name_initials text GENERATED ALWAYS AS (crm.dedupe_key('initials',
		crm.dedupe_key(CASE kind WHEN 'company' THEN 'company' ELSE 'name' END, name))) STORED;
CREATE INDEX customer_name_pinyin_idx ON crm.customer USING gin (name_pinyin gin_trgm_ops);
CREATE INDEX customer_name_initials_idx ON crm.customer (name_initials text_pattern_ops);
-- The owner history: every change of a customer's owner, with what it was
-- (transfer, claim, assign, release, recycle), the pool, rule and reason
-- (kept by crm.customer_clock_move, src/sql/94_pool.sql).
CREATE TABLE crm.customer_owner_change (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	customer_id  bigint NOT NULL,
	kind         text NOT NULL,
	from_owner   bigint NOT NULL,
	to_owner     bigint NOT NULL,
	pool_id      bigint,
	rule_id      bigint,
	reason       text,
	changed_by   bigint,
	changed_at   timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT customer_owner_change_pkey PRIMARY KEY (id),
	CONSTRAINT customer_owner_change_customer_fkey FOREIGN KEY (customer_id) REFERENCES crm.customer (id) ON DELETE CASCADE,
	CONSTRAINT customer_owner_change_kind_check CHECK (kind IN ('transfer', 'claim', 'assign', 'release', 'recycle'))
);
CREATE INDEX customer_owner_change_customer_idx ON crm.customer_owner_change (customer_id, changed_at DESC);
-- daily claim counts, cool-downs and freezes read these
CREATE INDEX customer_owner_change_claims_idx ON crm.customer_owner_change (to_owner, changed_at) WHERE kind = 'claim';
CREATE INDEX customer_owner_change_releases_idx ON crm.customer_owner_change (from_owner, pool_id, changed_at) WHERE kind = 'release';
COMMENT ON TABLE crm.customer_owner_change IS 'Every change of a customer''s owner: transfers and the public pool''s claims, assignments, releases and recycling';
ALTER TABLE crm.customer_owner_change ENABLE ROW LEVEL SECURITY;
CREATE POLICY customer_owner_change_visible ON crm.customer_owner_change FOR SELECT TO crm_user
	USING (EXISTS (SELECT FROM crm.customer c WHERE c.id = customer_id)
	       OR crm.current_employee_id() IN (from_owner, to_owner));
GRANT SELECT ON crm.customer_owner_change TO crm_user;

-- seeds 000, 002: a holding limit (the employee's own, else crm.settings'
-- default) counts the customers not yet signed.  The caller has locked the
-- employee's row, which serialises everything that hands them customers.
CREATE FUNCTION crm.check_holding_limit(target crm.employee, ids bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	cap      integer := coalesce(target.holding_limit, (SELECT s.holding_limit FROM crm.settings s));
	held     bigint;
	incoming bigint;
BEGIN
	IF cap IS NULL THEN
		RETURN;
	END IF;
	SELECT count(*) FILTER (WHERE c.owner_id = target.id AND NOT c.id = ANY (ids)),
	       count(*) FILTER (WHERE c.id = ANY (ids) AND c.owner_id <> target.id)
	  INTO held, incoming
	  FROM crm.customer c JOIN crm.customer_status s ON s.id = c.status_id
	 WHERE NOT s.is_final AND (c.owner_id = target.id OR c.id = ANY (ids));
	IF incoming > 0 AND held + incoming > cap THEN
		RAISE EXCEPTION 'employee % (%) would hold % customers, over their limit of %',
			target.id, crm.clip(target.name), held + incoming, cap
			USING ERRCODE = 'check_violation',
			      DETAIL = format('They hold %s customers not yet signed; this brings %s more.', held, incoming),
			      HINT = 'Hand over fewer, or raise crm.employee.holding_limit (or crm.settings.holding_limit); signed customers do not count.';
	END IF;
END
$$;

-- crm.transfer() (src/transfer.c) checks the caller, then runs this as the owner.
CREATE FUNCTION crm.transfer_records(record_type text, ids bigint[], to_employee bigint,
                                     with_related boolean, keep_old_owner_on_team boolean) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	target   crm.employee;
	moved_ids bigint[];
	moved    integer;
BEGIN
	-- nothing to move: nothing to lock either (a lock on somebody's row, held
	-- in an open transaction, would stop their claims)
	IF cardinality(ids) = 0 THEN
		RETURN 0;
	END IF;
	-- locking the new owner serialises transfers (and claims) to them, so two
	-- of them cannot both slip under the holding limit
	SELECT * INTO target FROM crm.employee WHERE id = to_employee FOR NO KEY UPDATE;
	IF target.is_pool THEN
		RAISE EXCEPTION 'employee % (%) is a public pool', target.id, crm.clip(target.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Give customers up to a pool with crm.release_customer(id, reason, to_pool), which records why.';
	END IF;
	IF NOT FOUND OR NOT target.active THEN
		RAISE EXCEPTION 'employee % cannot take over % records', to_employee, record_type
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = CASE WHEN target.id IS NULL THEN 'There is no such employee.' ELSE 'The employee is deactivated.' END,
			      HINT = 'Transfer to an active employee.';
	END IF;

	IF record_type = 'customer' THEN
		PERFORM crm.check_holding_limit(target, ids);
	END IF;

	IF keep_old_owner_on_team THEN
		EXECUTE format('INSERT INTO crm.team_member (record_type, record_id, employee_id, access)'
		               ' SELECT %L, id, owner_id, ''edit'' FROM crm.%I WHERE id = ANY ($1) AND owner_id <> $2'
		               ' ON CONFLICT (record_type, record_id, employee_id) DO UPDATE SET access = ''edit'', expires_at = NULL',
		               record_type, record_type)
			USING ids, target.id;
	END IF;
	EXECUTE format('WITH m AS (UPDATE crm.%I SET owner_id = $2 WHERE id = ANY ($1) AND owner_id <> $2 RETURNING id)'
	               ' SELECT array_agg(id) FROM m', record_type)
		INTO moved_ids USING ids, target.id;
	moved := coalesce(cardinality(moved_ids), 0);
	-- an owner needs no team place on their own records
	DELETE FROM crm.team_member t
	 WHERE t.record_type = transfer_records.record_type AND t.record_id = ANY (ids) AND t.employee_id = target.id;
	IF with_related AND record_type = 'customer' THEN
		UPDATE crm.contact SET owner_id = target.id WHERE customer_id = ANY (ids) AND owner_id <> target.id;
	END IF;
	IF moved > 0 THEN
		PERFORM crm.notify(ARRAY[target.id], 'transfer.received',
		                   format('%s %s %s transferred to you', moved, record_type,
		                          CASE WHEN moved = 1 THEN 'record was' ELSE 'records were' END),
		                   NULL, record_type, CASE WHEN moved = 1 THEN moved_ids[1] END);
	END IF;
	RETURN moved;
END
$$;

CREATE FUNCTION crm.transfer(record_type text, ids bigint[], to_employee bigint,
                             with_related boolean DEFAULT true, keep_old_owner_on_team boolean DEFAULT true)
	RETURNS integer AS 'MODULE_PATHNAME', 'crm_transfer' LANGUAGE C;
COMMENT ON FUNCTION crm.transfer(text, bigint[], bigint, boolean, boolean) IS
	'Hand records to another employee (with their contacts, keeping the old owners on the team), within holding limits';
-- crm.convert_lead(): a lead becomes a customer and a contact in one
-- transaction.  It runs as the caller, so the customer and contact pass every
-- check a direct insert does (permissions, scope, codes, dictionaries).  The C
-- entry point (src/context.c) tells duplicate checks which lead is converting;
-- the work is crm.convert_lead_apply(), which only it calls.
CREATE FUNCTION crm.convert_lead(lead_id bigint) RETURNS bigint
	AS 'MODULE_PATHNAME', 'crm_convert_lead' LANGUAGE C STRICT;

CREATE FUNCTION crm.convert_lead_apply(lead_id bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	l        crm.lead;
	customer bigint;
BEGIN
	SELECT * INTO l FROM crm.lead WHERE id = lead_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'lead % is not visible to employee %', lead_id, coalesce(crm.current_employee_id()::text, 'nobody')
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'Convert a lead you own or manage.';
	ELSIF l.status = 'converted' THEN
		RAISE EXCEPTION 'lead % (%) was already converted into customer %', l.id, crm.clip(l.name), l.customer_id
			USING ERRCODE = 'object_not_in_prerequisite_state';
	ELSIF l.status = 'invalid' THEN
		RAISE EXCEPTION 'lead % (%) is marked invalid', l.id, crm.clip(l.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Set its status back to following first.';
	ELSIF NOT crm.has_permission('lead.convert') AND NOT current_setting('is_superuser')::boolean THEN
		RAISE EXCEPTION 'employee % may not convert lead %', crm.current_employee_id(), l.id
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'None of the employee''s roles grants the permission "lead.convert".',
			      HINT = 'Ask an administrator to add "lead.convert" to one of your roles (crm.role_permission).';
	END IF;

	-- a lead with a company becomes a company customer; otherwise the person is the customer
	INSERT INTO crm.customer (name, kind, uscc, source, industry, owner_id)
	VALUES (coalesce(l.company, l.name), CASE WHEN l.company IS NULL THEN 'individual' ELSE 'company' END,
	        l.uscc, l.source, l.industry, l.owner_id)
	RETURNING id INTO customer;
	INSERT INTO crm.contact (customer_id, name, mobile, email, is_decision_maker, owner_id)
	VALUES (customer, l.name, l.mobile, l.email, true, l.owner_id);
	UPDATE crm.lead SET status = 'converted', customer_id = customer, converted_at = now() WHERE id = l.id;
	RETURN customer;
END
$$;
COMMENT ON FUNCTION crm.convert_lead(bigint) IS
	'Turn a lead into a customer and a contact, through the same checks as direct inserts; the lead stays, linked and read-only';

-- Only crm.convert_lead converts: a lead becomes converted, or names a customer,
-- while crm.converting_lead (superuser-only, set by src/context.c) names it, or
-- in crm's own owner-run code (a merge moves the links of converted leads).
CREATE FUNCTION crm.guard_lead_conversion() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.lead'::regclass THEN RAISE 'crm.guard_lead_conversion() runs only on crm.lead, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF current_setting('crm.converting_lead') IS DISTINCT FROM NEW.id::text
	   AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
		RAISE EXCEPTION 'lead % (%) can become a customer only through crm.convert_lead', NEW.id, crm.clip(NEW.name)
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'A lead''s status "converted", its customer and its conversion time are written by the conversion.',
			      HINT = format('SELECT crm.convert_lead(%s);', NEW.id);
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER lead_conversion_new BEFORE INSERT ON crm.lead
	FOR EACH ROW WHEN (NEW.status = 'converted' OR NEW.customer_id IS NOT NULL OR NEW.converted_at IS NOT NULL)
	EXECUTE FUNCTION crm.guard_lead_conversion();
CREATE TRIGGER lead_conversion BEFORE UPDATE OF status, customer_id, converted_at ON crm.lead
	FOR EACH ROW WHEN ((NEW.status = 'converted') <> (OLD.status = 'converted')
	                   OR NEW.customer_id IS DISTINCT FROM OLD.customer_id OR NEW.converted_at IS DISTINCT FROM OLD.converted_at)
	EXECUTE FUNCTION crm.guard_lead_conversion();
-- The operation log (src/oplog.c): one row per record inserted, updated or
-- deleted, with the fields an update changed, written by the crm owner only.
CREATE TABLE crm.oplog (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	at           timestamptz NOT NULL DEFAULT now(),
	record_type  text NOT NULL,
	record_id    bigint NOT NULL,
	action       text NOT NULL,
	employee_id  bigint,
	source       text NOT NULL,
	changes      jsonb,
	record_ids   int8multirange,
	CONSTRAINT oplog_pkey PRIMARY KEY (id),
	CONSTRAINT oplog_record_ids_check CHECK ((record_ids IS NULL) = (action <> 'insert')),
	CONSTRAINT oplog_action_check CHECK (action IN ('insert', 'update', 'delete')),
	CONSTRAINT oplog_source_check CHECK (source IN ('person', 'import', 'job', 'system'))
);
CREATE INDEX oplog_record_idx ON crm.oplog (record_type, record_id, id);
CREATE INDEX oplog_employee_idx ON crm.oplog (employee_id, at DESC);
CREATE INDEX oplog_record_ids_idx ON crm.oplog USING gist (record_ids) WHERE record_ids IS NOT NULL;
COMMENT ON TABLE crm.oplog IS 'Operation log (操作记录): who changed which record, field by field, when and through what';
COMMENT ON COLUMN crm.oplog.changes IS 'update: {"field": [old, new]} for each changed field (updated_at and last_follow_up_at left out); delete: the row as it was';
COMMENT ON COLUMN crm.oplog.employee_id IS 'The acting employee; NULL for a superuser or a job';
COMMENT ON COLUMN crm.oplog.record_ids IS 'insert: every record the statement inserted (record_id is the first); find one with record_ids @> id';

CREATE FUNCTION crm.log_row() RETURNS trigger AS 'MODULE_PATHNAME', 'crm_log_row' LANGUAGE C;
CREATE FUNCTION crm.log_flush() RETURNS trigger AS 'MODULE_PATHNAME', 'crm_log_flush' LANGUAGE C;

DO $log$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['lead', 'customer', 'contact', 'follow_up'] LOOP
		EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON crm.%I'
		               ' FOR EACH ROW EXECUTE FUNCTION crm.log_row()', t || '_log_row', t);
		EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON crm.%I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.log_flush()', t || '_log_flush', t);
	END LOOP;
END
$log$;

-- An entry is visible to whoever can see its record, and to whoever made it.
ALTER TABLE crm.oplog ENABLE ROW LEVEL SECURITY;
CREATE POLICY oplog_read ON crm.oplog FOR SELECT TO crm_user
	USING (employee_id = (SELECT crm.current_employee_id()) OR crm.record_visible(record_type, record_id));
GRANT SELECT ON crm.oplog TO crm_user;

-- A record's timeline: its creation, follow-ups, owner and status changes and
-- every other logged change.  security_invoker: each reader sees the entries
-- of the records they may see.  Creation comes from the records themselves
-- (created_by, created_at), since the log keeps a statement's inserts in one row.
CREATE VIEW crm.timeline WITH (security_invoker = true) AS
SELECT 'lead' AS record_type, l.id AS record_id, l.created_at AS at, 'insert' AS kind, l.created_by AS employee_id,
       NULL::text AS detail, NULL::text AS summary, NULL::jsonb AS changes
  FROM crm.lead l
UNION ALL
SELECT 'customer', c.id, c.created_at, 'insert', c.created_by, NULL, NULL, NULL FROM crm.customer c
UNION ALL
SELECT 'contact', k.id, k.created_at, 'insert', k.created_by, NULL, NULL, NULL FROM crm.contact k
UNION ALL
SELECT f.record_type, f.record_id, f.created_at, 'follow_up', f.created_by, f.method, f.content, NULL
  FROM crm.follow_up f
UNION ALL
SELECT o.record_type, o.record_id, o.at,
       CASE WHEN o.action = 'update' AND o.changes ? 'owner_id' THEN 'owner_change'
            WHEN o.action = 'update' AND o.changes ? 'status_id' THEN 'status_change'
            ELSE o.action END,
       o.employee_id, o.source, NULL, o.changes
  FROM crm.oplog o
 WHERE o.action <> 'insert'
UNION ALL
-- moves into and out of a public pool are in the owner history, not the log
SELECT 'customer', h.customer_id, h.changed_at, 'owner_change', h.changed_by, h.kind, h.reason,
       jsonb_build_object('owner_id', jsonb_build_array(h.from_owner, h.to_owner))
  FROM crm.customer_owner_change h
 WHERE h.kind <> 'transfer';
COMMENT ON VIEW crm.timeline IS
	'Per record: creation, follow-ups, logged changes and pool moves (kind insert, follow_up, update, owner_change, status_change, delete)';
GRANT SELECT ON crm.timeline TO crm_user;
-- Tags (标签) in groups, set by administrators; tagging a record needs to be
-- able to edit it.  Pins (置顶) are each employee's own.
CREATE TABLE crm.tag_group (
	id        bigint GENERATED ALWAYS AS IDENTITY,
	name      text NOT NULL,
	position  integer NOT NULL DEFAULT 0,
	CONSTRAINT tag_group_pkey PRIMARY KEY (id),
	CONSTRAINT tag_group_name_key UNIQUE (name),
	CONSTRAINT tag_group_name_check CHECK (crm.check_length(name, 200, 'tag_group.name') AND btrim(name) <> '')
);
CREATE TABLE crm.tag (
	id        bigint GENERATED ALWAYS AS IDENTITY,
	group_id  bigint NOT NULL,
	name      text NOT NULL,
	color     text,
	position  integer NOT NULL DEFAULT 0,
	CONSTRAINT tag_pkey PRIMARY KEY (id),
	CONSTRAINT tag_group_fkey FOREIGN KEY (group_id) REFERENCES crm.tag_group (id) ON DELETE CASCADE,
	CONSTRAINT tag_name_key UNIQUE (group_id, name),
	CONSTRAINT tag_name_check CHECK (crm.check_length(name, 200, 'tag.name') AND btrim(name) <> ''),
	CONSTRAINT tag_color_check CHECK (color ~ '^#[0-9a-fA-F]{6}$')
);
CREATE TABLE crm.record_tag (
	record_type  text NOT NULL,
	record_id    bigint NOT NULL,
	tag_id       bigint NOT NULL,
	created_by   bigint DEFAULT crm.current_employee_id(),
	created_at   timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT record_tag_pkey PRIMARY KEY (record_type, record_id, tag_id),
	CONSTRAINT record_tag_tag_fkey FOREIGN KEY (tag_id) REFERENCES crm.tag (id) ON DELETE CASCADE,
	CONSTRAINT record_tag_record_type_check CHECK (record_type IN ('lead', 'customer', 'contact'))
);
CREATE INDEX record_tag_tag_idx ON crm.record_tag (tag_id);
CREATE TABLE crm.pin (
	employee_id  bigint NOT NULL DEFAULT crm.current_employee_id(),
	record_type  text NOT NULL,
	record_id    bigint NOT NULL,
	pinned_at    timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT pin_pkey PRIMARY KEY (employee_id, record_type, record_id),
	CONSTRAINT pin_record_type_check CHECK (record_type IN ('lead', 'customer', 'contact'))
);
COMMENT ON TABLE crm.record_tag IS 'Tags on records; visible and writable with the record (writing needs <type>.edit)';
COMMENT ON TABLE crm.pin IS 'Records an employee pinned to the top of their lists; each sees only their own';

DO $tags$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['tag_group', 'tag'] LOOP
		EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OR DELETE ON crm.%I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin(''admin.fields'')', t || '_require_admin', t);
		EXECUTE format('GRANT SELECT, DELETE ON crm.%I TO crm_user', t);
	END LOOP;
END
$tags$;
GRANT INSERT (name, position), UPDATE (name, position) ON crm.tag_group TO crm_user;
GRANT INSERT (group_id, name, color, position), UPDATE (group_id, name, color, position) ON crm.tag TO crm_user;

ALTER TABLE crm.record_tag ENABLE ROW LEVEL SECURITY;
CREATE POLICY record_tag_read ON crm.record_tag FOR SELECT TO crm_user
	USING (crm.record_visible(record_type, record_id));
CREATE POLICY record_tag_write ON crm.record_tag FOR INSERT TO crm_user
	WITH CHECK (crm.record_editable(record_type, record_id));
CREATE POLICY record_tag_remove ON crm.record_tag FOR DELETE TO crm_user
	USING (crm.record_editable(record_type, record_id));
-- created_by and created_at are crm's: a tag's author is whoever put it there
GRANT SELECT, DELETE ON crm.record_tag TO crm_user;
GRANT INSERT (record_type, record_id, tag_id) ON crm.record_tag TO crm_user;

ALTER TABLE crm.pin ENABLE ROW LEVEL SECURITY;
CREATE POLICY pin_own ON crm.pin TO crm_user
	USING (employee_id = crm.current_employee_id())
	WITH CHECK (employee_id = crm.current_employee_id() AND crm.record_visible(record_type, record_id));
-- a pin is the acting employee's, made now, on a record they see; it is removed, not moved
GRANT SELECT, DELETE ON crm.pin TO crm_user;
GRANT INSERT (record_type, record_id) ON crm.pin TO crm_user;
CREATE INDEX pin_record_idx ON crm.pin (record_type, record_id);
-- Custom fields (自定义字段): real, typed columns on lead, customer or contact,
-- described by rows of crm.added_field.  Inserting a row adds the column (and
-- its checks and index); deleting it drops the column.  crm.add_field() and
-- crm.drop_field() are the friendly way to do both.
--
-- The name sorts before contact, customer and lead on purpose: a restore loads
-- tables in name order, and must re-create the columns before their data.
CREATE TABLE crm.added_field (
	record_type  text NOT NULL,
	name         text NOT NULL,
	type         text NOT NULL,
	label        text,
	required     boolean NOT NULL DEFAULT false,
	filterable   boolean NOT NULL DEFAULT false,
	dictionary   text,
	created_at   timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT added_field_pkey PRIMARY KEY (record_type, name),
	CONSTRAINT added_field_record_type_check CHECK (record_type IN ('lead', 'customer', 'contact')),
	CONSTRAINT added_field_name_check CHECK (name ~ '^[a-z][a-z0-9_]{1,40}$'),
	CONSTRAINT added_field_type_check CHECK (type IN
		('text', 'number', 'money', 'date', 'datetime', 'boolean', 'single', 'multiple', 'phone', 'email')),
	CONSTRAINT added_field_dictionary_check CHECK ((type IN ('single', 'multiple')) = (dictionary IS NOT NULL)),
	CONSTRAINT added_field_label_length CHECK (crm.check_length(label, 200, 'added_field.label')),
	CONSTRAINT added_field_dictionary_kind_check CHECK (octet_length(dictionary) <= 30 AND dictionary ~ '^[a-z][a-z0-9_]{0,29}$')
);
COMMENT ON TABLE crm.added_field IS 'Custom fields: each row is a real column of its record table; insert or delete rows to add or drop them';

CREATE FUNCTION crm.added_field_ddl() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	f        crm.added_field;
	coltype  text;
	restoring boolean := crm.restoring();
BEGIN
	IF TG_RELID <> 'crm.added_field'::regclass THEN RAISE 'crm.added_field_ddl() runs only on crm.added_field, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	f := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
	-- the table's checks come after this trigger: say precisely what is wrong first
	IF TG_OP = 'INSERT' THEN
		IF f.record_type IS NULL OR f.record_type <> ALL (ARRAY['lead', 'customer', 'contact']) THEN
			RAISE EXCEPTION 'custom fields cannot be added to % records', crm.clip(f.record_type)
				USING ERRCODE = 'invalid_parameter_value', HINT = 'Add them to lead, customer or contact.';
		ELSIF f.name IS NULL OR f.name !~ '^[a-z][a-z0-9_]{1,40}$' THEN
			RAISE EXCEPTION 'custom field name "%" is not a plain lowercase name', crm.clip(f.name)
				USING ERRCODE = 'invalid_name',
				      HINT = 'Use 2 to 41 lowercase letters, digits and underscores, starting with a letter.';
		ELSIF f.type IS NULL OR f.type <> ALL (ARRAY['text', 'number', 'money', 'date', 'datetime', 'boolean',
		                                            'single', 'multiple', 'phone', 'email']) THEN
			RAISE EXCEPTION 'custom field type "%" does not exist', crm.clip(f.type)
				USING ERRCODE = 'invalid_parameter_value',
				      HINT = 'Types: text, number, money, date, datetime, boolean, single, multiple, phone, email.';
		ELSIF (f.type IN ('single', 'multiple')) <> (f.dictionary IS NOT NULL) THEN
			RAISE EXCEPTION 'custom field "%" of type % %', crm.clip(f.name), f.type,
				CASE WHEN f.dictionary IS NULL THEN 'needs a dictionary' ELSE 'takes no dictionary' END
				USING ERRCODE = 'invalid_parameter_value',
				      HINT = 'Single and multiple choice fields take their options from a dictionary, e.g. dictionary => ''industry''.';
		END IF;
	END IF;
	IF TG_OP = 'DELETE' THEN
		EXECUTE format('ALTER TABLE crm.%I DROP COLUMN %I', f.record_type, f.name);
		DELETE FROM crm.dictionary_column WHERE table_name = f.record_type AND column_name = f.name;
		RETURN OLD;
	END IF;
	IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = format('crm.%I', f.record_type)::regclass
	                                        AND attname = f.name AND NOT attisdropped) THEN
		RAISE EXCEPTION 'crm.% already has a column named "%"', f.record_type, crm.clip(f.name)
			USING ERRCODE = 'duplicate_column',
			      HINT = 'Choose another name for the custom field.';
	END IF;
	IF f.dictionary IS NOT NULL AND NOT EXISTS (SELECT FROM crm.dictionary WHERE kind = f.dictionary) AND NOT restoring THEN
		RAISE EXCEPTION 'custom field "%" names dictionary "%", which has no codes', crm.clip(f.name), crm.clip(f.dictionary)
			USING ERRCODE = 'foreign_key_violation',
			      HINT = 'SELECT DISTINCT kind FROM crm.dictionary lists the dictionaries.';
	END IF;
	coltype := CASE f.type WHEN 'number' THEN 'numeric' WHEN 'money' THEN 'numeric(14,2)' WHEN 'date' THEN 'date'
	                       WHEN 'datetime' THEN 'timestamptz' WHEN 'boolean' THEN 'boolean'
	                       WHEN 'multiple' THEN 'text[]' ELSE 'text' END;
	EXECUTE format('ALTER TABLE crm.%I ADD COLUMN %I %s', f.record_type, f.name, coltype);
	-- staff write the columns they are granted (src/sql/40_records.sql): a custom field is theirs
	EXECUTE format('GRANT INSERT (%2$I), UPDATE (%2$I) ON crm.%1$I TO crm_user', f.record_type, f.name);
	IF f.type = 'email' THEN
		EXECUTE format('ALTER TABLE crm.%I ADD CONSTRAINT %I CHECK (crm.check_email(%I))',
		               f.record_type, f.record_type || '_' || f.name || '_check', f.name);
	ELSIF f.type = 'phone' THEN
		EXECUTE format('ALTER TABLE crm.%I ADD CONSTRAINT %I CHECK (%I ~ ''^\+?[0-9][0-9 -]{4,19}$'')',
		               f.record_type, f.record_type || '_' || f.name || '_check', f.name);
	ELSIF f.type = 'text' THEN
		EXECUTE format('ALTER TABLE crm.%I ADD CONSTRAINT %I CHECK (crm.check_length(%I, 2000, %L))',
		               f.record_type, f.record_type || '_' || f.name || '_check', f.name, f.record_type || '.' || f.name);
	ELSIF f.type = 'money' THEN
		EXECUTE format('ALTER TABLE crm.%I ADD CONSTRAINT %I CHECK (%I >= 0)',
		               f.record_type, f.record_type || '_' || f.name || '_check', f.name);
	END IF;
	IF f.type = 'single' THEN
		INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES (f.record_type, f.name, f.dictionary)
		ON CONFLICT DO NOTHING;
	ELSIF f.type = 'multiple' THEN
		EXECUTE format('ALTER TABLE crm.%I ADD CONSTRAINT %I CHECK (crm.check_codes(%L, %I))',
		               f.record_type, f.record_type || '_' || f.name || '_check', f.dictionary, f.name);
	END IF;
	-- (a restore creates the column before loading any row: NOT NULL holds then too)
	IF f.required THEN
		BEGIN
			EXECUTE format('ALTER TABLE crm.%I ALTER COLUMN %I SET NOT NULL', f.record_type, f.name);
		EXCEPTION WHEN not_null_violation THEN
			RAISE EXCEPTION 'required custom field "%" cannot be added to crm.%, which has rows', crm.clip(f.name), f.record_type
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      DETAIL = 'Existing rows would have no value for it.',
				      HINT = 'Add it as not required, fill it in, then UPDATE crm.added_field SET required = true.';
		END;
	END IF;
	IF f.filterable THEN
		EXECUTE format('CREATE INDEX %I ON crm.%I %s (%I)', f.record_type || '_' || f.name || '_idx', f.record_type,
		               CASE WHEN f.type = 'multiple' THEN 'USING gin' ELSE '' END, f.name);
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER added_field_ddl BEFORE INSERT OR DELETE ON crm.added_field
	FOR EACH ROW EXECUTE FUNCTION crm.added_field_ddl();

-- Switching required or filterable later.
CREATE FUNCTION crm.added_field_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.added_field'::regclass THEN RAISE 'crm.added_field_change() runs only on crm.added_field, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF (NEW.record_type, NEW.name, NEW.type, NEW.dictionary) IS DISTINCT FROM (OLD.record_type, OLD.name, OLD.type, OLD.dictionary) THEN
		RAISE EXCEPTION 'custom field "%" of crm.% cannot change its name, type or dictionary', crm.clip(OLD.name), OLD.record_type
			USING ERRCODE = 'feature_not_supported',
			      HINT = 'Add a new field and copy the values over, then drop this one.';
	END IF;
	IF NEW.required <> OLD.required THEN
		EXECUTE format('ALTER TABLE crm.%I ALTER COLUMN %I %s NOT NULL', NEW.record_type, NEW.name,
		               CASE WHEN NEW.required THEN 'SET' ELSE 'DROP' END);
	END IF;
	IF NEW.filterable <> OLD.filterable THEN
		EXECUTE CASE WHEN NEW.filterable
		             THEN format('CREATE INDEX %I ON crm.%I %s (%I)', NEW.record_type || '_' || NEW.name || '_idx', NEW.record_type,
		                         CASE WHEN NEW.type = 'multiple' THEN 'USING gin' ELSE '' END, NEW.name)
		             ELSE format('DROP INDEX crm.%I', NEW.record_type || '_' || NEW.name || '_idx') END;
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER added_field_change BEFORE UPDATE ON crm.added_field
	FOR EACH ROW EXECUTE FUNCTION crm.added_field_change();

-- Every element of a multiple-choice value is an enabled code of its dictionary.
CREATE FUNCTION crm.check_codes(kind text, codes text[]) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	bad text;
BEGIN
	SELECT c INTO bad FROM unnest(codes) c
	 WHERE NOT EXISTS (SELECT FROM crm.dictionary d WHERE d.kind = check_codes.kind AND d.code = c AND d.enabled)
	 LIMIT 1;
	IF FOUND AND NOT crm.restoring() THEN
		RAISE EXCEPTION '"%" is not an enabled code of dictionary "%"', crm.clip(bad), crm.clip(kind)
			USING ERRCODE = 'foreign_key_violation',
			      HINT = format('Use codes from: SELECT code, label FROM crm.dictionary WHERE kind = %L AND enabled.', kind);
	END IF;
	RETURN true;
END
$$;

-- Who may is checked as the caller (the statement trigger fires first); the
-- DDL then runs as the owner of the crm tables.
CREATE TRIGGER added_field_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.added_field
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('admin.fields');
ALTER FUNCTION crm.added_field_ddl() SECURITY DEFINER;
ALTER FUNCTION crm.added_field_change() SECURITY DEFINER;
GRANT SELECT, DELETE ON crm.added_field TO crm_user;
GRANT INSERT (record_type, name, type, label, required, filterable, dictionary),
      UPDATE (record_type, name, type, label, required, filterable, dictionary)
	ON crm.added_field TO crm_user;

-- The friendly forms.  They run as the caller: crm.added_field's rules decide.
CREATE FUNCTION crm.add_field(record_type text, name text, type text, required boolean DEFAULT false,
                              filterable boolean DEFAULT false, dictionary text DEFAULT NULL, label text DEFAULT NULL)
RETURNS void LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	INSERT INTO crm.added_field (record_type, name, type, required, filterable, dictionary, label)
	VALUES (record_type, name, type, required, filterable, dictionary, label);
END;
CREATE FUNCTION crm.drop_field(record_type text, name text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	DELETE FROM crm.added_field f WHERE f.record_type = drop_field.record_type AND f.name = drop_field.name;
END;
COMMENT ON FUNCTION crm.add_field(text, text, text, boolean, boolean, text, text) IS
	'Add a custom field: a typed column (text, number, money, date, datetime, boolean, single, multiple, phone, email)';
-- Importing customers (seeds 003, 004): COPY the file into a staging table
-- shaped like crm.customer_import (a temporary one is private and fastest),
-- then SELECT * FROM crm.import_customers('that_table').  Every row gets a
-- result in the staging table: ok with the new customer's id, or the SQLSTATE
-- and message that refused it.  A bad row never stops the good ones.
--
-- Rows are checked set-based first (formats, dictionaries, owners and scopes,
-- holding limits); the good ones are then inserted with one statement per
-- table as the importing employee, through every rule a direct insert meets.
-- Should one still fail, the rows are retried one by one, each in its own
-- subtransaction.
CREATE TABLE crm.customer_import (
	line            integer NOT NULL,
	name            text,
	kind            text,
	uscc            text,
	phone           text,
	industry        text,
	source          text,
	level           text,
	owner_id        bigint,
	contact_name    text,
	contact_mobile  text,
	contact_email   text,
	status          text NOT NULL DEFAULT 'pending',
	customer_id     bigint,
	sqlstate        text,
	message         text,
	CONSTRAINT customer_import_pkey PRIMARY KEY (line),
	CONSTRAINT customer_import_status_check CHECK (status IN ('pending', 'ok', 'error'))
);
COMMENT ON TABLE crm.customer_import IS
	'The shape of a staging table for crm.import_customers (CREATE TEMP TABLE t (LIKE crm.customer_import INCLUDING ALL)); holds no rows';
GRANT SELECT ON crm.customer_import TO crm_user;   -- enough for LIKE; nobody writes rows into it

-- crm.import_customers() (C, src/context.c) logs the changes of this, its work,
-- as an import
CREATE FUNCTION crm.import_customers(staging regclass, OUT imported integer, OUT refused integer)
	AS 'MODULE_PATHNAME', 'crm_import_customers' LANGUAGE C STRICT;

CREATE FUNCTION crm.import_customers_apply(staging regclass, OUT imported integer, OUT refused integer)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me          bigint := crm.current_employee_id();
	r           record;
	id          bigint;
	state       text;
	refusal     text;
	msg         text;
	insert_customer constant text :=
		'INSERT INTO crm.customer (name, kind, uscc, phone, industry, source, level, owner_id)'
		' VALUES ($1, coalesce($2, ''company''), $3, $4, $5, $6, $7, $8) RETURNING id';
	insert_contact constant text :=
		'INSERT INTO crm.contact (customer_id, name, mobile, email, is_decision_maker, owner_id)'
		' SELECT $1, coalesce($2, $3), $4, $5, true, $6 WHERE $2 IS NOT NULL OR $4 IS NOT NULL';
BEGIN
	IF NOT crm.has_permission('customer.import') AND NOT current_setting('is_superuser')::boolean THEN
		RAISE EXCEPTION 'employee % may not import customers', coalesce(me::text, 'nobody')
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'Ask an administrator to add "customer.import" to one of your roles (crm.role_permission).';
	END IF;
	-- the import's changes are logged as an import: no code of the caller's may
	-- run inside it, which anything on the staging table that runs when a row
	-- is read or updated would (a trigger, rule, policy, child table, domain,
	-- generated column, expression index or constraint of its own)
	SELECT CASE
	         WHEN k.oid IS NULL THEN 'does not exist'
	         WHEN k.relkind <> 'r' OR k.relispartition THEN 'is not a plain table'
	         WHEN EXISTS (SELECT FROM pg_inherits h WHERE k.oid IN (h.inhparent, h.inhrelid)) THEN 'has child or parent tables'
	         WHEN k.relrowsecurity THEN 'has row-level security'
	         WHEN EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = k.oid) THEN 'has triggers'
	         WHEN EXISTS (SELECT FROM pg_rewrite w WHERE w.ev_class = k.oid) THEN 'has rules'
	         WHEN EXISTS (SELECT FROM pg_attribute a JOIN pg_type y ON y.oid = a.atttypid
	                       WHERE a.attrelid = k.oid AND a.attnum > 0
	                         AND (y.typnamespace <> 'pg_catalog'::regnamespace OR a.attgenerated <> ''))
	              THEN 'has a column of a type outside pg_catalog, or a generated column'
	         WHEN EXISTS (SELECT FROM pg_index i WHERE i.indrelid = k.oid AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL))
	              THEN 'has an index on an expression'
	         WHEN EXISTS (SELECT FROM pg_constraint c WHERE c.conrelid = k.oid AND c.contype <> 'p'
	                         AND pg_get_constraintdef(c.oid) NOT IN (SELECT pg_get_constraintdef(o.oid) FROM pg_constraint o
	                                                                  WHERE o.conrelid = 'crm.customer_import'::regclass))
	              THEN 'has a constraint crm.customer_import does not have'
	       END INTO refusal
	  FROM (SELECT staging) s LEFT JOIN pg_class k ON k.oid = s.staging;
	IF refusal IS NOT NULL THEN
		RAISE EXCEPTION 'staging table % %', staging, refusal
			USING ERRCODE = 'wrong_object_type',
			      DETAIL = 'The import runs no code of the caller''s: its changes are logged as an import.',
			      HINT = 'CREATE TEMP TABLE staging (LIKE crm.customer_import INCLUDING ALL);';
	END IF;

	-- the checks a row can fail, in order; the first failure is its result (its
	-- message is formatted only then: most rows fail nothing)
	EXECUTE format($q$
	UPDATE %1$s i SET status = 'error', sqlstate = v.state,
	       message = CASE v.n
	           WHEN 1 THEN 'name is required'
	           WHEN 2 THEN format('kind "%%s" is neither company nor individual', i.kind)
	           WHEN 3 THEN 'a company customer needs its unified social credit code'
	           WHEN 4 THEN format('"%%s" is not a valid unified social credit code', i.uscc)
	           WHEN 5 THEN 'an individual customer needs a contact mobile number'
	           WHEN 6 THEN format('"%%s" is not a valid mobile number', i.contact_mobile)
	           WHEN 7 THEN format('"%%s" is not a valid e-mail address', i.contact_email)
	           WHEN 8 THEN format('%%s "%%s" is not an enabled code of dictionary "%%s"', v.col, v.code, v.kind)
	           WHEN 9 THEN format('owner %%s is not an active employee', coalesce(i.owner_id, $1))
	           WHEN 10 THEN format('owner %%s is outside the importer''s customer scope', coalesce(i.owner_id, $1))
	       END
	  FROM (SELECT i2.line, f.n, f.state, bad.col, bad.code, bad.kind
	          FROM %1$s i2
	          LEFT JOIN crm.employee own ON own.id = coalesce(i2.owner_id, $1)
	          LEFT JOIN LATERAL (
	                SELECT c.col, c.code, c.kind
	                  FROM (VALUES ('industry', i2.industry, 'industry'), ('source', i2.source, 'customer_source'),
	                               ('level', i2.level, 'customer_level')) c(col, code, kind)
	                 WHERE c.code IS NOT NULL
	                   AND NOT EXISTS (SELECT FROM crm.dictionary d WHERE d.kind = c.kind AND d.code = c.code AND d.enabled)
	                 LIMIT 1) bad ON true
	          CROSS JOIN LATERAL (SELECT t.n, t.state FROM (VALUES
	                (1, coalesce(btrim(i2.name), '') = '', '23514'),
	                (2, coalesce(i2.kind, 'company') NOT IN ('company', 'individual'), '23514'),
	                (3, coalesce(i2.kind, 'company') = 'company' AND i2.uscc IS NULL, '23514'),
	                (4, i2.uscc IS NOT NULL AND NOT crm.uscc_valid(i2.uscc), '23514'),
	                (5, i2.kind = 'individual' AND i2.contact_mobile IS NULL, '23514'),
	                (6, i2.contact_mobile IS NOT NULL AND NOT crm.mobile_valid(i2.contact_mobile), '23514'),
	                (7, i2.contact_email IS NOT NULL AND NOT crm.email_valid(i2.contact_email), '23514'),
	                (8, bad.col IS NOT NULL, '23503'),
	                (9, own.id IS NULL OR NOT own.active, '23503'),
	                (10, NOT $2 AND NOT coalesce(i2.owner_id, $1) = ANY (crm.scope_owners('customer')), '42501')
	              ) t(n, failed, state) WHERE t.failed ORDER BY t.n LIMIT 1) f
	         WHERE i2.status = 'pending') v
	 WHERE i.line = v.line$q$, staging)
	USING me, current_setting('is_superuser')::boolean;

	-- holding limits: rows beyond what each owner may still hold
	EXECUTE format($q$
	UPDATE %1$s i SET status = 'error', sqlstate = '23514',
	       message = format('owner %%s would hold more than their limit of %%s customers', v.owner, v.holding_limit)
	  FROM (SELECT i2.line, e.id AS owner, e.holding_limit,
	               row_number() OVER (PARTITION BY e.id ORDER BY i2.line)
	               + (SELECT count(*) FROM crm.customer c JOIN crm.customer_status s ON s.id = c.status_id
	                   WHERE c.owner_id = e.id AND NOT s.is_final) AS would_hold
	          FROM %1$s i2 JOIN crm.employee e ON e.id = coalesce(i2.owner_id, $1)
	         WHERE i2.status = 'pending' AND e.holding_limit IS NOT NULL) v
	 WHERE i.line = v.line AND v.would_hold > v.holding_limit$q$, staging)
	USING me;

	-- the good rows, in one go; if anything still fails, one by one.  Identity
	-- values follow insertion order, which follows ORDER BY line: the n-th new
	-- id belongs to the n-th pending line.
	BEGIN
		EXECUTE format($q$
		WITH pending AS (
			SELECT line, row_number() OVER (ORDER BY line) AS n FROM %1$s WHERE status = 'pending'
		), inserted AS (
			INSERT INTO crm.customer (name, kind, uscc, phone, industry, source, level, owner_id)
			SELECT s.name, coalesce(s.kind, 'company'), s.uscc, s.phone, s.industry, s.source, s.level, coalesce(s.owner_id, $1)
			  FROM %1$s s WHERE s.status = 'pending' ORDER BY s.line
			RETURNING id
		), numbered AS (
			SELECT id, row_number() OVER (ORDER BY id) AS n FROM inserted
		), done AS (
			UPDATE %1$s s SET status = 'ok', customer_id = numbered.id
			  FROM pending JOIN numbered USING (n)
			 WHERE s.line = pending.line
			RETURNING s.customer_id
		)
		SELECT min(customer_id) FROM done$q$, staging)
		INTO id USING me;
		-- this run's rows are the ok ones from the first new id on
		EXECUTE format($q$
		INSERT INTO crm.contact (customer_id, name, mobile, email, is_decision_maker, owner_id)
		SELECT s.customer_id, coalesce(s.contact_name, s.name), s.contact_mobile, s.contact_email, true, coalesce(s.owner_id, $1)
		  FROM %1$s s
		 WHERE s.status = 'ok' AND s.customer_id >= $2
		   AND (s.contact_name IS NOT NULL OR s.contact_mobile IS NOT NULL)$q$, staging)
		USING me, id;
		-- the individual-contact rule waits for commit: check it while rows can still be refused
		SET CONSTRAINTS crm.customer_individual_contact, crm.contact_individual_contact IMMEDIATE;
	EXCEPTION WHEN OTHERS THEN
		FOR r IN EXECUTE format('SELECT * FROM %s WHERE status = ''pending'' ORDER BY line', staging) LOOP
			BEGIN
				SET CONSTRAINTS crm.customer_individual_contact, crm.contact_individual_contact DEFERRED;
				EXECUTE insert_customer INTO id
					USING r.name, r.kind, r.uscc, r.phone, r.industry, r.source, r.level, coalesce(r.owner_id, me);
				EXECUTE insert_contact
					USING id, r.contact_name, r.name, r.contact_mobile, r.contact_email, coalesce(r.owner_id, me);
				SET CONSTRAINTS crm.customer_individual_contact, crm.contact_individual_contact IMMEDIATE;
				EXECUTE format('UPDATE %s SET status = ''ok'', customer_id = $1 WHERE line = $2', staging) USING id, r.line;
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
				EXECUTE format('UPDATE %s SET status = ''error'', sqlstate = $1, message = $2 WHERE line = $3', staging)
					USING state, msg, r.line;
			END;
		END LOOP;
	END;

	SET CONSTRAINTS crm.customer_individual_contact, crm.contact_individual_contact DEFERRED;
	EXECUTE format('SELECT count(*) FILTER (WHERE status = ''ok''), count(*) FILTER (WHERE status = ''error'') FROM %s',
	               staging) INTO imported, refused;
END
$$;
COMMENT ON FUNCTION crm.import_customers(regclass) IS
	'Import the pending rows of a staging table shaped like crm.customer_import; each row gets ok and its customer id, or the SQLSTATE and message that refused it';
-- Exports: views shaped for a spreadsheet, with codes turned into labels.
-- security_invoker: each reader gets the rows of their own scope; and
-- reading them needs the <type>.export permission.

CREATE FUNCTION crm.require_permission(action text) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF NOT crm.has_permission(action) AND NOT current_setting('is_superuser')::boolean THEN
		RAISE EXCEPTION 'employee % lacks the permission "%"', coalesce(crm.current_employee_id()::text, 'nobody'), crm.clip(action)
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'None of the employee''s roles grants it.',
			      HINT = format('Ask an administrator to add "%s" to one of your roles (crm.role_permission).', crm.clip(action));
	END IF;
	RETURN true;
END
$$;
COMMENT ON FUNCTION crm.require_permission(text) IS 'True, or an insufficient_privilege error naming the missing permission';

CREATE VIEW crm.customer_export WITH (security_invoker = true) AS
SELECT c.id, c.name, CASE c.kind WHEN 'company' THEN '企业' ELSE '个人' END AS kind, c.uscc, c.phone,
       ind.label AS industry, src.label AS source, lvl.label AS level, st.name AS status,
       o.name AS owner, d.name AS department, c.locked,
       k.name AS contact, k.mobile AS contact_mobile, k.email AS contact_email,
       c.last_follow_up_at, c.created_at, c.updated_at
  FROM crm.customer c
  JOIN crm.employee o ON o.id = c.owner_id
  JOIN crm.department d ON d.id = o.department_id
  JOIN crm.customer_status st ON st.id = c.status_id
  LEFT JOIN crm.dictionary ind ON ind.kind = 'industry' AND ind.code = c.industry
  LEFT JOIN crm.dictionary src ON src.kind = 'customer_source' AND src.code = c.source
  LEFT JOIN crm.dictionary lvl ON lvl.kind = 'customer_level' AND lvl.code = c.level
  LEFT JOIN LATERAL (SELECT name, mobile, email FROM crm.contact WHERE customer_id = c.id
                      ORDER BY is_decision_maker DESC, id LIMIT 1) k ON true
 WHERE crm.require_permission('customer.export');

CREATE VIEW crm.contact_export WITH (security_invoker = true) AS
SELECT k.id, k.name, k.mobile, k.email, k.title, k.is_decision_maker, c.name AS customer, o.name AS owner,
       k.created_at, k.updated_at
  FROM crm.contact k
  JOIN crm.customer c ON c.id = k.customer_id
  JOIN crm.employee o ON o.id = k.owner_id
 WHERE crm.require_permission('contact.export');

CREATE VIEW crm.lead_export WITH (security_invoker = true) AS
SELECT l.id, l.name, l.company, l.uscc, l.mobile, l.email, src.label AS source, ind.label AS industry,
       l.requirement, l.expected_amount, l.status, o.name AS owner, l.customer_id, l.converted_at, l.created_at
  FROM crm.lead l
  JOIN crm.employee o ON o.id = l.owner_id
  LEFT JOIN crm.dictionary src ON src.kind = 'customer_source' AND src.code = l.source
  LEFT JOIN crm.dictionary ind ON ind.kind = 'industry' AND ind.code = l.industry
 WHERE crm.require_permission('lead.export');

GRANT SELECT ON crm.customer_export, crm.contact_export, crm.lead_export TO crm_user;

-- Attachments (附件): metadata of files kept elsewhere (object storage), on
-- any record; visible with the record, added by whoever may edit it (a
-- follow-up: its author).
CREATE TABLE crm.attachment (
	id            bigint GENERATED ALWAYS AS IDENTITY,
	record_type   text NOT NULL,
	record_id     bigint NOT NULL,
	file_name     text NOT NULL,
	size_bytes    bigint NOT NULL,
	content_type  text NOT NULL,
	storage_key   text NOT NULL,
	created_by    bigint DEFAULT crm.current_employee_id(),
	created_at    timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT attachment_pkey PRIMARY KEY (id),
	CONSTRAINT attachment_storage_key_key UNIQUE (storage_key),
	CONSTRAINT attachment_record_type_check CHECK (record_type IN ('lead', 'customer', 'contact', 'follow_up')),
	CONSTRAINT attachment_file_name_check CHECK (crm.check_length(file_name, 255, 'attachment.file_name')
		AND btrim(file_name) <> '' AND file_name !~ '[/\\]'),
	CONSTRAINT attachment_size_check CHECK (size_bytes >= 0),
	CONSTRAINT attachment_content_type_check CHECK (crm.check_length(content_type, 255, 'attachment.content_type')
		AND content_type ~ '^[a-z]+/[a-zA-Z0-9.+-]+$'),
	CONSTRAINT attachment_storage_key_length CHECK (crm.check_length(storage_key, 1024, 'attachment.storage_key'))
);
CREATE INDEX attachment_record_idx ON crm.attachment (record_type, record_id);
COMMENT ON TABLE crm.attachment IS 'Files on records: name, size, content type and the key of the object in the file store';
ALTER TABLE crm.attachment ENABLE ROW LEVEL SECURITY;
CREATE POLICY attachment_read ON crm.attachment FOR SELECT TO crm_user
	USING (crm.record_visible(record_type, record_id));
CREATE POLICY attachment_add ON crm.attachment FOR INSERT TO crm_user
	WITH CHECK (crm.record_editable(record_type, record_id));
CREATE POLICY attachment_remove ON crm.attachment FOR DELETE TO crm_user
	USING (created_by = crm.current_employee_id() OR crm.record_editable(record_type, record_id));
-- the id, author and time are crm's
GRANT SELECT, DELETE ON crm.attachment TO crm_user;
GRANT INSERT (record_type, record_id, file_name, size_bytes, content_type, storage_key) ON crm.attachment TO crm_user;
-- Notifications: the in-app inbox, the IM channels and the deliveries the
-- background worker sends (src/worker.c).  Everything a notification needs is
-- written in the business transaction (an outbox): a rolled-back change
-- notifies nobody.  The business transaction writes only the inbox row; the
-- worker turns it into one delivery per channel (crm.im_expand).

-- The events crm emits, shipped with crm (read-only, like crm.permission).
CREATE TABLE crm.notification_event (
	event        text NOT NULL,
	description  text NOT NULL,
	CONSTRAINT notification_event_pkey PRIMARY KEY (event)
);
INSERT INTO crm.notification_event (event, description) VALUES
	('transfer.received', 'Records were transferred to you'),
	('handover.received', 'A departing colleague''s work was handed over to you'),
	('team.added',        'You were added to a record''s team'),
	('*',                 'Every event without a preference of its own (preferences only)');
GRANT SELECT ON crm.notification_event TO crm_user;

-- Who else hears of an event about a record, by rule: a DBA adds rows, e.g.
-- ('transfer.received', 'superior') tells the new owner's superior too.
CREATE TABLE crm.notification_rule (
	event   text NOT NULL,
	rule    text NOT NULL,
	CONSTRAINT notification_rule_pkey PRIMARY KEY (event, rule),
	CONSTRAINT notification_rule_event_fkey FOREIGN KEY (event) REFERENCES crm.notification_event (event),
	CONSTRAINT notification_rule_event_check CHECK (event <> '*'),
	CONSTRAINT notification_rule_rule_check CHECK (rule IN ('owner', 'superior', 'leader', 'team'))
);
COMMENT ON TABLE crm.notification_rule IS
	'Extra recipients of an event about a record: its owner, the owner''s superior, the leader of the owner''s department, its team';
CREATE TRIGGER notification_rule_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.notification_rule
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('admin.im');
GRANT SELECT, INSERT, UPDATE, DELETE ON crm.notification_rule TO crm_user;

-- The employees a rule names for a record (lead, customer or contact so far;
-- later record types join as their tables arrive).
CREATE FUNCTION crm.record_recipients(record_type text, record_id bigint, rules text[]) RETURNS bigint[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owner bigint;
BEGIN
	IF record_type NOT IN ('lead', 'customer', 'contact') THEN
		RETURN '{}';
	END IF;
	-- the table name comes from the list above, never from the caller as is
	EXECUTE format('SELECT owner_id FROM crm.%I WHERE id = $1', record_type) INTO owner USING record_id;
	RETURN ARRAY(
		SELECT owner WHERE 'owner' = ANY (rules) AND owner IS NOT NULL
		UNION SELECT e.superior_id FROM crm.employee e WHERE 'superior' = ANY (rules) AND e.id = owner AND e.superior_id IS NOT NULL
		UNION SELECT d.leader_id FROM crm.employee e JOIN crm.department d ON d.id = e.department_id
		       WHERE 'leader' = ANY (rules) AND e.id = owner AND d.leader_id IS NOT NULL
		UNION SELECT t.employee_id FROM crm.team_member t
		       WHERE 'team' = ANY (rules) AND t.record_type = record_recipients.record_type
		         AND t.record_id = record_recipients.record_id AND (t.expires_at IS NULL OR t.expires_at > now()));
END
$$;
COMMENT ON FUNCTION crm.record_recipients(text, bigint, text[]) IS
	'The employees the rules (owner, superior, leader, team) name for a record';

CREATE TABLE crm.notification (
	id            bigint GENERATED ALWAYS AS IDENTITY,
	recipient_id  bigint NOT NULL,
	event         text NOT NULL,
	title         text NOT NULL,
	body          text,
	record_type   text,
	record_id     bigint,
	created_at    timestamptz NOT NULL DEFAULT now(),
	read_at       timestamptz,
	im_pending    boolean NOT NULL DEFAULT false,
	CONSTRAINT notification_pkey PRIMARY KEY (id),
	CONSTRAINT notification_event_check CHECK (event <> '*'),
	-- what a phone shows of a message, and what the IM platforms take: a
	-- title is never cut (a DingTalk work notice repeats it within 2048 bytes,
	-- which 200 characters of 4 bytes fit twice), a body whole by the Feishu
	-- app and robot and the DingTalk robot (20 KB), and cut with "…" by WeCom
	-- (4096 bytes) and the DingTalk work notice (src/im_payload.c)
	CONSTRAINT notification_title_length CHECK (crm.check_length(title, 200, 'notification.title')),
	CONSTRAINT notification_body_length CHECK (crm.check_length(body, 2000, 'notification.body'))
);
-- Only crm.notify() writes here; it takes recipients from crm.employee and
-- checks the event once per call, where foreign keys would check every row.
-- The texts crm builds quote names through crm.clip() and list items through
-- crm.notification_lines(), so that they always fit.
CREATE INDEX notification_inbox_idx ON crm.notification (recipient_id, created_at DESC) WHERE read_at IS NULL;
CREATE INDEX notification_recipient_idx ON crm.notification (recipient_id, created_at DESC);
-- a deleted record's notifications lose their link (src/sql/96_record_links.sql)
CREATE INDEX notification_record_idx ON crm.notification (record_type, record_id);
-- what the worker has yet to turn into deliveries
CREATE INDEX notification_im_pending_idx ON crm.notification (id) WHERE im_pending;
COMMENT ON TABLE crm.notification IS 'The in-app inbox: one row per recipient and event; read_at marks it read';
ALTER TABLE crm.notification ENABLE ROW LEVEL SECURITY;
CREATE POLICY notification_own ON crm.notification FOR SELECT TO crm_user
	USING (recipient_id = (SELECT crm.current_employee_id()));
CREATE POLICY notification_mark ON crm.notification FOR UPDATE TO crm_user
	USING (recipient_id = (SELECT crm.current_employee_id()));
GRANT SELECT ON crm.notification TO crm_user;
GRANT UPDATE (read_at) ON crm.notification TO crm_user;

-- Each employee chooses, per event ('*' for all the others): in-app only,
-- in-app and an IM app message, or nothing.  Without a row: in-app and app.
CREATE TABLE crm.notification_preference (
	employee_id  bigint NOT NULL DEFAULT crm.current_employee_id(),
	event        text NOT NULL DEFAULT '*',
	delivery     text NOT NULL,
	CONSTRAINT notification_preference_pkey PRIMARY KEY (employee_id, event),
	CONSTRAINT notification_preference_employee_fkey FOREIGN KEY (employee_id) REFERENCES crm.employee (id),
	CONSTRAINT notification_preference_delivery_check CHECK (delivery IN ('inapp', 'app', 'none')),
	CONSTRAINT notification_preference_event_fkey FOREIGN KEY (event) REFERENCES crm.notification_event (event)
);
CREATE INDEX notification_preference_event_idx ON crm.notification_preference (event);
ALTER TABLE crm.notification_preference ENABLE ROW LEVEL SECURITY;
CREATE POLICY notification_preference_own ON crm.notification_preference TO crm_user
	USING (employee_id = (SELECT crm.current_employee_id()))
	WITH CHECK (employee_id = (SELECT crm.current_employee_id()));
GRANT SELECT, INSERT, UPDATE, DELETE ON crm.notification_preference TO crm_user;

-- IM channels: a robot posts to a group, an app messages employees by their IM id.
CREATE TABLE crm.im_channel (
	id               bigint GENERATED ALWAYS AS IDENTITY,
	name             text NOT NULL,
	platform         text NOT NULL,
	kind             text NOT NULL,
	webhook_url      text,
	secret           text,
	app_id           text,
	app_secret       text,
	agent_id         text,
	api_base         text NOT NULL,
	rate_per_minute  integer NOT NULL,
	events           text[] NOT NULL DEFAULT '{}',
	enabled          boolean NOT NULL DEFAULT true,
	CONSTRAINT im_channel_pkey PRIMARY KEY (id),
	CONSTRAINT im_channel_name_key UNIQUE (name),
	CONSTRAINT im_channel_platform_check CHECK (platform IN ('wecom', 'feishu', 'dingtalk')),
	CONSTRAINT im_channel_kind_check CHECK (kind IN ('robot', 'app')),
	CONSTRAINT im_channel_robot_check CHECK (kind <> 'robot' OR webhook_url IS NOT NULL),
	CONSTRAINT im_channel_app_check CHECK (kind <> 'app' OR (app_id IS NOT NULL AND app_secret IS NOT NULL)),
	CONSTRAINT im_channel_url_check CHECK (api_base ~ '^https?://' AND (webhook_url IS NULL OR webhook_url ~ '^https?://')),
	CONSTRAINT im_channel_rate_check CHECK (rate_per_minute BETWEEN 1 AND 1000000),
	CONSTRAINT im_channel_agent_check CHECK (kind <> 'app' OR platform = 'feishu' OR agent_id ~ '^[1-9][0-9]{0,17}$'),
	CONSTRAINT im_channel_events_check CHECK (kind = 'robot' OR events = '{}'),
	CONSTRAINT im_channel_name_length CHECK (crm.check_length(name, 200, 'im_channel.name')),
	CONSTRAINT im_channel_api_base_length CHECK (crm.check_length(api_base, 2048, 'im_channel.api_base')),
	CONSTRAINT im_channel_app_id_length CHECK (crm.check_length(app_id, 1024, 'im_channel.app_id')),
	-- plain checks: their messages quote no secret (nor the webhook's key)
	CONSTRAINT im_channel_secrets_length CHECK (octet_length(webhook_url) <= 2048
		AND octet_length(secret) <= 1024 AND octet_length(app_secret) <= 1024),
	CONSTRAINT im_channel_agent_id_length CHECK (crm.check_length(agent_id, 64, 'im_channel.agent_id'))
);
COMMENT ON TABLE crm.im_channel IS 'WeCom, Feishu and DingTalk robots and apps; secrets are readable by crm_admin only';
COMMENT ON COLUMN crm.im_channel.events IS 'Robots: the events posted to the group (''*'': all); apps message each recipient';
-- the platforms' hosts and limits unless a row says otherwise (docs/im-platforms.md)
CREATE FUNCTION crm.im_channel_defaults() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	unknown text;
BEGIN
	IF TG_RELID <> 'crm.im_channel'::regclass THEN RAISE 'crm.im_channel_defaults() runs only on crm.im_channel, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	SELECT string_agg(x, ', ') INTO unknown
	  FROM unnest(NEW.events) x WHERE NOT EXISTS (SELECT FROM crm.notification_event e WHERE e.event = x);
	IF unknown IS NOT NULL THEN
		RAISE EXCEPTION 'IM channel "%" names unknown events: %', crm.clip(NEW.name), crm.clip(unknown)
			USING ERRCODE = 'foreign_key_violation',
			      HINT = 'The events are the rows of crm.notification_event; ''*'' is every event.';
	END IF;
	NEW.api_base := coalesce(rtrim(NEW.api_base, '/'), CASE NEW.platform WHEN 'wecom' THEN 'https://qyapi.weixin.qq.com'
	                                                          WHEN 'feishu' THEN 'https://open.feishu.cn'
	                                                          ELSE 'https://oapi.dingtalk.com' END);
	NEW.rate_per_minute := coalesce(NEW.rate_per_minute, CASE WHEN NEW.kind = 'app' THEN 600
	                                                          WHEN NEW.platform = 'feishu' THEN 100 ELSE 20 END);
	RETURN NEW;
END
$$;
CREATE TRIGGER im_channel_defaults BEFORE INSERT OR UPDATE ON crm.im_channel
	FOR EACH ROW EXECUTE FUNCTION crm.im_channel_defaults();
CREATE TRIGGER im_channel_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.im_channel
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('admin.im');
-- holders of admin.im configure channels but, like everyone outside
-- crm_admin, write secrets without reading them back; and who cannot read a
-- channel's secrets cannot change where, or to which platform, they are sent
GRANT SELECT (id, name, platform, kind, api_base, rate_per_minute, events, enabled) ON crm.im_channel TO crm_user;
GRANT DELETE ON crm.im_channel TO crm_user;
GRANT INSERT (name, platform, kind, webhook_url, secret, app_id, app_secret, agent_id, api_base, rate_per_minute,
              events, enabled),
      UPDATE (name, secret, app_id, app_secret, agent_id, rate_per_minute, events, enabled)
	ON crm.im_channel TO crm_user;
GRANT SELECT, UPDATE (platform, kind, api_base, webhook_url) ON crm.im_channel TO crm_admin;

-- the signature a Feishu or DingTalk robot expects (src/im_sign.c)
CREATE FUNCTION crm.im_robot_sign(platform text, secret text, ts bigint) RETURNS text
	AS 'MODULE_PATHNAME', 'crm_im_robot_sign_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.im_robot_sign(text, text, bigint) IS
	'Robot signature: feishu (ts in seconds, for the JSON body) or dingtalk (ts in ms, percent-encoded for the query)';

CREATE FUNCTION crm.im_payload(platform text, kind text, recipient text, agent_id text,
                               title text, body text, idempotency_key text) RETURNS text
	AS 'MODULE_PATHNAME', 'crm_im_payload_sql' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION crm.im_payload(text, text, text, text, text, text, text) IS
	'IM message body (compact JSON) for a wecom/feishu/dingtalk robot or app; the body is cut to the platform''s byte limit and ends with …';

CREATE TABLE crm.im_delivery (
	id               bigint GENERATED ALWAYS AS IDENTITY,
	notification_id  bigint NOT NULL,
	channel_id       bigint NOT NULL,
	status           text NOT NULL DEFAULT 'pending',
	attempts         integer NOT NULL DEFAULT 0,
	next_attempt_at  timestamptz NOT NULL DEFAULT now(),
	last_error       text,
	last_code        text,
	idempotency_key  uuid NOT NULL DEFAULT gen_random_uuid(),
	sent_at          timestamptz,
	sent_in          bigint,
	CONSTRAINT im_delivery_pkey PRIMARY KEY (id),
	CONSTRAINT im_delivery_status_check CHECK (status IN ('pending', 'sent', 'failed', 'dead'))
);
-- No foreign keys: only crm.im_expand() writes deliveries, taking
-- notifications and channels from the rows it reads.  Checking them per row
-- cost 0.25 s per 100,000 deliveries for the channel; for the notification, a
-- check planned while the inbox was small seq-scans it for every delivery of a
-- large batch (100 events to 200 employees: 0.5 s became 6 s).  Random
-- idempotency keys need no unique index to stay unique.
CREATE INDEX im_delivery_due_idx ON crm.im_delivery (channel_id, next_attempt_at) WHERE status IN ('pending', 'failed');
-- what a foreign key's ON DELETE CASCADE would do for a deleted channel
CREATE FUNCTION crm.im_channel_deleted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.im_channel'::regclass THEN RAISE 'crm.im_channel_deleted() runs only on crm.im_channel, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	DELETE FROM crm.im_delivery d USING deleted c WHERE d.channel_id = c.id;
	RETURN NULL;
END
$$;
CREATE TRIGGER im_channel_deleted AFTER DELETE ON crm.im_channel
	REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION crm.im_channel_deleted();
COMMENT ON TABLE crm.im_delivery IS 'One IM message per notification and channel, sent by the worker';
COMMENT ON COLUMN crm.im_delivery.status IS 'pending; failed (retried at next_attempt_at); sent; dead (last_code, last_error say why)';
COMMENT ON COLUMN crm.im_delivery.last_code IS 'The platform''s error code of the last failed attempt ("93000", "88/40014", "http 502", "transport")';
COMMENT ON COLUMN crm.im_delivery.sent_in IS 'The delivery whose request carried this one: itself, or a digest''s first';
GRANT SELECT ON crm.im_delivery TO crm_admin;
-- to send dead letters again once their cause is fixed
GRANT UPDATE (status, attempts, next_attempt_at) ON crm.im_delivery TO crm_admin;

-- What each channel has queued, sent and given up, for a DBA or a dashboard.
CREATE VIEW crm.im_channel_status AS
SELECT c.id AS channel_id, c.name, c.platform, c.kind, c.enabled,
       count(*) FILTER (WHERE d.status = 'pending') AS pending,
       count(*) FILTER (WHERE d.status = 'failed') AS failing,
       count(*) FILTER (WHERE d.status = 'sent') AS sent,
       count(*) FILTER (WHERE d.status = 'dead') AS dead,
       min(d.next_attempt_at) FILTER (WHERE d.status IN ('pending', 'failed')) AS next_attempt_at,
       max(d.sent_at) AS last_sent_at,
       (array_agg(d.last_code ORDER BY d.id DESC) FILTER (WHERE d.status IN ('failed', 'dead')))[1] AS last_code
  FROM crm.im_channel c
  LEFT JOIN crm.im_delivery d ON d.channel_id = c.id
 GROUP BY c.id;
COMMENT ON VIEW crm.im_channel_status IS 'Per IM channel: deliveries pending, failing (to be retried), sent and dead, and the latest error code';
GRANT SELECT ON crm.im_channel_status TO crm_admin;

-- Wake the notification worker when the calling transaction commits.
CREATE FUNCTION crm.im_wake() RETURNS void
	AS 'MODULE_PATHNAME', 'crm_im_wake' LANGUAGE C VOLATILE;

-- a switch for maintenance windows: the worker sends nothing while it is on,
-- and notifications keep queueing
ALTER TABLE crm.settings ADD COLUMN im_paused boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN crm.settings.im_paused IS 'While true the notification worker sends nothing; the outbox keeps filling';
GRANT UPDATE (im_paused) ON crm.settings TO crm_user;
-- a trigger for whatever gives the worker work without crm.notify
CREATE FUNCTION crm.wake_worker() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> ALL ('{crm.directory_sync,crm.settings}'::regclass[]) THEN RAISE 'crm.wake_worker() runs only on crm.directory_sync, crm.settings, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	PERFORM crm.im_wake();
	RETURN NULL;
END
$$;
CREATE TRIGGER settings_im_resumed AFTER UPDATE OF im_paused ON crm.settings
	FOR EACH ROW WHEN (OLD.im_paused AND NOT NEW.im_paused) EXECUTE FUNCTION crm.wake_worker();

-- crm.notify(): the one way events become notifications.  Called by crm's own
-- functions and triggers (as the table owner); per recipient it honours the
-- preference and writes the inbox row, marked im_pending when an IM channel
-- may want it, and wakes the worker at commit.  The worker expands those rows
-- into deliveries (crm.im_expand), so the business transaction writes one row
-- per recipient.  In C (src/notify.c): it runs per transfer and per reminder.
-- A body listing items, one a line: as many as fit notification.body (1960
-- characters leave room for the last line), then how many more there are.
CREATE FUNCTION crm.notification_lines(items text[]) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
RETURN (SELECT nullif(concat_ws(E'\n', string_agg(l.item, E'\n' ORDER BY l.n) FILTER (WHERE l.upto <= 1960),
                                CASE WHEN max(l.upto) > 1960
                                     THEN format('… and %s more', count(*) FILTER (WHERE l.upto > 1960)) END), '')
          FROM (SELECT u.item, u.n, sum(length(u.item) + 1) OVER (ORDER BY u.n) AS upto
                  FROM unnest(items) WITH ORDINALITY u(item, n) WHERE u.item IS NOT NULL) l);
COMMENT ON FUNCTION crm.notification_lines(text[]) IS
	'The items, one a line, as many as a notification body holds, then "… and N more"';

CREATE FUNCTION crm.notify(recipients bigint[], event text, title text, body text,
                           record_type text DEFAULT NULL, record_id bigint DEFAULT NULL) RETURNS integer
	AS 'MODULE_PATHNAME', 'crm_notify' LANGUAGE C VOLATILE;
-- what crm.notify caches per backend: rebuilt in every backend after a change
CREATE TRIGGER im_channel_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.im_channel
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
CREATE TRIGGER notification_preference_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON crm.notification_preference FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
CREATE TRIGGER notification_rule_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON crm.notification_rule FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
COMMENT ON FUNCTION crm.notify(bigint[], text, text, text, text, bigint) IS
	'Write the inbox rows of one event for its recipients and wake the IM worker (crm''s own code only)';

-- The worker's first step each round: pending notifications become one
-- delivery per channel that wants them.  A robot posts the events it lists to
-- its group; an app messages recipients who chose "app" and have an id on its
-- platform.  Preferences are read now, so a change made meanwhile counts.
CREATE FUNCTION crm.im_expand(max_notifications integer) RETURNS integer
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	WITH taken AS (
		UPDATE crm.notification n SET im_pending = false
		 WHERE n.id IN (SELECT p.id FROM crm.notification p WHERE p.im_pending
		                 ORDER BY p.id LIMIT im_expand.max_notifications FOR UPDATE SKIP LOCKED)
		RETURNING n.id, n.recipient_id, n.event
	), deliveries AS (
		INSERT INTO crm.im_delivery (notification_id, channel_id)
		SELECT t.id, c.id
		  FROM taken t
		  JOIN crm.employee e ON e.id = t.recipient_id
		  LEFT JOIN crm.notification_preference own ON own.employee_id = e.id AND own.event = t.event
		  LEFT JOIN crm.notification_preference every ON every.employee_id = e.id AND every.event = '*'
		  JOIN crm.im_channel c ON c.enabled AND CASE c.kind
		       WHEN 'robot' THEN t.event = ANY (c.events) OR '*' = ANY (c.events)
		       ELSE coalesce(own.delivery, every.delivery, 'app') = 'app'
		        AND CASE c.platform WHEN 'wecom' THEN e.wecom_userid WHEN 'feishu' THEN e.feishu_open_id
		                            ELSE e.dingtalk_userid END IS NOT NULL END
		 ORDER BY t.id, c.id	-- deliveries in the order things happened
		RETURNING 1
	)
	SELECT count(*)::integer FROM taken;
END;
COMMENT ON FUNCTION crm.im_expand(integer) IS
	'Turn up to max_notifications pending notifications into IM deliveries (the worker calls it)';

CREATE FUNCTION crm.mark_read(notification_id bigint) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	WITH marked AS (
		UPDATE crm.notification SET read_at = now() WHERE id = mark_read.notification_id AND read_at IS NULL
		RETURNING 1
	)
	SELECT count(*) > 0 FROM marked;
END;
COMMENT ON FUNCTION crm.mark_read(bigint) IS 'Mark one of my notifications read; false if it was not unread or not mine';

-- Collaborators learn they were added by someone else: added_by tells, since
-- crm.current_employee_id() in a SECURITY DEFINER function is nobody.
-- (Transfers and handovers notify from crm.transfer_records and
-- crm.handover_employee.)
CREATE FUNCTION crm.notify_team_added() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
BEGIN
	IF TG_RELID <> 'crm.team_member'::regclass THEN RAISE 'crm.notify_team_added() runs only on crm.team_member, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- restores run with row_security off (which makes anyone under row-level
	-- security fail): replaying team entries is no news
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	FOR r IN SELECT record_type, record_id, access, array_agg(employee_id) AS who
	           FROM added WHERE employee_id IS DISTINCT FROM added_by
	          GROUP BY record_type, record_id, access LOOP
		PERFORM crm.notify(r.who, 'team.added', format('You were added to %s %s', r.record_type, r.record_id),
		                   format('Access: %s', r.access), r.record_type, r.record_id);
	END LOOP;
	RETURN NULL;
END
$$;
CREATE TRIGGER team_member_notify AFTER INSERT ON crm.team_member
	REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION crm.notify_team_added();
-- Keyword search for IM bots (seed 002: "找客户, 找线索, 找联系人"): what the
-- acting employee may see among customers, leads and contacts, with counts, for
-- an HTTP layer to answer a bot.  SECURITY INVOKER: row-level security decides.
CREATE FUNCTION crm.bot_search(keyword text, max_rows integer DEFAULT 5)
	RETURNS TABLE (record_type text, total bigint, id bigint, label text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pattern text;
BEGIN
	-- before any work: no name, phone or code crm keeps is longer (docs/records.md)
	IF length(keyword) > 200 THEN
		RAISE EXCEPTION 'a bot search keyword has at most 200 characters, not %', length(keyword)
			USING ERRCODE = 'string_data_right_truncation',
			      DETAIL = format('The keyword begins "%s".', crm.clip(keyword)),
			      HINT = 'Send part of a name, a phone or mobile number, or a credit code.';
	END IF;
	keyword := btrim(keyword);
	IF keyword IS NULL OR length(keyword) < 2 THEN
		RAISE EXCEPTION 'a bot search needs a keyword of at least 2 characters, not "%"', coalesce(keyword, '')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Send part of a name, a phone or mobile number, or a credit code.';
	END IF;
	IF max_rows IS NULL OR max_rows NOT BETWEEN 0 AND 50 THEN
		RAISE EXCEPTION 'max_rows must be between 0 and 50, not %', max_rows
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'A bot shows a few rows; 0 returns the counts only.';
	END IF;
	-- the keyword is matched literally: LIKE's wildcards in it are escaped
	pattern := '%' || replace(replace(replace(keyword, '\', '\\'), '%', '\%'), '_', '\_') || '%';
	RETURN QUERY
	WITH hits AS (
		SELECT 'customer' AS t, c.id, c.name AS label, c.updated_at AS at
		  FROM crm.customer c
		 WHERE c.name ILIKE pattern OR c.phone LIKE pattern OR c.uscc = upper(keyword)
		UNION ALL
		SELECT 'lead', l.id, concat_ws(' · ', l.name, l.company), l.updated_at
		  FROM crm.lead l
		 WHERE l.name ILIKE pattern OR l.company ILIKE pattern OR l.mobile LIKE pattern OR l.uscc = upper(keyword)
		UNION ALL
		SELECT 'contact', k.id, concat_ws(' · ', k.name, k.mobile), k.updated_at
		  FROM crm.contact k
		 WHERE k.name ILIKE pattern OR k.mobile LIKE pattern OR k.email ILIKE pattern
	), ranked AS (
		SELECT h.*, count(*) OVER w AS n, row_number() OVER (w ORDER BY h.at DESC, h.id DESC) AS pos
		  FROM hits h
		WINDOW w AS (PARTITION BY h.t)
	)
	-- one row per type even without hits, so that a bot can say "none found"
	SELECT ty.t, coalesce(r.n, 0), CASE WHEN max_rows > 0 THEN r.id END, CASE WHEN max_rows > 0 THEN r.label END
	  FROM unnest(ARRAY['customer', 'lead', 'contact']) WITH ORDINALITY ty(t, o)
	  LEFT JOIN ranked r ON r.t = ty.t AND r.pos <= greatest(max_rows, 1)
	 ORDER BY ty.o, r.pos;
END
$$;
COMMENT ON FUNCTION crm.bot_search(text, integer) IS
	'Customers, leads and contacts the acting employee may see that match a keyword: per type the total and the newest max_rows';
-- Duplicate checks, part two: rules as rows, checked on every
-- insert and update of leads, customers and contacts, after the statement,
-- with the keys of src/sql/45_duplicates.sql.

-- What each record's fields are compared as (a class), and where each class
-- is found.  Shipped with crm, read-only: rules name fields, this maps them.
CREATE TABLE crm.dedupe_field (
	record_type  text NOT NULL,
	field        text NOT NULL,
	class        text NOT NULL,
	key_column   text NOT NULL,
	CONSTRAINT dedupe_field_pkey PRIMARY KEY (record_type, field)
);
INSERT INTO crm.dedupe_field VALUES
	('customer', 'name', 'company', 'name_key'),
	('customer', 'phone', 'phone', 'phone_key'),
	('customer', 'uscc', 'uscc', 'uscc'),
	('lead', 'name', 'person', 'name_key'),
	('lead', 'company', 'company', 'company_key'),
	('lead', 'mobile', 'phone', 'mobile_key'),
	('lead', 'email', 'email', 'email_key'),
	('lead', 'uscc', 'uscc', 'uscc'),
	('contact', 'name', 'person', 'name_key'),
	('contact', 'mobile', 'phone', 'mobile_key'),
	('contact', 'email', 'email', 'email_key'),
	-- an individual customer by its contacts' mobiles (seed 001: name together with mobile)
	('customer', 'contact_mobile', 'contact_phone', 'contact_mobile_key');
COMMENT ON TABLE crm.dedupe_field IS 'The fields duplicate rules may name, the class each is compared as and its key column (shipped)';
GRANT SELECT ON crm.dedupe_field TO crm_user;

CREATE TABLE crm.dedupe_rule (
	id             bigint GENERATED ALWAYS AS IDENTITY,
	name           text NOT NULL,
	record_type    text NOT NULL,
	customer_kind  text,
	fields         text[] NOT NULL,
	match          text NOT NULL DEFAULT 'any',
	action         text NOT NULL DEFAULT 'block',
	against        text[] NOT NULL DEFAULT '{customers, pool}',
	enabled        boolean NOT NULL DEFAULT true,
	CONSTRAINT dedupe_rule_pkey PRIMARY KEY (id),
	CONSTRAINT dedupe_rule_name_key UNIQUE (name),
	CONSTRAINT dedupe_rule_name_length CHECK (crm.check_length(name, 200, 'dedupe_rule.name')),
	CONSTRAINT dedupe_rule_record_type_check CHECK (record_type IN ('lead', 'customer', 'contact')),
	CONSTRAINT dedupe_rule_customer_kind_check CHECK (customer_kind IS NULL
		OR (customer_kind IN ('company', 'individual') AND record_type = 'customer')),
	CONSTRAINT dedupe_rule_match_check CHECK (match IN ('any', 'all')),
	CONSTRAINT dedupe_rule_action_check CHECK (action IN ('block', 'warn')),
	CONSTRAINT dedupe_rule_against_check CHECK (against <> '{}' AND against <@ ARRAY['customers', 'pool', 'leads', 'contacts'])
);
COMMENT ON TABLE crm.dedupe_rule IS 'Duplicate rules: a new or changed record whose fields match one already in "against" is blocked or flagged';
COMMENT ON COLUMN crm.dedupe_rule.match IS 'any: one field matching is a duplicate; all: every field on the same record';
COMMENT ON COLUMN crm.dedupe_rule.against IS 'Where to look: customers (owned by employees), pool (customers in a public pool), leads (unconverted) and contacts';
CREATE TRIGGER dedupe_rule_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.dedupe_rule
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('admin.rules');
GRANT SELECT, DELETE ON crm.dedupe_rule TO crm_user;
GRANT INSERT (name, record_type, customer_kind, fields, match, action, against, enabled),
      UPDATE (name, record_type, customer_kind, fields, match, action, against, enabled)
	ON crm.dedupe_rule TO crm_user;

-- a rule must make sense when written, not when it first fires
CREATE FUNCTION crm.dedupe_rule_valid() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	unknown text;
BEGIN
	IF TG_RELID <> 'crm.dedupe_rule'::regclass THEN RAISE 'crm.dedupe_rule_valid() runs only on crm.dedupe_rule, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF coalesce(cardinality(NEW.fields), 0) = 0 THEN
		RAISE EXCEPTION 'duplicate rule "%" names no fields', crm.clip(NEW.name)
			USING ERRCODE = 'check_violation',
			      HINT = 'List the fields to compare, e.g. ''{name}'' or ''{name, phone}''.';
	END IF;
	SELECT string_agg(f, ', ') INTO unknown FROM unnest(NEW.fields) f
	 WHERE NOT EXISTS (SELECT FROM crm.dedupe_field d WHERE d.record_type = NEW.record_type AND d.field = f);
	IF unknown IS NOT NULL THEN
		RAISE EXCEPTION 'duplicate rule "%" names unknown % fields: %', crm.clip(NEW.name), crm.clip(NEW.record_type), crm.clip(unknown)
			USING ERRCODE = 'check_violation',
			      HINT = format('A %s rule may name %s.', crm.clip(NEW.record_type),
			                    (SELECT string_agg(field, ', ' ORDER BY field) FROM crm.dedupe_field d
			                      WHERE d.record_type = NEW.record_type));
	END IF;
	IF NEW.match = 'all' AND cardinality(ARRAY(SELECT DISTINCT unnest(NEW.fields))) < 2 THEN
		RAISE EXCEPTION 'duplicate rule "%" matches all of one field', crm.clip(NEW.name)
			USING ERRCODE = 'check_violation',
			      HINT = 'Use match ''any'' for one field, or name two or more.';
	END IF;
	NEW.fields := ARRAY(SELECT DISTINCT unnest(NEW.fields) ORDER BY 1);
	RETURN NEW;
END
$$;
CREATE TRIGGER dedupe_rule_valid BEFORE INSERT OR UPDATE ON crm.dedupe_rule
	FOR EACH ROW EXECUTE FUNCTION crm.dedupe_rule_valid();

-- Pairs a warn rule flagged: the new or changed record and the one it matches.
CREATE TABLE crm.duplicate_set (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	rule_id      bigint NOT NULL,
	record_type  text NOT NULL,
	record_id    bigint NOT NULL,
	match_type   text NOT NULL,
	match_id     bigint NOT NULL,
	found_at     timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT duplicate_set_pkey PRIMARY KEY (id),
	CONSTRAINT duplicate_set_pair_key UNIQUE (rule_id, record_type, record_id, match_type, match_id),
	CONSTRAINT duplicate_set_rule_fkey FOREIGN KEY (rule_id) REFERENCES crm.dedupe_rule (id) ON DELETE CASCADE
);
-- a pair goes with either of its records (src/sql/96_record_links.sql)
CREATE INDEX duplicate_set_record_idx ON crm.duplicate_set (record_type, record_id);
CREATE INDEX duplicate_set_match_idx ON crm.duplicate_set (match_type, match_id);
COMMENT ON TABLE crm.duplicate_set IS 'Possible duplicates flagged by warn rules: a record, the one it matches, and the rule';
ALTER TABLE crm.duplicate_set ENABLE ROW LEVEL SECURITY;
-- both records: the pair must tell no one of a record they may not see
CREATE POLICY duplicate_set_visible ON crm.duplicate_set FOR SELECT TO crm_user
	USING (crm.record_visible(record_type, record_id) AND crm.record_visible(match_type, match_id));
GRANT SELECT ON crm.duplicate_set TO crm_user;

INSERT INTO crm.notification_event (event, description) VALUES
	('duplicate.found', 'A record was flagged as a possible duplicate of yours or of your report''s');

-- Where a class of key is found in each target: the column and which rows count.
CREATE FUNCTION crm.dedupe_targets() RETURNS TABLE (target text, record_type text, class text, key_column text, condition text)
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT * FROM (VALUES
		('customers', 'customer', 'company', 'name_key', 'x.kind = ''company'' AND NOT x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('customers', 'customer', 'person', 'name_key', 'x.kind = ''individual'' AND NOT x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('customers', 'customer', 'phone', 'phone_key', 'NOT x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('customers', 'customer', 'uscc', 'uscc', 'NOT x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('customers', 'customer', 'contact_phone', 'contact_mobile_key', 'x.kind = ''individual'' AND NOT x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('pool', 'customer', 'company', 'name_key', 'x.kind = ''company'' AND x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('pool', 'customer', 'person', 'name_key', 'x.kind = ''individual'' AND x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('pool', 'customer', 'phone', 'phone_key', 'x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('pool', 'customer', 'uscc', 'uscc', 'x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('pool', 'customer', 'contact_phone', 'contact_mobile_key', 'x.kind = ''individual'' AND x.owner_id IN (SELECT p.id FROM crm.pool p)'),
		('leads', 'lead', 'company', 'company_key', 'x.status IN (''new'', ''following'') AND x.id::text IS DISTINCT FROM current_setting(''crm.converting_lead'')'),
		('leads', 'lead', 'person', 'name_key', 'x.status IN (''new'', ''following'') AND x.id::text IS DISTINCT FROM current_setting(''crm.converting_lead'')'),
		('leads', 'lead', 'phone', 'mobile_key', 'x.status IN (''new'', ''following'') AND x.id::text IS DISTINCT FROM current_setting(''crm.converting_lead'')'),
		('leads', 'lead', 'email', 'email_key', 'x.status IN (''new'', ''following'') AND x.id::text IS DISTINCT FROM current_setting(''crm.converting_lead'')'),
		('leads', 'lead', 'uscc', 'uscc', 'x.status IN (''new'', ''following'') AND x.id::text IS DISTINCT FROM current_setting(''crm.converting_lead'')'),
		('contacts', 'contact', 'person', 'name_key', 'true'),
		('contacts', 'contact', 'phone', 'mobile_key', 'true'),
		('contacts', 'contact', 'email', 'email_key', 'true')) t(target, record_type, class, key_column, condition);
END;

-- The query finding what rule r matches for the rows of cands (a query
-- returning rows shaped like the rule's table, keys included; id NULL for a
-- row not yet written): one SELECT per field ("any") or per target ("all").
-- Each row probes the target's key index (a lateral subquery the planner
-- cannot turn into a hash of the whole table: 1,000,000 customers hashed take
-- 0.5 s where a statement's probes take 0.09 s); the statement's own rows may
-- be hashed (an update's new rows against its old ones).
CREATE FUNCTION crm.dedupe_rule_query(r crm.dedupe_rule, cands text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t     record;
	parts text[] := '{}';
BEGIN
	-- per target, each field's join and the rows of the target it counts
	-- (an "all" rule's row must count for every field: a company's name and
	-- a phone are both an owned customer's)
	FOR t IN SELECT g.record_type AS target_type,
	                array_agg(format('x.%I = n.%I', g.key_column, f.key_column) ORDER BY f.field) AS joins,
	                array_agg(g.condition ORDER BY f.field) AS conds
	           FROM crm.dedupe_targets() g
	           JOIN crm.dedupe_field f ON f.record_type = r.record_type AND f.field = ANY (r.fields)
	            -- an individual customer's name is a person's
	            AND g.class = CASE WHEN f.class = 'company' AND r.customer_kind = 'individual' THEN 'person' ELSE f.class END
	          WHERE g.target = ANY (r.against)
	          GROUP BY g.target, g.record_type ORDER BY g.target LOOP
		parts := parts || ARRAY(
			SELECT format('SELECT n.id AS new_id, n.name AS new_name, %L AS match_type, x.id AS match_id, x.owner_id
			                 FROM (%s) n
			                 CROSS JOIN LATERAL (SELECT x.id, x.owner_id FROM %s x
			                                      WHERE %s %s OFFSET 0) x
			                WHERE true %s',
			              t.target_type, cands,
			              CASE WHEN t.target_type = 'customer' AND 'contact_mobile' = ANY (r.fields)
			                   THEN '(SELECT c.*, k.mobile_key AS contact_mobile_key FROM crm.customer c JOIN crm.contact k ON k.customer_id = c.id)'
			                   ELSE format('crm.%I', t.target_type) END,
			              c,
			              -- a row never matches itself; a lead may match the customer of the same id
			              CASE WHEN t.target_type = r.record_type THEN 'AND x.id IS DISTINCT FROM n.id' END,
			              CASE WHEN r.customer_kind IS NOT NULL THEN format('AND n.kind = %L', r.customer_kind) END)
			  FROM (SELECT t.joins[i] || ' AND ' || t.conds[i] FROM generate_subscripts(t.joins, 1) i WHERE r.match = 'any'
			        UNION ALL
			        SELECT array_to_string(t.joins || ARRAY(SELECT DISTINCT unnest(t.conds)), ' AND ')
			         WHERE r.match = 'all' AND cardinality(t.joins) = cardinality(r.fields)) w(c));
	END LOOP;
	RETURN nullif(array_to_string(parts, ' UNION ALL '), '');
END
$$;

-- The enabled rules as they compare: a customer rule on names of either kind
-- is one rule per kind, as a company's name is compared with companies' and
-- a person's with people's (seed 001; the two are normalised differently).
CREATE FUNCTION crm.dedupe_rules_by_kind() RETURNS SETOF crm.dedupe_rule
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT d.id, d.name, d.record_type, coalesce(d.customer_kind, k.kind), d.fields, d.match, d.action, d.against, d.enabled
	  FROM crm.dedupe_rule d
	  LEFT JOIN LATERAL (SELECT k.kind FROM unnest(ARRAY['company', 'individual']) k(kind)
	                      WHERE d.record_type = 'customer' AND d.customer_kind IS NULL AND 'name' = ANY (d.fields)) k ON true
	 WHERE d.enabled;
END;

-- The keys blocking rules compare, claimed by the transactions that write
-- them (crm.dedupe_check): a lock per key that takes no lock-table entry.
-- A 64-bit hash of class and key; unlogged, as a claim outlives no crash.
-- crm.run_housekeeping drops the claims every snapshot sees as settled.
CREATE UNLOGGED TABLE crm.dedupe_claim (
	key  bigint,
	CONSTRAINT dedupe_claim_pkey PRIMARY KEY (key)
);
COMMENT ON TABLE crm.dedupe_claim IS 'Duplicate keys claimed by the transactions writing them (crm''s own; pruned by housekeeping)';

CREATE FUNCTION crm.xid_horizon(rel regclass) RETURNS xid
	AS 'MODULE_PATHNAME', 'crm_xid_horizon' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION crm.xid_horizon(regclass) IS
	'The oldest transaction some snapshot may still see as running, for the rows of a table';

-- The test that an update changed what a duplicate check compares: a
-- column, or the customer left a public pool for an owner (from_pool) or
-- went back to one (to_pool).
CREATE FUNCTION crm.dedupe_changed(col text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
RETURN CASE col WHEN 'from_pool'
            THEN '(o.owner_id IN (SELECT p.id FROM crm.pool p) AND NOT n.owner_id IN (SELECT p.id FROM crm.pool p))'
            WHEN 'to_pool'
            THEN '(NOT o.owner_id IN (SELECT p.id FROM crm.pool p) AND n.owner_id IN (SELECT p.id FROM crm.pool p))'
            ELSE format('n.%1$I IS DISTINCT FROM o.%1$I', col) END;

-- The statement's rows that match an enabled rule's targets: one query per
-- rule and target, all keys of the statement at once.
-- (Without JIT: a statement's estimates can reach its threshold, and
-- compiling its queries took seconds where running them took milliseconds.)
CREATE FUNCTION crm.dedupe_check() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
	rt      text := TG_TABLE_NAME;
	r       crm.dedupe_rule;
	rules   crm.dedupe_rule[];
	checked crm.dedupe_rule[] := '{}';
	changed text[];		-- an update's changed columns that rules compare
	kinds   text[];		-- the kinds of customer the statement wrote
	hits    jsonb;		-- a warn rule's flagged pairs, each with whom to tell
	notices jsonb := '[]';	-- and all of the statement's
	quiet   bigint[];	-- who has a notice of possible duplicates unread
	last_notice bigint;	-- the last notification before this rule's
	rows    text[];		-- per rule: the statement's rows as that rule compares them
	targets text[];		-- the keys this table's rows are compared by, as blocking rules find them
	target_keys text[];	-- and the column of each
	compared text[];	-- an update's rows that blocking rules compare
	hit     record;
	q       text;
	cands   text;
	found   boolean;
	n       integer;
BEGIN
	IF TG_RELID <> ALL ('{crm.contact,crm.customer,crm.lead}'::regclass[]) THEN RAISE 'crm.dedupe_check() runs only on crm.contact, crm.customer, crm.lead, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- a restore loads what was checked when it was written
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	-- the rules that apply: an individual customer's rule on its contacts'
	-- mobiles also runs when contacts are written
	SELECT array_agg(d ORDER BY d.action, d.id, d.customer_kind) INTO rules
	  FROM crm.dedupe_rules_by_kind() d
	 WHERE (d.record_type = rt OR (rt = 'contact' AND d.record_type = 'customer'
	                                            AND 'contact_mobile' = ANY (d.fields)));
	-- and the keys by which blocking rules find this table's rows, each as a
	-- query over rows (%s) that keeps the rows the rule's target counts
	SELECT array_agg(t.q ORDER BY t.q), array_agg(t.key_column ORDER BY t.q) INTO targets, target_keys
	  FROM (SELECT DISTINCT format('SELECT %L AS class, x.%I AS key FROM (%%s) x WHERE %s', g.class, g.key_column, g.condition), g.key_column
	          FROM crm.dedupe_rules_by_kind() d
	          JOIN crm.dedupe_field f ON f.record_type = d.record_type AND f.field = ANY (d.fields)
	          JOIN crm.dedupe_targets() g ON g.target = ANY (d.against) AND g.record_type = rt AND g.key_column <> 'contact_mobile_key'
	           AND g.class = CASE WHEN f.class = 'company' AND d.customer_kind = 'individual' THEN 'person' ELSE f.class END
	         WHERE d.action = 'block') t(q, key_column);
	-- a table no rule concerns stops here
	IF rules IS NULL AND targets IS NULL THEN
		RETURN NULL;
	END IF;
	-- an update: which of the columns rules compare it changed, in one pass;
	-- a customer claimed from a pool counts as changed (it joins the owned ones),
	-- and one put back (it joins the pool's, where blocking rules find it)
	IF TG_OP = 'UPDATE' THEN
		SELECT string_agg(format('bool_or(%s) AS %I', crm.dedupe_changed(a.attname), a.attname), ', ') INTO q
		  FROM (SELECT a.attname::text FROM pg_attribute a
		         WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped
		           AND a.attname IN (SELECT f.key_column FROM crm.dedupe_field f UNION VALUES ('kind'), ('customer_id'), ('mobile_key'), ('status'))
		        UNION ALL SELECT v FROM unnest(ARRAY['from_pool', 'to_pool']) v WHERE rt = 'customer') a;
		EXECUTE format('SELECT array_agg(c.key) FROM (SELECT %s FROM new_rows n JOIN old_rows o ON o.id = n.id) x,
		                jsonb_each_text(to_jsonb(x)) c WHERE c.value = ''true''', q) INTO changed;
	END IF;
	-- a rule of a kind the statement wrote none of has nothing to check
	IF rt = 'customer' AND EXISTS (SELECT FROM unnest(rules) d WHERE d.customer_kind IS NOT NULL) THEN
		kinds := ARRAY(SELECT DISTINCT n.kind FROM new_rows n);
	END IF;
	-- the rows each rule compares: all inserted ones, or those whose keys for
	-- the rule an update changed (a customer's kind too; a contact's mobile
	-- for its customer's rule, and its customer; a lead's status, as one set
	-- back from invalid is open again; a customer claimed from a pool, but
	-- not one put back).  A rule none of whose keys changed has nothing to
	-- check.  Only open leads are compared: converted and invalid ones are
	-- history.
	FOREACH r IN ARRAY coalesce(rules, '{}') LOOP
		CONTINUE WHEN r.customer_kind <> ALL (kinds);
		IF TG_OP = 'INSERT' THEN
			cands := 'SELECT * FROM new_rows n';
		ELSE
			SELECT string_agg(crm.dedupe_changed(c), ' OR ' ORDER BY c) INTO q
			  FROM unnest(changed) c
			 WHERE c IN (SELECT f.key_column FROM crm.dedupe_field f
			              WHERE f.record_type = r.record_type AND f.field = ANY (r.fields))
			    OR c = CASE rt WHEN 'customer' THEN 'kind' WHEN 'contact' THEN 'customer_id' WHEN 'lead' THEN 'status' END
			    OR c = 'from_pool'
			    OR r.record_type <> rt AND c = 'mobile_key';
			CONTINUE WHEN q IS NULL;
			cands := format('SELECT n.* FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE (%s)', q);
			IF r.action = 'block' THEN
				compared := compared || q;
			END IF;
		END IF;
		IF rt = 'lead' THEN
			cands := cands || CASE TG_OP WHEN 'INSERT' THEN ' WHERE' ELSE ' AND' END || ' n.status IN (''new'', ''following'')';
		END IF;
		checked := checked || r;
		rows := rows || CASE
			WHEN r.record_type <> rt THEN format(
				'SELECT c.*, k.mobile_key AS contact_mobile_key FROM (%s) k JOIN crm.customer c ON c.id = k.customer_id', cands)
			WHEN 'contact_mobile' = ANY (r.fields) THEN format(
				'SELECT n.*, k.mobile_key AS contact_mobile_key FROM (%s) n LEFT JOIN crm.contact k ON k.customer_id = n.id', cands)
			ELSE cands END;
		-- a rule of one kind compares (and claims) that kind's customers only
		IF r.customer_kind IS NOT NULL THEN
			rows[cardinality(rows)] := format('SELECT * FROM (%s) n WHERE n.kind = %L', rows[cardinality(rows)], r.customer_kind);
		END IF;
	END LOOP;
	rules := checked;

	-- blocking is race-free: the statement claims the keys its blocking rules
	-- compare, and the keys by which blocking rules find its rows, a row per
	-- key in crm.dedupe_claim that its transaction holds until it ends.  A writer of the same key waits, as on a unique index;
	-- writers of other keys never do, and the lock table holds nothing however
	-- many rows a transaction writes.  Keys go in order, so that statements do
	-- not deadlock.  Under repeatable read a key claimed by a transaction the
	-- snapshot cannot see raises serialization_failure.
	SELECT string_agg(DISTINCT k, ' UNION ALL ') INTO q
	  FROM (SELECT format('SELECT %L AS class, c.%I AS key FROM (%s) c',
	                      -- as the rule compares it: an individual customer's name is a person's
	                      CASE WHEN f.class = 'company' AND rules[i].customer_kind = 'individual' THEN 'person' ELSE f.class END,
	                      f.key_column, rows[i])
	          FROM generate_subscripts(rules, 1) i CROSS JOIN LATERAL unnest(rules[i].fields) rf(field)
	          JOIN crm.dedupe_field f ON f.record_type = rules[i].record_type AND f.field = rf.field
	         WHERE rules[i].action = 'block'
	        UNION ALL
	        -- an update's rows whose key for the target changed, or that joined
	        -- it (a customer's kind, a lead's status, a customer claimed from
	        -- or put back to a pool)
	        SELECT format(targets[i], CASE WHEN TG_OP = 'INSERT' THEN 'SELECT * FROM new_rows'
	                                       ELSE format('SELECT n.* FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE %s', w) END)
	          FROM generate_subscripts(targets, 1) i
	          LEFT JOIN LATERAL (SELECT string_agg(crm.dedupe_changed(c), ' OR ' ORDER BY c) FROM unnest(changed) c
	                              WHERE c IN (target_keys[i], 'kind', 'status', 'from_pool', 'to_pool')) m(w) ON true
	         WHERE TG_OP = 'INSERT' OR w IS NOT NULL) c(k);
	IF q IS NOT NULL THEN
		-- each row compared is a guess at whose a key is, answered by whether
		-- the statement succeeds: charged as a look-up unless it is written.
		-- Past the look-up limit a statement under blocking rules fails
		-- whether it matches or not: otherwise failing would tell it matched
		IF EXISTS (SELECT FROM unnest(rules) b WHERE b.action = 'block') THEN
			EXECUTE CASE TG_OP WHEN 'INSERT' THEN 'SELECT count(*) FROM new_rows'
			        ELSE format('SELECT count(*) FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE %s',
			                    array_to_string(compared, ' OR ')) END INTO n;
			PERFORM crm.pend_duplicate_lookups(n);
		END IF;
		q := format('INSERT INTO crm.dedupe_claim (key)
		             SELECT DISTINCT hashtextextended(x.class || '' '' || x.key, 0) FROM (%s) x WHERE x.key IS NOT NULL ORDER BY 1
		             ON CONFLICT (key) DO UPDATE SET key = excluded.key', q);
		IF current_setting('transaction_isolation') = 'read committed' THEN
			EXECUTE q;
		ELSE
			BEGIN
				EXECUTE q;
			EXCEPTION WHEN serialization_failure THEN
				-- which tells that one of the keys is being written: a look-up
				PERFORM crm.take_duplicate_lookup(rt, ARRAY(SELECT DISTINCT f FROM unnest(rules) b, unnest(b.fields) f
				                                            WHERE b.action = 'block' ORDER BY f), n);
				RAISE EXCEPTION 'a concurrent transaction was writing the same duplicate keys'
					USING ERRCODE = 'serialization_failure',
					      HINT = 'Retry the transaction: under repeatable read it cannot see what the other one committed.';
			END;
		END IF;
	END IF;

	FOR i IN 1 .. coalesce(cardinality(rules), 0) LOOP
		r := rules[i];
		q := crm.dedupe_rule_query(r, rows[i]);
		CONTINUE WHEN q IS NULL;

		IF r.action = 'block' THEN
			EXECUTE format('SELECT h.*, crm.clip(e.name) AS owner, e.is_pool FROM (%s) h LEFT JOIN crm.employee e ON e.id = h.owner_id ORDER BY h.new_id, h.match_type, h.match_id LIMIT 1', q) INTO hit;
			IF hit.new_id IS NOT NULL THEN
				-- the refusal answers what a look-up would for each row the
				-- statement compared (10,000 guessed mobiles in one INSERT are
				-- 10,000 look-ups), and names the row: count them all first
				PERFORM crm.take_duplicate_lookup(r.record_type, r.fields, n);
				RAISE EXCEPTION '% "%" duplicates % by rule "%"', r.record_type, crm.clip(hit.new_name),
				                CASE WHEN hit.match_type = 'customer' AND hit.is_pool THEN format('a customer in pool "%s"', hit.owner)
				                     WHEN hit.match_type = 'customer' THEN 'a customer owned by ' || coalesce(hit.owner, 'nobody')
				                     WHEN hit.match_type = 'lead' THEN 'a lead of ' || coalesce(hit.owner, 'nobody')
				                     ELSE 'a contact of a customer owned by ' || coalesce(hit.owner, 'nobody') END,
				                crm.clip(r.name)
					USING ERRCODE = 'unique_violation',
					      DETAIL = format('Rule "%s" compares %s with %s and blocks a match.', crm.clip(r.name),
					                      array_to_string(r.fields, ', '), array_to_string(r.against, ', ')),
					      HINT = CASE WHEN hit.is_pool THEN format('Claim it from pool "%s" (crm.pool_customer lists it to the pool''s members), or look with crm.find_duplicates.', hit.owner)
					                  ELSE format('It is %s''s already: ask them to transfer it or add you to its team, or look with crm.find_duplicates.',
					                              coalesce(hit.owner, 'nobody')) END;
			END IF;
		ELSE
			-- most statements flag nothing: find that out with the probes alone
			EXECUTE format('SELECT EXISTS (%s)', q) INTO found;
			CONTINUE WHEN NOT found;
			EXECUTE format(
				'WITH h AS (%s),
				 flagged AS (
					INSERT INTO crm.duplicate_set (rule_id, record_type, record_id, match_type, match_id)
					SELECT $1, $2, h.new_id, h.match_type, h.match_id FROM h
					ON CONFLICT DO NOTHING
					RETURNING record_id, match_type, match_id)
				 SELECT jsonb_agg(jsonb_build_object(''recipient'', t.recipient, ''record_type'', $2, ''record_id'', f.record_id,
				                                     ''name'', crm.clip(n.name),
				                                     ''why'', format(''Rule "%%s" matches it with a %%s of %%s.'', crm.clip($3), f.match_type,
				                                                    coalesce(crm.clip(o.name), ''nobody''))))
				   FROM flagged f
				   JOIN crm.%I n ON n.id = f.record_id
				   JOIN h x ON x.new_id = f.record_id AND x.match_type = f.match_type AND x.match_id = f.match_id
				   LEFT JOIN crm.employee o ON o.id = x.owner_id
				   LEFT JOIN crm.employee s ON s.id = n.owner_id
				  CROSS JOIN LATERAL (SELECT DISTINCT u FROM unnest(ARRAY[x.owner_id, s.superior_id]) u WHERE u IS NOT NULL) t(recipient)',
				q, r.record_type) INTO hits USING r.id, r.record_type, r.name;
			notices := notices || coalesce(hits, '[]');
		END IF;
	END LOOP;

	-- one notification per person and statement, however many rows and rules
	-- flagged.  Whoever has one from the last day unread is told the next in
	-- their inbox only, not on their phone: a colleague's thirty inserts are
	-- not thirty messages, and nothing is hidden (a harmless duplicate made
	-- first once hid the next)
	IF jsonb_array_length(notices) > 0 THEN
		quiet := ARRAY(SELECT DISTINCT p.recipient_id FROM crm.notification p
		                WHERE p.recipient_id IN (SELECT (x ->> 'recipient')::bigint FROM jsonb_array_elements(notices) x)
		                  AND p.event = 'duplicate.found' AND p.read_at IS NULL AND p.created_at > now() - interval '1 day');
		last_notice := coalesce((SELECT max(p.id) FROM crm.notification p), 0);
		PERFORM crm.notify(ARRAY[t.recipient], 'duplicate.found',
		                   CASE WHEN count(DISTINCT (t.record_type, t.record_id)) = 1
		                        THEN format('Possible duplicate %s: %s', min(t.record_type), min(t.name))
		                        ELSE format('%s possible duplicates among new %s records', count(DISTINCT (t.record_type, t.record_id)),
		                                    string_agg(DISTINCT t.record_type, ' and ')) END,
		                   CASE WHEN count(*) = 1 THEN min(t.why)
		                        ELSE crm.notification_lines(array_agg(t.name || ': ' || t.why ORDER BY t.record_type, t.record_id, t.why)) END,
		                   CASE WHEN count(DISTINCT (t.record_type, t.record_id)) = 1 THEN min(t.record_type) END,
		                   CASE WHEN count(DISTINCT (t.record_type, t.record_id)) = 1 THEN min(t.record_id) END)
		  FROM jsonb_to_recordset(notices) t(recipient bigint, record_type text, record_id bigint, name text, why text)
		 GROUP BY t.recipient;
		UPDATE crm.notification p SET im_pending = false
		 WHERE p.id > last_notice AND p.created_at = now() AND p.recipient_id = ANY (quiet)
		   AND p.event = 'duplicate.found' AND p.im_pending;
	END IF;
	RETURN NULL;
END
$$;

DO $checks$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['customer', 'lead', 'contact'] LOOP
		EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON crm.%I REFERENCING NEW TABLE AS new_rows
		                FOR EACH STATEMENT EXECUTE FUNCTION crm.dedupe_check()', t || '_dedupe_insert', t);
		EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON crm.%I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
		                FOR EACH STATEMENT EXECUTE FUNCTION crm.dedupe_check()', t || '_dedupe_update', t);
	END LOOP;
END
$checks$;

-- What a candidate record would match exactly, for crm.find_duplicates: the
-- matches by every enabled rule of its type.  Runs as crm's owner and sees
-- every record; crm.find_duplicates hides what the caller may not see.
CREATE FUNCTION crm.dedupe_candidates(record_type text, candidate jsonb)
	RETURNS TABLE (match_type text, match_id bigint, owner_id bigint, rule text, score real, reason text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c       jsonb := coalesce(candidate, '{}');
	cands   text;
	r       crm.dedupe_rule;
	q       text;
BEGIN
	-- the candidate as a row of its table would be, keys included
	cands := CASE record_type
		WHEN 'customer' THEN format(
			'SELECT NULL::bigint AS id, %1$L::text AS name, %2$L::text AS kind, %3$L::text AS uscc,
			        crm.dedupe_key(CASE %2$L WHEN ''individual'' THEN ''name'' ELSE ''company'' END, %1$L) AS name_key,
			        crm.dedupe_key(''phone'', %4$L) AS phone_key, crm.dedupe_key(''phone'', %5$L) AS contact_mobile_key',
			c ->> 'name', coalesce(c ->> 'kind', 'company'), c ->> 'uscc', c ->> 'phone', c ->> 'contact_mobile')
		WHEN 'lead' THEN format(
			'SELECT NULL::bigint AS id, %1$L::text AS name, %2$L::text AS uscc, crm.dedupe_key(''name'', %1$L) AS name_key,
			        crm.dedupe_key(''company'', %3$L) AS company_key, crm.dedupe_key(''phone'', %4$L) AS mobile_key,
			        crm.dedupe_key(''email'', %5$L) AS email_key',
			c ->> 'name', c ->> 'uscc', c ->> 'company', c ->> 'mobile', c ->> 'email')
		WHEN 'contact' THEN format(
			'SELECT NULL::bigint AS id, %1$L::text AS name, crm.dedupe_key(''name'', %1$L) AS name_key,
			        crm.dedupe_key(''phone'', %2$L) AS mobile_key, crm.dedupe_key(''email'', %3$L) AS email_key',
			c ->> 'name', c ->> 'mobile', c ->> 'email') END;
	IF cands IS NULL THEN
		RAISE EXCEPTION 'unknown record type "%" for duplicates', crm.clip(record_type)
			USING ERRCODE = 'invalid_parameter_value', HINT = 'The record types are lead, customer and contact.';
	END IF;
	FOR r IN SELECT * FROM crm.dedupe_rules_by_kind() d WHERE d.record_type = dedupe_candidates.record_type ORDER BY d.id, d.customer_kind LOOP
		q := crm.dedupe_rule_query(r, cands);
		CONTINUE WHEN q IS NULL;
		RETURN QUERY EXECUTE format('SELECT DISTINCT h.match_type, h.match_id, h.owner_id, %L::text, 1::real, %L::text FROM (%s) h',
		                            r.name, 'same ' || array_to_string(r.fields, ' and '), q);
	END LOOP;
END
$$;

-- Customers the caller may see whose name is like a company's (or, for kind
-- individual, a person's): pinyin trigrams (pg_trgm), then initials.  Runs as
-- the caller, under row-level security: a fuzzy match is a hint for finding
-- one's own records, never a way to learn about others' (only exact keys,
-- crm.dedupe_candidates, answer "is this already someone's?").
CREATE FUNCTION crm.similar_customers(name text, kind text DEFAULT 'company')
	RETURNS TABLE (id bigint, label text, owner_id bigint, score real, reason text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	company  text := crm.dedupe_key(CASE kind WHEN 'individual' THEN 'name' ELSE 'company' END, similar_customers.name);
	-- a few Latin letters may be initials themselves: "hw" finds 华为技术 (hwjs)
	initials text := CASE WHEN company ~ '^[a-z]{2,6}$' THEN company ELSE crm.dedupe_key('initials', company) END;
	trgm     text;
BEGIN
	IF company IS NULL THEN
		RETURN;
	END IF;
	SELECT n.nspname INTO trgm FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
	 WHERE e.extname = 'pg_trgm';
	RETURN QUERY EXECUTE format(
		'SELECT x.id, x.name, x.owner_id, %1$I.similarity(x.name_pinyin, $1), ''similar name''::text
		   FROM crm.customer x WHERE x.name_pinyin OPERATOR(%1$I.%%) $1
		  ORDER BY x.name_pinyin OPERATOR(%1$I.<->) $1 LIMIT 20', trgm)
		USING crm.dedupe_key('pinyin', company);
	-- (planned for the value: the prefix search uses the index)
	RETURN QUERY EXECUTE
		'SELECT x.id, x.name, x.owner_id, 0.5::real, ''same initials''::text
		   FROM crm.customer x WHERE length($1) >= 2 AND x.name_initials LIKE $1 || ''%'' ORDER BY x.id DESC LIMIT 20'
		USING initials;
END
$$;
COMMENT ON FUNCTION crm.similar_customers(text, text) IS
	'Customers the caller may see with a name like this one (pinyin trigrams, then initials), best first';

-- Every look-up by crm.find_duplicates and every refusal by a blocking rule:
-- who, when, for which record type, with which fields (not their values).
-- Written by the audit writer (lookup_audit.c) in its own transactions, so a
-- look-up rolled back is audited too; super admins read it.
CREATE TABLE crm.duplicate_lookup (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	looked_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
	employee_id  bigint,
	role_name    name NOT NULL,
	record_type  text NOT NULL,
	fields       text[] NOT NULL,
	CONSTRAINT duplicate_lookup_pkey PRIMARY KEY (id)
);
CREATE INDEX duplicate_lookup_employee_idx ON crm.duplicate_lookup (employee_id, looked_at);

COMMENT ON TABLE crm.duplicate_lookup IS 'Look-ups of crm.find_duplicates: who, when, the record type and the candidate''s fields (not their values); super admins read it';
ALTER TABLE crm.duplicate_lookup ENABLE ROW LEVEL SECURITY;
CREATE POLICY duplicate_lookup_super_admin ON crm.duplicate_lookup FOR SELECT TO crm_user
	USING (crm.acting_is_super());
GRANT SELECT ON crm.duplicate_lookup TO crm_user;

-- (as crm's owner, from crm.dedupe_check: a statement under blocking rules
-- is a look-up per row it compared, charged when it does not commit; a
-- blocking rule's refusal is charged at once and audited as a look-up of the
-- rule's record type and fields)
CREATE FUNCTION crm.pend_duplicate_lookups(lookups bigint) RETURNS void
	AS 'MODULE_PATHNAME', 'crm_pend_duplicate_lookups' LANGUAGE C VOLATILE;
CREATE FUNCTION crm.take_duplicate_lookup(record_type text, fields text[], lookups bigint DEFAULT 1) RETURNS void
	AS 'MODULE_PATHNAME', 'crm_take_duplicate_lookup' LANGUAGE C VOLATILE;

CREATE FUNCTION crm.find_duplicates(record_type text, candidate jsonb)
	RETURNS TABLE (match_type text, match_id bigint, label text, owner text, rules text, score real, reasons text)
	AS 'MODULE_PATHNAME', 'crm_find_duplicates' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION crm.find_duplicates(text, jsonb) IS
	'What a candidate lead, customer or contact would duplicate: exact matches by rule anywhere (a record the caller may not see shows only whose it is), similar names among what the caller sees; rate-limited and audited';

-- Merging two customers (seed 002): what was merged, kept for the record.
CREATE TABLE crm.customer_merge (
	id          bigint GENERATED ALWAYS AS IDENTITY,
	keep_id     bigint NOT NULL,
	merged_id   bigint NOT NULL,
	merged_row  jsonb NOT NULL,
	moved       jsonb NOT NULL,
	merged_by   bigint,
	merged_at   timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT customer_merge_pkey PRIMARY KEY (id)
);
COMMENT ON TABLE crm.customer_merge IS 'Customers merged into others: the merged row as it was, and how many rows of each table moved';
ALTER TABLE crm.customer_merge ENABLE ROW LEVEL SECURITY;
CREATE POLICY customer_merge_visible ON crm.customer_merge FOR SELECT TO crm_user
	USING (crm.record_visible('customer', keep_id));
GRANT SELECT ON crm.customer_merge TO crm_user;

-- The merge itself, as crm's owner (crm.merge_customers checks the caller
-- first): every reference to the merged customer moves to the kept one, found
-- from the catalog (foreign keys, crm.record_links()) so that tables added
-- later (opportunities, contracts) move too; rows that would collide with the kept customer's (a team place, a tag,
-- a pin it already has) go; empty fields of the kept customer are filled.
CREATE FUNCTION crm.merge_customers_apply(keep_id bigint, merge_id bigint, merged_by bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	m      crm.customer;
	t      record;
	moved  jsonb := '{}';
	n      bigint;
	audit  bigint;
BEGIN
	PERFORM FROM crm.customer WHERE id = keep_id FOR UPDATE;
	SELECT * INTO m FROM crm.customer WHERE id = merge_id FOR UPDATE;
	-- the merged customer's recycling clock goes with it; the kept one's runs on
	DELETE FROM crm.customer_recycling WHERE customer_id = merge_id;
	DELETE FROM crm.customer_status_time WHERE customer_id = merge_id;
	-- foreign keys to crm.customer
	FOR t IN SELECT c.conrelid::regclass AS tbl, a.attname AS col
	           FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
	          WHERE c.confrelid = 'crm.customer'::regclass AND c.contype = 'f' AND cardinality(c.conkey) = 1
	            AND c.conrelid <> ALL (ARRAY['crm.customer_recycling'::regclass, 'crm.customer_status_time'::regclass])
	          ORDER BY 1, 2 LOOP
		EXECUTE format('UPDATE %s SET %I = $1 WHERE %I = $2', t.tbl, t.col, t.col) USING keep_id, merge_id;
		GET DIAGNOSTICS n = ROW_COUNT;
		moved := moved || jsonb_build_object(t.tbl::text, n);
	END LOOP;
	-- rows naming a customer by a (type, id) pair (crm.record_links(); the
	-- operation log keeps its history); a customer is no duplicate of itself
	FOR t IN SELECT k.link_table AS tbl, k.type_column AS tcol, k.id_column AS icol,
	                (SELECT array_agg(a.attname ORDER BY a.attname)
	                   FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
	                  WHERE i.indrelid = k.link_table AND i.indisunique
	                    AND a.attname NOT IN (k.type_column, k.id_column)
	                    AND EXISTS (SELECT FROM pg_attribute r WHERE r.attrelid = k.link_table AND r.attname = k.id_column
	                                AND r.attnum = ANY (i.indkey))) AS others
	           FROM crm.record_links() k WHERE k.on_delete <> 'keep' ORDER BY 1, 2 LOOP
		IF t.others IS NOT NULL THEN
			EXECUTE format('DELETE FROM %1$s m WHERE m.%2$I = ''customer'' AND m.%3$I = $2
			                  AND EXISTS (SELECT FROM %1$s k WHERE k.%2$I = ''customer'' AND k.%3$I = $1 AND %4$s)',
			               t.tbl, t.tcol, t.icol, (SELECT string_agg(format('k.%1$I = m.%1$I', o), ' AND ') FROM unnest(t.others) o))
				USING keep_id, merge_id;
		END IF;
		EXECUTE format('UPDATE %s SET %I = $1 WHERE %I = ''customer'' AND %I = $2', t.tbl, t.icol, t.tcol, t.icol)
			USING keep_id, merge_id;
		GET DIAGNOSTICS n = ROW_COUNT;
		moved := moved || jsonb_build_object(t.tbl::text, coalesce((moved ->> t.tbl::text)::bigint, 0) + n);
	END LOOP;
	DELETE FROM crm.duplicate_set WHERE record_type = 'customer' AND match_type = 'customer' AND record_id = match_id;

	INSERT INTO crm.customer_merge (keep_id, merged_id, merged_row, moved, merged_by)
	VALUES (keep_id, merge_id, to_jsonb(m), moved, merged_by) RETURNING id INTO audit;
	-- gone before the kept one takes its phone or credit code, which would
	-- otherwise duplicate it under a blocking rule
	DELETE FROM crm.customer WHERE id = merge_id;
	UPDATE crm.customer k
	   SET phone = coalesce(k.phone, m.phone), industry = coalesce(k.industry, m.industry),
	       source = coalesce(k.source, m.source), level = coalesce(k.level, m.level),
	       uscc = coalesce(k.uscc, m.uscc), locked = k.locked OR m.locked
	 WHERE k.id = keep_id;
	RETURN audit;
END
$$;

CREATE FUNCTION crm.merge_customers(keep_id bigint, merge_id bigint) RETURNS bigint
	AS 'MODULE_PATHNAME', 'crm_merge_customers' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION crm.merge_customers(bigint, bigint) IS
	'Merge customer merge_id into keep_id in one transaction (needs customer.merge and both visible); returns the crm.customer_merge id';
-- Periodic work.  crm.job lists what should run and when (a DBA may change the
-- schedule or disable a job); crm.schedule_jobs() hands the list to pg_cron.
-- Every job is an idempotent function that can also be called by hand and that
-- records what it did in crm.job_run.

CREATE TABLE crm.job (
	name      text NOT NULL,
	schedule  text NOT NULL,
	command   text NOT NULL,
	enabled   boolean NOT NULL DEFAULT true,
	builtin   boolean NOT NULL DEFAULT false,
	CONSTRAINT job_pkey PRIMARY KEY (name),
	CONSTRAINT job_name_check CHECK (name ~ '^crm-[a-z0-9-]+$'),
	-- pg_cron 1.4 (Debian 12) takes five-field cron schedules in GMT
	CONSTRAINT job_schedule_check CHECK (schedule ~ '^\S+( \S+){4}$')
);
COMMENT ON TABLE crm.job IS 'Jobs crm.schedule_jobs() registers with pg_cron; edit schedule or enabled, then call it again';

SELECT crm.keep_builtin_edits('crm.job', 'name');

CREATE TABLE crm.job_run (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	job          text NOT NULL,
	started_at   timestamptz NOT NULL,
	finished_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
	processed    integer NOT NULL,
	details      jsonb NOT NULL DEFAULT '{}',
	CONSTRAINT job_run_pkey PRIMARY KEY (id)
);
CREATE INDEX job_run_job_idx ON crm.job_run (job, started_at DESC);
COMMENT ON TABLE crm.job_run IS 'What each job run did: rows processed and why';

-- Housekeeping: prune old run logs (ours, and pg_cron's for our jobs), the
-- IM deliveries that were settled long ago (the inbox itself is kept) and the
-- duplicate keys claimed by transactions every snapshot sees as ended; warn
-- when the stored duplicate keys were built with another ICU (crm.key_check()).
CREATE FUNCTION crm.run_housekeeping(keep interval DEFAULT '30 days') RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	started    timestamptz := clock_timestamp();
	own        integer;
	cron_runs  integer := 0;
	deliveries integer;
	claims     integer;
BEGIN
	PERFORM crm.key_check();
	DELETE FROM crm.job_run WHERE started_at < started - keep;
	GET DIAGNOSTICS own = ROW_COUNT;
	DELETE FROM crm.im_delivery
	 WHERE status IN ('sent', 'dead') AND coalesce(sent_at, next_attempt_at) < started - keep;
	GET DIAGNOSTICS deliveries = ROW_COUNT;
	-- a settled claim that a running transaction claims again is its now: skip it
	DELETE FROM crm.dedupe_claim
	 WHERE key IN (SELECT c.key FROM crm.dedupe_claim c
	                WHERE age(c.xmin) > age(crm.xid_horizon('crm.dedupe_claim'))
	                  FOR UPDATE SKIP LOCKED);
	GET DIAGNOSTICS claims = ROW_COUNT;
	IF to_regclass('cron.job_run_details') IS NOT NULL THEN
		DELETE FROM cron.job_run_details d
		 USING cron.job j
		 WHERE j.jobid = d.jobid AND j.jobname LIKE 'crm-%' AND d.end_time < started - keep;
		GET DIAGNOSTICS cron_runs = ROW_COUNT;
	END IF;
	INSERT INTO crm.job_run (job, started_at, processed, details)
	VALUES ('crm-housekeeping', started, own + cron_runs + deliveries + claims,
	        jsonb_build_object('job_run_deleted', own, 'cron_run_details_deleted', cron_runs,
	                           'im_deliveries_deleted', deliveries, 'dedupe_claims_deleted', claims));
	RETURN own + cron_runs + deliveries + claims;
END
$$;

INSERT INTO crm.job (name, schedule, command, builtin) VALUES
	('crm-housekeeping', '17 3 * * *', 'SELECT crm.run_housekeeping()', true);

CREATE FUNCTION crm.schedule_jobs() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	j         record;
	scheduled integer := 0;
	commands  text;
BEGIN
	IF to_regnamespace('cron') IS NULL OR to_regclass('cron.job') IS NULL THEN
		SELECT string_agg(format('SELECT cron.schedule_in_database(%L, %L, %L, %L);',
		                         name, schedule, command, current_database()), E'\n' ORDER BY name)
		  INTO commands FROM crm.job WHERE enabled;
		RAISE EXCEPTION 'pg_cron is not installed in database "%"', current_database()
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('crm.schedule_jobs() registers crm.job rows with pg_cron, whose database is "%s" (cron.database_name).',
			                      current_setting('cron.database_name', true)),
			      HINT = E'Run CREATE EXTENSION pg_cron here if this is the cron database; otherwise run in the cron database:\n' || commands;
	END IF;
	FOR j IN SELECT * FROM crm.job ORDER BY name LOOP
		IF j.enabled THEN
			PERFORM cron.schedule_in_database(j.name, j.schedule, j.command, current_database());
			scheduled := scheduled + 1;
		ELSIF EXISTS (SELECT FROM cron.job WHERE jobname = j.name AND username = current_user) THEN
			PERFORM cron.unschedule(j.name);
		END IF;
	END LOOP;
	RETURN scheduled;
END
$$;
COMMENT ON FUNCTION crm.schedule_jobs() IS 'Register the enabled rows of crm.job with pg_cron (and drop disabled ones); idempotent';

GRANT SELECT ON crm.job, crm.job_run TO crm_admin;
GRANT UPDATE (schedule, enabled) ON crm.job TO crm_admin;

SELECT pg_catalog.pg_extension_config_dump('crm.job', 'WHERE NOT builtin');
-- Directory sync: departments and employees from WeCom, Feishu or DingTalk.
-- crm.sync_directory(platform) queues a run; the notification worker pages
-- through the platform's directory with the platform's enabled app channel
-- (src/directory.c) and hands what it read to crm.directory_apply, which
-- matches departments and employees by their IM ids in one transaction.

ALTER TABLE crm.department
	ADD COLUMN wecom_department_id text,
	ADD COLUMN feishu_department_id text,
	ADD COLUMN dingtalk_department_id text,
	ADD CONSTRAINT department_wecom_department_id_key UNIQUE (wecom_department_id),
	ADD CONSTRAINT department_feishu_department_id_key UNIQUE (feishu_department_id),
	ADD CONSTRAINT department_dingtalk_department_id_key UNIQUE (dingtalk_department_id);
COMMENT ON COLUMN crm.department.feishu_department_id IS 'open_department_id; "0" is the company';
GRANT INSERT (wecom_department_id, feishu_department_id, dingtalk_department_id),
      UPDATE (wecom_department_id, feishu_department_id, dingtalk_department_id) ON crm.department TO crm_user;

-- The directory rewrites everyone's place in the organisation, so which app
-- reads it is crm_admin's choice: a holder of admin.im configures channels,
-- and with a channel (or an organisation on the platform) of their own would
-- otherwise be every administrator there is.  Its credentials stay crm_admin's.
ALTER TABLE crm.im_channel
	ADD COLUMN reads_directory boolean NOT NULL DEFAULT false,
	ADD CONSTRAINT im_channel_reads_directory_check CHECK (NOT reads_directory OR kind = 'app');
CREATE UNIQUE INDEX im_channel_directory_key ON crm.im_channel (platform) WHERE reads_directory;
COMMENT ON COLUMN crm.im_channel.reads_directory IS 'The app that directory sync reads the platform''s organisation with; set by crm_admin';
GRANT SELECT (reads_directory) ON crm.im_channel TO crm_user;
GRANT INSERT (reads_directory), UPDATE (reads_directory) ON crm.im_channel TO crm_admin;

CREATE FUNCTION crm.guard_directory_channel() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.im_channel'::regclass THEN RAISE 'crm.guard_directory_channel() runs only on crm.im_channel, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF (NEW.app_id, NEW.app_secret, NEW.agent_id) IS DISTINCT FROM (OLD.app_id, OLD.app_secret, OLD.agent_id)
	   AND NOT pg_has_role('crm_admin', 'USAGE') THEN
		RAISE EXCEPTION 'role "%" may not change the credentials of IM channel "%", which reads the % directory',
			current_user, crm.clip(NEW.name), NEW.platform
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'Whoever chooses the app that reads the directory chooses the organisation.',
			      HINT = 'A member of crm_admin changes them.';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER im_channel_guard_directory BEFORE UPDATE ON crm.im_channel
	FOR EACH ROW WHEN (OLD.reads_directory) EXECUTE FUNCTION crm.guard_directory_channel();

CREATE TABLE crm.directory_sync (
	id             bigint GENERATED ALWAYS AS IDENTITY,
	platform       text NOT NULL,
	channel_id     bigint NOT NULL,
	requested_at   timestamptz NOT NULL DEFAULT now(),
	requested_by   bigint DEFAULT crm.current_employee_id(),
	started_at     timestamptz,
	finished_at    timestamptz,
	status         text NOT NULL DEFAULT 'queued',
	departments    integer,
	employees      integer,
	created        integer,
	updated        integer,
	deactivated    integer,
	requests       integer,
	error          text,
	CONSTRAINT directory_sync_pkey PRIMARY KEY (id),
	CONSTRAINT directory_sync_platform_check CHECK (platform IN ('wecom', 'feishu', 'dingtalk')),
	CONSTRAINT directory_sync_status_check CHECK (status IN ('queued', 'running', 'done', 'failed'))
);
-- one run at a time per platform
CREATE UNIQUE INDEX directory_sync_active_key ON crm.directory_sync (platform) WHERE status IN ('queued', 'running');
COMMENT ON TABLE crm.directory_sync IS 'Directory sync runs: queued by crm.sync_directory, run by the worker, with what they changed';
COMMENT ON COLUMN crm.directory_sync.departments IS 'Departments the platform listed';
COMMENT ON COLUMN crm.directory_sync.employees IS 'Employees the platform listed';
COMMENT ON COLUMN crm.directory_sync.created IS 'Departments and employees created';
COMMENT ON COLUMN crm.directory_sync.updated IS 'Departments and employees changed (name, place, superior, leader, mobile, active)';
COMMENT ON COLUMN crm.directory_sync.deactivated IS 'Employees the platform no longer lists, now inactive';
ALTER TABLE crm.directory_sync ENABLE ROW LEVEL SECURITY;
CREATE POLICY directory_sync_org_admins ON crm.directory_sync FOR SELECT TO crm_user
	USING (crm.may_administer('admin.org'));
CREATE POLICY directory_sync_queue ON crm.directory_sync FOR INSERT TO crm_user
	WITH CHECK (crm.may_administer('admin.org'));
GRANT SELECT ON crm.directory_sync TO crm_user;
GRANT INSERT (platform) ON crm.directory_sync TO crm_user;
CREATE TRIGGER directory_sync_queued AFTER INSERT ON crm.directory_sync
	FOR EACH STATEMENT EXECUTE FUNCTION crm.wake_worker();

-- A run reads with the platform's app that reads the directory, whoever
-- queues it: nobody names another channel (of their own, pointed at a server
-- of their own) for the worker to trust.
CREATE FUNCTION crm.directory_sync_channel() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.directory_sync'::regclass THEN RAISE 'crm.directory_sync_channel() runs only on crm.directory_sync, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- a restore loads the runs as they were
	IF crm.restoring() THEN
		RETURN NEW;
	END IF;
	NEW.channel_id := (SELECT c.id FROM crm.im_channel c WHERE c.platform = NEW.platform AND c.reads_directory AND c.enabled);
	IF NEW.channel_id IS NULL THEN
		RAISE EXCEPTION 'no enabled % app channel reads the directory', coalesce(crm.clip(NEW.platform), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'The platform is wecom, feishu or dingtalk; a crm_admin marks its app (a crm.im_channel row of kind app, with the directory read permission) reads_directory.';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER directory_sync_channel BEFORE INSERT ON crm.directory_sync
	FOR EACH ROW EXECUTE FUNCTION crm.directory_sync_channel();

-- as the caller: the permission and requested_by are theirs
CREATE FUNCTION crm.sync_directory(platform text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
	run     bigint;
BEGIN
	IF NOT crm.may_administer('admin.org') THEN
		RAISE EXCEPTION 'permission denied to sync the % directory', crm.clip(platform)
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'Directory sync changes the organisation: it needs the admin.org permission.';
	END IF;
	-- a run already waiting will read the directory as it is when it runs
	SELECT s.id INTO run FROM crm.directory_sync s
	 WHERE s.platform = sync_directory.platform AND s.status IN ('queued', 'running');
	IF run IS NOT NULL THEN
		RETURN run;
	END IF;
	INSERT INTO crm.directory_sync (platform) VALUES (sync_directory.platform)
	ON CONFLICT (platform) WHERE status IN ('queued', 'running') DO NOTHING
	RETURNING id INTO run;
	-- queued meanwhile by someone else
	IF run IS NULL THEN
		SELECT s.id INTO run FROM crm.directory_sync s
		 WHERE s.platform = sync_directory.platform AND s.status IN ('queued', 'running');
	END IF;
	RETURN run;
END
$$;
COMMENT ON FUNCTION crm.sync_directory(text) IS 'Queue a directory sync from wecom, feishu or dingtalk; returns the crm.directory_sync id';

-- What the worker read, applied in one transaction.  doc is
--   {"departments": [{"id", "name", "parent", "leader"}],
--    "users": [{"id", "name", "mobile", "departments": [...], "superior", "active"}]}
-- with the platform's ids; the department without a parent is the company.
-- Rows are matched by the platform's id, or adopted when crm already has them
-- without it (the company: crm's only top department; a department: the same
-- name under the same parent; an employee: the same mobile).  Matched rows are
-- updated, new ones created (departments level by level, so that a parent
-- exists before its children), superiors and leaders set where the platform
-- gives them, and employees the platform no longer lists made inactive (never
-- deleted; their records stay theirs until handed over).
CREATE FUNCTION crm.directory_apply(sync_id bigint, doc jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p        text;
	lvl      integer := 0;
	n        integer;
	n_created  integer := 0;
	n_updated  integer := 0;
	n_gone     integer := 0;
BEGIN
	SELECT platform INTO p FROM crm.directory_sync WHERE id = sync_id;
	IF p IS NULL THEN
		RAISE EXCEPTION 'directory sync % does not exist', sync_id USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- a department or user listed twice counts once, as first listed: twice-listed
	-- departments would double the rows of the tree at every level below them
	CREATE TEMP TABLE dir_dept ON COMMIT DROP AS
	WITH RECURSIVE listed AS (
		SELECT DISTINCT ON (x.id) x.id, x.name, x.parent, x.leader
		  FROM ROWS FROM (jsonb_to_recordset(doc -> 'departments') AS (id text, name text, parent text, leader text))
		       WITH ORDINALITY AS x(id, name, parent, leader, n)
		 ORDER BY x.id, x.n
	), tree AS (
		SELECT l.*, 0 AS depth FROM listed l WHERE l.parent IS NULL OR l.parent NOT IN (SELECT id FROM listed)
		UNION ALL
		SELECT l.*, t.depth + 1 FROM listed l JOIN tree t ON l.parent = t.id WHERE t.depth < 50
	)
	SELECT t.*, NULL::bigint AS crm_id FROM tree t;
	CREATE TEMP TABLE dir_user ON COMMIT DROP AS
	SELECT DISTINCT ON (x.id) x.id, x.name, CASE WHEN crm.mobile_valid(m.bare) THEN m.bare END AS mobile,
	       x.departments, x.superior, coalesce(x.active, true) AS active, NULL::bigint AS crm_id
	  FROM ROWS FROM (jsonb_to_recordset(doc -> 'users')
	                  AS (id text, name text, mobile text, departments text[], superior text, active boolean))
	       WITH ORDINALITY AS x(id, name, mobile, departments, superior, active, n),
	       LATERAL (SELECT regexp_replace(x.mobile, '^\+86', '') AS bare) m
	 ORDER BY x.id, x.n;

	-- departments, parents first
	LOOP
		EXIT WHEN NOT EXISTS (SELECT FROM dir_dept x WHERE x.depth = lvl);
		UPDATE dir_dept x SET crm_id = d.id FROM crm.department d
		 WHERE x.depth = lvl AND x.id = CASE p WHEN 'wecom' THEN d.wecom_department_id
		                                 WHEN 'feishu' THEN d.feishu_department_id ELSE d.dingtalk_department_id END;
		UPDATE dir_dept x SET crm_id = d.id FROM crm.department d
		 WHERE x.depth = lvl AND x.crm_id IS NULL
		   AND CASE p WHEN 'wecom' THEN d.wecom_department_id WHEN 'feishu' THEN d.feishu_department_id
		              ELSE d.dingtalk_department_id END IS NULL
		   AND CASE WHEN lvl = 0 THEN d.parent_id IS NULL AND (SELECT count(*) FROM crm.department t WHERE t.parent_id IS NULL) = 1
		            ELSE d.name = x.name AND d.parent_id = (SELECT q.crm_id FROM dir_dept q WHERE q.id = x.parent) END;
		UPDATE crm.department d
		   SET name = coalesce(x.name, d.name),
		       parent_id = CASE WHEN lvl = 0 THEN d.parent_id ELSE parent.crm_id END,
		       wecom_department_id = CASE p WHEN 'wecom' THEN x.id ELSE d.wecom_department_id END,
		       feishu_department_id = CASE p WHEN 'feishu' THEN x.id ELSE d.feishu_department_id END,
		       dingtalk_department_id = CASE p WHEN 'dingtalk' THEN x.id ELSE d.dingtalk_department_id END
		  FROM dir_dept x LEFT JOIN dir_dept parent ON parent.id = x.parent
		 WHERE x.depth = lvl AND d.id = x.crm_id
		   AND (d.name, d.parent_id, CASE p WHEN 'wecom' THEN d.wecom_department_id WHEN 'feishu' THEN d.feishu_department_id
		                                    ELSE d.dingtalk_department_id END)
		       IS DISTINCT FROM (coalesce(x.name, d.name), CASE WHEN lvl = 0 THEN d.parent_id ELSE parent.crm_id END, x.id);
		GET DIAGNOSTICS n = ROW_COUNT;
		n_updated := n_updated + n;
		WITH made AS (
			INSERT INTO crm.department (name, parent_id, wecom_department_id, feishu_department_id, dingtalk_department_id)
			SELECT coalesce(x.name, initcap(p)), parent.crm_id,
			       CASE p WHEN 'wecom' THEN x.id END, CASE p WHEN 'feishu' THEN x.id END, CASE p WHEN 'dingtalk' THEN x.id END
			  FROM dir_dept x LEFT JOIN dir_dept parent ON parent.id = x.parent
			 WHERE x.depth = lvl AND x.crm_id IS NULL
			RETURNING id, CASE p WHEN 'wecom' THEN wecom_department_id WHEN 'feishu' THEN feishu_department_id
			              ELSE dingtalk_department_id END AS im_id
		)
		UPDATE dir_dept x SET crm_id = made.id FROM made WHERE x.id = made.im_id;
		GET DIAGNOSTICS n = ROW_COUNT;
		n_created := n_created + n;
		lvl := lvl + 1;
	END LOOP;

	-- employees: matched by IM id or adopted by a mobile only they have; placed in their first department
	UPDATE dir_user u SET crm_id = e.id FROM crm.employee e
	 WHERE u.id = CASE p WHEN 'wecom' THEN e.wecom_userid WHEN 'feishu' THEN e.feishu_open_id ELSE e.dingtalk_userid END;
	UPDATE dir_user u SET crm_id = e.id FROM crm.employee e
	 WHERE u.crm_id IS NULL AND e.mobile = u.mobile
	   AND CASE p WHEN 'wecom' THEN e.wecom_userid WHEN 'feishu' THEN e.feishu_open_id ELSE e.dingtalk_userid END IS NULL
	   AND (SELECT count(*) FROM crm.employee m WHERE m.mobile = u.mobile) = 1;
	UPDATE crm.employee e
	   SET name = u.name, mobile = coalesce(u.mobile, e.mobile),
	       department_id = coalesce(dept.crm_id, e.department_id), active = u.active,
	       wecom_userid = CASE p WHEN 'wecom' THEN u.id ELSE e.wecom_userid END,
	       feishu_open_id = CASE p WHEN 'feishu' THEN u.id ELSE e.feishu_open_id END,
	       dingtalk_userid = CASE p WHEN 'dingtalk' THEN u.id ELSE e.dingtalk_userid END
	  FROM dir_user u LEFT JOIN dir_dept dept ON dept.id = u.departments[1]
	 WHERE e.id = u.crm_id
	   AND (e.name, e.mobile, e.department_id, e.active,
	        CASE p WHEN 'wecom' THEN e.wecom_userid WHEN 'feishu' THEN e.feishu_open_id ELSE e.dingtalk_userid END)
	       IS DISTINCT FROM (u.name, coalesce(u.mobile, e.mobile), coalesce(dept.crm_id, e.department_id), u.active, u.id);
	GET DIAGNOSTICS n = ROW_COUNT;
	n_updated := n_updated + n;
	WITH made AS (
		INSERT INTO crm.employee (name, mobile, department_id, active, wecom_userid, feishu_open_id, dingtalk_userid)
		SELECT u.name, u.mobile, coalesce(dept.crm_id, (SELECT x.crm_id FROM dir_dept x WHERE x.depth = 0 ORDER BY x.id LIMIT 1)),
		       u.active, CASE p WHEN 'wecom' THEN u.id END, CASE p WHEN 'feishu' THEN u.id END, CASE p WHEN 'dingtalk' THEN u.id END
		  FROM dir_user u LEFT JOIN dir_dept dept ON dept.id = u.departments[1]
		 WHERE u.crm_id IS NULL
		RETURNING id, CASE p WHEN 'wecom' THEN wecom_userid WHEN 'feishu' THEN feishu_open_id ELSE dingtalk_userid END AS im_id
	)
	UPDATE dir_user u SET crm_id = made.id FROM made WHERE u.id = made.im_id;
	GET DIAGNOSTICS n = ROW_COUNT;
	n_created := n_created + n;

	-- superiors and leaders, where the platform names them
	UPDATE crm.employee e SET superior_id = boss.crm_id
	  FROM dir_user u JOIN dir_user boss ON boss.id = u.superior
	 WHERE e.id = u.crm_id AND e.superior_id IS DISTINCT FROM boss.crm_id;
	GET DIAGNOSTICS n = ROW_COUNT;
	n_updated := n_updated + n;
	UPDATE crm.department d SET leader_id = boss.crm_id
	  FROM dir_dept x JOIN dir_user boss ON boss.id = x.leader
	 WHERE d.id = x.crm_id AND d.leader_id IS DISTINCT FROM boss.crm_id;
	GET DIAGNOSTICS n = ROW_COUNT;
	n_updated := n_updated + n;

	-- employees the platform no longer lists
	UPDATE crm.employee e SET active = false
	 WHERE e.active
	   AND CASE p WHEN 'wecom' THEN e.wecom_userid WHEN 'feishu' THEN e.feishu_open_id ELSE e.dingtalk_userid END IS NOT NULL
	   AND NOT EXISTS (SELECT FROM dir_user u WHERE u.crm_id = e.id);
	GET DIAGNOSTICS n_gone = ROW_COUNT;

	UPDATE crm.directory_sync
	   SET status = 'done', finished_at = clock_timestamp(),
	       departments = (SELECT count(*) FROM dir_dept), employees = (SELECT count(*) FROM dir_user),
	       created = n_created, updated = n_updated, deactivated = n_gone
	 WHERE id = sync_id;
END
$$;

-- pg_cron queues a sync of every platform whose directory an enabled app reads (seed 000: every 2 hours)
CREATE FUNCTION crm.run_directory_sync() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	started timestamptz := clock_timestamp();
	queued  integer;
BEGIN
	SELECT count(crm.sync_directory(platform)) INTO queued
	  FROM crm.im_channel WHERE reads_directory AND enabled;
	INSERT INTO crm.job_run (job, started_at, processed, details)
	VALUES ('crm-directory-sync', started, queued, '{}');
	RETURN queued;
END
$$;
INSERT INTO crm.job (name, schedule, command, builtin) VALUES
	('crm-directory-sync', '40 */2 * * *', 'SELECT crm.run_directory_sync()', true);
-- The public pool (公海, seeds 000-004): customers nobody works on wait in a
-- pool, members claim them within limits, and recycling rules send neglected
-- customers back.
--
-- A pool owns its customers through an employee row (crm.employee.is_pool)
-- whose id is the pool's id, so every policy, scope, index and check on
-- owner_id works unchanged: a pool's admins (and scope "all") see its
-- customers as records in their scope, its members browse them through
-- crm.pool_customer and crm.pool_contact with phone numbers masked.

ALTER TABLE crm.settings
	ADD COLUMN holding_limit integer,
	ADD COLUMN daily_claim_limit integer,
	ADD COLUMN timezone text NOT NULL DEFAULT 'Asia/Shanghai',
	ADD CONSTRAINT settings_holding_limit_check CHECK (holding_limit >= 0),
	ADD CONSTRAINT settings_daily_claim_limit_check CHECK (daily_claim_limit >= 0),
	ADD CONSTRAINT settings_timezone_check CHECK (now() AT TIME ZONE timezone IS NOT NULL);
COMMENT ON COLUMN crm.settings.holding_limit IS 'Customers not yet signed an employee may hold when crm.employee.holding_limit is not set (seed 000)';
COMMENT ON COLUMN crm.settings.daily_claim_limit IS 'Customers an employee may claim from pools per day when crm.employee.daily_claim_limit is not set';
COMMENT ON COLUMN crm.settings.timezone IS 'Where the company''s day starts and ends, for daily claim limits';

-- Times in messages, in the company's time zone whatever the session's.
CREATE FUNCTION crm.local_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN (SELECT to_char(t AT TIME ZONE s.timezone, 'YYYY-MM-DD HH24:MI ') || s.timezone FROM crm.settings s);

CREATE TABLE crm.pool (
	id                     bigint NOT NULL,
	name                   text NOT NULL,
	is_default             boolean NOT NULL DEFAULT false,
	open_to_all            boolean NOT NULL DEFAULT false,
	active                 boolean NOT NULL DEFAULT true,
	mask_phones            boolean NOT NULL DEFAULT true,
	recycle_cooldown_days  integer NOT NULL DEFAULT 0,
	release_cooldown_days  integer NOT NULL DEFAULT 0,
	freeze_after_releases  integer,
	freeze_period_days     integer NOT NULL DEFAULT 30,
	freeze_days            integer NOT NULL DEFAULT 7,
	created_at             timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT pool_pkey PRIMARY KEY (id),
	CONSTRAINT pool_employee_fkey FOREIGN KEY (id) REFERENCES crm.employee (id),
	CONSTRAINT pool_name_key UNIQUE (name),
	CONSTRAINT pool_name_check CHECK (crm.check_length(name, 200, 'pool.name') AND btrim(name) <> ''),
	CONSTRAINT pool_days_check CHECK (recycle_cooldown_days >= 0 AND release_cooldown_days >= 0
	                                  AND freeze_period_days > 0 AND freeze_days > 0),
	CONSTRAINT pool_freeze_after_releases_check CHECK (freeze_after_releases > 0),
	CONSTRAINT pool_default_active CHECK (active OR NOT is_default)
);
CREATE UNIQUE INDEX pool_one_default ON crm.pool (is_default) WHERE is_default;
COMMENT ON TABLE crm.pool IS 'Public pools (公海); the id is the crm.employee row that owns the pool''s customers';
COMMENT ON COLUMN crm.pool.is_default IS 'Where released and recycled customers go when nothing names another pool';
COMMENT ON COLUMN crm.pool.open_to_all IS 'Every employee is a member, as well as those crm.pool_member lists';
COMMENT ON COLUMN crm.pool.recycle_cooldown_days IS 'Days a former owner may not claim back a customer recycled from them (seed 000)';
COMMENT ON COLUMN crm.pool.release_cooldown_days IS 'Days a former owner may not claim back a customer they released (seed 000)';
COMMENT ON COLUMN crm.pool.freeze_after_releases IS 'Releases within freeze_period_days after which an employee may not claim from this pool for freeze_days (seed 002)';

-- Members and admins, by employee or by department (with its sub-departments).
CREATE TABLE crm.pool_member (
	id             bigint GENERATED ALWAYS AS IDENTITY,
	pool_id        bigint NOT NULL,
	employee_id    bigint,
	department_id  bigint,
	is_admin       boolean NOT NULL DEFAULT false,
	CONSTRAINT pool_member_pkey PRIMARY KEY (id),
	CONSTRAINT pool_member_pool_fkey FOREIGN KEY (pool_id) REFERENCES crm.pool (id) ON DELETE CASCADE,
	CONSTRAINT pool_member_employee_fkey FOREIGN KEY (employee_id) REFERENCES crm.employee (id),
	CONSTRAINT pool_member_department_fkey FOREIGN KEY (department_id) REFERENCES crm.department (id) ON DELETE CASCADE,
	CONSTRAINT pool_member_one_check CHECK ((employee_id IS NULL) <> (department_id IS NULL)),
	CONSTRAINT pool_member_key UNIQUE NULLS NOT DISTINCT (pool_id, employee_id, department_id)
);
CREATE INDEX pool_member_employee_idx ON crm.pool_member (employee_id);
CREATE INDEX pool_member_department_idx ON crm.pool_member (department_id);
COMMENT ON TABLE crm.pool_member IS 'Who may see and claim from a pool; is_admin: who assigns its customers and sees them unmasked';

-- Everyone's pools, computed from crm.pool and crm.pool_member.
-- security_invoker: read by staff under the tables' own policies (crm's
-- functions and views read it as the owner)
CREATE VIEW crm.pool_membership WITH (security_invoker) AS
WITH RECURSIVE tree AS (
	SELECT m.pool_id, m.is_admin, m.department_id FROM crm.pool_member m WHERE m.department_id IS NOT NULL
	UNION
	SELECT t.pool_id, t.is_admin, d.id FROM tree t JOIN crm.department d ON d.parent_id = t.department_id
)
SELECT x.pool_id, x.employee_id, bool_or(x.is_admin) AS is_admin
  FROM (SELECT t.pool_id, e.id AS employee_id, t.is_admin
          FROM tree t JOIN crm.employee e ON e.department_id = t.department_id
        UNION ALL
        SELECT m.pool_id, m.employee_id, m.is_admin FROM crm.pool_member m WHERE m.employee_id IS NOT NULL
        UNION ALL
        SELECT p.id, e.id, false FROM crm.pool p JOIN crm.employee e ON NOT e.is_pool WHERE p.open_to_all) x
 GROUP BY x.pool_id, x.employee_id;
COMMENT ON VIEW crm.pool_membership IS 'Each employee''s pools, departments expanded to their sub-departments';

-- A pool's employee row is made with it, follows its name and active flag,
-- and outlives it never: pools are deactivated, not deleted.
CREATE FUNCTION crm.pool_holder() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.pool'::regclass THEN RAISE 'crm.pool_holder() runs only on crm.pool, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF TG_OP = 'DELETE' THEN
		RAISE EXCEPTION 'pool % (%) cannot be deleted', OLD.id, crm.clip(OLD.name)
			USING ERRCODE = 'restrict_violation',
			      DETAIL = 'A pool''s history names it, like an employee''s.',
			      HINT = format('Deactivate it instead: UPDATE crm.pool SET active = false WHERE id = %s.', OLD.id);
	END IF;
	-- before the pool's employee row takes the name, so that the error names the pool's column
	PERFORM crm.check_length(NEW.name, 200, 'pool.name');
	IF TG_OP = 'INSERT' THEN
		IF NEW.id IS NULL THEN
			INSERT INTO crm.employee (name, department_id, is_pool, in_statistics, active)
			VALUES (NEW.name, NULL, true, false, NEW.active) RETURNING id INTO NEW.id;
		ELSIF NOT EXISTS (SELECT FROM crm.employee WHERE id = NEW.id AND is_pool) THEN
			RAISE EXCEPTION 'pool % (%) needs an employee row made for a pool', NEW.id, crm.clip(NEW.name)
				USING ERRCODE = 'foreign_key_violation',
				      HINT = 'Leave crm.pool.id out: inserting a pool makes its row.';
		END IF;
		RETURN NEW;
	END IF;
	IF NEW.id <> OLD.id THEN
		RAISE EXCEPTION 'pool % (%) cannot change its id', OLD.id, crm.clip(OLD.name) USING ERRCODE = 'check_violation';
	END IF;
	IF OLD.active AND NOT NEW.active AND EXISTS (SELECT FROM crm.customer WHERE owner_id = OLD.id) THEN
		RAISE EXCEPTION 'pool % (%) still holds customers', OLD.id, crm.clip(OLD.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Assign or move its customers to another pool first.';
	END IF;
	UPDATE crm.employee SET name = NEW.name, active = NEW.active
	 WHERE id = NEW.id AND (name, active) IS DISTINCT FROM (NEW.name, NEW.active);
	RETURN NEW;
END
$$;
CREATE TRIGGER pool_holder BEFORE INSERT OR UPDATE OR DELETE ON crm.pool
	FOR EACH ROW EXECUTE FUNCTION crm.pool_holder();

-- A pool's employee row changes with its pool, never by itself.
CREATE FUNCTION crm.guard_pool_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.employee'::regclass THEN RAISE 'crm.guard_pool_row() runs only on crm.employee, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF NOT OLD.is_pool THEN
		RAISE EXCEPTION 'employee % (%) cannot become a pool''s row', OLD.id, crm.clip(OLD.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Insert a crm.pool row: it makes its own.';
	END IF;
	RAISE EXCEPTION 'employee % is the row of pool "%"', OLD.id, crm.clip(OLD.name)
		USING ERRCODE = 'object_not_in_prerequisite_state',
		      HINT = format('Change the pool instead: UPDATE crm.pool SET ... WHERE id = %s.', OLD.id);
END
$$;
CREATE TRIGGER employee_pool_row BEFORE UPDATE ON crm.employee
	FOR EACH ROW WHEN ((OLD.is_pool OR NEW.is_pool) AND pg_trigger_depth() = 0)
	EXECUTE FUNCTION crm.guard_pool_row();

CREATE FUNCTION crm.check_pool_member() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.pool_member'::regclass THEN RAISE 'crm.check_pool_member() runs only on crm.pool_member, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF EXISTS (SELECT FROM crm.employee WHERE id = NEW.employee_id AND is_pool) THEN
		RAISE EXCEPTION 'pool % cannot have pool % as a member', NEW.pool_id, NEW.employee_id
			USING ERRCODE = 'check_violation', HINT = 'Members are people or departments.';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER pool_member_valid BEFORE INSERT OR UPDATE ON crm.pool_member
	FOR EACH ROW EXECUTE FUNCTION crm.check_pool_member();
-- an administrator does not make themselves a pool's member or admin (src/sql/35_access.sql)
CREATE TRIGGER pool_member_guard_own BEFORE INSERT OR UPDATE OR DELETE ON crm.pool_member
	FOR EACH ROW EXECUTE FUNCTION crm.guard_own_access();
CREATE TRIGGER pool_guard_own BEFORE INSERT OR UPDATE OF open_to_all ON crm.pool
	FOR EACH ROW EXECUTE FUNCTION crm.guard_own_access();

DO $org$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['pool', 'pool_member'] LOOP
		EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OR DELETE ON crm.%I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin(''admin.rules'')', t || '_require_admin', t);
		-- pool admins' scopes are part of the cached organisation (src/scope.c)
		EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.%I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.org_changed()', t || '_org_changed', t);
		EXECUTE format('ALTER TABLE crm.%I ENABLE ALWAYS TRIGGER %I', t, t || '_org_changed');
		EXECUTE format('GRANT SELECT, DELETE ON crm.%I TO crm_user', t);
	END LOOP;
END
$org$;
-- a pool's id is its employee row's, which crm.pool_holder makes
GRANT INSERT (name, is_default, open_to_all, active, mask_phones, recycle_cooldown_days, release_cooldown_days,
              freeze_after_releases, freeze_period_days, freeze_days),
      UPDATE (name, is_default, open_to_all, active, mask_phones, recycle_cooldown_days, release_cooldown_days,
              freeze_after_releases, freeze_period_days, freeze_days)
	ON crm.pool TO crm_user;
GRANT INSERT (pool_id, employee_id, department_id, is_admin), UPDATE (pool_id, employee_id, department_id, is_admin)
	ON crm.pool_member TO crm_user;
GRANT SELECT ON crm.pool_membership TO crm_user;
GRANT UPDATE (holding_limit, daily_claim_limit, timezone) ON crm.settings TO crm_user;

-- The default pool, made when first needed (a release or recycling with no
-- pool named), so that a restore never meets a second one.
CREATE FUNCTION crm.default_pool() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pool bigint;
BEGIN
	SELECT id INTO pool FROM crm.pool WHERE is_default;
	IF NOT FOUND THEN
		INSERT INTO crm.pool (name, is_default, open_to_all) VALUES ('公海', true, true)
		ON CONFLICT (is_default) WHERE is_default DO NOTHING;
		SELECT id INTO pool FROM crm.pool WHERE is_default;
	END IF;
	RETURN pool;
END
$$;

INSERT INTO crm.dictionary (kind, code, label, position, builtin)
SELECT 'pool_release_reason', code, label, n, true
  FROM unnest('{no_need,no_budget,unreachable,competitor,duplicate,other}'::text[],
              '{暂无需求,预算不足,联系不上,已选竞品,重复客户,其他}'::text[]) WITH ORDINALITY AS v(code, label, n);

INSERT INTO crm.notification_event (event, description) VALUES
	('pool.assigned',       'A pool admin assigned you a customer from a public pool'),
	('pool.recycled',       'Customers of yours were recycled to a public pool'),
	('pool.recycle_soon',   'Customers of yours will be recycled to a public pool soon');

-- Each customer's recycling clock, beside the customer row: updating it must
-- not rewrite the customer (its generated keys and many indexes).  A customer
-- gets a row once it has a deadline or a new owner or status; until then it
-- has been owned and in its status since it was created, so that inserting
-- customers while no rule is enabled costs nothing here.
CREATE TABLE crm.customer_recycling (
	customer_id   bigint NOT NULL,
	owned_since   timestamptz NOT NULL,
	status_since  timestamptz NOT NULL,
	recycle_at    timestamptz,
	rule_id       bigint,
	reminded_for  timestamptz,
	CONSTRAINT customer_recycling_pkey PRIMARY KEY (customer_id),
	CONSTRAINT customer_recycling_customer_fkey FOREIGN KEY (customer_id) REFERENCES crm.customer (id) ON DELETE CASCADE
);
CREATE INDEX customer_recycling_due_idx ON crm.customer_recycling (recycle_at) WHERE recycle_at IS NOT NULL;
COMMENT ON TABLE crm.customer_recycling IS 'When each customer goes back to a pool (recycle_at) and under which rule; kept by triggers. No row: owned and in its status since it was created, no deadline';
COMMENT ON COLUMN crm.customer_recycling.owned_since IS 'When the current owner got the customer';
COMMENT ON COLUMN crm.customer_recycling.reminded_for IS 'The deadline the owner was last reminded of (reminders are sent once per deadline)';
ALTER TABLE crm.customer_recycling ENABLE ROW LEVEL SECURITY;
CREATE POLICY customer_recycling_visible ON crm.customer_recycling FOR SELECT TO crm_user
	USING (EXISTS (SELECT FROM crm.customer c WHERE c.id = customer_id));
GRANT SELECT ON crm.customer_recycling TO crm_user;

-- Time spent in each earlier status under the current owner (no_deal rules
-- leave out time in their exempt statuses).
CREATE TABLE crm.customer_status_time (
	customer_id  bigint NOT NULL,
	status_id    bigint NOT NULL,
	spent        interval NOT NULL,
	CONSTRAINT customer_status_time_pkey PRIMARY KEY (customer_id, status_id),
	CONSTRAINT customer_status_time_customer_fkey FOREIGN KEY (customer_id) REFERENCES crm.customer (id) ON DELETE CASCADE
);
ALTER TABLE crm.customer_status_time ENABLE ROW LEVEL SECURITY;

-- Recycling rules (seeds 000, 002).
CREATE TABLE crm.recycle_rule (
	id                   bigint GENERATED ALWAYS AS IDENTITY,
	name                 text NOT NULL,
	kind                 text NOT NULL,
	days                 integer NOT NULL,
	pool_id              bigint,
	status_ids           bigint[] NOT NULL DEFAULT '{}',
	exempt_status_ids    bigint[] NOT NULL DEFAULT '{}',
	department_ids       bigint[] NOT NULL DEFAULT '{}',
	employee_ids         bigint[] NOT NULL DEFAULT '{}',
	exempt_employee_ids  bigint[] NOT NULL DEFAULT '{}',
	include_won          boolean NOT NULL DEFAULT false,
	remind_days_before   integer NOT NULL DEFAULT 0,
	enabled              boolean NOT NULL DEFAULT true,
	CONSTRAINT recycle_rule_pkey PRIMARY KEY (id),
	CONSTRAINT recycle_rule_pool_fkey FOREIGN KEY (pool_id) REFERENCES crm.pool (id),
	CONSTRAINT recycle_rule_name_key UNIQUE (name),
	CONSTRAINT recycle_rule_name_length CHECK (crm.check_length(name, 200, 'recycle_rule.name')),
	CONSTRAINT recycle_rule_kind_check CHECK (kind IN ('no_follow_up', 'no_deal')),
	CONSTRAINT recycle_rule_days_check CHECK (days > 0),
	CONSTRAINT recycle_rule_remind_check CHECK (remind_days_before >= 0 AND remind_days_before < days)
);
CREATE INDEX recycle_rule_pool_idx ON crm.recycle_rule (pool_id);
COMMENT ON TABLE crm.recycle_rule IS 'When customers go back to a pool: no_follow_up (N days without a follow-up while in status_ids) or no_deal (N days owned without signing, not counting exempt statuses)';
COMMENT ON COLUMN crm.recycle_rule.pool_id IS 'Where the rule sends customers; NULL: the default pool';
COMMENT ON COLUMN crm.recycle_rule.department_ids IS 'Owners the rule applies to, by department (with sub-departments) or employee_ids; both empty: everyone';
COMMENT ON COLUMN crm.recycle_rule.include_won IS 'Whether signed customers (the final status) are recycled too (no_follow_up only)';
COMMENT ON COLUMN crm.recycle_rule.remind_days_before IS 'Days before the deadline the owner is reminded, once per deadline (0: never)';

CREATE FUNCTION crm.check_recycle_rule() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	bad bigint[];
BEGIN
	IF TG_RELID <> 'crm.recycle_rule'::regclass THEN RAISE 'crm.check_recycle_rule() runs only on crm.recycle_rule, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF NEW.days IS NOT NULL AND NEW.days <= 0 THEN
		RAISE EXCEPTION 'recycling rule "%" needs a positive number of days, not %', crm.clip(NEW.name), NEW.days
			USING ERRCODE = 'check_violation', HINT = 'Give days > 0; disable the rule (enabled = false) to stop it.';
	END IF;
	IF NEW.remind_days_before < 0 OR NEW.remind_days_before >= NEW.days THEN
		RAISE EXCEPTION 'recycling rule "%" reminds % days before a deadline of % days', crm.clip(NEW.name), NEW.remind_days_before, NEW.days
			USING ERRCODE = 'check_violation', HINT = 'Give remind_days_before from 0 (no reminder) to days - 1.';
	END IF;
	bad := ARRAY(SELECT s FROM unnest(NEW.status_ids || NEW.exempt_status_ids) s
	              WHERE NOT EXISTS (SELECT FROM crm.customer_status t WHERE t.id = s));
	IF bad <> '{}' THEN
		RAISE EXCEPTION 'recycling rule "%" names unknown customer statuses %', crm.clip(NEW.name), crm.clip(bad::text)
			USING ERRCODE = 'foreign_key_violation', HINT = 'Name statuses of crm.customer_status.';
	END IF;
	IF NEW.kind = 'no_deal' AND NEW.status_ids <> '{}' OR NEW.kind = 'no_follow_up' AND NEW.exempt_status_ids <> '{}' THEN
		RAISE EXCEPTION 'recycling rule "%" of kind % cannot have %', crm.clip(NEW.name), NEW.kind,
			CASE NEW.kind WHEN 'no_deal' THEN 'status_ids' ELSE 'exempt_status_ids' END
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'no_follow_up rules watch status_ids; no_deal rules leave out time in exempt_status_ids.';
	END IF;
	bad := ARRAY(SELECT d FROM unnest(NEW.department_ids) d WHERE NOT EXISTS (SELECT FROM crm.department t WHERE t.id = d));
	IF bad <> '{}' THEN
		RAISE EXCEPTION 'recycling rule "%" names unknown departments %', crm.clip(NEW.name), crm.clip(bad::text)
			USING ERRCODE = 'foreign_key_violation', HINT = 'Name departments of crm.department.';
	END IF;
	bad := ARRAY(SELECT e FROM unnest(NEW.employee_ids || NEW.exempt_employee_ids) e
	              WHERE NOT EXISTS (SELECT FROM crm.employee t WHERE t.id = e AND NOT t.is_pool));
	IF bad <> '{}' THEN
		RAISE EXCEPTION 'recycling rule "%" names unknown employees %', crm.clip(NEW.name), crm.clip(bad::text)
			USING ERRCODE = 'foreign_key_violation', HINT = 'Name employees of crm.employee.';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER recycle_rule_valid BEFORE INSERT OR UPDATE ON crm.recycle_rule
	FOR EACH ROW EXECUTE FUNCTION crm.check_recycle_rule();
CREATE TRIGGER recycle_rule_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.recycle_rule
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('admin.rules');
GRANT SELECT, DELETE ON crm.recycle_rule TO crm_user;
GRANT INSERT (name, kind, days, pool_id, status_ids, exempt_status_ids, department_ids, employee_ids,
              exempt_employee_ids, include_won, remind_days_before, enabled),
      UPDATE (name, kind, days, pool_id, status_ids, exempt_status_ids, department_ids, employee_ids,
              exempt_employee_ids, include_won, remind_days_before, enabled)
	ON crm.recycle_rule TO crm_user;

-- The employees a rule applies to.
CREATE FUNCTION crm.recycle_rule_employees(department_ids bigint[], employee_ids bigint[], exempt bigint[])
	RETURNS TABLE (employee_id bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
	WITH RECURSIVE tree AS (
		SELECT unnest(department_ids) AS id
		UNION
		SELECT d.id FROM tree t JOIN crm.department d ON d.parent_id = t.id
	)
	SELECT e.id FROM crm.employee e
	 WHERE NOT e.is_pool AND NOT e.id = ANY (exempt)
	   AND (cardinality(department_ids) = 0 AND cardinality(employee_ids) = 0
	        OR e.id = ANY (employee_ids) OR e.department_id IN (SELECT id FROM tree))
$$;

-- The one definition of when a customer goes back to a pool: the earliest
-- deadline of the enabled rules that apply to its owner.  Locked customers,
-- pool customers and signed ones (unless a no_follow_up rule includes them)
-- have none.  Filter on customer_id or owner_id: both reach the customer scan.
CREATE VIEW crm.recycle_deadline AS
WITH applies AS (
	SELECT r.id AS rule_id, r.kind, r.days, r.status_ids, r.exempt_status_ids, r.include_won, x.employee_id
	  FROM crm.recycle_rule r
	 CROSS JOIN LATERAL crm.recycle_rule_employees(r.department_ids, r.employee_ids, r.exempt_employee_ids) x
	 WHERE r.enabled
)
SELECT DISTINCT ON (c.id, c.owner_id) c.id AS customer_id, c.owner_id, a.rule_id,
       k.customer_id IS NOT NULL AS kept, coalesce(k.owned_since, c.created_at) AS owned_since,
       coalesce(k.status_since, c.created_at) AS status_since,
       CASE a.kind
       WHEN 'no_follow_up' THEN greatest(c.last_follow_up_at, coalesce(k.owned_since, c.created_at)) + make_interval(days => a.days)
       WHEN 'no_deal' THEN coalesce(k.owned_since, c.created_at) + make_interval(days => a.days)
            + CASE WHEN a.exempt_status_ids = '{}' THEN interval '0'
                   ELSE coalesce((SELECT sum(t.spent) FROM crm.customer_status_time t
                                   WHERE t.customer_id = c.id AND t.status_id = ANY (a.exempt_status_ids)), interval '0') END
       END AS recycle_at
  FROM crm.customer c
  JOIN crm.customer_status s ON s.id = c.status_id
  LEFT JOIN crm.customer_recycling k ON k.customer_id = c.id
  LEFT JOIN applies a ON a.employee_id = c.owner_id AND NOT c.locked
        AND CASE a.kind
            WHEN 'no_follow_up' THEN (a.status_ids = '{}' OR c.status_id = ANY (a.status_ids)) AND (a.include_won OR NOT s.is_final)
            ELSE NOT s.is_final AND NOT c.status_id = ANY (a.exempt_status_ids) END
 ORDER BY c.id, c.owner_id, recycle_at NULLS LAST;
COMMENT ON VIEW crm.recycle_deadline IS 'When each customer is due back in a pool and by which rule, computed now; crm.customer_recycling keeps it';

-- Bring the kept deadlines of these customers (or of these owners' customers)
-- up to date: one pass over the view, updating the rows there are and adding
-- those a customer without one now needs.
CREATE FUNCTION crm.recompute_recycling(customer_ids bigint[], owner_ids bigint[] DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
	n bigint;
BEGIN
	WITH d AS MATERIALIZED (
		SELECT * FROM crm.recycle_deadline d
		 WHERE d.customer_id = ANY (customer_ids) OR d.owner_id = ANY (owner_ids)
	), kept AS (
		UPDATE crm.customer_recycling k SET recycle_at = d.recycle_at, rule_id = d.rule_id
		  FROM d
		 WHERE d.kept AND k.customer_id = d.customer_id
		   AND (k.recycle_at, k.rule_id) IS DISTINCT FROM (d.recycle_at, d.rule_id)
		RETURNING 1
	), added AS (
		INSERT INTO crm.customer_recycling (customer_id, owned_since, status_since, recycle_at, rule_id)
		SELECT d.customer_id, d.owned_since, d.status_since, d.recycle_at, d.rule_id
		  FROM d WHERE NOT d.kept AND d.recycle_at IS NOT NULL
		RETURNING 1
	)
	SELECT (SELECT count(*) FROM kept) + (SELECT count(*) FROM added) INTO n;
	RETURN n;
END
$$;

-- New customers get a deadline when a rule applies.  (A restore brings the
-- clocks with it.)
CREATE FUNCTION crm.customer_clock_start() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.customer'::regclass THEN RAISE 'crm.customer_clock_start() runs only on crm.customer, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF NOT crm.restoring() AND EXISTS (SELECT FROM crm.recycle_rule WHERE enabled) THEN
		PERFORM crm.recompute_recycling(ARRAY(SELECT id FROM new_rows));
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER customer_clock_start AFTER INSERT ON crm.customer
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION crm.customer_clock_start();

-- Changes of owner, status, lock or last follow-up move the clock.  An owner
-- change into or out of a pool takes the contacts along; every owner change
-- is written to the owner history: crm.owner_change says what it was
-- (the pool's functions set it); without it, a change out of a pool is an
-- assignment, one into a pool a release, any other a transfer.
CREATE FUNCTION crm.customer_clock_move() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
	labelled   text := nullif(current_setting('crm.owner_change'), '');
	why        text := nullif(current_setting('crm.owner_change_reason'), '');
	pools      bigint[] := ARRAY(SELECT id FROM crm.pool);
	changed    bigint[];	-- owner, status, lock or last follow-up changed, and not into a pool
	moved      bigint[];	-- owner changed; with from_owner and to_owner
	from_owner bigint[];
	to_owner   bigint[];
	restatus   bigint[];	-- status changed, owner kept; with old_status
	old_status bigint[];
	actor      bigint;
BEGIN
	IF TG_RELID <> 'crm.customer'::regclass THEN RAISE 'crm.customer_clock_move() runs only on crm.customer, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	-- the transition tables are read once, into arrays
	SELECT array_agg(n.id) FILTER (WHERE n.owner_id <> ALL (pools)),
	       array_agg(n.id) FILTER (WHERE n.owner_id <> o.owner_id),
	       array_agg(o.owner_id) FILTER (WHERE n.owner_id <> o.owner_id),
	       array_agg(n.owner_id) FILTER (WHERE n.owner_id <> o.owner_id),
	       array_agg(n.id) FILTER (WHERE n.owner_id = o.owner_id AND n.status_id <> o.status_id),
	       array_agg(o.status_id) FILTER (WHERE n.owner_id = o.owner_id AND n.status_id <> o.status_id)
	  INTO changed, moved, from_owner, to_owner, restatus, old_status
	  FROM new_rows n JOIN old_rows o ON o.id = n.id
	 WHERE (n.owner_id, n.status_id, n.locked, n.last_follow_up_at) IS DISTINCT FROM
	       (o.owner_id, o.status_id, o.locked, o.last_follow_up_at);

	IF moved IS NOT NULL THEN
		actor := crm.invoking_employee_id();
		INSERT INTO crm.customer_owner_change (customer_id, kind, from_owner, to_owner, pool_id, rule_id, reason, changed_by)
		SELECT m.id, x.kind, m.from_owner, m.to_owner,
		       CASE WHEN m.to_owner = ANY (pools) THEN m.to_owner WHEN m.from_owner = ANY (pools) THEN m.from_owner END,
		       CASE WHEN x.kind = 'recycle' THEN r.id END,
		       CASE WHEN x.kind = 'recycle' THEN r.reason ELSE why END,
		       actor
		  FROM unnest(moved, from_owner, to_owner) AS m(id, from_owner, to_owner)
		  LEFT JOIN crm.customer_recycling k ON k.customer_id = m.id
		  LEFT JOIN (SELECT r.id, crm.describe_recycle_rule(r) AS reason FROM crm.recycle_rule r) r ON r.id = k.rule_id
		 CROSS JOIN LATERAL (SELECT coalesce(labelled, CASE WHEN m.from_owner = ANY (pools) THEN 'assign'
		                                                 WHEN m.to_owner = ANY (pools) THEN 'release' ELSE 'transfer' END) AS kind) x;
		-- into or out of a pool, contacts go with their customer, and a pool
		-- customer is nobody's to share.  Every trigger on contacts sees the
		-- move: crm's own stamp it and leave it out of the operation log
		-- (the owner history has it), a DBA's run as usual.
		UPDATE crm.contact k SET owner_id = m.to_owner
		  FROM unnest(moved, from_owner, to_owner) AS m(id, from_owner, to_owner)
		 WHERE k.customer_id = m.id AND k.owner_id <> m.to_owner
		   AND (m.to_owner = ANY (pools) OR m.from_owner = ANY (pools));
		IF EXISTS (SELECT FROM crm.team_member WHERE record_type = 'customer') THEN
			DELETE FROM crm.team_member t USING unnest(moved, to_owner) AS m(id, to_owner)
			 WHERE t.record_type = 'customer' AND t.record_id = m.id AND m.to_owner = ANY (pools);
		END IF;
		-- a new owner starts afresh (the deadline follows below; a pool has none)
		IF EXISTS (SELECT FROM crm.customer_status_time) THEN
			DELETE FROM crm.customer_status_time WHERE customer_id = ANY (moved);
		END IF;
		INSERT INTO crm.customer_recycling AS k (customer_id, owned_since, status_since)
		SELECT m.id, now(), now() FROM unnest(moved, to_owner) AS m(id, to_owner)
		ON CONFLICT (customer_id) DO UPDATE
		   SET owned_since = now(), status_since = now(), reminded_for = NULL, recycle_at = NULL, rule_id = NULL;
	END IF;
	-- a kept customer that changed status banks the time spent in the old one
	IF restatus IS NOT NULL THEN
		INSERT INTO crm.customer_status_time AS t (customer_id, status_id, spent)
		SELECT m.id, m.status_id, now() - coalesce(k.status_since, c.created_at)
		  FROM unnest(restatus, old_status) AS m(id, status_id)
		  JOIN crm.customer c ON c.id = m.id
		  LEFT JOIN crm.customer_recycling k ON k.customer_id = m.id
		ON CONFLICT (customer_id, status_id) DO UPDATE SET spent = t.spent + excluded.spent;
		INSERT INTO crm.customer_recycling AS k (customer_id, owned_since, status_since)
		SELECT c.id, c.created_at, now() FROM crm.customer c WHERE c.id = ANY (restatus)
		ON CONFLICT (customer_id) DO UPDATE SET status_since = now();
	END IF;

	IF changed IS NOT NULL THEN
		PERFORM crm.recompute_recycling(changed);
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER customer_clock_move AFTER UPDATE ON crm.customer
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION crm.customer_clock_move();

CREATE FUNCTION crm.describe_recycle_rule(r crm.recycle_rule) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
RETURN format('%s: %s', crm.clip(r.name), CASE r.kind WHEN 'no_follow_up' THEN format('%s days without a follow-up', r.days)
                                            ELSE format('%s days without signing', r.days) END);

-- A rule edit recomputes, in one statement, the customers of every owner the
-- rule applied to before or applies to now.
CREATE FUNCTION crm.recycle_rule_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owners bigint[];
BEGIN
	IF TG_RELID <> 'crm.recycle_rule'::regclass THEN RAISE 'crm.recycle_rule_changed() runs only on crm.recycle_rule, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	IF TG_OP = 'INSERT' THEN
		owners := ARRAY(SELECT DISTINCT x.employee_id FROM new_rules r,
		                LATERAL crm.recycle_rule_employees(r.department_ids, r.employee_ids, '{}') x);
	ELSIF TG_OP = 'UPDATE' THEN
		owners := ARRAY(SELECT DISTINCT x.employee_id
		                  FROM (SELECT * FROM old_rules UNION ALL SELECT * FROM new_rules) r,
		                LATERAL crm.recycle_rule_employees(r.department_ids, r.employee_ids, '{}') x);
	ELSE
		owners := ARRAY(SELECT DISTINCT x.employee_id FROM old_rules r,
		                LATERAL crm.recycle_rule_employees(r.department_ids, r.employee_ids, '{}') x);
	END IF;
	PERFORM crm.recompute_recycling(NULL, owners);
	RETURN NULL;
END
$$;
CREATE TRIGGER recycle_rule_inserted AFTER INSERT ON crm.recycle_rule
	REFERENCING NEW TABLE AS new_rules FOR EACH STATEMENT EXECUTE FUNCTION crm.recycle_rule_changed();
CREATE TRIGGER recycle_rule_updated AFTER UPDATE ON crm.recycle_rule
	REFERENCING OLD TABLE AS old_rules NEW TABLE AS new_rules FOR EACH STATEMENT EXECUTE FUNCTION crm.recycle_rule_changed();
CREATE TRIGGER recycle_rule_deleted AFTER DELETE ON crm.recycle_rule
	REFERENCING OLD TABLE AS old_rules FOR EACH STATEMENT EXECUTE FUNCTION crm.recycle_rule_changed();

-- Rules name departments: an employee who moves, or a department that moves,
-- may fall under other rules.  Once per statement, however many rows it
-- moves: the employees who moved, or those in the moved departments' trees
-- (no one else's chain of departments changed).
CREATE FUNCTION crm.org_moved_recycling() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owners bigint[];
BEGIN
	IF TG_RELID <> ALL ('{crm.department,crm.employee}'::regclass[]) THEN RAISE 'crm.org_moved_recycling() runs only on crm.department, crm.employee, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() OR NOT EXISTS (SELECT FROM crm.recycle_rule WHERE enabled AND department_ids <> '{}') THEN
		RETURN NULL;
	END IF;
	IF TG_TABLE_NAME = 'employee' THEN
		owners := ARRAY(SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
		                 WHERE n.department_id IS DISTINCT FROM o.department_id);
	ELSE
		owners := ARRAY(WITH RECURSIVE tree AS (
		                	SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
		                	 WHERE n.parent_id IS DISTINCT FROM o.parent_id
		                	UNION
		                	SELECT d.id FROM tree t JOIN crm.department d ON d.parent_id = t.id
		                )
		                SELECT e.id FROM crm.employee e WHERE NOT e.is_pool AND e.department_id IN (SELECT id FROM tree));
	END IF;
	IF owners <> '{}' THEN
		PERFORM crm.recompute_recycling(NULL, owners);
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER employee_moved_recycling AFTER UPDATE ON crm.employee
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION crm.org_moved_recycling();
CREATE TRIGGER department_moved_recycling AFTER UPDATE ON crm.department
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION crm.org_moved_recycling();

-- Members browse a pool here: phone numbers and e-mail addresses are masked
-- (unless the pool says not to, or the member is its admin) until claimed.
CREATE FUNCTION crm.mask_phone(phone text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN length(phone) >= 8 THEN left(phone, 3) || repeat('*', length(phone) - 7) || right(phone, 4)
            ELSE regexp_replace(phone, '.', '*', 'g') END;
CREATE FUNCTION crm.mask_email(email text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN left(email, 1) || '***' || substr(email, strpos(email, '@'));

CREATE VIEW crm.pool_customer WITH (security_barrier) AS
SELECT c.id, c.name, c.kind, p.id AS pool_id, p.name AS pool_name,
       CASE WHEN p.mask_phones AND NOT m.is_admin THEN crm.mask_phone(c.phone) ELSE c.phone END AS phone,
       c.uscc, c.industry, c.source, c.level, c.status_id, c.last_follow_up_at,
       coalesce(k.owned_since, c.created_at) AS in_pool_since, c.created_at
  FROM crm.pool_membership m
  JOIN crm.pool p ON p.id = m.pool_id AND p.active
  JOIN crm.customer c ON c.owner_id = p.id
  LEFT JOIN crm.customer_recycling k ON k.customer_id = c.id
 WHERE m.employee_id = crm.current_employee_id();
COMMENT ON VIEW crm.pool_customer IS 'The customers of my pools, phone numbers masked until claimed';

CREATE VIEW crm.pool_contact WITH (security_barrier) AS
SELECT t.id, t.customer_id, t.name, t.title, t.is_decision_maker, p.id AS pool_id,
       CASE WHEN p.mask_phones AND NOT m.is_admin THEN crm.mask_phone(t.mobile) ELSE t.mobile END AS mobile,
       CASE WHEN p.mask_phones AND NOT m.is_admin THEN crm.mask_email(t.email) ELSE t.email END AS email
  FROM crm.pool_membership m
  JOIN crm.pool p ON p.id = m.pool_id AND p.active
  JOIN crm.customer c ON c.owner_id = p.id
  JOIN crm.contact t ON t.customer_id = c.id
 WHERE m.employee_id = crm.current_employee_id();
-- What was done with a pool customer before, for members deciding whether to
-- claim it (the follow-ups' authors and contents; no phone numbers of the customer's own).
CREATE VIEW crm.pool_follow_up WITH (security_barrier) AS
SELECT f.id, f.record_id AS customer_id, p.id AS pool_id, f.method, f.content, f.created_by, f.created_at
  FROM crm.pool_membership m
  JOIN crm.pool p ON p.id = m.pool_id AND p.active
  JOIN crm.customer c ON c.owner_id = p.id
  JOIN crm.follow_up f ON f.record_type = 'customer' AND f.record_id = c.id
 WHERE m.employee_id = crm.current_employee_id();
COMMENT ON VIEW crm.pool_follow_up IS 'The follow-ups of my pools'' customers, to judge them before claiming';
COMMENT ON VIEW crm.pool_contact IS 'The contacts of my pools'' customers, mobiles and e-mails masked until claimed';
GRANT SELECT ON crm.pool_customer, crm.pool_contact, crm.pool_follow_up TO crm_user;

-- Move customers to a new owner as one labelled change (their contacts
-- follow, crm.customer_clock_move).
CREATE FUNCTION crm.pool_move(ids bigint[], to_owner bigint, kind text, reason text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n integer;
BEGIN
	PERFORM set_config('crm.owner_change', kind, true), set_config('crm.owner_change_reason', coalesce(reason, ''), true);
	UPDATE crm.customer SET owner_id = to_owner WHERE id = ANY (ids) AND owner_id <> to_owner;
	GET DIAGNOSTICS n = ROW_COUNT;
	PERFORM set_config('crm.owner_change', '', true), set_config('crm.owner_change_reason', '', true);
	RETURN n;
END
$$;

-- The acting employee for the pool's functions, with the permission checked.
CREATE FUNCTION crm.pool_actor(action text, verb text) RETURNS crm.employee
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me crm.employee;
BEGIN
	SELECT * INTO me FROM crm.employee WHERE id = crm.invoking_employee_id() AND active;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'role "%" may not % customers of a public pool', session_user, verb
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'It is not an active employee.',
			      HINT = 'Log in as an employee (crm.employee.db_role).';
	END IF;
	IF action IS NOT NULL AND NOT crm.invoker_has_permission(action) THEN
		RAISE EXCEPTION 'employee % (%) may not % customers of a public pool', me.id, crm.clip(me.name), verb
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = format('This needs the permission "%s".', action),
			      HINT = format('Ask an administrator to add "%s" to one of your roles.', action);
	END IF;
	RETURN me;
END
$$;

-- A customer in a pool, locked for the move; a clear error when it is not.
CREATE FUNCTION crm.pool_customer_for_update(customer_id bigint, me crm.employee, any_pool boolean,
                                             OUT cust crm.customer, OUT pool crm.pool, OUT is_admin boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	SELECT * INTO cust FROM crm.customer c WHERE c.id = customer_id FOR NO KEY UPDATE;
	SELECT * INTO pool FROM crm.pool p WHERE p.id = cust.owner_id;
	SELECT m.is_admin INTO is_admin FROM crm.pool_membership m WHERE m.pool_id = pool.id AND m.employee_id = me.id;
	-- a customer outside every pool is named only to whom may see it anyway
	IF cust.id IS NULL OR (pool.id IS NOT NULL AND is_admin IS NULL AND NOT any_pool)
	   OR (pool.id IS NULL AND NOT cust.owner_id = ANY (crm.invoker_scope_owners('customer'))) THEN
		RAISE EXCEPTION 'customer % is not in a pool employee % may take from', customer_id, me.id
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'Claim customers listed in crm.pool_customer; one listed a moment ago may have been claimed or assigned since.';
	ELSIF pool.id IS NULL THEN
		RAISE EXCEPTION 'customer % (%) is no longer in a public pool', cust.id, crm.clip(cust.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = CASE WHEN cust.owner_id = me.id THEN 'It is already yours.'
			                    ELSE 'Someone claimed it or was assigned it first.' END,
			      HINT = 'Pick another customer from crm.pool_customer.';
	ELSIF NOT pool.active THEN
		RAISE EXCEPTION 'pool % (%) is inactive', pool.id, crm.clip(pool.name)
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Ask an admin to reactivate it.';
	END IF;
END
$$;

-- Claim a customer from a pool (seed 000 领取): within the daily limit (only
-- self-claims count), the holding limit, the former owner's cool-down and
-- the release freeze, all checked in the claim's own transaction with the
-- claimer's row locked, so that concurrent claims cannot both slip under.
CREATE FUNCTION crm.claim_customer(customer_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me       crm.employee := crm.pool_actor('pool.claim', 'claim');
	pick    record;
	last     crm.customer_owner_change;
	cooldown integer;
	day_tz   text := (SELECT s.timezone FROM crm.settings s);
	day_from timestamptz;
	cap      integer;
	claimed  bigint;
	frozen   timestamptz;
	releases bigint;
BEGIN
	SELECT * INTO me FROM crm.employee WHERE id = me.id FOR NO KEY UPDATE;
	pick := crm.pool_customer_for_update(customer_id, me, false);

	-- seed 000: a former owner waits before claiming back, after a recycle or a release
	SELECT * INTO last FROM crm.customer_owner_change h
	 WHERE h.customer_id = claim_customer.customer_id AND h.from_owner = me.id AND h.kind IN ('release', 'recycle')
	 ORDER BY h.changed_at DESC LIMIT 1;
	cooldown := CASE last.kind WHEN 'release' THEN (pick.pool).release_cooldown_days
	                           WHEN 'recycle' THEN (pick.pool).recycle_cooldown_days END;
	IF last.changed_at + make_interval(days => cooldown) > now() THEN
		RAISE EXCEPTION 'employee % (%) may not claim customer % (%) back before %', me.id, crm.clip(me.name),
			(pick.cust).id, crm.clip((pick.cust).name), crm.local_time(last.changed_at + make_interval(days => cooldown))
			USING ERRCODE = 'check_violation',
			      DETAIL = format('It was %s from them on %s; pool "%s" keeps it from its former owner for %s days.',
			                      CASE last.kind WHEN 'release' THEN 'released' ELSE 'recycled' END,
			                      crm.local_time(last.changed_at), crm.clip((pick.pool).name), cooldown),
			      HINT = 'A pool admin may still assign it; the cool-down stops only claims.';
	END IF;

	-- seed 002: too many releases freeze claiming from the pool for a while
	IF (pick.pool).freeze_after_releases IS NOT NULL THEN
		SELECT r.changed_at + make_interval(days => (pick.pool).freeze_days), w.n INTO frozen, releases
		  FROM crm.customer_owner_change r
		 CROSS JOIN LATERAL (SELECT count(*) AS n FROM crm.customer_owner_change w
		                      WHERE w.kind = 'release' AND w.from_owner = me.id AND w.pool_id = (pick.pool).id
		                        AND w.changed_at > r.changed_at - make_interval(days => (pick.pool).freeze_period_days)
		                        AND w.changed_at <= r.changed_at) w
		 WHERE r.kind = 'release' AND r.from_owner = me.id AND r.pool_id = (pick.pool).id
		   AND r.changed_at > now() - make_interval(days => (pick.pool).freeze_days)
		   AND w.n >= (pick.pool).freeze_after_releases
		 ORDER BY r.changed_at DESC LIMIT 1;
		IF frozen IS NOT NULL THEN
			RAISE EXCEPTION 'employee % (%) may not claim from pool "%" until %', me.id, crm.clip(me.name), crm.clip((pick.pool).name), crm.local_time(frozen)
				USING ERRCODE = 'check_violation',
				      DETAIL = format('They released %s customers to it within %s days; the limit is %s.',
				                      releases, (pick.pool).freeze_period_days, (pick.pool).freeze_after_releases),
				      HINT = format('The freeze lasts %s days from the last of those releases; a pool admin may still assign.',
				                    (pick.pool).freeze_days);
		END IF;
	END IF;

	-- seed 000: only claims count towards the daily limit
	cap := coalesce(me.daily_claim_limit, (SELECT s.daily_claim_limit FROM crm.settings s));
	IF cap IS NOT NULL THEN
		day_from := date_trunc('day', now() AT TIME ZONE day_tz) AT TIME ZONE day_tz;
		SELECT count(*) INTO claimed FROM crm.customer_owner_change h
		 WHERE h.kind = 'claim' AND h.to_owner = me.id AND h.changed_at >= day_from;
		IF claimed >= cap THEN
			RAISE EXCEPTION 'employee % (%) has claimed % customers today, their daily limit of %', me.id, crm.clip(me.name), claimed, cap
				USING ERRCODE = 'check_violation',
				      DETAIL = format('The count starts again at %s.', crm.local_time(day_from + interval '1 day')),
				      HINT = 'Assigned, transferred and self-created customers do not count; raise crm.employee.daily_claim_limit or crm.settings.daily_claim_limit.';
		END IF;
	END IF;
	PERFORM crm.check_holding_limit(me, ARRAY[(pick.cust).id]);
	PERFORM crm.pool_move(ARRAY[(pick.cust).id], me.id, 'claim', NULL);
END
$$;
COMMENT ON FUNCTION crm.claim_customer(bigint) IS
	'Claim a customer from one of my pools, within the daily claim limit, holding limit, cool-down and freeze';

-- Assign a pool customer to an employee: pool admins, or holders of pool.assign.
-- Cool-downs, freezes and the daily limit stop only self-claims; the holding limit holds.
CREATE FUNCTION crm.assign_customer(customer_id bigint, to_employee bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me     crm.employee := crm.pool_actor(NULL, 'assign');
	may_assign boolean := crm.invoker_has_permission('pool.assign');
	target crm.employee;
	pick  record;
BEGIN
	SELECT * INTO target FROM crm.employee e WHERE e.id = to_employee AND e.active AND NOT e.is_pool FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'employee % cannot be assigned customers', to_employee
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Assign to an active employee.';
	END IF;
	pick := crm.pool_customer_for_update(customer_id, me, may_assign);
	IF NOT coalesce(pick.is_admin, false) AND NOT may_assign THEN
		RAISE EXCEPTION 'employee % (%) may not assign customers of pool "%"', me.id, crm.clip(me.name), crm.clip((pick.pool).name)
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'Assigning needs the pool''s admin (crm.pool_member.is_admin) or the permission "pool.assign".',
			      HINT = 'Ask an administrator to make you an admin of the pool.';
	END IF;
	PERFORM crm.check_holding_limit(target, ARRAY[(pick.cust).id]);
	PERFORM crm.pool_move(ARRAY[(pick.cust).id], target.id, 'assign', NULL);
	IF target.id <> me.id THEN
		PERFORM crm.notify(ARRAY[target.id], 'pool.assigned',
		                   format('Customer %s from pool "%s" was assigned to you', crm.clip((pick.cust).name), crm.clip((pick.pool).name)),
		                   format('Assigned by %s.', crm.clip(me.name)), 'customer', (pick.cust).id);
	END IF;
END
$$;
COMMENT ON FUNCTION crm.assign_customer(bigint, bigint) IS
	'Give a pool customer to an employee (pool admins and holders of pool.assign); the holding limit applies';

-- Release a customer to a pool (seed 000 放弃), with a reason from the
-- dictionary pool_release_reason; to_pool defaults to the default pool.
CREATE FUNCTION crm.release_customer(customer_id bigint, reason text, to_pool bigint DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me    crm.employee := crm.pool_actor('pool.release', 'release');
	cust  crm.customer;
	pool  crm.pool;
BEGIN
	IF NOT EXISTS (SELECT FROM crm.dictionary d WHERE d.kind = 'pool_release_reason' AND d.code = reason AND d.enabled) THEN
		RAISE EXCEPTION 'release reason "%" is not in the dictionary pool_release_reason', crm.clip(reason)
			USING ERRCODE = 'foreign_key_violation',
			      HINT = (SELECT 'Give one of: ' || string_agg(format('%s (%s)', d.code, crm.clip(d.label)), ', ' ORDER BY d.position)
			                FROM crm.dictionary d WHERE d.kind = 'pool_release_reason' AND d.enabled);
	END IF;
	SELECT * INTO pool FROM crm.pool p WHERE p.id = coalesce(to_pool, crm.default_pool()) AND p.active;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'there is no active pool %', to_pool
			USING ERRCODE = 'foreign_key_violation', HINT = 'Name an active pool of crm.pool.';
	END IF;
	SELECT * INTO cust FROM crm.customer c WHERE c.id = customer_id FOR NO KEY UPDATE;
	-- the releaser must be able to edit it: the owner, or someone with it in scope
	IF NOT FOUND OR NOT cust.owner_id = ANY (crm.invoker_scope_owners('customer')) THEN
		RAISE EXCEPTION 'employee % (%) may not release customer %', me.id, crm.clip(me.name), customer_id
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'Release customers you own or manage.';
	ELSIF EXISTS (SELECT FROM crm.pool p WHERE p.id = cust.owner_id) THEN
		RAISE EXCEPTION 'customer % (%) is already in a pool', cust.id, crm.clip(cust.name)
			USING ERRCODE = 'object_not_in_prerequisite_state';
	ELSIF cust.locked THEN
		RAISE EXCEPTION 'customer % (%) is locked', cust.id, crm.clip(cust.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = 'Locked customers stay with their owner.',
			      HINT = 'Unlock it first (needs customer.lock).';
	END IF;
	PERFORM crm.pool_move(ARRAY[cust.id], pool.id, 'release',
	                      (SELECT d.label FROM crm.dictionary d WHERE d.kind = 'pool_release_reason' AND d.code = reason));
END
$$;
COMMENT ON FUNCTION crm.release_customer(bigint, text, bigint) IS
	'Give a customer up to a pool (the default one unless named), with a reason from the dictionary pool_release_reason';

-- What recycling would move at a time: the customers whose kept deadline has
-- passed by then, with their rule and destination pool (NULL: the default).
-- crm.run_recycling, crm.recycling_preview and crm.customers_due_for_recycling
-- all read it.
CREATE FUNCTION crm.recycling_due(at timestamptz)
	RETURNS TABLE (customer_id bigint, owner_id bigint, recycle_at timestamptz, rule_id bigint, pool_id bigint,
	               remind_days_before integer, reason text)
LANGUAGE sql STABLE AS $$
	SELECT k.customer_id, c.owner_id, k.recycle_at, r.id, r.pool_id, r.remind_days_before, crm.describe_recycle_rule(r)
	  FROM crm.customer_recycling k
	  JOIN crm.customer c ON c.id = k.customer_id
	  JOIN crm.recycle_rule r ON r.id = k.rule_id
	 WHERE k.recycle_at <= at
$$;

-- seed 000 即将回收客户: my customers (under row-level security) that go back
-- to a pool within their rule's reminder window, or are overdue.
CREATE VIEW crm.customers_due_for_recycling WITH (security_invoker) AS
SELECT c.id AS customer_id, c.name, c.owner_id, d.recycle_at, d.rule_id, d.reason,
       coalesce(p.name, (SELECT q.name FROM crm.pool q WHERE q.is_default), '公海') AS pool_name,
       greatest(ceil(extract(epoch FROM d.recycle_at - now()) / 86400), 0)::integer AS days_left
  FROM crm.customer c
  JOIN LATERAL (SELECT * FROM crm.recycling_due('infinity') x WHERE x.customer_id = c.id) d ON true
  LEFT JOIN crm.pool p ON p.id = d.pool_id
 WHERE d.recycle_at <= now() + make_interval(days => d.remind_days_before);
COMMENT ON VIEW crm.customers_due_for_recycling IS 'Customers about to be recycled (即将回收客户): within their rule''s reminder window, or overdue';
GRANT SELECT ON crm.customers_due_for_recycling TO crm_user;

-- What a run at that time would move, without moving anything, among the
-- customers the caller sees.
CREATE FUNCTION crm.recycling_preview(at timestamptz DEFAULT now())
	RETURNS TABLE (customer_id bigint, owner_id bigint, recycle_at timestamptz, rule_id bigint, pool_id bigint, reason text)
LANGUAGE sql STABLE AS $$
	SELECT d.customer_id, d.owner_id, d.recycle_at, d.rule_id,
	       coalesce(d.pool_id, (SELECT p.id FROM crm.pool p WHERE p.is_default)), d.reason
	  FROM crm.recycling_due(at) d ORDER BY d.recycle_at, d.customer_id
$$;
COMMENT ON FUNCTION crm.recycling_preview(timestamptz) IS 'Dry run: the customers (of those you see) crm.run_recycling() would move at that time';

-- The recycling job: moves every customer that is due, in batches that skip
-- customers someone is editing (the next run takes them), tells former
-- owners once per run, then sends the reminders due (once per customer and
-- deadline).  Idempotent: a rerun finds nothing left to do.
CREATE FUNCTION crm.run_recycling(batch_size integer DEFAULT 5000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
	started  timestamptz := clock_timestamp();
	dest     record;
	moved    integer := 0;
	n        integer;
	reminded integer;
	last_change bigint := coalesce((SELECT max(id) FROM crm.customer_owner_change), 0);
BEGIN
	PERFORM set_config('crm.change_source', 'job', true);
	LOOP
		n := 0;
		-- the clocks that are due, locked: one a concurrent run or a change of
		-- its customer (a follow-up, say) holds is skipped, the next run takes
		-- it; one changed meanwhile is checked again as it is now
		FOR dest IN
			SELECT coalesce(r.pool_id, crm.default_pool()) AS pool, array_agg(d.customer_id ORDER BY d.customer_id) AS ids
			  FROM (SELECT k.customer_id, k.rule_id
			          FROM crm.customer_recycling k
			         WHERE k.recycle_at <= now()
			         ORDER BY k.recycle_at LIMIT batch_size
			           FOR UPDATE SKIP LOCKED) d
			  JOIN crm.recycle_rule r ON r.id = d.rule_id
			 GROUP BY 1
		LOOP
			n := n + crm.pool_move(dest.ids, dest.pool, 'recycle', NULL);
		END LOOP;
		moved := moved + n;
		EXIT WHEN n = 0;
	END LOOP;

	-- each former owner hears once, of all their customers this run moved
	PERFORM crm.notify(ARRAY[h.from_owner], 'pool.recycled',
	                   CASE WHEN h.n = 1 THEN format('Customer %s went back to pool "%s"', crm.clip(c.name), crm.clip(p.name))
	                        ELSE format('%s of your customers went back to a public pool', h.n) END,
	                   h.reasons, 'customer', CASE WHEN h.n = 1 THEN h.first_id END)
	  FROM (SELECT x.from_owner, count(*) AS n, min(x.customer_id) AS first_id, min(x.pool_id) AS pool_id,
	               crm.notification_lines(array_agg(DISTINCT x.reason)) AS reasons
	          FROM crm.customer_owner_change x
	         WHERE x.id > last_change AND x.kind = 'recycle'
	         GROUP BY x.from_owner) h
	  JOIN crm.customer c ON c.id = h.first_id
	  JOIN crm.pool p ON p.id = h.pool_id;

	-- reminders, X days before (seed 000)
	WITH due AS (
		SELECT k.customer_id, d.owner_id, d.recycle_at, d.reason
		  FROM crm.recycling_due(now() + make_interval(days => (SELECT max(r.remind_days_before) FROM crm.recycle_rule r WHERE r.enabled))) d
		  JOIN crm.customer_recycling k ON k.customer_id = d.customer_id
		 WHERE d.remind_days_before > 0 AND d.recycle_at <= now() + make_interval(days => d.remind_days_before)
		   AND k.reminded_for IS DISTINCT FROM d.recycle_at
		   FOR UPDATE OF k SKIP LOCKED
	), marked AS (
		UPDATE crm.customer_recycling k SET reminded_for = due.recycle_at
		  FROM due WHERE k.customer_id = due.customer_id
		RETURNING due.*
	), told AS (
		SELECT crm.notify(ARRAY[m.owner_id], 'pool.recycle_soon',
		                  CASE WHEN m.n = 1 THEN format('Customer %s goes back to a public pool in %s days', crm.clip(m.first_name),
		                                                ceil(extract(epoch FROM m.first_at - now()) / 86400))
		                       ELSE format('%s of your customers go back to a public pool soon', m.n) END,
		                  m.lines, 'customer', CASE WHEN m.n = 1 THEN m.first_id END)
		       , m.n
		  FROM (SELECT marked.owner_id, count(*) AS n, min(marked.customer_id) AS first_id,
		               (array_agg(c.name ORDER BY marked.customer_id))[1] AS first_name,
		               (array_agg(marked.recycle_at ORDER BY marked.customer_id))[1] AS first_at,
		               crm.notification_lines(array_agg(format('%s: %s (%s)', crm.clip(c.name),
		                                 to_char(marked.recycle_at AT TIME ZONE (SELECT s.timezone FROM crm.settings s), 'YYYY-MM-DD'),
		                                 marked.reason) ORDER BY marked.recycle_at)) AS lines
		          FROM marked JOIN crm.customer c ON c.id = marked.customer_id
		         GROUP BY marked.owner_id) m
	)
	SELECT coalesce(sum(told.n), 0) INTO reminded FROM told;

	INSERT INTO crm.job_run (job, started_at, processed, details)
	VALUES ('crm-recycling', started, moved, jsonb_build_object('recycled', moved, 'reminded', reminded));
	RETURN moved;
END
$$;
COMMENT ON FUNCTION crm.run_recycling(integer) IS
	'Move every customer due back to its pool, tell the former owners, and send the reminders due; returns how many moved';

INSERT INTO crm.job (name, schedule, command, builtin) VALUES
	('crm-recycling', '*/5 * * * *', 'SELECT crm.run_recycling()', true);
-- Rows that point at a record by a pair of columns (<name>_type, <name>_id):
-- team entries, follow-ups, tags, pins, attachments, duplicate pairs,
-- notifications, the operation log, and whatever table comes next.  Foreign
-- keys cannot hold such a pair, so these triggers do what they would: a link
-- names a record that exists when it is written (the record is locked FOR KEY
-- SHARE, so that a concurrent delete waits for the writer, or the writer for
-- it), and goes with the record (a nullable link is cleared, the operation
-- log keeps its history).  The links are found in the catalog, not listed, so
-- that a new table is covered the day it is created.  Who may write links is
-- for their policies; these triggers hold for every writer, crm's own code
-- included.

-- Every pair of columns in crm that names a record, and what deleting the
-- record does to the rows: 'delete' them, 'set null' (an optional reference,
-- such as a notification about the record) or 'keep' (history).
CREATE FUNCTION crm.record_links()
	RETURNS TABLE (link_table regclass, type_column name, id_column name, on_delete text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT c.oid::regclass, t.attname, i.attname,
	       CASE WHEN c.relname = 'oplog' THEN 'keep' WHEN i.attnotnull THEN 'delete' ELSE 'set null' END
	  FROM pg_class c
	  JOIN pg_attribute t ON t.attrelid = c.oid AND t.attnum > 0 AND NOT t.attisdropped
	                     AND t.atttypid = 'text'::regtype AND t.attname LIKE '%\_type'
	  JOIN pg_attribute i ON i.attrelid = c.oid AND i.attnum > 0 AND NOT i.attisdropped
	                     AND i.atttypid = 'bigint'::regtype AND i.attname = left(t.attname, -4) || 'id'
	 WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind IN ('r', 'p')
	   -- a custom field is data, never a link: a text field contact.customer_type
	   -- beside customer_id made deleting a lead delete another customer's contacts
	   AND NOT EXISTS (SELECT FROM crm.added_field f WHERE f.record_type = c.relname AND f.name IN (t.attname, i.attname))
	 ORDER BY 1, 2
$$;
COMMENT ON FUNCTION crm.record_links() IS
	'Every (type, id) column pair in crm that points at a record, and what deleting the record does to its rows: delete, set null or keep (the operation log)';

-- The record types, named by their tables.  A new one (an opportunity, a
-- contract) is added here; the triggers below are attached to it, and its
-- links are found by crm.record_links().
CREATE FUNCTION crm.record_tables() RETURNS regclass[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN '{crm.lead,crm.customer,crm.contact,crm.follow_up}'::regclass[];

CREATE FUNCTION crm.check_record_links() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	l       record;
	t       record;
	missing bigint;
BEGIN
	IF TG_RELID <> ALL (ARRAY(SELECT k.link_table FROM crm.record_links() k WHERE k.on_delete = 'delete')) THEN RAISE 'crm.check_record_links() runs only on tables that point at records (crm.record_links()), not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- a restore loads these rows before their records
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	FOR l IN SELECT k.type_column, k.id_column FROM crm.record_links() k WHERE k.link_table = TG_RELID LOOP
		FOR t IN EXECUTE format('SELECT n.%I AS record_type, array_agg(DISTINCT n.%I) AS ids FROM new_rows n GROUP BY 1',
		                        l.type_column, l.id_column) LOOP
			IF t.record_type IN (SELECT c.relname FROM pg_class c WHERE c.oid = ANY (crm.record_tables())) THEN
				EXECUTE format('WITH present AS MATERIALIZED (SELECT r.id FROM crm.%I r WHERE r.id = ANY ($1) FOR KEY SHARE)'
				               ' SELECT min(x) FROM unnest($1) x WHERE x NOT IN (SELECT id FROM present)', t.record_type)
					INTO missing USING t.ids;
			ELSE
				missing := t.ids[1];	-- a record type with no table yet
			END IF;
			IF missing IS NOT NULL THEN
				RAISE EXCEPTION 'crm.% cannot point at % %, which does not exist', TG_TABLE_NAME, crm.clip(t.record_type), missing
					USING ERRCODE = 'foreign_key_violation',
					      DETAIL = 'Team entries, follow-ups, tags, pins and attachments belong to a record that exists, and go with it.',
					      HINT = format('Name an existing %s.', crm.clip(t.record_type));
			END IF;
		END LOOP;
	END LOOP;
	RETURN NULL;
END
$$;

-- What ON DELETE CASCADE (or SET NULL) would do for every link of the given
-- records, set-based; ids NULL: every record of the type (a TRUNCATE).  Links
-- that are records themselves (follow-ups) take their own links along, through
-- their own trigger.  Internal: only the triggers below call it.
CREATE FUNCTION crm.change_record_links(statement text, record_type text, ids bigint[]) RETURNS void
	AS 'MODULE_PATHNAME', 'crm_change_record_links' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION crm.change_record_links(text, text, bigint[]) IS
	'Run a statement dropping or unsetting links of deleted records, as a foreign key''s action would (crm''s own)';

CREATE FUNCTION crm.drop_record_links(record_type text, ids bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	l record;
BEGIN
	-- (a statement that deleted nothing still fires its triggers: stop here)
	IF ids = '{}' THEN
		RETURN;
	END IF;
	-- (each as a foreign key's action: a link committed after a repeatable
	-- read transaction's snapshot fails it rather than outlive its record)
	FOR l IN SELECT * FROM crm.record_links() k WHERE k.on_delete <> 'keep' LOOP
		PERFORM crm.change_record_links(
			format(CASE l.on_delete WHEN 'delete' THEN 'DELETE FROM %1$s WHERE %2$I = $1 AND ($2 IS NULL OR %3$I = ANY ($2))'
			                        ELSE 'UPDATE %1$s SET %2$I = NULL, %3$I = NULL WHERE %2$I = $1 AND ($2 IS NULL OR %3$I = ANY ($2))' END,
			       l.link_table, l.type_column, l.id_column),
			record_type, ids);
	END LOOP;
END
$$;

-- After a statement deleted records: refuse when a foreign key that does not
-- cascade still names one of them (before PostgreSQL's own check at commit,
-- with the record's name and the constraint's comment as the hint), else drop
-- their links.
CREATE FUNCTION crm.record_deleted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	k   record;
	hit record;
BEGIN
	IF TG_RELID <> ALL (crm.record_tables()) THEN RAISE 'crm.record_deleted() runs only on the record tables (crm.record_tables()), not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF TG_OP = 'TRUNCATE' THEN
		PERFORM crm.drop_record_links(TG_TABLE_NAME, NULL);
		RETURN NULL;
	END IF;
	IF NOT EXISTS (SELECT FROM deleted) THEN
		RETURN NULL;
	END IF;
	FOR k IN SELECT c.oid, c.conname, c.conrelid::regclass AS tbl, a.attname AS col
	           FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
	          WHERE c.confrelid = TG_RELID AND c.contype = 'f' AND c.confdeltype IN ('a', 'r') AND cardinality(c.conkey) = 1
	          ORDER BY c.conname LOOP
		EXECUTE format('SELECT d.id, to_jsonb(d) ->> ''name'' AS name, count(*) AS n FROM deleted d JOIN %s r ON r.%I = d.id'
		               ' GROUP BY d.id, 2 ORDER BY d.id LIMIT 1', k.tbl, k.col) INTO hit;
		IF hit.id IS NOT NULL THEN
			RAISE EXCEPTION '% % (%) cannot be deleted: % % of % %',
				TG_TABLE_NAME, hit.id, crm.clip(hit.name), hit.n, CASE WHEN hit.n = 1 THEN 'row' ELSE 'rows' END, k.tbl,
				CASE WHEN hit.n = 1 THEN 'points at it' ELSE 'point at it' END
				USING ERRCODE = 'foreign_key_violation',
				      DETAIL = format('Constraint %s on %s.', k.conname, k.tbl),
				      HINT = coalesce(obj_description(k.oid, 'pg_constraint'), format('Delete or change the rows of %s first.', k.tbl)),
				      CONSTRAINT = k.conname, TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
		END IF;
	END LOOP;
	PERFORM crm.drop_record_links(TG_TABLE_NAME, ARRAY(SELECT d.id FROM deleted d));
	RETURN NULL;
END
$$;

-- Attachments keep only the key of their file; when a row goes, by a delete,
-- with its record or by TRUNCATE, the key is queued here so that the file store
-- can be cleaned (docs/records.md).  Drained by the DBA or the application.
CREATE TABLE crm.file_removal (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	storage_key  text NOT NULL,
	file_name    text NOT NULL,
	size_bytes   bigint NOT NULL,
	queued_at    timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT file_removal_pkey PRIMARY KEY (id)
);
CREATE INDEX file_removal_storage_key_idx ON crm.file_removal (storage_key);
COMMENT ON TABLE crm.file_removal IS
	'Files of deleted attachments, to remove from the file store; crm.files_to_remove leaves out keys an attachment uses again';
ALTER TABLE crm.file_removal ENABLE ROW LEVEL SECURITY;

-- what the file store may delete now: a key written again since (a restored
-- attachment) is not listed
CREATE VIEW crm.files_to_remove AS
SELECT f.id, f.storage_key, f.file_name, f.size_bytes, f.queued_at
  FROM crm.file_removal f
 WHERE NOT EXISTS (SELECT FROM crm.attachment a WHERE a.storage_key = f.storage_key);
COMMENT ON VIEW crm.files_to_remove IS
	'Stored files no attachment uses any more: remove each from the file store, then DELETE its row from crm.file_removal';

CREATE FUNCTION crm.queue_file_removal() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.attachment'::regclass THEN RAISE 'crm.queue_file_removal() runs only on crm.attachment, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF TG_OP = 'TRUNCATE' THEN	-- (BEFORE TRUNCATE: the rows are still there)
		INSERT INTO crm.file_removal (storage_key, file_name, size_bytes)
		SELECT a.storage_key, a.file_name, a.size_bytes FROM crm.attachment a;
	ELSE
		INSERT INTO crm.file_removal (storage_key, file_name, size_bytes)
		SELECT d.storage_key, d.file_name, d.size_bytes FROM deleted d;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER attachment_file_removal AFTER DELETE ON crm.attachment REFERENCING OLD TABLE AS deleted
	FOR EACH STATEMENT EXECUTE FUNCTION crm.queue_file_removal();
CREATE TRIGGER attachment_file_removal_truncate BEFORE TRUNCATE ON crm.attachment
	FOR EACH STATEMENT EXECUTE FUNCTION crm.queue_file_removal();

-- (this piece comes after every table of crm, so that all links are found)
DO $links$
DECLARE
	t text;
BEGIN
	FOR t IN SELECT DISTINCT c.relname FROM crm.record_links() k JOIN pg_class c ON c.oid = k.link_table
	          WHERE k.on_delete = 'delete' ORDER BY 1 LOOP
		EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON crm.%I REFERENCING NEW TABLE AS new_rows'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.check_record_links()', t || '_record_exists', t);
		EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON crm.%I REFERENCING NEW TABLE AS new_rows'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.check_record_links()', t || '_record_still_exists', t);
	END LOOP;
	FOR t IN SELECT c.relname FROM pg_class c WHERE c.oid = ANY (crm.record_tables()) ORDER BY 1 LOOP
		EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON crm.%I REFERENCING OLD TABLE AS deleted'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.record_deleted()', t || '_drop_links', t);
		EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON crm.%I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.record_deleted()', t || '_truncate_links', t);
	END LOOP;
END
$links$;
-- Who may execute crm's functions.  PostgreSQL grants EXECUTE on every new
-- function to PUBLIC; crm takes that back from all of them, present and future
-- (a function added to an earlier piece is covered here), and grants crm_user
-- exactly the documented surface (docs/security.md).  Trigger functions are never
-- granted: only their owner can then attach them to a table.  The catalog test
-- of sql/security.sql fails for any function granted beyond this list.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA crm FROM PUBLIC;

-- what the policies, column defaults, generated keys, CHECK constraints and views
-- call, and crm's C functions as the caller: PostgreSQL checks EXECUTE for the
-- role whose statement evaluates them
GRANT EXECUTE ON FUNCTION
	crm.current_employee_id(),
	crm.restoring(),
	crm.staff_session(),
	crm.scope_owners(text),
	crm.team_records(text, boolean),
	crm.has_permission(text),
	crm.may_administer(text),
	crm.acting_is_super(),
	crm.is_super_admin(bigint),
	crm.record_visible(text, bigint),
	crm.record_editable(text, bigint),
	crm.require_permission(text),
	crm.initial_customer_status(),
	crm.dedupe_key(text, text),
	crm.uscc_valid(text),
	crm.mobile_valid(text),
	crm.email_valid(text),
	crm.uscc_with_check(text),
	crm.check_uscc(text),
	crm.check_mobile(text),
	crm.check_email(text),
	crm.check_company_uscc(text, text),
	crm.check_codes(text, text[]),
	crm.check_length(text, integer, text),
	crm.check_dictionary_column(text, text),
	crm.clip(text),
	crm.mask_phone(text),
	crm.mask_email(text),
	crm.recycle_rule_employees(bigint[], bigint[], bigint[]),
	crm.describe_recycle_rule(crm.recycle_rule),
	crm.recycling_due(timestamptz),
	crm.similar_customers(text, text)
TO crm_user;

-- what people call
GRANT EXECUTE ON FUNCTION
	crm.explain_access(text, bigint),
	crm.deactivate_employee(bigint, bigint),
	crm.delete_customer_status(bigint, bigint),
	crm.convert_lead(bigint),
	crm.transfer(text, bigint[], bigint, boolean, boolean),
	crm.add_field(text, text, text, boolean, boolean, text, text),
	crm.drop_field(text, text),
	crm.import_customers(regclass),
	crm.find_duplicates(text, jsonb),
	crm.merge_customers(bigint, bigint),
	crm.claim_customer(bigint),
	crm.assign_customer(bigint, bigint),
	crm.release_customer(bigint, text, bigint),
	crm.recycling_preview(timestamptz),
	crm.mark_read(bigint),
	crm.bot_search(text, integer),
	crm.sync_directory(text)
TO crm_user;
-- Fail closed on every table: a session in crm_user that is no active
-- employee (a login mapped to nobody, a deactivated employee, a pool's row)
-- reads nothing of crm's, the organisation and configuration included, and
-- writes nothing.  Tables with policies of their own already say so; every
-- other table staff may read gets a policy that lets staff (an acting
-- employee, or crm_admin) through, asked once per statement.  Run last, so
-- that no table added later is forgotten.
DO $staff$
DECLARE
	t regclass;
BEGIN
	FOR t IN
		SELECT c.oid FROM pg_catalog.pg_class c
		 WHERE c.relnamespace OPERATOR(pg_catalog.=) 'crm'::regnamespace AND c.relkind OPERATOR(pg_catalog.=) 'r'
		   AND NOT c.relrowsecurity AND pg_catalog.has_any_column_privilege('crm_user', c.oid, 'SELECT')
		 ORDER BY c.oid
	LOOP
		EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
		EXECUTE format('CREATE POLICY staff_only ON %s TO crm_user USING ((SELECT crm.staff_session()))'
		               ' WITH CHECK ((SELECT crm.staff_session()))', t);
	END LOOP;
END
$staff$;

-- Configuration is changed by its administrators only (a statement trigger,
-- crm.require_admin, refuses anyone else), and only they lock its rows: a
-- SELECT ... FOR UPDATE or FOR SHARE, which fires no trigger, passes the UPDATE
-- policies, so without this one any employee could hold the organisation's
-- rows and stall every write that checks them.
DO $admin$
DECLARE
	t record;
BEGIN
	FOR t IN
		SELECT g.tgrelid::regclass AS rel, pg_catalog.split_part(pg_catalog.encode(g.tgargs, 'escape'), '\000', 1) AS action
		  FROM pg_catalog.pg_trigger g
		 WHERE g.tgfoid OPERATOR(pg_catalog.=) 'crm.require_admin()'::regprocedure
		 ORDER BY g.tgrelid
	LOOP
		EXECUTE format('CREATE POLICY admin_only_updates ON %s AS RESTRICTIVE FOR UPDATE TO crm_user USING (crm.may_administer(%L))',
		               t.rel, t.action);
	END LOOP;
END
$admin$;
-- Every table and sequence of crm holds data a dump must keep, except
-- crm.permission, crm.notification_event, crm.dedupe_field and crm.org_tree_lock, whose
-- rows ship with crm, and crm.key_build, which a restore writes anew (src/sql/45_duplicates.sql).  Tables that ship builtin rows were
-- marked with their filter already; mark all the others here, so that no table
-- added later can be forgotten.
DO $dump$
DECLARE
	rel regclass;
BEGIN
	FOR rel IN
		SELECT c.oid FROM pg_catalog.pg_class c
		 WHERE c.relnamespace OPERATOR(pg_catalog.=) 'crm'::regnamespace
		   AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'S'])
		   AND c.relname OPERATOR(pg_catalog.<>) ALL (ARRAY['permission', 'notification_event', 'dedupe_field', 'org_tree_lock', 'key_build'])
		   AND NOT c.oid OPERATOR(pg_catalog.=) ANY (
		       SELECT unnest(extconfig) FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'crm')
		 ORDER BY c.oid
	LOOP
		PERFORM pg_catalog.pg_extension_config_dump(rel, '');
	END LOOP;
END
$dump$;
