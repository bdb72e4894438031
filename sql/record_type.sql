-- The record-type registry (docs/adding-a-record-type.md): one row per type, and a
-- type that declares a capability gets it everywhere.
SELECT setval(s, 85000, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.follow_up_id_seq', 'crm.tag_group_id_seq', 'crm.tag_id_seq']) s \g /dev/null

SELECT name, relation, label_zh, label_en, visibility, parent, parent_column, docs, capabilities
  FROM crm.record_type ORDER BY position;

-- == The catalog: what the install of each type put on its table
-- every type is stamped and takes its links along when its rows go; a table with
-- an owner has its write check; each capability its triggers, and only then
WITH expected AS (
	SELECT t.name, t.relation, x.trigger, x.wanted
	  FROM crm.record_type t,
	       LATERAL (VALUES
	         (t.name || '_stamp', true),
	         (t.name || '_write_check', EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = t.relation AND a.attname = 'owner_id')),
	         (t.name || '_dictionary_check', 'dictionaries' = ANY (t.capabilities)),
	         (t.name || '_log_row', 'oplog' = ANY (t.capabilities)),
	         (t.name || '_log_flush', 'oplog' = ANY (t.capabilities)),
	         (t.name || '_dedupe_insert', 'duplicates' = ANY (t.capabilities)),
	         (t.name || '_dedupe_update', 'duplicates' = ANY (t.capabilities)),
	         (t.name || '_drop_links', true),
	         (t.name || '_truncate_links', true)) x(trigger, wanted))
SELECT e.name, e.trigger, e.wanted, g.oid IS NOT NULL AS installed
  FROM expected e LEFT JOIN pg_trigger g ON g.tgrelid = e.relation AND g.tgname = e.trigger
 WHERE e.wanted <> (g.oid IS NOT NULL);
-- a type visible by its owner or with its parent has a policy for each command
SELECT t.name, c.cmd
  FROM crm.record_type t CROSS JOIN (VALUES ('read', 'r'), ('insert', 'a'), ('update', 'w'), ('delete', 'd')) c(cmd, polcmd)
 WHERE t.visibility IN ('owner', 'parent')
   AND NOT EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = t.relation AND p.polname = t.name || '_' || c.cmd
                                             AND p.polcmd = c.polcmd AND p.polroles = ARRAY['crm_user'::regrole::oid]);
-- every type's table has row-level security and is readable by staff, its ids and stamps are not theirs to write
SELECT t.name FROM crm.record_type t JOIN pg_class c ON c.oid = t.relation
 WHERE NOT c.relrowsecurity OR NOT has_table_privilege('crm_user', t.relation, 'SELECT')
    OR has_any_column_privilege('crm_user', t.relation, 'INSERT') AND (
       has_column_privilege('crm_user', t.relation, 'id', 'INSERT')
       OR has_column_privilege('crm_user', t.relation, 'created_by', 'INSERT')
       OR has_column_privilege('crm_user', t.relation, 'updated_at', 'UPDATE'));
-- each shared table a capability names checks the type of every row it takes
SELECT k.name, k.link_table FROM crm.record_capability k
 WHERE k.link_table IS NOT NULL
   AND NOT EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = ('crm.' || k.link_table)::regclass
                                             AND g.tgfoid = 'crm.check_record_links()'::regprocedure);
-- the policies of a followed type read its parent as the caller
SELECT polname, pg_get_expr(polqual, polrelid) AS using FROM pg_policy
 WHERE polrelid = 'crm.contact'::regclass AND polname IN ('contact_read', 'contact_update') ORDER BY 1;

-- == The shared tables take the types registered with their capability
INSERT INTO crm.department (name) VALUES ('Rt Sales');
INSERT INTO crm.employee (name, department_id) SELECT '黄磊', id FROM crm.department WHERE name = 'Rt Sales';
INSERT INTO crm.customer (name, uscc, owner_id)
SELECT '温州登记测试有限公司', crm.uscc_with_check('91330300MA2B08501'), id FROM crm.employee WHERE name = '黄磊';
INSERT INTO crm.follow_up (record_type, record_id, content)
SELECT 'customer', id, '电话沟通' FROM crm.customer WHERE name = '温州登记测试有限公司';
INSERT INTO crm.tag_group (name) VALUES ('Rt 价值');
INSERT INTO crm.tag (group_id, name) SELECT id, 'Rt 重点' FROM crm.tag_group WHERE name = 'Rt 价值';
\set VERBOSITY verbose
-- a follow-up takes attachments but no tags, pins or team
INSERT INTO crm.record_tag (record_type, record_id, tag_id)
SELECT 'follow_up', f.id, t.id FROM crm.follow_up f, crm.tag t WHERE f.content = '电话沟通' AND t.name = 'Rt 重点';
INSERT INTO crm.pin (employee_id, record_type, record_id)
SELECT e.id, 'follow_up', f.id FROM crm.follow_up f, crm.employee e WHERE f.content = '电话沟通' AND e.name = '黄磊';
-- a contact has no team of its own: it follows its customer's
INSERT INTO crm.team_member (record_type, record_id, employee_id)
SELECT 'contact', 1, e.id FROM crm.employee e WHERE e.name = '黄磊';
-- a name that is no record type at all
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
VALUES ('no_such_type', 1, '方案.pdf', 10, 'application/pdf', 'rt/1');
\set VERBOSITY default
-- follow-ups and duplicate rules likewise (every type takes custom fields)
INSERT INTO crm.follow_up (record_type, record_id, content)
SELECT 'contact', 1, '拜访';
INSERT INTO crm.dedupe_rule (name, record_type, fields) VALUES ('Rt 跟进查重', 'follow_up', '{content}');
-- a follow-up's record pair is crm's: no dictionary may be mapped onto it
INSERT INTO crm.dictionary_column (table_name, column_name, kind) VALUES ('follow_up', 'record_type', 'industry');
-- and what they take, they take
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
SELECT 'follow_up', id, '录音.m4a', 2048, 'audio/mp4', 'rt/2' FROM crm.follow_up WHERE content = '电话沟通'
RETURNING record_type, file_name;

-- == Registering: the table must be one a record type can be
BEGIN;
CREATE TABLE crm.rt_visit (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer_id bigint NOT NULL,
                           created_by bigint, created_at timestamptz NOT NULL DEFAULT now(),
                           updated_at timestamptz NOT NULL DEFAULT now());
SAVEPOINT s;
SELECT crm.register_record_type('visit', 'crm.rt_visit', '拜访', 'Visit', 'owner', '{}', 'records.md');
ROLLBACK TO s;
SELECT crm.register_record_type('visit', 'crm.rt_visit', '拜访', 'Visit', 'parent', '{}', 'records.md',
                                parent => 'follow_up', parent_column => 'customer_id');
ROLLBACK TO s;
SELECT crm.register_record_type('visit', 'crm.rt_visit', '拜访', 'Visit', 'parent', '{tags, gps}', 'records.md',
                                parent => 'customer', parent_column => 'customer_id');
ROLLBACK TO s;
SELECT crm.register_record_type('visit', 'pg_catalog.pg_class', '拜访', 'Visit', 'record', '{}', 'records.md');
ROLLBACK TO s;
SELECT crm.register_record_type('visit', 'crm.rt_visit', '拜访', 'Visit', 'record', '{}', '../README.md');
ROLLBACK TO s;
-- one that is: its row, and the install puts what it declares on its table
SELECT crm.register_record_type('visit', 'crm.rt_visit', '拜访', 'Visit', 'parent', '{tags, oplog}', 'records.md',
                                parent => 'customer', parent_column => 'customer_id');
SELECT crm.install_record_type('visit');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'crm.rt_visit'::regclass AND NOT tgisinternal ORDER BY 1;
SELECT polname FROM pg_policy WHERE polrelid = 'crm.rt_visit'::regclass ORDER BY 1;
SELECT crm.record_type_has('visit', 'tags') AS tags, crm.record_type_has('visit', 'pins') AS pins;
-- registered again without the operation log: the next install takes its triggers away
SELECT crm.register_record_type('visit', 'crm.rt_visit', '拜访', 'Visit', 'parent', '{tags}', 'records.md',
                                parent => 'customer', parent_column => 'customer_id');
SELECT crm.install_record_type('visit');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'crm.rt_visit'::regclass AND NOT tgisinternal ORDER BY 1;
ROLLBACK;

-- == Staff read the registry and change nothing of it
CREATE ROLE rt_huang LOGIN IN ROLE crm_user;
CREATE ROLE rt_nobody LOGIN IN ROLE crm_user;
UPDATE crm.employee SET db_role = 'rt_huang' WHERE name = '黄磊';
SET ROLE rt_huang;
SELECT name, label_zh FROM crm.record_type ORDER BY position;
SELECT count(*) AS capabilities FROM crm.record_capability;
INSERT INTO crm.record_type (name, relation, label_zh, label_en, visibility, docs, position)
VALUES ('visit', 'crm.follow_up', '拜访', 'Visit', 'record', 'records.md', 99);
UPDATE crm.record_type SET capabilities = capabilities || '{tags}' WHERE name = 'follow_up';
DELETE FROM crm.record_capability;
SELECT crm.register_record_type('follow_up', 'crm.follow_up', '跟进', 'Follow-up', 'record', '{tags, pins}', 'records.md');
SELECT crm.install_record_type('customer');
RESET ROLE;
-- a login that is no employee reads none of it
SET ROLE rt_nobody;
SELECT count(*) FROM crm.record_type;
RESET ROLE;

-- == A new type with owner visibility: its data scope and write check come from
-- the registry (src/access/scope.c reads it), with no list to extend
BEGIN;
CREATE TABLE crm.rt_deal (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL,
                          owner_id bigint NOT NULL DEFAULT crm.current_employee_id() REFERENCES crm.employee (id),
                          created_by bigint, created_at timestamptz NOT NULL DEFAULT now(),
                          updated_at timestamptz NOT NULL DEFAULT now());
ALTER TABLE crm.rt_deal ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT (name, owner_id), UPDATE (name, owner_id) ON crm.rt_deal TO crm_user;
-- (its English label names the permissions: "Create opportunities")
SELECT crm.register_record_type('deal', 'crm.rt_deal', '商机', 'Opportunity', 'owner', '{}', 'records.md');
SELECT crm.install_record_type('deal');
INSERT INTO crm.employee (name, department_id) SELECT '孙强', id FROM crm.department WHERE name = 'Rt Sales';
SELECT action, description FROM crm.permission WHERE action LIKE 'deal.%' ORDER BY 1;
INSERT INTO crm.role (name) VALUES ('Rt deals');
INSERT INTO crm.role_permission SELECT r.id, a FROM crm.role r, unnest(ARRAY['deal.create', 'deal.edit']) a WHERE r.name = 'Rt deals';
INSERT INTO crm.employee_role SELECT e.id, r.id FROM crm.employee e, crm.role r WHERE e.name = '黄磊' AND r.name = 'Rt deals';
INSERT INTO crm.rt_deal (name, owner_id) SELECT '孙强的商机', id FROM crm.employee WHERE name = '孙强';
SET ROLE rt_huang;
INSERT INTO crm.rt_deal (name) VALUES ('黄磊的商机') RETURNING name, owner_id = crm.current_employee_id() AS own;
-- no role sets a deal scope: self
SELECT name FROM crm.rt_deal;
SELECT rule, grants FROM crm.explain_access('deal', (SELECT id FROM crm.rt_deal WHERE name = '黄磊的商机'));
-- the write check names the type
UPDATE crm.rt_deal SET owner_id = (SELECT id FROM crm.employee WHERE name = '孙强') WHERE name = '黄磊的商机';
ROLLBACK;
SELECT crm.scope_owners('deal');

-- (later tests count every customer: this one leaves none behind)
DELETE FROM crm.customer WHERE name = '温州登记测试有限公司';
DELETE FROM crm.tag_group WHERE name = 'Rt 价值';
UPDATE crm.employee SET db_role = NULL WHERE name = '黄磊';
