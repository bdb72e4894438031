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

CREATE TRIGGER department_stamp BEFORE INSERT OR UPDATE ON crm.department
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();
CREATE TRIGGER employee_stamp BEFORE INSERT OR UPDATE ON crm.employee
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();

-- The tree and the superior chain stay trees; employees are never deleted.
CREATE FUNCTION crm.check_org_tree() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ancestor bigint;
BEGIN
	IF TG_RELID <> ALL ('{crm.department,crm.employee}'::regclass[]) THEN RAISE 'crm.check_org_tree() runs only on crm.department, crm.employee, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF TG_TABLE_NAME = 'department' THEN
		ancestor := NEW.parent_id;
		WHILE ancestor IS NOT NULL LOOP
			IF ancestor = NEW.id THEN
				RAISE EXCEPTION 'department % (%) cannot be placed under department %', NEW.id, NEW.name, NEW.parent_id
					USING ERRCODE = 'check_violation',
					      DETAIL = format('Department %s is inside department %s''s own sub-tree, which would make a cycle.',
					                      NEW.parent_id, NEW.id),
					      HINT = 'Move it under a department outside its sub-tree.';
			END IF;
			SELECT parent_id INTO ancestor FROM crm.department WHERE id = ancestor;
		END LOOP;
	ELSE
		ancestor := NEW.superior_id;
		WHILE ancestor IS NOT NULL LOOP
			IF ancestor = NEW.id THEN
				RAISE EXCEPTION 'employee % (%) cannot report to employee %', NEW.id, NEW.name, NEW.superior_id
					USING ERRCODE = 'check_violation',
					      DETAIL = format('Employee %s already reports, directly or not, to employee %s, which would make a cycle.',
					                      NEW.superior_id, NEW.id),
					      HINT = 'Choose a superior who is not among the employee''s subordinates.';
			END IF;
			SELECT superior_id INTO ancestor FROM crm.employee WHERE id = ancestor;
		END LOOP;
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER department_tree_check BEFORE UPDATE OF parent_id ON crm.department
	FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL) EXECUTE FUNCTION crm.check_org_tree();
CREATE TRIGGER employee_superior_check BEFORE UPDATE OF superior_id ON crm.employee
	FOR EACH ROW WHEN (NEW.superior_id IS NOT NULL) EXECUTE FUNCTION crm.check_org_tree();

CREATE FUNCTION crm.refuse_org_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	members  bigint;
	children bigint;
BEGIN
	IF TG_RELID <> ALL ('{crm.department,crm.employee}'::regclass[]) THEN RAISE 'crm.refuse_org_delete() runs only on crm.department, crm.employee, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF TG_TABLE_NAME = 'employee' THEN
		RAISE EXCEPTION 'employee % (%) cannot be deleted', OLD.id, OLD.name
			USING ERRCODE = 'restrict_violation',
			      DETAIL = 'Employees are never deleted: their name stays on the history they wrote.',
			      HINT = format('Use SELECT crm.deactivate_employee(%s, <successor id>) to hand their work over.', OLD.id);
	END IF;
	SELECT count(*) INTO members FROM crm.employee WHERE department_id = OLD.id;
	SELECT count(*) INTO children FROM crm.department WHERE parent_id = OLD.id;
	IF members > 0 OR children > 0 THEN
		RAISE EXCEPTION 'department % (%) still has % employees and % sub-departments', OLD.id, OLD.name, members, children
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
