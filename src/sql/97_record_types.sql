-- Installing the registered record types (docs/adding-a-record-type.md): what
-- each type's visibility and capabilities need on its table.  Runs after every
-- piece, so that the functions the triggers call exist; every update runs it
-- again, so that a changed trigger or policy reaches existing databases.

-- Who may read (or edit) a record of a type with owner visibility, as an SQL
-- test of its owner and id columns: the owner is in the reader's data scope, or
-- the reader is on its team (with edit access, to edit).  The one text of that
-- rule: the type's own policies, the arms of the shared tables' policies and the
-- timeline's follow-ups are made from it.
CREATE OR REPLACE FUNCTION crm.scope_test(record_type text, owner_column text, id_column text, editing boolean)
RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT format('(%2$s = ANY (crm.scope_owners(%1$L)) OR %3$s = ANY (crm.team_records(%1$L, %4$s)))',
	              record_type, owner_column, id_column, CASE WHEN editing THEN 'true' ELSE 'false' END)
$$;
COMMENT ON FUNCTION crm.scope_test(text, text, text, boolean) IS
	'The read or edit test of an owner-scoped record type over the given owner and id columns, as SQL (crm''s install and update scripts only)';

-- Adds the permissions of the type's actions, and installs on its table,
-- replacing what an earlier install made: the
-- stamps and, for a table with an owner, the write check (src/access/scope.c); for
-- owner visibility the four policies of its data scope and team; the triggers
-- of the capabilities it takes part in (dictionary checks, the operation log,
-- duplicate checks), dropping those of capabilities it no longer has; and the
-- triggers that take its links along when its rows go (96_record_links.sql).
-- crm's own scripts are its only callers.
CREATE OR REPLACE FUNCTION crm.install_record_type(name text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r        crm.record_type := (SELECT t FROM crm.record_type t WHERE t.name = install_record_type.name);
	p        crm.record_type := (SELECT t FROM crm.record_type t WHERE t.name = r.parent);
	-- name suffix, timing and events, level, function: the triggers a type may have
	triggers CONSTANT text[][] := ARRAY[
		['_stamp',          'BEFORE INSERT OR UPDATE', 'ROW', 'crm.stamp_record()'],
		-- (named to run after the stamp: triggers fire in name order)
		['_write_check',    'BEFORE INSERT OR UPDATE OR DELETE', 'ROW', format('crm.check_write(%L)', r.name)],
		['_dictionary_check', 'BEFORE INSERT OR UPDATE', 'ROW', 'crm.check_dictionary()'],
		-- (an owner type's log rows take their scope from the row: oplog.c)
		['_log_row',        'AFTER INSERT OR UPDATE OR DELETE', 'ROW', format('crm.log_row(%L)', r.visibility)],
		['_log_flush',      'AFTER INSERT OR UPDATE OR DELETE', 'STATEMENT', 'crm.log_flush()'],
		['_dedupe_insert',  'AFTER INSERT', 'STATEMENT', 'crm.dedupe_check()'],
		['_dedupe_update',  'AFTER UPDATE', 'STATEMENT', 'crm.dedupe_check()'],
		['_drop_links',     'AFTER DELETE', 'STATEMENT', 'crm.record_deleted()'],
		['_scope_moved',    'AFTER UPDATE', 'STATEMENT', 'crm.record_scope_moved()'],
		['_truncate_links', 'AFTER TRUNCATE', 'STATEMENT', 'crm.record_deleted()']];
	wanted   boolean;
	old      name;
	c        record;
BEGIN
	IF r.name IS NULL THEN
		RAISE EXCEPTION 'record type "%" is not registered', name USING ERRCODE = 'undefined_object',
			HINT = 'Register it first with crm.register_record_type.';
	END IF;

	-- the actions a role can grant on a type with an owner, <type>.create and so
	-- on, which its write check asks for (a type with neither owner nor
	-- actions of its own, a deal's lines, is written as its parent is edited)
	INSERT INTO crm.permission (action, description)
	SELECT r.name || '.' || a, format('%s %s', initcap(a), regexp_replace(lower(r.label_en), '([^aeiou])y$', '\1ie') || 's')
	  FROM unnest(ARRAY['create', 'edit', 'delete', 'import', 'export', 'transfer']) a
	 WHERE r.visibility IN ('owner', 'parent')
	   AND EXISTS (SELECT FROM pg_attribute x WHERE x.attrelid = r.relation AND x.attname = 'owner_id' AND NOT x.attisdropped)
	ON CONFLICT ON CONSTRAINT permission_pkey DO NOTHING;

	FOR i IN 1 .. array_length(triggers, 1) LOOP
		wanted := CASE triggers[i][1]
			WHEN '_write_check' THEN EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = r.relation
			                                                             AND a.attname = 'owner_id' AND NOT a.attisdropped)
			WHEN '_dictionary_check' THEN 'dictionaries' = ANY (r.capabilities)
			WHEN '_log_row' THEN 'oplog' = ANY (r.capabilities)
			WHEN '_log_flush' THEN 'oplog' = ANY (r.capabilities)
			WHEN '_dedupe_insert' THEN 'duplicates' = ANY (r.capabilities)
			WHEN '_dedupe_update' THEN 'duplicates' = ANY (r.capabilities)
			ELSE true END;
		IF wanted THEN
			EXECUTE format('CREATE OR REPLACE TRIGGER %I %s ON %s %s FOR EACH %s EXECUTE FUNCTION %s',
			               r.name || triggers[i][1], triggers[i][2], r.relation,
			               CASE triggers[i][1] WHEN '_dedupe_insert' THEN 'REFERENCING NEW TABLE AS new_rows'
			                                   WHEN '_dedupe_update' THEN 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'
			                                   WHEN '_drop_links' THEN 'REFERENCING OLD TABLE AS deleted'
			                                   WHEN '_scope_moved' THEN 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows' ELSE '' END,
			               triggers[i][3], triggers[i][4]);
		ELSE
			-- a capability it no longer has
			FOR old IN SELECT g.tgname FROM pg_trigger g WHERE g.tgrelid = r.relation AND g.tgname = r.name || triggers[i][1] LOOP
				EXECUTE format('DROP TRIGGER %I ON %s', old, r.relation);
			END LOOP;
		END IF;
	END LOOP;

	-- (a type that follows the record it is about writes its own policies)
	IF r.visibility NOT IN ('owner', 'parent') THEN
		RETURN;
	END IF;
	FOR old IN SELECT y.polname FROM pg_policy y
	            WHERE y.polrelid = r.relation
	              AND y.polname IN (r.name || '_read', r.name || '_insert', r.name || '_update', r.name || '_delete') LOOP
		EXECUTE format('DROP POLICY %I ON %s', old, r.relation);
	END LOOP;
	IF r.visibility = 'owner' THEN
		EXECUTE format('CREATE POLICY %I ON %s FOR SELECT TO crm_user USING %s',
		               r.name || '_read', r.relation, crm.scope_test(r.name, 'owner_id', 'id', false));
		EXECUTE format($q$
			CREATE POLICY %1$I ON %2$s FOR INSERT TO crm_user WITH CHECK (
				owner_id = ANY (crm.scope_owners(%3$L)))$q$,
			r.name || '_insert', r.relation, r.name);
		EXECUTE format('CREATE POLICY %I ON %s FOR UPDATE TO crm_user USING %s WITH CHECK (true)',
		               r.name || '_update', r.relation, crm.scope_test(r.name, 'owner_id', 'id', true));
		EXECUTE format($q$
			CREATE POLICY %1$I ON %2$s FOR DELETE TO crm_user USING (
				owner_id = ANY (crm.scope_owners(%3$L)))$q$,
			r.name || '_delete', r.relation, r.name);
	ELSE
		-- visible with its parent; written by whoever may edit the parent (a read
		-- collaborator of the parent sees it but does not write it).  The
		-- sub-selects run under the parent table's own policies.
		EXECUTE format($q$
			CREATE POLICY %1$I ON %2$s FOR SELECT TO crm_user USING (
				EXISTS (SELECT FROM %3$s p WHERE p.id = %2$s.%4$I))$q$,
			r.name || '_read', r.relation, p.relation, r.parent_column);
		FOR c IN SELECT * FROM (VALUES ('insert', 'WITH CHECK'), ('update', 'USING'), ('delete', 'USING')) v(cmd, clause) LOOP
			EXECUTE format($q$
				CREATE POLICY %1$I ON %2$s FOR %5$s TO crm_user %6$s (
					EXISTS (SELECT FROM %3$s p WHERE p.id = %2$s.%4$I AND %7$s))$q$,
				r.name || '_' || c.cmd, r.relation, p.relation, r.parent_column, upper(c.cmd), c.clause,
				crm.scope_test(p.name, 'p.owner_id', 'p.id', true));
		END LOOP;
	END IF;
END
$$;
COMMENT ON FUNCTION crm.install_record_type(text) IS
	'Install what a registered record type''s visibility and capabilities need on its table (crm''s install and update scripts only)';

-- Who sees the rows of the shared tables (team entries, tags, attachments, the
-- operation log) is decided by one record: the row's own record when it has an
-- owner, else the record that decides for it (a contact's customer, a
-- follow-up's customer or lead).  Each row carries a copy of that record's
-- type, id and current owner (scope_type, scope_id, scope_owner), kept by crm,
-- so that its read policy is the record tables' own "owner_id = ANY
-- (crm.scope_owners(t))", which the planner turns into an index condition,
-- and not a look-up per row (docs/architecture.md, "Visibility of shared rows").

-- The tables whose rows carry a scope: every table of crm with the three
-- columns (a custom field of the same name is data, not a scope).
CREATE OR REPLACE FUNCTION crm.scoped_tables() RETURNS SETOF regclass
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT c.oid::regclass FROM pg_class c
	 WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'r'
	   AND (SELECT count(*) FROM pg_attribute a
	         WHERE a.attrelid = c.oid AND NOT a.attisdropped
	           AND (a.attname, a.atttypid) IN (('scope_type', 'text'::regtype), ('scope_owner', 'bigint'::regtype),
	                                           ('scope_id', 'bigint'::regtype), ('record_type', 'text'::regtype),
	                                           ('record_id', 'bigint'::regtype))
	           AND NOT EXISTS (SELECT FROM crm.added_field f WHERE f.record_type = c.relname AND f.name = a.attname)) = 5
	 ORDER BY 1
$$;
COMMENT ON FUNCTION crm.scoped_tables() IS
	'The tables of crm whose rows carry the scope of the record that decides who sees them (scope_type, scope_owner, scope_id)';

-- Generated from the registry by crm.install_record_scopes() below:
-- crm.record_scope(record_type, record_id), the deciding record of a record
-- and its owner, read as crm's owner (no row: the record does not exist);
-- and the read policy <table>_read of each scoped table, one arm per type
-- with owner visibility, the same test as that type's own policy.  A pair of
-- columns naming records that carry no scope (duplicate pairs) gets a test
-- per type instead, a sub-select under the type's own policy.
CREATE OR REPLACE FUNCTION crm.install_record_scopes() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t         crm.record_type;
	p         crm.record_type;
	branches  text[] := '{}';
	arms      text;
	union_arms text;
	tbl       regclass;
	k         record;
BEGIN
	FOR t IN SELECT * FROM crm.record_type ORDER BY position LOOP
		IF t.visibility = 'owner' THEN
			branches := branches || format('SELECT %1$L::text, r.owner_id, r.id FROM %2$s r'
			                               ' WHERE record_scope.record_type = %1$L AND r.id = record_scope.record_id',
			                               t.name, t.relation);
		ELSIF t.visibility = 'parent' THEN
			p := (SELECT x FROM crm.record_type x WHERE x.name = t.parent);
			branches := branches || format('SELECT %1$L::text, p.owner_id, p.id FROM %2$s r JOIN %3$s p ON p.id = r.%4$I'
			                               ' WHERE record_scope.record_type = %5$L AND r.id = record_scope.record_id',
			                               p.name, t.relation, p.relation, t.parent_column, t.name);
		ELSE
			-- a record about another record (record_type, record_id): the records of
			-- the capability whose link table it is
			FOR p IN SELECT x.* FROM crm.record_type x JOIN crm.record_capability c ON c.name = ANY (x.capabilities)
			          WHERE c.link_table = (SELECT relname FROM pg_class WHERE oid = t.relation) ORDER BY x.position LOOP
				IF p.visibility <> 'owner' THEN
					RAISE EXCEPTION 'record type "%" is about % records, which have no owner of their own', t.name, p.name
						USING ERRCODE = 'feature_not_supported',
						      HINT = 'A record about another record (visibility record) is about records with owner visibility.';
				END IF;
				branches := branches || format('SELECT %1$L::text, p.owner_id, p.id FROM %2$s r JOIN %3$s p ON p.id = r.record_id'
				                               ' WHERE record_scope.record_type = %4$L AND r.id = record_scope.record_id'
				                               ' AND r.record_type = %1$L',
				                               p.name, t.relation, p.relation, t.name);
			END LOOP;
		END IF;
	END LOOP;
	-- (a body in SQL-standard form is bound when created, whatever the caller's
	-- search_path, and is inlined into the statements that call it)
	EXECUTE format($f$
		CREATE OR REPLACE FUNCTION crm.record_scope(record_type text, record_id bigint)
			RETURNS TABLE (scope_type text, scope_owner bigint, scope_id bigint) LANGUAGE sql STABLE
		BEGIN ATOMIC
			%s;
		END$f$, coalesce(array_to_string(branches, E'\n\t\t\tUNION ALL\n\t\t\t'),
		                 'SELECT NULL::text, NULL::bigint, NULL::bigint WHERE false'));
	COMMENT ON FUNCTION crm.record_scope(text, bigint) IS
		'The record that decides who sees a record''s shared rows, and its owner (generated from crm.record_type; crm''s own)';

	SELECT string_agg(format('(scope_type = %L AND %s)', x.name, crm.scope_test(x.name, 'scope_owner', 'scope_id', false)),
	                  ' OR ' ORDER BY x.position),
	       -- the same rule, led by the owners of every type: one index condition, and
	       -- each type's own scope tested on the index's columns.  A sub-select gives
	       -- once per statement the owners the reader sees for every type (for most
	       -- roles, all of them), and a row whose owner is among them needs no other
	       -- test.  (An index condition is evaluated again whenever its scan
	       -- restarts, and may meet an organisation changed meanwhile: the row is held
	       -- to the sub-select's answer or to its own type's scope.  The tests per type
	       -- wait in a CASE, which the planner does not price by evaluating scopes.)
	       format('(scope_type = ANY (%L) AND scope_owner = ANY (crm.scope_owners(%1$L::text[]))%s) OR %s',
	              array_agg(x.name ORDER BY x.position),
	              CASE WHEN count(*) > 1 THEN
	                format(' AND CASE WHEN scope_owner = ANY ((SELECT crm.common_scope_owners(%L::text[]))::bigint[])'
	                       ' THEN true ELSE %s END',
	                       array_agg(x.name ORDER BY x.position),
	                       string_agg(format('(scope_type = %1$L AND scope_owner = ANY (crm.scope_owners(%1$L)))', x.name), ' OR ' ORDER BY x.position))
	              ELSE '' END,
	              string_agg(format('(scope_type = %1$L AND scope_id = ANY (crm.team_records(%1$L, false)))', x.name), ' OR ' ORDER BY x.position))
	  INTO arms, union_arms
	  FROM crm.record_type x
	 WHERE x.visibility = 'owner' HAVING count(*) > 0;
	FOR tbl IN SELECT crm.scoped_tables() LOOP
		IF EXISTS (SELECT FROM pg_policy y WHERE y.polrelid = tbl AND y.polname = (SELECT relname FROM pg_class WHERE oid = tbl) || '_read') THEN
			EXECUTE format('DROP POLICY %I ON %s', (SELECT relname FROM pg_class WHERE oid = tbl) || '_read', tbl);
		END IF;
		-- A table read through its scope alone (tags) takes the rule led by the
		-- owners of every type: its counts are index-only scans.  Beside another
		-- policy (the reader's own log rows, team entries, files) the planner
		-- spreads that lead over a bitmap OR and tests it all again per row (the
		-- log's count took 3.4 times as long), so those keep an arm per type,
		-- which it joins to the other policy in one bitmap scan.
		EXECUTE format('CREATE POLICY %I ON %s FOR SELECT TO crm_user USING (%s)',
		               (SELECT relname FROM pg_class WHERE oid = tbl) || '_read', tbl,
		               coalesce(CASE WHEN EXISTS (SELECT FROM pg_policy y WHERE y.polrelid = tbl AND y.polpermissive AND y.polcmd IN ('r', '*'))
		                             THEN arms ELSE union_arms END, 'false'));
		-- rows people write get their scope when written; the history's writer
		-- (src/records/oplog.c) writes it itself
		IF EXISTS (SELECT FROM crm.record_links() l WHERE l.link_table = tbl AND l.on_delete <> 'keep') THEN
			EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE INSERT OR UPDATE OF record_type, record_id ON %s'
			               ' FOR EACH ROW EXECUTE FUNCTION crm.stamp_record_scope()',
			               (SELECT relname FROM pg_class WHERE oid = tbl) || '_scope', tbl);
		END IF;
	END LOOP;

	-- a record about another record (a follow-up): visible to its author and to
	-- whoever sees that record, written by its author about a record they see
	-- (the sub-selects run under the record tables' own policies)
	FOR t IN SELECT * FROM crm.record_type x WHERE x.visibility = 'record' ORDER BY x.position LOOP
		SELECT string_agg(format('(record_type = %L AND EXISTS (SELECT FROM %s r WHERE r.id = %s.record_id))',
		                         x.name, x.relation, t.relation), ' OR ' ORDER BY x.position)
		  INTO arms
		  FROM crm.record_type x JOIN crm.record_capability c ON c.name = ANY (x.capabilities)
		 WHERE c.link_table = (SELECT relname FROM pg_class WHERE oid = t.relation);
		FOR k IN SELECT * FROM (VALUES ('_read', 'FOR SELECT TO crm_user USING (created_by = (SELECT crm.current_employee_id()) OR %s)'),
		                               ('_write', 'FOR INSERT TO crm_user WITH CHECK (created_by = (SELECT crm.current_employee_id()) AND (%s))')) v(suffix, clause) LOOP
			IF EXISTS (SELECT FROM pg_policy y WHERE y.polrelid = t.relation AND y.polname = t.name || k.suffix) THEN
				EXECUTE format('DROP POLICY %I ON %s', t.name || k.suffix, t.relation);
			END IF;
			EXECUTE format('CREATE POLICY %I ON %s ' || k.clause, t.name || k.suffix, t.relation, coalesce(arms, 'false'));
		END LOOP;
	END LOOP;

	-- duplicate pairs: both records, each under its own type's policy
	SELECT string_agg(format('(%%1$I = %1$L AND EXISTS (SELECT FROM %2$s r WHERE r.id = duplicate_set.%%2$I))', x.name, x.relation),
	                  ' OR ' ORDER BY x.position)
	  INTO arms FROM crm.record_type x WHERE 'duplicates' = ANY (x.capabilities);
	IF EXISTS (SELECT FROM pg_policy y WHERE y.polrelid = 'crm.duplicate_set'::regclass AND y.polname = 'duplicate_set_visible') THEN
		DROP POLICY duplicate_set_visible ON crm.duplicate_set;
	END IF;
	EXECUTE format('CREATE POLICY duplicate_set_visible ON crm.duplicate_set FOR SELECT TO crm_user USING ((%s) AND (%s))',
	               format(coalesce(arms, 'false'), 'record_type', 'record_id'),
	               format(coalesce(arms, 'false'), 'match_type', 'match_id'));
END
$$;
COMMENT ON FUNCTION crm.install_record_scopes() IS
	'Generate crm.record_scope and the read policies of the shared tables from the registry (crm''s install and update scripts only)';

-- crm.timeline, generated from the registry: per record of each type with the
-- timeline capability, its creation, the follow-ups about it, the operation
-- log's changes and, for customers, the moves into and out of a public pool,
-- for deals, their moves between stages.
-- security_invoker: each reader sees the entries of the records they may see
-- (and the log entries they made).
-- The follow-ups come from crm.timeline_follow_up, which joins each to its
-- record and tests the record's scope itself (crm.scope_test, as the record's
-- own policy does), reading the follow-ups as its owner: under the reader, the
-- follow-ups' own policy would test every row's record again in a sub-plan,
-- which the planner prices so high that it gives up the hash join a wide
-- scope needs (a manager's page took twice as long).  Its rows are a subset
-- of what that policy lets the reader see; security_barrier keeps a reader's
-- own conditions from seeing the rows it leaves out.  A superuser, whom the
-- policies leave alone, sees there the follow-ups of the records in the scope
-- of the employee they act as, none when they act as nobody (a branch for
-- them, behind a test made once, still priced the whole table into every
-- reader's plan: enough for PostgreSQL to compile a salesperson's page).
-- They read crm.follow_up itself.
CREATE OR REPLACE FUNCTION crm.install_timeline() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	branches   text[] := '{}';
	follow_ups text[];
	t          crm.record_type;
BEGIN
	FOR t IN SELECT * FROM crm.record_type x WHERE 'timeline' = ANY (x.capabilities) AND x.visibility <> 'record'
	          ORDER BY x.position LOOP
		branches := branches || format('SELECT %L::text AS record_type, r.id AS record_id, r.created_at AS at, ''insert''::text AS kind,'
		                               ' r.created_by AS employee_id, NULL::text AS detail, NULL::text AS summary, NULL::jsonb AS changes'
		                               ' FROM %s r', t.name, t.relation);
	END LOOP;
	FOR t IN SELECT * FROM crm.record_type x WHERE 'follow_ups' = ANY (x.capabilities) ORDER BY x.position LOOP
		follow_ups := follow_ups || format('SELECT f.record_type, f.record_id, f.created_at, f.created_by, f.method, f.content'
		                                   ' FROM crm.follow_up f JOIN %s r ON r.id = f.record_id WHERE f.record_type = %L AND %s',
		                                   t.relation, t.name, crm.scope_test(t.name, 'r.owner_id', 'r.id', false));
	END LOOP;
	-- (the union is wrapped: PostgreSQL flattens a view that is a UNION ALL into
	-- the reader's query, security_barrier or not, and a reader's function in
	-- WHERE then ran on every branch's rows)
	EXECUTE format($v$
		CREATE OR REPLACE VIEW crm.timeline_follow_up WITH (security_barrier = true) AS
		SELECT * FROM (
		%s
		) f$v$, coalesce(array_to_string(follow_ups, E'
		UNION ALL
		'), 'SELECT f.record_type, f.record_id, f.created_at, f.created_by, f.method, f.content FROM crm.follow_up f WHERE false'));
	COMMENT ON VIEW crm.timeline_follow_up IS
		'The follow-ups about the records the reader sees (crm.timeline''s follow-up entries)';
	GRANT SELECT ON crm.timeline_follow_up TO crm_user;
	branches := branches || 'SELECT f.record_type, f.record_id, f.created_at, ''follow_up'', f.created_by, f.method, f.content, NULL FROM crm.timeline_follow_up f'::text;
	EXECUTE format($v$
		CREATE OR REPLACE VIEW crm.timeline WITH (security_invoker = true) AS
		%s
		UNION ALL
		SELECT o.record_type, o.record_id, o.at,
		       CASE WHEN o.action = 'update' AND o.changes ? 'owner_id' THEN 'owner_change'
		            WHEN o.action = 'update' AND o.changes ? 'status_id' THEN 'status_change'
		            ELSE o.action END,
		       o.employee_id, o.source, NULL, o.changes
		  FROM crm.oplog o
		 WHERE o.action <> 'insert'
		UNION ALL
		-- moves into and out of a public pool are in the owner history, not the log
		SELECT 'customer', h.customer_id, h.changed_at, 'owner_change', h.changed_by, h.kind, h.reason,
		       jsonb_build_object('owner_id', jsonb_build_array(h.from_owner, h.to_owner))
		  FROM crm.customer_owner_change h
		 WHERE h.kind <> 'transfer'
		UNION ALL
		-- a deal's moves between stages are in its stage history, not the log
		SELECT 'opportunity', m.opportunity_id, m.changed_at, 'stage_change', m.changed_by, NULL, NULL,
		       jsonb_build_object('stage_id', jsonb_build_array(m.from_stage_id, m.to_stage_id), 'probability', m.probability)
		  FROM crm.opportunity_stage_change m
		 WHERE m.from_stage_id IS NOT NULL$v$, array_to_string(branches, E'
		UNION ALL
		'));
	COMMENT ON VIEW crm.timeline IS
		'Per record: creation, follow-ups, logged changes, pool moves and deals'' stage moves (kind insert, follow_up, update, owner_change, status_change, stage_change, delete)';
	GRANT SELECT ON crm.timeline TO crm_user;
END
$$;
COMMENT ON FUNCTION crm.install_timeline() IS
	'Generate crm.timeline from the registry (crm''s install and update scripts only)';

-- The scope of a row people write, when written or moved to another record
-- (a restore loads the scopes the dump holds).  Whether the owner it read is
-- still the owner when the row commits is settled after the row's policies
-- let it in, by crm.check_record_links and crm.lock_record_scopes.
CREATE OR REPLACE FUNCTION crm.stamp_record_scope() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> ALL ('{crm.team_member,crm.record_tag,crm.attachment}'::regclass[]) OR TG_LEVEL <> 'ROW' OR TG_WHEN <> 'BEFORE' OR TG_OP NOT IN ('INSERT', 'UPDATE') THEN
		RAISE 'crm.stamp_record_scope() runs only BEFORE INSERT OR UPDATE FOR EACH ROW on crm.team_member, crm.record_tag and crm.attachment, not on %', TG_RELID::regclass
			USING ERRCODE = 'wrong_object_type';
	END IF;
	IF crm.restoring() THEN
		RETURN NEW;
	END IF;
	SELECT s.scope_type, s.scope_owner, s.scope_id INTO NEW.scope_type, NEW.scope_owner, NEW.scope_id
	  FROM crm.record_scope(NEW.record_type, NEW.record_id) s;
	RETURN NEW;
END
$$;

-- The records that decide for rows just written about records of a type, and
-- those records themselves, locked FOR SHARE (a change of owner, a contact's
-- move, waits for the writer, or the writer for it: then the rows take the
-- scope the records have now); with tbl, the rows of tbl about those records
-- then take it.  Under repeatable read, a record changed since the
-- transaction's snapshot fails it (40001).  crm's own: the triggers of the
-- shared tables, the operation log's writer and crm.record_scope_moved().
-- (a generic plan: crm.record_scope has a branch per type, and planning it
-- for every call, as custom plans do, cost a single-row insert 1 ms of its 5)
CREATE OR REPLACE FUNCTION crm.lock_record_scopes(record_type text, ids bigint[], tbl regclass DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan AS $$
DECLARE
	t crm.record_type := (SELECT x FROM crm.record_type x WHERE x.name = lock_record_scopes.record_type);
	d record;
BEGIN
	IF t.name IS NULL OR ids = '{}' THEN
		RETURN;
	END IF;
	IF t.visibility <> 'owner' THEN
		EXECUTE format('SELECT count(*) FROM (SELECT FROM %s r WHERE r.id = ANY ($1) ORDER BY r.id FOR SHARE) x', t.relation) USING ids;
	END IF;
	FOR d IN SELECT x.relation, array_agg(DISTINCT s.scope_id ORDER BY s.scope_id) AS ids
	           FROM unnest(ids) i, crm.record_scope(t.name, i) s JOIN crm.record_type x ON x.name = s.scope_type
	          GROUP BY x.relation LOOP
		EXECUTE format('SELECT count(*) FROM (SELECT FROM %s r WHERE r.id = ANY ($1) ORDER BY r.id FOR SHARE) x', d.relation) USING d.ids;
	END LOOP;
	IF tbl IS NOT NULL THEN
		EXECUTE format('UPDATE %s s SET (scope_type, scope_owner, scope_id) = (x.scope_type, x.scope_owner, x.scope_id)'
		               '  FROM unnest($2) i LEFT JOIN LATERAL crm.record_scope($1, i) x ON true'
		               ' WHERE s.record_type = $1 AND s.record_id = i'
		               '   AND (s.scope_type, s.scope_owner, s.scope_id) IS DISTINCT FROM (x.scope_type, x.scope_owner, x.scope_id)', tbl)
			USING t.name, ids;
	END IF;
END
$$;
COMMENT ON FUNCTION crm.lock_record_scopes(text, bigint[], regclass) IS
	'Lock the records that decide who sees rows about these records (and the records), then set those rows'' scope (crm''s own)';

-- After an UPDATE of records: the shared rows follow a new owner (of the
-- record and of those it decides for), a contact moved to another customer, a
-- follow-up moved to another record.  Through crm.change_record_links, as a
-- foreign key's action: under repeatable read a row committed after the
-- transaction's snapshot fails it rather than keep the old scope.
CREATE OR REPLACE FUNCTION crm.move_record_scopes(record_type text, moved bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r   crm.record_type := (SELECT t FROM crm.record_type t WHERE t.name = move_record_scopes.record_type);
	tbl regclass;
BEGIN
	IF r.visibility = 'owner' THEN
		-- (each record's owner now is read by its key: joined, the record table
		-- was read whole for a large move, a million customers per batch)
		FOR tbl IN SELECT crm.scoped_tables() LOOP
			PERFORM crm.change_record_links(
				format('UPDATE %s s SET scope_owner = m.owner_id'
				       '  FROM (SELECT i AS id, (SELECT r.owner_id FROM %s r WHERE r.id = i) AS owner_id FROM unnest($2) i) m'
				       ' WHERE s.scope_type = $1 AND s.scope_id = m.id AND s.scope_owner IS DISTINCT FROM m.owner_id', tbl, r.relation),
				r.name, moved);
		END LOOP;
	ELSE
		-- (the records they now follow keep their owner until this commits)
		PERFORM crm.lock_record_scopes(r.name, moved);
		FOR tbl IN SELECT crm.scoped_tables() LOOP
			PERFORM crm.change_record_links(
				format('UPDATE %s s SET (scope_type, scope_owner, scope_id) ='
				       ' (SELECT x.scope_type, x.scope_owner, x.scope_id FROM crm.record_scope(s.record_type, s.record_id) x)'
				       ' WHERE s.record_type = $1 AND s.record_id = ANY ($2)', tbl),
				r.name, moved);
		END LOOP;
	END IF;
END
$$;
COMMENT ON FUNCTION crm.move_record_scopes(text, bigint[]) IS
	'Set the scope of the shared rows about records that changed owner or moved to another record (crm''s own: crm.record_scope_moved())';

-- (C: one pass over the statement's old and new rows finds the moved records,
-- src/records/record_scope.c)
CREATE OR REPLACE FUNCTION crm.record_scope_moved() RETURNS trigger
AS 'MODULE_PATHNAME', 'crm_record_scope_moved' LANGUAGE C;

-- Sets the scope of every row of the scoped tables that lacks one (all_rows:
-- of every row) from its record as it is now; the rows of deleted records keep
-- none.  An update from a version without scopes runs it; a DBA may run it
-- with all_rows to check nothing drifted.  Returns the rows it changed.
CREATE OR REPLACE FUNCTION crm.refresh_record_scopes(all_rows boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tbl    regclass;
	n      bigint;
	total  bigint := 0;
BEGIN
	FOR tbl IN SELECT crm.scoped_tables() LOOP
		EXECUTE format('UPDATE %s s SET (scope_type, scope_owner, scope_id) = (x.scope_type, x.scope_owner, x.scope_id)'
		               '  FROM %s s2 LEFT JOIN LATERAL crm.record_scope(s2.record_type, s2.record_id) x ON true'
		               ' WHERE s2.ctid = s.ctid AND ($1 OR s.scope_type IS NULL)'
		               '   AND (s.scope_type, s.scope_owner, s.scope_id) IS DISTINCT FROM (x.scope_type, x.scope_owner, x.scope_id)',
		               tbl, tbl) USING all_rows;
		GET DIAGNOSTICS n = ROW_COUNT;
		total := total + n;
	END LOOP;
	RETURN total;
END
$$;
COMMENT ON FUNCTION crm.refresh_record_scopes(boolean) IS
	'Set the scope of shared rows that lack one (all_rows: of every row) from their records; returns the rows changed (for DBAs)';

SELECT crm.install_record_type(t.name) FROM crm.record_type t ORDER BY t.position;
SELECT crm.install_record_scopes();
SELECT crm.install_timeline();
COMMENT ON COLUMN crm.timeline.record_type IS 'Type of the record';
COMMENT ON COLUMN crm.timeline.record_id IS 'Id of the record';
COMMENT ON COLUMN crm.timeline.at IS 'When it happened';
COMMENT ON COLUMN crm.timeline.kind IS 'insert, follow_up, update, owner_change, status_change or delete';
COMMENT ON COLUMN crm.timeline.employee_id IS 'Who did it (crm.employee.id)';
COMMENT ON COLUMN crm.timeline.detail IS 'follow_up: the method; logged changes: the source; pool moves: the kind of move';
COMMENT ON COLUMN crm.timeline.summary IS 'follow_up: the content; pool moves: the reason';
COMMENT ON COLUMN crm.timeline.changes IS 'Logged changes: {"column": [old, new]}';
COMMENT ON COLUMN crm.timeline_follow_up.record_type IS 'Type of the record followed up';
COMMENT ON COLUMN crm.timeline_follow_up.record_id IS 'Id of the record followed up';
COMMENT ON COLUMN crm.timeline_follow_up.created_at IS 'When the follow-up happened';
COMMENT ON COLUMN crm.timeline_follow_up.created_by IS 'Author (crm.employee.id)';
COMMENT ON COLUMN crm.timeline_follow_up.method IS 'Code of dictionary follow_up_method';
COMMENT ON COLUMN crm.timeline_follow_up.content IS 'What was said or done';
SELECT crm.install_pending_handover();
-- (an update from 0.1: the shared rows it kept get their scope)
SELECT crm.refresh_record_scopes();
