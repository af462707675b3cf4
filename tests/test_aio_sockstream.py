"""SocketStream, the asyncio Client's socket: bounded buffering, exact bytes, typed failures.

Real loopback TCP sockets; the peer is a plain thread-free asyncio server.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from sshlib.aio.sockstream import STREAM_LIMIT, open_socket_stream


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _server(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_reader_that_stops_reading_bounds_the_buffer_and_loses_nothing() -> None:
    payload = os.urandom(8 * STREAM_LIMIT)

    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(payload)
            await writer.drain()
            writer.close()

        server, port = await _server(handler)
        async with server:
            stream = await open_socket_stream("127.0.0.1", port)
            await asyncio.sleep(0.5)  # the peer pushes as fast as it can; nobody reads
            assert stream.buffered <= STREAM_LIMIT + 512 * 1024, stream.buffered
            got = hashlib.sha256()
            total = 0
            while chunk := await stream.read(256 * 1024):
                assert len(chunk) <= 256 * 1024
                got.update(chunk)
                total += len(chunk)
            assert total == len(payload)
            assert got.digest() == hashlib.sha256(payload).digest()
            assert await stream.read(10) == b""  # EOF stays EOF
            stream.close()
            await asyncio.wait_for(stream.wait_closed(), 5)

    run(main())


def test_a_reset_is_an_oserror_from_read_and_drain() -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # RST instead of FIN

        server, port = await _server(handler)
        async with server:
            stream = await open_socket_stream("127.0.0.1", port)
            with pytest.raises(OSError):
                while await stream.read(1024):
                    pass
                # some kernels report the reset as EOF first; writing then fails
                stream.write(b"x" * 65536)
                await asyncio.sleep(0.1)
                await stream.drain()
                await stream.read(1024)
            with pytest.raises(ConnectionResetError):
                await stream.drain()

    run(main())


def test_read_splits_a_chunk_only_when_asked_for_less() -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"abcdefgh")
            await writer.drain()
            writer.close()

        server, port = await _server(handler)
        async with server:
            stream = await open_socket_stream("127.0.0.1", port)
            first = await stream.read(3)
            rest = await stream.read(-1)
            while more := await stream.read(-1):
                rest += more
            assert first == b"abc" and rest == b"defgh"
            assert stream.get_extra_info("peername")[1] == port
            stream.close()

    run(main())
