"""End-to-end tests of the MAVLink copter simulator (hil.uav), run as a real subprocess.

The test side is a plain pymavlink + socket "GCS"; nothing from the gateway is used.
"""
from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from tests.serial_sims import SimProcess

M = mavlink2
HOME = (30.6586, 104.0648, 500.0)
KEY_HEX = "2b" * 16 + "7e" * 16
KEY = bytes.fromhex(KEY_HEX)
EPOCH_2015 = 1420070400


class Sim(SimProcess):
    """The simulator as a subprocess; `ports` is its --print-port line."""

    def __init__(self, args: list[str], log: Path) -> None:
        super().__init__("hil.uav", ["--print-port", "--log-level", "INFO", *args], ready_timeout=15.0, log=log)
        self.ports = self.ready


class Gcs:
    """Minimal ground station on a UDP socket (sysid 255, MAV_COMP_ID_MISSIONPLANNER)."""

    def __init__(self, peer: tuple[str, int] | None = None, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.peer = peer
        self.rx = M.MAVLink(None)
        self.rx.signing.secret_key = KEY  # lets the test tell validly signed frames from the rest
        self.rx.signing.allow_unsigned_callback = lambda _mav, _msgid: True
        self.tx = M.MAVLink(None, srcSystem=255, srcComponent=M.MAV_COMP_ID_MISSIONPLANNER)

    def close(self) -> None:
        self.sock.close()

    def send(self, msg: M.MAVLink_message, mav: M.MAVLink | None = None) -> None:
        mav = mav or self.tx
        buf = msg.pack(mav)
        mav.seq = (mav.seq + 1) % 256
        self.send_raw(buf)

    def send_raw(self, data: bytes) -> None:
        assert self.peer is not None
        self.sock.sendto(data, self.peer)

    def hello(self) -> None:
        self.send(M.MAVLink_heartbeat_message(M.MAV_TYPE_GCS, M.MAV_AUTOPILOT_INVALID, 0, 0, 0, 3))

    def messages(self, seconds: float) -> Iterator[M.MAVLink_message]:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, addr = self.sock.recvfrom(65535)
            except (socket.timeout, BlockingIOError):
                return
            if self.peer is None:
                self.peer = addr
            for msg in self.rx.parse_buffer(data) or []:
                if msg.get_msgId() >= 0:
                    yield msg

    def wait(self, pred: Callable[[M.MAVLink_message], bool], seconds: float, what: str) -> M.MAVLink_message:
        for msg in self.messages(seconds):
            if pred(msg):
                return msg
        raise AssertionError(f"timed out after {seconds}s waiting for {what}")

    def collect(self, seconds: float, pred: Callable[[M.MAVLink_message], bool]) -> list[M.MAVLink_message]:
        return [m for m in self.messages(seconds) if pred(m)]

    def ack(self, sysid: int, command: int, seconds: float = 3.0) -> M.MAVLink_message:
        return self.wait(lambda m: m.get_type() == "COMMAND_ACK" and m.get_srcSystem() == sysid
                         and m.command == command, seconds, f"COMMAND_ACK {command} from {sysid}")

    def command_long(self, sysid: int, command: int, *params: float, mav: M.MAVLink | None = None) -> None:
        p = list(params) + [0.0] * (7 - len(params))
        self.send(M.MAVLink_command_long_message(sysid, 1, command, 0, *p), mav)

    def command_long_ack(self, sysid: int, command: int, *params: float) -> int:
        self.command_long(sysid, command, *params)
        return int(self.ack(sysid, command).result)


def of(sysid: int, mtype: str) -> Callable[[M.MAVLink_message], bool]:
    return lambda m: m.get_srcSystem() == sysid and m.get_type() == mtype


def signed_mav(key: bytes) -> M.MAVLink:
    mav = M.MAVLink(None, srcSystem=255, srcComponent=M.MAV_COMP_ID_MISSIONPLANNER)
    mav.signing.secret_key = key
    mav.signing.sign_outgoing = True
    mav.signing.link_id = 1
    mav.signing.timestamp = int((time.time() - EPOCH_2015) * 100_000)
    return mav


def dist_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dn = math.radians(lat2 - lat1) * 6378137.0
    de = math.radians(lon2 - lon1) * 6378137.0 * math.cos(math.radians(lat1))
    return math.hypot(dn, de)


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[Callable[..., tuple[Sim, Gcs]]]:
    started: list[tuple[Sim, Gcs]] = []

    def start(*args: str) -> tuple[Sim, Gcs]:
        sim = Sim(["--udp-listen", "127.0.0.1:0", *args], tmp_path / f"sim{len(started)}.log")
        gcs = Gcs(tuple(sim.ports["udp_listen"]))
        gcs.hello()
        started.append((sim, gcs))
        return sim, gcs

    yield start
    for sim, gcs in started:
        gcs.close()
        if sim.proc.poll() is None:
            rc, _ = sim.terminate()
            assert rc == 0, sim.log.read_text()


def test_two_vehicles_report_heartbeat_and_position(start_sim) -> None:
    sim, gcs = start_sim("--sysid", "1", "--sysid", "2", "--no-autostart")
    msgs = list(gcs.messages(2.5))
    for sysid in (1, 2):
        hbs = [m for m in msgs if of(sysid, "HEARTBEAT")(m)]
        assert len(hbs) >= 2, f"sysid {sysid}: {len(hbs)} heartbeats"
        hb = hbs[-1]
        assert hb.get_srcComponent() == M.MAV_COMP_ID_AUTOPILOT1
        assert hb.type == M.MAV_TYPE_QUADROTOR and hb.autopilot == M.MAV_AUTOPILOT_ARDUPILOTMEGA
        assert hb.base_mode & M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
        assert not hb.base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED
        assert hb.system_status == M.MAV_STATE_STANDBY
        gpis = [m for m in msgs if of(sysid, "GLOBAL_POSITION_INT")(m)]
        assert 8 <= len(gpis) <= 16, f"~5 Hz expected, got {len(gpis)} in 2.5 s"
        assert all(m.get_header().incompat_flags == 0 for m in gpis)  # unsigned vehicles
    gpi1 = [m for m in msgs if of(1, "GLOBAL_POSITION_INT")(m)][-1]
    gpi2 = [m for m in msgs if of(2, "GLOBAL_POSITION_INT")(m)][-1]
    assert dist_m(HOME[0], HOME[1], gpi1.lat / 1e7, gpi1.lon / 1e7) < 0.5
    assert gpi1.alt == pytest.approx(HOME[2] * 1000, abs=50) and abs(gpi1.relative_alt) < 50
    assert dist_m(gpi1.lat / 1e7, gpi1.lon / 1e7, gpi2.lat / 1e7, gpi2.lon / 1e7) == pytest.approx(30.0, abs=1.0)
    assert gpi2.lon > gpi1.lon  # the second vehicle starts east of the first
    sys_status = [m for m in msgs if of(1, "SYS_STATUS")(m)][-1]
    assert sys_status.voltage_battery == pytest.approx(16800, abs=400) and sys_status.battery_remaining == 100


def test_takeoff_then_rtl_lands_home_and_disarms(start_sim) -> None:
    sim, gcs = start_sim("--takeoff-delay", "0.5", "--takeoff-alt", "6", "--radius", "12")
    gcs.send(M.MAVLink_param_set_message(1, 1, b"RTL_ALT", 1000.0, M.MAV_PARAM_TYPE_INT32))
    pv = gcs.wait(lambda m: m.get_type() == "PARAM_VALUE" and m.param_id == "RTL_ALT", 2.0, "RTL_ALT echo")
    assert pv.param_value == 1000.0

    alts: list[int] = []
    climbing = gcs.wait(lambda m: of(1, "GLOBAL_POSITION_INT")(m) and alts.append(m.relative_alt) is None
                        and m.relative_alt > 4000, 8.0, "climb above 4 m")
    assert climbing.vz < -50  # NED: climbing means negative vz
    assert alts[0] < 500 and alts == sorted(alts)
    hb = gcs.wait(of(1, "HEARTBEAT"), 2.0, "heartbeat")
    assert hb.base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED and hb.system_status == M.MAV_STATE_ACTIVE

    away = gcs.wait(lambda m: of(1, "GLOBAL_POSITION_INT")(m)
                    and dist_m(HOME[0], HOME[1], m.lat / 1e7, m.lon / 1e7) > 8.0, 12.0, "flying the pattern")
    assert away.relative_alt == pytest.approx(6000, abs=600)
    hud = gcs.wait(of(1, "VFR_HUD"), 1.0, "VFR_HUD")
    assert hud.groundspeed > 1.0 and hud.throttle > 10 and hud.alt == pytest.approx(506.0, abs=1.0)
    assert gcs.command_long_ack(1, M.MAV_CMD_NAV_RETURN_TO_LAUNCH) == M.MAV_RESULT_ACCEPTED
    assert gcs.command_long_ack(1, M.MAV_CMD_NAV_RETURN_TO_LAUNCH) == M.MAV_RESULT_ACCEPTED  # retransmission
    hb = gcs.wait(of(1, "HEARTBEAT"), 2.0, "heartbeat")
    assert hb.custom_mode == 6  # RTL

    max_alt = 0
    texts: list[str] = []
    last_gpi = None
    for msg in gcs.messages(30.0):
        if of(1, "GLOBAL_POSITION_INT")(msg):
            max_alt = max(max_alt, msg.relative_alt)
            last_gpi = msg
        elif of(1, "STATUSTEXT")(msg):
            texts.append(msg.text)
        elif of(1, "HEARTBEAT")(msg) and not msg.base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED:
            break
    else:
        raise AssertionError(f"never disarmed; statustexts: {texts}")
    assert max_alt > 9000, f"RTL_ALT=10 m should make RTL climb, max {max_alt} mm"
    assert "Landed" in texts and "Disarming motors" in texts
    gpi = gcs.wait(of(1, "GLOBAL_POSITION_INT"), 1.0, "final position")
    assert last_gpi is not None and abs(gpi.relative_alt) < 300 and gpi.vx == gpi.vy == gpi.vz == 0
    assert dist_m(HOME[0], HOME[1], gpi.lat / 1e7, gpi.lon / 1e7) < 2.0
    hb = gcs.wait(of(1, "HEARTBEAT"), 1.5, "heartbeat")
    assert hb.system_status == M.MAV_STATE_STANDBY


def test_command_results_rates_params_garbage_and_sigterm(start_sim) -> None:
    sim, gcs = start_sim("--sysid", "1", "--sysid", "2", "--no-autostart")
    gcs.wait(of(1, "HEARTBEAT"), 2.0, "heartbeat")

    # unknown command -> UNSUPPORTED; bad / on-ground commands answered honestly
    assert gcs.command_long_ack(1, 31010, 1.0) == M.MAV_RESULT_UNSUPPORTED
    gcs.send(M.MAVLink_command_int_message(1, 1, M.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT, M.MAV_CMD_DO_REPOSITION,
                                           0, 0, -1.0, 0.0, 0.0, math.nan, 950_000_000, 1_040_648_000, 20.0))
    assert gcs.ack(1, M.MAV_CMD_DO_REPOSITION).result == M.MAV_RESULT_DENIED
    assert gcs.command_long_ack(1, M.MAV_CMD_DO_REPOSITION, -1, 0, 0, math.nan, math.nan, 104.06, 20) \
        == M.MAV_RESULT_DENIED
    assert gcs.command_long_ack(1, M.MAV_CMD_DO_REPOSITION, -1, 0, 0, math.nan, 30.66, 104.06, 20) \
        == M.MAV_RESULT_FAILED  # valid target, but on the ground disarmed
    assert gcs.command_long_ack(1, M.MAV_CMD_NAV_RETURN_TO_LAUNCH) == M.MAV_RESULT_FAILED
    assert gcs.command_long_ack(1, M.MAV_CMD_DO_SET_MODE, 1, 42) == M.MAV_RESULT_DENIED
    assert gcs.command_long_ack(1, M.MAV_CMD_DO_SET_MODE, 1, 5) == M.MAV_RESULT_ACCEPTED
    assert gcs.wait(of(1, "HEARTBEAT"), 1.5, "heartbeat").custom_mode == 5  # LOITER
    gcs.command_long(1, M.MAV_CMD_REQUEST_MESSAGE, M.MAVLINK_MSG_ID_AUTOPILOT_VERSION)
    ver = gcs.wait(of(1, "AUTOPILOT_VERSION"), 2.0, "AUTOPILOT_VERSION")
    assert ver.flight_sw_version >> 24 == 4 and ver.capabilities & M.MAV_PROTOCOL_CAPABILITY_MAVLINK2
    assert gcs.ack(1, M.MAV_CMD_REQUEST_MESSAGE).result == M.MAV_RESULT_ACCEPTED
    assert gcs.command_long_ack(1, M.MAV_CMD_REQUEST_MESSAGE, 54321) == M.MAV_RESULT_DENIED

    # SET_MESSAGE_INTERVAL really changes the rate (and only for sysid 1)
    gpi = M.MAVLINK_MSG_ID_GLOBAL_POSITION_INT
    assert gcs.command_long_ack(1, M.MAV_CMD_SET_MESSAGE_INTERVAL, 54321, 100000) == M.MAV_RESULT_DENIED
    assert gcs.command_long_ack(1, M.MAV_CMD_SET_MESSAGE_INTERVAL, gpi, 40000) == M.MAV_RESULT_ACCEPTED
    gcs.command_long(1, M.MAV_CMD_GET_MESSAGE_INTERVAL, gpi)
    iv = gcs.wait(lambda m: of(1, "MESSAGE_INTERVAL")(m) and m.message_id == gpi, 2.0, "MESSAGE_INTERVAL")
    assert iv.interval_us == 40000
    window = list(gcs.messages(1.0))
    fast = sum(1 for m in window if of(1, "GLOBAL_POSITION_INT")(m))
    other = sum(1 for m in window if of(2, "GLOBAL_POSITION_INT")(m))
    assert 20 <= fast <= 30, f"25 Hz expected, got {fast}"
    assert 3 <= other <= 7, f"sysid 2 should stay at 5 Hz, got {other}"
    assert gcs.command_long_ack(1, M.MAV_CMD_SET_MESSAGE_INTERVAL, gpi, -1) == M.MAV_RESULT_ACCEPTED
    assert gcs.collect(1.0, of(1, "GLOBAL_POSITION_INT")) == []

    # parameters: set / read back / unknown name ignored / list is complete
    gcs.send(M.MAVLink_param_set_message(1, 1, b"WPNAV_SPEED", 1234.0, M.MAV_PARAM_TYPE_REAL32))
    pv = gcs.wait(lambda m: of(1, "PARAM_VALUE")(m) and m.param_id == "WPNAV_SPEED", 2.0, "PARAM_VALUE")
    assert pv.param_value == 1234.0 and pv.param_type == M.MAV_PARAM_TYPE_REAL32
    gcs.send(M.MAVLink_param_set_message(1, 1, b"RTL_ALT", 2500.6, M.MAV_PARAM_TYPE_REAL32))
    pv = gcs.wait(lambda m: of(1, "PARAM_VALUE")(m) and m.param_id == "RTL_ALT", 2.0, "PARAM_VALUE")
    assert pv.param_value == 2501.0 and pv.param_type == M.MAV_PARAM_TYPE_INT32  # stored type-correct
    gcs.send(M.MAVLink_param_request_read_message(1, 1, b"WPNAV_SPEED", -1))
    pv = gcs.wait(lambda m: of(1, "PARAM_VALUE")(m) and m.param_id == "WPNAV_SPEED", 2.0, "PARAM_VALUE")
    assert pv.param_value == 1234.0
    gcs.send(M.MAVLink_param_set_message(1, 1, b"NO_SUCH_PARAM", 1.0, M.MAV_PARAM_TYPE_REAL32))
    assert gcs.collect(0.7, of(1, "PARAM_VALUE")) == []
    gcs.send(M.MAVLink_param_request_list_message(2, 1))
    plist = gcs.collect(1.5, of(2, "PARAM_VALUE"))
    assert plist and len({p.param_id for p in plist}) == plist[0].param_count
    assert {p.param_id: p.param_value for p in plist}["SYSID_THISMAV"] == 2.0
    assert {p.param_id: p.param_value for p in plist}["WPNAV_SPEED"] == 800.0  # sysid 2 untouched

    # garbage never kills it
    good = M.MAVLink_command_long_message(1, 1, M.MAV_CMD_REQUEST_MESSAGE, 0, 148, 0, 0, 0, 0, 0, 0).pack(gcs.tx)
    bad_crc = good[:-2] + bytes([good[-2] ^ 0xFF, good[-1]])
    for junk in (os.urandom(300), b"\xfd\xff\x00\x00", bad_crc, b"\xfe\x05" + os.urandom(40), b"\xfd" * 64, b""):
        gcs.send_raw(junk)
    assert sim.proc.poll() is None
    assert gcs.command_long_ack(1, M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_ACCEPTED
    hb = gcs.wait(of(1, "HEARTBEAT"), 2.0, "heartbeat")
    assert hb.base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED

    rc, took = sim.terminate()
    assert rc == 0 and took < 2.0, (rc, took, sim.log.read_text())


def test_signed_vehicle_obeys_only_signed_commands(start_sim) -> None:
    sim, gcs = start_sim("--sysid", "1", "--sysid", "2", "--signing-key", f"2:{KEY_HEX}", "--no-autostart")
    msgs = list(gcs.messages(1.5))
    hb2 = [m for m in msgs if of(2, "HEARTBEAT")(m)]
    hb1 = [m for m in msgs if of(1, "HEARTBEAT")(m)]
    assert hb2 and all(m._signed for m in hb2)  # validly signed with the key
    assert hb1 and not any(m.get_header().incompat_flags & 1 for m in hb1)  # sysid 1 has no key

    arm = M.MAV_CMD_COMPONENT_ARM_DISARM
    gcs.command_long(2, arm, 1)  # unsigned
    gcs.command_long(2, arm, 1, mav=signed_mav(bytes(32)))  # signed with the wrong key
    late = gcs.collect(1.5, lambda m: m.get_srcSystem() == 2 and m.get_type() in ("COMMAND_ACK", "HEARTBEAT"))
    assert not [m for m in late if m.get_type() == "COMMAND_ACK"]
    assert all(not m.base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED for m in late if m.get_type() == "HEARTBEAT")

    assert gcs.command_long_ack(1, M.MAV_CMD_DO_SET_MODE, 1, 4) == M.MAV_RESULT_ACCEPTED  # unsigned sysid 1 obeys

    good = signed_mav(KEY)
    gcs.command_long(2, M.MAV_CMD_DO_SET_MODE, 1, 4, mav=good)
    ack = gcs.ack(2, M.MAV_CMD_DO_SET_MODE)
    assert ack.result == M.MAV_RESULT_ACCEPTED and ack._signed
    assert ack.target_system == 255 and ack.target_component == M.MAV_COMP_ID_MISSIONPLANNER
    gcs.command_long(2, arm, 1, mav=good)
    assert gcs.ack(2, arm).result == M.MAV_RESULT_ACCEPTED
    hb = gcs.wait(of(2, "HEARTBEAT"), 2.0, "heartbeat")
    assert hb.custom_mode == 4 and hb.base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED

    # a replayed (byte-identical) signed frame is ignored
    frame = M.MAVLink_command_long_message(2, 1, arm, 0, 0, 0, 0, 0, 0, 0, 0).pack(good)
    gcs.send_raw(frame)
    assert gcs.ack(2, arm).result == M.MAV_RESULT_ACCEPTED  # disarm on the ground
    gcs.send_raw(frame)
    assert gcs.collect(1.0, of(2, "COMMAND_ACK")) == []


def test_udp_out_and_tcp_listen_transports(tmp_path: Path) -> None:
    gcs_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gcs_sock.bind(("127.0.0.1", 0))
    port = gcs_sock.getsockname()[1]
    sim = Sim(["--udp-out", f"127.0.0.1:{port}", "--tcp-listen", "127.0.0.1:0", "--no-autostart", "--sysid", "7"],
              tmp_path / "sim.log")
    gcs = Gcs(sock=gcs_sock)
    tcp = socket.create_connection(tuple(sim.ports["tcp_listen"]), timeout=5.0)
    try:
        gcs.wait(of(7, "HEARTBEAT"), 3.0, "heartbeat over --udp-out")
        assert gcs.command_long_ack(7, M.MAV_CMD_DO_SET_MODE, 1, 5) == M.MAV_RESULT_ACCEPTED  # reply path

        parser = M.MAVLink(None)
        seen: set[str] = set()
        end = time.monotonic() + 3.0
        while time.monotonic() < end and not {"HEARTBEAT", "GLOBAL_POSITION_INT"} <= seen:
            data = tcp.recv(4096)
            assert data, "tcp closed"
            seen |= {m.get_type() for m in parser.parse_buffer(data) or [] if m.get_srcSystem() == 7}
        assert {"HEARTBEAT", "GLOBAL_POSITION_INT"} <= seen
        # junk, then a command, then a GCS's usual heartbeats (enough bytes to close any false frame start)
        junk = os.urandom(100) + b"\xfd\x30\x00\x00" + os.urandom(20)
        heartbeats = b"".join(M.MAVLink_heartbeat_message(6, 8, 0, 0, 0, 3).pack(gcs.tx) for _ in range(15))
        tcp.sendall(junk + M.MAVLink_command_long_message(
            7, 1, M.MAV_CMD_DO_SET_MODE, 0, 1, 2, 0, 0, 0, 0, 0).pack(gcs.tx) + heartbeats)
        assert gcs.ack(7, M.MAV_CMD_DO_SET_MODE).result == M.MAV_RESULT_ACCEPTED  # acks go to every link
        assert gcs.wait(of(7, "HEARTBEAT"), 2.0, "heartbeat").custom_mode == 2
    finally:
        tcp.close()
        gcs.close()
        rc, took = sim.terminate()
    assert rc == 0 and took < 2.0, sim.log.read_text()
