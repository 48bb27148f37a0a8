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
from pathlib import Path
from typing import Any

from gateway.backoff import Backoff
from gateway.bus import Bus
from gateway.driver_api import DeviceSpec, Driver, DriverContext, LinkSpec
from gateway.model import BusMessage, LinkHealth, OnlineChange, now_ms
from tests.procs import ROOT, stop_process


class SimProcess:
    """`python -m hil.KIND ARGS`: waits for its JSON ready line; `control()` speaks to its control port.

    `log`: the simulator's stderr goes to that file (else to a pipe, read if it never gets ready).
    `keep_control`: one control connection, opened at once and kept until `stop()`, carries every
    `control()` command (else each command has a connection of its own).
    """

    def __init__(self, module: str, args: list[str], ready_timeout: float = 10.0, log: Path | None = None,
                 keep_control: bool = False) -> None:
        self.log = log
        if log is None:
            self.proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
        else:
            with log.open("w") as stderr:
                self.proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT,
                                             stdout=subprocess.PIPE, stderr=stderr, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], ready_timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            stop_process(self.proc)
            err = log.read_text() if log is not None else self.proc.stderr.read()  # type: ignore[union-attr]
            raise RuntimeError(f"simulator {module} did not get ready (exit {self.proc.returncode}): {err[-2000:]}")
        self.ready: dict[str, Any] = json.loads(line)
        self._kept: socket.socket | None = None
        if keep_control:
            self._kept = socket.create_connection(tuple(self.ready["control"]), timeout=5.0)
            self._kept_lines = self._kept.makefile("rb")

    @property
    def link(self) -> Path:
        """The symlink to the simulator's pty (from its ready line)."""
        return Path(self.ready["link"])

    def control(self, line: str, timeout: float = 5.0) -> dict[str, Any]:
        if self._kept is not None:
            self._kept.sendall(line.encode() + b"\n")
            return json.loads(self._kept_lines.readline())
        host, port = self.ready["control"]
        return control_port((host, port), line, timeout)

    async def control_ok(self, line: str, timeout: float = 5.0) -> dict[str, Any]:
        """One command from a coroutine (the event loop runs on meanwhile), on a connection of its own;
        fails the test unless the answer is ok."""
        reader, writer = await asyncio.open_connection(*self.ready["control"])
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            reply: dict[str, Any] = json.loads(await asyncio.wait_for(reader.readline(), timeout))
        finally:
            writer.close()
        assert reply.get("ok"), (line, reply)
        return reply

    def stop(self) -> int:
        """SIGTERM (SIGKILL after 5 s); the exit code."""
        if self._kept is not None:
            self._kept_lines.close()
            self._kept.close()
            self._kept = None
        rc = stop_process(self.proc)  # type: ignore[arg-type]
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return rc

    def terminate(self) -> tuple[int, float]:
        """`stop()`; (exit code, seconds it took)."""
        t0 = time.monotonic()
        rc = self.stop()
        return rc, time.monotonic() - t0


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
        self.added: dict[str, tuple[str, str]] = {}

    def publish(self, msg: BusMessage) -> None:
        self.messages.append(msg)

    def set_online(self, device_id: str, online: bool, reason: str = "") -> None:
        self.online[device_id] = online

    def add_device(self, device_id: str, kind: str, name: str) -> bool:
        self.added[device_id] = (kind, name)
        return True

    def of(self, kind: type, device: str | None = None) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind) and (device is None or m.device == device)]

    async def wait(self, pred: Callable[[], Any], timeout: float, what: str) -> Any:
        return await until(pred, timeout, what, lambda: f"; last messages: {self.messages[-6:]}")


class OrderedCollector(Collector):
    """A Collector that also keeps each online change, as an OnlineChange message in order with the rest
    (what the bus would carry); with `bus`, every message goes onto that bus too."""

    def __init__(self, bus: Bus | None = None) -> None:
        super().__init__()
        self.bus = bus

    def publish(self, msg: BusMessage) -> None:
        super().publish(msg)
        if self.bus is not None:
            self.bus.publish(msg)

    def set_online(self, device_id: str, online: bool, reason: str = "") -> None:
        super().set_online(device_id, online, reason)
        self.publish(OnlineChange(device_id, now_ms(), online, reason))

    def health(self) -> list[LinkHealth]:
        return self.of(LinkHealth)


async def until(pred: Callable[[], Any], timeout: float = 5.0, what: str = "condition",
                more: Callable[[], str] = lambda: "") -> Any:
    """What `pred()` returns once it is true (polled every 20 ms); AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pred()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}{more()}")


def link_spec(driver: str, transport: str, devices: list[tuple[str, str, dict[str, Any]]]) -> LinkSpec:
    """devices: (id, kind, options)."""
    return LinkSpec(driver, transport, tuple(DeviceSpec(i, k, i, transport, None, o) for i, k, o in devices))


@contextlib.asynccontextmanager
async def supervised(driver: Driver, restart_after_s: float = 0.2, ctx: DriverContext | None = None,
                     backoff: Backoff | None = None) -> AsyncIterator[list[Exception]]:
    """Run `driver.run()` as the supervisor does: start it again after a failure, `restart_after_s` later
    (or after `backoff`'s delays); with `ctx`, the link's devices go offline there each time a run ends.
    Yields the failures. On the way out the driver must stop within 5 s of being cancelled."""
    failures: list[Exception] = []

    async def loop() -> None:
        while True:
            if backoff is not None:
                backoff.connected()
            try:
                await driver.run()
                reason = "driver stopped"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures.append(exc)
                reason = f"{type(exc).__name__}: {exc}"
            if ctx is not None:
                for dev in driver.link.devices:
                    ctx.set_online(dev.id, False, reason)
            await asyncio.sleep(backoff.next_delay() if backoff is not None else restart_after_s)

    task = asyncio.create_task(loop())
    try:
        yield failures
    finally:
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5.0)
        assert done, "the driver did not stop when cancelled"
        with contextlib.suppress(asyncio.CancelledError):
            task.result()

