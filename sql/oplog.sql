-- The operation log and the timeline
-- ids named in messages start at 800 here, whatever other test files created
SELECT setval(s, 800, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.follow_up_id_seq', 'crm.contact_id_seq']) s \g /dev/null
CREATE ROLE log_rep LOGIN IN ROLE crm_user;
CREATE ROLE log_other LOGIN IN ROLE crm_user;
INSERT INTO crm.department (name) VALUES ('Log Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT v, id, 'log_' || lower(v) FROM crm.department, unnest(ARRAY['Rep', 'Other']) v WHERE name = 'Log Sales';
INSERT INTO crm.role (name) VALUES ('Log sales');
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.create', 'customer.edit', 'customer.delete', 'contact.create',
	'contact.edit']) a
 WHERE r.name = 'Log sales';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e, crm.role r WHERE e.db_role LIKE 'log_%' AND r.name = 'Log sales';
SELECT id AS rep FROM crm.employee WHERE db_role = 'log_rep' \gset
DELETE FROM crm.oplog;

SET ROLE log_rep;
INSERT INTO crm.customer (name, uscc, phone) VALUES ('日志客户', crm.uscc_with_check('91330100000080000'), '0571-1');
SELECT id AS cust FROM crm.customer WHERE name = '日志客户' \gset
UPDATE crm.customer SET phone = '0571-2', industry = 'it' WHERE id = :cust;
UPDATE crm.customer SET phone = phone WHERE id = :cust;          -- changes nothing: not logged
UPDATE crm.customer SET status_id = (SELECT id FROM crm.customer_status WHERE position = 2) WHERE id = :cust;
INSERT INTO crm.follow_up (record_type, record_id, method, content, created_at)
VALUES ('customer', :cust, 'visit', '上门拜访', now() + interval '1 second');
BEGIN;
UPDATE crm.customer SET phone = '0571-3' WHERE id = :cust;
ROLLBACK;                                                        -- not logged either
RESET ROLE;

-- who changed which field from what to what, and through what
SELECT record_type, action, employee_id = :rep AS by_rep, source, changes
  FROM crm.oplog WHERE record_type = 'customer' AND record_id = :cust ORDER BY id;
-- the records one statement inserts share one entry; record_ids finds each of them
SET ROLE log_rep;
INSERT INTO crm.customer (name, uscc)
SELECT '批量' || n, crm.uscc_with_check('9133010000008' || lpad(n::text, 4, '0')) FROM generate_series(1, 3) n;
RESET ROLE;
SELECT count(*) AS entries, sum(upper(r) - lower(r)) AS records
  FROM crm.oplog o, unnest(o.record_ids) r
 WHERE o.record_type = 'customer' AND o.action = 'insert' AND o.record_id <> :cust;
SELECT count(*) AS found_each FROM crm.customer c
 WHERE c.name LIKE '批量%'
   AND EXISTS (SELECT FROM crm.oplog o WHERE o.record_type = 'customer' AND o.record_ids @> c.id);

-- imports and jobs say so
SET crm.change_source = 'import';
SET ROLE log_rep;
UPDATE crm.customer SET level = 'b' WHERE id = :cust;
RESET ROLE;
RESET crm.change_source;
SET crm.change_source = 'carrier_pigeon';
SELECT source, changes FROM crm.oplog WHERE record_id = :cust ORDER BY id DESC LIMIT 1;

-- the timeline merges follow-ups and changes
SET ROLE log_rep;
SELECT kind, detail, summary, changes ? 'status_id' AS status FROM crm.timeline
 WHERE record_type = 'customer' AND record_id = :cust ORDER BY at, kind;
RESET ROLE;
-- someone who cannot see the customer sees none of its log or timeline
SET ROLE log_other;
SELECT count(*) AS log_seen, (SELECT count(*) FROM crm.timeline) AS timeline_seen FROM crm.oplog;
-- and nobody writes the log by hand
INSERT INTO crm.oplog (record_type, record_id, action, source) VALUES ('customer', 1, 'delete', 'person');
RESET ROLE;

-- a deletion keeps the row as it was; its author still sees the entry
SET ROLE log_rep;
DELETE FROM crm.customer WHERE id = :cust;
SELECT action, changes->>'name' AS name, changes->>'phone' AS phone FROM crm.oplog
 WHERE record_type = 'customer' AND record_id = :cust AND action = 'delete';
RESET ROLE;

-- == Entries belong to the subtransaction whose rows made them
-- a DBA's row trigger whose exception block catches an error undoes only its
-- own work: the statement's entries stay
CREATE FUNCTION public.log_dba_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		PERFORM 1 / 0;
	EXCEPTION WHEN division_by_zero THEN
		NULL;
	END;
	RETURN NULL;
END
$$;
CREATE TRIGGER zz_log_dba_guard AFTER UPDATE ON crm.customer FOR EACH ROW EXECUTE FUNCTION public.log_dba_guard();
SET ROLE log_rep;
UPDATE crm.customer SET industry = 'finance' WHERE name LIKE '批量%';
RESET ROLE;
DROP TRIGGER zz_log_dba_guard ON crm.customer;
SELECT count(*) AS logged FROM crm.oplog WHERE action = 'update' AND changes -> 'industry' ->> 1 = 'finance';
-- nested levels: what a committed block wrote stays, what an aborted one wrote goes
SET ROLE log_rep;
INSERT INTO crm.contact (customer_id, name) SELECT id, '联系' || id FROM crm.customer WHERE name LIKE '批量%';
RESET ROLE;
CREATE FUNCTION public.log_dba_nested() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		UPDATE crm.contact SET title = 'kept' WHERE customer_id = NEW.id;
		BEGIN
			UPDATE crm.contact SET title = 'undone' WHERE customer_id = NEW.id;
			UPDATE crm.customer SET phone = 'undone' WHERE id = NEW.id;
			PERFORM 1 / 0;
		EXCEPTION WHEN division_by_zero THEN
			NULL;
		END;
	EXCEPTION WHEN OTHERS THEN
		RAISE;
	END;
	RETURN NULL;
END
$$;
CREATE TRIGGER zz_log_dba_nested AFTER UPDATE OF level ON crm.customer FOR EACH ROW EXECUTE FUNCTION public.log_dba_nested();
SET ROLE log_rep;
UPDATE crm.customer SET level = 'c' WHERE name LIKE '批量%';
RESET ROLE;
DROP TRIGGER zz_log_dba_nested ON crm.customer;
SELECT record_type, coalesce(changes -> 'level' ->> 1, changes -> 'title' ->> 1, changes -> 'phone' ->> 1) AS value,
       count(*), bool_and(employee_id = :rep) AS by_rep
  FROM crm.oplog WHERE action = 'update' AND (changes ? 'level' OR changes ? 'title' OR changes ? 'phone')
   AND record_id <> :cust
 GROUP BY 1, 2 ORDER BY 1, 2;
-- a savepoint rolled back takes its statements' entries, not the earlier ones;
-- past crm.oplog_work_mem a statement writes its entries as it goes, which a
-- savepoint rolls back all the same
SET crm.oplog_work_mem = 64;
-- (ids no other test file uses, for the entries these customers leave behind)
SELECT setval('crm.customer_id_seq', 60000, false) \g /dev/null
SET ROLE log_rep;
SET crm.oplog_work_mem = '1GB';
BEGIN;
INSERT INTO crm.customer (name, uscc)
SELECT '量' || n, crm.uscc_with_check('91330100009' || lpad(n::text, 6, '0')) FROM generate_series(1, 2000) n;
UPDATE crm.customer SET phone = '0571-' || id WHERE name LIKE '量%';
SAVEPOINT more;
UPDATE crm.customer SET source = 'website' WHERE name LIKE '量%';
ROLLBACK TO more;
UPDATE crm.customer SET industry = 'it' WHERE name LIKE '量%';
COMMIT;
RESET ROLE;
RESET crm.oplog_work_mem;
SELECT count(*) FILTER (WHERE changes ? 'phone') AS phones, count(*) FILTER (WHERE changes ? 'source') AS sources,
       count(*) FILTER (WHERE changes ? 'industry') AS industries, count(DISTINCT record_id) AS customers
  FROM crm.oplog WHERE action = 'update' AND record_id IN (SELECT id FROM crm.customer WHERE name LIKE '量%');
-- and the notes a statement holds stay near the setting however many rows it
-- changes: the peak of their memory, seen by a DBA's trigger on every row
CREATE FUNCTION public.oplog_peak() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
	PERFORM set_config('regress.oplog_peak',
		greatest(coalesce(nullif(current_setting('regress.oplog_peak', true), ''), '0')::bigint,
		         (SELECT coalesce(sum(total_bytes), 0) FROM pg_backend_memory_contexts WHERE name = 'crm oplog notes'))::text, false);
	RETURN NULL;
END $$;
CREATE TRIGGER zz_oplog_peak AFTER UPDATE ON crm.customer FOR EACH ROW EXECUTE FUNCTION public.oplog_peak();
SET crm.oplog_work_mem = 64;
SET regress.oplog_peak = 0;
UPDATE crm.customer SET phone = '0572-' || id WHERE name LIKE '量%';
SELECT current_setting('regress.oplog_peak')::bigint < 4 * 64 * 1024 AS bounded;
SET crm.oplog_work_mem = '1GB';
SET regress.oplog_peak = 0;
UPDATE crm.customer SET phone = '0573-' || id WHERE name LIKE '量%';
SELECT current_setting('regress.oplog_peak')::bigint > 4 * 64 * 1024 AS unbounded_without_it;
RESET crm.oplog_work_mem;
DROP TRIGGER zz_oplog_peak ON crm.customer;
DROP FUNCTION public.oplog_peak();

-- a DBA's trigger on the log that changes a logged record: its change is noted and
-- written apart (it joined the notes being written, which its statement wrote again
-- and freed under the writer: the server crashed), at the end of a statement as when
-- the notes outgrow crm.oplog_work_mem
CREATE FUNCTION public.oplog_echo() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF pg_trigger_depth() < 3 THEN
		UPDATE crm.customer SET industry = current_setting('regress.echo_industry')
		 WHERE id = current_setting('regress.echo_customer')::bigint
		   AND industry IS DISTINCT FROM current_setting('regress.echo_industry');
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER zz_oplog_echo AFTER INSERT ON crm.oplog FOR EACH STATEMENT EXECUTE FUNCTION public.oplog_echo();
SELECT min(id) AS echoed, max(id) AS edited FROM crm.customer WHERE name LIKE '量%' \gset
SELECT set_config('regress.echo_customer', :'echoed', false) IS NOT NULL AS echo_on,
       set_config('regress.echo_industry', 'wholesale_retail', false) IS NOT NULL AS first;
SET ROLE log_rep;
UPDATE crm.customer SET phone = '0571-9' WHERE id = :edited;
RESET ROLE;
SELECT set_config('regress.echo_industry', 'it', false) IS NOT NULL AS second;
SET crm.oplog_work_mem = 64;
UPDATE crm.customer SET phone = '0574-' || id WHERE name LIKE '量%';
RESET crm.oplog_work_mem;
DROP TRIGGER zz_oplog_echo ON crm.oplog;
DROP FUNCTION public.oplog_echo();
SELECT (SELECT count(*) FROM crm.oplog WHERE record_id = :edited AND changes -> 'phone' ->> 1 = '0571-9') AS edit,
       (SELECT count(*) FROM crm.oplog WHERE record_id = :echoed AND 'wholesale_retail' IN (changes -> 'industry' ->> 0, changes -> 'industry' ->> 1)) AS echoes,
       (SELECT count(*) FROM crm.oplog WHERE changes -> 'phone' ->> 1 LIKE '0574-%')
         = (SELECT count(*) FROM crm.customer WHERE name LIKE '量%') AS each_once;

-- a log that fails to be written (a DBA's trigger refusing, a lock timeout) fails its
-- statement; one that an exception block catches leaves no notes behind (taken out to
-- be written, they stayed in memory until the transaction's end, 8MB a statement)
CREATE FUNCTION public.oplog_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the log is closed';
END $$;
CREATE TRIGGER zz_oplog_refuse AFTER INSERT ON crm.oplog FOR EACH STATEMENT EXECUTE FUNCTION public.oplog_refuse();
BEGIN;
DO $$
BEGIN
	FOR i IN 1..5 LOOP
		BEGIN
			UPDATE crm.customer SET phone = '0575-' || i || id WHERE name LIKE '量%';
		EXCEPTION WHEN raise_exception THEN
			NULL;
		END;
	END LOOP;
END $$;
SET LOCAL crm.oplog_work_mem = 64;
DO $$
BEGIN
	BEGIN
		UPDATE crm.customer SET phone = '0576-' || id WHERE name LIKE '量%';
	EXCEPTION WHEN raise_exception THEN
		NULL;
	END;
END $$;
SELECT count(*) AS notes_left FROM pg_backend_memory_contexts WHERE name = 'crm oplog notes';
ROLLBACK;
DROP TRIGGER zz_oplog_refuse ON crm.oplog;
DROP FUNCTION public.oplog_refuse();

-- == crm's own functions act for the employee who calls them
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.transfer', 'customer.merge', 'admin.rules', 'admin.org']) a
 WHERE r.name = 'Log sales';
-- (the rep sees his department's records: a leaver's he may take over)
INSERT INTO crm.role_scope (role_id, record_type, scope)
SELECT r.id, t, 'department' FROM crm.role r, unnest(ARRAY['customer', 'lead']) t WHERE r.name = 'Log sales';
CREATE ROLE log_leaver LOGIN IN ROLE crm_user;
INSERT INTO crm.employee (name, department_id, db_role)
SELECT 'Leaver', id, 'log_leaver' FROM crm.department WHERE name = 'Log Sales';
SELECT id AS other FROM crm.employee WHERE db_role = 'log_other' \gset
SELECT id AS leaver FROM crm.employee WHERE db_role = 'log_leaver' \gset
-- (final statuses end the list: the won one moves past the new ones, and back)
UPDATE crm.customer_status SET position = 50 WHERE outcome = 'won';
INSERT INTO crm.customer_status (name, position) VALUES ('日志状态', 40), ('日志后续', 41);
SET ROLE log_rep;
INSERT INTO crm.customer (name, uscc) VALUES
	('转移客户', crm.uscc_with_check('91330100000081001')), ('合并客户', crm.uscc_with_check('91330100000081002')),
	('被并客户', crm.uscc_with_check('91330100000081003'));
RESET ROLE;
UPDATE crm.customer SET owner_id = :leaver WHERE name = '被并客户';
SELECT max(id) AS mark FROM crm.oplog \gset
SET ROLE log_rep;
SELECT crm.transfer('customer', ARRAY(SELECT id FROM crm.customer WHERE name = '转移客户'), :other, false, false) AS transferred;
UPDATE crm.customer SET status_id = (SELECT id FROM crm.customer_status WHERE name = '日志状态') WHERE name = '合并客户';
SELECT crm.delete_customer_status((SELECT id FROM crm.customer_status WHERE name = '日志状态'),
                                  (SELECT id FROM crm.customer_status WHERE name = '日志后续')) AS restatused;
SELECT crm.deactivate_employee(:leaver, :rep) AS handed_over;
SELECT crm.merge_customers((SELECT id FROM crm.customer WHERE name = '合并客户'), (SELECT id FROM crm.customer WHERE name = '被并客户')) > 0 AS merged;
RESET ROLE;
SELECT c.name, o.action, array(SELECT jsonb_object_keys(o.changes) ORDER BY 1) AS fields,
       o.employee_id = :rep AS by_rep, o.source
  FROM crm.oplog o LEFT JOIN crm.customer c ON c.id = o.record_id
 WHERE o.id > :mark AND o.record_type = 'customer' AND o.action <> 'delete' ORDER BY o.id;
SELECT o.changes ->> 'name' AS name, o.employee_id = :rep AS by_rep, o.source
  FROM crm.oplog o WHERE o.id > :mark AND o.action = 'delete';
-- the crm owner's own session acts for nobody
UPDATE crm.customer SET level = 'a' WHERE name = '转移客户';
SELECT employee_id, source FROM crm.oplog ORDER BY id DESC LIMIT 1;

DROP FUNCTION public.log_dba_guard(), public.log_dba_nested();
DELETE FROM crm.contact WHERE name LIKE '联系%';
DELETE FROM crm.customer WHERE name LIKE '量%' OR name IN ('转移客户', '合并客户');
DELETE FROM crm.customer_status WHERE name = '日志后续';
ALTER TABLE crm.customer_status DISABLE TRIGGER customer_status_builtin_edited;
UPDATE crm.customer_status SET position = 5, builtin = true WHERE outcome = 'won';
ALTER TABLE crm.customer_status ENABLE TRIGGER customer_status_builtin_edited;
DELETE FROM crm.role WHERE name = 'Log sales';
DROP OWNED BY log_rep, log_other, log_leaver;
