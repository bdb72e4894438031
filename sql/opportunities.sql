-- Opportunities: stage sets and stages, moving deals, closing and reopening them
-- ids named in messages start at 90000 here, whatever other test files created
SELECT setval(s, 90000, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.opportunity_id_seq', 'crm.stage_id_seq', 'crm.stage_set_id_seq']) s \g /dev/null
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['opp_mgr', 'opp_rep', 'opp_rep2', 'opp_viewer', 'opp_proj', 'opp_admin'] LOOP
		EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
	END LOOP;
END $$;
-- Opp Sales > Opp East; Opp Projects sells through its own stages
INSERT INTO crm.department (name) VALUES ('Opp Sales'), ('Opp Projects');
INSERT INTO crm.department (name, parent_id) SELECT 'Opp East', id FROM crm.department WHERE name = 'Opp Sales';
INSERT INTO crm.employee (name, department_id, db_role)
SELECT e.name, d.id, e.role FROM (VALUES
	('Opp Manager', 'Opp Sales', 'opp_mgr'), ('Opp Rep', 'Opp East', 'opp_rep'), ('Opp Rep2', 'Opp East', 'opp_rep2'),
	('Opp Viewer', 'Opp Sales', 'opp_viewer'), ('Opp Proj', 'Opp Projects', 'opp_proj'),
	('Opp Admin', 'Opp Sales', 'opp_admin')) e(name, dept, role)
JOIN crm.department d ON d.name = e.dept;
UPDATE crm.employee e SET superior_id = (SELECT id FROM crm.employee WHERE db_role = 'opp_mgr')
 WHERE db_role IN ('opp_rep', 'opp_rep2');
INSERT INTO crm.role (name) VALUES ('Opp manager'), ('Opp sales'), ('Opp viewer'), ('Opp rules');
INSERT INTO crm.role_scope (role_id, record_type, scope)
SELECT r.id, t, v.scope FROM (VALUES ('Opp manager', 'department_tree'), ('Opp viewer', 'all')) v(role, scope)
  JOIN crm.role r ON r.name = v.role, unnest(ARRAY['customer', 'opportunity']) t;
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM (VALUES
	('Opp manager', '{customer.create,customer.edit,opportunity.create,opportunity.edit,opportunity.transfer}'),
	('Opp sales', '{customer.create,customer.edit,contact.create,opportunity.create,opportunity.edit,lead.create,lead.edit,lead.convert}'),
	('Opp rules', '{admin.rules}')) v(role, actions)
  JOIN crm.role r ON r.name = v.role, unnest(v.actions::text[]) a;
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM (VALUES ('opp_mgr', 'Opp manager'), ('opp_rep', 'Opp sales'), ('opp_rep2', 'Opp sales'),
	('opp_viewer', 'Opp viewer'), ('opp_proj', 'Opp sales'), ('opp_admin', 'Opp rules')) v(emp, role)
  JOIN crm.employee e ON e.db_role = v.emp JOIN crm.role r ON r.name = v.role;
BEGIN;
INSERT INTO crm.customer (name, kind, owner_id)
SELECT 'Opp customer of ' || e.name, 'individual', e.id FROM crm.employee e WHERE e.db_role IN ('opp_rep', 'opp_rep2', 'opp_proj');
INSERT INTO crm.contact (customer_id, name, mobile, owner_id)
SELECT c.id, 'Opp contact', '1390000' || lpad(c.id::text, 4, '0'), c.owner_id FROM crm.customer c WHERE c.name LIKE 'Opp customer of %';
COMMIT;
SELECT id AS rep_customer FROM crm.customer WHERE name = 'Opp customer of Opp Rep' \gset
SELECT id AS rep2_customer FROM crm.customer WHERE name = 'Opp customer of Opp Rep2' \gset
SELECT id AS proj_customer FROM crm.customer WHERE name = 'Opp customer of Opp Proj' \gset
INSERT INTO crm.lead (name, owner_id) SELECT 'Opp lead of Rep2', id FROM crm.employee WHERE db_role = 'opp_rep2';
SELECT id AS rep2_lead FROM crm.lead WHERE name = 'Opp lead of Rep2' \gset

-- a fresh install ships seed 004's stages, in Chinese
SELECT s.name AS stage_set, s.is_default, s.allow_backward, g.position, g.name, g.win_rate, g.forecast_category, g.outcome
  FROM crm.stage_set s JOIN crm.stage g ON g.stage_set_id = s.id ORDER BY g.position;
SELECT code, label FROM crm.dictionary WHERE kind = 'lost_reason' ORDER BY position;

-- the projects department sells through its own set, forward only
SET ROLE opp_admin;
BEGIN;
INSERT INTO crm.stage_set (name, allow_backward, departments)
SELECT '项目型流程', false, ARRAY[id] FROM crm.department WHERE name = 'Opp Projects';
INSERT INTO crm.stage (stage_set_id, position, name, win_rate, forecast_category, outcome)
SELECT s.id, v.* FROM crm.stage_set s, (VALUES (1, '立项', 20, 'pipeline', 'open'), (2, '招投标', 50, 'commit', 'open'),
	(3, '签约', 100, 'closed', 'won'), (4, '失败', 0, 'omitted', 'lost')) v(position, name, win_rate, category, outcome)
 WHERE s.name = '项目型流程';
COMMIT;
RESET ROLE;
SELECT id AS proj_first FROM crm.stage WHERE name = '立项' \gset
SELECT id AS proj_tender FROM crm.stage WHERE name = '招投标' \gset
SELECT id AS s_contact FROM crm.stage WHERE name = '初步接洽' \gset
SELECT id AS s_need FROM crm.stage WHERE name = '需求确认' \gset
SELECT id AS s_quote FROM crm.stage WHERE name = '方案报价' \gset
SELECT id AS s_nego FROM crm.stage WHERE name = '谈判审核' \gset
SELECT id AS s_won FROM crm.stage WHERE name = '赢单' \gset
SELECT id AS s_lost FROM crm.stage WHERE name = '输单' \gset

-- a new deal starts in its set's first stage, at its win rate; the projects
-- employee's deal follows the projects set; each starts its history
SET ROLE opp_rep;
INSERT INTO crm.opportunity (customer_id, name, amount, expected_close_on) VALUES (:rep_customer, 'ERP 一期', 200000, '2027-03-31');
SELECT id AS deal FROM crm.opportunity WHERE name = 'ERP 一期' \gset
RESET ROLE;
SET ROLE opp_proj;
INSERT INTO crm.opportunity (customer_id, name, amount) VALUES (:proj_customer, '园区项目', 900000);
RESET ROLE;
SELECT o.name, s.name AS stage, g.name AS stage_set, o.probability, o.status, o.closed_on, o.owner_id = e.id AS owned_by_writer
  FROM crm.opportunity o JOIN crm.stage g ON g.id = o.stage_id JOIN crm.stage_set s ON s.id = o.stage_set_id
  JOIN crm.employee e ON e.db_role IN ('opp_rep', 'opp_proj') AND e.id = o.created_by
 ORDER BY o.id;
SELECT o.name, c.from_stage_id, g.name AS to_stage, c.amount, c.probability, c.days_in_stage, c.changed_by = o.owner_id AS by_owner
  FROM crm.opportunity_stage_change c JOIN crm.opportunity o ON o.id = c.opportunity_id JOIN crm.stage g ON g.id = c.to_stage_id
 ORDER BY c.id;

-- a deal is for a customer its writer sees
SET ROLE opp_rep;
\set VERBOSITY default
\set SHOW_CONTEXT never
INSERT INTO crm.opportunity (customer_id, name) VALUES (:rep2_customer, 'Not my customer');
\echo :LAST_ERROR_SQLSTATE

-- an UPDATE of stage_id and crm.advance_stage move a deal alike: the stage's
-- win rate, a history row with the days spent in the stage left
UPDATE crm.opportunity SET stage_id = :s_need WHERE id = :deal;
SELECT name, probability, status FROM crm.advance_stage(:deal, :s_quote);
SELECT g.name AS stage, o.probability FROM crm.opportunity o JOIN crm.stage g ON g.id = o.stage_id WHERE o.id = :deal;
SELECT f.name AS from_stage, t.name AS to_stage, c.probability, c.days_in_stage >= 0 AS days_counted
  FROM crm.opportunity_stage_change c LEFT JOIN crm.stage f ON f.id = c.from_stage_id JOIN crm.stage t ON t.id = c.to_stage_id
 WHERE c.opportunity_id = :deal ORDER BY c.id;

-- the owner may override the probability; the next move takes the stage's
-- rate again, unless the same statement gives one
UPDATE crm.opportunity SET probability = 45 WHERE id = :deal;
SELECT probability FROM crm.opportunity WHERE id = :deal;
UPDATE crm.opportunity SET stage_id = :s_nego, probability = 70 WHERE id = :deal;
SELECT probability FROM crm.opportunity WHERE id = :deal;
-- a move is recorded once, in the stage history, which the deal's timeline
-- shows; the operation log keeps the other changes (the override above)
SELECT count(*) AS moves_in_oplog FROM crm.oplog WHERE record_type = 'opportunity' AND record_id = :deal AND changes ? 'stage_id';
SELECT kind, changes FROM crm.timeline WHERE record_type = 'opportunity' AND record_id = :deal AND kind <> 'insert' ORDER BY at, kind;
-- the default set allows moving back
SELECT g.name AS stage, o.probability FROM crm.advance_stage(:deal, :s_quote) o JOIN crm.stage g ON g.id = o.stage_id;

-- a stage of another set is refused, naming both sets
UPDATE crm.opportunity SET stage_id = :proj_tender WHERE id = :deal;
\echo :LAST_ERROR_SQLSTATE
-- an unknown stage, a probability over 100, a lost reason on an open deal
UPDATE crm.opportunity SET stage_id = 999999 WHERE id = :deal;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.opportunity SET probability = 120 WHERE id = :deal;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.opportunity SET lost_reason = 'price' WHERE id = :deal;
\echo :LAST_ERROR_SQLSTATE
-- (nor does a new deal, or a move to an open stage, drop a reason it is given)
INSERT INTO crm.opportunity (customer_id, name, lost_reason) VALUES (:rep_customer, 'Reason without a loss', 'price');
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.opportunity SET stage_id = :s_need, lost_reason = 'price' WHERE id = :deal;
\echo :LAST_ERROR_SQLSTATE
-- the status, the clock and the history are crm's
UPDATE crm.opportunity SET status = 'won' WHERE id = :deal;
UPDATE crm.opportunity SET stage_entered_at = now() - interval '1 year' WHERE id = :deal;
INSERT INTO crm.opportunity_stage_change (opportunity_id, to_stage_id, amount, probability) VALUES (:deal, :s_won, 1, 100);
UPDATE crm.opportunity_stage_change SET changed_at = now() - interval '1 year';
-- a deal stays in its set and in a stage; its lead is one the writer sees; its
-- amount is a number
UPDATE crm.opportunity SET stage_set_id = (SELECT stage_set_id FROM crm.stage WHERE id = :proj_first) WHERE id = :deal;
UPDATE crm.opportunity SET stage_id = NULL WHERE id = :deal;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.opportunity SET lead_id = :rep2_lead WHERE id = :deal;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.opportunity SET amount = 'NaN' WHERE id = :deal;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- the projects set moves forward only
SET ROLE opp_proj;
SELECT id AS proj_deal FROM crm.opportunity WHERE name = '园区项目' \gset
SELECT g.name FROM crm.advance_stage(:proj_deal, :proj_tender) o JOIN crm.stage g ON g.id = o.stage_id;
UPDATE crm.opportunity SET stage_id = :proj_first WHERE id = :proj_deal;
\echo :LAST_ERROR_SQLSTATE
-- nor does closing and reopening take it back
SELECT status FROM crm.close_opportunity(:proj_deal, false);
SELECT crm.reopen_opportunity(:proj_deal, :proj_first);
\echo :LAST_ERROR_SQLSTATE
SELECT g.name, o.status FROM crm.reopen_opportunity(:proj_deal) o JOIN crm.stage g ON g.id = o.stage_id;
RESET ROLE;

-- closing: lost with a reason from the dictionary, then read-only, a move to an
-- open stage included (that is crm.reopen_opportunity's)
SET ROLE opp_rep;
SELECT name, status, probability, lost_reason, closed_on = (now() AT TIME ZONE 'Asia/Shanghai')::date AS closed_today
  FROM crm.close_opportunity(:deal, false, 'nonsense');
SELECT name, status, probability, lost_reason, closed_on = (now() AT TIME ZONE 'Asia/Shanghai')::date AS closed_today
  FROM crm.close_opportunity(:deal, false, 'price');
UPDATE crm.opportunity SET name = 'ERP 一期 (改)' WHERE id = :deal;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.opportunity SET stage_id = :s_won WHERE id = :deal;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.opportunity SET stage_id = NULL WHERE id = :deal;
\echo :LAST_ERROR_SQLSTATE
SELECT crm.advance_stage(:deal, :s_need);
\echo :LAST_ERROR_SQLSTATE
SELECT crm.close_opportunity(:deal, true, 'price');
\echo :LAST_ERROR_SQLSTATE
-- reopened into the stage it was closed from, without its lost reason
SELECT g.name AS stage, o.status, o.probability, o.lost_reason, o.closed_on
  FROM crm.reopen_opportunity(:deal) o JOIN crm.stage g ON g.id = o.stage_id;
SELECT crm.reopen_opportunity(:deal);
\echo :LAST_ERROR_SQLSTATE
-- won: probability 100, and the whole path in the history
SELECT status, probability FROM crm.close_opportunity(:deal, true);
SELECT string_agg(t.name, ' → ' ORDER BY c.id) AS path FROM crm.opportunity_stage_change c
  JOIN crm.stage t ON t.id = c.to_stage_id WHERE c.opportunity_id = :deal;
RESET ROLE;

-- who may change a deal: the viewer sees every deal but has no opportunity.edit;
-- another salesperson does not see it, nor its history
SET ROLE opp_viewer;
SELECT count(*) AS deals_seen FROM crm.opportunity WHERE name IN ('ERP 一期', '园区项目');
SELECT crm.reopen_opportunity(:deal);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE opp_rep2;
SELECT count(*) AS deals_seen FROM crm.opportunity WHERE id = :deal;
SELECT count(*) AS history_seen FROM crm.opportunity_stage_change WHERE opportunity_id = :deal;
SELECT crm.advance_stage(:deal, :s_need);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- a closed deal still changes hands (a transfer, a leaver's handover)
SET ROLE opp_mgr;
UPDATE crm.opportunity SET owner_id = (SELECT id FROM crm.employee WHERE db_role = 'opp_rep2') WHERE id = :deal;
SELECT e.db_role AS owner, o.status FROM crm.opportunity o JOIN crm.employee e ON e.id = o.owner_id WHERE o.id = :deal;
RESET ROLE;

-- stage rules, each named: a win rate outside 0 to 100, a won stage that is
-- not 100 % closed, an open stage forecast as closed
SET ROLE opp_admin;
UPDATE crm.stage SET win_rate = 120 WHERE id = :s_need;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.stage SET win_rate = 90 WHERE id = :s_won;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.stage SET forecast_category = 'closed' WHERE id = :s_nego;
\echo :LAST_ERROR_SQLSTATE
-- a set without a won stage, with two won stages, with an open stage after the won one: at commit
BEGIN;
INSERT INTO crm.stage_set (name) VALUES ('No won');
INSERT INTO crm.stage (stage_set_id, position, name, win_rate, forecast_category, outcome)
SELECT id, 1, 'Open', 10, 'pipeline', 'open' FROM crm.stage_set WHERE name = 'No won'
UNION ALL SELECT id, 2, 'Lost', 0, 'omitted', 'lost' FROM crm.stage_set WHERE name = 'No won';
COMMIT;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
INSERT INTO crm.stage (stage_set_id, position, name, win_rate, forecast_category, outcome) VALUES ((SELECT stage_set_id FROM crm.stage WHERE id = :proj_first), 9, '追加', 40, 'pipeline', 'open');
COMMIT;
\echo :LAST_ERROR_SQLSTATE
-- a stage in use is not deleted, nor does it change its outcome
DELETE FROM crm.stage WHERE id = :s_quote;
\echo :LAST_ERROR_SQLSTATE
UPDATE crm.stage SET outcome = 'lost', win_rate = 0, forecast_category = 'omitted' WHERE id = :proj_tender;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- deleting a stage moves its deals in one statement, and its history counts as the replacement's
SET ROLE opp_rep;
SELECT crm.delete_stage(:proj_tender, :proj_first);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE opp_admin;
SELECT crm.delete_stage(:proj_tender, (SELECT id FROM crm.stage WHERE name = '签约'));
\echo :LAST_ERROR_SQLSTATE
SELECT crm.delete_stage(:proj_tender, :proj_first) AS moved;
RESET ROLE;
SELECT g.name AS stage, o.probability, o.status FROM crm.opportunity o JOIN crm.stage g ON g.id = o.stage_id WHERE o.id = :proj_deal;
SELECT string_agg(coalesce(f.name, '·') || ' → ' || t.name, ', ' ORDER BY c.id) AS history
  FROM crm.opportunity_stage_change c LEFT JOIN crm.stage f ON f.id = c.from_stage_id JOIN crm.stage t ON t.id = c.to_stage_id
 WHERE c.opportunity_id = :proj_deal;
-- a statement that failed after changing a stage leaves nothing of it behind:
-- the next move sees the stage as it is (a session's cached stages load again)
UPDATE crm.stage SET name = name WHERE false;
WITH s AS (UPDATE crm.stage SET outcome = 'open', win_rate = 90, forecast_category = 'commit' WHERE name = '签约' RETURNING id)
UPDATE crm.opportunity o SET name = o.name WHERE o.id = :proj_deal AND EXISTS (SELECT FROM s) RETURNING o.id / 0;
BEGIN;
UPDATE crm.opportunity SET stage_id = (SELECT id FROM crm.stage WHERE name = '签约') WHERE id = :proj_deal;
SELECT g.name AS stage, o.status, o.probability FROM crm.opportunity o JOIN crm.stage g ON g.id = o.stage_id WHERE o.id = :proj_deal;
ROLLBACK;
-- nor one rolled back to a savepoint
BEGIN;
UPDATE crm.stage SET name = name WHERE false;
SAVEPOINT before;
WITH s AS (UPDATE crm.stage SET outcome = 'open', win_rate = 90, forecast_category = 'commit' WHERE name = '签约' RETURNING id)
UPDATE crm.opportunity o SET name = o.name WHERE o.id = :proj_deal AND EXISTS (SELECT FROM s) RETURNING o.id / 0;
ROLLBACK TO SAVEPOINT before;
UPDATE crm.opportunity SET stage_id = (SELECT id FROM crm.stage WHERE name = '签约') WHERE id = :proj_deal;
SELECT g.name AS stage, o.status, o.probability FROM crm.opportunity o JOIN crm.stage g ON g.id = o.stage_id WHERE o.id = :proj_deal;
ROLLBACK;
-- only administrators of rules write stages
SET ROLE opp_rep;
UPDATE crm.stage SET win_rate = 15 WHERE id = :s_contact;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
\set VERBOSITY terse

-- the owner's superior heard of the new deal, then of it lost and won, in
-- Chinese; the owner closed it and is not told what they did
SELECT e.db_role AS recipient, n.event, n.title, n.body, n.record_type, n.record_id = :deal AS about_the_deal
  FROM crm.notification n JOIN crm.employee e ON e.id = n.recipient_id
 WHERE n.event LIKE 'opportunity.%' ORDER BY n.id;

-- a lead converts into a customer and the deal it was about (undone after:
-- a converted lead keeps its customer, which later files delete)
BEGIN;
SET ROLE opp_rep;
INSERT INTO crm.lead (name, company, uscc, mobile, requirement, expected_amount)
VALUES ('吴磊', '常州龙城机电有限公司', crm.uscc_with_check('91320400MA1Q5X6Y7'), '13700005031', '产线数据采集', 260000);
SELECT crm.convert_lead(id, with_opportunity => true) IS NOT NULL AS converted FROM crm.lead WHERE name = '吴磊';
SELECT o.name, o.amount, o.requirement, g.name AS stage, o.owner_id = l.owner_id AS lead_owner_s,
       o.customer_id = l.customer_id AS for_its_customer
  FROM crm.opportunity o JOIN crm.lead l ON l.id = o.lead_id JOIN crm.stage g ON g.id = o.stage_id WHERE l.name = '吴磊';
ROLLBACK;

-- a customer's deals keep it (refused at the end of the statement, naming it);
-- a deal deleted takes its history along
\set VERBOSITY default
DELETE FROM crm.customer WHERE id = :rep_customer;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
DELETE FROM crm.opportunity WHERE name IN ('ERP 一期', '园区项目');
-- (and so do this file's customers: later files count customers)
DELETE FROM crm.customer WHERE name LIKE 'Opp customer of %';
SELECT count(*) AS history_left FROM crm.opportunity_stage_change c
 WHERE NOT EXISTS (SELECT FROM crm.opportunity o WHERE o.id = c.opportunity_id);
