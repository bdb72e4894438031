-- Leavers' work never strands (docs/access.md, "Leavers"): a deactivation that
-- names no successor, by directory sync or a plain UPDATE of crm.employee,
-- hands the work to a default successor; whoever has none is listed in
-- crm.pending_handover until a holder of admin.org calls crm.handover_employee.

-- (no foreign key: a TRUNCATE of employees would empty the settings with it;
-- checked when written, and crm.default_successor passes over anyone inactive)
ALTER TABLE crm.settings ADD COLUMN handover_to bigint;
COMMENT ON COLUMN crm.settings.handover_to IS
	'Who takes over the work of employees deactivated without a handover (NULL: the leader of their department, or of the nearest one above)';
GRANT UPDATE (handover_to) ON crm.settings TO crm_user;
CREATE OR REPLACE FUNCTION crm.settings_handover_valid() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.settings'::regclass THEN RAISE 'crm.settings_handover_valid() runs only on crm.settings, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- every leaver's work goes there: an administrator who is not a super admin
	-- would choose where it lands, inside their own scope
	IF crm.invoking_employee_id() IS NOT NULL AND NOT crm.is_super_admin(crm.invoking_employee_id()) THEN
		RAISE EXCEPTION 'employee "%" may not choose who takes over every leaver''s work',
			(SELECT crm.clip(e.name) FROM crm.employee e WHERE e.id = crm.invoking_employee_id())
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'Ask a super admin to set crm.settings.handover_to.';
	END IF;
	IF NOT crm.restoring() AND NOT EXISTS (SELECT FROM crm.employee e WHERE e.id = NEW.handover_to AND e.active AND NOT e.is_pool) THEN
		RAISE EXCEPTION 'crm.settings.handover_to names no active employee (%)', NEW.handover_to
			USING ERRCODE = 'foreign_key_violation',
			      HINT = 'Name the crm.employee id of an active employee, or NULL for the leader of each leaver''s department.';
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER settings_handover_valid BEFORE INSERT OR UPDATE OF handover_to ON crm.settings
	FOR EACH ROW WHEN (NEW.handover_to IS NOT NULL) EXECUTE FUNCTION crm.settings_handover_valid();

-- Whom a leaver's work goes to when nobody says (a deactivation without a
-- handover): crm.settings.handover_to, else the leader of their department or
-- the nearest department above it with an active leader who is not them.
CREATE OR REPLACE FUNCTION crm.default_successor(employee_id bigint) RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN coalesce(
	(SELECT e.id FROM crm.settings s JOIN crm.employee e ON e.id = s.handover_to
	  WHERE e.active AND NOT e.is_pool AND e.id <> default_successor.employee_id),
	(WITH RECURSIVE up AS (
		SELECT d.id, d.parent_id, d.leader_id, 1 AS depth FROM crm.department d
		 WHERE d.id = (SELECT e.department_id FROM crm.employee e WHERE e.id = default_successor.employee_id)
		UNION ALL
		SELECT d.id, d.parent_id, d.leader_id, up.depth + 1 FROM crm.department d JOIN up ON d.id = up.parent_id
		 WHERE up.depth < 64)
	 SELECT l.id FROM up JOIN crm.employee l ON l.id = up.leader_id
	  WHERE l.active AND NOT l.is_pool AND l.id <> default_successor.employee_id
	  ORDER BY up.depth LIMIT 1));
COMMENT ON FUNCTION crm.default_successor(bigint) IS
	'Who takes over a leaver''s work when a deactivation names nobody: crm.settings.handover_to, else the nearest active department leader above them';

-- A deactivation by directory sync or a plain UPDATE hands the leavers' work
-- over to their default successor at once; whoever has none stays listed in
-- crm.pending_handover until an administrator hands over.  As the caller,
-- through crm.handover_employee: an administrator who is not a super admin
-- does not widen their own access by deactivating someone outside it.
CREATE OR REPLACE FUNCTION crm.employee_deactivated() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
BEGIN
	IF TG_RELID <> 'crm.employee'::regclass THEN RAISE 'crm.employee_deactivated() runs only on crm.employee, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	FOR r IN SELECT n.id, crm.default_successor(n.id) AS successor
	           FROM new_rows n JOIN old_rows o ON o.id = n.id
	          WHERE o.active AND NOT n.active AND NOT n.is_pool ORDER BY n.id LOOP
		CONTINUE WHEN r.successor IS NULL;
		PERFORM crm.handover_employee(r.id, r.successor);
	END LOOP;
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER employee_deactivated AFTER UPDATE ON crm.employee
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION crm.employee_deactivated();

-- Inactive employees who still own records, per record type, with whom a
-- deactivation would have handed them to; for holders of admin.org.  Built
-- from the registry after every piece (97_record_types.sql), as the timeline is.
CREATE OR REPLACE FUNCTION crm.install_pending_handover() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	EXECUTE format($view$CREATE OR REPLACE VIEW crm.pending_handover AS
SELECT e.id AS employee_id, e.name AS employee, d.name AS department, o.record_type, o.records,
       crm.default_successor(e.id) AS default_successor_id
  FROM (%s) o
  JOIN crm.employee e ON e.id = o.owner_id
  LEFT JOIN crm.department d ON d.id = e.department_id
 WHERE crm.may_administer('admin.org')$view$,
		(SELECT string_agg(format('SELECT %L::text AS record_type, x.owner_id, count(*) AS records FROM %s x'
		                          ' WHERE x.owner_id IN (SELECT l.id FROM crm.employee l WHERE NOT l.active AND NOT l.is_pool)'
		                          ' GROUP BY x.owner_id', t.name, t.relation), ' UNION ALL ' ORDER BY t.position)
		   FROM crm.record_type t
		  WHERE EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = t.relation AND a.attname = 'owner_id' AND NOT a.attisdropped)));
	COMMENT ON VIEW crm.pending_handover IS
		'Inactive employees who still own records (for holders of admin.org): hand them over with crm.handover_employee(employee_id, to)';
	COMMENT ON COLUMN crm.pending_handover.employee_id IS 'The inactive employee (crm.employee.id)';
	COMMENT ON COLUMN crm.pending_handover.employee IS 'Their name';
	COMMENT ON COLUMN crm.pending_handover.department IS 'Their department''s name';
	COMMENT ON COLUMN crm.pending_handover.record_type IS 'The type of the records (crm.record_type.name)';
	COMMENT ON COLUMN crm.pending_handover.records IS 'How many records of the type the employee still owns';
	COMMENT ON COLUMN crm.pending_handover.default_successor_id IS
		'Whom a deactivation would hand them to (crm.default_successor); NULL: nobody, an administrator must choose';
	GRANT SELECT ON crm.pending_handover TO crm_user;
END
$$;
COMMENT ON FUNCTION crm.install_pending_handover() IS
	'Build crm.pending_handover from the record types that have owners (crm''s install and update scripts)';
