#!/usr/bin/env bash
# Private OpenSSH peers for the tests, next to (never instead of) the system's 9.2:
#
#   ~/.cache/sshlib-openssh/10.0p1/   OpenSSH 10.0 from bookworm-backports: the
#                                     binary packages, apt-get download + dpkg -x
#   ~/.cache/sshlib-openssh/10.3p1/   the newest OpenSSH >= 10.3 Debian sid lists
#                                     whose upstream tarball is served, built with
#                                     ./configure --without-pam into that prefix
#   ~/.cache/sshlib-openssh/newest -> 10.3p1 (say)
#
# Every version directory has bin/{ssh,ssh-agent,ssh-add,ssh-keygen},
# sbin/sshd and libexec/{sshd-session,sshd-auth,sftp-server}, and a file
# `version` once complete.  apt runs with a private configuration in
# ~/.cache/sshlib-openssh/apt (its own sources list, lists and archives), so
# the system's apt sources, lists and packages are never changed.  Downloads
# are checked: .debs by apt against the signed Release files, the tarball
# against the sha256 in sid's signed Sources index.  A later run reuses the
# cache; it looks again for a newer sid version once the lists are a day old.
#
# Usage: bash scripts/openssh-peers.sh        (prints the version directories)
# Environment: SSHLIB_OPENSSH_CACHE (default ~/.cache/sshlib-openssh).
# Build needs: gcc make libssl-dev zlib1g-dev (installed as root if missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh
say() { printf '\n==> %s\n' "$*"; }

CACHE="${SSHLIB_OPENSSH_CACHE:-$HOME/.cache/sshlib-openssh}"
MIRROR="http://deb.debian.org/debian"
MIN_NEWEST="10.3"   # the first release with RFC 9987's agent-forwarding names
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"

# One run at a time (tests may call this script while test.sh does).
exec 9>"$CACHE/.lock"
flock 9

APT_DIR="$CACHE/apt"
APT_OPTS=(
  -o "Dir::Etc::SourceList=$APT_DIR/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::Etc::Preferences=/dev/null"
  -o "Dir::Etc::PreferencesParts=/dev/null"
  -o "Dir::State::Lists=$APT_DIR/lists"
  -o "Dir::Cache=$APT_DIR/cache"
  -o "APT::Sandbox::User=$(id -un)"
  -o "Debug::NoLocking=1"
)

apt_private_update() {
  mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
  cat > "$APT_DIR/sources.list" <<EOF
deb $MIRROR bookworm-backports main
deb-src $MIRROR sid main
EOF
  local stamp="$APT_DIR/updated"
  if [ -f "$stamp" ] && [ -z "$(find "$stamp" -mmin +1440)" ]; then
    return 0
  fi
  run apt-get "${APT_OPTS[@]}" -q update && touch "$stamp"
}

# link_layout DIR SRC_BIN SRC_SBIN SRC_LIBEXEC : the uniform bin/sbin/libexec view.
link_layout() {
  local dir="$1" bin="$2" sbin="$3" libexec="$4" t
  mkdir -p "$dir/bin" "$dir/sbin" "$dir/libexec"
  for t in ssh ssh-agent ssh-add ssh-keygen ssh-keyscan scp sftp; do
    ln -sfn "$bin/$t" "$dir/bin/$t"
  done
  ln -sfn "$sbin/sshd" "$dir/sbin/sshd"
  for t in sshd-session sshd-auth sftp-server; do
    ln -sfn "$libexec/$t" "$dir/libexec/$t"
  done
}

check_runs() {  # check_runs DIR VERSION : the tools start and say the right version
  local out
  out="$("$1/bin/ssh" -V 2>&1)" || die "$1/bin/ssh -V failed: $out"
  case "$out" in
    OpenSSH_"$2"*) ;;
    *) die "$1/bin/ssh -V says '$out', expected OpenSSH_$2" ;;
  esac
  for t in bin/ssh bin/ssh-agent bin/ssh-add bin/ssh-keygen sbin/sshd libexec/sshd-session; do
    [ -x "$1/$t" ] || die "$1/$t is missing"
  done
}

# --- OpenSSH 10.0 from bookworm-backports ----------------------------------------------------
backports_10_0() {
  local dir="$CACHE/10.0p1"
  if [ -f "$dir/version" ]; then return 0; fi
  say "OpenSSH 10.0 from bookworm-backports into $dir"
  apt_private_update || die "apt-get update (private lists in $APT_DIR) failed"
  rm -rf "$dir" "$dir.tmp"
  mkdir -p "$dir.tmp/debs"
  (cd "$dir.tmp/debs" && run apt-get "${APT_OPTS[@]}" -q download \
      openssh-client/bookworm-backports openssh-server/bookworm-backports \
      openssh-sftp-server/bookworm-backports) || die "apt-get download of OpenSSH 10.0 failed"
  local deb
  for deb in "$dir.tmp"/debs/*.deb; do
    dpkg-deb -x "$deb" "$dir.tmp/root"
  done
  rm -rf "$dir.tmp/debs"
  mv "$dir.tmp" "$dir"
  # The Debian binaries look for sshd-session/sshd-auth in /usr/lib/openssh (the system's
  # 9.2 has none); tests pass SshdSessionPath/SshdAuthPath pointing at libexec/ here.
  link_layout "$dir" "$dir/root/usr/bin" "$dir/root/usr/sbin" "$dir/root/usr/lib/openssh"
  check_runs "$dir" 10.0
  echo "10.0p1 debian-backports" > "$dir/version"
}

# --- the newest OpenSSH >= 10.3 from Debian sid's source package ------------------------------
# sid_versions : "UPSTREAM FILE SHA256" lines from sid's Sources, newest first.
sid_versions() {
  apt-cache "${APT_OPTS[@]}" showsrc openssh 2>/dev/null | awk '
    /^Package: / { pkg = $2 }
    /^Version: / { ver = $2; sub(/^[0-9]+:/, "", ver); sub(/-[^-]*$/, "", ver) }
    /^Checksums-Sha256:/ { insha = 1; next }
    /^[^ ]/ { insha = 0 }
    insha && pkg == "openssh" && $3 ~ /\.orig\.tar\.(gz|xz)$/ { print ver, $3, $1 }
  ' | sort -u | sort -t' ' -k1,1 -V -r
}

build_newest() {
  local ver file sha dir src have=""
  apt_private_update || echo "warning: apt-get update failed; using the cache only" >&2
  while read -r ver file sha; do
    [ -n "$ver" ] || continue
    if [ "$(printf '%s\n%s\n' "$MIN_NEWEST" "$ver" | sort -V | head -1)" != "$MIN_NEWEST" ]; then
      continue  # older than 10.3
    fi
    dir="$CACHE/$ver"
    if [ -f "$dir/version" ]; then have="$ver"; break; fi
    say "OpenSSH $ver from Debian sid's source package ($file)"
    src="$CACHE/src/$ver"
    rm -rf "$src" "$dir"
    mkdir -p "$src"
    if ! curl -fsSL --retry 2 -m 300 -o "$src/$file" "$MIRROR/pool/main/o/openssh/$file"; then
      echo "$file is not served (yet); trying the next version" >&2
      rm -rf "$src"
      continue
    fi
    if [ "$(sha256sum "$src/$file" | cut -d' ' -f1)" != "$sha" ]; then
      echo "$file: sha256 differs from sid's Sources; not building it" >&2
      rm -rf "$src"
      continue
    fi
    tar -xf "$src/$file" -C "$src" --strip-components=1
    if ! (cd "$src" &&
          run ./configure -q --prefix="$dir" --sysconfdir="$dir/etc" --without-pam \
              --with-privsep-path=/run/sshd --with-privsep-user=sshd >"$src/configure.log" 2>&1 &&
          run nice make -s -j2 >"$src/make.log" 2>&1 &&
          run make -s install-nokeys >"$src/install.log" 2>&1); then
      tail -30 "$src"/*.log >&2
      echo "building OpenSSH $ver failed; trying the next version" >&2
      rm -rf "$dir"
      continue
    fi
    # Keep the source, not the objects, so people can read what this version does.
    rm -f "$src/$file"
    make -C "$src" -s clean >/dev/null 2>&1 || true
    chmod -R u-s,g-s "$dir"  # no set-uid ssh-keysign in a cache directory
    check_runs "$dir" "${ver%p*}"
    echo "$ver built-from-sid-source --without-pam" > "$dir/version"
    have="$ver"
    break
  done < <(sid_versions)
  if [ -z "$have" ]; then
    # Offline, or nothing new buildable: the newest complete one already in the cache.
    have="$(cached_versions | tail -1)"
  fi
  [ -n "$have" ] || die "no OpenSSH >= $MIN_NEWEST could be fetched and built (see above)"
  ln -sfn "$have" "$CACHE/newest"
}

cached_versions() {  # complete cached versions >= MIN_NEWEST, oldest first
  local v
  for v in "$CACHE"/*/version; do
    [ -f "$v" ] || continue
    v="$(basename "$(dirname "$v")")"
    [ "$(printf '%s\n%s\n' "$MIN_NEWEST" "$v" | sort -V | head -1)" = "$MIN_NEWEST" ] && echo "$v"
  done | sort -V
}

need_build_tools() {
  local missing=()
  command -v gcc >/dev/null || missing+=(gcc)
  command -v make >/dev/null || missing+=(make)
  command -v curl >/dev/null || missing+=(curl)
  [ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
  [ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)
  install_missing "building OpenSSH" "${missing[@]}"
}

need_build_tools
backports_10_0
build_newest
for d in "$CACHE/10.0p1" "$CACHE/newest"; do
  printf '%s: %s\n' "$(basename "$d")" "$(cat "$d/version")"
done
