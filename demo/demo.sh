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
if [ -z "$(cluster_psql -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'crm_demo'")" ]; then
	cluster_psql -d postgres -c "CREATE DATABASE crm_demo"
fi
cluster_psql -d crm_demo -c "CREATE EXTENSION IF NOT EXISTS crm" -c "CREATE EXTENSION IF NOT EXISTS pg_cron"
if [ "$(cluster_psql -d crm_demo -Atc "SELECT count(*) FROM crm.employee")" = 0 ]; then
	cluster_psql -d crm_demo -f "$top/demo/company.sql"
fi
cluster_psql -d crm_demo -Atc "SELECT crm.schedule_jobs()" >/dev/null

conn="psql -h $dir/run -p $port"
cat <<TOUR

crm demo is running: database crm_demo on port $port (socket directory $dir/run).
Connections are trusted on this machine only; every demo employee logs in as their own role.

  as the superuser:      $conn -U postgres crm_demo
  as 王芳 (East sales):   $conn -U wang_fang crm_demo
  as 杨磊 (South sales):  $conn -U yang_lei crm_demo

A short tour (run the same statements as both employees and compare):

  SELECT crm.current_employee_id();                       -- who am I?
  SELECT name, industry, last_follow_up_at FROM crm.customer ORDER BY name;
                                                          -- each sees only their own customers
  SELECT c.name, f.method, f.content, f.created_at
    FROM crm.follow_up f JOIN crm.customer c ON c.id = f.record_id AND f.record_type = 'customer'
   ORDER BY f.created_at DESC LIMIT 5;                    -- and only their customers' timeline
  INSERT INTO crm.customer (name, phone) VALUES ('新客户有限公司', '0571-12345678');
                                                          -- owner and author are filled in for you
  INSERT INTO crm.customer (name, owner_id) VALUES ('代建客户', 1);
                                                          -- refused: you cannot write for someone else
  SELECT e.name, d.name AS department FROM crm.employee e JOIN crm.department d ON d.id = e.department_id;
                                                          -- the organisation is visible to all staff

As the superuser: SELECT * FROM crm.job; SELECT jobname, schedule FROM cron.job;
Stop with: make demo-stop    Read on: docs/index.md
TOUR
