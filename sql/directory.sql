-- Directory sync applies what a platform listed (crm.directory_apply, as the
-- worker calls it).  A department or user listed twice, as paged answers can,
-- counts once: a tree 22 levels deep, every department listed twice, is 23
-- departments, not millions of rows.
BEGIN;
INSERT INTO crm.directory_sync (platform, channel_id, status) VALUES ('dingtalk', 0, 'running');
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
