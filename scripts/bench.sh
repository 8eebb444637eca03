#!/usr/bin/env bash
# bench.sh [BUILD] - the benchmark behind `make bench`: mxload -> mxsink
# direct, through mxgate and through haproxy (TCP mode, one thread) for
# 1 KB / 100 KB / 1 MB messages at 1 / 10 / 100 connections, plus mxsink
# vs Postfix smtp-sink, mxload vs Postfix smtp-source, mxgate's memory
# per idle connection, [limits] off vs on (embedded store, and a
# local redis-server started on a free port), and TLS (handshakes full and
# resumed against build/tlsbench, STARTTLS vs plaintext throughput). One run; prints a markdown
# table, also written to BUILD/bench/results.md, with the raw figures in
# BUILD/bench/results.json.
# The work is done by scripts/bench_run.py (stdlib python3); this wrapper
# checks the binaries, raises the descriptor limit and, on EXIT, kills by
# pid any process the driver started that is still alive (the driver stops
# them itself; this only matters when it is killed).
#
# Environment: BENCH_SCALE=0.25 shortens every timed cell (quick check);
# BENCH_SKIP_AUTO=1 skips the mxgate workers=auto rows; BENCH_ONLY=limits
# (comma-separated: proxies, sinks, loaders, idle, limits, tls) runs only those
# sections (default: all).
# It installs nothing: `make bench` runs scripts/install-deps.sh first. A
# missing haproxy or Postfix tool is reported and its column skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD=${1:-build}
for prog in mxgate mxsink mxload tlsbench; do
	if [ ! -x "$BUILD/$prog" ]; then
		echo "bench: $BUILD/$prog not found; run 'make' first" >&2
		exit 1
	fi
done
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

OUT="$BUILD/bench"
mkdir -p "$OUT"
PIDFILE="$OUT/pids"
: >"$PIDFILE"

# 10,000 idle client sockets in the driver plus as many in mxgate (each
# process has its own limit; the hard limit may be lower, e.g. 20000).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

DRIVER_PID=
cleanup() {
	local pid exe
	if [ -n "$DRIVER_PID" ] && kill -0 "$DRIVER_PID" 2>/dev/null; then
		kill -TERM "$DRIVER_PID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$DRIVER_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$DRIVER_PID" 2>/dev/null || true
	fi
	# "PID EXE" lines written by the driver for each process it started;
	# only a pid still running that executable is ours.
	[ -f "$PIDFILE" ] || return 0
	while read -r pid exe; do
		[ -n "$pid" ] || continue
		if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ]; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done <"$PIDFILE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$PY" scripts/bench_run.py "$BUILD" </dev/null &
DRIVER_PID=$!
rc=0
wait "$DRIVER_PID" || rc=$?
DRIVER_PID=
exit $rc
