# Sourced by demo/demo.sh and bench/run.sh: a PostgreSQL 15 cluster owned by the
# postgres OS user (initdb and postgres refuse root) with crm and pg_cron preloaded.
#
#   cluster_setup DIR PORT DBNAME   initdb DIR if needed, configure, start; idempotent
#   cluster_stop DIR                stop the cluster if it runs
#   cluster_psql ARGS...            psql as superuser against the started cluster
# DIR must be an absolute path; its socket directory is DIR/run.

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

as_postgres() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

cluster_setup() {
	CLUSTER_DIR=$1
	CLUSTER_PORT=$2
	local db=$3
	mkdir -p "$CLUSTER_DIR/run"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$CLUSTER_DIR"
	if [ ! -f "$CLUSTER_DIR/data/PG_VERSION" ]; then
		as_postgres "$PGBIN/initdb" -D "$CLUSTER_DIR/data" -U postgres -A trust -E UTF8 \
			--locale=C.UTF-8 >/dev/null
		cat >> "$CLUSTER_DIR/data/postgresql.conf" <<CONF

# crm
listen_addresses = 'localhost'
unix_socket_directories = '$CLUSTER_DIR/run'
shared_preload_libraries = 'pg_cron,crm'
cron.database_name = '$db'
cron.use_background_workers = on
crm.database_name = '$db'
max_worker_processes = 16
# the company's time zone (crm.settings.timezone): what psql shows; crm's
# jobs run at its hours whatever this says (crm.cron_in_utc)
timezone = 'Asia/Shanghai'
CONF
	fi
	if ! as_postgres "$PGBIN/pg_ctl" -D "$CLUSTER_DIR/data" status >/dev/null 2>&1; then
		as_postgres "$PGBIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" \
			-o "-p $CLUSTER_PORT" -w start >/dev/null
	fi
}

cluster_stop() {
	local dir=$1
	if [ -f "$dir/data/PG_VERSION" ] &&
		as_postgres "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		as_postgres "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
	fi
}

cluster_psql() {
	"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$CLUSTER_DIR/run" -p "$CLUSTER_PORT" -U postgres "$@"
}
