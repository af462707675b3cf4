"""Local services and a second SSH server for the forwarding tests.

- `EchoServer`: test_streams' echo service, on TCP or a Unix path, with its spec.
- `SourceServer`: sends zeros to every connection until the peer goes away,
  counting what the kernel accepted (the "server keeps sending" side).
- `HTTPServer`: python's http.server on 127.0.0.1 serving one file.

asyncssh's server (the second implementation) is test_streams_asyncssh's.
"""

from __future__ import annotations

import http.server
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from test_streams import EchoServer as StreamsEchoServer


class EchoServer(StreamsEchoServer):
    """test_streams' echo service on 127.0.0.1 or a Unix path, with its spec and address."""

    def __init__(self, unix_path: str | None = None) -> None:
        if unix_path is None:
            sock = socket.create_server(("127.0.0.1", 0), backlog=256)
            host, port = sock.getsockname()[:2]
            self.address: Any = (host, port)
            self.spec = f"{host}:{port}"
        else:
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(unix_path)
            os.chmod(unix_path, 0o777)  # sshd connects as the (unprivileged) login user
            sock.listen(256)
            self.address = unix_path
            self.spec = f"unix:{unix_path}"
        super().__init__(sock)


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
