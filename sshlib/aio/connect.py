"""`sshlib.aio.connect("alias")`: sshlib.connect as a coroutine (see sshlib.connect).

Resolving the configuration, reading key files and asking the agent for
its keys are blocking file and socket work: they run in a worker thread,
so the event loop never waits on them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, overload

from ..errors import ConnectionLost, MuxError, RequestDeniedError, SSHError, Timeout
from ..sftp.policy import sftp_window
from ..sshconfig import HostConfig, resolve, resolve_jump
from ..sshconfig.apply import ConnectArgs, Passphrase, PasswordArg, forward_failed, hop_args
from ..sshconfig.control import master_path, mux_timeout
from ..sshconfig.forwards import ForwardRequest
from ..sshconfig.reader import ConfigFile, ExecRunner
from ..sshconfig.session import SessionSetup, session_setup
from .channel import AioDriver
from .client import (
    ByteReader,
    ByteWriter,
    Client,
    client_over,
    reap_proxy_command,
    with_timeout,
)
from .session import Session
from .sftp import SFTPClient, SFTPOpener
from .sockstream import SocketStream, open_socket_stream

if TYPE_CHECKING:
    from .mux import MuxClient
    from .muxconnected import ConfiguredMuxClient

__all__ = ["connect", "connect_host", "ConfiguredClient", "ConfiguredSession"]

log = logging.getLogger("sshlib.aio")
#: Which way connect() went (a master, or directly): the logger sshlib.connect uses too.
path_log = logging.getLogger("sshlib.client")

RETRY_DELAY = 1.0
SETUP_TIMEOUT = 30.0


class ConfiguredClient(Client):
    """The Client connect() returns: new sessions get the configuration's session options.

    `session_setup` (SendEnv/SetEnv, ForwardAgent, RequestTTY) is applied
    when a session starts its program; `host_config` is the HostConfig;
    `control_path` is None (a ConfiguredMuxClient runs over a master).
    """

    #: None: not over a ControlMaster (ConfiguredMuxClient.control_path is the socket).
    control_path: str | None = None
    host_config: HostConfig
    session_setup: SessionSetup = SessionSetup()

    def new_session(self, timeout: float | None = None) -> Session:
        """A ConfiguredSession: its SessionSetup requests go out before the program starts."""
        return ConfiguredSession(self._driver, timeout, self.session_setup)

    def sftp(self, timeout: float | None = 30) -> SFTPOpener:
        """Client.sftp with the session options except RequestTTY (a pty would mangle the
        binary SFTP stream, so ssh's sftp(1) never asks for one)."""
        setup = replace(self.session_setup, pty=False)

        async def start() -> SFTPClient:
            session = ConfiguredSession(self._driver, timeout, setup)
            return await SFTPClient.over_session(session, timeout,
                                                 server_version=self.server_version,
                                                 window=sftp_window(self.config.window_size))
        return SFTPOpener(self, timeout, start=start)


class ConfiguredSession(Session):
    """A Session that sends the SessionSetup requests before exec, shell or subsystem."""

    def __init__(self, link: AioDriver, open_timeout: float | None,
                 setup: SessionSetup) -> None:
        super().__init__(link, open_timeout)
        self._setup = setup

    async def _apply(self, timeout: float | None) -> None:
        setup = self._setup
        wait = timeout if timeout is not None else SETUP_TIMEOUT
        for name, value in setup.env.items():
            try:
                await self.setenv(name, value, timeout=wait)
            except RequestDeniedError:
                log.debug("server refused environment variable %s", name)
        if setup.agent_forwarding:
            await self.request_agent_forwarding(timeout=wait)
        if setup.pty:
            await self.request_pty(setup.term, timeout=wait)

    async def start(self, command: str | bytes, timeout: float | None = None) -> None:
        """Send the setup requests, then exec `command` (see Session.start)."""
        await self._apply(timeout)
        await super().start(command, timeout)

    async def shell(self, timeout: float | None = None) -> None:
        """Send the setup requests, then start the login shell (see Session.shell)."""
        await self._apply(timeout)
        await super().shell(timeout)

    async def request_subsystem(self, name: str, timeout: float | None = None) -> None:
        """Send the setup requests, then start subsystem `name`."""
        await self._apply(timeout)
        await super().request_subsystem(name, timeout)


@overload
async def connect(destination: str, *, port: int | None = None,
                  config_files: Sequence[str | os.PathLike[str] | ConfigFile] | None = None,
                  password: PasswordArg = None, passphrase: Passphrase = None,
                  options: Mapping[str, str | int | bool] | None = None,
                  user: str | None = None, timeout: float | None = None,
                  exec_runner: ExecRunner | None = None, control_master: Literal[False],
                  **connect_args: Any) -> ConfiguredClient: ...


@overload
async def connect(destination: str, *, port: int | None = None,
                  config_files: Sequence[str | os.PathLike[str] | ConfigFile] | None = None,
                  password: PasswordArg = None, passphrase: Passphrase = None,
                  options: Mapping[str, str | int | bool] | None = None,
                  user: str | None = None, timeout: float | None = None,
                  exec_runner: ExecRunner | None = None, control_master: bool = True,
                  **connect_args: Any) -> ConfiguredClient | ConfiguredMuxClient: ...


async def connect(destination: str, *, port: int | None = None,
                  config_files: Sequence[str | os.PathLike[str] | ConfigFile] | None = None,
                  password: PasswordArg = None, passphrase: Passphrase = None,
                  options: Mapping[str, str | int | bool] | None = None,
                  user: str | None = None, timeout: float | None = None,
                  exec_runner: ExecRunner | None = None, control_master: bool = True,
                  **connect_args: Any) -> ConfiguredClient | ConfiguredMuxClient:
    """Connect and authenticate to `destination` as ``ssh destination`` would.

    The same arguments, errors and ControlMaster rules as sshlib.connect: a
    running master at ControlPath gives a ConfiguredMuxClient (sshlib.aio.mux
    underneath), ``control_master=False`` always a ConfiguredClient.
    `timeout` (default ConnectTimeout, else 30 s) bounds each attempt.
    """
    hc = await asyncio.to_thread(resolve, destination, user=user, port=port,
                                 config_files=config_files, options=options,
                                 exec_runner=exec_runner)
    return await connect_host(hc, ConnectArgs(password=password, passphrase=passphrase,
                                              timeout=timeout, **connect_args),
                              control_master=control_master)


async def connect_host(hc: HostConfig, args: ConnectArgs, *, control_master: bool = True
                       ) -> ConfiguredClient | ConfiguredMuxClient:
    """connect() once the configuration is resolved: a master, or jump hosts, the connection
    and forwards."""
    path = master_path(hc, wanted=control_master)
    if path is not None and (shared := await _via_master(hc, path, args)) is not None:
        return shared
    config, addr = await asyncio.to_thread(hc.client_config, **vars(args))
    where = (hc.hostname, hc.port)
    jump_config = await asyncio.to_thread(resolve_jump, hc)
    cleanup: Any = None
    if jump_config is not None:
        jump = await connect_host(jump_config, hop_args(args), control_master=control_master)
        try:
            stream = await jump.dial("tcp", addr, timeout=config.timeout)
        except BaseException:
            await jump.close()
            raise
        reader: ByteReader = stream
        writer: ByteWriter = stream
        cleanup = jump.close
    elif hc.proxy_command is not None:
        reader, writer, cleanup = await _proxy_command(hc)
    else:
        reader = writer = await _tcp(hc, config.timeout, addr)
    try:
        client = await client_over(reader, writer, config, addr=where, timeout=config.timeout,
                                   client_class=ConfiguredClient)
    except BaseException:
        if cleanup is not None:
            await cleanup()
        raise
    assert isinstance(client, ConfiguredClient)
    if cleanup is not None:
        client.own(cleanup)
    client.host_config = hc
    client.session_setup = session_setup(hc)
    try:
        if target := hc.agent_forward_target():
            client.forward_agent(target)
        for request in hc.forward_requests():
            await _start_forward(client, request, hc)
    except BaseException:
        await client.close()
        raise
    return client


async def _via_master(hc: HostConfig, path: str,
                      args: ConnectArgs) -> ConfiguredMuxClient | None:
    """A ConfiguredMuxClient if the master at `path` answers, None (logged) if nothing does
    (see sshlib.connect)."""
    from . import mux
    from .muxconnected import ConfiguredMuxClient

    timeout = mux_timeout(hc, args.timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout  # HELLO and the alive check share it
    try:
        muxclient = await mux.connect(path, timeout)
        try:
            pid = await muxclient.check(max(0.0, deadline - loop.time()))
        except BaseException:
            await muxclient.close()
            raise
    except MuxError as exc:
        path_log.info("no ControlMaster answers at %s (%s): connecting to %s:%d directly",
                      path, exc.reason, hc.hostname, hc.port)
        return None
    path_log.info("using the ControlMaster at %s (pid %d) for %s:%d", path, pid, hc.hostname,
                  hc.port)
    setup = replace(session_setup(hc), agent_forwarding=bool(hc.forward_agent))
    client = ConfiguredMuxClient(muxclient, hc, setup)
    try:
        for request in hc.forward_requests():  # held by the master, as ssh's are
            await _start_forward(muxclient, request, hc)
    except BaseException:
        await client.close()
        raise
    return client


async def _tcp(hc: HostConfig, timeout: float | None, addr: str) -> SocketStream:
    family = {"inet": 2, "inet6": 10}.get(hc.address_family, 0)
    local_addr = (hc.bind_address, 0) if hc.bind_address else None
    attempts = max(1, hc.connection_attempts)
    for attempt in range(1, attempts + 1):
        try:
            return await with_timeout(
                open_socket_stream(hc.hostname, hc.port, family=family, local_addr=local_addr),
                timeout, f"connecting to {addr}")
        except (OSError, Timeout) as exc:
            if attempt == attempts:
                if isinstance(exc, Timeout):
                    raise
                raise ConnectionLost(f"cannot connect to {addr}: {exc}") from exc
            log.info("connecting to %s failed (%s); attempt %d of %d", addr, exc, attempt + 1,
                     attempts)
            await asyncio.sleep(RETRY_DELAY)
    raise AssertionError("unreachable")


async def _proxy_command(hc: HostConfig) -> tuple[asyncio.StreamReader, asyncio.StreamWriter,
                                                  Any]:
    """ProxyCommand: SSH over the command's stdout (reader) and stdin (writer)."""
    line = hc.proxy_command_line()
    assert line is not None
    try:
        process = await asyncio.create_subprocess_shell(
            line, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            start_new_session=True)
    except OSError as exc:
        raise ConnectionLost(f"cannot start ProxyCommand {line!r}: {exc}") from exc
    assert process.stdout is not None and process.stdin is not None
    return process.stdout, process.stdin, lambda: reap_proxy_command(process)


async def _start_forward(client: ConfiguredClient | MuxClient, request: ForwardRequest,
                         hc: HostConfig) -> None:
    try:
        if request.kind == "local":
            assert request.target is not None
            await client.forward_local(request.listen, request.target)
        elif request.kind == "dynamic":
            await client.forward_dynamic(request.listen)
        elif request.target is not None:
            await client.forward_remote(request.listen, request.target)
        else:
            raise ValueError("RemoteForward with one argument (a remote SOCKS proxy) is not "
                             "supported by sshlib")
    except (SSHError, OSError, ValueError) as exc:
        forward_failed(hc, request, exc)
