# pg_cron runs the recycling job in a running cluster: crm.schedule_jobs()
# registers it, and within a minute a customer past its rule's deadline is in
# the pool, its former owner told, the run logged by crm and by pg_cron.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
# background workers, not libpq connections: the test cluster listens on a socket only
$node->append_conf('postgresql.conf', join("\n", "shared_preload_libraries = 'pg_cron,crm'",
	"cron.database_name = 'postgres'", "cron.use_background_workers = on", "max_worker_processes = 16"));
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_cron;
CREATE EXTENSION crm CASCADE;
INSERT INTO crm.department (name) VALUES ('Sales');
INSERT INTO crm.employee (name, department_id) VALUES ('张三', 1);
INSERT INTO crm.pool (name, is_default, open_to_all) VALUES ('公海', true, true);
INSERT INTO crm.recycle_rule (name, kind, days) VALUES ('Quiet month', 'no_follow_up', 30);
INSERT INTO crm.customer (name, uscc, owner_id, created_at)
VALUES ('杭州茶叶有限公司', crm.uscc_with_check('91330100MA2B00041'), 1, now() - interval '40 days'),
       ('宁波港务有限公司', crm.uscc_with_check('91330100MA2B00042'), 1, now() - interval '10 days');
UPDATE crm.job SET schedule = '* * * * *' WHERE name = 'crm-recycling';
});
is($node->safe_psql('postgres', 'SELECT crm.schedule_jobs()'), 5, 'crm.schedule_jobs() registers the jobs with pg_cron');

ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM crm.customer_owner_change WHERE kind = 'recycle'}),
	'pg_cron ran the recycling job');
is($node->safe_psql('postgres', q{
	SELECT string_agg(format('%s:%s', c.name, e.name), ',' ORDER BY c.name)
	  FROM crm.customer c JOIN crm.employee e ON e.id = c.owner_id}),
	'宁波港务有限公司:张三,杭州茶叶有限公司:公海', 'the customer past its deadline is in the pool, the other stays');
is($node->safe_psql('postgres', q{SELECT title || ' / ' || body FROM crm.notification WHERE event = 'pool.recycled'}),
	"你的1个客户已被收回公海 / 杭州茶叶有限公司 → 公海「公海」（规则「Quiet month」：30天未跟进）\n想继续跟进，可以到公海重新领取（可能有冷却期）。",
	'the former owner is told why');
ok($node->poll_query_until('postgres', q{
	SELECT EXISTS (SELECT FROM cron.job_run_details d JOIN cron.job j USING (jobid)
	                WHERE j.jobname = 'crm-recycling' AND d.status = 'succeeded')}),
	'pg_cron logs the run as succeeded');
is($node->safe_psql('postgres', q{SELECT processed FROM crm.job_run WHERE job = 'crm-recycling' ORDER BY id LIMIT 1}),
	1, 'crm logs the run with what it moved');

$node->stop;
done_testing();
