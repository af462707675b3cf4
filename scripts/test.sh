#!/usr/bin/env bash
# The one test command: bash scripts/test.sh [pytest arguments...]
#
# On a fresh Debian 12 machine, as root: installs the SSH servers and clients
# the tests drive (openssh-server, openssh-client, dropbear-bin, openssl, putty,
# putty-tools, socat, libnss-wrapper) and the Windows test tools (wine, wine64,
# xvfb, mingw-w64 for a tiny DLL shim; see docs/testing.md),
# makes .venv with sshlib and its test tools, then runs ruff, mypy and pytest;
# then pytest again on Python 3.10 and 3.13 (.venv-3.10, .venv-3.13; see below).
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
  [/usr/bin/dot]=graphviz
  [/usr/bin/chromium]=chromium
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
# A private passwd entry for tests of OpenSSH's ~ (a library, not executable: not in NEED).
[ -e /usr/lib/x86_64-linux-gnu/libnss_wrapper.so ] ||
  install_missing "the agent discovery tests" libnss-wrapper
if ! is_root; then
  echo "warning: not root; password, keyboard-interactive and Dropbear tests will fail" >&2
fi

# tests/test_agent_vsock.py talks to itself over vsock where the kernel has the loopback
# transport; best effort (containers and VMs without loadable modules cannot load it).
if is_root && command -v modprobe >/dev/null; then
  modprobe vsock_loopback 2>/dev/null || echo "note: vsock_loopback not loadable here"
fi

say "python environment (.venv)"
venv_install '.[test,docs]' .sshlib-installed
export PATH="$PWD/.venv/bin:$PATH"

failed=()

say "private OpenSSH peers (10.0, newest >= 10.3; the system's 9.2 stays)"
# Cached in ~/.cache/sshlib-openssh; tests/peers.py finds them (scripts/openssh-peers.sh).
run bash scripts/openssh-peers.sh || failed+=("openssh peers")

say "ruff"
run ruff check sshlib tests || failed+=(ruff)

say "mypy"
run mypy || failed+=(mypy)
# The Windows agent channels only run on Windows: type-check them as Windows sees them.
run mypy --platform win32 || failed+=("mypy --platform win32")
# The benchmarks, strict on both platforms too, in two runs: the top-level scripts import
# each other as benchmarks.*, the client scripts import _common from their own directory.
for platform in linux win32; do
  run mypy --strict --platform "$platform" --explicit-package-bases benchmarks/*.py ||
    failed+=("mypy --platform $platform benchmarks")
  run mypy --strict --platform "$platform" benchmarks/clients ||
    failed+=("mypy --platform $platform benchmarks/clients")
done

say "sk-dummy (software FIDO key for the sk- tests)"
run bash scripts/sk-dummy.sh || failed+=(sk-dummy)

say "pytest"
run pytest "$@"
rc=$?
case "$rc" in
  0) ;;
  5) echo "error: pytest collected no tests" >&2; failed+=("pytest (no tests collected)") ;;
  *) failed+=("pytest (exit $rc)") ;;
esac

# The oldest and newest Pythons pyproject.toml claims (requires-python >= 3.10), besides
# python3 above.  Without arguments they run the suite minus what does not depend on
# the host Python: the Wine tests (Windows CPython), the benchmark harness, the tests
# of the test servers themselves (test_testing_unprivileged.py runs a system Python of
# the suite's version as another user), the docs site and its checks (the docs extra is
# installed in .venv only), and the algorithm products and big transfers (every
# algorithm still runs once per peer in test_interop_openssh_versions.py); with
# arguments, those same pytest arguments.  SSHLIB_TEST_PYTHONS="" skips.
PORTABLE=(tests
  --ignore=tests/test_agent_windows.py --ignore=tests/test_agent_bridge_windows.py
  --ignore=tests/test_benchmark_harness.py --ignore=tests/test_servers.py
  --ignore=tests/test_testing_unprivileged.py
  --ignore=tests/test_channelmap.py --ignore=tests/test_docs_api.py
  --ignore=tests/test_docs_site.py --ignore=tests/test_docs_examples.py
  --deselect tests/test_interop_openssh.py::test_every_algorithm_combination_handshakes
  --deselect tests/test_interop_openssh.py::test_exec_with_each_kex_and_host_key
  --deselect tests/test_interop_openssh.py::test_32_mib_round_trip_per_cipher
  --deselect tests/test_interop_openssh.py::test_client_initiated_rekey_mid_2gib_transfer
  --deselect tests/test_interop_dropbear.py::test_every_algorithm_combination)
for version in ${SSHLIB_TEST_PYTHONS-3.10 3.13}; do
  say "pytest on Python $version (.venv-$version)"
  if ! python="$(find_python "$version")"; then
    echo "error: no Python $version (looked in ~/.pyenv/versions and PATH);" \
         "install it, e.g. pyenv install $version" >&2
    failed+=("python $version missing")
    continue
  fi
  if ! venv_at ".venv-$version" "$python" '.[test]'; then
    failed+=("venv $version")
    continue
  fi
  if [ "$#" -gt 0 ]; then args=("$@"); else args=("${PORTABLE[@]}"); fi
  run ".venv-$version/bin/python" -m pytest "${args[@]}" || failed+=("pytest on $version")
done

if [ "${#failed[@]}" -gt 0 ]; then
  say "FAILED: ${failed[*]}"
  exit 1
fi
say "all checks passed"
