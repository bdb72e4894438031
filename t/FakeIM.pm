# The fake IM server (test/fake_im.py) for TAP tests: started on a free port of
# 127.0.0.1, its log next to the test's other logs, and JSON over HTTP to it.
package FakeIM;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use HTTP::Tiny;
use JSON::PP;

our $json = JSON::PP->new->canonical;
# a new connection per request: its quick ACKs spare every POST a 40 ms Nagle wait
our $http = HTTP::Tiny->new(timeout => 10, keep_alive => 0);

# FakeIM->start: a running fake; ->base is its URL
sub start
{
	my ($class) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $out = '';
	my $run = IPC::Run::start(
		[ 'python3', 'test/fake_im.py', '--port', $port ],
		'>', \$out, '2>', "${PostgreSQL::Test::Utils::log_path}/fake_im.log",
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$run->pump until $out =~ /^ready \d+$/m;
	return bless { run => $run, base => "http://127.0.0.1:$port" }, $class;
}

sub base { return $_[0]{base} }

# $fake->request(METHOD, PATH, [BODY, HEADERS]): the decoded answer, with the HTTP
# status in _status.  BODY is a hash (sent as JSON) or a character string.
sub request
{
	my ($self, $method, $path, $body, $headers) = @_;
	my %opt = (headers => { 'Content-Type' => 'application/json', %{ $headers // {} } });
	if (defined $body)
	{
		my $content = ref $body ? $json->encode($body) : $body;
		utf8::encode($content);
		$opt{content} = $content;
	}
	my $r = $http->request($method, "$self->{base}$path", \%opt);
	my $answer = eval { decode_json($r->{content}) } // {};
	$answer = { list => $answer } if ref $answer eq 'ARRAY';
	$answer->{_status} = $r->{status};
	return $answer;
}

sub post { my $self = shift; return $self->request('POST', @_) }
sub get  { my $self = shift; return $self->request('GET', @_) }

# the raw text of a GET, for tests that compare bodies or read headers
sub get_raw
{
	my ($self, $path, $headers) = @_;
	return $http->get("$self->{base}$path", { headers => $headers // {} });
}

# FakeIM->node(NAME, SETTING => VALUE ...): a started cluster with crm preloaded and its
# notification worker serving the postgres database, polling every second
sub node
{
	my ($class, $name, %settings) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	%settings = ('crm.im_poll_interval' => '1s', %settings);
	$node->init;
	$node->append_conf('postgresql.conf', join("\n", "shared_preload_libraries = 'crm'",
		"crm.database_name = 'postgres'", map { "$_ = '$settings{$_}'" } sort keys %settings));
	$node->start;
	return $node;
}

sub stop
{
	my ($self) = @_;
	$self->{run}->signal('TERM');
	$self->{run}->finish;
}

1;
