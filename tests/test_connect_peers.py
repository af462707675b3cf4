"""sshlib.connect / sshlib.aio.connect with an ssh_config file against the second and third
server implementations: Dropbear and asyncssh's server (test_sshconfig_connect.py has sshd).

HostName, Port, User, IdentityFile and UserKnownHostsFile come from the config file (HOME is
a throwaway directory, no agent); each peer must see the configured user with the configured
key, and a known_hosts file that does not list the server, or a key the server does not
accept, must make connect() fail.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)
from test_sshconfig_connect import connect, home, run, write_config  # noqa: F401  (fixture)

import sshlib
from sshlib import keys
from sshlib.testing import TestServer

ALIAS = "peer"


def host_block(port: int, user: str, known_hosts: Path) -> str:
    """The ~/.ssh/config entry every test here uses (the key is ~/.ssh/id_test)."""
    return (f"Host {ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
            f"  IdentityFile ~/.ssh/id_test\n  UserKnownHostsFile {known_hosts}\n"
            "  IdentitiesOnly yes\n  IdentityAgent none\n  BatchMode yes\n"
            "  StrictHostKeyChecking yes\n")


def install_key(home_dir: Path, key: keys.PrivateKey | Path) -> None:
    target = home_dir / ".ssh" / "id_test"
    if isinstance(key, Path):
        shutil.copyfile(key, target)
    else:
        target.write_bytes(key.to_openssh_private())
    target.chmod(0o600)


def check_refusals(frontend: Any, home_dir: Path, port: int, user: str, known_hosts: Path) -> None:
    """What the config file names must matter: a known_hosts file without the server, another
    user, a key the server does not accept: each makes connect() fail."""
    empty = home_dir / ".ssh" / "empty_known_hosts"
    empty.write_text("")
    config = write_config(home_dir, host_block(port, user, empty))
    with pytest.raises(sshlib.UnknownHostKeyError):
        connect(frontend, ALIAS, config_files=[config])
    config = write_config(home_dir, host_block(port, "sshlib-no-such-user", known_hosts))
    with pytest.raises(sshlib.AuthError):
        connect(frontend, ALIAS, config_files=[config])
    install_key(home_dir, keys.generate_private_key("ed25519"))  # authorized nowhere
    config = write_config(home_dir, host_block(port, user, known_hosts))
    with pytest.raises(sshlib.AuthError):
        connect(frontend, ALIAS, config_files=[config])


# --- Dropbear ------------------------------------------------------------------------------

def test_connect_with_a_config_file_to_dropbear(frontend: Any, dropbear_server: TestServer,
                                                home: Path) -> None:  # noqa: F811
    server = dropbear_server
    install_key(home, server.user_key_paths["ed25519-openssh"])
    write_config(home, host_block(server.port, server.user, server.known_hosts_path))
    with connect(frontend, ALIAS) as client:  # ~/.ssh/config, read by default
        assert run(client, "id -un").decode().strip() == server.user
        assert (client.hostname, client.port) == ("127.0.0.1", server.port)
        assert client.server_version.startswith("SSH-2.0-dropbear")
    check_refusals(frontend, home, server.port, server.user, server.known_hosts_path)


# --- asyncssh's server -----------------------------------------------------------------------

class _OnlyUser(asyncssh.SSHServer):
    """Public key logins for `user` with the `authorized` keys; nobody else gets any key."""

    def __init__(self, user: str, authorized: asyncssh.SSHAuthorizedKeys) -> None:
        self._user = user
        self._authorized = authorized
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        if username == self._user and self._conn is not None:
            self._conn.set_authorized_keys(self._authorized)
        return True  # authentication is required

    def public_key_auth_supported(self) -> bool:
        return True


class AsyncsshPeer:
    """asyncssh's server in a loop thread: `user` with `client_key`; `exec` prints the login
    name and the command."""

    def __init__(self, user: str, client_key: keys.PrivateKey) -> None:
        self.user = user
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

        def process(proc: asyncssh.SSHServerProcess[str]) -> None:
            proc.stdout.write(f"{proc.get_extra_info('username')} ran {proc.command}\n")
            proc.exit(0)

        authorized = asyncssh.import_authorized_keys(f"{client_key.public_key.openssh()}\n")

        async def start() -> asyncssh.SSHAcceptor:
            return await asyncssh.create_server(
                lambda: _OnlyUser(user, authorized), "127.0.0.1", 0, process_factory=process,
                server_host_keys=[self.host_key], password_auth=False, kbdint_auth=False)

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)
        self.port: int = self.server.sockets[0].getsockname()[1]

    def write_known_hosts(self, path: Path) -> Path:
        public = self.host_key.export_public_key("openssh").decode().strip()
        path.write_text(f"[127.0.0.1]:{self.port} {public}\n")
        return path

    def close(self) -> None:
        async def stop() -> None:  # the server belongs to the loop's thread
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def asyncssh_key() -> keys.PrivateKey:
    return keys.generate_private_key("ed25519")


@pytest.fixture(scope="module")
def asyncssh_peer(asyncssh_key: keys.PrivateKey) -> Iterator[AsyncsshPeer]:
    peer = AsyncsshPeer("carol", asyncssh_key)
    try:
        yield peer
    finally:
        peer.close()


def test_connect_with_a_config_file_to_asyncssh(frontend: Any, asyncssh_peer: AsyncsshPeer,
                                                asyncssh_key: keys.PrivateKey,
                                                home: Path) -> None:  # noqa: F811
    peer = asyncssh_peer
    install_key(home, asyncssh_key)
    known = peer.write_known_hosts(home / ".ssh" / "peer_known_hosts")
    config = write_config(home, host_block(peer.port, peer.user, known))
    with connect(frontend, ALIAS, config_files=[config]) as client:
        assert run(client, "echo hi") == b"carol ran echo hi\n"
        assert (client.hostname, client.port) == ("127.0.0.1", peer.port)
        assert "AsyncSSH" in client.server_version
    check_refusals(frontend, home, peer.port, peer.user, known)
