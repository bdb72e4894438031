-- Access: roles, action permissions, data scopes, teams (src/access/scope.c).

CREATE TABLE crm.permission (
	action       text NOT NULL,
	description  text NOT NULL,
	CONSTRAINT permission_pkey PRIMARY KEY (action)
);
COMMENT ON TABLE crm.permission IS 'The actions a role can grant (shipped with crm; read-only)';
COMMENT ON COLUMN crm.permission.action IS 'Action name, e.g. customer.export or admin.role; shipped with crm';
COMMENT ON COLUMN crm.permission.description IS 'What the action allows';

-- Each registered record type's create, edit, delete, import, export and
-- transfer come with its registration (crm.install_record_type).  Those of the
-- types to come are here already, as in crm 0.1, so that roles can be prepared
-- for them and a dump of a database whose roles grant them restores.
INSERT INTO crm.permission (action, description)
SELECT t || '.' || a, format('%s %ss', initcap(a), t)
  FROM unnest(ARRAY['opportunity', 'contract', 'payment', 'invoice']) t,
       unnest(ARRAY['create', 'edit', 'delete', 'import', 'export', 'transfer']) a
UNION ALL VALUES
	('contract.approve',  'Approve contracts'),
	('payment.approve',   'Approve payments'),
	('invoice.approve',   'Approve invoices'),
	('lead.convert',      'Convert leads into customers'),
	('pool.assign',       'Assign pool customers to employees'),
	('customer.merge',    'Merge duplicate customers'),
	('customer.lock',     'Lock and unlock customers'),
	('pool.claim',        'Claim customers from a public pool'),
	('pool.release',      'Release customers to a public pool'),
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
COMMENT ON COLUMN crm.role.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.role.name IS 'Role name; unique';
COMMENT ON COLUMN crm.role.is_super IS 'Super admin: every permission and scope all';
COMMENT ON COLUMN crm.role.description IS 'What the role is for';
COMMENT ON COLUMN crm.role.created_at IS 'When the role was created; kept by crm; not writable';
COMMENT ON COLUMN crm.role.updated_at IS 'When the role last changed; kept by crm; not writable';

CREATE TABLE crm.role_permission (
	role_id  bigint NOT NULL,
	action   text NOT NULL,
	CONSTRAINT role_permission_pkey PRIMARY KEY (role_id, action),
	CONSTRAINT role_permission_role_fkey FOREIGN KEY (role_id) REFERENCES crm.role (id) ON DELETE CASCADE,
	CONSTRAINT role_permission_action_fkey FOREIGN KEY (action) REFERENCES crm.permission (action),
	CONSTRAINT role_permission_action_check CHECK (crm.check_length(action, 100, 'role_permission.action'))
);
COMMENT ON TABLE crm.role_permission IS 'The actions each role grants (crm.permission)';
COMMENT ON COLUMN crm.role_permission.role_id IS 'The role (crm.role.id)';
COMMENT ON COLUMN crm.role_permission.action IS 'The action (crm.permission.action), e.g. customer.export';
CREATE INDEX role_permission_action_idx ON crm.role_permission (action);

CREATE TABLE crm.role_scope (
	role_id      bigint NOT NULL,
	record_type  text NOT NULL,
	scope        text NOT NULL,
	departments  bigint[],
	CONSTRAINT role_scope_pkey PRIMARY KEY (role_id, record_type),
	CONSTRAINT role_scope_role_fkey FOREIGN KEY (role_id) REFERENCES crm.role (id) ON DELETE CASCADE,
	CONSTRAINT role_scope_scope_check CHECK (scope IN
		('self', 'subordinates', 'department', 'department_tree', 'all', 'custom')),
	CONSTRAINT role_scope_departments_check CHECK
		((scope = 'custom') = (departments IS NOT NULL AND cardinality(departments) > 0))
);
COMMENT ON COLUMN crm.role_scope.departments IS 'For scope custom: the departments whose members'' records are visible';
COMMENT ON TABLE crm.role_scope IS 'Each role''s data scope per record type: whose records its employees see';
COMMENT ON COLUMN crm.role_scope.role_id IS 'The role (crm.role.id)';
COMMENT ON COLUMN crm.role_scope.record_type IS 'Record type (crm.record_type.name) with owner visibility';
COMMENT ON COLUMN crm.role_scope.scope IS 'self, subordinates, department, department_tree, all, or custom (the departments listed)';

CREATE TABLE crm.employee_role (
	employee_id  bigint NOT NULL,
	role_id      bigint NOT NULL,
	CONSTRAINT employee_role_pkey PRIMARY KEY (employee_id, role_id),
	CONSTRAINT employee_role_employee_fkey FOREIGN KEY (employee_id) REFERENCES crm.employee (id),
	CONSTRAINT employee_role_role_fkey FOREIGN KEY (role_id) REFERENCES crm.role (id) ON DELETE CASCADE
);
COMMENT ON TABLE crm.employee_role IS 'Which roles each employee has; permissions add up, the widest scope wins';
COMMENT ON COLUMN crm.employee_role.employee_id IS 'The employee (crm.employee.id)';
COMMENT ON COLUMN crm.employee_role.role_id IS 'The role (crm.role.id)';
CREATE INDEX employee_role_role_idx ON crm.employee_role (role_id);

CREATE TABLE crm.team_member (
	record_type  text NOT NULL,
	record_id    bigint NOT NULL,
	employee_id  bigint NOT NULL,
	access       text NOT NULL DEFAULT 'read',
	expires_at   timestamptz,
	created_at   timestamptz NOT NULL DEFAULT now(),
	added_by     bigint DEFAULT crm.current_employee_id(),
	-- who sees this row: crm's copy of the deciding record (97_record_types.sql)
	scope_type   text,
	scope_owner  bigint,
	scope_id     bigint,
	CONSTRAINT team_member_pkey PRIMARY KEY (record_type, record_id, employee_id),
	CONSTRAINT team_member_employee_fkey FOREIGN KEY (employee_id) REFERENCES crm.employee (id),
	CONSTRAINT team_member_added_by_fkey FOREIGN KEY (added_by) REFERENCES crm.employee (id),
	CONSTRAINT team_member_access_check CHECK (access IN ('read', 'edit'))
);
COMMENT ON COLUMN crm.team_member.record_type IS 'Type of the shared record';
COMMENT ON COLUMN crm.team_member.record_id IS 'Id of the shared record';
COMMENT ON COLUMN crm.team_member.employee_id IS 'The collaborator (crm.employee.id)';
COMMENT ON COLUMN crm.team_member.access IS 'read or edit';
COMMENT ON COLUMN crm.team_member.expires_at IS 'When the access ends; NULL: never';
COMMENT ON COLUMN crm.team_member.created_at IS 'When the entry was added; kept by crm; not writable';
COMMENT ON COLUMN crm.team_member.added_by IS 'Employee (crm.employee.id) who added the entry; kept by crm; not writable';
COMMENT ON COLUMN crm.team_member.scope_type IS 'Type of the record that decides who sees this row (a contact''s customer, a follow-up''s record); kept by crm; not writable';
COMMENT ON COLUMN crm.team_member.scope_owner IS 'Owner (crm.employee.id) of the deciding record, copied so the read policy is an index test; kept by crm; not writable';
COMMENT ON COLUMN crm.team_member.scope_id IS 'Id of the deciding record; kept by crm; not writable';
CREATE INDEX team_member_employee_idx ON crm.team_member (employee_id, record_type);
CREATE INDEX team_member_added_by_idx ON crm.team_member (added_by);
CREATE INDEX team_member_scope_owner_idx ON crm.team_member (scope_type, scope_owner);
-- (the id leads its index: with the type first, the planner took it for a
-- policy arm's type test alone and filtered every row by the whole policy)
CREATE INDEX team_member_scope_id_idx ON crm.team_member (scope_id, scope_type);
COMMENT ON TABLE crm.team_member IS 'Collaborators (协作人) on a record: read or edit access, until expires_at';

-- Scope helpers for the policies (see src/access/scope.c).  STABLE: the planner may
-- evaluate them to estimate a query, and index scans evaluate them once.
-- PARALLEL RESTRICTED: a worker could read the organisation only under the
-- query's snapshot, which under repeatable read may be older than a
-- deactivation or a narrowed scope the leader has already heard of.
CREATE OR REPLACE FUNCTION crm.scope_owners(record_type text) RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'crm_scope_owners' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE OR REPLACE FUNCTION crm.scope_owners(record_types text[]) RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'crm_scope_owners_any' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE OR REPLACE FUNCTION crm.common_scope_owners(record_types text[]) RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'crm_common_scope_owners' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE OR REPLACE FUNCTION crm.invoker_scope_owners(record_type text) RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'crm_invoker_scope_owners' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE OR REPLACE FUNCTION crm.invoker_has_permission(action text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_invoker_has_permission' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE OR REPLACE FUNCTION crm.team_records(record_type text, for_edit boolean) RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'crm_team_records' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE OR REPLACE FUNCTION crm.has_permission(action text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_has_permission' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION crm.has_permission(text) IS 'Whether the acting employee''s roles grant the action (crm.permission)';
CREATE OR REPLACE FUNCTION crm.may_administer(action text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_may_administer_sql' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION crm.may_administer(text) IS 'Whether the acting session may make changes needing the admin action: a superuser, a crm_admin member or an employee whose roles grant it';
CREATE OR REPLACE FUNCTION crm.acting_is_super() RETURNS boolean
	AS 'MODULE_PATHNAME', 'crm_acting_is_super_sql' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION crm.acting_is_super() IS 'Whether one of the acting employee''s roles is a super admin role';
CREATE OR REPLACE FUNCTION crm.check_write() RETURNS trigger
	AS 'MODULE_PATHNAME', 'crm_check_write' LANGUAGE C;
CREATE OR REPLACE FUNCTION crm.explain_access(record_type text, id bigint)
	RETURNS TABLE (rule text, grants boolean, detail text)
	AS 'MODULE_PATHNAME', 'crm_explain_access' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION crm.scope_owners(text) IS 'Owners whose records of this type the acting employee sees (every employee for scope all)';
COMMENT ON FUNCTION crm.scope_owners(text[]) IS 'Owners whose records of any of these types the acting employee sees: the union of crm.scope_owners(t)';
COMMENT ON FUNCTION crm.common_scope_owners(text[]) IS 'Owners whose records of every one of these types the acting employee sees: the intersection of crm.scope_owners(t)';
COMMENT ON FUNCTION crm.invoker_scope_owners(text) IS 'crm.scope_owners() of the employee a SECURITY DEFINER function acts for';
COMMENT ON FUNCTION crm.invoker_has_permission(text) IS 'crm.has_permission() of the employee a SECURITY DEFINER function acts for';
COMMENT ON FUNCTION crm.team_records(text, boolean) IS 'Records shared with the acting employee through a current team entry';
COMMENT ON FUNCTION crm.explain_access(text, bigint) IS 'Why the acting employee can or cannot reach a record';

CREATE OR REPLACE FUNCTION crm.is_super_admin(employee_id bigint) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN EXISTS (SELECT FROM crm.employee_role er JOIN crm.role r ON r.id = er.role_id
                WHERE er.employee_id = is_super_admin.employee_id AND r.is_super);
COMMENT ON FUNCTION crm.is_super_admin(bigint) IS 'Whether one of the employee''s roles is a super admin role';

-- Writes to organisation and access tables: superusers, crm_admin members, and
-- employees whose roles grant the admin action named by the trigger argument.
CREATE OR REPLACE FUNCTION crm.require_admin() RETURNS trigger
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
CREATE OR REPLACE FUNCTION crm.guard_super_admin() RETURNS trigger
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
			touched := format('the super admin role of employee "%s"',
			                  (SELECT crm.clip(e.name) FROM crm.employee e
			                    WHERE e.id = CASE WHEN TG_OP = 'DELETE' THEN OLD.employee_id ELSE NEW.employee_id END));
		END IF;
	ELSIF TG_TABLE_NAME = 'employee' THEN
		IF crm.is_super_admin(OLD.id) THEN
			touched := format('super admin "%s"', crm.clip(OLD.name));
		END IF;
	END IF;
	IF touched IS NOT NULL AND NOT current_setting('is_superuser')::boolean
	   AND NOT crm.acting_is_super() THEN
		RAISE EXCEPTION 'only a super admin may change %', touched
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = format('%s is not a super admin.',
			                      coalesce((SELECT format('Employee "%s"', crm.clip(e.name)) FROM crm.employee e WHERE e.id = crm.current_employee_id()),
			                               format('Role "%s" acts as no employee and', current_user))),
			      HINT = 'Ask a super admin to make this change.';
	END IF;
	RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;

CREATE OR REPLACE FUNCTION crm.keep_a_super_admin() RETURNS trigger
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

CREATE OR REPLACE TRIGGER role_guard_super BEFORE INSERT OR UPDATE OR DELETE ON crm.role
	FOR EACH ROW EXECUTE FUNCTION crm.guard_super_admin();
CREATE OR REPLACE TRIGGER employee_role_guard_super BEFORE INSERT OR UPDATE OR DELETE ON crm.employee_role
	FOR EACH ROW EXECUTE FUNCTION crm.guard_super_admin();
CREATE OR REPLACE TRIGGER employee_guard_super BEFORE UPDATE ON crm.employee
	FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION crm.guard_super_admin();
-- AFTER ROW triggers see the whole statement's effect
CREATE OR REPLACE TRIGGER role_keep_super AFTER UPDATE OR DELETE ON crm.role
	FOR EACH ROW WHEN (OLD.is_super) EXECUTE FUNCTION crm.keep_a_super_admin();
CREATE OR REPLACE TRIGGER employee_role_keep_super AFTER UPDATE OR DELETE ON crm.employee_role
	FOR EACH ROW EXECUTE FUNCTION crm.keep_a_super_admin();
CREATE OR REPLACE TRIGGER employee_keep_super AFTER UPDATE OF active ON crm.employee
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
CREATE OR REPLACE FUNCTION crm.guard_own_access() RETURNS trigger
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
		   AND (NEW.department_id, NEW.superior_id, NEW.db_role, NEW.active, NEW.wecom_userid, NEW.feishu_open_id, NEW.dingtalk_userid)
		       IS DISTINCT FROM (OLD.department_id, OLD.superior_id, OLD.db_role, OLD.active, OLD.wecom_userid, OLD.feishu_open_id, OLD.dingtalk_userid) THEN
			-- (a directory sync deactivates whoever its directory does not list)
			what := 'their own department, superior, login, active flag or directory ids';
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
			-- (their own department is all a department scope reaches: nobody moves into it)
			IF NEW.department_id = ANY (tree) AND NOT coalesce(OLD.department_id = ANY (tree), false)
			   OR NEW.department_id = (SELECT e.department_id FROM crm.employee e WHERE e.id = me) THEN
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
		ELSIF NEW.leader_id IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.leader_id IS DISTINCT FROM NEW.leader_id)
		      AND NEW.leader_id IN (WITH RECURSIVE down AS (
		                                SELECT me AS id
		                                UNION
		                                SELECT e.id FROM crm.employee e JOIN down d ON e.superior_id = d.id)
		                            SELECT id FROM down) THEN
			-- (and its leavers' work goes to its leader: not to them, nor to those below them)
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
CREATE OR REPLACE TRIGGER employee_guard_own BEFORE INSERT OR UPDATE ON crm.employee
	FOR EACH ROW EXECUTE FUNCTION crm.guard_own_access();
CREATE OR REPLACE TRIGGER department_guard_own BEFORE INSERT OR UPDATE OF parent_id, leader_id ON crm.department
	FOR EACH ROW EXECUTE FUNCTION crm.guard_own_access();
CREATE OR REPLACE TRIGGER employee_role_guard_own BEFORE INSERT OR UPDATE OR DELETE ON crm.employee_role
	FOR EACH ROW EXECUTE FUNCTION crm.guard_own_access();
CREATE OR REPLACE TRIGGER role_scope_guard_own BEFORE INSERT OR UPDATE OR DELETE ON crm.role_scope
	FOR EACH ROW EXECUTE FUNCTION crm.guard_own_access();

-- A data scope is for a record type that has an owner (crm.record_type):
-- the others follow the record they belong to.
CREATE OR REPLACE FUNCTION crm.role_scope_valid() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.role_scope'::regclass THEN RAISE 'crm.role_scope_valid() runs only on crm.role_scope, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF NOT EXISTS (SELECT FROM crm.record_type t WHERE t.name = NEW.record_type AND t.visibility = 'owner') THEN
		RAISE EXCEPTION 'role "%" cannot have a data scope for %: %',
			coalesce((SELECT crm.clip(r.name) FROM crm.role r WHERE r.id = NEW.role_id), NEW.role_id::text), crm.clip(NEW.record_type),
			coalesce((SELECT format('%s records follow %s', t.name,
			                        CASE t.visibility WHEN 'parent' THEN 'their ' || t.parent ELSE 'the record they are about' END)
			            FROM crm.record_type t WHERE t.name = NEW.record_type), 'it is no record type')
			USING ERRCODE = 'check_violation', TABLE = 'role_scope', SCHEMA = 'crm',
			      HINT = format('Data scopes are for %s (crm.record_type).',
			                    (SELECT string_agg(t.name, ', ' ORDER BY t.position) FROM crm.record_type t WHERE t.visibility = 'owner'));
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER role_scope_valid BEFORE INSERT OR UPDATE OF record_type ON crm.role_scope
	FOR EACH ROW EXECUTE FUNCTION crm.role_scope_valid();
-- a permission granted is one crm has: said with the role's name (the foreign
-- key stays the rule)
CREATE OR REPLACE FUNCTION crm.role_permission_valid() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.role_permission'::regclass THEN RAISE 'crm.role_permission_valid() runs only on crm.role_permission, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF NOT crm.restoring() AND NOT EXISTS (SELECT FROM crm.permission p WHERE p.action = NEW.action) THEN
		RAISE EXCEPTION 'role "%" cannot be granted "%": crm has no such permission',
			coalesce((SELECT crm.clip(r.name) FROM crm.role r WHERE r.id = NEW.role_id), NEW.role_id::text), crm.clip(NEW.action)
			USING ERRCODE = 'foreign_key_violation',
			      HINT = coalesce('Did you mean ' || (SELECT string_agg(format('"%s"', p.action), ' or ' ORDER BY p.action)
			                                          FROM crm.permission p WHERE p.action LIKE split_part(NEW.action, '.', 1) || '.%') || '? ', '')
			             || 'The permissions are the rows of crm.permission.';
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER role_permission_valid BEFORE INSERT OR UPDATE OF action ON crm.role_permission
	FOR EACH ROW EXECUTE FUNCTION crm.role_permission_valid();
CREATE OR REPLACE TRIGGER role_permission_guard_own BEFORE INSERT OR UPDATE OR DELETE ON crm.role_permission
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
		EXECUTE format('CREATE OR REPLACE TRIGGER %1$I BEFORE INSERT OR UPDATE OR DELETE ON crm.%2$I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin(%3$L)',
		               t.name || '_require_admin', t.name, t.action);
		EXECUTE format('CREATE OR REPLACE TRIGGER %1$I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.%2$I'
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
CREATE OR REPLACE FUNCTION crm.record_visible(record_type text, record_id bigint) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	relation regclass := (SELECT t.relation FROM crm.record_type t WHERE t.name = record_visible.record_type);
	found    boolean;
BEGIN
	IF relation IS NULL THEN
		RETURN false;
	END IF;
	-- runs as the caller: the record table's own policies decide
	EXECUTE format('SELECT EXISTS (SELECT FROM %s r WHERE r.id = $1)', relation) INTO found USING record_id;
	RETURN found;
END
$$;
-- What the record tables' update policies let the caller change, with the
-- permission to edit (crm.record_type): a record with an owner by scope or an
-- edit entry, one that follows a parent with its parent, a record about
-- another record (a follow-up) by its author.
CREATE OR REPLACE FUNCTION crm.record_editable(record_type text, record_id bigint) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t      crm.record_type := (SELECT x FROM crm.record_type x WHERE x.name = record_editable.record_type);
	p      crm.record_type := (SELECT x FROM crm.record_type x WHERE x.name = t.parent);
	found  boolean;
BEGIN
	IF t.name IS NULL THEN
		RETURN false;
	ELSIF t.visibility = 'record' THEN
		EXECUTE format('SELECT EXISTS (SELECT FROM %s r WHERE r.id = $1 AND r.created_by = crm.current_employee_id())', t.relation)
			INTO found USING record_id;
	ELSIF NOT crm.has_permission(t.name || '.edit') THEN
		RETURN false;
	ELSIF t.visibility = 'owner' THEN
		EXECUTE format('SELECT EXISTS (SELECT FROM %s r WHERE r.id = $1'
		               ' AND (r.owner_id = ANY (crm.scope_owners($2)) OR r.id = ANY (crm.team_records($2, true))))', t.relation)
			INTO found USING record_id, t.name;
	ELSE
		EXECUTE format('SELECT EXISTS (SELECT FROM %s k JOIN %s r ON r.id = k.%I WHERE k.id = $1'
		               ' AND (r.owner_id = ANY (crm.scope_owners($2)) OR r.id = ANY (crm.team_records($2, true))))',
		               t.relation, p.relation, t.parent_column)
			INTO found USING record_id, p.name;
	END IF;
	RETURN found;
END
$$;
COMMENT ON FUNCTION crm.record_visible(text, bigint) IS 'Whether the caller sees the record';
COMMENT ON FUNCTION crm.record_editable(text, bigint) IS 'Whether the caller may change the record (and so its team, tags and attachments)';
-- (whoever sees the record reads its entries by team_member_read, installed
-- with the record types: 97_record_types.sql)
CREATE POLICY team_member_own ON crm.team_member FOR SELECT TO crm_user
	USING (employee_id = crm.current_employee_id());
-- (one policy per command: a policy for all of them would be asked about
-- every row a SELECT filters)
CREATE POLICY team_member_add ON crm.team_member FOR INSERT TO crm_user
	WITH CHECK (crm.record_editable(record_type, record_id));
CREATE POLICY team_member_change ON crm.team_member FOR UPDATE TO crm_user
	USING (crm.record_editable(record_type, record_id))
	WITH CHECK (crm.record_editable(record_type, record_id));
CREATE POLICY team_member_remove ON crm.team_member FOR DELETE TO crm_user
	USING (crm.record_editable(record_type, record_id));
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
-- What is written about a record (a team entry, follow-up, tag, attachment)
-- needs the record within reach: seen (argument visible) or editable.  Row
-- security would refuse it anyway, with a message naming a policy; this names
-- the record and says why, before it does.
CREATE OR REPLACE FUNCTION crm.check_record_reach() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID NOT IN ('crm.team_member'::regclass, 'crm.follow_up'::regclass, 'crm.record_tag'::regclass, 'crm.attachment'::regclass) THEN RAISE 'crm.check_record_reach() runs only on crm.team_member, crm.follow_up, crm.record_tag and crm.attachment, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- (crm's own code and superusers pass row security; NOT NULL names a missing record)
	IF NOT row_security_active(TG_RELID) OR crm.restoring() OR NEW.record_id IS NULL OR NEW.record_type IS NULL THEN
		RETURN NEW;
	END IF;
	IF NOT (CASE TG_ARGV[0] WHEN 'visible' THEN crm.record_visible(NEW.record_type, NEW.record_id)
	                        ELSE crm.record_editable(NEW.record_type, NEW.record_id) END) THEN
		RAISE EXCEPTION '% cannot % % %: %', coalesce((SELECT format('employee "%s"', crm.clip(e.name)) FROM crm.employee e
		                                               WHERE e.id = crm.current_employee_id()), 'nobody'),
			TG_ARGV[1], crm.clip(NEW.record_type), NEW.record_id,
			CASE TG_ARGV[0] WHEN 'visible' THEN 'no such record is visible to them' ELSE 'they may not edit it' END
			USING ERRCODE = 'insufficient_privilege',
			      HINT = CASE TG_ARGV[0] WHEN 'visible' THEN 'Write about records you can see; crm.explain_access(record_type, id) says who sees one.'
			                  ELSE 'Its owner, someone who manages them, or an edit collaborator can; crm.explain_access(record_type, id) says why not you.' END;
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER team_member_reach BEFORE INSERT OR UPDATE OF record_type, record_id ON crm.team_member
	FOR EACH ROW EXECUTE FUNCTION crm.check_record_reach('editable', 'change the team of');
CREATE OR REPLACE TRIGGER team_member_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.team_member
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
ALTER TABLE crm.team_member ENABLE ALWAYS TRIGGER team_member_changed;

-- crm.deactivate_employee() and crm.handover_employee() (src/access/org.c) check
-- who asks, then run this as the owner of the crm tables: every record moves,
-- whoever can see it.  The leaver may already be inactive (directory sync, an
-- UPDATE of crm.employee): their work still moves.
CREATE OR REPLACE FUNCTION crm.hand_over_work(employee_id bigint, handover_to bigint, deactivate boolean) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	leaving   crm.employee;
	successor crm.employee;
	actor     bigint := crm.invoking_employee_id();
	moved     integer := 0;
	n         integer;
	t         record;
BEGIN
	SELECT * INTO leaving FROM crm.employee e WHERE e.id = hand_over_work.employee_id FOR NO KEY UPDATE;
	SELECT * INTO successor FROM crm.employee e WHERE e.id = handover_to FOR SHARE;
	IF leaving.id IS NULL OR successor.id IS NULL THEN
		RAISE EXCEPTION 'employee % does not exist', CASE WHEN leaving.id IS NULL THEN employee_id ELSE handover_to END
			USING ERRCODE = 'no_data_found', HINT = 'Name employees by their crm.employee id.';
	ELSIF leaving.is_pool OR NOT successor.active OR successor.is_pool OR successor.id = leaving.id THEN
		RAISE EXCEPTION 'employee % (%) cannot take over from employee % (%)', successor.id, crm.clip(successor.name), leaving.id, crm.clip(leaving.name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = CASE WHEN successor.id = leaving.id THEN 'An employee cannot hand over to themselves.'
			                    WHEN leaving.is_pool OR successor.is_pool THEN 'A public pool neither hands over nor takes over; its customers are claimed and released.'
			                    ELSE 'The successor is deactivated.' END,
			      HINT = 'Hand over to another active employee.';
	END IF;

	-- the records of every type that takes part in handover (crm.record_type)
	FOR t IN SELECT r.relation FROM crm.record_type r WHERE 'handover' = ANY (r.capabilities) ORDER BY r.position LOOP
		EXECUTE format('UPDATE %s SET owner_id = $1 WHERE owner_id = $2', t.relation) USING successor.id, leaving.id;
		GET DIAGNOSTICS n = ROW_COUNT; moved := moved + n;
	END LOOP;
	-- records that belong to another (a customer's contacts) follow it: the
	-- leaver's go to whoever owns the record they belong to now
	FOR t IN SELECT r.relation, r.parent_column, p.relation AS parent_relation
	           FROM crm.record_type r JOIN crm.record_type p ON p.name = r.parent
	          WHERE NOT 'handover' = ANY (r.capabilities)
	            AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = r.relation AND a.attname = 'owner_id' AND NOT a.attisdropped)
	          ORDER BY r.position LOOP
		EXECUTE format('UPDATE %s c SET owner_id = p.owner_id FROM %s p WHERE p.id = c.%I AND c.owner_id = $1 AND p.owner_id <> $1',
		               t.relation, t.parent_relation, t.parent_column) USING leaving.id;
		GET DIAGNOSTICS n = ROW_COUNT; moved := moved + n;
	END LOOP;
	-- team places move unless the successor already has one on that record
	UPDATE crm.team_member tm SET employee_id = successor.id
	 WHERE tm.employee_id = leaving.id
	   AND NOT EXISTS (SELECT FROM crm.team_member s
	                    WHERE s.record_type = tm.record_type AND s.record_id = tm.record_id
	                      AND s.employee_id = successor.id);
	GET DIAGNOSTICS n = ROW_COUNT; moved := moved + n;
	DELETE FROM crm.team_member WHERE team_member.employee_id = leaving.id;
	UPDATE crm.department SET leader_id = successor.id WHERE leader_id = leaving.id;
	GET DIAGNOSTICS n = ROW_COUNT; moved := moved + n;
	-- subordinates report to the leaver's own superior: the chain loses a link, never gains a cycle
	UPDATE crm.employee SET superior_id = leaving.superior_id WHERE superior_id = leaving.id;
	IF deactivate AND leaving.active THEN
		UPDATE crm.employee SET active = false WHERE id = leaving.id;
	END IF;
	-- the successor hears what came, and the leader of the leaver's department
	-- (when someone else) where it went
	IF moved = 0 THEN
		RETURN 0;
	END IF;
	PERFORM crm.notify(ARRAY[successor.id], 'handover.received', m.title, m.body, 'employee', leaving.id)
	   FROM crm.notification_text('handover.received', jsonb_build_object(
	            'leaver', leaving.name, 'count', moved,
	            'actor', coalesce((SELECT e.name FROM crm.employee e WHERE e.id = actor), 'crm'))) m;
	PERFORM crm.notify(ARRAY[d.leader_id], 'handover.done', m.title, m.body, 'employee', leaving.id)
	   FROM crm.department d,
	        crm.notification_text('handover.done', jsonb_build_object(
	            'leaver', leaving.name, 'count', moved, 'successor', successor.name,
	            'actor', coalesce((SELECT e.name FROM crm.employee e WHERE e.id = actor), 'crm'))) m
	  WHERE d.id = leaving.department_id AND d.leader_id IS DISTINCT FROM successor.id AND d.leader_id IS DISTINCT FROM actor;
	RETURN moved;
END
$$;

CREATE OR REPLACE FUNCTION crm.handover_employee(employee_id bigint, handover_to bigint) RETURNS integer
	AS 'MODULE_PATHNAME', 'crm_handover_employee' LANGUAGE C;
COMMENT ON FUNCTION crm.handover_employee(bigint, bigint) IS
	'Hand an employee''s records, team places and leadership to another (a leaver already deactivated, or someone changing jobs)';

CREATE OR REPLACE FUNCTION crm.deactivate_employee(employee_id bigint, handover_to bigint) RETURNS integer
	AS 'MODULE_PATHNAME', 'crm_deactivate_employee' LANGUAGE C;
COMMENT ON FUNCTION crm.deactivate_employee(bigint, bigint) IS
	'Hand over an employee''s records, team places and leadership to another, then deactivate them';
