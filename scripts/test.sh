#!/usr/bin/env bash
# The one test command: bash scripts/test.sh [pytest arguments...]
#
# On a fresh Debian 12 machine, as root: installs the SSH servers and clients
# the tests drive (openssh-server, openssh-client, dropbear-bin, openssl, putty,
# putty-tools, socat, libnss-wrapper) and the Windows test tools (wine, wine64,
# xvfb, mingw-w64 for a tiny DLL shim; see docs/testing.md),
# makes .venv with sshlib and its test tools, then runs ruff, mypy and pytest.
# Arguments go to pytest, e.g. bash scripts/test.sh tests/test_servers.py -k dropbear
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\n==> %s\n' "$*"; }
source scripts/lib.sh

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
  [/usr/bin/curl]=curl
  [/usr/bin/wine]=wine
  [/usr/lib/wine/wine64]=wine64
  [/usr/bin/Xvfb]=xvfb
  [/usr/bin/x86_64-w64-mingw32-gcc]=gcc-mingw-w64-x86-64-win32
)
# Libraries, not programs (the loop below checks -x): present is enough.
declare -A NEED_FILES=(
  # ssh -G against a private HOME: ssh reads ~ from passwd (tests/sshg.py)
  [/usr/lib/x86_64-linux-gnu/libnss_wrapper.so]=libnss-wrapper
)

say "system packages"
missing=()
for f in "${!NEED[@]}"; do
  [ -x "$f" ] || missing+=("${NEED[$f]}")
done
for f in "${!NEED_FILES[@]}"; do
  [ -e "$f" ] || missing+=("${NEED_FILES[$f]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  install_missing "the test suite" "${missing[@]}"
else
  echo "all test peers are installed"
fi
if ! is_root; then
  echo "warning: not root; password, keyboard-interactive and Dropbear tests will fail" >&2
fi

say "python environment (.venv)"
venv_install '.[test]' .sshlib-installed
export PATH="$PWD/.venv/bin:$PATH"

failed=()

say "ruff"
run ruff check sshlib tests || failed+=(ruff)

say "mypy"
run mypy || failed+=(mypy)
# The Windows agent channels only run on Windows: type-check them as Windows sees them.
run mypy --platform win32 || failed+=("mypy --platform win32")

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
