"""The composition root: builds the parts for one kit, starts them, stops them.

It wires; it decides nothing. Data: driver → bus (registry tap) → uplink /
API. Commands: API or MQTT → router → driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from gateway import __version__, driver_registry
from gateway.api import create_app
from gateway.broker import EmbeddedBroker
from gateway.bus import Bus
from gateway.commands import CommandRouter
from gateway.kit import LoadedKit
from gateway.model import Device
from gateway.mqtt_uplink import BrokerTarget, MqttUplink
from gateway.registry import DeviceRegistry
from gateway.sequence import SequenceStore
from gateway.supervisor import Supervisor, build_links
from gateway.wire import Topics

log = logging.getLogger(__name__)


@dataclass
class GatewayOptions:
    data_dir: Path
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    mqtt_url: str | None = None  # overrides the kit's broker
    mqtt_port: int = 1883  # embedded broker, when neither names one
    ground_stations: tuple[str, ...] | None = None  # overrides the kit's


class Gateway:
    def __init__(self, loaded: LoadedKit, opts: GatewayOptions) -> None:
        self.loaded = loaded
        self.kit = loaded.kit
        self.opts = opts
        self.version = __version__
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        self.bus = Bus()
        self.registry = DeviceRegistry()
        for dev in self.kit.devices:
            kind = loaded.device_kind(dev)
            cls = driver_registry.load(dev.driver)
            self.registry.add(Device(id=dev.id, kind=kind, driver=dev.driver, name=dev.name or dev.id,
                                     commands=cls.commands_for(kind)))
        self.bus.add_tap(self.registry.tap)
        self.supervisor = Supervisor(self.bus, build_links(loaded, opts.data_dir, opts.ground_stations))
        self.router = CommandRouter(self.bus, self.registry, self.supervisor.driver_for, self.kit.command_timeout_s)
        self.topics = Topics(self.kit.kit)
        self.seq = SequenceStore(opts.data_dir / "sequence.sqlite3")
        self.broker: EmbeddedBroker | None = None
        url, ca_file, client_id = self._broker_choice()
        if url is None:
            self.broker = EmbeddedBroker(opts.mqtt_port)
            url = self.broker.url
        self.uplink: MqttUplink | None = MqttUplink(
            BrokerTarget.from_url(url, client_id, ca_file), self.topics, self.bus, self.registry,
            self.router, self.seq, self.version)
        self.http_port = opts.http_port
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    def _broker_choice(self) -> tuple[str | None, str | None, str]:
        client_id = f"fieldgw-{self.kit.kit}"
        if self.opts.mqtt_url:
            return self.opts.mqtt_url, None, client_id
        if self.kit.broker:
            return self.kit.broker.url, self.kit.broker.ca_file, self.kit.broker.client_id or client_id
        return None, None, client_id

    @property
    def broker_url(self) -> str:
        assert self.uplink is not None
        return self.uplink.target.describe()

    async def start(self) -> None:
        if self.broker is not None:
            await self.broker.start()
        if self.uplink is not None:
            self._tasks.append(asyncio.create_task(self.uplink.run(), name="mqtt-uplink"))
        await self.supervisor.start()
        config = uvicorn.Config(create_app(self), host=self.opts.http_host, port=self.opts.http_port,
                                log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the CLI owns signals
        self._tasks.append(asyncio.create_task(self._server.serve(), name="http"))
        while not self._server.started:
            if self._tasks[-1].done():
                self._tasks[-1].result()  # raises the bind error
                raise RuntimeError("HTTP server stopped during start-up")
            await asyncio.sleep(0.02)
        sockets = [s for server in self._server.servers for s in server.sockets]
        if sockets:
            self.http_port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.router.stop()
        await self.supervisor.stop()  # every device goes offline, with the reason
        if self.uplink is not None:
            await self.uplink.close()
        if self._server is not None:
            self._server.should_exit = True
        for t in self._tasks:
            if t.get_name() != "http":
                t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 3.0)
        if self.broker is not None:
            await self.broker.stop()
        self.seq.close()

    def health(self) -> dict[str, Any]:
        online, total = self.registry.counts()
        uplinks = []
        if self.uplink is not None:
            uplinks.append({"name": "mqtt", "broker": self.uplink.target.describe(),
                            "connected": self.uplink.connected.is_set(), **self.uplink.stats()})
        ok = all(u["connected"] for u in uplinks) and online == total
        return {"status": "ok" if ok else "degraded", "devices": {"online": online, "total": total}, "uplinks": uplinks}
