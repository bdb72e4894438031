-- Enqueuing 100,000 notifications, every employee on WeCom with an app
-- channel configured, so crm looks up the preference and writes an inbox row
-- marked for the worker; against the same inbox rows inserted into a plain
-- table of crm.notification's shape.
--   notify_batch:  50 events, each to every employee (at scale 1: 2,000), as
--                  reminder and recycling runs do
--   notify_single: one event per recipient, as transfers do; the baseline
--                  inserts one row per statement as well

-- setup
UPDATE crm.employee SET wecom_userid = 'bench-' || id WHERE wecom_userid IS NULL;
-- the worker never sends these (nothing here commits), and would find nobody on loopback's discard port
UPDATE crm.settings SET im_paused = true;
INSERT INTO crm.im_channel (name, platform, kind, app_id, app_secret, agent_id, api_base)
VALUES ('bench WeCom app', 'wecom', 'app', 'ww-bench', 'bench-secret', '1000002', 'http://127.0.0.1:9') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS bench_baseline.notification (LIKE crm.notification INCLUDING ALL);
ALTER TABLE bench_baseline.notification DROP CONSTRAINT IF EXISTS notification_event_check;
CREATE OR REPLACE VIEW bench_baseline.notify_targets AS
SELECT e.id AS recipient_id, g AS event_no
  FROM generate_series(1, ceil(100000.0 / (SELECT count(*) FROM crm.employee WHERE active))::int) g,
       crm.employee e
 WHERE e.active;

-- crm notify_batch
\timing on
SELECT sum(crm.notify(ARRAY(SELECT id FROM crm.employee WHERE active), 'transfer.received',
                      'Records were transferred to you', 'event ' || g, 'customer', g))
  FROM generate_series(1, ceil(100000.0 / (SELECT count(*) FROM crm.employee WHERE active))::int) g;

-- baseline notify_batch
\timing on
INSERT INTO bench_baseline.notification (recipient_id, event, title, body, record_type, record_id)
SELECT recipient_id, 'transfer.received', 'Records were transferred to you', 'event ' || event_no, 'customer', event_no
  FROM bench_baseline.notify_targets;

-- crm notify_single
\timing on
DO $$
DECLARE t record;
BEGIN
	FOR t IN SELECT * FROM bench_baseline.notify_targets LOOP
		PERFORM crm.notify(ARRAY[t.recipient_id], 'transfer.received', 'Records were transferred to you',
		                   'event ' || t.event_no, 'customer', t.event_no);
	END LOOP;
END $$;

-- baseline notify_single
\timing on
DO $$
DECLARE t record;
BEGIN
	FOR t IN SELECT * FROM bench_baseline.notify_targets LOOP
		INSERT INTO bench_baseline.notification (recipient_id, event, title, body, record_type, record_id)
		VALUES (t.recipient_id, 'transfer.received', 'Records were transferred to you',
		        'event ' || t.event_no, 'customer', t.event_no);
	END LOOP;
END $$;
