# Eight clients hammer a blocking duplicate rule with the same few companies
# under many spellings, one at a time and in batches of 100 (which lock the
# whole key class rather than each key): however they interleave, no company
# ends up twice, and every refusal is the rule's 23505.
use strict;
use warnings;
use utf8;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'crm'\nmax_connections = 20");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION crm CASCADE;
INSERT INTO crm.department (name) VALUES ('Sales');
INSERT INTO crm.employee (name, department_id) SELECT 'rep ' || g, (SELECT id FROM crm.department) FROM generate_series(1, 8) g;
INSERT INTO crm.dedupe_rule (name, record_type, fields) VALUES ('company name', 'customer', '{name}');
CREATE TABLE refusals (sqlstate text, message text);
-- a company among 12, spelt one of 4 ways, each spelling normalising to the company's key
CREATE FUNCTION spelling() RETURNS text LANGUAGE sql AS $$
	SELECT format((ARRAY['%s有限公司', '%s集团', '（宁波）%s股份有限公司', '%s 有限责任公司'])[1 + floor(random() * 4)::int],
	              '港务' || (1 + floor(random() * 12)::int))
$$;
-- n - 1 companies of its own (distinct keys: a batch of 100 locks the class) and one of the twelve
CREATE FUNCTION enter(n integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO crm.customer (name, uscc, owner_id)
	SELECT CASE WHEN g = 1 THEN spelling() ELSE format('独家%s贸易有限公司', gen_random_uuid()) END,
	       crm.uscc_with_check('91330200MA' || lpad((floor(random() * 1e7))::bigint::text, 7, '0')),
	       (SELECT id FROM crm.employee ORDER BY random() LIMIT 1)
	  FROM generate_series(1, n) g;
EXCEPTION WHEN OTHERS THEN
	INSERT INTO refusals VALUES (SQLSTATE, SQLERRM);
END
$$;
});

$node->pgbench('--no-vacuum --client=8 --transactions=60', 0,
	[qr{processed: 480/480}], [qr{^$}], 'eight clients enter the same companies at once',
	{ 'one@9' => 'SELECT enter(1);', 'batch@1' => 'SELECT enter(100);' });

my ($rows, $keys) = split /\|/, $node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT name_key) FROM crm.customer');
is($rows, $keys, "no company twice ($rows rows)");
is($node->safe_psql('postgres', q{SELECT count(*) FROM crm.customer WHERE name_key LIKE '港务%'}), 12,
	'each of the twelve once');
is($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT sqlstate, ',') FROM refusals}), '23505',
	'every refusal is the rule\'s');
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM refusals'), '>', 300, 'and there were hundreds');

$node->stop;
done_testing();
