-- Rows for every table of crm 0.1 that the demo company (demo/company.sql) leaves
-- empty, written with 0.1's functions: t/013_update.pl checks they all survive an
-- update.  Runs as a superuser after demo/company.sql.
\set ON_ERROR_STOP on
SELECT crm.run_housekeeping('1 day');
SELECT crm.add_field('customer', 'region', 'text');
UPDATE crm.customer SET region = 'east' WHERE id = 1;
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
VALUES ('customer', 1, '报价单.pdf', 2048, 'application/pdf', 'files/1'),
       ('customer', 2, '旧合同.pdf', 4096, 'application/pdf', 'files/2');
DELETE FROM crm.attachment WHERE storage_key = 'files/2';
SET ROLE zhang_wei;
CREATE TEMP TABLE incoming (LIKE crm.customer_import INCLUDING ALL);
INSERT INTO incoming (line, name, kind, uscc, phone) VALUES (1, '嘉兴南湖电子有限公司', 'company', crm.uscc_with_check('91330400MA2B00051'), '0573-88880001');
SELECT crm.import_customers('incoming');
SELECT crm.merge_customers(1, 2);
RESET ROLE;
UPDATE crm.customer SET status_id = 2 WHERE id = 3;
INSERT INTO crm.customer (name, uscc, phone, owner_id)
SELECT '丽水云和木玩有限公司', crm.uscc_with_check('91330300MA2B00041'), phone, owner_id FROM crm.customer WHERE phone IS NOT NULL LIMIT 1;
SELECT crm.find_duplicates('customer', '{"name": "杭州西湖茶业"}');
INSERT INTO crm.im_channel (name, platform, kind, webhook_url, secret, events)
VALUES ('销售群', 'feishu', 'robot', 'http://127.0.0.1:1/hook', 'robot-secret', '{*}');
INSERT INTO crm.team_member (record_type, record_id, employee_id) VALUES ('customer', 3, 2);
-- 0.1 took team entries on contacts, which 0.2's contacts do not have
INSERT INTO crm.team_member (record_type, record_id, employee_id) VALUES ('contact', 1, 2);
INSERT INTO crm.im_channel (name, platform, kind, app_id, app_secret, reads_directory)
VALUES ('飞书通讯录', 'feishu', 'app', 'cli_1', 'app-secret', true);
INSERT INTO crm.directory_sync (platform) VALUES ('feishu');
INSERT INTO crm.notification_preference (employee_id, event, delivery) VALUES (2, '*', 'inapp');
INSERT INTO crm.notification_rule (event, rule) VALUES ('transfer.received', 'superior');
INSERT INTO crm.tag_group (name) VALUES ('客户价值');
INSERT INTO crm.tag (group_id, name, color) VALUES (1, '重点客户', '#d4380d');
INSERT INTO crm.record_tag (record_type, record_id, tag_id) VALUES ('customer', 1, 1);
INSERT INTO crm.pin (employee_id, record_type, record_id) VALUES (3, 'customer', 1);
SELECT crm.im_expand(100);	-- the worker's first step, without the worker
