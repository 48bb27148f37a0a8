"""BeiDou RDSS driver: sentence framing (unit + hypothesis), dialect parsing, the send queue, and end to end
against the simulator (hil/beidou) over a pty, both dialects, without a gateway process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import compact_report
from drivers.beidou_rdss import driver as driver_mod
from drivers.beidou_rdss.content import encode_text
from drivers.beidou_rdss.dialects import INHIBIT, INTERVAL, NO_CARD, NOT_LOCKED, Dialect21, DialectBds3, Feedback
from drivers.beidou_rdss.driver import BeidouRdssDriver
from drivers.beidou_rdss.sender import Sender
from drivers.beidou_rdss.sentence import SentenceError, SentenceReader, build, checksum, parse
from gateway.driver_api import CommandError, DeviceSpec, LinkSpec
from gateway.model import Event, Position, StatusUpdate, Telemetry
from tests.serial_sims import Collector, SimProcess, supervised, until

MODEM, TEAM, TEAM_ADDR, OWN_ADDR = "bd-modem", "team-1", "0234567", "0123456"


def line(body: str) -> bytes:
    return f"${body}*{checksum(body):02X}\r\n".encode()


# -- sentences ----------------------------------------------------------------------------

def test_card_queries_have_the_documented_checksums() -> None:
    assert build("CC", "ICA", ["0", "00"]) == b"$CCICA,0,00*7B\r\n"
    assert build("CC", "ICR", ["0", "00"]) == b"$CCICR,0,00*68\r\n"
    assert Dialect21().card_query() == b"$CCICA,0,00*7B\r\n"
    assert DialectBds3().card_query() == b"$CCICR,0,00*68\r\n"
    s = parse(b"$CCICA,0,00*7B\r\n")
    assert (s.talker, s.cmd, s.fields) == ("CC", "ICA", ("0", "00"))


def test_parse_accepts_lower_case_checksum_and_empty_fields() -> None:
    assert parse("$CCICA,0,00*7b").fields == ("0", "00")
    assert parse(line("GNGGA,,,,")).fields == ("", "", "", "")


@pytest.mark.parametrize("bad", [
    b"$CCICA,0,00*7C\r\n",  # wrong checksum
    b"CCICA,0,00*7B\r\n",  # no $
    b"$CCICA,0,00\r\n",  # no checksum
    b"$CCICA,0,00*7\r\n",  # one digit
    b"$CCICA,0,00*+B\r\n",  # not hex
    b"$CC\xffICA,0,00*7B\r\n",  # binary inside
    b"$cc1ca,0*00\r\n",  # not a talker + command
    b"$CCIC",  # cut
    b"",
])
def test_parse_rejects_with_its_own_error(bad: bytes) -> None:
    with pytest.raises(SentenceError):
        parse(bad)


def test_build_refuses_what_cannot_be_framed() -> None:
    for fields in (["a,b"], ["x*y"], ["$"], ["é"], ["\n"]):
        with pytest.raises(ValueError):
            build("CC", "TXA", fields)


def test_reader_counts_noise_cut_and_runaway_lines() -> None:
    r = SentenceReader(max_len=64)
    out = r.feed(b"\x00\xff\x80" + b"$BDTXR,1,02" + line("BDBSI,1,2,3,4") + b"$" + b"x" * 100)
    assert out == [line("BDBSI,1,2,3,4")]
    out += r.feed(b"\r\n" + line("CCICA,0,00")[:5])
    out += r.feed(line("CCICA,0,00")[5:])
    assert out[-1] == line("CCICA,0,00")
    assert r.counts == Counter({"noise_bytes": 3, "cut_sentences": 1, "long_lines": 1})


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_sentence_error(data: bytes) -> None:
    with contextlib.suppress(SentenceError):
        parse(data)
    with contextlib.suppress(SentenceError):
        parse(b"$" + data)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_random_text_raises_only_sentence_error(text: str) -> None:
    for candidate in (text, "$" + text, f"${text}*{checksum(text.encode('utf-8', 'replace')) & 0xFF:02X}"):
        with contextlib.suppress(SentenceError):
            parse(candidate)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=10))
def test_reader_never_raises_and_yields_sentence_candidates(chunks: list[bytes]) -> None:
    r = SentenceReader(max_len=128)
    for chunk in chunks:
        for out in r.feed(chunk):
            assert out.startswith(b"$") and out.endswith(b"\n") and out.count(b"$") == 1
            with contextlib.suppress(SentenceError):
                parse(out)


_field = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="$*,"), max_size=20)


@settings(max_examples=300, deadline=None)
@given(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
       st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=3, max_size=3),
       st.lists(_field, max_size=12))
def test_build_then_parse_is_identity(talker: str, cmd: str, fields: list[str]) -> None:
    raw = build(talker, cmd, fields)
    s = parse(raw)
    assert (s.talker, s.cmd, list(s.fields)) == (talker, cmd, fields)
    assert s.line().encode() + b"\r\n" == raw
    r = SentenceReader()
    assert r.feed(raw[:3]) + r.feed(raw[3:]) == [raw]


# -- dialects -------------------------------------------------------------------------------

def test_feedback_in_both_dialects() -> None:
    d21, d3 = Dialect21(), DialectBds3()
    assert d21.parse_feedback(("TXA", "Y", "Y", "0", "0")) == Feedback(True, 0, 0.0)
    assert d21.parse_feedback(("TXA", "N", "N", "0", "37")) == Feedback(False, INTERVAL, 37.0)
    assert d21.parse_feedback(("TXA", "N", "Y", "2", "0")).reason == INHIBIT
    assert d21.parse_feedback(("ICA", "Y", "Y", "0", "0")) is None
    assert d3.parse_feedback(("101500", "TCQ", "N", "1", "12")) == Feedback(False, INTERVAL, 12.0)
    assert d3.parse_feedback(("101500", "TCQ", "N", "5", "0")).why == "no card"
    assert d3.parse_feedback(("101500", "TCQ", "Y", "0", "0")).accepted
    with pytest.raises(ValueError):
        d3.parse_feedback(("101500", "TCQ", "maybe"))


def test_card_messages_and_beams() -> None:
    d21, d3 = Dialect21(), DialectBds3()
    card = d21.parse_card(("0123456", "90123456", "0000000", "0", "60", "3", "0", "0"))
    assert (card.address, card.interval_s, card.capacity_bits, card.capacity_bytes) == ("0123456", 60, 628, 78)
    assert d3.parse_card(("0123456", "9", "0", "0", "30", "1", "0")).capacity_bytes == 13
    with pytest.raises(ValueError):
        d21.parse_card(("0123456", "9", "0", "0", "30", "5", "0"))
    assert d21.parse_message(("1", "0234567", "1", "1015", "c4e3")).code == "C4E3"
    assert d3.parse_message(("0234567", "0123456", "2", "2", "101500", "C4E3")).sender == "0234567"
    with pytest.raises(ValueError):
        d3.parse_message(("0234567", "0123456", "2", "2", "101500", "C4E"))
    assert d21.parse_beams(("1", "2", "2", "4", "3", "1", "0", "0", "0", "0", "0", "0")) == [2, 4, 3, 1, 0, 0, 0, 0, 0, 0]
    assert d3.parse_beams(("101500.00", "3", "1", "44", "2", "47", "3", "0")) == [44, 47, 0]
    assert d3.send("0234567", "C4E3") == line("CCTCQ,0234567,2,1,2,C4E3,0")
    assert d21.send("0234567", "C4E3") == line("CCTXA,0234567,1,1,C4E3")


# -- the send queue, with a fake terminal ---------------------------------------------------

def _sender(maxlen: int = 4, attempts: int = 3, interval: float = 0.0) -> tuple[Sender, list[dict[str, Any]]]:
    shown: list[dict[str, Any]] = []
    s = Sender(maxlen, attempts, 0.05, shown.append, Counter())
    s.interval_s = interval
    return s, shown


async def test_sender_fails_at_once_for_no_card_and_retries_transient() -> None:
    s, _ = _sender()
    answers = iter([Feedback(False, NOT_LOCKED, 0), None, Feedback(True, 0, 0), Feedback(False, NO_CARD, 0)])
    sent: list[str] = []

    async def transmit(item: Any) -> Feedback | None:
        sent.append(item.code)
        return next(answers)

    runner = asyncio.create_task(s.run(transmit))
    try:
        first = s.submit("0234567", "C4E3", 2, lambda: None)
        assert "accepted by the terminal" in await asyncio.wait_for(first.done, 5)
        second = s.submit("0234567", "B0A1", 2, lambda: None)
        with pytest.raises(CommandError, match="no card"):
            await asyncio.wait_for(second.done, 5)
    finally:
        runner.cancel()
    assert sent == ["C4E3"] * 3 + ["B0A1"]
    assert not s.queue


async def test_sender_queue_is_bounded_and_paced() -> None:
    s, shown = _sender(maxlen=2, interval=0.4)
    times: list[float] = []

    async def transmit(item: Any) -> Feedback | None:
        times.append(time.monotonic())
        return Feedback(True, 0, 0)

    a = s.submit("0234567", "01", 1, lambda: None)
    b = s.submit("0234567", "02", 1, lambda: None)
    with pytest.raises(CommandError) as exc:
        s.submit("0234567", "03", 1, lambda: None)
    assert exc.value.status == "rejected" and "already wait" in exc.value.detail
    runner = asyncio.create_task(s.run(transmit))
    try:
        await asyncio.wait_for(asyncio.gather(a.done, b.done), 5)
    finally:
        runner.cancel()
    assert times[1] - times[0] >= 0.4
    assert any(x["send_state"] == "waiting for the service interval" and x["send_wait_s"] > 0 for x in shown)


async def test_sender_gives_up_after_bounded_attempts_and_withdraws() -> None:
    s, _ = _sender(attempts=2)

    async def transmit(item: Any) -> Feedback | None:
        return Feedback(False, INHIBIT, 0)

    runner = asyncio.create_task(s.run(transmit))
    try:
        item = s.submit("0234567", "01", 1, lambda: None)
        with pytest.raises(CommandError, match=r"transmit inhibited \(2 attempts\)"):
            await asyncio.wait_for(item.done, 5)
        s.interval_s = 100
        s.last_accepted = time.monotonic()
        late = s.submit("0234567", "02", 1, lambda: None)
        s.withdraw(late)
        assert not s.queue
    finally:
        runner.cancel()


# -- the driver without a terminal ------------------------------------------------------------

class FakeContext(Collector):
    def status(self, key: str) -> list[Any]:
        return [m.status[key] for m in self.of(StatusUpdate, MODEM) if key in m.status]


def make_driver(link: Path, dialect: str, **options: Any) -> tuple[BeidouRdssDriver, FakeContext]:
    transport = f"serial://{link}?baud=115200"
    opts = {"dialect": dialect, "feedback_timeout_s": 3, "retry_initial_s": 0.3, "position_interval_s": 1,
            "beam_interval_s": 1, **options}
    devices = (DeviceSpec(MODEM, "satcom", "terminal", transport, options=opts),
               DeviceSpec(TEAM, "satcom", "team 1", transport, options={"address": TEAM_ADDR}))
    ctx = FakeContext()
    return BeidouRdssDriver(LinkSpec("beidou_rdss", transport, devices), ctx), ctx


def test_check_device_and_routes(tmp_path: Path) -> None:
    check = BeidouRdssDriver.check_device
    url = "serial:///dev/ttyUSB0"
    assert check({"dialect": "2.1"}, url) == [] and check({"dialect": 2.1}, url) == []
    assert check({"dialect": "bds3"}, url) == [] and check({"address": TEAM_ADDR}, url) == []
    assert [p for p, _ in check({}, url)] == [("dialect",)]
    assert "4.0" in check({"dialect": "4.0"}, url)[0][1]
    assert [p for p, _ in check({"dialect": "bds3", "queue_max": 0}, url)] == [("queue_max",)]
    assert BeidouRdssDriver.check_link([{"options": {"dialect": "2.1"}}, {"options": {"address": "12345"}}])
    drv, _ = make_driver(tmp_path / "x", "2.1")
    assert drv.text_route(MODEM) is None
    route = drv.text_route(TEAM)
    assert route is not None and (route.channel, route.carrier, route.to, route.max_size) == ("beidou", MODEM, TEAM_ADDR, 13)
    assert route.size("你好ab") == 6


# -- end to end against the simulator ---------------------------------------------------------

@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[Callable[..., SimProcess]]:
    sims: list[SimProcess] = []

    def start(dialect: str, *args: str) -> SimProcess:
        name = f"bd-{len(sims)}"
        sim = SimProcess("hil.beidou", ["--link", str(tmp_path / name), "--control", "127.0.0.1:0", "--dialect",
                                        dialect, "--address", OWN_ADDR, "--level", "2", *args],
                         ready_timeout=30.0, log=tmp_path / f"{name}.log")
        sims.append(sim)
        assert sim.ready["ready"]
        return sim

    yield start
    for sim in sims:
        sim.stop()


def gb_hex(text: str) -> str:
    return text.encode("gb18030").hex().upper()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("dialect", ["2.1", "bds3"])
async def test_texts_sent_byte_exact_and_paced(start_sim: Callable[..., SimProcess], dialect: str) -> None:
    sim = start_sim(dialect, "--interval", "2")
    drv, ctx = make_driver(sim.link, dialect)
    sent: list[str] = []
    async with supervised(drv) as failures:
        await until(lambda: drv.card, what="card read")
        assert ctx.online[MODEM] and ctx.status("capacity_bits") == [408] and ctx.status("address") == [OWN_ADDR]
        texts = ["你好，第一组 ok", "收到 ⚑ 2"]
        t0 = time.monotonic()
        first = asyncio.create_task(drv.execute(MODEM, "text", {"to": TEAM, "text": texts[0]}, lambda: sent.append("1")))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(drv.execute(MODEM, "text", {"to": TEAM_ADDR, "text": texts[1]}, lambda: sent.append("2")))
        done1 = await asyncio.wait_for(first, 10)
        t1 = time.monotonic()
        assert "accepted by the terminal" in done1 and t1 - t0 < 1.5
        await asyncio.wait_for(second, 10)
        assert time.monotonic() - t1 >= 1.9  # the card's 2 s service interval
        too_long = "满" * 26  # 52 bytes; a level-2 card carries 51
        with pytest.raises(CommandError) as exc:
            await drv.execute(MODEM, "text", {"to": TEAM, "text": too_long}, lambda: None)
        assert exc.value.status == "rejected" and "52 bytes" in exc.value.detail and "51 bytes" in exc.value.detail
        assert drv.check_command(MODEM, "text", {"to": TEAM, "text": too_long}) == exc.value.detail
        assert drv.text_route(TEAM).max_size == 51  # type: ignore[union-attr]
        got = (await sim.control_ok("received"))["messages"]
        stats = await sim.control_ok("stats")
        assert not failures
    assert sent == ["1", "2"]
    assert [(m["to"], m["hex"], m["text"]) for m in got] == [(TEAM_ADDR, gb_hex(t), t) for t in texts]
    assert stats.get("refused_interval", 0) == 0 and stats.get("sends_refused", 0) == 0
    assert any(s == "waiting for the service interval" for s in ctx.status("send_state"))
    assert any(w > 0 for w in ctx.status("send_wait_s"))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("dialect", ["2.1", "bds3"])
async def test_positions_messages_beams_and_noise(start_sim: Callable[..., SimProcess], dialect: str) -> None:
    sim = start_sim(dialect, "--interval", "2", "--position", "39.9,116.39,50",
                    "--peer", f"{TEAM_ADDR}:39.91,116.4", "--peer-interval", "0.5")
    drv, ctx = make_driver(sim.link, dialect, position_interval_s=2)
    async with supervised(drv) as failures:
        team = await until(lambda: ctx.of(Position, TEAM), what="peer position")
        assert (round(team[0].lat, 4), round(team[0].lon, 4), team[0].source) == (39.91, 116.4, "beidou")
        assert abs(team[0].ts / 1000 - time.time()) < 30 and ctx.online[TEAM]
        own = await until(lambda: ctx.of(Position, MODEM), what="own RNSS position")
        assert (round(own[0].lat, 4), round(own[0].lon, 4), own[0].fix, own[0].alt_m, own[0].source) == (39.9, 116.39, "3d", 50.0, "beidou")
        await sim.control_ok(f"msg {TEAM_ADDR} 你好 队长")
        await sim.control_ok("msg 0999999 hello base")
        await sim.control_ok("pos 0999999 30.5 114.3")
        await sim.control_ok("noise 00FF80A51B")
        await sim.control_ok("noise " + line("BDTXR,1,0234567,1,1015,C4E3")[:-5].hex() + "3030" + "0D0A")  # bad checksum
        await sim.control_ok("cut BDTXR,1,0234567,1,1015,C4E3C4E3")
        await sim.control_ok("noise " + line("BDXYZ,1,2").hex())  # unknown sentence
        await sim.control_ok(f"msg {TEAM_ADDR} after the noise")
        msgs = await until(lambda: len(ctx.of(Event, TEAM)) >= 2 and ctx.of(Event, TEAM), what="texts")
        assert [(e.type, e.text, e.extra["sender"]) for e in msgs] == [
            ("message", "你好 队长", TEAM_ADDR), ("message", "after the noise", TEAM_ADDR)]
        on_modem = [(e.type, e.extra.get("sender") or e.extra.get("address")) for e in ctx.of(Event, MODEM)]
        assert ("message", "0999999") in on_modem and ("unlisted_terminal", "0999999") in on_modem
        full = compact_report.encode_full(compact_report.Fix(int(time.time()), -33.5, 151.25, 120, 3.5, 270.0, "3d")).hex()
        body = f"BDTXR,1,{TEAM_ADDR},1,1015,{full}" if dialect == "2.1" else f"BDTCI,{TEAM_ADDR},{OWN_ADDR},2,2,101500,{full}"
        await sim.control_ok("noise " + line(body).hex())  # a 0x02 report, which the simulator's peers do not send
        p = await until(lambda: [x for x in ctx.of(Position, TEAM) if x.lat < 0], what="0x02 report")
        assert (p[0].lat, p[0].lon, p[0].alt_m, p[0].speed_mps, p[0].heading_deg, p[0].fix) == (-33.5, 151.25, 120.0, 3.5, 270.0, "3d")
        await asyncio.sleep(1.5)  # beams and RNSS at 1 Hz meanwhile
        assert not failures
    stats = drv.stats()
    assert stats["noise_bytes"] >= 5 and stats["bad_sentences"] >= 1 and stats["cut_sentences"] >= 1
    assert stats["unknown_sentences"] >= 1 and stats["unlisted_senders"] >= 2
    beams = ctx.status("beam_power")
    assert beams and all(isinstance(b, list) and any(p > 0 for p in b) for b in beams)
    beam_max = [m.values["beam_max"] for m in ctx.of(Telemetry, MODEM)]
    assert beam_max and max(beam_max) == (4 if dialect == "2.1" else 47)
    elapsed = (ctx.messages[-1].ts - ctx.messages[0].ts) / 1000 + 1
    assert len(beam_max) <= elapsed / 1 + 1  # beam_interval_s 1, the terminal says it at 1 Hz too
    assert len(ctx.of(Position, MODEM)) <= elapsed / 2 + 1  # position_interval_s 2 against 1 Hz RMC + GGA


@pytest.mark.timeout(30)
@pytest.mark.parametrize("dialect", ["2.1", "bds3"])
async def test_unplug_while_waiting_then_delivered(start_sim: Callable[..., SimProcess], dialect: str) -> None:
    sim = start_sim(dialect, "--interval", "3")
    drv, ctx = make_driver(sim.link, dialect)
    async with supervised(drv) as failures:
        await until(lambda: drv.card, what="card read")
        await drv.execute(MODEM, "text", {"to": TEAM, "text": "first"}, lambda: None)
        second = asyncio.create_task(drv.execute(MODEM, "text", {"to": TEAM, "text": "第二"}, lambda: None))
        await until(lambda: "waiting for the service interval" in ctx.status("send_state"), what="interval wait")
        await sim.control_ok("unplug 1")
        await until(lambda: failures, what="the line to fail")
        assert "waiting for the terminal to return" in ctx.status("send_state")
        assert not second.done()
        assert "accepted" in await asyncio.wait_for(second, 15)
        got = (await sim.control_ok("received"))["messages"]
        stats = await sim.control_ok("stats")
    assert [m["hex"] for m in got] == [gb_hex("first"), gb_hex("第二")]
    assert stats["unplugs"] == 1 and stats.get("refused_interval", 0) == 0
    assert ctx.online[MODEM]


@pytest.mark.timeout(30)
async def test_inhibit_is_retried_and_interval_refusal_is_waited_out(start_sim: Callable[..., SimProcess]) -> None:
    sim = start_sim("bds3", "--interval", "2")
    drv, ctx = make_driver(sim.link, "bds3")
    async with supervised(drv):
        await until(lambda: drv.card, what="card read")
        await sim.control_ok("inhibit 1")
        sending = asyncio.create_task(drv.execute(MODEM, "text", {"to": TEAM, "text": "inhibited"}, lambda: None))
        await until(lambda: drv.counts["refused_transient"] >= 1, what="an inhibit refusal")
        assert any(s.startswith("retrying after: terminal refused: transmit inhibited") for s in ctx.status("send_state"))
        await sim.control_ok("inhibit 0")
        assert "accepted" in await asyncio.wait_for(sending, 10)
    # a new driver object (a gateway restart) knows nothing of that send: the terminal says "interval"
    drv2, _ = make_driver(sim.link, "bds3")
    async with supervised(drv2):
        await until(lambda: drv2.card, what="card read")
        assert "accepted" in await asyncio.wait_for(
            drv2.execute(MODEM, "text", {"to": TEAM, "text": "again"}, lambda: None), 10)
    stats = await sim.control_ok("stats")
    assert stats["refused_inhibit"] >= 1 and stats["refused_interval"] == 1 and drv2.counts["refused_interval"] == 1
    assert [m["text"] for m in (await sim.control_ok("received"))["messages"]] == ["inhibited", "again"]


@pytest.mark.timeout(30)
async def test_no_beam_power_is_retried_as_not_locked_on_2_1(start_sim: Callable[..., SimProcess]) -> None:
    sim = start_sim("2.1", "--interval", "1")
    drv, ctx = make_driver(sim.link, "2.1")
    async with supervised(drv):
        await until(lambda: drv.card, what="card read")
        await sim.control_ok("beam 0")
        await until(lambda: ctx.status("beam_locked")[-1:] == [False], what="beams gone")
        sending = asyncio.create_task(drv.execute(MODEM, "text", {"to": TEAM, "text": "no sky"}, lambda: None))
        await until(lambda: any("power not locked" in s for s in ctx.status("send_state")), what="a not-locked retry")
        await sim.control_ok("beam 3,2")
        assert "accepted" in await asyncio.wait_for(sending, 10)
    assert (await sim.control_ok("stats"))["refused_no-signal"] >= 1


async def test_wrong_dialect_says_so(start_sim: Callable[..., SimProcess], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver_mod, "CARD_TIMEOUT_S", 0.3)
    sim = start_sim("bds3", "--interval", "2")
    drv, ctx = make_driver(sim.link, "2.1")
    with pytest.raises(ConnectionError, match=r"no \$BDICI answer .* is this a 2\.1 terminal"):
        await asyncio.wait_for(drv.run(), 5)
    assert drv.card is None and not ctx.online.get(MODEM)
    with pytest.raises(CommandError, match="not been read"):
        await drv.execute(MODEM, "text", {"to": TEAM, "text": "x"}, lambda: None)


def test_compact_report_first_bytes_never_start_text() -> None:
    assert compact_report.encode_short(compact_report.Fix(0, 1.0, 2.0))[0] == 0x01
    for ch in ("\x01", "\x04"):
        with pytest.raises(CommandError, match="control character"):
            encode_text(ch + "x", Dialect21().parse_card(("0123456", "9", "0", "0", "1", "4", "0", "0")))
