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
	"$(/usr/lib/postgresql/15/bin/pg_config --sharedir)"/extension/crm--*.sql "$top/demo/company.sql" "$top/demo/opportunities.sql" "$top/demo/contracts.sql" |
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
	cluster_psql -d crm_demo -f "$top/demo/opportunities.sql"
	cluster_psql -d crm_demo -f "$top/demo/contracts.sql"
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

A short tour (run the same statements as 王芳 and as 刘洋, and compare; demo/tour.sql):

$(sed 's/^/  /' "$top/demo/tour.sql" | tail -n +3)

As the superuser: SELECT * FROM crm.job; SELECT jobname, schedule FROM cron.job;
Stop with: make demo-stop    Read on: docs/index.md
TOUR
