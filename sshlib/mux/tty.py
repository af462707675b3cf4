"""A local pty for a mux pty session, set up the way the master reads it.

The master takes the remote pty's modes from tcgetattr() and its size from
TIOCGWINSZ on the stdin descriptor we pass, so a pty session passes the
slave side of a local pty carrying the requested modes and size.  Once the
session is open the local pty goes raw (as ssh(1) puts its own terminal
in raw mode), so bytes pass through it unchanged; window changes set the
local size and send the master SIGWINCH, which makes it forward the size.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import sys
import termios
import tty
from collections.abc import Mapping
from typing import Any

from ..protocol.session import TERMINAL_MODES

if sys.platform == "win32":
    raise ImportError("sshlib.mux needs Unix sockets that pass descriptors (POSIX only)")

log = logging.getLogger("sshlib.mux")

__all__ = ["open_pty", "make_raw", "set_size"]

# RFC 4254 opcode ranges -> index of the termios attribute list they live in.
_RANGES = ((1, 18, 6), (30, 42, 0), (50, 62, 3), (70, 75, 1), (90, 93, 2))  # cc, i, l, o, c
_BY_OPCODE = {opcode: name for name, opcode in TERMINAL_MODES.items()}


def set_size(fd: int, height: int, width: int) -> None:
    """Set the terminal size of pty `fd` (TIOCSWINSZ; OSError if it is not a terminal).
    Nobody is told: `fds.resize` also signals the master."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def _apply_modes(attrs: list[Any], modes: Mapping[str | int, int]) -> None:
    for key, value in modes.items():
        name = key.upper() if isinstance(key, str) else _BY_OPCODE.get(key, "")
        opcode = TERMINAL_MODES.get(name)
        if opcode is None:
            raise ValueError(f"unknown terminal mode {key!r}")
        flag = getattr(termios, name, None)
        where = next((slot for low, high, slot in _RANGES if low <= opcode <= high), None)
        if flag is None or where is None:
            log.debug("terminal mode %s has no local termios equivalent; not passed on", name)
            continue
        if where == 6:
            attrs[6][flag] = bytes((value & 0xFF,))
        else:
            attrs[where] = (attrs[where] | flag) if value else (attrs[where] & ~flag)


def open_pty(height: int, width: int, modes: Mapping[str | int, int]) -> tuple[int, int]:
    """(our end, the end to pass) of a new pty with these modes and size."""
    ours, theirs = os.openpty()
    try:
        attrs = termios.tcgetattr(theirs)
        _apply_modes(attrs, modes)
        termios.tcsetattr(theirs, termios.TCSANOW, attrs)
        set_size(theirs, height, width)
    except BaseException:
        os.close(ours)
        os.close(theirs)
        raise
    return ours, theirs


def make_raw(fd: int) -> None:
    """Let bytes through the local pty unchanged (the remote pty does the terminal work)."""
    tty.setraw(fd, termios.TCSANOW)
