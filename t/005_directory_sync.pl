# Directory sync against the fake's directory: each platform's paging, the
# tree, superiors and leaders where the platform gives them, people and
# departments crm already had adopted rather than duplicated, vanished
# employees made inactive, failures recorded without changing anything, and
# the pg_cron job's command.
use strict;
use warnings;
use utf8;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Encode;
use FindBin;
use lib $FindBin::RealBin;
use FakeIM;

my %tree = (
	departments => [
		{ id => 1, name => '总公司' },
		{ id => 2, name => '华东销售部', parent_id => 1, leader => 'u2' },
		{ id => 3, name => '杭州组', parent_id => 2, leader => 'u3' },
		{ id => 4, name => '华北销售部', parent_id => 1 } ],
	users => [
		{ id => 'u1', name => '王总', department_ids => [1], mobile => '+8613800000001' },
		{ id => 'u2', name => '张经理', department_ids => [2], mobile => '+8613800000002', superior_id => 'u1' },
		{ id => 'u3', name => '李组长', department_ids => [3], mobile => '+8613800000003', superior_id => 'u2' },
		{ id => 'u4', name => '赵销售', department_ids => [3], mobile => '+8613800000004', superior_id => 'u3' },
		{ id => 'u5', name => '钱销售', department_ids => [3, 4], mobile => '+8613800000005', superior_id => 'u3' },
		{ id => 'u6', name => '孙新人', department_ids => [4], mobile => '+8613800000006', active => JSON::PP::false } ],
	page_size => 2);

my $fake = FakeIM->start;
my $base = $fake->base;
$fake->post('/_fake/config', {
	apps => {
		wecom    => { 'ww-corp' => { secret => 'wc-secret', agentid => 1000002 } },
		feishu   => { 'cli_app' => { secret => 'fs-secret' } },
		dingtalk => { 'dt-key'  => { secret => 'dt-secret', agent_id => 2000001 } } },
	directory => \%tree });

my $node = FakeIM->node('main');
sub sql { return Encode::decode_utf8($node->safe_psql('postgres', $_[0])) }

# crm already has its company and the manager, entered by hand
sql(q{
CREATE EXTENSION crm CASCADE;
INSERT INTO crm.department (name) VALUES ('我们公司');
INSERT INTO crm.employee (name, department_id, mobile) SELECT 'Zhang', id, '13800000002' FROM crm.department;
});

sub sync
{
	my ($platform) = @_;
	my $id = sql("SELECT crm.sync_directory('$platform')");
	$node->poll_query_until('postgres', "SELECT status IN ('done', 'failed') FROM crm.directory_sync WHERE id = $id")
	  or die "sync $id did not finish";
	return sql("SELECT format('%s: %s departments, %s employees, %s created, %s updated, %s deactivated%s', status,
	                          departments, employees, created, updated, deactivated, ' ' || error)
	              FROM crm.directory_sync WHERE id = $id");
}
sub org
{
	my ($id_column) = @_;
	return sql(qq{
		SELECT string_agg(format('%s/%s in %s%s%s%s', e.name, e.$id_column, d.name,
		                         CASE WHEN d.leader_id = e.id THEN ' (leads)' ELSE '' END,
		                         ' under ' || boss.name, CASE WHEN NOT e.active THEN ' inactive' ELSE '' END),
		                  E'\n' ORDER BY e.$id_column)
		  FROM crm.employee e JOIN crm.department d ON d.id = e.department_id
		  LEFT JOIN crm.employee boss ON boss.id = e.superior_id});
}
my $departments = q{SELECT string_agg(d.name || coalesce(' < ' || p.name, ''), ', ' ORDER BY d.id)
                      FROM crm.department d LEFT JOIN crm.department p ON p.id = d.parent_id};

# -- WeCom: the whole tree in one call, every member in another
sql("INSERT INTO crm.im_channel (name, platform, kind, app_id, app_secret, agent_id, api_base, reads_directory)
     VALUES ('wecom app', 'wecom', 'app', 'ww-corp', 'wc-secret', '1000002', '$base', true)");
is(sync('wecom'), 'done: 4 departments, 6 employees, 8 created, 8 updated, 0 deactivated', 'wecom: the run summary');
is(sql($departments), '总公司, 华东销售部 < 总公司, 华北销售部 < 总公司, 杭州组 < 华东销售部',
	'the tree, the company adopted and renamed rather than duplicated');
is(org('wecom_userid'), join("\n",
	'王总/u1 in 总公司',
	'张经理/u2 in 华东销售部 (leads) under 王总',
	'李组长/u3 in 杭州组 (leads) under 张经理',
	'赵销售/u4 in 杭州组 under 李组长',
	'钱销售/u5 in 杭州组 under 李组长',
	'孙新人/u6 in 华北销售部 inactive'), 'people, superiors and leaders; Zhang adopted by mobile; not yet joined is inactive');
is(sql(q{SELECT count(*) FROM crm.employee WHERE mobile = '13800000002'}), 1, 'nobody duplicated');

# -- Feishu: pages of 2, departments by open id, users per department
sql("INSERT INTO crm.im_channel (name, platform, kind, app_id, app_secret, api_base, reads_directory)
     VALUES ('feishu app', 'feishu', 'app', 'cli_app', 'fs-secret', '$base', true)");
like(sync('feishu'), qr/^done: 4 departments, 6 employees, 0 created, \d+ updated, 0 deactivated$/,
	'feishu: the same organisation, matched by name and mobile: nothing created');
is(org('feishu_open_id'), join("\n",
	'王总/ou_u1 in 总公司',
	'张经理/ou_u2 in 华东销售部 (leads) under 王总',
	'李组长/ou_u3 in 杭州组 (leads) under 张经理',
	'赵销售/ou_u4 in 杭州组 under 李组长',
	'钱销售/ou_u5 in 杭州组 under 李组长',
	'孙新人/ou_u6 in 华北销售部 inactive'), 'feishu ids on the same people');
is(sql(q{SELECT string_agg(coalesce(feishu_department_id, '-'), ',' ORDER BY id) FROM crm.department}),
	'0,od-2,od-4,od-3', 'feishu department ids, "0" for the company');
cmp_ok(sql(q{SELECT requests FROM crm.directory_sync WHERE platform = 'feishu'}), '>', 6, 'read page by page');

# -- DingTalk: one level per call, cursors for users, leaders from the users' rows
sql("INSERT INTO crm.im_channel (name, platform, kind, app_id, app_secret, agent_id, api_base, reads_directory)
     VALUES ('dingtalk app', 'dingtalk', 'app', 'dt-key', 'dt-secret', '2000001', '$base', true)");
like(sync('dingtalk'), qr/^done: 4 departments, 6 employees, 0 created, \d+ updated, 0 deactivated$/, 'dingtalk: nothing new');
is(sql(q{SELECT count(*) FROM crm.employee WHERE wecom_userid IS NOT NULL AND feishu_open_id IS NOT NULL
           AND dingtalk_userid IS NOT NULL}), 6, 'every employee carries all three ids');

# -- an employee who left vanishes from the directory: inactive, never deleted
$tree{users} = [ grep { $_->{id} ne 'u4' } @{ $tree{users} } ];
$tree{users}[3]{name} = '钱大销售';
$fake->post('/_fake/config', { directory => \%tree });
like(sync('wecom'), qr/^done: 4 departments, 5 employees, 0 created, 1 updated, 1 deactivated$/, 'one renamed, one gone');
is(sql(q{SELECT string_agg(name || ' ' || active, ', ' ORDER BY wecom_userid) FROM crm.employee WHERE wecom_userid IN ('u4', 'u5')}),
	'赵销售 false, 钱大销售 true', 'the leaver is inactive, the renamed employee renamed');

# -- failures change nothing and say why
sql("UPDATE crm.im_channel SET app_secret = 'wrong' WHERE name = 'wecom app'");
like(sync('wecom'), qr/^failed: .*40001/, 'a rejected secret fails the run with the platform\'s code');
sql("UPDATE crm.im_channel SET app_secret = 'wc-secret' WHERE name = 'wecom app'");
$fake->post('/_fake/fault', { platform => 'feishu', http_status => 500, count => 10 });
like(sync('feishu'), qr/^failed: .*http 500/, 'a platform that keeps failing fails the run');
is(sql('SELECT count(*) FROM crm.employee WHERE active'), 4, 'and nothing changed');
$fake->post('/_fake/reset', {});

# -- a slow directory does not hold up notifications: the worker reads it a slice at a time,
# between its deliveries
$fake->post('/_fake/config', { wecom => { 'wc-bot' => {} } });
sql("INSERT INTO crm.im_channel (name, platform, kind, webhook_url, api_base, events)
     VALUES ('ops robot', 'wecom', 'robot', '$base/cgi-bin/webhook/send?key=wc-bot', '$base', '{*}')");
$fake->post('/_fake/fault', { platform => 'dingtalk', delay_ms => 1000, count => 12 });
my $slow = sql("SELECT crm.sync_directory('dingtalk')");
$node->poll_query_until('postgres', "SELECT status = 'running' FROM crm.directory_sync WHERE id = $slow")
  or die 'the slow sync never started';
sql(q{SELECT crm.notify(ARRAY[min(id)], 'transfer.received', 'during the sync', NULL) FROM crm.employee});
$node->poll_query_until('postgres', "SELECT status IN ('done', 'failed') FROM crm.directory_sync WHERE id = $slow")
  or die 'the slow sync never ended';
$node->poll_query_until('postgres', q{SELECT d.status = 'sent' FROM crm.im_delivery d JOIN crm.im_channel c ON c.id = d.channel_id
                                        JOIN crm.notification n ON n.id = d.notification_id
                                       WHERE c.name = 'ops robot' AND n.title = 'during the sync'})
  or die 'the robot message was never sent';
is(sql(qq{SELECT s.status || ' ' || (d.sent_at < s.finished_at) FROM crm.directory_sync s, crm.im_delivery d
            JOIN crm.im_channel c ON c.id = d.channel_id WHERE s.id = $slow AND c.name = 'ops robot'}),
	'done true', 'a message queued while a slow directory sync runs is sent before the sync ends');
sql("DELETE FROM crm.im_channel WHERE name = 'ops robot'");
$fake->post('/_fake/reset', {});

# -- on demand only with admin.org; the job queues every platform that has an app
sql(q{CREATE ROLE clerk LOGIN IN ROLE crm_user;
      INSERT INTO crm.employee (name, department_id, db_role) SELECT 'Clerk', min(id), 'clerk' FROM crm.department});
my ($rc, $out, $err) = $node->psql('postgres', "SET ROLE clerk; SELECT crm.sync_directory('wecom')");
$err = Encode::decode_utf8($err);
like($err, qr/permission denied to sync the wecom directory/, 'a clerk may not sync');
($rc, $out, $err) = $node->psql('postgres', "SELECT crm.sync_directory('line')");
like($err, qr/no enabled line app channel reads the directory/, 'an unknown platform has no channel');
is(sql('SELECT crm.run_directory_sync()'), 3, 'the 2-hourly job queues the three platforms');
is(sql(q{SELECT schedule FROM crm.job WHERE name = 'crm-directory-sync'}), '40 */2 * * *', 'every two hours');
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM crm.directory_sync WHERE status IN ('queued', 'running')");
is(sql(q{SELECT string_agg(platform || ' ' || status, ', ' ORDER BY platform) FROM (SELECT * FROM crm.directory_sync ORDER BY id DESC LIMIT 3) s}),
	'dingtalk done, feishu done, wecom done', 'and the worker runs them');

$node->stop;
$fake->stop;
done_testing();
