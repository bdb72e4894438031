# The notification worker on a streaming standby idles (its primary's worker
# sends), takes over after promotion, and comes back after a crash of its own.
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
$fake->post('/_fake/config', { wecom => { 'wc-bot' => {} } });

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'crm'
crm.database_name = 'postgres'
crm.im_poll_interval = '1s'
});
$primary->start;
$primary->safe_psql('postgres', qq{
CREATE EXTENSION crm CASCADE;
INSERT INTO crm.department (name) VALUES ('Sales');
INSERT INTO crm.employee (name, department_id) SELECT 'Wang', id FROM crm.department;
INSERT INTO crm.im_channel (name, platform, kind, webhook_url, api_base, events)
VALUES ('group', 'wecom', 'robot', '$base/cgi-bin/webhook/send?key=wc-bot', '$base', '{*}');
});
$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
# (the test framework turns crash restarts off; a server in production restarts)
$standby->append_conf('postgresql.conf', 'restart_after_crash = on');
$standby->start;

my $worker = "SELECT query FROM pg_stat_activity WHERE backend_type = 'crm notification worker'";
ok($standby->poll_query_until('postgres', $worker, 'standby: waiting for promotion'),
	'on the standby the worker waits for promotion');

sub notify
{
	my ($node, $title) = @_;
	$node->safe_psql('postgres',
		"SELECT crm.notify(ARRAY(SELECT id FROM crm.employee), 'transfer.received', '$title', NULL)");
}
sub sent
{
	my ($node, $title) = @_;
	return $node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM crm.im_delivery d JOIN crm.notification n ON n.id = d.notification_id
		 WHERE n.title = '$title' AND d.status = 'sent'});
}
sub received { return scalar grep { $_->{body} =~ /$_[0]/ } @{ $fake->get('/_fake/received')->{list} } }

notify($primary, 'from the primary');
ok(sent($primary, 'from the primary'), 'the primary sends');
$primary->wait_for_catchup($standby);
ok(sent($standby, 'from the primary'), 'the standby sees it sent');
is(received('from the primary'), 1, 'and the group got it once, not once per server');

# a standby cannot write the audit of a duplicate look-up, so it refuses the look-up
my ($ret, $out, $err) = $standby->psql('postgres', q{\set VERBOSITY verbose
SELECT * FROM crm.find_duplicates('customer', '{"phone": "13912341017"}');});
like($err, qr/ERROR:  25006: duplicates cannot be looked up on a standby.*HINT:  Look up duplicates on the primary/s,
	'a look-up on the standby is refused');

# the primary goes away; the standby is promoted and its worker takes over
$primary->stop;
$standby->promote;
ok($standby->poll_query_until('postgres', "SELECT coalesce(query, '') NOT LIKE 'standby%' FROM pg_stat_activity
	WHERE backend_type = 'crm notification worker'"), 'after promotion the worker stops waiting');
notify($standby, 'after promotion');
ok(sent($standby, 'after promotion'), 'and sends');
$standby->safe_psql('postgres', q{SELECT * FROM crm.find_duplicates('customer', '{"phone": "13912341017"}')});
ok($standby->poll_query_until('postgres', q{SELECT count(*) = 1 FROM crm.duplicate_lookup}),
	'and audits the look-ups made on it');

# a crash of the worker alone: the postmaster resets the cluster and starts it again
my $pid = $standby->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'crm notification worker'");
kill 'KILL', $pid;
ok($standby->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'crm notification worker' AND pid <> $pid"),
	'a killed worker is started again');
notify($standby, 'after the crash');
ok(sent($standby, 'after the crash'), 'and sends again');

$standby->stop;
$fake->stop;
done_testing();
