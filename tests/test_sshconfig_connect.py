"""sshlib.connect("alias") and sshlib.aio.connect against the real sshd, with a private HOME.

HostName/Port/User/IdentityFile/UserKnownHostsFile come from ~/.ssh/config
(HOME points at a throwaway directory); the agent is a real ssh-agent
reached through IdentityAgent; accept-new writes a hashed known_hosts line
that the real ``ssh`` then accepts; 500 concurrent aio.connect calls to new
hosts leave one well-formed line each.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from agentfixtures import ssh_agent, ssh_agent_process  # noqa: F401  (fixtures)
from frontends import AioClient, frontend_fixture  # noqa: F401  (fixture)

import sshlib
import sshlib.aio
from sshlib.knownhosts import KnownHosts
from sshlib.testing import TestServer


def connect(frontend: Any, destination: str, **kwargs: Any) -> Any:
    """sshlib.connect or sshlib.aio.connect (behind the sync-shaped adapter)."""
    if frontend.name == "sync":
        return sshlib.connect(destination, **kwargs)
    return AioClient(frontend, frontend.run(sshlib.aio.connect(destination, **kwargs)))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME with ~/.ssh; sshlib reads ~/.ssh/config from here."""
    directory = tmp_path / "home"
    (directory / ".ssh").mkdir(parents=True, mode=0o700)
    monkeypatch.setenv("HOME", str(directory))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return directory


def copy_key(server: TestServer, home: Path, name: str = "ed25519-openssh") -> Path:
    target = home / ".ssh" / "id_test"
    shutil.copyfile(server.user_key_paths[name], target)
    target.chmod(0o600)
    return target


def write_config(home: Path, text: str) -> Path:
    path = home / ".ssh" / "config"
    path.write_text(text)
    path.chmod(0o600)
    return path


def run(client: Any, command: str) -> bytes:
    with client.new_session() as session:
        out: bytes = session.output(command)
        return out


def test_alias_from_user_config(frontend: Any, openssh_server: TestServer, home: Path) -> None:
    copy_key(openssh_server, home)
    shutil.copyfile(openssh_server.known_hosts_path, home / ".ssh" / "known_hosts")
    write_config(home, f"Host myalias\n  HostName 127.0.0.1\n  Port {openssh_server.port}\n"
                       f"  User {openssh_server.user}\n  IdentityFile ~/.ssh/id_test\n"
                       "  UserKnownHostsFile ~/.ssh/known_hosts\n")
    with connect(frontend, "myalias") as client:
        assert run(client, "id -un").decode().strip() == openssh_server.user
        assert (client.hostname, client.port) == ("127.0.0.1", openssh_server.port)


def test_explicit_arguments_win(frontend: Any, openssh_server: TestServer, home: Path) -> None:
    copy_key(openssh_server, home)
    shutil.copyfile(openssh_server.known_hosts_path, home / ".ssh" / "known_hosts")
    config = write_config(home, "Host myalias\n  HostName 127.0.0.1\n  Port 1\n  User nobody\n"
                                "  StrictHostKeyChecking yes\n  IdentitiesOnly yes\n")
    uri = f"ssh://{openssh_server.user}@myalias:{openssh_server.port}"
    with connect(frontend, uri, config_files=[config],
                 options={"IdentityFile": "~/.ssh/id_test"}) as client:
        assert run(client, "echo ok") == b"ok\n"
    with connect(frontend, f"{openssh_server.user}@myalias", port=openssh_server.port,
                 config_files=[config], options={"IdentityFile": "~/.ssh/id_test"}) as client:
        assert run(client, "echo ok") == b"ok\n"


def test_unknown_and_changed_host_keys_are_refused(frontend: Any, openssh_server: TestServer,
                                                   home: Path) -> None:
    copy_key(openssh_server, home)
    config = write_config(home, f"Host h\n  HostName 127.0.0.1\n  Port {openssh_server.port}\n"
                                f"  User {openssh_server.user}\n  IdentityFile ~/.ssh/id_test\n")
    with pytest.raises(sshlib.UnknownHostKeyError):  # default: ask, and nobody to ask
        connect(frontend, "h", config_files=[config])
    asked: list[str] = []

    def ask(host: str, port: int, key: sshlib.PublicKey) -> bool:
        asked.append(f"{host}:{port}")
        return True

    with connect(frontend, "h", config_files=[config], ask_host_key=ask):
        pass
    assert asked == [f"127.0.0.1:{openssh_server.port}"]
    known = (home / ".ssh" / "known_hosts").read_text().split()
    assert known[0] == f"[127.0.0.1]:{openssh_server.port}"
    # a different ed25519 key (a user key) recorded as the host's: the real one is a mismatch
    other = sshlib.parse_openssh_public_key(openssh_server.user_public_keys["ed25519-openssh"])
    (home / ".ssh" / "known_hosts").write_text(
        f"[127.0.0.1]:{openssh_server.port} {other.openssh()}\n")
    with pytest.raises(sshlib.HostKeyMismatchError):
        connect(frontend, "h", config_files=[config],
                options={"StrictHostKeyChecking": "accept-new"})


def test_accept_new_hashed_line_is_accepted_by_real_ssh(frontend: Any,
                                                       openssh_server: TestServer,
                                                       home: Path) -> None:
    key = copy_key(openssh_server, home)
    known = home / ".ssh" / "kh_new"
    config = write_config(home, f"Host fresh\n  HostName 127.0.0.1\n  Port {openssh_server.port}\n"
                                f"  User {openssh_server.user}\n  IdentityFile {key}\n"
                                f"  UserKnownHostsFile {known}\n  HashKnownHosts yes\n"
                                "  StrictHostKeyChecking accept-new\n  BatchMode yes\n")
    with connect(frontend, "fresh", config_files=[config]) as client:
        assert run(client, "echo first") == b"first\n"
    lines = known.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("|1|")
    with connect(frontend, "fresh", config_files=[config]):
        pass
    assert known.read_text().splitlines() == lines  # known now: nothing appended
    done = subprocess.run(["ssh", "-F", str(config), "-o", "StrictHostKeyChecking=yes",
                           "fresh", "echo", "from-openssh"], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "from-openssh\n"


def test_identity_agent(frontend: Any, openssh_server: TestServer, home: Path,
                        ssh_agent: Any) -> None:  # noqa: F811
    key = copy_key(openssh_server, home)
    ssh_agent.run_client("ssh-add", str(key))
    shutil.copyfile(openssh_server.known_hosts_path, home / ".ssh" / "known_hosts")
    write_config(home, f"Host viaagent\n  HostName 127.0.0.1\n  Port {openssh_server.port}\n"
                       f"  User {openssh_server.user}\n  IdentityAgent {ssh_agent.sock}\n")
    os.unlink(key)  # only the agent has the key now
    with connect(frontend, "viaagent") as client:
        assert run(client, "echo agent") == b"agent\n"
    write_config(home, f"Host viaagent\n  HostName 127.0.0.1\n  Port {openssh_server.port}\n"
                       f"  User {openssh_server.user}\n  IdentityAgent none\n")
    with pytest.raises(sshlib.AuthError):
        connect(frontend, "viaagent")


def test_password_from_argument(frontend: Any, openssh_server: TestServer, home: Path) -> None:
    password = openssh_server.require_password()
    shutil.copyfile(openssh_server.known_hosts_path, home / ".ssh" / "known_hosts")
    write_config(home, f"Host pw\n  HostName 127.0.0.1\n  Port {openssh_server.port}\n"
                       f"  User {openssh_server.user}\n  PubkeyAuthentication no\n"
                       "  PreferredAuthentications password\n")
    with connect(frontend, "pw", password=password) as client:
        assert run(client, "echo pw") == b"pw\n"
    with pytest.raises(sshlib.AuthError):
        connect(frontend, "pw", password="wrong")


def test_500_concurrent_connects_to_new_hosts(openssh_factory: Any, home: Path) -> None:
    server = openssh_factory({"MaxStartups": "1000", "MaxSessions": "10"})
    key = copy_key(server, home)
    known = home / ".ssh" / "known_hosts"
    config = write_config(home, f"Host h*\n  HostName 127.0.0.1\n  Port {server.port}\n"
                                f"  User {server.user}\n  IdentityFile {key}\n"
                                f"  UserKnownHostsFile {known}\n"
                                "  StrictHostKeyChecking accept-new\n  IdentityAgent none\n"
                                "  HostKeyAlgorithms ssh-ed25519\n  ConnectTimeout 240\n")
    count = 500

    async def one(i: int) -> None:
        client = await sshlib.aio.connect(f"h{i}", config_files=[config],
                                          options={"HostKeyAlias": f"h{i}"})
        await client.close()

    async def main() -> list[BaseException | None]:
        return await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)

    results = asyncio.run(main())
    errors = [r for r in results if r is not None]
    assert not errors, errors[:3]
    lines = known.read_text().split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) == count
    db = KnownHosts.from_lines(lines)
    assert len(db.entries) == count  # every line parses
    assert sorted(e.hosts for e in db.entries) == sorted(f"h{i}" for i in range(count))
    server_key = sshlib.parse_openssh_public_key(server.host_public_keys["ed25519"])
    assert all(e.key == server_key for e in db.entries)


def test_session_options_from_config(frontend: Any, openssh_factory: Any, home: Path,
                                     ssh_agent: Any,  # noqa: F811
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    server = openssh_factory({"AcceptEnv": "SSHLIB_*"})
    key = copy_key(server, home)
    ssh_agent.run_client("ssh-add", str(key))
    shutil.copyfile(server.known_hosts_path, home / ".ssh" / "known_hosts")
    monkeypatch.setenv("SSHLIB_SENT", "from-sendenv")
    monkeypatch.setenv("SSHLIB_NOT", "filtered-out")
    write_config(home, f"Host s\n  HostName 127.0.0.1\n  Port {server.port}\n"
                       f"  User {server.user}\n  IdentityAgent {ssh_agent.sock}\n"
                       "  SendEnv SSHLIB_S* OTHER\n  SetEnv SSHLIB_SET=from-setenv\n"
                       "  ForwardAgent yes\n  RequestTTY force\n")
    with connect(frontend, "s") as client:
        out = run(client, 'echo "$SSHLIB_SENT $SSHLIB_SET ${SSHLIB_NOT:-unset}"; tty; '
                          "ssh-add -l >/dev/null && echo agent-ok")
        lines = out.decode().replace("\r", "").splitlines()
        assert lines[0] == "from-sendenv from-setenv unset"
        assert lines[1].startswith("/dev/pts/")
        assert lines[2] == "agent-ok"


def test_run_on_aliases(openssh_server: TestServer, home: Path) -> None:
    copy_key(openssh_server, home)
    shutil.copyfile(openssh_server.known_hosts_path, home / ".ssh" / "known_hosts")
    write_config(home, f"Host good1 good2\n  HostName 127.0.0.1\n  Port {openssh_server.port}\n"
                       f"  User {openssh_server.user}\n  IdentityFile ~/.ssh/id_test\n"
                       "Host bad\n  HostName 127.0.0.1\n  Port 1\n")

    async def main() -> dict[str, sshlib.aio.HostResult]:
        return {r.host: r async for r in sshlib.aio.run_on(["good1", "good2", "bad"], "echo $0",
                                                           limit=3, timeout=60)}

    results = asyncio.run(main())
    assert results["good1"].ok and results["good2"].ok
    assert results["good1"].stdout.strip() != b""
    assert isinstance(results["bad"].error, sshlib.ConnectionLost)


def test_keyboard_interactive_with_password(frontend: Any, openssh_server: TestServer,
                                            home: Path) -> None:
    password = openssh_server.require_password()
    shutil.copyfile(openssh_server.known_hosts_path, home / ".ssh" / "known_hosts")
    write_config(home, f"Host kbd\n  HostName 127.0.0.1\n  Port {openssh_server.port}\n"
                       f"  User {openssh_server.user}\n  IdentityAgent none\n"
                       "  PreferredAuthentications keyboard-interactive\n"
                       "  NumberOfPasswordPrompts 1\n")
    with connect(frontend, "kbd", password=lambda: password) as client:
        assert run(client, "echo kbd") == b"kbd\n"


def test_auth_options_shape_the_methods(openssh_server: TestServer, home: Path,
                                        ssh_agent: Any) -> None:  # noqa: F811
    ed = copy_key(openssh_server, home)
    rsa = home / ".ssh" / "id_rsa"
    shutil.copyfile(openssh_server.user_key_paths["rsa-openssh"], rsa)
    rsa.chmod(0o600)
    ssh_agent.run_client("ssh-add", str(ed))
    base = (f"Host a\n  HostName 127.0.0.1\n  IdentityAgent {ssh_agent.sock}\n")

    def methods(extra: str, **kwargs: Any) -> list[Any]:
        config = write_config(home, base + extra)
        cfg, _ = sshlib.sshconfig.resolve("a", config_files=[config]).client_config(**kwargs)
        return list(cfg.auth)

    # agent key (ed25519) + default identity ~/.ssh/id_rsa; id_test is not a default name
    (only,) = methods("")
    assert [s.public_key.key_type for s in only.signers] == ["ssh-ed25519", "ssh-rsa"]
    (only,) = methods(f"  IdentitiesOnly yes\n  IdentityFile {rsa}\n")
    assert [s.public_key.key_type for s in only.signers] == ["ssh-rsa"]
    (only,) = methods("  PubkeyAcceptedAlgorithms rsa-sha2-512\n")
    assert [s.public_key.key_type for s in only.signers] == ["ssh-rsa"]
    assert methods("  PubkeyAuthentication no\n") == []
    names = [m.method_name for m in methods("  PreferredAuthentications password,publickey\n",
                                            password="pw")]
    assert names == ["password", "publickey"]
    names = [m.method_name for m in methods("  KbdInteractiveAuthentication no\n",
                                            password="pw")]
    assert names == ["publickey", "password"]


def test_connection_attempts_and_bind_address(frontend: Any, openssh_server: TestServer,
                                              home: Path) -> None:
    copy_key(openssh_server, home)
    shutil.copyfile(openssh_server.known_hosts_path, home / ".ssh" / "known_hosts")
    write_config(home, f"Host up\n  HostName 127.0.0.1\n  Port {openssh_server.port}\n"
                       f"  User {openssh_server.user}\n  IdentityFile ~/.ssh/id_test\n"
                       "  BindAddress 127.0.0.1\n  AddressFamily inet\n"
                       "Host down\n  HostName 127.0.0.1\n  Port 1\n  ConnectionAttempts 2\n")
    with connect(frontend, "up") as client:
        assert run(client, "echo $SSH_CLIENT").split()[0] == b"127.0.0.1"
    started = time.monotonic()
    with pytest.raises(sshlib.ConnectionLost):
        connect(frontend, "down")
    assert time.monotonic() - started >= 1.0  # one retry, a second apart


def test_certificate_file(frontend: Any, openssh_factory: Any, home: Path,
                          tmp_path: Path) -> None:
    """CertificateFile names a certificate kept apart from the key: the login works only
    with it (the key itself is in no authorized_keys; the sshd trusts the CA)."""
    ca = tmp_path / "user_ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ca)], check=True)
    server = openssh_factory(extra_config={"TrustedUserCAKeys": f"{ca}.pub"})
    key = home / ".ssh" / "id_certified"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    certs = home / "certs"
    certs.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", "alice-laptop", "-n", server.user,
                    "-V", "-5m:+1h", f"{key}.pub"], check=True)
    os.replace(f"{key}-cert.pub", certs / "laptop.pub")  # not where load_private_key looks
    shutil.copyfile(server.known_hosts_path, home / ".ssh" / "known_hosts")
    base = (f"Host certified plain\n  HostName 127.0.0.1\n  Port {server.port}\n"
            f"  User {server.user}\n  IdentityFile ~/.ssh/id_certified\n  IdentitiesOnly yes\n"
            "Host certified\n  CertificateFile ~/certs/laptop.pub\n")
    write_config(home, base)
    with connect(frontend, "certified") as client:
        assert run(client, "id -un").decode().strip() == server.user
    assert "ED25519-CERT" in server.log_text()
    with pytest.raises(sshlib.AuthError):
        connect(frontend, "plain").close()
