"""Ending a ProxyCommand's process after its connection closed, the same for both front-ends.

The command runs in a session of its own (``start_new_session``).  Once its
socket or pipes are closed it gets `EXIT_GRACE` seconds to exit by itself (a
relay such as ``ssh -W`` or ``socat`` sees end of file and does); then its
whole process group gets SIGTERM, then SIGKILL (`STEPS`), so a command that
ignores both end of file and SIGTERM, and anything it started in the
background, cannot keep a close() waiting: the front-ends' close returns
within about `EXIT_GRACE + TERM_GRACE` seconds.  On Windows the steps are
TerminateProcess on the command itself.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Protocol

__all__ = ["EXIT_GRACE", "TERM_GRACE", "KILL_WAIT", "STEPS", "send"]

EXIT_GRACE = 0.2  # seconds the command may take to exit by itself after end of file
TERM_GRACE = 0.5  # seconds between SIGTERM and SIGKILL
KILL_WAIT = 1.0   # seconds to wait for the exit after SIGKILL before giving up (logged)

#: (what to send first, None: nothing; then how long to wait for the exit), in order.
STEPS: tuple[tuple[str | None, float], ...] = (
    (None, EXIT_GRACE), ("terminate", TERM_GRACE), ("kill", KILL_WAIT))


class _Killable(Protocol):
    """What both subprocess.Popen and asyncio.subprocess.Process offer."""

    @property
    def pid(self) -> int: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


def send(process: _Killable, how: str) -> None:
    """Send `how` ("terminate" or "kill") to the command's process group (errors ignored).

    Call it only while the command has not been reaped (its pid, and so its group id, is still
    its own then).
    """
    try:
        if sys.platform == "win32":
            process.terminate() if how == "terminate" else process.kill()
        else:
            os.killpg(process.pid, signal.SIGTERM if how == "terminate" else signal.SIGKILL)
    except OSError:  # already gone (ProcessLookupError), or not ours any more
        pass
