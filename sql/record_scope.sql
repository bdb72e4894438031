-- The shared tables (team entries, tags, attachments, the operation log) are
-- visible with the record that decides for their rows, by a copy of its owner
-- that crm keeps (crm.record_scope, docs/architecture.md "Visibility of shared rows").
SELECT setval(s, 87000, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.tag_id_seq', 'crm.tag_group_id_seq']) s \g /dev/null
SELECT setval('crm.lead_id_seq', 87100, false), setval('crm.contact_id_seq', 87200, false),
       setval('crm.follow_up_id_seq', 87300, false) \g /dev/null
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['rs_mgr', 'rs_a', 'rs_b'] LOOP
		EXECUTE format('CREATE ROLE %I LOGIN IN ROLE crm_user', r);
	END LOOP;
END $$;
INSERT INTO crm.department (name) VALUES ('Sc Sales');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT e.name, d.id, e.role FROM (VALUES ('周经理', 'rs_mgr'), ('吴甲', 'rs_a'), ('郑乙', 'rs_b')) e(name, role), crm.department d
 WHERE d.name = 'Sc Sales';
INSERT INTO crm.role (name) VALUES ('Sc manager'), ('Sc rep');
INSERT INTO crm.role_scope (role_id, record_type, scope)
SELECT r.id, t, CASE r.name WHEN 'Sc manager' THEN 'department' ELSE 'self' END
  FROM crm.role r, unnest(ARRAY['customer', 'lead']) t WHERE r.name LIKE 'Sc %';
INSERT INTO crm.role_permission (role_id, action)
SELECT r.id, a FROM crm.role r, unnest(ARRAY['customer.create', 'customer.edit', 'customer.transfer', 'contact.create',
                                             'contact.edit', 'lead.create', 'lead.edit']) a WHERE r.name LIKE 'Sc %';
INSERT INTO crm.employee_role (employee_id, role_id)
SELECT e.id, r.id FROM crm.employee e JOIN crm.role r ON r.name = CASE e.db_role WHEN 'rs_mgr' THEN 'Sc manager' ELSE 'Sc rep' END
 WHERE e.db_role LIKE 'rs_%';
SELECT id AS a FROM crm.employee WHERE db_role = 'rs_a' \gset
SELECT id AS b FROM crm.employee WHERE db_role = 'rs_b' \gset
INSERT INTO crm.tag_group (name) VALUES ('Sc 价值');
INSERT INTO crm.tag (group_id, name) SELECT id, 'Sc 重点' FROM crm.tag_group WHERE name = 'Sc 价值';
SELECT id AS tag FROM crm.tag WHERE name = 'Sc 重点' \gset

-- 吴甲 keeps a customer with a contact, a follow-up, tags and attachments, and a lead
SET ROLE rs_a;
INSERT INTO crm.customer (name, uscc) VALUES ('台州范围测试有限公司', crm.uscc_with_check('91331000MA2C08701'));
SELECT id AS cust FROM crm.customer WHERE name = '台州范围测试有限公司' \gset
INSERT INTO crm.contact (customer_id, name, mobile) VALUES (:cust, '冯联系', '13900087001');
SELECT id AS contact FROM crm.contact WHERE customer_id = :cust \gset
INSERT INTO crm.follow_up (record_type, record_id, content) VALUES ('customer', :cust, '电话沟通，客户要报价');
SELECT id AS fu FROM crm.follow_up WHERE record_id = :cust \gset
INSERT INTO crm.lead (name, company, mobile) VALUES ('褚线索', '台州另一家公司', '13900087002');
SELECT id AS lead FROM crm.lead WHERE name = '褚线索' \gset
INSERT INTO crm.record_tag (record_type, record_id, tag_id) VALUES ('customer', :cust, :tag), ('contact', :contact, :tag);
INSERT INTO crm.attachment (record_type, record_id, file_name, size_bytes, content_type, storage_key)
VALUES ('customer', :cust, '报价单.pdf', 1024, 'application/pdf', 'sc/quote.pdf'),
       ('follow_up', :fu, '录音.m4a', 2048, 'audio/mp4', 'sc/call.m4a');
UPDATE crm.customer SET phone = '0576-87000001' WHERE id = :cust;
UPDATE crm.contact SET email = 'feng@example.com' WHERE id = :contact;
RESET ROLE;

-- every shared row carries the customer and its owner: the customer's own, its
-- contact's and its follow-up's
SELECT 'tag' AS t, record_type, scope_type, scope_owner = :a AS owner_a, scope_id = :cust AS of_cust FROM crm.record_tag WHERE tag_id = :tag
UNION ALL SELECT 'attachment', record_type, scope_type, scope_owner = :a, scope_id = :cust FROM crm.attachment WHERE storage_key LIKE 'sc/%'
UNION ALL SELECT 'log ' || action, record_type, scope_type, scope_owner = :a, scope_id = :cust FROM crm.oplog
 WHERE record_type IN ('customer', 'contact', 'follow_up') AND record_id IN (:cust, :contact, :fu)
ORDER BY 1, 2;

-- who sees what: the owner and her manager everything, a colleague nothing
SET ROLE rs_a;
SELECT (SELECT count(*) FROM crm.record_tag) AS tags, (SELECT count(*) FROM crm.attachment) AS files,
       (SELECT count(*) FROM crm.oplog WHERE scope_type = 'customer' AND scope_id = :cust) AS log;
SET ROLE rs_mgr;
SELECT (SELECT count(*) FROM crm.record_tag) AS tags, (SELECT count(*) FROM crm.attachment) AS files,
       (SELECT count(*) FROM crm.oplog WHERE scope_type = 'customer' AND scope_id = :cust) AS log;
SET ROLE rs_b;
SELECT (SELECT count(*) FROM crm.record_tag) AS tags, (SELECT count(*) FROM crm.attachment) AS files,
       (SELECT count(*) FROM crm.oplog) AS log;
-- ... and cannot write a scope of her own: the columns are crm's
INSERT INTO crm.record_tag (record_type, record_id, tag_id, scope_type, scope_owner, scope_id)
VALUES ('customer', :cust, :tag, 'customer', :b, :cust);
RESET ROLE;

-- == A new owner: the rows follow the customer, its contact's and follow-up's with it
SET ROLE rs_a;
SELECT crm.transfer('customer', ARRAY[:cust]::bigint[], :b, keep_old_owner_on_team => false);
-- (the log rows she wrote, the transfer's included, and the files she added stay hers)
SELECT (SELECT count(*) FROM crm.record_tag) AS tags, (SELECT count(*) FROM crm.attachment) AS files,
       (SELECT count(*) FROM crm.oplog) AS own_log;
SET ROLE rs_b;
SELECT (SELECT count(*) FROM crm.record_tag) AS tags, (SELECT count(*) FROM crm.attachment) AS files,
       (SELECT count(*) FROM crm.oplog WHERE scope_type = 'customer' AND scope_id = :cust) AS log;
RESET ROLE;
SELECT DISTINCT scope_owner = :b AS all_b FROM crm.oplog WHERE scope_type = 'customer' AND scope_id = :cust
UNION ALL SELECT DISTINCT scope_owner = :b FROM crm.record_tag WHERE tag_id = :tag
UNION ALL SELECT DISTINCT scope_owner = :b FROM crm.attachment WHERE storage_key LIKE 'sc/%';

-- a DBA's trigger that gives the customer back within the same statement: the rows
-- follow the owner it ends with, not the one the statement wrote
CREATE FUNCTION public.rs_give_back() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE crm.customer SET owner_id = current_setting('rs.keeper')::bigint WHERE id = NEW.id;
	RETURN NULL;
END $$;
CREATE TRIGGER rs_give_back AFTER UPDATE OF owner_id ON crm.customer FOR EACH ROW
	WHEN (NEW.owner_id <> current_setting('rs.keeper')::bigint) EXECUTE FUNCTION public.rs_give_back();
SELECT set_config('rs.keeper', :'b', false) IS NOT NULL AS kept_by_b;
UPDATE crm.customer SET owner_id = :a WHERE id = :cust;
DROP TRIGGER rs_give_back ON crm.customer;
DROP FUNCTION public.rs_give_back();
SELECT owner_id = :b AS owner_b FROM crm.customer WHERE id = :cust;
SELECT DISTINCT scope_owner = :b AS all_b FROM crm.oplog WHERE scope_type = 'customer' AND scope_id = :cust
UNION ALL SELECT DISTINCT scope_owner = :b FROM crm.record_tag WHERE tag_id = :tag
UNION ALL SELECT DISTINCT scope_owner = :b FROM crm.attachment WHERE storage_key LIKE 'sc/%';

-- a DBA's trigger that hands the customer to someone else as a colleague edits it, in
-- an exception block (a subtransaction): the edit's log row follows the customer,
-- whether the trigger fires before the log's (the row the log is given was changed
-- again) or after it (the hand-over's moves did not see the edit's pending log row)
CREATE FUNCTION public.rs_hand_over() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		UPDATE crm.customer SET owner_id = current_setting('rs.keeper')::bigint
		 WHERE id = NEW.id AND owner_id <> current_setting('rs.keeper')::bigint;
	EXCEPTION WHEN others THEN
		RAISE WARNING '%', SQLERRM;
	END;
	RETURN NULL;
END $$;
-- (one edit under such a trigger, named to fire before or after the log's: what the
-- former owner rs_b sees of it, and the shared rows whose scope is not their record's)
CREATE FUNCTION pg_temp.rs_edit_handed_over(trigger_name text, new_phone text, cust bigint, b bigint,
                                            OUT b_sees_edit bigint, OUT drifted bigint) LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OF phone ON crm.customer FOR EACH ROW'
	               ' EXECUTE FUNCTION public.rs_hand_over()', trigger_name);
	UPDATE crm.customer SET phone = new_phone WHERE id = cust;
	EXECUTE format('DROP TRIGGER %I ON crm.customer', trigger_name);
	SET LOCAL ROLE rs_b;
	SELECT count(*) INTO b_sees_edit FROM crm.oplog o
	 WHERE o.record_type = 'customer' AND o.record_id = cust AND o.changes -> 'phone' ->> 1 = new_phone;
	RESET ROLE;
	drifted := crm.refresh_record_scopes(true);
	UPDATE crm.customer SET owner_id = b WHERE id = cust;
END $$;
SELECT set_config('rs.keeper', :'a', false) IS NOT NULL AS kept_by_a;
SELECT 'before' AS fires, * FROM pg_temp.rs_edit_handed_over('assign_key_account', '0576-87009999', :cust, :b)
UNION ALL SELECT 'after', * FROM pg_temp.rs_edit_handed_over('zz_hand_over', '0576-87009998', :cust, :b);
DROP FUNCTION public.rs_hand_over();

-- a team entry shows the customer's rows to its collaborator
SET ROLE rs_b;
INSERT INTO crm.team_member (record_type, record_id, employee_id, access) VALUES ('customer', :cust, :a, 'read');
SET ROLE rs_a;
SELECT (SELECT count(*) FROM crm.record_tag) AS tags, (SELECT count(*) FROM crm.attachment) AS files,
       (SELECT count(*) FROM crm.team_member) AS team;
RESET ROLE;
DELETE FROM crm.team_member WHERE record_id = :cust;

-- == Moves: a contact to another customer, a follow-up to a lead
SET ROLE rs_a;
INSERT INTO crm.customer (name, uscc) VALUES ('丽水范围测试有限公司', crm.uscc_with_check('91331100MA2C08702'));
SELECT id AS cust2 FROM crm.customer WHERE name = '丽水范围测试有限公司' \gset
RESET ROLE;
UPDATE crm.contact SET customer_id = :cust2 WHERE id = :contact;
UPDATE crm.follow_up SET record_type = 'lead', record_id = :lead WHERE id = :fu;
SELECT 'tag' AS t, record_type, scope_type, scope_owner = :a AS owner_a, scope_id IN (:cust2, :lead) AS moved FROM crm.record_tag WHERE tag_id = :tag
UNION ALL SELECT 'attachment', record_type, scope_type, scope_owner = :a, scope_id IN (:cust2, :lead) FROM crm.attachment WHERE storage_key LIKE 'sc/%'
UNION ALL SELECT DISTINCT 'log', record_type, scope_type, scope_owner = :a, scope_id IN (:cust2, :lead) FROM crm.oplog
 WHERE (record_type, record_id) IN (('contact', :contact), ('follow_up', :fu))
ORDER BY 1, 2;
SET ROLE rs_a;
SELECT (SELECT count(*) FROM crm.record_tag) AS tags, (SELECT count(*) FROM crm.attachment) AS files;
RESET ROLE;

-- a MERGE that moves the contact and adds another (its old and new rows mixed
-- with an insert's) moves the contact's rows, and only them
MERGE INTO crm.contact k USING (VALUES (:contact::bigint), (0)) v (id) ON k.id = v.id
WHEN MATCHED THEN UPDATE SET customer_id = :cust
WHEN NOT MATCHED THEN INSERT (customer_id, name, mobile, owner_id) VALUES (:cust2, '冯合并', '13900087002', :a);
SELECT 'tag' AS t, scope_id = :cust AS moved_back FROM crm.record_tag WHERE record_type = 'contact' AND record_id = :contact
UNION ALL SELECT DISTINCT 'log', scope_id = :cust FROM crm.oplog WHERE record_type = 'contact' AND record_id = :contact
UNION ALL SELECT 'new contact', scope_id = :cust FROM crm.oplog WHERE record_type = 'contact' AND record_id <> :contact AND action = 'insert' AND scope_id IN (:cust, :cust2)
ORDER BY 1;
DELETE FROM crm.contact WHERE name = '冯合并';
UPDATE crm.contact SET customer_id = :cust2 WHERE id = :contact;

-- a record keeps its id, a superuser's renumbering included: its tags, team entries,
-- files and log name it by its id, and would name another record or none
INSERT INTO crm.customer (name, uscc, owner_id) VALUES ('丽水改号有限公司', crm.uscc_with_check('91331100MA2C08703'), :a);
SELECT id AS renumbered FROM crm.customer WHERE name = '丽水改号有限公司' \gset
UPDATE crm.customer SET id = DEFAULT WHERE id = :renumbered;
DELETE FROM crm.customer WHERE id = :renumbered;
DELETE FROM crm.oplog WHERE record_type = 'customer' AND record_id = :renumbered;

-- == A deleted record's history is shown to whoever made it, no longer by its scope
DELETE FROM crm.record_tag WHERE record_id = :contact;
DELETE FROM crm.contact WHERE id = :contact;
SELECT count(*) AS contact_log_with_scope FROM crm.oplog WHERE record_type = 'contact' AND record_id = :contact AND scope_type IS NOT NULL;
SET ROLE rs_mgr;
SELECT count(*) AS manager_sees FROM crm.oplog WHERE record_type = 'contact' AND record_id = :contact;
SET ROLE rs_a;
SELECT action, count(*) AS author_sees FROM crm.oplog WHERE record_type = 'contact' AND record_id = :contact GROUP BY 1 ORDER BY 1;
RESET ROLE;

-- nothing drifted
SELECT crm.refresh_record_scopes(true) AS drifted;

-- == The read policies are the record tables' own test, with no look-up per row
SELECT c.relname, p.polname, pg_get_expr(p.polqual, p.polrelid) LIKE '%record_visible%' AS per_row
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
 WHERE p.polrelid IN (SELECT crm.scoped_tables()) AND p.polcmd = 'r' ORDER BY 1, 2;
SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = 'crm.oplog'::regclass AND polname = 'oplog_read';
-- a manager's count of the tags reads an index on their scopes, with no sub-plan
-- per row; each type's own scope is tested only for a row whose owner is not
-- among those the reader sees for every type, which an init plan gives once
SET ROLE rs_mgr;
SET enable_seqscan = off;
DO $$
DECLARE
	plan text := '';
	l    text;
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) SELECT count(*) FROM crm.record_tag' LOOP
		plan := plan || l || E'\n';
	END LOOP;
	RAISE NOTICE 'an index on the scopes: %, sub-plans: %, per-type tests behind one: %', plan LIKE '%record_tag_scope_%_idx%',
		plan LIKE '%SubPlan%', plan LIKE '%InitPlan%' AND plan LIKE '%CASE WHEN (scope_owner = ANY ($0)) THEN true ELSE%';
END
$$;
RESET enable_seqscan;
RESET ROLE;

-- each type keeps its own scope on the shared rows (a manager who sees the leads
-- of her department, then only her own): the log, one arm per type beside its
-- author's own rows, and the tags, led by the owners of every type
-- (crm.scope_owners(text[]), their union)
BEGIN;
INSERT INTO crm.record_tag (record_type, record_id, tag_id) VALUES ('lead', :lead, :tag);
SET ROLE rs_mgr;
SELECT scope_type, count(*) AS log_rows FROM crm.oplog GROUP BY 1 ORDER BY 1;
SELECT scope_type, count(*) AS tags FROM crm.record_tag GROUP BY 1 ORDER BY 1;
RESET ROLE;
UPDATE crm.role_scope SET scope = 'self' WHERE record_type = 'lead' AND role_id = (SELECT id FROM crm.role WHERE name = 'Sc manager');
SET ROLE rs_mgr;
SELECT cardinality(crm.scope_owners('customer')) AS customer_owners, cardinality(crm.scope_owners('lead')) AS lead_owners,
       cardinality(crm.scope_owners('{customer,lead}'::text[])) AS either,
       crm.common_scope_owners('{customer,lead}') = ARRAY[crm.current_employee_id()] AS both_only_her_own;
SELECT scope_type, count(*) AS log_rows FROM crm.oplog GROUP BY 1 ORDER BY 1;
SELECT scope_type, count(*) AS tags FROM crm.record_tag GROUP BY 1 ORDER BY 1;
ROLLBACK;
-- a type that is not registered is an error, not an empty scope
SET ROLE rs_mgr;
SELECT crm.scope_owners('{customer,deal}'::text[]);
SELECT crm.common_scope_owners('{customer,deal}');
RESET ROLE;
SELECT polname, pg_get_expr(polqual, polrelid) LIKE format('%%crm.scope_owners(%L::text[])%%',
       (SELECT array_agg(t.name ORDER BY t.position) FROM crm.record_type t WHERE t.visibility = 'owner')) AS led_by_every_type
  FROM pg_policy WHERE polname IN ('record_tag_read', 'oplog_read', 'team_member_read', 'attachment_read') ORDER BY 1;
-- == The machinery is crm's
\set VERBOSITY terse
SET ROLE rs_a;
SELECT * FROM crm.record_scope('customer', :cust);
SELECT crm.refresh_record_scopes();
SELECT crm.install_record_scopes();
RESET ROLE;
CREATE TABLE public.sc_scratch (record_type text, record_id bigint, scope_type text, scope_owner bigint, scope_id bigint, id bigint);
CREATE TRIGGER sc_scratch_scope BEFORE INSERT ON public.sc_scratch FOR EACH ROW EXECUTE FUNCTION crm.stamp_record_scope();
INSERT INTO public.sc_scratch (record_type, record_id) VALUES ('customer', :cust);
DROP TRIGGER sc_scratch_scope ON public.sc_scratch;
CREATE TRIGGER sc_scratch_moved AFTER UPDATE ON public.sc_scratch REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION crm.record_scope_moved();
UPDATE public.sc_scratch SET record_id = 1;
DROP TABLE public.sc_scratch;
\set VERBOSITY default

DELETE FROM crm.attachment WHERE storage_key LIKE 'sc/%';
DELETE FROM crm.file_removal WHERE storage_key LIKE 'sc/%';
DELETE FROM crm.follow_up WHERE id = :fu;
DELETE FROM crm.lead WHERE id = :lead;
DELETE FROM crm.customer_owner_change WHERE customer_id IN (:cust, :cust2);
DELETE FROM crm.customer WHERE id IN (:cust, :cust2);
DELETE FROM crm.oplog WHERE scope_id IN (:cust, :cust2, :lead) OR record_id IN (:cust, :cust2, :contact, :fu, :lead);
DELETE FROM crm.tag_group WHERE name = 'Sc 价值';
DELETE FROM crm.role WHERE name LIKE 'Sc %';
DROP OWNED BY rs_mgr, rs_a, rs_b;
