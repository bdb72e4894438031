-- The demo company's products, a competitor and deals (docs/products.md,
-- docs/opportunities.md), loaded after demo/company.sql:
-- crm 0.1, which the update test loads company.sql into, had no opportunities.
BEGIN;
INSERT INTO crm.product (code, name, category, unit, list_price, description) VALUES
	('CRM-STD', '云帆CRM标准版', 'software', 'license', 12000, '销售自动化、客户管理，按用户授权'),
	('MES-BASE', '云帆MES基础版', 'software', 'set', 180000, '生产执行：工单、报工、质检'),
	('SRV-IMPL', '实施服务', 'service', 'person_day', 3000, '需求调研、配置、数据迁移与上线'),
	('HW-SCAN', '工业扫码枪', 'hardware', 'piece', 800, '产线报工用');
INSERT INTO crm.competitor (name, strengths, weaknesses, website)
VALUES ('纷享销客', '品牌知名度高，移动端体验好', '价格高，定制周期长', 'https://www.fxiaoke.com');
-- opportunities (docs/opportunities.md): scoped as customers are, deals in every
-- stage of the standard set; their owners' superiors hear of the new ones
INSERT INTO crm.role_scope (role_id, record_type, scope, departments)
SELECT role_id, 'opportunity', scope, departments FROM crm.role_scope WHERE record_type = 'customer';
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a
  FROM (VALUES ('销售总监', '{opportunity.create,opportunity.edit,opportunity.delete,opportunity.transfer,opportunity.import,opportunity.export}'),
               ('区域经理', '{opportunity.create,opportunity.edit,opportunity.transfer,opportunity.import,opportunity.export}'),
               ('销售',     '{opportunity.create,opportunity.edit}')) v(role, actions)
  JOIN crm.role r ON r.name = v.role, unnest(v.actions::text[]) a;
INSERT INTO crm.opportunity (customer_id, name, amount, expected_close_on, stage_id, lost_reason, owner_id, requirement)
SELECT c.id, v.deal, v.amount, current_date + v.days, g.id, v.reason, c.owner_id, v.need
  FROM (VALUES
	('杭州西湖茶业有限公司', '茶园溯源系统', 180000, 75, '初步接洽', NULL, '茶叶批次从采摘到销售可追溯'),
	('宁波港联物流有限公司', '仓储管理平台', 420000, 60, '需求确认', NULL, '三个仓库的出入库与库位管理'),
	('苏州丝路纺织有限公司', '排产优化', 260000, 45, '方案报价', NULL, '织机排产与订单交期预测'),
	('上海浦江精密机械有限公司', 'MES 一期', 680000, 20, '谈判审核', NULL, '两条产线的制造执行系统'),
	('无锡太湖新能源有限公司', '电站运维平台', 350000, -10, '赢单', NULL, '光伏电站巡检与告警'),
	('南京金陵医疗器械有限公司', '经销商门户', 150000, -5, '输单', 'competitor', '经销商订货与返利'),
	('合肥科大智能有限公司', '数据中台', 520000, 90, '方案报价', NULL, '各业务系统数据汇总与报表'),
	('广州珠江电子有限公司', '供应链协同', 300000, 50, '需求确认', NULL, '与上游供应商共享预测与库存')) v(customer, deal, amount, days, stage, reason, need)
  JOIN crm.customer c ON c.name = v.customer JOIN crm.stage g ON g.name = v.stage;
-- lines on two deals (their amounts become the lines' totals), and whom one meets
INSERT INTO crm.opportunity_product (opportunity_id, product_id, quantity, unit_price, discount)
SELECT o.id, p.id, v.quantity, p.list_price, v.discount
  FROM (VALUES ('MES 一期', 'MES-BASE', 2, 10), ('MES 一期', 'SRV-IMPL', 80, 0), ('MES 一期', 'HW-SCAN', 40, 5),
               ('数据中台', 'SRV-IMPL', 120, 0), ('数据中台', 'CRM-STD', 10, 20)) v(deal, code, quantity, discount)
  JOIN crm.opportunity o ON o.name = v.deal JOIN crm.product p ON p.code = v.code;
INSERT INTO crm.opportunity_competitor (opportunity_id, competitor_id, threat_level, note)
SELECT o.id, c.id, 'high', '对方报价低 15%，但交付周期长' FROM crm.opportunity o, crm.competitor c
 WHERE o.name = 'MES 一期' AND c.name = '纷享销客';
COMMIT;
