"""Property tests: the decoders only ever return data or raise sshlib's ProtocolError.

Random and half-valid byte streams, cut at random points, go into the packet
framing (`PacketLayer`, with every packet cipher), the identification-line
reader (`VersionExchange`) and a whole sans-IO `ClientConnection` (before key
exchange, and after a real handshake with tests/fakeserver.py, encrypted).
Nothing may raise anything else, nothing may buffer much more than one maximal
packet, and the result must not depend on how the stream was cut.
"""

from __future__ import annotations

import hashlib
import itertools
import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fakeserver import CHANNEL_DATA, ServerSide, run_core, sshstr, u32
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sshlib
from sshlib import algorithms as algs
from sshlib import cipher
from sshlib.errors import DisconnectError, ProtocolError, SSHError
from sshlib.protocol import events as ev
from sshlib.protocol.client import ClientConnection
from sshlib.protocol.packets import MAX_PACKET_LENGTH, PacketLayer
from sshlib.protocol.version import (
    MAX_PRE_BANNER_BYTES,
    MAX_PRE_BANNER_LINE,
    MAX_VERSION_LINE,
    VersionExchange,
)

pytestmark = pytest.mark.timeout(300)

FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(max_examples=100, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# (cipher, mac) for every packet protection sshlib supports; None = the "none" cipher.
SUITES: list[tuple[str, str | None] | None] = [
    None,
    *[(c, None) for c in sorted(algs.AEAD_CIPHERS)],
    *[(c, m) for c in algs.SUPPORTED_CIPHERS if c not in algs.AEAD_CIPHERS
      for m in algs.SUPPORTED_MACS],
]
SUITE_IDS = ["none" if s is None else f"{s[0]}+{s[1]}" for s in SUITES]


# --- helpers ---------------------------------------------------------------------------------

def key_material(suite: tuple[str, str | None], seed: bytes) -> tuple[bytes, bytes, bytes]:
    name, mac = suite
    key_len, iv_len, mac_len = cipher.key_lengths(name, mac)
    raw = hashlib.shake_256(seed).digest(key_len + iv_len + mac_len)
    return raw[:key_len], raw[key_len:key_len + iv_len], raw[key_len + iv_len:]


def opener_for(suite: tuple[str, str | None] | None, seed: bytes) -> cipher.PacketOpener:
    if suite is None:
        return cipher.plaintext_opener()
    key, iv, mac_key = key_material(suite, seed)
    return cipher.new_opener(suite[0], suite[1], key, iv, mac_key)


def sealer_for(suite: tuple[str, str | None] | None, seed: bytes) -> cipher.PacketSealer:
    if suite is None:
        return cipher.plaintext_sealer(os.urandom)
    key, iv, mac_key = key_material(suite, seed)
    return cipher.new_sealer(suite[0], suite[1], key, iv, mac_key, os.urandom)


def wire_head(suite: tuple[str, str | None] | None, seed: bytes, length: int) -> bytes:
    """The first bytes of a packet whose packet_length decrypts to `length` (sequence number 0).

    Built with `cryptography` directly (not sshlib.cipher) from the specs: the
    length is in clear for none/GCM/ETM, encrypted with the K_1 ChaCha20
    instance for chacha20-poly1305, and the first CTR block for aes-ctr.
    """
    if suite is None or suite[0] in (algs.CIPHER_AES128_GCM, algs.CIPHER_AES256_GCM) \
            or (suite[1] or "").endswith("-etm@openssh.com"):
        return u32(length)
    key, iv, _ = key_material(suite, seed)
    if suite[0] == algs.CIPHER_CHACHA20_POLY1305:
        nonce = bytes(8) + (0).to_bytes(8, "big")  # block counter 0, sequence number 0
        return Cipher(algorithms.ChaCha20(key[32:], nonce), mode=None).encryptor().update(
            u32(length))
    first_block = u32(length) + bytes(12)
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor().update(first_block)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """`data` cut at the given offsets (any order, duplicates and out-of-range ignored)."""
    edges = sorted({p for p in points if 0 < p < len(data)})
    bounds = [0, *edges, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


cuts = st.lists(st.integers(min_value=0, max_value=1 << 18), max_size=24)


def frame_plain(payload: bytes, padlen: int | None = None, plen: int | None = None) -> bytes:
    """RFC 4253 6 framing with the none cipher, optionally with lying header fields."""
    pad = 8 - (5 + len(payload)) % 8
    if pad < 4:
        pad += 8
    return (u32(1 + len(payload) + pad if plen is None else plen)
            + bytes((pad if padlen is None else padlen,)) + payload + bytes(pad))


# A plausible-looking frame: sometimes valid, sometimes lying about one field.
frames = st.one_of(
    st.builds(frame_plain, st.binary(min_size=1, max_size=64)),
    st.builds(frame_plain, st.binary(max_size=64), st.integers(0, 255)),
    st.builds(frame_plain, st.binary(max_size=64), st.none(),
              st.integers(0, 80) | st.integers(0, 2**32 - 1)),
    st.binary(max_size=24),
)
plain_streams = st.lists(frames, max_size=8).map(b"".join)


# --- PacketLayer ----------------------------------------------------------------------------------

@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
@FEW
@given(seed=st.binary(min_size=1, max_size=8), stream=st.binary(max_size=3000) | plain_streams,
       points=cuts)
def test_packet_layer_random_stream(suite: tuple[str, str | None] | None, seed: bytes,
                                    stream: bytes, points: list[int]) -> None:
    """Random bytes: payloads or ProtocolError, and never more than one packet buffered."""
    opener = opener_for(suite, seed)
    layer = PacketLayer(os.urandom)
    layer.set_opener(opener, reset_seq=True)
    fed = 0
    try:
        for chunk in cut(stream, points):
            layer.feed(chunk)
            fed += len(chunk)
            while (item := layer.next_payload()) is not None:
                assert isinstance(item[1], bytes)
            buffered = fed - layer.bytes_in
            assert buffered < 4 + MAX_PACKET_LENGTH + opener.mac_size + max(opener.head_size, 4)
    except ProtocolError:
        pass


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
@FEW
@given(seed=st.binary(min_size=1, max_size=8),
       length=st.integers(MAX_PACKET_LENGTH + 1, 2**32 - 1) | st.integers(0, 4))
def test_packet_layer_refuses_bad_length_from_the_head_alone(
        suite: tuple[str, str | None] | None, seed: bytes, length: int) -> None:
    """An impossible packet_length is refused as soon as it can be read, before any body."""
    layer = PacketLayer(os.urandom)
    layer.set_opener(opener_for(suite, seed), reset_seq=True)
    layer.feed(wire_head(suite, seed, length))
    with pytest.raises(ProtocolError):
        layer.next_payload()


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
@FEW
@given(seed=st.binary(min_size=1, max_size=8),
       length=st.integers(5, MAX_PACKET_LENGTH), short=st.integers(1, 64))
def test_packet_layer_waits_for_a_plausible_length(
        suite: tuple[str, str | None] | None, seed: bytes, length: int, short: int) -> None:
    """Control for the test above: an allowed length makes it wait for the rest, quietly."""
    opener = opener_for(suite, seed)
    layer = PacketLayer(os.urandom)
    layer.set_opener(opener, reset_seq=True)
    head = wire_head(suite, seed, length)
    total = 4 + length + opener.mac_size
    layer.feed(head + bytes(max(0, total - short - len(head))))
    assert layer.next_payload() is None


payload_lists = st.lists(
    st.binary(min_size=1, max_size=300)
    | st.integers(1, MAX_PACKET_LENGTH - 64).map(lambda n: bytes((n % 251,)) * n),
    min_size=1, max_size=10)


@pytest.mark.parametrize("suite", SUITES[1:], ids=SUITE_IDS[1:])
@FEW
@given(seed=st.binary(min_size=1, max_size=8), payloads=payload_lists,
       switch=st.integers(0, 10), reset=st.booleans(), points=cuts)
def test_round_trip_with_key_change_and_random_splits(
        suite: tuple[str, str | None], seed: bytes, payloads: list[bytes], switch: int,
        reset: bool, points: list[int]) -> None:
    """Plaintext packets, then (as after NEWKEYS) sealed ones: all come out, in order."""
    sender = PacketLayer(os.urandom)
    receiver = PacketLayer(os.urandom)
    for index, payload in enumerate(payloads):
        if index == switch:
            sender.set_sealer(sealer_for(suite, seed), reset_seq=reset)
        sender.send(payload)
    wire = sender.data_to_send()
    received: list[tuple[int, bytes]] = []
    switched = False
    for chunk in cut(wire, points):
        receiver.feed(chunk)
        while True:
            if len(received) == switch and not switched:
                receiver.set_opener(opener_for(suite, seed), reset_seq=reset)
                switched = True
            item = receiver.next_payload()
            if item is None:
                break
            received.append(item)
    assert [p for _, p in received] == payloads
    expected = [i if not reset or i < switch else i - switch for i in range(len(payloads))]
    assert [seq for seq, _ in received] == expected
    assert receiver.bytes_in == len(wire)


# --- identification line -------------------------------------------------------------------------

version_lines = st.one_of(
    st.binary(max_size=40).filter(lambda b: b"\n" not in b).map(lambda b: b + b"\r\n"),
    st.integers(0, 8300).map(lambda n: b"x" * n + b"\n"),  # MAX_PRE_BANNER_LINE is 8192
    st.sampled_from([b"SSH-2.0-OpenSSH_9.9\r\n", b"SSH-1.99-old\n", b"SSH-1.5-older\r\n",
                     b"SSH-2.0-\r\n", b"SSH-2.0-x y\x01\r\n", b"SSH-2.0-" + b"a" * 260 + b"\r\n",
                     b"SSH-2.0-" + b"a" * 245 + b"\r\n", b"\r\n", b"\n"]),
)
version_streams = st.tuples(st.lists(version_lines, max_size=12),
                            st.binary(max_size=16)).map(lambda t: b"".join(t[0]) + t[1])


def version_outcome(chunks: list[bytes]) -> tuple[str, bytes | None, bytes]:
    """('ok', version line, everything after it) / ('error', None, b'') / ('more', None, b'')."""
    exchange = VersionExchange()
    fed = 0
    for index, chunk in enumerate(chunks):
        try:
            rest = exchange.feed(chunk)
        except ProtocolError:
            return ("error", None, b"")
        fed += len(chunk)
        if rest is not None:
            return ("ok", exchange.server_version, rest + b"".join(chunks[index + 1:]))
        # Still waiting: what it holds is bounded whatever the server sends.
        assert fed <= MAX_PRE_BANNER_BYTES + MAX_PRE_BANNER_LINE + MAX_VERSION_LINE
    return ("more", None, b"")


@FUZZ
@given(stream=version_streams, points=cuts)
def test_version_exchange_does_not_depend_on_segmentation(stream: bytes, points: list[int]) -> None:
    """ProtocolError or a version line, the same one however TCP happens to cut the stream."""
    whole = version_outcome([stream])
    pieces = version_outcome(cut(stream, points))
    bytewise = version_outcome([stream[i:i + 1] for i in range(len(stream))]) \
        if len(stream) < 3000 else pieces
    assert pieces == whole
    assert bytewise == whole


def test_pre_banner_line_limit_does_not_depend_on_segmentation() -> None:
    """A 10,000-byte pre-banner line is over MAX_PRE_BANNER_LINE however it arrives."""
    stream = b"x" * 10_000 + b"\r\nSSH-2.0-ok\r\n"
    assert version_outcome([stream]) == version_outcome([stream[:5000], stream[5000:]]) == (
        "error", None, b"")


# --- a whole ClientConnection --------------------------------------------------------------------

def new_core() -> ClientConnection:
    config = sshlib.ClientConfig(user="fuzz", host_key_callback=sshlib.insecure_ignore_host_key())
    return ClientConnection(config, rng=os.urandom, now=0.0)


def check_terminated_properly(core: ClientConnection, events: list[ev.Event]) -> None:
    """At most one ConnectionTerminated, last, with an SSHError; the core stays quiet after."""
    ends = [i for i, e in enumerate(events) if isinstance(e, ev.ConnectionTerminated)]
    assert len(ends) <= 1
    if ends:
        assert ends[0] == len(events) - 1
        end = events[-1]
        assert isinstance(end, ev.ConnectionTerminated)
        assert isinstance(end.error, SSHError)
        assert core.closed and core.error is end.error
        assert core.receive_data(b"more") == []
        assert core.connection_lost() == []
    core.data_to_send()


def feed_core(core: ClientConnection, chunks: list[bytes]) -> list[ev.Event]:
    events: list[ev.Event] = []
    for chunk in chunks:
        events += core.receive_data(chunk)
    return events


@FUZZ
@given(stream=st.binary(max_size=4000) | plain_streams, points=cuts, eof=st.booleans())
def test_core_random_bytes_after_version(stream: bytes, points: list[int], eof: bool) -> None:
    core = new_core()
    core.data_to_send()
    events = core.receive_data(b"SSH-2.0-Fuzz\r\n")
    events += feed_core(core, cut(stream, points))
    if eof:
        events += core.receive_data(b"")
        assert core.closed
    check_terminated_properly(core, events)


NAMES = [*algs.SUPPORTED_KEX, *algs.SUPPORTED_HOST_KEY, *algs.SUPPORTED_CIPHERS,
         *algs.SUPPORTED_MACS, "none", "zlib", algs.KEX_STRICT_SERVER, "x" * 300, ""]
name_lists = st.lists(st.sampled_from(NAMES), max_size=4).map(
    lambda names: sshstr(",".join(names)))
kexinits = st.builds(
    lambda lists, follows, tail: bytes((20,)) + bytes(16) + b"".join(lists) + follows + tail,
    st.lists(name_lists, min_size=10, max_size=10), st.sampled_from([b"\x00", b"\x01"]),
    st.sampled_from([u32(0), b"", u32(0) + b"x"]))
fields = st.one_of(
    st.sampled_from([0, 1, 2, 0x7FFFFFFF, 0xFFFFFFFF]).map(u32),
    st.integers(0, 2**32 - 1).map(u32),
    st.binary(max_size=40).map(sshstr),
    st.sampled_from(["exit-status", "exit-signal", "keepalive@openssh.com", "ssh-userauth",
                     "session", "KILL", "server-sig-algs"]).map(sshstr),
    st.sampled_from([b"\x00", b"\x01"]),
    st.binary(max_size=8),
)
message_types = st.one_of(st.integers(0, 255), st.sampled_from(
    [1, 2, 3, 4, 5, 6, 7, 20, 21, 30, 31, 50, 51, 52, 53, 60, 80, 81, 82, *range(90, 101)]))
payloads = st.one_of(
    st.builds(lambda t, parts: bytes((t,)) + b"".join(parts), message_types,
              st.lists(fields, max_size=7)),
    kexinits,
)


@FUZZ
@given(messages=st.lists(payloads, min_size=1, max_size=8), points=cuts)
def test_core_random_messages_before_kex(messages: list[bytes], points: list[int]) -> None:
    """Well-framed plaintext packets with half-valid payloads reach the dispatcher."""
    core = new_core()
    core.data_to_send()
    stream = b"SSH-2.0-Fuzz\r\n" + b"".join(frame_plain(p) for p in messages)
    events = feed_core(core, cut(stream, points))
    check_terminated_properly(core, events)


def _ready(server: ServerSide) -> None:
    server.handshake()
    server.accept_auth()


@FEW
@given(messages=st.lists(payloads, min_size=1, max_size=6), points=cuts,
       strict=st.booleans())
def test_core_random_encrypted_messages_after_auth(messages: list[bytes], points: list[int],
                                                   strict: bool) -> None:
    """After a real handshake and an open channel (id 0), random messages under aes-gcm."""
    def ready(s: ServerSide) -> None:
        s.handshake(strict=strict)
        s.accept_auth()

    server, pipe = run_core(ready)
    core = pipe.core
    assert core.authenticated
    channel_id = core.connection.open_channel("session")
    channel = server.expect_channel_open(window=1 << 16, max_packet=1024)
    assert channel_id == channel.client_id == 0
    before = len(pipe.events)
    server.send_payload(bytes((CHANNEL_DATA,)) + u32(0) + sshstr(b"hello"))
    wire = b"".join(server.seal(p) for p in messages)
    for chunk in cut(wire, points):
        pipe.send(chunk)  # ClientConnection.receive_data: must never raise
    error = pipe.error
    if isinstance(error, ProtocolError):
        # The client's DISCONNECT is correctly framed, encrypted and gives the right reason.
        assert server.expect_disconnect()[0] == error.disconnect_reason
    elif error is None:
        assert not core.closed
    else:  # the server's own DISCONNECT: the client must not answer it with another
        assert isinstance(error, DisconnectError)
        assert b"\x01" not in {p[:1] for p in server.received}
    check_terminated_properly(core, pipe.events[before:])


def test_fuzz_harness_can_see_a_working_session() -> None:
    """Control: the same set-up, with well-formed traffic, ends in data and no error."""
    server, pipe = run_core(_ready)
    pipe.core.connection.open_channel("session")
    channel = server.expect_channel_open()
    server.send_data(channel, b"hello")
    server.send_exit_status(channel, 0)
    data = [e for e in pipe.events if isinstance(e, ev.ChannelDataReceived)]
    status = [e for e in pipe.events if isinstance(e, ev.ExitStatusReceived)]
    assert [d.data for d in data] == [b"hello"] and [s.status for s in status] == [0]
    assert pipe.error is None

