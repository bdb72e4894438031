# ALTER EXTENSION crm UPDATE from 0.1: a database holding a company's rows in every
# table takes the new version, keeps every row, and ends with the schema a fresh
# install of the new version has (docs/install.md, "Updating crm").
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
# the notification worker works in database postgres
my $node = FakeIM->node('main');

my $version = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'crm'});
isnt($version, '0.1', "the version in the making is $version");

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('postgres', 'CREATE DATABASE updated');
$node->safe_psql('fresh', q{
	CREATE EXTENSION crm CASCADE;
	-- the one schema change the rows below bring: a custom field
	SELECT crm.add_field('customer', 'region', 'text');
});

# 0.1 with the demo company and rows for every table it leaves empty
$node->safe_psql('updated', q{CREATE EXTENSION crm VERSION '0.1' CASCADE});
for my $file ('demo/company.sql', 't/data/rows-0.1.sql')
{
	$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('updated'), '-f', $file ],
		"0.1 takes $file");
}

# Every table of crm, with the columns it has now, and a digest of its rows over
# those columns (all rows: the test runs as a superuser, whom no policy limits).
sub tables
{
	my ($db) = @_;
	my %cols = map { split /\|/, $_, 2 } split /\n/, $node->safe_psql($db, q{
		SELECT c.relname, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
		  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		 WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'r'
		   -- (what crm derives is computed again: the duplicate keys, and when they were)
		   AND a.attgenerated = '' AND (c.relname, a.attname) <> ('key_build', 'built_at')
		 GROUP BY c.relname});
	return \%cols;
}
sub digest
{
	my ($db, $table, $cols) = @_;
	return $node->safe_psql($db, qq{
		SELECT count(*) || ' rows ' || coalesce(md5(string_agg(r::text, E'\\n' ORDER BY r::text)), '')
		  FROM (SELECT $cols FROM crm.$table) r});
}

my $before_cols = tables('updated');
my %before = map { $_ => digest('updated', $_, $before_cols->{$_}) } keys %$before_cols;
# the rows themselves, to find each one after the update (which may add rows of its own)
$node->safe_psql('updated', join '', map { qq{CREATE TABLE public."before_$_" AS SELECT $before_cols->{$_} FROM crm.$_;\n} }
	sort keys %$before_cols);
# crm.customer_import is the shape of an import's staging table: it holds no rows
my @empty = grep { $before{$_} =~ /^0 rows/ && $_ ne 'customer_import' } sort keys %before;
is("@empty", '', 'the 0.1 database has rows in every table');

$node->safe_psql('updated', 'ALTER EXTENSION crm UPDATE');
is($node->safe_psql('updated', q{SELECT extversion FROM pg_extension WHERE extname = 'crm'}), $version,
	"ALTER EXTENSION crm UPDATE takes 0.1 to $version");

my $after_cols = tables('updated');
my @lost = grep { !exists $after_cols->{$_} } sort keys %before;
is("@lost", '', 'no table is lost');
my @changed = grep { exists $after_cols->{$_} && $node->safe_psql('updated', qq{
	SELECT count(*) FROM (TABLE public."before_$_" EXCEPT ALL SELECT $before_cols->{$_} FROM crm.$_) lost}) ne '0' }
	sort keys %before;
is("@changed", '', 'every row of every table survives, column for column');
$node->safe_psql('updated', join '', map { qq{DROP TABLE public."before_$_";\n} } sort keys %before);

# The schemas compare as pg_dump --binary-upgrade writes them: the only dump that
# shows an extension's own objects.  Object ids, transaction ids, sequence positions
# (rows, not schema) and the order of entries and of a table's columns (an update
# adds columns at the end) are set aside.
sub schema
{
	my ($db) = @_;
	my $dump = `pg_dump --schema-only --binary-upgrade -d "@{[ $node->connstr($db) ]}" 2>/dev/null`;
	die "pg_dump $db failed" if $? != 0;
	$dump =~ s/^(?:SELECT pg_catalog\.binary_upgrade_set_|SELECT pg_catalog\.setval\(|\\(?:un)?restrict |SET relfrozenxid|WHERE oid = ).*\n//mg;
	# (and the tables pg_dump keeps rows of, in the order they were registered)
	$dump =~ s/(binary_upgrade_create_empty_extension\('crm', 'crm', false, '[^']*', )'\{[0-9,]*\}', '\{([^}]*)\}'/
		"$1'{oids}', '{" . join(',', sort split m{,}, $2) . "}'"/e;
	my @entries = map {
		s{^(CREATE TABLE [^\n]*\(\n)(.*?)(\n\);)}{
			$1 . join("\n", sort map { s/,$//r } split /\n/, $2) . $3 }mse;
		$_
	} split /\n(?=--\n-- Name: )/, $dump;
	return join("\n", sort @entries) . "\n";
}
my ($fresh, $updated) = (schema('fresh'), schema('updated'));
if ($fresh ne $updated)
{
	my $dir = $PostgreSQL::Test::Utils::tmp_check;
	PostgreSQL::Test::Utils::append_to_file("$dir/schema_fresh.sql", $fresh);
	PostgreSQL::Test::Utils::append_to_file("$dir/schema_updated.sql", $updated);
	diag(`diff -u $dir/schema_fresh.sql $dir/schema_updated.sql | head -n 80`);
}
ok($fresh eq $updated, "the updated schema is a fresh $version install's");
my $config = q{SELECT string_agg(format('%s %s', c::regclass, w), ', ' ORDER BY c::regclass::text)
                 FROM pg_extension, unnest(extconfig, extcondition) u(c, w) WHERE extname = 'crm'};
is($node->safe_psql('updated', $config), $node->safe_psql('fresh', $config),
	'pg_dump keeps the rows of the same tables, with the same filters');

# a team entry 0.1 took on a contact is kept, and tells nobody: contacts have no team
is($node->safe_psql('updated', q{
	SELECT count(*) || ' ' || crm.record_recipients('contact', 1, '{team}')::text FROM crm.team_member WHERE record_type = 'contact'}),
	'1 {}', "a contact's team entry of 0.1 survives and names no recipient");

# the updated database works: an employee sees their scope and records a customer
is($node->safe_psql('updated', q{
	SET ROLE wang_fang;
	INSERT INTO crm.customer (name, uscc) VALUES ('衢州柑橘有限公司', crm.uscc_with_check('91330800MA2B00061'))
	RETURNING (SELECT name FROM crm.employee WHERE id = owner_id);
}), '王芳', 'an employee records a customer in the updated database');

# The worker of a library newer than the database's crm sends nothing (it would
# read tables the update has not changed yet): the outbox fills and is sent once
# ALTER EXTENSION crm UPDATE has run.
my $offset = -s $node->logfile;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION crm VERSION '0.1' CASCADE;
	INSERT INTO crm.department (name) VALUES ('销售部');
	INSERT INTO crm.employee (name, department_id) VALUES ('王芳', 1);
	INSERT INTO crm.im_channel (name, platform, kind, webhook_url, events)
	VALUES ('销售群', 'wecom', 'robot', '$base/cgi-bin/webhook/send?key=wc-bot', '{*}');
	SELECT crm.notify(ARRAY[1]::bigint[], 'transfer.received', '客户转给你了', '杭州西湖茶业有限公司');
});
$node->wait_for_log(qr/crm notification worker waits: database "postgres" has crm 0\.1, its library is \Q$version\E/, $offset);
is($node->safe_psql('postgres', q{SELECT count(*) FROM crm.im_delivery WHERE status = 'sent'}), '0',
	'before the update the worker sends nothing, and says what it waits for');
$node->safe_psql('postgres', 'ALTER EXTENSION crm UPDATE');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM crm.im_delivery WHERE status = 'sent'}),
	'after the update the outbox is sent');
ok($node->log_contains(qr/crm notification worker resumes: database "postgres" has crm \Q$version\E/, $offset),
	'and the worker says it resumed');

$node->stop;
$fake->stop;
done_testing();
