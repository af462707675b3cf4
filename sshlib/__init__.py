"""sshlib: a pure-Python SSH client with a sans-IO core and a Go-shaped API.

    import sshlib
    cfg = sshlib.ClientConfig(user="alice",
                              auth=[sshlib.PublicKeys(sshlib.load_private_key("~/.ssh/id_ed25519"))],
                              host_key_callback=sshlib.knownhosts.callback("~/.ssh/known_hosts"))
    with sshlib.dial("tcp", "example.com:22", cfg) as client:
        with client.new_session() as s:
            print(s.output("uname -a"))
"""

from typing import TYPE_CHECKING, Any

from . import algorithms, errors, knownhosts
from .algorithms import Algorithms
from .config import (
    AuthMethod,
    ClientConfig,
    KeyboardInteractive,
    Password,
    Prompt,
    PublicKeys,
    fixed_host_key,
    insecure_ignore_host_key,
)
from .errors import (
    AuthError,
    ChannelClosedError,
    ChannelOpenError,
    ConnectionLost,
    DisconnectError,
    ExitError,
    ExitMissingError,
    HostKeyError,
    HostKeyMismatchError,
    KeyLoadError,
    PassphraseRequiredError,
    ProtocolError,
    RequestDeniedError,
    SFTPError,
    SFTPFileExistsError,
    SFTPIsADirectoryError,
    SFTPNoSuchFileError,
    SFTPNotADirectoryError,
    SFTPPermissionError,
    SFTPProtocolError,
    SFTPUnsupportedError,
    SSHError,
    Timeout,
    UnknownHostKeyError,
)
from .keys import (
    Certificate,
    CertSigner,
    PrivateKey,
    PublicKey,
    Signer,
    load_certificate,
    load_private_key,
    load_public_key,
    parse_openssh_public_key,
    parse_private_key,
    parse_public_key,
)
from .protocol.version import __version__
from .sftp.attrs import SFTPAttributes, SFTPName, SFTPVFSAttributes
from .sync import Client, Listener, NewChannel, Session, Stream, dial
from .sync.sftp import SFTPClient, SFTPFile

if TYPE_CHECKING:
    from . import agent, mux


def __getattr__(name: str) -> Any:
    """`sshlib.agent` and `sshlib.mux` load on first use: most programs need neither."""
    if name in ("agent", "mux"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "__version__",
    "agent",
    "mux",
    "algorithms",
    "errors",
    "knownhosts",
    "Algorithms",
    "AuthMethod",
    "ClientConfig",
    "KeyboardInteractive",
    "Password",
    "Prompt",
    "PublicKeys",
    "fixed_host_key",
    "insecure_ignore_host_key",
    "AuthError",
    "ChannelClosedError",
    "ChannelOpenError",
    "ConnectionLost",
    "DisconnectError",
    "ExitError",
    "ExitMissingError",
    "HostKeyError",
    "HostKeyMismatchError",
    "KeyLoadError",
    "PassphraseRequiredError",
    "ProtocolError",
    "SSHError",
    "Timeout",
    "UnknownHostKeyError",
    "PrivateKey",
    "PublicKey",
    "Signer",
    "load_private_key",
    "load_public_key",
    "parse_openssh_public_key",
    "parse_private_key",
    "parse_public_key",
    "Client",
    "RequestDeniedError",
    "Session",
    "dial",
    "Certificate",
    "CertSigner",
    "load_certificate",
    "Listener",
    "NewChannel",
    "Stream",
    "SFTPError",
    "SFTPFileExistsError",
    "SFTPIsADirectoryError",
    "SFTPNoSuchFileError",
    "SFTPNotADirectoryError",
    "SFTPPermissionError",
    "SFTPProtocolError",
    "SFTPUnsupportedError",
    "SFTPAttributes",
    "SFTPName",
    "SFTPVFSAttributes",
    "SFTPClient",
    "SFTPFile",
]

# OpenSSH configuration: sshlib.connect("alias") and sshlib.sshconfig (issue 11)
from . import sshconfig  # noqa: E402
from .connect import connect  # noqa: E402
from .errors import ConfigError  # noqa: E402

__all__ += ["connect", "sshconfig", "ConfigError"]
