"""Micro-benchmark of the sans-IO core's receive and send paths, no network, no threads.

Not a test.  Run: ``python benchmarks/core_micro.py [--mib N] [--ciphers a,b]``.

A `ClientConnection` is put straight into the state after authentication
(keys installed by hand, one session channel open), then for each cipher:

* download: N MiB of CHANNEL_DATA packets (32 KiB, as sshd sends them), sealed
  in advance by a server-side sealer, are fed to ``receive_data`` in 256 KiB
  slices (like ``recv`` returns them); the front-end's part is imitated by
  ``connection.consume`` per event and ``data_to_send`` per slice;
* upload: ``connection.send_data`` in 256 KiB pieces (window topped up by hand) and
  ``data_to_send`` after each, as the threaded front-end's write() does.

Reported: this process's CPU seconds per GiB of payload (best of --rounds),
i.e. the core's share of "client CPU per GiB" in benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sshlib import ClientConfig, cipher
from sshlib import messages as m
from sshlib.protocol.client import ClientConnection
from sshlib.protocol.events import ChannelDataReceived
from sshlib.wire import Writer

CIPHERS = [
    ("chacha20-poly1305@openssh.com", None),
    ("aes128-gcm@openssh.com", None),
    ("aes256-gcm@openssh.com", None),
    ("aes128-ctr", "hmac-sha2-256-etm@openssh.com"),
]
PACKET = 32 * 1024
RECV = 256 * 1024
WRITE = 256 * 1024  # the threaded front-end's write() hands the core 256 KiB at a time


def _keys(name: str, mac: str | None, seed: bytes) -> tuple[bytes, bytes, bytes]:
    """Fixed keys per cipher, so wire bytes can be cached across runs (--wire-cache)."""
    key_len, iv_len, mac_len = cipher.key_lengths(name, mac)
    raw = hashlib.shake_256(seed + name.encode()).digest(key_len + iv_len + mac_len)
    return raw[:key_len], raw[key_len:key_len + iv_len], raw[key_len + iv_len:]


def connected(name: str, mac: str | None) -> tuple[ClientConnection, int, cipher.PacketSealer]:
    """A core that believes it is authenticated, with channel 0 open; + the server's sealer."""
    config = ClientConfig(user="bench", ciphers=[name], macs=[mac] if mac else None,
                          rekey_bytes=1 << 62)
    core = ClientConnection(config, rng=os.urandom, now=0.0)
    core.data_to_send()
    core.receive_data(b"SSH-2.0-OpenSSH_9.2\r\n")  # starts the handshake object
    hs = core._handshake
    assert hs is not None
    hs.first_kex_done = True
    hs._our_kexinit = None
    core.authenticated = True
    s2c = _keys(name, mac, b"s2c")
    c2s = _keys(name, mac, b"c2s")
    server_sealer = cipher.new_sealer(name, mac, *s2c, os.urandom)
    core._packets.set_opener(cipher.new_opener(name, mac, *s2c), reset_seq=True)
    core._packets.set_sealer(cipher.new_sealer(name, mac, *c2s, os.urandom), reset_seq=True)
    channel = core.connection.open_channel("session")
    confirm = (Writer(m.MSG_CHANNEL_OPEN_CONFIRMATION).uint32(channel).uint32(7)
               .uint32(1 << 31).uint32(PACKET).getvalue())
    events = core.receive_data(server_sealer.seal(0, confirm))
    assert len(events) == 1, events
    core.data_to_send()
    return core, channel, server_sealer


def download(name: str, mac: str | None, nbytes: int, cache: str = "") -> float:
    core, channel, sealer = connected(name, mac)
    count = nbytes // PACKET
    path = Path(cache) / f"{name}-{mac}-{count}.bin" if cache else None
    if path is not None and path.exists():
        wire = path.read_bytes()
    else:
        head = Writer(m.MSG_CHANNEL_DATA).uint32(channel).uint32(PACKET).getvalue()
        payload = head + os.urandom(PACKET)
        wire = b"".join(sealer.seal(seq, payload) for seq in range(1, count + 1))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(wire)
    view = memoryview(wire)
    reads = [view[pos:pos + RECV].tobytes() for pos in range(0, len(wire), RECV)]
    del wire, view
    consume = core.connection.consume
    got = 0
    start = time.process_time()
    for data in reads:
        for event in core.receive_data(data):
            assert isinstance(event, ChannelDataReceived)
            got += len(event.data)
            consume(channel, len(event.data))
        core.data_to_send()
    elapsed = time.process_time() - start
    assert got == count * PACKET and not core.closed, (got, core.error)
    return elapsed * (1 << 30) / got


def upload(name: str, mac: str | None, nbytes: int) -> float:
    core, channel, _sealer = connected(name, mac)
    state = core.connection._channels[channel]
    data = memoryview(bytes(WRITE))
    sent = 0
    start = time.process_time()
    while sent < nbytes:
        state.remote_window = 1 << 31
        sent += core.connection.send_data(channel, data)
        core.data_to_send()
    elapsed = time.process_time() - start
    return elapsed * (1 << 30) / sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=128, help="MiB per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ciphers", default="", help="comma-separated subset")
    parser.add_argument("--only", choices=("download", "upload"), default=None)
    parser.add_argument("--wire-cache", default="",
                        help="directory to keep the sealed download stream in between runs "
                             "(for instruction counts: run twice, compare under callgrind)")
    args = parser.parse_args()
    wanted = [c for c in CIPHERS if not args.ciphers or c[0] in args.ciphers.split(",")]
    nbytes = args.mib << 20
    print(f"core CPU s per GiB of payload, {args.mib} MiB, best of {args.rounds}")
    print(f"{'cipher':32s} {'download':>9s} {'upload':>9s}")
    for name, mac in wanted:
        down = up = float("nan")
        if args.only != "upload":
            down = min(download(name, mac, nbytes, args.wire_cache) for _ in range(args.rounds))
        if args.only != "download":
            up = min(upload(name, mac, nbytes) for _ in range(args.rounds))
        print(f"{name + (' + ' + mac if mac else ''):32s} {down:9.3f} {up:9.3f}")


if __name__ == "__main__":
    main()
