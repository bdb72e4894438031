-- Recycling clocks follow department moves: a statement that moves several
-- departments leaves the clocks that moving them one by one leaves, and
-- recomputes them once, not once per department.
INSERT INTO crm.department (name) VALUES ('Pm North'), ('Pm South');
INSERT INTO crm.department (name, parent_id) SELECT 'Pm North ' || i, (SELECT id FROM crm.department WHERE name = 'Pm North')
  FROM generate_series(1, 3) i;
INSERT INTO crm.department (name, parent_id) SELECT 'Pm North 1a', id FROM crm.department WHERE name = 'Pm North 1';
INSERT INTO crm.employee (name, department_id)
SELECT 'Pm rep of ' || d.name, d.id FROM crm.department d WHERE d.name LIKE 'Pm North %';
INSERT INTO crm.recycle_rule (name, kind, days, department_ids)
SELECT 'Pm ' || v.name, 'no_follow_up', v.days, ARRAY[d.id]
  FROM (VALUES ('North', 30), ('South', 10)) v(name, days) JOIN crm.department d ON d.name = 'Pm ' || v.name;
INSERT INTO crm.customer (name, owner_id, uscc)
SELECT 'Pm customer of ' || e.name, e.id, crm.uscc_with_check('91330100MA2D' || lpad(e.id::text, 5, '0'))
  FROM crm.employee e WHERE e.name LIKE 'Pm rep of %';
CREATE TEMP VIEW pm_clocks AS
SELECT c.name AS customer, r.name AS rule, k.recycle_at - c.created_at AS after
  FROM crm.customer c JOIN crm.customer_recycling k ON k.customer_id = c.id LEFT JOIN crm.recycle_rule r ON r.id = k.rule_id
 WHERE c.name LIKE 'Pm %';
-- the kept clocks against what the rules say now
CREATE TEMP VIEW pm_stale AS
SELECT c.name FROM crm.customer c JOIN crm.recycle_deadline d ON d.customer_id = c.id
  LEFT JOIN crm.customer_recycling k ON k.customer_id = c.id
 WHERE c.name LIKE 'Pm %' AND (k.recycle_at, k.rule_id) IS DISTINCT FROM (d.recycle_at, d.rule_id);
SELECT * FROM pm_clocks ORDER BY 1;

-- one by one, under South
UPDATE crm.department SET parent_id = (SELECT id FROM crm.department WHERE name = 'Pm South') WHERE name = 'Pm North 1';
UPDATE crm.department SET parent_id = (SELECT id FROM crm.department WHERE name = 'Pm South') WHERE name = 'Pm North 2';
CREATE TEMP TABLE pm_single AS SELECT * FROM pm_clocks;
SELECT * FROM pm_single ORDER BY 1;
-- back, in one statement
UPDATE crm.department SET parent_id = (SELECT id FROM crm.department WHERE name = 'Pm North') WHERE name IN ('Pm North 1', 'Pm North 2');
SELECT * FROM pm_clocks ORDER BY 1;
-- and under South again in one statement, North 1a with its parent: the same clocks
-- as one by one, recomputed once
SET track_functions = 'pl';
BEGIN;
UPDATE crm.department SET parent_id = (SELECT id FROM crm.department WHERE name = 'Pm South')
 WHERE name IN ('Pm North 1', 'Pm North 2', 'Pm North 1a');
SELECT calls AS recomputations FROM pg_stat_xact_user_functions WHERE schemaname = 'crm' AND funcname = 'recompute_recycling';
COMMIT;
RESET track_functions;
(SELECT * FROM pm_clocks EXCEPT SELECT * FROM pm_single) UNION ALL (SELECT * FROM pm_single EXCEPT SELECT * FROM pm_clocks);
SELECT * FROM pm_stale;
-- North 1a alone back under North: its rep follows North's rule, North 1's stays under South
UPDATE crm.department SET parent_id = (SELECT id FROM crm.department WHERE name = 'Pm North') WHERE name = 'Pm North 1a';
SELECT * FROM pm_clocks ORDER BY 1;
-- employees moving in one statement
UPDATE crm.employee SET department_id = (SELECT id FROM crm.department WHERE name = 'Pm North 3')
 WHERE name IN ('Pm rep of Pm North 1', 'Pm rep of Pm North 2');
SELECT * FROM pm_clocks ORDER BY 1;
SELECT * FROM pm_stale;

DELETE FROM crm.customer WHERE name LIKE 'Pm %';
DELETE FROM crm.recycle_rule WHERE name LIKE 'Pm %';
