-- The tour make demo prints: run it as 王芳 (wang_fang), then as 刘洋 (liu_yang), and
-- compare.  Three statements are refused on purpose; t/015_demo_tour.pl runs it.
SELECT crm.current_employee_id();                    -- who am I?
SELECT c.name, e.name AS owner FROM crm.customer c JOIN crm.employee e ON e.id = c.owner_id
 ORDER BY owner, c.name;                             -- she sees her region; he sees his own
SELECT rule, grants, detail FROM crm.explain_access('customer', 4);
                                                     -- why (customer 4 belongs to 刘洋;
                                                     -- try 9 too, a South customer)
SELECT c.name, f.method, f.content, f.created_at
  FROM crm.follow_up f JOIN crm.customer c ON c.id = f.record_id AND f.record_type = 'customer'
 ORDER BY f.created_at DESC LIMIT 5;                 -- the follow-up timeline, scoped alike
SELECT event, title, read_at FROM crm.notification;  -- my inbox: 刘洋 was given a customer
INSERT INTO crm.customer (name, uscc, phone)
SELECT '新客户' || e.name || '有限公司', crm.uscc_with_check('91330106MA2B0A1' || lpad(e.id::text, 2, '0')),
       '0571-123456' || lpad(e.id::text, 2, '0') FROM crm.employee e WHERE e.id = crm.current_employee_id();
                                                     -- yours: owner and author are filled in
INSERT INTO crm.customer (name, uscc, owner_id) VALUES ('代建客户', crm.uscc_with_check('91330106MA2B0A1Y8'), 1);
                                                     -- refused, with the reason
UPDATE crm.role_scope SET scope = 'all';             -- refused: needs admin.role
INSERT INTO crm.customer (name, uscc) VALUES ('广州珠江电子（集团）股份有限公司',
       crm.uscc_with_check('91440101MA5A6B7C9'));     -- refused: it is 杨磊's already
SELECT * FROM crm.find_duplicates('customer', '{"name": "广州珠江电子有限公司"}');
                                                     -- whose it is, without showing it
                                                     -- (similar names: only among yours)
SELECT name, pool_name, phone FROM crm.pool_customer;  -- the public pool, phones masked
SELECT name, days_left, reason FROM crm.customers_due_for_recycling;
                                                     -- 刘洋: one goes back to the pool soon
SELECT * FROM crm.department_forecast((SELECT department_id FROM crm.employee WHERE id = crm.current_employee_id()));
                                                     -- the deals expected to close, by month and
                                                     -- category: 王芳 sees her region's, 刘洋 his own
