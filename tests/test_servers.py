"""The test servers themselves, proven with the real OpenSSH and Dropbear clients.

These tests use no sshlib client code: if they pass, a failure elsewhere in
the suite against the same fixtures is sshlib's fault, not the fixture's.
Password and keyboard-interactive logins need root (the sshlibtest account);
as a normal user those tests fail with a message saying so.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import servers as testing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from servers import TestServer

if TYPE_CHECKING:
    from conftest import DropbearFactory, OpenSSHFactory

# ssh 9.2 cannot read Ed25519 keys in PKCS#8 (checked separately below).
SSH_LOADABLE_KEYS = [n for n in testing.USER_KEY_NAMES if not n.startswith("ed25519-pkcs8")]

OPENSSH_HOST_KEY_ALGORITHMS = testing.OPENSSH_ALGORITHMS["host_key"]
DROPBEAR_HOST_KEY_ALGORITHMS = testing.DROPBEAR_ALGORITHMS["host_key"]


@pytest.fixture(scope="session")
def askpass(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SSH_ASKPASS program answering every prompt with $SSHLIB_TEST_SECRET."""
    path = tmp_path_factory.mktemp("askpass") / "askpass.sh"
    path.write_text('#!/bin/sh\nprintf "%s\\n" "$SSHLIB_TEST_SECRET"\n')
    path.chmod(0o700)
    return path


def run(args: Sequence[str], *, env: Mapping[str, str] | None = None, stdin: bytes = b"",
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a client without a controlling terminal, so it can never prompt on one."""
    full_env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    full_env.update(env or {})
    done = subprocess.run(list(args), input=stdin, capture_output=True, env=full_env,
                          timeout=timeout, start_new_session=True, check=False)
    return subprocess.CompletedProcess(done.args, done.returncode,
                                       done.stdout.decode(errors="replace"),
                                       done.stderr.decode(errors="replace"))


def ssh(server: TestServer, *options: str, key: str | None = None,
        remote: Sequence[str] = ("echo", "ok"), known_hosts: Path | None = None,
        secret: str | None = None, askpass: Path | None = None, tty: bool = False,
        stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    """Real OpenSSH `ssh` against `server` with strict host key checking.

    `options` come first (ssh keeps the first value given for an option).
    With `secret`, every password/passphrase prompt is answered via SSH_ASKPASS.
    """
    args = ["ssh", "-F", "/dev/null"]
    for opt in options:
        args += ["-o", opt]
    if key is not None:
        args += ["-i", str(server.user_key_paths[key])]
    args += ["-o", f"UserKnownHostsFile={known_hosts or server.known_hosts_path}",
             "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
             "-o", "UpdateHostKeys=no", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
             "-o", "ConnectTimeout=20", "-o", "NumberOfPasswordPrompts=1",
             "-o", "LogLevel=ERROR"]
    env: dict[str, str] = {}
    if secret is None:
        args += ["-o", "BatchMode=yes"]
    else:
        assert askpass is not None
        env = {"SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force",
               "SSHLIB_TEST_SECRET": secret}
    if tty:
        args.append("-tt")
    args += ["-p", str(server.port), f"{server.user}@{server.host}", *remote]
    return run(args, env=env, stdin=stdin)


def assert_ok(done: subprocess.CompletedProcess[str], expected: str = "ok\n") -> None:
    assert done.returncode == 0 and done.stdout == expected, (
        f"{done.args}\nexit {done.returncode}\nstdout: {done.stdout!r}\nstderr: {done.stderr}")


def dropbear_key(tmp_path: Path, server: TestServer, name: str) -> Path:
    """dbclient reads only Dropbear's own key format: convert with dropbearconvert."""
    out = tmp_path / f"{name}.dropbear"
    subprocess.run(["dropbearconvert", "openssh", "dropbear", str(server.user_key_paths[name]),
                    str(out)], check=True, capture_output=True)
    return out


def dbclient(server: TestServer, home: Path, *args: str, env: Mapping[str, str] | None = None,
             remote: Sequence[str] = ("echo", "ok")) -> subprocess.CompletedProcess[str]:
    """Dropbear's client with $HOME/.ssh/known_hosts holding the server's host keys.

    dbclient matches known_hosts by host name alone and wants no comment.
    """
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    (home / ".ssh" / "known_hosts").write_text(
        "".join(f"{server.host} {line}\n" for line in server.host_public_keys.values()))
    return run(["dbclient", "-p", str(server.port), *args, f"{server.user}@{server.host}",
                *remote], env={"HOME": str(home), **(env or {})}, timeout=30)


def expect_kexinit(server: TestServer, expected: Mapping[str, tuple[str, ...]]) -> None:
    probe = testing.probe_kexinit(server.host, server.port)
    assert probe.banner == server.banner
    assert probe.kex == expected["kex"]
    assert probe.host_key == expected["host_key"]
    assert probe.cipher_client_to_server == probe.cipher_server_to_client == expected["cipher"]
    assert probe.mac_client_to_server == probe.mac_server_to_client == expected["mac"]
    assert (probe.compression_client_to_server == probe.compression_server_to_client
            == expected["compression"])


# --------------------------------------------------------------------------
# the fixtures' shape
# --------------------------------------------------------------------------

def test_tests_run_as_root() -> None:
    assert os.geteuid() == 0, (
        "the sshlib test suite needs root: it creates the sshlibtest account for password and "
        "keyboard-interactive logins and runs Dropbear; use `sudo bash scripts/test.sh`")


def test_openssh_server_shape(openssh_server: TestServer) -> None:
    s = openssh_server
    assert s.kind == "openssh" and s.host == "127.0.0.1" and s.is_running()
    assert s.banner.startswith("SSH-2.0-OpenSSH_")
    assert s.user == testing.TEST_ACCOUNT
    assert s.require_password()
    assert sorted(s.user_key_paths) == sorted(testing.USER_KEY_NAMES)
    assert sorted(s.host_key_paths) == sorted(testing.HOST_KEY_TYPES)
    assert all(p.is_file() for p in [*s.user_key_paths.values(), *s.host_key_paths.values()])
    lines = s.known_hosts_path.read_text().splitlines()
    assert lines == [f"[127.0.0.1]:{s.port} {k}" for k in s.host_public_keys.values()]
    assert "Server listening on 127.0.0.1 port" in s.log_text()


def test_dropbear_server_shape(dropbear_server: TestServer) -> None:
    s = dropbear_server
    assert s.kind == "dropbear" and s.is_running()
    assert s.banner == "SSH-2.0-dropbear_2022.83"
    assert s.user == testing.TEST_ACCOUNT and s.require_password()
    assert sorted(s.host_key_paths) == sorted(testing.DROPBEAR_HOST_KEY_TYPES)
    home = Path(os.path.expanduser(f"~{s.user}"))
    authorized = (home / ".ssh" / "authorized_keys").read_text()
    for line in s.user_public_keys.values():
        assert line in authorized


@pytest.mark.parametrize("name", testing.USER_KEY_NAMES)
def test_user_key_file_formats(openssh_server: TestServer, name: str) -> None:
    """Each file really is in its format, and (when ssh-keygen can read it) holds its key."""
    path = openssh_server.user_key_paths[name]
    text = path.read_text()
    parts = re.fullmatch(r"(ed25519|ecdsa-\d+|rsa)-(.*)", name)
    assert parts is not None
    ktype, fmt = parts.groups()
    first = text.splitlines()[0]
    if fmt.startswith("openssh"):
        assert first == "-----BEGIN OPENSSH PRIVATE KEY-----"
    elif fmt.startswith("pem"):
        label = "RSA" if ktype.startswith("rsa") else "EC"
        assert first == f"-----BEGIN {label} PRIVATE KEY-----"
        assert ("Proc-Type: 4,ENCRYPTED" in text) == fmt.endswith("encrypted")
    elif fmt == "pkcs8":
        assert first == "-----BEGIN PRIVATE KEY-----"
    else:
        assert first == "-----BEGIN ENCRYPTED PRIVATE KEY-----"
    assert path.stat().st_mode & 0o077 == 0
    public = openssh_server.user_public_keys[name]
    if name.startswith("ed25519-pkcs8"):
        # ssh-keygen 9.2 can't read these; check with the cryptography package.
        password = testing.USER_KEY_PASSPHRASE.encode() if fmt.endswith("encrypted") else None
        key = serialization.load_pem_private_key(text.encode(), password=password)
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        raw = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                            serialization.PublicFormat.OpenSSH).decode()
        assert raw == public
        return
    if fmt.endswith("encrypted"):
        wrong = run(["ssh-keygen", "-y", "-P", "", "-f", str(path)])
        assert wrong.returncode != 0, "an encrypted key opened without its passphrase"
    done = run(["ssh-keygen", "-y", "-P", testing.USER_KEY_PASSPHRASE if fmt.endswith("encrypted")
                else "", "-f", str(path)])
    assert done.returncode == 0, done.stderr
    assert " ".join(done.stdout.split()[:2]) == public


# --------------------------------------------------------------------------
# OpenSSH server with the OpenSSH client
# --------------------------------------------------------------------------

def test_openssh_kexinit_matches_recorded_algorithms(openssh_server: TestServer) -> None:
    expect_kexinit(openssh_server, testing.OPENSSH_ALGORITHMS)


@pytest.mark.parametrize("name", SSH_LOADABLE_KEYS)
def test_openssh_publickey_login(openssh_server: TestServer, askpass: Path, name: str) -> None:
    secret = testing.USER_KEY_PASSPHRASE if name.endswith("encrypted") else None
    assert_ok(ssh(openssh_server, "PreferredAuthentications=publickey", key=name,
                  secret=secret, askpass=askpass))


@pytest.mark.parametrize("algorithm", OPENSSH_HOST_KEY_ALGORITHMS)
def test_openssh_known_hosts_has_every_host_key(openssh_server: TestServer,
                                                algorithm: str) -> None:
    assert_ok(ssh(openssh_server, f"HostKeyAlgorithms={algorithm}",
                  key="ed25519-openssh"))


def test_openssh_wrong_or_missing_host_key_is_refused(openssh_server: TestServer,
                                                      tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(f"[127.0.0.1]:{openssh_server.port} "
                     f"{' '.join(Path(f'{other}.pub').read_text().split()[:2])}\n")
    done = ssh(openssh_server, "HostKeyAlgorithms=ssh-ed25519", key="ed25519-openssh",
               known_hosts=wrong)
    assert done.returncode == 255 and "Host key verification failed" in done.stderr
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    done = ssh(openssh_server, key="ed25519-openssh", known_hosts=empty)
    assert done.returncode == 255 and "Host key verification failed" in done.stderr


def test_openssh_unauthorized_key_is_refused(openssh_server: TestServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    done = ssh(openssh_server, "PreferredAuthentications=publickey", f"IdentityFile={stranger}")
    assert done.returncode == 255 and "Permission denied" in done.stderr


def test_openssh_password_login(openssh_server: TestServer, askpass: Path) -> None:
    password = openssh_server.require_password()
    assert_ok(ssh(openssh_server, "PreferredAuthentications=password", secret=password,
                  askpass=askpass))
    assert f"Accepted password for {openssh_server.user}" in openssh_server.log_text()
    done = ssh(openssh_server, "PreferredAuthentications=password", secret=password + "x",
               askpass=askpass)
    assert done.returncode == 255 and "Permission denied" in done.stderr


def test_openssh_keyboard_interactive_login(openssh_server: TestServer, askpass: Path) -> None:
    password = openssh_server.require_password()
    assert_ok(ssh(openssh_server, "PreferredAuthentications=keyboard-interactive",
                  secret=password, askpass=askpass))
    assert (f"Accepted keyboard-interactive/pam for {openssh_server.user}"
            in openssh_server.log_text())
    done = ssh(openssh_server, "PreferredAuthentications=keyboard-interactive",
               secret="not-the-password", askpass=askpass)
    assert done.returncode == 255 and "Permission denied" in done.stderr


def test_openssh_insecure_algorithms_enabled(openssh_server: TestServer) -> None:
    """diffie-hellman-group14-sha1 and ssh-rsa (SHA-1) are on, for sshlib's Insecure* tests."""
    assert_ok(ssh(openssh_server, "KexAlgorithms=diffie-hellman-group14-sha1",
                  "HostKeyAlgorithms=ssh-rsa", "PubkeyAcceptedAlgorithms=ssh-rsa",
                  key="rsa-openssh"))


def test_openssh_pty_shell(openssh_server: TestServer) -> None:
    done = ssh(openssh_server, key="ed25519-openssh", remote=(), tty=True,
               stdin=b"tty\necho marker-$((6*7))\nexit 0\n")
    assert done.returncode == 0, done.stderr
    assert "marker-42" in done.stdout
    assert "/dev/pts/" in done.stdout


def test_openssh_exit_status_and_stderr(openssh_server: TestServer) -> None:
    done = ssh(openssh_server, key="ed25519-openssh", remote=("echo err >&2; exit 7",))
    assert done.returncode == 7 and done.stderr == "err\n"


def test_openssh_accepts_sshlib_env(openssh_server: TestServer) -> None:
    done = ssh(openssh_server, "SetEnv=SSHLIB_PROBE=hello LANG=C", key="ed25519-openssh",
               remote=("echo", "$SSHLIB_PROBE", "$LANG"))
    assert_ok(done, "hello C\n")


def test_openssh_sftp_subsystem(openssh_server: TestServer) -> None:
    args = ["sftp", "-F", "/dev/null", "-b", "-", "-P", str(openssh_server.port),
            "-i", str(openssh_server.user_key_paths["ed25519-openssh"]),
            "-o", f"UserKnownHostsFile={openssh_server.known_hosts_path}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            f"{openssh_server.user}@127.0.0.1"]
    done = run(args, stdin=b"pwd\n")
    assert done.returncode == 0, done.stderr
    assert f"Remote working directory: /home/{openssh_server.user}" in done.stdout


def test_openssh_dbclient_interop(openssh_server: TestServer, tmp_path: Path) -> None:
    key = dropbear_key(tmp_path, openssh_server, "ecdsa-256-openssh")
    done = dbclient(openssh_server, tmp_path / "home", "-i", str(key))
    assert_ok(done)


# --------------------------------------------------------------------------
# extra_config and the factory
# --------------------------------------------------------------------------

def test_factory_partial_success(openssh_factory: OpenSSHFactory, askpass: Path) -> None:
    server = openssh_factory({"AuthenticationMethods": "publickey,password"})
    password = server.require_password()
    done = ssh(server, key="ed25519-openssh")  # key alone: partial success, then no password
    assert done.returncode == 255 and "Permission denied" in done.stderr
    assert_ok(ssh(server, key="ed25519-openssh", secret=password, askpass=askpass))
    assert "Partial publickey" in server.log_text()


def test_factory_banner_and_override(openssh_factory: OpenSSHFactory, tmp_path: Path) -> None:
    banner = tmp_path / "banner.txt"
    banner.write_text("sshlib test banner\n")
    banner.chmod(0o644)
    server = openssh_factory({"Banner": str(banner), "PasswordAuthentication": "no"})
    done = ssh(server, "LogLevel=INFO", key="ed25519-openssh")
    assert done.returncode == 0 and "sshlib test banner" in done.stderr
    assert "\nPasswordAuthentication no\n" in (server.workdir / "sshd_config").read_text()
    assert "PasswordAuthentication yes" not in (server.workdir / "sshd_config").read_text()


def test_fresh_keys_differ(openssh_factory: OpenSSHFactory, openssh_server: TestServer) -> None:
    server = openssh_factory(fresh_keys=True)
    assert server.host_public_keys["ed25519"] != openssh_server.host_public_keys["ed25519"]
    assert server.user_public_keys["rsa-openssh"] != \
        openssh_server.user_public_keys["rsa-openssh"]
    assert_ok(ssh(server, key="rsa-openssh"))


def test_bad_config_fails_loudly_with_log(ssh_tools: None) -> None:
    with pytest.raises(RuntimeError) as info:
        testing.start_openssh(extra_config={"NoSuchOption": "1"}, timeout=5)
    assert "did not start" in str(info.value)
    assert "NoSuchOption" in str(info.value)  # the sshd log is in the message


def test_stop_cleans_up(openssh_factory: OpenSSHFactory) -> None:
    server = openssh_factory()
    port, workdir, proc = server.port, server.workdir, server.process
    assert proc is not None and workdir.is_dir()
    server.stop()
    assert proc.returncode is not None and not server.is_running()
    assert not workdir.exists()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    server.stop()  # idempotent


# --------------------------------------------------------------------------
# Dropbear server
# --------------------------------------------------------------------------

def test_dropbear_kexinit_matches_recorded_algorithms(dropbear_server: TestServer) -> None:
    expect_kexinit(dropbear_server, testing.DROPBEAR_ALGORITHMS)


def test_dropbear_server_sig_algs(dropbear_server: TestServer) -> None:
    done = ssh(dropbear_server, "LogLevel=DEBUG1", key="ed25519-openssh")
    assert done.returncode == 0, done.stderr
    found = re.search(r"server-sig-algs=<([^>]*)>", done.stderr)
    assert found, done.stderr
    assert tuple(found.group(1).split(",")) == testing.DROPBEAR_ALGORITHMS["pubkey"]


@pytest.mark.parametrize("name", ["ed25519-openssh", "ecdsa-256-openssh", "ecdsa-384-openssh",
                                  "ecdsa-521-pem", "rsa-pkcs8"])
def test_dropbear_publickey_login_with_ssh(dropbear_server: TestServer, name: str) -> None:
    assert_ok(ssh(dropbear_server, "PreferredAuthentications=publickey", key=name))


@pytest.mark.parametrize("algorithm", DROPBEAR_HOST_KEY_ALGORITHMS)
def test_dropbear_known_hosts_has_every_host_key(dropbear_server: TestServer,
                                                 algorithm: str) -> None:
    assert_ok(ssh(dropbear_server, f"HostKeyAlgorithms={algorithm}", key="ed25519-openssh"))


def test_dropbear_password_login_with_ssh(dropbear_server: TestServer, askpass: Path) -> None:
    password = dropbear_server.require_password()
    assert_ok(ssh(dropbear_server, "PreferredAuthentications=password", secret=password,
                  askpass=askpass))
    done = ssh(dropbear_server, "PreferredAuthentications=password", secret="wrong",
               askpass=askpass)
    assert done.returncode == 255 and "Permission denied" in done.stderr


@pytest.mark.parametrize("name", ["ed25519-openssh", "ecdsa-521-openssh", "rsa-openssh"])
def test_dropbear_dbclient_publickey(dropbear_server: TestServer, tmp_path: Path,
                                     name: str) -> None:
    key = dropbear_key(tmp_path, dropbear_server, name)
    assert_ok(dbclient(dropbear_server, tmp_path / "home", "-i", str(key)))
    assert "Pubkey auth succeeded" in dropbear_server.log_text()


def test_dropbear_dbclient_password(dropbear_server: TestServer, tmp_path: Path) -> None:
    password = dropbear_server.require_password()
    done = dbclient(dropbear_server, tmp_path / "home", env={"DROPBEAR_PASSWORD": password})
    assert_ok(done)
    assert f"Password auth succeeded for '{dropbear_server.user}'" in dropbear_server.log_text()


def test_dropbear_stop_removes_its_authorized_keys(dropbear_factory: DropbearFactory) -> None:
    server = dropbear_factory(fresh_keys=True)
    authorized = Path(os.path.expanduser(f"~{server.user}")) / ".ssh" / "authorized_keys"
    mine = server.user_public_keys["ed25519-openssh"]
    assert mine in authorized.read_text()
    assert_ok(ssh(server, key="ed25519-openssh"))
    server.stop()
    assert mine not in authorized.read_text()
    assert oct(authorized.stat().st_mode & 0o777) == "0o600"
