-- crm.transfer: batches of records to another employee, holding limits, locks
-- ids named in messages start at 600 here, whatever other test files created
SELECT setval(s, 600, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.follow_up_id_seq', 'crm.contact_id_seq']) s \g /dev/null
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['tr_mgr', 'tr_a', 'tr_b', 'tr_c'] LOOP
		EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
	END LOOP;
END $$;
INSERT INTO crm.department (name) VALUES ('Tr East'), ('Tr South');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT e.name, d.id, e.role FROM (VALUES ('Manager', 'Tr East', 'tr_mgr'), ('A', 'Tr East', 'tr_a'),
	('B', 'Tr East', 'tr_b'), ('C', 'Tr South', 'tr_c')) e(name, dept, role)
JOIN crm.department d ON d.name = e.dept;
INSERT INTO crm.role (name) VALUES ('Tr manager'), ('Tr rep');
INSERT INTO crm.role_scope (role_id, record_type, scope)
SELECT r.id, t, CASE r.name WHEN 'Tr manager' THEN 'department' ELSE 'self' END
  FROM crm.role r, unnest(ARRAY['customer', 'lead']) t WHERE r.name LIKE 'Tr %';
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.create', 'customer.edit', 'contact.create', 'lead.create']) a WHERE r.name LIKE 'Tr %'
UNION ALL
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.transfer', 'lead.transfer', 'customer.lock']) a WHERE r.name = 'Tr manager';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e JOIN crm.role r
  ON r.name = CASE e.db_role WHEN 'tr_mgr' THEN 'Tr manager' ELSE 'Tr rep' END
 WHERE e.db_role LIKE 'tr_%';
SELECT id AS a FROM crm.employee WHERE db_role = 'tr_a' \gset
SELECT id AS b FROM crm.employee WHERE db_role = 'tr_b' \gset
SELECT id AS c FROM crm.employee WHERE db_role = 'tr_c' \gset

-- A owns three customers (one signed) with contacts, and a lead
SET ROLE tr_a;
INSERT INTO crm.customer (name, uscc) SELECT 'Tr customer ' || n, crm.uscc_with_check('9133010000060' || n || '000')
  FROM generate_series(1, 3) n;
INSERT INTO crm.contact (customer_id, name, mobile) SELECT id, 'Contact of ' || name, '1380000600' || right(name, 1) FROM crm.customer;
INSERT INTO crm.lead (name) VALUES ('Tr lead');
RESET ROLE;
UPDATE crm.customer SET status_id = (SELECT id FROM crm.customer_status WHERE is_final) WHERE name = 'Tr customer 3';

-- a salesperson may not transfer
SET ROLE tr_a;
SELECT crm.transfer('customer', ARRAY(SELECT id FROM crm.customer), :b);
RESET ROLE;
-- the manager transfers two customers of A to B (same department): contacts go along, A stays on the team
SET ROLE tr_mgr;
SELECT crm.transfer('customer', ARRAY(SELECT id FROM crm.customer WHERE name IN ('Tr customer 1', 'Tr customer 2')), :b) AS moved;
RESET ROLE;
SELECT c.name, o.name AS owner, (SELECT string_agg(k.owner_id::text, ',') FROM crm.contact k WHERE k.customer_id = c.id) = o.id::text AS contacts_moved,
       (SELECT string_agg(format('%s:%s', t.employee_id = :a, t.access), ',') FROM crm.team_member t
         WHERE t.record_type = 'customer' AND t.record_id = c.id) AS old_owner_on_team
  FROM crm.customer c JOIN crm.employee o ON o.id = c.owner_id ORDER BY c.name;
SET ROLE tr_a;
SELECT string_agg(name, ', ' ORDER BY name) AS a_still_sees FROM crm.customer;
RESET ROLE;

-- to someone outside the manager's scope (South), without keeping the old owner
SET ROLE tr_mgr;
SELECT crm.transfer('lead', ARRAY(SELECT id FROM crm.lead), :c, true, false) AS moved;
SELECT count(*) AS manager_sees_leads FROM crm.lead;
-- records outside the caller's scope, or that do not exist, are refused alike
SELECT crm.transfer('lead', ARRAY(SELECT id FROM crm.lead) || ARRAY[-1::bigint], :a);
SELECT crm.transfer('lead', ARRAY[-1::bigint], :a);
-- a long list is named by its first ids and counted
SELECT crm.transfer('lead', ARRAY(SELECT -i FROM generate_series(1, 5000) i), :a);
\echo :LAST_ERROR_SQLSTATE
-- to nobody active
SELECT crm.transfer('customer', ARRAY(SELECT id FROM crm.customer WHERE name = 'Tr customer 3'), -5);
SELECT crm.transfer('contact', ARRAY[1::bigint], :b);
RESET ROLE;

-- holding limits count customers not yet signed, for the whole batch
UPDATE crm.employee SET holding_limit = 2 WHERE id = :c;
SET ROLE tr_mgr;
SELECT crm.transfer('customer', ARRAY(SELECT id FROM crm.customer WHERE owner_id = :b), :c);   -- 2 unsigned: fits
SELECT crm.transfer('customer', ARRAY(SELECT id FROM crm.customer WHERE name = 'Tr customer 3'), :c);  -- signed: fits
RESET ROLE;
UPDATE crm.employee SET holding_limit = 1 WHERE id = :b;
INSERT INTO crm.customer (name, owner_id, uscc) SELECT 'Tr customer 4', :a, crm.uscc_with_check('91330100000604000');
INSERT INTO crm.customer (name, owner_id, uscc) SELECT 'Tr customer 5', :a, crm.uscc_with_check('91330100000605000');
SET ROLE tr_mgr;
SELECT crm.transfer('customer', ARRAY(SELECT id FROM crm.customer WHERE name IN ('Tr customer 4', 'Tr customer 5')), :b);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS nothing_moved FROM crm.customer WHERE owner_id = :b;
RESET ROLE;
-- the limit holds on every path, with the same message: B (limit 1) creating
-- customers himself, an UPDATE of owner_id; a signed customer does not count
SET ROLE tr_b;
INSERT INTO crm.customer (name, uscc) VALUES ('Tr customer 6', crm.uscc_with_check('91330100000606000'));
INSERT INTO crm.customer (name, uscc) VALUES ('Tr customer 7', crm.uscc_with_check('91330100000607000'));
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
UPDATE crm.customer SET owner_id = :b WHERE name = 'Tr customer 4';
UPDATE crm.customer SET status_id = (SELECT id FROM crm.customer_status WHERE outcome = 'won') WHERE name = 'Tr customer 6';
SET ROLE tr_b;
INSERT INTO crm.customer (name, uscc) VALUES ('Tr customer 7', crm.uscc_with_check('91330100000607000')) RETURNING name;
RESET ROLE;
-- a signed customer that is lost after all counts again
INSERT INTO crm.customer_status (name, position, is_final, outcome) VALUES ('Tr 丢单', 99, true, 'lost');
SET ROLE tr_b;
UPDATE crm.customer SET status_id = (SELECT id FROM crm.customer_status WHERE name = 'Tr 丢单') WHERE name = 'Tr customer 6';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE tr_mgr;

-- locking needs its own permission
UPDATE crm.customer SET locked = true WHERE name = 'Tr customer 4' RETURNING name, locked;
RESET ROLE;
SET ROLE tr_a;
UPDATE crm.customer SET locked = false WHERE name = 'Tr customer 4';
RESET ROLE;

DELETE FROM crm.team_member;
DELETE FROM crm.customer;
DELETE FROM crm.customer_status WHERE name = 'Tr 丢单';
DELETE FROM crm.lead;
DELETE FROM crm.role WHERE name LIKE 'Tr %';
DROP OWNED BY tr_mgr, tr_a, tr_b, tr_c;
