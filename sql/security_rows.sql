-- Rows users may write but should not (ids, stamps, links, actors): each
-- attack as the role that tried it, and the refusal it now gets.
-- ids named in messages start at 5100 here, whatever other test files created
SELECT setval(s, 5100, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.contact_id_seq', 'crm.follow_up_id_seq', 'crm.im_channel_id_seq',
	'crm.tag_group_id_seq', 'crm.tag_id_seq', 'crm.attachment_id_seq']) s \g /dev/null
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['sr_liu', 'sr_zhang', 'sr_chen', 'sr_imadmin', 'sr_gone', 'sr_nobody'] LOOP
		EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
	END LOOP;
END $$;
CREATE ROLE sr_dba LOGIN IN ROLE crm_admin;
CREATE ROLE sr_postgrest LOGIN NOINHERIT IN ROLE crm_authenticator;
CREATE ROLE sr_web NOLOGIN IN ROLE crm_user;
GRANT sr_web TO sr_postgrest;

-- 刘洋 and 张伟 sell in the East, 陈静 in the South; everyone sees what they own
INSERT INTO crm.department (name) VALUES ('Sr East'), ('Sr South');
INSERT INTO crm.employee (name, mobile, department_id, db_role)
SELECT e.name, e.mobile, d.id, e.role FROM (VALUES ('刘洋', '13800005101', 'Sr East', 'sr_liu'),
	('张伟', '13800005102', 'Sr East', 'sr_zhang'), ('陈静', '13800005103', 'Sr South', 'sr_chen'),
	('IM admin', NULL, 'Sr East', 'sr_imadmin'), ('Gone', NULL, 'Sr East', 'sr_gone')) e(name, mobile, dept, role)
JOIN crm.department d ON d.name = e.dept;
INSERT INTO crm.role (name) VALUES ('Sr sales'), ('Sr IM');
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.create', 'customer.edit', 'customer.delete', 'lead.create',
	'lead.edit', 'lead.delete', 'contact.create', 'contact.edit']) a WHERE r.name = 'Sr sales'
UNION ALL SELECT r.id, 'admin.im' FROM crm.role r WHERE r.name = 'Sr IM';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e JOIN crm.role r ON r.name = CASE e.db_role WHEN 'sr_imadmin' THEN 'Sr IM' ELSE 'Sr sales' END
 WHERE e.db_role LIKE 'sr\_%';
SELECT id AS liu FROM crm.employee WHERE db_role = 'sr_liu' \gset
SELECT id AS zhang FROM crm.employee WHERE db_role = 'sr_zhang' \gset
SELECT id AS chen FROM crm.employee WHERE db_role = 'sr_chen' \gset
SET ROLE sr_liu;
INSERT INTO crm.customer (name, uscc) VALUES ('Sr 刘 customer', crm.uscc_with_check('91330100MA2B05101'));
INSERT INTO crm.lead (name) VALUES ('Sr 刘 lead');
SET ROLE sr_zhang;
INSERT INTO crm.customer (name, uscc) VALUES ('Sr 张 customer', crm.uscc_with_check('91330100MA2B05102'));
SET ROLE sr_chen;
INSERT INTO crm.customer (name, uscc, phone) VALUES ('Sr 陈 customer', crm.uscc_with_check('91330100MA2B05103'), '13900005103');
RESET ROLE;
SELECT id AS liu_customer FROM crm.customer WHERE name = 'Sr 刘 customer' \gset
SELECT id AS zhang_customer FROM crm.customer WHERE name = 'Sr 张 customer' \gset
SELECT id AS chen_customer FROM crm.customer WHERE name = 'Sr 陈 customer' \gset
SELECT id AS liu_lead FROM crm.lead WHERE name = 'Sr 刘 lead' \gset

-- 1. Planted ids: ids are not the employee's to choose or change
SET ROLE sr_liu;
INSERT INTO crm.lead (id, name) OVERRIDING SYSTEM VALUE VALUES (9999999, 'Sr planted lead');
UPDATE crm.lead SET id = DEFAULT WHERE id = :liu_lead;
INSERT INTO crm.customer (id, name, uscc) OVERRIDING SYSTEM VALUE VALUES (9999999, 'Sr planted', crm.uscc_with_check('91330100MA2B05109'));
INSERT INTO crm.follow_up (id, record_type, record_id, content) OVERRIDING SYSTEM VALUE
VALUES (9999999, 'lead', :liu_lead, 'planted');
-- a team entry on a record that is not there yet (or not his) is refused
INSERT INTO crm.team_member (record_type, record_id, employee_id, access) VALUES ('lead', 9999999, :zhang, 'edit');
RESET ROLE;
-- ... for crm's own code and superusers too: the record must exist
INSERT INTO crm.team_member (record_type, record_id, employee_id, access) VALUES ('lead', 9999999, :zhang, 'edit');
INSERT INTO crm.pin (employee_id, record_type, record_id) VALUES (:liu, 'customer', 9999999);
-- whatever points at a record goes with it, set-based
SET ROLE sr_liu;
INSERT INTO crm.lead (name) VALUES ('Sr short-lived lead') RETURNING id AS gone_lead \gset
INSERT INTO crm.customer (name, uscc) VALUES ('Sr short-lived', crm.uscc_with_check('91330100MA2B05108')) RETURNING id AS gone \gset
INSERT INTO crm.contact (customer_id, name) VALUES (:gone, 'Sr short-lived contact') RETURNING id AS gone_contact \gset
INSERT INTO crm.team_member (record_type, record_id, employee_id) VALUES ('lead', :gone_lead, :zhang), ('customer', :gone, :zhang);
INSERT INTO crm.follow_up (record_type, record_id, content) VALUES ('lead', :gone_lead, 'called');
INSERT INTO crm.follow_up (record_type, record_id, content) VALUES ('customer', :gone, 'visited') RETURNING id AS gone_follow_up \gset
INSERT INTO crm.pin (record_type, record_id) VALUES ('customer', :gone), ('contact', :gone_contact);
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
VALUES ('customer', :gone, 'a.pdf', 1, 'application/pdf', 'sr/a'), ('follow_up', :gone_follow_up, 'b.pdf', 1, 'application/pdf', 'sr/b');
DELETE FROM crm.lead WHERE id = :gone_lead;
DELETE FROM crm.customer WHERE id = :gone;
RESET ROLE;
SELECT (SELECT count(*) FROM crm.team_member WHERE (record_type, record_id) IN (('lead', :gone_lead), ('customer', :gone))) AS team,
       (SELECT count(*) FROM crm.follow_up WHERE (record_type, record_id) IN (('lead', :gone_lead), ('customer', :gone))) AS follow_ups,
       (SELECT count(*) FROM crm.pin WHERE (record_type, record_id) IN (('customer', :gone), ('contact', :gone_contact))) AS pins,
       (SELECT count(*) FROM crm.attachment WHERE storage_key LIKE 'sr/%') AS attachments;

-- 2. Read collaborators escalate: 张伟 shares his customer with 刘洋, to read for a week
SET ROLE sr_zhang;
INSERT INTO crm.team_member (record_type, record_id, employee_id, access, expires_at)
VALUES ('customer', :zhang_customer, :liu, 'read', now() + interval '7 days');
SET ROLE sr_liu;
UPDATE crm.team_member SET access = 'edit', expires_at = NULL WHERE employee_id = :liu;
UPDATE crm.customer SET name = 'Sr 张 customer (mine now)' WHERE id = :zhang_customer;
INSERT INTO crm.team_member (record_type, record_id, employee_id, access) VALUES ('customer', :zhang_customer, :chen, 'edit');
RESET ROLE;
-- (the updates found no row they may change)
SELECT t.access, t.expires_at IS NOT NULL AS expires, c.name
  FROM crm.team_member t JOIN crm.customer c ON c.id = t.record_id WHERE t.employee_id = :liu;
-- with edit access he still may not extend his own entry, nor choose who added someone
UPDATE crm.team_member SET access = 'edit' WHERE record_id = :zhang_customer AND employee_id = :liu;
SET ROLE sr_liu;
UPDATE crm.team_member SET expires_at = NULL WHERE employee_id = :liu;
INSERT INTO crm.team_member (record_type, record_id, employee_id, access, added_by)
VALUES ('customer', :zhang_customer, :chen, 'edit', :chen);
-- sharing onwards with edit access is his to do, and 陈静 is told by whom
INSERT INTO crm.team_member (record_type, record_id, employee_id, access) VALUES ('customer', :zhang_customer, :chen, 'read');
RESET ROLE;
SELECT added_by = :liu AS added_by_liu FROM crm.team_member WHERE record_id = :zhang_customer AND employee_id = :chen;
SELECT title, body FROM crm.notification WHERE recipient_id = :chen AND event = 'team.added';
-- a read collaborator may still leave
SET ROLE sr_chen;
DELETE FROM crm.team_member WHERE employee_id = :chen;
RESET ROLE;

-- 3. Follow-ups (tags, attachments) moved onto records the author cannot see
SET ROLE sr_liu;
INSERT INTO crm.follow_up (record_type, record_id, content) VALUES ('customer', :liu_customer, 'Sr harmless');
UPDATE crm.follow_up SET record_id = :chen_customer, content = 'Sr injected' WHERE content = 'Sr harmless';
RESET ROLE;
INSERT INTO crm.tag_group (name) VALUES ('Sr group');
INSERT INTO crm.tag (group_id, name) SELECT id, 'Sr tag' FROM crm.tag_group WHERE name = 'Sr group';
SET ROLE sr_liu;
INSERT INTO crm.record_tag (record_type, record_id, tag_id) SELECT 'customer', :liu_customer, id FROM crm.tag WHERE name = 'Sr tag';
UPDATE crm.record_tag SET record_id = :chen_customer WHERE record_id = :liu_customer;
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
VALUES ('customer', :chen_customer, 'c.pdf', 1, 'application/pdf', 'sr/c');
RESET ROLE;
SELECT count(*) AS chen_timeline_injected FROM crm.timeline WHERE record_type = 'customer' AND record_id = :chen_customer
   AND summary = 'Sr injected';
-- the timeline's follow-ups are read as crm's owner, the record's scope tested there
-- (crm.timeline_follow_up): 刘洋 reads none of 陈静's, not even through a cheap
-- condition of his own that the planner would like to run first
SET ROLE sr_chen;
INSERT INTO crm.follow_up (record_type, record_id, content) VALUES ('customer', :chen_customer, 'Sr 陈 secret');
RESET ROLE;
-- (a value it is called with is a leak; how often the plan calls it with the
-- NULL a row of another kind shows is a row count, which PostgreSQL does not
-- hide: docs/security.md, "Side channels")
CREATE FUNCTION public.sr_peek(t text) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS $$
BEGIN
	IF t IS NOT NULL THEN
		RAISE NOTICE 'peeked at %', t;
	END IF;
	RETURN true;
END
$$;
SET ROLE sr_liu;
SELECT count(*) AS liu_reads FROM crm.timeline_follow_up WHERE public.sr_peek(content);
SELECT count(*) AS chen_follow_ups FROM crm.timeline_follow_up WHERE record_id = :chen_customer;
SELECT count(*) AS chen_timeline FROM crm.timeline WHERE record_type = 'customer' AND record_id = :chen_customer AND public.sr_peek(summary);
SET ROLE sr_chen;
SELECT summary FROM crm.timeline WHERE record_type = 'customer' AND record_id = :chen_customer AND kind = 'follow_up' ORDER BY summary;
RESET ROLE;
DROP FUNCTION public.sr_peek(text);

-- 4. Recycling clocks set by hand: derived columns are crm's alone
SET ROLE sr_liu;
UPDATE crm.customer SET last_follow_up_at = '2999-01-01' WHERE id = :liu_customer;
UPDATE crm.customer SET created_at = '2999-01-01', updated_at = '2999-01-01' WHERE id = :liu_customer;
INSERT INTO crm.customer (name, uscc, created_by) VALUES ('Sr forged', crm.uscc_with_check('91330100MA2B05107'), :zhang);
INSERT INTO crm.follow_up (record_type, record_id, content, created_at) VALUES ('customer', :liu_customer, 'Sr future', '2999-06-01 08:00+08');
UPDATE crm.follow_up SET created_at = '2999-06-01' WHERE content = 'Sr harmless';
-- history may be given, and a few seconds of clock skew pass
INSERT INTO crm.follow_up (record_type, record_id, content, created_at)
VALUES ('customer', :liu_customer, 'Sr imported', '2024-03-01 10:00+08'), ('customer', :liu_customer, 'Sr skewed', now() + interval '30 seconds');
RESET ROLE;
SELECT last_follow_up_at < now() + interval '1 minute' AS clock_kept FROM crm.customer WHERE id = :liu_customer;
-- no column crm derives is writable by staff (follow_up.created_at: history, given on insert only)
SELECT c.relname, a.attname, has_column_privilege('crm_user', c.oid, a.attnum, 'INSERT') AS ins,
       has_column_privilege('crm_user', c.oid, a.attnum, 'UPDATE') AS upd
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'r'
   AND (a.attidentity <> '' OR a.attgenerated <> '' OR (c.relname, a.attname) IN (SELECT table_name, key_column FROM crm.dedupe_key_columns())
        OR a.attname IN ('id', 'created_by', 'created_at', 'updated_at',
        'added_by', 'builtin', 'last_follow_up_at', 'pinned_at', 'is_pool', 'changed_by', 'merged_by', 'requested_by')
        OR (c.relname = 'pin' AND a.attname = 'employee_id') OR (c.relname = 'pool' AND a.attname = 'id'))
   AND (has_column_privilege('crm_user', c.oid, a.attnum, 'INSERT') OR has_column_privilege('crm_user', c.oid, a.attnum, 'UPDATE'))
 ORDER BY 1, 2;

-- 5. IM secrets leave through api_base: an admin.im holder outside crm_admin
INSERT INTO crm.im_channel (name, platform, kind, app_id, app_secret, agent_id)
VALUES ('Sr WeCom app', 'wecom', 'app', 'wwsr', 'corpsecret-sr', '1000002');
SET ROLE sr_imadmin;
UPDATE crm.im_channel SET api_base = 'http://127.0.0.1:9/steal' WHERE name = 'Sr WeCom app';
UPDATE crm.im_channel SET platform = 'feishu' WHERE name = 'Sr WeCom app';
-- he configures everything else, and writes secrets without reading them
UPDATE crm.im_channel SET app_secret = 'rotated', rate_per_minute = 300 WHERE name = 'Sr WeCom app';
SELECT app_secret FROM crm.im_channel;
-- who reads the secrets may move them
SET ROLE sr_dba;
UPDATE crm.im_channel SET api_base = 'http://127.0.0.1:9/proxy' WHERE name = 'Sr WeCom app';
RESET ROLE;
DELETE FROM crm.im_channel WHERE name = 'Sr WeCom app';

-- 6. Pool rows as identities: a JWT naming a pool's row is nobody
INSERT INTO crm.pool (name, mask_phones) VALUES ('Sr pool', true);
SELECT id AS pool FROM crm.pool WHERE name = 'Sr pool' \gset
UPDATE crm.customer SET owner_id = :pool WHERE id = :chen_customer;
SET SESSION AUTHORIZATION sr_postgrest;
SET ROLE sr_web;
SELECT set_config('request.jwt.claims', format('{"role": "sr_web", "employee_id": %s}', :pool), false) IS NOT NULL AS claims_set;
SELECT crm.current_employee_id() AS acting, (SELECT count(*) FROM crm.customer) AS customers,
       (SELECT count(*) FROM crm.employee) AS employees;
SELECT set_config('request.jwt.claims', format('{"role": "sr_web", "employee_id": %s}', :liu), false) IS NOT NULL AS claims_set;
SELECT crm.current_employee_id() = :liu AS acting_liu;
RESET request.jwt.claims;
RESET SESSION AUTHORIZATION;

-- 7. A login mapped to no employee, and a deactivated employee, read nothing of crm's
UPDATE crm.employee SET active = false WHERE db_role = 'sr_gone';
CREATE FUNCTION pg_temp.rows_seen(who name) RETURNS TABLE (relname name, n bigint)
LANGUAGE plpgsql AS $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT c.oid::regclass AS rel, c.relname FROM pg_class c
	          WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind IN ('r', 'v')
	            AND has_any_column_privilege('crm_user', c.oid, 'SELECT') ORDER BY c.relname LOOP
		EXECUTE format('SET LOCAL ROLE %I', who);
		BEGIN
			EXECUTE format('SELECT count(*) FROM %s', r.rel) INTO n;
		EXCEPTION WHEN insufficient_privilege THEN
			n := -1;	-- exports refuse outright
		END;
		RESET ROLE;
		relname := r.relname;
		RETURN NEXT;
	END LOOP;
END $$;
SELECT count(*) AS relations, count(*) FILTER (WHERE n > 0) AS with_rows, string_agg(relname, ', ') FILTER (WHERE n > 0) AS which
  FROM pg_temp.rows_seen('sr_nobody');
SELECT count(*) AS relations, count(*) FILTER (WHERE n > 0) AS with_rows, string_agg(relname, ', ') FILTER (WHERE n > 0) AS which
  FROM pg_temp.rows_seen('sr_gone');
-- nor find anything by a bot's search (it failed on the types they may not read)
SET ROLE sr_nobody;
SELECT count(*) AS nobody_finds FROM crm.bot_search('客户');
SET ROLE sr_gone;
SELECT count(*) AS leaver_finds FROM crm.bot_search('客户');
-- nor read the company's notification texts through crm.notification_text
SELECT title FROM crm.notification_text('transfer.away', '{}');
SET ROLE sr_nobody;
SELECT title FROM crm.notification_text('transfer.away', '{}');
RESET ROLE;
-- an employee still reads the organisation, and crm_admin the configuration
SET ROLE sr_liu;
SELECT count(*) > 0 AS liu_sees_colleagues FROM crm.employee WHERE department_id IS NOT NULL;
SET ROLE sr_dba;
SELECT count(*) > 0 AS dba_sees_dictionaries FROM crm.dictionary;
RESET ROLE;
-- every table staff may read answers through row-level security
SELECT c.relname FROM pg_class c
 WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'r' AND NOT c.relrowsecurity
   AND has_any_column_privilege('crm_user', c.oid, 'SELECT');
