-- The public pool: pools and members, masking, claim / assign / release with
-- their limits, recycling rules, the recycling job and its reminders
-- ids named in messages start at 1700 here, whatever other test files created
SELECT setval(s, 1700, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.contact_id_seq', 'crm.recycle_rule_id_seq', 'crm.pool_member_id_seq']) s \g /dev/null
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['po_admin', 'po_a', 'po_b', 'po_c', 'po_w'] LOOP
		EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
	END LOOP;
END $$;
INSERT INTO crm.department (name) VALUES ('Po East'), ('Po West');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT e.name, d.id, e.role FROM (VALUES ('Pool Admin', 'Po East', 'po_admin'), ('A', 'Po East', 'po_a'),
	('B', 'Po East', 'po_b'), ('C', 'Po East', 'po_c'), ('W', 'Po West', 'po_w')) e(name, dept, role)
JOIN crm.department d ON d.name = e.dept;
INSERT INTO crm.role (name) VALUES ('Po rep');
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.create', 'customer.edit', 'contact.create', 'contact.edit',
	'pool.claim', 'pool.release']) a WHERE r.name = 'Po rep';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e, crm.role r WHERE e.db_role LIKE 'po\_%' AND r.name = 'Po rep';
SELECT id AS admin FROM crm.employee WHERE db_role = 'po_admin' \gset
SELECT id AS a FROM crm.employee WHERE db_role = 'po_a' \gset
SELECT id AS b FROM crm.employee WHERE db_role = 'po_b' \gset
SELECT id AS c FROM crm.employee WHERE db_role = 'po_c' \gset
SELECT id AS w FROM crm.employee WHERE db_role = 'po_w' \gset

-- Errors whose messages name times, with the times blanked
CREATE FUNCTION public.po_try(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	state text; msg text; detail text; hint text;
BEGIN
	EXECUTE statement;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
	RETURN regexp_replace(concat_ws(E'\n', state || ': ' || msg, 'DETAIL: ' || nullif(detail, ''), 'HINT: ' || nullif(hint, '')),
	                      '\d{4}-\d\d-\d\d \d\d:\d\d', '<time>', 'g');
END
$$;

-- Pools are rows; each owns its customers through an employee row made with it
INSERT INTO crm.pool (name, is_default, release_cooldown_days, recycle_cooldown_days, freeze_after_releases, freeze_period_days, freeze_days)
VALUES ('公海A', true, 2, 5, 2, 30, 3);
INSERT INTO crm.pool (name) VALUES ('West pool');
SELECT p.name, e.is_pool, e.department_id, e.in_statistics FROM crm.pool p JOIN crm.employee e ON e.id = p.id
 WHERE p.name IN ('公海A', 'West pool') ORDER BY p.name;
SELECT id AS pool_a FROM crm.pool WHERE name = '公海A' \gset
SELECT id AS pool_w FROM crm.pool WHERE name = 'West pool' \gset
INSERT INTO crm.pool_member (pool_id, department_id) SELECT :pool_a, id FROM crm.department WHERE name = 'Po East';
INSERT INTO crm.pool_member (pool_id, employee_id, is_admin) VALUES (:pool_a, :admin, true);
INSERT INTO crm.pool_member (pool_id, department_id) SELECT :pool_w, id FROM crm.department WHERE name = 'Po West';
SELECT p.name, e.name AS member, m.is_admin
  FROM crm.pool_membership m JOIN crm.pool p ON p.id = m.pool_id JOIN crm.employee e ON e.id = m.employee_id
 WHERE p.id IN (:pool_a, :pool_w) ORDER BY 1, 2;
-- bad pool rows are refused (terse: the failing rows carry timestamps)
\set VERBOSITY terse
INSERT INTO crm.pool (name, is_default) VALUES ('Second default', true);
INSERT INTO crm.pool (name, release_cooldown_days) VALUES ('Negative', -1);
UPDATE crm.employee SET is_pool = true WHERE id = :c;
\set VERBOSITY default
INSERT INTO crm.pool_member (pool_id, employee_id) VALUES (:pool_a, :pool_w);
DELETE FROM crm.pool WHERE id = :pool_w;
UPDATE crm.employee SET active = false WHERE id = :pool_w;
SELECT crm.deactivate_employee(:pool_w, :admin);
SET ROLE po_a;
INSERT INTO crm.pool (name) VALUES ('My own pool');
RESET ROLE;

-- A releases a customer, with a reason from the dictionary
SET ROLE po_a;
INSERT INTO crm.customer (name, uscc, phone) VALUES ('Po Tea Co', crm.uscc_with_check('91330100001701000'), '0571-88001700');
INSERT INTO crm.contact (customer_id, name, mobile, email)
SELECT id, 'Ms Po', '13800017001', 'ms.po@example.com' FROM crm.customer WHERE name = 'Po Tea Co';
SELECT id AS tea FROM crm.customer WHERE name = 'Po Tea Co' \gset
INSERT INTO crm.follow_up (record_type, record_id, content) VALUES ('customer', :tea, 'No budget this year');
RESET ROLE;
-- a DBA's own trigger on contacts sees them move with their customer; it runs
-- as the writer (crm's owner, under crm's search_path), so it names its table in full
CREATE TABLE public.po_contact_moves (contact_id bigint, from_owner bigint, to_owner bigint);
CREATE FUNCTION public.po_contact_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.po_contact_moves VALUES (NEW.id, OLD.owner_id, NEW.owner_id);
	RETURN NULL;
END
$$;
CREATE TRIGGER po_contact_moved AFTER UPDATE OF owner_id ON crm.contact
	FOR EACH ROW EXECUTE FUNCTION public.po_contact_moved();
SET ROLE po_a;
SELECT crm.release_customer(:tea, 'bored');
SELECT crm.release_customer(:tea, 'no_need');
SELECT count(*) AS a_still_sees FROM crm.customer WHERE id = :tea;
SELECT crm.release_customer(:tea, 'no_need');
RESET ROLE;
SELECT kind, from_owner = :a AS from_a, to_owner = :pool_a AS to_pool, reason, changed_by = :a AS by_a
  FROM crm.customer_owner_change WHERE customer_id = :tea;
SELECT owner_id = :pool_a AS contact_in_pool FROM crm.contact WHERE customer_id = :tea;
SELECT m.from_owner = :a AS from_a, m.to_owner = :pool_a AS to_pool FROM public.po_contact_moves m;

-- members browse the pool with phones masked; the pool's admin sees the rows themselves
SET ROLE po_b;
SELECT name, pool_name, phone FROM crm.pool_customer;
SELECT name, mobile, email FROM crm.pool_contact;
SELECT method, content, created_by = :a AS by_a FROM crm.pool_follow_up WHERE customer_id = :tea;
SELECT count(*) AS b_sees_rows FROM crm.customer WHERE id = :tea;
SET ROLE po_w;
SELECT count(*) AS west_sees FROM crm.pool_customer WHERE id = :tea;
SET ROLE po_admin;
SELECT name, phone FROM crm.pool_customer;
SELECT name, phone FROM crm.customer WHERE id = :tea;
SELECT rule, grants, detail FROM crm.explain_access('customer', :tea) WHERE rule = 'pool_admin';
SET ROLE po_b;
SELECT rule, grants FROM crm.explain_access('customer', :tea) WHERE rule NOT IN ('identity', 'permission');
RESET ROLE;

-- claims: the former owner waits out the cool-down; one claimer wins
SET ROLE po_a;
SELECT po_try(format('SELECT crm.claim_customer(%s)', :tea));
SET ROLE po_w;
SELECT crm.claim_customer(:tea);
SET ROLE po_b;
SELECT crm.claim_customer(:tea);
SELECT name, phone FROM crm.customer WHERE id = :tea;
SET ROLE po_c;
SELECT crm.claim_customer(:tea);
RESET ROLE;
SELECT kind, to_owner = :b AS to_b, pool_id = :pool_a AS from_pool FROM crm.customer_owner_change WHERE customer_id = :tea ORDER BY id;
-- the moves are in the new owner's timeline from the owner history, not twice from the operation log
SET ROLE po_b;
SELECT kind, detail, summary FROM crm.timeline WHERE record_type = 'customer' AND record_id = :tea AND kind <> 'insert' ORDER BY at;
RESET ROLE;
SELECT count(*) AS logged_moves FROM crm.oplog WHERE record_id = :tea AND changes ? 'owner_id';
-- nor are their contacts' moves, which the DBA's trigger saw
SELECT m.from_owner = :pool_a AS from_pool, m.to_owner = :b AS to_b,
       (SELECT count(*) FROM crm.oplog o WHERE o.record_type = 'contact' AND o.record_id = m.contact_id AND o.action = 'update') AS logged
  FROM public.po_contact_moves m ORDER BY m.from_owner = :pool_a;
DROP TRIGGER po_contact_moved ON crm.contact;
DROP FUNCTION public.po_contact_moved();
DROP TABLE public.po_contact_moves;

-- the daily limit counts only claims; the holding limit counts unsigned customers
UPDATE crm.settings SET daily_claim_limit = 2;
INSERT INTO crm.customer (name, uscc, owner_id)
SELECT 'Po pool ' || n, crm.uscc_with_check('91330100001702' || n || '00'), :pool_a FROM generate_series(1, 6) n;
SET ROLE po_b;
SELECT crm.claim_customer(id) FROM crm.pool_customer WHERE name = 'Po pool 1';
SELECT po_try(format('SELECT crm.claim_customer(%s)', id)) FROM crm.pool_customer WHERE name = 'Po pool 2';
RESET ROLE;
UPDATE crm.employee SET daily_claim_limit = 5 WHERE id = :b;
UPDATE crm.settings SET holding_limit = 2;
SET ROLE po_b;
SELECT crm.claim_customer(id) FROM crm.pool_customer WHERE name = 'Po pool 2';
RESET ROLE;
UPDATE crm.settings SET holding_limit = NULL;
-- assigning needs the pool's admin or pool.assign, and is not a claim
SET ROLE po_a;
SELECT crm.assign_customer(id, :b) FROM crm.pool_customer WHERE name = 'Po pool 3';
SET ROLE po_admin;
SELECT crm.assign_customer(id, :b) FROM crm.pool_customer WHERE name = 'Po pool 3';
SELECT crm.assign_customer(id, :pool_w) FROM crm.pool_customer WHERE name = 'Po pool 4';
RESET ROLE;
-- a transfer cannot put customers into a pool: a release says why
SELECT crm.transfer('customer', ARRAY[id], :pool_w) FROM crm.customer WHERE name = 'Po pool 3';
SELECT kind, count(*) FROM crm.customer_owner_change WHERE to_owner = :b GROUP BY kind ORDER BY kind;
SELECT title, body, record_id IS NOT NULL AS links_customer FROM crm.notification WHERE recipient_id = :b AND event = 'pool.assigned';

-- releasing twice within the period freezes claiming from that pool
SET ROLE po_c;
SELECT crm.claim_customer(id) FROM crm.pool_customer WHERE name IN ('Po pool 4', 'Po pool 5') ORDER BY name;
SELECT crm.release_customer(id, 'unreachable') FROM crm.customer WHERE name IN ('Po pool 4', 'Po pool 5') ORDER BY name;
SELECT po_try(format('SELECT crm.claim_customer(%s)', id)) FROM crm.pool_customer WHERE name = 'Po pool 6';
RESET ROLE;
-- a pool admin may still assign to a frozen employee
SET ROLE po_admin;
SELECT crm.assign_customer(id, :c) FROM crm.pool_customer WHERE name = 'Po pool 6';
RESET ROLE;
-- locked customers stay; a missing permission is 42501
UPDATE crm.customer SET locked = true WHERE name = 'Po pool 1';
SET ROLE po_b;
SELECT crm.release_customer(id, 'other') FROM crm.customer WHERE name = 'Po pool 1';
RESET ROLE;
DELETE FROM crm.role_permission WHERE action = 'pool.claim' AND role_id = (SELECT id FROM crm.role WHERE name = 'Po rep');
SET ROLE po_w;
SELECT crm.claim_customer(:tea);
RESET ROLE;
SET ROLE crm_user;
SELECT crm.claim_customer(:tea);
RESET ROLE;

-- Recycling rules: bad rows are refused when written
INSERT INTO crm.recycle_rule (name, kind, days) VALUES ('Negative', 'no_follow_up', -3);
INSERT INTO crm.recycle_rule (name, kind, days, status_ids) VALUES ('Unknown status', 'no_follow_up', 10, '{999999}');
INSERT INTO crm.recycle_rule (name, kind, days, status_ids) VALUES ('Deal by status', 'no_deal', 10, '{1}');
INSERT INTO crm.recycle_rule (name, kind, days, remind_days_before) VALUES ('Late reminder', 'no_follow_up', 10, 10);
INSERT INTO crm.recycle_rule (name, kind, days, department_ids) VALUES ('Unknown department', 'no_follow_up', 10, '{999999}');
INSERT INTO crm.recycle_rule (name, kind, days, exempt_employee_ids) VALUES ('Pool exempt', 'no_follow_up', 10, ARRAY[:pool_a]::bigint[]);
SET ROLE po_a;
INSERT INTO crm.recycle_rule (name, kind, days) VALUES ('Mine', 'no_follow_up', 10);
RESET ROLE;

-- no_follow_up: N days after the later of the last follow-up and receiving
-- the customer, while in the watched statuses; signed customers only if included
SELECT id AS initial FROM crm.customer_status WHERE is_initial \gset
SELECT id AS final FROM crm.customer_status WHERE is_final \gset
SELECT id AS second FROM crm.customer_status WHERE position = 2 \gset
SELECT id AS third FROM crm.customer_status WHERE position = 3 \gset
-- customers of A's since 40 days (created_at is crm's: only nobody, such as an import by the DBA, gives it)
INSERT INTO crm.customer (name, uscc, created_at, owner_id, created_by)
SELECT 'Po rule ' || n, crm.uscc_with_check('91330100001703' || n || '00'), now() - interval '40 days', :a, :a
  FROM generate_series(1, 5) n;
CREATE TEMP VIEW clock AS
SELECT c.name, round(extract(epoch FROM k.recycle_at - now()) / 86400)::integer AS due_in_days, r.name AS rule
  FROM crm.customer c LEFT JOIN crm.customer_recycling k ON k.customer_id = c.id LEFT JOIN crm.recycle_rule r ON r.id = k.rule_id
 WHERE c.name LIKE 'Po rule %' ORDER BY c.name;
SELECT * FROM clock;
INSERT INTO crm.recycle_rule (name, kind, days, status_ids, department_ids, remind_days_before)
SELECT 'Quiet East', 'no_follow_up', 50, ARRAY[:initial, :second]::bigint[], ARRAY[id], 15 FROM crm.department WHERE name = 'Po East';
SELECT * FROM clock;
SELECT id AS quiet FROM crm.recycle_rule WHERE name = 'Quiet East' \gset
-- a follow-up restarts the clock; a status outside the rule stops it; so does a lock
INSERT INTO crm.follow_up (record_type, record_id, content)
SELECT 'customer', id, 'called' FROM crm.customer WHERE name = 'Po rule 1';
UPDATE crm.customer SET status_id = :third WHERE name = 'Po rule 2';
UPDATE crm.customer SET locked = true WHERE name = 'Po rule 3';
UPDATE crm.customer SET status_id = :final WHERE name = 'Po rule 4';
SELECT * FROM clock;
UPDATE crm.recycle_rule SET include_won = true, status_ids = ARRAY[:initial, :second, :final]::bigint[] WHERE id = :quiet;
SELECT * FROM clock;
-- a rule edit recomputes every customer it touches; exempt employees have none
UPDATE crm.recycle_rule SET days = 45, exempt_employee_ids = ARRAY[:w]::bigint[] WHERE id = :quiet;
SELECT * FROM clock;
UPDATE crm.recycle_rule SET exempt_employee_ids = ARRAY[:a]::bigint[] WHERE id = :quiet;
SELECT * FROM clock;
UPDATE crm.recycle_rule SET exempt_employee_ids = '{}', include_won = false, status_ids = ARRAY[:initial, :second]::bigint[] WHERE id = :quiet;

-- no_deal: N days after receiving the customer, not counting time in exempt
-- statuses; the earliest deadline of the rules that apply wins
BEGIN;
INSERT INTO crm.recycle_rule (name, kind, days, exempt_status_ids, employee_ids)
VALUES ('No deal', 'no_deal', 60, ARRAY[:second]::bigint[], ARRAY[:a]::bigint[]);
SELECT * FROM clock;
-- five days in an exempt status, then out of it: the deadline moves five days later
UPDATE crm.customer SET status_id = :second WHERE name = 'Po rule 5';
UPDATE crm.customer_recycling SET status_since = now() - interval '5 days'
 WHERE customer_id = (SELECT id FROM crm.customer WHERE name = 'Po rule 5');
UPDATE crm.customer SET status_id = :third WHERE name = 'Po rule 5';
SELECT c.name, s.spent, k.recycle_at - k.owned_since AS deadline_after
  FROM crm.customer c JOIN crm.customer_status_time s ON s.customer_id = c.id JOIN crm.customer_recycling k ON k.customer_id = c.id
 WHERE c.name = 'Po rule 5' AND s.status_id = :second;
ROLLBACK;

-- the job: what is due, a dry run, the move, and the former owner told once;
-- a customer due within its rule's reminder window is reminded once
UPDATE crm.recycle_rule SET days = 38 WHERE id = :quiet;
INSERT INTO crm.customer (name, uscc, created_at, owner_id, created_by)
VALUES ('Po rule 6', crm.uscc_with_check('91330100001703600'), now() - interval '30 days', :a, :a);
SELECT * FROM clock;
SET ROLE po_a;
SELECT name, days_left, reason, pool_name FROM crm.customers_due_for_recycling WHERE name LIKE 'Po rule %' ORDER BY name;
SELECT count(*) AS a_previews_own FROM crm.recycling_preview();
SET ROLE po_b;
SELECT count(*) AS b_previews_none FROM crm.recycling_preview();
RESET ROLE;
SELECT c.name, p.pool_id = :pool_a AS to_pool_a, p.reason
  FROM crm.recycling_preview() p JOIN crm.customer c ON c.id = p.customer_id WHERE c.name LIKE 'Po %';
-- (batches of one: a run moves every due customer whatever its batches; no batch
-- is no run)
SELECT crm.run_recycling(0);
SELECT crm.run_recycling(NULL);
SELECT crm.run_recycling(1) AS recycled;
SELECT crm.run_recycling() AS recycled_again;
SELECT c.name, h.kind, h.from_owner = :a AS from_a, h.to_owner = :pool_a AS to_pool_a, h.rule_id = :quiet AS by_rule, h.reason
  FROM crm.customer_owner_change h JOIN crm.customer c ON c.id = h.customer_id
 WHERE h.kind = 'recycle' ORDER BY c.name;
SELECT * FROM clock;
SELECT event, title, body FROM crm.notification WHERE recipient_id = :a AND event = 'pool.recycled' ORDER BY id;
SELECT event, title FROM crm.notification WHERE recipient_id = :a AND event = 'pool.recycle_soon' ORDER BY id;
-- the reminder says when (in the company's time zone, whatever the session's),
-- by which rule, and how to keep the customer
SET TimeZone = 'America/New_York';
SELECT regexp_replace(n.body, '\d{4}-\d\d-\d\d \d\d:\d\d', '<date>') AS body,
       n.body LIKE '%' || to_char(k.reminded_for AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI') || '收回%' AS beijing_time
  FROM crm.notification n, crm.customer_recycling k JOIN crm.customer c ON c.id = k.customer_id
 WHERE n.recipient_id = :a AND n.event = 'pool.recycle_soon' AND c.name = 'Po rule 6';
RESET TimeZone;
SELECT job, processed, details FROM crm.job_run WHERE job = 'crm-recycling' ORDER BY id;
-- a new deadline is a new reminder
INSERT INTO crm.follow_up (record_type, record_id, content, created_at)
SELECT 'customer', id, 'called again', now() - interval '25 days' FROM crm.customer WHERE name = 'Po rule 6';
SELECT * FROM clock;
SELECT crm.run_recycling() AS recycled;
SELECT event, title FROM crm.notification WHERE recipient_id = :a AND event = 'pool.recycle_soon' ORDER BY id;
-- the former owner waits out the recycle cool-down
INSERT INTO crm.role_permission (role_id, action) SELECT id, 'pool.claim' FROM crm.role WHERE name = 'Po rep';
SET ROLE po_a;
SELECT po_try(format('SELECT crm.claim_customer(%s)', id)) FROM crm.pool_customer WHERE name = 'Po rule 5';
RESET ROLE;
DROP FUNCTION public.po_try(text);

-- leave nothing behind for the tests that follow
DELETE FROM crm.recycle_rule;
DELETE FROM crm.customer WHERE name LIKE 'Po %';
UPDATE crm.settings SET daily_claim_limit = NULL;
