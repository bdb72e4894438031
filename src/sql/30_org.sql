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
	CONSTRAINT department_name_check CHECK (btrim(name) <> ''),
	CONSTRAINT department_not_own_parent CHECK (parent_id <> id),
	CONSTRAINT department_name_key UNIQUE NULLS NOT DISTINCT (parent_id, name)
);
COMMENT ON TABLE crm.department IS 'Department tree (parent_id NULL for a top department)';

CREATE TABLE crm.employee (
	id                bigint GENERATED ALWAYS AS IDENTITY,
	name              text NOT NULL,
	mobile            text,
	email             text,
	department_id     bigint NOT NULL,
	superior_id       bigint,
	db_role           name,
	active            boolean NOT NULL DEFAULT true,
	in_statistics     boolean NOT NULL DEFAULT true,
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
	CONSTRAINT employee_name_check CHECK (btrim(name) <> ''),
	CONSTRAINT employee_not_own_superior CHECK (superior_id <> id),
	CONSTRAINT employee_holding_limit_check CHECK (holding_limit >= 0),
	CONSTRAINT employee_daily_claim_limit_check CHECK (daily_claim_limit >= 0)
);
COMMENT ON TABLE crm.employee IS 'Employees; db_role is the login role that acts as this employee';
COMMENT ON COLUMN crm.employee.db_role IS 'Login role mapped to this employee (crm.current_employee_id())';
COMMENT ON COLUMN crm.employee.active IS 'Deactivated employees resolve to nobody; employees are never deleted';

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

-- ENABLE ALWAYS: logical-replication apply (session_replication_role = replica)
-- changes the organisation too, and must invalidate as well.
CREATE TRIGGER department_org_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.department
	FOR EACH STATEMENT EXECUTE FUNCTION crm.org_changed();
CREATE TRIGGER employee_org_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.employee
	FOR EACH STATEMENT EXECUTE FUNCTION crm.org_changed();
ALTER TABLE crm.department ENABLE ALWAYS TRIGGER department_org_changed;
ALTER TABLE crm.employee ENABLE ALWAYS TRIGGER employee_org_changed;

GRANT SELECT ON crm.department, crm.employee TO crm_user;
GRANT INSERT, UPDATE, DELETE ON crm.department, crm.employee TO crm_admin;
