"""The BeiDou RDSS terminal simulator (hil.beidou), both dialects, run as a real subprocess.

The test side is pyserial on the pty and a socket on the control port; it checks
sentences against docs/serial-protocols.md with its own checksum code.
"""
from __future__ import annotations

import os
import re
import struct
import time
from collections.abc import Callable, Iterator
from functools import reduce
from pathlib import Path
from typing import Any

import pynmea2
import pytest
import serial

from hil.beidou import nmea
from hil.beidou.cli import build_parser
from tests.serial_sims import SimProcess

DIALECTS = ["2.1", "bds3"]
OWN = "0123456"
TEAM = "7654321"


def xor(body: str) -> str:
    return f"{reduce(lambda a, b: a ^ b, body.encode('ascii'), 0):02X}"


def frame(body: str) -> bytes:
    return f"${body}*{xor(body)}\r\n".encode("ascii")


def query(dialect: str) -> str:
    return "CCICA,0,00" if dialect == "2.1" else "CCICR,0,00"


def send(dialect: str, dest: str, code: str) -> bytes:
    return frame(f"CCTXA,{dest},1,1,{code}" if dialect == "2.1" else f"CCTCQ,{dest},2,1,2,{code},0")


def fki(dialect: str, fields: list[str]) -> dict[str, Any]:
    """The FKI fields by meaning: accepted, wait, and the dialect's own reason fields."""
    if dialect == "2.1":
        assert fields[0] == "TXA" and len(fields) == 5
        return {"ok": fields[1] == "Y", "interval_ok": fields[2], "inhibit": int(fields[3]), "wait": int(fields[4])}
    assert len(fields[0]) == 6 and fields[0].isdigit() and fields[1] == "TCQ" and len(fields) == 5
    return {"ok": fields[2] == "Y", "reason": int(fields[3]), "wait": int(fields[4])}


class Sim(SimProcess):
    def __init__(self, tmp: Path, args: list[str]) -> None:
        super().__init__("hil.beidou", ["--link", str(tmp / "bd-link"), "--log-level", "DEBUG", *args],
                         log=tmp / "sim.log", keep_control=True)

    def open(self) -> Wire:
        port = serial.Serial(str(self.link), 115200, timeout=0.05)
        port.reset_input_buffer()  # what the terminal said before anyone listened
        return Wire(port)


class Wire:
    """The host end: writes bytes, reads checked sentences as (arrival time, body)."""

    def __init__(self, port: serial.Serial) -> None:
        self.port = port
        self.seen: list[tuple[float, str]] = []

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def _line(self) -> tuple[float, str] | None:
        raw = self.port.readline()
        if not raw:
            return None
        assert raw.startswith(b"$") and raw.endswith(b"\r\n"), raw
        body, star, hh = raw[1:-2].decode("ascii").rpartition("*")
        assert star and hh == xor(body), f"bad checksum from the simulator: {raw!r}"
        item = (time.monotonic(), body)
        self.seen.append(item)
        return item

    def expect(self, prefix: str, timeout: float = 3.0,
               where: Callable[[list[str]], bool] = lambda f: True) -> list[str]:
        """The fields of the next sentence starting with `prefix` (other sentences are kept in `seen`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = self._line()
            if item is not None and item[1].split(",")[0] == prefix and where(item[1].split(",")[1:]):
                return item[1].split(",")[1:]
        raise AssertionError(f"no {prefix} within {timeout} s; saw {[b for _, b in self.seen[-8:]]}")

    def collect(self, seconds: float) -> list[tuple[float, str]]:
        start, deadline = len(self.seen), time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._line()
        return self.seen[start:]

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Sim]]:
    sims: list[Sim] = []

    def _start(*args: str) -> Sim:
        sims.append(Sim(tmp_path, list(args)))
        return sims[-1]

    yield _start
    for sim in sims:
        assert sim.stop() == 0, sim.log.read_text()
        assert not sim.link.exists()


def test_checksum_matches_the_spec_examples() -> None:
    assert nmea.checksum("CCICA,0,00") == "7B" == xor("CCICA,0,00")
    assert nmea.checksum("CCICR,0,00") == "68" == xor("CCICR,0,00")
    assert nmea.sentence("CCICA,0,00") == b"$CCICA,0,00*7B\r\n"


def test_framer_drops_and_counts_what_it_cannot_parse() -> None:
    f = nmea.Framer()
    good = b"$CCICA,0,00*7B\r\n"
    assert f.feed(b"\x00\xff" + b"$CCICA,0,00*7C\r\n" + b"$CCTXA,01" + good[:5]) == []
    assert f.feed(good[5:] + b"$CCICA,0,00*7B\n" + b"$CCICA,0,00\r\n" + good) == ["CCICA,0,00", "CCICA,0,00"]
    assert f.stats() == {"garbage_bytes": 2, "cut": 1, "too_long": 0, "malformed": 2, "bad_checksum": 1}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_card_query_answered_and_junk_ignored(start: Callable[..., Sim], dialect: str) -> None:
    sim = start("--dialect", dialect, "--level", "3", "--interval", "5", "--address", "0234567", "--beam-hz", "0")
    assert sim.ready["address"] == "0234567" and os.path.realpath(sim.link).startswith("/dev/pts/")
    wire = sim.open()
    other = "bds3" if dialect == "2.1" else "2.1"
    good = frame(query(dialect))
    wire.write(frame(query(other)))  # the other dialect's query: ignored
    wire.write(good[:-4] + b"7C\r\n")  # bad checksum
    wire.write(bytes.fromhex("00ff7e8012") + b"$CCTXA,0123")  # line noise, then a cut sentence
    wire.write(good)
    if dialect == "2.1":
        assert wire.expect("BDICI") == ["0234567", "90234567", "0000000", "0", "5", "3", "0", "0"]
    else:
        assert wire.expect("BDICP") == ["0234567", "90234567", "0000000", "0", "5", "3", "0"]
    assert [b for _, b in wire.collect(0.3) if b.startswith(("BDICI", "BDICP"))] == []  # one answer only
    stats = sim.control("stats")
    assert stats["card_queries"] == 1 and stats["wrong_dialect"] == 1 and stats["bad_checksum"] == 1
    assert stats["garbage_bytes"] == 5 and stats["cut"] == 1
    wire.close()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_send_capacity_interval_inhibit(start: Callable[..., Sim], dialect: str) -> None:
    sim = start("--dialect", dialect, "--level", "1", "--interval", "2", "--beam-hz", "0")
    wire = sim.open()
    refused = {"2.1": {"ok": False, "interval_ok": "Y", "inhibit": 0, "wait": 0},
               "bds3": {"ok": False, "reason": 0, "wait": 0}}[dialect]

    wire.write(send(dialect, TEAM, "AB" * 14))  # 112 bits > 110: over a level-1 card's capacity
    assert fki(dialect, wire.expect("BDFKI")) == refused

    text = "你好,队友 ok"
    code = text.encode("gb18030").hex().upper() + "0a"  # 13 bytes, 104 bits; the case is kept as sent
    wire.write(send(dialect, TEAM, code))
    assert fki(dialect, wire.expect("BDFKI"))["ok"]
    sent_at = time.monotonic()

    wire.write(send(dialect, "1111111", "41"))  # inside the service interval
    early = fki(dialect, wire.expect("BDFKI"))
    assert not early["ok"] and 1 <= early["wait"] <= 2
    assert early.get("interval_ok", "N") == "N" and early.get("reason", 1) == 1

    [msg] = sim.control("received")["messages"]
    assert msg["to"] == TEAM and msg["hex"] == code and msg["text"] == text + "\n" and msg["bytes"] == 13

    time.sleep(max(0.0, sent_at + 2.05 - time.monotonic()))
    assert sim.control("inhibit 1")["inhibit"] == 1
    wire.write(send(dialect, TEAM, "41"))
    inhibited = fki(dialect, wire.expect("BDFKI"))
    assert inhibited == ({**refused, "inhibit": 1} if dialect == "2.1" else {**refused, "reason": 2})

    sim.control("inhibit 0")
    report = struct.pack(">BIii", 1, 1_700_000_000, 306_586_000, 1_040_648_000).hex().upper()
    wire.write(send(dialect, TEAM, report))
    assert fki(dialect, wire.expect("BDFKI"))["ok"]
    messages = sim.control("received clear")["messages"]
    assert [m["hex"] for m in messages] == [code, report]
    assert messages[1]["text"] is None
    assert messages[1]["report"] == {"type": 1, "ts": 1_700_000_000, "lat": 30.6586, "lon": 104.0648}
    assert sim.control("received")["messages"] == []
    stats = sim.control("stats")
    assert stats["sends_accepted"] == 2 and stats["sends_refused"] == 3
    wire.close()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_beams_fix_and_team_reports(start: Callable[..., Sim], dialect: str) -> None:
    sim = start("--dialect", dialect, "--position", "30.6586,104.0648,500", "--peer", f"{TEAM}:30.1,104.2",
                "--peer", "7000001:-33.8688,151.2093", "--peer-interval", "1")
    wire = sim.open()
    lines = wire.collect(2.2)
    beam, received = ("BDBSI", "BDTXR") if dialect == "2.1" else ("BDPWI", "BDTCI")

    beams = [(t, b.split(",")[1:]) for t, b in lines if b.startswith(beam + ",")]
    assert len(beams) >= 2
    assert all(0.8 < b[0] - a[0] < 1.2 for a, b in zip(beams, beams[1:]))
    fields = beams[-1][1]
    if dialect == "2.1":
        powers = [int(p) for p in fields[2:]]
        assert len(powers) == 10 and all(0 <= p <= 4 for p in powers)
        assert int(fields[0]) == powers.index(max(powers)) + 1  # the response beam is the strongest
    else:
        assert len(fields[0]) == 9 and fields[0][6] == "." and int(fields[1]) == len(fields[2:]) // 2
        assert [int(b) for b in fields[2::2]] == list(range(1, int(fields[1]) + 1))

    rmc = [pynmea2.parse("$" + b + "*" + xor(b), check=True) for _, b in lines if b.startswith("GNRMC")]
    gga = [pynmea2.parse("$" + b + "*" + xor(b), check=True) for _, b in lines if b.startswith("GNGGA")]
    assert len(rmc) >= 2 and len(gga) >= 2
    assert rmc[0].status == "A" and abs(rmc[0].latitude - 30.6586) < 1e-6 and abs(rmc[0].longitude - 104.0648) < 1e-6
    assert gga[0].gps_qual == 1 and gga[0].altitude == 500.0 and abs(gga[0].latitude - 30.6586) < 1e-6
    assert (rmc[1].datetime - rmc[0].datetime).total_seconds() == 1.0

    reports = {}
    for _, body in lines:
        if body.startswith(received + ","):
            f = body.split(",")[1:]
            if dialect == "2.1":
                assert f[0] == "1" and f[2] == "1" and len(f[3]) == 4
                sender, code = f[1], f[4]
            else:
                assert f[1] == OWN and f[2:4] == ["2", "2"] and len(f[4]) == 6
                sender, code = f[0], f[5]
            reports[sender] = struct.unpack(">BIii", bytes.fromhex(code))
    assert set(reports) == {TEAM, "7000001"}
    kind, ts, lat, lon = reports["7000001"]
    assert kind == 1 and abs(ts - time.time()) < 5 and (lat, lon) == (-338_688_000, 1_512_093_000)
    assert reports[TEAM][2:] == (301_000_000, 1_042_000_000)

    assert sim.control(f"msg {TEAM} 收到 ok")["sent"]
    f = wire.expect(received, where=lambda f: not f[-1].startswith("01"))  # not a peer's report
    assert bytes.fromhex(f[-1]).decode("gb18030") == "收到 ok" and TEAM in f
    assert sim.control(f"pos {TEAM} 31.5 -0.25")["sent"]
    f = wire.expect(received, where=lambda f: f[-1].startswith("01") and int(f[-1][10:18], 16) == 315_000_000)
    assert struct.unpack(">BIii", bytes.fromhex(f[-1]))[3] == -2_500_000
    assert not sim.control("msg 123 too-short-address")["ok"]

    off = "0,0,0"
    assert sim.control(f"beam {off}") == {"ok": True, "beams": [0] * (10 if dialect == "2.1" else 3),
                                          "locked": False}
    wire.port.reset_input_buffer()  # beam sentences from before the change
    assert wire.expect(beam)[2:] == (["0"] * 10 if dialect == "2.1" else ["1", "0", "2", "0", "3", "0"])
    wire.write(send(dialect, TEAM, "41"))  # no beam power: not sent
    nolock = fki(dialect, wire.expect("BDFKI"))
    assert not nolock["ok"] and nolock.get("reason", 4) == 4 and nolock.get("interval_ok", "Y") == "Y"
    assert sim.control("received")["messages"] == []

    assert sim.control("noise 00ff24")["sent"]
    assert sim.control(f"cut {received},1,{TEAM},1,1200,4142 20")["text"] == f"${received},1,{TEAM},1,1"
    time.sleep(0.1)
    raw = wire.port.read(wire.port.in_waiting)  # may hold other sentences around these
    assert b"\x00\xff$" in raw and re.search(rf"\${received},1,{TEAM},1,1(\$|$)".encode(), raw)
    wire.close()


def test_unplug_comes_back_under_a_new_tty(start: Callable[..., Sim]) -> None:
    sim = start("--dialect", "bds3", "--beam-hz", "0")
    wire = sim.open()
    before = os.path.realpath(sim.link)
    assert sim.control("unplug 0.5")["ok"]
    with pytest.raises((serial.SerialException, OSError)):
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            wire.port.read(1)
    deadline = time.monotonic() + 3.0
    while not sim.link.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    after = os.path.realpath(sim.link)
    assert after.startswith("/dev/pts/") and after != before  # the old tty is still open here
    wire.close()
    wire = sim.open()
    wire.write(frame("CCICR,0,00"))
    assert wire.expect("BDICP")[0] == OWN
    stats = sim.control("stats")
    assert stats["unplugs"] == 1 and stats["plugged"] and stats["tty"] == after
    wire.close()


@pytest.mark.parametrize("args", [["--address", "123"], ["--level", "5"], ["--dialect", "3.0"],
                                  ["--peer", "7654321"], ["--position", "91,0"], []])
def test_bad_command_lines_are_refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(args if not args else ["--link", "/tmp/x", *args])
    assert exc.value.code == 2
