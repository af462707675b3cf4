"""Local services and a second SSH server for the forwarding tests.

- `EchoServer`: TCP or Unix echo (one thread per connection; EOF -> half-close).
- `SourceServer`: sends zeros to every connection until the peer goes away,
  counting what the kernel accepted (the "server keeps sending" side).
- `HTTPServer`: python's http.server on 127.0.0.1 serving one file.
- `AsyncsshServer`: asyncssh's SSH server in a thread of its own, allowing
  direct-tcpip, tcpip-forward and the streamlocal variants, with pubkey auth
  for the test user's key.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

import asyncssh

import sshlib


class EchoServer:
    """Echoes every byte back; at EOF half-closes its side. TCP (127.0.0.1) or a Unix path."""

    def __init__(self, unix_path: str | None = None) -> None:
        if unix_path is None:
            self.sock = socket.create_server(("127.0.0.1", 0), backlog=256)
            host, port = self.sock.getsockname()[:2]
            self.address: Any = (host, port)
            self.spec = f"{host}:{port}"
        else:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(unix_path)
            os.chmod(unix_path, 0o777)  # sshd connects as the (unprivileged) login user
            self.sock.listen(256)
            self.address = unix_path
            self.spec = f"unix:{unix_path}"
        self.connections = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(256 * 1024):
                    conn.sendall(data)
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


class SourceServer:
    """Writes zeros to each connection until it fails; `sent` counts accepted bytes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.spec = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.sent = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        chunk = bytes(65536)
        with conn:
            try:
                while True:
                    self.sent += conn.send(chunk)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


class HTTPServer:
    """http.server on 127.0.0.1:<free port> serving `directory` (one thread per request)."""

    def __init__(self, directory: Path) -> None:
        handler = _handler_for(str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler_for(directory: str) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=directory, **kwargs)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler


def shared_tempdir(prefix: str) -> Path:
    """A temp dir the sshd login user (the sshlibtest account when root) can enter."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o777)
    return path


class _Server(asyncssh.SSHServer):
    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str,
                             orig_port: int) -> bool:
        return True

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return True

    def unix_connection_requested(self, dest_path: str) -> bool:
        return True

    def unix_server_requested(self, listen_path: str) -> bool:
        return True


class AsyncsshServer:
    """asyncssh's SSH server on 127.0.0.1 in a background event loop thread."""

    def __init__(self, user: str, authorized_key_line: str) -> None:
        self.user = user
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.host_public_key = sshlib.parse_openssh_public_key(
            host_key.export_public_key().decode())
        authorized = asyncssh.import_authorized_keys(authorized_key_line + "\n")

        async def start() -> asyncssh.SSHAcceptor:
            return await asyncssh.listen(
                "127.0.0.1", 0, server_host_keys=[host_key], server_factory=_Server,
                authorized_client_keys=authorized, allow_scp=False)

        self.acceptor = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)
        self.host = "127.0.0.1"
        self.port = self.acceptor.get_port()

    def close(self) -> None:
        async def stop() -> None:
            self.acceptor.close()
            await self.acceptor.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
