#!/usr/bin/env bash
# make bench: crm against bare PostgreSQL.  Starts a cluster in tmp/bench, recreates
# database crm_bench with the dataset of bench/generate.sql (SCALE, default 1), runs
# every other bench/*.sql and prints for each one:
#   name: crm <median>s  baseline <median>s  ratio <crm/baseline>
#
# A benchmark file has sections, each opened by a line of its own:
#   -- setup        run once, committed, as superuser
#   -- crm          the work done through crm
#   -- baseline     the same work on bare PostgreSQL
# A file may hold several benchmarks: "-- crm NAME" and "-- baseline NAME" pairs,
# reported under NAME (otherwise under the file's name).  A "-- repeat N" line in a
# measured section runs what follows its \timing on N times (for short queries).
# Each measured section runs in a new session inside BEGIN ... ROLLBACK, so every
# repetition sees the same data; only what follows its \timing on line is timed.
# The sections alternate (crm, baseline, crm, ...), each measured $reps times, after
# a VACUUM (of the rolled-back rows) and a CHECKPOINT so repetitions start alike.
# BENCH=name runs one benchmark (or every benchmark of bench/name.sql).
# A file's "-- needs: customers follow_ups shared" line names the parts of the dataset
# it reads beyond the organisation; only the parts the chosen benchmarks need are made.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
scale=${SCALE:-1}
reps=3
only=${BENCH:-}
. "$top/test/cluster.sh"

log() { echo "bench: $*" >&2; }

# names FILE: the benchmarks of a file (one empty name when it holds a single one)
names() {
	awk '/^-- crm( [a-z0-9_]+)?$/ { print $3 }' "$1"
}

# wanted FILE: whether BENCH (if set) names FILE or one of its benchmarks
wanted() {
	[ -z "$only" ] || [ "$(basename "$1" .sql)" = "$only" ] || names "$1" | grep -qx "$only"
}

found=
for f in "$top"/bench/*.sql; do
	[ "$(basename "$f")" != generate.sql ] && wanted "$f" && found=1
done
if [ -n "$only" ] && [ "$only" != deliver ] && [ -z "$found" ]; then
	echo "BENCH=$only names no benchmark: see the -- crm NAME lines of bench/*.sql and docs/testing.md" >&2
	exit 2
fi

if ! [[ $scale =~ ^[0-9]*\.?[0-9]+$ ]] || awk -v s="$scale" 'BEGIN { exit !(s <= 0) }'; then
	echo "SCALE must be a positive number, not '$scale'" >&2
	exit 2
fi

# the parts of bench/generate.sql the chosen benchmarks need
with_customers=false with_follow_ups=false with_shared=false with_opportunities=false
for f in "$top"/bench/*.sql; do
	[ "$(basename "$f")" != generate.sql ] && wanted "$f" || continue
	for part in $(sed -n 's/^-- needs: *//p' "$f"); do
		case $part in
		customers | follow_ups | shared | opportunities) eval "with_$part=true" ;;
		*) echo "$f needs '$part': generate.sql makes customers, follow_ups, shared and opportunities" >&2; exit 2 ;;
		esac
	done
done

cluster_setup "$top/tmp/bench" "${BENCH_PORT:-5497}" crm_bench
trap 'cluster_stop "$top/tmp/bench"' EXIT
# measurements vacuum explicitly; a background autovacuum would land on random runs.
# Memory and WAL sized for the dataset, as a DBA would (the defaults suit a
# laptop): work is then measured against its own costs, not against buffer
# eviction and checkpoints forced every few seconds.
cluster_psql -d postgres -c 'ALTER SYSTEM SET autovacuum = off' \
	-c "ALTER SYSTEM SET shared_buffers = '2GB'" -c "ALTER SYSTEM SET max_wal_size = '8GB'" >/dev/null
cluster_stop "$top/tmp/bench"
cluster_setup "$top/tmp/bench" "${BENCH_PORT:-5497}" crm_bench

# pg_cron's launcher may be connected to crm_bench: FORCE disconnects it.
log "creating crm_bench at scale $scale"
cluster_psql -d postgres -c 'SET client_min_messages = warning' \
	-c 'DROP DATABASE IF EXISTS crm_bench WITH (FORCE)' -c 'CREATE DATABASE crm_bench'
cluster_psql -d crm_bench -c 'CREATE EXTENSION crm CASCADE'
started=$SECONDS
cluster_psql -d crm_bench -v scale="$scale" -v with_customers=$with_customers \
	-v with_follow_ups=$with_follow_ups -v with_shared=$with_shared -v with_opportunities=$with_opportunities \
	-f "$top/bench/generate.sql"
log "generated in $((SECONDS - started))s (customers $with_customers, follow-ups $with_follow_ups, shared rows $with_shared, deals $with_opportunities)"
cluster_psql -d crm_bench -At -c "SELECT format('scale %s: %s departments, %s employees, %s customers, %s follow-ups, %s deals',
	'$scale', (SELECT count(*) FROM crm.department), (SELECT count(*) FROM crm.employee),
	(SELECT count(*) FROM crm.customer), (SELECT count(*) FROM crm.follow_up), (SELECT count(*) FROM crm.opportunity))"

# section FILE KIND [NAME]: the lines of one section of a benchmark file, with the
# timed part repeated as its "-- repeat N" line asks
section() {
	awk -v want="-- $2${3:+ $3}" '
		/^-- (setup|crm|baseline)( [a-z0-9_]+)?$/ { on = ($0 == want); next }
		!on { next }
		/^-- repeat [0-9]+$/ { times = $3; next }
		timed { body = body $0 "\n"; next }
		{ print }
		/^\\timing on$/ { timed = 1 }
		END { for (i = 0; i < (times ? times : 1); i++) printf "%s", body }' "$1"
}

# measure FILE KIND NAME: seconds taken by the timed statements of one run of a section
measure() {
	cluster_psql -d crm_bench -c VACUUM -c CHECKPOINT
	# rolled back, the rows written under blocking rules count as duplicate
	# look-ups (docs/duplicates.md): the benchmarks' employees load in bulk
	{ echo 'BEGIN;'; echo 'SET crm.duplicate_lookups_per_minute = 1000000;'
	  section "$1" "$2" "$3"; printf '\\timing off\nROLLBACK;\n'; } |
		cluster_psql -d crm_bench |
		awk '/^Time: / { ms += $2; n++ } END { if (!n) exit 1; printf "%.6f\n", ms / 1000 }'
}

median() { printf '%s\n' "$@" | sort -g | sed -n "$((($# + 1) / 2))p"; }

for file in "$top"/bench/*.sql; do
	file_name=$(basename "$file" .sql)
	[ "$file_name" = generate ] && continue
	wanted "$file" || continue
	log "$file_name: setup"
	section "$file" setup | cluster_psql -d crm_bench
	for bench in $(names "$file" | sed 's/^$/-/'); do
		[ "$bench" = - ] && bench=
		name=${bench:-$file_name}
		[ -z "$only" ] || [ "$only" = "$file_name" ] || [ "$only" = "$name" ] || continue
		crm=() baseline=()
		for ((i = 1; i <= reps; i++)); do
			crm+=("$(measure "$file" crm "$bench")")
			baseline+=("$(measure "$file" baseline "$bench")")
			log "$name: run $i of $reps: crm ${crm[-1]}s, baseline ${baseline[-1]}s"
		done
		awk -v name="$name" -v c="$(median "${crm[@]}")" -v b="$(median "${baseline[@]}")" \
			'BEGIN { printf "%s: crm %.4fs  baseline %.4fs  ratio %.2f\n", name, c, b, c / b }'
	done
done

if [ -z "$only" ] || [ "$only" = deliver ]; then
	. "$top/bench/deliver.sh"
	deliver_bench
fi
