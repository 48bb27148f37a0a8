"""The MQTT uplink (aiomqtt): publishes the bus as CONTRACT.md §3, takes commands in.

- Connects with the retained `gateway/status` offline message as its will,
  then publishes `online`, every device's retained state, and subscribes to
  the inbound `commands` topic. Reconnects with bounded backoff and jitter.
- Data messages (positions, telemetry, events, acks) are QoS 1 and leave the
  pending queue only after the broker's PUBACK; on a lost connection what
  was in flight is put back in front, in order, and sent again.
- Retained device state is coalesced: only the newest state per device is
  kept, online/offline changes go out at once, other changes at most once a
  second per device.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiomqtt

from gateway import wire
from gateway.backoff import Backoff
from gateway.bus import Bus
from gateway.commands import CommandRefused, CommandRouter
from gateway.model import Ack, DeviceStateChanged, Event, Position, Telemetry, now_ms
from gateway.registry import DeviceRegistry
from gateway.sequence import SequenceStore

log = logging.getLogger(__name__)
logging.getLogger("mqtt").setLevel(logging.ERROR)  # aiomqtt warns on >10 publishes in flight; we bound it ourselves


@dataclass(frozen=True)
class BrokerTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool
    ca_file: str | None
    client_id: str

    @classmethod
    def from_url(cls, url: str, client_id: str, ca_file: str | None = None) -> BrokerTarget:
        parts = urlsplit(url)
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            ca_file=ca_file,
            client_id=client_id,
        )

    def describe(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class PendingQueue:
    """Outgoing data messages not yet acknowledged by the broker (bounded, in memory).

    When full, the oldest message is dropped and counted. The durable
    SQLite outbox replaces this with the same three operations.
    """

    def __init__(self, maxlen: int = 100_000) -> None:
        self.maxlen = maxlen
        self._waiting: deque[wire.Outgoing] = deque()
        self._inflight: dict[int, wire.Outgoing] = {}
        self._next_key = 0
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, item: wire.Outgoing) -> None:
        if len(self._waiting) + len(self._inflight) >= self.maxlen and self._waiting:
            self._waiting.popleft()
            self.dropped += 1
        self._waiting.append(item)
        self._ready.set()

    async def take(self) -> tuple[int, wire.Outgoing]:
        while not self._waiting:
            self._ready.clear()
            await self._ready.wait()
        item = self._waiting.popleft()
        key = self._next_key
        self._next_key += 1
        self._inflight[key] = item
        return key, item

    def done(self, key: int) -> None:
        self._inflight.pop(key, None)

    def rewind(self) -> None:
        """Put everything in flight back in front of the queue, in its original order."""
        if self._inflight:
            self._waiting.extendleft(reversed([self._inflight[k] for k in sorted(self._inflight)]))
            self._inflight.clear()
            self._ready.set()

    def __len__(self) -> int:
        return len(self._waiting) + len(self._inflight)


class MqttUplink:
    def __init__(
        self,
        target: BrokerTarget,
        topics: wire.Topics,
        bus: Bus,
        registry: DeviceRegistry,
        router: CommandRouter,
        seq: SequenceStore,
        version: str,
        max_inflight: int = 64,
    ) -> None:
        self.target = target
        self.topics = topics
        self.registry = registry
        self.router = router
        self.seq = seq
        self.version = version
        self.max_inflight = max_inflight
        self.pending = PendingQueue()
        self.connected = asyncio.Event()
        self.published = 0
        self.connects = 0
        self._sub = bus.subscribe("mqtt-uplink", (Position, Telemetry, Event, Ack, DeviceStateChanged), maxsize=50_000)
        self._dirty_states: set[str] = set()
        self._states_now = asyncio.Event()  # an online/offline change: publish states without waiting
        self._client: aiomqtt.Client | None = None

    # --- bus → pending queue (runs whether or not the broker is reachable) ---
    async def _pump(self) -> None:
        while True:
            self._take(await self._sub.get())

    def _take(self, msg: object) -> None:
        if isinstance(msg, Position):
            self.pending.put(wire.position(self.topics, msg, self.seq.next(msg.device)))
        elif isinstance(msg, Telemetry):
            self.pending.put(wire.telemetry(self.topics, msg))
        elif isinstance(msg, Event):
            self.pending.put(wire.event(self.topics, msg))
        elif isinstance(msg, Ack):
            self.pending.put(wire.ack(self.topics, msg))
        elif isinstance(msg, DeviceStateChanged):
            self._dirty_states.add(msg.device)
            if msg.urgent:
                self._states_now.set()

    async def run(self) -> None:
        pump = asyncio.create_task(self._pump(), name="mqtt-pump")
        backoff = Backoff(initial=0.5, maximum=30.0)
        try:
            while True:
                try:
                    await self._session(backoff)
                except aiomqtt.MqttError as exc:
                    log.warning("MQTT %s: %s", self.target.describe(), exc)
                finally:
                    self._client = None
                    self.connected.clear()
                    self.pending.rewind()
                await asyncio.sleep(backoff.next_delay())
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

    def _client_for(self) -> aiomqtt.Client:
        t = self.target
        tls_context = None
        if t.tls:
            tls_context = ssl.create_default_context(cafile=t.ca_file) if t.ca_file else ssl.create_default_context()
        will = wire.gateway_status(self.topics, "offline", now_ms(), self.version)
        return aiomqtt.Client(
            t.host, t.port, username=t.username, password=t.password, identifier=t.client_id,
            will=aiomqtt.Will(will.topic, will.payload, 1, True), tls_context=tls_context,
            keepalive=15, timeout=10, max_inflight_messages=self.max_inflight,
        )

    async def _session(self, backoff: Backoff) -> None:
        async with self._client_for() as client:
            self._client = client
            self.connects += 1
            backoff.connected()
            log.info("MQTT connected to %s", self.target.describe())
            online = wire.gateway_status(self.topics, "online", now_ms(), self.version)
            await client.publish(online.topic, online.payload, qos=1, retain=True)
            self._dirty_states.update(self.registry.devices)
            await self._flush_states()
            await client.subscribe(self.topics.commands_filter, qos=1)
            self.connected.set()
            tasks = [
                asyncio.create_task(self._send(client), name="mqtt-send"),
                asyncio.create_task(self._receive(client), name="mqtt-receive"),
                asyncio.create_task(self._state_ticker(), name="mqtt-states"),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for t in done:
                    t.result()
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _send(self, client: aiomqtt.Client) -> None:
        window = asyncio.Semaphore(self.max_inflight)
        failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def one(key: int, item: wire.Outgoing) -> None:
            try:
                await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
                self.pending.done(key)
                self.published += 1
            except aiomqtt.MqttError as exc:
                if not failed.done():
                    failed.set_exception(exc)
            finally:
                window.release()

        inflight: set[asyncio.Task[None]] = set()
        try:
            while True:
                await window.acquire()
                if failed.done():
                    failed.result()
                key, item = await self.pending.take()
                task = asyncio.create_task(one(key, item))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
        finally:
            for t in inflight:
                t.cancel()

    async def _state_ticker(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._states_now.wait(), 1.0)
            except TimeoutError:
                pass
            self._states_now.clear()
            await self._flush_states()

    async def _flush_states(self) -> None:
        client = self._client
        if client is None:
            return
        while self._dirty_states:
            dev = self.registry.get(self._dirty_states.pop())
            if dev is not None:
                out = wire.device_state(self.topics, dev)
                await client.publish(out.topic, out.payload, qos=1, retain=True)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            device = self.topics.command_device(topic)
            if device is not None:
                self._on_command(device, message.payload)

    def _on_command(self, device: str, payload: object) -> None:
        try:
            body = json.loads(payload if isinstance(payload, (bytes, str)) else b"")
        except (ValueError, UnicodeDecodeError):
            self.router.reject(device, None, None, None, "mqtt", "payload is not valid JSON")
            return
        if not isinstance(body, dict):
            self.router.reject(device, None, None, None, "mqtt", "payload must be a JSON object")
            return
        cmd_id = body.get("id")
        if not isinstance(cmd_id, str):
            self.router.reject(device, None, body.get("command"), body.get("args"), "mqtt", "payload needs a string `id`")
            return
        try:
            self.router.submit(device, body.get("command"), body.get("args", {}), issued_by="mqtt", cmd_id=cmd_id)
        except CommandRefused as exc:
            self.router.reject(device, cmd_id, body.get("command"), body.get("args"), "mqtt", exc.message)

    async def close(self) -> None:
        """Say goodbye properly: the devices' last states, then `offline` (a clean disconnect fires no will)."""
        client = self._client
        if client is None:
            return
        while not self._sub.queue.empty():  # what the bus still holds: devices just marked offline
            self._take(self._sub.get_nowait())
        out = wire.gateway_status(self.topics, "offline", now_ms(), self.version)
        try:
            await asyncio.wait_for(self._flush_states(), 1.5)
            await asyncio.wait_for(client.publish(out.topic, out.payload, qos=1, retain=True), 1.5)
        except (aiomqtt.MqttError, TimeoutError):
            log.warning("could not say goodbye to the broker; its will marks the gateway offline")

    def stats(self) -> dict[str, int]:
        return {"pending": len(self.pending), "published": self.published, "dropped": self.pending.dropped + self._sub.dropped, "connects": self.connects}
