"""Shared fixtures: real SSH servers on 127.0.0.1 (see docs/testing.md).

`openssh_server` and `dropbear_server` live for the whole session; use the
factories for a server with special options (they stop at the end of the
test).  A failing test that used one of these gets the tail of the server
log appended to its report.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any

import peers
import pytest
import servers as testing
from servers import TestServer

_LOG_TAIL = 6000


@pytest.fixture(scope="session")
def ssh_tools() -> None:
    """sshd, dropbear and the OpenSSH/Dropbear clients exist (scripts/test.sh installs them)."""
    testing.ensure_tools()


@pytest.fixture(scope="session")
def openssh_server(ssh_tools: None) -> Iterator[TestServer]:
    """One OpenSSH sshd for the session; do not change its state (use openssh_factory)."""
    with testing.start_openssh() as server:
        yield server


@pytest.fixture(scope="session")
def dropbear_server(ssh_tools: None) -> Iterator[TestServer]:
    """One Dropbear server for the session (root only)."""
    with testing.start_dropbear() as server:
        yield server


class ServerFactory:
    """Starts servers for one test and stops them all afterwards."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.servers: list[TestServer] = []

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


class OpenSSHFactory(ServerFactory):
    def __call__(self, extra_config: Mapping[str, str] | None = None, *,
                 version: str = "9.2", **kwargs: Any) -> TestServer:
        """start_openssh(extra_config=..., **kwargs), stopped when the test ends.

        `version` picks the sshd: "9.2" (the system's), "10.0" or "newest" (tests/peers.py).
        """
        server = start_openssh_version(version, extra_config, **kwargs)
        self.servers.append(server)
        return server


class DropbearFactory(ServerFactory):
    def __call__(self, extra_args: Sequence[str] = (), **kwargs: Any) -> TestServer:
        """start_dropbear(extra_args=..., **kwargs), stopped when the test ends."""
        server = testing.start_dropbear(extra_args=extra_args, **kwargs)
        self.servers.append(server)
        return server


def start_openssh_version(version: str, extra_config: Mapping[str, str] | None = None,
                          **kwargs: Any) -> TestServer:
    """testing.start_openssh with the sshd of OpenSSH `version` (see tests/peers.py)."""
    if version == "9.2":
        return testing.start_openssh(extra_config=extra_config, **kwargs)
    peer = peers.openssh(version)
    return testing.start_openssh(sshd=peer.sshd,
                                 extra_config={**peer.sshd_config, **(extra_config or {})},
                                 **kwargs)


class OpenSSHVersions(ServerFactory):
    """One session-long sshd per OpenSSH version, started on first use."""

    def __init__(self) -> None:
        super().__init__("openssh")
        self._by_version: dict[str, TestServer] = {}
        self._lock = threading.Lock()

    def __call__(self, version: str) -> TestServer:
        """The shared server of `version` ("9.2", "10.0", "newest"); do not change its state."""
        with self._lock:
            if version not in self._by_version:
                server = start_openssh_version(version)
                self._by_version[version] = server
                self.servers.append(server)
            return self._by_version[version]


@pytest.fixture(scope="session")
def openssh_servers(ssh_tools: None) -> Iterator[OpenSSHVersions]:
    """openssh_servers("10.0") -> one session-long sshd of that version (see tests/peers.py)."""
    versions = OpenSSHVersions()
    try:
        yield versions
    finally:
        versions.stop_all()


@pytest.fixture
def openssh_factory(ssh_tools: None) -> Iterator[OpenSSHFactory]:
    """openssh_factory({"AuthenticationMethods": "publickey,password"}) -> TestServer."""
    factory = OpenSSHFactory("openssh")
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def dropbear_factory(ssh_tools: None) -> Iterator[DropbearFactory]:
    """dropbear_factory(["-s"]) -> TestServer (extra dropbear arguments)."""
    factory = DropbearFactory("dropbear")
    try:
        yield factory
    finally:
        factory.stop_all()


def _servers_of(item: pytest.Item) -> list[tuple[str, TestServer]]:
    servers: list[tuple[str, TestServer]] = []
    for name, value in getattr(item, "funcargs", {}).items():
        if isinstance(value, TestServer):
            servers.append((name, value))
        elif isinstance(value, ServerFactory):
            servers.extend((f"{name}[{i}]", s) for i, s in enumerate(value.servers))
    return servers


_log_starts = pytest.StashKey[dict[int, int]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Remember where each session server's log stood when the test body started."""
    item.stash[_log_starts] = {id(s): s.log_size() for _, s in _servers_of(item)}
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                      pytest.TestReport]:
    """Attach what the servers a failed test used logged during it, to debug it from CI."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        starts = item.stash.get(_log_starts, {})
        for name, server in _servers_of(item):
            text = server.log_text(starts.get(id(server), 0))
            if len(text) > _LOG_TAIL:
                text = "...\n" + text[-_LOG_TAIL:]
            report.sections.append((f"{server.kind} server log during the test "
                                    f"({name}, {server.address})", text))
    return report
