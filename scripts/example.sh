#!/usr/bin/env bash
# Run the quick-start example: bash scripts/example.sh
#
# On a fresh Debian 12 machine: installs OpenSSH's server (the example starts
# a throwaway sshd on 127.0.0.1; root is needed for the install), makes .venv
# with sshlib, then runs examples/quickstart.py.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

run() { printf '+ %s\n' "$*"; "$@"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
  # Never let a package start a system service (openssh-server would start an
  # sshd on port 22): policy-rc.d says "no" for the length of the install.
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  run apt-get update -q || rc=$?
  if [ "$rc" = 0 ]; then
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
      || rc=$?
  fi
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  return "$rc"
}

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
[ -x /usr/bin/ssh-keygen ] || missing+=(openssh-client)
[ -x /usr/bin/openssl ] || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
  if is_root && command -v apt-get >/dev/null; then
    apt_install "${missing[@]}" || die "apt-get install ${missing[*]} failed"
  else
    die "the example needs ${missing[*]}; install as root with:
    apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  fi
fi

command -v python3 >/dev/null || { is_root && apt_install python3 python3-venv; } \
  || die "python3 is missing: apt-get install -y python3 python3-venv"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
  rm -rf .venv
  if ! run python3 -m venv .venv; then
    rm -rf .venv
    { is_root && apt_install python3-venv && run python3 -m venv .venv; } \
      || die "could not create .venv: apt-get install -y python3-venv"
  fi
fi
stamp=.venv/.sshlib-installed-base
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  run .venv/bin/python -m pip install -q --disable-pip-version-check -e . \
    || die "pip install -e . failed"
  echo "$want" > "$stamp"
fi

run .venv/bin/python examples/quickstart.py
