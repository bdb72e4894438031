# The notification worker delivers the outbox to the fake IM server: every
# platform and kind end to end, retries, dead letters, token refresh, rate
# windows with digests, rollbacks, and a postmaster killed mid-batch.
use strict;
use warnings;
use utf8;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use FindBin;
use lib $FindBin::RealBin;
use FakeIM;

my $fake = FakeIM->start;
my $base = $fake->base;
$fake->post('/_fake/config', {
	wecom    => { 'wc-bot' => {}, 'wc-burst' => {} },
	feishu   => { 'fs-bot' => { secret => 'fs-secret' } },
	dingtalk => { 'dt-bot' => { secret => 'dt-secret' } },
	apps     => {
		wecom    => { 'ww-corp' => { secret => 'wc-app-secret', agentid => 1000002 } },
		feishu   => { 'cli_app' => { secret => 'fs-app-secret' } },
		dingtalk => { 'dt-key'  => { secret => 'dt-app-secret', agent_id => 2000001 } } } });

my $node = FakeIM->node('main', 'crm.im_retry_delay' => '200ms', 'crm.im_max_attempts' => 4);

sub sql { return $node->safe_psql('postgres', $_[0]) }

sql(qq{
CREATE EXTENSION crm CASCADE;
INSERT INTO crm.department (name) VALUES ('Sales');
INSERT INTO crm.employee (name, department_id, wecom_userid, feishu_open_id, dingtalk_userid)
SELECT '王芳', id, 'wangfang', 'ou_wangfang', 'dt-wangfang' FROM crm.department;
INSERT INTO crm.im_channel (name, platform, kind, webhook_url, secret, app_id, app_secret, agent_id, api_base, events)
VALUES ('wecom robot', 'wecom', 'robot', '$base/cgi-bin/webhook/send?key=wc-bot', NULL, NULL, NULL, NULL, '$base', '{*}'),
       ('feishu robot', 'feishu', 'robot', '$base/open-apis/bot/v2/hook/fs-bot', 'fs-secret', NULL, NULL, NULL, '$base', '{*}'),
       ('dingtalk robot', 'dingtalk', 'robot', '$base/robot/send?access_token=dt-bot', 'dt-secret', NULL, NULL, NULL, '$base', '{*}'),
       ('wecom app', 'wecom', 'app', NULL, NULL, 'ww-corp', 'wc-app-secret', '1000002', '$base', '{}'),
       ('feishu app', 'feishu', 'app', NULL, NULL, 'cli_app', 'fs-app-secret', NULL, '$base', '{}'),
       ('dingtalk app', 'dingtalk', 'app', NULL, NULL, 'dt-key', 'dt-app-secret', '2000001', '$base', '{}');
});
my $emp = sql('SELECT id FROM crm.employee');

# only these channels take part in what follows
sub only { my $list = join ',', map { "'$_'" } @_; sql("UPDATE crm.im_channel SET enabled = name IN ($list)") }
sub notify { sql("SELECT crm.notify(ARRAY[$emp]::bigint[], 'transfer.received', '$_[0]', '$_[1]')") }
sub settled
{
	my ($title) = @_;
	$node->poll_query_until('postgres', qq{
		SELECT count(*) > 0 AND bool_and(d.status IN ('sent', 'dead'))
		  FROM crm.im_delivery d JOIN crm.notification n ON n.id = d.notification_id
		 WHERE n.title LIKE '$title'}) or die "deliveries of '$title' did not settle";
}
sub deliveries
{
	return sql(qq{SELECT string_agg(format('%s %s %s %s', c.name, d.status, d.attempts, coalesce(d.last_code, '-')), E'\n' ORDER BY c.id, d.id)
	                FROM crm.im_delivery d JOIN crm.im_channel c ON c.id = d.channel_id
	                JOIN crm.notification n ON n.id = d.notification_id WHERE n.title LIKE '$_[0]'});
}
sub received { return $fake->get('/_fake/received?drain=1')->{list} }

# -- every platform and kind, end to end
ok($node->poll_query_until('postgres', "SELECT application_name FROM pg_stat_activity WHERE backend_type = 'crm notification worker'",
		'crm notification worker'), 'the worker runs and shows in pg_stat_activity');
notify('客户已转给你', '杭州茶叶有限公司 (3 contacts)');
settled('客户已转给你');
is(deliveries('客户已转给你'), join("\n",
	'wecom robot sent 1 -', 'feishu robot sent 1 -', 'dingtalk robot sent 1 -',
	'wecom app sent 1 -', 'feishu app sent 1 -', 'dingtalk app sent 1 -'),
	'one notification: a delivery per channel, each sent at the first attempt');
my %got = map { ($_->{platform} . ' ' . ($_->{robot} // $_->{target})) => $_ } @{ received() };
is(join(', ', sort keys %got),
	'dingtalk dt-bot, dingtalk dt-wangfang, feishu fs-bot, feishu ou_wangfang, wecom wangfang, wecom wc-bot',
	'the fake accepted (signatures, tokens, shapes) one message per robot and per app user');
like($got{'wecom wc-bot'}{body}, qr/王芳 · 客户已转给你.*杭州茶叶有限公司/, 'a robot names the recipient, the title and the body');
like($got{'feishu ou_wangfang'}{body}, qr/"uuid":"[0-9a-f-]{36}"/, 'a Feishu app message carries the delivery\'s uuid');
like($got{'dingtalk dt-bot'}{body}, qr/"msgUuid":"[0-9a-f-]{36}"/, 'a DingTalk robot message carries msgUuid');

# -- a notification costs one round: the round that expands it into deliveries claims them
# (each of the worker's statements sees what the ones before it wrote), sends and records them
only('wecom robot');
sql(q{ALTER SYSTEM SET log_min_messages = 'debug1'});
sql('SELECT pg_reload_conf()');
my $offset = -s $node->logfile;
$node->wait_for_log(qr/crm notification worker round \d+: 0 notifications expanded/, $offset);
$offset = -s $node->logfile;
notify('one round', 'x');
settled('one round');
$node->wait_for_log(qr/crm notification worker round \d+: 1 notifications expanded/, $offset);
my ($round) = slurp_file($node->logfile, $offset) =~ /crm notification worker round \d+: (1 notifications expanded.*)/;
is($round, '1 notifications expanded, 1 deliveries claimed, 1 recorded', 'one round expands, sends and records a notification');
sql(q{ALTER SYSTEM RESET log_min_messages});
sql('SELECT pg_reload_conf()');
received();

# -- a rolled-back transaction never delivers
only('wecom robot');
sql(q{BEGIN; SELECT crm.notify(ARRAY(SELECT id FROM crm.employee), 'transfer.received', 'rolled back', NULL); ROLLBACK;});
notify('committed after', 'x');
settled('committed after');
my @bodies = map { $_->{body} } @{ received() };
is(scalar(grep { /rolled back/ } @bodies) . ' ' . scalar(grep { /committed after/ } @bodies), '0 1',
	'a rolled-back notification is never delivered, the next committed one is');

# -- a 5xx is retried with backoff, then succeeds
$fake->post('/_fake/fault', { platform => 'wecom', http_status => 502, count => 2 });
notify('after a 502', 'x');
settled('after a 502');
is(deliveries('after a 502'), 'wecom robot sent 3 -', 'two 502s are retried and the third attempt is sent');
is(scalar(grep { /after a 502/ } map { $_->{body} } @{ received() }), 1, 'and the group got it once');

# -- a permanent error ends dead with the platform's code
sql("UPDATE crm.im_channel SET webhook_url = '$base/cgi-bin/webhook/send?key=removed' WHERE name = 'wecom robot'");
notify('to a removed bot', 'x');
settled('to a removed bot');
is(deliveries('to a removed bot'), 'wecom robot dead 1 93000', 'WeCom 93000 (bot removed) is dead at once, with the code');
like(sql("SELECT last_error FROM crm.im_delivery WHERE status = 'dead'"), qr/^invalid webhook url/, 'and the platform\'s words');
sql("UPDATE crm.im_channel SET webhook_url = '$base/cgi-bin/webhook/send?key=wc-bot' WHERE name = 'wecom robot'");

# -- retries run out: dead after crm.im_max_attempts with the last error
$fake->post('/_fake/fault', { platform => 'wecom', errcode => -1, count => 4 });
notify('system busy', 'x');
settled('system busy');
is(deliveries('system busy'), 'wecom robot dead 4 -1', 'WeCom -1 (busy) is retried until crm.im_max_attempts, then dead');

is(sql(q{SELECT format('%s sent, %s dead, last %s', sent, dead, last_code) FROM crm.im_channel_status WHERE name = 'wecom robot'}),
	'4 sent, 2 dead, last -1', 'crm.im_channel_status sums up the channel: four sent, two dead, the last with WeCom -1');

# -- an expired token costs one refresh, however many messages it rejects
only('wecom app');
notify('token warm-up', 'x');
settled('token warm-up');
my $stats = $fake->get('/_fake/stats');
$fake->post('/_fake/invalidate_tokens', { platform => 'wecom' });
sql(q{SELECT crm.notify(ARRAY(SELECT id FROM crm.employee), 'transfer.received', 'token gone ' || g, NULL)
        FROM generate_series(1, 5) g});
settled('token gone %');
is(deliveries('token gone %'), join("\n", ('wecom app sent 1 -') x 5),
	'five messages rejected for an expired token are all sent after the refresh');
is($fake->get('/_fake/stats')->{token_requests}{wecom} - $stats->{token_requests}{wecom}, 1,
	'the expiry cost exactly one token request');
received();

# -- many messages for one person in a round reach them as one app message
only('wecom app');
sql(q{SELECT crm.notify(ARRAY(SELECT id FROM crm.employee), 'transfer.received', 'pile ' || g, NULL)
        FROM generate_series(1, 12) g});
settled('pile %');
my @pile = grep { $_->{body} =~ /pile/ } @{ received() };
is(scalar(@pile), 1, 'twelve notifications to one person: one WeCom app message');
like($pile[0]{body}, qr/12 notifications.*pile 1\\n.*pile 12\\n/, 'which lists them all');
is(sql(q{SELECT count(DISTINCT sent_in) || ' ' || count(*) FILTER (WHERE status = 'sent') FROM crm.im_delivery d
          JOIN crm.notification n ON n.id = d.notification_id WHERE n.title LIKE 'pile %'}), '1 12',
	'every delivery records the request that carried it');

# -- 100 messages to one robot never trip its 20-a-minute limit: the excess goes as a digest
sql("INSERT INTO crm.im_channel (name, platform, kind, webhook_url, api_base, events)
     VALUES ('wecom burst', 'wecom', 'robot', '$base/cgi-bin/webhook/send?key=wc-burst', '$base', '{*}')");
only('wecom burst');
sql(q{SELECT crm.notify(ARRAY(SELECT id FROM crm.employee), 'transfer.received', 'burst ' || g, NULL)
        FROM generate_series(1, 100) g});
settled('burst %');
is(sql(q{SELECT count(*) FILTER (WHERE status = 'sent' AND attempts = 1 AND last_code IS NULL)
           FROM crm.im_delivery d JOIN crm.notification n ON n.id = d.notification_id WHERE n.title LIKE 'burst %'}),
	100, 'all 100 sent at the first attempt, none refused for its rate');
my @burst = grep { $_->{robot} eq 'wc-burst' } @{ received() };
cmp_ok(scalar(@burst), '<=', 20, 'in at most 20 requests (' . scalar(@burst) . ')');
my %titles = map { $_ => 1 } map { /burst (\d+)/g } map { $_->{body} } @burst;
is(scalar(keys %titles), 100, 'which name all 100');
is(scalar(grep { $_->{body} =~ /\d+ notifications/ } @burst), 1, 'one of them a digest');
is(sql(q{SELECT count(DISTINCT sent_in) FROM crm.im_delivery d JOIN crm.notification n ON n.id = d.notification_id
          WHERE n.title LIKE 'burst %'}), scalar(@burst), 'sent_in names the request that carried each');

# -- a paused worker sends nothing until resumed, then is woken at once
only('wecom robot');
sql('UPDATE crm.settings SET im_paused = true');
notify('while paused', 'x');
ok($node->poll_query_until('postgres',
	"SELECT query FROM pg_stat_activity WHERE backend_type = 'crm notification worker'", 'paused: crm.settings.im_paused'),
	'pg_stat_activity shows the worker paused');
is(sql(q{SELECT count(*) FROM crm.notification WHERE title = 'while paused' AND im_pending}), 1, 'and the notification waits');
sql('ALTER SYSTEM SET crm.im_poll_interval = \'1h\''); sql('SELECT pg_reload_conf()');
sleep 1.5;    # past the last poll at the old interval: only a wake-up can bring it now
sql('UPDATE crm.settings SET im_paused = false');
settled('while paused');
is(deliveries('while paused'), 'wecom robot sent 1 -', 'resuming wakes the worker, which sends it');
sql('ALTER SYSTEM RESET crm.im_poll_interval'); sql('SELECT pg_reload_conf()');
received();

# -- kill -9 of the postmaster in the middle of a batch: nothing lost, repeats keep their key
only('feishu app');
$fake->post('/_fake/fault', { platform => 'feishu', delay_ms => 3000, count => 1000 });
# ten colleagues, one message each (several for one person would go as a digest)
sql(q{INSERT INTO crm.employee (name, department_id, feishu_open_id)
      SELECT 'colleague ' || g, department_id, 'ou_colleague_' || g FROM crm.employee, generate_series(1, 10) g
       WHERE name = '王芳'});
sql(q{SELECT crm.notify(ARRAY[e.id], 'transfer.received', 'crash ' || g, NULL)
        FROM generate_series(1, 10) g JOIN crm.employee e ON e.name = 'colleague ' || g});
ok($node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'crm notification worker' AND query LIKE 'sending%'"),
	'the worker is sending the batch');
is(sql(q{SELECT count(*) FILTER (WHERE d.status = 'pending' AND d.attempts = 0) || ' of ' || count(*)
           FROM crm.im_delivery d JOIN crm.notification n ON n.id = d.notification_id WHERE n.title LIKE 'crash %'}),
	'10 of 10', 'all ten claimed and none recorded when the postmaster is killed (each answer takes 3 s)');
my $keys = sql(q{SELECT string_agg(d.idempotency_key::text, ',' ORDER BY d.idempotency_key)
                   FROM crm.im_delivery d JOIN crm.notification n ON n.id = d.notification_id WHERE n.title LIKE 'crash %'});
my $postmaster = $node->{_pid};
$node->kill9;
$fake->post('/_fake/fault', { platform => 'feishu', count => 0 });
# the postmaster's children leave within moments of its death (the worker polls for it)
sleep 0.1 while kill 0, $postmaster;
sleep 0.5;
$node->start;
settled('crash %');
is(deliveries('crash %'), join("\n", ('feishu app sent 1 -') x 10), 'after the restart all ten are sent');
my @crash = grep { $_->{body} =~ /crash \d+/ } @{ received() };
my %uuids;
$uuids{ JSON::PP->new->decode($_->{body})->{uuid} }++ for @crash;
is(join(',', sort keys %uuids), $keys, 'the repeats carried the keys of the rows written before the crash');
is(scalar(@crash), 10, 'and the platform took each message once');

# (the crash reset the statistics: these are the updates recording the ten sends since)
ok($node->poll_query_until('postgres',
	"SELECT n_tup_upd > 0 FROM pg_stat_user_tables WHERE relid = 'crm.im_delivery'::regclass"),
	'the worker reports its writes to the statistics system');

$node->stop;
like(slurp_file($node->logfile), qr/FATAL:  terminating background worker "crm notification worker" due to administrator command/,
	'SIGTERM ends the worker as it ends PostgreSQL\'s own');
$fake->stop;
done_testing();
