"""BGAN terminal simulator (hil.bgan): the AT responder seen through pyserial on its
pty (and over TCP), scripted link states through the control port or a script
file, and an unplug that brings the link back under a new /dev/pts path.

The simulator runs as ``python -m hil.bgan``.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from tests.procs import ROOT
from tests.serial_sims import SimProcess

pytestmark = pytest.mark.timeout(30)


class Sim(SimProcess):
    def __init__(self, tmp_path: Path, *extra: str) -> None:
        link = tmp_path / "bgan0"
        super().__init__("hil.bgan", ["--link", str(link), "--control", "127.0.0.1:0", "--seed", "3", *extra],
                         ready_timeout=30.0, keep_control=True)
        assert self.ready["ready"] is True and self.ready["link"] == str(link)

    def open(self) -> serial.Serial:
        return serial.Serial(str(self.link), 19200, timeout=2)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    s = Sim(tmp_path)
    yield s
    s.stop()


@pytest.fixture
def port(sim: Sim) -> Iterator[serial.Serial]:
    with sim.open() as p:
        yield p


def read_reply(p: serial.Serial) -> bytes:
    """Bytes up to and including the final result code."""
    out = b""
    while not (out.endswith(b"\r\nOK\r\n") or out.endswith(b"\r\nERROR\r\n")):
        chunk = p.read_until(b"\n")
        assert chunk, f"no final result code, got {out!r}"
        out += chunk
    return out


def at(p: serial.Serial, command: str) -> list[str]:
    """Send a command, return its information lines (without the echo, if on); ERROR fails."""
    p.write(command.encode() + b"\r")
    raw = read_reply(p).removeprefix(command.encode() + b"\r")
    lines = [line for line in raw.decode().split("\r\n") if line]
    assert lines[-1] == "OK", f"{command}: {raw!r}"
    return lines[:-1]


def test_echo_on_by_default_then_ate0(port: serial.Serial) -> None:
    port.write(b"AT\r")
    assert read_reply(port) == b"AT\r\r\nOK\r\n"
    port.write(b"AT_ISIG\r")
    assert read_reply(port).startswith(b"AT_ISIG\r\r\n_ISIG: ")
    port.write(b"ATE0\r")
    assert read_reply(port) == b"ATE0\r\r\nOK\r\n"  # echoed before it takes effect
    port.write(b"AT\r")
    assert read_reply(port) == b"\r\nOK\r\n"
    port.write(b"ATE1\r")
    assert read_reply(port) == b"\r\nOK\r\n"
    port.write(b"at\r")  # lower case works, echo back on
    assert read_reply(port) == b"at\r\r\nOK\r\n"


def test_each_command_in_the_default_state(port: serial.Serial) -> None:
    assert at(port, "ATE0") == []
    (isig,) = at(port, "AT_ISIG")
    assert isig.startswith("_ISIG: ") and 50 < float(isig.split(": ")[1]) < 62
    assert at(port, "AT+CGREG?") == ["+CGREG: 0,1"]
    assert at(port, "AT+CGACT?") == ["+CGACT: 1,1"]
    (igps,) = at(port, "AT_IGPS?")
    fix, lat, lon = igps.removeprefix("_IGPS: ").split(",")
    assert fix == "3" and -90 <= float(lat) <= 90 and -180 <= float(lon) <= 180
    assert at(port, "AT+CGDCONT?")[0].startswith('+CGDCONT: 1,"IP","BGAN.INMARSAT.COM"')
    (addr,) = at(port, "AT+CGPADDR")
    assert addr.startswith('+CGPADDR: 1,"') and addr.count(".") == 3
    # a second context: defined, activated, listed, addressed
    assert at(port, 'AT+CGDCONT=2,"IP","STREAM.BGAN"') == []
    assert at(port, "AT+CGACT?") == ["+CGACT: 1,1", "+CGACT: 2,0"]
    assert at(port, "AT+CGACT=1,2") == []
    assert at(port, "AT+CGACT?") == ["+CGACT: 1,1", "+CGACT: 2,1"]
    assert len(at(port, "AT+CGPADDR")) == 2
    assert at(port, "AT+CGACT=0,1") == []
    assert [line.split(",")[0] for line in at(port, "AT+CGPADDR")] == ["+CGPADDR: 2"]
    assert at(port, "AT+CGPADDR=1") == ["+CGPADDR: 1"]
    for bad in ("AT+NOPE", "ATD123", "hello", "AT+CGACT=1,7", "AT+CGACT=2,1", "AT+CGREG=9", "AT_ISIG=5"):
        port.write(bad.encode() + b"\r")
        assert read_reply(port) == b"\r\nERROR\r\n", bad
    port.write(b"A" * 2000 + b"\r")  # an over-long line is refused, and the next one works
    assert read_reply(port) == b"\r\nERROR\r\n"
    assert at(port, "AT") == []


def test_scripted_link_states_via_control(sim: Sim, port: serial.Serial) -> None:
    at(port, "ATE0")
    assert at(port, "AT+CGREG=1") == []  # unsolicited +CGREG: <stat> on changes
    reply = sim.control("reg 2")
    assert reply == {"ok": True, "reg": 2, "link_up": False}
    assert port.read_until(b"+CGREG: 2\r\n").endswith(b"\r\n+CGREG: 2\r\n")
    assert at(port, "AT+CGREG?") == ["+CGREG: 1,2"]
    assert at(port, "AT+CGACT?") == ["+CGACT: 1,1"]  # registration and contexts are scripted separately
    assert sim.control("pdp 1 0")["ok"]
    port.write(b"AT+CGACT=1,1\r")  # cannot activate while not registered
    assert read_reply(port) == b"\r\nERROR\r\n"
    assert sim.control("reg 5")["ok"]
    port.read_until(b"+CGREG: 5\r\n")
    assert at(port, "AT+CGACT=1,1") == [] and at(port, "AT+CGACT?") == ["+CGACT: 1,1"]
    assert sim.control("pdp 3 1")["link_up"] is True
    assert at(port, "AT+CGACT?") == ["+CGACT: 1,1", "+CGACT: 3,1"]
    assert sim.control("cn0 38.5")["ok"]
    readings = [float(at(port, "AT_ISIG")[0].split(": ")[1]) for _ in range(5)]
    assert all(abs(r - 38.5) < 2 for r in readings)
    assert sim.control("gps 0 -33.8688 151.2093")["ok"]
    assert at(port, "AT_IGPS?") == ["_IGPS: 0,-33.868800,151.209300"]
    assert sim.control("noise 00ff2a0d0a")["ok"]
    assert port.read(5) == b"\x00\xff*\r\n"
    for bad in ("reg 9", "pdp 1 2", "pdp 99 1", "cn0 x", "gps 4 0 0", "noise zz", "unplug -1", "fly"):
        assert sim.control(bad)["ok"] is False, bad
    stats = sim.control("stats")
    assert stats["ok"] and stats["reg"] == 5 and stats["link_up"] and stats["by_command"]["_ISIG"] == 5
    assert stats["noise_bytes"] == 5 and stats["plugged"]


def test_unplug_brings_the_link_back_under_a_new_pts(sim: Sim) -> None:
    old = sim.open()
    before = os.path.realpath(sim.link)
    assert at(old, "ATE0") == []
    assert sim.control("unplug 0.5") == {"ok": True, "unplugged_s": 0.5}
    with pytest.raises((serial.SerialException, OSError)):
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # the driver's reads fail, like a pulled cable
            old.write(b"AT\r")
            old.read(1)
    deadline = time.monotonic() + 5
    while not sim.link.exists():
        assert time.monotonic() < deadline, "link did not come back"
        time.sleep(0.05)
    after = os.path.realpath(sim.link)
    assert after != before and after.startswith("/dev/pts/")
    old.close()
    with sim.open() as new:
        assert at(new, "AT") == []  # settings kept: the terminal itself did not restart
        assert at(new, "AT+CGREG?") == ["+CGREG: 0,1"]
    assert sim.control("stats")["unplugs"] == 1


def test_tcp_and_script_file(tmp_path: Path) -> None:
    script = tmp_path / "bgan.txt"
    script.write_text("# the terminal loses the satellite, then finds it again\n"
                      "0.3 cn0 20\n0.3 reg 2   # searching\n0.3 pdp 1 0\n1.2 reg 1\n1.2 pdp 1 1\n1.2 cn0 55\n")
    sim = Sim(tmp_path, "--tcp", "127.0.0.1:0", "--script", str(script))
    try:
        assert sim.ready["tcp"] and sim.ready["tcp"][0] == "127.0.0.1"
        conn = socket.create_connection(tuple(sim.ready["tcp"]), timeout=5)
        reader = conn.makefile("rb")

        def tcp_at(cmd: str) -> list[str]:
            conn.sendall(cmd.encode() + b"\r")
            lines = []
            while (line := reader.readline().decode().strip()) not in ("OK", "ERROR"):
                if line and line != cmd:  # skip the echo
                    lines.append(line)
            assert line == "OK", cmd
            return lines

        assert tcp_at("AT+CGREG?") == ["+CGREG: 0,1"]
        deadline = time.monotonic() + 5
        while tcp_at("AT+CGREG?") != ["+CGREG: 0,2"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert tcp_at("AT+CGACT?") == ["+CGACT: 1,0"]
        assert float(tcp_at("AT_ISIG")[0].split(": ")[1]) < 22
        while tcp_at("AT+CGACT?") != ["+CGACT: 1,1"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert tcp_at("AT+CGREG?") == ["+CGREG: 0,1"]
        stats = sim.control("stats")
        assert stats["script"] == {"steps": 6, "played": 6, "failed": 0} and stats["tcp_clients"] == 1
        conn.close()
    finally:
        sim.stop()
    assert not sim.link.exists()  # removed on exit


def test_bad_script_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "bad.txt"
    script.write_text("1 reg 1\n0.5 reg 2\n")
    proc = subprocess.run([sys.executable, "-m", "hil.bgan", "--link", str(tmp_path / "x"), "--script", str(script)],
                          cwd=ROOT, capture_output=True, timeout=20)
    assert proc.returncode == 2 and b"bad.txt:2" in proc.stderr and not proc.stdout
