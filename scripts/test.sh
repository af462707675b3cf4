#!/usr/bin/env bash
# The one test command: bash scripts/test.sh [pytest arguments...]
#
# On a fresh Debian 12 machine, as root: installs the SSH servers and clients
# the tests drive (openssh-server, openssh-client, dropbear-bin, openssl),
# makes .venv with sshlib and its test tools, then runs ruff, mypy and pytest.
# Arguments go to pytest, e.g. bash scripts/test.sh tests/test_servers.py -k dropbear
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\n==> %s\n' "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# Debian packages needed, by the file that proves each is installed.
declare -A NEED=(
  [/usr/sbin/sshd]=openssh-server
  [/usr/bin/ssh]=openssh-client
  [/usr/bin/ssh-keygen]=openssh-client
  [/usr/bin/sftp]=openssh-client
  [/usr/sbin/dropbear]=dropbear-bin
  [/usr/bin/dropbearkey]=dropbear-bin
  [/usr/bin/dropbearconvert]=dropbear-bin
  [/usr/bin/dbclient]=dropbear-bin
  [/usr/bin/openssl]=openssl
  [/usr/bin/ssh-agent]=openssh-client
  [/usr/bin/ssh-add]=openssh-client
  [/usr/bin/pageant]=putty
  [/usr/bin/puttygen]=putty-tools
  [/usr/bin/socat]=socat
)

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
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" || rc=$?
  fi
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  return "$rc"
}

say "system packages"
missing=()
for f in "${!NEED[@]}"; do
  [ -x "$f" ] || missing+=("${NEED[$f]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if is_root && command -v apt-get >/dev/null; then
    apt_install "${missing[@]}" || die "apt-get install ${missing[*]} failed"
  else
    die "missing ${missing[*]}; install as root with:
    apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  fi
else
  echo "openssh-server, openssh-client, dropbear-bin and openssl are installed"
fi
if ! is_root; then
  echo "warning: not root; password, keyboard-interactive and Dropbear tests will fail" >&2
fi

say "python environment (.venv)"
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
# Reinstall when pyproject.toml changed (the install is editable, so code
# changes need nothing).
stamp=.venv/.sshlib-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  run .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' \
    || die "pip install -e '.[test]' failed"
  echo "$want" > "$stamp"
else
  echo "sshlib and test tools already installed in .venv (pyproject.toml unchanged)"
fi
export PATH="$PWD/.venv/bin:$PATH"

failed=()

say "ruff"
run ruff check sshlib tests || failed+=(ruff)

say "mypy"
run mypy || failed+=(mypy)

say "pytest"
run pytest "$@"
rc=$?
case "$rc" in
  0) ;;
  5) echo "error: pytest collected no tests" >&2; failed+=("pytest (no tests collected)") ;;
  *) failed+=("pytest (exit $rc)") ;;
esac

if [ "${#failed[@]}" -gt 0 ]; then
  say "FAILED: ${failed[*]}"
  exit 1
fi
say "all checks passed"
