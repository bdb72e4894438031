-- Directory sync applies what a platform listed (crm.directory_apply, as the
-- worker calls it).  A department or user listed twice, as paged answers can,
-- counts once: a tree 22 levels deep, every department listed twice, is 23
-- departments, not millions of rows.
BEGIN;
INSERT INTO crm.im_channel (name, platform, kind, app_id, app_secret, agent_id, reads_directory)
VALUES ('Dir apply app', 'dingtalk', 'app', 'dt-apply', 'dt-apply-secret', '2000000', true);
INSERT INTO crm.directory_sync (platform, status) VALUES ('dingtalk', 'running');
SELECT crm.directory_apply(currval('crm.directory_sync_id_seq'), jsonb_build_object(
	'departments', (SELECT jsonb_agg(jsonb_build_object('id', 'dir-' || i, 'name', 'Dir level ' || i,
	                                                    'parent', CASE WHEN i > 0 THEN 'dir-' || (i - 1) END))
	                  FROM generate_series(0, 22) i, generate_series(1, 2) twice),
	'users', (SELECT jsonb_agg(jsonb_build_object('id', 'dir-user', 'name', 'Dir ' || v, 'mobile', '13900009999',
	                                              'departments', ARRAY['dir-22']) ORDER BY v)
	            FROM unnest(ARRAY['first listing', 'second listing']) v)));
SELECT status, departments, employees, created, updated FROM crm.directory_sync
 WHERE id = currval('crm.directory_sync_id_seq');
SELECT count(*) AS departments, count(DISTINCT parent_id) AS parents, max(name) FILTER (WHERE dingtalk_department_id = 'dir-22') AS deepest
  FROM crm.department WHERE dingtalk_department_id LIKE 'dir-%';
SELECT e.name, d.name AS department FROM crm.employee e JOIN crm.department d ON d.id = e.department_id
 WHERE e.dingtalk_userid = 'dir-user';
ROLLBACK;

-- Which app reads the directory is crm_admin's choice: an administrator of IM
-- channels and of the organisation, with an app of their own (on a server of
-- theirs, or on an organisation of theirs on the platform), reads nothing
-- with it, and may not swap the company app's credentials for their own.
\set ON_ERROR_ROLLBACK on
BEGIN;
CREATE ROLE regress_dir_admin LOGIN IN ROLE crm_user;
INSERT INTO crm.role (name) VALUES ('Dir admins');
INSERT INTO crm.role_permission SELECT id, a FROM crm.role, unnest(ARRAY['admin.im', 'admin.org']) a WHERE name = 'Dir admins';
INSERT INTO crm.department (name) VALUES ('Dir company');
INSERT INTO crm.employee (name, department_id, db_role) SELECT 'Dir admin', id, 'regress_dir_admin' FROM crm.department WHERE name = 'Dir company';
INSERT INTO crm.employee_role SELECT e.id, r.id FROM crm.employee e, crm.role r WHERE e.name = 'Dir admin' AND r.name = 'Dir admins';
INSERT INTO crm.im_channel (name, platform, kind, app_id, app_secret, agent_id, reads_directory)
VALUES ('Dir company app', 'dingtalk', 'app', 'dt-company', 'dt-company-secret', '2000001', true);
-- one app per platform reads its directory, and only an app
INSERT INTO crm.im_channel (name, platform, kind, app_id, app_secret, agent_id, reads_directory)
VALUES ('Dir second app', 'dingtalk', 'app', 'dt-second', 'dt-second-secret', '2000002', true);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.im_channel (name, platform, kind, webhook_url, reads_directory)
VALUES ('Dir robot', 'wecom', 'robot', 'http://127.0.0.1:9/', true);
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_dir_admin;
INSERT INTO crm.im_channel (name, platform, kind, app_id, app_secret, agent_id, api_base)
VALUES ('Dir own app', 'wecom', 'app', 'ww-own', 'ww-own-secret', '1000002', 'http://127.0.0.1:9/');
SELECT crm.sync_directory('wecom');
-- nor by queuing a run themselves: the run reads with the company app
INSERT INTO crm.directory_sync (platform, channel_id) SELECT 'wecom', id FROM crm.im_channel WHERE name = 'Dir own app';
INSERT INTO crm.directory_sync (platform) VALUES ('wecom');
UPDATE crm.im_channel SET reads_directory = true WHERE name = 'Dir own app';
INSERT INTO crm.im_channel (name, platform, kind, app_id, app_secret, reads_directory)
VALUES ('Dir own feishu app', 'feishu', 'app', 'cli-own', 'fs-own-secret', true);
UPDATE crm.im_channel SET app_id = 'dt-own', app_secret = 'dt-own-secret' WHERE name = 'Dir company app';
-- the company app's other settings are still theirs to change
UPDATE crm.im_channel SET rate_per_minute = 300 WHERE name = 'Dir company app';
SELECT name, rate_per_minute, reads_directory FROM crm.im_channel WHERE name LIKE 'Dir %' ORDER BY name;
SELECT crm.sync_directory('dingtalk') > 0 AS queued;
RESET ROLE;
SELECT s.status, c.name AS reads_with FROM crm.directory_sync s JOIN crm.im_channel c ON c.id = s.channel_id;
ROLLBACK;
