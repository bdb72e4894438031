#!/usr/bin/env bash
# Runs the regression and isolation suites, and the TAP tests of the notification worker
# and directory sync, against a crm built with AddressSanitizer and UndefinedBehavior-
# Sanitizer (make check-asan builds and installs it first), then fails if any server
# process reported a finding.  Root runs it on a copy of the tree owned by the postgres
# OS user, as test/run.sh does.  SANITIZE_TAP picks other TAP tests ("" for none).
#
# PostgreSQL itself is not instrumented, so ASan's runtime is preloaded into every
# process of the run.  Preloaded alone it hangs the server at startup: p11-kit (which
# the server reaches through libldap and GnuTLS) calls newlocale() from its constructor
# while ASan is still setting up, and glibc's locale lock stays taken.  Preloading the
# server's and crm's libraries first, dependencies before dependents, runs their
# constructors before ASan's; libc stays last so that ASan's malloc is the one used.
# Leak detection is off: a backend frees its memory contexts, not each allocation.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -eq 0 ]; then
	work="$top/tmp/sanitize"
	runuser -u postgres -- test -x "$top" || work=/tmp/crm-sanitize
	rm -rf "$work"
	mkdir -p "$work"
	tar -C "$top" --exclude=./tmp --exclude=./.demo --exclude=./.git -cf - . | tar -C "$work" -xf -
	chown -R postgres: "$work"
	exec runuser -u postgres -- "$work/test/sanitize.sh"
fi

cd "$top"
pg_config=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
bindir=$("$pg_config" --bindir)
crm_so=$("$pg_config" --pkglibdir)/crm.so
libasan=$(gcc -print-file-name=libasan.so)

if ! ldd "$crm_so" | grep -q libasan; then
	echo "$crm_so is not built with AddressSanitizer: run make check-asan" >&2
	exit 1
fi

preload=$( (ldd "$bindir/postgres"; ldd "$crm_so") |
	awk '$3 ~ /^\// && $1 !~ /^lib(c|m|stdc\+\+|gcc_s|asan|ubsan)\.so/ && !seen[$3]++ { print $3 }' |
	tac | tr '\n' ' ')
reports="$top/sanitizer"
rm -rf "$reports"
mkdir -p "$reports"

export LD_PRELOAD="$preload $libasan"
export ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=0:abort_on_error=1:log_path=$reports/asan"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$reports/ubsan"

status=0
echo "== regression tests"
make -s installcheck PG_CONFIG="$pg_config" ISOLATION= TAP_TESTS= > regress.log 2>&1 || status=1
grep -E '^test |^ok |^not ok |tests (passed|failed)' regress.log
[ -f regression.diffs ] && { echo "== regression.diffs"; cat regression.diffs; }

echo "== isolation tests"
make -s installcheck PG_CONFIG="$pg_config" REGRESS= TAP_TESTS= > isolation.log 2>&1 || status=1
grep -E '^test |^ok |^not ok |tests (passed|failed)' isolation.log
[ -f output_iso/regression.diffs ] && { echo "== output_iso/regression.diffs"; cat output_iso/regression.diffs; }

# the TAP tests whose servers run crm's HTTP, JSON and signing code: the notification
# worker and directory sync against the fake IM server
tap=${SANITIZE_TAP-t/002_fake_im_robots.pl t/004_worker.pl t/005_directory_sync.pl t/008_worker_faults.pl}
if [ -n "$tap" ]; then
	echo "== TAP tests"
	make -s installcheck PG_CONFIG="$pg_config" REGRESS= ISOLATION= PROVE_FLAGS= PROVE_TESTS="$tap" \
		> tap.log 2>&1 || status=1
	grep -E '^t/|^Result' tap.log
fi

unset LD_PRELOAD
echo "== sanitizer reports"
if compgen -G "$reports/*" > /dev/null; then
	for f in "$reports"/*; do echo "== $f"; cat "$f"; done
	status=1
else
	echo "none"
fi
# t/004 kills the postmaster and the worker on purpose (SIGKILL)
if grep -rH --include='*.log' "terminated by signal" log tmp_regress output_iso tmp_check 2>/dev/null |
	grep -v "terminated by signal 9: Killed"; then
	status=1
fi
[ $status -eq 0 ] && echo "sanitizers: no findings" || echo "sanitizers: FAILED"
exit $status
