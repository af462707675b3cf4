"""Every exception sshlib raises on purpose.

One base class (`SSHError`) so callers can catch everything from the library
with one clause, and specific subclasses so they don't have to parse messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # keys imports errors; the annotation is all we need
    from .keys import PublicKey

__all__ = [
    "SSHError",
    "ProtocolError",
    "DecodeError",
    "MACError",
    "KexError",
    "AuthError",
    "HostKeyError",
    "UnknownHostKeyError",
    "HostKeyMismatchError",
    "KeyLoadError",
    "PassphraseRequiredError",
    "DisconnectError",
    "ConnectionLost",
    "ChannelOpenError",
    "ChannelClosedError",
    "RequestDeniedError",
    "ExitError",
    "ExitMissingError",
    "Timeout",
    "AgentError",
    "AgentConnectError",
    "AgentUnsupportedError",
    "AgentProtocolError",
    "AgentRefusedError",
    "AgentTimeoutError",
    "CertificateError",
    "HostCertificateError",
    "SFTPError",
    "SFTPNoSuchFileError",
    "SFTPPermissionError",
    "SFTPFileExistsError",
    "SFTPIsADirectoryError",
    "SFTPNotADirectoryError",
    "SFTPUnsupportedError",
    "SFTPProtocolError",
    "ConfigError",
    "ForwardingError",
    "SocksError",
    "MuxError",
    "MuxConnectError",
    "MuxProtocolError",
    "MuxRefusedError",
    "MuxTimeoutError",
]


class SSHError(Exception):
    """Base class of every error sshlib raises on purpose."""


class ProtocolError(SSHError):
    """The peer broke the SSH protocol (or sent something we cannot accept)."""

    #: SSH_DISCONNECT_* reason code we send the peer when this ends a connection.
    disconnect_reason: int = 2  # SSH_DISCONNECT_PROTOCOL_ERROR


class DecodeError(ProtocolError):
    """A message was truncated, had trailing bytes, or a field was malformed."""


class MACError(ProtocolError):
    """A packet failed its integrity check (MAC or AEAD tag)."""

    disconnect_reason = 5  # SSH_DISCONNECT_MAC_ERROR


class KexError(ProtocolError):
    """Key exchange failed: no common algorithm, bad signature, bad public value."""

    disconnect_reason = 3  # SSH_DISCONNECT_KEY_EXCHANGE_FAILED


class AuthError(SSHError):
    """The server accepted none of the authentication methods we could offer."""

    def __init__(self, message: str, *, allowed: list[str] | None = None,
                 tried: list[str] | None = None) -> None:
        super().__init__(message)
        self.allowed = list(allowed or [])
        self.tried = list(tried or [])


class HostKeyError(SSHError):
    """The server's host key was rejected by the host key callback.

    `host`/`port` say which server, `key` is the key it offered and `known`
    the keys known_hosts has for it (Go's KeyError.Want), so an application
    can offer trust-on-first-use or show both fingerprints without parsing
    the message.  Callbacks that raise a bare HostKeyError leave them unset.
    """

    def __init__(self, message: str, *, host: str | None = None, port: int | None = None,
                 key: PublicKey | None = None, known: Sequence[PublicKey] = ()) -> None:
        super().__init__(message)
        self.host = host
        self.port = port
        self.key = key
        self.known: tuple[PublicKey, ...] = tuple(known)


class UnknownHostKeyError(HostKeyError):
    """No known_hosts entry exists for this host (fail closed)."""


class HostKeyMismatchError(HostKeyError):
    """known_hosts has a different key for this host: possible man in the middle."""


class KeyLoadError(SSHError):
    """A private or public key could not be parsed or decrypted."""


class PassphraseRequiredError(KeyLoadError):
    """The key file is encrypted and no passphrase was given."""


class DisconnectError(SSHError):
    """The peer sent SSH_MSG_DISCONNECT."""

    def __init__(self, reason: int, description: str) -> None:
        super().__init__(f"disconnected by peer (reason {reason}): {description}")
        self.reason = reason
        self.description = description


class ConnectionLost(SSHError, ConnectionError):
    """The transport closed or failed underneath us."""


class ChannelOpenError(SSHError):
    """The server refused to open a channel."""

    def __init__(self, reason: int, description: str) -> None:
        super().__init__(f"channel open failed (reason {reason}): {description}")
        self.reason = reason
        self.description = description


class RequestDeniedError(SSHError):
    """The server refused a channel request (env, pty-req, exec, agent forwarding, ...)."""


class ChannelClosedError(SSHError):
    """The channel was closed; no more data can be sent or requests made on it."""


class ExitError(SSHError):
    """A remote command finished with a non-zero status or was killed by a signal."""

    def __init__(self, exit_status: int | None, signal: str | None = None,
                 message: str = "", stderr: bytes = b"") -> None:
        if signal is not None:
            text = f"remote command killed by signal {signal}"
            if message:
                text += f": {message}"
        else:
            text = f"remote command exited with status {exit_status}"
        super().__init__(text)
        self.exit_status = exit_status
        self.signal = signal
        self.message = message
        self.stderr = stderr


class ExitMissingError(SSHError):
    """The channel closed without the server reporting an exit status."""


class Timeout(SSHError, TimeoutError):
    """A blocking call did not complete within its timeout."""


class AgentError(SSHError):
    """Talking to an SSH agent failed; `endpoint` says which agent (see sshlib.agent)."""

    def __init__(self, message: str, *, endpoint: str | None = None) -> None:
        super().__init__(f"agent {endpoint}: {message}" if endpoint else message)
        self.endpoint = endpoint
        self.reason = message


class AgentConnectError(AgentError):
    """The agent could not be reached, its handshake failed, or the connection broke."""


class AgentUnsupportedError(AgentConnectError):
    """This kind of agent endpoint is not available on this platform or build."""


class AgentProtocolError(AgentError):
    """The agent sent a reply we cannot accept: unknown type, truncated, oversized."""


class AgentRefusedError(AgentError):
    """The agent answered FAILURE (unknown key, locked, denied, unsupported request)."""


class AgentTimeoutError(AgentError, Timeout):
    """The agent did not answer within the timeout."""


class CertificateError(SSHError):
    """An OpenSSH certificate cannot be used; `reason` says which check failed.

    `reason` is one of the class constants (EXPIRED, NOT_YET_VALID,
    WRONG_PRINCIPAL, WRONG_TYPE, REVOKED, UNKNOWN_CA, BAD_SIGNATURE,
    UNSUPPORTED_OPTION); `certificate` is the certificate, when there is one.
    Host certificate failures raise `HostCertificateError`, which is also a
    HostKeyError.
    """

    EXPIRED = "expired"
    NOT_YET_VALID = "not yet valid"
    WRONG_PRINCIPAL = "wrong principal"
    WRONG_TYPE = "wrong type"
    REVOKED = "revoked"
    UNKNOWN_CA = "unknown CA"
    BAD_SIGNATURE = "bad signature"
    UNSUPPORTED_OPTION = "unsupported critical option"

    def __init__(self, message: str, *, reason: str, certificate: object = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.certificate = certificate


class HostCertificateError(CertificateError, HostKeyError):
    """A server's host certificate was refused (a CertificateError and a HostKeyError)."""

    def __init__(self, message: str, *, reason: str, certificate: object = None,
                 host: str | None = None, port: int | None = None,
                 key: PublicKey | None = None, known: Sequence[PublicKey] = ()) -> None:
        HostKeyError.__init__(self, message, host=host, port=port, key=key, known=known)
        self.reason = reason
        self.certificate = certificate


# --- SFTP (sshlib.sftp) ----------------------------------------------------------------------

class SFTPError(SSHError, OSError):
    """An SFTP request failed: `code` is the SSH_FX_* status, `message` the server's text.

    Also an OSError (`errno`, `strerror`, `filename` set), and the subclasses
    below are the matching built-ins, so ``except FileNotFoundError:`` works.
    """

    errno_value: int = 5  # EIO

    def __init__(self, code: int, message: str, path: str | None = None) -> None:
        text = message or f"SFTP status {code}"
        if path is None:
            super().__init__(self.errno_value, text)
        else:
            super().__init__(self.errno_value, text, path)
        self.code = code
        self.message = message


class SFTPNoSuchFileError(SFTPError, FileNotFoundError):
    """SSH_FX_NO_SUCH_FILE (2): the path does not exist."""

    errno_value = 2


class SFTPPermissionError(SFTPError, PermissionError):
    """SSH_FX_PERMISSION_DENIED (3)."""

    errno_value = 13


class SFTPFileExistsError(SFTPError, FileExistsError):
    """The path already exists (SSH_FX_FILE_ALREADY_EXISTS, or a FAILURE we diagnosed)."""

    errno_value = 17


class SFTPIsADirectoryError(SFTPError, IsADirectoryError):
    """The path is a directory where a file was needed."""

    errno_value = 21


class SFTPNotADirectoryError(SFTPError, NotADirectoryError):
    """A path component (or the path itself) is not a directory where one was needed."""

    errno_value = 20


class SFTPUnsupportedError(SFTPError):
    """SSH_FX_OP_UNSUPPORTED, or an extension the server did not offer."""

    errno_value = 95  # EOPNOTSUPP


class SFTPProtocolError(ProtocolError):
    """The SFTP server broke the protocol: bad length, unknown request id, wrong reply type."""


class ConfigError(SSHError):
    """An OpenSSH configuration file (ssh_config) is wrong: `filename` and `line` say where.

    `line` is 0 when the problem is not on one line (a file that cannot be
    read, an option given as a keyword argument).
    """

    def __init__(self, message: str, *, filename: str | None = None, line: int = 0) -> None:
        where = f"{filename} line {line}: " if filename and line else (
            f"{filename}: " if filename else "")
        super().__init__(where + message)
        self.filename = filename
        self.line = line
        self.reason = message


class ForwardingError(SSHError):
    """A port forwarder could not listen locally or reach its local target (see OSError cause)."""


class SocksError(SSHError):
    """A SOCKS client (of forward_dynamic) sent a malformed or unsupported request.

    `reply` holds the refusal the SOCKS protocol defines for it (may be empty);
    the forwarder sends it and closes that one connection.
    """

    def __init__(self, message: str, *, reply: bytes = b"") -> None:
        super().__init__(message)
        self.reply = reply


class MuxError(SSHError):
    """Talking to an OpenSSH ControlMaster (sshlib.mux) failed; `path` is its ControlPath."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(f"mux master {path}: {message}" if path else message)
        self.path = path
        self.reason = message


class MuxConnectError(MuxError, ConnectionLost):
    """No master answers at the ControlPath (missing, stale socket, master gone), or it hung up."""


class MuxProtocolError(MuxError, ProtocolError):
    """The master sent something the mux protocol does not allow (garbage, wrong version)."""


class MuxRefusedError(MuxError):
    """The master answered MUX_S_FAILURE or MUX_S_PERMISSION_DENIED (`permission_denied`)."""

    def __init__(self, message: str, *, path: str | None = None,
                 permission_denied: bool = False) -> None:
        super().__init__(message, path=path)
        self.permission_denied = permission_denied


class MuxTimeoutError(MuxError, Timeout):
    """The master did not answer within the timeout."""
