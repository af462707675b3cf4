#!/usr/bin/env bash
# Run the quick-start example: bash scripts/example.sh
#
# On a fresh Debian 12 machine: installs OpenSSH's server (the example starts
# a throwaway sshd on 127.0.0.1; root is needed for the install), makes .venv
# with sshlib, then runs examples/quickstart.py.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/lib.sh

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
[ -x /usr/bin/ssh-keygen ] || missing+=(openssh-client)
[ -x /usr/bin/openssl ] || missing+=(openssl)
install_missing "the example" ${missing[@]+"${missing[@]}"}
venv_install . .sshlib-installed-base

run .venv/bin/python examples/quickstart.py
