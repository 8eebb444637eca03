#!/usr/bin/env bash
# run-tests.sh BUILD_DIR - runs every unit test binary BUILD_DIR/tests/test_*
# (cmocka), then the integration tests tests/integration/test_*.py (Debian's
# python3, unittest, through tests/integration/runner.py) against the
# binaries in BUILD_DIR. Prints the output of every failure and ends with
# one line "N passed, N failed[, N skipped]". Exits non-zero if anything
# failed or nothing ran.
#
# MXGATE_SANITIZED=1 (make asan): sanitizer reports in any child's output
# ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer") fail the
# test that produced them.
# MXGATE_TESTS=PATTERN limits the integration tests to matching files,
# e.g. MXGATE_TESTS=test_protocol.
set -uo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT=$PWD
BUILD=$1
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
UNIT_TIMEOUT=${MXGATE_UNIT_TIMEOUT:-300}
INTEG_TIMEOUT=${MXGATE_INTEG_TIMEOUT:-900}

export MXGATE_BUILD="$BUILD"
export CMOCKA_MESSAGE_OUTPUT=stdout
if [ "${MXGATE_SANITIZED:-0}" = 1 ]; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
SAN_RE='ERROR: AddressSanitizer|runtime error:|LeakSanitizer'

passed=0
failed=0
skipped=0
failures=()
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/mxgate-tests.XXXXXX")
trap 'rm -rf "$LOGDIR"' EXIT

# report_failure NAME LOGFILE
report_failure() {
	failures+=("$1")
	echo "---- FAILED: $1 ----"
	# Enough to diagnose, bounded so a runaway log does not drown the rest.
	if [ "$(wc -c <"$2")" -gt 200000 ]; then
		head -c 100000 "$2"; echo; echo "[... cut ...]"; tail -c 100000 "$2"
	else
		cat "$2"
	fi
	echo "---- end of $1 ----"
}

# ---- unit tests ----
shopt -s nullglob
unit_bins=()
for f in "$BUILD"/tests/test_*; do
	case "$f" in *.d|*.o|*.dSYM) continue ;; esac
	[ -f "$f" ] && [ -x "$f" ] && unit_bins+=("$f")
done
if [ ${#unit_bins[@]} -eq 0 ]; then
	echo "run-tests: no unit test binaries in $BUILD/tests" >&2
fi
for bin in "${unit_bins[@]}"; do
	name=unit/$(basename "$bin")
	log="$LOGDIR/$(basename "$bin").log"
	timeout -k 5 "$UNIT_TIMEOUT" "$bin" >"$log" 2>&1 </dev/null
	rc=$?
	# cmocka prints one summary per group: sum them.
	p=$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) test(s)\..*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	fl=$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) test(s).*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	sk=$(sed -n 's/^\[  SKIPPED \] \([0-9][0-9]*\) test(s).*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	why=
	if [ "$rc" -ge 124 ]; then
		if [ "$rc" -eq 124 ]; then why="timed out after ${UNIT_TIMEOUT}s"; else why="exit status $rc (killed by a signal?)"; fi
	fi
	if [ "$rc" -ne 0 ] && [ "$fl" -eq 0 ]; then
		# crashed, timed out, or failed outside a test: count it once
		fl=1
		[ -n "$why" ] || why="exit status $rc"
	elif [ "$rc" -eq 0 ] && [ $((p + fl + sk)) -eq 0 ]; then
		fl=1
		why="no cmocka summary in the output"
	fi
	if [ "${MXGATE_SANITIZED:-0}" = 1 ] && grep -Eq "$SAN_RE" "$log"; then
		[ "$fl" -eq 0 ] && fl=1 && p=$((p > 0 ? p - 1 : 0))
		why="${why:+$why; }sanitizer report"
	fi
	passed=$((passed + p)); failed=$((failed + fl)); skipped=$((skipped + sk))
	if [ "$fl" -ne 0 ]; then
		[ -n "$why" ] && echo "$name: $why" >>"$log"
		report_failure "$name" "$log"
	else
		msg="$p passed"
		[ "$sk" -ne 0 ] && msg="$msg, $sk skipped"
		echo "ok   $name: $msg"
	fi
done

# ---- integration tests ----
integ=()
for f in tests/integration/test_*.py; do
	if [ -n "${MXGATE_TESTS:-}" ] && [[ "$f" != *${MXGATE_TESTS}* ]]; then continue; fi
	integ+=("$f")
done
if [ ${#integ[@]} -eq 0 ]; then
	echo "run-tests: no integration tests found" >&2
fi
for f in "${integ[@]}"; do
	mod=$(basename "$f" .py)
	log="$LOGDIR/$mod.log"
	res="$LOGDIR/$mod.result"
	rm -f "$res"
	echo "==== integration/$mod"
	# The runner prints one line per test as it goes (kept on the terminal)
	# and writes "passed failed skipped" to $res at the end.
	timeout -k 10 "$INTEG_TIMEOUT" "$PY" tests/integration/runner.py --result "$res" "$mod" \
		</dev/null 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	if [ -s "$res" ]; then
		read -r p fl sk <"$res"
	else
		p=0; fl=1; sk=0
		if [ "$rc" -eq 124 ]; then
			echo "integration/$mod: timed out after ${INTEG_TIMEOUT}s"
		else
			echo "integration/$mod: runner ended without a result (exit status $rc)"
		fi
		failures+=("integration/$mod")
	fi
	passed=$((passed + p)); failed=$((failed + fl)); skipped=$((skipped + sk))
	if [ -s "$res" ] && [ "$fl" -ne 0 ]; then
		failures+=("integration/$mod")
	fi
done

echo
if [ ${#failures[@]} -ne 0 ]; then
	echo "failed: ${failures[*]}"
fi
if [ "$skipped" -ne 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
if [ "$failed" -ne 0 ] || [ $((passed + failed)) -eq 0 ]; then
	exit 1
fi
exit 0
