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
COMMENT ON COLUMN crm.department.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.department.name IS 'Department name; unique among its siblings';
COMMENT ON COLUMN crm.department.parent_id IS 'Parent department (crm.department.id); NULL for a top department';
COMMENT ON COLUMN crm.department.leader_id IS 'Department leader (crm.employee.id)';
COMMENT ON COLUMN crm.department.position IS 'Order among siblings';
COMMENT ON COLUMN crm.department.created_at IS 'When the department was created; kept by crm; not writable';
COMMENT ON COLUMN crm.department.updated_at IS 'When the department last changed; kept by crm; not writable';

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
	-- the identity lookup (src/access/identity.c) scans these two indexes by name
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
COMMENT ON COLUMN crm.employee.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.employee.name IS 'Full name';
COMMENT ON COLUMN crm.employee.mobile IS 'Mobile number; at most 40 characters';
COMMENT ON COLUMN crm.employee.email IS 'E-mail address; at most 254 characters';
COMMENT ON COLUMN crm.employee.department_id IS 'Department (crm.department.id); NULL only for a pool';
COMMENT ON COLUMN crm.employee.superior_id IS 'Direct superior (crm.employee.id), for the subordinates scope';
COMMENT ON COLUMN crm.employee.in_statistics IS 'Counted in reports and rankings';
COMMENT ON COLUMN crm.employee.holding_limit IS 'Customers not yet signed this employee may hold; NULL: crm.settings.holding_limit';
COMMENT ON COLUMN crm.employee.daily_claim_limit IS 'Customers this employee may claim from pools per day; NULL: crm.settings.daily_claim_limit';
COMMENT ON COLUMN crm.employee.wecom_userid IS 'WeCom userid, for messages and directory sync';
COMMENT ON COLUMN crm.employee.feishu_open_id IS 'Feishu open_id, for messages and directory sync';
COMMENT ON COLUMN crm.employee.dingtalk_userid IS 'DingTalk userid, for messages and directory sync';
COMMENT ON COLUMN crm.employee.created_at IS 'When the employee was created; kept by crm; not writable';
COMMENT ON COLUMN crm.employee.updated_at IS 'When the employee last changed; kept by crm; not writable';

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

CREATE OR REPLACE TRIGGER department_stamp BEFORE INSERT OR UPDATE ON crm.department
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();
CREATE OR REPLACE TRIGGER employee_stamp BEFORE INSERT OR UPDATE ON crm.employee
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();

-- Whoever can become an employee's login role acts as that employee: a role
-- other roles are members of (crm_user, crm_admin, a department's group role)
-- would make each of them that employee by SET ROLE.  crm.current_employee_id()
-- resolves such a role to nobody (src/access/identity.c); this names the mistake.
CREATE OR REPLACE FUNCTION crm.check_db_role() RETURNS trigger
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
	-- a role that does not exist yet would become this employee whoever creates it
	IF NEW.db_role IS NOT NULL AND NOT crm.restoring() AND NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = NEW.db_role) THEN
		RAISE EXCEPTION 'employee "%" cannot log in as role "%", which does not exist', crm.clip(NEW.name), crm.clip(NEW.db_role)
			USING ERRCODE = 'undefined_object',
			      HINT = format('Create it first: CREATE ROLE %s LOGIN IN ROLE crm_user.', quote_ident(NEW.db_role));
	END IF;
	IF NEW.db_role IS NOT NULL AND EXISTS (SELECT FROM crm.employee e WHERE e.db_role = NEW.db_role AND e.id <> NEW.id) THEN
		RAISE EXCEPTION 'employee "%" cannot log in as role "%": another employee does', crm.clip(NEW.name), crm.clip(NEW.db_role)
			USING ERRCODE = 'unique_violation',
			      HINT = 'A login role acts as one employee: give each their own, or take it from the other first.';
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER employee_db_role_check BEFORE INSERT OR UPDATE OF db_role ON crm.employee
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
COMMENT ON COLUMN crm.org_tree_lock.tree IS 'department or employee; kept by crm; not writable';
INSERT INTO crm.org_tree_lock VALUES ('department'), ('employee');

-- (as its owner: to lock crm.org_tree_lock)
CREATE OR REPLACE FUNCTION crm.check_org_tree() RETURNS trigger
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
CREATE OR REPLACE TRIGGER department_tree_insert AFTER INSERT ON crm.department
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.check_org_tree();
CREATE OR REPLACE TRIGGER department_tree_update AFTER UPDATE ON crm.department
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.check_org_tree();
CREATE OR REPLACE TRIGGER employee_superior_insert AFTER INSERT ON crm.employee
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.check_org_tree();
CREATE OR REPLACE TRIGGER employee_superior_update AFTER UPDATE ON crm.employee
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm.check_org_tree();

CREATE OR REPLACE FUNCTION crm.refuse_org_delete() RETURNS trigger
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
CREATE OR REPLACE TRIGGER department_delete_check BEFORE DELETE ON crm.department
	FOR EACH ROW EXECUTE FUNCTION crm.refuse_org_delete();
CREATE OR REPLACE TRIGGER employee_delete_check BEFORE DELETE ON crm.employee
	FOR EACH ROW EXECUTE FUNCTION crm.refuse_org_delete();
CREATE OR REPLACE FUNCTION crm.refuse_truncate() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.employee'::regclass THEN RAISE 'crm.refuse_truncate() runs only on crm.employee, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	RAISE EXCEPTION 'crm.% cannot be truncated', TG_TABLE_NAME
		USING ERRCODE = 'restrict_violation',
		      HINT = 'Employees are never deleted; deactivate them instead.';
END
$$;
CREATE OR REPLACE TRIGGER employee_no_truncate BEFORE TRUNCATE ON crm.employee
	FOR EACH STATEMENT EXECUTE FUNCTION crm.refuse_truncate();
