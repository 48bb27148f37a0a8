"""NMEA 0183 positions (drivers/nmea_position) against the transmitter simulator (hil.nmea) over TCP both
ways, UDP and a pty; the sentence parser and the epoch combiner on their own; hypothesis feeds random
bytes and lines to the line parser."""

from __future__ import annotations

import asyncio
import math
import socket
from functools import reduce
from operator import xor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.nmea_position.driver import NmeaPositionDriver
from drivers.nmea_position.epoch import EpochAssembler, combine
from drivers.nmea_position.sentences import MAX_LINE, LineSplitter, NmeaError, Reading, parse_line
from gateway.model import Event, Position, StatusUpdate
from tests.procs import free_port
from tests.serial_sims import OrderedCollector, SimProcess, link_spec, supervised, until

KMH = 1 / 3.6


def sentence(body: str) -> str:
    return f"${body}*{reduce(xor, body.encode(), 0):02X}"


def metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dy = (lat2 - lat1) * 111_320
    dx = (lon2 - lon1) * 111_320 * math.cos(math.radians(lat1))
    return math.hypot(dx, dy)


def driver(transport: str, **options: float) -> tuple[NmeaPositionDriver, OrderedCollector]:
    ctx = OrderedCollector()
    return NmeaPositionDriver(link_spec("nmea_position", transport, [("tx-1", "bodycam", options)]), ctx), ctx


def positions(ctx: OrderedCollector) -> list[Position]:
    return ctx.of(Position, "tx-1")


def gnss(ctx: OrderedCollector) -> list[dict]:
    return [m.status["gnss"] for m in ctx.of(StatusUpdate, "tx-1") if "gnss" in m.status]


def nmea_counts(drv: NmeaPositionDriver) -> dict[str, int]:
    return drv.stats()["nmea"]


async def check_track(sim: SimProcess, ctx: OrderedCollector, epochs_s: float = 3.0, rate_hz: float = 2.0) -> None:
    """Positions follow the simulated walk: one per epoch, near the true position, 4.5 km/h east, fix 3d."""
    await ctx.wait(lambda: len(positions(ctx)) >= 2, 10, "first positions")
    before = len(positions(ctx))
    await asyncio.sleep(epochs_s)
    got = len(positions(ctx)) - before
    assert abs(got - epochs_s * rate_hz) <= 2, f"{got} positions in {epochs_s} s at {rate_hz} Hz: one per epoch"
    truth = (await sim.control_ok("status"))["position"]
    last = positions(ctx)[-1]
    assert last.source == "nmea" and last.fix == "3d"
    assert metres(last.lat, last.lon, truth["lat"], truth["lon"]) < 15, (last, truth)
    assert last.alt_m == pytest.approx(truth["alt_m"], abs=15)
    assert last.speed_mps == pytest.approx(truth["speed_kmh"] * KMH, abs=0.5)
    assert last.heading_deg == pytest.approx(truth["heading_deg"], abs=5)
    assert ctx.online.get("tx-1") is True


# -- against the simulator -------------------------------------------------------------------------

async def test_tcp_client_track_no_fix_bad_checksums_garbage_and_silence() -> None:
    sim = SimProcess("hil.nmea", ["--tcp-listen", "127.0.0.1:0", "--rate", "2", "--sentences", "RMC,VTG,GGA,GSA"])
    try:
        host, port = sim.ready["tcp_listen"][0]
        drv, ctx = driver(f"tcp://{host}:{port}", min_interval_s=0, timeout_s=2)
        async with supervised(drv, ctx=ctx, restart_after_s=0.3):
            await check_track(sim, ctx)
            # no fix: status says so, and no position is published (never one at 0,0)
            await sim.control_ok("no_fix")
            await ctx.wait(lambda: gnss(ctx) and gnss(ctx)[-1]["fix"] == "none", 5, "no-fix status")
            n = len(positions(ctx))
            await asyncio.sleep(2.0)
            assert len(positions(ctx)) == n
            assert nmea_counts(drv)["no_fix_epochs"] >= 3
            assert any(e.type == "gnss_no_fix" for e in ctx.of(Event, "tx-1"))
            assert all(abs(p.lat) > 1 and abs(p.lon) > 1 for p in positions(ctx))
            await sim.control_ok("no_fix off")
            await ctx.wait(lambda: len(positions(ctx)) > n, 5, "positions again after the fix returns")
            assert gnss(ctx)[-1]["fix"] == "3d"
            assert any(e.type == "gnss_fix" for e in ctx.of(Event, "tx-1"))
            # corrupted sentences are dropped and counted, the rest goes on
            await sim.control_ok("bad_checksum 5")
            await sim.control_ok("garbage")
            await until(lambda: nmea_counts(drv).get("bad_checksum", 0) >= 5, 10, "bad checksums counted")
            n = len(positions(ctx))
            await ctx.wait(lambda: len(positions(ctx)) >= n + 3, 5, "positions after the noise")
            # a silent transmitter goes offline after timeout_s and comes back when it talks again
            await sim.control_ok("stop")
            await ctx.wait(lambda: ctx.online.get("tx-1") is False, 5, "offline after 2 s of silence")
            await sim.control_ok("start")
            await ctx.wait(lambda: ctx.online.get("tx-1") is True, 10, "online again")
    finally:
        sim.stop()


async def test_tcp_listen_transmitter_connects_in_and_reconnects() -> None:
    port = free_port()
    drv, ctx = driver(f"tcp-listen://127.0.0.1:{port}", min_interval_s=0, timeout_s=2)
    async with supervised(drv, ctx=ctx):
        await asyncio.sleep(0.2)
        sim = SimProcess("hil.nmea", ["--tcp-connect", f"127.0.0.1:{port}", "--rate", "2"])
        try:
            await check_track(sim, ctx)
        finally:
            sim.stop()
        await ctx.wait(lambda: ctx.online.get("tx-1") is False, 5, "offline once the transmitter is gone")
        # a rebooted transmitter dials again: heard at once, the link never restarted
        sim = SimProcess("hil.nmea", ["--tcp-connect", f"127.0.0.1:{port}", "--rate", "2"])
        try:
            await ctx.wait(lambda: ctx.online.get("tx-1") is True, 10, "online again")
            assert nmea_counts(drv)["connections"] == 2 and nmea_counts(drv)["opened"] == 1
        finally:
            sim.stop()


@pytest.mark.parametrize("mode", ["epoch", "sentence"])
async def test_udp_datagrams_per_epoch_or_per_sentence(mode: str) -> None:
    port = free_port(socket.SOCK_DGRAM)
    drv, ctx = driver(f"udp-listen://127.0.0.1:{port}", min_interval_s=0)
    async with supervised(drv, ctx=ctx):
        await asyncio.sleep(0.2)
        sim = SimProcess("hil.nmea", ["--udp", f"127.0.0.1:{port}", "--udp-mode", mode, "--rate", "2",
                                      "--sentences", "RMC,VTG,GGA,GSA,GSV"])
        try:
            await check_track(sim, ctx)
            assert nmea_counts(drv)["ignored"] > 0  # GSV: valid, not used
            assert not nmea_counts(drv).get("bad_checksum")
        finally:
            sim.stop()


async def test_serial_pty_and_min_interval(tmp_path: Path) -> None:
    link = tmp_path / "nmea-tty"
    sim = SimProcess("hil.nmea", ["--pty", str(link), "--rate", "4", "--talker", "GN"])
    try:
        drv, ctx = driver(f"serial://{link}?baud=9600", min_interval_s=1)
        async with supervised(drv, ctx=ctx):
            await ctx.wait(lambda: len(positions(ctx)) >= 2, 10, "positions over the pty")
            before = len(positions(ctx))
            await asyncio.sleep(3)
            got = len(positions(ctx)) - before
            assert 2 <= got <= 4, f"min_interval_s 1 at 4 Hz: about one a second, got {got} in 3 s"
            assert nmea_counts(drv)["thinned"] >= 6
            truth = (await sim.control_ok("status"))["position"]
            assert metres(positions(ctx)[-1].lat, positions(ctx)[-1].lon, truth["lat"], truth["lon"]) < 15
    finally:
        sim.stop()


async def test_tcp_client_to_nothing_fails_cleanly() -> None:
    drv, ctx = driver(f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(ConnectionError):
        await drv.run()
    assert ctx.online.get("tx-1") is not True


# -- the parser and the combiner on their own ------------------------------------------------------

RMC = sentence("GPRMC,123519.00,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W,A")
VTG = sentence("GPVTG,084.4,T,,M,022.4,N,041.5,K,A")
GGA = sentence("GPGGA,123519.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
GSA2 = sentence("GPGSA,A,2,04,05,,09,12,,,24,,,,,2.5,1.3,2.1")


def test_sentences_parse_and_combine() -> None:
    rmc, vtg, gga = parse_line(RMC), parse_line(VTG), parse_line(GGA)
    assert rmc and rmc.lat == pytest.approx(48.1173) and rmc.lon == pytest.approx(11.516667) and rmc.valid
    assert rmc.speed_mps == pytest.approx(22.4 * 0.514444) and rmc.heading_deg == 84.4
    assert vtg and vtg.speed_mps == pytest.approx(41.5 / 3.6)
    assert gga and gga.alt_m == 545.4 and gga.quality == 1 and gga.satellites == 8
    epoch = combine([rmc, vtg, gga])
    assert (epoch.fix, epoch.alt_m, epoch.has_position) == ("3d", 545.4, True)
    assert combine([rmc, gga, parse_line(GSA2)]).fix == "2d"  # GSA says 2D
    assert combine([rmc]).fix == "2d"  # RMC alone cannot say 3d
    assert combine([vtg]).has_position is False
    no_fix = [parse_line(sentence("GPRMC,,V,,,,,,,,,,N")), parse_line(sentence("GPGGA,,,,,,0,00,99.99,,,,,,"))]
    epoch = combine([r for r in no_fix if r])
    assert epoch.fix == "none" and epoch.lat is None and not epoch.has_position  # pynmea2 would say 0.0


def test_one_epoch_per_measurement() -> None:
    asm = EpochAssembler()
    out = []
    for t in ("123519.00", "123520.00", "123521.00"):
        for body in (f"GPRMC,{t},A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W,A", "GPVTG,084.4,T,,M,022.4,N,041.5,K,A",
                     f"GPGGA,{t},4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"):
            r = parse_line(sentence(body))
            assert r is not None
            out += asm.add(r)
    # the first epoch ends when the second begins; from then on each closes with its last sentence
    assert len(out) == 3 and not asm.open
    # without times (no fix), a repeated type starts the next epoch
    asm = EpochAssembler()
    for _ in range(3):
        for body in ("GPRMC,,V,,,,,,,,,,N", "GPGGA,,,,,,0,00,99.99,,,,,,"):
            out2 = asm.add(parse_line(sentence(body)))  # type: ignore[arg-type]
    assert out2 and all(e.fix == "none" for e in out2)


@pytest.mark.parametrize("line, reason", [
    (RMC[:-2] + "00", "bad_checksum"),
    (RMC.split("*")[0], "no_checksum"),
    (sentence("GPGGA,123519,9907.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "bad_value"),
    (sentence("GPGGA,123519,4807.038,X,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "bad_value"),
    (sentence("GPGGA,123519,4875.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "bad_value"),
    (sentence("GPRMC,123519,A,4807.038,N,01131.000,E,nan,084.4,230394,003.1,W"), "bad_value"),
    (sentence("GPRMC,126199,A,4807.038,N,01131.000,E,1,084.4,230394,003.1,W"), "bad_value"),
    ("hello world", "unparsable"),
])
def test_bad_sentences_are_named(line: str, reason: str) -> None:
    with pytest.raises(NmeaError) as info:
        parse_line(line)
    assert info.value.reason == reason


def test_splitter_bounds_and_noise() -> None:
    sp = LineSplitter()
    assert sp.feed(b"\x00\xff junk $GPVT") == []
    assert sp.feed(b"G,1*00\r\n" + RMC.encode() + b"\r\n") == ["$GPVTG,1*00", RMC]  # from its last '$'
    assert sp.feed(b"x" * (MAX_LINE * 3)) == [] and sp.overlong >= 1
    assert sp.feed(b"\n" + GGA.encode() + b"\r\n") == [GGA]
    assert sp.feed(b"$GP\xffRMC\r\n") == [] and sp.noise >= 1
    assert sp.feed(VTG.encode()) == [] and sp.end() == [VTG]  # a datagram without a line end


def test_kit_checks() -> None:
    check = NmeaPositionDriver.check_device
    assert check({}, "tcp://127.0.0.1:1") == []
    assert check({}, "tcp-listen://0.0.0.0:9000") == [] and check({}, "serial:///dev/ttyUSB0?baud=9600") == []
    assert check({}, "udp://127.0.0.1:1")[0][1].startswith("transport")
    assert [p[0] for p in check({"timeout_s": 0, "bogus": 1}, "udp-listen://127.0.0.1:1")] == [("bogus",), ("timeout_s",)]
    assert NmeaPositionDriver.check_link([{"id": "a", "transport": "t"}, {"id": "b", "transport": "t"}])


# -- hypothesis: nothing a line can carry makes the parser raise anything but NmeaError ----------------

@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=120) | st.sampled_from([RMC.encode(), GGA.encode(), VTG.encode(), b"\r\n", b"$"]),
                max_size=30))
def test_random_bytes_never_crash_the_line_parser(chunks: list[bytes]) -> None:
    sp, asm = LineSplitter(), EpochAssembler()
    lines = [line for c in chunks for line in sp.feed(c)] + sp.end()
    for line in lines:
        assert line.startswith("$") and len(line) <= MAX_LINE
        try:
            r = parse_line(line)
        except NmeaError:
            continue
        if r is not None:
            for e in asm.add(r):
                assert not e.has_position or (-90 <= e.lat <= 90 and -180 <= e.lon <= 180)  # type: ignore[operator]


FIELD = st.text(alphabet="0123456789.,-+ENSWAVMKTNaz*$", max_size=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["GPRMC", "GNGGA", "GPVTG", "GNGSA", "BDGSV", "GPXXX", "PUBX"]), st.lists(FIELD, max_size=16),
       st.booleans())
def test_random_fields_with_good_checksums(head: str, fields: list[str], good: bool) -> None:
    body = ",".join([head, *fields])
    line = sentence(body) if good else f"${body}"
    try:
        r = parse_line(line)
    except NmeaError as exc:
        assert exc.reason in {"bad_checksum", "no_checksum", "unparsable", "bad_value"}
        return
    assert r is None or isinstance(r, Reading)
    if r is not None and r.lat is not None:
        assert -90 <= r.lat <= 90 and r.lon is not None and -180 <= r.lon <= 180


@settings(max_examples=200, deadline=None)
@given(st.floats(-89.999, 89.999), st.floats(-179.999, 179.999))
def test_generated_positions_read_back(lat: float, lon: float) -> None:
    def ddmm(v: float, deg_digits: int) -> str:
        d = int(abs(v))
        return f"{d:0{deg_digits}d}{(abs(v) - d) * 60:07.4f}"

    body = (f"GNGGA,101010.00,{ddmm(lat, 2)},{'N' if lat >= 0 else 'S'},{ddmm(lon, 3)},{'E' if lon >= 0 else 'W'},"
            f"1,10,0.8,12.0,M,0.0,M,,")
    r = parse_line(sentence(body))
    assert r is not None and r.lat == pytest.approx(lat, abs=1e-5) and r.lon == pytest.approx(lon, abs=1e-5)
