-- The demo company's contracts and their money (docs/contracts.md), loaded
-- after demo/opportunities.sql: a contract from the won deal in effect, with
-- its payment plans, a payment and an invoice issued, and a draft.
BEGIN;
-- contracts are scoped as customers are; 孙丽 (总经办) is also finance: every
-- contract in view, payments entered, invoices issued
INSERT INTO crm.role_scope (role_id, record_type, scope, departments)
SELECT role_id, 'contract', scope, departments FROM crm.role_scope WHERE record_type = 'customer';
INSERT INTO crm.role (name, description) VALUES ('财务', 'Enters payments and issues invoices on every contract');
INSERT INTO crm.role_scope (role_id, record_type, scope) SELECT id, 'contract', 'all' FROM crm.role WHERE name = '财务';
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a
  FROM (VALUES ('销售总监', '{contract.create,contract.edit,contract.delete,contract.transfer}'),
               ('区域经理', '{contract.create,contract.edit,contract.transfer}'),
               ('销售',     '{contract.create,contract.edit,contract.delete}'),
               ('财务',     '{payment.enter,invoice.issue}')) v(role, actions)
  JOIN crm.role r ON r.name = v.role, unnest(v.actions::text[]) a;
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e, crm.role r WHERE e.db_role = 'sun_li' AND r.name = '财务';

-- 刘洋's won deal becomes a contract, submitted: in effect
INSERT INTO crm.contract (customer_id, opportunity_id, name, signer_contact_id, signed_on, start_date, end_date, amount, owner_id)
SELECT o.customer_id, o.id, '电站运维平台合同', k.id, current_date - 8, current_date, current_date + 364, 350000, o.owner_id
  FROM crm.opportunity o JOIN crm.contact k ON k.customer_id = o.customer_id
 WHERE o.name = '电站运维平台';
INSERT INTO crm.payment_plan (contract_id, period, amount, due_on, method)
SELECT c.id, v.period, v.amount, current_date + v.days, 'bank_transfer'
  FROM crm.contract c, (VALUES (1, 105000, -1), (2, 140000, 90), (3, 105000, 270)) v(period, amount, days)
 WHERE c.name = '电站运维平台合同';
UPDATE crm.contract SET status = 'effective' WHERE name = '电站运维平台合同';
-- the first period partly paid, an invoice issued for it
INSERT INTO crm.payment (contract_id, plan_id, amount, received_on, method, status)
SELECT c.id, p.id, 80000, current_date - 2, 'bank_transfer', 'confirmed'
  FROM crm.contract c JOIN crm.payment_plan p ON p.contract_id = c.id AND p.period = 1 WHERE c.name = '电站运维平台合同';
INSERT INTO crm.invoice (contract_id, amount, title, tax_number, status, note)
SELECT c.id, 105000, cu.name, cu.uscc, 'pending', '第一期'
  FROM crm.contract c JOIN crm.customer cu ON cu.id = c.customer_id WHERE c.name = '电站运维平台合同';
UPDATE crm.invoice SET status = 'issued', number = '33012600001234', issued_on = current_date - 1 WHERE note = '第一期';

-- 王芳 drafts a contract for the MES deal, its lines copied from the deal's
INSERT INTO crm.contract (customer_id, opportunity_id, name, start_date, owner_id)
SELECT o.customer_id, o.id, 'MES 一期合同', current_date + 30, o.owner_id FROM crm.opportunity o WHERE o.name = 'MES 一期';
INSERT INTO crm.contract_product (contract_id, product_id, quantity, unit_price, discount)
SELECT c.id, l.product_id, l.quantity, l.unit_price, l.discount
  FROM crm.contract c JOIN crm.opportunity_product l ON l.opportunity_id = c.opportunity_id WHERE c.name = 'MES 一期合同';
COMMIT;
