#!/usr/bin/env bash
# Build OpenSSH's sk-dummy FIDO middleware (regress/misc/sk-dummy, a software "security key"
# for tests) from Debian's openssh 9.2p1 source package, cached in ~/.cache/sshlib-sk-dummy.
# Prints the path of sk-dummy.so.  Used by scripts/test.sh and by tests/test_sk.py's set-up.
# The middleware API must match the ssh-keygen/ssh-agent that load it, hence 9.2p1 (Debian 12).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

VERSION=9.2p1
SHA256=3f66dbf1655fb45f50e1c56da62ab01218c228807b21338d634ebcdf9d71cf46  # openssh_9.2p1.orig.tar.gz
URL="https://deb.debian.org/debian/pool/main/o/openssh/openssh_${VERSION}.orig.tar.gz"
CACHE="${SSHLIB_SK_DUMMY_CACHE:-$HOME/.cache/sshlib-sk-dummy}/$VERSION"
OUT="$CACHE/sk-dummy.so"

if [ -f "$OUT" ]; then echo "$OUT"; exit 0; fi

missing=()
for tool in gcc make; do command -v "$tool" >/dev/null || missing+=("$tool"); done
for pkg in libssl-dev zlib1g-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
install_missing "building sk-dummy" "${missing[@]}" >&2

mkdir -p "$CACHE"
work="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
tarball="$CACHE/openssh_${VERSION}.orig.tar.gz"
if [ ! -f "$tarball" ] || ! echo "$SHA256  $tarball" | sha256sum -c --quiet - 2>/dev/null; then
  echo "downloading $URL" >&2
  python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
    "$URL" "$work/download"
  echo "$SHA256  $work/download" | sha256sum -c --quiet - || die "checksum mismatch for $URL"
  mv "$work/download" "$tarball"
fi
tar -xzf "$tarball" -C "$work"
(
  cd "$work/openssh-$VERSION"
  nice ./configure --without-pam --with-security-key-builtin=no >"$work/configure.log" 2>&1 \
    || { tail -30 "$work/configure.log" >&2; exit 1; }
  nice make -j2 -C openbsd-compat >"$work/make.log" 2>&1 \
    && nice make -j2 regress/misc/sk-dummy/sk-dummy.so >>"$work/make.log" 2>&1 \
    || { tail -30 "$work/make.log" >&2; exit 1; }
  cp regress/misc/sk-dummy/sk-dummy.so "$work/sk-dummy.so"
)
mv "$work/sk-dummy.so" "$OUT"
echo "$OUT"
