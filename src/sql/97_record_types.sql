-- Installing the registered record types (docs/adding-a-record-type.md): what
-- each type's visibility and capabilities need on its table.  Runs after every
-- piece, so that the functions the triggers call exist; every update runs it
-- again, so that a changed trigger or policy reaches existing databases.

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
		['_log_row',        'AFTER INSERT OR UPDATE OR DELETE', 'ROW', 'crm.log_row()'],
		['_log_flush',      'AFTER INSERT OR UPDATE OR DELETE', 'STATEMENT', 'crm.log_flush()'],
		['_dedupe_insert',  'AFTER INSERT', 'STATEMENT', 'crm.dedupe_check()'],
		['_dedupe_update',  'AFTER UPDATE', 'STATEMENT', 'crm.dedupe_check()'],
		['_drop_links',     'AFTER DELETE', 'STATEMENT', 'crm.record_deleted()'],
		['_truncate_links', 'AFTER TRUNCATE', 'STATEMENT', 'crm.record_deleted()']];
	wanted   boolean;
	old      name;
	c        record;
BEGIN
	IF r.name IS NULL THEN
		RAISE EXCEPTION 'record type "%" is not registered', name USING ERRCODE = 'undefined_object',
			HINT = 'Register it first with crm.register_record_type.';
	END IF;

	-- the actions a role can grant on an owned type, <type>.create and so on
	-- (a type that follows the record it is about follows its rules)
	INSERT INTO crm.permission (action, description)
	SELECT r.name || '.' || a, format('%s %s', initcap(a), lower(r.label_en) || 's')
	  FROM unnest(ARRAY['create', 'edit', 'delete', 'import', 'export', 'transfer']) a
	 WHERE r.visibility IN ('owner', 'parent')
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
			                                   WHEN '_drop_links' THEN 'REFERENCING OLD TABLE AS deleted' ELSE '' END,
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
		EXECUTE format($q$
			CREATE POLICY %1$I ON %2$s FOR SELECT TO crm_user USING (
				owner_id = ANY (crm.scope_owners(%3$L)) OR id = ANY (crm.team_records(%3$L, false)))$q$,
			r.name || '_read', r.relation, r.name);
		EXECUTE format($q$
			CREATE POLICY %1$I ON %2$s FOR INSERT TO crm_user WITH CHECK (
				owner_id = ANY (crm.scope_owners(%3$L)))$q$,
			r.name || '_insert', r.relation, r.name);
		EXECUTE format($q$
			CREATE POLICY %1$I ON %2$s FOR UPDATE TO crm_user USING (
				owner_id = ANY (crm.scope_owners(%3$L)) OR id = ANY (crm.team_records(%3$L, true)))
				WITH CHECK (true)$q$,
			r.name || '_update', r.relation, r.name);
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
				CREATE POLICY %1$I ON %2$s FOR %6$s TO crm_user %7$s (
					EXISTS (SELECT FROM %3$s p WHERE p.id = %2$s.%4$I
					           AND (p.owner_id = ANY (crm.scope_owners(%5$L)) OR p.id = ANY (crm.team_records(%5$L, true)))))$q$,
				r.name || '_' || c.cmd, r.relation, p.relation, r.parent_column, p.name, upper(c.cmd), c.clause);
		END LOOP;
	END IF;
END
$$;
COMMENT ON FUNCTION crm.install_record_type(text) IS
	'Install what a registered record type''s visibility and capabilities need on its table (crm''s install and update scripts only)';

SELECT crm.install_record_type(t.name) FROM crm.record_type t ORDER BY t.position;
