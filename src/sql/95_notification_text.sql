-- What notifications say: a title, a body and (for lists) an item line per
-- event and language, as rows a company edits (docs/notifications.md, "Texts").
-- crm.notification_text() fills a text's placeholders from what the event
-- passes; crm.notify() writes the result.  Chinese ships as the default
-- (crm.settings.language), English beside it.

ALTER TABLE crm.settings ADD COLUMN language text NOT NULL DEFAULT 'zh-CN',
	ADD CONSTRAINT settings_language_check CHECK (language ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$');
COMMENT ON COLUMN crm.settings.language IS
	'The language of notification texts (crm.notification_template.language); an event without a text in it speaks zh-CN';
GRANT UPDATE (language) ON crm.settings TO crm_user;
CREATE OR REPLACE FUNCTION crm.settings_language_valid() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.settings'::regclass THEN RAISE 'crm.settings_language_valid() runs only on crm.settings, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF NEW.language !~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$' THEN
		RAISE EXCEPTION 'crm.settings.language "%" is not a language tag', crm.clip(NEW.language)
			USING ERRCODE = 'check_violation',
			      HINT = 'Give a tag such as zh-CN or en: the languages of crm.notification_template.';
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER settings_language_valid BEFORE INSERT OR UPDATE OF language ON crm.settings
	FOR EACH ROW EXECUTE FUNCTION crm.settings_language_valid();
-- crm.notification_text reads the language from its cache
CREATE OR REPLACE TRIGGER settings_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.settings
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
ALTER TABLE crm.settings ENABLE ALWAYS TRIGGER settings_changed;

-- The placeholders an event's texts may use: what its callers pass.  items is
-- a list, one line each, written by the text's item, whose placeholders are
-- item_placeholders.
ALTER TABLE crm.notification_event
	ADD COLUMN placeholders text[] NOT NULL DEFAULT '{}',
	ADD COLUMN item_placeholders text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN crm.notification_event.placeholders IS
	'The {names} the event''s title and body may use (and {items} when item_placeholders is not empty)';
COMMENT ON COLUMN crm.notification_event.item_placeholders IS
	'The {names} an item line of the event''s list may use';
INSERT INTO crm.notification_event (event, description) VALUES
	('transfer.away', 'Someone transferred records of yours to another employee'),
	('handover.done', 'A leaver''s work in your department was handed over to someone else'),
	('opportunity.created', 'Your report has new opportunities: customers that intend to buy'),
	('opportunity.won', 'Opportunities of yours or of your report''s were won'),
	('opportunity.lost', 'Opportunities of yours or of your report''s were lost'),
	('contract.effective', 'Contracts of your report''s took effect'),
	('payment.confirmed', 'Payments on contracts of yours or of your report''s were confirmed'),
	('invoice.requested', 'Invoices were requested: of your report''s contracts, or for you to issue'),
	('invoice.issued', 'Invoices of contracts of yours or of your report''s were issued'),
	('permission.unassigned', 'Work waits for a permission no active employee holds (to super admins)');
UPDATE crm.notification_event e SET placeholders = p.placeholders::text[], item_placeholders = p.item_placeholders::text[]
  FROM (VALUES
	('transfer.received',  '{actor, count, type}',            '{record}'),
	('transfer.away',      '{actor, count, type, to, kept}',  '{record}'),
	('handover.received',  '{leaver, count, actor}',          '{}'),
	('handover.done',      '{leaver, count, successor, actor}', '{}'),
	('team.added',         '{actor, type, record, access}',   '{}'),
	('duplicate.found',    '{count}',                         '{type, record, rule, match_type, match_owner}'),
	('pool.assigned',      '{actor, record, pool}',           '{}'),
	('pool.recycled',      '{count}',                         '{record, pool, rule, kind, days}'),
	('pool.recycle_soon',  '{count}',                         '{record, date, rule, kind, days}'),
	('opportunity.created', '{owner, count}',                 '{record, customer, amount}'),
	('opportunity.won',    '{owner, count}',                  '{record, customer, amount}'),
	('opportunity.lost',   '{owner, count}',                  '{record, customer, amount, reason}'),
	('contract.effective', '{owner, count}',                  '{record, customer, amount}'),
	('payment.confirmed',  '{count}',                         '{record, customer, amount, kind, owner}'),
	('invoice.requested',  '{count}',                         '{record, customer, amount, kind, owner}'),
	('invoice.issued',     '{count}',                         '{record, customer, amount, kind, owner}'),
	('permission.unassigned', '{action, what}',               '{}')
  ) p(event, placeholders, item_placeholders)
 WHERE e.event = p.event;

CREATE TABLE crm.notification_template (
	event     text NOT NULL,
	language  text NOT NULL,
	title     text NOT NULL,
	body      text,
	item      text,
	builtin   boolean NOT NULL DEFAULT false,
	CONSTRAINT notification_template_pkey PRIMARY KEY (event, language),
	CONSTRAINT notification_template_event_fkey FOREIGN KEY (event) REFERENCES crm.notification_event (event),
	CONSTRAINT notification_template_language_check CHECK (language ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
	CONSTRAINT notification_template_title_length CHECK (crm.check_length(title, 200, 'notification_template.title') AND btrim(title) <> ''),
	CONSTRAINT notification_template_body_length CHECK (crm.check_length(body, 2000, 'notification_template.body')),
	CONSTRAINT notification_template_item_length CHECK (crm.check_length(item, 200, 'notification_template.item'))
);
COMMENT ON TABLE crm.notification_template IS
	'What a notification says, per event and language: {name} is replaced by the event''s value, {name|a=text|*=text} chooses a text by it, {items} lists the item line once per item';
COMMENT ON COLUMN crm.notification_template.event IS 'The event (crm.notification_event) the text is for';
COMMENT ON COLUMN crm.notification_template.language IS 'A language tag such as zh-CN or en; crm.settings.language picks the one used';
COMMENT ON COLUMN crm.notification_template.title IS 'What a phone shows first (at most 200 characters once filled)';
COMMENT ON COLUMN crm.notification_template.body IS 'What happened and what to do next (at most 2,000 characters once filled)';
COMMENT ON COLUMN crm.notification_template.item IS 'The line {items} repeats for each item of the event''s list';
COMMENT ON COLUMN crm.notification_template.builtin IS 'Shipped with crm and not edited (pg_dump leaves it out); kept by crm';

-- Placeholders must be the event's, checked when written; the zh-CN text,
-- which every language falls back to, stays.
CREATE OR REPLACE FUNCTION crm.notification_template_valid() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ev      crm.notification_event;
	unknown text;
	allowed text[];
BEGIN
	IF TG_RELID <> 'crm.notification_template'::regclass THEN RAISE 'crm.notification_template_valid() runs only on crm.notification_template, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	IF TG_OP = 'DELETE' OR (OLD.event, OLD.language) IS DISTINCT FROM (NEW.event, NEW.language) THEN
		IF OLD.language = 'zh-CN' AND EXISTS (SELECT FROM crm.notification_event e WHERE e.event = OLD.event) THEN
			RAISE EXCEPTION 'the zh-CN text of notification event "%" cannot be %', OLD.event,
				CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'moved to another event or language' END
				USING ERRCODE = 'restrict_violation',
				      DETAIL = 'Every language without a text of its own for an event falls back to its zh-CN text.',
				      HINT = 'Edit its title, body and item with UPDATE crm.notification_template instead.';
		END IF;
		IF TG_OP = 'DELETE' THEN
			RETURN OLD;
		END IF;
	END IF;
	SELECT * INTO ev FROM crm.notification_event e WHERE e.event = NEW.event;
	IF NOT FOUND OR NEW.event = '*' THEN
		RAISE EXCEPTION 'there is no notification event "%"', crm.clip(NEW.event)
			USING ERRCODE = 'foreign_key_violation',
			      HINT = 'The events are the rows of crm.notification_event.';
	END IF;
	allowed := ev.placeholders || CASE WHEN ev.item_placeholders <> '{}' THEN '{items}'::text[] ELSE '{}' END;
	SELECT string_agg(DISTINCT '{' || m[1] || '}', ', ') INTO unknown
	  FROM regexp_matches(concat_ws(E'\n', NEW.title, NEW.body), '\{([^{}|]*)[^{}]*\}', 'g') m
	 WHERE m[1] <> ALL (allowed);
	IF unknown IS NULL THEN
		SELECT string_agg(DISTINCT '{' || m[1] || '}', ', ') INTO unknown
		  FROM regexp_matches(coalesce(NEW.item, ''), '\{([^{}|]*)[^{}]*\}', 'g') m
		 WHERE m[1] <> ALL (ev.item_placeholders);
		allowed := ev.item_placeholders;
	END IF;
	IF unknown IS NOT NULL THEN
		RAISE EXCEPTION 'the % text of notification event "%" uses %, which the event does not have', NEW.language, NEW.event, unknown
			USING ERRCODE = 'check_violation',
			      HINT = CASE WHEN allowed = '{}' THEN 'This part of the event''s text takes no placeholders.'
			                  ELSE format('Its placeholders are %s.', (SELECT string_agg('{' || a || '}', ', ') FROM unnest(allowed) a)) END;
	END IF;
	IF (NEW.item IS NOT NULL) <> (concat_ws(E'\n', NEW.title, NEW.body) ~ '\{items[|}]') THEN
		RAISE EXCEPTION 'the % text of notification event "%" %', NEW.language, NEW.event,
			CASE WHEN NEW.item IS NULL THEN 'lists {items} without an item line' ELSE 'has an item line but no {items}' END
			USING ERRCODE = 'check_violation',
			      HINT = 'Give both {items} in the title or body and the line each item gets (item), or neither.';
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER notification_template_valid BEFORE INSERT OR UPDATE OR DELETE ON crm.notification_template
	FOR EACH ROW EXECUTE FUNCTION crm.notification_template_valid();
CREATE OR REPLACE TRIGGER notification_template_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.notification_template
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('admin.im');
CREATE OR REPLACE TRIGGER notification_template_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.notification_template
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
ALTER TABLE crm.notification_template ENABLE ALWAYS TRIGGER notification_template_changed;
GRANT SELECT, DELETE ON crm.notification_template TO crm_user;
GRANT INSERT (event, language, title, body, item), UPDATE (event, language, title, body, item)
	ON crm.notification_template TO crm_user;

INSERT INTO crm.notification_template (event, language, title, body, item, builtin) VALUES
	('transfer.received', 'zh-CN', '{actor}转给你{count}个{type}',
	 E'{items}\n它们现在由你负责，请尽快跟进。', '{record}', true),
	('transfer.received', 'en', '{actor} transferred {count} {type} {count|1=record|*=records} to you',
	 E'{items}\nThey are yours now: follow them up soon.', '{record}', true),
	('transfer.away', 'zh-CN', '{actor}把你的{count}个{type}转给了{to}',
	 E'{items}\n{kept|true=你仍是它们的协作人，可以继续查看和编辑。|*=它们已不再由你负责。}', '{record}', true),
	('transfer.away', 'en', '{actor} transferred {count} of your {type} records to {to}',
	 E'{items}\n{kept|true=You stay on their team and can still read and edit them.|*=They are no longer yours.}', '{record}', true),
	('handover.received', 'zh-CN', '{leaver}的工作已交接给你',
	 '{actor}把{leaver}名下的{count}项工作（客户、线索、联系人、商机、协作和部门负责人职务）交接给了你。请尽快查看并跟进。', NULL, true),
	('handover.received', 'en', '{leaver}''s work was handed over to you',
	 '{actor} handed {count} items of {leaver}''s work (customers, leads, contacts, team places and department leadership) over to you. Look through them and follow them up soon.', NULL, true),
	('handover.done', 'zh-CN', '{leaver}的工作已交接给{successor}',
	 '{actor}把{leaver}名下的{count}项工作交接给了{successor}。如需改由别人负责，可以再转移。', NULL, true),
	('handover.done', 'en', '{leaver}''s work was handed over to {successor}',
	 '{actor} handed {count} items of {leaver}''s work over to {successor}. Transfer them again if someone else should take them.', NULL, true),
	('team.added', 'zh-CN', '{actor}把你加为{type}「{record}」的协作人',
	 '你的权限：{access|edit=可查看和编辑|*=只读}。可在{type}详情中查看它的跟进记录。', NULL, true),
	('team.added', 'en', '{actor} added you to the team of {type} "{record}"',
	 'Your access: {access|edit=read and edit|*=read only}. Its follow-ups are on its page.', NULL, true),
	('duplicate.found', 'zh-CN', '{count}条新记录疑似与你的记录重复',
	 E'{items}\n请核对：是同一家就合并，不是就忽略。', '{type}「{record}」：规则「{rule}」发现它与{match_owner}的{match_type}重复', true),
	('duplicate.found', 'en', '{count} new {count|1=record|*=records} may duplicate yours',
	 E'{items}\nCheck them: merge what is one party, ignore the rest.', '{type} "{record}": rule "{rule}" matches it with a {match_type} of {match_owner}', true),
	('pool.assigned', 'zh-CN', '{actor}把公海「{pool}」的客户「{record}」分配给了你',
	 '请尽快跟进：按回收规则长期未跟进的客户会回到公海。', NULL, true),
	('pool.assigned', 'en', '{actor} assigned you customer "{record}" from pool "{pool}"',
	 'Follow it up soon: customers left without follow-ups go back to the pool under the recycling rules.', NULL, true),
	('pool.recycled', 'zh-CN', '你的{count}个客户已被收回公海',
	 E'{items}\n想继续跟进，可以到公海重新领取（可能有冷却期）。', '{record} → 公海「{pool}」（规则「{rule}」：{days}天未{kind|no_follow_up=跟进|*=签约}）', true),
	('pool.recycled', 'en', '{count} of your customers went back to a public pool',
	 E'{items}\nTo keep working on one, claim it back from its pool (a cool-down may apply).', '{record} → pool "{pool}" (rule "{rule}": {days} days without {kind|no_follow_up=a follow-up|*=signing})', true),
	('pool.recycle_soon', 'zh-CN', '你的{count}个客户即将被收回公海',
	 E'{items}\n在期限前跟进或签约即可保留。', '{record}：{date}收回（规则「{rule}」：{days}天未{kind|no_follow_up=跟进|*=签约}），{kind|no_follow_up=写一条跟进|*=签约}即可保留', true),
	('pool.recycle_soon', 'en', '{count} of your customers go back to a public pool soon',
	 E'{items}\nA follow-up or a signature before the deadline keeps them.', '{record}: recycled at {date} (rule "{rule}": {days} days without {kind|no_follow_up=a follow-up|*=signing}); {kind|no_follow_up=write a follow-up|*=sign it} to keep it', true),
	('opportunity.created', 'zh-CN', '{owner}新建了{count}个商机',
	 E'{items}\n这些客户有购买意向，可以关注进展、帮助推进。', '「{record}」：客户「{customer}」，金额{amount}元', true),
	('opportunity.created', 'en', '{owner} opened {count} {count|1=opportunity|*=opportunities}',
	 E'{items}\nThese customers intend to buy: follow how they go.', '"{record}": customer "{customer}", {amount} yuan', true),
	('opportunity.won', 'zh-CN', '{owner}赢单{count}个商机',
	 E'{items}\n下一步：与客户签订合同。', '「{record}」：客户「{customer}」，金额{amount}元', true),
	('opportunity.won', 'en', '{owner} won {count} {count|1=opportunity|*=opportunities}',
	 E'{items}\nNext: sign the contract with the customer.', '"{record}": customer "{customer}", {amount} yuan', true),
	('opportunity.lost', 'zh-CN', '{owner}输单{count}个商机',
	 E'{items}\n可以复盘输单原因，需要时重新打开商机。', '「{record}」：客户「{customer}」，金额{amount}元，原因：{reason}', true),
	('opportunity.lost', 'en', '{owner} lost {count} {count|1=opportunity|*=opportunities}',
	 E'{items}\nLook at why; a deal can be reopened if it comes back.', '"{record}": customer "{customer}", {amount} yuan, reason: {reason}', true),
	('contract.effective', 'zh-CN', '{owner}的{count}份合同已生效',
	 E'{items}\n客户已标记为成交，可以安排回款计划和开票。', '「{record}」：客户「{customer}」，金额{amount}元', true),
	('contract.effective', 'en', '{count} {count|1=contract|*=contracts} of {owner} took effect',
	 E'{items}\nThe customers count as signed: plan the payments and invoices.', '"{record}": customer "{customer}", {amount} yuan', true),
	('payment.confirmed', 'zh-CN', '{count}笔回款已确认',
	 '{items}', '「{record}」（{owner}）：客户「{customer}」，{kind|refund=退款|*=回款}{amount}元', true),
	('payment.confirmed', 'en', '{count} {count|1=payment was|*=payments were} confirmed',
	 '{items}', '"{record}" ({owner}): customer "{customer}", {kind|refund=refund|*=payment} of {amount} yuan', true),
	('invoice.requested', 'zh-CN', '{count}张发票申请待开具',
	 E'{items}\n开票人可以用 crm.issue_invoice 登记开具。', '「{record}」（{owner}）：客户「{customer}」，{amount}元', true),
	('invoice.requested', 'en', '{count} {count|1=invoice is|*=invoices are} waiting to be issued',
	 E'{items}\nWhoever issues invoices records it with crm.issue_invoice.', '"{record}" ({owner}): customer "{customer}", {amount} yuan', true),
	('invoice.issued', 'zh-CN', '{count}张发票已开具',
	 '{items}', '「{record}」（{owner}）：客户「{customer}」，{amount}元', true),
	('invoice.issued', 'en', '{count} {count|1=invoice was|*=invoices were} issued',
	 '{items}', '"{record}" ({owner}): customer "{customer}", {amount} yuan', true),
	('permission.unassigned', 'zh-CN', '没有人可以{what}：请把权限 {action} 分配给一个角色',
	 '有工作在等待处理，但没有在职员工拥有权限 {action}。', NULL, true),
	('permission.unassigned', 'en', 'Nobody may do this: assign {action} to a role',
	 'Work is waiting, and no active employee holds the permission {action}.', NULL, true);
SELECT crm.keep_builtin_edits('crm.notification_template', 'event', 'language');
SELECT pg_catalog.pg_extension_config_dump('crm.notification_template', 'WHERE NOT builtin');

-- The title and body of an event in the company's language, its placeholders
-- filled from params (a JSON object; items, an array of objects, fills the
-- item line once each).  Values are quoted as messages quote names, and the
-- result fits crm.notification (src/notify/notify.c).
CREATE OR REPLACE FUNCTION crm.notification_text(event text, params jsonb, OUT title text, OUT body text)
	AS 'MODULE_PATHNAME', 'crm_notification_text' LANGUAGE C STABLE;
COMMENT ON FUNCTION crm.notification_text(text, jsonb) IS
	'What a notification of the event says with these values, in crm.settings.language (to preview an edited text)';

-- The items of a notification about records: the first 200 of them by id,
-- each {"record": its name as lists show it (crm.record_type.title)}; the
-- texts say how many more there are (items_more).
CREATE OR REPLACE FUNCTION crm.record_items(record_type text, ids bigint[]) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t     crm.record_type := (SELECT r FROM crm.record_type r WHERE r.name = record_items.record_type);
	items jsonb;
BEGIN
	EXECUTE format('SELECT jsonb_agg(jsonb_build_object(''record'', (%s)::text) ORDER BY r.id) FROM %s r'
	               ' WHERE r.id = ANY ((SELECT array_agg(i ORDER BY i) FROM unnest($1) i)[1:200])',
	               coalesce(t.title, quote_literal(t.label_zh) || ' || '' '' || r.id'), t.relation)
		INTO items USING ids;
	RETURN coalesce(items, '[]');
END
$$;
COMMENT ON FUNCTION crm.record_items(text, bigint[]) IS
	'The names of up to 200 records, as the items of a notification about them';

-- A record type's name in the company's language.
CREATE OR REPLACE FUNCTION crm.record_type_label(record_type text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN (SELECT CASE WHEN s.language LIKE 'zh%' THEN t.label_zh ELSE lower(t.label_en) END
          FROM crm.record_type t, crm.settings s WHERE t.name = record_type_label.record_type);
COMMENT ON FUNCTION crm.record_type_label(text) IS 'A record type''s label in crm.settings.language (客户, customer)';
