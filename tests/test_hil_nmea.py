"""The body-worn transmitter's NMEA 0183 output (hil.nmea), run as a real subprocess on 127.0.0.1.

Sentences are read back over TCP (both roles), UDP and a pty and parsed with pynmea2 (checksums
checked), independently of hil.nmea and of the gateway's driver.
"""
from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pynmea2
import pytest
import serial

from hil.nmea.walk import Walker, distance_bearing
from tests.procs import ROOT, free_port
from tests.serial_sims import SimProcess

START = (30.6586, 104.0648)


class Sim(SimProcess):
    def __init__(self, *args: str) -> None:
        super().__init__("hil.nmea", [*args, "--log-level", "INFO"], ready_timeout=10.0)


def nmea_lines(data: bytes) -> list[str]:
    return [x for x in data.decode("ascii", "replace").split("\r\n") if x]


def parse(line: str) -> pynmea2.NMEASentence:
    return pynmea2.parse(line, check=True)  # a sentence without a checksum or with a wrong one raises


class TcpReader:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3.0)
        self.buf = b""

    def read_for(self, seconds: float) -> bytes:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            self.buf += chunk
        out, self.buf = self.buf, b""
        return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def walking() -> Iterator[Sim]:
    """Due east at 36 km/h (10 m/s), no noise, 5 epochs a second, straight on."""
    sim = Sim("--tcp-listen", "127.0.0.1:0", "--rate", "5", "--speed-kmh", "36", "--heading", "90",
              "--turn-every", "0", "--noise-m", "0", "--start", f"{START[0]},{START[1]}")
    yield sim
    assert sim.stop() == 0


def test_sentences_parse_with_checksums_fix_and_movement(walking: Sim) -> None:
    reader = TcpReader(walking.ready["tcp_listen"][0][1])
    try:
        data = reader.read_for(2.2)
    finally:
        reader.close()
    lines = nmea_lines(data)
    assert lines and all(x.startswith("$GP") for x in lines), lines[:5]
    msgs = [parse(x) for x in lines]
    rmc = [m for m in msgs if isinstance(m, pynmea2.types.talker.RMC)]
    gga = [m for m in msgs if isinstance(m, pynmea2.types.talker.GGA)]
    vtg = [m for m in msgs if isinstance(m, pynmea2.types.talker.VTG)]
    assert 8 <= len(rmc) <= 13 and len(gga) == len(rmc) and abs(len(vtg) - len(rmc)) <= 1
    # each epoch in the u-blox order: RMC, VTG, GGA
    kinds = [type(m).__name__ for m in msgs]
    first = kinds.index("RMC")
    assert kinds[first:first + 3] == ["RMC", "VTG", "GGA"]
    for m in rmc:
        assert m.status == "A" and m.mode_indicator == "A"
        assert m.datestamp == m.datestamp.today() or abs((m.datestamp - m.datestamp.today()).days) <= 1
        assert m.spd_over_grnd == pytest.approx(36 / 1.852, abs=0.01)
        assert m.true_course == pytest.approx(90.0)
    for m in gga:
        assert m.gps_qual == 1 and int(m.num_sats) == 9 and m.altitude == pytest.approx(500.0)
    for m in vtg:
        assert m.spd_over_grnd_kmph == pytest.approx(36.0, abs=0.01)
    # moving east at 10 m/s: the distance between fixes matches the time between them
    a, b = gga[0], gga[-1]
    dist, bearing = distance_bearing(a.latitude, a.longitude, b.latitude, b.longitude)
    seconds = (dt_of(b) - dt_of(a))
    assert seconds > 1.0
    assert dist == pytest.approx(10.0 * seconds, rel=0.05)
    assert bearing == pytest.approx(90.0, abs=1.0)
    assert a.latitude == pytest.approx(START[0], abs=1e-4)
    # epochs are stamped on whole 0.2 s periods
    assert all(round((dt_of(m) * 5)) == pytest.approx(dt_of(m) * 5, abs=1e-6) for m in gga)
    # the control port's true position is where the last fix was (within a second's walk)
    st = walking.control("status")
    assert st["ok"] and st["fix"] and st["sentences_sent"] >= len(lines)
    dist_now, _ = distance_bearing(b.latitude, b.longitude, st["position"]["lat"], st["position"]["lon"])
    assert dist_now < 40.0
    assert st["outputs"][0]["type"] == "tcp-listen" and st["outputs"][0]["accepted"] == 1


def dt_of(m: pynmea2.NMEASentence) -> float:
    t = m.timestamp
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def test_no_fix_bad_checksum_garbage_stop_start(walking: Sim) -> None:
    reader = TcpReader(walking.ready["tcp_listen"][0][1])
    try:
        reader.read_for(0.5)
        assert walking.control("no_fix")["fix"] is False
        reader.read_for(0.3)  # an epoch may have been on its way
        lines = nmea_lines(reader.read_for(1.0))
        msgs = [parse(x) for x in lines]
        assert msgs
        for m in msgs:
            if isinstance(m, pynmea2.types.talker.RMC):
                assert m.status == "V" and m.latitude == 0.0 and not m.lat
            elif isinstance(m, pynmea2.types.talker.GGA):
                assert m.gps_qual == 0 and not m.lat and not m.lon
            elif isinstance(m, pynmea2.types.talker.VTG):
                assert m.faa_mode == "N"
        assert walking.control("no_fix off")["fix"] is True

        assert walking.control("bad_checksum 4")["bad_checksum_pending"] == 4
        lines = nmea_lines(reader.read_for(1.5))
        bad = 0
        for line in lines:
            try:
                parse(line)
            except pynmea2.ChecksumError:
                bad += 1
                body, cs = line[1:].split("*")
                assert cs != f"{pynmea2.NMEASentence.checksum(body):02X}"
        assert bad == 4
        assert walking.control("status")["bad_checksums_sent"] == 4

        reply = walking.control("garbage both 20")
        assert reply["ok"] and reply["bytes"] > 20
        data = reader.read_for(1.0)
        assert b"\xb5\x62" in data
        # a reader that resynchronises on '$' and drops what does not parse still gets every later fix
        good, junk = 0, 0
        for chunk in data.split(b"$")[1:]:
            line = b"$" + chunk.split(b"\r\n")[0]
            try:
                parse(line.decode("ascii"))
                good += 1
            except (pynmea2.ParseError, pynmea2.ChecksumError, pynmea2.SentenceTypeError, UnicodeDecodeError,
                    ValueError):
                junk += 1
        assert good >= 9 and junk >= 1

        assert walking.control("stop")["running"] is False
        reader.read_for(0.3)
        assert reader.read_for(0.8) == b""
        walking.control("start")
        assert nmea_lines(reader.read_for(0.8))
    finally:
        reader.close()


def test_tcp_connect_reconnects_after_the_receiver_drops_it() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        srv.settimeout(10.0)
        port = srv.getsockname()[1]
        sim = Sim("--tcp-connect", f"127.0.0.1:{port}", "--rate", "2", "--talker", "GN")
        try:
            conn, _ = srv.accept()
            conn.settimeout(3.0)
            data = b""
            while data.count(b"\r\n") < 3:
                data += conn.recv(4096)
            assert all(isinstance(parse(x), pynmea2.NMEASentence) for x in nmea_lines(data)[:3])
            assert nmea_lines(data)[0].startswith("$GN")
            conn.close()
            conn2, _ = srv.accept()  # the device dials again (backoff starts at 0.5 s)
            conn2.settimeout(3.0)
            assert conn2.recv(4096).startswith(b"$GN")
            conn2.close()
            st = sim.control("status")["outputs"][0]
            assert st["type"] == "tcp-connect" and st["connects"] == 2
        finally:
            assert sim.stop() == 0


def test_tcp_connect_to_nobody_keeps_trying_and_counts_losses() -> None:
    port = free_port()
    sim = Sim("--tcp-connect", f"127.0.0.1:{port}", "--rate", "5")
    try:
        time.sleep(2.0)
        out = sim.control("status")["outputs"][0]
        assert out["connected"] is False and out["connect_failures"] >= 2 and out["dropped"] >= 5
        with socket.socket() as srv:  # the receiver comes up: the device gets through within the backoff
            srv.bind(("127.0.0.1", port))
            srv.listen(1)
            srv.settimeout(12.0)
            conn, _ = srv.accept()
            conn.settimeout(3.0)
            assert conn.recv(4096).startswith(b"$GP")
            conn.close()
    finally:
        assert sim.stop() == 0


@pytest.mark.parametrize("mode", ["epoch", "sentence"])
def test_udp_datagrams(mode: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(3.0)
        sim = Sim("--udp", f"127.0.0.1:{rx.getsockname()[1]}", "--udp-mode", mode, "--rate", "4",
                  "--sentences", "RMC,GGA", "--talker", "BD")
        try:
            grams = [rx.recv(65536) for _ in range(4)]
        finally:
            assert sim.stop() == 0
    for g in grams:
        lines = nmea_lines(g)
        assert len(lines) == (2 if mode == "epoch" else 1)
        for line in lines:
            m = parse(line)
            assert m.talker == "BD" and m.sentence_type in ("RMC", "GGA")


def test_pty_serial_line_and_unplug(tmp_path: Path) -> None:
    link = tmp_path / "gps0"
    sim = Sim("--pty", str(link), "--rate", "5", "--sentences", "RMC,VTG,GGA,GSA,GSV")
    try:
        assert sim.ready["link"] == str(link)
        with serial.Serial(str(link), 9600, timeout=0.2) as port:
            data = b""
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                data += port.read(4096)
        lines = nmea_lines(data)[1:-1]  # the first and last may be cut by the read window
        types = {parse(x).sentence_type for x in lines}
        assert {"RMC", "VTG", "GGA", "GSA", "GSV"} <= types
        gsv = [parse(x) for x in lines if x.startswith("$GPGSV")]
        assert gsv and all(int(m.num_sv_in_view) == 9 for m in gsv)
        assert sim.control("unplug 0.5")["ok"]
        time.sleep(0.2)
        assert not link.exists()
        time.sleep(0.8)
        with serial.Serial(str(link), 9600, timeout=0.2) as port:  # back, under a new /dev/pts number
            data = port.read(2000)
            assert b"$GP" in data
        assert sim.control("stats")["unplugs"] == 1
    finally:
        assert sim.stop() == 0


def test_walker_square_and_waypoints() -> None:
    w = Walker(*START, speed_kmh=36, heading=0, turn_deg=90, turn_every_s=10)
    w.advance(40.0)  # four legs of 100 m: back where it started
    assert distance_bearing(*START, w.lat, w.lon)[0] < 0.5
    w.advance(5.0)
    assert distance_bearing(*START, w.lat, w.lon)[0] == pytest.approx(50.0, abs=0.5)

    corner = (START[0] + 0.001, START[1])                 # ~111 m north
    w = Walker(*START, speed_kmh=3.6, waypoints=[corner])  # 1 m/s: there in ~111 s, back in ~222 s
    w.advance(60.0)
    assert w.heading == pytest.approx(0.0, abs=0.5)
    w.advance(60.0)
    assert w.heading == pytest.approx(180.0, abs=0.5)
    w.advance(102.0)
    assert distance_bearing(*START, w.lat, w.lon)[0] < 1.5
    assert w.distance_m == pytest.approx(222.0, abs=1.5)
    assert not math.isnan(w.lat)


def test_bad_arguments_exit_2() -> None:
    for args in ([], ["--udp", "127.0.0.1:9", "--rate", "50"], ["--udp", "127.0.0.1:9", "--sentences", "XYZ"]):
        proc = subprocess.run([sys.executable, "-m", "hil.nmea", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=20)
        assert proc.returncode == 2, (args, proc.stderr)
