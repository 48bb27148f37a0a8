"""`fieldgw config audit / apply` against the copter simulator's parameter store (PARAM_SET read back)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from pymavlink import mavutil

from tests.procs import ROOT, stop_process, write_kit

PROFILE_PARAMS = {"RTL_ALT", "FENCE_ENABLE", "FENCE_RADIUS", "FENCE_ALT_MAX", "FS_BATT_ENABLE"}


def fieldgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=90)


def test_audit_apply_and_drift(tmp_path: Path) -> None:
    sim = subprocess.Popen([sys.executable, "-m", "hil.uav", "--sysid", "3", "--udp-listen", "127.0.0.1:0", "--print-port"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert sim.stdout is not None
        port = json.loads(sim.stdout.readline())["udp_listen"][1]
        kit = write_kit(tmp_path / "kit.yaml", [{"id": "drone-3", "driver": "mavlink", "transport": f"udp://127.0.0.1:{port}",
                                                 "profile": "mavlink/arducopter.yaml", "options": {"system_id": 3}}])
        before = fieldgw("config", "audit", str(kit), "--timeout", "20")
        assert before.returncode == 1, before.stdout + before.stderr
        assert "drone-3:" in before.stdout and {p for p in PROFILE_PARAMS if p in before.stdout} == PROFILE_PARAMS

        applied = fieldgw("config", "apply", str(kit), "drone-3", "--timeout", "20")
        assert applied.returncode == 0 and "applied; matches its profile" in applied.stdout, applied.stdout + applied.stderr
        again = fieldgw("config", "audit", str(kit), "--timeout", "20")
        assert again.returncode == 0 and "matches its profile" in again.stdout, again.stdout + again.stderr

        # someone changes a parameter on the vehicle (a ground station, say): the audit names it
        gcs = mavutil.mavlink_connection(f"udpout:127.0.0.1:{port}", source_system=200, source_component=190)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                gcs.mav.param_set_send(3, 1, b"FENCE_RADIUS", 250.0, mavutil.mavlink.MAV_PARAM_TYPE_REAL32)
                msg = gcs.recv_match(type="PARAM_VALUE", blocking=True, timeout=1)
                if msg is not None and msg.param_id == "FENCE_RADIUS" and msg.param_value == 250.0:
                    break
            else:
                raise AssertionError("the simulator never took the PARAM_SET")
        finally:
            gcs.close()
        drift = fieldgw("config", "audit", str(kit), "--timeout", "20")
        assert drift.returncode == 1 and "FENCE_RADIUS: profile 800.0, device 250.0" in drift.stdout, drift.stdout
        assert "RTL_ALT" not in drift.stdout
        assert fieldgw("config", "audit", str(kit), "drone-9").returncode == 2
    finally:
        stop_process(sim)  # type: ignore[arg-type]
