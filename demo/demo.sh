#!/usr/bin/env bash
# make demo / make demo-stop: a running cluster with database crm_demo, the
# extension, a demo company and the scheduled jobs.  Safe to run again: an
# existing cluster is started if needed, and the company is loaded only once.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/cluster.sh"
dir="$top/.demo"
port=${DEMO_PORT:-5488}

case "${1:-start}" in
stop)
	cluster_stop "$dir"
	echo "demo cluster stopped"
	exit 0
	;;
start) ;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac

if ! runuser -u postgres -- test -x "$top"; then
	echo "the postgres OS user cannot reach $top; clone the project where it can (e.g. under /work or /srv)" >&2
	exit 1
fi
cluster_setup "$dir" "$port" crm_demo

# A new crm build or demo company (this is version 0.1, before any release, so no
# update scripts): restart to load the new library and rebuild the demo database.
build=$(cat "$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir)/crm.so" \
	"$(/usr/lib/postgresql/15/bin/pg_config --sharedir)"/extension/crm--*.sql "$top/demo/company.sql" |
	md5sum | cut -d' ' -f1)
if [ "$(cat "$dir/build" 2>/dev/null)" != "$build" ] &&
	[ -n "$(cluster_psql -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'crm_demo'")" ]; then
	echo "crm was rebuilt: restarting the demo cluster and reloading crm_demo"
	cluster_stop "$dir"
	cluster_setup "$dir" "$port" crm_demo
	cluster_psql -d postgres -c "DROP DATABASE IF EXISTS crm_demo WITH (FORCE)"
fi
echo "$build" > "$dir/build"
if [ -z "$(cluster_psql -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'crm_demo'")" ]; then
	cluster_psql -d postgres -c "CREATE DATABASE crm_demo"
fi
cluster_psql -d crm_demo -c "CREATE EXTENSION IF NOT EXISTS crm CASCADE" -c "CREATE EXTENSION IF NOT EXISTS pg_cron"
if [ "$(cluster_psql -d crm_demo -Atc "SELECT count(*) FROM crm.employee")" = 0 ]; then
	cluster_psql -d crm_demo -f "$top/demo/company.sql"
fi
cluster_psql -d crm_demo -Atc "SELECT crm.schedule_jobs()" >/dev/null

conn="psql -h $dir/run -p $port"
cat <<TOUR

crm demo is running: database crm_demo on port $port (socket directory $dir/run).
Connections are trusted on this machine only; every demo employee logs in as their own role.

  as the superuser:                     $conn -U postgres crm_demo
  as 王芳, East region manager:          $conn -U wang_fang crm_demo
  as 刘洋, East salesperson (her report): $conn -U liu_yang crm_demo
  others: li_na (sales director, sees all), yang_lei (South manager), xu_ming (customer
  service, reads both regions), zhang_wei (super admin), sun_li (organisation and roles)

A short tour (run the same statements as 王芳 and as 刘洋, and compare):

  SELECT crm.current_employee_id();                    -- who am I?
  SELECT c.name, e.name AS owner FROM crm.customer c JOIN crm.employee e ON e.id = c.owner_id
   ORDER BY owner, c.name;                             -- she sees her region; he sees his own
  SELECT rule, grants, detail FROM crm.explain_access('customer', 4);
                                                       -- why (customer 4 belongs to 刘洋;
                                                       -- try 9 too, a South customer)
  SELECT c.name, f.method, f.content, f.created_at
    FROM crm.follow_up f JOIN crm.customer c ON c.id = f.record_id AND f.record_type = 'customer'
   ORDER BY f.created_at DESC LIMIT 5;                 -- the follow-up timeline, scoped alike
  SELECT event, title, read_at FROM crm.notification;  -- my inbox: 刘洋 was given a customer
  INSERT INTO crm.customer (name, uscc, phone)
  VALUES ('新客户有限公司', crm.uscc_with_check('91330106MA2B0A1Y7'), '0571-12345678');
                                                       -- owner and author are filled in
  INSERT INTO crm.customer (name, uscc, owner_id) VALUES ('代建客户', crm.uscc_with_check('91330106MA2B0A1Y8'), 1);
                                                       -- refused, with the reason
  UPDATE crm.role_scope SET scope = 'all';             -- refused: needs admin.role
  INSERT INTO crm.customer (name, uscc) VALUES ('广州珠江电子（集团）股份有限公司',
         crm.uscc_with_check('91440101MA5A6B7C9'));     -- refused: it is 杨磊's already
  SELECT * FROM crm.find_duplicates('customer', '{"name": "广州珠江电子有限公司"}');
                                                       -- whose it is, without showing it
                                                       -- (similar names: only among yours)
  SELECT name, pool_name, phone FROM crm.pool_customer;  -- the public pool, phones masked
  SELECT name, days_left, reason FROM crm.customers_due_for_recycling;
                                                       -- 刘洋: one goes back to the pool soon

As the superuser: SELECT * FROM crm.job; SELECT jobname, schedule FROM cron.job;
Stop with: make demo-stop    Read on: docs/index.md
TOUR
