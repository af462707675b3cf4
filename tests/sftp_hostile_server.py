"""A scripted hostile SFTP server: sshd runs it as the sftp subsystem (stdlib only).

    python3 sftp_hostile_server.py SCENARIO

It answers INIT with VERSION 3 (no extensions), then misbehaves as SCENARIO says.
"""

import struct
import sys

inp = sys.stdin.buffer
out = sys.stdout.buffer


def read_packet() -> bytes:
    head = inp.read(4)
    if len(head) < 4:
        sys.exit(0)
    (n,) = struct.unpack(">I", head)
    return inp.read(n)


def send(body: bytes) -> None:
    out.write(struct.pack(">I", len(body)) + body)
    out.flush()


def status(rid: int, code: int = 0) -> bytes:
    return bytes([101]) + struct.pack(">II", rid, code) + struct.pack(">I", 2) + b"ok" \
        + struct.pack(">I", 0)


def main(scenario: str) -> None:
    read_packet()  # INIT
    send(bytes([2]) + struct.pack(">I", 3))
    if scenario == "unsolicited":
        send(status(77))
    while True:
        pkt = read_packet()
        kind, rid = pkt[0], struct.unpack(">I", pkt[1:5])[0]
        if scenario == "wrong-id":
            send(status(rid + 1000))
        elif scenario == "oversized":
            out.write(struct.pack(">I", 0x7FFFFFFF) + bytes([104]) + struct.pack(">I", rid))
            out.write(b"\0" * 65536)
            out.flush()
        elif scenario == "huge-name":
            send(bytes([104]) + struct.pack(">II", rid, 0xFFFFFFFF) + b"\0" * 40)
        elif scenario == "truncated":
            out.write(struct.pack(">I", 100) + bytes([105]) + struct.pack(">I", rid))
            out.flush()
            sys.exit(0)
        elif scenario in ("stall", "data-too-long"):
            if kind == 3:  # OPEN: a handle
                send(bytes([102]) + struct.pack(">II", rid, 1) + b"h")
            elif kind == 17:  # STAT: a 10 MiB file
                send(bytes([105]) + struct.pack(">II", rid, 1) + struct.pack(">Q", 10 << 20))
            elif kind == 5:  # READ
                (length,) = struct.unpack(">I", pkt[-4:])
                if scenario == "stall":  # never answer; leave once sshd closes our stdin
                    while inp.read(65536):
                        pass
                    sys.exit(0)
                data = b"x" * (length + 100)
                send(bytes([103]) + struct.pack(">II", rid, len(data)) + data)
            else:
                send(status(rid))
        else:
            send(status(rid))


if __name__ == "__main__":
    main(sys.argv[1])
