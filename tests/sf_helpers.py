"""Helpers for store-and-forward tests: the link emulator as a process, completeness checks."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Any

from tests.conftest import ROOT


class LinkEmulatorProcess:
    """`python -m hil.link` between the gateway and the broker, driven over its control port."""

    def __init__(self, target_port: int, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hil.link", "--listen", "127.0.0.1:0", "--target", f"127.0.0.1:{target_port}",
             "--control", "127.0.0.1:0", "--print-port", *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.port = info["listen"][1]
        self.control_port = info["control"][1]
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def command(self, line: str) -> dict[str, Any]:
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=5) as s:
            s.sendall(line.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data.splitlines()[0])


def positions_by_device(messages: list[tuple[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """First arrival of each message id, per device, in arrival order."""
    seen: set[str] = set()
    out: dict[str, list[dict[str, Any]]] = {}
    for topic, payload in messages:
        if not topic.endswith("/position") or payload["id"] in seen:
            continue
        seen.add(payload["id"])
        out.setdefault(topic.split("/")[-2], []).append(payload)
    return out


def assert_complete_and_ordered(per_device: dict[str, list[dict[str, Any]]], devices: tuple[str, ...]) -> None:
    for dev in devices:
        seqs = [p["seq"] for p in per_device.get(dev, [])]
        assert seqs, f"no positions from {dev}"
        assert seqs == sorted(seqs), f"{dev}: positions out of order"
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), f"{dev}: missing seq {sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))[:10]}"
