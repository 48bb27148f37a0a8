"""Ports, processes and kit files, shared by the tests and the benchmarks (stdlib + PyYAML only)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware_configs"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def stop_process(proc: subprocess.Popen[Any], timeout: float = 5.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def write_kit(path: Path, devices: list[dict[str, Any]], **top: Any) -> Path:
    kit = {"kit": top.pop("kit", "test"), "profiles_dir": str(FIRMWARE), "devices": devices, **top}
    path.write_text(yaml.safe_dump(kit, sort_keys=False))
    return path


def drone(dev_id: str, port: int, sysid: int = 1, **options: Any) -> dict[str, Any]:
    return {"id": dev_id, "driver": "mavlink", "kind": "uav", "transport": f"udp-listen://127.0.0.1:{port}",
            "profile": "mavlink/arducopter.yaml", "options": {"system_id": sysid, **options}}
