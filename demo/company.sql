-- The demo company: 杭州云帆科技有限公司 (Hangzhou Yunfan Technology), a B2B software
-- vendor with a sales force in two regions.  Loaded once into an empty crm_demo.
\set ON_ERROR_STOP on
BEGIN;

-- Login roles, one per employee (cluster-wide, so created only if missing).
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['zhang_wei', 'li_na', 'wang_fang', 'liu_yang', 'chen_jing', 'yang_lei',
	                         'zhao_min', 'huang_li', 'zhou_jie', 'wu_hao', 'xu_ming', 'sun_li']
	LOOP
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
		END IF;
	END LOOP;
END
$$;
GRANT crm_admin TO sun_li;   -- may also retime jobs

INSERT INTO crm.department (name, parent_id) VALUES ('总经办', NULL);
INSERT INTO crm.department (name, parent_id)
SELECT v.name, d.id FROM crm.department d, (VALUES ('销售部'), ('市场部'), ('客户成功部')) v(name)
 WHERE d.name = '总经办';
INSERT INTO crm.department (name, parent_id)
SELECT v.name, d.id FROM crm.department d, (VALUES ('华东大区'), ('华南大区')) v(name)
 WHERE d.name = '销售部';

-- name, login role, department, superior's role, mobile
INSERT INTO crm.employee (name, db_role, department_id, mobile, superior_id)
SELECT e.name, e.role, d.id, e.mobile, NULL
  FROM (VALUES
	('张伟', 'zhang_wei', '总经办',     '13900000001'),
	('李娜', 'li_na',     '销售部',     '13900000002'),
	('王芳', 'wang_fang', '华东大区',   '13900000003'),
	('刘洋', 'liu_yang',  '华东大区',   '13900000004'),
	('陈静', 'chen_jing', '华东大区',   '13900000005'),
	('杨磊', 'yang_lei',  '华南大区',   '13900000006'),
	('赵敏', 'zhao_min',  '华南大区',   '13900000007'),
	('黄丽', 'huang_li',  '华南大区',   '13900000008'),
	('周杰', 'zhou_jie',  '市场部',     '13900000009'),
	('吴昊', 'wu_hao',    '市场部',     '13900000010'),
	('徐明', 'xu_ming',   '客户成功部', '13900000011'),
	('孙丽', 'sun_li',    '总经办',     '13900000012')
  ) e(name, role, dept, mobile)
  JOIN crm.department d ON d.name = e.dept
 ORDER BY e.mobile;

UPDATE crm.employee e SET superior_id = s.id
  FROM (VALUES ('li_na', 'zhang_wei'), ('wang_fang', 'li_na'), ('liu_yang', 'wang_fang'),
               ('chen_jing', 'wang_fang'), ('yang_lei', 'li_na'), ('zhao_min', 'yang_lei'),
               ('huang_li', 'yang_lei'), ('zhou_jie', 'zhang_wei'), ('wu_hao', 'zhou_jie'),
               ('xu_ming', 'zhang_wei'), ('sun_li', 'zhang_wei')) v(emp, sup)
  JOIN crm.employee s ON s.db_role = v.sup
 WHERE e.db_role = v.emp;
UPDATE crm.department d SET leader_id = e.id
  FROM (VALUES ('总经办', 'zhang_wei'), ('销售部', 'li_na'), ('华东大区', 'wang_fang'),
               ('华南大区', 'yang_lei'), ('市场部', 'zhou_jie'), ('客户成功部', 'xu_ming')) v(dept, leader)
  JOIN crm.employee e ON e.db_role = v.leader
 WHERE d.name = v.dept;

-- Roles as the seeds describe them, with different data scopes.
INSERT INTO crm.role (name, is_super, description) VALUES
	('超级管理员', true,  'Everything'),
	('销售总监',   false, 'All customers and leads'),
	('区域经理',   false, 'Their region''s customers and leads'),
	('销售',       false, 'Their own customers and leads'),
	('市场',       false, 'Their department''s leads, their own customers'),
	('客服',       false, 'Reads the customers of both sales regions'),
	('行政',       false, 'Organisation and roles');
INSERT INTO crm.role_scope (role_id, record_type, scope, departments)
SELECT r.id, v.record_type, v.scope,
       CASE WHEN v.scope = 'custom' THEN (SELECT array_agg(id ORDER BY id) FROM crm.department WHERE name IN ('华东大区', '华南大区')) END
  FROM (VALUES ('销售总监', 'customer', 'all'), ('销售总监', 'lead', 'all'),
               ('区域经理', 'customer', 'department_tree'), ('区域经理', 'lead', 'department_tree'),
               ('销售', 'customer', 'self'), ('销售', 'lead', 'self'),
               ('市场', 'lead', 'department'), ('市场', 'customer', 'self'),
               ('客服', 'customer', 'custom')) v(role, record_type, scope)
  JOIN crm.role r ON r.name = v.role;
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a
  FROM (VALUES ('销售总监', '{customer.create,customer.edit,customer.delete,customer.transfer,customer.export,contact.create,contact.edit,contact.delete,lead.create,lead.edit,lead.transfer,lead.convert}'),
               ('区域经理', '{customer.create,customer.edit,customer.transfer,contact.create,contact.edit,lead.create,lead.edit,lead.transfer,lead.convert}'),
               ('销售',     '{customer.create,customer.edit,contact.create,contact.edit,lead.create,lead.edit,lead.convert}'),
               ('市场',     '{lead.create,lead.edit,lead.transfer}'),
               ('客服',     '{customer.edit,contact.edit}'),
               ('行政',     '{admin.org,admin.role}')) v(role, actions)
  JOIN crm.role r ON r.name = v.role, unnest(v.actions::text[]) a;
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id
  FROM (VALUES ('zhang_wei', '超级管理员'), ('li_na', '销售总监'), ('wang_fang', '区域经理'),
               ('yang_lei', '区域经理'), ('liu_yang', '销售'), ('chen_jing', '销售'), ('zhao_min', '销售'),
               ('huang_li', '销售'), ('zhou_jie', '市场'), ('wu_hao', '市场'), ('xu_ming', '客服'),
               ('sun_li', '行政')) v(emp, role)
  JOIN crm.employee e ON e.db_role = v.emp JOIN crm.role r ON r.name = v.role;

-- customers: name, kind, USCC (check digit computed), phone, industry, source, owner
INSERT INTO crm.customer (name, kind, uscc, phone, industry, source, owner_id, created_at)
SELECT c.name, c.kind, c.uscc, c.phone, c.industry, c.source, e.id,
       now() - (c.age || ' days')::interval
  FROM (SELECT v.*, row_number() OVER () AS n FROM (VALUES
	('杭州西湖茶业有限公司', 'company', crm.uscc_with_check('91330106MA2B0A1X2'), '0571-88001001', 'agriculture_food', 'exhibition', 'wang_fang', 210),
	('宁波港联物流有限公司', 'company', crm.uscc_with_check('91330201MA2C3D4E5'), '0574-87002002', 'logistics', 'website', 'wang_fang', 180),
	('苏州丝路纺织有限公司', 'company', crm.uscc_with_check('91320505MA1M2N3P4'), '0512-66003003', 'manufacturing', 'referral', 'wang_fang', 150),
	('上海浦江精密机械有限公司', 'company', crm.uscc_with_check('91310115MA1H7J8K9'), '021-58004004', 'manufacturing', 'phone', 'liu_yang', 120),
	('无锡太湖新能源有限公司', 'company', crm.uscc_with_check('91320211MA1R5T6T7'), '0510-85005005', 'energy_chemicals', 'website', 'liu_yang', 90),
	('南京金陵医疗器械有限公司', 'company', crm.uscc_with_check('91320114MA1W8X9Y0'), '025-52006006', 'healthcare', 'exhibition', 'chen_jing', 60),
	('合肥科大智能有限公司', 'company', crm.uscc_with_check('91340100MA2N1P2Q3'), '0551-63007007', 'it', 'referral', 'chen_jing', 45),
	('陈先生（个人）', 'individual', NULL, '13812340008', NULL, 'phone', 'chen_jing', 20),
	('广州珠江电子有限公司', 'company', crm.uscc_with_check('91440101MA5A6B7C8'), '020-83008008', 'manufacturing', 'website', 'yang_lei', 200),
	('深圳前海跨境贸易有限公司', 'company', crm.uscc_with_check('91440300MA5F9G0H1'), '0755-86009009', 'wholesale_retail', 'exhibition', 'yang_lei', 160),
	('佛山顺德家电有限公司', 'company', crm.uscc_with_check('91440606MA4K2L3M4'), '0757-22010010', 'manufacturing', 'phone', 'zhao_min', 100),
	('东莞松山湖模具有限公司', 'company', crm.uscc_with_check('91441900MA4P5Q6R7'), '0769-22011011', 'manufacturing', 'referral', 'zhao_min', 75),
	('厦门鹭岛海产有限公司', 'company', crm.uscc_with_check('91350200MA2T8U9W0'), '0592-55012012', 'agriculture_food', 'website', 'huang_li', 40),
	('林女士（个人）', 'individual', NULL, '13912340013', NULL, 'exhibition', 'huang_li', 10),
	('杭州钱塘数据科技有限公司', 'company', crm.uscc_with_check('91330104MA2X1Y2W3'), '0571-86013013', 'it', 'exhibition', 'zhou_jie', 30),
	('温州瓯江鞋业有限公司', 'company', crm.uscc_with_check('91330302MA2B4C5D6'), '0577-88014014', 'manufacturing', 'exhibition', 'wu_hao', 25),
	('金华义乌小商品有限公司', 'company', crm.uscc_with_check('91330782MA2F7G8H9'), '0579-85015015', 'wholesale_retail', 'website', 'xu_ming', 300),
	('绍兴黄酒集团有限公司', 'company', crm.uscc_with_check('91330600MA2K1L2M3'), '0575-85016016', 'agriculture_food', 'referral', 'li_na', 365)
  ) v(name, kind, uscc, phone, industry, source, owner, age)) c
  JOIN crm.employee e ON e.db_role = c.owner
 ORDER BY c.n;   -- ids in list order: the tour names customer 4 and 9

-- one decision maker per customer; individuals are their own contact
INSERT INTO crm.contact (customer_id, name, mobile, email, is_decision_maker, owner_id)
SELECT c.id,
       CASE WHEN c.kind = 'individual' THEN c.name ELSE (ARRAY['王','李','张','刘','陈','杨'])[c.id % 6 + 1] || '总' END,
       '1390000' || lpad((1000 + c.id)::text, 4, '0'),
       CASE WHEN c.kind = 'company' THEN 'boss' || c.id || '@customer.example' END,
       true, c.owner_id
  FROM crm.customer c;

INSERT INTO crm.lead (name, company, mobile, owner_id, status)
SELECT l.name, l.company, l.mobile, e.id, l.status
  FROM (VALUES
	('赵磊', '嘉兴南湖电气有限公司', '13700000001', 'wang_fang', 'new'),
	('钱芳', '湖州丝绸之路有限公司', '13700000002', 'wang_fang', 'following'),
	('孙强', '常州龙城机电有限公司', '13700000003', 'liu_yang',  'following'),
	('李静', '扬州瘦西湖文旅有限公司', '13700000004', 'chen_jing', 'new'),
	('周涛', '珠海横琴科技有限公司', '13700000005', 'yang_lei',  'new'),
	('吴倩', '中山火炬医药有限公司', '13700000006', 'zhao_min',  'invalid'),
	('郑浩', '汕头潮汕食品有限公司', '13700000007', 'huang_li',  'following'),
	('王丹', '台州椒江汽配有限公司', '13700000008', 'zhou_jie',  'new'),
	('冯杰', '丽水青田石雕有限公司', '13700000009', 'wu_hao',    'new')
  ) l(name, company, mobile, owner, status)
  JOIN crm.employee e ON e.db_role = l.owner;

-- two or three follow-ups per customer, written by its owner over recent weeks
INSERT INTO crm.follow_up (record_type, record_id, method, content, next_contact_at, created_by, created_at)
SELECT 'customer', c.id, m.method, m.content || '（' || c.name || '）',
       CASE WHEN m.n = 1 THEN now() + (c.id % 7 + 1) * interval '1 day' END,
       c.owner_id, now() - ((m.n * 9 + c.id % 5) || ' days')::interval
  FROM crm.customer c
  JOIN (VALUES (1, 'phone', '电话沟通需求，约定下周演示'),
               (2, 'visit', '上门拜访，了解采购流程'),
               (3, 'email', '发送报价单和案例资料')) m(n, method, content)
    ON m.n <= 2 + c.id % 2;
INSERT INTO crm.follow_up (record_type, record_id, method, content, created_by)
SELECT 'lead', l.id, 'phone', '首次电话联系：' || l.company, l.owner_id
  FROM crm.lead l WHERE l.status <> 'invalid';

UPDATE crm.customer c SET last_follow_up_at = f.last
  FROM (SELECT record_id, max(created_at) AS last FROM crm.follow_up
         WHERE record_type = 'customer' GROUP BY record_id) f
 WHERE f.record_id = c.id;

-- duplicate rules (docs/duplicates.md): a company is entered once, a shared phone is flagged
INSERT INTO crm.dedupe_rule (name, record_type, customer_kind, fields, action, against) VALUES
	('公司名称查重', 'customer', 'company', '{name}', 'block', '{customers, pool, leads}'),
	('统一社会信用代码查重', 'customer', NULL, '{uscc}', 'block', '{customers, pool, leads}'),
	('电话查重', 'customer', NULL, '{phone}', 'warn', '{customers, contacts}'),
	('线索手机查重', 'lead', NULL, '{mobile}', 'block', '{customers, leads, contacts}');

-- the public pool (docs/pool.md): a company-wide 公海 and one for the South
-- region that 杨磊 runs; salespeople claim up to 3 a day and hold up to 30
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a
  FROM (VALUES ('销售总监', '{pool.claim,pool.release,pool.assign}'), ('区域经理', '{pool.claim,pool.release}'),
               ('销售', '{pool.claim,pool.release}')) v(role, actions)
  JOIN crm.role r ON r.name = v.role, unnest(v.actions::text[]) a;
UPDATE crm.settings SET daily_claim_limit = 3, holding_limit = 30;
INSERT INTO crm.pool (name, is_default, open_to_all, release_cooldown_days, recycle_cooldown_days,
                      freeze_after_releases, freeze_period_days, freeze_days)
VALUES ('公海', true, true, 7, 15, 5, 30, 7), ('华南公海', false, false, 7, 15, NULL, 30, 7);
INSERT INTO crm.pool_member (pool_id, department_id, employee_id, is_admin)
SELECT p.id, d.id, NULL::bigint, false FROM crm.pool p, crm.department d WHERE p.name = '华南公海' AND d.name = '华南大区'
UNION ALL
SELECT p.id, NULL, e.id, true FROM crm.pool p, crm.employee e WHERE p.name = '华南公海' AND e.db_role = 'yang_lei'
UNION ALL
SELECT p.id, NULL, e.id, true FROM crm.pool p, crm.employee e WHERE p.name = '公海' AND e.db_role = 'li_na';
-- seed 000's two rules (seed 002 gives the second to the South region): 15 days
-- without a follow-up while still early on, a year without signing
INSERT INTO crm.recycle_rule (name, kind, days, status_ids, remind_days_before)
SELECT '15天未跟进', 'no_follow_up', 15, ARRAY(SELECT id FROM crm.customer_status WHERE position <= 2), 5;
INSERT INTO crm.recycle_rule (name, kind, days, exempt_status_ids, department_ids, remind_days_before, pool_id)
SELECT '一年未成交', 'no_deal', 365, ARRAY(SELECT id FROM crm.customer_status WHERE position = 4),
       ARRAY(SELECT id FROM crm.department WHERE name = '华南大区'), 30, (SELECT id FROM crm.pool WHERE name = '华南公海');
-- two customers wait in the pools
UPDATE crm.customer SET owner_id = (SELECT id FROM crm.pool WHERE name = '公海') WHERE name = '金华义乌小商品有限公司';
UPDATE crm.customer SET owner_id = (SELECT id FROM crm.pool WHERE name = '华南公海') WHERE name = '佛山顺德家电有限公司';

-- 王芳 hands 苏州丝路 to 刘洋, keeping herself on its team: he finds it in his inbox
SET LOCAL ROLE wang_fang;
SELECT crm.transfer('customer', ARRAY(SELECT id FROM crm.customer WHERE name = '苏州丝路纺织有限公司'),
                    (SELECT id FROM crm.employee WHERE db_role = 'liu_yang')) \g /dev/null
RESET ROLE;

COMMIT;
