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
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.create', 'customer.edit', 'customer.delete', 'contact.create']) a
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

DELETE FROM crm.role WHERE name = 'Log sales';
DROP OWNED BY log_rep, log_other;
