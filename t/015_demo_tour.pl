# The tour make demo prints (demo/tour.sql) works in the order it suggests, on
# the demo company: as 王芳, then as 刘洋, every statement does what its comment
# says, and only the three meant to be refused are.
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
$node->safe_psql('postgres', 'CREATE DATABASE crm_demo');
$node->safe_psql('crm_demo', 'CREATE EXTENSION crm CASCADE');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('crm_demo'), '-f', 'demo/company.sql' ],
	'the demo company loads');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('crm_demo'), '-f', 'demo/opportunities.sql' ],
	'its deals load');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('crm_demo'), '-f', 'demo/contracts.sql' ],
	'its contracts load');
is($node->safe_psql('crm_demo', q{SELECT string_agg(format('%s %s %s %s', status, amount, received_amount, invoiced_amount), '; ' ORDER BY id) FROM crm.contract}),
	'effective 350000.00 80000.00 105000.00; draft 594400.00 0.00 0.00', 'one contract in effect with its money, one draft with lines');

for my $who ('wang_fang', 'liu_yang')
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-d', $node->connstr('crm_demo') . " user=$who", '-f', 'demo/tour.sql' ],
		'>', \$out, '2>', \$err);
	utf8::decode($err);
	my @errors = $err =~ /ERROR:  ([^\n]*)/g;
	is(scalar @errors, 3, "$who meets the three refusals the tour announces, no other")
	  or diag($err);
	like($errors[0] // '', qr/may not create customer "代建客户"/, "$who is refused a customer for someone else, by its name");
	like($errors[1] // '', qr/role_scope/, "$who may not widen a data scope");
	like($errors[2] // '', qr/duplicates a customer owned by 杨磊/, "$who is told whose the duplicate is");
}
my $made = $node->safe_psql('crm_demo', q{SELECT string_agg(name, ', ' ORDER BY name) FROM crm.customer WHERE name LIKE '新客户%'});
utf8::decode($made);
is($made, '新客户刘洋有限公司, 新客户王芳有限公司', 'each made a customer of their own');

$node->stop;
done_testing();
