"""sshlib.testing, the library's test-server helper, run by an unprivileged user.

Run as root (as CI does), these tests drop to the harness's unprivileged
``sshlibtest`` account with runuser; run as a normal user they run as you.
Either way the process that calls sshlib.testing.start_openssh has no root,
which is the case the library promises to support.  The server is checked
with OpenSSH's own ``ssh`` (not sshlib), and the README's quick start runs
as that user too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import servers

ROOT = Path(__file__).resolve().parent.parent


def _unprivileged(argv: list[str]) -> list[str]:
    """argv run as an unprivileged account: the test account when we are root, else as is."""
    if os.geteuid() != 0:
        return argv
    user, _ = servers.ensure_test_account()
    return ["runuser", "-u", user, "--", *argv]


def _python() -> list[str]:
    """A Python the unprivileged user can run, seeing this checkout and .venv's packages.

    The venv's interpreter may live where only root can read (a pyenv build
    under /root); then the system Python of the same version is used, with
    the venv's site-packages on PYTHONPATH.
    """
    path = f"PYTHONPATH={ROOT}:{sysconfig.get_paths()['purelib']}"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for python in (sys.executable, f"/usr/bin/python{version}"):
        argv = ["env", path, python]
        probe = subprocess.run(_unprivileged([*argv, "-c", "import sshlib.testing"]),
                               capture_output=True, text=True, cwd="/", check=False)
        if probe.returncode == 0:
            return argv
    raise AssertionError(f"no Python {version} that an unprivileged user can run with sshlib "
                         f"(tried {sys.executable} and /usr/bin/python{version}): "
                         f"{probe.stderr[-2000:]}")


def _run_unprivileged(script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_unprivileged([*_python(), "-c", textwrap.dedent(script)]),
                          capture_output=True, text=True, cwd="/", timeout=timeout, check=False)


def test_start_openssh_as_a_normal_user_lets_openssh_ssh_in_with_a_key() -> None:
    done = _run_unprivileged("""
        import os, subprocess
        from sshlib import testing
        assert os.geteuid() != 0
        with testing.start_openssh() as srv:
            assert srv.host == "127.0.0.1" and srv.port > 0 and srv.password is None
            out = subprocess.run(
                ["ssh", "-F", "none", "-p", str(srv.port), "-l", srv.user,
                 "-i", str(srv.user_key_paths["ed25519-openssh"]), "-o", "BatchMode=yes",
                 "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
                 "-o", f"UserKnownHostsFile={srv.known_hosts_path}",
                 "-o", "GlobalKnownHostsFile=/dev/null", srv.host, "id -un"],
                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            print("login-as", out.stdout.strip(), "me", srv.user, "rc", out.returncode)
            print(out.stderr[-1500:])
            workdir = srv.workdir
        print("workdir-removed", not workdir.exists())
    """)
    assert done.returncode == 0, done.stdout + done.stderr
    first = done.stdout.splitlines()[0].split()
    assert first[0] == "login-as" and first[1] == first[3] and first[5] == "0", done.stdout
    assert first[1] != "root"
    assert "workdir-removed True" in done.stdout


def test_start_openssh_as_a_normal_user_refuses_another_login_user() -> None:
    done = _run_unprivileged("""
        from sshlib import testing
        try:
            testing.start_openssh(user="root")
        except RuntimeError as e:
            print("refused:", e)
    """)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "refused:" in done.stdout and "only root's sshd can switch users" in done.stdout


def test_sshlib_client_against_start_openssh_as_a_normal_user() -> None:
    """What the README offers users testing their own code, without root: sshlib against it."""
    done = _run_unprivileged("""
        import sshlib
        from sshlib import testing
        with testing.start_openssh() as srv:
            key = sshlib.load_private_key(srv.user_key_paths["rsa-openssh-encrypted"],
                                          passphrase=srv.user_key_passphrase)
            cfg = sshlib.ClientConfig(
                user=srv.user, auth=[sshlib.PublicKeys(key)],
                host_key_callback=sshlib.knownhosts.callback(srv.known_hosts_path))
            with sshlib.dial("tcp", srv.address, cfg) as client:
                with client.new_session() as s:
                    print("whoami", s.output("id -un").decode().strip(), srv.user)
    """)
    assert done.returncode == 0, done.stdout + done.stderr
    words = done.stdout.split()
    assert words[0] == "whoami" and words[1] == words[2] != "root", done.stdout


def test_quickstart_example_runs() -> None:
    """examples/quickstart.py as scripts/example.sh runs it (as root in CI, pty shell included).

    Not as an unprivileged user: an sshd that is not root cannot hand out a
    pty where devpts is mounted without gid=5 (as in this container), see
    docs/testing.md.
    """
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # as scripts/example.sh does
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")],
                          capture_output=True, text=True, cwd="/", timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "shell says 42" in done.stdout and "server stopped; done" in done.stdout


def test_the_harness_takes_its_packages_from_scripts_test_sh() -> None:
    need = servers.debian_packages()
    assert need["/usr/sbin/sshd"] == "openssh-server"
    assert need["/usr/bin/dbclient"] == "dropbear-bin"
    assert set(servers.SERVER_TOOLS) <= set(need), "every server tool needs a NEED line"
    servers.ensure_tools()  # all there (scripts/test.sh installed them)
    try:
        servers.ensure_tools("/usr/bin/no-such-ssh-tool")
    except RuntimeError as e:
        assert "bash scripts/test.sh" in str(e) and "no-such-ssh-tool" in str(e)
    else:
        raise AssertionError("a missing tool must fail loudly")
