#!/usr/bin/env bash
# Runs every test kind (regression, isolation, TAP) against the installed crm and
# prints one summary line: "N passed, N failed".  Root runs it on a copy of the
# tree owned by the postgres OS user, because initdb refuses root.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -eq 0 ]; then
	# tmp/test in the tree, unless postgres cannot reach the tree (a clone under /root)
	work="$top/tmp/test"
	runuser -u postgres -- test -x "$top" || work=/tmp/crm-test
	rm -rf "$work"
	mkdir -p "$work"
	tar -C "$top" --exclude=./tmp --exclude=./.demo --exclude=./.git -cf - . | tar -C "$work" -xf -
	chown -R postgres: "$work"
	exec runuser -u postgres -- "$work/test/run.sh"
fi

cd "$top"
passed=0
failed=0
status=0

# run <log> <patterns passed> <patterns failed> make-args...: runs one test kind and
# adds its counts; a run that fails without a failed test (a crash, a missing
# expected file) counts as one failure.
run() {
	local log=$1 ok=$2 bad=$3 p f rc
	shift 3
	make -s installcheck "$@" > "$log" 2>&1
	rc=$?
	cat "$log"
	p=$(grep -cE "$ok" "$log")
	f=$(grep -cE "$bad" "$log")
	[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
	[ $rc -ne 0 ] && status=1
	passed=$((passed + p))
	failed=$((failed + f))
}

echo "== regression tests"
run regress.log '^test .* \.\.\. ok' '^test .* \.\.\. FAILED' ISOLATION= TAP_TESTS=
[ -f regression.diffs ] && { echo "== regression.diffs"; cat regression.diffs; status=1; }

echo "== regression tests on a database updated from 0.1"
run regress_updated.log '^test .* \.\.\. ok' '^test .* \.\.\. FAILED' ISOLATION= TAP_TESTS= UPDATE_FROM=0.1
[ -f regression.diffs ] && { echo "== regression.diffs"; cat regression.diffs; status=1; }

echo "== isolation tests"
run isolation.log '^test .* \.\.\. ok' '^test .* \.\.\. FAILED' REGRESS= TAP_TESTS=
[ -f output_iso/regression.diffs ] && { echo "== output_iso/regression.diffs"; cat output_iso/regression.diffs; status=1; }

echo "== TAP tests"
run tap.log '^ok [0-9]+' '^not ok [0-9]+' REGRESS= ISOLATION= PROVE_FLAGS=-v
if grep -qE '^Result: FAIL' tap.log; then
	for f in tmp_check/log/regress_log_*; do [ -f "$f" ] && { echo "== $f"; tail -n 60 "$f"; }; done
fi

# No server process may die of a signal (a crash).  SIGKILL is the tests' own:
# t/004 and t/006 kill the postmaster and the worker on purpose.
echo "== server logs"
if crashes=$(grep -rH --include='*.log' "terminated by signal" log tmp_regress output_iso tmp_check 2>/dev/null |
	grep -v "terminated by signal 9: Killed"); then
	echo "$crashes"
	failed=$((failed + 1))
else
	echo "no server process was terminated by a signal"
	passed=$((passed + 1))
fi

[ $failed -gt 0 ] && status=1
[ $passed -eq 0 ] && status=1
echo "$passed passed, $failed failed"
exit $status
