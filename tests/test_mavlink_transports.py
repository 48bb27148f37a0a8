"""MAVLink links beyond UDP: TCP client with reconnect, serial over a pty, several vehicles on one link,
and how COMMAND_ACK results map to command status."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

os.environ.setdefault("MAVLINK20", "1")

from pymavlink.dialects.v20 import ardupilotmega as m2

from tests.conftest import free_port, start_sim, stop_process
from tests.helpers import GatewayProcess, drone, wait_for, write_kit


def _device(gw: GatewayProcess, dev: str) -> dict:
    return gw.get(f"/api/v1/devices/{dev}").json()


def test_tcp_link_reconnects_after_the_vehicle_restarts(tmp_path: Path, processes: list) -> None:
    port = free_port()
    dev = drone("drone-1", 0, 1)
    dev["transport"] = f"tcp://127.0.0.1:{port}"
    kit = write_kit(tmp_path / "kit.yaml", [dev])
    sim, ports = start_sim("--sysid", "1", "--tcp-listen", f"127.0.0.1:{port}", "--no-autostart")
    processes.append(sim)
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_port=free_port())
    processes.append(gw.proc)
    wait_for(lambda: _device(gw, "drone-1")["online"], 10, "online over TCP")
    assert _device(gw, "drone-1")["position"]["source"] == "mavlink"
    sim.kill()
    wait_for(lambda: not _device(gw, "drone-1")["online"], 6, "offline when the TCP peer dies")
    sim2, _ = start_sim("--sysid", "1", "--tcp-listen", f"127.0.0.1:{port}", "--no-autostart")
    processes.append(sim2)
    wait_for(lambda: _device(gw, "drone-1")["online"], 15, "online again after reconnect with backoff")


def test_two_vehicles_on_one_link_are_two_devices(tmp_path: Path, processes: list) -> None:
    port = free_port()
    kit = write_kit(tmp_path / "kit.yaml", [drone("drone-1", port, 1), drone("drone-2", port, 2)])
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_port=free_port())
    processes.append(gw.proc)
    sim, _ = start_sim("--sysid", "1", "--sysid", "2", "--udp-out", f"127.0.0.1:{port}", "--takeoff-delay", "0.3")
    processes.append(sim)
    wait_for(lambda: _device(gw, "drone-1")["online"] and _device(gw, "drone-2")["online"], 10, "both online")
    wait_for(lambda: all((_device(gw, d)["position"] or {}).get("alt_m", 0) > 503 for d in ("drone-1", "drone-2")), 15, "both airborne")
    p1, p2 = _device(gw, "drone-1")["position"], _device(gw, "drone-2")["position"]
    assert (p1["lat"], p1["lon"]) != (p2["lat"], p2["lon"])
    r = gw.post("/api/v1/devices/drone-2/commands", {"command": "set_mode", "args": {"mode": "brake"}})
    assert r.status_code == 202
    assert gw.wait_command(r.json()["id"], 15)["status"] == "done"
    wait_for(lambda: _device(gw, "drone-2")["status"]["mode"] == "BRAKE", 5, "drone-2 in BRAKE")
    assert _device(gw, "drone-1")["status"]["mode"] != "BRAKE"


class PtyVehicle(threading.Thread):
    """A vehicle on the master side of a pty: heartbeats, a position, and scripted COMMAND_ACK answers."""

    def __init__(self, fd: int, answers: dict[int, int | None]) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.answers = answers  # MAV_CMD → MAV_RESULT, or None to stay silent
        self.mav = m2.MAVLink(None, srcSystem=7, srcComponent=1)
        self.mav.robust_parsing = True
        self.received: list = []
        self.stop = threading.Event()

    def _write(self, msg: object) -> None:
        os.write(self.fd, msg.pack(self.mav))  # type: ignore[attr-defined]
        self.mav.seq = (self.mav.seq + 1) % 256

    def run(self) -> None:
        os.set_blocking(self.fd, False)
        next_beat = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + 0.5
                self._write(self.mav.heartbeat_encode(m2.MAV_TYPE_QUADROTOR, m2.MAV_AUTOPILOT_ARDUPILOTMEGA,
                                                      m2.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, 5, m2.MAV_STATE_STANDBY))
                self._write(self.mav.global_position_int_encode(0, 306000000, 1040000000, 480000, 0, 0, 0, 0, 0))
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                time.sleep(0.02)
                continue
            except OSError:
                return
            for m in self.mav.parse_buffer(data) or []:
                self.received.append(m)
                if m.get_type() == "COMMAND_LONG" and m.target_system == 7:
                    result = self.answers.get(m.command)
                    if result is not None:
                        self._write(self.mav.command_ack_encode(m.command, result, 0, 0, m.get_srcSystem(), m.get_srcComponent()))


def test_serial_link_and_ack_results(tmp_path: Path, processes: list) -> None:
    master, slave = os.openpty()
    vehicle = PtyVehicle(master, {m2.MAV_CMD_NAV_RETURN_TO_LAUNCH: m2.MAV_RESULT_ACCEPTED,
                                  m2.MAV_CMD_NAV_LAND: m2.MAV_RESULT_DENIED,
                                  m2.MAV_CMD_DO_SET_MODE: None,  # never answers
                                  m2.MAV_CMD_SET_MESSAGE_INTERVAL: m2.MAV_RESULT_UNSUPPORTED,
                                  m2.MAV_CMD_REQUEST_MESSAGE: m2.MAV_RESULT_ACCEPTED})
    vehicle.start()
    dev = drone("drone-7", 0, 7)
    dev["transport"] = f"serial://{os.ttyname(slave)}?baud=57600"
    kit = write_kit(tmp_path / "kit.yaml", [dev], command_timeout_s=12)
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_port=free_port())
    processes.append(gw.proc)
    try:
        wait_for(lambda: _device(gw, "drone-7")["online"], 10, "online over serial")
        pos = _device(gw, "drone-7")["position"]
        assert abs(pos["lat"] - 30.6) < 1e-6 and abs(pos["alt_m"] - 480.0) < 1e-6
        # the gateway speaks as its own ground-control component
        wait_for(lambda: any(m.get_type() == "HEARTBEAT" and m.get_srcSystem() == 245 and m.get_srcComponent() == 190
                             for m in vehicle.received), 5, "gateway heartbeat on the serial line")
        # unsupported stream-rate requests are reported, not fatal
        wait_for(lambda: _device(gw, "drone-7")["status"].get("stream_rates") == "partly applied", 20, "stream rates reported")
        results = {}
        for command in ("rtl", "land", "hold"):
            r = gw.post("/api/v1/devices/drone-7/commands", {"command": command})
            assert r.status_code == 202
            results[command] = gw.wait_command(r.json()["id"], 20)
        assert results["rtl"]["status"] == "done"
        assert results["land"]["status"] == "failed" and "MAV_RESULT_DENIED" in results["land"]["detail"]
        assert results["hold"]["status"] == "timeout" and "no COMMAND_ACK" in results["hold"]["detail"]
        sent = [m for m in vehicle.received if m.get_type() == "COMMAND_LONG" and m.command == m2.MAV_CMD_DO_SET_MODE]
        assert len(sent) >= 3 and [m.confirmation for m in sent[:3]] == [0, 1, 2]  # retried, counted
    finally:
        vehicle.stop.set()
        stop_process(gw.proc)
        os.close(slave)


def test_udp_client_link_to_a_listening_vehicle(tmp_path: Path, processes: list) -> None:
    sim, ports = start_sim("--sysid", "3", "--udp-listen", "127.0.0.1:0", "--no-autostart")
    processes.append(sim)
    dev = drone("drone-3", 0, 3)
    dev["transport"] = f"udp://127.0.0.1:{ports['udp_listen'][1]}"  # the gateway speaks first (its HEARTBEAT)
    kit = write_kit(tmp_path / "kit.yaml", [dev])
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_port=free_port())
    processes.append(gw.proc)
    wait_for(lambda: _device(gw, "drone-3")["online"], 10, "online over a UDP client link")
    r = gw.post("/api/v1/devices/drone-3/commands", {"command": "set_mode", "args": {"mode": "LOITER"}})
    assert r.status_code == 202
    assert gw.wait_command(r.json()["id"], 15)["status"] == "done"
    wait_for(lambda: _device(gw, "drone-3")["status"]["mode"] == "LOITER", 5, "LOITER")
