#!/usr/bin/env bash
# build-wolfssl.sh - builds mxgate's private wolfSSL: Debian's own source
# package (the version of the installed libwolfssl-dev, with Debian's
# patches and Debian's configure flags) plus AES-NI and the SP x86_64
# assembly, as a static PIC library installed in .deps/wolfssl. The
# Makefile links it instead of the system libwolfssl when this succeeds.
#
# Quick and silent when that build is current: .deps/wolfssl/.mxgate-stamp
# records the Debian source version, our configure flags and the compiler,
# and only a difference rebuilds. A rebuild goes to a staging folder and
# replaces the prefix only once it is installed and checked, so a failed
# one leaves the previous build alone.
#
# On failure (no network, no deb-src entry, a build error) exits 1 with one
# line on stderr; the full log is .deps/src/build.log. The Makefile then
# falls back to the system library, so CI never fails because of this.
#
# Usage: scripts/build-wolfssl.sh [--force]   (--force ignores the stamp)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DEPS=$ROOT/.deps
PREFIX=$DEPS/wolfssl
WORK=$DEPS/src
LOG=$WORK/build.log
STAMP_NAME=.mxgate-stamp

FORCE=0
case "${1-}" in
	"") ;;
	--force) FORCE=1 ;;
	*) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

die() { echo "build-wolfssl: $*" >&2; exit 1; }

# Our additions to Debian's flags. --enable-static/--disable-shared/--with-pic:
# a PIC archive links into mxgate's PIE binaries with no rpath and no
# second libwolfssl.so on the system. Bump SCRIPT_REV when the build steps
# change in a way that must rebuild existing prefixes.
OUR_FLAGS=(--enable-aesni --enable-intelasm --enable-sp --enable-sp-asm
	--enable-static --disable-shared --with-pic)
SCRIPT_REV=1
# Defines added to Debian's CPPFLAGS; options.h records them, so mxgate sees
# the same struct layouts. MAX_CHAIN_DEPTH 5 (wolfSSL's default is 9): each
# connection's session object carries two fixed peer-chain buffers of
# MAX_CHAIN_DEPTH x 2 KB (SESSION_CERTS and WOLFSSL_ALT_CERT_CHAINS, which
# Debian's --enable-distro forces on), 37 KB at 9, half an idle TLS
# connection's memory. Five certificates is more than a backend's chain needs
# (leaf, two intermediates, a cross-signed root); a longer one is refused.
OUR_CPPFLAGS="-DMAX_CHAIN_DEPTH=5"

# The version we build is the one the system library has, so that falling
# back to it (or back from it) changes only the build flags, and a Debian
# security update of libwolfssl-dev rebuilds ours too.
want=$(dpkg-query -W -f='${source:Version}' libwolfssl-dev 2>/dev/null || true)
# Built with Debian's cc like the package, whatever CC mxgate's make has
# (make CC=clang must not rebuild it); a new compiler rebuilds.
unset CC
cc_id=$( (cc --version 2>/dev/null || true) | head -n1)
key="version=${want:-any}
flags=${OUR_FLAGS[*]}
cppflags=$OUR_CPPFLAGS
cc=$cc_id
rev=$SCRIPT_REV"

mkdir -p "$DEPS"
# Two makes (make and make asan side by side) must not build at once.
# Opened read-only: flock needs no more, and a user who cannot write to a
# .deps that root built still gets the quick check.
[ -e "$DEPS/.wolfssl.lock" ] || : >"$DEPS/.wolfssl.lock"
exec 9<"$DEPS/.wolfssl.lock"
flock 9

stamp_key() {	# the stamp without its informational lines
	grep -v '^info:' "$1" 2>/dev/null || true
}
current() {
	[ -f "$PREFIX/lib/libwolfssl.a" ] &&
	grep -q '^#define WOLFSSL_AESNI' "$PREFIX/include/wolfssl/options.h" 2>/dev/null &&
	[ -f "$PREFIX/$STAMP_NAME" ] || return 1
	if [ -z "$want" ]; then	# libwolfssl-dev not installed: any version will do
		[ "$(stamp_key "$PREFIX/$STAMP_NAME" | grep -v '^version=')" = "$(grep -v '^version=' <<<"$key")" ]
	else
		[ "$(stamp_key "$PREFIX/$STAMP_NAME")" = "$key" ]
	fi
}
if [ "$FORCE" = 0 ] && current; then
	exit 0
fi

start=$SECONDS
SUDO=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || die "need root or sudo for apt-get"
	SUDO="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh tree every time; downloaded files stay (apt-get source reuses them).
mkdir -p "$WORK"
find "$WORK" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
: >"$LOG"
echo "build-wolfssl: building wolfSSL ${want:-(newest)} with AES-NI into .deps/wolfssl (about a minute; log in .deps/src/build.log)" >&2

# --- Debian source: a deb-src twin of every enabled deb822 "Types: deb"
# stanza, in a file of our own, unless some deb-src entry exists already.
SRC_FILE=/etc/apt/sources.list.d/mxgate-deb-src.sources
have_deb_src() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] && grep -Eq '^[[:space:]]*deb-src[[:space:]]' "$f" && return 0
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# a stanza with deb-src in Types and not Enabled: no
		awk 'BEGIN { RS = ""; found = 0 }
			/(^|\n)Types:[^\n]*deb-src/ && !/(^|\n)Enabled:[ \t]*no/ { found = 1 }
			END { exit !found }' "$f" && return 0
	done
	return 1
}
if ! have_deb_src; then
	src_text=$(for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && [ "$f" != "$SRC_FILE" ] && cat "$f" && echo
	done | awk 'BEGIN { RS = ""; ORS = "\n\n" }
		# keep enabled binary stanzas; comments go, Types becomes deb-src
		/(^|\n)Types:[^\n]*(^|[ \t])deb([ \t]|\n|$)/ && !/(^|\n)Enabled:[ \t]*no/ {
			out = ""
			n = split($0, line, "\n")
			for (i = 1; i <= n; i++) {
				if (line[i] ~ /^#/) continue
				if (line[i] ~ /^Types:/) line[i] = "Types: deb-src"
				out = out line[i] "\n"
			}
			printf "%s\n", out
		}')
	[ -n "$src_text" ] || die "no deb822 'Types: deb' entry in /etc/apt/sources.list.d/*.sources to derive a deb-src entry from"
	printf '# Written by mxgate scripts/build-wolfssl.sh: source packages for apt-get source.\n%s\n' "$src_text" |
		$SUDO tee "$SRC_FILE.tmp" >/dev/null || die "cannot write $SRC_FILE"
	$SUDO mv -f "$SRC_FILE.tmp" "$SRC_FILE"
fi
# Short timeouts: offline, every make would otherwise wait for apt.
APT_NET=(-o Acquire::http::Timeout=15 -o Acquire::https::Timeout=15 -o Acquire::Retries=1)
$SUDO apt-get update -q "${APT_NET[@]}" </dev/null >>"$LOG" 2>&1 || die "apt-get update failed (no network?)"

# autoreconf (the source package has no configure script), dpkg-source and
# dpkg-buildflags.
tools=()
for p in autoconf automake libtool dpkg-dev; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	[[ "$status" == ii* ]] || tools+=("$p")
done
if [ ${#tools[@]} -ne 0 ]; then
	$SUDO apt-get install -y -q --no-install-recommends "${tools[@]}" </dev/null >>"$LOG" 2>&1 ||
		die "cannot install ${tools[*]}"
fi
if ! command -v cc >/dev/null || ! command -v make >/dev/null; then
	die "no cc or make; run scripts/install-deps.sh"
fi

cd "$WORK"
# As root apt drops to _apt for downloads, which cannot write here.
APT_SRC=(apt-get source -q "${APT_NET[@]}")
[ "$(id -u)" -eq 0 ] && APT_SRC+=(-o APT::Sandbox::User=root)
if [ -n "$want" ] && "${APT_SRC[@]}" "wolfssl=$want" </dev/null >>"$LOG" 2>&1; then
	:
else
	# That exact version is gone from the mirror: take the newest.
	"${APT_SRC[@]}" wolfssl </dev/null >>"$LOG" 2>&1 ||
		die "cannot fetch Debian's wolfssl source (apt-get source wolfssl failed; no network or no deb-src?)"
fi
srcdir=$(find "$WORK" -mindepth 2 -maxdepth 2 -path '*/wolfssl-*/debian' -type d | head -n1)
[ -n "$srcdir" ] || die "apt-get source left no wolfssl-*/debian folder"
srcdir=${srcdir%/debian}
got=$(cd "$srcdir" && dpkg-parsechangelog -S Version 2>/dev/null || echo unknown)
cd "$srcdir"

# Debian's configure flags, from debian/rules' override_dh_auto_configure
# ("dh_auto_configure -- --enable-distro --enable-pkcs11 ..." in 5.5.4-2).
mapfile -t DEBIAN_FLAGS < <(awk '
	/^override_dh_auto_configure:/ { inrule = 1; next }
	inrule && /^[^\t#]/ { inrule = 0 }
	inrule { for (i = 1; i <= NF; i++) if ($i ~ /^--[a-z]/) print $i }' debian/rules)
[[ " ${DEBIAN_FLAGS[*]} " == *" --enable-distro "* ]] ||
	die "debian/rules of wolfssl $got has no --enable-distro any more; check the flags"

# Debian's compiler flags (debian/rules exports hardening=+all).
eval "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --export=sh)"
export CPPFLAGS="${CPPFLAGS:-} $OUR_CPPFLAGS"
# Our own make's command-line variables (BUILD=, V=, SAN=...) must not
# reach wolfSSL's configure and make through the environment.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES BUILD OPT SAN V EXTRA_CFLAGS LIBS

autoreconf -fi >>"$LOG" 2>&1 || die "autoreconf failed (see .deps/src/build.log)"
./configure --prefix="$PREFIX" --disable-dependency-tracking \
	"${DEBIAN_FLAGS[@]}" "${OUR_FLAGS[@]}" >>"$LOG" 2>&1 ||
	die "configure failed (see .deps/src/build.log)"
# --enable-distro sets enable_shared=yes after the options are read, so
# --disable-shared is ignored and libtool would compile every file twice
# (once for the .so we do not want): half the build time. Turn the shared
# half off in the generated libtool script.
sed -i 's/^build_libtool_libs=yes$/build_libtool_libs=no/' libtool
grep -q '^build_libtool_libs=no$' libtool || die "could not turn off the shared build in libtool"

# The library only: wolfcrypt's test and benchmark programs are not needed.
make -j"$(nproc)" src/libwolfssl.la >>"$LOG" 2>&1 || die "make failed (see .deps/src/build.log)"

STAGE=$DEPS/stage
rm -rf "$STAGE"
make DESTDIR="$STAGE" install-libLTLIBRARIES install-includeHEADERS \
	install-nobase_includeHEADERS install-pkgconfigDATA >>"$LOG" 2>&1 ||
	die "make install failed (see .deps/src/build.log)"
staged=$STAGE$PREFIX
# --enable-distro does not install options.h (it differs between
# architectures); without it programs would pick up the system one, whose
# settings (and so struct layouts) differ from this build.
install -m 644 wolfssl/options.h "$staged/include/wolfssl/options.h"
grep -q '^#define WOLFSSL_AESNI' "$staged/include/wolfssl/options.h" ||
	die "the built options.h does not define WOLFSSL_AESNI"
grep -q '^#define MAX_CHAIN_DEPTH 5' "$staged/include/wolfssl/options.h" ||
	die "the built options.h does not record MAX_CHAIN_DEPTH"
rm -f "$staged/lib/libwolfssl.la"	# libtool's; nothing here uses libtool

# Smoke test: compiles against the staged headers, links the archive, runs.
cat >"$WORK/smoke.c" <<'EOF'
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#ifndef WOLFSSL_AESNI
#error no AES-NI
#endif
int main(void) { return wolfSSL_Init() == WOLFSSL_SUCCESS && wolfSSL_Cleanup() == WOLFSSL_SUCCESS ? 0 : 1; }
EOF
if ! cc -I"$staged/include" -o "$WORK/smoke" "$WORK/smoke.c" "$staged/lib/libwolfssl.a" \
	-lpthread -ldl -lm >>"$LOG" 2>&1 || ! "$WORK/smoke"; then
	die "the built library fails a smoke test (see .deps/src/build.log)"
fi

printf '%s\ninfo: built=%s configure=%s\n' "$key" "$got" \
	"${DEBIAN_FLAGS[*]} ${OUR_FLAGS[*]} CPPFLAGS+=$OUR_CPPFLAGS" >"$staged/$STAMP_NAME"
rm -rf "$PREFIX.old"
[ -d "$PREFIX" ] && mv "$PREFIX" "$PREFIX.old"
mv "$staged" "$PREFIX"
rm -rf "$PREFIX.old" "$STAGE"
# The unpacked tree is 150 MB; keep the downloaded files and the log.
cd "$WORK" && rm -rf "$srcdir" smoke smoke.c
echo "build-wolfssl: wolfSSL $got (AES-NI, SP asm) installed in .deps/wolfssl in $((SECONDS - start)) s" >&2
