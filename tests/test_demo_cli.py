"""`fieldgw demo` and `fieldgw sim`: real processes, started and stopped the way a newcomer does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port, stop_process
from tests.helpers import MqttProbe, wait_for

pytestmark = pytest.mark.demo  # the demo's simulators use fixed ports: one demo at a time (Makefile)


def _children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return {int(x) for x in out.stdout.split()}


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_demo_runs_everything_and_stops_everything(broker: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    http_port, mqtt_port = free_port(), free_port()
    args = [sys.executable, "-m", "gateway.cli", "demo", "--data-dir", str(tmp_path / "data"),
            "--http-port", str(http_port), "--mqtt-port", str(mqtt_port), "--gcs", f"udp://127.0.0.1:{free_port()}"]
    mqtt_url = f"mqtt://127.0.0.1:{mqtt_port}"
    if broker == "mosquitto":
        mqtt_url = request.getfixturevalue("mosquitto")
        args += ["--mqtt", mqtt_url]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(5)]
        assert "fieldgw demo is running" in banner[0]
        assert f"http://127.0.0.1:{http_port}/api/v1/health" in "".join(banner)
        assert f"console   http://127.0.0.1:{http_port}/" in "".join(banner)
        tokens = json.loads((tmp_path / "data" / "demo-credentials.json").read_text())
        assert set(tokens) == {"viewer", "operator", "admin"}
        assert oct((tmp_path / "data" / "demo-credentials.json").stat().st_mode & 0o777) == "0o600"
        api = httpx.Client(headers={"Authorization": "Bearer " + tokens["viewer"]}, timeout=10)
        sims = _children(proc.pid)
        assert len(sims) >= 2, "each simulator is its own process"
        base = f"http://127.0.0.1:{http_port}"
        def online(*ids: str) -> bool:
            devs = {d["id"]: d["online"] for d in api.get(base + "/api/v1/devices").json()}
            return all(devs.get(i) for i in ids)

        wait_for(lambda: online("drone-1", "drone-2"), 15, "both demo drones online")
        # radios and satellite terminals, and the teams heard through them (LIP every 5 s, BeiDou every 10 s)
        wait_for(lambda: online("radio-gw", "bd-gw", "sbd-gw", "starlink-1", "bgan-1", "team-1", "team-2", "team-3"),
                 30, "the demo's radio and satellite devices online")
        probe = MqttProbe(mqtt_url, "fieldgw/v1/demo/#")
        try:
            for dev in ("drone-1", "drone-2"):
                probe.wait(lambda t, p, d=dev: t.endswith(f"{d}/position") and p["fix"] == "3d", 10, f"{dev} position")
        finally:
            probe.close()
        # video: the dome camera, the body-worn transmitter and the drone's own camera (announced over MAVLink)
        def streams_live() -> bool:
            listed = {st["id"]: st["state"] for st in api.get(base + "/api/v1/streams").json()}
            return all(listed.get(k) == "live" for k in ("dome-1", "bodycam-1", "drone-1-video1"))
        wait_for(streams_live, 25, "demo streams live")
        assert api.get(base + "/api/v1/streams/dome-1/snapshot.jpg").headers["content-type"] == "image/jpeg"
        # each demo token carries its role: the viewer may look, not command; the operator may command
        rtl = {"command": "hold"}
        assert api.post(base + "/api/v1/devices/drone-1/commands", json=rtl).status_code == 403
        assert httpx.get(base + "/api/v1/devices", timeout=10).status_code == 401
        as_operator = {"Authorization": "Bearer " + tokens["operator"]}
        assert httpx.post(base + "/api/v1/devices/drone-1/commands", json=rtl, headers=as_operator, timeout=10).status_code == 202
        info = json.loads((tmp_path / "data" / "demo.json").read_text())
        assert info["mqtt_root"] == "fieldgw/v1/demo"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(6) == 0
        assert time.monotonic() - t0 < 5.0
        for pid in sims:
            assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower(), f"simulator {pid} left running"
    finally:
        stop_process(proc)  # type: ignore[arg-type]


def test_fieldgw_sim_uav_runs_the_simulator(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "sim", "uav", "--udp-listen", "127.0.0.1:0", "--print-port"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        ports = json.loads(proc.stdout.readline())
        assert ports["udp_listen"][1] > 0
    finally:
        assert stop_process(proc) == 0
    bad = subprocess.run([sys.executable, "-m", "gateway.cli", "sim", "teleporter"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown simulator" in bad.stderr
