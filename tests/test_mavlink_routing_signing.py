"""Ground-station routing through the gateway, and MAVLink 2 signing."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

os.environ.setdefault("MAVLINK20", "1")

from pymavlink.dialects.v20 import ardupilotmega as m2

from tests.conftest import free_port, start_sim
from tests.helpers import GatewayProcess, drone, wait_for, write_kit

KEY = "a1" * 32


class UdpGcs:
    """A ground station: a plain UDP socket speaking MAVLink as system 255."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.mav = m2.MAVLink(None, srcSystem=255, srcComponent=190)
        self.mav.robust_parsing = True
        self.peer: tuple[str, int] | None = None
        self.received: list = []

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.peer = addr
            self.received.extend(m for m in (self.mav.parse_buffer(data) or []) if m.get_type() != "BAD_DATA")

    def send(self, msg: object) -> None:
        assert self.peer is not None
        buf = msg.pack(self.mav)  # type: ignore[attr-defined]
        self.mav.seq = (self.mav.seq + 1) % 256
        self.sock.sendto(buf, self.peer)


def test_ground_station_sees_vehicle_and_commands_it(tmp_path: Path, processes: list) -> None:
    gcs = UdpGcs()
    port = free_port()
    kit = write_kit(tmp_path / "kit.yaml", [drone("drone-1", port, 1)],
                    ground_stations=[{"id": "qgc", "url": f"udp://127.0.0.1:{gcs.port}"}])
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_port=free_port())
    processes.append(gw.proc)
    sim, _ = start_sim("--sysid", "1", "--udp-out", f"127.0.0.1:{port}", "--takeoff-delay", "0.5")
    processes.append(sim)
    gcs.pump(3.0)
    types = {m.get_type() for m in gcs.received if m.get_srcSystem() == 1}
    assert {"HEARTBEAT", "GLOBAL_POSITION_INT"} <= types, types
    # The ground station's own command reaches the vehicle and the ack comes back to it.
    gcs.send(gcs.mav.command_long_encode(1, 1, m2.MAV_CMD_REQUEST_MESSAGE, 0, m2.MAVLINK_MSG_ID_AUTOPILOT_VERSION, 0, 0, 0, 0, 0, 0))
    gcs.pump(2.0)
    acks = [m for m in gcs.received if m.get_type() == "COMMAND_ACK" and m.command == m2.MAV_CMD_REQUEST_MESSAGE and m.target_system == 255]
    assert acks and acks[-1].result == m2.MAV_RESULT_ACCEPTED
    assert any(m.get_type() == "AUTOPILOT_VERSION" for m in gcs.received)
    # and it can fly the vehicle: a mode change it sends is obeyed
    gcs.send(gcs.mav.command_long_encode(1, 1, m2.MAV_CMD_DO_SET_MODE, 0, 1, 5, 0, 0, 0, 0, 0))  # LOITER
    wait_for(lambda: gw.get("/api/v1/devices/drone-1").json()["status"].get("mode") == "LOITER", 5, "mode LOITER from the GCS")


def test_signed_vehicle_works_and_unsigned_injection_is_dropped(tmp_path: Path, processes: list) -> None:
    port = free_port()
    kit = write_kit(tmp_path / "kit.yaml", [drone("drone-1", port, 1, signing_key=KEY)])
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_port=free_port())
    processes.append(gw.proc)
    sim, _ = start_sim("--sysid", "1", "--udp-out", f"127.0.0.1:{port}", "--signing-key", KEY, "--takeoff-delay", "0.5")
    processes.append(sim)
    wait_for(lambda: gw.get("/api/v1/devices/drone-1").json()["online"], 10, "signed vehicle online")
    wait_for(lambda: (gw.get("/api/v1/devices/drone-1").json()["position"] or {}).get("alt_m", 0) > 505, 15, "airborne")

    # An injector without the key pretends to be system 1 and claims the vehicle is landing.
    inj = m2.MAVLink(None, srcSystem=1, srcComponent=1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(20):
        hb = inj.heartbeat_encode(m2.MAV_TYPE_QUADROTOR, m2.MAV_AUTOPILOT_ARDUPILOTMEGA,
                                  m2.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, 9, m2.MAV_STATE_EMERGENCY)
        sock.sendto(hb.pack(inj), ("127.0.0.1", port))
        inj.seq = (inj.seq + 1) % 256
        # and one with a signature made with the wrong key
        bad = m2.MAVLink(None, srcSystem=1, srcComponent=1)
        bad.signing.secret_key, bad.signing.sign_outgoing, bad.signing.timestamp = b"\x01" * 32, True, 10**12
        sock.sendto(bad.heartbeat_encode(2, 3, 1, 9, 6).pack(bad), ("127.0.0.1", port))
        time.sleep(0.05)

    def counted() -> dict | None:
        link = gw.get("/api/v1/devices/drone-1").json()["status"].get("link", {})
        frames = link.get("frames", {})
        return frames if frames.get("unsigned", 0) >= 20 and frames.get("bad_signature", 0) >= 20 else None
    frames = wait_for(counted, 15, "dropped frames counted in the device status")
    assert frames["ok"] > 0
    status = gw.get("/api/v1/devices/drone-1").json()["status"]
    assert status["mode"] != "LAND" and status["system_status"] != "emergency"

    # The gateway's own commands are signed and obeyed.
    r = gw.post("/api/v1/devices/drone-1/commands", {"command": "hold"})
    assert r.status_code == 202
    assert gw.wait_command(r.json()["id"], 20)["status"] == "done"
    wait_for(lambda: gw.get("/api/v1/devices/drone-1").json()["status"].get("mode") == "LOITER", 5, "LOITER")
