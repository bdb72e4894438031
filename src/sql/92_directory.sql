-- Directory sync: departments and employees from WeCom, Feishu or DingTalk.
-- crm.sync_directory(platform) queues a run; the notification worker pages
-- through the platform's directory with the platform's enabled app channel
-- (src/worker/directory.c) and hands what it read to crm.directory_apply, which
-- matches departments and employees by their IM ids in one transaction.

ALTER TABLE crm.department
	ADD COLUMN wecom_department_id text,
	ADD COLUMN feishu_department_id text,
	ADD COLUMN dingtalk_department_id text,
	ADD CONSTRAINT department_wecom_department_id_key UNIQUE (wecom_department_id),
	ADD CONSTRAINT department_feishu_department_id_key UNIQUE (feishu_department_id),
	ADD CONSTRAINT department_dingtalk_department_id_key UNIQUE (dingtalk_department_id);
COMMENT ON COLUMN crm.department.feishu_department_id IS 'open_department_id; "0" is the company';
COMMENT ON COLUMN crm.department.wecom_department_id IS 'WeCom department id, matched by directory sync';
COMMENT ON COLUMN crm.department.dingtalk_department_id IS 'DingTalk dept_id, matched by directory sync';
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

CREATE OR REPLACE FUNCTION crm.guard_directory_channel() RETURNS trigger
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
CREATE OR REPLACE TRIGGER im_channel_guard_directory BEFORE UPDATE ON crm.im_channel
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
COMMENT ON COLUMN crm.directory_sync.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.directory_sync.platform IS 'wecom, feishu or dingtalk; given to crm.sync_directory';
COMMENT ON COLUMN crm.directory_sync.channel_id IS 'The app channel (crm.im_channel.id) read with; kept by crm; not writable';
COMMENT ON COLUMN crm.directory_sync.requested_at IS 'When the run was queued; kept by crm; not writable';
COMMENT ON COLUMN crm.directory_sync.requested_by IS 'Employee (crm.employee.id) who queued it; kept by crm; not writable';
COMMENT ON COLUMN crm.directory_sync.started_at IS 'When the worker started the run; kept by crm; not writable';
COMMENT ON COLUMN crm.directory_sync.finished_at IS 'When the run ended; kept by crm; not writable';
COMMENT ON COLUMN crm.directory_sync.status IS 'queued, running, done or failed; kept by crm; not writable';
COMMENT ON COLUMN crm.directory_sync.requests IS 'HTTP requests made to the platform; kept by crm; not writable';
COMMENT ON COLUMN crm.directory_sync.error IS 'Why a failed run failed; kept by crm; not writable';
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
CREATE OR REPLACE TRIGGER directory_sync_queued AFTER INSERT ON crm.directory_sync
	FOR EACH STATEMENT EXECUTE FUNCTION crm.wake_worker();

-- A run reads with the platform's app that reads the directory, whoever
-- queues it: nobody names another channel (of their own, pointed at a server
-- of their own) for the worker to trust.
CREATE OR REPLACE FUNCTION crm.directory_sync_channel() RETURNS trigger
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
CREATE OR REPLACE TRIGGER directory_sync_channel BEFORE INSERT ON crm.directory_sync
	FOR EACH ROW EXECUTE FUNCTION crm.directory_sync_channel();

-- as the caller: the permission and requested_by are theirs
CREATE OR REPLACE FUNCTION crm.sync_directory(platform text) RETURNS bigint
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
CREATE OR REPLACE FUNCTION crm.directory_apply(sync_id bigint, doc jsonb) RETURNS void
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
CREATE OR REPLACE FUNCTION crm.run_directory_sync() RETURNS integer
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
