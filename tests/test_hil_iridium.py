"""Iridium 9603 SBD simulator (hil.iridium): the AT side over a real pty with pyserial, the control
port over TCP, the simulator as its own process (``python -m hil.iridium``)."""
from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from hil.iridium import checksum, main, parse_sbdrb, sbdrb_frame, with_checksum
from tests.serial_sims import SimProcess

OK = b"\r\nOK\r\n"
FAST = ["--session-delay", "0.05-0.15", "--csq-delay", "0.3", "--seed", "7"]


class Sim(SimProcess):
    """The simulator process and a connection to its control port."""

    def __init__(self, link: Path, *args: str) -> None:
        super().__init__("hil.iridium", ["--link", str(link), *args], ready_timeout=30.0, keep_control=True)


class Host:
    """The driver's end: pyserial on the link."""

    def __init__(self, link: Path) -> None:
        self.ser = serial.Serial(str(link), 19200, timeout=2)

    def send(self, data: bytes) -> None:
        self.ser.write(data)
        self.ser.flush()

    def until(self, term: bytes, timeout: float = 3.0) -> bytes:
        self.ser.timeout = timeout
        data = self.ser.read_until(term)
        assert data.endswith(term), f"no {term!r} within {timeout} s, got {data!r}"
        return data

    def cmd(self, text: str, term: bytes = OK, timeout: float = 3.0) -> bytes:
        self.send(text.encode("latin-1") + b"\r")
        return self.until(term, timeout)

    def quiet(self, seconds: float = 0.2) -> bytes:
        """Whatever arrives within `seconds` (expected: nothing)."""
        self.ser.timeout = seconds
        return self.ser.read(4096)

    def close(self) -> None:
        self.ser.close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., tuple[Sim, Host]]]:
    """Start a simulator (extra command-line args) and open its link with echo turned off."""
    sims: list[Sim] = []
    hosts: list[Host] = []

    def _start(*args: str, echo_off: bool = True) -> tuple[Sim, Host]:
        sim = Sim(tmp_path / f"iridium{len(sims)}", *FAST, *args)
        sims.append(sim)
        host = Host(tmp_path / f"iridium{len(sims) - 1}")
        hosts.append(host)
        if echo_off:
            assert host.cmd("ATE0") == b"ATE0\r" + OK
        return sim, host

    yield _start
    for host in hosts:
        host.close()
    for sim in sims:
        assert sim.stop() == 0


def write_mo(host: Host, data: bytes) -> bytes:
    assert host.cmd(f"AT+SBDWB={len(data)}", b"READY\r\n") == b"\r\nREADY\r\n"
    host.send(with_checksum(data))
    return host.until(OK)


def sbdix(host: Host, command: str = "AT+SBDIX") -> list[int]:
    reply = host.cmd(command).decode()
    line = next(x for x in reply.split("\r\n") if x.startswith("+SBDIX: "))
    return [int(v) for v in line.removeprefix("+SBDIX: ").split(", ")]


# ---------------------------------------------------------------- framing helpers


def test_checksum_and_sbdrb_frame() -> None:
    assert checksum(b"hello") == (sum(b"hello") & 0xFFFF).to_bytes(2, "big") == b"\x02\x14"
    assert checksum(b"\xff" * 340) == b"\x52\xac"  # 86700 & 0xFFFF = 0x52AC, high byte first
    assert sbdrb_frame(b"\x01\x02") == b"\x00\x02\x01\x02\x00\x03"
    assert parse_sbdrb(sbdrb_frame(b"\x0d\x0a" * 100)) == b"\x0d\x0a" * 100
    with pytest.raises(ValueError):
        parse_sbdrb(b"\x00\x02\x01\x02\x00\x04")


def test_command_line_rejects_bad_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--imei", "12345"], ["--session-delay", "3-1"], ["--csq", "6"], []):
        with pytest.raises(SystemExit) as exc:
            main(["--link", str(tmp_path / "x"), *args] if args else args)
        assert exc.value.code == 2
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- AT basics


def test_echo_identity_and_unknown_commands(start: Callable[..., tuple[Sim, Host]]) -> None:
    sim, host = start("--imei", "300434063999999", echo_off=False)
    assert sim.ready["ready"] is True and sim.ready["imei"] == "300434063999999"
    assert host.cmd("AT") == b"AT\r" + OK  # echo on at power-up
    assert host.cmd("AT+FOO", b"ERROR\r\n") == b"AT+FOO\r\r\nERROR\r\n"
    assert host.cmd("ATE0") == b"ATE0\r" + OK  # echoed: echo was still on when it came
    assert host.cmd("AT") == OK
    assert host.cmd("AT&K0") == OK
    assert host.cmd("at+cgsn") == b"\r\n300434063999999\r\n" + OK
    assert host.cmd("AT+SBDMTA=2", b"ERROR\r\n") == b"\r\nERROR\r\n"
    host.send(b"\x00\xff\r")  # noise without AT: no answer
    assert host.quiet() == b""
    host.send(b"\xfe\xfdAT\r\n")  # noise before AT, CR LF ending: answered once
    assert host.until(OK) == OK
    assert host.quiet() == b""
    assert host.cmd("ATE1") == OK
    assert host.cmd("AT+SBDMTA?") == b"AT+SBDMTA?\r\r\n+SBDMTA:0\r\n" + OK
    stats = sim.control("stats")
    assert stats["ok"] and stats["echo"] is True and stats["errors"] == 2


def test_sbdwb_checksum_size_and_buffers(start: Callable[..., tuple[Sim, Host]]) -> None:
    sim, host = start()
    data = bytes(range(256)) + b"\r\nAT\r\n" + bytes(78)  # 340 bytes, CR/LF/"AT" inside: binary, not lines
    assert write_mo(host, data) == b"\r\n0\r\n" + OK
    assert host.cmd("AT+SBDS") == b"\r\n+SBDS: 1, 0, 0, -1\r\n" + OK
    host.cmd(f"AT+SBDWB={len(data)}", b"READY\r\n")
    host.send(data + bytes([checksum(data)[0], checksum(data)[1] ^ 1]))
    assert host.until(OK) == b"\r\n2\r\n" + OK
    for n in (0, 341):
        assert host.cmd(f"AT+SBDWB={n}") == b"\r\n3\r\n" + OK
    assert host.cmd("AT+SBDWB", b"ERROR\r\n") == b"\r\nERROR\r\n"
    assert host.cmd("AT+SBDD0") == b"\r\n0\r\n" + OK
    assert host.cmd("AT+SBDS") == b"\r\n+SBDS: 0, 0, 0, -1\r\n" + OK
    assert host.cmd("AT+SBDWT=hello Iridium") == OK
    assert host.cmd("AT+SBDS") == b"\r\n+SBDS: 1, 0, 0, -1\r\n" + OK
    assert host.cmd(f"AT+SBDWT={'x' * 121}", b"ERROR\r\n") == b"\r\nERROR\r\n"
    assert host.cmd("AT+SBDWT", b"READY\r\n") == b"\r\nREADY\r\n"
    assert host.cmd("Text, AT case kept") == b"\r\n0\r\n" + OK
    assert sbdix(host) == [0, 0, 0, 0, 0, 0]
    assert bytes.fromhex(sim.control("received")["messages"][0]["hex"]) == b"Text, AT case kept"


def test_sbdwb_times_out_when_bytes_stop(start: Callable[..., tuple[Sim, Host]]) -> None:
    _sim, host = start("--sbdwb-timeout", "0.3")
    host.cmd("AT+SBDWB=10", b"READY\r\n")
    host.send(b"12345")
    t0 = time.monotonic()
    assert host.until(OK) == b"\r\n1\r\n" + OK
    assert time.monotonic() - t0 >= 0.2
    assert host.cmd("AT") == OK  # the partial bytes were dropped, not read as a command


# ---------------------------------------------------------------- sessions


def test_sbdix_records_byte_exact_and_counts_momsn(start: Callable[..., tuple[Sim, Host]]) -> None:
    sim, host = start()
    first = bytes([0x03, 0x01, 0x02]) + b"id" + bytes(range(200, 256)) + b"\r\n\x00"
    write_mo(host, first)
    assert sbdix(host) == [0, 0, 0, 0, 0, 0]
    host.cmd("AT+SBDD0")
    assert sbdix(host) == [0, 1, 0, 0, 0, 0]  # empty MO buffer: a mailbox check, nothing recorded
    write_mo(host, b"\x04\x00hi")
    assert sbdix(host, "AT+SBDIX=3036.55,10403.80") == [0, 2, 0, 0, 0, 0]
    got = sim.control("received")["messages"]
    assert [(m["momsn"], bytes.fromhex(m["hex"]), m["length"]) for m in got] == [
        (0, first, len(first)), (2, b"\x04\x00hi", 4)]
    stats = sim.control("stats")
    assert stats["sessions"] == 3 and stats["mo_received"] == 2 and stats["mailbox_checks"] == 1
    assert stats["momsn"] == 3 and [s["mo_status"] for s in stats["session_log"]] == [0, 0, 0]


def test_injected_failures_keep_the_buffer_and_are_timed(start: Callable[..., tuple[Sim, Host]]) -> None:
    sim, host = start()
    assert sim.control("fail 18")["pending"] == [18]
    assert sim.control("fail 99")["ok"] is False
    payload = b"\x01" + bytes(12)
    write_mo(host, payload)
    assert sbdix(host) == [18, 0, 2, 0, 0, 0]
    assert sim.control("received")["messages"] == []
    assert sbdix(host) == [0, 0, 0, 0, 0, 0]  # retried without rewriting: the buffer stayed
    assert [bytes.fromhex(m["hex"]) for m in sim.control("received")["messages"]] == [payload]
    sim.control("fail 36")
    sim.control("fail 35 2")
    assert sbdix(host)[0] == 36
    time.sleep(0.4)  # the host waits before trying again
    assert [sbdix(host)[0] for _ in range(3)] == [35, 35, 0]
    stats = sim.control("stats")
    log = stats["session_log"]
    assert stats["sessions"] == 6 and stats["mo_failed"] == 4 and stats["pending_failures"] == []
    assert [s["mo_status"] for s in log] == [18, 0, 36, 35, 35, 0]
    assert log[3]["ts"] - log[2]["ts"] >= 0.4 + log[2]["duration_s"] - 0.01
    sim.control("csq 0")
    assert sbdix(host)[:3] == [32, 2, 2]  # no signal: no network service


def test_mt_mailbox_ring_sbdixa_and_sbdrb(start: Callable[..., tuple[Sim, Host]]) -> None:
    sim, host = start()
    assert sim.control("mt 0102")["ring"] is False  # ring alerts off at power-up
    assert host.quiet() == b""
    host.cmd("AT+SBDMTA=1")
    mt = b"\x04\x03ops" + "réponse".encode() + b"\r\nOK\r\n" + bytes(range(251))  # 270 bytes
    assert len(mt) == 270
    reply = sim.control(f"mt {mt.hex()}")
    assert reply["ok"] and reply["mtmsn"] == 2 and reply["mailbox"] == 2 and reply["ring"] is True
    assert host.until(b"\r\nSBDRING\r\n") == b"\r\nSBDRING\r\n"
    assert sbdix(host, "AT+SBDIXA") == [0, 0, 1, 1, 2, 1]  # the older one first, one more queued
    assert host.cmd("AT+SBDRB") == sbdrb_frame(b"\x01\x02") + OK
    assert sbdix(host) == [0, 1, 1, 2, 270, 0]
    host.send(b"AT+SBDRB\r")  # binary with "\r\nOK\r\n" inside: read by the length, not to the first OK
    head = host.ser.read(2)
    frame = head + host.ser.read(int.from_bytes(head, "big") + 2)
    assert host.until(OK) == OK
    assert frame[:2] == b"\x01\x0e" and frame[-2:] == checksum(mt)
    assert parse_sbdrb(frame) == mt
    assert host.cmd("AT+SBDS") == b"\r\n+SBDS: 0, 2, 1, 2\r\n" + OK
    assert sim.control(f"mt {'00' * 271}")["ok"] is False
    sim.control("mt 6869")
    host.until(b"\r\nSBDRING\r\n")
    assert sbdix(host, "AT+SBDIXA") == [0, 2, 1, 3, 2, 0]
    assert host.cmd("AT+SBDRT") == b"\r\n+SBDRT:\r\nhi\r\n" + OK
    host.cmd("AT+SBDD2")
    assert host.cmd("AT+SBDRB") == b"\x00\x00\x00\x00" + OK
    stats = sim.control("stats")
    assert stats["mt_delivered"] == 3 and stats["mailbox"] == 0 and stats["rings_sent"] == 2


def test_ring_waits_for_the_end_of_an_answer(start: Callable[..., tuple[Sim, Host]]) -> None:
    sim, host = start("--session-delay", "0.4")
    host.cmd("AT+SBDMTA=1")
    host.send(b"AT+CSQ\r")  # takes 0.3 s
    time.sleep(0.1)
    sim.control("mt 41")
    assert host.until(b"SBDRING\r\n") == b"\r\n+CSQ:5\r\n" + OK + b"\r\nSBDRING\r\n"
    host.send(b"AT+SBDIX\r")  # the session takes the message queued meanwhile: no ring after it
    time.sleep(0.05)
    sim.control("mt 42")
    assert host.until(OK).startswith(b"\r\n+SBDIX: 0, 0, 1, 1, 1, 1\r\n")
    assert host.until(b"SBDRING\r\n") == b"\r\nSBDRING\r\n"  # one still waits: rung after the answer
    host.send(b"AT+SBDIX\r")
    time.sleep(0.05)
    assert sim.control("ring")["ring"] is True
    host.until(OK)
    assert host.quiet() == b""  # mailbox emptied by the session: the deferred ring is dropped


def test_csq_takes_time_csqf_does_not(start: Callable[..., tuple[Sim, Host]]) -> None:
    sim, host = start("--csq", "3")
    t0 = time.monotonic()
    assert host.cmd("AT+CSQ") == b"\r\n+CSQ:3\r\n" + OK
    assert time.monotonic() - t0 >= 0.28
    t0 = time.monotonic()
    assert host.cmd("AT+CSQF") == b"\r\n+CSQF:3\r\n" + OK
    assert time.monotonic() - t0 < 0.2
    assert sim.control("csq 1")["csq"] == 1 and sim.control("csq 9")["ok"] is False
    assert host.cmd("AT+CSQF") == b"\r\n+CSQF:1\r\n" + OK


def test_noise_reaches_the_host(start: Callable[..., tuple[Sim, Host]]) -> None:
    sim, host = start()
    assert sim.control("noise 00ff0d0a2b5342")["sent"] is True
    assert host.until(b"+SB") == b"\x00\xff\r\n+SB"
    assert host.cmd("AT") == OK


def test_unplug_comes_back_on_a_new_pty(start: Callable[..., tuple[Sim, Host]], tmp_path: Path) -> None:
    sim, host = start()
    link = tmp_path / "iridium0"
    old = os.path.realpath(link)
    write_mo(host, b"lost")
    assert sim.control("unplug 0.3")["ok"] is True
    with pytest.raises(serial.SerialException):  # the driver's reads fail, like a pulled cable
        host.ser.timeout = 1
        host.ser.read(1)
    deadline = time.monotonic() + 3
    while not link.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    new = os.path.realpath(link)
    assert new.startswith("/dev/pts/") and new != old
    host.close()
    again = Host(link)
    try:
        assert again.cmd("AT") == b"AT\r" + OK  # the modem restarted: echo on again
        assert again.cmd("AT+SBDS") == b"AT+SBDS\r\r\n+SBDS: 0, 0, 0, -1\r\n" + OK  # MO buffer lost
    finally:
        again.close()
    stats = sim.control("stats")
    assert stats["unplugs"] == 1 and stats["plugged"] is True and stats["tty"] == new


def test_unplug_of_the_serial_adapter_only_keeps_the_modem_running(start: Callable[..., tuple[Sim, Host]],
                                                                   tmp_path: Path) -> None:
    sim, host = start("--unplug-mode", "serial", "--session-delay", "0.3")
    write_mo(host, b"kept")
    host.send(b"AT+SBDIX\r")
    time.sleep(0.05)
    sim.control("unplug 0.6")  # the session ends while unplugged: its answer is lost, the message arrived
    host.close()
    time.sleep(0.8)
    stats = sim.control("stats")
    assert stats["plugged"] is True and stats["session_log"][0]["mo_status"] == 0
    again = Host(tmp_path / "iridium0")
    try:
        assert again.cmd("AT+SBDS") == b"\r\n+SBDS: 1, 1, 0, -1\r\n" + OK  # echo still off, MO buffer kept
    finally:
        again.close()
    assert [m["hex"] for m in sim.control("received")["messages"]] == [b"kept".hex()]


# ---------------------------------------------------------------- team units (--peer, `peer`)


def decode_batch(data: bytes) -> tuple[str, list[tuple[int, float, float, int | None, int | None, int | None]]]:
    """An independent reading of the 0x03 batch (docs/serial-protocols.md): id, entries of
    (ts, lat, lon, alt m, speed cm/s, heading 0.01 deg), unknowns as None."""
    assert data[0] == 0x03
    n, id_len = data[1], data[2]
    assert len(data) == 3 + id_len + 18 * n
    entries = []
    for i in range(n):
        ts, lat, lon, alt, speed, heading = struct.unpack_from(">IiihHH", data, 3 + id_len + 18 * i)
        entries.append((ts, lat / 1e7, lon / 1e7, None if alt == -32768 else alt,
                        None if speed == 0xFFFF else speed, None if heading == 0xFFFF else heading))
    return data[3:3 + id_len].decode("ascii"), entries


def read_mt(host: Host) -> bytes:
    """AT+SBDRB's data; a ring alert for a report queued meanwhile may come first (a frame never
    starts with CR LF: that would be 3338 bytes)."""
    host.send(b"AT+SBDRB\r")
    head = host.ser.read(2)
    while head == b"\r\n":
        assert host.until(b"SBDRING\r\n") == b"SBDRING\r\n"
        head = host.ser.read(2)
    frame = head + host.ser.read(int.from_bytes(head, "big") + 2)
    assert host.until(OK) == OK
    return parse_sbdrb(frame)


def test_peer_arguments_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    link = str(tmp_path / "x")
    for args, reason in [(["--peer", "bad_id:1,2"], "unit ID must be 1..32"),
                         (["--peer", "A" * 33 + ":1,2"], "unit ID must be 1..32"),
                         (["--peer", ":1,2"], "unit ID must be 1..32"),
                         (["--peer", "A:90.5,0"], "latitude must be -90..90"),
                         (["--peer", "A:0,-180.1"], "longitude must be -180..180"),
                         (["--peer", "A:1,2:90"], "expected ID:LAT,LON[:HEADING_DEG:SPEED_KMH]"),
                         (["--peer", "A:1"], "expected LAT,LON"),
                         (["--peer", "A:1,2:361:5"], "heading must be 0..360"),
                         (["--peer", "A:1,2:90:-3"], "speed must be 0..2359"),
                         (["--peer", "A:nan,2"], "latitude must be finite"),
                         (["--peer", "A:1,2", "--peer", "A:3,4"], "the same ID twice"),
                         (["--peer-interval", "0"], "must be > 0")]:
        with pytest.raises(SystemExit) as exc:
            main(["--link", link, *args])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "error: argument --peer" in err and reason in err, (args, err)
    assert not (tmp_path / "x").exists()


def test_peers_report_as_mt_messages(start: Callable[..., tuple[Sim, Host]]) -> None:
    sim, host = start("--peer", "TEAM-1:-33.9249,18.4241", "--peer", "Mover-2:10,20:90:36",
                      "--peer-interval", "1")
    host.cmd("AT+SBDMTA=1")
    t0 = time.time()
    assert host.until(b"\r\nSBDRING\r\n", timeout=3) == b"\r\nSBDRING\r\n"  # TEAM-1, 1/3 s in
    got: dict[str, list[tuple[int, float, float, int | None, int | None, int | None]]] = {}
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:  # Mover-2's first report comes 2/3 s in
        status = sbdix(host, "AT+SBDIXA")
        assert status[0] == 0
        if status[2] == 0:  # nothing yet
            time.sleep(0.1)
            continue
        data = read_mt(host)
        assert status[2] == 1 and status[4] == len(data)
        unit, entries = decode_batch(data)
        got.setdefault(unit, entries)
    (ts, lat, lon, alt, speed, heading), = got["TEAM-1"]
    assert abs(ts - t0) <= 3 and (lat, lon) == (-33.9249, 18.4241)
    assert (alt, speed, heading) == (None, None, None)  # stands still: altitude, speed, course unknown
    (ts, lat, lon, alt, speed, heading), = got["Mover-2"]
    assert abs(ts - t0) <= 3 and alt is None
    assert speed == 1000 and heading is not None and abs(heading - 9000) <= 1  # 36 km/h east
    assert abs(lat - 10) < 1e-5 and 20 < lon < 20 + 30 * 10 / 111_000  # 10 m/s for under 30 s
    time.sleep(0.5)
    stats = sim.control("stats")
    assert stats["peers"] == ["TEAM-1", "Mover-2"] and stats["peer_reports"] >= 2
    assert stats["peer_reports_dropped"] == 0 and stats["mt_queued_total"] == stats["peer_reports"]


def test_moving_peer_advances_along_its_heading(start: Callable[..., tuple[Sim, Host]]) -> None:
    sim, host = start("--peer", "FAST:0,0:0:1800", "--peer-interval", "0.4")  # 500 m/s due north
    time.sleep(1.5)  # reports at 0.2, 0.6, 1.0, 1.4 s
    reports = []
    while True:
        status = sbdix(host)
        reports.append(decode_batch(read_mt(host)))
        if status[5] == 0:
            break
    assert len(reports) >= 3 and {unit for unit, _ in reports} == {"FAST"}
    lats = [entries[0][1] for _, entries in reports]
    assert lats == sorted(lats) and lats[0] > 0
    deg_per_s = 500 / 111_195  # one degree of a great circle: about 111.195 km
    for a, b in zip(lats, lats[1:]):
        assert abs((b - a) / deg_per_s - 0.4) < 0.15  # one interval apart
    assert all(abs(entries[0][2]) < 1e-7 and entries[0][4] == 50000 and entries[0][5] == 0
               for _, entries in reports)
    assert sim.control("stats")["peer_reports"] >= len(reports)


def test_peer_control_command_queues_a_report(start: Callable[..., tuple[Sim, Host]]) -> None:
    sim, host = start()
    host.cmd("AT+SBDMTA=1")
    reply = sim.control("peer OPS-7 -33.9249 -70.5")
    assert reply["ok"] and reply["id"] == "OPS-7" and reply["mtmsn"] == 1 and reply["ring"] is True
    assert reply["length"] == 3 + 5 + 18 and reply["mailbox"] == 1
    assert host.until(b"\r\nSBDRING\r\n") == b"\r\nSBDRING\r\n"
    assert sbdix(host, "AT+SBDIXA") == [0, 0, 1, 1, 26, 0]
    data = read_mt(host)
    assert data[:8] == b"\x03\x01\x05OPS-7"
    assert decode_batch(data) == ("OPS-7", [(reply["ts"], -33.9249, -70.5, None, None, None)])
    for bad, reason in [("peer OPS-7 91 0", "latitude"), ("peer OPS-7 0 180.5", "longitude"),
                        ("peer ops_7 0 0", "unit ID"), ("peer OPS-7 0", "usage"), ("peer OPS-7 x 0", "number")]:
        r = sim.control(bad)
        assert r["ok"] is False and reason in r["error"], r
    assert sim.control("stats")["mailbox"] == 0
