"""Iridium SBD driver (drivers/iridium_sbd): framing, result codes, payloads, and the driver
against the modem simulator (hil/iridium) over a pty, under a restart loop like the supervisor's."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import compact_report
from drivers.common.terminals import check_terminals
from drivers.iridium_sbd import sbd
from drivers.iridium_sbd.driver import IridiumSbdDriver
from drivers.iridium_sbd.receive import handle_mt
from drivers.iridium_sbd.sendqueue import Outgoing, SendQueue
from gateway.driver_api import CommandError, DeviceSpec, LinkSpec
from gateway.model import BusMessage, Event, Position, StatusUpdate, Telemetry
from tests.serial_sims import Collector, SimProcess, supervised, until

MODEM, TEAM_A, TEAM_B = "sat-modem", "team-a", "team-b"


# -- a DriverContext that keeps what the driver says -------------------------------------
class FakeContext(Collector):
    """Only devices of the link may be published for; `changes`: every online change, in order."""

    def __init__(self, ids: set[str]) -> None:
        super().__init__()
        self.ids = ids
        self.changes: list[tuple[str, bool, str]] = []

    def publish(self, msg: BusMessage) -> None:
        assert msg.device in self.ids, f"published for {msg.device}, not on the link"
        super().publish(msg)

    def set_online(self, device_id: str, online: bool, reason: str = "") -> None:
        super().set_online(device_id, online, reason)
        self.changes.append((device_id, online, reason))

    def status(self, device: str = MODEM) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for m in self.of(StatusUpdate, device):
            merged.update(m.status)
        return merged


def make_driver(transport: str = "serial:///dev/null", **options: Any) -> tuple[IridiumSbdDriver, FakeContext]:
    devices = (DeviceSpec(MODEM, "satcom", "modem", transport, options=options),
               DeviceSpec(TEAM_A, "satcom", "team A", transport, options={"address": "TA-1"}),
               DeviceSpec(TEAM_B, "satcom", "team B", transport, options={"address": "TB-2"}))
    ctx = FakeContext({d.id for d in devices})
    return IridiumSbdDriver(LinkSpec("iridium_sbd", transport, devices), ctx), ctx


# -- framing and result codes --------------------------------------------------------------
def test_checksum_is_the_16_bit_sum_high_byte_first() -> None:
    assert sbd.checksum(b"hello") == bytes([0x02, 0x14])  # 532
    assert sbd.checksum(b"\xff" * 340) == (340 * 255 & 0xFFFF).to_bytes(2, "big")  # wraps
    assert sbd.mo_payload(b"hello") == b"hello\x02\x14"
    for bad in (b"", b"x" * 341):
        with pytest.raises(sbd.SbdError):
            sbd.mo_payload(bad)


def test_sbdix_answer_parsing() -> None:
    s = sbd.parse_sbdix("+SBDIX: 0, 12, 1, 5, 24, 2")
    assert (s.mo_status, s.momsn, s.mt_status, s.mtmsn, s.mt_length, s.mt_queued) == (0, 12, 1, 5, 24, 2)
    assert sbd.parse_sbdix("+SBDIX:32,0,2,0,0,0").action is sbd.Action.RETRY
    assert sbd.find_sbdix(["\ufffd\ufffd", "+SBDIX: 36, 3, 2, 0, 0, 0"]).action is sbd.Action.WAIT
    for bad in ("+SBDIX: 0, 1, 0", "+CSQF:5", "OK", "+SBDIX: a, b, c, d, e, f"):
        with pytest.raises(sbd.SbdError):
            sbd.parse_sbdix(bad)
    with pytest.raises(sbd.SbdError):
        sbd.find_sbdix(["garbage"])


@pytest.mark.parametrize(("code", "action"), [
    *[(c, sbd.Action.DONE) for c in range(5)],
    *[(c, sbd.Action.RETRY) for c in (*range(10, 20), 32, 35)],
    (36, sbd.Action.WAIT),
    *[(c, sbd.Action.FAIL) for c in (5, 9, 20, 33, 34, 37, 38, 64, 65, 255)],
])
def test_mo_status_actions(code: int, action: sbd.Action) -> None:
    assert sbd.mo_action(code) is action
    assert sbd.describe_mo(code).startswith(f"MO status {code} (")


def test_mo_status_reasons_name_the_problem() -> None:
    assert "antenna" in sbd.describe_mo(33)
    assert "RF drop" in sbd.describe_mo(18)
    assert "3 minutes" in sbd.describe_mo(36)
    assert "unknown" in sbd.describe_mo(99)


def test_sbdrb_reader_waits_for_the_whole_frame() -> None:
    frame = sbd.sbdrb_frame(b"\x04\x00hi")
    reader = sbd.SbdrbReader()
    for cut in range(len(frame)):
        assert reader(bytearray(frame[:cut])) is None
    assert reader(bytearray(frame + b"\r\nOK\r\n")) == len(frame)
    assert reader.data == b"\x04\x00hi" and reader.error is None


def test_sbdrb_reader_drops_a_bad_checksum_and_refuses_impossible_lengths() -> None:
    bad = bytearray(sbd.sbdrb_frame(b"abc"))
    bad[-1] ^= 1
    reader = sbd.SbdrbReader()
    assert reader(bad) == len(bad) and reader.data is None and "checksum" in (reader.error or "")
    stray = sbd.SbdrbReader()  # a line where the frame should be: length 0x5342 > 270
    assert stray(bytearray(b"SBDRING\r\n")) == 0 and stray.data is None and stray.error
    empty = sbd.SbdrbReader()
    assert empty(bytearray(b"\x00\x00\x00\x00")) == 4 and empty.data == b""


def test_sbds_status() -> None:
    assert sbd.parse_sbds(["+SBDS: 1, 17, 0, -1"]) == (1, 17, 0, -1)
    assert sbd.parse_sbds(["junk", "+SBDS:0,3,1,9"]) == (0, 3, 1, 9)
    with pytest.raises(sbd.SbdError):
        sbd.parse_sbds(["+SBDS: 1, 2"])


def test_csqf_and_write_results() -> None:
    assert sbd.parse_csqf(["+CSQF:3"]) == 3
    assert sbd.parse_csqf(["noise", "+CSQF: 0"]) == 0
    assert sbd.parse_csqf(["+CSQF:9"]) is None
    assert sbd.write_result(["0"]) == 0 and sbd.write_result(["2"]) == 2 and sbd.write_result([]) is None


# -- hypothesis: parsers never raise anything but their own error ---------------------------
@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_sbdrb_parsers_take_any_bytes(data: bytes) -> None:
    reader = sbd.SbdrbReader()
    used = reader(bytearray(data))
    assert used is None or 0 <= used <= len(data)
    if used:
        assert (reader.data is None) != (reader.error is None)
    try:
        sbd.parse_sbdrb(data)
    except sbd.SbdError:
        pass


@given(st.binary(min_size=0, max_size=272))
def test_sbdrb_frame_round_trip(data: bytes) -> None:
    if len(data) <= sbd.MT_MAX:
        assert sbd.parse_sbdrb(sbd.sbdrb_frame(data)) == data
        assert sbd.SbdrbReader()(bytearray(sbd.sbdrb_frame(data))) == len(data) + 4


@given(st.one_of(st.binary(max_size=400), st.binary(max_size=60).map(lambda b: bytes([3]) + b),
                 st.binary(max_size=60).map(lambda b: bytes([4]) + b)))
@settings(max_examples=500, deadline=None)
def test_compact_report_decode_takes_any_bytes(data: bytes) -> None:
    try:
        compact_report.decode(data)
    except compact_report.ReportError:
        pass


SENDER = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=32)
FIXES = st.builds(
    compact_report.Fix,
    ts=st.integers(0, 2**32 - 1),
    lat=st.integers(-900_000_000, 900_000_000).map(lambda v: v / 1e7),
    lon=st.integers(-1_800_000_000, 1_800_000_000).map(lambda v: v / 1e7),
    alt_m=st.one_of(st.none(), st.integers(-32767, 32767).map(float)),
    speed_mps=st.one_of(st.none(), st.integers(0, 65534).map(lambda v: v / 100)),
    heading_deg=st.one_of(st.none(), st.integers(0, 35999).map(lambda v: v / 100)),
)


@given(SENDER, st.lists(FIXES, min_size=1, max_size=16))
def test_position_batch_round_trip(sender: str, fixes: list[compact_report.Fix]) -> None:
    data = compact_report.encode_batch(sender, fixes)
    decoded = compact_report.decode(data)
    assert decoded.kind == "positions" and decoded.sender == sender and list(decoded.fixes) == fixes
    if len(fixes) <= 16:
        assert len(data) <= sbd.MO_MAX


@given(st.one_of(st.just(""), SENDER), st.text(max_size=120))
def test_text_round_trip(to: str, text: str) -> None:
    decoded = compact_report.decode(compact_report.encode_text(to, text))
    assert decoded.kind == "text" and decoded.to == to and decoded.text == text


# -- the driver's pieces, no modem ------------------------------------------------------------
def test_kit_checks_and_text_route() -> None:
    drv, _ = make_driver()
    assert drv.name == "iridium_sbd" and drv.default_kind == "satcom" and drv.default_baud == 19200
    route = drv.text_route(TEAM_A)
    assert route is not None and (route.channel, route.carrier, route.to) == ("sbd", MODEM, "TA-1")
    assert route.max_size == 340 - 2 - len("TA-1")
    assert route.size("你好") == 6 and route.size("hi") == 2
    assert drv.text_route(MODEM) is None
    devices: list[dict[str, Any]] = [{"options": {}}, {"options": {"address": "TA-1"}}, {"options": {"address": "bad id!"}}]
    problems = check_terminals(devices, IridiumSbdDriver.address_pattern, "Iridium")
    assert [p[0] for p in problems] == [2]
    problem = IridiumSbdDriver.check_device({"registration_wait_s": -1}, "serial:///dev/x")
    assert len(problem) == 1 and problem[0][0][-1] == "registration_wait_s"
    assert IridiumSbdDriver.check_device({"max_attempts": 8, "mailbox_poll_s": 300}, "serial:///dev/x") == []


def test_command_checks_and_timeout() -> None:
    drv, _ = make_driver()
    assert drv.check_command(MODEM, "text", {"to": TEAM_A, "text": "x" * 334}) is None
    assert "340 bytes" in (drv.check_command(MODEM, "text", {"to": TEAM_A, "text": "x" * 335}) or "")
    assert drv.check_command(MODEM, "text", {"to": "no such team!", "text": "hi"})
    assert drv.check_command(MODEM, "text", {"to": "RAW-ID", "text": "hi"}) is None  # a raw sender id
    timeout = drv.command_timeout("text")
    assert timeout is not None and timeout >= 180 + 300
    fast, _ = make_driver(registration_wait_s=1, retry_initial_s=0.1, retry_max_s=1, max_attempts=3)
    assert 1 < (fast.command_timeout("text") or 0) < 180
    assert drv.command_timeout("reboot") is None


async def test_execute_rejects_what_cannot_be_sent() -> None:
    drv, _ = make_driver()
    with pytest.raises(CommandError) as err:
        await drv.execute(MODEM, "text", {"to": TEAM_A, "text": "长" * 120}, lambda: None)
    assert err.value.status == "rejected" and "340" in err.value.detail
    with pytest.raises(CommandError) as err:
        await drv.execute(MODEM, "reboot", {}, lambda: None)
    assert err.value.status == "rejected"


async def test_send_queue_is_bounded_and_skips_given_up_messages() -> None:
    q = SendQueue(limit=2)
    a, b, c = (Outgoing("TA-1", b"\x04\x00" + bytes([i]), lambda: None) for i in range(3))
    q.put(a)
    q.put(b)
    with pytest.raises(CommandError) as err:
        q.put(c)
    assert err.value.status == "rejected" and "full" in err.value.detail
    a.result.cancel()  # the router gave up on it
    assert q.head() is b and len(q) == 1
    q.finish(b, "ok")
    assert q.head() is None and b.result.result() == "ok"


def test_mt_payloads_become_the_model() -> None:
    drv, ctx = make_driver()
    fixes = [compact_report.Fix(1_700_000_100, 30.5, 114.25, 20.0, 1.5, 270.0),
             compact_report.Fix(1_700_000_000, 30.4, 114.2)]
    handle_mt(drv, compact_report.encode_batch("TA-1", fixes), 7)
    pos = ctx.of(Position, TEAM_A)
    assert [p.ts for p in pos] == [1_700_000_000_000, 1_700_000_100_000]
    assert all(p.source == "sbd" for p in pos) and (pos[1].lat, pos[1].lon, pos[1].alt_m) == (30.5, 114.25, 20.0)
    assert (TEAM_A, True) in [(d, o) for d, o, _ in ctx.changes]
    handle_mt(drv, compact_report.encode_batch("ZZ-9", fixes[:1]), 8)
    unlisted = ctx.of(Event, MODEM)[-1]
    assert unlisted.severity == "info" and "ZZ-9" in unlisted.text and drv.counts["unlisted_senders"] == 1
    handle_mt(drv, compact_report.encode_text("ops", "need water 需要水"), 9)
    msg = ctx.of(Event, MODEM)[-1]
    assert (msg.type, msg.text, msg.extra["to"]) == ("message", "need water 需要水", "ops")
    for junk in (b"\x99junk", b"\x03\x01", compact_report.encode_short(fixes[0])):
        handle_mt(drv, junk, 10)
        ev = ctx.of(Event, MODEM)[-1]
        assert ev.type == "undecodable_mt" and ev.text.startswith("undecodable MT message")
        assert ev.extra["hex"] == junk.hex()
    assert drv.counts["mt_undecodable"] == 2 and drv.counts["mt_no_sender"] == 1


# -- against the simulator ---------------------------------------------------------------------
def start_sim(tmp_path: Path, *args: str) -> SimProcess:
    link = tmp_path / "iridium0"
    sim = SimProcess("hil.iridium", ["--link", str(link), "--control", "127.0.0.1:0", "--session-delay", "0.05-0.2",
                                     "--seed", "7", *args], ready_timeout=30.0, log=tmp_path / "iridium0.log")
    assert sim.ready["ready"] and sim.ready["link"] == str(link)
    return sim


@pytest.fixture
def sim_factory(tmp_path: Path) -> Iterator[Callable[..., SimProcess]]:
    sims: list[SimProcess] = []

    def factory(*args: str) -> SimProcess:
        sims.append(start_sim(tmp_path, *args))
        return sims[-1]

    yield factory
    for s in sims:
        s.stop()


@contextlib.asynccontextmanager
async def running(sim: SimProcess, **options: Any) -> AsyncIterator[tuple[IridiumSbdDriver, FakeContext, list[Any]]]:
    """The driver on the simulator's link, restarted after a failure as the supervisor does."""
    opts = {"retry_initial_s": 0.1, "retry_max_s": 0.5, "mailbox_poll_s": 60, "poll_s": 1, **options}
    drv, ctx = make_driver(f"serial://{sim.link}?baud=19200", **opts)
    async with supervised(drv, ctx=ctx) as failures:
        await until(lambda: drv.connected.is_set() and "imei" in ctx.status(), 5)
        yield drv, ctx, failures


async def send(drv: IridiumSbdDriver, to: str, text: str) -> tuple[str, list[float]]:
    sent: list[float] = []
    detail = await asyncio.wait_for(drv.execute(MODEM, "text", {"to": to, "text": text},
                                                lambda: sent.append(time.monotonic())), 20)
    return detail, sent


async def test_text_reaches_the_gateway_byte_exact(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory()
    async with running(sim) as (drv, ctx, failures):
        assert ctx.status()["imei"] == "300434063000001"
        await until(lambda: ctx.of(Telemetry, MODEM), 3)
        assert ctx.status()["signal_bars"] == 5 and ctx.of(Telemetry, MODEM)[0].values == {"signal_bars": 5.0}
        text = "Return to base at 18:00 / 18点返回营地"
        detail, sent = await send(drv, TEAM_A, text)
        assert len(sent) == 1 and "MOMSN 0" in detail and "TA-1" in detail
        received = (await sim.control_ok("received"))["messages"]
        assert [m["hex"] for m in received] == [compact_report.encode_text("TA-1", text).hex()]
        detail, _ = await send(drv, "RAW-7", "second")  # a raw sender id not in the kit
        assert "MOMSN 1" in detail
        for _ in range(100):  # cleared after success (AT+SBDD0, just after the command is done)
            if (await sim.control_ok("stats"))["mo_buffer"] == 0:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the MO buffer was not cleared after the session")
        await sim.control_ok("csq 2")
        await until(lambda: ctx.status()["signal_bars"] == 2, 3)
        assert not failures and drv.stats()["mo_sent"] == 2


async def test_rf_drop_is_retried_with_the_buffer_kept(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory()
    async with running(sim) as (drv, ctx, failures):
        await sim.control_ok("fail 18 2")
        detail, sent = await send(drv, TEAM_B, "retry me")
        assert len(sent) == 1 and "MOMSN 0" in detail
        stats = await sim.control_ok("stats")
        assert [s["mo_status"] for s in stats["session_log"]] == [18, 18, 0]
        assert [m["hex"] for m in (await sim.control_ok("received"))["messages"]] == [
            compact_report.encode_text("TB-2", "retry me").hex()]
        assert drv.stats()["mo_status_18"] == 2 and drv.stats()["mo_written"] == 1  # written once
        assert any(u.status.get("sbd_state") == "retrying" for u in ctx.of(StatusUpdate, MODEM))
        assert not failures


async def test_hard_failure_and_bounded_attempts(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory()
    async with running(sim, max_attempts=2) as (drv, _, failures):
        await sim.control_ok("fail 33")
        with pytest.raises(CommandError) as err:
            await send(drv, TEAM_A, "antenna")
        assert err.value.status == "failed" and "antenna fault" in err.value.detail
        await sim.control_ok("fail 35 2")
        with pytest.raises(CommandError) as err:
            await send(drv, TEAM_A, "busy")
        assert "after 2 sessions" in err.value.detail and "busy" in err.value.detail
        await send(drv, TEAM_A, "now it goes")  # the failed ones were cleared from the buffer
        received = (await sim.control_ok("received"))["messages"]
        assert [m["hex"] for m in received] == [compact_report.encode_text("TA-1", "now it goes").hex()]
        assert not failures


async def test_status_36_waits_for_registration(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory()
    async with running(sim, registration_wait_s=1) as (drv, ctx, failures):
        await sim.control_ok("fail 36")
        await send(drv, TEAM_A, "after the wait")
        log = (await sim.control_ok("stats"))["session_log"]
        assert [s["mo_status"] for s in log] == [36, 0]
        assert log[1]["ts"] - (log[0]["ts"] + log[0]["duration_s"]) >= 1.0
        waiting = [u.status for u in ctx.of(StatusUpdate, MODEM) if u.status.get("sbd_state") == "waiting"]
        assert waiting and "no session for 1 s" in waiting[0]["sbd_detail"]
        assert not failures


async def test_mt_position_batch_becomes_positions(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory()
    async with running(sim) as (drv, ctx, failures):
        fixes = [compact_report.Fix(1_700_000_000 + i * 60, 29.5 + i / 100, 106.5, 300.0, 1.2, 45.0) for i in range(3)]
        await sim.control_ok("mt " + compact_report.encode_batch("TB-2", fixes).hex())
        await sim.control_ok("mt " + compact_report.encode_text("ops", "all well").hex())
        await until(lambda: len(ctx.of(Position, TEAM_B)) == 3 and ctx.of(Event, MODEM), 5)
        pos = ctx.of(Position, TEAM_B)
        assert {p.source for p in pos} == {"sbd"} and pos[2].lat == pytest.approx(29.52)
        msg = ctx.of(Event, MODEM)[0]
        assert (msg.type, msg.text) == ("message", "all well")
        await sim.control_ok("mt 99deadbeef")
        await until(lambda: drv.stats().get("mt_undecodable") == 1, 5)
        stats = await sim.control_ok("stats")
        assert stats["mailbox"] == 0 and stats["mt_delivered"] == 3
        assert drv.stats()["rings"] >= 1 and not failures


async def test_mailbox_is_polled_with_an_empty_mo(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory()
    async with running(sim, mailbox_poll_s=1) as (_, _, failures):
        started = time.monotonic()
        for _ in range(150):
            stats = await sim.control_ok("stats")
            if stats["mailbox_checks"]:
                break
            await asyncio.sleep(0.02)
        assert time.monotonic() - started >= 0.7  # not before mailbox_poll_s
        assert stats["mailbox_checks"] == 1 and stats["session_log"][0]["kind"] == "SBDIX"
        assert stats["session_log"][0]["mo_length"] == 0 and not failures


async def test_noise_is_counted_and_harmless(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory()
    async with running(sim) as (drv, _, failures):
        await sim.control_ok("noise " + (b"\xde\xad\xbe\xef garbage\r\n\x00\xff+SBDIX: x\r\n").hex())
        await until(lambda: drv.stats().get("at_unexpected_lines", 0) >= 2, 3)
        detail, _ = await send(drv, TEAM_A, "still fine")
        assert "MOMSN" in detail and not failures


async def test_power_loss_mid_send_delivers_after_the_modem_returns(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory("--session-delay", "1.0")
    async with running(sim) as (drv, ctx, failures):
        sending = asyncio.create_task(send(drv, TEAM_A, "through the replug"))
        await until(lambda: drv.stats().get("mo_written") == 1, 5)
        await asyncio.sleep(0.3)  # inside the 1 s session
        await sim.control_ok("unplug 1")
        detail, sent = await asyncio.wait_for(sending, 15)
        assert "MOMSN" in detail and len(sent) == 1
        received = (await sim.control_ok("received"))["messages"]
        assert [m["hex"] for m in received] == [compact_report.encode_text("TA-1", "through the replug").hex()]
        assert failures and drv.stats()["mo_written"] == 2  # written again into the restarted modem
        assert (MODEM, False) in [(d, o) for d, o, _ in ctx.changes]


async def test_serial_cut_mid_session_is_not_sent_twice(sim_factory: Callable[..., SimProcess]) -> None:
    """Only the USB-serial link drops: the modem finishes the session on its own; its MOMSN says so."""
    sim = sim_factory("--session-delay", "0.6", "--unplug-mode", "serial")
    async with running(sim) as (drv, _, failures):
        sending = asyncio.create_task(send(drv, TEAM_B, "only once"))
        await until(lambda: drv.stats().get("mo_written") == 1, 5)
        await asyncio.sleep(0.2)
        await sim.control_ok("unplug 1")
        detail, sent = await asyncio.wait_for(sending, 15)
        assert "confirmed after the line came back" in detail and len(sent) == 1
        received = (await sim.control_ok("received"))["messages"]
        assert [m["hex"] for m in received] == [compact_report.encode_text("TB-2", "only once").hex()]
        assert failures and drv.stats()["mo_written"] == 1
        await send(drv, TEAM_B, "next one")  # the stale MO buffer was cleared first
        assert [m["hex"] for m in (await sim.control_ok("received"))["messages"]][1:] == [
            compact_report.encode_text("TB-2", "next one").hex()]
