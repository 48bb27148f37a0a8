"""The MQTT uplink survives a broker restart: it reconnects with backoff and sends what waited."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT, free_port, need_binary, start_sim, stop_process, wait_port
from tests.helpers import GatewayProcess, MqttProbe, drone, wait_for, write_kit


def _broker(binary: str, conf: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_broker_restart(tmp_path: Path, processes: list) -> None:
    binary = need_binary("mosquitto")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text((ROOT / "docs" / "mosquitto.conf").read_text().replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1"))
    broker = _broker(binary, conf)
    processes.append(broker)
    wait_port(port)
    url = f"mqtt://127.0.0.1:{port}"
    vport = free_port()
    gw = GatewayProcess(write_kit(tmp_path / "kit.yaml", [drone("drone-1", vport, 1)]), tmp_path / "data", mqtt_url=url)
    processes.append(gw.proc)
    sim, _ = start_sim("--sysid", "1", "--udp-out", f"127.0.0.1:{vport}", "--no-autostart")
    processes.append(sim)
    probe = MqttProbe(url, "fieldgw/v1/test/devices/drone-1/position")
    _, before = probe.wait(lambda t, p: True, 10, "a position before the outage")
    probe.close()

    stop_process(broker)
    uplink = lambda: gw.get("/api/v1/health").json()["uplinks"][0]  # noqa: E731
    wait_for(lambda: not uplink()["connected"], 20, "uplink sees the broker gone")
    time.sleep(2.0)
    waiting = gw.get("/api/v1/health").json()["outbox"]["messages"]
    assert waiting > 0, "positions wait for the broker instead of vanishing"

    broker2 = _broker(binary, conf)
    processes.append(broker2)
    wait_port(port)
    wait_for(lambda: uplink()["connected"], 30, "uplink reconnected")
    assert uplink()["connects"] >= 2
    wait_for(lambda: gw.get("/api/v1/health").json()["outbox"]["messages"] < 5, 10, "the backlog drained")
    probe = MqttProbe(url, "fieldgw/v1/test/#")
    try:
        _, after = probe.wait(lambda t, p: t.endswith("/position"), 10, "positions after the outage")
        assert after["seq"] > before["seq"] + waiting - 1  # the numbers carried on through the outage
        _, status = probe.wait(lambda t, p: t.endswith("gateway/status"), 5, "retained status republished")
        assert status["state"] == "online"
    finally:
        probe.close()
