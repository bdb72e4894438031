-- What points at a record goes with it, or the delete is refused with the reason
-- ids named in messages start at 80000 here, whatever other test files created
SELECT setval(s, 80000, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.contact_id_seq', 'crm.follow_up_id_seq', 'crm.tag_group_id_seq',
	'crm.tag_id_seq', 'crm.attachment_id_seq', 'crm.dedupe_rule_id_seq']) s \g /dev/null

-- == The catalog: every pair of columns naming a record is known, and what its rows do
SELECT link_table, type_column, id_column, on_delete FROM crm.record_links();
-- every column a CHECK limits to record types is such a pair, or has no id beside it
SELECT DISTINCT c.conrelid::regclass AS tbl, a.attname AS type_column,
       EXISTS (SELECT FROM pg_attribute i WHERE i.attrelid = c.conrelid AND i.attname = left(a.attname, -4) || 'id'
                                            AND NOT i.attisdropped) AS has_id,
       EXISTS (SELECT FROM crm.record_links() k WHERE k.link_table = c.conrelid AND k.type_column = a.attname) AS known
  FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
 WHERE c.connamespace = 'crm'::regnamespace AND c.contype = 'c' AND pg_get_constraintdef(c.oid) LIKE '%''customer''%'
   AND a.atttypid = 'text'::regtype AND a.attname LIKE '%\_type'
 ORDER BY 1, 2;
-- each link is written only for a record that exists, and is found by an index on its pair
SELECT k.link_table, k.type_column FROM crm.record_links() k
 WHERE k.on_delete = 'delete'
   AND NOT EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = k.link_table AND g.tgfoid = 'crm.check_record_links()'::regprocedure);
SELECT k.link_table, k.type_column FROM crm.record_links() k
 WHERE NOT EXISTS (SELECT FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                     JOIN pg_attribute b ON b.attrelid = i.indrelid AND b.attnum = i.indkey[1]
                    WHERE i.indrelid = k.link_table AND a.attname = k.type_column AND b.attname = k.id_column);
-- foreign keys onto records: they cascade, or are checked at commit so that crm's
-- refusal (naming the record, with the constraint's comment as hint) comes first
SELECT c.conname, c.confrelid::regclass AS record, c.confdeltype AS on_delete, c.condeferred AS deferred,
       obj_description(c.oid, 'pg_constraint') IS NOT NULL AS has_hint
  FROM pg_constraint c
 WHERE c.contype = 'f' AND c.confrelid IN (SELECT relation FROM crm.record_type) ORDER BY 1;
-- every record table drops its links on DELETE and on TRUNCATE
SELECT r::regclass AS record_table, array_agg(g.tgname ORDER BY g.tgname) AS triggers
  FROM (SELECT relation FROM crm.record_type) t(r) LEFT JOIN pg_trigger g ON g.tgrelid = r AND g.tgfoid = 'crm.record_deleted()'::regprocedure
 GROUP BY r ORDER BY 1;

-- == A salesperson's customer, lead and contact, with everything pointing at them
CREATE ROLE rl_liu LOGIN IN ROLE crm_user;
CREATE ROLE rl_zhang LOGIN IN ROLE crm_user;
INSERT INTO crm.department (name) VALUES ('Rl East');
INSERT INTO crm.employee (name, mobile, department_id, db_role)
SELECT e.name, e.mobile, d.id, e.role FROM crm.department d,
       (VALUES ('刘洋', '13800007301', 'rl_liu'), ('张伟', '13800007302', 'rl_zhang')) e(name, mobile, role)
 WHERE d.name = 'Rl East';
INSERT INTO crm.role (name) VALUES ('Rl sales');
INSERT INTO crm.role_scope (role_id, record_type, scope)
SELECT id, t, 'self' FROM crm.role, unnest(ARRAY['lead', 'customer']) t WHERE name = 'Rl sales';
INSERT INTO crm.role_permission (role_id, action)
SELECT id, a FROM crm.role, unnest(ARRAY['customer.create', 'customer.edit', 'customer.delete', 'lead.create', 'lead.edit',
	'lead.delete', 'lead.convert', 'contact.create', 'contact.edit', 'contact.delete']) a WHERE name = 'Rl sales';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e, crm.role r WHERE e.db_role LIKE 'rl\_%' AND r.name = 'Rl sales';
SELECT id AS liu FROM crm.employee WHERE db_role = 'rl_liu' \gset
SELECT id AS zhang FROM crm.employee WHERE db_role = 'rl_zhang' \gset
INSERT INTO crm.tag_group (name) VALUES ('Rl tags');
INSERT INTO crm.tag (group_id, name) SELECT id, 'Rl 重点' FROM crm.tag_group WHERE name = 'Rl tags' RETURNING id AS tag \gset
INSERT INTO crm.dedupe_rule (name, record_type, fields, action, enabled) VALUES ('Rl phone', 'customer', '{phone}', 'warn', false)
RETURNING id AS rule \gset

SET ROLE rl_zhang;
INSERT INTO crm.customer (name, uscc) VALUES ('Rl 张 customer', crm.uscc_with_check('91330100MA2B07302')) RETURNING id AS zc \gset
INSERT INTO crm.follow_up (record_type, record_id, content) VALUES ('customer', :zc, '张''s visit');
INSERT INTO crm.record_tag (record_type, record_id, tag_id) VALUES ('customer', :zc, :tag);
INSERT INTO crm.pin (record_type, record_id) VALUES ('customer', :zc);
SET ROLE rl_liu;
INSERT INTO crm.customer (name, uscc) VALUES ('Rl 刘 customer', crm.uscc_with_check('91330100MA2B07301')) RETURNING id AS lc \gset
INSERT INTO crm.contact (customer_id, name, mobile) VALUES (:lc, 'Rl 刘 contact', '13900007301') RETURNING id AS lk \gset
INSERT INTO crm.lead (name) VALUES ('Rl 刘 lead') RETURNING id AS ll \gset
INSERT INTO crm.team_member (record_type, record_id, employee_id, access)
VALUES ('customer', :lc, :zhang, 'edit'), ('lead', :ll, :zhang, 'edit');
INSERT INTO crm.follow_up (record_type, record_id, content) VALUES ('customer', :lc, 'visited') RETURNING id AS lf \gset
INSERT INTO crm.follow_up (record_type, record_id, content) VALUES ('lead', :ll, 'called');
INSERT INTO crm.record_tag (record_type, record_id, tag_id) VALUES ('customer', :lc, :tag), ('contact', :lk, :tag), ('lead', :ll, :tag);
INSERT INTO crm.pin (record_type, record_id) VALUES ('customer', :lc), ('contact', :lk), ('lead', :ll);
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key) VALUES
	('customer', :lc, 'offer.pdf', 10, 'application/pdf', 'rl/customer'),
	('contact', :lk, 'card.png', 20, 'image/png', 'rl/contact'),
	('follow_up', :lf, 'minutes.pdf', 30, 'application/pdf', 'rl/follow_up'),
	('lead', :ll, 'brief.pdf', 40, 'application/pdf', 'rl/lead');
-- 张伟, on the team, follows up and pins too
SET ROLE rl_zhang;
INSERT INTO crm.follow_up (record_type, record_id, content) VALUES ('customer', :lc, '张 called too');
INSERT INTO crm.pin (record_type, record_id) VALUES ('customer', :lc), ('lead', :ll);
RESET ROLE;
-- a possible duplicate either way, with 张伟's customer
INSERT INTO crm.duplicate_set (rule_id, record_type, record_id, match_type, match_id)
VALUES (:rule, 'customer', :lc, 'customer', :zc), (:rule, 'customer', :zc, 'customer', :lc), (:rule, 'lead', :ll, 'customer', :zc);
-- the links of 刘洋's records, and of 张伟's customer (the notifications of the team entries point at them)
CREATE TEMP VIEW rl_links AS
SELECT r.what,
       (SELECT count(*) FROM crm.team_member t WHERE (t.record_type, t.record_id) = (r.rt, r.id)) AS team,
       (SELECT count(*) FROM crm.follow_up f WHERE (f.record_type, f.record_id) = (r.rt, r.id)) AS follow_ups,
       (SELECT count(*) FROM crm.record_tag g WHERE (g.record_type, g.record_id) = (r.rt, r.id)) AS tags,
       (SELECT count(*) FROM crm.pin p WHERE (p.record_type, p.record_id) = (r.rt, r.id)) AS pins,
       (SELECT count(*) FROM crm.attachment a WHERE (a.record_type, a.record_id) = (r.rt, r.id)
                                                 OR a.record_type = 'follow_up' AND a.record_id IN (
                                                    SELECT f.id FROM crm.follow_up f WHERE (f.record_type, f.record_id) = (r.rt, r.id))) AS attachments,
       (SELECT count(*) FROM crm.duplicate_set d WHERE (d.record_type, d.record_id) = (r.rt, r.id)
                                                    OR (d.match_type, d.match_id) = (r.rt, r.id)) AS duplicates,
       (SELECT count(*) FROM crm.notification n WHERE (n.record_type, n.record_id) = (r.rt, r.id)) AS notifications
  FROM (VALUES ('刘 customer', 'customer', :lc), ('刘 contact', 'contact', :lk), ('刘 lead', 'lead', :ll),
               ('张 customer', 'customer', :zc)) r(what, rt, id);
GRANT SELECT ON rl_links TO PUBLIC;
SELECT * FROM rl_links;

-- == Attack: 刘洋 may delete his customer, not 张伟's; nor may he drop links himself
SET ROLE rl_liu;
DELETE FROM crm.customer WHERE id = :zc;
SELECT crm.drop_record_links('customer', ARRAY[:zc]::bigint[]);
SELECT * FROM crm.file_removal;
SELECT * FROM crm.files_to_remove;
RESET ROLE;
SELECT * FROM rl_links WHERE what = '张 customer';

-- == Deleting the customer takes its contact and every link of both along; the
-- notifications stay, without their link, and the operation log keeps the history
SET ROLE rl_liu;
DELETE FROM crm.customer WHERE id = :lc;
RESET ROLE;
SELECT * FROM rl_links;
SELECT count(*) AS notifications_kept FROM crm.notification WHERE event = 'team.added' AND title LIKE '%「Rl 刘 customer」%';
SELECT record_type, action FROM crm.oplog WHERE (record_type, record_id) IN (('customer', :lc), ('contact', :lk)) AND action = 'delete' ORDER BY 1;
-- the stored files of the attachments that went are queued for removal
SELECT storage_key, file_name, size_bytes FROM crm.files_to_remove WHERE storage_key LIKE 'rl/%' ORDER BY storage_key;
-- the lead, by 刘洋, and a contact alone
SET ROLE rl_liu;
DELETE FROM crm.lead WHERE id = :ll;
INSERT INTO crm.customer (name, uscc) VALUES ('Rl 刘 second', crm.uscc_with_check('91330100MA2B07303')) RETURNING id AS lc2 \gset
INSERT INTO crm.contact (customer_id, name) VALUES (:lc2, 'Rl 刘 contact 2') RETURNING id AS lk2 \gset
INSERT INTO crm.record_tag (record_type, record_id, tag_id) VALUES ('contact', :lk2, :tag);
INSERT INTO crm.pin (record_type, record_id) VALUES ('contact', :lk2);
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
VALUES ('contact', :lk2, 'card2.png', 50, 'image/png', 'rl/contact2');
DELETE FROM crm.contact WHERE id = :lk2;
RESET ROLE;
SELECT * FROM rl_links WHERE what = '刘 lead';
SELECT (SELECT count(*) FROM crm.record_tag WHERE record_type = 'contact' AND record_id = :lk2) AS tags,
       (SELECT count(*) FROM crm.pin WHERE record_type = 'contact' AND record_id = :lk2) AS pins,
       (SELECT count(*) FROM crm.attachment WHERE record_type = 'contact' AND record_id = :lk2) AS attachments;
SELECT storage_key FROM crm.files_to_remove WHERE storage_key LIKE 'rl/%' ORDER BY storage_key;
-- a DBA drains the queue once the files are gone from the store
DELETE FROM crm.file_removal WHERE id IN (SELECT id FROM crm.files_to_remove WHERE storage_key LIKE 'rl/%');

-- == A customer a lead was converted into is kept: the refusal names it, with a hint
BEGIN;
INSERT INTO crm.role_permission (role_id, action) SELECT id, 'customer.merge' FROM crm.role WHERE name = 'Rl sales';
SET ROLE rl_liu;
INSERT INTO crm.lead (name, company, uscc) VALUES ('Rl 孙女士', 'Rl 温州鞋业', crm.uscc_with_check('91330300MA5F07304')) RETURNING id AS cl \gset
SELECT crm.convert_lead(:cl) AS cc \gset
SAVEPOINT refused;
DELETE FROM crm.customer WHERE id = :cc;
ROLLBACK TO refused;
SELECT count(*) AS kept FROM crm.customer WHERE id = :cc;
-- ... and merged into another instead: the converted lead follows it
SELECT crm.merge_customers(:lc2, :cc) > 0 AS merged;
RESET ROLE;
SELECT status, customer_id = :lc2 AS follows_kept_customer FROM crm.lead WHERE id = :cl;
ROLLBACK;

-- == TRUNCATE clears the links of every record it empties
BEGIN;
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
VALUES ('customer', :zc, 'z.pdf', 1, 'application/pdf', 'rl/zhang');
-- (the tables the cascade names come in catalog order, which an update changes)
SET client_min_messages = warning;
TRUNCATE crm.customer CASCADE;
RESET client_min_messages;
SELECT (SELECT count(*) FROM crm.follow_up) AS follow_ups, (SELECT count(*) FROM crm.record_tag) AS tags,
       (SELECT count(*) FROM crm.pin) AS pins, (SELECT count(*) FROM crm.team_member) AS team,
       (SELECT count(*) FROM crm.attachment) AS attachments, (SELECT count(*) FROM crm.duplicate_set) AS duplicates,
       (SELECT count(*) FROM crm.notification WHERE record_id IS NOT NULL
                                                AND record_type IN ('lead', 'customer', 'contact', 'follow_up')) AS notifications_linked,
       (SELECT count(*) FROM crm.notification WHERE recipient_id = :zhang) AS notifications_kept;
SELECT storage_key FROM crm.files_to_remove WHERE storage_key LIKE 'rl/%' ORDER BY 1;
ROLLBACK;
BEGIN;
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
VALUES ('customer', :zc, 'z.pdf', 1, 'application/pdf', 'rl/zhang');
TRUNCATE crm.attachment;
SELECT storage_key FROM crm.files_to_remove WHERE storage_key LIKE 'rl/%' ORDER BY 1;
ROLLBACK;

-- a custom field named like a link is data: a text field customer_type beside
-- a contact's customer_id links nothing (deleting a lead of that id deleted
-- the contact)
BEGIN;
SELECT crm.add_field('contact', 'customer_type', 'text');
SELECT count(*) AS links FROM crm.record_links() WHERE type_column = 'customer_type';
ROLLBACK;

DELETE FROM crm.customer WHERE id IN (:zc, :lc2);
DELETE FROM crm.file_removal WHERE storage_key LIKE 'rl/%';
DELETE FROM crm.dedupe_rule WHERE name = 'Rl phone';
DELETE FROM crm.tag_group WHERE name = 'Rl tags';
DELETE FROM crm.role WHERE name = 'Rl sales';
