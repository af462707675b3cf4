"""The sans-IO SSH client core.

Nothing in this package touches sockets, threads, asyncio, select, clocks or
randomness: bytes and time go in through method arguments, bytes and events
come out.  The front-ends (`sshlib.sync`, later `sshlib.aio`) do the I/O.
"""
