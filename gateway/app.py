"""The composition root: builds the parts for one kit, starts them, stops them.

Data: driver → bus (registry tap) → uplink manager / API / media.
Commands: API or MQTT → router → driver; orders: API or MQTT → dispatcher → drivers. Besides wiring, it holds the three
small bridges between parts that must not know each other: a stream a device
offers (driver → media), a stream's state in its device's status (media →
registry), and outbox drops reported as events (outbox → bus).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from gateway import __version__, driver_registry
from gateway.api import create_app
from gateway.audit import AuditLog
from gateway.audit_trail import AuditTrail
from gateway.broker import EmbeddedBroker
from gateway.bus import Bus
from gateway.commands import CommandRouter
from gateway.dispatch import Dispatcher
from gateway.inbound import InboundCommands
from gateway.kit import LoadedKit
from gateway.kit_health import KitHealth
from gateway.model import Device, DeviceStateChanged, Event, StatusUpdate, StreamOffer, now_ms
from gateway.mqtt_link import BrokerTarget, MqttLink
from gateway.outbox import CLASS_NAMES, Outbox
from gateway.registry import DeviceRegistry
from gateway.supervisor import Supervisor, build_links
from gateway.token_bucket import TokenBucket
from gateway.uplinks import Uplink, UplinkManager
from gateway.users import UserStore
from gateway.wire import Topics
from media.manager import StreamManager
from media.recorder import RecordPolicy
from media.source import StreamConfig

log = logging.getLogger(__name__)

RECENT_EVENTS = 200


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
        self.users = UserStore(opts.data_dir)
        self.registry = DeviceRegistry()
        for dev in self.kit.devices:
            kind = loaded.device_kind(dev)
            cls = driver_registry.load(dev.driver)
            self.registry.add(Device(id=dev.id, kind=kind, driver=dev.driver, name=dev.name or dev.id,
                                     commands=cls.commands_for(kind)))
        self.bus.add_tap(self.registry.tap)
        self.media = StreamManager(
            [StreamConfig(id=s.id, url=s.url, device=s.device, mode=s.mode, bitrate_kbps=s.bitrate_kbps, on_demand=s.on_demand,
                          idle_close_s=s.idle_close_s, options=dict(s.options),
                          record=RecordPolicy(**s.record.model_dump()) if s.record else None) for s in self.kit.streams],
            ice_addresses=self.kit.media.ice_addresses, advertise=self.kit.media.advertise,
            recordings=opts.data_dir / "recordings", on_change=self._stream_changed)
        for dev in self.registry.all():
            dev.streams = self.media.for_device(dev.id)
        self.bus.add_tap(self._stream_offered)
        self.recent_events: deque[Event] = deque(maxlen=RECENT_EVENTS)  # replayed to each new SSE client
        self.bus.add_tap(self._remember_event)
        self.supervisor = Supervisor(self.bus, build_links(loaded, opts.data_dir, opts.ground_stations))
        self.router = CommandRouter(self.bus, self.registry, self.supervisor.driver_for, self.kit.command_timeout_s)
        self.topics = Topics(self.kit.kit)
        self.dispatcher = Dispatcher(self.bus, self.registry, self.supervisor.driver_for, opts.data_dir,
                                     mqtt_targets={d.id for d in self.kit.devices if d.dispatch_mqtt},
                                     via={d.id: list(d.dispatch_via) for d in self.kit.devices if d.dispatch_via})
        self.audit = AuditLog(opts.data_dir / "audit.jsonl")
        self.audit_trail = AuditTrail(self.audit, self.bus)
        self.inbound = InboundCommands(self.topics, self.router, self.dispatcher, self.bus, self.audit_trail,
                                       {c.user: c.role for c in self.kit.mqtt_clients})
        cfg = self.kit.outbox
        self.outbox = Outbox(opts.data_dir / "outbox.sqlite3", cap_bytes=int(cfg.cap_mb * 1024 * 1024),
                             thin_every_s=cfg.thin_every_s, thin_after_s=cfg.thin_after_s, on_drop=self._outbox_dropped)
        self.broker: EmbeddedBroker | None = None
        self.uplinks = UplinkManager(self._build_uplinks(), self.outbox, self.bus, self.registry, self.topics, self.version)
        self.uplinks.order_acked = self.dispatcher.order_acked
        self.uplinks.telemetry_every_s = {d.id: d.telemetry_every_s for d in self.kit.devices if d.telemetry_every_s}
        self.kit_health = KitHealth(self.bus, self.registry, self._streams_live)
        self.uplinks.status_extra = self.kit_health.summary
        self.http_port = opts.http_port
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._drops_reported: dict[str, float] = {}

    def _streams_live(self) -> tuple[int, int]:
        return sum(1 for s in self.media.sources.values() if s.state == "live"), len(self.media.sources)

    def _stream_changed(self, source: Any) -> None:
        """A stream went live, connecting or offline: its device's status says so."""
        device = source.cfg.device
        if device and self.registry.get(device) is not None:
            video = {sid: self.media.sources[sid].state for sid in self.media.for_device(device)}
            self.bus.publish(StatusUpdate(device, now_ms(), {"video": video}))

    def _remember_event(self, msg: object) -> None:
        if isinstance(msg, Event):
            self.recent_events.append(msg)

    def _stream_offered(self, msg: object) -> list[Any] | None:
        """A device announced a stream of its own: relay it (unless the kit already names that URL)."""
        if not isinstance(msg, StreamOffer):
            return None
        if any(s.cfg.url == msg.url for s in self.media.sources.values()):
            return None
        known = self.media.sources.get(msg.stream)
        if known is not None and known.cfg.device == msg.device:
            # the device came back with another URL (a camera after a reboot or a reconfiguration):
            # the source's next (re)connect opens the URL it gives now
            log.info("stream %s of %s moved to a new URL", msg.stream, msg.device)
            known.cfg.url = msg.url
            return None
        self.media.add(StreamConfig(id=msg.stream, url=msg.url, device=msg.device, mode=msg.mode, on_demand=msg.on_demand,
                                    idle_close_s=msg.idle_close_s, options=dict(msg.options)))
        dev = self.registry.get(msg.device)
        if dev is None:
            return None
        dev.streams = self.media.for_device(msg.device)
        return [DeviceStateChanged(msg.device, msg.ts, urgent=True)]

    def _build_uplinks(self) -> list[Uplink]:
        """The kit's uplinks, or one `default` uplink to the kit's broker, --mqtt, or the embedded broker."""
        default_url = self.opts.mqtt_url or (self.kit.broker.url if self.kit.broker else None)
        default_ca = None if self.opts.mqtt_url or not self.kit.broker else self.kit.broker.ca_file
        if default_url is None and (not self.kit.uplinks or any(u.broker is None for u in self.kit.uplinks)):
            self.broker = EmbeddedBroker(self.opts.mqtt_port)
            default_url = self.broker.url
        base_id = (self.kit.broker.client_id if self.kit.broker and self.kit.broker.client_id else f"fieldgw-{self.kit.kit}")
        configs = self.kit.uplinks or []
        if not configs:
            return [Uplink(self._link("default", default_url or "", default_ca, base_id))]
        out = []
        for cfg in configs:
            url = cfg.broker.url if cfg.broker else default_url or ""
            ca = cfg.broker.ca_file if cfg.broker else default_ca
            client_id = cfg.broker.client_id if cfg.broker and cfg.broker.client_id else f"{base_id}-{cfg.name}"
            out.append(Uplink(self._link(cfg.name, url, ca, client_id), priority=cfg.priority,
                              bucket=TokenBucket.for_kbps(cfg.budget_kbps) if cfg.budget_kbps else None,
                              budget_kbps=cfg.budget_kbps, health_from=frozenset(cfg.health_from)))
        return out

    def _link(self, name: str, url: str, ca_file: str | None, client_id: str) -> MqttLink:
        embedded = self.broker is not None and url == self.broker.url
        return MqttLink(name, BrokerTarget.from_url(url, client_id, ca_file), self.topics, self.version,
                        self.inbound.handle, lambda: self.uplinks.changed(), protocol="3.1.1" if embedded else "auto")

    def _outbox_dropped(self, device: str, cls: int, count: int, reason: str) -> None:
        """Every drop is counted (outbox stats, metrics); an event says so, at most once a minute per device.

        Critical, so it travels in the class that is never dropped: the centre must learn what it lost.
        """
        now = asyncio.get_running_loop().time()
        if now - self._drops_reported.get(device, -1e9) < 60:
            return
        self._drops_reported[device] = now
        self.bus.publish(Event(device, now_ms(), "outbox_drop", "critical",
                               f"{count} {CLASS_NAMES[cls]} message(s) of {device} dropped: {reason}",
                               {"class": CLASS_NAMES[cls], "count": count}))

    @property
    def broker_url(self) -> str:
        return self.uplinks.uplinks[0].link.target.describe()

    async def start(self) -> None:
        if self.broker is not None:
            await self.broker.start()
        await self.outbox.open()
        if self.outbox.notice:
            self.bus.publish(Event("gateway", now_ms(), "outbox_reset", "critical", self.outbox.notice))
        await self.audit.open()
        if self.audit.reset_notice:
            self.bus.publish(Event("gateway", now_ms(), "audit_reset", "critical", self.audit.reset_notice))
        self.audit_trail.start()
        await self.dispatcher.open()  # before any uplink can hand it an MQTT dispatch
        self._tasks.append(asyncio.create_task(self.uplinks.run(), name="uplinks"))
        await self.supervisor.start()
        self.media.start()
        cert, key = self.tls_files()
        config = uvicorn.Config(create_app(self), host=self.opts.http_host, port=self.opts.http_port,
                                log_level="warning", lifespan="off", access_log=False,
                                ssl_certfile=cert, ssl_keyfile=key)
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

    def tls_files(self) -> tuple[str | None, str | None]:
        """The kit's HTTPS certificate and key (relative to the kit file), checked readable; (None, None) for HTTP."""
        http = self.kit.http
        if http.tls_cert is None or http.tls_key is None:
            return None, None
        paths = [str(self.loaded.path.parent / p) for p in (http.tls_cert, http.tls_key)]
        for p in paths:
            if not Path(p).is_file():
                raise RuntimeError(f"http TLS file {p} does not exist")
        return paths[0], paths[1]

    @property
    def http_scheme(self) -> str:
        return "https" if self.kit.http.tls_cert else "http"

    async def stop(self) -> None:
        await self.router.stop()
        await self.dispatcher.close()
        await self.media.stop()
        await self.supervisor.stop()  # every device goes offline, with the reason
        await self.uplinks.close()
        if self._server is not None:
            self._server.should_exit = True
        for t in self._tasks:
            if t.get_name() != "http":
                t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 3.0)
        await self.audit_trail.stop()
        await self.audit.close()
        await self.outbox.close()
        if self.broker is not None:
            await self.broker.stop()
        self.users.close()

    def health(self) -> dict[str, Any]:
        online, total = self.registry.counts()
        ok = self.uplinks.active is not None and self.uplinks.active.healthy() and online == total and not self.outbox.disk_full
        return {"status": "ok" if ok else "degraded", "devices": {"online": online, "total": total},
                "uplinks": self.uplinks.uplink_stats(), "outbox": self.uplinks.outbox_stats(),
                "kit": self.kit_health.summary()}
