"""Broker-side ACLs made by `fieldgw mqtt-acl`, on a real Mosquitto: operators command, viewers and
strangers cannot, and the gateway rejects a command that names no allowed client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from gateway.mqtt_acl import mosquitto_hash
from tests.conftest import ROOT, free_port, need_binary, start_sim, wait_port
from tests.helpers import GatewayProcess, drone, wait_for, write_kit

ROOT_TOPIC = "fieldgw/v1/test"


class Client:
    """A paho client with a user and password; `refused` when the broker says no."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.got: list[tuple[str, Any]] = []
        self.connected = threading.Event()
        self.rc: Any = None
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"t-{user}")
        self.c.username_pw_set(user, password)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.got.append((m.topic, json.loads(m.payload)))
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on_connect(self, c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
        self.rc = rc
        if not rc.is_failure:
            c.subscribe(f"{ROOT_TOPIC}/#", qos=1)
        self.connected.set()

    def publish(self, topic: str, body: dict[str, Any]) -> None:
        self.c.publish(topic, json.dumps(body), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def test_mosquitto_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    passwd = need_binary("mosquitto_passwd")
    f = tmp_path / "p"
    subprocess.run([passwd, "-c", "-b", str(f), "u", "pa:ss word"], check=True, capture_output=True)
    theirs = f.read_text().strip().split(":", 1)[1]
    _, seven, iterations, salt, _ = theirs.split("$")
    import base64

    assert mosquitto_hash("pa:ss word", base64.b64decode(salt), int(iterations)) == theirs


def test_only_operators_can_command_through_the_broker(tmp_path: Path, processes: list) -> None:
    mosquitto = need_binary("mosquitto")
    vport = free_port()
    kit = write_kit(tmp_path / "kit.yaml", [drone("drone-1", vport, 1)],
                    mqtt_clients=[{"user": "centre-ops", "role": "operator"}, {"user": "centre-wall", "role": "viewer"}])
    out = tmp_path / "broker"
    made = subprocess.run([sys.executable, "-m", "gateway.cli", "mqtt-acl", str(kit), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    acl = (out / "acl").read_text()
    blocks = {b.split("\n")[0]: b.split("\n")[1:] for b in acl.strip().split("\n\n")}
    assert blocks["user centre-wall"] == ["topic read fieldgw/v1/test/#"]
    assert "user centre-ops\ntopic read fieldgw/v1/test/#\ntopic write fieldgw/v1/test/devices/+/commands" in acl
    passwords = json.loads((out / "mqtt-passwords.json").read_text())
    assert oct((out / "mqtt-passwords.json").stat().st_mode & 0o777) == "0o600"
    again = subprocess.run([sys.executable, "-m", "gateway.cli", "mqtt-acl", str(kit), "--out", str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and json.loads((out / "mqtt-passwords.json").read_text()) == passwords  # kept

    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""  # as root (CI) it would switch to a user who cannot read tmp
    conf.write_text(f"{user}per_listener_settings false\nlistener {port} 127.0.0.1\n" + (out / "mosquitto-acl.conf").read_text())
    broker = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes.append(broker)
    wait_port(port)
    gw = GatewayProcess(kit, tmp_path / "data", mqtt_url=f"mqtt://fieldgw-test:{passwords['fieldgw-test']}@127.0.0.1:{port}")
    processes.append(gw.proc)
    sim, _ = start_sim("--sysid", "1", "--udp-out", f"127.0.0.1:{vport}", "--takeoff-delay", "0.5")
    processes.append(sim)
    wait_for(lambda: gw.get("/api/v1/devices/drone-1").json()["online"], 15, "drone online")

    stranger = Client(port, "centre-ops", "not the password")
    assert stranger.connected.wait(5) and stranger.rc.is_failure  # a wrong password never gets in
    stranger.close()
    ops, wall = Client(port, "centre-ops", passwords["centre-ops"]), Client(port, "centre-wall", passwords["centre-wall"])
    try:
        assert ops.connected.wait(5) and wall.connected.wait(5) and not ops.rc.is_failure and not wall.rc.is_failure
        commands = f"{ROOT_TOPIC}/devices/drone-1/commands"
        acks = f"{ROOT_TOPIC}/devices/drone-1/acks"
        wall.publish(commands, {"id": "from-wall", "client": "centre-wall", "command": "hold"})  # the broker drops it
        ops.publish(commands, {"id": "no-claim", "command": "hold"})
        ops.publish(commands, {"id": "viewer-claim", "client": "centre-wall", "command": "hold"})
        ops.publish(commands, {"id": "from-ops", "client": "centre-ops", "command": "hold"})

        def ack(cmd: str, status: str) -> Any:
            return next((p for t, p in wall.got if t == acks and p["id"] == cmd and p["status"] == status), None)

        assert wait_for(lambda: ack("from-ops", "done"), 20, "the operator's command done")
        assert "is a viewer" in wait_for(lambda: ack("viewer-claim", "rejected"), 5, "viewer claim rejected")["detail"]
        assert "name the sending MQTT client" in wait_for(lambda: ack("no-claim", "rejected"), 5, "no claim rejected")["detail"]
        assert gw.get("/api/v1/commands/from-wall").status_code == 404  # never reached the gateway
        assert not any(p["id"] == "from-wall" for t, p in wall.got if t == acks)
        audit = gw.get("/api/v1/audit").json()["records"]
        assert any(r["user"] == "mqtt:centre-ops" and r["action"] == "command" and r["outcome"] == "accepted" for r in audit)
    finally:
        ops.close()
        wall.close()
