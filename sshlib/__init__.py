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
    SSHError,
    Timeout,
    UnknownHostKeyError,
)
from .keys import (
    PrivateKey,
    PublicKey,
    Signer,
    load_private_key,
    load_public_key,
    parse_openssh_public_key,
    parse_private_key,
    parse_public_key,
)
from .protocol.version import __version__
from .sync import Client, Listener, NewChannel, Session, Stream, dial

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
    "Listener",
    "NewChannel",
    "Stream",
]
