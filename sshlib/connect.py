"""`sshlib.connect("alias")`: dial a host the way ``ssh alias`` would (threaded front-end).

The OpenSSH configuration (~/.ssh/config, then /etc/ssh/ssh_config, or the
given files) decides host name, port, user, keys, agent, known_hosts,
algorithms and keepalives; keyword arguments win over it like ``ssh -o``.
sshlib.aio.connect is the same as a coroutine.  See docs/config.md.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, overload

from .config import ClientConfig
from .errors import ConnectionLost, MuxError, RequestDeniedError, SSHError, Timeout
from .sftp.policy import sftp_window
from .sshconfig import HostConfig, resolve, resolve_jump
from .sshconfig.apply import ConnectArgs, Passphrase, PasswordArg, forward_failed, hop_args
from .sshconfig.control import master_path, mux_timeout
from .sshconfig.forwards import ForwardRequest
from .sshconfig.reader import ConfigFile, ExecRunner
from .sshconfig.session import SessionSetup, session_setup
from .sync import Client, Session
from .sync.sftp import SFTPClient
from .sync.stream import Stream
from .sync.transport import ProcessTransport, Transport

if TYPE_CHECKING:
    from .mux.client import MuxClient
    from .mux.connected import ConfiguredMuxClient

__all__ = ["connect", "connect_host", "ConfiguredClient", "resolve_for_connect", "open_socket",
           "RETRY_DELAY"]

log = logging.getLogger("sshlib.client")

RETRY_DELAY = 1.0  # seconds between ConnectionAttempts, as ssh waits
SETUP_TIMEOUT = 30.0


class ConfiguredClient(Client):
    """The Client connect() returns: new sessions get the configuration's session options.

    `session_setup` (SendEnv/SetEnv, ForwardAgent, RequestTTY) is applied
    in new_session(), before the caller starts a program; `host_config` is
    the resolved HostConfig.  `control_path` is None: this client has its own
    connection (a ConfiguredMuxClient, which runs over a master, has the path).
    """

    #: None: not over a ControlMaster (ConfiguredMuxClient.control_path is the socket).
    control_path: str | None = None

    def __init__(self, sock: socket.socket | Stream | Transport, config: ClientConfig, *,
                 addr: tuple[str, int], timeout: float | None, host_config: HostConfig,
                 jump: Client | ConfiguredMuxClient | None = None) -> None:
        self.host_config = host_config
        self.session_setup: SessionSetup = session_setup(host_config)
        #: The ProxyJump client this one runs through (closed with it).
        self.jump = jump
        super().__init__(sock, config, addr=addr, timeout=timeout)

    def close(self) -> None:
        """Close the connection, then the jump hosts it went through."""
        try:
            super().close()
        finally:
            if self.jump is not None:
                self.jump.close()

    def new_session(self, timeout: float | None = None) -> Session:
        """Open a session and send the SessionSetup requests before returning it.

        Each request is bounded by `timeout` (default 30 s); a refused
        environment variable is logged, other refusals raise RequestDeniedError.
        """
        return self._configured_session(timeout, self.session_setup)

    def sftp(self, timeout: float | None = 30) -> SFTPClient:
        """Client.sftp with the session options except RequestTTY (a pty would mangle the
        binary SFTP stream, so ssh's sftp(1) never asks for one)."""
        session = self._configured_session(timeout, replace(self.session_setup, pty=False))
        return SFTPClient.over_session(session, timeout, server_version=self.server_version,
                                       window=sftp_window(self.config.window_size))

    def _configured_session(self, timeout: float | None, setup: SessionSetup) -> Session:
        session = super().new_session(timeout)
        wait = timeout if timeout is not None else SETUP_TIMEOUT
        try:
            for name, value in setup.env.items():
                try:
                    session.setenv(name, value, timeout=wait)
                except RequestDeniedError:
                    log.debug("server refused environment variable %s", name)
            if setup.agent_forwarding:
                session.request_agent_forwarding(timeout=wait)
            if setup.pty:
                session.request_pty(setup.term, timeout=wait)
        except BaseException:
            session.close()
            raise
        return session


def resolve_for_connect(destination: str, *, port: int | None,
                        config_files: Sequence[str | os.PathLike[str] | ConfigFile] | None,
                        options: Mapping[str, str | int | bool] | None, user: str | None,
                        exec_runner: ExecRunner | None) -> HostConfig:
    """The HostConfig connect() uses (shared by both front-ends)."""
    return resolve(destination, user=user, port=port, config_files=config_files,
                   options=options, exec_runner=exec_runner)


def _family(hc: HostConfig) -> int:
    return {"inet": socket.AF_INET, "inet6": socket.AF_INET6}.get(hc.address_family, 0)


def open_socket(hc: HostConfig, timeout: float | None) -> socket.socket:
    """TCP to HostName:Port honouring AddressFamily and BindAddress."""
    try:
        infos = socket.getaddrinfo(hc.hostname, hc.port, _family(hc), socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectionLost(f"cannot resolve {hc.hostname!r}: {exc}") from exc
    last: OSError | None = None
    for af, kind, proto, _, sockaddr in infos:
        sock = socket.socket(af, kind, proto)
        try:
            sock.settimeout(timeout)
            if hc.bind_address:
                sock.bind((hc.bind_address, 0))
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    if isinstance(last, socket.timeout):
        raise Timeout(f"timed out connecting to {hc.hostname}:{hc.port}")
    raise ConnectionLost(f"cannot connect to {hc.hostname}:{hc.port}: {last}")


@overload
def connect(destination: str, *, port: int | None = None,
            config_files: Sequence[str | os.PathLike[str] | ConfigFile] | None = None,
            password: PasswordArg = None, passphrase: Passphrase = None,
            options: Mapping[str, str | int | bool] | None = None, user: str | None = None,
            timeout: float | None = None, exec_runner: ExecRunner | None = None,
            control_master: Literal[False], **connect_args: Any) -> ConfiguredClient: ...


@overload
def connect(destination: str, *, port: int | None = None,
            config_files: Sequence[str | os.PathLike[str] | ConfigFile] | None = None,
            password: PasswordArg = None, passphrase: Passphrase = None,
            options: Mapping[str, str | int | bool] | None = None, user: str | None = None,
            timeout: float | None = None, exec_runner: ExecRunner | None = None,
            control_master: bool = True,
            **connect_args: Any) -> ConfiguredClient | ConfiguredMuxClient: ...


def connect(destination: str, *, port: int | None = None,
            config_files: Sequence[str | os.PathLike[str] | ConfigFile] | None = None,
            password: PasswordArg = None, passphrase: Passphrase = None,
            options: Mapping[str, str | int | bool] | None = None, user: str | None = None,
            timeout: float | None = None, exec_runner: ExecRunner | None = None,
            control_master: bool = True,
            **connect_args: Any) -> ConfiguredClient | ConfiguredMuxClient:
    """Connect and authenticate to `destination` as ``ssh destination`` would.

    `destination` is an alias or host, ``user@host`` or
    ``ssh://[user@]host[:port]``.  `config_files` None reads ~/.ssh/config
    and /etc/ssh/ssh_config, ``[]`` none.  `options` are ssh_config
    keywords that win over the files (``{"StrictHostKeyChecking":
    "accept-new"}``).  `password` (or a callable returning it) serves
    password and keyboard-interactive auth; `passphrase` (or a callable
    given the key path) decrypts identity files.  Further keyword arguments
    go to ConnectArgs (host_key_callback, ask_host_key, auth, config).

    ControlMaster: with a ControlPath and ControlMaster ``no`` (the default),
    ``auto`` or ``autoask``, a running OpenSSH master at that path is used as
    ssh uses it, and the result is a ConfiguredMuxClient (sessions, dial,
    forwards and sftp over the master's connection; no authentication here).
    If nothing answers there (no socket, a stale one, a silent one within the
    timeout) or ControlMaster is ``yes``/``ask``, sshlib connects directly (it
    never becomes a master itself).  ``control_master=False`` always connects
    directly and is typed to return a ConfiguredClient.  The path taken is
    logged on the sshlib.client logger.

    `timeout` (default ConnectTimeout, else 30 s) bounds each attempt's
    connect + handshake + authentication (reaching a master: 10 s by
    default); ConnectionAttempts retries failed TCP connects.  Raises
    ConfigError for a bad configuration and the usual sshlib errors
    (AuthError, HostKeyError, ...).
    """
    hc = resolve_for_connect(destination, port=port, config_files=config_files,
                             options=options, user=user, exec_runner=exec_runner)
    return connect_host(hc, ConnectArgs(password=password, passphrase=passphrase,
                                        timeout=timeout, **connect_args),
                        control_master=control_master)


def connect_host(hc: HostConfig, args: ConnectArgs, *,
                 control_master: bool = True) -> ConfiguredClient | ConfiguredMuxClient:
    """connect() once the configuration is resolved: a master, or jump hosts, the connection
    and forwards."""
    path = master_path(hc, wanted=control_master)
    if path is not None and (shared := _via_master(hc, path, args)) is not None:
        return shared
    config, addr = hc.client_config(**vars(args))
    where = (hc.hostname, hc.port)
    jump_config = resolve_jump(hc)
    if jump_config is not None:
        jump = connect_host(jump_config, hop_args(args), control_master=control_master)
        try:
            stream = jump.dial("tcp", addr, timeout=config.timeout)
            client = ConfiguredClient(stream, config, addr=where, timeout=config.timeout,
                                      host_config=hc, jump=jump)
        except BaseException:
            jump.close()
            raise
    elif hc.proxy_command is not None:
        line = hc.proxy_command_line()
        assert line is not None
        client = ConfiguredClient(ProcessTransport(line), config, addr=where,
                                  timeout=config.timeout, host_config=hc)
    else:
        client = ConfiguredClient(_tcp(hc, config, addr), config, addr=where,
                                  timeout=config.timeout, host_config=hc)
    try:
        if target := hc.agent_forward_target():
            client.forward_agent(target)
        for request in hc.forward_requests():
            _start_forward(client, request, hc)
    except BaseException:
        client.close()
        raise
    return client


def _via_master(hc: HostConfig, path: str, args: ConnectArgs) -> ConfiguredMuxClient | None:
    """A ConfiguredMuxClient if the master at `path` answers HELLO and the alive check,
    None (logged) if nothing does: then connect() goes on directly, as ssh does."""
    from .mux.client import MuxClient
    from .mux.connected import ConfiguredMuxClient

    timeout = mux_timeout(hc, args.timeout)
    deadline = time.monotonic() + timeout  # HELLO and the alive check share it
    try:
        mux = MuxClient(path, timeout)
        try:
            pid = mux.check(max(0.0, deadline - time.monotonic()))
        except BaseException:
            mux.close()
            raise
    except MuxError as exc:
        log.info("no ControlMaster answers at %s (%s): connecting to %s:%d directly",
                 path, exc.reason, hc.hostname, hc.port)
        return None
    log.info("using the ControlMaster at %s (pid %d) for %s:%d", path, pid, hc.hostname,
             hc.port)
    # ssh's mux client asks for agent forwarding whenever ForwardAgent is on; the agent
    # is the master's (its own ForwardAgent decides), so no local endpoint is needed.
    setup = replace(session_setup(hc), agent_forwarding=bool(hc.forward_agent))
    client = ConfiguredMuxClient(mux, hc, setup)
    try:
        for request in hc.forward_requests():  # held by the master, as ssh's are
            _start_forward(mux, request, hc)
    except BaseException:
        client.close()
        raise
    return client


def _tcp(hc: HostConfig, config: ClientConfig, addr: str) -> socket.socket:
    attempts = max(1, hc.connection_attempts)
    for attempt in range(1, attempts + 1):
        try:
            return open_socket(hc, config.timeout)
        except (ConnectionLost, Timeout) as exc:
            if attempt == attempts:
                raise
            log.info("connecting to %s failed (%s); attempt %d of %d", addr, exc, attempt + 1,
                     attempts)
            time.sleep(RETRY_DELAY)
    raise AssertionError("unreachable")


def _start_forward(client: ConfiguredClient | MuxClient, request: ForwardRequest,
                   hc: HostConfig) -> None:
    try:
        if request.kind == "local":
            assert request.target is not None
            client.forward_local(request.listen, request.target)
        elif request.kind == "dynamic":
            client.forward_dynamic(request.listen)
        elif request.target is not None:
            client.forward_remote(request.listen, request.target)
        else:
            raise ValueError("RemoteForward with one argument (a remote SOCKS proxy) is not "
                             "supported by sshlib")
    except (SSHError, OSError, ValueError) as exc:
        forward_failed(hc, request, exc)
