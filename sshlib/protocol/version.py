"""Identification string exchange (RFC 4253 section 4.2).

The server may send other lines before its version line; we accept a bounded
number of them so that a peer flooding us with junk cannot make us buffer
without limit.
"""

from __future__ import annotations

from ..errors import ProtocolError

__version__ = "0.1.0"
CLIENT_VERSION = f"SSH-2.0-sshlib_{__version__}".encode("ascii")

MAX_VERSION_LINE = 255  # including CR LF (RFC 4253 4.2)
MAX_PRE_BANNER_LINE = 8192
MAX_PRE_BANNER_LINES = 1024
MAX_PRE_BANNER_BYTES = 64 * 1024


class VersionExchange:
    """Collects the server's identification line from incoming bytes."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._seen_bytes = 0
        self.pre_banner_lines: list[str] = []
        self.server_version: bytes | None = None

    def feed(self, data: bytes) -> bytes | None:
        """Consume bytes; once the version line is complete return what follows it."""
        self._buffer += data
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                limit = (MAX_VERSION_LINE if self._buffer.startswith(b"SSH-")
                         else MAX_PRE_BANNER_LINE)
                if len(self._buffer) > limit:
                    raise ProtocolError("server identification line too long")
                return None
            if newline > MAX_PRE_BANNER_LINE:
                raise ProtocolError("line before the server identification is too long")
            line = bytes(self._buffer[:newline])
            del self._buffer[:newline + 1]
            self._seen_bytes += newline + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.startswith(b"SSH-"):
                if len(line) + 2 > MAX_VERSION_LINE:
                    raise ProtocolError("server identification line longer than 255 bytes")
                self._check(line)
                self.server_version = line
                rest = bytes(self._buffer)
                self._buffer.clear()
                return rest
            if (len(self.pre_banner_lines) >= MAX_PRE_BANNER_LINES
                    or self._seen_bytes > MAX_PRE_BANNER_BYTES):
                raise ProtocolError("too many lines before the server identification")
            if b"\0" in line:
                raise ProtocolError("NUL byte in pre-identification line")
            self.pre_banner_lines.append(line.decode("utf-8", "replace"))

    @staticmethod
    def _check(line: bytes) -> None:
        parts = line.split(b"-", 2)
        if len(parts) < 3 or not parts[2]:
            raise ProtocolError(f"malformed server identification {line[:80]!r}")
        if parts[1] not in (b"2.0", b"1.99"):
            raise ProtocolError(f"unsupported SSH protocol version {parts[1][:20]!r}")
        if any(c < 0x20 or c > 0x7E for c in line):
            raise ProtocolError("server identification contains non-printable bytes")
