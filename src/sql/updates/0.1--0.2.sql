-- crm 0.1 to 0.2: what changes in the tables, indexes, constraints and shipped rows
-- of 0.1.  The build appends the pieces added since (NEW_PIECES in the Makefile) and
-- every function, view, trigger, policy, grant and comment of the others
-- (src/sql/replay.pl), so this file holds only what 0.1 created once.

-- The record-type registry (26_record_type.sql) replaces the lists of types the
-- shared tables checked; each check now reads it.
ALTER TABLE crm.team_member DROP CONSTRAINT team_member_record_type_check;
ALTER TABLE crm.follow_up DROP CONSTRAINT follow_up_record_type_check;
ALTER TABLE crm.record_tag DROP CONSTRAINT record_tag_record_type_check;
ALTER TABLE crm.pin DROP CONSTRAINT pin_record_type_check;
ALTER TABLE crm.added_field DROP CONSTRAINT added_field_record_type_check;
ALTER TABLE crm.attachment DROP CONSTRAINT attachment_record_type_check;
ALTER TABLE crm.dedupe_rule DROP CONSTRAINT dedupe_rule_record_type_check;
DROP FUNCTION crm.record_tables();
