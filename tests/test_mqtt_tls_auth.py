"""External broker over mqtts:// with a CA file and a username/password in the URL (real Mosquitto)."""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path

import paho.mqtt.client as paho

from tests.certs import make_ca_and_server
from tests.conftest import free_port, need_binary, start_sim, stop_process, wait_port
from tests.helpers import GatewayProcess, drone, wait_for, write_kit


def test_gateway_publishes_over_mqtts_with_credentials(tmp_path: Path, processes: list) -> None:
    mosquitto = need_binary("mosquitto")
    passwd = need_binary("mosquitto_passwd")
    ca, cert, key = make_ca_and_server(tmp_path)
    pwfile = tmp_path / "passwd"
    subprocess.run([passwd, "-c", "-b", str(pwfile), "kit7", "s3cret:pw"], check=True, capture_output=True)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    # run as root (CI), Mosquitto would switch to its own user, who cannot read pytest's private tmp dir
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"{user}listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pwfile}\n"
                    f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\nmax_queued_messages 1000000\n")
    broker = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes.append(broker)
    wait_port(port)

    vport = free_port()
    kit = write_kit(tmp_path / "kit.yaml", [drone("drone-1", vport, 1)],
                    broker={"url": f"mqtts://kit7:s3cret%3Apw@127.0.0.1:{port}", "ca_file": str(ca)})
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_port=free_port())
    processes.append(gw.proc)
    sim, _ = start_sim("--sysid", "1", "--udp-out", f"127.0.0.1:{vport}", "--no-autostart")
    processes.append(sim)
    wait_for(lambda: gw.get("/api/v1/health").json()["uplinks"][0]["connected"], 10, "uplink connected over TLS")

    got: list[str] = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.username_pw_set("kit7", "s3cret:pw")
    client.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("fieldgw/v1/test/#", qos=1)
    client.on_message = lambda c, u, m: got.append(m.topic)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_for(lambda: "fieldgw/v1/test/devices/drone-1/position" in got, 10, "position over mqtts")
        assert "fieldgw/v1/test/gateway/status" in got
    finally:
        client.loop_stop()
        client.disconnect()

    # A wrong password never connects, and the gateway says so in its health instead of crashing.
    stop_process(gw.proc)
    kit = write_kit(tmp_path / "kit2.yaml", [drone("drone-1", vport, 1)],
                    broker={"url": f"mqtts://kit7:wrong@127.0.0.1:{port}", "ca_file": str(ca)})
    gw2 = GatewayProcess(kit, tmp_path / "data2", mqtt_port=free_port())
    processes.append(gw2.proc)
    wait_for(lambda: gw2.get("/api/v1/devices/drone-1").json()["online"], 10, "device online without an uplink")
    health = gw2.get("/api/v1/health").json()
    assert health["status"] == "degraded" and health["uplinks"][0]["connected"] is False
    assert gw2.proc.poll() is None
