"""The server side of a SOCKS4, SOCKS4a and SOCKS5 CONNECT handshake, without I/O.

What `ssh -D` speaks to local programs.  Bytes from the SOCKS client go into
`SocksHandshake.receive_data()`; it returns a `SocksConnect` (where the client
wants to go) once a whole request has arrived, or None while it needs more
bytes.  Replies to send back come from `data_to_send()` (the SOCKS5 method
choice) and from `success()` / `failure()` once the caller knows whether the
target could be reached.  Only CONNECT without authentication is served:
BIND, UDP ASSOCIATE and authentication-only SOCKS5 clients get the refusal
the protocol defines, then a `SocksError` whose `reply` holds those bytes.

Input is bounded: a request is at most a few hundred bytes (user ids and
hostnames are capped at 255 bytes), and anything longer, or malformed, raises
`SocksError` before more is buffered.  Bytes the client sent after its
request (some clients send data optimistically) are kept in `leftover` for
the caller to forward.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from .errors import ChannelOpenError, SocksError, SSHError
from .messages import OPEN_ADMINISTRATIVELY_PROHIBITED, OPEN_CONNECT_FAILED

__all__ = [
    "SocksConnect",
    "SocksHandshake",
    "socks_reply_code",
    "SOCKS5_GENERAL_FAILURE",
    "SOCKS5_NOT_ALLOWED",
    "SOCKS5_NETWORK_UNREACHABLE",
    "SOCKS5_HOST_UNREACHABLE",
    "SOCKS5_CONNECTION_REFUSED",
    "SOCKS5_COMMAND_NOT_SUPPORTED",
    "SOCKS5_ADDRESS_NOT_SUPPORTED",
    "MAX_NAME",
]

#: Longest SOCKS4 user id or SOCKS4a hostname accepted (SOCKS5 names are at most 255 by format).
MAX_NAME = 255

SOCKS5_SUCCEEDED = 0x00
SOCKS5_GENERAL_FAILURE = 0x01
SOCKS5_NOT_ALLOWED = 0x02
SOCKS5_NETWORK_UNREACHABLE = 0x03
SOCKS5_HOST_UNREACHABLE = 0x04
SOCKS5_CONNECTION_REFUSED = 0x05
SOCKS5_COMMAND_NOT_SUPPORTED = 0x07
SOCKS5_ADDRESS_NOT_SUPPORTED = 0x08

SOCKS4_GRANTED = 0x5A
SOCKS4_REJECTED = 0x5B

_NO_AUTH = 0x00
_NO_ACCEPTABLE_METHOD = 0xFF
_CONNECT, _BIND, _UDP = 1, 2, 3
_COMMAND_NAMES = {_BIND: "BIND", _UDP: "UDP ASSOCIATE"}
_ATYP_V4, _ATYP_NAME, _ATYP_V6 = 1, 3, 4


@dataclass(frozen=True)
class SocksConnect:
    """A complete CONNECT request: `host` is an IP literal or a name (4a, SOCKS5 domain)."""

    version: int  # 4 (also for 4a) or 5
    host: str
    port: int
    user: str = ""  # the SOCKS4 user id (informational; never checked)


class SocksHandshake:
    """One SOCKS client's handshake; call receive_data() until it returns the request.

    Not thread-safe (one connection, one owner).  After a SocksError the
    handshake is over: send `error.reply` (if any) and close the connection.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._out = bytearray()
        self._version = 0
        self._greeted = False  # SOCKS5: the method negotiation is done
        self.request: SocksConnect | None = None
        self.leftover = b""

    def data_to_send(self) -> bytes:
        """Bytes owed to the client so far (the SOCKS5 method choice); empties the queue."""
        out, self._out = bytes(self._out), bytearray()
        return out

    def receive_data(self, data: bytes) -> SocksConnect | None:
        """Feed bytes; the request once complete, None while more are needed.

        Raises SocksError for a malformed, oversized or unsupported request, and
        at end of input (b"") before the request was complete.
        """
        if self.request is not None:
            raise SocksError("SOCKS request already complete")
        if not data:
            raise SocksError("SOCKS client closed the connection before its request was complete")
        self._buf += data
        if not self._version:
            self._version = self._buf[0]
            if self._version not in (4, 5):
                raise SocksError("not a SOCKS4 or SOCKS5 request "
                                 f"(first byte {self._version:#04x})")
        try:
            request = self._parse4() if self._version == 4 else self._parse5()
        except SocksError as exc:  # the method choice still owed goes out before the refusal
            exc.reply = self.data_to_send() + exc.reply
            raise
        if request is not None:
            self.request = request
        return request

    # --- replies, once the caller tried the target ---------------------------------------
    def success(self, bound: tuple[str, int] = ("0.0.0.0", 0)) -> bytes:
        """The reply telling the client its connection is open (`bound`: the address we used).

        Like failure(), it starts with whatever data_to_send() still held.
        """
        return self._reply(SOCKS5_SUCCEEDED, bound)

    def failure(self, code: int = SOCKS5_GENERAL_FAILURE) -> bytes:
        """The refusal for a request we could not serve (a SOCKS5_* code; SOCKS4 has one)."""
        return self._reply(code, ("0.0.0.0", 0))

    def _reply(self, code: int, bound: tuple[str, int]) -> bytes:
        owed = self.data_to_send()  # a method choice not yet sent goes first
        if self._version == 4:
            status = SOCKS4_GRANTED if code == SOCKS5_SUCCEEDED else SOCKS4_REJECTED
            return owed + _socks4_reply(status)
        return owed + _socks5_reply(code, bound)

    # --- SOCKS4 / 4a ------------------------------------------------------------------------
    def _parse4(self) -> SocksConnect | None:
        buf = self._buf
        if len(buf) < 8:
            return None
        command = buf[1]
        if command != _CONNECT:
            name = _COMMAND_NAMES.get(command, f"command {command}")
            raise SocksError(f"SOCKS4 {name} is not supported (only CONNECT)",
                             reply=_socks4_reply(SOCKS4_REJECTED))
        port = struct.unpack_from(">H", buf, 2)[0]
        address = bytes(buf[4:8])
        user_end = self._nul(8)
        if user_end < 0:
            return None
        user = buf[8:user_end].decode("utf-8", "replace")
        end = user_end + 1
        if address[:3] == b"\0\0\0" and address[3] != 0:  # 4a: a hostname follows
            name_end = self._nul(end)
            if name_end < 0:
                return None
            host = self._name(bytes(buf[end:name_end]))
            end = name_end + 1
        else:
            host = str(ipaddress.IPv4Address(address))
        return self._done(end, SocksConnect(4, host, port, user))

    def _nul(self, start: int) -> int:
        """Index of the NUL ending a field starting at `start`; -1 if not here yet."""
        end = self._buf.find(b"\0", start)
        if end < 0 and len(self._buf) - start > MAX_NAME:
            raise SocksError(f"SOCKS4 field longer than {MAX_NAME} bytes",
                             reply=_socks4_reply(SOCKS4_REJECTED))
        if end - start > MAX_NAME:
            raise SocksError(f"SOCKS4 field longer than {MAX_NAME} bytes",
                             reply=_socks4_reply(SOCKS4_REJECTED))
        return end

    # --- SOCKS5 ---------------------------------------------------------------------------
    def _parse5(self) -> SocksConnect | None:
        buf = self._buf
        if not self._greeted:
            if len(buf) < 2 or len(buf) < 2 + buf[1]:
                return None
            count = buf[1]
            methods = bytes(buf[2:2 + count])
            del buf[:2 + count]
            if _NO_AUTH not in methods:
                raise SocksError("the SOCKS5 client offers only authentication methods "
                                 f"{list(methods)}; only 'no authentication' is supported",
                                 reply=bytes([5, _NO_ACCEPTABLE_METHOD]))
            self._greeted = True
            self._out += bytes([5, _NO_AUTH])
        if len(buf) < 5:
            return None
        if buf[0] != 5:
            raise SocksError(f"bad SOCKS5 request version {buf[0]}",
                             reply=_socks5_reply(SOCKS5_GENERAL_FAILURE))
        command, atyp = buf[1], buf[3]
        if command != _CONNECT:
            name = _COMMAND_NAMES.get(command, f"command {command}")
            raise SocksError(f"SOCKS5 {name} is not supported (only CONNECT)",
                             reply=_socks5_reply(SOCKS5_COMMAND_NOT_SUPPORTED))
        if atyp == _ATYP_V4:
            end = 4 + 4
        elif atyp == _ATYP_V6:
            end = 4 + 16
        elif atyp == _ATYP_NAME:
            end = 5 + buf[4]
        else:
            raise SocksError(f"SOCKS5 address type {atyp} is not supported",
                             reply=_socks5_reply(SOCKS5_ADDRESS_NOT_SUPPORTED))
        if len(buf) < end + 2:
            return None
        raw = bytes(buf[4:end])
        if atyp == _ATYP_V4:
            host = str(ipaddress.IPv4Address(raw))
        elif atyp == _ATYP_V6:
            host = str(ipaddress.IPv6Address(raw))
        else:
            host = self._name(raw[1:])
        port = struct.unpack_from(">H", buf, end)[0]
        return self._done(end + 2, SocksConnect(5, host, port))

    # --- shared -------------------------------------------------------------------------------
    def _name(self, raw: bytes) -> str:
        try:
            host = raw.decode("ascii")
        except UnicodeDecodeError:
            host = ""
        if not host or not host.isprintable() or " " in host:
            raise SocksError(f"bad SOCKS hostname {raw[:64]!r}", reply=self.failure(
                SOCKS5_ADDRESS_NOT_SUPPORTED))
        return host

    def _done(self, end: int, request: SocksConnect) -> SocksConnect:
        if request.port == 0:
            raise SocksError("SOCKS request for port 0", reply=self.failure(SOCKS5_NOT_ALLOWED))
        self.leftover = bytes(self._buf[end:])
        self._buf.clear()
        return request


def _socks4_reply(status: int) -> bytes:
    return bytes([0, status]) + bytes(6)


def _socks5_reply(code: int, bound: tuple[str, int] = ("0.0.0.0", 0)) -> bytes:
    host, port = bound
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = ipaddress.IPv4Address(0)
    atyp = _ATYP_V4 if address.version == 4 else _ATYP_V6
    return bytes([5, code, 0, atyp]) + address.packed + struct.pack(">H", port)


def socks_reply_code(exc: SSHError) -> int:
    """The SOCKS5 reply code for a target we could not reach (the channel open failed)."""
    if isinstance(exc, ChannelOpenError):
        return {OPEN_ADMINISTRATIVELY_PROHIBITED: SOCKS5_NOT_ALLOWED,
                OPEN_CONNECT_FAILED: SOCKS5_CONNECTION_REFUSED}.get(exc.reason,
                                                                   SOCKS5_HOST_UNREACHABLE)
    return SOCKS5_GENERAL_FAILURE
