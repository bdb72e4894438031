-- Rows that point at a record by (record_type, record_id): team entries,
-- follow-ups, tags, pins and attachments.  Like a foreign key, each names a
-- record that exists when it is written (the record is locked FOR KEY SHARE,
-- so that a concurrent delete waits for the writer, or the writer for it),
-- and goes when the record is deleted.  Who may write them is for their
-- policies; these triggers hold for every writer, crm's own code included.

CREATE FUNCTION crm.check_record_links() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t       record;
	missing bigint;
BEGIN
	IF TG_RELID <> ALL ('{crm.team_member,crm.follow_up,crm.record_tag,crm.pin,crm.attachment}'::regclass[]) THEN RAISE 'crm.check_record_links() runs only on crm.team_member, crm.follow_up, crm.record_tag, crm.pin, crm.attachment, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- a restore loads these rows before their records
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	FOR t IN SELECT n.record_type, array_agg(DISTINCT n.record_id) AS ids FROM new_rows n GROUP BY n.record_type LOOP
		IF t.record_type IN ('lead', 'customer', 'contact', 'follow_up') THEN
			EXECUTE format('WITH present AS MATERIALIZED (SELECT r.id FROM crm.%I r WHERE r.id = ANY ($1) FOR KEY SHARE)'
			               ' SELECT min(x) FROM unnest($1) x WHERE x NOT IN (SELECT id FROM present)', t.record_type)
				INTO missing USING t.ids;
		ELSE
			missing := t.ids[1];	-- a record type with no table yet
		END IF;
		IF missing IS NOT NULL THEN
			RAISE EXCEPTION 'crm.% cannot point at % %, which does not exist', TG_TABLE_NAME, t.record_type, missing
				USING ERRCODE = 'foreign_key_violation',
				      DETAIL = 'Team entries, follow-ups, tags, pins and attachments belong to a record that exists, and go with it.',
				      HINT = format('Name an existing %s.', t.record_type);
		END IF;
	END LOOP;
	RETURN NULL;
END
$$;

-- what a foreign key's ON DELETE CASCADE would do, set-based per statement
CREATE FUNCTION crm.drop_record_links() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ids bigint[];
BEGIN
	IF TG_RELID <> ALL ('{crm.lead,crm.customer,crm.contact,crm.follow_up}'::regclass[]) THEN RAISE 'crm.drop_record_links() runs only on crm.lead, crm.customer, crm.contact, crm.follow_up, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	ids := ARRAY(SELECT d.id FROM deleted d);
	IF TG_TABLE_NAME IN ('lead', 'customer') THEN
		DELETE FROM crm.follow_up f WHERE f.record_type = TG_TABLE_NAME AND f.record_id = ANY (ids);
	END IF;
	DELETE FROM crm.team_member m WHERE m.record_type = TG_TABLE_NAME AND m.record_id = ANY (ids);
	DELETE FROM crm.record_tag g WHERE g.record_type = TG_TABLE_NAME AND g.record_id = ANY (ids);
	DELETE FROM crm.pin p WHERE p.record_type = TG_TABLE_NAME AND p.record_id = ANY (ids);
	DELETE FROM crm.attachment a WHERE a.record_type = TG_TABLE_NAME AND a.record_id = ANY (ids);
	DELETE FROM crm.duplicate_set d
	 WHERE (d.record_type = TG_TABLE_NAME AND d.record_id = ANY (ids)) OR (d.match_type = TG_TABLE_NAME AND d.match_id = ANY (ids));
	RETURN NULL;
END
$$;

DO $links$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['team_member', 'follow_up', 'record_tag', 'pin', 'attachment'] LOOP
		EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON crm.%I REFERENCING NEW TABLE AS new_rows'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.check_record_links()', t || '_record_exists', t);
		EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON crm.%I REFERENCING NEW TABLE AS new_rows'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.check_record_links()', t || '_record_still_exists', t);
	END LOOP;
	FOREACH t IN ARRAY ARRAY['lead', 'customer', 'contact', 'follow_up'] LOOP
		EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON crm.%I REFERENCING OLD TABLE AS deleted'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION crm.drop_record_links()', t || '_drop_links', t);
	END LOOP;
END
$links$;
