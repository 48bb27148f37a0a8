"""A publish the broker refuses (MQTT 5 ACL denial) is reported and kept, never spun on, never blocking others."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.conftest import free_port, need_binary, start_sim, wait_port
from tests.helpers import GatewayProcess, MqttProbe, drone, wait_for, write_kit


def test_acl_denied_topic_is_parked_and_others_flow(tmp_path: Path, processes: list) -> None:
    mosquitto = need_binary("mosquitto")
    port = free_port()
    acl = tmp_path / "acl"
    # the gateway may publish everything except drone-2's data
    acl.write_text("pattern readwrite fieldgw/v1/test/gateway/#\n"
                   "pattern readwrite fieldgw/v1/test/devices/drone-1/#\n"
                   "pattern read fieldgw/v1/test/devices/+/commands\n"
                   "pattern read fieldgw/v1/test/dispatch\n"
                   "topic read fieldgw/#\n")
    conf = tmp_path / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"{user}listener {port} 127.0.0.1\nallow_anonymous true\nacl_file {acl}\nmax_queued_messages 1000000\n")
    broker = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes.append(broker)
    wait_port(port)
    url = f"mqtt://127.0.0.1:{port}"
    ports = (free_port(), free_port())
    kit = write_kit(tmp_path / "kit.yaml", [drone("drone-1", ports[0], 1), drone("drone-2", ports[1], 2)])
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_url=url)
    processes.append(gw.proc)
    probe = MqttProbe(url, "fieldgw/v1/test/devices/#")
    try:
        for sysid, p in zip((1, 2), ports):
            sim, _ = start_sim("--sysid", str(sysid), "--udp-out", f"127.0.0.1:{p}", "--no-autostart")
            processes.append(sim)
        wait_for(lambda: len(probe.find(lambda t, p: t.endswith("drone-1/position"))) > 20, 15, "drone-1 positions flow")
        health = wait_for(lambda: (h := gw.get("/api/v1/health").json()) and h["uplinks"][0]["rejected"] > 10 and h, 15, "refusals counted")
        assert health["uplinks"][0]["protocol"] == "5"  # reason codes need MQTT 5
        assert health["outbox"]["parked"] > 10
        assert not probe.find(lambda t, p: "drone-2" in t)
        # kept, not spun on: refusals grow with what drone-2 produces (~6 messages/s), not in a hot loop
        r1, t1 = health["uplinks"][0]["rejected"], time.monotonic()
        time.sleep(3)
        r2 = gw.get("/api/v1/health").json()["uplinks"][0]["rejected"]
        assert (r2 - r1) / (time.monotonic() - t1) < 30
        log = gw.log.read_text()
        assert "broker refused" in log and "kept" in log
        assert log.count("broker refused") < 10  # reported once a minute per topic, not per message
    finally:
        probe.close()
