-- Availability: what C copies is bounded, messages quote whole characters
-- and clip long values, and huge inputs are refused before any work.  Each attack
-- runs as the role that tried it; \echo shows the SQLSTATE of the refusal.
-- ids named in messages start at 2600 here, whatever other test files created
SELECT setval(s, 2600, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq']) s \g /dev/null
CREATE ROLE sl_admin LOGIN IN ROLE crm_user;   -- configuration admin: admin.fields, not crm_admin
CREATE ROLE sl_rep LOGIN IN ROLE crm_user;     -- salesperson, scope self
INSERT INTO crm.department (name) VALUES ('Sl Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT e.name, d.id, e.role FROM (VALUES ('Sl Admin', 'sl_admin'), ('Sl Rep', 'sl_rep')) e(name, role), crm.department d
 WHERE d.name = 'Sl Sales';
INSERT INTO crm.role (name) VALUES ('Sl fields'), ('Sl rep');
INSERT INTO crm.role_permission SELECT id, 'admin.fields' FROM crm.role WHERE name = 'Sl fields';
INSERT INTO crm.role_scope (role_id, record_type, scope)
SELECT r.id, t, 'self' FROM crm.role r, unnest(ARRAY['customer', 'lead']) t WHERE r.name = 'Sl rep';
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.create', 'customer.edit', 'contact.create', 'lead.create']) a
 WHERE r.name = 'Sl rep';
INSERT INTO crm.employee_role SELECT e.id, r.id FROM crm.employee e JOIN crm.role r
    ON (e.db_role, r.name) IN (('sl_admin', 'Sl fields'), ('sl_rep', 'Sl rep'));
\set SHOW_CONTEXT never

-- 1. A dictionary kind of 200 characters overran a stack buffer on every later
-- write of its column: kinds are bounded where they are written ...
SET ROLE sl_admin;
UPDATE crm.dictionary_column SET kind = repeat('k', 200) WHERE table_name = 'customer' AND column_name = 'source';
\echo :LAST_ERROR_SQLSTATE
-- ... and dictionaries map onto text columns only
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('customer', 'owner_id', 'industry');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('customer', 'locked', 'industry');
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('customer', 'created_at', 'industry');
-- (nor onto a key crm derives, which no one writes)
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('customer', 'name_key', 'industry');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('customer', 'name', 'industry');
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('lead', 'status', 'industry');
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('customer', 'kind', 'industry');
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('customer', 'uscc', 'industry');
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('lead', 'uscc', 'industry');
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('contact', 'mobile', 'industry');
UPDATE crm.dictionary_column SET column_name = 'owner_id' WHERE table_name = 'customer' AND column_name = 'level';
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('customer', 'no_such_column', 'industry');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES (repeat('t', 64), 'name', 'industry');
RESET ROLE;
-- the columns are still checked, and a long value is quoted clipped
SET ROLE sl_rep;
INSERT INTO crm.customer (name, uscc, source, level)
VALUES ('宁波字典贸易有限公司', crm.uscc_with_check('91330200026001000'), 'website', 'a');
INSERT INTO crm.customer (name, uscc, source)
VALUES ('宁波长码贸易有限公司', crm.uscc_with_check('91330200026002000'), repeat('网', 100000));
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- C bounds what it reads whatever the catalog holds: with the checks dropped by a
-- superuser, a long kind matches no code and a non-text column is not checked
BEGIN;
ALTER TABLE crm.dictionary_column DROP CONSTRAINT dictionary_column_kind_check,
	DROP CONSTRAINT dictionary_column_text_check;
UPDATE crm.dictionary_column SET kind = repeat('k', 200) WHERE table_name = 'customer' AND column_name = 'source';
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('customer', 'locked', 'industry');
SET ROLE sl_rep;
INSERT INTO crm.customer (name, uscc, locked) VALUES ('宁波目录贸易有限公司', crm.uscc_with_check('91330200026003000'), false);
INSERT INTO crm.customer (name, uscc, source)
VALUES ('宁波来源贸易有限公司', crm.uscc_with_check('91330200026004000'), 'website');
ROLLBACK;

-- 2. Messages quote whole characters: a client in GBK gets the error, not 22021
SELECT crm.uscc_with_check(chr(20013) || repeat('1', 14));
-- (the statements are ASCII: psql reads them in the client encoding too)
SET client_encoding = 'GBK';
\set VERBOSITY sqlstate
SELECT crm.uscc_with_check(chr(20013) || repeat('1', 14));
SELECT crm.check_mobile(repeat(chr(20013), 30));
RESET client_encoding;
\set VERBOSITY default
-- and clip long values on a character boundary, in C and in PL/pgSQL alike
SELECT crm.check_email(repeat('邮', 1000000));
SET ROLE sl_rep;
SELECT crm.transfer(repeat('类', 100000), '{1}', 1);
SELECT * FROM crm.find_duplicates(repeat('类', 100000), '{}');
RESET ROLE;

-- 3. ICU's buffers are sized from its answer: ﷺ folds to 18 characters
SELECT crm.dedupe_key('name', repeat('ﷺ', 3)) AS key, length(crm.dedupe_key('name', repeat('ﷺ', 3)));
SET ROLE sl_rep;
INSERT INTO crm.customer (name, uscc) VALUES (repeat('ﷺ', 3) || '贸易有限公司', crm.uscc_with_check('91330200026005000'));
SELECT length(name_key) FROM crm.customer WHERE name LIKE 'ﷺ%';
RESET ROLE;

-- 4. An IM message longer than any platform takes is refused before it is built
SELECT crm.im_payload('feishu', 'app', 'ou_x', NULL, '标题', repeat('x', 2000000), 'k');
\echo :LAST_ERROR_SQLSTATE
SELECT length(crm.im_payload('feishu', 'app', 'ou_x', NULL, '标题', repeat('x', 150 * 1024 - 6), 'k')) > 0 AS fits;

-- 5. Huge inputs: each text column has a limit (docs/records.md), checked before
-- any work such as the duplicate keys
SET ROLE sl_rep;
INSERT INTO crm.customer (name, uscc) VALUES (repeat('客', 1048576), crm.uscc_with_check('91330200026006000'));
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.customer (name, uscc) VALUES (repeat('客', 201), crm.uscc_with_check('91330200026006000'));
INSERT INTO crm.customer (name, uscc, phone) VALUES ('宁波话机贸易有限公司', crm.uscc_with_check('91330200026006000'), repeat('8', 1048576));
INSERT INTO crm.customer (name, uscc) VALUES (repeat('客', 200), crm.uscc_with_check('91330200026006000'));
INSERT INTO crm.lead (name, company) VALUES ('张先生', repeat('x', 1048576));
INSERT INTO crm.lead (name, mobile) VALUES ('张先生', repeat('1', 1048576));
INSERT INTO crm.lead (name, email) VALUES ('张先生', repeat('m', 1048576) || '@example.com');
INSERT INTO crm.contact (customer_id, name) SELECT id, repeat('联', 1048576) FROM crm.customer WHERE name LIKE '宁波字典%';
INSERT INTO crm.follow_up (record_type, record_id, content)
SELECT 'customer', id, repeat('记', 20001) FROM crm.customer WHERE name LIKE '宁波字典%';
SELECT * FROM crm.bot_search(repeat('x', 1048576));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM crm.find_duplicates('customer', jsonb_build_object('name', repeat('x', 1048576)));
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- the key function does no work on a value no keyed column may hold
SELECT crm.dedupe_key('company', repeat('x', 1048576)) IS NULL AS no_key;
-- custom text fields and configuration names are bounded too
SET ROLE sl_admin;
SELECT crm.add_field('customer', 'sl_note', 'text');
SELECT crm.add_field('customer', 'sl_other', 'text', label => repeat('标', 201));
RESET ROLE;
SET ROLE sl_rep;
UPDATE crm.customer SET sl_note = repeat('注', 2001) WHERE name LIKE '宁波字典%';
UPDATE crm.customer SET sl_note = repeat('注', 2000) WHERE name LIKE '宁波字典%';
RESET ROLE;
SELECT crm.drop_field('customer', 'sl_note');

-- 6. Notifications: a title a phone shows and every IM platform takes uncut, a
-- body most take whole; nobody fills the inbox and the IM queue with megabytes
-- (only crm's own code calls crm.notify)
SELECT id AS rep FROM crm.employee WHERE db_role = 'sl_rep' \gset
SELECT crm.notify(ARRAY[:rep], 'transfer.received', repeat('题', 201), NULL);
SELECT crm.notify(ARRAY[:rep], 'transfer.received', 'Sl title', repeat('文', 1048576));
\echo :LAST_ERROR_SQLSTATE
SELECT crm.notify(ARRAY[:rep], 'transfer.received', 'Sl title', repeat('文', 2001));
-- the longest title and body make a message on every platform (the body cut
-- with "…" where a platform takes less)
SELECT p.platform, p.kind, crm.im_payload(p.platform, p.kind, 'u1', '1000002', repeat('𠀀', 200),
                                          repeat('文', 2000), 'k') LIKE '%…%' AS body_cut
  FROM (VALUES ('wecom', 'robot'), ('wecom', 'app'), ('feishu', 'robot'), ('feishu', 'app'),
               ('dingtalk', 'robot'), ('dingtalk', 'app')) p(platform, kind);
-- crm's own texts quote the longest legal names clipped, and list as many
-- records as fit: no name blocks a duplicate check, an assignment, a handover
-- or the recycling job
UPDATE crm.employee SET name = repeat('管', 200) WHERE db_role = 'sl_admin';
INSERT INTO crm.pool (name) VALUES (repeat('池', 200));
SELECT id AS pool FROM crm.pool WHERE name = repeat('池', 200) \gset
INSERT INTO crm.pool_member (pool_id, employee_id, is_admin) SELECT :pool, id, true FROM crm.employee WHERE db_role = 'sl_admin';
INSERT INTO crm.dedupe_rule (name, record_type, fields, action, against)
VALUES (repeat('规', 200), 'customer', '{name}', 'warn', '{customers}');
SET ROLE sl_rep;
INSERT INTO crm.customer (name, uscc) VALUES (repeat('客', 200), crm.uscc_with_check('91330200026007000'));
RESET ROLE;
DELETE FROM crm.dedupe_rule;
INSERT INTO crm.customer (name, uscc, owner_id) VALUES (repeat('池', 196) || '有限公司', crm.uscc_with_check('91330200026008000'), :pool);
SET ROLE sl_admin;
SELECT a.owner_name, length(a.customer_name) AS name_chars FROM crm.customer c, crm.assign_customer(c.id, :rep) a WHERE c.name = repeat('池', 196) || '有限公司';
RESET ROLE;
INSERT INTO crm.employee (name, department_id) SELECT repeat('离', 200), department_id FROM crm.employee WHERE id = :rep;
-- (a leaver with work: a handover of nothing tells nobody)
INSERT INTO crm.lead (name, owner_id) SELECT 'Sl lead of the leaver', id FROM crm.employee WHERE name = repeat('离', 200);
SELECT crm.deactivate_employee(id, :rep) FROM crm.employee WHERE name = repeat('离', 200);
INSERT INTO crm.customer (name, uscc, created_at, owner_id, created_by)
SELECT repeat('旧', 190) || n || '有限公司', crm.uscc_with_check('9133020002610' || lpad(n::text, 4, '0')),
       now() - CASE WHEN n = 1 THEN interval '60 days' ELSE interval '40 days' END, :rep, :rep
  FROM generate_series(1, 300) n;
INSERT INTO crm.recycle_rule (name, kind, days, employee_ids, remind_days_before, pool_id)
VALUES (repeat('规', 200), 'no_follow_up', 50, ARRAY[:rep]::bigint[], 15, :pool);
SELECT crm.run_recycling() AS recycled;
SELECT event, title, length(title) AS title_chars, length(body) AS body_chars, right(body, 40) AS body_ends
  FROM crm.notification WHERE recipient_id = :rep ORDER BY id;

-- 7. Messages quote names clipped, however long the name
SET ROLE sl_admin;
SELECT crm.claim_customer(id) FROM crm.customer WHERE owner_id = :pool ORDER BY id LIMIT 1;
RESET ROLE;
-- (checks in triggers that run before the table's length checks too)
INSERT INTO crm.recycle_rule (name, kind, days) VALUES (repeat('规', 1048576), 'no_follow_up', -3);
INSERT INTO crm.dedupe_rule (name, record_type, fields) VALUES (repeat('规', 1048576), repeat('r', 1048576), '{x}');
INSERT INTO crm.im_channel (name, platform, kind, webhook_url, events)
VALUES (repeat('群', 1048576), 'wecom', 'robot', 'https://example.invalid/robot', ARRAY[repeat('e', 1048576)]);
UPDATE crm.customer SET locked = true WHERE name = repeat('客', 200);
INSERT INTO crm.role_permission SELECT id, 'pool.release' FROM crm.role WHERE name = 'Sl rep';
SET ROLE sl_rep;
SELECT crm.release_customer(id, 'no_need', :pool) FROM crm.customer WHERE name = repeat('客', 200) ORDER BY id LIMIT 1;
RESET ROLE;
-- a pool's name and a role's action are refused by their own names, before any
-- other row or index takes them
INSERT INTO crm.pool (name) VALUES (repeat('池', 201));
INSERT INTO crm.role_permission (role_id, action) SELECT id, repeat('a', 100000) FROM crm.role WHERE name = 'Dd rep';
