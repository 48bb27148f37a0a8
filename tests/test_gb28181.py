"""The GB/T 28181 platform (drivers/gb28181) against the device simulator (hil.gb28181) as a process:
registration and digest, wrong passwords and unknown ids, keepalives and offline, expiry, Catalog in parts,
MobilePosition, PTZ changing the simulated dome, and malformed traffic."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from drivers.gb28181 import registrar
from drivers.gb28181.driver import Gb28181Driver
from gateway.driver_api import CommandError
from gateway.kit import KitError, load_kit
from gateway.model import Event, Position, StreamOffer
from tests.conftest import free_port
from tests.procs import write_kit
from tests.serial_sims import Collector, SimProcess, link_spec, supervised, until

DOME = "34020000001320000001"
DOME_CH = "34020000001310000001"
BODYCAM = "34020000001380000002"
PASSWORD = "12345678"


def gb_link(port: int, cams: list[tuple[str, str, dict[str, Any]]], **platform: Any) -> Any:
    opts = {"heartbeat_s": 1, **platform}
    return link_spec("gb28181", f"sip://127.0.0.1:{port}", [("gb", "network", opts), *cams])


@contextlib.asynccontextmanager
async def platform(cams: list[tuple[str, str, dict[str, Any]]], **opts: Any) -> AsyncIterator[tuple[Gb28181Driver, Collector, int]]:
    port = free_port()
    ctx = Collector()
    driver = Gb28181Driver(gb_link(port, cams, **opts), ctx)
    async with supervised(driver):
        await until(lambda: driver.transport is not None and driver.transport._udp is not None, 5, "listener up")
        yield driver, ctx, port


def sim(port: int, *args: str, transport: str = "udp") -> SimProcess:
    return SimProcess("hil.gb28181", ["--platform", f"{transport}://127.0.0.1:{port}", "--keepalive", "1", *args])


def dome(dev_id: str = "dome-1", gb_id: str = DOME, password: str = PASSWORD, **more: Any) -> tuple[str, str, dict[str, Any]]:
    return (dev_id, "camera", {"device_id": gb_id, "password": password, **more})


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_register_with_digest_keepalive_catalog_in_parts_and_unregister(transport: str) -> None:
    async with platform([dome()]) as (driver, ctx, port):
        s = sim(port, "--channels", "6", "--catalog-batch", "4", transport=transport)
        try:
            await ctx.wait(lambda: ctx.online.get("dome-1"), 10, "dome online")
            status = s.control("status")
            assert status["registrations"] == 1 and status["auth_failures"] == 0
            assert driver.registrar.counts["challenges"] == 1 and driver.registrar.counts["registrations"] == 1
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", status["platform_date"])  # §9.10 Date
            # six channels in two Catalog MESSAGEs (4 + 2): six devices, each with an on-demand stream
            await ctx.wait(lambda: len(ctx.added) == 6, 10, "six channel devices")
            assert set(ctx.added) == {f"dome-1-ch{i}" for i in range(1, 7)}
            assert all(kind == "camera" for kind, _ in ctx.added.values())
            assert driver.counts["catalog_parts"] == 2
            offers = await ctx.wait(lambda: len(ctx.of(StreamOffer)) == 6 and ctx.of(StreamOffer), 5, "stream offers")
            assert {o.options["format"] for o in offers} == {"mpeg"} and all(o.on_demand for o in offers)
            assert all(o.url.startswith("tcp://127.0.0.1:") for o in offers)
            assert all(ctx.online.get(f"dome-1-ch{i}") for i in range(1, 7))
            await asyncio.sleep(2.5)
            assert driver.counts["keepalives"] >= 2 and ctx.online["dome-1"]
            assert s.control("status")["keepalives_ok"] >= 2
        finally:
            await asyncio.to_thread(s.stop)  # the simulator unregisters (Expires: 0) on SIGTERM
        await ctx.wait(lambda: not ctx.online.get("dome-1"), 5, "offline after unregister")
        assert driver.registrar.counts["unregisters"] == 1, driver.stats()
        assert not ctx.online.get("dome-1-ch1")
        assert any(e.type == "offline" and "unregistered" in e.text for e in ctx.of(Event, "dome-1"))


async def test_wrong_password_is_refused_and_never_online_and_unknown_ids_are_counted() -> None:
    async with platform([dome(), dome("dome-2", "34020000001320000002", "another-password")]) as (driver, ctx, port):
        right = sim(port)
        wrong = sim(port, "--device-id", "34020000001320000002", "--password", "not-the-password", "--register-retry", "1")
        stranger = sim(port, "--device-id", "34020000001320000099", "--register-retry", "1")
        try:
            await ctx.wait(lambda: ctx.online.get("dome-1"), 10, "the right one online")
            await ctx.wait(lambda: driver.registrar.counts["auth_failures"] >= 2, 10, "two refused registrations")
            assert wrong.control("status")["state"] in ("forbidden", "registering")
            assert not ctx.online.get("dome-2") and "dome-2" not in ctx.online
            assert [e.type for e in ctx.of(Event, "dome-2")] == ["auth_failed"]  # once a minute at most
            await ctx.wait(lambda: driver.registrar.counts["unknown_devices"] >= 1, 10, "unknown id counted")
            assert "34020000001320000099" in driver.stats()["unknown_ids"]
            # the wrong device's fault is fixed on its side: with the right password it comes online
            assert ctx.online.get("dome-2") is None
        finally:
            for s in (right, wrong, stranger):
                s.stop()


async def test_keepalives_stop_offline_after_three_misses_then_back() -> None:
    async with platform([dome()], heartbeat_s=0.5) as (driver, ctx, port):
        s = sim(port, "--keepalive", "0.5")
        try:
            await ctx.wait(lambda: ctx.online.get("dome-1") and "dome-1-ch1" in ctx.added, 10, "online with its channel")
            s.control("stop_keepalive on")
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await ctx.wait(lambda: not ctx.online.get("dome-1"), 5, "offline")
            assert 1.0 <= loop.time() - t0 <= 2.5  # 3 × 0.5 s after the last keepalive
            assert not ctx.online.get("dome-1-ch1")
            ev = [e for e in ctx.of(Event, "dome-1") if e.type == "offline"][-1]
            assert "3 missed" in ev.text
            s.control("stop_keepalive off")
            await ctx.wait(lambda: ctx.online.get("dome-1"), 5, "online again at the next keepalive")
            assert ctx.online.get("dome-1-ch1")
        finally:
            s.stop()


async def test_registration_expiry_takes_a_silent_device_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registrar, "EXPIRY_GRACE_S", 0.2)
    async with platform([dome()], heartbeat_s=60) as (driver, ctx, port):
        s = sim(port, "--expires", "10", "--keepalive", "60", "--reboot-s", "30")
        try:
            await ctx.wait(lambda: ctx.online.get("dome-1"), 10, "online")
            s.control("reboot")  # silent from now on: no unregister, no keepalive
            await ctx.wait(lambda: not ctx.online.get("dome-1"), 14, "offline at expiry")
            assert driver.registrar.counts["expired"] == 1
            assert "registration expired" in [e for e in ctx.of(Event, "dome-1") if e.type == "offline"][-1].text
        finally:
            s.stop()


async def test_positions_by_subscription_and_by_message() -> None:
    body = (BODYCAM[:10] + "138" + "0000003")
    cams = [("bodycam-1", "bodycam", {"device_id": BODYCAM, "password": PASSWORD, "position_interval_s": 1}),
            ("bodycam-2", "bodycam", {"device_id": body, "password": PASSWORD, "position_interval_s": 0})]
    async with platform(cams) as (driver, ctx, port):
        walker = sim(port, "--kind", "bodycam", "--device-id", BODYCAM, "--speed-kmh", "36", "--position", "30.5,104.0")
        talker = sim(port, "--kind", "bodycam", "--device-id", body, "--position-mode", "message", "--position-interval", "1")
        try:
            await ctx.wait(lambda: len(ctx.of(Position, "bodycam-1")) >= 3, 15, "subscribed positions")
            await ctx.wait(lambda: len(ctx.of(Position, "bodycam-2")) >= 2, 15, "MESSAGE positions")
            got = ctx.of(Position, "bodycam-1")
            assert all(p.source == "gb28181" for p in ctx.of(Position))
            assert abs(got[0].lat - 30.5) < 0.01 and abs(got[0].lon - 104.0) < 0.01
            assert got[-1].speed_mps is not None and abs(got[-1].speed_mps - 10.0) < 0.5  # 36 km/h
            assert (got[-1].lat, got[-1].lon) != (got[0].lat, got[0].lon)  # the team walks
            assert driver.positions.counts["subscribes"] == 1
            assert walker.control("status")["subscriptions"]
            assert ctx.added and all(kind == "bodycam" for kind, _ in ctx.added.values())
        finally:
            walker.stop()
            talker.stop()


async def test_ptz_commands_move_the_simulated_dome() -> None:
    async with platform([dome()]) as (driver, ctx, port):
        s = sim(port)
        try:
            await ctx.wait(lambda: ctx.online.get("dome-1") and "dome-1-ch1" in driver.channel_devices, 10, "channel")
            assert driver.check_command("dome-1-ch1", "ptz_move", {"pan": 1}) is None
            assert driver.check_command("gb", "ptz_stop", {}) is not None  # the listener is no camera
            sent: list[bool] = []
            detail = await driver.execute("dome-1-ch1", "ptz_move", {"pan": 1.0, "tilt": 0.0, "zoom": 0.5}, lambda: sent.append(True))
            assert sent == [True] and "A50F0011FF0080" in detail  # right + zoom in, pan 255, zoom 8
            ptz0 = _ptz(s)
            assert ptz0["pan_rate"] == 120.0 and ptz0["zoom_rate"] > 0 and ptz0["tilt_rate"] == 0  # full speed right
            await asyncio.sleep(1.0)
            ptz1 = _ptz(s)
            assert ptz1["pan"] != ptz0["pan"] and ptz1["zoom"] > ptz0["zoom"]
            await driver.execute("dome-1-ch1", "ptz_stop", {}, lambda: None)
            held = _ptz(s)
            await asyncio.sleep(0.5)
            assert _ptz(s)["pan"] == held["pan"]
            # set preset 3 here (through the simulator, as an installer would), move away, call it back
            s.control(f"ptz {DOME_CH} A50F008100030038")
            await driver.execute("dome-1", "ptz_move", {"pan": -1.0}, lambda: None)  # the device's first channel
            await asyncio.sleep(0.5)
            await driver.execute("dome-1", "ptz_stop", {}, lambda: None)
            assert _ptz(s)["pan"] != held["pan"]
            await driver.execute("dome-1-ch1", "ptz_preset", {"preset": 3}, lambda: None)
            assert abs(_ptz(s)["pan"] - held["pan"]) < 0.5
            status = s.control("status")
            assert status["ptz_commands"] == 5 and status["ptz_bad"] == 0  # the five the driver sent, all well formed
        finally:
            s.stop()
        with pytest.raises(CommandError) as offline:
            await driver.execute("dome-1-ch1", "ptz_stop", {}, lambda: None)
        assert offline.value.status == "failed"


def _ptz(s: SimProcess) -> dict[str, Any]:
    return s.control("status")["channels"][0]["ptz"]


async def test_malformed_traffic_is_refused_or_dropped_and_counted() -> None:
    async with platform([dome()]) as (driver, ctx, port):
        s = sim(port)
        try:
            await ctx.wait(lambda: ctx.online.get("dome-1"), 10, "online")
            for kind in ("headers", "startline", "bytes", "length", "xml", "entity", "oversized"):
                s.control(f"garbage {kind}")
            await until(lambda: driver.stats().get("sip_bad_messages", 0) >= 4 and driver.counts["bad_xml"] >= 2, 5,
                        "bad messages counted")
            # raw datagrams of our own: a truncated REGISTER, binary noise, a huge body claim (answered 413)
            answer = await asyncio.to_thread(_exchange, port, [
                b"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\n", bytes(range(256)), b"\r\n\r\n",
                b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKy\r\nFrom: <sip:1@b>;tag=1\r\n"
                b"To: <sip:a@b>\r\nCall-ID: q\r\nCSeq: 1 MESSAGE\r\nContent-Length: 70000\r\n\r\nx"])
            assert answer.startswith(b"SIP/2.0 413")
            # a keepalive from a device id the kit does not know: 404, counted
            stranger = (b"MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKz\r\n"
                        b"From: <sip:34020000001320000077@3402000000>;tag=1\r\nTo: <sip:34020000002000000001@3402000000>\r\n"
                        b"Call-ID: k\r\nCSeq: 1 MESSAGE\r\nContent-Type: Application/MANSCDP+xml\r\nContent-Length: 0\r\n\r\n")
            assert (await asyncio.to_thread(_exchange, port, [stranger])).startswith(b"SIP/2.0 404")
            assert "34020000001320000077" in driver.stats()["unknown_ids"]
            await asyncio.sleep(1.5)
            assert ctx.online.get("dome-1")  # still alive and keeping alive
            assert "sip_handler_errors" not in driver.stats()
        finally:
            s.stop()


def _exchange(port: int, datagrams: list[bytes]) -> bytes:
    """Send these datagrams (from a thread: the driver's loop runs on) and return the first answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        for data in datagrams:
            raw.sendto(data, ("127.0.0.1", port))
        raw.settimeout(3)
        return raw.recv(4096)


def test_kit_options_are_checked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    t = "sip://0.0.0.0:5060"
    good = [{"id": "gb", "driver": "gb28181", "kind": "network", "transport": t, "options": {"server_id": "34020000002000000001"}},
            {"id": "dome-1", "driver": "gb28181", "kind": "camera", "transport": t, "options": {"device_id": DOME, "password": "x"}}]
    load_kit(write_kit(tmp_path / "good.yaml", good))
    bad = [{"id": "gb", "driver": "gb28181", "transport": t, "options": {"server_id": "123", "heartbeat_s": 0, "media": "rtsp"}},
           {"id": "gb-2", "driver": "gb28181", "transport": t, "options": {}},
           {"id": "dome-1", "driver": "gb28181", "kind": "radio", "transport": t, "options": {"device_id": DOME, "bogus": 1}},
           {"id": "dome-2", "driver": "gb28181", "transport": t, "options": {"device_id": DOME, "password": "p", "channels": {"1": "X"}}},
           {"id": "dome-3", "driver": "gb28181", "transport": "udp://0.0.0.0:5060", "options": {"device_id": DOME}}]
    with pytest.raises(KitError) as err:
        load_kit(write_kit(tmp_path / "bad.yaml", bad))
    text = "\n".join(err.value.problems)
    for expected in ("server_id: a GB/T 28181 id is 20 digits", "heartbeat_s: a number from 1", "media: one of udp",
                     "a second platform entry", "bogus: unknown option", "kind camera or bodycam, not radio",
                     "no password", "also dome-1's", "channels.1", "opens sip://"):
        assert expected in text, (expected, text)
