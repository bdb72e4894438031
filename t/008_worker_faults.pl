# How the notification worker classifies what goes wrong: a garbled answer,
# a timeout, nobody listening, a rejected signature, and DingTalk's 10-minute
# block of a robot that sent too fast, which silences that channel only.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use FakeIM;

my $fake = FakeIM->start;
my $base = $fake->base;
$fake->post('/_fake/config', {
	wecom    => { 'wc-bot' => {} },
	dingtalk => { 'dt-bot' => { secret => 'dt-secret' }, 'dt-other' => { secret => 'dt-secret' } } });

my $node = FakeIM->node('main', 'crm.im_retry_delay' => '100ms', 'crm.im_max_attempts' => 3,
	'crm.im_request_timeout' => '500ms');
sub sql { return $node->safe_psql('postgres', $_[0]) }
sql(qq{
CREATE EXTENSION crm CASCADE;
INSERT INTO crm.department (name) VALUES ('Sales');
INSERT INTO crm.employee (name, department_id) SELECT 'Wang', id FROM crm.department;
INSERT INTO crm.im_channel (name, platform, kind, webhook_url, secret, api_base, events, enabled) VALUES
	('wecom', 'wecom', 'robot', '$base/cgi-bin/webhook/send?key=wc-bot', NULL, '$base', '{*}', false),
	('nobody', 'wecom', 'robot', 'http://127.0.0.1:1/cgi-bin/webhook/send?key=x', NULL, '$base', '{*}', false),
	('bad secret', 'dingtalk', 'robot', '$base/robot/send?access_token=dt-bot', 'not-the-secret', '$base', '{*}', false),
	('dingtalk', 'dingtalk', 'robot', '$base/robot/send?access_token=dt-bot', 'dt-secret', '$base', '{*}', false),
	('dingtalk other', 'dingtalk', 'robot', '$base/robot/send?access_token=dt-other', 'dt-secret', '$base', '{*}', false);
});

sub only { my $list = join ',', map { "'$_'" } @_; sql("UPDATE crm.im_channel SET enabled = name IN ($list)") }
sub notify { sql("SELECT crm.notify(ARRAY(SELECT id FROM crm.employee), 'transfer.received', '$_[0]', NULL)") }
sub outcome
{
	my ($title, $until) = @_;
	$node->poll_query_until('postgres', qq{
		SELECT bool_and($until) FROM crm.im_delivery d JOIN crm.notification n ON n.id = d.notification_id
		 WHERE n.title = '$title'}) or die "'$title' never reached $until";
	return sql(qq{SELECT string_agg(format('%s %s %s %s', c.name, d.status, d.attempts, d.last_code), E'\n' ORDER BY c.name)
	                FROM crm.im_delivery d JOIN crm.im_channel c ON c.id = d.channel_id
	                JOIN crm.notification n ON n.id = d.notification_id WHERE n.title = '$title'});
}

# a garbled 200 may have been delivered: retried (the platform's duplicate check guards a repeat)
only('wecom');
$fake->post('/_fake/fault', { platform => 'wecom', malformed => JSON::PP::true, count => 1 });
notify('garbled');
is(outcome('garbled', "d.status = 'sent'"), 'wecom sent 2 ', 'a garbled answer is retried, then sent');

# a reply slower than crm.im_request_timeout is a transport failure, retried
$fake->post('/_fake/fault', { platform => 'wecom', delay_ms => 1500, count => 1 });
notify('slow');
is(outcome('slow', "d.status = 'sent'"), 'wecom sent 2 ', 'a timeout is retried, then sent');

# nobody listening: retried until crm.im_max_attempts, then dead
only('nobody');
notify('unreachable');
is(outcome('unreachable', "d.status = 'dead'"), 'nobody dead 3 transport', 'no connection: retried, then dead as transport');

# a wrong robot secret is DingTalk's 310000: permanent
only('bad secret');
notify('bad signature');
is(outcome('bad signature', "d.status = 'dead'"), 'bad secret dead 1 310000', 'a rejected signature is dead at once');

# DingTalk blocks a robot that sent 20 in a minute for 10 minutes; crm waits it out on that
# channel only.  The fake's window for dt-bot is filled behind the worker's back.
only('dingtalk', 'dingtalk other');
for my $i (1 .. 20)
{
	my $ts = int(time * 1000);
	my $sign = sql("SELECT crm.im_robot_sign('dingtalk', 'dt-secret', $ts)");
	$fake->post("/robot/send?access_token=dt-bot&timestamp=$ts&sign=$sign",
		{ msgtype => 'text', text => { content => "filler $i" } });
}
notify('blocked');
is(outcome('blocked', "d.status IN ('sent', 'failed')"), "dingtalk failed 1 410100\ndingtalk other sent 1 ",
	'the robot over its limit fails with 410100, the other robot of the platform is not held up');
cmp_ok(sql(q{SELECT round(extract(epoch FROM d.next_attempt_at - now()) / 60) FROM crm.im_delivery d
               JOIN crm.im_channel c ON c.id = d.channel_id WHERE c.name = 'dingtalk' AND d.status = 'failed'}),
	'>=', 9, 'and is tried again after the ten minutes');
notify('while blocked');
$node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM crm.im_delivery d JOIN crm.notification n ON n.id = d.notification_id
	WHERE n.title = 'while blocked' AND d.status = 'sent'});
is(sql(q{SELECT d.status || ' ' || d.attempts || ' ' || (d.next_attempt_at > now() + interval '9 minutes')
           FROM crm.im_delivery d JOIN crm.im_channel c ON c.id = d.channel_id
           JOIN crm.notification n ON n.id = d.notification_id WHERE n.title = 'while blocked' AND c.name = 'dingtalk'}),
	'pending 0 true', 'a new message to the blocked robot waits for the block to end without an attempt');

# A round that fails is caught, logged with the delivery it concerns, and the worker goes on:
# a delivery whose outcome cannot be recorded (a superuser planted attempts at the integer's
# limit) neither ends the worker nor repeats the messages sent beside it.
sub worker_pid { sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'crm notification worker'") }
only('wecom');
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM crm.im_delivery WHERE status IN ('pending', 'failed') AND next_attempt_at < now() + interval '1 minute' AND channel_id = (SELECT id FROM crm.im_channel WHERE name = 'wecom')");
$fake->get('/_fake/received?drain=1');
my $pid = worker_pid();
ok($pid, 'the worker runs');
my $log_at = -s $node->logfile;
sql(q{
BEGIN;
SELECT crm.notify(ARRAY(SELECT id FROM crm.employee), 'transfer.received', 'planted', NULL);
UPDATE crm.notification SET im_pending = false WHERE title = 'planted';
INSERT INTO crm.im_delivery (notification_id, channel_id, attempts)
SELECT n.id, c.id, 2147483647 FROM crm.notification n, crm.im_channel c WHERE n.title = 'planted' AND c.name = 'wecom';
SELECT crm.notify(ARRAY(SELECT id FROM crm.employee), 'transfer.received', 'beside it', NULL);
COMMIT;
});
my $planted = sql(q{SELECT d.id FROM crm.im_delivery d JOIN crm.notification n ON n.id = d.notification_id WHERE n.title = 'planted'});
is(outcome('beside it', "d.status = 'sent'"), 'wecom sent 1 ', 'the message sent beside the bad row is recorded');
notify('after it');
is(outcome('after it', "d.status = 'sent'"), 'wecom sent 1 ', 'and the worker goes on with the next one');
my %count;
$count{$_}++ for map { /(planted|beside it|after it)/ ? $1 : () } map { $_->{body} } @{ $fake->get('/_fake/received')->{list} };
is(join(', ', map { "$_ $count{$_}" } sort keys %count), 'after it 1, beside it 1, planted 1',
	'each message reached the group once: nothing claimed was sent again');
is(worker_pid(), $pid, 'by the same worker process');
my $log = substr(slurp_file($node->logfile), $log_at);
like($log, qr/could not record the outcome of IM delivery $planted\b/, 'the log names the delivery that could not be recorded');
unlike($log, qr/terminated|exited with exit code|crm notification worker started/, 'and shows no worker exit or restart');
sql("DELETE FROM crm.im_delivery WHERE id = $planted");

# What a platform or a proxy answers is stored as valid UTF-8, cut on a character boundary
# at 300 bytes, whatever the bytes: a dump of the database then restores.
sub answer_with
{
	my ($title, $status, $bytes) = @_;
	$fake->post('/_fake/fault', { platform => 'wecom', http_status => $status, body_hex => unpack('H*', $bytes), count => 1 });
	notify($title);
	outcome($title, "d.status = 'dead'");
	return sql(qq{SELECT format('%s %s %s', d.last_code, octet_length(d.last_error), d.last_error)
	                FROM crm.im_delivery d JOIN crm.notification n ON n.id = d.notification_id WHERE n.title = '$title'});
}
# (this file is bytes: no "use utf8")
my $words = 'x' . ('错' x 200);
is(answer_with('long words', 200, qq({"errcode":93000,"errmsg":"$words"})), '93000 298 x' . ('错' x 99),
	'a platform\'s long non-ASCII words are cut at a character boundary within 300 bytes');
my $page = "<html>\xff\xfe proxy \xe4\xbb error</html>";
my $fffd = "\xef\xbf\xbd";
is(answer_with('proxy page', 403, $page), "http 403 38 <html>$fffd$fffd proxy $fffd$fffd error</html>",
	'bytes of a proxy\'s page that are not UTF-8 are each replaced by U+FFFD');
my $big = '<p> ' . ('代理错误' x 30000) . '</p>';
is(answer_with('huge page', 403, $big), 'http 403 298 <p> ' . ('代理错误' x 24) . '代理',
	'a huge page is cut within 300 bytes, on a character boundary');
# DingTalk's sub-code is the platform's text too: clipped on a character boundary
# (jansson refuses an answer that is not UTF-8, which is then retried as garbled)
{
	my $answer = qq({"errcode":88,"errmsg":"x","sub_code":") . ('错' x 50) . '"}';
	$fake->post('/_fake/fault', { platform => 'dingtalk', http_status => 200, body_hex => unpack('H*', $answer), count => 1 });
	only('dingtalk other');
	notify('sub code');
	is(outcome('sub code', "d.status = 'dead'"), 'dingtalk other dead 1 88/' . ('错' x 10),
		'a DingTalk sub-code of 50 characters is stored cut at a character boundary');
}
my $dump = "${PostgreSQL::Test::Utils::tmp_check}/worker_faults.sql";
command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump of the database');
sql('CREATE DATABASE restored');
{
	local $ENV{PGOPTIONS} = '-c crm.restoring=on';
	command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump ],
		'restores into a new database with psql');
}
my $errors = q{SELECT string_agg(last_error, ' | ' ORDER BY id) FROM crm.im_delivery WHERE last_error IS NOT NULL};
is($node->safe_psql('restored', $errors), sql($errors), 'with every platform\'s words as they were');

my @starts = slurp_file($node->logfile) =~ /crm notification worker started/g;
is(scalar(@starts), 1, 'through every fault of this file (garbled, slow, unreachable, refused, blocked, a planted row, bodies that are not UTF-8) the worker never restarted');

$node->stop;
$fake->stop;
done_testing();
