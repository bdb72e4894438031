-- The benchmark dataset, loaded by bench/run.sh into a fresh crm_bench as superuser
-- with psql -v scale=S.  At scale 1: 283 departments in 6 levels, 2,000 employees,
-- 1,000,000 customers, 3,000,000 follow-ups over the three years 2023-2025, the
-- shared rows of bench/shared_reads.sql, and 1,000,000 deals with 3 lines each.  The organisation is always loaded; the
-- rest only for benchmarks whose "-- needs:" line names it (run.sh passes -v
-- with_customers, with_follow_ups, with_shared and with_opportunities, each true
-- or false; deals need customers).
-- Every value derives from its row's index through hashes and arithmetic, never
-- from random() or now(), so each run at a given scale loads the same rows.

SELECT greatest(20, round(2000 * :scale))::int AS employees,
       round(1000000 * :scale)::int AS customers,
       round(3000000 * :scale)::int AS follow_ups,
       round(1000000 * :scale)::int AS opportunities \gset

-- u(i, seed): a uniform number in [0, 1) drawn from row index i; each seed is an
-- independent draw.  pick(): an element of an array, by such a draw.
CREATE FUNCTION pg_temp.u(i bigint, seed int) RETURNS float8 IMMUTABLE
	RETURN (hashint8extended(i, seed) & 2147483647)::float8 / 2147483648;
CREATE FUNCTION pg_temp.pick(a text[], i bigint, seed int) RETURNS text IMMUTABLE
	RETURN a[1 + floor(pg_temp.u(i, seed) * cardinality(a))::int];
-- at(x): the instant at fraction x of the three years.
CREATE FUNCTION pg_temp.at(x float8) RETURNS timestamptz IMMUTABLE
	RETURN timestamptz '2023-01-01 00:00+08'
		+ (timestamptz '2026-01-01 00:00+08' - timestamptz '2023-01-01 00:00+08') * x;
-- Customer c's creation (a fraction of the three years; ids follow creation order)
-- and owner (a rank in owner_rank below, skewed: rank 0 holds ~2% of all customers,
-- a median rank ~0.035%).  Follow-ups are generated before their customers and
-- need both.
CREATE FUNCTION pg_temp.customer_created(c bigint) RETURNS float8 IMMUTABLE
	RETURN (c - 1 + pg_temp.u(c, 1)) / :customers;
CREATE FUNCTION pg_temp.customer_owner_rank(c bigint) RETURNS bigint IMMUTABLE
	RETURN floor(:employees * pg_temp.u(c, 2) ^ 2);

\set surnames '{王,李,张,刘,陈,杨,黄,赵,吴,周,徐,孙,马,朱,胡,郭,何,高,林,罗,郑,梁,谢,宋,唐,许,韩,冯,邓,曹,彭,曾,肖,田,董,袁,潘,蒋,蔡,余,杜,叶,程,苏,魏,吕,丁,沈,姚,卢}'
\set given '{伟,芳,娜,敏,静,丽,强,磊,军,洋,勇,艳,杰,娟,涛,明,超,兰,霞,平,刚,英,华,玲,飞,鹏,辉,婷,斌,宇,浩,凯,健,俊,帆,倩,雪,琳,晨,欣}'
-- person(i, seed): a Chinese personal name.
CREATE FUNCTION pg_temp.person(i bigint, seed int) RETURNS text IMMUTABLE
	RETURN pg_temp.pick(:'surnames', i, seed) || pg_temp.pick(:'given', i, seed + 1)
		|| CASE WHEN pg_temp.u(i, seed + 2) < 0.7 THEN pg_temp.pick(:'given', i, seed + 3) ELSE '' END;
-- mobile(i, seed): an 11-digit mainland mobile number.
CREATE FUNCTION pg_temp.mobile(i bigint, seed int) RETURNS text IMMUTABLE
	RETURN '1' || pg_temp.pick('{3,5,7,8,9}', i, seed)
		|| to_char(floor(pg_temp.u(i, seed + 1) * 1e9), 'FM000000000');

BEGIN;

-- The stamp triggers would set every updated_at to now(): the data would differ from
-- run to run and updated_at could not spread over time.  Foreign keys stay checked.
ALTER TABLE crm.department DISABLE TRIGGER department_stamp;
ALTER TABLE crm.employee DISABLE TRIGGER employee_stamp;
ALTER TABLE crm.customer DISABLE TRIGGER customer_stamp;
ALTER TABLE crm.follow_up DISABLE TRIGGER follow_up_stamp;
ALTER TABLE crm.contact DISABLE TRIGGER contact_stamp;
-- the customers' last_follow_up_at is computed below, not kept up by trigger;
-- follow-ups come before their customers (below), so their check waits too
ALTER TABLE crm.follow_up DISABLE TRIGGER follow_up_touches_customer;
ALTER TABLE crm.follow_up DISABLE TRIGGER follow_up_record_exists;

-- Departments: levels of 1, 3, 9, 27, 81, 162 (scaled, at least one each), numbered
-- level by level; each splits the level above evenly.  Department d's leader is
-- employee d, inserted below: the leader foreign key is deferred.
CREATE TEMP TABLE level AS
SELECT level, size, (sum(size) OVER (ORDER BY level) - size)::int AS before
  FROM (SELECT level, greatest(1, round(base * :scale))::int AS size
          FROM unnest('{1,3,9,27,81,162}'::int[]) WITH ORDINALITY AS b (base, level)) s;
SELECT sum(size) AS departments, min(before) FILTER (WHERE level = 5) AS teams_before
  FROM level \gset

INSERT INTO crm.department (id, name, parent_id, leader_id, position, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT l.before + i + 1,
       CASE WHEN l.level = 1 THEN '总公司'
            ELSE (ARRAY['大区', '分公司', '销售部', '销售组', '小组'])[l.level - 1] || (i + 1) END,
       p.before + i * p.size / l.size + 1,
       l.before + i + 1, i, pg_temp.at(0), pg_temp.at(0)
  FROM level l LEFT JOIN level p ON p.level = l.level - 1, generate_series(0, l.size - 1) i;

-- Owners of customers by rank; rank order is a hash of the employee id, so the
-- busiest owners are spread over the organisation.
CREATE TEMP TABLE owner_rank AS
SELECT row_number() OVER (ORDER BY hashint8extended(e, 3), e) - 1 AS rank, e AS id
  FROM generate_series(1, :employees) e;
-- bench_sales acts as an ordinary employee: no leader, a median number of customers.
SELECT id AS sales_id FROM owner_rank WHERE id > :departments
 ORDER BY abs(rank - :employees / 2), id LIMIT 1 \gset

-- the bench logins (an employee names its login, which must exist)
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['bench_sales', 'bench_manager', 'bench_admin'] LOOP
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN   -- roles are cluster-wide
			EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
		END IF;
	END LOOP;
END
$$;

-- Employees 1..departments lead the department of their id and report to the parent
-- department's leader; the others sit in level 5 and 6 teams under the team's leader.
INSERT INTO crm.employee (id, name, mobile, email, department_id, superior_id, db_role, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT e, pg_temp.person(e, 4), pg_temp.mobile(e, 8), format('e%s@crm-bench.example', e), d.id,
       CASE WHEN e <= :departments THEN d.parent_id ELSE d.id END,
       CASE WHEN e = :sales_id THEN 'bench_sales' END,
       pg_temp.at(0), pg_temp.at(0)
  FROM generate_series(1, :employees) e
  JOIN crm.department d ON d.id = CASE WHEN e <= :departments THEN e
       ELSE :teams_before + 1 + floor(pg_temp.u(e, 10) * (:departments - :teams_before))::int END;

-- Roles as the seeds describe them: the head of the company is super admin,
-- department leaders manage their department tree, everyone else sees their own.
INSERT INTO crm.role (id, name, is_super) OVERRIDING SYSTEM VALUE
VALUES (1, '超级管理员', true), (2, '销售经理', false), (3, '销售', false);
INSERT INTO crm.role_permission (role_id, action)
SELECT r, a FROM unnest('{2,3}'::bigint[]) r,
       unnest('{customer.create,customer.edit,customer.import,contact.create,contact.edit,lead.create,lead.edit,opportunity.create,opportunity.edit}'::text[]) a;
INSERT INTO crm.role_scope (role_id, record_type, scope)
SELECT r, t, CASE r WHEN 2 THEN 'department_tree' ELSE 'self' END
  FROM unnest('{2,3}'::bigint[]) r, unnest('{customer,lead,opportunity}'::text[]) t;
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT id, CASE WHEN id = 1 THEN 1 WHEN id <= :departments THEN 2 ELSE 3 END FROM crm.employee;
SELECT setval(pg_get_serial_sequence('crm.role', 'id'), 3) \g /dev/null
UPDATE crm.employee SET db_role = 'bench_admin' WHERE id = 1;

\if :with_follow_ups
-- Follow-ups before customers, so the customers' insert can take last_follow_up_at
-- from them instead of updating a million rows afterwards.  Older customers collect
-- more; ids follow time, as in a live table.
SET LOCAL work_mem = '256MB';   -- sort by time, and max() per customer below, in memory
INSERT INTO crm.follow_up (record_type, record_id, method, content, next_contact_at, created_by, created_at, updated_at)
SELECT 'customer', c,
       pg_temp.pick('{phone,phone,phone,im,im,visit,email}', j, 20),
       pg_temp.pick('{电话沟通，客户对报价有疑问,上门拜访，演示了产品,微信发送了产品资料,客户要求下周再联系,已发送合同草稿，等待法务审核,确认采购需求，准备方案,客户预算未批，下季度跟进,约好月底到公司参观,客户在比较竞品价格,老板出差，联系了采购经理,回访使用情况，客户满意,客户暂无需求}', j, 21),
       CASE WHEN pg_temp.u(j, 22) < 0.3 THEN t + (1 + floor(pg_temp.u(j, 23) * 14)) * interval '1 day' END,
       o.id, t, t
  FROM generate_series(1, :follow_ups) j,
       LATERAL (SELECT 1 + floor(:customers * pg_temp.u(j, 24) ^ 1.5)::bigint AS c) r,
       LATERAL (SELECT pg_temp.at(pg_temp.customer_created(c)
                                  + pg_temp.u(j, 25) * (1 - pg_temp.customer_created(c))) AS t) w,
       owner_rank o
 WHERE o.rank = pg_temp.customer_owner_rank(c)
 ORDER BY t;
\endif

\if :with_customers
CREATE TEMP TABLE city (n, name, area, code) AS VALUES
	(0, '杭州', '0571', '330100'), (1, '上海', '021', '310000'), (2, '北京', '010', '110000'),
	(3, '广州', '020', '440100'), (4, '深圳', '0755', '440300'), (5, '南京', '025', '320100'),
	(6, '苏州', '0512', '320500'), (7, '成都', '028', '510100'), (8, '武汉', '027', '420100'),
	(9, '西安', '029', '610100'), (10, '重庆', '023', '500000'), (11, '天津', '022', '120000'),
	(12, '宁波', '0574', '330200'), (13, '青岛', '0532', '370200'), (14, '厦门', '0592', '350200'),
	(15, '长沙', '0731', '430100'), (16, '郑州', '0371', '410100'), (17, '合肥', '0551', '340100'),
	(18, '福州', '0591', '350100'), (19, '济南', '0531', '370100');
-- industries: crm's dictionary codes, and a word for company names
CREATE TEMP TABLE industry (n, code, word) AS VALUES
	(0, 'manufacturing', '机械'), (1, 'it', '科技'), (2, 'wholesale_retail', '商贸'), (3, 'construction', '建设'),
	(4, 'healthcare', '医疗器械'), (5, 'education', '教育咨询'), (6, 'finance', '投资管理'), (7, 'logistics', '物流'),
	(8, 'hospitality', '餐饮管理'), (9, 'real_estate', '置业'), (10, 'energy_chemicals', '化工'), (11, 'agriculture_food', '食品');

\set trade_chars '{华,盛,鑫,恒,达,泰,瑞,丰,汇,通,宏,远,佳,源,创,信,诚,德,利,新,金,海,天,中,博,捷,安,康,嘉,正}'
-- One customer in ten is a person; companies are named city + trade name + trade +
-- legal form.  updated_at is at least the last follow-up, which touches the customer.
INSERT INTO crm.customer (id, name, kind, uscc, phone, industry, source, owner_id,
                          last_follow_up_at, created_by, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT c,
       CASE WHEN person THEN pg_temp.person(c, 30)
            ELSE city.name || pg_temp.pick(:'trade_chars', c, 34)
                 || pg_temp.pick(:'trade_chars', c, 35)
                 || industry.word || pg_temp.pick('{有限公司,有限公司,有限公司,股份有限公司,有限责任公司}', c, 36) END,
       CASE WHEN person THEN 'individual' ELSE 'company' END,
       CASE WHEN NOT person THEN crm.uscc_with_check('91' || city.code || upper(left(md5(c::text), 9))) END,
       CASE WHEN pg_temp.u(c, 37) < 0.05 THEN NULL
            WHEN person OR pg_temp.u(c, 38) < 0.25 THEN pg_temp.mobile(c, 39)
            ELSE city.area || '-' || (20000000 + floor(pg_temp.u(c, 41) * 70000000)) END,
       CASE WHEN pg_temp.u(c, 42) >= 0.08 THEN industry.code END,
       pg_temp.pick('{website,phone,exhibition,referral,search_ads,visit,wechat,douyin,repeat,tender}', c, 43),
       o.id, f.last, o.id, pg_temp.at(created),
       greatest(pg_temp.at(created + pg_temp.u(c, 44) * (1 - created)), f.last)
  FROM generate_series(1, :customers) c
       LEFT JOIN (SELECT record_id, max(created_at) AS last FROM crm.follow_up GROUP BY record_id) f
              ON f.record_id = c,
       LATERAL (SELECT pg_temp.u(c, 45) < 0.1 AS person, pg_temp.customer_created(c) AS created) x,
       owner_rank o, city, industry
 WHERE o.rank = pg_temp.customer_owner_rank(c)
   AND city.n = floor(pg_temp.u(c, 46) * 20)::int
   AND industry.n = floor(pg_temp.u(c, 47) * 12)::int;

-- One contact per customer, a decision maker with a mobile number (an
-- individual customer needs one).
INSERT INTO crm.contact (customer_id, name, mobile, email, is_decision_maker, owner_id, created_by, created_at, updated_at)
SELECT c.id, CASE WHEN c.kind = 'individual' THEN c.name ELSE pg_temp.person(c.id, 50) END,
       pg_temp.mobile(c.id, 52),
       CASE WHEN c.kind = 'company' AND pg_temp.u(c.id, 54) < 0.6 THEN format('c%s@customer.example', c.id) END,
       true, c.owner_id, c.owner_id, c.created_at, c.created_at
  FROM crm.customer c;

\if :with_shared
-- The shared tables (bench/shared_reads.sql), as crm writes them, scope included:
-- the operation log holds an update of every other customer (its phone) and of
-- one contact in ten (its email), by the owner; three customers in ten carry a
-- tag of ten.  (The record checks and stamps of crm.record_tag wait, as above.)
INSERT INTO crm.oplog (at, record_type, record_id, action, employee_id, source, changes, scope_type, scope_owner, scope_id)
SELECT c.updated_at, 'customer', c.id, 'update', c.owner_id, 'person',
       jsonb_build_object('phone', jsonb_build_array(NULL, c.phone)), 'customer', c.owner_id, c.id
  FROM crm.customer c WHERE c.id % 2 = 0
UNION ALL
SELECT k.updated_at + interval '1 day', 'contact', k.id, 'update', c.owner_id, 'person',
       jsonb_build_object('email', jsonb_build_array(NULL, k.mobile || '@example.com')), 'customer', c.owner_id, c.id
  FROM crm.contact k JOIN crm.customer c ON c.id = k.customer_id WHERE k.id % 10 = 0
 ORDER BY 1;
INSERT INTO crm.tag_group (name) VALUES ('客户价值');
INSERT INTO crm.tag (group_id, name) SELECT g.id, '标签' || n FROM crm.tag_group g, generate_series(1, 10) n;
ALTER TABLE crm.record_tag DISABLE TRIGGER record_tag_record_exists;
ALTER TABLE crm.record_tag DISABLE TRIGGER record_tag_scope;
INSERT INTO crm.record_tag (record_type, record_id, tag_id, created_by, created_at, scope_type, scope_owner, scope_id)
SELECT 'customer', c.id, t.id, c.owner_id, c.created_at, 'customer', c.owner_id, c.id
  FROM crm.customer c JOIN crm.tag t ON t.name = '标签' || (1 + floor(pg_temp.u(c.id, 61) * 10))::int
 WHERE pg_temp.u(c.id, 60) < 0.3;
\endif

-- the ids above were given: move the identities past them
SELECT setval(pg_get_serial_sequence('crm.department', 'id'), (SELECT max(id) FROM crm.department)),
       setval(pg_get_serial_sequence('crm.employee', 'id'), (SELECT max(id) FROM crm.employee)),
       setval(pg_get_serial_sequence('crm.customer', 'id'), (SELECT max(id) FROM crm.customer)) \g /dev/null

-- bench_manager leads the department whose tree holds the share of customers
-- closest to 10%.
WITH RECURSIVE tree (top, id) AS (
	SELECT id, id FROM crm.department
	UNION ALL
	SELECT t.top, d.id FROM tree t JOIN crm.department d ON d.parent_id = t.id
), share AS (
	SELECT t.top, count(c.id)::float8 / :customers AS share
	  FROM tree t JOIN crm.employee e ON e.department_id = t.id JOIN crm.customer c ON c.owner_id = e.id
	 GROUP BY t.top
)
SELECT top AS manager_id FROM share ORDER BY abs(share - 0.1), top LIMIT 1 \gset
UPDATE crm.employee SET db_role = 'bench_manager' WHERE id = :manager_id;

\if :with_opportunities
-- Deals (bench/opportunities.sql): 200 products; deal o is on a customer drawn
-- at random, owned by its owner, made at a fraction of the three years, expected
-- to close 30 to 180 days later; six in ten are closed (four of those won) after
-- reaching open stage 1 to 4 of the standard set (ids 1-4; 5 won, 6 lost); three
-- lines each, the deal worth their total; a history row for every stage reached.
-- Written as a replica (no trigger fires: rules, stamps, log), as crm leaves them.
INSERT INTO crm.product (id, code, name, category, unit, list_price) OVERRIDING SYSTEM VALUE
SELECT p, 'P' || lpad(p::text, 4, '0'), '产品' || p, pg_temp.pick('{software,hardware,service}', p, 70), 'set',
       100 * (1 + (p * 37) % 500)
  FROM generate_series(1, 200) p;
CREATE FUNCTION pg_temp.line_product(o bigint, j int) RETURNS bigint IMMUTABLE
	RETURN 1 + floor(pg_temp.u(o * 3 + j, 71) * 200)::bigint;
CREATE FUNCTION pg_temp.line_quantity(o bigint, j int) RETURNS numeric IMMUTABLE
	RETURN 1 + floor(pg_temp.u(o * 3 + j, 72) * 20);
CREATE FUNCTION pg_temp.line_discount(o bigint, j int) RETURNS numeric IMMUTABLE
	RETURN floor(pg_temp.u(o * 3 + j, 73) * 4) * 5;
CREATE TEMP TABLE deal AS
SELECT o, c.id AS customer_id, c.owner_id, x.made, x.reached, x.closed, x.won,
       (SELECT sum(round(pg_temp.line_quantity(o, j) * 100 * (1 + (pg_temp.line_product(o, j) * 37) % 500)
                         * (100 - pg_temp.line_discount(o, j)) / 100, 2)) FROM generate_series(1, 3) j) AS amount
  FROM generate_series(1, :opportunities) o,
       LATERAL (SELECT pg_temp.u(o, 74) AS made, 1 + floor(pg_temp.u(o, 75) * 4)::int AS reached,
                       pg_temp.u(o, 76) < 0.6 AS closed, pg_temp.u(o, 77) < 0.4 AS won) x,
       crm.customer c
 WHERE c.id = 1 + floor(pg_temp.u(o, 78) * :customers)::bigint;
SET LOCAL session_replication_role = replica;
INSERT INTO crm.opportunity (id, customer_id, name, amount, expected_close_on, stage_set_id, stage_id, probability,
                             owner_id, status, closed_on, stage_entered_at, created_by, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT d.o, d.customer_id, '商机' || d.o, d.amount, (pg_temp.at(d.made) + interval '30 days' + interval '150 days' * pg_temp.u(d.o, 79))::date,
       1, s.id, s.win_rate, d.owner_id, s.outcome,
       CASE WHEN d.closed THEN (pg_temp.at(d.made) + interval '30 days' + interval '150 days' * pg_temp.u(d.o, 79))::date END,
       pg_temp.at(d.made) + interval '7 days' * d.reached, d.owner_id, pg_temp.at(d.made), pg_temp.at(d.made) + interval '7 days' * d.reached
  FROM deal d JOIN crm.stage s ON s.id = CASE WHEN NOT d.closed THEN d.reached WHEN d.won THEN 5 ELSE 6 END;
INSERT INTO crm.opportunity_product (opportunity_id, product_id, quantity, unit_price, discount, created_by, created_at, updated_at)
SELECT d.o, pg_temp.line_product(d.o, j), pg_temp.line_quantity(d.o, j), 100 * (1 + (pg_temp.line_product(d.o, j) * 37) % 500),
       pg_temp.line_discount(d.o, j), d.owner_id, pg_temp.at(d.made), pg_temp.at(d.made)
  FROM deal d, generate_series(1, 3) j;
INSERT INTO crm.opportunity_stage_change (opportunity_id, from_stage_id, to_stage_id, changed_at, changed_by, amount, probability, days_in_stage)
SELECT d.o, nullif(k - 1, 0), CASE WHEN k <= d.reached THEN k WHEN d.won THEN 5 ELSE 6 END,
       pg_temp.at(d.made) + interval '7 days' * (k - 1), d.owner_id, d.amount,
       (SELECT s.win_rate FROM crm.stage s WHERE s.id = CASE WHEN k <= d.reached THEN k WHEN d.won THEN 5 ELSE 6 END),
       CASE WHEN k > 1 THEN 7 END
  FROM deal d, generate_series(1, d.reached + d.closed::int) k;
SET LOCAL session_replication_role = origin;
SELECT setval(pg_get_serial_sequence('crm.opportunity', 'id'), :opportunities),
       setval(pg_get_serial_sequence('crm.product', 'id'), 200) \g /dev/null
\endif

\endif

-- ALTER TABLE refuses tables with pending trigger events: check the leaders now.
SET CONSTRAINTS ALL IMMEDIATE;
ALTER TABLE crm.department ENABLE TRIGGER department_stamp;
ALTER TABLE crm.employee ENABLE TRIGGER employee_stamp;
ALTER TABLE crm.customer ENABLE TRIGGER customer_stamp;
ALTER TABLE crm.follow_up ENABLE TRIGGER follow_up_stamp;
ALTER TABLE crm.contact ENABLE TRIGGER contact_stamp;
ALTER TABLE crm.follow_up ENABLE TRIGGER follow_up_touches_customer;
ALTER TABLE crm.follow_up ENABLE TRIGGER follow_up_record_exists;
ALTER TABLE crm.record_tag ENABLE TRIGGER record_tag_record_exists;
ALTER TABLE crm.record_tag ENABLE TRIGGER record_tag_scope;
COMMIT;

\if :with_customers
-- Bare PostgreSQL's side: crm.customer's columns, types, identity, plain check
-- constraints, indexes and rows, without what calls crm (the owner and status
-- defaults, the code checks), foreign keys, triggers or row-level security; and,
-- for each bench login, the owners whose customers it sees, to write into the
-- baseline queries.
CREATE SCHEMA bench_baseline;
CREATE TABLE bench_baseline.customer (LIKE crm.customer INCLUDING ALL);
ALTER TABLE bench_baseline.customer ALTER owner_id DROP DEFAULT, ALTER status_id DROP DEFAULT,
	DROP CONSTRAINT customer_uscc_check;
SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS customer_columns
  FROM pg_attribute WHERE attrelid = 'crm.customer'::regclass AND attnum > 0 AND NOT attisdropped \gset
INSERT INTO bench_baseline.customer (:customer_columns) OVERRIDING SYSTEM VALUE
SELECT :customer_columns FROM crm.customer ORDER BY id;
SELECT setval(pg_get_serial_sequence('bench_baseline.customer', 'id'), max(id))
  FROM bench_baseline.customer \g /dev/null
CREATE TABLE bench_baseline.contact (LIKE crm.contact INCLUDING ALL);
ALTER TABLE bench_baseline.contact ALTER owner_id DROP DEFAULT,
	DROP CONSTRAINT contact_mobile_check, DROP CONSTRAINT contact_email_check;
-- The duplicate keys, computed once each as crm.keep_dedupe_keys() computes them
-- (the pinyin from the name key), for the baseline's inserts to store:
--   INSERT ... SELECT ..., k.* FROM ..., LATERAL bench_baseline.customer_keys(kind, name, phone) k
CREATE FUNCTION bench_baseline.customer_keys(kind text, name text, phone text,
	OUT name_key text, OUT name_pinyin text, OUT name_initials text, OUT phone_key text)
LANGUAGE sql IMMUTABLE AS $$
SELECT k, crm.dedupe_key('pinyin', k), crm.dedupe_key('initials', k), crm.dedupe_key('phone', phone)
  FROM (SELECT crm.dedupe_key(CASE kind WHEN 'company' THEN 'company' ELSE 'name' END, name) OFFSET 0) s (k)
$$;
CREATE FUNCTION bench_baseline.contact_keys(name text, mobile text, email text,
	OUT name_key text, OUT mobile_key text, OUT email_key text)
LANGUAGE sql IMMUTABLE AS $$
SELECT crm.dedupe_key('name', name), crm.dedupe_key('phone', mobile), crm.dedupe_key('email', email)
$$;
CREATE TABLE bench_baseline.visible (who name PRIMARY KEY, owners bigint[] NOT NULL);
INSERT INTO bench_baseline.visible
WITH RECURSIVE tree (id) AS (
	SELECT department_id FROM crm.employee WHERE db_role = 'bench_manager'
	UNION ALL
	SELECT d.id FROM tree t JOIN crm.department d ON d.parent_id = t.id
)
SELECT 'bench_manager', array_agg(e.id ORDER BY e.id) FROM crm.employee e WHERE e.department_id IN (SELECT id FROM tree)
UNION ALL
SELECT 'bench_sales', array_agg(id) FROM crm.employee WHERE db_role = 'bench_sales'
UNION ALL
SELECT 'bench_admin', array_agg(id ORDER BY id) FROM crm.employee;
\endif

\if :with_opportunities
-- Bare PostgreSQL's deals, lines and history, as crm's tables hold them, without
-- defaults that call crm, triggers or row-level security, with the same foreign
-- keys (to crm's customers, leads, stages and products, whose rows they share):
-- a schema of plain tables keeps them too, and their checks (an UPDATE checks
-- again the keys of rows its transaction inserted) are PostgreSQL's work, not
-- crm's.
CREATE TABLE bench_baseline.opportunity (LIKE crm.opportunity INCLUDING ALL);
ALTER TABLE bench_baseline.opportunity ALTER owner_id DROP DEFAULT;
INSERT INTO bench_baseline.opportunity OVERRIDING SYSTEM VALUE SELECT * FROM crm.opportunity ORDER BY id;
SELECT setval(pg_get_serial_sequence('bench_baseline.opportunity', 'id'), max(id)) FROM bench_baseline.opportunity \g /dev/null
CREATE TABLE bench_baseline.opportunity_product (LIKE crm.opportunity_product INCLUDING ALL);
INSERT INTO bench_baseline.opportunity_product (opportunity_id, product_id, quantity, unit_price, discount, note, created_by, created_at, updated_at)
SELECT opportunity_id, product_id, quantity, unit_price, discount, note, created_by, created_at, updated_at
  FROM crm.opportunity_product ORDER BY id;
CREATE TABLE bench_baseline.opportunity_stage_change (LIKE crm.opportunity_stage_change INCLUDING ALL);
INSERT INTO bench_baseline.opportunity_stage_change OVERRIDING SYSTEM VALUE SELECT * FROM crm.opportunity_stage_change ORDER BY id;
SELECT setval(pg_get_serial_sequence('bench_baseline.opportunity_stage_change', 'id'), max(id))
  FROM bench_baseline.opportunity_stage_change \g /dev/null
ALTER TABLE bench_baseline.opportunity
	ADD FOREIGN KEY (customer_id) REFERENCES crm.customer (id) DEFERRABLE INITIALLY DEFERRED,
	ADD FOREIGN KEY (lead_id) REFERENCES crm.lead (id) ON DELETE SET NULL,
	ADD FOREIGN KEY (stage_set_id) REFERENCES crm.stage_set (id),
	ADD FOREIGN KEY (stage_id) REFERENCES crm.stage (id);
ALTER TABLE bench_baseline.opportunity_product
	ADD FOREIGN KEY (opportunity_id) REFERENCES bench_baseline.opportunity (id) ON DELETE CASCADE,
	ADD FOREIGN KEY (product_id) REFERENCES crm.product (id);
ALTER TABLE bench_baseline.opportunity_stage_change
	ADD FOREIGN KEY (opportunity_id) REFERENCES bench_baseline.opportunity (id) ON DELETE CASCADE,
	ADD FOREIGN KEY (from_stage_id) REFERENCES crm.stage (id),
	ADD FOREIGN KEY (to_stage_id) REFERENCES crm.stage (id);
\endif

VACUUM ANALYZE;
