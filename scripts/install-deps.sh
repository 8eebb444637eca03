#!/usr/bin/env bash
# install-deps.sh - installs the Debian packages that mxgate's build, tests,
# demo and benchmarks need. Idempotent and quick when everything is there:
# one dpkg-query first, apt-get only when a package is missing. Never
# prompts (works with CI=true and no stdin), and leaves no daemon running
# that the install started (redis-server, postfix and haproxy start
# themselves through invoke-rc.d otherwise).
set -euo pipefail

PACKAGES=(
	build-essential pkg-config
	liburing-dev libwolfssl-dev libjemalloc-dev libhiredis-dev libinih-dev
	libc-ares-dev libcmocka-dev
	libcrypt-dev			# crypt(3) for password hashes
	autoconf automake libtool dpkg-dev	# scripts/build-wolfssl.sh
	redis-server rbldnsd swaks postfix haproxy curl msmtp
	python3 python3-aiosmtpd valgrind openssl
	libnet-ssleay-perl		# swaks --tls
	iproute2			# ss: a test reads the backend links' congestion control
)

missing=()
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	[[ "$status" == ii* ]] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "install-deps: need root or sudo" >&2; exit 1; }
	SUDO="sudo -n"
fi

export DEBIAN_FRONTEND=noninteractive
export NEEDRESTART_MODE=a

# Keep package maintainer scripts from starting services: a policy-rc.d
# that answers 101 ("action forbidden") for the duration of the install.
# An existing one is set aside and put back afterwards.
POLICY=/usr/sbin/policy-rc.d
POLICY_SAVED=
policy_restore() {
	if [ -n "$POLICY_SAVED" ]; then
		$SUDO mv -f "$POLICY_SAVED" "$POLICY"
	else
		$SUDO rm -f "$POLICY"
	fi
}
if [ -e "$POLICY" ]; then
	POLICY_SAVED="$POLICY.mxgate-saved.$$"
	$SUDO cp -p "$POLICY" "$POLICY_SAVED"
fi
trap policy_restore EXIT
printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY.tmp.$$" >/dev/null
$SUDO chmod 755 "$POLICY.tmp.$$"
$SUDO mv -f "$POLICY.tmp.$$" "$POLICY"

# Daemons already running before we start are not ours to stop.
daemon_pids() { pgrep -x "$1" 2>/dev/null | sort || true; }
declare -A before
for d in redis-server master haproxy rbldnsd; do
	before[$d]=$(daemon_pids "$d")
done

# Postfix asks what kind of mail server this is; say "none".
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
echo "postfix postfix/mailname string localhost" | $SUDO debconf-set-selections

APT_OPTS=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
$SUDO apt-get update -q </dev/null
$SUDO apt-get install "${APT_OPTS[@]}" "${missing[@]}" </dev/null

# Should anything have started regardless (no policy-rc.d honoured, a
# systemd unit), stop the daemons that were not running before, by pid.
for d in redis-server master haproxy rbldnsd; do
	now=$(daemon_pids "$d")
	for pid in $now; do
		if ! grep -qx "$pid" <<<"${before[$d]}"; then
			echo "install-deps: stopping $d (pid $pid) started by the install" >&2
			$SUDO kill -TERM "$pid" 2>/dev/null || true
		fi
	done
done

still=()
for p in "${missing[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	[[ "$status" == ii* ]] || still+=("$p")
done
if [ ${#still[@]} -ne 0 ]; then
	echo "install-deps: still missing: ${still[*]}" >&2
	exit 1
fi
echo "install-deps: done" >&2
