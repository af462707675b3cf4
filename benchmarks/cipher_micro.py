"""Micro-benchmark of sshlib.cipher: seal + open throughput for 32 KiB payloads.

Not a test.  Run: ``python benchmarks/cipher_micro.py [--packets N] [--size BYTES]``.
Prints, per cipher/MAC pair, payload MB/s (10**6 bytes) for seal alone, open
alone (packet_length + open, as the transport calls them; derived as
(seal+open) - seal) and both in turn, so designs can be compared on the same
machine.  Times are this process's CPU time (what "client CPU per GiB"
means, and robust to other load on the machine); best of several rounds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sshlib import cipher

PAIRS: list[tuple[str, str | None]] = [
    ("none", None),
    ("chacha20-poly1305@openssh.com", None),
    ("aes128-gcm@openssh.com", None),
    ("aes256-gcm@openssh.com", None),
    ("aes128-ctr", "hmac-sha2-256-etm@openssh.com"),
    ("aes256-ctr", "hmac-sha2-256-etm@openssh.com"),
    ("aes256-ctr", "hmac-sha2-512-etm@openssh.com"),
    ("aes128-ctr", "hmac-sha2-256"),
    ("aes256-ctr", "hmac-sha2-512"),
]


def make(name: str, mac: str | None) -> tuple[cipher.PacketSealer, cipher.PacketOpener]:
    if name == "none":
        return cipher.plaintext_sealer(os.urandom), cipher.plaintext_opener()
    key_len, iv_len, mac_len = cipher.key_lengths(name, mac)
    key, iv, mac_key = os.urandom(key_len), os.urandom(iv_len), os.urandom(mac_len)
    return (cipher.new_sealer(name, mac, key, iv, mac_key, os.urandom),
            cipher.new_opener(name, mac, key, iv, mac_key))


def bench(name: str, mac: str | None, packets: int, size: int,
          rounds: int) -> tuple[float, float, float]:
    """Seconds per round -> MB/s for seal alone, open alone and both in turn.

    Sealed packets are dropped as they are made (keeping thousands of them alive
    would measure the allocator), so open's time is (seal+open) - seal.
    """
    payload = os.urandom(size)
    out = memoryview(bytearray(size + cipher.SEAL_OVERHEAD))  # as PacketLayer reuses its buffer
    best_seal = best_both = float("inf")
    for _ in range(rounds):
        sealer, opener = make(name, mac)
        start = time.process_time()
        for seq in range(packets):
            sealer.seal_into(seq, payload, out)
        best_seal = min(best_seal, time.process_time() - start)
        # Interleaved, as the two ends of a loopback connection would do it.
        sealer, opener = make(name, mac)
        head = opener.head_size
        start = time.process_time()
        for seq in range(packets):
            wire = out[:sealer.seal_into(seq, payload, out)]
            opener.packet_length(seq, wire[:head].tobytes())
            opener.open(seq, wire)
        best_both = min(best_both, time.process_time() - start)
    total = packets * size / 1e6
    return total / best_seal, total / max(best_both - best_seal, 1e-9), total / best_both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=3000)
    parser.add_argument("--size", type=int, default=32 * 1024)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"payload {args.size} bytes, {args.packets} packets, best of {args.rounds}")
    print(f"{'cipher':32s} {'mac':32s} {'seal':>8s} {'open':>8s} {'seal+open':>10s}  MB/s")
    for name, mac in PAIRS:
        seal, opened, both = bench(name, mac, args.packets, args.size, args.rounds)
        print(f"{name:32s} {mac or '-':32s} {seal:8.0f} {opened:8.0f} {both:10.0f}")


if __name__ == "__main__":
    main()
