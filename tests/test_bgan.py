"""The BGAN driver against the terminal simulator (hil.bgan), with no gateway process:
the driver runs on its own with a fake DriverContext that keeps what it publishes.
The last test feeds its LinkHealth into a real UplinkManager (MQTT links faked)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from drivers.bgan.driver import BganDriver
from gateway import wire
from gateway.backoff import Backoff
from gateway.bus import Bus
from gateway.driver_api import DeviceSpec, LinkSpec
from gateway.kit import KitError, load_kit
from gateway.model import Event, LinkHealth, OnlineChange, Position, StatusUpdate, Telemetry
from gateway.outbox import Outbox
from gateway.registry import DeviceRegistry
from gateway.uplinks import Uplink, UplinkManager
from tests.procs import write_kit
from tests.serial_sims import OrderedCollector, SimProcess, supervised

pytestmark = pytest.mark.timeout(30)
TERMINAL = "bgan-1"


class FakeCtx(OrderedCollector):
    def events(self, type_: str) -> list[Event]:
        return [e for e in self.of(Event) if e.type == type_]

    def statuses(self) -> list[dict[str, Any]]:
        return [m.status for m in self.of(StatusUpdate)]


def start_sim(link: Path, *extra: str) -> SimProcess:
    return SimProcess("hil.bgan", ["--link", str(link), "--control", "127.0.0.1:0", "--seed", "5", *extra],
                      ready_timeout=30.0)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    s = start_sim(tmp_path / "bgan")
    yield s
    s.stop()


def make_driver(transport: str, ctx: FakeCtx | None = None, **options: Any) -> tuple[BganDriver, FakeCtx]:
    ctx = ctx or FakeCtx()
    spec = DeviceSpec(TERMINAL, "satcom", "BGAN", transport, options={"poll_s": 0.2, "timeout_s": 1.0, **options})
    return BganDriver(LinkSpec("bgan", transport, (spec,)), ctx), ctx


def running(driver: BganDriver, ctx: FakeCtx) -> AbstractAsyncContextManager[list[Exception]]:
    """What gateway.supervisor does for a link: run, mark offline when a run ends, back off, run again."""
    return supervised(driver, ctx=ctx, backoff=Backoff(initial=0.2, maximum=1.0))


async def test_status_telemetry_and_position(sim: SimProcess) -> None:
    driver, ctx = make_driver(f"serial://{sim.link}")
    async with running(driver, ctx):
        status = await ctx.wait(lambda: next(iter(ctx.statuses()), None), 8.0, "a status")
        assert status["registration"] == "home" and status["registered"] is True
        assert status["pdp_active"] is True and status["pdp_contexts"] == [1] and status["link_up"] is True
        assert 54 < status["cn0_dbhz"] < 58 and status["gps_fix"] == 3
        first = ctx.of(Position)[0]
        assert (first.lat, first.lon, first.fix, first.source) == (pytest.approx(52.21154), pytest.approx(-0.09521), "3d", "bgan")
        assert ctx.of(Telemetry)[0].values["cn0_dbhz"] == status["cn0_dbhz"]
        assert ctx.of(OnlineChange)[0].online and ctx.health()[0].up

        await sim.control_ok("cn0 42")
        await ctx.wait(lambda: abs(ctx.statuses()[-1].get("cn0_dbhz", 0) - 42) < 1.5, 8.0, "C/N0 follows")
        await sim.control_ok("gps 2 -33.856789 151.215432")
        moved = await ctx.wait(lambda: [p for p in ctx.of(Position) if p.fix == "2d"], 8.0, "the new position")
        assert (moved[0].lat, moved[0].lon) == (pytest.approx(-33.856789), pytest.approx(151.215432))
        await sim.control_ok("gps 0 0 0")
        await ctx.wait(lambda: ctx.statuses()[-1].get("gps_fix") == 0, 8.0, "fix lost")
        count = len(ctx.of(Position))
        await asyncio.sleep(0.6)
    assert len(ctx.of(Position)) == count  # no fix, no position
    assert len([p for p in ctx.of(Position) if p.fix == "3d"]) == 1  # a terminal that stays put is not repeated
    assert driver.stats()["polls"] >= 5 and driver.stats().get("errors", 0) == 0


async def test_registration_and_pdp_drive_link_health(sim: SimProcess) -> None:
    driver, ctx = make_driver(f"serial://{sim.link}")
    async with running(driver, ctx):
        await ctx.wait(lambda: ctx.health(), 8.0, "link up")
        await sim.control_ok("reg 2")
        await ctx.wait(lambda: not ctx.health()[-1].up, 8.0, "down while searching")
        assert ctx.health()[-1].detail == "BGAN searching"
        ev = ctx.events("registration")[-1]
        assert ev.severity == "warning" and ev.extra == {"registration": "searching", "previous": "home"}
        await sim.control_ok("reg 5")
        await ctx.wait(lambda: ctx.health()[-1].up, 8.0, "up when roaming")
        assert "roaming" in ctx.health()[-1].detail and ctx.events("registration")[-1].severity == "info"

        await sim.control_ok("pdp 1 0")
        await ctx.wait(lambda: not ctx.health()[-1].up, 8.0, "down without a PDP context")
        assert "no PDP context" in ctx.health()[-1].detail
        assert ctx.events("pdp")[-1].extra == {"active": False}
        await sim.control_ok("pdp 3 1")
        await ctx.wait(lambda: ctx.health()[-1].up, 8.0, "up with another context")
        await ctx.wait(lambda: ctx.statuses()[-1]["pdp_contexts"] == [3], 8.0, "context 3 in the status")
        await sim.control_ok("reg 3")
        await ctx.wait(lambda: not ctx.health()[-1].up, 8.0, "down when denied")
        await asyncio.sleep(0.5)
    assert [h.up for h in ctx.health()] == [True, False, True, False, True, False]  # once per change
    assert [e.extra["registration"] for e in ctx.events("registration")] == ["searching", "roaming", "denied"]
    assert ctx.statuses()[-1]["registration"] == "denied" and ctx.statuses()[-1]["registered"] is False


async def test_noise_is_counted_and_harmless(sim: SimProcess) -> None:
    driver, ctx = make_driver(f"serial://{sim.link}")
    async with running(driver, ctx) as failures:
        await ctx.wait(lambda: ctx.health(), 8.0, "link up")
        for noise in ("00ff7f800d0a", "2b43475245433a2078797a0d0a", "5f495349473a206e616e0d0a",  # +CGREG: xyz / _ISIG: nan
                      "deadbeef", "0d0d0d0a0a", bytes(range(256)).hex()):
            await sim.control_ok(f"noise {noise}")
            await asyncio.sleep(0.1)
        polls = driver.stats()["polls"]
        await ctx.wait(lambda: driver.stats()["polls"] >= polls + 3, 8.0, "polls go on after the noise")
        assert not failures
    stats = driver.stats()
    assert stats["at_unexpected_lines"] + stats.get("bad_lines", 0) >= 3, stats
    assert [h.up for h in ctx.health()] == [True]  # noise did not touch the verdict
    assert len(ctx.of(OnlineChange)) == 1 and "registration" not in {e.type for e in ctx.of(Event)}
    assert ctx.statuses()[-1]["registration"] == "home"


async def test_unplug_reports_down_then_reconnects(sim: SimProcess) -> None:
    driver, ctx = make_driver(f"serial://{sim.link}")
    async with running(driver, ctx) as failures:
        await ctx.wait(lambda: ctx.health(), 8.0, "link up")
        await sim.control_ok("unplug 1.5")
        await ctx.wait(lambda: failures, 8.0, "the line to fail")
        assert isinstance(failures[0], ConnectionError)
        assert not ctx.health()[-1].up and "not answering" in ctx.health()[-1].detail
        await ctx.wait(lambda: ctx.health()[-1].up, 10, "link up after the replug")
        await ctx.wait(lambda: ctx.of(OnlineChange)[-1].online, 8.0, "online again")
        polls = driver.stats()["polls"]
        await ctx.wait(lambda: driver.stats()["polls"] > polls + 1, 8.0, "polling again")
    flow = [(type(m).__name__, getattr(m, "up", getattr(m, "online", None))) for m in ctx.messages
            if isinstance(m, LinkHealth | OnlineChange)]
    assert flow.index(("LinkHealth", False)) < flow.index(("OnlineChange", False))  # reported before the run ended
    assert [h.up for h in ctx.health()] == [True, False, True]  # however many reopen attempts failed
    assert (await sim.control_ok("stats"))["unplugs"] == 1


async def test_tcp_transport(tmp_path: Path) -> None:
    sim = start_sim(tmp_path / "bgan", "--tcp", "127.0.0.1:0")
    try:
        driver, ctx = make_driver("tcp://{}:{}".format(*sim.ready["tcp"]))
        async with running(driver, ctx):
            await ctx.wait(lambda: ctx.health() and ctx.health()[-1].up, 8.0, "link up over TCP")
            stats = await sim.control_ok("stats")
        assert stats["tcp_clients"] == 1 and stats["by_command"]["E0"] == 1  # a TCP session starts echoing
        assert driver.stats()["at_errors"] == 0
    finally:
        sim.stop()


class FakeTerminal:
    """A terminal that refuses AT_ISIG, never answers AT_IGPS?, then (on `mute`) answers nothing."""

    ANSWERS = {"ATE0": "", "AT_ISIG": None, "AT+CGREG?": "+CGREG: 0,1", "AT+CGACT?": "+CGACT: 1,1\r\n+CGACT: 2,0"}

    def __init__(self) -> None:
        self.mute = False
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return f"tcp://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                command = (await reader.readuntil(b"\r")).decode().strip()
                if self.mute or command not in self.ANSWERS:
                    continue
                answer = self.ANSWERS[command]
                writer.write(b"\r\nERROR\r\n" if answer is None else (f"\r\n{answer}\r\n" if answer else "").encode() + b"\r\nOK\r\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def test_errors_and_silence_are_counted_then_the_run_ends() -> None:
    terminal = FakeTerminal()
    driver, ctx = make_driver(await terminal.start(), timeout_s=0.3, max_failures=3)
    task = asyncio.create_task(driver.run())
    try:
        await ctx.wait(lambda: driver.stats().get("polls", 0) >= 2, 8.0, "two polls")
        stats = driver.stats()
        assert stats["errors"] >= 2 and stats["unanswered"] >= 2  # AT_ISIG refused, AT_IGPS? unanswered
        status = ctx.statuses()[-1]
        assert "cn0_dbhz" not in status and status["pdp_contexts"] == [1] and ctx.health()[-1].up
        assert not ctx.of(Position)
        terminal.mute = True
        with pytest.raises(ConnectionError, match="answered nothing"):
            await asyncio.wait_for(task, 10)
    finally:
        task.cancel()
        assert terminal.server is not None
        terminal.server.close()
        await terminal.server.wait_closed()
    assert [h.up for h in ctx.health()] == [True, False] and "not answering" in ctx.health()[-1].detail


def test_kit_checks(tmp_path: Path) -> None:
    good = write_kit(tmp_path / "good.yaml", [
        {"id": "bgan", "driver": "bgan", "transport": "serial:///dev/serial/by-id/usb-bgan?baud=115200",
         "options": {"poll_s": 10, "timeout_s": 5}},
        {"id": "bgan-ip", "driver": "bgan", "transport": "tcp://192.168.0.1:5454"}],
        uplinks=[{"name": "bgan", "broker": "mqtt://127.0.0.1:1883", "health_from": ["bgan"]}])
    loaded = load_kit(good)
    assert {loaded.device_kind(d) for d in loaded.kit.devices} == {"satcom"}
    bad = write_kit(tmp_path / "bad.yaml", [
        {"id": "bgan", "driver": "bgan", "transport": "serial:///dev/ttyUSB0?baud=12",
         "options": {"poll_s": 0, "max_failures": 2.5, "address": "1", "stale_s": 5}},
        {"id": "bgan-2", "driver": "bgan", "transport": "serial:///dev/ttyUSB0?baud=12"}])
    with pytest.raises(KitError) as info:
        load_kit(bad)
    text = "\n".join(info.value.problems)
    for where in ("devices.0.options.poll_s: poll_s must be a number", "devices.0.options.max_failures: max_failures must be a whole",
                  "devices.0.options.address: a BGAN terminal is the device itself", "devices.0.options.stale_s: unknown option",
                  "devices.0.options: transport 'serial:///dev/ttyUSB0?baud=12': serial baud must be", "devices.1.options: one BGAN terminal per transport"):
        assert where in text, (where, text)


class FakeMqttLink:
    """Stands in for gateway.mqtt_link.MqttLink: always connected, every publish acknowledged at once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.connected = asyncio.Event()
        self.connected.set()
        self.topics: list[str] = []

    async def run(self) -> None:
        await asyncio.Event().wait()

    def publish_nowait(self, topic: str, payload: bytes, qos: int, retain: bool, done: Callable[[BaseException | None], None]) -> None:
        self.topics.append(topic)
        done(None)

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.topics.append(topic)

    def stats(self) -> dict[str, Any]:
        return {"name": self.name}


async def test_uplink_manager_follows_the_terminal(sim: SimProcess) -> None:
    """kit `uplinks[].health_from: [bgan-1]`: the BGAN's own view decides that uplink's health."""
    bus, registry = Bus(), DeviceRegistry()
    outbox = Outbox(None)
    await outbox.open()
    bgan_ip, backup = FakeMqttLink("bgan"), FakeMqttLink("backup")
    manager = UplinkManager([Uplink(bgan_ip, priority=0, health_from=frozenset({TERMINAL})),  # type: ignore[arg-type]
                             Uplink(backup, priority=1)],  # type: ignore[arg-type]
                            outbox, bus, registry, wire.Topics("test"), "test")
    uplinks = asyncio.create_task(manager.run())
    driver, ctx = make_driver(f"serial://{sim.link}", FakeCtx(bus))
    try:
        async with running(driver, ctx):
            await ctx.wait(lambda: manager.active is not None and manager.active.name == "bgan", 8.0, "BGAN uplink active")
            await sim.control_ok("reg 2")
            await ctx.wait(lambda: manager.active is not None and manager.active.name == "backup", 8.0, "failover")
            assert manager.uplink_stats()[0]["reported_down"] == {TERMINAL: "BGAN searching"}
            sent = len(backup.topics)
            await ctx.wait(lambda: any(f"/devices/{TERMINAL}/" in t for t in backup.topics[sent:]), 8.0,
                            "the terminal's own telemetry over the backup")
            await sim.control_ok("reg 1")
            await ctx.wait(lambda: manager.active is not None and manager.active.name == "bgan", 8.0, "failback")
        assert manager.failovers == 2 and manager.uplink_stats()[0]["reported_down"] == {}
    finally:
        uplinks.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await uplinks
        await outbox.close()
