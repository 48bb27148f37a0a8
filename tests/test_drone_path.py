"""The drone path end to end: simulator processes → gateway process → MQTT (Mosquitto and embedded) and HTTP."""

from __future__ import annotations

import math
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, start_sim
from tests.helpers import GatewayProcess, MqttProbe, drone, wait_for, write_kit

POSITION_FIELDS = {"id", "ts", "lat", "lon", "alt_m", "heading_deg", "speed_mps", "fix", "source", "seq"}
HOME1 = (30.6586, 104.0648, 500.0)


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dy = (lat2 - lat1) * 111_320.0
    dx = (lon2 - lon1) * 111_320.0 * math.cos(math.radians(lat1))
    return math.hypot(dx, dy)


def _two_drones(tmp_path: Path, processes: list, mqtt_url: str | None) -> tuple[GatewayProcess, str]:
    p1, p2 = free_port(), free_port()
    kit = write_kit(tmp_path / "kit.yaml", [drone("drone-1", p1, 1), drone("drone-2", p2, 2)], command_timeout_s=20)
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_url=mqtt_url)
    processes.append(gw.proc)
    for sysid, port, home in ((1, p1, "30.6586,104.0648,500"), (2, p2, "30.6600,104.0700,505")):
        sim, _ = start_sim("--sysid", str(sysid), "--udp-out", f"127.0.0.1:{port}", "--home", home,
                           "--takeoff-delay", "0.5", "--takeoff-alt", "15", "--radius", "25", "--speed-mps", "12")
        processes.append(sim)
    return gw, gw.mqtt_url


@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_positions_and_retained_state_reach_mqtt(broker: str, tmp_path: Path, processes: list, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("mosquitto") if broker == "mosquitto" else None
    gw, mqtt_url = _two_drones(tmp_path, processes, url)
    probe = MqttProbe(mqtt_url, "fieldgw/v1/test/#")
    try:
        for dev in ("drone-1", "drone-2"):
            topic, pos = probe.wait(lambda t, p, d=dev: t == f"fieldgw/v1/test/devices/{d}/position", 10, f"{dev} position")
            assert POSITION_FIELDS <= set(pos), pos
            assert pos["source"] == "mavlink" and pos["fix"] == "3d"
            assert abs(pos["lat"] - (HOME1[0] if dev == "drone-1" else 30.66)) < 0.01
            assert isinstance(pos["ts"], int) and abs(pos["ts"] / 1000 - time.time()) < 5
        # seq is +1 per position, per device
        time.sleep(1.0)
        seqs = [p["seq"] for t, p in probe.find(lambda t, p: t.endswith("drone-1/position"))]
        assert len(seqs) >= 3 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        telemetry = probe.wait(lambda t, p: t.endswith("drone-1/telemetry"), 5, "telemetry")[1]
        assert {"id", "ts", "values"} <= set(telemetry) and "battery_pct" in telemetry["values"]
    finally:
        probe.close()
    # A subscriber that arrives later gets the retained gateway status and device states.
    late = MqttProbe(mqtt_url, "fieldgw/v1/test/+/+/state")
    status_probe = MqttProbe(mqtt_url, "fieldgw/v1/test/gateway/status")
    try:
        for dev in ("drone-1", "drone-2"):
            _, state = late.wait(lambda t, p, d=dev: t.endswith(f"{d}/state") and p["online"], 5, f"{dev} retained online")
            assert state["kind"] == "uav" and "rtl" in state["commands"] and state["status"]["mode"]
        assert any(r for t, p, r, _ in late.messages if t.endswith("drone-1/state"))
        # (filter by topic: amqtt was seen delivering other topics' retained messages to a new subscriber)
        _, status = status_probe.wait(lambda t, p: t.endswith("gateway/status"), 5, "gateway status")
        assert status["state"] == "online" and "version" in status, status
    finally:
        late.close()
        status_probe.close()
    assert gw.stop() == 0
    # the clean stop leaves the retained status offline, and every device's state with it
    if broker == "mosquitto":
        after = MqttProbe(mqtt_url, "fieldgw/v1/test/#")
        try:
            _, status = after.wait(lambda t, p: t.endswith("gateway/status"), 5, "gateway status after stop")
            assert status["state"] == "offline"
            for dev in ("drone-1", "drone-2"):
                _, state = after.wait(lambda t, p, d=dev: t.endswith(f"{d}/state"), 5, f"{dev} state after stop")
                assert state["online"] is False
        finally:
            after.close()


def test_rtl_over_http_and_mqtt_and_bad_commands(tmp_path: Path, processes: list, mosquitto: str) -> None:
    gw, mqtt_url = _two_drones(tmp_path, processes, mosquitto)
    probe = MqttProbe(mqtt_url, "fieldgw/v1/test/#")
    try:
        # wait until both are flying away from home
        def airborne(dev_id: str, home_alt: float) -> bool:
            dev = gw.get(f"/api/v1/devices/{dev_id}").json()
            return bool(dev["status"].get("armed")) and (dev["position"] or {}).get("alt_m", 0) > home_alt + 5
        wait_for(lambda: airborne("drone-1", 500) and airborne("drone-2", 505), 20, "both drones airborne")

        # --- refusals: nothing reaches a vehicle ---
        r = gw.post("/api/v1/devices/drone-1/commands", {"command": "barrel_roll"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_command"
        r = gw.post("/api/v1/devices/drone-1/commands", {"command": "goto", "args": {"lat": 95, "lon": 104, "alt_m": 550}})
        assert r.status_code == 400 and "lat" in r.json()["error"]["message"]
        r = gw.post("/api/v1/devices/drone-1/commands", {"command": "goto", "args": {"lat": "north", "lon": 104, "alt_m": 550}})
        assert r.status_code == 400
        r = gw.post("/api/v1/devices/drone-1/commands", {"command": "goto", "args": {"lat": 30.66, "lon": 104.06, "alt_m": 10}})
        assert r.status_code == 400 and "home altitude" in r.json()["error"]["message"]
        r = gw.post("/api/v1/devices/drone-1/commands", {"command": "set_mode", "args": {"mode": "WARP"}})
        assert r.status_code == 400
        r = gw.post("/api/v1/devices/nobody/commands", {"command": "rtl"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "no_device"
        r = httpx.post(gw.base + "/api/v1/devices/drone-1/commands", content=b"{not json", headers=gw.headers)
        assert r.status_code == 400

        # --- rtl over HTTP ---
        r = gw.post("/api/v1/devices/drone-1/commands", {"command": "rtl"})
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["status"] == "accepted"
        record = gw.wait_command(body["id"], 25)
        assert record["status"] == "done", record
        assert record["command"] == "rtl" and record["device"] == "drone-1" and record["ts_done"] >= record["ts_issued"]
        assert "MAV_RESULT_ACCEPTED" in record["detail"]

        # --- rtl over MQTT, with the client's id ---
        probe.publish("fieldgw/v1/test/devices/drone-2/commands", {"id": "c2-rtl", "command": "rtl", "args": {}})
        _, ack = probe.wait(lambda t, p: t.endswith("drone-2/acks") and p["id"] == "c2-rtl" and p["status"] == "done", 25, "mqtt rtl done")
        statuses = [p["status"] for t, p in probe.find(lambda t, p: t.endswith("drone-2/acks") and p["id"] == "c2-rtl")]
        assert statuses[0] == "accepted" and statuses[-1] == "done"
        assert gw.get("/api/v1/commands/c2-rtl").json()["status"] == "done"

        # --- malformed and out-of-range MQTT commands get a rejected ack ---
        probe.publish("fieldgw/v1/test/devices/drone-2/commands", b"\xff not json")
        probe.wait(lambda t, p: t.endswith("drone-2/acks") and p["status"] == "rejected" and "JSON" in p["detail"], 5, "rejected malformed")
        probe.publish("fieldgw/v1/test/devices/drone-2/commands", {"id": "c2-bad", "command": "goto", "args": {"lat": 30.6, "lon": 190, "alt_m": 600}})
        _, ack = probe.wait(lambda t, p: t.endswith("drone-2/acks") and p["id"] == "c2-bad", 5, "rejected goto")
        assert ack["status"] == "rejected" and "lon" in ack["detail"]

        # --- the drone really flies home and lands ---
        def landed_home() -> bool:
            dev = gw.get("/api/v1/devices/drone-1").json()
            pos = dev["position"]
            return (not dev["status"]["armed"] and _distance_m(pos["lat"], pos["lon"], HOME1[0], HOME1[1]) < 5
                    and pos["alt_m"] < HOME1[2] + 1.0)
        wait_for(landed_home, 45, "drone-1 landed at home")
        # the API knows at once; the events travel through the outbox and the broker
        probe.wait(lambda t, p: t.endswith("drone-1/events") and p["type"] == "disarmed", 10, "disarmed event")
        events = [p for t, p in probe.find(lambda t, p: t.endswith("drone-1/events"))]
        assert any(e["type"] == "mode" and "RTL" in e["text"] for e in events)
    finally:
        probe.close()


def test_offline_on_kill_and_back_without_restart(tmp_path: Path, processes: list, mosquitto: str) -> None:
    port = free_port()
    kit = write_kit(tmp_path / "kit.yaml", [drone("drone-1", port, 1)])
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_url=mosquitto)
    processes.append(gw.proc)
    probe = MqttProbe(mosquitto, "fieldgw/v1/test/#")
    args = ("--sysid", "1", "--udp-out", f"127.0.0.1:{port}", "--no-autostart")
    try:
        sim, _ = start_sim(*args)
        processes.append(sim)
        wait_for(lambda: gw.get("/api/v1/devices/drone-1").json()["online"], 10, "online")
        probe.wait(lambda t, p: t.endswith("drone-1/state") and p["online"] is True, 5, "retained online")
        sim.kill()
        killed = time.monotonic()
        probe.wait(lambda t, p: t.endswith("drone-1/state") and p["online"] is False, 6, "retained offline", since=killed)
        assert time.monotonic() - killed < 5.0
        _, ev = probe.wait(lambda t, p: t.endswith("drone-1/events") and p["type"] == "offline", 2, "offline event", since=killed)
        assert ev["severity"] == "warning" and "HEARTBEAT" in ev["text"]
        assert gw.get("/api/v1/health").json()["status"] == "degraded"
        r = gw.post("/api/v1/devices/drone-1/commands", {"command": "rtl"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "device_offline"
        restarted = time.monotonic()
        sim2, _ = start_sim(*args)
        processes.append(sim2)
        probe.wait(lambda t, p: t.endswith("drone-1/state") and p["online"] is True, 10, "back online", since=restarted)
        probe.wait(lambda t, p: t.endswith("drone-1/events") and p["type"] == "online", 2, "online event", since=restarted)
        assert gw.proc.poll() is None
    finally:
        probe.close()
