"""The audit trail end to end: commands and dispatches over HTTP and MQTT land in the log with who,
where and the outcome; `GET /api/v1/audit` shows them to admins only; an edited record fails
`fieldgw audit verify`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.auth import bearer
from tests.conftest import ROOT, free_port, start_sim
from tests.helpers import GatewayProcess, MqttProbe, drone, wait_for, write_kit


def _records(gw: GatewayProcess, **match: Any) -> list[dict[str, Any]]:
    body = gw.get("/api/v1/audit?limit=200").json()
    assert body["verified"], body["problems"]
    return [r for r in body["records"] if all(r.get(k) == v or r["detail"].get(k) == v for k, v in match.items())]


def _verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "verify", "--data-dir", str(data_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_commands_and_dispatches_are_audited_with_their_user(tmp_path: Path, processes: list) -> None:
    port = free_port()
    kit = write_kit(tmp_path / "kit.yaml", [drone("drone-1", port, 1)])
    data = tmp_path / "data"
    gw = GatewayProcess(kit, data)
    processes.append(gw.proc)
    sim, _ = start_sim("--sysid", "1", "--udp-out", f"127.0.0.1:{port}", "--takeoff-delay", "0.5")
    processes.append(sim)
    operator = bearer(data, "operator")
    copies = MqttProbe(gw.mqtt_url, "fieldgw/v1/test/gateway/audit")  # the centre's copy of the chain
    wait_for(lambda: gw.get("/api/v1/devices/drone-1").json()["online"], 15, "drone online")

    r = httpx.post(gw.base + "/api/v1/devices/drone-1/commands", json={"command": "hold"}, headers=operator, timeout=10)
    assert r.status_code == 202, r.text
    cmd_id = r.json()["id"]
    final = gw.wait_command(cmd_id)
    refused = httpx.post(gw.base + "/api/v1/devices/nobody/commands", json={"command": "hold"}, headers=operator, timeout=10)
    assert refused.status_code == 404
    bad_dispatch = httpx.post(gw.base + "/api/v1/dispatch", json={"text": "go", "targets": ["nobody"]}, headers=operator, timeout=10)
    assert bad_dispatch.status_code == 400
    probe = MqttProbe(gw.mqtt_url, "fieldgw/v1/test/devices/drone-1/acks")
    try:
        probe.publish("fieldgw/v1/test/devices/drone-1/commands", {"id": "centre-7", "command": "hold"})
        probe.wait(lambda t, p: p["id"] == "centre-7" and p["status"] == "done", 20, "MQTT command done")
    finally:
        probe.close()

    asked = wait_for(lambda: _records(gw, action="command", id=cmd_id) or None, 5, "the command's record")[0]
    assert (asked["user"], asked["role"], asked["address"], asked["outcome"]) == ("test-operator", "operator", "127.0.0.1", "accepted")
    assert asked["target"] == "drone-1" and asked["detail"]["command"] == "hold"
    result = wait_for(lambda: _records(gw, action="command_result", id=cmd_id) or None, 5, "the command's result")[0]
    assert result["user"] == "test-operator" and result["outcome"] == final["status"] == "done"
    nobody = _records(gw, action="command", target="nobody")[0]
    assert nobody["outcome"] == "refused" and "nobody" in nobody["detail"]["reason"]
    dispatch = _records(gw, action="dispatch")[0]
    assert dispatch["outcome"] == "refused" and dispatch["user"] == "test-operator" and dispatch["detail"]["text"] == "go"
    mqtt = wait_for(lambda: _records(gw, action="command_result", id="centre-7") or None, 5, "MQTT command result")[0]
    assert mqtt["user"] == "mqtt" and mqtt["outcome"] == "done"
    assert httpx.get(gw.base + "/api/v1/audit", headers=operator, timeout=10).status_code == 403
    # every record also went to the centre, as written: same seq, prev and hash
    on_disk = {r["seq"]: r for r in gw.get("/api/v1/audit?limit=200").json()["records"]}
    copies.wait(lambda t, p: p["seq"] == max(on_disk), 10, "the newest audit record on MQTT")
    got = {p["seq"]: p for _, p in copies.find(lambda t, p: True)}
    copies.close()
    assert set(got) == set(on_disk)
    for seq, rec in on_disk.items():
        assert {k: got[seq][k] for k in rec} == rec and got[seq]["id"].startswith(f"audit-{seq}-")
    assert gw.stop() == 0

    ok = _verify(data)
    assert ok.returncode == 0 and "ok" in ok.stdout, ok.stderr
    log = data / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if f'"id":"{cmd_id}"' in line and '"action":"command"' in line)
    lines[n] = lines[n].replace('"command":"hold"', '"command":"land"')
    log.write_text("".join(lines))
    broken = _verify(data)
    assert broken.returncode == 1 and f"line {n + 1}: hash mismatch" in broken.stderr, broken.stderr
