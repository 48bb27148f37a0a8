"""Shared fixtures: real processes over loopback (Mosquitto, simulators, the gateway)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import ROOT, free_port, stop_process, wait_port  # noqa: F401 - re-exported for the tests
REQUIRE_SYSDEPS = os.environ.get("FIELDGW_REQUIRE_SYSDEPS") == "1"


def need_binary(name: str) -> str:
    """The path of a system program; skip the test without it, or fail when CI requires it."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        message = f"system dependency {name!r} is not installed"
        if REQUIRE_SYSDEPS:
            pytest.fail(message + " (FIELDGW_REQUIRE_SYSDEPS=1)")
        pytest.skip(message)
    return path


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[str]:
    """A real Mosquitto broker on a free loopback port, configured as docs/mosquitto.conf."""
    binary = need_binary("mosquitto")
    port = free_port()
    conf = (ROOT / "docs" / "mosquitto.conf").read_text().replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1")
    path = tmp_path / "mosquitto.conf"
    path.write_text(conf)
    proc = subprocess.Popen([binary, "-c", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def start_sim(*args: str) -> tuple[subprocess.Popen[bytes], dict[str, list]]:
    """A hil/ vehicle simulator as its own process; returns it and the ports it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "hil.uav", "--print-port", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"simulator exited with {proc.wait()}")
    return proc, json.loads(line)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; all stopped at the end whatever happens."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        stop_process(p)
