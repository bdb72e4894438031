# The fake IM server (test/fake_im.py) issues and checks app tokens, app messages and
# directories as WeCom, Feishu and DingTalk do (docs/im-platforms.md sections 1-3 and 5):
# token lifetimes and revocation on the fake clock, token placement, body checks,
# per-member message limits and directory paging.  No PostgreSQL node is needed.
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

my $json = $FakeIM::json;
my $fake = FakeIM->start;
sub post { return $fake->post(@_) }
sub get  { return $fake->get(@_) }

my @users = map { { id => "u$_", name => "用户$_", mobile => "1380000000$_", active => JSON::PP::true } } 1 .. 7;
$users[$_]{department_ids} = [ (1, 2, 2, 3, 4, 4, 4)[$_] ] for 0 .. 6;
$users[$_]{superior_id} = 'u1' for 1 .. 6;
post('/_fake/config', {
	apps => {
		wecom    => { 'ww-corp' => { secret => 'wc-secret', agentid => 1000002 } },
		feishu   => { 'cli_app' => { secret => 'fs-secret' } },
		dingtalk => { 'ding-key' => { secret => 'dt-secret', agent_id => 123456 } } },
	directory => {
		page_size   => 2,
		departments => [
			{ id => 1, name => '公司', parent_id => undef },
			{ id => 2, name => '销售', parent_id => 1, leader => 'u2' },
			{ id => 3, name => '客服', parent_id => 1 },
			{ id => 4, name => '华东', parent_id => 2, leader => 'u5' } ],
		users => \@users } });
my @all_users = sort map { $_->{id} } @users;

sub stats { return get('/_fake/stats') }

# ---------- WeCom ----------
my $r = get('/cgi-bin/gettoken?corpid=nobody&corpsecret=wc-secret');
is($r->{errcode}, 40013, 'wecom: an unknown corpid gives 40013');
$r = get('/cgi-bin/gettoken?corpid=ww-corp&corpsecret=wrong');
is($r->{errcode}, 40001, 'wecom: a wrong secret gives 40001');
$r = get('/cgi-bin/gettoken?corpid=ww-corp&corpsecret=wc-secret');
is("$r->{errcode} $r->{expires_in}", '0 7200', 'wecom: good credentials get a token for 7200 s');
my $wc = $r->{access_token};
is(get('/cgi-bin/gettoken?corpid=ww-corp&corpsecret=wc-secret')->{access_token}, $wc,
	'wecom: the same token is returned while valid');

my $wc_msg = { touser => 'u1', msgtype => 'text', agentid => 1000002, text => { content => '跟进提醒' } };
$r = post("/cgi-bin/message/send?access_token=$wc", $wc_msg);
is("$r->{errcode} $r->{errmsg}", '0 ok', 'wecom: an app message is accepted');
my $wc_body = $json->encode($wc_msg);
$r = post('/cgi-bin/message/send', $wc_msg);
is($r->{errcode}, 41001, 'wecom: a token missing from the query gives 41001');
$r = post('/cgi-bin/message/send?access_token=garbage', $wc_msg);
is($r->{errcode}, 40014, 'wecom: an unknown token gives 40014');
$r = post("/cgi-bin/message/send?access_token=$wc", { %$wc_msg, agentid => '1000002' });
is($r->{errcode}, 40058, 'wecom: agentid as a string is rejected with 40058');
$r = post("/cgi-bin/message/send?access_token=$wc", { %$wc_msg, text => { content => 'x' x 2049 } });
is($r->{errcode}, 45002, 'wecom: a text of 2049 bytes is rejected with 45002');

post('/_fake/clock', { offset_seconds => 7201 });
$r = post("/cgi-bin/message/send?access_token=$wc", $wc_msg);
is($r->{errcode}, 42001, 'wecom: after expiry the old token gives 42001');
my $wc2 = get('/cgi-bin/gettoken?corpid=ww-corp&corpsecret=wc-secret')->{access_token};
isnt($wc2, $wc, 'wecom: a fresh token is issued after expiry');
is(post("/cgi-bin/message/send?access_token=$wc2", $wc_msg)->{errcode}, 0, 'wecom: the fresh token works');
post('/_fake/clock', { offset_seconds => 0 });

my $issued = stats()->{tokens_issued}{wecom};
post('/_fake/invalidate_tokens', { platform => 'wecom' });
is(post("/cgi-bin/message/send?access_token=$wc2", $wc_msg)->{errcode}, 42001,
	'wecom: a revoked token gives 42001');
my $wc3 = get('/cgi-bin/gettoken?corpid=ww-corp&corpsecret=wc-secret')->{access_token};
is(post("/cgi-bin/message/send?access_token=$wc3", $wc_msg)->{errcode}, 0, 'wecom: the re-fetched token works');
is(stats()->{tokens_issued}{wecom}, $issued + 1, 'wecom: exactly one new token issued after revocation');

my $received = decode_json($fake->get_raw("/_fake/received?drain=1")->{content});
is_deeply([ map { [ @$_{qw(platform target msgtype body)} ] } @$received ],
	[ ([ 'wecom', 'u1', 'text', $wc_body ]) x 3 ],
	'wecom: exactly the accepted app messages are recorded (platform, target, msgtype, raw body)');

my @codes = map { post("/cgi-bin/message/send?access_token=$wc3", { %$wc_msg, touser => 'u3' })->{errcode} } 1 .. 31;
is("@codes", join(' ', (0) x 31), 'wecom: 31 messages to one member in a minute all answer errcode 0');
$received = decode_json($fake->get_raw("/_fake/received?drain=1")->{content});
is(scalar(@$received), 30, 'wecom: the 31st message to one member in a minute is silently dropped');

# ---------- Feishu ----------
$r = post('/open-apis/auth/v3/tenant_access_token/internal', { app_id => 'cli_app', app_secret => 'wrong' });
is($r->{code}, 10014, 'feishu: a wrong app_secret gives 10014');
$r = post('/open-apis/auth/v3/tenant_access_token/internal', { app_id => 'cli_app', app_secret => 'fs-secret' });
is("$r->{code} $r->{expire}", '0 7200', 'feishu: good credentials get a token for 7200 s');
my $fs = $r->{tenant_access_token};
post('/_fake/clock', { offset_seconds => 3600 });
is(post('/open-apis/auth/v3/tenant_access_token/internal', { app_id => 'cli_app', app_secret => 'fs-secret' })
	  ->{tenant_access_token}, $fs, 'feishu: the same token is returned while more than 30 min remain');
post('/_fake/clock', { offset_seconds => 6000 });
my $fs_second = post('/open-apis/auth/v3/tenant_access_token/internal', { app_id => 'cli_app', app_secret => 'fs-secret' })
  ->{tenant_access_token};
isnt($fs_second, $fs, 'feishu: a second token is issued when less than 30 min remain');

my $fs_text = { receive_id => 'ou_u1', msg_type => 'text', content => $json->encode({ text => '新线索' }) };
my $fs_path = '/open-apis/im/v1/messages?receive_id_type=open_id';
sub fs_send { my ($token, $body) = @_; return post($fs_path, $body, { Authorization => "Bearer $token" }) }
is(fs_send($fs, $fs_text)->{code}, 0, 'feishu: the first token stays valid beside the second');
$r = post($fs_path, $fs_text);
is("$r->{_status} $r->{code}", '400 99991661', 'feishu: a missing Authorization header gives HTTP 400 99991661');
post('/_fake/clock', { offset_seconds => 7201 });
$r = fs_send($fs, $fs_text);
is("$r->{_status} $r->{code}", '400 99991663', 'feishu: after expiry the old token gives HTTP 400 99991663');
is(fs_send($fs_second, $fs_text)->{code}, 0, 'feishu: the later token still works');

$r = fs_send($fs_second, { %$fs_text, content => { text => '新线索' } });
is("$r->{_status} $r->{code}", '400 230001', 'feishu: content as an object is rejected with HTTP 400 230001');
$issued = stats()->{tokens_issued}{feishu};
post('/_fake/invalidate_tokens', { platform => 'feishu' });
is(fs_send($fs_second, $fs_text)->{code}, 99991663, 'feishu: a revoked token gives 99991663');
my $fs3 = post('/open-apis/auth/v3/tenant_access_token/internal', { app_id => 'cli_app', app_secret => 'fs-secret' })
  ->{tenant_access_token};
is(fs_send($fs3, $fs_text)->{code}, 0, 'feishu: the re-fetched token works');
is(stats()->{tokens_issued}{feishu}, $issued + 1, 'feishu: exactly one new token issued after revocation');

my $first = fs_send($fs3, { %$fs_text, uuid => 'lead-42' });
my $again = fs_send($fs3, { %$fs_text, uuid => 'lead-42' });
is($again->{data}{message_id}, $first->{data}{message_id}, 'feishu: a repeated uuid gets the same message_id');
$received = decode_json($fake->get_raw("/_fake/received?drain=1")->{content});
is(scalar(grep { $_->{platform} eq 'feishu' } @$received), 4, 'feishu: a repeated uuid is recorded once');

# on a frozen clock: six messages inside one second however slow the machine
post('/_fake/clock', { offset_seconds => 0, frozen => JSON::PP::true });
@codes = map { fs_send($fs3, { %$fs_text, receive_id => 'ou_u4' })->{code} } 1 .. 6;
is("@codes", '0 0 0 0 0 230020', 'feishu: the 6th message to one user in a second gets 230020');
post('/_fake/clock', { offset_seconds => 0 });

# ---------- DingTalk ----------
$r = get('/gettoken?appkey=ding-key&appsecret=wrong');
is($r->{errcode}, 40096, 'dingtalk: a wrong appsecret gives 40096');
$r = get('/gettoken?appkey=ding-key&appsecret=dt-secret');
is("$r->{errcode} $r->{expires_in}", '0 7200', 'dingtalk: good credentials get a token for 7200 s');
my $dt = $r->{access_token};
is(get('/gettoken?appkey=ding-key&appsecret=dt-secret')->{access_token}, $dt,
	'dingtalk: the same token is returned while valid');

my $notice = { agent_id => 123456, userid_list => 'u1,u2', msg => { msgtype => 'text', text => { content => '请提交日报' } } };
my $dt_path = '/topapi/message/corpconversation/asyncsend_v2';
$r = post("$dt_path?access_token=$dt", $notice);
ok($r->{errcode} == 0 && $r->{task_id}, 'dingtalk: a work notice is accepted with a task_id');
$r = post("$dt_path?access_token=$dt", $notice);
is($r->{errcode}, 0, 'dingtalk: the same notice again the same day is accepted');
$r = post("/topapi/message/corpconversation/getsendresult?access_token=$dt", { agent_id => 123456, task_id => $r->{task_id} });
is_deeply([ sort @{ $r->{send_result}{forbidden_user_id_list} } ], [ 'u1', 'u2' ],
	'dingtalk: getsendresult lists the duplicate recipients as forbidden');
is($r->{send_result}{forbidden_list}[0]{code}, '143106', 'dingtalk: with code 143106');
$r = post($dt_path, $notice);
is("$r->{errcode} $r->{sub_code}", '88 40000', 'dingtalk: a missing token gives 88 / 40000');
$r = post("$dt_path?access_token=$dt", { %$notice, agent_id => '123456' });
is($r->{errcode}, 40035, 'dingtalk: agent_id as a string is rejected with 40035');

post('/_fake/clock', { offset_seconds => 7201 });
$r = post("$dt_path?access_token=$dt", $notice);
is("$r->{_status} $r->{errcode} $r->{sub_code}", '200 88 40014', 'dingtalk: after expiry the old token gives 88 / 40014');
my $dt2 = get('/gettoken?appkey=ding-key&appsecret=dt-secret')->{access_token};
is(post("$dt_path?access_token=$dt2", { %$notice, userid_list => 'u3' })->{errcode}, 0,
	'dingtalk: a fresh token works after expiry');
$issued = stats()->{tokens_issued}{dingtalk};
post('/_fake/invalidate_tokens', { platform => 'dingtalk' });
is(post("$dt_path?access_token=$dt2", $notice)->{sub_code}, '40014', 'dingtalk: a revoked token gives 88 / 40014');
my $dt3 = get('/gettoken?appkey=ding-key&appsecret=dt-secret')->{access_token};
is(stats()->{tokens_issued}{dingtalk}, $issued + 1, 'dingtalk: exactly one new token issued after revocation');
post('/_fake/clock', { offset_seconds => 0 });

$received = decode_json($fake->get_raw("/_fake/received?drain=1")->{content});
is_deeply([ map { $_->{target} } grep { $_->{platform} eq 'dingtalk' } @$received ], [ 'u1,u2', 'u3' ],
	'dingtalk: duplicate notices are not recorded');

# ---------- directories: every seeded user exactly once across pages of 2 ----------
$r = get("/cgi-bin/department/list?access_token=$wc3");
is_deeply([ map { "$_->{id}:$_->{parentid}" } @{ $r->{department} } ], [ '1:0', '2:1', '4:2', '3:1' ],
	'wecom: department/list is recursive from the root');
my (@seen, $cursor);
do
{
	$r = post("/cgi-bin/user/list_id?access_token=$wc3", { cursor => $cursor // '', limit => 10000 });
	push @seen, map { $_->{userid} } @{ $r->{dept_user} };
	$cursor = $r->{next_cursor};
} while ($cursor ne '' && @seen < 100);
is_deeply([ sort @seen ], \@all_users, 'wecom: user/list_id pages through every user exactly once');

my @depts = ('0');
my $token;
do
{
	$r = get('/open-apis/contact/v3/departments/0/children?fetch_child=true&page_size=50'
		  . ($token ? "&page_token=$token" : ''), undef, { Authorization => "Bearer $fs3" });
	push @depts, map { $_->{open_department_id} } @{ $r->{data}{items} };
	$token = $r->{data}{page_token};
} while ($r->{data}{has_more});
is(scalar(@depts), 4, 'feishu: children with fetch_child pages through every department');
@seen = ();
for my $d (@depts)
{
	$token = undef;
	do
	{
		$r = get("/open-apis/contact/v3/users/find_by_department?department_id=$d&page_size=50&user_id_type=user_id"
			  . ($token ? "&page_token=$token" : ''), undef, { Authorization => "Bearer $fs3" });
		push @seen, map { $_->{user_id} } @{ $r->{data}{items} };
		$token = $r->{data}{page_token};
	} while ($r->{data}{has_more});
}
is_deeply([ sort @seen ], \@all_users, 'feishu: find_by_department pages through every user exactly once');
$r = get('/open-apis/contact/v3/users/find_by_department?department_id=0&page_size=51', undef,
	{ Authorization => "Bearer $fs3" });
is("$r->{_status} $r->{code}", '400 40011', 'feishu: page_size 51 gives HTTP 400 40011');

my @queue = (1);
@seen = ();
while (defined(my $d = shift @queue))
{
	push @queue, map { $_->{dept_id} } @{ post("/topapi/v2/department/listsub?access_token=$dt3", { dept_id => $d })->{result} };
	my $c = 0;
	do
	{
		$r = post("/topapi/v2/user/list?access_token=$dt3", { dept_id => $d, cursor => $c, size => 100 })->{result};
		push @seen, map { $_->{userid} } @{ $r->{list} };
		$c = $r->{next_cursor};
	} while ($r->{has_more});
}
is_deeply([ sort @seen ], \@all_users, 'dingtalk: listsub + user/list page through every user exactly once');

# open-API limits (5.4 item 14), low for the test: the 3rd call in a minute to one API
post('/_fake/config', { api_limits => { feishu => 2 } });
my $limited = '/open-apis/contact/v3/users/find_by_department?department_id=0';
get($limited, undef, { Authorization => "Bearer $fs3" }) for 1 .. 2;
my $raw = $fake->get_raw($limited, { Authorization => "Bearer $fs3" });
is("$raw->{status} " . decode_json($raw->{content})->{code}, '429 99991400',
	'feishu: past the open-API limit a call gets HTTP 429 99991400');
ok($raw->{headers}{'x-ogw-ratelimit-reset'} > 0, 'feishu: with x-ogw-ratelimit-reset');
post('/_fake/config', { api_limits => {} });

$fake->stop;
done_testing();
