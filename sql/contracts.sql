-- Contracts and their money: numbers, lines, submitting, payment plans,
-- payments and refunds, invoices (docs/contracts.md)
-- ids named in messages start at 94000 here, whatever other test files created
SELECT setval(s, 94000, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.opportunity_id_seq', 'crm.contract_id_seq', 'crm.contact_id_seq', 'crm.product_id_seq',
	'crm.payment_plan_id_seq', 'crm.payment_id_seq', 'crm.invoice_id_seq']) s \g /dev/null
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['ct_mgr', 'ct_rep', 'ct_rep2', 'ct_fin', 'ct_admin'] LOOP
		EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
	END LOOP;
END $$;
INSERT INTO crm.department (name) VALUES ('Ct Sales'), ('Ct Finance');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT e.name, d.id, e.role FROM (VALUES
	('Ct Manager', 'Ct Sales', 'ct_mgr'), ('Ct Rep', 'Ct Sales', 'ct_rep'), ('Ct Rep2', 'Ct Sales', 'ct_rep2'),
	('Ct Finance', 'Ct Finance', 'ct_fin'), ('Ct Admin', 'Ct Sales', 'ct_admin')) e(name, dept, role)
JOIN crm.department d ON d.name = e.dept;
SELECT id AS mgr FROM crm.employee WHERE db_role = 'ct_mgr' \gset
SELECT id AS rep FROM crm.employee WHERE db_role = 'ct_rep' \gset
SELECT id AS rep2 FROM crm.employee WHERE db_role = 'ct_rep2' \gset
UPDATE crm.employee SET superior_id = :mgr WHERE id IN (:rep, :rep2);
INSERT INTO crm.role (name) VALUES ('Ct sales'), ('Ct finance'), ('Ct rules');
-- the finance role: every contract in view, payments entered, invoices issued
INSERT INTO crm.role_scope (role_id, record_type, scope)
SELECT id, 'contract', 'all' FROM crm.role WHERE name = 'Ct finance';
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM (VALUES
	('Ct sales', '{customer.create,customer.edit,contact.create,opportunity.create,opportunity.edit,contract.create,contract.edit,contract.delete}'),
	('Ct finance', '{payment.enter,invoice.issue}'),
	('Ct rules', '{admin.rules}')) v(role, actions)
  JOIN crm.role r ON r.name = v.role, unnest(v.actions::text[]) a;
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM (VALUES ('ct_mgr', 'Ct sales'), ('ct_rep', 'Ct sales'), ('ct_rep2', 'Ct sales'), ('ct_fin', 'Ct finance'),
	('ct_admin', 'Ct rules')) v(emp, role)
  JOIN crm.employee e ON e.db_role = v.emp JOIN crm.role r ON r.name = v.role;
BEGIN;
INSERT INTO crm.customer (name, kind, owner_id)
SELECT 'Ct customer of ' || e.name, 'individual', e.id FROM crm.employee e WHERE e.db_role IN ('ct_rep', 'ct_rep2')
UNION ALL SELECT 'Ct other customer of Ct Rep', 'individual', :rep;
INSERT INTO crm.contact (customer_id, name, mobile, owner_id)
SELECT c.id, 'Ct signer', '1390000' || lpad(c.id::text, 4, '0'), c.owner_id FROM crm.customer c WHERE c.name LIKE 'Ct %customer of %';
COMMIT;
SELECT id AS customer FROM crm.customer WHERE name = 'Ct customer of Ct Rep' \gset
SELECT id AS customer2 FROM crm.customer WHERE name = 'Ct customer of Ct Rep2' \gset
SELECT id AS signer FROM crm.contact WHERE customer_id = :customer \gset
SELECT id AS signer2 FROM crm.contact WHERE customer_id = :customer2 \gset
INSERT INTO crm.product (code, name, list_price) VALUES ('CT-1', 'Ct licence', 1000), ('CT-2', 'Ct service', 500);
INSERT INTO crm.product (code, name, list_price, on_shelf) VALUES ('CT-OLD', 'Ct retired', 100, false);
SELECT id AS licence FROM crm.product WHERE code = 'CT-1' \gset
SELECT id AS service FROM crm.product WHERE code = 'CT-2' \gset
SELECT id AS retired FROM crm.product WHERE code = 'CT-OLD' \gset
INSERT INTO crm.opportunity (customer_id, name, owner_id) VALUES (:customer, 'Ct deal', :rep);
SELECT id AS deal FROM crm.opportunity WHERE name = 'Ct deal' \gset
INSERT INTO crm.opportunity (customer_id, name, owner_id) VALUES (:customer2, 'Ct deal of Rep2', :rep2);
SELECT id AS deal2 FROM crm.opportunity WHERE name = 'Ct deal of Rep2' \gset
INSERT INTO crm.opportunity (customer_id, name, owner_id)
SELECT id, 'Ct deal of another customer', :rep FROM crm.customer WHERE name = 'Ct other customer of Ct Rep';
SELECT id AS other_deal FROM crm.opportunity WHERE name = 'Ct deal of another customer' \gset

-- numbers come from a pattern a DBA edits; a fresh install ships HT-{yyyy}-{seq:5}
SELECT record_type, pattern FROM crm.number_pattern;
SET ROLE ct_admin;
UPDATE crm.number_pattern SET pattern = 'HT-{yyyy}-{seq}';
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.number_pattern SET pattern = 'HT-{yyyy}-{seq:4}-{seq:2}';
UPDATE crm.number_pattern SET pattern = repeat('A', 50) || '{seq:12}';
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.number_pattern SET pattern = 'CT-{seq:3}';
RESET ROLE;
SET ROLE ct_rep;
UPDATE crm.number_pattern SET pattern = 'X{seq:3}';
\echo :LAST_ERROR_SQLSTATE

-- a draft: numbered, with lines whose total is its amount
INSERT INTO crm.contract (customer_id, opportunity_id, name, signer_contact_id, signed_on, start_date, end_date)
VALUES (:customer, :deal, 'Ct first contract', :signer, '2026-12-01', '2027-01-01', '2027-12-31');
SELECT id AS first FROM crm.contract WHERE name = 'Ct first contract' \gset
SELECT number, status, amount, received_amount, owner_id = :rep AS mine FROM crm.contract WHERE id = :first;
-- today's date in the number, the counter starting again for it
RESET ROLE;
UPDATE crm.number_pattern SET pattern = 'CT-{yyyy}{mm}-{seq:3}';
SET ROLE ct_rep;
INSERT INTO crm.contract (customer_id, name) VALUES (:customer, 'Ct dated') RETURNING
	number = 'CT-' || to_char(now() AT TIME ZONE (SELECT timezone FROM crm.settings), 'YYYYMM') || '-001' AS numbered_today;
DELETE FROM crm.contract WHERE name = 'Ct dated';
INSERT INTO crm.contract_product (contract_id, product_id, quantity, discount) VALUES (:first, :licence, 10, 10), (:first, :service, 4, 0);
SELECT amount FROM crm.contract WHERE id = :first;
UPDATE crm.contract SET amount = 1 WHERE id = :first;
\echo :LAST_ERROR_SQLSTATE
-- a line with a product off the shelf, or a bad discount
INSERT INTO crm.contract_product (contract_id, product_id) VALUES (:first, :retired);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.contract_product (contract_id, product_id, discount) VALUES (:first, :service, 120);
\echo :LAST_ERROR_SQLSTATE
-- a given number is kept if unique
INSERT INTO crm.contract (number, customer_id, name) VALUES ('Ct-given-1', :customer, 'Ct given number');
INSERT INTO crm.contract (number, customer_id, name) VALUES ('Ct-given-1', :customer, 'Ct same number');
\echo :LAST_ERROR_SQLSTATE
-- bad input: dates out of order, another customer's deal or contact, a deal
-- or customer not seen, a negative amount
INSERT INTO crm.contract (customer_id, name, start_date, end_date) VALUES (:customer, 'Ct backwards', '2027-02-01', '2027-01-01');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.contract (customer_id, opportunity_id, name) VALUES (:customer, :other_deal, 'Ct wrong deal');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.contract (customer_id, opportunity_id, name) VALUES (:customer, :deal2, 'Ct hidden deal');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.contract (customer_id, name) VALUES (:customer2, 'Ct hidden customer');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.contract (customer_id, name, signer_contact_id) VALUES (:customer, 'Ct wrong signer', :signer2);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.contract (customer_id, name, amount) VALUES (:customer, 'Ct negative', -5);
\echo :LAST_ERROR_SQLSTATE
-- nor writes what crm keeps
UPDATE crm.contract SET received_amount = 1 WHERE id = :first;
\echo :LAST_ERROR_SQLSTATE
-- a draft without an amount is not submitted
SELECT crm.submit_contract(id) FROM crm.contract WHERE number = 'Ct-given-1';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- a colleague who only reads the customer and the deal does not sign the one
-- nor win the other
INSERT INTO crm.team_member (record_type, record_id, employee_id, access)
VALUES ('customer', :customer, :rep2, 'read'), ('opportunity', :deal, :rep2, 'read');
SET ROLE ct_rep2;
INSERT INTO crm.contract (customer_id, opportunity_id, name, amount, status) VALUES (:customer, :deal, 'Ct signed for you', 1, 'effective');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DELETE FROM crm.team_member WHERE employee_id = :rep2;

-- no payments nor invoices on a draft
SET ROLE ct_fin;
INSERT INTO crm.payment (contract_id, amount) VALUES (:first, 100);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- submitted: effective at once (no approval flow yet), the customer signed,
-- the deal won, the manager told; its terms and lines read-only after
SET ROLE ct_rep;
SELECT status, submitted_at IS NOT NULL AS submitted, effective_at IS NOT NULL AS effective FROM crm.submit_contract(:first);
RESET ROLE;
SELECT s.name AS customer_status, s.outcome FROM crm.customer c JOIN crm.customer_status s ON s.id = c.status_id WHERE c.id = :customer;
SELECT status, closed_on IS NOT NULL AS closed FROM crm.opportunity WHERE id = :deal;
SELECT e.name, n.event, n.title, n.body FROM crm.notification n JOIN crm.employee e ON e.id = n.recipient_id
 WHERE n.event = 'contract.effective' ORDER BY n.id;
SET ROLE ct_rep;
UPDATE crm.contract SET amount = 1 WHERE id = :first;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.contract SET status = 'void' WHERE id = :first;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.contract_product (contract_id, product_id) VALUES (:first, :licence);
\echo :LAST_ERROR_SQLSTATE
DELETE FROM crm.contract WHERE id = :first;
\echo :LAST_ERROR_SQLSTATE
-- a contract may name a won deal, never a lost one
INSERT INTO crm.opportunity (customer_id, name) VALUES (:customer, 'Ct lost deal');
SELECT id AS lost_deal FROM crm.opportunity WHERE name = 'Ct lost deal' \gset
SELECT status FROM crm.close_opportunity(:lost_deal, false, 'price');
INSERT INTO crm.contract (customer_id, opportunity_id, name, amount) VALUES (:customer, :lost_deal, 'Ct on a lost deal', 100);
\echo :LAST_ERROR_SQLSTATE

-- payment plans never add up to more than the contract
INSERT INTO crm.payment_plan (contract_id, period, amount, due_on) VALUES
	(:first, 1, 5000, '2027-01-31'), (:first, 2, 6500, '2027-06-30');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.payment_plan (contract_id, period, amount, due_on) VALUES
	(:first, 1, 5000, '2027-01-31'), (:first, 2, 6000, '2027-06-30');
INSERT INTO crm.payment_plan (contract_id, period, amount, due_on) VALUES (:first, 3, 1000, '2027-09-30');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.payment_plan (contract_id, period, amount, due_on) VALUES (:first, 3, 0, '2027-09-30');
\echo :LAST_ERROR_SQLSTATE
SELECT id AS plan1 FROM crm.payment_plan WHERE contract_id = :first AND period = 1 \gset
SELECT id AS plan2 FROM crm.payment_plan WHERE contract_id = :first AND period = 2 \gset
-- a salesperson does not enter payments
INSERT INTO crm.payment (contract_id, amount) VALUES (:first, 100);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- finance enters and submits payments: confirmed at once, counted on the
-- contract and plan; the owner and manager told
SET ROLE ct_fin;
INSERT INTO crm.payment (contract_id, plan_id, amount, method, received_on) VALUES (:first, :plan1, 3000, 'bank_transfer', '2027-01-20');
SELECT id AS pay1 FROM crm.payment WHERE contract_id = :first \gset
SELECT p.status, k.received_amount FROM crm.payment p, crm.contract k WHERE p.id = :pay1 AND k.id = :first;
SELECT status, confirmed_at IS NOT NULL AS confirmed FROM crm.submit_payment(:pay1);
SELECT received_amount, invoiced_amount FROM crm.contract WHERE id = :first;
SELECT period, received_amount FROM crm.payment_plan WHERE contract_id = :first ORDER BY period;
-- entered and submitted in one statement, as a plain UPDATE or INSERT does
INSERT INTO crm.payment (contract_id, plan_id, amount, status) VALUES (:first, :plan1, 2000, 'confirmed'), (:first, NULL, 500, 'confirmed');
SELECT received_amount FROM crm.contract WHERE id = :first;
-- bad input: over-collection, a plan of another contract, a zero amount, a
-- refund of more than was received; confirmed payments are read-only
INSERT INTO crm.payment (contract_id, amount, status) VALUES (:first, 6000, 'confirmed');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.payment (contract_id, plan_id, amount, status) VALUES (:first, :plan1, 1, 'confirmed');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.payment (contract_id, amount) VALUES (:first, 0);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.payment (contract_id, kind, amount, status) VALUES (:first, 'refund', 6000, 'confirmed');
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.payment SET amount = 1 WHERE id = :pay1;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM crm.payment WHERE id = :pay1;
\echo :LAST_ERROR_SQLSTATE
-- a refund is counted back
INSERT INTO crm.payment (contract_id, kind, amount, status) VALUES (:first, 'refund', 500, 'confirmed');
SELECT received_amount FROM crm.contract WHERE id = :first;
-- a refund without a plan takes back no plan's money
INSERT INTO crm.payment (contract_id, kind, amount, status) VALUES (:first, 'refund', 100, 'confirmed');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT e.name, n.event, n.title, n.body FROM crm.notification n JOIN crm.employee e ON e.id = n.recipient_id
 WHERE n.event = 'payment.confirmed' ORDER BY n.id LIMIT 2;

-- where the plans stand: derived from dates and what was received
SET ROLE ct_rep;
SELECT period, amount, received_amount, remaining, status, overdue_days > 0 AS overdue
  FROM crm.payment_plan_status WHERE contract_id = :first ORDER BY period;
-- invoices: requested by the salesperson, submitted, issued by finance; never
-- more than the contract, a tax number checked as a credit code
INSERT INTO crm.invoice (contract_id, amount, title, tax_number) VALUES (:first, 1000, 'Ct buyer', '91330100MA2B00000');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.invoice (contract_id, amount, title, invoice_type) VALUES (:first, 1000, 'Ct buyer', 'special');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO crm.invoice (contract_id, amount, title, tax_number) VALUES (:first, 6000, 'Ct buyer', crm.uscc_with_check('91330100MA2B94000'));
SELECT id AS inv1 FROM crm.invoice WHERE contract_id = :first \gset
SELECT status FROM crm.submit_invoice(:inv1);
SELECT invoiced_amount FROM crm.contract WHERE id = :first;
INSERT INTO crm.invoice (contract_id, amount, title, status) VALUES (:first, 5500, 'Ct buyer', 'pending');
\echo :LAST_ERROR_SQLSTATE
-- the requester does not issue it
SELECT crm.issue_invoice(:inv1, 'INV-001', '2027-01-25');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE ct_fin;
SELECT status, number, issued_on FROM crm.issue_invoice(:inv1, NULL, '2027-01-25');
\echo :LAST_ERROR_SQLSTATE
SELECT status, number, issued_on, issued_by IS NOT NULL AS by_finance FROM crm.issue_invoice(:inv1, 'INV-001', '2027-01-25');
RESET ROLE;
SET ROLE ct_rep;
UPDATE crm.invoice SET amount = 1 WHERE id = :inv1;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.invoice SET number = 'INV-FAKE', issued_on = '2020-01-01' WHERE id = :inv1;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT e.name, n.event, n.title FROM crm.notification n JOIN crm.employee e ON e.id = n.recipient_id
 WHERE n.event LIKE 'invoice.%' ORDER BY n.id;

-- a contract of another salesperson is not seen, nor paid on by them
SET ROLE ct_rep2;
SELECT count(*) AS seen FROM crm.contract WHERE id = :first;
SELECT crm.submit_contract(:first);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- a collaborator who only reads the contract sees its money, and is told they
-- may not move it
INSERT INTO crm.team_member (record_type, record_id, employee_id, access) VALUES ('contract', :first, :rep2, 'read');
SET ROLE ct_rep2;
SELECT count(*) AS payments_seen FROM crm.payment WHERE contract_id = :first;
SELECT crm.submit_payment(:pay1);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DELETE FROM crm.team_member WHERE employee_id = :rep2;
UPDATE crm.number_pattern SET pattern = 'HT-{yyyy}-{seq:5}';

-- what a test leaves: contracts in effect and their money go only as crm's own change
SET crm.change_source = 'system';
DELETE FROM crm.payment;
DELETE FROM crm.invoice;
DELETE FROM crm.contract;
RESET crm.change_source;
DELETE FROM crm.notification WHERE recipient_id IN (SELECT id FROM crm.employee WHERE name LIKE 'Ct %');
DELETE FROM crm.opportunity WHERE name LIKE 'Ct %';
DELETE FROM crm.customer WHERE name LIKE 'Ct %';
DELETE FROM crm.product WHERE code LIKE 'CT-%';
