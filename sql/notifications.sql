-- Notifications: the inbox, preferences, IM channels and the delivery outbox
-- ids named in messages start at 1300 here, whatever other test files created
SELECT setval(s, 1300, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.contact_id_seq', 'crm.notification_id_seq',
	'crm.im_channel_id_seq', 'crm.im_delivery_id_seq']) s \g /dev/null
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['nt_mgr', 'nt_a', 'nt_b', 'nt_it'] LOOP
		EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
	END LOOP;
END $$;
INSERT INTO crm.department (name) VALUES ('Nt Sales');
INSERT INTO crm.employee (name, department_id, db_role, wecom_userid, feishu_open_id)
SELECT e.name, d.id, e.role, e.wecom, e.feishu
  FROM (VALUES ('Nt Manager', 'nt_mgr', NULL, NULL), ('Nt A', 'nt_a', 'nt-a', NULL),
               ('Nt B', 'nt_b', 'nt-b', 'ou_nt_b'), ('Nt IT', 'nt_it', NULL, NULL)) e(name, role, wecom, feishu),
       crm.department d WHERE d.name = 'Nt Sales';
INSERT INTO crm.role (name) VALUES ('Nt manager'), ('Nt rep'), ('Nt IT');
INSERT INTO crm.role_scope (role_id, record_type, scope)
SELECT r.id, 'customer', CASE r.name WHEN 'Nt manager' THEN 'department' ELSE 'self' END
  FROM crm.role r WHERE r.name IN ('Nt manager', 'Nt rep');
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.create', 'customer.edit']) a WHERE r.name IN ('Nt manager', 'Nt rep')
UNION ALL SELECT id, 'customer.transfer' FROM crm.role WHERE name = 'Nt manager'
UNION ALL SELECT id, 'admin.im' FROM crm.role WHERE name = 'Nt IT';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e JOIN crm.role r ON r.name = CASE e.db_role WHEN 'nt_mgr' THEN 'Nt manager'
	WHEN 'nt_it' THEN 'Nt IT' ELSE 'Nt rep' END
 WHERE e.db_role LIKE 'nt_%';
SELECT id AS a FROM crm.employee WHERE db_role = 'nt_a' \gset
SELECT id AS b FROM crm.employee WHERE db_role = 'nt_b' \gset

-- IM channels are configured by holders of admin.im; a salesperson may not
SET ROLE nt_a;
INSERT INTO crm.im_channel (name, platform, kind, app_id, app_secret, agent_id)
VALUES ('WeCom app', 'wecom', 'app', 'ww-corp', 'corp-secret', '1000002');
RESET ROLE;
SET ROLE nt_it;
INSERT INTO crm.im_channel (name, platform, kind, app_id, app_secret, agent_id)
VALUES ('WeCom app', 'wecom', 'app', 'ww-corp', 'corp-secret', '1000002'),
       ('Feishu app', 'feishu', 'app', 'cli_nt', 'feishu-secret', NULL);
INSERT INTO crm.im_channel (name, platform, kind) VALUES ('Sales group', 'dingtalk', 'robot');
INSERT INTO crm.im_channel (name, platform, kind, webhook_url, secret)
VALUES ('Sales group', 'dingtalk', 'robot', 'http://127.0.0.1:1/robot/send?access_token=t', 'SEC-nt');
INSERT INTO crm.im_channel (name, platform, kind, webhook_url) VALUES ('Line', 'line', 'robot', 'http://127.0.0.1:1/');
-- the platforms' hosts and rate limits are filled in; the secrets can be written, not read back
SELECT name, platform, kind, api_base, rate_per_minute FROM crm.im_channel ORDER BY id;
SELECT app_secret FROM crm.im_channel;
RESET ROLE;
SELECT name, app_secret, secret FROM crm.im_channel ORDER BY id;
-- robot signatures match the platforms' published vectors; WeCom robots are not signed
SELECT crm.im_robot_sign('feishu', 'demo-feishu-secret', 1700000000) AS feishu,
       crm.im_robot_sign('dingtalk', 'SEC0123456789abcdef', 1700000000000) AS dingtalk;
SELECT crm.im_robot_sign('wecom', 'x', 1700000000);

-- A owns two customers; the manager transfers them to B
SET ROLE nt_a;
INSERT INTO crm.customer (name, uscc)
SELECT 'Nt customer ' || n, crm.uscc_with_check('9133010001300' || n || '000') FROM generate_series(1, 2) n;
RESET ROLE;
SET ROLE nt_mgr;
SELECT crm.transfer('customer', ARRAY(SELECT id FROM crm.customer WHERE name LIKE 'Nt customer %'), :b) AS moved;
RESET ROLE;
-- B is told of the transfer, A that her customers went to B and she stays on
-- their teams (not that she was added to them); each sees only their own
SET ROLE nt_b;
SELECT event, title, record_type, record_id, read_at IS NULL AS unread FROM crm.notification;
RESET ROLE;
SET ROLE nt_a;
SELECT event, title, body, record_type, record_id FROM crm.notification ORDER BY record_id;
RESET ROLE;
-- A cannot mark B's notification read, nor edit what a notification says
SELECT min(id) AS b_note FROM crm.notification WHERE recipient_id = :b \gset
SET ROLE nt_a;
SELECT crm.mark_read(:b_note) AS marked_b;
UPDATE crm.notification SET read_at = now() WHERE id = :b_note;
UPDATE crm.notification SET title = 'forged';
RESET ROLE;
SET ROLE nt_b;
SELECT crm.mark_read(:b_note) AS first, crm.mark_read(:b_note) AS again;
RESET ROLE;

-- the business transactions wrote inbox rows only, marked for the worker,
-- which expands them into deliveries (here by hand: no worker in this database)
SELECT count(*) FILTER (WHERE im_pending) AS pending, count(*) AS notifications
  FROM crm.notification n JOIN crm.employee e ON e.id = n.recipient_id WHERE e.name LIKE 'Nt %';
SELECT crm.im_expand(1000) AS expanded, crm.im_expand(1000) AS again;
-- every app notification became one delivery per platform the recipient is on:
-- B is on WeCom and Feishu, A on WeCom only; the robot lists no events
SELECT e.name, c.name AS channel, d.status, d.attempts
  FROM crm.im_delivery d JOIN crm.notification n ON n.id = d.notification_id
  JOIN crm.employee e ON e.id = n.recipient_id JOIN crm.im_channel c ON c.id = d.channel_id
 ORDER BY e.name, n.id, c.name;
SET ROLE nt_b;
SELECT count(*) FROM crm.im_delivery;
RESET ROLE;

-- preferences: B wants team news in the app only, and nothing else at all
SET ROLE nt_b;
INSERT INTO crm.notification_preference (event, delivery) VALUES ('team.added', 'inapp'), ('*', 'none');
INSERT INTO crm.notification_preference (event, delivery) VALUES ('lunch.ready', 'app');
INSERT INTO crm.notification_preference (employee_id, event, delivery) VALUES (:a, 'team.added', 'none');
RESET ROLE;
SET ROLE nt_a;
SELECT count(*) AS a_sees_b_preferences FROM crm.notification_preference;
RESET ROLE;
SELECT count(*) AS before FROM crm.notification WHERE recipient_id = :b \gset
SELECT count(*) AS deliveries_before FROM crm.im_delivery \gset
SET ROLE nt_mgr;
SELECT crm.transfer('customer', ARRAY(SELECT id FROM crm.customer WHERE name = 'Nt customer 1'), :a) AS moved;
RESET ROLE;
-- B stayed on the team, which is no news to its owner; what went is (transfer.away),
-- but B chose to hear nothing but team news
SELECT event, title FROM crm.notification WHERE recipient_id = :b ORDER BY id OFFSET :before;
SELECT crm.im_expand(1000) \g /dev/null
SELECT count(*) - :deliveries_before AS new_deliveries FROM crm.im_delivery;

-- a robot posts the events it lists to its group, whoever they are for
SET ROLE nt_it;
UPDATE crm.im_channel SET events = '{team.added, lunch.ready}' WHERE name = 'Sales group';
UPDATE crm.im_channel SET events = '{team.added}' WHERE name = 'WeCom app';
UPDATE crm.im_channel SET events = '{team.added}' WHERE name = 'Sales group';
RESET ROLE;

-- nobody writes their own team entry; a rolled-back change notifies nobody
SET ROLE nt_a;
INSERT INTO crm.team_member (record_type, record_id, employee_id, access)
SELECT 'customer', id, :a, 'edit' FROM crm.customer WHERE name = 'Nt customer 1'
ON CONFLICT (record_type, record_id, employee_id) DO NOTHING;
-- two collaborators added at once, each told their own access
INSERT INTO crm.team_member (record_type, record_id, employee_id, access)
SELECT 'customer', c.id, e.id, CASE e.db_role WHEN 'nt_mgr' THEN 'read' ELSE 'edit' END
  FROM crm.customer c, crm.employee e WHERE c.name = 'Nt customer 1' AND e.db_role IN ('nt_mgr', 'nt_it');
RESET ROLE;
SELECT e.name, n.title, n.body FROM crm.notification n JOIN crm.employee e ON e.id = n.recipient_id
 WHERE e.db_role IN ('nt_mgr', 'nt_it') ORDER BY e.name;
-- neither has an IM id: the group robot is the only channel that posts them
SELECT crm.im_expand(1000) AS expanded;
SELECT e.name, c.name AS channel, d.status
  FROM crm.im_delivery d JOIN crm.notification n ON n.id = d.notification_id
  JOIN crm.employee e ON e.id = n.recipient_id JOIN crm.im_channel c ON c.id = d.channel_id
 WHERE n.event = 'team.added' ORDER BY e.name;
-- (customer 1 is A's already: the notification names the one record that moved)
BEGIN;
SET LOCAL ROLE nt_mgr;
SELECT crm.transfer('customer', ARRAY(SELECT id FROM crm.customer WHERE name LIKE 'Nt customer %' ORDER BY name), :a) AS moved;
RESET ROLE;
SELECT n.title, c.name FROM crm.notification n JOIN crm.customer c ON c.id = n.record_id
 WHERE n.recipient_id = :a ORDER BY n.id DESC LIMIT 1;
ROLLBACK;
SELECT e.name, n.event, count(*) FROM crm.notification n JOIN crm.employee e ON e.id = n.recipient_id
 WHERE e.name LIKE 'Nt %' GROUP BY 1, 2 ORDER BY 1, 2;

-- each channel's queue at a glance (crm_admin)
SELECT name, enabled, pending, failing, sent, dead, last_code FROM crm.im_channel_status ORDER BY channel_id;

-- deleting a channel drops its queue
SELECT count(*) AS deliveries_before FROM crm.im_delivery \gset
SET ROLE nt_it;
DELETE FROM crm.im_channel WHERE name = 'Feishu app';
RESET ROLE;
SELECT :deliveries_before - count(*) AS dropped,
       count(*) FILTER (WHERE NOT EXISTS (SELECT FROM crm.im_channel c WHERE c.id = d.channel_id)) AS orphans
  FROM crm.im_delivery d;

-- only crm's own code writes notifications
SET ROLE nt_a;
SELECT crm.notify(ARRAY[:b::bigint], 'transfer.received', 'fake', NULL);
INSERT INTO crm.notification (recipient_id, event, title) VALUES (:b, 'transfer.received', 'fake');
RESET ROLE;
-- a handover tells the successor; deactivated employees are not notified
SELECT crm.handover_employee(:b, :a) AS handed_over;
SELECT event, title, record_type, record_id = :b AS about_b FROM crm.notification WHERE recipient_id = :a AND event = 'handover.received';
SELECT crm.notify(ARRAY[:b::bigint], 'transfer.received', 'to a leaver', NULL) AS written;
SELECT crm.notify(ARRAY[:a::bigint], 'lunch.ready', 'no such event', NULL);
-- a recipient named twice is told once; NULLs and unknown ids are nobody
SELECT crm.notify(ARRAY[:a, :a, NULL, -1]::bigint[], 'transfer.received', 'twice', NULL) AS written;
-- a preference changed in this transaction counts at once, in every backend after commit
BEGIN;
INSERT INTO crm.notification_preference (employee_id, event, delivery) VALUES (:a, 'transfer.received', 'none');
SELECT crm.notify(ARRAY[:a::bigint], 'transfer.received', 'muted', NULL) AS written;
ROLLBACK;
SELECT crm.notify(ARRAY[:a::bigint], 'transfer.received', 'heard again', NULL) AS written;
SELECT title FROM crm.notification WHERE recipient_id = :a AND title IN ('twice', 'muted', 'heard again') ORDER BY id;
SELECT crm.notify(ARRAY[:a::bigint], NULL, 'no event', NULL);

-- rules add recipients by their relation to the record: here the owner's superior and the team
UPDATE crm.employee SET superior_id = (SELECT id FROM crm.employee WHERE db_role = 'nt_mgr') WHERE id = :a;
SET ROLE nt_a;
INSERT INTO crm.notification_rule VALUES ('transfer.received', 'superior');
RESET ROLE;
SET ROLE nt_it;
INSERT INTO crm.notification_rule VALUES ('transfer.received', 'superior'), ('transfer.received', 'team');
INSERT INTO crm.notification_rule VALUES ('transfer.received', 'grandboss');
RESET ROLE;
SELECT id AS c1 FROM crm.customer WHERE name = 'Nt customer 1' \gset
SELECT crm.notify(ARRAY[:a]::bigint[], 'transfer.received', 'rule test', NULL, 'customer', :c1) AS written;
SELECT e.name FROM crm.notification n JOIN crm.employee e ON e.id = n.recipient_id WHERE n.title = 'rule test' ORDER BY e.name;
-- without a record the rules name nobody more
SELECT crm.notify(ARRAY[:a]::bigint[], 'transfer.received', 'no record', NULL) AS written;
