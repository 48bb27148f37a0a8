"""Test helpers: a gateway process, an MQTT probe (paho, its own thread), HTTP calls."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as paho

from tests.auth import bearer
from tests.conftest import ROOT, free_port
from tests.procs import drone, write_kit  # noqa: F401 - re-exported for the tests

class GatewayProcess:
    def __init__(self, kit: Path, data_dir: Path, mqtt_url: str | None = None, mqtt_port: int | None = None) -> None:
        self.http_port = free_port()
        self.mqtt_port = mqtt_port or free_port()
        args = [sys.executable, "-m", "gateway.cli", "run", str(kit), "--data-dir", str(data_dir),
                "--http-port", str(self.http_port), "--mqtt-port", str(self.mqtt_port), "--log-level", "info"]
        if mqtt_url:
            args += ["--mqtt", mqtt_url]
        self.log = data_dir.parent / f"gateway-{self.http_port}.log"
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log.open("wb")
        self.headers = bearer(data_dir)  # made before the gateway opens the store
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.mqtt_url = mqtt_url or f"mqtt://127.0.0.1:{self.mqtt_port}"
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.base + "/api/v1/health", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"gateway not ready: {self.log.read_text()[-3000:]}")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=5, headers=self.headers)

    def post(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(self.base + path, json=body, timeout=5, headers=self.headers)

    def wait_command(self, cmd_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_for(lambda: _final(self.get(f"/api/v1/commands/{cmd_id}").json()), timeout, f"command {cmd_id} final")

    def stop(self) -> int:
        from tests.conftest import stop_process

        rc = stop_process(self.proc)
        self._log.close()
        return rc


def _final(record: dict[str, Any]) -> dict[str, Any] | None:
    return record if record.get("status") in ("done", "failed", "rejected", "timeout") else None


def wait_for(fn: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


class MqttProbe:
    """Subscribes with paho on its own thread and records (topic, payload, retain)."""

    def __init__(self, url: str, topic: str = "fieldgw/#") -> None:
        parts = urlsplit(url)
        self.messages: list[tuple[str, Any, bool, float]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(parts.hostname, parts.port or 1883)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("MQTT probe could not subscribe")

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = msg.payload
        with self._lock:
            self.messages.append((msg.topic, payload, bool(msg.retain), time.monotonic()))

    def find(self, pred: Callable[[str, Any], bool], since: float = 0.0) -> list[tuple[str, Any]]:
        """Messages matching `pred` that arrived after `since` (time.monotonic())."""
        with self._lock:
            return [(t, p) for t, p, _, at in self.messages if at >= since and pred(t, p)]

    def wait(self, pred: Callable[[str, Any], bool], timeout: float = 15.0, what: str = "message",
             since: float = 0.0) -> tuple[str, Any]:
        return wait_for(lambda: (self.find(pred, since) or [None])[-1], timeout, what)

    def publish(self, topic: str, payload: Any) -> None:
        self.client.publish(topic, json.dumps(payload) if not isinstance(payload, (bytes, str)) else payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
