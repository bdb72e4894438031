# The registry's part of the catalog test that SQL cannot do: every registered
# record type's docs page exists and explains it (sql/record_type.sql checks the
# triggers, policies and grants).
use strict;
use warnings;
use utf8;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'crm'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION crm CASCADE');

my @types = split /\n/, $node->safe_psql('postgres',
	q{SELECT name || '|' || label_zh || '|' || docs FROM crm.record_type ORDER BY position});
cmp_ok(scalar @types, '>=', 4, 'crm registers its record types');
for my $row (@types)
{
	utf8::decode($row);
	my ($name, $label, $docs) = split /\|/, $row;
	ok(-f "docs/$docs", "docs/$docs, the page of record type $name, exists");
	my $text = -f "docs/$docs" ? slurp_file("docs/$docs") : '';
	utf8::decode($text);
	ok(index($text, $label) >= 0, "docs/$docs names $name by its label $label");
}

$node->stop;
done_testing();
