#!/usr/bin/env bash
# demo.sh [BUILD] - the two-minute tour: mxsink on 127.0.0.1:2600, mxgate
# with conf/mxgate.conf (listening on 127.0.0.1:2525) in front of it,
# mxload pushing 4 KB messages over 50 connections for 10 s through
# mxgate; then the same for 5 s over STARTTLS with a throwaway certificate;
# then everything stopped and mxsink's totals printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD=${1:-build}
CONF=conf/mxgate.conf
GATE_PORT=2525
SINK_PORT=2600

for prog in mxgate mxsink mxload; do
	if [ ! -x "$BUILD/$prog" ]; then
		echo "demo: $BUILD/$prog not found; run 'make' first" >&2
		exit 1
	fi
done

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $SINK_PORT $GATE_PORT; do
	if port_in_use "$p"; then
		echo "demo: port 127.0.0.1:$p is already in use (by another mxgate or mxsink?);" \
			"stop that process and run the demo again" >&2
		exit 1
	fi
done

LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/mxgate-demo.XXXXXX")
SINK_PID=
GATE_PID=

# stop PID [NAME]: SIGTERM, up to 10 s, then SIGKILL; prints nothing.
stop() {
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	stop "$GATE_PID"; GATE_PID=
	stop "$SINK_PID"; SINK_PID=
	rm -rf "$LOGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_port PORT PID NAME LOG
wait_port() {
	local i
	for i in $(seq 100); do
		if ! kill -0 "$2" 2>/dev/null; then
			echo "demo: $3 exited before listening on 127.0.0.1:$1; its log:" >&2
			cat "$4" >&2
			exit 1
		fi
		port_in_use "$1" && return 0
		sleep 0.1
	done
	echo "demo: $3 is not listening on 127.0.0.1:$1 after 10 s; its log:" >&2
	cat "$4" >&2
	exit 1
}

echo "== mxsink on 127.0.0.1:$SINK_PORT"
"$BUILD/mxsink" --listen "127.0.0.1:$SINK_PORT" --quiet >"$LOGDIR/mxsink.log" 2>&1 </dev/null &
SINK_PID=$!
wait_port $SINK_PORT "$SINK_PID" mxsink "$LOGDIR/mxsink.log"

echo "== mxgate -c $CONF on 127.0.0.1:$GATE_PORT"
"$BUILD/mxgate" -c "$CONF" >"$LOGDIR/mxgate.log" 2>&1 </dev/null &
GATE_PID=$!
wait_port $GATE_PORT "$GATE_PID" mxgate "$LOGDIR/mxgate.log"

echo "== mxload: 50 connections, 10 s, 4 KB messages, through mxgate"
load_rc=0
"$BUILD/mxload" --target "127.0.0.1:$GATE_PORT" --connections 50 --duration 10s --size 4k || load_rc=$?

echo "== stopping mxgate (SIGTERM)"
stop "$GATE_PID"; GATE_PID=

# The same, over STARTTLS: a throwaway CA and certificate, and the example
# config with a TLS listener added (conf/mxgate.conf itself stays plain).
TLS_PORT=2587
TLS_CONF="$LOGDIR/mxgate-tls.conf"
echo "== TLS: conf/make-test-certs.sh, then mxgate with a STARTTLS listener on 127.0.0.1:$TLS_PORT"
conf/make-test-certs.sh "$LOGDIR/tls" >/dev/null
{
	cat "$CONF"
	printf '\n[listener tls]\nlisten = 127.0.0.1:%s\ntls = starttls\nrequire_tls = yes\nrelay_domains = *\n' "$TLS_PORT"
	printf '\n[tls]\ncertificate = %s\nkey = %s\n' "$LOGDIR/tls/server.crt" "$LOGDIR/tls/server.key"
} >"$TLS_CONF"
"$BUILD/mxgate" -c "$TLS_CONF" >"$LOGDIR/mxgate-tls.log" 2>&1 </dev/null &
GATE_PID=$!
wait_port $TLS_PORT "$GATE_PID" mxgate "$LOGDIR/mxgate-tls.log"
"$BUILD/mxgate" -V
echo "== mxload: 50 connections, 5 s, 4 KB messages, STARTTLS through mxgate"
"$BUILD/mxload" --target "127.0.0.1:$TLS_PORT" --tls starttls --connections 50 --duration 5s --size 4k || load_rc=$?
echo "== stopping mxgate (SIGTERM)"
stop "$GATE_PID"; GATE_PID=

echo "== mxsink totals"
stop "$SINK_PID"; SINK_PID=
cat "$LOGDIR/mxsink.log"
exit $load_rc
