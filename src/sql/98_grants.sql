-- Who may execute crm's functions.  PostgreSQL grants EXECUTE on every new
-- function to PUBLIC; crm takes that back from all of them, present and future
-- (a function added to an earlier piece is covered here), and grants crm_user
-- exactly the documented surface (docs/security.md).  Trigger functions are never
-- granted: only their owner can then attach them to a table.  The catalog test
-- of sql/security.sql fails for any function granted beyond this list.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA crm FROM PUBLIC;

-- what the policies, column defaults, generated keys, CHECK constraints and views
-- call, and crm's C functions as the caller: PostgreSQL checks EXECUTE for the
-- role whose statement evaluates them
GRANT EXECUTE ON FUNCTION
	crm.current_employee_id(),
	crm.restoring(),
	crm.staff_session(),
	crm.scope_owners(text),
	crm.scope_owners(text[]),
	crm.common_scope_owners(text[]),
	crm.team_records(text, boolean),
	crm.has_permission(text),
	crm.may_administer(text),
	crm.acting_is_super(),
	crm.is_super_admin(bigint),
	crm.record_visible(text, bigint),
	crm.record_editable(text, bigint),
	crm.record_type_has(text, text),
	crm.record_types_with(text),
	crm.require_permission(text),
	crm.export_fields(text, jsonb),
	crm.initial_customer_status(),
	crm.dedupe_key(text, text),
	crm.dedupe_key_columns(),
	crm.normal_mobile(text),
	crm.uscc_valid(text),
	crm.mobile_valid(text),
	crm.email_valid(text),
	crm.uscc_with_check(text),
	crm.check_uscc(text),
	crm.check_mobile(text),
	crm.check_email(text),
	crm.check_length(text, integer, text),
	crm.check_dictionary_column(text, text),
	crm.clip(text),
	crm.mask_phone(text),
	crm.mask_email(text),
	crm.recycle_rule_employees(bigint[], bigint[], bigint[]),
	crm.describe_recycle_rule(crm.recycle_rule),
	crm.recycling_due(timestamptz),
	crm.similar_customers(text, text),
	crm.product_sellers(bigint, bigint),
	crm.contract_label(bigint),
	crm.move_invoice(bigint, text, text, date),
	crm.department_path(bigint),
	crm.owner_stage_set(bigint),
	crm.check_staging_table(regclass, regclass)
TO crm_user;

-- what people call
GRANT EXECUTE ON FUNCTION
	crm.explain_access(text, bigint),
	crm.notification_text(text, jsonb),
	crm.deactivate_employee(bigint, bigint),
	crm.handover_employee(bigint, bigint),
	crm.default_successor(bigint),
	crm.delete_customer_status(bigint, bigint),
	crm.delete_stage(bigint, bigint),
	crm.advance_stage(bigint, bigint, text),
	crm.close_opportunity(bigint, boolean, text),
	crm.reopen_opportunity(bigint, bigint),
	crm.submit_contract(bigint),
	crm.submit_payment(bigint),
	crm.submit_invoice(bigint),
	crm.issue_invoice(bigint, text, date),
	crm.pipeline_changes(date, date),
	crm.department_forecast(bigint, date, date),
	crm.replace_dictionary_code(text, text, text),
	crm.convert_lead(bigint, bigint, boolean),
	crm.transfer(text, bigint[], bigint, boolean, boolean),
	crm.add_field(text, text, text, boolean, boolean, text, text),
	crm.drop_field(text, text),
	crm.import_customers(regclass),
	crm.import_products(regclass),
	crm.import_opportunities(regclass),
	crm.find_duplicates(text, jsonb),
	crm.merge_customers(bigint, bigint),
	crm.claim_customer(bigint),
	crm.assign_customer(bigint, bigint),
	crm.release_customer(bigint, text, bigint),
	crm.recycling_preview(timestamptz),
	crm.mark_read(bigint),
	crm.bot_search(text, integer),
	crm.sync_directory(text)
TO crm_user;
