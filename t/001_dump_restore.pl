# pg_dump keeps the rows of crm's tables (marked with pg_extension_config_dump),
# a restore into a fresh database brings them back, and crm still works there.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'crm'");
$node->start;

# A fresh install, and one that had crm 0.1 when its rows were written and was then
# updated (ALTER EXTENSION crm UPDATE) before the dump.
for my $from (undef, '0.1')
{
	my $sfx = $from ? '_updated' : '';
	note($from ? "crm installed as $from and updated" : 'crm installed fresh');
	$node->safe_psql('postgres', "CREATE DATABASE crm_src$sfx");
	$node->safe_psql('postgres', "CREATE DATABASE crm_dst$sfx");
	$node->safe_psql("crm_src$sfx", $from ? "CREATE EXTENSION crm VERSION '$from' CASCADE" : 'CREATE EXTENSION crm CASCADE');
	$node->safe_psql('postgres', 'CREATE ROLE tap_wang LOGIN IN ROLE crm_user') unless $from;	# crm made crm_user
	$node->safe_psql("crm_src$sfx", q{
		INSERT INTO crm.department (name) VALUES ('Head office');
		INSERT INTO crm.department (name, parent_id) VALUES ('East sales', 1);
		INSERT INTO crm.employee (name, department_id, db_role) VALUES ('Wang Fang', 2, 'tap_wang');
		INSERT INTO crm.employee (name, department_id, superior_id) VALUES ('Li Lei', 2, 1);
		UPDATE crm.department SET leader_id = 1 WHERE id = 2;
		INSERT INTO crm.role (name) VALUES ('Sales');
		INSERT INTO crm.role_permission VALUES (1, 'customer.create'), (1, 'customer.edit');
		INSERT INTO crm.role_scope VALUES (1, 'customer', 'custom', '{2}');
		INSERT INTO crm.employee_role VALUES (1, 1);
		INSERT INTO crm.customer (name, owner_id, uscc) VALUES ('Hangzhou Tea Co', 1, crm.uscc_with_check('91330100MA2B00031')), ('Suzhou Silk', 2, crm.uscc_with_check('91330100MA2B00032'));
		INSERT INTO crm.follow_up (record_type, record_id, content) VALUES ('customer', 1, 'first call');
		UPDATE crm.job SET schedule = '45 2 * * *' WHERE name = 'crm-housekeeping';
		INSERT INTO crm.job (name, schedule, command) VALUES ('crm-report', '0 8 * * 1', 'SELECT 1');
		UPDATE crm.dictionary SET label = '官网' WHERE kind = 'customer_source' AND code = 'website';
		INSERT INTO crm.dictionary (kind, code, label) VALUES ('industry', 'aerospace', '航空航天');
		UPDATE crm.settings SET status_reversible = true;
		UPDATE crm.customer_status SET name = '需求明确' WHERE position = 2;
		SELECT crm.add_field('customer', 'region', 'text');
		SELECT crm.add_field('contact', 'hobbies', 'multiple', dictionary => 'industry');
		SELECT crm.add_field('lead', 'grade', 'single', dictionary => 'customer_level');
		UPDATE crm.customer SET region = 'east';
		BEGIN;
		INSERT INTO crm.customer (name, kind, owner_id, industry) VALUES ('Individual Li', 'individual', 1, 'aerospace');
		INSERT INTO crm.contact (customer_id, name, mobile, owner_id)
		SELECT id, 'Li', '13800001234', 1 FROM crm.customer WHERE kind = 'individual';
		COMMIT;
		UPDATE crm.contact SET hobbies = '{it}';
		INSERT INTO crm.im_channel (name, platform, kind, webhook_url, secret)
		VALUES ('Sales group', 'feishu', 'robot', 'http://127.0.0.1:1/hook', 'robot-secret');
		INSERT INTO crm.notification_preference (employee_id, event, delivery) VALUES (2, '*', 'inapp');
		INSERT INTO crm.team_member (record_type, record_id, employee_id) VALUES ('customer', 1, 2);
		INSERT INTO crm.pool (name, is_default, open_to_all) VALUES ('公海', true, true);
		INSERT INTO crm.pool_member (pool_id, employee_id, is_admin) VALUES (3, 1, true);
		INSERT INTO crm.recycle_rule (name, kind, days) VALUES ('Quiet month', 'no_follow_up', 30);
		UPDATE crm.customer SET owner_id = 3 WHERE name = 'Suzhou Silk';
		-- a blocking rule, and leads it no longer compares: a converted one whose
		-- mobile is its contact's now, an invalid one with the same mobile
		INSERT INTO crm.dedupe_rule (name, record_type, fields, against) VALUES ('Lead mobile', 'lead', '{mobile}', '{customers, leads, contacts}');
		INSERT INTO crm.lead (name, company, uscc, mobile, owner_id) VALUES ('Zhao', 'Ningbo Port', crm.uscc_with_check('91330200MA2B00033'), '13900002222', 1);
		SELECT crm.convert_lead(id) FROM crm.lead WHERE name = 'Zhao';
		INSERT INTO crm.lead (name, mobile, owner_id, status) VALUES ('Zhao again', '13900002222', 1, 'invalid');
	});
	# a status after the final one, as 0.1 allowed (the update moves the final one
	# to the end), or a second final one, lost
	$node->safe_psql("crm_src$sfx", $from
		? q{INSERT INTO crm.customer_status (name, position) VALUES ('样品测试', 6)}
		: q{INSERT INTO crm.customer_status (name, position, is_final, outcome) VALUES ('丢单', 6, true, 'lost')});
	$node->safe_psql("crm_src$sfx", 'ALTER EXTENSION crm UPDATE') if $from;
	# deals (0.2): an edited shipped stage, a set of the company's own, products, a
	# deal with lines moved along its stages, a won one, a snapshot and win rates
	$node->safe_psql("crm_src$sfx", q{
		UPDATE crm.stage SET name = '初次接洽' WHERE name = '初步接洽';
		BEGIN;
		INSERT INTO crm.stage_set (name, allow_backward) VALUES ('项目制', false);
		INSERT INTO crm.stage (stage_set_id, position, name, win_rate, forecast_category, outcome)
		SELECT s.id, v.* FROM crm.stage_set s, (VALUES (1, '立项', 20, 'pipeline', 'open'), (2, '签约', 100, 'closed', 'won'),
			(3, '失败', 0, 'omitted', 'lost')) v(p, n, w, c, o) WHERE s.name = '项目制';
		COMMIT;
		INSERT INTO crm.product (code, name, list_price) VALUES ('P-1', 'Tea tracing', 1000);
		INSERT INTO crm.opportunity (customer_id, name, owner_id) VALUES (1, 'Tracing', 1);
		INSERT INTO crm.opportunity (customer_id, name, owner_id, stage_set_id)
		SELECT 1, 'Project', 1, id FROM crm.stage_set WHERE name = '项目制';
		INSERT INTO crm.opportunity_product (opportunity_id, product_id, quantity) SELECT o.id, 1, 3 FROM crm.opportunity o WHERE o.name = 'Tracing';
		UPDATE crm.opportunity SET stage_id = 2 WHERE name = 'Tracing';
		SELECT crm.snapshot_pipeline(), crm.refresh_win_rates();
		UPDATE crm.opportunity SET stage_id = (SELECT id FROM crm.stage WHERE name = '签约') WHERE name = 'Project';
		-- (the inbox compared below holds the team entry's notification alone)
		DELETE FROM crm.notification WHERE event LIKE 'opportunity.%';
	});

	my $dump = "${PostgreSQL::Test::Utils::tmp_check}/crm_src$sfx.dump";
	command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr("crm_src$sfx"), '-f', $dump ], 'pg_dump succeeds');

	# a restore that does not say so (crm.restoring) is refused, and leaves nothing behind
	$node->safe_psql('postgres', "CREATE DATABASE crm_forgot$sfx");
	command_fails_like([ 'pg_restore', '--single-transaction', '-d', $node->connstr("crm_forgot$sfx"), $dump ],
		qr/row_security is off, as in a restore, but crm\.restoring is not on.*HINT:  Restore with PGOPTIONS='-c crm\.restoring=on'/s,
		'a restore without crm.restoring fails, naming the switch');
	is($node->safe_psql("crm_forgot$sfx", q{SELECT count(*) FROM pg_extension WHERE extname = 'crm'}), '0',
		'and its transaction leaves no crm behind');

	{
		local $ENV{PGOPTIONS} = '-c crm.restoring=on';
		command_ok([ 'pg_restore', '--single-transaction', '-d', $node->connstr("crm_dst$sfx"), $dump ],
			'pg_restore with crm.restoring into a fresh database succeeds');
	}

	my $rows = q{
		SELECT (SELECT string_agg(format('%s:%s:%s:%s', id, name, parent_id, leader_id), ',' ORDER BY id) FROM crm.department)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s:%s', id, name, db_role, superior_id), ',' ORDER BY id) FROM crm.employee)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s', id, name, owner_id), ',' ORDER BY id) FROM crm.customer)
		    || ' | ' || (SELECT string_agg(format('%s:%s', record_id, content), ',') FROM crm.follow_up)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s', name, schedule, builtin), ',' ORDER BY name) FROM crm.job)
		    || ' | ' || (SELECT string_agg(format('%s:%s', r.name, p.action), ',' ORDER BY p.action)
		                   FROM crm.role r JOIN crm.role_permission p ON p.role_id = r.id)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s:%s', role_id, record_type, scope, departments), ',') FROM crm.role_scope)
		    || ' | ' || (SELECT string_agg(format('%s:%s', employee_id, role_id), ',') FROM crm.employee_role)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s:%s', id, stage_set_id, name, outcome), ',' ORDER BY id) FROM crm.stage)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s:%s:%s:%s', id, stage_set_id, stage_id, amount, status, probability), ',' ORDER BY id) FROM crm.opportunity)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s', opportunity_id, product_id, amount), ',' ORDER BY id) FROM crm.opportunity_product)
		    || ' | ' || (SELECT string_agg(format('%s:%s>%s', opportunity_id, from_stage_id, to_stage_id), ',' ORDER BY id) FROM crm.opportunity_stage_change)
		    || ' | ' || (SELECT count(*) FROM crm.pipeline_snapshot) || ' snapshot rows, ' || (SELECT count(*) FROM crm.stage_win_rate) || ' win rates'
		    || ' | ' || (SELECT count(*) FROM crm.permission)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s', kind, code, label), ',' ORDER BY kind, code)
		                   FROM crm.dictionary WHERE NOT builtin OR code = 'website')
		    || ' | ' || (SELECT count(*) FROM crm.dictionary)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s:%s', id, name, position, outcome), ',' ORDER BY position) FROM crm.customer_status)
		    || ' | ' || (SELECT status_reversible FROM crm.settings)
		    || ' | ' || (SELECT string_agg(format('%s:%s', customer_id, mobile), ',') FROM crm.contact)
		    || ' | ' || (SELECT count(*) || ' log entries, last ' || max(id) FROM crm.oplog)
		    || ' | ' || (SELECT string_agg(format('%s:%s', name, region), ',' ORDER BY id) FROM crm.customer)
		    || ' | ' || (SELECT string_agg(format('%s:%s', name, hobbies), ',' ORDER BY id) FROM crm.contact)
		    || ' | ' || (SELECT string_agg(format('%s.%s:%s', table_name, column_name, kind), ',' ORDER BY 1) FROM crm.dictionary_column WHERE NOT builtin)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s', name, secret, rate_per_minute), ',') FROM crm.im_channel)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s', recipient_id, event, title), ',') FROM crm.notification)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s', employee_id, event, delivery), ',') FROM crm.notification_preference)
		    || ' | ' || (SELECT count(*) FROM crm.notification_event)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s', id, name, is_default), ',') FROM crm.pool)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s', pool_id, employee_id, is_admin), ',') FROM crm.pool_member)
		    || ' | ' || (SELECT string_agg(format('%s:%s', customer_id, rule_id), ',' ORDER BY customer_id) FROM crm.customer_recycling)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s>%s', customer_id, kind, from_owner, to_owner), ',') FROM crm.customer_owner_change)
		    || ' | ' || (SELECT string_agg(format('%s:%s:%s:%s', name, status, mobile, customer_id), ',' ORDER BY id) FROM crm.lead)
	};
	my $before = $node->safe_psql("crm_src$sfx", $rows);
	my $after = $node->safe_psql("crm_dst$sfx", $rows);
	is($after, $before, 'organisation, roles, scopes, records, contacts, dictionaries, statuses, settings, custom fields (the dictionary mapping of a single-choice field, once), the operation log (not logged twice), IM channels with their secrets, notifications and preferences survive dump and restore');
	# (0.1 wrote its notification in English)
	like($after, $from ? qr/Sales group:robot-secret:100 \| 2:team\.added:You were added to customer 1 \| 2:\*:inapp \| 18 \|/
	                   : qr/Sales group:robot-secret:100 \| 2:team\.added:crm把你加为客户「Hangzhou Tea Co」的协作人 \| 2:\*:inapp \| 18 \|/,
		'the channel, the notification of the team entry, the preference and the eighteen shipped events, once each');
	like($after, $from ? qr/,4:商务谈判:4:,6:样品测试:6:,5:成交客户:11:won \|/ : qr/,4:商务谈判:4:,5:成交客户:5:won,6:丢单:6:lost \|/,
		'the statuses, a final one last');
	like($after, qr/\| 3:公海:t \| 3:1:t \| 1:1,2:,3:1,4:1 \| 2:release:2>3 \|/,
		'the pool and its admin, the recycling clocks and the owner history, once each');
	like($after, qr/\| Zhao:converted:13900002222:4,Zhao again:invalid:13900002222:$/,
		'leads a blocking rule no longer compares are restored as they were');
	like($after, qr/crm-housekeeping:45 2 \* \* \*:f,crm-pipeline-snapshot:0 1 \* \* 1:t,crm-recycling:\*\/5 \* \* \* \*:t,crm-report:0 8 \* \* 1:f/,
		'the edited builtin job keeps its edit, once');

	is($node->safe_psql("crm_dst$sfx", q{
		SET ROLE tap_wang;
		SELECT crm.current_employee_id() || ':' || string_agg(name, ',' ORDER BY name) FROM crm.customer;
	}), '1:Hangzhou Tea Co,Individual Li,Ningbo Port,Suzhou Silk', 'the restored database resolves the employee and applies the restored scope');

	is($node->safe_psql("crm_dst$sfx", q{
		INSERT INTO crm.department (name) VALUES ('West sales') RETURNING id;
	}), '3', 'identity sequences continue after the restored rows');
	is($node->safe_psql("crm_dst$sfx", q{
		SET ROLE tap_wang;
		INSERT INTO crm.customer (name, uscc, region) VALUES ('Restored Ltd', crm.uscc_with_check('91330100MA2B00033'), 'west')
		RETURNING id || ':' || owner_id;
	}), '5:1', 'new records after a restore get fresh ids and the acting owner');

	# a plain SQL dump restores in one transaction as well
	my $sql = "${PostgreSQL::Test::Utils::tmp_check}/crm_src$sfx.sql";
	command_ok([ 'pg_dump', '-d', $node->connstr("crm_src$sfx"), '-f', $sql ], 'plain pg_dump succeeds');
	$node->safe_psql('postgres', "CREATE DATABASE crm_plain$sfx");
	command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction',
		'-d', $node->connstr("crm_plain$sfx"), '-c', 'SET crm.restoring = on', '-f', $sql ],
		'psql --single-transaction restores the plain dump, crm.restoring set first');
	is($node->safe_psql("crm_plain$sfx", $rows), $before, 'the plain restore has the same rows');

}

$node->stop;
done_testing();
