-- Notifications: the in-app inbox, the IM channels and the deliveries the
-- background worker sends (src/worker/worker.c).  Everything a notification needs is
-- written in the business transaction (an outbox): a rolled-back change
-- notifies nobody.  The business transaction writes only the inbox row; the
-- worker turns it into one delivery per channel (crm.im_expand).

-- The events crm emits, shipped with crm (read-only, like crm.permission).
CREATE TABLE crm.notification_event (
	event        text NOT NULL,
	description  text NOT NULL,
	CONSTRAINT notification_event_pkey PRIMARY KEY (event)
);
COMMENT ON TABLE crm.notification_event IS 'The events crm notifies of (shipped with crm; read-only)';
COMMENT ON COLUMN crm.notification_event.event IS 'Event name, e.g. transfer.received';
COMMENT ON COLUMN crm.notification_event.description IS 'What the event means';
INSERT INTO crm.notification_event (event, description) VALUES
	('transfer.received', 'Records were transferred to you'),
	('handover.received', 'A departing colleague''s work was handed over to you'),
	('team.added',        'You were added to a record''s team'),
	('*',                 'Every event without a preference of its own (preferences only)');
GRANT SELECT ON crm.notification_event TO crm_user;

-- Who else hears of an event about a record, by rule: a DBA adds rows, e.g.
-- ('transfer.received', 'superior') tells the new owner's superior too.
CREATE TABLE crm.notification_rule (
	event   text NOT NULL,
	rule    text NOT NULL,
	CONSTRAINT notification_rule_pkey PRIMARY KEY (event, rule),
	CONSTRAINT notification_rule_event_fkey FOREIGN KEY (event) REFERENCES crm.notification_event (event),
	CONSTRAINT notification_rule_event_check CHECK (event <> '*'),
	CONSTRAINT notification_rule_rule_check CHECK (rule IN ('owner', 'superior', 'leader', 'team'))
);
COMMENT ON TABLE crm.notification_rule IS
	'Extra recipients of an event about a record: its owner, the owner''s superior, the leader of the owner''s department, its team';
COMMENT ON COLUMN crm.notification_rule.event IS 'Event (crm.notification_event.event)';
COMMENT ON COLUMN crm.notification_rule.rule IS 'Who else hears of it: owner, superior (the owner''s), leader (of the owner''s department) or team';
CREATE OR REPLACE TRIGGER notification_rule_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.notification_rule
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('admin.im');
GRANT SELECT, INSERT, UPDATE, DELETE ON crm.notification_rule TO crm_user;

-- The employees a rule names for a record of a type with notifications.
CREATE OR REPLACE FUNCTION crm.record_recipients(record_type text, record_id bigint, rules text[]) RETURNS bigint[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owner    bigint;
	relation regclass := (SELECT t.relation FROM crm.record_type t
	                       WHERE t.name = record_recipients.record_type AND 'notifications' = ANY (t.capabilities));
BEGIN
	IF relation IS NULL THEN
		RETURN '{}';
	END IF;
	-- the table comes from the registry, never from the caller as is
	EXECUTE format('SELECT owner_id FROM %s WHERE id = $1', relation) INTO owner USING record_id;
	RETURN ARRAY(
		SELECT owner WHERE 'owner' = ANY (rules) AND owner IS NOT NULL
		UNION SELECT e.superior_id FROM crm.employee e WHERE 'superior' = ANY (rules) AND e.id = owner AND e.superior_id IS NOT NULL
		UNION SELECT d.leader_id FROM crm.employee e JOIN crm.department d ON d.id = e.department_id
		       WHERE 'leader' = ANY (rules) AND e.id = owner AND d.leader_id IS NOT NULL
		-- (a team entry of 0.1 on a type without teams, a contact, is nobody's team)
		UNION SELECT t.employee_id FROM crm.team_member t
		       WHERE 'team' = ANY (rules) AND crm.record_type_has(record_recipients.record_type, 'team')
		         AND t.record_type = record_recipients.record_type
		         AND t.record_id = record_recipients.record_id AND (t.expires_at IS NULL OR t.expires_at > now()));
END
$$;
COMMENT ON FUNCTION crm.record_recipients(text, bigint, text[]) IS
	'The employees the rules (owner, superior, leader, team) name for a record';

CREATE TABLE crm.notification (
	id            bigint GENERATED ALWAYS AS IDENTITY,
	recipient_id  bigint NOT NULL,
	event         text NOT NULL,
	title         text NOT NULL,
	body          text,
	record_type   text,
	record_id     bigint,
	created_at    timestamptz NOT NULL DEFAULT now(),
	read_at       timestamptz,
	im_pending    boolean NOT NULL DEFAULT false,
	CONSTRAINT notification_pkey PRIMARY KEY (id),
	CONSTRAINT notification_event_check CHECK (event <> '*'),
	-- what a phone shows of a message, and what the IM platforms take: a
	-- title is never cut (a DingTalk work notice repeats it within 2048 bytes,
	-- which 200 characters of 4 bytes fit twice), a body whole by the Feishu
	-- app and robot and the DingTalk robot (20 KB), and cut with "…" by WeCom
	-- (4096 bytes) and the DingTalk work notice (src/im/im_payload.c)
	CONSTRAINT notification_title_length CHECK (crm.check_length(title, 200, 'notification.title')),
	CONSTRAINT notification_body_length CHECK (crm.check_length(body, 2000, 'notification.body'))
);
COMMENT ON COLUMN crm.notification.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.notification.recipient_id IS 'Recipient (crm.employee.id); each reads only their own; kept by crm; not writable';
COMMENT ON COLUMN crm.notification.event IS 'Event (crm.notification_event.event); kept by crm; not writable';
COMMENT ON COLUMN crm.notification.title IS 'Title; at most 200 characters; kept by crm; not writable';
COMMENT ON COLUMN crm.notification.body IS 'Text; at most 2,000 characters; kept by crm; not writable';
COMMENT ON COLUMN crm.notification.record_type IS 'Type of the record the notification is about, if any; kept by crm; not writable';
COMMENT ON COLUMN crm.notification.record_id IS 'Id of the record the notification is about, if any; kept by crm; not writable';
COMMENT ON COLUMN crm.notification.created_at IS 'When the notification was made; kept by crm; not writable';
COMMENT ON COLUMN crm.notification.read_at IS 'When the recipient read it (crm.mark_read); NULL: unread';
COMMENT ON COLUMN crm.notification.im_pending IS 'Waiting for the worker to make its IM deliveries; kept by crm; not writable';
-- Only crm.notify() writes here; it takes recipients from crm.employee and
-- checks the event once per call, where foreign keys would check every row.
-- The texts crm builds (crm.notification_text) always fit.
CREATE INDEX notification_inbox_idx ON crm.notification (recipient_id, created_at DESC) WHERE read_at IS NULL;
CREATE INDEX notification_recipient_idx ON crm.notification (recipient_id, created_at DESC);
-- a deleted record's notifications lose their link (src/sql/96_record_links.sql)
CREATE INDEX notification_record_idx ON crm.notification (record_type, record_id);
-- what the worker has yet to turn into deliveries
CREATE INDEX notification_im_pending_idx ON crm.notification (id) WHERE im_pending;
COMMENT ON TABLE crm.notification IS 'The in-app inbox: one row per recipient and event; read_at marks it read';
ALTER TABLE crm.notification ENABLE ROW LEVEL SECURITY;
CREATE POLICY notification_own ON crm.notification FOR SELECT TO crm_user
	USING (recipient_id = (SELECT crm.current_employee_id()));
CREATE POLICY notification_mark ON crm.notification FOR UPDATE TO crm_user
	USING (recipient_id = (SELECT crm.current_employee_id()));
GRANT SELECT ON crm.notification TO crm_user;
GRANT UPDATE (read_at) ON crm.notification TO crm_user;

-- Each employee chooses, per event ('*' for all the others): in-app only,
-- in-app and an IM app message, or nothing.  Without a row: in-app and app.
CREATE TABLE crm.notification_preference (
	employee_id  bigint NOT NULL DEFAULT crm.current_employee_id(),
	event        text NOT NULL DEFAULT '*',
	delivery     text NOT NULL,
	CONSTRAINT notification_preference_pkey PRIMARY KEY (employee_id, event),
	CONSTRAINT notification_preference_employee_fkey FOREIGN KEY (employee_id) REFERENCES crm.employee (id),
	CONSTRAINT notification_preference_delivery_check CHECK (delivery IN ('inapp', 'app', 'none')),
	CONSTRAINT notification_preference_event_fkey FOREIGN KEY (event) REFERENCES crm.notification_event (event)
);
COMMENT ON TABLE crm.notification_preference IS 'How each employee wants to hear of each event (event ''*'': every event without a row of its own)';
COMMENT ON COLUMN crm.notification_preference.employee_id IS 'The employee (crm.employee.id); defaults to the acting employee';
COMMENT ON COLUMN crm.notification_preference.event IS 'Event (crm.notification_event.event), or ''*'' for all';
COMMENT ON COLUMN crm.notification_preference.delivery IS 'inapp (inbox only), app (inbox and IM app message) or none';
CREATE INDEX notification_preference_event_idx ON crm.notification_preference (event);
ALTER TABLE crm.notification_preference ENABLE ROW LEVEL SECURITY;
CREATE POLICY notification_preference_own ON crm.notification_preference TO crm_user
	USING (employee_id = (SELECT crm.current_employee_id()))
	WITH CHECK (employee_id = (SELECT crm.current_employee_id()));
GRANT SELECT, INSERT, UPDATE, DELETE ON crm.notification_preference TO crm_user;

-- IM channels: a robot posts to a group, an app messages employees by their IM id.
CREATE TABLE crm.im_channel (
	id               bigint GENERATED ALWAYS AS IDENTITY,
	name             text NOT NULL,
	platform         text NOT NULL,
	kind             text NOT NULL,
	webhook_url      text,
	secret           text,
	app_id           text,
	app_secret       text,
	agent_id         text,
	api_base         text NOT NULL,
	rate_per_minute  integer NOT NULL,
	events           text[] NOT NULL DEFAULT '{}',
	enabled          boolean NOT NULL DEFAULT true,
	CONSTRAINT im_channel_pkey PRIMARY KEY (id),
	CONSTRAINT im_channel_name_key UNIQUE (name),
	CONSTRAINT im_channel_platform_check CHECK (platform IN ('wecom', 'feishu', 'dingtalk')),
	CONSTRAINT im_channel_kind_check CHECK (kind IN ('robot', 'app')),
	CONSTRAINT im_channel_robot_check CHECK (kind <> 'robot' OR webhook_url IS NOT NULL),
	CONSTRAINT im_channel_app_check CHECK (kind <> 'app' OR (app_id IS NOT NULL AND app_secret IS NOT NULL)),
	CONSTRAINT im_channel_url_check CHECK (api_base ~ '^https?://' AND (webhook_url IS NULL OR webhook_url ~ '^https?://')),
	CONSTRAINT im_channel_rate_check CHECK (rate_per_minute BETWEEN 1 AND 1000000),
	CONSTRAINT im_channel_agent_check CHECK (kind <> 'app' OR platform = 'feishu' OR agent_id ~ '^[1-9][0-9]{0,17}$'),
	CONSTRAINT im_channel_events_check CHECK (kind = 'robot' OR events = '{}'),
	CONSTRAINT im_channel_name_length CHECK (crm.check_length(name, 200, 'im_channel.name')),
	CONSTRAINT im_channel_api_base_length CHECK (crm.check_length(api_base, 2048, 'im_channel.api_base')),
	CONSTRAINT im_channel_app_id_length CHECK (crm.check_length(app_id, 1024, 'im_channel.app_id')),
	-- plain checks: their messages quote no secret (nor the webhook's key)
	CONSTRAINT im_channel_secrets_length CHECK (octet_length(webhook_url) <= 2048
		AND octet_length(secret) <= 1024 AND octet_length(app_secret) <= 1024),
	CONSTRAINT im_channel_agent_id_length CHECK (crm.check_length(agent_id, 64, 'im_channel.agent_id'))
);
COMMENT ON TABLE crm.im_channel IS 'WeCom, Feishu and DingTalk robots and apps; secrets are readable by crm_admin only';
COMMENT ON COLUMN crm.im_channel.events IS 'Robots: the events posted to the group (''*'': all); apps message each recipient';
COMMENT ON COLUMN crm.im_channel.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.im_channel.name IS 'Channel name; unique';
COMMENT ON COLUMN crm.im_channel.platform IS 'wecom, feishu or dingtalk; set when added';
COMMENT ON COLUMN crm.im_channel.kind IS 'robot (posts to a group through webhook_url) or app (messages each recipient); set when added';
COMMENT ON COLUMN crm.im_channel.webhook_url IS 'Robot webhook address (with its key); crm_admin only';
COMMENT ON COLUMN crm.im_channel.secret IS 'Robot signing secret; crm_admin only';
COMMENT ON COLUMN crm.im_channel.app_id IS 'App id (WeCom corpid, Feishu app_id, DingTalk AppKey)';
COMMENT ON COLUMN crm.im_channel.app_secret IS 'App secret; crm_admin only';
COMMENT ON COLUMN crm.im_channel.agent_id IS 'WeCom or DingTalk agent id of the app';
COMMENT ON COLUMN crm.im_channel.api_base IS 'Base URL of the platform''s API; set when added';
COMMENT ON COLUMN crm.im_channel.rate_per_minute IS 'Messages the worker sends per minute at most';
COMMENT ON COLUMN crm.im_channel.enabled IS 'Disabled channels send nothing; their deliveries wait';
-- the platforms' hosts and limits unless a row says otherwise (docs/im-platforms.md)
CREATE OR REPLACE FUNCTION crm.im_channel_defaults() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	unknown text;
BEGIN
	IF TG_RELID <> 'crm.im_channel'::regclass THEN RAISE 'crm.im_channel_defaults() runs only on crm.im_channel, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	SELECT string_agg(x, ', ') INTO unknown
	  FROM unnest(NEW.events) x WHERE NOT EXISTS (SELECT FROM crm.notification_event e WHERE e.event = x);
	IF unknown IS NOT NULL THEN
		RAISE EXCEPTION 'IM channel "%" names unknown events: %', crm.clip(NEW.name), crm.clip(unknown)
			USING ERRCODE = 'foreign_key_violation',
			      HINT = 'The events are the rows of crm.notification_event; ''*'' is every event.';
	END IF;
	NEW.api_base := coalesce(rtrim(NEW.api_base, '/'), CASE NEW.platform WHEN 'wecom' THEN 'https://qyapi.weixin.qq.com'
	                                                          WHEN 'feishu' THEN 'https://open.feishu.cn'
	                                                          ELSE 'https://oapi.dingtalk.com' END);
	NEW.rate_per_minute := coalesce(NEW.rate_per_minute, CASE WHEN NEW.kind = 'app' THEN 600
	                                                          WHEN NEW.platform = 'feishu' THEN 100 ELSE 20 END);
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER im_channel_defaults BEFORE INSERT OR UPDATE ON crm.im_channel
	FOR EACH ROW EXECUTE FUNCTION crm.im_channel_defaults();
CREATE OR REPLACE TRIGGER im_channel_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.im_channel
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('admin.im');
-- holders of admin.im configure channels but, like everyone outside
-- crm_admin, write secrets without reading them back; and who cannot read a
-- channel's secrets cannot change where, or to which platform, they are sent
GRANT SELECT (id, name, platform, kind, api_base, rate_per_minute, events, enabled) ON crm.im_channel TO crm_user;
GRANT DELETE ON crm.im_channel TO crm_user;
GRANT INSERT (name, platform, kind, webhook_url, secret, app_id, app_secret, agent_id, api_base, rate_per_minute,
              events, enabled),
      UPDATE (name, secret, app_id, app_secret, agent_id, rate_per_minute, events, enabled)
	ON crm.im_channel TO crm_user;
GRANT SELECT, UPDATE (platform, kind, api_base, webhook_url) ON crm.im_channel TO crm_admin;

-- the signature a Feishu or DingTalk robot expects (src/im/im_sign.c)
CREATE OR REPLACE FUNCTION crm.im_robot_sign(platform text, secret text, ts bigint) RETURNS text
	AS 'MODULE_PATHNAME', 'crm_im_robot_sign_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION crm.im_robot_sign(text, text, bigint) IS
	'Robot signature: feishu (ts in seconds, for the JSON body) or dingtalk (ts in ms, percent-encoded for the query)';

CREATE OR REPLACE FUNCTION crm.im_payload(platform text, kind text, recipient text, agent_id text,
                               title text, body text, idempotency_key text) RETURNS text
	AS 'MODULE_PATHNAME', 'crm_im_payload_sql' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION crm.im_payload(text, text, text, text, text, text, text) IS
	'IM message body (compact JSON) for a wecom/feishu/dingtalk robot or app; the body is cut to the platform''s byte limit and ends with …';

CREATE TABLE crm.im_delivery (
	id               bigint GENERATED ALWAYS AS IDENTITY,
	notification_id  bigint NOT NULL,
	channel_id       bigint NOT NULL,
	status           text NOT NULL DEFAULT 'pending',
	attempts         integer NOT NULL DEFAULT 0,
	next_attempt_at  timestamptz NOT NULL DEFAULT now(),
	last_error       text,
	last_code        text,
	idempotency_key  uuid NOT NULL DEFAULT gen_random_uuid(),
	sent_at          timestamptz,
	sent_in          bigint,
	CONSTRAINT im_delivery_pkey PRIMARY KEY (id),
	CONSTRAINT im_delivery_status_check CHECK (status IN ('pending', 'sent', 'failed', 'dead'))
);
COMMENT ON COLUMN crm.im_delivery.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.im_delivery.notification_id IS 'The notification (crm.notification.id); kept by crm; not writable';
COMMENT ON COLUMN crm.im_delivery.channel_id IS 'The channel (crm.im_channel.id); kept by crm; not writable';
COMMENT ON COLUMN crm.im_delivery.attempts IS 'Attempts so far; kept by the worker (crm_admin may reset it)';
COMMENT ON COLUMN crm.im_delivery.next_attempt_at IS 'When the worker tries next; kept by the worker (crm_admin may move it)';
COMMENT ON COLUMN crm.im_delivery.last_error IS 'The platform''s message of the last failed attempt; kept by crm; not writable';
COMMENT ON COLUMN crm.im_delivery.idempotency_key IS 'Key sent with the message so a retry is not delivered twice; kept by crm; not writable';
COMMENT ON COLUMN crm.im_delivery.sent_at IS 'When the message was sent; kept by crm; not writable';
-- No foreign keys: only crm.im_expand() writes deliveries, taking
-- notifications and channels from the rows it reads.  Checking them per row
-- cost 0.25 s per 100,000 deliveries for the channel; for the notification, a
-- check planned while the inbox was small seq-scans it for every delivery of a
-- large batch (100 events to 200 employees: 0.5 s became 6 s).  Random
-- idempotency keys need no unique index to stay unique.
CREATE INDEX im_delivery_due_idx ON crm.im_delivery (channel_id, next_attempt_at) WHERE status IN ('pending', 'failed');
-- what a foreign key's ON DELETE CASCADE would do for a deleted channel
CREATE OR REPLACE FUNCTION crm.im_channel_deleted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> 'crm.im_channel'::regclass THEN RAISE 'crm.im_channel_deleted() runs only on crm.im_channel, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	DELETE FROM crm.im_delivery d USING deleted c WHERE d.channel_id = c.id;
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER im_channel_deleted AFTER DELETE ON crm.im_channel
	REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION crm.im_channel_deleted();
COMMENT ON TABLE crm.im_delivery IS 'One IM message per notification and channel, sent by the worker';
COMMENT ON COLUMN crm.im_delivery.status IS 'pending; failed (retried at next_attempt_at); sent; dead (last_code, last_error say why)';
COMMENT ON COLUMN crm.im_delivery.last_code IS 'The platform''s error code of the last failed attempt ("93000", "88/40014", "http 502", "transport")';
COMMENT ON COLUMN crm.im_delivery.sent_in IS 'The delivery whose request carried this one: itself, or a digest''s first';
GRANT SELECT ON crm.im_delivery TO crm_admin;
-- to send dead letters again once their cause is fixed
GRANT UPDATE (status, attempts, next_attempt_at) ON crm.im_delivery TO crm_admin;

-- What each channel has queued, sent and given up, for a DBA or a dashboard.
CREATE OR REPLACE VIEW crm.im_channel_status AS
SELECT c.id AS channel_id, c.name, c.platform, c.kind, c.enabled,
       count(*) FILTER (WHERE d.status = 'pending') AS pending,
       count(*) FILTER (WHERE d.status = 'failed') AS failing,
       count(*) FILTER (WHERE d.status = 'sent') AS sent,
       count(*) FILTER (WHERE d.status = 'dead') AS dead,
       min(d.next_attempt_at) FILTER (WHERE d.status IN ('pending', 'failed')) AS next_attempt_at,
       max(d.sent_at) AS last_sent_at,
       (array_agg(d.last_code ORDER BY d.id DESC) FILTER (WHERE d.status IN ('failed', 'dead')))[1] AS last_code
  FROM crm.im_channel c
  LEFT JOIN crm.im_delivery d ON d.channel_id = c.id
 GROUP BY c.id;
COMMENT ON VIEW crm.im_channel_status IS 'Per IM channel: deliveries pending, failing (to be retried), sent and dead, and the latest error code';
COMMENT ON COLUMN crm.im_channel_status.channel_id IS 'The channel (crm.im_channel.id)';
COMMENT ON COLUMN crm.im_channel_status.name IS 'Channel name';
COMMENT ON COLUMN crm.im_channel_status.platform IS 'wecom, feishu or dingtalk';
COMMENT ON COLUMN crm.im_channel_status.kind IS 'robot or app';
COMMENT ON COLUMN crm.im_channel_status.enabled IS 'Whether the channel sends';
COMMENT ON COLUMN crm.im_channel_status.pending IS 'Deliveries not yet tried';
COMMENT ON COLUMN crm.im_channel_status.failing IS 'Deliveries that failed and will be retried';
COMMENT ON COLUMN crm.im_channel_status.sent IS 'Deliveries sent';
COMMENT ON COLUMN crm.im_channel_status.dead IS 'Deliveries given up';
COMMENT ON COLUMN crm.im_channel_status.next_attempt_at IS 'Earliest next attempt of a pending or failing delivery';
COMMENT ON COLUMN crm.im_channel_status.last_sent_at IS 'When the latest delivery was sent';
COMMENT ON COLUMN crm.im_channel_status.last_code IS 'Error code of the latest failed or dead delivery';
GRANT SELECT ON crm.im_channel_status TO crm_admin;

-- Wake the notification worker when the calling transaction commits.
CREATE OR REPLACE FUNCTION crm.im_wake() RETURNS void
	AS 'MODULE_PATHNAME', 'crm_im_wake' LANGUAGE C VOLATILE;

-- a switch for maintenance windows: the worker sends nothing while it is on,
-- and notifications keep queueing
ALTER TABLE crm.settings ADD COLUMN im_paused boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN crm.settings.im_paused IS 'While true the notification worker sends nothing; the outbox keeps filling';
GRANT UPDATE (im_paused) ON crm.settings TO crm_user;
-- a trigger for whatever gives the worker work without crm.notify
CREATE OR REPLACE FUNCTION crm.wake_worker() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_RELID <> ALL ('{crm.directory_sync,crm.settings}'::regclass[]) THEN RAISE 'crm.wake_worker() runs only on crm.directory_sync, crm.settings, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	PERFORM crm.im_wake();
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER settings_im_resumed AFTER UPDATE OF im_paused ON crm.settings
	FOR EACH ROW WHEN (OLD.im_paused AND NOT NEW.im_paused) EXECUTE FUNCTION crm.wake_worker();

-- crm.notify(): the one way events become notifications.  Called by crm's own
-- functions and triggers (as the table owner); per recipient it honours the
-- preference and writes the inbox row, marked im_pending when an IM channel
-- may want it, and wakes the worker at commit.  The worker expands those rows
-- into deliveries (crm.im_expand), so the business transaction writes one row
-- per recipient.  In C (src/notify/notify.c): it runs per transfer and per reminder.
CREATE OR REPLACE FUNCTION crm.notify(recipients bigint[], event text, title text, body text,
                           record_type text DEFAULT NULL, record_id bigint DEFAULT NULL) RETURNS integer
	AS 'MODULE_PATHNAME', 'crm_notify' LANGUAGE C VOLATILE;
-- what crm.notify caches per backend: rebuilt in every backend after a change
CREATE OR REPLACE TRIGGER im_channel_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.im_channel
	FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
CREATE OR REPLACE TRIGGER notification_preference_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON crm.notification_preference FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
CREATE OR REPLACE TRIGGER notification_rule_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON crm.notification_rule FOR EACH STATEMENT EXECUTE FUNCTION crm.table_changed();
COMMENT ON FUNCTION crm.notify(bigint[], text, text, text, text, bigint) IS
	'Write the inbox rows of one event for its recipients and wake the IM worker (crm''s own code only)';

-- The worker's first step each round: pending notifications become one
-- delivery per channel that wants them.  A robot posts the events it lists to
-- its group; an app messages recipients who chose "app" and have an id on its
-- platform.  Preferences are read now, so a change made meanwhile counts.
CREATE OR REPLACE FUNCTION crm.im_expand(max_notifications integer) RETURNS integer
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	WITH taken AS (
		UPDATE crm.notification n SET im_pending = false
		 WHERE n.id IN (SELECT p.id FROM crm.notification p WHERE p.im_pending
		                 ORDER BY p.id LIMIT im_expand.max_notifications FOR UPDATE SKIP LOCKED)
		RETURNING n.id, n.recipient_id, n.event
	), deliveries AS (
		INSERT INTO crm.im_delivery (notification_id, channel_id)
		SELECT t.id, c.id
		  FROM taken t
		  JOIN crm.employee e ON e.id = t.recipient_id
		  LEFT JOIN crm.notification_preference own ON own.employee_id = e.id AND own.event = t.event
		  LEFT JOIN crm.notification_preference every ON every.employee_id = e.id AND every.event = '*'
		  JOIN crm.im_channel c ON c.enabled AND CASE c.kind
		       WHEN 'robot' THEN t.event = ANY (c.events) OR '*' = ANY (c.events)
		       ELSE coalesce(own.delivery, every.delivery, 'app') = 'app'
		        AND CASE c.platform WHEN 'wecom' THEN e.wecom_userid WHEN 'feishu' THEN e.feishu_open_id
		                            ELSE e.dingtalk_userid END IS NOT NULL END
		 ORDER BY t.id, c.id	-- deliveries in the order things happened
		RETURNING 1
	)
	SELECT count(*)::integer FROM taken;
END;
COMMENT ON FUNCTION crm.im_expand(integer) IS
	'Turn up to max_notifications pending notifications into IM deliveries (the worker calls it)';

CREATE OR REPLACE FUNCTION crm.mark_read(notification_id bigint) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	WITH marked AS (
		UPDATE crm.notification SET read_at = now() WHERE id = mark_read.notification_id AND read_at IS NULL
		RETURNING 1
	)
	SELECT count(*) > 0 FROM marked;
END;
COMMENT ON FUNCTION crm.mark_read(bigint) IS 'Mark one of my notifications read; false if it was not unread or not mine';

-- Collaborators learn they were added by someone else: added_by tells, since
-- crm.current_employee_id() in a SECURITY DEFINER function is nobody.  An
-- owner put on their own record's team (a transfer keeping the old owner)
-- is not news: crm.transfer_records tells them what went.
CREATE OR REPLACE FUNCTION crm.notify_team_added() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r     record;
	owner bigint;
BEGIN
	IF TG_RELID <> 'crm.team_member'::regclass THEN RAISE 'crm.notify_team_added() runs only on crm.team_member, not on %', TG_RELID::regclass USING ERRCODE = 'wrong_object_type'; END IF;
	-- restores run with row_security off (which makes anyone under row-level
	-- security fail): replaying team entries is no news
	IF crm.restoring() THEN
		RETURN NULL;
	END IF;
	FOR r IN SELECT a.record_type, a.record_id, a.access, a.added_by, array_agg(a.employee_id) AS who
	           FROM added a WHERE a.employee_id IS DISTINCT FROM a.added_by
	          GROUP BY a.record_type, a.record_id, a.access, a.added_by LOOP
		owner := (crm.record_recipients(r.record_type, r.record_id, '{owner}'))[1];
		PERFORM crm.notify(array_remove(r.who, owner), 'team.added', m.title, m.body, r.record_type, r.record_id)
		  FROM crm.notification_text('team.added', jsonb_build_object(
		           'actor', coalesce((SELECT e.name FROM crm.employee e WHERE e.id = r.added_by), 'crm'),
		           'type', crm.record_type_label(r.record_type), 'record', crm.record_items(r.record_type, ARRAY[r.record_id]) -> 0 ->> 'record',
		           'access', r.access)) m
		 WHERE owner IS NULL OR r.who <> ARRAY[owner];
	END LOOP;
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER team_member_notify AFTER INSERT ON crm.team_member
	REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION crm.notify_team_added();
