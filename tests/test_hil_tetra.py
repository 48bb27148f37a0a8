"""End-to-end tests of the TETRA PEI radio simulator (hil.tetra), run as a real subprocess.

The test side is pyserial on the pty plus the control port; PDUs are built and
LIP is decoded here independently of hil.tetra (and of the gateway's driver).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import serial

from tests.serial_sims import SimProcess

ROOT = Path(__file__).resolve().parents[1]
OWN = 2001
TEAM = 2002          # moving east at 36 km/h
STILL = 2003         # not moving
GROUP = 9001
LON_STEP = 360 / 2**25
LAT_STEP = 180 / 2**24
FINAL = re.compile(r"^(OK|ERROR|\+CME ERROR: \d+)$")


class Sim(SimProcess):
    def __init__(self, tmp: Path, extra: list[str]) -> None:
        args = ["--link", str(tmp / "tetra0"), "--issi", str(OWN),
                "--team", f"{TEAM}:30.6586,104.0648:90:36", "--team", f"{STILL}:-33.8688,151.2093",
                "--group", str(GROUP), "--report-delay", "0.1", "--log-level", "INFO", *extra]
        super().__init__("hil.tetra", args, ready_timeout=15.0, log=tmp / "sim.log", keep_control=True)


class Pei:
    """The host side of the PEI cable (pyserial, blocking with short timeouts)."""

    def __init__(self, path: Path) -> None:
        self.ser = serial.Serial(str(path), 19200, timeout=0.05)
        self.buf = b""

    def write(self, data: bytes) -> None:
        self.ser.write(data)

    def read_until(self, done: Callable[[bytes], bool], timeout: float = 3.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not done(self.buf):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; have {self.buf!r}")
            self.buf += self.ser.read(self.ser.in_waiting or 1)
        return self.buf

    def drain(self, seconds: float) -> bytes:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.buf += self.ser.read(self.ser.in_waiting or 1)
        out, self.buf = self.buf, b""
        return out

    def lines(self) -> list[str]:
        return [x for x in self.buf.decode("latin-1").split("\r\n") if x]

    def command(self, cmd: bytes, timeout: float = 3.0) -> list[str]:
        """Send; return every line up to and including the final result code, consuming them."""
        self.write(cmd)

        def final_seen(buf: bytes) -> bool:
            return any(FINAL.match(x) for x in buf.decode("latin-1").split("\r\n"))
        self.read_until(final_seen, timeout)
        text = self.buf.decode("latin-1")
        parts = text.split("\r\n")
        for i, part in enumerate(parts):
            if FINAL.match(part):
                self.buf = "\r\n".join(parts[i + 1:]).encode("latin-1")
                return [x for x in parts[: i + 1] if x]
        raise AssertionError("unreachable")

    def sds(self, timeout: float = 3.0, pid: int | None = None) -> tuple[list[str], bytes]:
        """The next +CTSDSR (optionally of one PID): header fields and PDU bytes."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.buf.decode("latin-1").split("\r\n")
            for i, line in enumerate(lines[:-2]):
                if line.startswith("+CTSDSR: "):
                    fields, pdu = line[9:].split(","), bytes.fromhex(lines[i + 1])
                    self.buf = "\r\n".join(lines[i + 2:]).encode("latin-1")
                    if pid is None or pdu[0] == pid:
                        return fields, pdu
                    break
            else:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no +CTSDSR; have {self.buf!r}")
                self.buf += self.ser.read(self.ser.in_waiting or 1)

    def close(self) -> None:
        self.ser.close()


@pytest.fixture
def sim_args() -> list[str]:
    return ["--lip-interval", "0"]


@pytest.fixture
def sim(tmp_path: Path, sim_args: list[str]) -> Iterator[Sim]:
    s = Sim(tmp_path, sim_args)
    yield s
    assert s.stop() == 0, s.log.read_text()


@pytest.fixture
def pei(sim: Sim) -> Iterator[Pei]:
    p = Pei(sim.link)
    yield p
    p.close()


def with_args(*args: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("sim_args", [list(args)], ids=[""])


def setup_host(pei: Pei) -> None:
    for cmd in (b"ATE0\r\n", b"AT+CTSP=1,3,130\r\n", b"AT+CTSP=1,3,10\r\n", b"AT+CTSDS=12,0,0,0,1\r\n"):
        assert pei.command(cmd)[-1] == "OK"


def transfer(ref: int, text: str, rr: int = 1) -> bytes:
    try:
        coding, body = 0x01, text.encode("latin-1")
    except UnicodeEncodeError:
        coding, body = 0x1A, text.encode("utf-16-be")
    return bytes([0x82, rr << 2, ref, coding]) + body


def cmgs(ssi: int, pdu: bytes, bits: int | None = None) -> bytes:
    return f"AT+CMGS={ssi},{len(pdu) * 8 if bits is None else bits}\r\n".encode() + pdu.hex().upper().encode() + b"\x1a"


def decode_lip(pdu: bytes) -> dict[str, Any]:
    """Independent LIP short-report decoder (docs/serial-protocols.md field table)."""
    bits = "".join(f"{b:08b}" for b in pdu)

    def field(start: int, width: int, signed: bool = False) -> int:
        v = int(bits[start:start + width], 2)
        return v - (1 << width) if signed and bits[start] == "1" else v
    vel = field(64, 7)
    return {"pid": field(0, 8), "type": field(8, 2), "elapsed": field(10, 2),
            "lon": field(12, 25, True) * 360 / 2**25, "lat": field(37, 24, True) * 180 / 2**24,
            "error": field(61, 3), "speed": vel if vel <= 28 else 16 * 1.038 ** (vel - 13),
            "direction": field(71, 4) * 22.5, "additional": field(75, 1), "reason": field(76, 8)}


def test_echo_on_by_default_then_off_and_on(pei: Pei) -> None:
    pei.write(b"AT\r")
    assert pei.read_until(lambda b: b.endswith(b"OK\r\n")) == b"AT\r\r\nOK\r\n"
    pei.buf = b""
    assert pei.command(b"ATE0\r") == ["ATE0\r", "OK"]   # the command itself is still echoed
    pei.write(b"AT\r\n")
    assert pei.read_until(lambda b: b.endswith(b"OK\r\n")) == b"\r\nOK\r\n"
    pei.buf = b""
    assert pei.command(b"ATE1\r")[-1] == "OK"
    pei.write(b"AT+CSQ?\r\n")
    assert pei.read_until(lambda b: b.endswith(b"OK\r\n")).startswith(b"AT+CSQ?\r\r\n+CSQ: ")
    pei.buf = b""
    pei.write(b"AT\r")   # the LF of the last line is echoed as it is read, with this one
    assert pei.read_until(lambda b: b.endswith(b"OK\r\n")) == b"\nAT\r\r\nOK\r\n"


def test_queries_errors_and_cme(sim: Sim, pei: Pei) -> None:
    setup_host(pei)
    assert pei.command(b"AT+CNUMF?\r\n") == [f"+CNUMF: 0,{OWN}", "OK"]
    assert pei.command(b"AT+CSQ?\r\n") == ["+CSQ: 25,99", "OK"]
    assert pei.command(b"AT+CREG?\r\n") == ["+CREG: 0,1", "OK"]
    assert pei.command(b"AT+BOGUS=1\r\n") == ["ERROR"]
    assert pei.command(b"ATQ7\r\n") == ["ERROR"]
    assert sim.control("csq 7")["ok"] and sim.control("creg 2")["ok"]
    assert pei.command(b"AT+CSQ?;+CREG?\r\n") == ["+CSQ: 7,99", "+CREG: 0,2", "OK"]
    assert sim.control("cme 35") == {"ok": True, "cme_next": 35}
    assert pei.command(b"AT\r\n") == ["+CME ERROR: 35"]
    assert pei.command(b"AT\r\n") == ["OK"]
    assert sim.control("csq 50")["ok"] is False


@with_args("--lip-interval", "0.2")
def test_ctsp_gates_unsolicited_sds(sim: Sim, pei: Pei) -> None:
    assert pei.command(b"ATE0\r\n")[-1] == "OK"
    assert sim.control(f"text {TEAM} hello")["result"] == "not_routed"
    assert b"+CTSDSR" not in pei.drain(0.6)            # LIP reports happen, but stay in the radio
    assert pei.command(b"AT+CTSP=1,3,10\r\n")[-1] == "OK"
    fields, pdu = pei.sds(pid=0x0A)
    assert pdu[0] == 0x0A
    assert sim.control(f"text {TEAM} hello")["result"] == "not_routed"   # text is a different protocol id
    assert all(not x.startswith("82") for x in pei.drain(0.3).decode().split("\r\n"))
    assert pei.command(b"AT+CTSP=1,3,130\r\n")[-1] == "OK"
    assert sim.control(f"text {TEAM} 收到，正在前往")["coding"] == 0x1A
    fields, pdu = pei.sds(pid=0x82)
    assert fields == ["12", str(TEAM), "0", str(OWN), "0", str(len(pdu) * 8)]
    assert pdu[:2] == b"\x82\x00" and pdu[3] == 0x1A and pdu[4:].decode("utf-16-be") == "收到，正在前往"
    assert pei.command(b"AT+CTSP=0,3,10\r\n")[-1] == "OK"   # back to the MT only
    pei.drain(0.3)
    assert b"+CTSDSR" not in pei.drain(0.5)


@with_args("--lip-interval", "0.2")
def test_lip_reports_decode_to_team_positions(sim: Sim, pei: Pei) -> None:
    setup_host(pei)
    seen: dict[int, list[dict[str, Any]]] = {TEAM: [], STILL: []}
    while min(len(v) for v in seen.values()) < 2:
        fields, pdu = pei.sds(pid=0x0A)
        assert fields[3] == str(OWN) and fields[5] == "84" and len(pdu) == 11
        seen[int(fields[1])].append(decode_lip(pdu))
    teams = {t["issi"]: t for t in sim.control("teams")["teams"]}
    still = seen[STILL][-1]
    assert (still["pid"], still["type"], still["additional"]) == (0x0A, 0, 0)
    assert abs(still["lat"] - -33.8688) <= LAT_STEP and abs(still["lon"] - 151.2093) <= LON_STEP
    assert abs(teams[STILL]["lat"] - -33.8688) < 1e-9
    moving = seen[TEAM]
    assert moving[1]["lon"] > moving[0]["lon"] > 104.0648 - LON_STEP    # eastwards
    assert abs(moving[1]["lat"] - 30.6586) <= 2 * LAT_STEP
    assert moving[1]["direction"] == 90.0 and abs(moving[1]["speed"] - 36) < 36 * 0.04
    assert teams[TEAM]["lon"] >= moving[1]["lon"] - LON_STEP
    assert teams[TEAM]["lon"] - 104.0648 < 0.01                          # 36 km/h for about a second
    # on demand, anywhere, including the western and southern hemispheres
    r = sim.control("lip 2099 -22.9068 -43.1729")
    assert r["ok"] and r["result"] in ("sent", "held")
    while True:
        fields, pdu = pei.sds(pid=0x0A)
        if fields[1] == "2099":
            break
    d = decode_lip(pdu)
    assert abs(d["lat"] - -22.9068) <= LAT_STEP and abs(d["lon"] - -43.1729) <= LON_STEP


def test_cmgs_recorded_byte_exact_and_reports(sim: Sim, pei: Pei) -> None:
    setup_host(pei)
    latin = transfer(17, "Return to base, déjà vu")
    assert pei.command(cmgs(TEAM, latin)) == ["+CMGS: 0,17", "OK"]
    fields, report = pei.sds()
    assert fields == ["12", str(TEAM), "0", str(OWN), "0", "32"]
    assert report == bytes([0x82, 0x10, 0x00, 17])
    chinese = transfer(18, "请立即返回集合点")
    body = f"AT+CMGS={TEAM},{len(chinese) * 8}\r\n".encode()
    pei.write(body)                                   # the PDU on the next write, lower-case hex
    time.sleep(0.05)
    assert pei.command(chinese.hex().encode() + b"\x1a") == ["+CMGS: 0,18", "OK"]
    assert pei.sds()[1] == bytes([0x82, 0x10, 0x00, 18])
    # unknown SSI: failed report; group: accepted, no report
    assert pei.command(cmgs(4444, transfer(19, "anyone?"))) == ["+CMGS: 0,19", "OK"]
    fields, report = pei.sds()
    assert fields[1] == "4444" and report == bytes([0x82, 0x10, 0x42, 19])
    assert pei.command(cmgs(GROUP, transfer(20, "all units", rr=0))) == ["+CMGS: 0,20", "OK"]
    assert b"+CTSDSR" not in pei.drain(0.4)
    msgs = sim.control("received")["messages"]
    assert [m["pdu_hex"] for m in msgs] == [latin.hex().upper(), chinese.hex(), transfer(19, "anyone?").hex().upper(),
                                             transfer(20, "all units", rr=0).hex().upper()]
    assert msgs[0]["text"] == "Return to base, déjà vu" and msgs[0]["coding"] == 0x01
    assert msgs[1]["text"] == "请立即返回集合点" and msgs[1]["coding"] == 0x1A
    assert [(m["to"], m["ref"], m["report_requested"], m["pid"]) for m in msgs] == [
        (TEAM, 17, True, 0x82), (TEAM, 18, True, 0x82), (4444, 19, True, 0x82), (GROUP, 20, False, 0x82)]
    assert msgs[0]["bits"] == len(latin) * 8 and isinstance(msgs[0]["ts"], float)


def test_cmgs_validation(sim: Sim, pei: Pei) -> None:
    setup_host(pei)
    pdu = transfer(5, "abc")
    assert pei.command(cmgs(TEAM, pdu, len(pdu) * 8 + 1))[-1].startswith("+CME ERROR")    # too many bits
    assert pei.command(cmgs(TEAM, pdu, len(pdu) * 8 - 8))[-1].startswith("+CME ERROR")    # a byte too many
    assert pei.command(f"AT+CMGS={TEAM},16\r\n12G4\x1a".encode())[-1].startswith("+CME ERROR")
    assert pei.command(f"AT+CMGS={TEAM},12\r\n123\x1a".encode())[-1].startswith("+CME ERROR")
    assert pei.command(cmgs(TEAM, pdu, len(pdu) * 8 - 5)) == ["+CMGS: 0,5", "OK"]          # padding is fine
    assert sim.control("cme 30")["ok"]
    assert pei.command(cmgs(TEAM, transfer(6, "x"))) == ["+CME ERROR: 30"]
    assert sim.control("creg 0")["ok"]
    assert pei.command(cmgs(TEAM, transfer(7, "x"))) == ["+CME ERROR: 30"]                 # no service
    assert [m["ref"] for m in sim.control("received")["messages"]] == [5]
    assert pei.command(b"AT\r\n") == ["OK"]


def test_unsolicited_waits_for_the_response(sim: Sim, pei: Pei) -> None:
    setup_host(pei)
    pdu = transfer(9, "hold on")
    pei.write(f"AT+CMGS={TEAM},{len(pdu) * 8}\r\n".encode())
    time.sleep(0.1)
    assert sim.control(f"lip {STILL}")["result"] == "held"      # the host is typing the PDU
    assert sim.control("noise 00FF7E")["result"] == "held"
    pei.write(pdu.hex().encode() + b"\x1a")
    out = pei.read_until(lambda b: b.count(b"+CTSDSR") >= 2, 3.0)
    assert out.startswith(b"\r\n+CMGS: 0,9\r\n\r\nOK\r\n\r\n+CTSDSR: 12,2003,")
    assert b"\x00\xff\x7e" in out


def test_noise_and_cut_lines(sim: Sim, pei: Pei) -> None:
    setup_host(pei)
    assert sim.control("noise 00FFA55A0D")["bytes"] == 5
    r = sim.control("cut +CTSDSR: 12,2002,0,2001,0,84")
    assert r["ok"] and r["written"] == "+CTSDSR: 12,20"
    out = pei.drain(0.2)
    assert out == b"\x00\xff\xa5\x5a\r+CTSDSR: 12,20"
    assert pei.command(b"AT\r\n") == ["OK"]


def test_unplug_reappears_under_new_pts(sim: Sim, pei: Pei) -> None:
    before = os.path.realpath(sim.link)
    assert sim.control("unplug 0.3")["ok"]
    deadline = time.monotonic() + 3
    while os.path.realpath(sim.link) == before or not sim.link.exists():
        assert time.monotonic() < deadline, "link did not come back"
        time.sleep(0.02)
    after = os.path.realpath(sim.link)
    assert after != before and after.startswith("/dev/pts/")
    with pytest.raises(serial.SerialException):
        pei.ser.read(1)  # the old cable is dead: the driver's read fails
    fresh = Pei(sim.link)
    try:
        assert fresh.command(b"AT\r\n")[-1] == "OK"
    finally:
        fresh.close()
    stats = sim.control("stats")
    assert stats["unplugs"] == 1 and stats["tty"] == after


@with_args("--lip-interval", "0", "--text-interval", "0.15")
def test_periodic_team_texts(sim: Sim, pei: Pei) -> None:
    setup_host(pei)
    texts = set()
    while len(texts) < 2:
        fields, pdu = pei.sds(pid=0x82)
        assert fields[1] in (str(TEAM), str(STILL))
        texts.add(pdu[3])
    assert texts == {0x01, 0x1A}  # Latin-1 and UCS-2 both appear


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "hil.tetra", "--link", str(tmp_path / "x"), "--team", "12:95,0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--team" in r.stderr
