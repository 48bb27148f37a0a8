"""HTTP API details: SSE events, metrics, error shapes (CONTRACT.md §2)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.conftest import free_port, start_sim
from tests.helpers import GatewayProcess, drone, wait_for, write_kit


def test_events_metrics_and_errors(tmp_path: Path, processes: list) -> None:
    port = free_port()
    kit = write_kit(tmp_path / "kit.yaml", [drone("drone-1", port, 1)])
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_port=free_port())
    processes.append(gw.proc)
    sim, _ = start_sim("--sysid", "1", "--udp-out", f"127.0.0.1:{port}", "--no-autostart")
    processes.append(sim)
    wait_for(lambda: gw.get("/api/v1/devices/drone-1").json()["online"], 10, "online")

    kinds: dict[str, dict] = {}
    with httpx.stream("GET", gw.base + "/api/v1/events", timeout=10, headers=gw.headers) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in resp.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event:
                data = json.loads(line[6:])
                kinds.setdefault("history" if data.get("history") else event, data)
                if {"state", "position", "history"} <= set(kinds):
                    break
    assert kinds["state"]["id"] == "drone-1" and kinds["state"]["online"] is True
    # what happened before this client connected (the drone coming online) is replayed first, marked
    assert kinds["history"]["device"] == "drone-1" and kinds["history"]["type"] == "online"
    assert kinds["position"]["device"] == "drone-1" and kinds["position"]["source"] == "mavlink"

    metrics = gw.get("/metrics")
    assert metrics.status_code == 200
    assert 'fieldgw_device_online{device="drone-1",kind="uav"} 1.0' in metrics.text
    assert "fieldgw_link_frames_total" in metrics.text

    for path, code in (("/api/v1/devices/nope", "no_device"), ("/api/v1/commands/nope", "no_command"), ("/api/v1/nothing", "not_found")):
        r = gw.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == code, (path, r.text)
    r = gw.post("/api/v1/devices/drone-1/commands", [1, 2])
    assert r.status_code == 400 and set(r.json()["error"]) == {"code", "message"}
    health = gw.get("/api/v1/health").json()
    assert health["devices"] == {"online": 1, "total": 1} and health["uplinks"][0]["connected"] is True
