"""Session channel requests (RFC 4254 section 6): payload encoders.

Pure functions so that both front-ends encode requests identically.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..wire import Writer

# Terminal mode opcodes (RFC 4254 section 8), by the names users know from termios.
TERMINAL_MODES: dict[str, int] = {
    "VINTR": 1, "VQUIT": 2, "VERASE": 3, "VKILL": 4, "VEOF": 5, "VEOL": 6, "VEOL2": 7,
    "VSTART": 8, "VSTOP": 9, "VSUSP": 10, "VDSUSP": 11, "VREPRINT": 12, "VWERASE": 13,
    "VLNEXT": 14, "VFLUSH": 15, "VSWTCH": 16, "VSTATUS": 17, "VDISCARD": 18,
    "IGNPAR": 30, "PARMRK": 31, "INPCK": 32, "ISTRIP": 33, "INLCR": 34, "IGNCR": 35,
    "ICRNL": 36, "IUCLC": 37, "IXON": 38, "IXANY": 39, "IXOFF": 40, "IMAXBEL": 41,
    "IUTF8": 42, "ISIG": 50, "ICANON": 51, "XCASE": 52, "ECHO": 53, "ECHOE": 54,
    "ECHOK": 55, "ECHONL": 56, "NOFLSH": 57, "TOSTOP": 58, "IEXTEN": 59, "ECHOCTL": 60,
    "ECHOKE": 61, "PENDIN": 62, "OPOST": 70, "OLCUC": 71, "ONLCR": 72, "OCRNL": 73,
    "ONOCR": 74, "ONLRET": 75, "CS7": 90, "CS8": 91, "PARENB": 92, "PARODD": 93,
    "TTY_OP_ISPEED": 128, "TTY_OP_OSPEED": 129,
}
TTY_OP_END = 0

#: Signal names RFC 4254 6.10 defines (without the "SIG" prefix).
SIGNALS = frozenset({"ABRT", "ALRM", "FPE", "HUP", "ILL", "INT", "KILL", "PIPE", "QUIT",
                     "SEGV", "TERM", "USR1", "USR2"})


def encode_modes(modes: Mapping[str | int, int] | None) -> bytes:
    """Encode terminal modes; keys are names from TERMINAL_MODES or raw opcodes."""
    w = Writer()
    for key, value in (modes or {}).items():
        opcode = TERMINAL_MODES.get(key.upper()) if isinstance(key, str) else key
        if opcode is None or not 0 < opcode < 160:
            raise ValueError(f"unknown terminal mode {key!r}")
        w.byte(opcode).uint32(value)
    w.byte(TTY_OP_END)
    return w.getvalue()


def pty_request(term: str, height: int, width: int, modes: Mapping[str | int, int] | None,
                width_pixels: int = 0, height_pixels: int = 0) -> bytes:
    """Payload of a "pty-req" request: terminal type, size in characters (and pixels), modes.

    ValueError for an unknown terminal mode name or opcode.
    """
    return (Writer().string(term).uint32(width).uint32(height).uint32(width_pixels)
            .uint32(height_pixels).string(encode_modes(modes)).getvalue())


def window_change(height: int, width: int, width_pixels: int = 0, height_pixels: int = 0) -> bytes:
    """Payload of a "window-change" request (the new size; the server sends no reply)."""
    return (Writer().uint32(width).uint32(height).uint32(width_pixels).uint32(height_pixels)
            .getvalue())


def env(name: str, value: str) -> bytes:
    """Payload of an "env" request; many servers accept only the names their AcceptEnv lists."""
    return Writer().string(name).string(value).getvalue()


def exec_(command: str | bytes) -> bytes:
    """Payload of an "exec" request: the command line the server's shell runs."""
    return Writer().string(command).getvalue()


def subsystem(name: str) -> bytes:
    """Payload of a "subsystem" request ("sftp", ...)."""
    return Writer().string(name).getvalue()


def signal(name: str) -> bytes:
    """Payload of a "signal" request; `name` with or without "SIG", in any case.

    ValueError for a name RFC 4254 does not define (names with "@" pass as extensions).
    """
    if "@" in name:  # an extension name (RFC 4250 section 4.6.1): sent as given
        return Writer().string(name).getvalue()
    name = name.upper().removeprefix("SIG")
    if name not in SIGNALS:
        raise ValueError(f"unknown signal {name!r}; RFC 4254 names: {', '.join(sorted(SIGNALS))}")
    return Writer().string(name).getvalue()
