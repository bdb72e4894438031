-- Leavers' work never strands: a deactivation that names nobody hands it to a
-- default successor; what nobody took is listed until an administrator hands
-- it over (src/sql/93_leavers.sql, docs/access.md "Leavers")
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['lv_hr', 'lv_lead', 'lv_rep', 'lv_rep2', 'lv_other', 'lv_solo'] LOOP
		EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
	END LOOP;
END $$;
INSERT INTO crm.department (name) VALUES ('Lv HQ'), ('Lv Lone');
INSERT INTO crm.department (name, parent_id) SELECT 'Lv Sales', id FROM crm.department WHERE name = 'Lv HQ';
INSERT INTO crm.employee (name, department_id, db_role)
SELECT e.name, d.id, e.role FROM (VALUES ('Lv HR', 'Lv HQ', 'lv_hr'), ('Lv Lead', 'Lv Sales', 'lv_lead'),
	('Lv Rep', 'Lv Sales', 'lv_rep'), ('Lv Rep Two', 'Lv Sales', 'lv_rep2'), ('Lv Other', 'Lv Sales', 'lv_other'),
	('Lv Solo', 'Lv Lone', 'lv_solo')) e(name, dept, role)
JOIN crm.department d ON d.name = e.dept;
SELECT id AS hr FROM crm.employee WHERE db_role = 'lv_hr' \gset
SELECT id AS lead FROM crm.employee WHERE db_role = 'lv_lead' \gset
SELECT id AS rep FROM crm.employee WHERE db_role = 'lv_rep' \gset
SELECT id AS rep2 FROM crm.employee WHERE db_role = 'lv_rep2' \gset
SELECT id AS other FROM crm.employee WHERE db_role = 'lv_other' \gset
SELECT id AS solo FROM crm.employee WHERE db_role = 'lv_solo' \gset
UPDATE crm.department SET leader_id = :lead WHERE name = 'Lv Sales';
INSERT INTO crm.role (name) VALUES ('Lv HR'), ('Lv sales');
INSERT INTO crm.role_permission (role_id, action) SELECT id, 'admin.org' FROM crm.role WHERE name = 'Lv HR';
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.create', 'customer.edit', 'contact.create', 'lead.create']) a WHERE r.name = 'Lv sales';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e JOIN crm.role r ON r.name = CASE e.db_role WHEN 'lv_hr' THEN 'Lv HR' ELSE 'Lv sales' END
 WHERE e.db_role LIKE 'lv_%';

-- Rep has two customers with contacts, a lead, and a contact on Other's customer
SET ROLE lv_rep;
INSERT INTO crm.customer (name, uscc)
SELECT 'Lv customer ' || n, crm.uscc_with_check('91330100MA2B0' || (4700 + n)) FROM generate_series(1, 2) n;
INSERT INTO crm.contact (customer_id, name, mobile) SELECT id, 'Lv contact of ' || name, '1390000470' || right(name, 1) FROM crm.customer;
INSERT INTO crm.lead (name) VALUES ('Lv lead');
RESET ROLE;
SET ROLE lv_other;
INSERT INTO crm.customer (name, uscc) VALUES ('Lv customer of Other', crm.uscc_with_check('91330100MA2B04709'));
RESET ROLE;
INSERT INTO crm.contact (customer_id, name, mobile, owner_id)
SELECT id, 'Lv contact Rep met', '13900004709', :rep FROM crm.customer WHERE name = 'Lv customer of Other';
CREATE VIEW lv_work AS
SELECT 'customer' AS type, c.name, o.name AS owner FROM crm.customer c JOIN crm.employee o ON o.id = c.owner_id WHERE c.name LIKE 'Lv %'
UNION ALL SELECT 'contact', k.name, o.name FROM crm.contact k JOIN crm.employee o ON o.id = k.owner_id WHERE k.name LIKE 'Lv %'
UNION ALL SELECT 'lead', l.name, o.name FROM crm.lead l JOIN crm.employee o ON o.id = l.owner_id WHERE l.name LIKE 'Lv %';

-- HR deactivates Rep with a plain UPDATE (as directory sync does): the work goes
-- to the leader of Rep's department at once, contacts with their customers
SET ROLE lv_hr;
UPDATE crm.employee SET active = false WHERE id = :rep;
RESET ROLE;
SELECT * FROM lv_work ORDER BY type, name;
-- the leader is told (and is the successor, so hears it once)
SELECT e.name, n.event, n.title FROM crm.notification n JOIN crm.employee e ON e.id = n.recipient_id
 WHERE e.name LIKE 'Lv %' ORDER BY n.id;

-- a company names one successor for everyone who leaves without a handover
UPDATE crm.settings SET handover_to = :rep;
SET ROLE lv_rep2;
INSERT INTO crm.customer (name, uscc) VALUES ('Lv customer of Rep Two', crm.uscc_with_check('91330100MA2B04710'));
RESET ROLE;
-- (and a deal: the refusal below names each kind of record the leaver holds,
-- and only those)
INSERT INTO crm.opportunity (customer_id, name, owner_id)
SELECT id, 'Lv deal of Rep Two', owner_id FROM crm.customer WHERE name = 'Lv customer of Rep Two';
-- an administrator who is not a super admin does not widen their own access
-- that way (HR's scope is self: Rep Two's work would become HR's), nor
-- deactivates themselves
UPDATE crm.settings SET handover_to = :hr;
SET ROLE lv_hr;
UPDATE crm.employee SET active = false WHERE id = :rep2;
\echo :LAST_ERROR_SQLSTATE
SELECT crm.deactivate_employee(:hr, :other);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- nor through a leaver who owns nothing but has a place on a team, or leads a department
INSERT INTO crm.employee (name, department_id) SELECT v, id FROM crm.department, unnest(ARRAY['Lv Helper', 'Lv Boss']) v
 WHERE name = 'Lv Sales';
INSERT INTO crm.team_member (record_type, record_id, employee_id, access)
SELECT 'customer', c.id, e.id, 'edit' FROM crm.customer c, crm.employee e WHERE c.name = 'Lv customer of Other' AND e.name = 'Lv Helper';
INSERT INTO crm.department (name, leader_id) SELECT 'Lv Branch', id FROM crm.employee WHERE name = 'Lv Boss';
SET ROLE lv_hr;
SELECT crm.handover_employee((SELECT id FROM crm.employee WHERE name = 'Lv Helper'), :hr);
\echo :LAST_ERROR_SQLSTATE
SELECT crm.handover_employee((SELECT id FROM crm.employee WHERE name = 'Lv Boss'), :hr);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DELETE FROM crm.team_member WHERE employee_id = (SELECT id FROM crm.employee WHERE name = 'Lv Helper');
DELETE FROM crm.department WHERE name = 'Lv Branch';
-- Other it is: Rep Two leaves, Other takes over, and the leader of the
-- department hears where it went
UPDATE crm.settings SET handover_to = :other;
SET ROLE lv_hr;
UPDATE crm.employee SET active = false WHERE id = :rep2;
RESET ROLE;
SELECT * FROM lv_work WHERE name = 'Lv customer of Rep Two';
SELECT e.name, n.event, n.title, n.body FROM crm.notification n JOIN crm.employee e ON e.id = n.recipient_id
 WHERE e.name LIKE 'Lv %' AND n.body LIKE '%Lv Rep Two%' ORDER BY n.id;
UPDATE crm.settings SET handover_to = NULL;

-- nor by choosing where leavers' work lands: a department's leader among those
-- below them, the company's handover_to, their own directory ids (a sync
-- deactivates whoever its directory does not list), or someone moved into their
-- own department
UPDATE crm.employee SET superior_id = :hr WHERE id = :solo;
INSERT INTO crm.role_permission (role_id, action) SELECT id, 'admin.rules' FROM crm.role WHERE name = 'Lv HR';
SET ROLE lv_hr;
UPDATE crm.department SET leader_id = :solo WHERE name = 'Lv Lone';
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.settings SET handover_to = :other;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.employee SET wecom_userid = 'lv-hr-gone' WHERE id = :hr;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.employee SET department_id = (SELECT department_id FROM crm.employee WHERE id = :hr) WHERE id = :other;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DELETE FROM crm.role_permission WHERE action = 'admin.rules' AND role_id = (SELECT id FROM crm.role WHERE name = 'Lv HR');
UPDATE crm.employee SET superior_id = NULL WHERE id = :solo;

-- Solo's department has no leader, nor any above it: Solo's work waits in
-- crm.pending_handover, for holders of admin.org only
SET ROLE lv_solo;
INSERT INTO crm.customer (name, uscc) VALUES ('Lv customer of Solo', crm.uscc_with_check('91330100MA2B04711'));
INSERT INTO crm.lead (name) VALUES ('Lv lead of Solo');
RESET ROLE;
SET ROLE lv_hr;
UPDATE crm.employee SET active = false WHERE id = :solo;
SELECT employee, department, record_type, records, default_successor_id FROM crm.pending_handover ORDER BY employee, record_type;
RESET ROLE;
SET ROLE lv_other;
SELECT count(*) AS other_sees FROM crm.pending_handover;
-- a salesperson may not hand it over
SELECT crm.handover_employee(:solo, :other);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- HR hands it to Other; deactivating again is no error either, there is nothing left
SET ROLE lv_hr;
SELECT crm.handover_employee(:solo, :other) AS handed_over;
SELECT crm.deactivate_employee(:solo, :other) AS again;
SELECT count(*) AS pending FROM crm.pending_handover;
SELECT crm.handover_employee(:solo, :rep);
RESET ROLE;
SELECT * FROM lv_work WHERE name LIKE '%Solo%' ORDER BY type, name;
SELECT e.name, n.event, n.title, n.body FROM crm.notification n JOIN crm.employee e ON e.id = n.recipient_id
 WHERE e.name = 'Lv Other' ORDER BY n.id;

DROP VIEW lv_work;
DELETE FROM crm.opportunity WHERE name = 'Lv deal of Rep Two';
