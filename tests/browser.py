"""A headless Chromium (Debian's /usr/bin/chromium) driven over the DevTools protocol.

No browser download and no websocket library: Chromium's `--remote-debugging-pipe` speaks
the DevTools protocol as NUL-terminated JSON over file descriptors 3 (commands in) and 4
(replies and events out). Enough for the docs tests: open a page, wait for its load event,
evaluate JavaScript (promises awaited) and return its JSON value.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio",
         "--window-size=1280,900"]


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("Chromium is missing: apt-get install chromium (scripts/test.sh does)")


class BrowserError(RuntimeError):
    pass


class Browser:
    """One Chromium process with one page; not thread-safe (one test drives it)."""

    def __init__(self, timeout: float = 30.0) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="sshlib-chromium-")
        cmd_r, cmd_w = os.pipe()  # we write commands; Chromium reads them on its fd 3
        out_r, out_w = os.pipe()  # Chromium writes on its fd 4; we read
        # Above 10, so bash's "3<&N 4>&M" cannot clobber one with the other.
        child_in = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
        child_out = fcntl.fcntl(out_w, fcntl.F_DUPFD, 10)
        self._proc = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$0" "$@" 3<&{child_in} 4>&{child_out} '
             f"{child_in}<&- {child_out}>&-",
             find_chromium(), *FLAGS, f"--user-data-dir={self._profile.name}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            pass_fds=(child_in, child_out))
        for fd in (cmd_r, out_w, child_in, child_out):
            os.close(fd)
        self._w, self._r = cmd_w, out_r
        self._buf = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self.timeout = timeout
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self.call("Target.attachToTarget",
                                      {"targetId": target, "flatten": True})["sessionId"]
            self.call("Page.enable", session=True)
            self.call("Runtime.enable", session=True)
        except BaseException:
            self.close()
            raise

    # --- the pipe -------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._w, data):]

    def _recv(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("Chromium did not answer in time")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    err = self._proc.stderr.read().decode(errors="replace") if \
                        self._proc.stderr and self._proc.poll() is not None else ""
                    raise BrowserError(f"Chromium closed the DevTools pipe: {err[-2000:]}")
                self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             session: bool = False, timeout: float | None = None) -> dict[str, Any]:
        """One DevTools command; its result, or BrowserError with Chromium's error."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session:
            message["sessionId"] = self._session
        self._send(message)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._recv(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._events.append(reply)

    def _wait_event(self, method: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self._events):
                if ev["method"] == method:
                    return self._events.pop(i)
            self._events.append(self._recv(deadline))

    # --- what the tests use ---------------------------------------------------------------

    def open(self, url: str) -> None:
        """Navigates and waits for the load event (images and iframes loaded)."""
        self._events.clear()
        result = self.call("Page.navigate", {"url": url}, session=True)
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")
        self._wait_event("Page.loadEventFired", self.timeout)

    def evaluate(self, expression: str, timeout: float | None = None) -> Any:
        """The JSON value of `expression` in the page (a promise is awaited)."""
        result = self.call("Runtime.evaluate",
                           {"expression": expression, "awaitPromise": True,
                            "returnByValue": True}, session=True, timeout=timeout)
        if "exceptionDetails" in result:
            raise BrowserError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        """Uncaught exceptions the page has thrown since the last open()."""
        return [json.dumps(e["params"])[:500] for e in self._events
                if e["method"] == "Runtime.exceptionThrown"]

    def screenshot(self) -> bytes:
        import base64

        return base64.b64decode(self.call("Page.captureScreenshot", session=True)["data"])

    def close(self) -> None:
        try:
            if self._proc.poll() is None:
                try:
                    self._send({"id": 0, "method": "Browser.close", "params": {}})
                    self._proc.wait(10)
                except (OSError, subprocess.TimeoutExpired):
                    self._proc.kill()
                    self._proc.wait(10)
        finally:
            for fd in (self._w, self._r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            if self._proc.stderr:
                self._proc.stderr.close()
            self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
