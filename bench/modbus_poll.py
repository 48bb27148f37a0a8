"""Modbus polling: CPU per register read, fieldgw's modbus_power driver against ThingsBoard IoT Gateway.

One simulator (`hil.power epever --listen`, Modbus TCP on 127.0.0.1) serves 3 x 10
EPEVER Tracer units; each peer polls its own 10 (so the simulator counts, per unit,
the registers each peer was answered) with the same register map,
firmware_configs/modbus/epever_tracer.yaml: 15 input registers per poll (PV, battery,
charge, load, temperature, SOC, charger status; 32-bit values low word first).

  fieldgw driver   ModbusPowerDriver in a process of its own, publishing onto a real
                   gateway Bus with the device registry's tap and one subscriber drained
                   like the uplink's (`--serve-driver`, below): the driver's own cost
  fieldgw gateway  the whole gateway, `fieldgw run KIT --mqtt ...`: driver, bus, registry,
                   durable outbox (SQLite), MQTT to a Mosquitto on 127.0.0.1, HTTP API
  ThingsBoard      thingsboard-gateway (its own venv, bench/_thingsboard.py) with only its
                   Modbus connector, memory storage, publishing to the same kind of
                   Mosquitto as its "ThingsBoard"

Each peer runs alone in its turn (the order rotates per rate): started, given time to
reach its polling rate (`--warmup`), then measured for `--seconds`: registers read per
second (from the simulator's counters for that peer's units) and the process's CPU time
(user + system from /proc/PID/stat, all threads). fieldgw reads the map in 4 requests
per poll (one per contiguous block); ThingsBoard in 12 (one per key, as its Modbus
connector reads). Rates: 10 units at 1 Hz and at 10 Hz.

RATIO = (fieldgw CPU per register read) / (ThingsBoard CPU per register read), per rate,
for the driver and for the whole gateway. Target <= 0.5 (lower is better).

    .venv/bin/python -m bench.modbus_poll [--seconds S] [--warmup W] [--quick] [--report-period S]

--report-period S coalesces telemetry on both sides: fieldgw's gateway with the kit's telemetry_every_s
(one message per unit per S, the newest value of each name), ThingsBoard with reportStrategy ON_REPORT_PERIOD.

The first run creates var/bench/tb-venv (pip, from PyPI; see bench/_thingsboard.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench._common import PYTHON, ROOT, cpu_seconds, free_port, machine_note, mosquitto, stop_process, write_kit
from bench._thingsboard import TbGateway, ensure_venv
from tests.procs import FIRMWARE
from tests.serial_sims import SimProcess

UNITS = 10
PROFILE = "modbus/epever_tracer.yaml"
PEERS = ("fieldgw driver", "fieldgw gateway", "ThingsBoard")


@dataclass
class Result:
    peer: str
    rate_hz: float
    seconds: float
    registers: int
    requests: int
    cpu_s: float

    @property
    def registers_per_s(self) -> float:
        return self.registers / self.seconds

    @property
    def cpu_us_per_register(self) -> float:
        return self.cpu_s / self.registers * 1e6 if self.registers else float("nan")

    def line(self) -> str:
        return (f"{self.peer:16s} {self.rate_hz:4g} Hz: {self.registers_per_s:7.1f} registers/s "
                f"({self.requests / self.seconds:6.1f} requests/s), CPU {self.cpu_s / self.seconds * 100:5.2f} % "
                f"= {self.cpu_us_per_register:6.1f} µs per register")


# -- the fieldgw driver alone, in its own process ------------------------------------------------------

async def serve_driver(transport: str, units: list[int], poll_s: float) -> None:
    from drivers.modbus_power.driver import ModbusPowerDriver
    from gateway.bus import Bus
    from gateway.driver_api import DeviceSpec, LinkSpec
    from gateway.model import Device, DeviceStateChanged, Event, StatusUpdate, Telemetry
    from gateway.registry import DeviceRegistry
    from gateway.supervisor import _LinkContext

    profile = yaml.safe_load((FIRMWARE / PROFILE).read_text())
    devices = tuple(DeviceSpec(f"unit-{u}", "power", f"unit-{u}", transport, profile, {"unit": u, "poll_s": poll_s})
                    for u in units)
    bus = Bus()
    registry = DeviceRegistry()
    for dev in devices:
        registry.add(Device(id=dev.id, kind="power", driver="modbus_power", name=dev.id))
    bus.add_tap(registry.tap)
    sub = bus.subscribe("uplink", (Telemetry, StatusUpdate, Event, DeviceStateChanged), maxsize=50_000)
    driver = ModbusPowerDriver(LinkSpec("modbus_power", transport, devices),
                               _LinkContext(bus, {d.id for d in devices}, lambda _: False, "modbus_power"))

    async def drain() -> None:
        while True:
            await sub.get()

    drainer = asyncio.create_task(drain())
    try:
        while True:
            with contextlib.suppress(ConnectionError, OSError):
                await driver.run()
            await asyncio.sleep(0.5)
    finally:
        drainer.cancel()


# -- the run --------------------------------------------------------------------------------------------

class Peer:
    """One peer's process, polling `units` at `poll_s`."""

    def __init__(self, name: str, work: Path, modbus_port: int, mqtt_url: str, units: list[int], poll_s: float,
                 profile: dict[str, Any], report_s: float | None = None) -> None:
        self.name = name
        transport = f"tcp://127.0.0.1:{modbus_port}"
        self.log = work / f"{name.replace(' ', '-')}-{poll_s:g}.log"
        self._tb: TbGateway | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        if name == "ThingsBoard":
            tb_dir = work / f"tb-{poll_s:g}"
            tb_dir.mkdir()
            self._tb = TbGateway(tb_dir, int(mqtt_url.rsplit(":", 1)[1]), modbus_port, units, poll_s, profile, report_s)
            self.pid = self._tb.pid
            return
        with self.log.open("wb") as log:
            if name == "fieldgw driver":
                args = [PYTHON, "-m", "bench.modbus_poll", "--serve-driver", transport,
                        "--units", ",".join(map(str, units)), "--poll-s", str(poll_s)]
            else:
                coalesce = {"telemetry_every_s": report_s} if report_s else {}  # the kit's own setting
                kit = write_kit(work / f"kit-{poll_s:g}.yaml", [
                    {"id": f"unit-{u}", "driver": "modbus_power", "transport": transport, "profile": PROFILE,
                     "options": {"unit": u, "poll_s": poll_s}, **coalesce} for u in units])
                args = [PYTHON, "-m", "gateway.cli", "run", str(kit), "--data-dir", str(work / f"data-{poll_s:g}"),
                        "--http-port", str(free_port()), "--mqtt", mqtt_url, "--log-level", "warning"]
            self._proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.pid = self._proc.pid

    def alive(self) -> bool:
        return (self._tb.alive() if self._tb is not None else self._proc is not None and self._proc.poll() is None)

    def stop(self) -> None:
        if self._tb is not None:
            self._tb.stop()
        elif self._proc is not None:
            stop_process(self._proc)

    def log_tail(self) -> str:
        path = self._tb.log if self._tb is not None else self.log
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def counted(sim: SimProcess, units: list[int]) -> tuple[int, int]:
    """(registers, requests) the simulator answered to `units` so far."""
    reads = sim.control("reads")["units"]
    return sum(reads[str(u)]["registers"] for u in units), sum(reads[str(u)]["requests"] for u in units)


def measure(peer: Peer, sim: SimProcess, units: list[int], rate_hz: float, warmup: float, seconds: float) -> Result:
    expected = 15 * len(units) * rate_hz
    deadline = time.monotonic() + 60
    while True:   # polling at (nearly) its rate for a whole second, then `warmup` more
        if not peer.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{peer.name} never polled at {rate_hz:g} Hz: {peer.log_tail()}")
        r0, _ = counted(sim, units)
        time.sleep(1.0)
        r1, _ = counted(sim, units)
        if r1 - r0 >= 0.8 * expected:
            break
    time.sleep(warmup)
    regs0, req0 = counted(sim, units)
    cpu0, t0 = cpu_seconds(peer.pid), time.monotonic()
    time.sleep(seconds)
    regs1, req1 = counted(sim, units)
    cpu1, t1 = cpu_seconds(peer.pid), time.monotonic()
    if not peer.alive():
        raise RuntimeError(f"{peer.name} stopped while measured: {peer.log_tail()}")
    return Result(peer.name, rate_hz, t1 - t0, regs1 - regs0, req1 - req0, cpu1 - cpu0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="measured seconds per peer and rate (default 30)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds after a peer reaches its rate (default 3)")
    ap.add_argument("--rates", default="1,10", help="poll rates in Hz (default 1,10)")
    ap.add_argument("--quick", action="store_true", help="8 s per peer and rate")
    ap.add_argument("--report-period", type=float, metavar="S",
                    help="coalesce telemetry: fieldgw's gateway sends one telemetry message per unit per S seconds "
                         "(newest value of each name), ThingsBoard reports with reportStrategy ON_REPORT_PERIOD "
                         "and reportPeriod S (the driver-only peer is unchanged)")
    ap.add_argument("--serve-driver", metavar="TRANSPORT", help=argparse.SUPPRESS)
    ap.add_argument("--units", help=argparse.SUPPRESS)
    ap.add_argument("--poll-s", type=float, help=argparse.SUPPRESS)
    a, rest = ap.parse_known_args(argv)
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    if a.serve_driver:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_driver(a.serve_driver, [int(u) for u in a.units.split(",")], a.poll_s))
        return 0
    seconds = 8.0 if a.quick else a.seconds
    rates = [float(r) for r in a.rates.split(",")]
    tb_version = ensure_venv()
    profile = yaml.safe_load((FIRMWARE / PROFILE).read_text())
    print(f"Modbus polling, {UNITS} EPEVER units over Modbus TCP, {seconds:g} s per peer and rate "
          f"({machine_note()}; thingsboard-gateway {tb_version})", flush=True)
    print("telemetry: " + (f"coalesced to one message per unit per {a.report_period:g} s (fieldgw gateway "
                           f"telemetry_every_s, ThingsBoard reportStrategy ON_REPORT_PERIOD)" if a.report_period else
                           "every poll reported (fieldgw's default, ThingsBoard reportStrategy ON_RECEIVED)"), flush=True)
    units = {peer: list(range(1 + i * UNITS, 1 + (i + 1) * UNITS)) for i, peer in enumerate(PEERS)}
    all_units = [u for us in units.values() for u in us]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-modbus-") as tmp:
        work = Path(tmp)
        sim = SimProcess("hil.power", ["epever", "--listen", "127.0.0.1:0", *[x for u in all_units for x in ("--unit", str(u))]],
                         ready_timeout=20.0, log=work / "sim.log")
        try:
            with mosquitto(work) as mqtt_url:
                for i, rate in enumerate(rates):
                    order = PEERS[i % len(PEERS):] + PEERS[:i % len(PEERS)]
                    for name in order:
                        peer = Peer(name, work, sim.ready["listen"][1], mqtt_url, units[name], 1.0 / rate, profile,
                                    a.report_period)
                        try:
                            result = measure(peer, sim, units[name], rate, a.warmup, seconds)
                        finally:
                            peer.stop()
                        print(result.line(), flush=True)
                        results.append(result)
        finally:
            sim.stop()
    by = {(r.peer, r.rate_hz): r for r in results}
    print()
    for rate in rates:
        tb = by[("ThingsBoard", rate)]
        for name in PEERS[:2]:
            mine = by[(name, rate)]
            print(f"RATIO {name} / ThingsBoard, CPU per register read at {rate:g} Hz x {UNITS} units: "
                  f"{mine.cpu_us_per_register / tb.cpu_us_per_register:.2f} "
                  f"({mine.cpu_us_per_register:.1f} vs {tb.cpu_us_per_register:.1f} µs; target <= 0.5)")
    print(json.dumps([r.__dict__ for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
