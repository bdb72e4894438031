# PostGraphile 4 (npm, installed by test/deps.sh) in front of crm, set up as
# docs/identity.md says: a NOINHERIT login in crm_authenticator that may switch
# to a web role in crm_user, the employee id in the JWT claim employee_id.  It
# builds its schema from crm as that login, and each token sees exactly what
# the employee it names sees in psql; a token that names nobody sees nothing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use HTTP::Tiny;
use JSON::PP;
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use Encode qw(decode_utf8);

my $serve = 'test/postgraphile/serve.js';
ok(-d 'test/postgraphile/node_modules/postgraphile', 'PostGraphile is installed (test/deps.sh, which make test runs)')
  or done_testing(), exit;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'crm'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION crm CASCADE');
$node->command_ok([ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-f', 'demo/company.sql' ],
	'the demo company loads');
$node->safe_psql('postgres', q{
	CREATE ROLE graphile_web NOLOGIN IN ROLE crm_user;
	CREATE ROLE graphile LOGIN NOINHERIT;
	GRANT crm_authenticator, graphile_web TO graphile;
});
my %id = map { split /\|/ } split /\n/,
  $node->safe_psql('postgres', q{SELECT db_role, id FROM crm.employee WHERE db_role IN ('liu_yang', 'wang_fang')});

# PostGraphile on a free port of 127.0.0.1, connected over the cluster's socket
my $secret = 'tap-jwt-secret';
my $port = PostgreSQL::Test::Cluster::get_free_port();
my ($in, $out, $err) = ('', '', '');
my $run;
{
	local %ENV = (%ENV, PGHOST => $node->host, PGPORT => $node->port, PGDATABASE => 'postgres', PGUSER => 'graphile');
	# serve.js exits when its standard input closes, so it never outlives the test
	$run = IPC::Run::start([ 'node', $serve, $port, $secret, 'graphile_web' ],
		'<', \$in, '>', \$out, '2>', \$err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}
END { $run->kill_kill if $run && $run->pumpable }
$run->pump while $out !~ /^ready \d+$/m && $run->pumpable;
open my $log, '>', "${PostgreSQL::Test::Utils::log_path}/postgraphile.log";
print $log $out, $err;
close $log;
ok($out =~ /^ready \d+$/m, 'PostGraphile 4 builds its schema from crm as a NOINHERIT authenticator and listens')
  or diag($out, $err), done_testing(), exit;

my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 0);
my $json = JSON::PP->new->canonical->utf8;

sub jwt
{
	my ($claims) = @_;
	my $signed = join '.', map { encode_base64url($json->encode($_)) } { alg => 'HS256', typ => 'JWT' }, $claims;
	return "$signed." . encode_base64url(hmac_sha256($signed, $secret));
}

# the customers' names a GraphQL request sees (sorted), or the first error's message
sub customers
{
	my ($claims) = @_;
	my %headers = ('Content-Type' => 'application/json');
	$headers{Authorization} = 'Bearer ' . jwt({ aud => 'postgraphile', %$claims }) if $claims;
	my $r = $http->post("http://127.0.0.1:$port/graphql",
		{ headers => \%headers, content => $json->encode({ query => '{ allCustomers { nodes { name } } }' }) });
	my $answer = eval { $json->decode($r->{content}) } // { errors => [ { message => "HTTP $r->{status}: $r->{content}" } ] };
	return 'error: ' . $answer->{errors}[0]{message} if $answer->{errors};
	return join ',', sort map { $_->{name} } @{ $answer->{data}{allCustomers}{nodes} };
}

# what the employee's own login sees in psql
sub in_psql
{
	my ($role) = @_;
	return join ',', sort split /\n/, decode_utf8($node->safe_psql('postgres', "SET ROLE $role; SELECT name FROM crm.customer"));
}

my $liu = customers({ role => 'graphile_web', employee_id => $id{liu_yang} });
my $wang = customers({ role => 'graphile_web', employee_id => $id{wang_fang} });
is($liu, in_psql('liu_yang'), "a salesperson's token sees exactly what that salesperson sees in psql");
is($wang, in_psql('wang_fang'), "the regional manager's token sees exactly what she sees in psql");
ok($liu ne '' && length($wang) > length($liu), 'the two scopes are different and not empty');
is(customers({ role => 'graphile_web', employee_id => 999999 }), '', 'a token naming no employee sees no customer');
is(customers({ role => 'graphile_web' }), '', 'a token without the claim sees no customer');
is(customers(), '', 'a request without a token (the default web role) sees no customer');
like(customers({ role => 'zhang_wei', employee_id => $id{liu_yang} }), qr/^error: permission denied to set role "zhang_wei"/,
	'a token cannot name a role the authenticator was not granted');

$in = '';
$run->finish;
$node->stop;
done_testing();
