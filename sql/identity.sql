-- Who is acting: crm.current_employee_id()
-- ids named in messages start at 200 here, whatever other test files created
SELECT setval(s, 200, false) FROM unnest(ARRAY['crm.employee_id_seq', 'crm.department_id_seq', 'crm.role_id_seq',
	'crm.customer_id_seq', 'crm.lead_id_seq', 'crm.follow_up_id_seq']) s \g /dev/null
CREATE ROLE regress_wang LOGIN IN ROLE crm_user;
CREATE ROLE regress_li LOGIN IN ROLE crm_user;
CREATE ROLE regress_nobody LOGIN IN ROLE crm_user;   -- staff role, but no employee row
CREATE ROLE regress_stranger LOGIN;                  -- not even crm_user
CREATE ROLE regress_postgrest LOGIN NOINHERIT IN ROLE crm_authenticator;
CREATE ROLE regress_web NOLOGIN IN ROLE crm_user;
GRANT regress_web TO regress_postgrest;

INSERT INTO crm.department (name) VALUES ('Head office');
INSERT INTO crm.employee (name, department_id, db_role)
SELECT v.name, d.id, v.role FROM crm.department d,
	(VALUES ('Wang Fang', 'regress_wang'), ('Li Lei', 'regress_li'), ('Zhao Min', NULL)) v(name, role)
 WHERE d.name = 'Head office';
SELECT id AS wang FROM crm.employee WHERE name = 'Wang Fang' \gset
SELECT id AS li FROM crm.employee WHERE name = 'Li Lei' \gset
SELECT id AS zhao FROM crm.employee WHERE name = 'Zhao Min' \gset

-- a superuser is nobody in the CRM
SELECT crm.current_employee_id() IS NULL AS superuser_is_nobody;

-- an employee's login role resolves to that employee
SET ROLE regress_wang;
SELECT crm.current_employee_id() = :wang AS wang_resolves;
RESET ROLE;
SET SESSION AUTHORIZATION regress_li;
SELECT crm.current_employee_id() = :li AS li_resolves;
RESET SESSION AUTHORIZATION;

-- a staff role without an employee row, and a stranger, resolve to nobody
SET ROLE regress_nobody;
SELECT crm.current_employee_id() IS NULL AS nobody_is_nobody;
RESET ROLE;
SET ROLE regress_stranger;
SELECT crm.current_employee_id();   -- not even allowed to ask
RESET ROLE;

-- claims are ignored unless session_user is an authenticator
SET SESSION AUTHORIZATION regress_nobody;
SELECT set_config('request.jwt.claims', format('{"employee_id": %s}', :zhao), false) IS NOT NULL AS claims_set;
SET jwt.claims.employee_id = :zhao;
SELECT crm.current_employee_id() IS NULL AS forged_claims_ignored;
RESET SESSION AUTHORIZATION;
RESET request.jwt.claims;
RESET jwt.claims.employee_id;

-- PostgREST: authenticator logs in, switches to the JWT's role, publishes claims as JSON
SET SESSION AUTHORIZATION regress_postgrest;
SET ROLE regress_web;
SELECT crm.current_employee_id() IS NULL AS no_claims_no_employee;
BEGIN;   -- PostgREST sets claims per request transaction
SELECT set_config('request.jwt.claims', format('{"role": "regress_web", "employee_id": %s}', :zhao), true) IS NOT NULL AS claims_set;
SELECT crm.current_employee_id() = :zhao AS postgrest_claim_resolves;
COMMIT;
SELECT crm.current_employee_id() IS NULL AS claims_end_with_the_transaction;
SELECT set_config('request.jwt.claims', format('{"employee_id": "%s"}', :li), false) IS NOT NULL AS claims_set;
SELECT crm.current_employee_id() = :li AS string_claim_resolves;
SELECT set_config('request.jwt.claims', '{"employee_id": 999999}', false) IS NOT NULL AS claims_set;
SELECT crm.current_employee_id() IS NULL AS unknown_employee_is_nobody;
SELECT set_config('request.jwt.claims', '{"sub": "someone"}', false) IS NOT NULL AS claims_set;
SELECT crm.current_employee_id() IS NULL AS missing_claim_is_nobody;
SELECT set_config('request.jwt.claims', '{"employee_id": "1 OR true"}', false) IS NOT NULL AS claims_set;
SELECT crm.current_employee_id();
RESET request.jwt.claims;
-- PostGraphile: one setting per claim
SET jwt.claims.employee_id = :li;
SELECT crm.current_employee_id() = :li AS postgraphile_claim_resolves;
RESET jwt.claims.employee_id;
-- the authenticator may not choose which claim is trusted
SET crm.jwt_employee_claim = 'sub';
RESET ROLE;
RESET SESSION AUTHORIZATION;

-- the claim name is a superuser setting, validated
SET crm.jwt_employee_claim = 'emp-id';
SET crm.jwt_employee_claim = 'staff_id';
SET SESSION AUTHORIZATION regress_postgrest;
SET ROLE regress_web;
SELECT set_config('request.jwt.claims', format('{"employee_id": %s, "staff_id": %s}', :zhao, :li), false) IS NOT NULL AS claims_set;
SELECT crm.current_employee_id() = :li AS configured_claim_resolves;
RESET ROLE;
RESET SESSION AUTHORIZATION;
RESET crm.jwt_employee_claim;
RESET request.jwt.claims;

-- the crm. prefix is reserved: a mistyped setting fails instead of being ignored
SET crm.jwt_employe_claim = 'x';
-- crm.database_name is fixed at server start
SET crm.database_name = 'other';

-- a deactivated employee resolves to nobody, at the next statement
BEGIN;
SET LOCAL ROLE regress_wang;
SELECT crm.current_employee_id() = :wang AS wang_active;
RESET ROLE;
UPDATE crm.employee SET active = false WHERE id = :wang;
SET LOCAL ROLE regress_wang;
SELECT crm.current_employee_id() IS NULL AS wang_deactivated;
ROLLBACK;

-- a role renamed away from its employee no longer resolves
ALTER ROLE regress_li RENAME TO regress_li_renamed;
SET ROLE regress_li_renamed;
SELECT crm.current_employee_id() IS NULL AS renamed_role_is_nobody;
RESET ROLE;
ALTER ROLE regress_li_renamed RENAME TO regress_li;

-- losing authenticator membership drops trust in claims within the session
SET SESSION AUTHORIZATION regress_postgrest;
SET ROLE regress_web;
SELECT set_config('request.jwt.claims', format('{"employee_id": %s}', :zhao), false) IS NOT NULL AS claims_set;
SELECT crm.current_employee_id() = :zhao AS trusted;
RESET ROLE;
RESET SESSION AUTHORIZATION;
REVOKE crm_authenticator FROM regress_postgrest;
SET SESSION AUTHORIZATION regress_postgrest;
SET ROLE regress_web;
SELECT crm.current_employee_id() IS NULL AS no_longer_trusted;
RESET ROLE;
RESET SESSION AUTHORIZATION;
RESET request.jwt.claims;

-- org_changed is a trigger function only
SELECT crm.org_changed();

DROP OWNED BY regress_wang, regress_li, regress_nobody, regress_stranger, regress_postgrest, regress_web;
DROP ROLE regress_wang, regress_li, regress_nobody, regress_stranger, regress_postgrest, regress_web;
