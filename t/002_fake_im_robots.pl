# The fake IM server (test/fake_im.py) checks group-robot messages as strictly as
# WeCom, Feishu and DingTalk do (docs/im-platforms.md): crm's signatures pass, the
# classic signing mistakes, stale timestamps, unknown bots and bursts fail with
# the platforms' codes, and only accepted messages are recorded.
use strict;
use warnings;
use utf8;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Digest::SHA qw(hmac_sha256_base64);
use JSON::PP;
use FindBin;
use lib $FindBin::RealBin;
use FakeIM;

my $json = $FakeIM::json;
my $fake = FakeIM->start;
sub post { return $fake->post(@_) }

post('/_fake/config', {
	wecom    => { 'wc-key' => {}, 'wc-burst' => {} },
	feishu   => { 'fs-bot' => { secret => 'demo-feishu-secret' }, 'fs-kw' => { keywords => ['告警'] } },
	dingtalk => { 'dt-bot' => { secret => 'SEC0123456789abcdef' }, 'dt-burst' => {} } });

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'crm'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION crm CASCADE');

sub crm_sign
{
	my ($platform, $secret, $ts) = @_;
	return $node->safe_psql('postgres', "SELECT crm.im_robot_sign('$platform', '$secret', $ts)");
}

my @accepted;    # what /_fake/received must list, in order

# Feishu: crm's signature is accepted
my $now = time;
my $text = { msg_type => 'text', content => { text => '客户 Hangzhou Tea Co 已转给你' } };
my $body = $json->encode({ %$text, timestamp => "$now", sign => crm_sign('feishu', 'demo-feishu-secret', $now) });
my $r = post('/open-apis/bot/v2/hook/fs-bot', $body);
is("$r->{_status} $r->{code} $r->{msg}", '200 0 success', 'feishu: a message signed by crm.im_robot_sign is accepted');
push @accepted, [ 'feishu', 'fs-bot', 'text', $body ];

# Feishu: the DingTalk-style computation (key = secret, message = ts\nsecret) is the classic bug
my $wrong = hmac_sha256_base64("$now\ndemo-feishu-secret", 'demo-feishu-secret') . '=';
$r = post('/open-apis/bot/v2/hook/fs-bot', { %$text, timestamp => "$now", sign => $wrong });
is_deeply($r, { _status => 200, code => 19021, data => {},
		msg => 'sign match fail or timestamp is not within one hour from current time' },
	'feishu: a DingTalk-style signature is rejected with 19021');

my $old = $now - 7200;
$r = post('/open-apis/bot/v2/hook/fs-bot',
	{ %$text, timestamp => "$old", sign => crm_sign('feishu', 'demo-feishu-secret', $old) });
is($r->{code}, 19021, 'feishu: a correct signature two hours old is rejected with 19021');

$r = post('/open-apis/bot/v2/hook/fs-bot', $text);
is($r->{code}, 19021, 'feishu: an unsigned message to a bot with a secret is rejected with 19021');

$r = post('/open-apis/bot/v2/hook/fs-kw', { msg_type => 'text', content => { text => 'hello' } });
is($r->{code}, 19024, 'feishu: a message without a configured keyword is rejected with 19024');

$r = post('/open-apis/bot/v2/hook/fs-kw', { msg_type => 'text', content => '告警' });
is($r->{code}, 9499, 'feishu: a webhook content that is a string, not an object, is rejected with 9499');

# DingTalk: crm's percent-encoded signature goes in the query
my $ms = $now * 1000;
my $dt_body = '{"msgtype":"text","text":{"content":"新线索"}}';
$r = post("/robot/send?access_token=dt-bot&timestamp=$ms&sign=" . crm_sign('dingtalk', 'SEC0123456789abcdef', $ms),
	$dt_body);
is("$r->{errcode} $r->{errmsg}", '0 ok', 'dingtalk: a message signed by crm.im_robot_sign is accepted');
push @accepted, [ 'dingtalk', 'dt-bot', 'text', $dt_body ];

# a timestamp of the last second whose signature holds a "+", which must be sent as %2B
my ($plus_ts, $plus_sign) = split /\|/, $node->safe_psql('postgres', qq{
	SELECT ts || '|' || s FROM generate_series($ms - 999, $ms) ts,
	       crm.im_robot_sign('dingtalk', 'SEC0123456789abcdef', ts) s
	WHERE s LIKE '%\\%2B%' ORDER BY ts DESC LIMIT 1});
SKIP:
{
	skip 'no signature with a "+" in this second', 1 unless $plus_sign;
	(my $raw_plus = $plus_sign) =~ s/%([0-9A-F]{2})/chr hex $1/ge;
	$r = post("/robot/send?access_token=dt-bot&timestamp=$plus_ts&sign=$raw_plus", $dt_body);
	is("$r->{errcode} $r->{errmsg}", '310000 sign not match',
		'dingtalk: a signature with a raw, unencoded "+" is rejected with 310000');
}

my $old_ms = $old * 1000;
$r = post("/robot/send?access_token=dt-bot&timestamp=$old_ms&sign=" . crm_sign('dingtalk', 'SEC0123456789abcdef', $old_ms),
	$dt_body);
is("$r->{errcode} $r->{errmsg}", '310000 invalid timestamp',
	'dingtalk: a correct signature two hours old is rejected with 310000');

$r = post('/robot/send?access_token=nobody', $dt_body);
is("$r->{errcode} $r->{errmsg}", '300005 token is not exist', 'dingtalk: an unknown access_token gives 300005');

# WeCom: the key is the only credential; 20 messages a minute per bot
my $wc_body = '{"msgtype":"markdown","markdown":{"content":"**跟进提醒**"}}';
$r = post('/cgi-bin/webhook/send?key=unknown', $wc_body);
is($r->{errcode}, 93000, 'wecom: an unknown key gives 93000');
like($r->{errmsg}, qr/^invalid webhook url, hint: \[/, 'wecom: the errmsg carries the hint suffix');

$r = post('/cgi-bin/webhook/send?key=wc-key', { msgtype => 'text', text => { content => 'x' x 2049 } });
is($r->{errcode}, 40058, 'wecom: a text content of 2049 bytes is rejected with 40058');

# on a frozen clock, so that the bursts fit in a minute however slow the machine
post('/_fake/clock', { offset_seconds => 0, frozen => JSON::PP::true });
my @codes;
for (1 .. 21)
{
	push @codes, post('/cgi-bin/webhook/send?key=wc-burst', $wc_body)->{errcode};
	push @accepted, [ 'wecom', 'wc-burst', 'markdown', $wc_body ] if $_ <= 20;
}
is("@codes", join(' ', (0) x 20, 45009), 'wecom: 20 messages in a minute pass, the 21st gets 45009');

# DingTalk: the 21st message in a minute blocks the bot for 10 minutes
@codes = ();
for (1 .. 21)
{
	push @codes, post('/robot/send?access_token=dt-burst', $dt_body)->{errcode};
	push @accepted, [ 'dingtalk', 'dt-burst', 'text', $dt_body ] if $_ <= 20;
}
is("@codes", join(' ', (0) x 20, 410100), 'dingtalk: 20 messages in a minute pass, the 21st gets 410100');
post('/_fake/clock', { offset_seconds => 300 });
is(post('/robot/send?access_token=dt-burst', $dt_body)->{errcode}, 410100,
	'dingtalk: the bot is still blocked 5 minutes later');
post('/_fake/clock', { offset_seconds => 660 });
is(post('/robot/send?access_token=dt-burst', $dt_body)->{errcode}, 0,
	'dingtalk: the bot accepts messages again 11 minutes later');
push @accepted, [ 'dingtalk', 'dt-burst', 'text', $dt_body ];
post('/_fake/clock', { offset_seconds => 0 });

# fault injection: one 503, then normal service
post('/_fake/fault', { platform => 'wecom', http_status => 503, count => 1 });
$r = post('/cgi-bin/webhook/send?key=wc-key', $wc_body);
is($r->{_status}, 503, 'fault: the next wecom call fails with HTTP 503');
$r = post('/cgi-bin/webhook/send?key=wc-key', $wc_body);
is("$r->{_status} $r->{errcode}", '200 0', 'fault: the call after it succeeds');
push @accepted, [ 'wecom', 'wc-key', 'markdown', $wc_body ];

# bodies built by crm.im_payload from a body far over every limit, signed by crm
# as the worker will sign them: each robot takes them as they are
sub crm_payload
{
	my ($platform) = @_;
	my $payload = $node->safe_psql('postgres',
		"SELECT crm.im_payload('$platform', 'robot', NULL, NULL, '新线索', repeat('客户来电咨询报价。\"', 4000), NULL)");
	utf8::decode($payload);
	return $payload;
}
my $wc_long = crm_payload('wecom');
is(post('/cgi-bin/webhook/send?key=wc-key', $wc_long)->{errcode}, 0, 'wecom: a long message cut by crm.im_payload is accepted');
push @accepted, [ 'wecom', 'wc-key', 'markdown', $wc_long ];
$now = time;
my $fs_long = crm_payload('feishu');
$fs_long = substr($fs_long, 0, -1) . qq(,"timestamp":"$now","sign":") . crm_sign('feishu', 'demo-feishu-secret', $now) . '"}';
is(post('/open-apis/bot/v2/hook/fs-bot', $fs_long)->{code}, 0,
	'feishu: a long message cut by crm.im_payload and signed by crm is accepted');
push @accepted, [ 'feishu', 'fs-bot', 'text', $fs_long ];
my $dt_long = crm_payload('dingtalk');
$ms = time * 1000;
is(post("/robot/send?access_token=dt-bot&timestamp=$ms&sign=" . crm_sign('dingtalk', 'SEC0123456789abcdef', $ms), $dt_long)->{errcode},
	0, 'dingtalk: a long message cut by crm.im_payload and signed by crm is accepted');
push @accepted, [ 'dingtalk', 'dt-bot', 'markdown', $dt_long ];

# the record: exactly the accepted messages, in order, then drained
my $received = decode_json($fake->get_raw("/_fake/received?drain=1")->{content});
is_deeply([ map { [ @$_{qw(platform robot msgtype body)} ] } @$received ], \@accepted,
	'/_fake/received lists exactly the accepted messages (platform, robot, msgtype, raw body)');
is($fake->get_raw("/_fake/received")->{content}, '[]', '/_fake/received?drain=1 empties the record');

$fake->stop;
$node->stop;
done_testing();
