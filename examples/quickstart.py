"""sshlib quick start: run a command, then drive an interactive shell.

Run it with `bash scripts/example.sh` (it installs sshd if needed and makes
the virtualenv).  So that it needs no existing SSH server, it starts a
throwaway OpenSSH server on 127.0.0.1 with sshlib.testing; everything after
that is plain sshlib client code you would point at a real host.  The
server's host keys are verified against a known_hosts file: no "ignore the
host key" shortcut.
"""

from __future__ import annotations

import re

import sshlib
from sshlib.testing import start_openssh

# Terminal control sequences (window title, bracketed paste, erase line), so
# the transcript prints readably.
_ESCAPES = re.compile(r"\x1b\][^\x07]*\x07|\x1b\[[0-9;?]*[A-Za-z]|\r(?=\n)")


def strip_escapes(text: str) -> str:
    return _ESCAPES.sub("", text)


def main() -> int:
    with start_openssh() as server:
        print(f"started a throwaway OpenSSH server on {server.address} "
              f"(log in as {server.user!r})")

        auth: list[sshlib.AuthMethod] = [
            sshlib.PublicKeys(sshlib.load_private_key(server.user_key_paths["ed25519-openssh"],
                                                      passphrase=None)),
        ]
        if server.password is not None:  # only when started with password=
            auth.append(sshlib.Password(server.password))
        cfg = sshlib.ClientConfig(
            user=server.user,
            auth=auth,
            # Reject any host key not in this known_hosts file.
            host_key_callback=sshlib.knownhosts.callback(server.known_hosts_path),
        )

        with sshlib.dial("tcp", server.address, cfg) as client:
            print(f"connected: kex={client.algorithms.kex} "
                  f"cipher={client.algorithms.cipher_client_to_server}")

            # 1. Run a command and read its output.
            with client.new_session() as s:
                out = s.output("uname -sr; echo hello from $(whoami)")
                print("command output:", out.decode().strip().replace("\n", " | "))
                print("exit status:", s.exit_status)

            # A non-zero exit status comes back as sshlib.ExitError.
            with client.new_session() as s:
                try:
                    s.output("exit 3")
                except sshlib.ExitError as e:
                    print(f"`exit 3` raised ExitError with exit status {e.exit_status}")

            # 2. An interactive shell on a pseudo-terminal, fed through stdin.
            s = client.new_session()
            s.request_pty("xterm", 24, 80)
            s.shell()
            s.stdin.write(b"echo shell says $((6 * 7))\n")
            s.stdin.write(b"exit\n")
            s.stdin.close()
            transcript = s.stdout.read()  # until the shell exits and the channel closes
            s.wait()
            print("--- interactive shell transcript (terminal escape codes removed) ---")
            print(strip_escapes(transcript.decode(errors="replace")).rstrip())
            print("--- end of transcript ---")
            print(f"shell exit status: {s.exit_status}")
            s.close()
    print("server stopped; done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
