#!/usr/bin/env bash
# Run the quick-start example: bash scripts/example.sh
#
# On a fresh Debian 12 machine: installs OpenSSH's server (the example starts
# a throwaway sshd on 127.0.0.1 with sshlib.testing, which runs it as you and
# needs no root itself; root is needed for the install), makes .venv with
# sshlib, then runs examples/quickstart.py.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/lib.sh

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
[ -x /usr/bin/ssh-keygen ] || missing+=(openssh-client)
[ -x /usr/bin/openssl ] || missing+=(openssl)
install_missing "the example" ${missing[@]+"${missing[@]}"}
# sshd run as root needs its privilege-separation directory (systemd makes it on a
# normal host; containers often lack it). As a normal user nothing is needed.
if is_root; then mkdir -p -m 755 /run/sshd; fi
venv_install . .sshlib-installed-base

run .venv/bin/python examples/quickstart.py
