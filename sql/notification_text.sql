-- Notification texts: rows per event and language, Chinese by default, checked
-- when written (src/sql/95_notification_text.sql, docs/notifications.md "Texts")
DO $$
BEGIN
	CREATE ROLE nx_it LOGIN IN ROLE crm_user;
	CREATE ROLE nx_rep LOGIN IN ROLE crm_user;
END $$;
INSERT INTO crm.department (name) VALUES ('Nx Office');
INSERT INTO crm.employee (name, db_role, department_id)
SELECT e, r, d.id FROM (VALUES ('Nx IT', 'nx_it'), ('Nx Rep', 'nx_rep')) v(e, r), crm.department d WHERE d.name = 'Nx Office';
INSERT INTO crm.role (name) VALUES ('Nx IT');
INSERT INTO crm.role_permission (role_id, action) SELECT id, 'admin.im' FROM crm.role WHERE name = 'Nx IT';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e, crm.role r WHERE e.db_role = 'nx_it' AND r.name = 'Nx IT';

-- every event crm emits speaks Chinese and English
SELECT e.event, array_agg(t.language ORDER BY t.language) AS languages
  FROM crm.notification_event e LEFT JOIN crm.notification_template t ON t.event = e.event
 WHERE e.event <> '*' GROUP BY e.event ORDER BY e.event;
SELECT language FROM crm.settings;

-- a text names people and records; a choice picks the words for a value; a
-- list gets one line per item
SELECT * FROM crm.notification_text('team.added',
	'{"actor": "王经理", "type": "客户", "record": "杭州西湖茶业有限公司", "access": "edit"}');
SELECT * FROM crm.notification_text('transfer.received',
	'{"actor": "王经理", "count": 2, "type": "客户", "items": [{"record": "甲公司"}, {"record": "乙公司"}]}');
-- the company speaks English: the same events say it in English
UPDATE crm.settings SET language = 'en';
SELECT * FROM crm.notification_text('transfer.received',
	'{"actor": "Wang", "count": 1, "type": "customer", "items": [{"record": "Acme"}]}');
SELECT title FROM crm.notification_text('transfer.received', '{"actor": "Wang", "count": 2, "type": "customer", "items": []}');
-- a language without texts of its own falls back to Chinese
UPDATE crm.settings SET language = 'fr';
SELECT title FROM crm.notification_text('pool.assigned', '{"actor": "Wang", "record": "Acme", "pool": "East"}');
UPDATE crm.settings SET language = 'Klingon!';
UPDATE crm.settings SET language = 'zh-CN';

-- whatever the names and however many items, a text fits a notification:
-- a name is quoted as messages quote it, a list says how many more it left out
SELECT length(title) AS title_chars, title FROM crm.notification_text('team.added',
	jsonb_build_object('actor', repeat('长', 100000), 'type', '客户', 'record', repeat('名', 300), 'access', 'read'));
SELECT length(body) AS body_chars, right(body, 40) AS ends_with
  FROM crm.notification_text('pool.recycled', jsonb_build_object('count', 5000, 'items_more', 4000,
	'items', (SELECT jsonb_agg(jsonb_build_object('record', '客户' || g, 'pool', '公海', 'rule', '十五天', 'kind', 'no_follow_up', 'days', 15))
	            FROM generate_series(1, 1000) g)));
-- (a caller's count of the items left out is taken within reason, never wrapped)
SELECT v.more, split_part(t.body, E'\n', 2) AS after_the_items FROM (VALUES (-5), (9223372036854775807)) v(more),
       crm.notification_text('pool.recycled', jsonb_build_object('count', 1, 'items_more', v.more,
         'items', '[{"record": "甲", "pool": "公海", "rule": "十五天", "kind": "no_follow_up", "days": 15}]'::jsonb)) t
 ORDER BY v.more;
SELECT * FROM crm.notification_text('lunch.ready', '{}');
SELECT * FROM crm.notification_text('team.added', '[1, 2]');

-- a company edits its texts as rows: holders of admin.im, checked when written
SET ROLE nx_rep;
UPDATE crm.notification_template SET title = '有人动了你的客户' WHERE event = 'transfer.away' AND language = 'zh-CN';
RESET ROLE;
SET ROLE nx_it;
UPDATE crm.notification_template SET title = '{actor}把{count}个{type}交给了{to}', builtin = true
 WHERE event = 'transfer.away' AND language = 'zh-CN';
UPDATE crm.notification_template SET title = '{actor}把{count}个{type}交给了{to}'
 WHERE event = 'transfer.away' AND language = 'zh-CN';
SELECT title, builtin FROM crm.notification_template WHERE event = 'transfer.away' AND language = 'zh-CN';
-- an unknown placeholder, in the title or in an item line, is refused with the event's own
UPDATE crm.notification_template SET title = '{boss}把{count}个{type}交给了{to}'
 WHERE event = 'transfer.away' AND language = 'zh-CN';
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.notification_template SET item = '{record}（{amount}元）' WHERE event = 'transfer.away' AND language = 'zh-CN';
UPDATE crm.notification_template SET body = '{count}个' WHERE event = 'transfer.away' AND language = 'zh-CN';
INSERT INTO crm.notification_template (event, language, title) VALUES ('pool.assigned', 'ja', '{record}が割り当てられました {items}');
INSERT INTO crm.notification_template (event, language, title) VALUES ('lunch.ready', 'ja', '昼ご飯');
-- a new language is a row per event; the Chinese text every language falls back to stays
INSERT INTO crm.notification_template (event, language, title, body)
VALUES ('pool.assigned', 'ja', '{actor}さんが{pool}の{record}をあなたに割り当てました', NULL);
RESET ROLE;
UPDATE crm.settings SET language = 'ja';
SELECT title FROM crm.notification_text('pool.assigned', '{"actor": "王", "record": "Acme", "pool": "East"}')
UNION ALL
SELECT title FROM crm.notification_text('transfer.received', '{"actor": "王", "count": 1, "type": "客户"}');
UPDATE crm.settings SET language = 'zh-CN';
SET ROLE nx_it;
DELETE FROM crm.notification_template WHERE event = 'pool.assigned' AND language = 'zh-CN';
\echo :LAST_ERROR_SQLSTATE
-- nor moved away from its event or language, which would leave the event without one
UPDATE crm.notification_template SET language = 'zh-TW' WHERE event = 'pool.assigned' AND language = 'zh-CN';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM crm.notification_template WHERE event = 'pool.assigned' AND language = 'ja';
RESET ROLE;

-- an edited text is what the next notification says
SELECT title FROM crm.notification_text('transfer.away', '{"actor": "王经理", "count": 2, "type": "客户", "to": "李四"}');

-- (the shipped text back, for the tests that follow)
ALTER TABLE crm.notification_template DISABLE TRIGGER USER;
UPDATE crm.notification_template SET title = '{actor}把你的{count}个{type}转给了{to}', builtin = true
 WHERE event = 'transfer.away' AND language = 'zh-CN';
ALTER TABLE crm.notification_template ENABLE TRIGGER USER;
