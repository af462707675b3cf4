"""Smoke tests of the benchmark harness (benchmarks/run.py), not of speed.

The harness is run for real, with tiny sizes, against every client (sshlib,
asyncssh, paramiko, OpenSSH's ssh), so a harness that broke (a client API
change, a wrong byte count slipping through, a hang) fails here rather than
in the middle of a 15-minute benchmark run.  No number is asserted beyond
"positive": timings on a shared 2-core machine prove nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks import run as bench

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"
SIZE = 4 << 20
CLIENTS = ("sshlib", "asyncssh", "paramiko", "openssh")
TRANSFERS = [f"{kind}/{cipher}" for kind in ("download", "upload") for cipher in (
    "chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
    "aes128-ctr")] + [f"compression/{data}/{on}" for data in ("compressible", "random")
                      for on in ("off", "on")]


def harness(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL, check=False)


def test_benchmark_clients_are_installed() -> None:
    for name in ("asyncssh", "paramiko"):
        assert importlib.util.find_spec(name) is not None, (
            f"{name} is not installed; the benchmark harness compares sshlib with it: "
            "pip install -e '.[test]' (or '.[bench]')")


def _sshlib_agent_ready() -> bool:
    try:
        mod = importlib.import_module("sshlib.agent")
    except ImportError:
        return False
    return hasattr(mod, "connect")


def test_quick_run_measures_every_client(ssh_tools: None, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = harness("--quick", "--json", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    report: dict[str, Any] = json.loads(out.read_text())

    assert report["schema"] == 1
    assert report["command"].startswith("python benchmarks/run.py --quick")
    for key in ("cpu", "cores", "python", "cryptography", "openssh", "asyncssh", "paramiko"):
        assert report["machine"][key], key
    settings = report["settings"]
    assert (settings["size_bytes"], settings["rounds"], settings["latency_samples"],
            settings["sessions"]) == (SIZE, 1, 3, 20)
    assert report["errors"] == []
    sftp = {"sftp-get", "sftp-put", "sftp-tree-get", "sftp-tree-put", "sftp-get-rtt",
            "sftp-put-rtt"}
    assert set(report["measurements"]) == {*TRANSFERS, "latency", "sessions", "agent", *sftp,
                                           "forward", "forwardconns"}
    for mid in sftp:  # byte counts and sha256 are checked by the harness itself
        for client, s in report["measurements"][mid]["clients"].items():
            assert s["status"] == "ok", (mid, client, s)

    for mid in TRANSFERS:
        m = report["measurements"][mid]
        assert set(m["clients"]) == set(CLIENTS)
        for client, s in m["clients"].items():
            if client == "paramiko" and "chacha20" in mid:
                assert s["status"] == "n/a", s
                continue
            assert s["status"] == "ok", (mid, client, s)
            assert s["wall_s"] > 0 and s["cpu_s"] > 0 and s["mb_per_s"] > 0
            assert s["cpu_s_per_gib"] == pytest.approx(s["cpu_s"] / (SIZE / 2**30))
            assert [r["bytes"] for r in s["rounds"]] == [SIZE]
            assert set(s["ratios"]) == {"asyncssh", "openssh"}
        assert m["clients"]["asyncssh"]["ratios"]["asyncssh"]["wall"] == pytest.approx(1.0)
        assert m["clients"]["openssh"]["ratios"]["openssh"]["cpu"] == pytest.approx(1.0)

    latency = report["measurements"]["latency"]["clients"]
    for client in CLIENTS:
        s = latency[client]
        assert s["status"] == "ok", (client, s)
        assert s["samples"] == 3 and 0 < s["min_s"] <= s["median_s"] <= s["max_s"]
        assert s["cpu_median_s"] > 0

    sessions = report["measurements"]["sessions"]["clients"]
    for client in CLIENTS:
        s = sessions[client]
        assert s["status"] == "ok", (client, s)
        assert s["total_s"] > 0 and s["peak_rss_mib"] > 1
        assert [r["sessions"] for r in s["rounds"]] == [20]

    agent = report["measurements"]["agent"]["clients"]
    for client in ("asyncssh", "paramiko"):
        assert agent[client]["status"] == "ok", agent[client]
        assert agent[client]["signs_per_s"] > 0
        assert agent[client]["rounds"][0]["verified"] is True
    assert agent["openssh"]["status"] == "n/a"
    if _sshlib_agent_ready():
        assert agent["sshlib"]["status"] == "ok", agent["sshlib"]
    else:
        assert agent["sshlib"]["status"] == "n/a"
        assert "not implemented yet" in agent["sshlib"]["reason"]

    forward = report["measurements"]["forward"]["clients"]
    conns = report["measurements"]["forwardconns"]["clients"]
    for client in ("sshlib", "asyncssh", "openssh"):
        assert forward[client]["status"] == "ok", (client, forward[client])
        assert [r["bytes"] for r in forward[client]["rounds"]] == [SIZE]
        assert conns[client]["status"] == "ok", (client, conns[client])
        assert [r["connections"] for r in conns[client]["rounds"]] == [20]
    assert forward["paramiko"]["status"] == conns["paramiko"]["status"] == "n/a"

    rtt = settings["rtt_path"]
    assert rtt["rtt_ms"] == 20 and rtt["method"] in ("netem", "delayline"), rtt
    assert rtt["relay_ceiling"]["mb_per_s"] > 0
    assert "| sftp-get | sshlib |" in done.stdout and "throughput vs ssh" in done.stdout

    # The printed table: every client, paramiko's missing cipher, the machine line.
    assert report["measurements"]["compression/random/on"]["compression"] is True
    assert "| download compressible, compression on | openssh |" in done.stdout
    assert "| download aes128-gcm@openssh.com | sshlib |" in done.stdout
    assert "n/a (paramiko has no chacha20-poly1305)" in done.stdout
    assert "Machine:" in done.stdout
    assert report["table_markdown"] in done.stdout


@pytest.mark.parametrize(("client", "kind"), [("sshlib", "download"), ("openssh", "upload")])
def test_wrong_byte_count_fails_loudly(ssh_tools: None, tmp_path: Path, client: str,
                                       kind: str) -> None:
    out = tmp_path / "bench.json"
    done = harness("--quick", "--json", str(out), "--clients", f"asyncssh,{client}",
                   "--measurements", kind, "--ciphers", "aes128-ctr",
                   "--test-wrong-bytes", client)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-5000:]
    assert (f"FAIL: client {client!r}, {kind} aes128-ctr + hmac-sha2-256-etm@openssh.com: "
            f"transferred {SIZE - 1} bytes, expected {SIZE}") in done.stderr
    assert not out.exists(), "no results may be written after a wrong byte count"


def test_a_hanging_client_is_killed_and_recorded_as_timeout(tmp_path: Path) -> None:
    # The child starts a grandchild, like the OpenSSH driver starts ssh: both must go.
    marker = tmp_path / "grandchild.pid"
    code = (f"import subprocess, time; p = subprocess.Popen(['sleep', '60']); "
            f"open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    t0 = time.monotonic()
    outcome = bench.run_child([sys.executable, "-c", code], tmp_path / "result.json", 2.0,
                              tmp_path / "stderr.txt")
    assert time.monotonic() - t0 < 20
    assert outcome.status == "timeout"
    pid = int(marker.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the measurement's grandchild survived the timeout"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_failing_client_is_an_error_not_a_result(tmp_path: Path) -> None:
    outcome = bench.run_child([sys.executable, "-c", "raise SystemExit('boom')"],
                              tmp_path / "result.json", 10.0, tmp_path / "stderr.txt")
    assert outcome.status == "error"
    assert "boom" in outcome.reason


def test_check_result_names_the_client() -> None:
    m = bench.Measurement("download/aes128-gcm@openssh.com", "download",
                          "aes128-gcm@openssh.com")
    good = bench.Outcome("ok", data={"bytes": 100})
    bench.check_result("paramiko", m, good, 100, 0)
    with pytest.raises(bench.WrongResult, match=r"'paramiko'.*transferred 99 bytes, expected 100"):
        bench.check_result("paramiko", m, bench.Outcome("ok", data={"bytes": 99}), 100, 0)
    with pytest.raises(bench.WrongResult, match="transferred None bytes"):
        bench.check_result("sshlib", m, bench.Outcome("ok", data={}), 100, 0)
    agent = bench.Measurement("agent", "agent")
    with pytest.raises(bench.WrongResult, match="did not verify"):
        bench.check_result("asyncssh", agent, bench.Outcome("ok", data={"verified": False}), 0, 5)


def test_parse_size() -> None:
    assert bench.parse_size("1G") == 1 << 30
    assert bench.parse_size("256M") == 256 << 20
    assert bench.parse_size("4MiB") == 4 << 20
    assert bench.parse_size("512k") == 512 << 10
    assert bench.parse_size("1000") == 1000
    with pytest.raises(Exception, match="not a size"):
        bench.parse_size("1T")


def test_delay_line_keeps_order_and_delays_each_way(tmp_path: Path) -> None:
    """The RTT rows' delay line (TCP, 10 ms each way): an echo through it sees the bytes
    unchanged, in order, one round trip (>= 20 ms) later; and its ceiling is measurable."""
    import hashlib
    import socket
    import threading

    from benchmarks import delayline

    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen(1)

    def serve() -> None:
        conn, _ = echo.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    payload = os.urandom(3 << 20)
    with delayline.DelayLine("127.0.0.1:0", f"127.0.0.1:{echo.getsockname()[1]}",
                             0.010) as line, socket.create_connection(
                                 ("127.0.0.1", int(line.listen.rsplit(":", 1)[1])),
                                 timeout=30) as sock:
        t0 = time.perf_counter()
        sock.sendall(b"x")
        assert sock.recv(1) == b"x"
        rtt = time.perf_counter() - t0
        threading.Thread(target=sock.sendall, args=(payload,), daemon=True).start()
        got = bytearray()
        while len(got) < len(payload):
            chunk = sock.recv(1 << 20)
            assert chunk, "the delay line closed early"
            got += chunk
    echo.close()
    assert 0.020 <= rtt < 1.0, rtt
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    assert delayline.ceiling(8 << 20, 0.010)["mb_per_s"] > 0
