"""One-key dispatch through `fieldgw demo`: one order over HTTP and MQTT reaches
every simulated team over its own channel (TETRA SDS, BeiDou short message,
Iridium SBD), with an Iridium failure retried, the BeiDou card's service
interval respected, and a radio unplugged mid-dispatch."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import GatewayProcess, MqttProbe, wait_for
from tests.procs import ROOT, drone, free_port, stop_process, write_kit
from tests.serial_sims import control_port

pytestmark = pytest.mark.demo  # the demo's simulators use fixed ports: one demo at a time (Makefile)

# demo.yaml's simulator control ports
TETRA, BEIDOU, IRIDIUM = 19301, 19302, 19303
API = httpx.Client(timeout=10)  # as the demo's operator (its token is set once the demo runs)
ORDER = "全体注意：立即撤离到二号高地集结"


def sim(port: int, line: str) -> dict[str, Any]:
    return control_port(("127.0.0.1", port), line)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("dispatch-demo")
    http_port, mqtt_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo", "--data-dir", str(tmp / "data"),
                             "--http-port", str(http_port), "--mqtt-port", str(mqtt_port),
                             "--gcs", f"udp://127.0.0.1:{free_port()}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=(tmp / "demo.log").open("wb"), text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready and "fieldgw demo is running" in proc.stdout.readline(), (tmp / "demo.log").read_text()[-3000:]
        base = f"http://127.0.0.1:{http_port}"
        API.headers["Authorization"] = "Bearer " + json.loads((tmp / "data" / "demo-credentials.json").read_text())["operator"]

        def online(*ids: str) -> bool:
            devs = {d["id"]: d["online"] for d in API.get(base + "/api/v1/devices").json()}
            return all(devs.get(i) for i in ids)

        wait_for(lambda: online("radio-gw", "bd-gw", "sbd-gw", "rescue-group-1003"), 30,
                 "the demo's radio and satellite modems online, and a radio of the talk group heard")
        yield {"base": base, "mqtt": f"mqtt://127.0.0.1:{mqtt_port}", "proc": proc, "log": tmp / "demo.log"}
    finally:
        stop_process(proc)  # type: ignore[arg-type]


def wait_dispatch(base: str, dispatch_id: str, timeout: float, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return wait_for(lambda: (d := API.get(f"{base}/api/v1/dispatch/{dispatch_id}", headers=headers).json()).get("done") and d,
                    timeout, f"dispatch {dispatch_id} done", interval=0.3)


def test_dispatch_to_all_reaches_every_channel(demo: dict[str, Any]) -> None:
    base = demo["base"]
    for port in (TETRA, BEIDOU, IRIDIUM):
        sim(port, "received clear")
    assert sim(IRIDIUM, "fail 18 1")["ok"]  # the first Iridium session drops: the driver retries
    probe = MqttProbe(demo["mqtt"], "fieldgw/v1/demo/dispatch/acks")
    try:
        r = API.post(base + "/api/v1/dispatch", json={"text": ORDER, "targets": "all", "priority": "flash"})
        assert r.status_code == 202, r.text
        body = r.json()
        channels = {d["device"]: d["channel"] for d in body["deliveries"]}
        # rescue-group-1003: a radio of the rescue talk group the kit does not list, heard and added by itself;
        # the talk group is not a target of "all" (its members are)
        assert channels == {"team-1": "tetra_sds", "team-2": "tetra_sds", "rescue-group-1003": "tetra_sds",
                            "team-1-bd": "beidou", "team-3": "beidou", "team-4": "sbd"}
        done = wait_dispatch(base, body["id"], 90)
        statuses = {d["device"]: (d["status"], d["detail"]) for d in done["deliveries"]}
        assert all(s == "delivered" for s, _ in statuses.values()), statuses
        probe.wait(lambda t, p: p.get("id") == body["id"] and p.get("done"), 10, "dispatch/acks shows it done")
        acks = [p for _, p in probe.find(lambda t, p: p.get("id") == body["id"])]
        assert not acks[0].get("partial") and acks[0]["text"] == ORDER and len(acks[0]["deliveries"]) == 6
        partial = [a for a in acks if a.get("partial")]
        assert partial and all(len(a["deliveries"]) < 6 for a in partial)  # only what changed, between
        assert not acks[-1].get("partial") and {d["status"] for d in acks[-1]["deliveries"]} == {"delivered"}
    finally:
        probe.close()
    tetra = sim(TETRA, "received")["messages"]
    assert sorted(m["to"] for m in tetra) == [1001, 1002, 1003] and all(m["text"] == ORDER for m in tetra)
    beidou = sim(BEIDOU, "received")["messages"]
    assert sorted(m["to"] for m in beidou) == ["0200002", "0200003"]
    assert all(bytes.fromhex(m["hex"]) == ORDER.encode("gb18030") for m in beidou)
    bd_stats = sim(BEIDOU, "stats")
    assert not any(k.startswith("refused_") and "interval" in k for k in bd_stats), bd_stats
    times = sorted(m["ts"] for m in beidou)
    assert times[1] - times[0] >= 9.5, "the card's 10 s service interval was respected"
    sbd = sim(IRIDIUM, "received")["messages"]
    assert len(sbd) == 1
    payload = bytes.fromhex(sbd[0]["hex"])
    assert payload[0] == 0x04 and payload[2:2 + payload[1]] == b"team-4" and payload[2 + payload[1]:].decode() == ORDER
    codes = [s["mo_status"] for s in sim(IRIDIUM, "stats")["session_log"] if s.get("mo_length")]
    assert 18 in codes and codes[-1] <= 4, codes


def test_dispatch_over_mqtt_and_bad_orders(demo: dict[str, Any]) -> None:
    base = demo["base"]
    for bad, code in [({"text": "", "targets": "all"}, "empty_text"), ({"text": "x", "targets": ["team-99"]}, "unknown_target"),
                      ({"text": "x" * 3000, "targets": "all"}, "text_too_long")]:
        r = API.post(base + "/api/v1/dispatch", json=bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == code
    r = API.post(base + "/api/v1/dispatch", json={"text": "drone, hold", "targets": ["drone-1"]})
    assert r.status_code == 202 and r.json()["deliveries"][0]["status"] == "failed"
    probe = MqttProbe(demo["mqtt"], "fieldgw/v1/demo/dispatch/acks")
    try:
        sim(TETRA, "received clear")
        probe.publish("fieldgw/v1/demo/dispatch", {"id": "order-77", "text": "Team 2: medical drop at the bridge",
                                                   "targets": ["team-2"]})
        probe.publish("fieldgw/v1/demo/dispatch", {"id": "order-77", "text": "Team 2: medical drop at the bridge",
                                                   "targets": ["team-2"]})  # a redelivery: not sent twice
        probe.wait(lambda t, p: p.get("id") == "order-77" and p.get("done"), 30, "the MQTT dispatch done")
        probe.publish("fieldgw/v1/demo/dispatch", b"{not json")
        probe.wait(lambda t, p: p.get("status") == "rejected" and "JSON" in p.get("detail", ""), 10, "a rejection")
        probe.publish("fieldgw/v1/demo/dispatch", {"id": "order-78", "text": "x", "targets": "everyone"})
        probe.wait(lambda t, p: p.get("id") == "order-78" and p.get("status") == "rejected", 10, "bad targets rejected")
    finally:
        probe.close()
    got = API.get(base + "/api/v1/dispatch/order-77").json()
    assert got["deliveries"][0]["status"] == "delivered" and got["issued_by"] == "mqtt"
    assert [m["text"] for m in sim(TETRA, "received")["messages"]] == ["Team 2: medical drop at the bridge"]


def test_unplugged_radio_delivers_after_it_returns(demo: dict[str, Any]) -> None:
    base = demo["base"]
    sim(TETRA, "received clear")
    assert sim(TETRA, "unplug 3")["ok"]
    wait_for(lambda: not {d["id"]: d["online"] for d in API.get(base + "/api/v1/devices").json()}["radio-gw"],
             10, "radio-gw offline")
    # team-2 has only its TETRA radio (team-1 would go over its BeiDou handheld while the radio is out)
    r = API.post(base + "/api/v1/dispatch", json={"text": "Team 2: regroup at the school", "targets": ["team-2"]})
    assert r.status_code == 202
    time.sleep(0.5)
    assert API.get(f"{base}/api/v1/dispatch/{r.json()['id']}").json()["deliveries"][0]["status"] == "queued"
    done = wait_dispatch(base, r.json()["id"], 40)
    assert done["deliveries"][0]["status"] == "delivered"
    assert [m["text"] for m in sim(TETRA, "received")["messages"]] == ["Team 2: regroup at the school"]
    assert done["deliveries"][0]["channel"] == "tetra_sds"


def test_a_team_with_two_terminals_gets_the_order_over_the_one_that_works(demo: dict[str, Any]) -> None:
    base = demo["base"]
    sim(BEIDOU, "received clear")
    assert sim(TETRA, "unplug 4")["ok"]
    wait_for(lambda: not {d["id"]: d["online"] for d in API.get(base + "/api/v1/devices").json()}["radio-gw"],
             10, "radio-gw offline")
    r = API.post(base + "/api/v1/dispatch", json={"text": "队1：改走北侧便道", "targets": ["team-1"]})
    assert r.status_code == 202 and r.json()["deliveries"][0]["channel"] == "beidou"
    done = wait_dispatch(base, r.json()["id"], 40)
    assert done["deliveries"][0]["status"] == "delivered"
    assert [m["to"] for m in sim(BEIDOU, "received")["messages"]] == ["0200002"]


def test_text_command_on_a_radio_goes_the_same_path(demo: dict[str, Any]) -> None:
    base = demo["base"]
    wait_for(lambda: {d["id"]: d["online"] for d in API.get(base + "/api/v1/devices").json()}["radio-gw"],
             20, "radio-gw back online after the earlier unplug")
    sim(TETRA, "received clear")
    r = API.post(base + "/api/v1/devices/radio-gw/commands", json={"command": "text", "args": {"to": "team-2", "text": "收到请回复"}})
    assert r.status_code == 202, r.text
    record = wait_for(lambda: (c := API.get(f"{base}/api/v1/commands/{r.json()['id']}").json())["status"]
                      in ("done", "failed", "timeout") and c, 30, "text command final")
    assert record["status"] == "done" and "delivered to 1002" in record["detail"]
    assert [m["text"] for m in sim(TETRA, "received")["messages"]] == ["收到请回复"]
    bad = API.post(base + "/api/v1/devices/radio-gw/commands", json={"command": "text", "args": {"to": "nobody", "text": "x"}})
    assert bad.status_code == 400 and "neither a device" in bad.json()["error"]["message"]


def test_orders_to_a_device_with_an_ip_path_go_over_mqtt(tmp_path: Path) -> None:
    kit = write_kit(tmp_path / "kit.yaml", [{**drone("drone-1", free_port(), 1), "dispatch_mqtt": True}])
    gw = GatewayProcess(kit, tmp_path / "data")
    probe = MqttProbe(gw.mqtt_url, "fieldgw/v1/test/devices/drone-1/orders")
    try:
        r = gw.post("/api/v1/dispatch", {"text": "RTB now", "targets": "all", "priority": "flash"})
        assert r.status_code == 202 and r.json()["deliveries"] == [  # in the durable outbox already
            {"device": "drone-1", "channel": "mqtt", "status": "sent", "detail": "handed to the uplink's outbox"}]
        _, order = probe.wait(lambda t, p: p.get("text") == "RTB now", 10, "the order on devices/drone-1/orders")
        assert order["dispatch"] == r.json()["id"] and order["priority"] == "flash"
        done = wait_dispatch(gw.base, r.json()["id"], 10, gw.headers)
        assert done["deliveries"][0]["status"] == "delivered" and "broker" in done["deliveries"][0]["detail"]
    finally:
        probe.close()
        gw.stop()


def test_team_positions_reach_mqtt_with_their_source(demo: dict[str, Any]) -> None:
    """Every team shows up on the map, whatever its only channel is."""
    want = {"team-1": "lip", "rescue-group-1003": "lip", "team-3": "beidou", "team-4": "sbd", "bd-gw": "beidou",
            "bgan-1": "bgan"}
    probe = MqttProbe(demo["mqtt"], "fieldgw/v1/demo/devices/+/position")
    try:
        for dev, source in want.items():
            probe.wait(lambda t, p, d=dev, s=source: t.endswith(f"/{d}/position") and p["source"] == s
                       and isinstance(p["seq"], int) and -90 <= p["lat"] <= 90, 45, f"{dev} position from {source}")
    finally:
        probe.close()


def test_power_telemetry_on_mqtt_matches_the_simulated_batteries(demo: dict[str, Any]) -> None:
    """The demo kit's EPEVER (RTU on a pty) and Victron GX (TCP): values on MQTT equal the model within scaling."""
    for port, unit, dev in ((19306, 1, "solar-1"), (19307, 100, "camp-power")):
        assert sim(port, "hold on")["ok"]  # the model stands still, so a poll reads exactly these values
        try:
            model = sim(port, f"values {unit}")
            probe = MqttProbe(demo["mqtt"], f"fieldgw/v1/demo/devices/{dev}/telemetry")
            try:
                since = time.monotonic() + 0.5  # a poll already on the wire when the model stopped is skipped
                _, t = probe.wait(lambda t, p: "battery_v" in p["values"], 20, f"{dev} telemetry", since=since)
            finally:
                probe.close()
            v = t["values"]
            assert abs(v["battery_v"] - model["battery_v"]) <= 0.1, (v, model)
            assert abs(v["soc_pct"] - model["soc"]) <= 1.0
        finally:
            sim(port, "hold off")
    kit = API.get(demo["base"] + "/api/v1/health").json()["kit"]
    assert kit["devices_total"] >= 15 and kit["streams_total"] >= 2
    assert {"solar-1", "camp-power"} <= set(kit["batteries"])  # their SOC readings feed the battery time left


def test_the_gateway_audits_profiles_at_start_and_reports_drift(demo: dict[str, Any]) -> None:
    """The demo drones were never configured: their parameters differ from firmware_configs/mavlink/arducopter.yaml."""
    status = wait_for(lambda: (s := API.get(demo["base"] + "/api/v1/devices/drone-1").json()["status"]).get("config") and s,
                      30, "drone-1's configuration audited")
    assert status["config"].endswith("differ")


def test_the_lte_router_reports_over_snmp_and_its_link_traps_become_events(demo: dict[str, Any]) -> None:
    base = demo["base"]
    dev = wait_for(lambda: (d := API.get(base + "/api/v1/devices/lte-router").json())["online"] and d, 30, "router online")
    assert dev["kind"] == "network" and dev["status"]["interfaces"].get("wwan0") == "up"
    probe = MqttProbe(demo["mqtt"], "fieldgw/v1/demo/devices/lte-router/events")
    try:
        assert sim(19308, "link 2 down")["ok"]
        probe.wait(lambda t, p: p["type"] == "interface" and p["severity"] == "warning", 15, "link-down event from the trap")
    finally:
        sim(19308, "link 2 up")
        probe.close()
