"""Shared by the radio/satellite tests: a hil simulator process, a driver run the
way the supervisor runs it, and a DriverContext that keeps what a driver publishes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.driver_api import DeviceSpec, Driver, LinkSpec
from gateway.model import BusMessage
from tests.procs import ROOT, stop_process


class SimProcess:
    """`python -m hil.KIND ARGS`: waits for its JSON ready line; `control()` speaks to its control port."""

    def __init__(self, module: str, args: list[str], ready_timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], ready_timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
            stop_process(self.proc)
            raise RuntimeError(f"simulator {module} did not get ready: {err[-2000:]}")
        self.ready: dict[str, Any] = json.loads(line)

    def control(self, line: str, timeout: float = 5.0) -> dict[str, Any]:
        host, port = self.ready["control"]
        return control_port((host, port), line, timeout)

    def stop(self) -> int:
        return stop_process(self.proc)  # type: ignore[arg-type]


def control_port(address: tuple[str, int], line: str, timeout: float = 5.0) -> dict[str, Any]:
    """One command to a simulator's control port; its JSON answer."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(line.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


class Collector:
    """A DriverContext that keeps everything the driver publishes."""

    def __init__(self) -> None:
        self.messages: list[BusMessage] = []
        self.online: dict[str, bool] = {}

    def publish(self, msg: BusMessage) -> None:
        self.messages.append(msg)

    def set_online(self, device_id: str, online: bool, reason: str = "") -> None:
        self.online[device_id] = online

    def of(self, kind: type, device: str | None = None) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind) and (device is None or m.device == device)]

    async def wait(self, pred: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pred()
            if found:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")


def link_spec(driver: str, transport: str, devices: list[tuple[str, str, dict[str, Any]]]) -> LinkSpec:
    """devices: (id, kind, options)."""
    return LinkSpec(driver, transport, tuple(DeviceSpec(i, k, i, transport, None, o) for i, k, o in devices))


@contextlib.asynccontextmanager
async def supervised(driver: Driver, restart_after_s: float = 0.2) -> AsyncIterator[list[str]]:
    """Run `driver.run()` as the supervisor does: start it again after a failure. Yields the failures."""
    failures: list[str] = []

    async def loop() -> None:
        while True:
            try:
                await driver.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(restart_after_s)

    task = asyncio.create_task(loop())
    try:
        yield failures
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

