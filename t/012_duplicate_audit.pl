# The audit of duplicate look-ups is written by crm's audit writer, not by the
# transaction that looked: a look-up rolled back, a blocking rule's refusal and
# a claim that fails under repeatable read are all audited.  When the audit
# cannot be written (its queue full, no writer can start), look-ups are
# refused with 53400.
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
$node->safe_psql('postgres', q{
CREATE EXTENSION crm CASCADE;
CREATE ROLE rep LOGIN IN ROLE crm_user;
CREATE ROLE boss LOGIN IN ROLE crm_user;
INSERT INTO crm.department (name) VALUES ('Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT v.name, (SELECT id FROM crm.department), v.role FROM (VALUES ('Rep', 'rep'), ('Boss', 'boss'), ('Other', NULL)) v(name, role);
INSERT INTO crm.role (name) VALUES ('rep');
INSERT INTO crm.role (name, is_super) VALUES ('super', true);
INSERT INTO crm.role_scope (role_id, record_type, scope) SELECT id, 'customer', 'self' FROM crm.role WHERE name = 'rep';
INSERT INTO crm.role_permission (role_id, action)
SELECT id, a FROM crm.role, unnest(ARRAY['customer.create', 'customer.edit']) a WHERE name = 'rep';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e JOIN crm.role r ON r.name = CASE e.name WHEN 'Rep' THEN 'rep' ELSE 'super' END
 WHERE e.name IN ('Rep', 'Boss');
INSERT INTO crm.dedupe_rule (name, record_type, fields) VALUES ('company name', 'customer', '{name}');
INSERT INTO crm.dedupe_rule (name, record_type, fields, action) VALUES ('phone', 'customer', '{phone}', 'warn');
INSERT INTO crm.customer (name, uscc, phone, owner_id)
VALUES ('宁波海运有限公司', crm.uscc_with_check('91330200MA5F01902'), '13912341017', (SELECT id FROM crm.employee WHERE name = 'Other'));
-- n look-ups, each refused or not on its own: how many ended with which SQLSTATE
CREATE FUNCTION look_up(n integer) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	states text[] := '{}';
BEGIN
	FOR i IN 1 .. n LOOP
		BEGIN
			PERFORM count(*) FROM crm.find_duplicates('customer', jsonb_build_object('phone', '139' || lpad(i::text, 4, '0') || '1017'));
			states := states || '00000'::text;
		EXCEPTION WHEN OTHERS THEN
			states := states || SQLSTATE;
		END;
	END LOOP;
	RETURN (SELECT string_agg(s || ' ' || c, ', ' ORDER BY s) FROM (SELECT s, count(*) c FROM unnest(states) s GROUP BY s) x);
END
$$;
});

my $rep_rows = q{SELECT count(*) FROM crm.duplicate_lookup l JOIN crm.employee e ON e.id = l.employee_id
                  WHERE e.name = 'Rep' AND l.record_type = 'customer' AND l.fields = };

# a look-up in a transaction rolled back is audited all the same
is($node->safe_psql('postgres', q{BEGIN;
SELECT count(*) FROM crm.find_duplicates('customer', '{"phone": "13912341017", "name": ""}');
ROLLBACK;}, extra_params => [ '-U', 'rep' ]), '1', 'the employee looks up a phone and rolls back');
ok($node->poll_query_until('postgres', $rep_rows . q{'{phone}'}, '1'), 'the rolled-back look-up is audited');
is($node->safe_psql('postgres', q{SELECT string_agg(e.name || ' ' || l.role_name || ' ' || l.fields::text, ', ')
  FROM crm.duplicate_lookup l JOIN crm.employee e ON e.id = l.employee_id}, extra_params => [ '-U', 'boss' ]),
	'Rep rep {phone}', 'a super admin reads who looked up which fields');
is($node->safe_psql('postgres', 'SELECT count(*) FROM crm.duplicate_lookup', extra_params => [ '-U', 'rep' ]),
	'0', 'the employee does not');

# a blocking rule's refusal answers the same question: audited too
my ($ret, $out, $err) = $node->psql('postgres', q{\set VERBOSITY verbose
INSERT INTO crm.customer (name, uscc) VALUES ('宁波海运有限公司', crm.uscc_with_check('91330200MA5F01903'));},
	extra_params => [ '-U', 'rep' ]);
like($err, qr/ERROR:  23505: customer ".+" duplicates a customer owned by Other/, 'the rule refuses the insert');
ok($node->poll_query_until('postgres', $rep_rows . q{'{name}'}, '1'), 'the refusal is audited with the rule\'s fields');

# so does a claim that fails under repeatable read: another transaction wrote the key
my $rr = $node->background_psql('postgres', extra_params => [ '-U', 'rep' ], on_error_stop => 0);
$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;');
$node->safe_psql('postgres', q{INSERT INTO crm.customer (name, uscc, owner_id)
VALUES ('宁波港务集团', crm.uscc_with_check('91330200MA5F01904'), (SELECT id FROM crm.employee WHERE name = 'Other'))});
$rr->query(q{\set VERBOSITY verbose
INSERT INTO crm.customer (name, uscc) VALUES ('宁波港务集团', crm.uscc_with_check('91330200MA5F01905'));});
like($rr->{stderr}, qr/ERROR:  40001: a concurrent transaction was writing the same duplicate keys/,
	'under repeatable read the claim fails with a serialization failure');
$rr->query('ROLLBACK');
$rr->quit;
ok($node->poll_query_until('postgres', $rep_rows . q{'{name}'}, '2'), 'and it is audited as a look-up');

# the queue is bounded: while the audit cannot be written, look-ups beyond it are refused
my $lock = $node->background_psql('postgres');
$lock->query_safe('BEGIN; LOCK crm.duplicate_lookup IN ACCESS EXCLUSIVE MODE;');
is($node->safe_psql('postgres', 'SELECT look_up(1100)'), '00000 1024, 53400 76',
	'1024 look-ups wait to be audited, the others are refused with 53400');
($ret, $out, $err) = $node->psql('postgres', q{\set VERBOSITY verbose
SELECT * FROM crm.find_duplicates('customer', '{"phone": "13912341017"}');});
like($err, qr/ERROR:  53400: the look-up cannot be audited: 1024 look-ups are waiting to be written.*HINT:  .*max_worker_processes/s,
	'a refusal says why and what to do');
$lock->query_safe('COMMIT');
$lock->quit;
ok($node->poll_query_until('postgres', q{SELECT count(*) FROM crm.duplicate_lookup WHERE employee_id IS NULL AND role_name = current_user}, '1024'),
	'the writer writes them all once it can');

# no writer can start (every worker slot is taken): look-ups and blocking refusals fail closed
$node->append_conf('postgresql.conf', 'max_worker_processes = 1');
$node->restart;
($ret, $out, $err) = $node->psql('postgres', q{\set VERBOSITY verbose
SELECT * FROM crm.find_duplicates('customer', '{"phone": "13912341017"}');}, extra_params => [ '-U', 'rep' ]);
like($err, qr/ERROR:  53400: the look-up cannot be audited: the audit writer of database "postgres" cannot start.*HINT:  Raise max_worker_processes/s,
	'without an audit writer a look-up is refused');
($ret, $out, $err) = $node->psql('postgres', q{\set VERBOSITY verbose
INSERT INTO crm.customer (name, uscc) VALUES ('宁波海运有限公司', crm.uscc_with_check('91330200MA5F01906'));},
	extra_params => [ '-U', 'rep' ]);
like($err, qr/ERROR:  53400: the look-up cannot be audited/, 'and so is a blocking rule\'s answer');
is($node->safe_psql('postgres', q{SELECT look_up(3)}), '53400 3', 'however often it is tried');

$node->stop;
unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no server process died of a signal');
done_testing();
