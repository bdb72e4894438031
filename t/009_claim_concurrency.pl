# Eight clients claim from one pool at once, two per employee, each employee
# with a daily limit of five: however the claims interleave, nobody ends above
# five, and every refusal is the limit's (23514) or a customer someone else
# claimed first (55000).
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
INSERT INTO crm.role (name) VALUES ('rep');
INSERT INTO crm.role_permission SELECT id, 'pool.claim' FROM crm.role;
DO $$ BEGIN
	FOR i IN 1..4 LOOP
		EXECUTE format('CREATE ROLE rep%s LOGIN IN ROLE crm_user', i);
	END LOOP;
END $$;
INSERT INTO crm.employee (name, department_id, db_role, daily_claim_limit)
SELECT 'rep ' || g, (SELECT id FROM crm.department), 'rep' || g, 5 FROM generate_series(1, 4) g;
INSERT INTO crm.employee_role SELECT e.id, r.id FROM crm.employee e, crm.role r;
INSERT INTO crm.pool (name, open_to_all) VALUES ('公海', true);
INSERT INTO crm.customer (name, uscc, owner_id)
SELECT '客户' || g, crm.uscc_with_check('91330200MA' || lpad(g::text, 7, '0')), (SELECT id FROM crm.pool)
  FROM generate_series(1, 400) g;
CREATE TABLE refusals (sqlstate text, message text);
GRANT INSERT ON refusals TO crm_user;
-- claim one customer of the pool, picked at random; keep the refusal
CREATE FUNCTION claim_one() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM crm.claim_customer((SELECT id FROM crm.pool_customer ORDER BY random() LIMIT 1));
EXCEPTION WHEN OTHERS THEN
	INSERT INTO refusals VALUES (SQLSTATE, SQLERRM);
END
$$;
});

$node->pgbench('--no-vacuum --client=8 --transactions=30', 0,
	[qr{processed: 240/240}], [qr{^$}], 'eight clients claim at once, two per employee',
	{ 'claim' => "\\set rep (:client_id % 4) + 1\nSET ROLE rep:rep;\nSELECT claim_one();\nRESET ROLE;\n" });

is($node->safe_psql('postgres', q{
	SELECT string_agg(format('%s:%s', e.name, (SELECT count(*) FROM crm.customer c WHERE c.owner_id = e.id)), ',' ORDER BY e.id)
	  FROM crm.employee e WHERE NOT e.is_pool}),
	'rep 1:5,rep 2:5,rep 3:5,rep 4:5', 'every employee ends with exactly five');
is($node->safe_psql('postgres', q{SELECT count(*) FROM crm.customer_owner_change WHERE kind = 'claim'}), 20,
	'twenty claims in the owner history');
# (taken first by a colleague outside one's scope, a customer is no longer named: 42501)
is($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT sqlstate, ',') FROM refusals
	WHERE sqlstate NOT IN ('23514', '55000') AND NOT (sqlstate = '42501' AND message LIKE '% is not in a pool employee % may take from')}),
	'', 'every refusal is the daily limit or a customer taken first');
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM refusals WHERE sqlstate = '23514'}), '>=', 200,
	'and the limit refused the rest');

$node->stop;
done_testing();
