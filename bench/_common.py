"""Shared plumbing for the benchmarks: ports, processes, Mosquitto, the gateway, percentiles.

Everything runs on loopback (127.0.0.1). Processes are started by the
benchmark and stopped by it (by their own handle, never by name).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


os.environ.setdefault("MAVLINK20", "1")

from tests.procs import ROOT, drone, free_port, stop_process, wait_port  # noqa: E402, F401 - shared with the tests
from tests.procs import write_kit as _write_kit  # noqa: E402

PYTHON = sys.executable


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of unsorted values; nan when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def summary_ms(values_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds of latencies given in seconds."""
    ms = [v * 1000.0 for v in values_s]
    return {"p50": percentile(ms, 50), "p95": percentile(ms, 95), "p99": percentile(ms, 99),
            "max": max(ms) if ms else float("nan"), "n": len(ms)}


def fmt_ms(s: dict[str, float]) -> str:
    return f"p50 {s['p50']:.2f} ms, p95 {s['p95']:.2f} ms, p99 {s['p99']:.2f} ms, max {s['max']:.2f} ms (n={int(s['n'])})"


def find_binary(name: str) -> str | None:
    return shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[str]:
    """A real Mosquitto on a free loopback port, configured as docs/mosquitto.conf; yields its URL."""
    binary = find_binary("mosquitto")
    if binary is None:
        raise RuntimeError("mosquitto is not installed")
    port = free_port()
    conf = (ROOT / "docs" / "mosquitto.conf").read_text().replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1")
    path = workdir / "mosquitto.conf"
    path.write_text(conf)
    proc = subprocess.Popen([binary, "-c", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def write_kit(path: Path, devices: list[dict[str, Any]], **top: Any) -> Path:
    return _write_kit(path, devices, **{"kit": "bench", **top})


def admin_token(data_dir: Path) -> str:
    """A token for a `bench` admin in the gateway's user store (a kit has no users of its own)."""
    from gateway.users import UserStore

    store = UserStore(data_dir)
    try:
        if "bench" not in {u.name for u in store.list()}:
            store.add("bench", "admin", "bench-password")
        return store.issue("bench", 86400)[0]
    finally:
        store.close()


class GatewayProcess:
    """`python -m gateway.cli run KIT` as its own process, ready when /api/v1/health answers."""

    def __init__(self, kit: Path, data_dir: Path, mqtt_url: str | None = None, log_level: str = "warning") -> None:
        self.http_port = free_port()
        args = [PYTHON, "-m", "gateway.cli", "run", str(kit), "--data-dir", str(data_dir),
                "--http-port", str(self.http_port), "--log-level", log_level]
        args += ["--mqtt", mqtt_url] if mqtt_url else ["--mqtt-port", str(free_port())]
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log = data_dir.parent / f"gateway-{self.http_port}.log"
        self._log = self.log.open("wb")
        self.token = admin_token(data_dir)
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.http_port}"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.base + "/api/v1/health", timeout=0.5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"gateway not ready: {self.log.read_text()[-3000:]}")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(urllib.request.Request(self.base + path, headers=self.headers), timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> int:
        rc = stop_process(self.proc)
        self._log.close()
        return rc


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine_note() -> str:
    return f"{os.cpu_count()} vCPU, Python {sys.version.split()[0]}, code {code_version()}"


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped on the 127.0.0.1 UDP socket bound to `port` (full receive buffer); -1 if none."""
    suffix = f":{port:04X}"
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return -1
    for line in lines:
        fields = line.split()
        if fields[1].endswith(suffix):
            return int(fields[-1])
    return -1


def code_version() -> str:
    """The commit measured, and whether gateway/ or drivers/ had uncommitted changes (the code moves fast)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gateway", "drivers"], cwd=ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head or 'unknown'}{' + uncommitted changes in gateway/ or drivers/' if dirty else ''}"
