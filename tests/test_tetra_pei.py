"""The TETRA PEI driver against the TETRA radio simulator (hil/tetra) over a pty,
and its LIP / SDS-TL codecs under hypothesis."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.tetra_pei import lip, sds
from drivers.tetra_pei.driver import TetraPeiDriver
from gateway.driver_api import CommandError
from gateway.model import Event, Position, StatusUpdate
from tests.serial_sims import Collector, SimProcess, link_spec, supervised

# -- codecs --------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40))
def test_lip_and_sds_parsers_never_raise_anything_else(data: bytes) -> None:
    for parse, error in ((lip.decode, lip.LipError), (sds.parse, sds.SdsError)):
        for pdu in (data, bytes([lip.PID_LIP]) + data, bytes([sds.PID_TEXT]) + data, bytes([sds.PID_SIMPLE_TEXT]) + data):
            try:
                parse(pdu)  # each on its own: an error on one must not skip the others
            except error:
                pass


@settings(max_examples=500, deadline=None)
@given(lat=st.floats(-89.99, 89.99), lon=st.floats(-179.99, 179.99), speed=st.one_of(st.none(), st.floats(0, 28)),
       heading=st.integers(0, 15))
def test_lip_encode_decode_is_identity_within_resolution(lat: float, lon: float, speed: float | None, heading: int) -> None:
    r = lip.decode(lip.encode(lat, lon, speed, heading * 22.5))
    assert abs(r.lat - lat) <= 180 / 2**24 and abs(r.lon - lon) <= 360 / 2**25
    if speed is None:
        assert r.speed_kmh is None
    else:
        assert abs(r.speed_kmh - round(speed)) < 1e-9  # type: ignore[operator]
        if round(speed) > 0:
            assert r.heading_deg == heading * 22.5


def test_lip_known_vector_and_velocity_code() -> None:
    # 84 bits: PID 0x0A, short report, lat/lon of Chengdu, 36 km/h east
    pdu = lip.encode(30.6586, 104.0648, 36.0, 90.0)
    assert len(pdu) == 11 and pdu[0] == 0x0A and pdu[1] >> 6 == 0
    r = lip.decode(pdu)
    assert abs(r.speed_kmh - 16 * 1.038 ** (lip.code_of_speed(36) - 13)) < 1e-9  # type: ignore[operator]
    assert abs(r.speed_kmh - 36) < 1.5 and r.heading_deg == 90.0  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(text=st.text(min_size=1, max_size=70).filter(lambda t: sds.text_size(t) <= sds.MAX_TEXT_BYTES),
       ref=st.integers(0, 255))
def test_sds_text_encode_decode_is_identity(text: str, ref: int) -> None:
    try:
        text.encode("utf-16-be")
    except UnicodeEncodeError:
        return  # lone surrogates cannot travel as UCS-2
    msg = sds.parse(sds.build_transfer(text, ref))
    assert isinstance(msg, sds.TextMessage) and msg.ref == ref
    assert msg.text == text or msg.coding == sds.UCS2 and any(ord(c) > 0xFFFF for c in text)


# -- the driver against the simulator ---------------------------------------------------


@pytest.fixture
def radio(tmp_path: Path):
    sim = SimProcess("hil.tetra", ["--link", str(tmp_path / "tetra"), "--issi", "2001", "--lip-interval", "0.3",
                                   "--team", "1001:30.6586,104.0648:90:36", "--team", "1002:30.7,104.1",
                                   "--group", "9001", "--report-delay", "0.05"])
    yield sim
    sim.stop()


def make_driver(tmp_path: Path, **options: float) -> tuple[TetraPeiDriver, Collector]:
    ctx = Collector()
    spec = link_spec("tetra_pei", f"serial://{tmp_path / 'tetra'}?baud=38400", [
        ("radio-gw", "radio", {"poll_s": 0.5, **options}), ("team-1", "radio", {"address": "1001"}),
        ("team-2", "radio", {"address": "1002"}), ("all-teams", "radio", {"address": "9001", "group": True})])
    return TetraPeiDriver(spec, ctx), ctx


async def test_positions_texts_and_status_from_the_radio(radio: SimProcess, tmp_path: Path) -> None:
    driver, ctx = make_driver(tmp_path)
    async with supervised(driver) as failures:
        pos = await ctx.wait(lambda: ctx.of(Position, "team-1"), 10, "a LIP position of team-1")
        p = pos[0]
        assert p.source == "lip" and abs(p.lat - 30.6586) < 0.01 and abs(p.lon - 104.0648) < 0.01
        assert p.heading_deg == 90.0 and p.speed_mps is not None and abs(p.speed_mps - 10) < 0.5
        assert ctx.online.get("team-1") and ctx.online.get("radio-gw") and ctx.online.get("all-teams")
        await ctx.wait(lambda: ctx.of(Position, "team-2"), 5, "team-2 position")
        assert radio.control("text 1002 请求支援 two")["ok"]
        ev = await ctx.wait(lambda: [e for e in ctx.of(Event, "team-2") if e.type == "message"], 5, "a text SDS")
        assert ev[0].text == "请求支援 two" and ev[0].extra["channel"] == "tetra_sds"
        st_ = await ctx.wait(lambda: [s for s in ctx.of(StatusUpdate, "radio-gw") if "rssi_dbm" in s.status], 5, "signal")
        assert st_[0].status["rssi_dbm"] == -113 + 2 * 25 and st_[0].status["registration"] == "registered"
        assert radio.control("creg 2")["ok"]
        await ctx.wait(lambda: [e for e in ctx.of(Event, "radio-gw") if e.type == "registration"], 5, "registration event")
        assert not failures


async def test_text_is_sent_byte_exact_and_delivery_reported(radio: SimProcess, tmp_path: Path) -> None:
    driver, ctx = make_driver(tmp_path)
    async with supervised(driver):
        await ctx.wait(lambda: ctx.online.get("radio-gw"), 10, "radio online")
        sent: list[bool] = []
        detail = await driver.execute("radio-gw", "text", {"to": "team-1", "text": "撤离到二号高地"}, lambda: sent.append(True))
        assert sent and "delivered to 1001" in detail
        got = radio.control("received")["messages"]
        assert len(got) == 1 and got[0]["to"] == 1001 and got[0]["text"] == "撤离到二号高地"
        assert bytes.fromhex(got[0]["pdu_hex"]) == sds.build_transfer("撤离到二号高地", got[0]["ref"])
        # a group: no report asked, done when the radio takes it
        detail = await driver.execute("radio-gw", "text", {"to": "all-teams", "text": "All teams: hold"}, lambda: None)
        assert "talk group 9001" in detail
        assert radio.control("received")["messages"][-1]["report_requested"] in (0, False)
        # an ISSI nobody answers for: the network's report says it failed
        with pytest.raises(CommandError) as info:
            await driver.execute("radio-gw", "text", {"to": "4242", "text": "hello?"}, lambda: None)
        assert "0x42" in info.value.detail
        assert driver.check_command("radio-gw", "text", {"to": "team-1", "text": "长" * 71}) is not None


async def test_noise_cut_lines_and_cme_errors_never_break_the_link(radio: SimProcess, tmp_path: Path) -> None:
    driver, ctx = make_driver(tmp_path)
    async with supervised(driver) as failures:
        await ctx.wait(lambda: ctx.online.get("radio-gw"), 10, "radio online")
        assert radio.control("noise 00ff13fe0d0a2b43545344")["ok"]
        assert radio.control("cut")["ok"]
        assert radio.control("noise 0d0a")["ok"]
        assert radio.control("cme 35")["ok"]
        with pytest.raises(CommandError) as info:
            await driver.execute("radio-gw", "text", {"to": "team-2", "text": "test"}, lambda: None)
        assert "CME ERROR: 35" in info.value.detail
        await driver.execute("radio-gw", "text", {"to": "team-2", "text": "after the noise"}, lambda: None)
        n = len(ctx.of(Position, "team-1"))
        await ctx.wait(lambda: len(ctx.of(Position, "team-1")) > n, 5, "positions keep coming")
        assert not failures


async def test_unplugged_radio_comes_back_under_its_link_name(radio: SimProcess, tmp_path: Path) -> None:
    driver, ctx = make_driver(tmp_path)
    async with supervised(driver) as failures:
        await ctx.wait(lambda: ctx.online.get("radio-gw"), 10, "radio online")
        tty_before = radio.control("stats")["tty"]
        assert radio.control("unplug 0.5")["ok"]
        await ctx.wait(lambda: failures, 5, "the driver notices the cable is gone")
        with pytest.raises(CommandError):
            await driver.execute("radio-gw", "text", {"to": "team-1", "text": "x"}, lambda: None)
        await asyncio.sleep(0.8)
        n = len(ctx.of(Position, "team-1"))
        await ctx.wait(lambda: len(ctx.of(Position, "team-1")) > n, 10, "positions after the replug")
        detail = await driver.execute("radio-gw", "text", {"to": "team-1", "text": "back"}, lambda: None)
        assert "delivered" in detail and math.isfinite(len(tty_before))


async def test_radios_of_a_talk_group_become_devices_without_being_listed(radio: SimProcess, tmp_path: Path) -> None:
    ctx = Collector()
    spec = link_spec("tetra_pei", f"serial://{tmp_path / 'tetra'}?baud=38400", [
        ("radio-gw", "radio", {}), ("team-1", "radio", {"address": "1001"}),
        ("rescue", "radio", {"address": "9001", "group": True, "members": ["1000-1099"]})])
    driver = TetraPeiDriver(spec, ctx)
    async with supervised(driver):
        pos = await ctx.wait(lambda: ctx.of(Position, "rescue-1002"), 10, "a position of radio 1002 of the group")
        assert ctx.added["rescue-1002"][0] == "radio" and "1002" in ctx.added["rescue-1002"][1]
        assert pos[0].source == "lip" and ctx.online.get("rescue-1002")
        assert "team-1-1001" not in ctx.added and "rescue-1001" not in ctx.added  # listed radios stay themselves
        route = driver.text_route("rescue-1002")
        assert route is not None and route.to == "1002" and not route.group
        assert driver.text_route("rescue").group  # type: ignore[union-attr]
        detail = await driver.execute("radio-gw", "text", {"to": "rescue-1002", "text": "found you"}, lambda: None)
        assert "delivered to 1002" in detail
    problems = TetraPeiDriver.check_device({"members": ["12-x"]}, "serial:///dev/ttyUSB0")
    assert any("members" in p[0] for p in problems)
