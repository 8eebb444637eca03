#!/usr/bin/env bash
# make-test-certs.sh [--force] DIR - makes throwaway TLS material for tests
# and benchmarks with the openssl CLI: a private CA (ECDSA P-256) and
# server certificates signed by it. Never for production: the CA key lies
# next to the certificates.
#
#   ca.crt ca.key                  the CA
#   server.crt server.key          ECDSA P-256 leaf, CN localhost, SAN localhost,
#                                  mx.example.test, 127.0.0.1, ::1
#   server-chain.crt               server.crt followed by ca.crt
#   server-rsa.crt server-rsa.key  the same names with an RSA-2048 key
#   other.crt other.key            ECDSA P-256 leaf for other.example.test (SNI)
#
# Idempotent: does nothing when every file is there (--force makes them
# anew). Otherwise makes all of them, so that every leaf is signed by the
# ca.key beside it. Quiet unless something fails. Valid for 10 years; keys
# are mode 0600.
set -euo pipefail

FORCE=0
if [ "${1-}" = --force ]; then
	FORCE=1
	shift
fi
if [ $# -ne 1 ]; then
	echo "usage: $0 [--force] DIR" >&2
	exit 2
fi
DIR=$1
DAYS=3650
FILES=(ca.crt ca.key server.crt server.key server-chain.crt server-rsa.crt server-rsa.key
	other.crt other.key)

if [ "$FORCE" = 0 ]; then
	all=1
	for f in "${FILES[@]}"; do
		[ -s "$DIR/$f" ] || all=0
	done
	[ "$all" = 1 ] && exit 0
fi
command -v openssl >/dev/null || { echo "make-test-certs: openssl not found" >&2; exit 1; }
mkdir -p "$DIR"

# Everything is made in a scratch folder and moved in at the end, so an
# interrupted run never leaves a leaf that the CA beside it did not sign.
TMP=$(mktemp -d "$DIR/.make-test-certs.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
umask 077
ERR=$TMP/openssl.err
run() {
	"$@" >>"$ERR" 2>&1 || { echo "make-test-certs: failed: $*" >&2; cat "$ERR" >&2; exit 1; }
}
ec_key() { run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
serial() { echo "0x$(openssl rand -hex 8)"; }	# 64 random bits, as CAs do

ec_key "$TMP/ca.key"
run openssl req -x509 -new -key "$TMP/ca.key" -subj "/O=mxgate test/CN=mxgate test CA" \
	-days "$DAYS" -sha256 -set_serial "$(serial)" -out "$TMP/ca.crt" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" \
	-addext "subjectKeyIdentifier=hash"

# leaf NAME CN SAN KEYUSAGE: a certificate for $TMP/NAME.key, signed by the CA.
leaf() {
	local name=$1 cn=$2 san=$3 ku=$4
	cat >"$TMP/$name.ext" <<-EOF
	basicConstraints = critical, CA:FALSE
	keyUsage = critical, $ku
	extendedKeyUsage = serverAuth, clientAuth
	subjectAltName = $san
	subjectKeyIdentifier = hash
	authorityKeyIdentifier = keyid
	EOF
	run openssl req -new -key "$TMP/$name.key" -subj "/O=mxgate test/CN=$cn" -out "$TMP/$name.csr"
	run openssl x509 -req -in "$TMP/$name.csr" -CA "$TMP/ca.crt" -CAkey "$TMP/ca.key" \
		-set_serial "$(serial)" -days "$DAYS" -sha256 -extfile "$TMP/$name.ext" \
		-out "$TMP/$name.crt"
}

SERVER_SAN="DNS:localhost, DNS:mx.example.test, IP:127.0.0.1, IP:::1"
ec_key "$TMP/server.key"
leaf server localhost "$SERVER_SAN" digitalSignature
ec_key "$TMP/other.key"
leaf other other.example.test "DNS:other.example.test" digitalSignature
run openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$TMP/server-rsa.key"
leaf server-rsa localhost "$SERVER_SAN" "digitalSignature, keyEncipherment"
cat "$TMP/server.crt" "$TMP/ca.crt" >"$TMP/server-chain.crt"

for f in "${FILES[@]}"; do
	case "$f" in
	*.key) chmod 600 "$TMP/$f" ;;
	*) chmod 644 "$TMP/$f" ;;
	esac
	mv -f "$TMP/$f" "$DIR/$f"
done
