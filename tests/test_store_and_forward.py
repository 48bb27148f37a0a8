"""Nothing lost: outages, a gateway killed with -9, a broker restart (real Mosquitto, the link emulator, simulated drones)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from tests.conftest import ROOT, free_port, need_binary, start_sim, stop_process, wait_port
from tests.helpers import GatewayProcess, MqttProbe, drone, wait_for, write_kit
from tests.sf_helpers import LinkEmulatorProcess, assert_complete_and_ordered, positions_by_device

DRONES = ("drone-1", "drone-2")


def _fast_drone(dev_id: str, port: int, sysid: int) -> dict:
    d = drone(dev_id, port, sysid)
    d.pop("profile")  # no stream-rate profile: the simulator's own rates (× --rate-scale) stand
    return d


def _start_drones(processes: list, ports: tuple[int, int]) -> None:
    for sysid, port in zip((1, 2), ports):
        sim, _ = start_sim("--sysid", str(sysid), "--udp-out", f"127.0.0.1:{port}", "--rate-scale", "2",
                           "--takeoff-delay", "0.5", "--radius", "30")
        processes.append(sim)


def _outbox(gw: GatewayProcess) -> dict:
    return gw.get("/api/v1/health").json()["outbox"]


def test_outage_of_60_s_loses_nothing(tmp_path: Path, processes: list, mosquitto: str) -> None:
    broker_port = int(mosquitto.rsplit(":", 1)[1])
    link = LinkEmulatorProcess(broker_port)
    processes.append(link.proc)
    ports = (free_port(), free_port())
    kit = write_kit(tmp_path / "kit.yaml", [_fast_drone("drone-1", ports[0], 1), _fast_drone("drone-2", ports[1], 2)])
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_url=link.url)
    processes.append(gw.proc)
    probe = MqttProbe(mosquitto, "fieldgw/v1/test/devices/+/position")  # directly on the broker, never cut
    try:
        _start_drones(processes, ports)
        wait_for(lambda: len(probe.find(lambda t, p: True)) > 40, 15, "positions flowing")
        assert link.command("outage 60")["ok"]
        outage_started = time.monotonic()
        time.sleep(5)
        assert _outbox(gw)["backlog"]["positions"]["messages"] > 50  # kept while the link is down
        wait_for(lambda: time.monotonic() - outage_started > 60 and gw.get("/api/v1/health").json()["status"] != "x", 70, "outage over")
        wait_for(lambda: _outbox(gw)["backlog"]["positions"]["messages"] < 10 and
                 gw.get("/api/v1/health").json()["uplinks"][0]["connected"], 60, "backlog drained")
        time.sleep(1.0)
        per_device = positions_by_device(probe.find(lambda t, p: True))
        assert_complete_and_ordered(per_device, DRONES)
        for dev in DRONES:
            replayed = [p for p in per_device[dev] if p.get("replayed")]
            assert len(replayed) >= 500, f"{dev}: {len(replayed)} replayed positions (10 Hz × 60 s expected)"
            assert not per_device[dev][0].get("replayed")
    finally:
        probe.close()


def test_kill_9_during_an_outage_then_restart_loses_nothing(tmp_path: Path, processes: list, mosquitto: str) -> None:
    broker_port = int(mosquitto.rsplit(":", 1)[1])
    link = LinkEmulatorProcess(broker_port)
    processes.append(link.proc)
    ports = (free_port(), free_port())
    kit = write_kit(tmp_path / "kit.yaml", [_fast_drone("drone-1", ports[0], 1), _fast_drone("drone-2", ports[1], 2)])
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_url=link.url)
    processes.append(gw.proc)
    probe = MqttProbe(mosquitto, "fieldgw/v1/test/devices/+/position")
    try:
        _start_drones(processes, ports)
        wait_for(lambda: len(probe.find(lambda t, p: True)) > 20, 15, "positions flowing")
        link.command("outage 600")
        time.sleep(6)
        waiting = _outbox(gw)["backlog"]["positions"]["messages"]
        assert waiting > 50
        gw.proc.send_signal(signal.SIGKILL)  # power cut
        gw.proc.wait()
        gw2 = GatewayProcess(kit, tmp_path / "data", mqtt_url=link.url)
        processes.append(gw2.proc)
        assert _outbox(gw2)["backlog"]["positions"]["messages"] >= waiting
        time.sleep(2)
        link.command("up")
        wait_for(lambda: _outbox(gw2)["backlog"]["positions"]["messages"] < 10, 30, "backlog drained after restart")
        time.sleep(1.0)
        per_device = positions_by_device(probe.find(lambda t, p: True))
        assert_complete_and_ordered(per_device, DRONES)
        assert sum(1 for p in per_device["drone-1"] if p.get("replayed")) >= 40
    finally:
        probe.close()


def test_broker_restart_during_traffic_loses_nothing(tmp_path: Path, processes: list) -> None:
    binary = need_binary("mosquitto")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text((ROOT / "docs" / "mosquitto.conf").read_text()
                    .replace("listener 1883 127.0.0.1", f"{user}listener {port} 127.0.0.1")
                    .replace("persistence false", f"persistence true\npersistence_location {tmp_path}/\nautosave_interval 1"))
    broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes.append(broker)
    wait_port(port)
    url = f"mqtt://127.0.0.1:{port}"
    # A subscriber with a persistent session: the broker keeps its subscription and queue across the restart.
    got: list = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="sf-probe", clean_session=False)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("fieldgw/v1/test/devices/+/position", qos=1)
    client.on_message = lambda c, u, m: got.append((m.topic, __import__("json").loads(m.payload)))
    client.reconnect_delay_set(0.2, 1.0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    ports = (free_port(), free_port())
    kit = write_kit(tmp_path / "kit.yaml", [_fast_drone("drone-1", ports[0], 1), _fast_drone("drone-2", ports[1], 2)])
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_url=url)
    processes.append(gw.proc)
    try:
        _start_drones(processes, ports)
        wait_for(lambda: len(got) > 40, 15, "positions flowing")
        stop_process(broker)  # SIGTERM: Mosquitto saves its sessions
        time.sleep(3)
        broker2 = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(broker2)
        wait_port(port)
        wait_for(lambda: gw.get("/api/v1/health").json()["uplinks"][0]["connected"], 30, "gateway reconnected")
        wait_for(lambda: _outbox(gw)["backlog"]["positions"]["messages"] < 10, 30, "backlog drained")
        time.sleep(2.0)
        per_device = positions_by_device(list(got))
        assert_complete_and_ordered(per_device, DRONES)
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.mark.parametrize("_", [0])
def test_tiny_disk_cap_drops_only_the_lowest_class_and_acks_survive(_: int, tmp_path: Path, processes: list, mosquitto: str) -> None:
    broker_port = int(mosquitto.rsplit(":", 1)[1])
    link = LinkEmulatorProcess(broker_port)
    processes.append(link.proc)
    ports = (free_port(), free_port())
    kit = write_kit(tmp_path / "kit.yaml", [_fast_drone("drone-1", ports[0], 1), _fast_drone("drone-2", ports[1], 2)],
                    outbox={"cap_mb": 0.03})
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_url=link.url)
    processes.append(gw.proc)
    probe = MqttProbe(mosquitto, "fieldgw/v1/test/devices/#")
    try:
        _start_drones(processes, ports)
        wait_for(lambda: gw.get("/api/v1/devices/drone-1").json()["online"], 10, "online")
        link.command("outage 600")
        time.sleep(1)
        ids = []
        for dev in DRONES:
            for _i in range(3):
                r = gw.post(f"/api/v1/devices/{dev}/commands", {"command": "hold"})
                assert r.status_code == 202
                ids.append(r.json()["id"])
        wait_for(lambda: _outbox(gw)["backlog"]["telemetry"]["dropped"] > 0, 30, "cap reached")
        time.sleep(3)
        ob = _outbox(gw)
        assert ob["backlog"]["urgent"]["dropped"] == 0
        assert ob["bytes"] <= 0.03 * 1024 * 1024 * 1.05 or ob["backlog"]["positions"]["messages"] == 0
        metrics = gw.get("/metrics").text
        assert 'fieldgw_outbox_dropped_total{class="telemetry"}' in metrics
        link.command("up")
        for cmd_id in ids:
            wait_for(lambda c=cmd_id: probe.find(lambda t, p: t.endswith("/acks") and p["id"] == c and p["status"] in ("done", "failed", "timeout")),
                     30, f"ack of {cmd_id}")
        # every command's whole ack history survived: accepted, sent and the final status
        for cmd_id in ids:
            statuses = [p["status"] for t, p in probe.find(lambda t, p, c=cmd_id: t.endswith("/acks") and p["id"] == c)]
            assert statuses[0] == "accepted" and "sent" in statuses
        drop_events = probe.find(lambda t, p: t.endswith("/events") and p.get("type") == "outbox_drop")
        assert drop_events and "dropped" in drop_events[0][1]["text"]
    finally:
        probe.close()


def test_satellite_link_thins_positions_and_critical_events_overtake_the_backlog(tmp_path: Path, processes: list, mosquitto: str) -> None:
    import socket as _socket
    os.environ.setdefault("MAVLINK20", "1")
    from pymavlink.dialects.v20 import ardupilotmega as m2

    broker_port = int(mosquitto.rsplit(":", 1)[1])
    link = LinkEmulatorProcess(broker_port, "--profile", "satcom")
    processes.append(link.proc)
    ports = (free_port(), free_port())
    kit = write_kit(tmp_path / "kit.yaml", [_fast_drone("drone-1", ports[0], 1), _fast_drone("drone-2", ports[1], 2)],
                    uplinks=[{"name": "satcom", "broker": link.url, "budget_kbps": 32}],
                    outbox={"thin_every_s": 5, "thin_after_s": 8})
    gw = GatewayProcess(kit, tmp_path / "data")
    processes.append(gw.proc)
    probe = MqttProbe(mosquitto, "fieldgw/v1/test/devices/#")
    try:
        for sysid, port in zip((1, 2), ports):
            sim, _ = start_sim("--sysid", str(sysid), "--udp-out", f"127.0.0.1:{port}", "--rate-scale", "4", "--takeoff-delay", "0.5")
            processes.append(sim)
        # 2 drones × 20 positions/s is far more than 32 kbit/s: a backlog builds, then thinning holds it
        wait_for(lambda: _outbox(gw)["backlog"]["positions"]["oldest_age_s"] > 10, 40, "a position backlog")
        assert _outbox(gw)["thinned"] > 0
        samples = []
        for _ in range(8):
            time.sleep(2)
            pos = _outbox(gw)["backlog"]["positions"]
            samples.append((pos["messages"], pos["oldest_age_s"]))
        # without thinning the backlog would grow by ~12 positions/s and age without limit
        assert max(n for n, _ in samples) < 400 and max(a for _, a in samples) < 30, f"backlog not bounded: {samples}"
        assert len(probe.find(lambda t, p: t.endswith("/position"))) > 20, "positions keep flowing"

        # a critical event from drone-1 while the backlog is old: it must overtake
        mav = m2.MAVLink(None, srcSystem=1, srcComponent=1)
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        sock.sendto(mav.statustext_encode(m2.MAV_SEVERITY_CRITICAL, b"Battery critical: landing").pack(mav), ("127.0.0.1", ports[0]))
        sent = time.monotonic()
        age_then = _outbox(gw)["backlog"]["positions"]["oldest_age_s"]
        _, ev = probe.wait(lambda t, p: t.endswith("drone-1/events") and "Battery critical" in p.get("text", ""), 15, "critical event")
        took = time.monotonic() - sent
        assert ev["severity"] == "critical"
        assert took < age_then, f"the critical event took {took:.1f} s; positions waited {age_then} s"
        up = gw.get("/api/v1/health").json()["uplinks"][0]
        assert up["budget_kbps"] == 32 and up["name"] == "satcom"
    finally:
        probe.close()


def test_failover_when_the_lte_connection_drops_and_back(tmp_path: Path, processes: list, mosquitto: str) -> None:
    broker_port = int(mosquitto.rsplit(":", 1)[1])
    lte = LinkEmulatorProcess(broker_port, "--profile", "lte-poor")
    sat = LinkEmulatorProcess(broker_port, "--profile", "satcom")
    processes += [lte.proc, sat.proc]
    ports = (free_port(), free_port())
    kit = write_kit(tmp_path / "kit.yaml", [_fast_drone("drone-1", ports[0], 1), _fast_drone("drone-2", ports[1], 2)],
                    uplinks=[{"name": "lte", "broker": lte.url, "priority": 0},
                             {"name": "satcom", "broker": sat.url, "priority": 1, "budget_kbps": 48}])
    gw = GatewayProcess(kit, tmp_path / "data")
    processes.append(gw.proc)
    probe = MqttProbe(mosquitto, "fieldgw/v1/test/devices/+/position")

    def active() -> str | None:
        return next((u["name"] for u in gw.get("/api/v1/health").json()["uplinks"] if u["active"]), None)

    try:
        _start_drones(processes, ports)
        wait_for(lambda: active() == "lte" and len(probe.find(lambda t, p: True)) > 20, 20, "traffic on lte")
        lte.command("outage 600")
        down = time.monotonic()
        wait_for(lambda: active() == "satcom", 5, "failover to satcom")
        assert time.monotonic() - down < 5
        before = sat.command("stats")
        time.sleep(3)
        assert sat.command("stats") != before  # bytes really flow through the satellite link
        lte.command("up")
        wait_for(lambda: active() == "lte", 15, "back on lte")
        wait_for(lambda: _outbox(gw)["backlog"]["positions"]["messages"] < 20, 30, "backlog drained")
        time.sleep(1.5)
        assert_complete_and_ordered(positions_by_device(probe.find(lambda t, p: True)), DRONES)
    finally:
        probe.close()
