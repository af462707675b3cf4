"""Key constraints beyond lifetime and confirm: destinations, maxsign, extensions.

Destination constraints (``ssh-add -h``, OpenSSH >= 8.9) limit where an agent
key may be used: the agent only signs for a connection whose
``session-bind@openssh.com`` messages show a permitted hop, judged by host
keys (the hostnames are informational).  A `Destination` is one permitted
hop, ``from`` (empty: the machine running the agent) ``>`` ``to``, each with
its host keys.  Encoding (PROTOCOL.agent section 2, as OpenSSH's authfd.c
writes it): every hop is a string holding user, hostname, a reserved string
and then, unwrapped, one ``string keyblob, bool is_ca`` per host key; every
destination is a string holding from-hop, to-hop and a reserved string; the
constraint is ``0xff, "restrict-destination-v00@openssh.com", string(all
destinations)``.

`parse_destination` reads the ``ssh-add -h`` syntax (``host``, ``user@host``,
``user@``, ``from>to``, ``[host]:port``) and takes each host's keys from
known_hosts files (`default_known_hosts`, or the files given like ``-H``),
@cert-authority lines as CA keys and @revoked lines skipped, as ssh-add does.
The encoding functions are pure; only `parse_destination` reads files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..keys import PublicKey
from ..knownhosts import MARKER_CERT_AUTHORITY, KnownHosts
from ..wire import Writer
from . import protocol as p
from .paths import user_home

__all__ = [
    "RESTRICT_DESTINATION",
    "HostKeySpec",
    "Hop",
    "Destination",
    "destination_constraint",
    "maxsign_constraint",
    "extension_constraint",
    "parse_destination",
    "default_known_hosts",
]

RESTRICT_DESTINATION = "restrict-destination-v00@openssh.com"


@dataclass(frozen=True)
class HostKeySpec:
    """A host key a hop is recognised by; `is_ca`: a CA that signs host certificates."""

    key: PublicKey
    is_ca: bool = False


@dataclass(frozen=True)
class Hop:
    """One end of a permitted hop: user (only on the `to` side), hostname and host keys.

    An empty Hop as `Destination.from_hop` means the machine the agent runs on.
    """

    user: str | None = None
    hostname: str | None = None
    keys: tuple[HostKeySpec, ...] = ()

    def encode(self) -> bytes:
        """The hop as PROTOCOL.agent's restrict-destination constraint carries it (a string)."""
        writer = Writer().string(self.user or "").string(self.hostname or "").string(b"")
        for spec in self.keys:
            writer.string(spec.key.blob).boolean(spec.is_ca)
        return Writer().string(writer.getvalue()).getvalue()


@dataclass(frozen=True)
class Destination:
    """One permitted hop for a destination-constrained key (``ssh-add -h from>to``)."""

    to: Hop
    from_hop: Hop = field(default_factory=Hop)

    def __post_init__(self) -> None:
        if self.from_hop.user:
            raise ValueError("a destination's 'from' hop cannot name a user")
        if not self.to.hostname and not self.to.user:
            raise ValueError("a destination needs a host or a user")

    def encode(self) -> bytes:
        """This destination inside the constraint: from-hop, to-hop, reserved, as one string."""
        body = self.from_hop.encode() + self.to.encode() + Writer().string(b"").getvalue()
        return Writer().string(body).getvalue()


def destination_constraint(destinations: Sequence[Destination]) -> bytes:
    """The ``restrict-destination-v00@openssh.com`` constraint for these hops."""
    if not destinations:
        raise ValueError("a destination constraint needs at least one destination")
    body = b"".join(d.encode() for d in destinations)
    return (Writer(p.SSH_AGENT_CONSTRAIN_EXTENSION).string(RESTRICT_DESTINATION).string(body)
            .getvalue())


def maxsign_constraint(count: int) -> bytes:
    """SSH_AGENT_CONSTRAIN_MAXSIGN: the agent signs at most `count` times with the key."""
    if not 0 < count <= 0xFFFFFFFF:
        raise ValueError(f"maxsign must be 1..{0xFFFFFFFF}, not {count}")
    return Writer(p.SSH_AGENT_CONSTRAIN_MAXSIGN).uint32(count).getvalue()


def extension_constraint(name: str, body: bytes = b"") -> bytes:
    """SSH_AGENT_CONSTRAIN_EXTENSION `name` with its extension-specific `body` (raw)."""
    if not name or not name.isascii():
        raise ValueError(f"bad constraint extension name {name!r}")
    return Writer(p.SSH_AGENT_CONSTRAIN_EXTENSION).string(name).raw(body).getvalue()


def default_known_hosts() -> list[str]:
    """The files ``ssh-add -h`` reads without ``-H``, ~ from the passwd entry like OpenSSH."""
    home = user_home()
    return [os.path.join(home, ".ssh", "known_hosts"), os.path.join(home, ".ssh", "known_hosts2"),
            "/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]


def _host_and_port(host: str) -> tuple[str, int]:
    """``[h]:p`` -> (h, p); anything else is the literal host on port 22."""
    if host.startswith("[") and "]:" in host:
        name, _, port = host[1:].rpartition("]:")
        if port.isdigit():
            return name, int(port)
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1], 22
    return host, 22


def _parse_hop(text: str, known_hosts: KnownHosts, spec: str) -> Hop:
    user, at, host = text.rpartition("@")
    if not at:
        user, host = "", text
    if not host:
        if not user:
            raise ValueError(f"destination {spec!r} names no user or host")
        return Hop(user=user)
    name, port = _host_and_port(host)
    keys = tuple(HostKeySpec(e.key, e.marker == MARKER_CERT_AUTHORITY)
                 for e in known_hosts.lookup(name, port)
                 if e.marker in (None, MARKER_CERT_AUTHORITY))
    if not keys:
        raise ValueError(f"no host keys found for destination {host!r} (in "
                         f"{', '.join(known_hosts.sources) or 'no known_hosts file'})")
    return Hop(user=user or None, hostname=host, keys=keys)


def parse_destination(spec: str, known_hosts: Sequence[str] | None = None) -> Destination:
    """A `Destination` from ``ssh-add -h`` syntax, host keys from `known_hosts` files.

    `known_hosts` defaults to `default_known_hosts()`; missing files are
    empty.  ValueError (with the reason) for a bad spec or a host without keys.
    """
    db = KnownHosts.from_files(default_known_hosts() if known_hosts is None else known_hosts)
    first, arrow, second = spec.partition(">")
    if not arrow:
        return Destination(to=_parse_hop(first, db, spec))
    from_hop = _parse_hop(first, db, spec)
    if from_hop.user:
        raise ValueError(f"destination {spec!r}: cannot name a user on the 'from' host")
    return Destination(to=_parse_hop(second, db, spec), from_hop=from_hop)
