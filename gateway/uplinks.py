"""The uplink manager: bus → outbox → the best healthy uplink, within its budget.

- Data from the bus is encoded once (wire.py) and put in the durable outbox
  in its priority class. Retained device states never enter the outbox:
  only the newest state per device is kept and published on change.
- Uplinks are tried in `priority` order (lower first). An uplink is healthy
  when its MQTT connection is up and no terminal mapped to it
  (`health_from`) reports its link down. Traffic moves to the best healthy
  uplink within a second of a change and moves back when a better one
  returns; what was in flight on the old one is sent again (consumers
  de-duplicate by `id`).
- Each uplink with `budget_kbps` sends through a token bucket.
- A publish the broker refuses is parked and retried with backoff, reported
  once per topic and interval; it never blocks the rest of the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway import wire
from gateway.bus import Bus
from gateway.model import Ack, AuditRecorded, DeviceStateChanged, DispatchChanged, Event, LinkHealth, Order, Position, Telemetry, now_ms
from gateway.mqtt_link import LinkDown, MqttLink, PublishRejected
from gateway.outbox import POSITIONS, TELEMETRY, URGENT, Item, Outbox
from gateway.registry import DeviceRegistry
from gateway.token_bucket import TokenBucket

log = logging.getLogger(__name__)

WINDOW = 64  # publishes in flight on the active uplink
STATUS_EVERY_S = 30.0
WILL_REASSERT_S = 25.0  # after a failover the old link's will may still fire: say `online` again after it
PARK_RETRY_S = 60.0
MAX_PARKED = 10_000  # refused messages kept for retry; beyond that the oldest is dropped (counted)
STARTUP_GRACE_S = 3.0


@dataclass
class Uplink:
    link: MqttLink
    priority: int = 0
    bucket: TokenBucket | None = None
    budget_kbps: float | None = None
    health_from: frozenset[str] = frozenset()
    reported_down: dict[str, str] = field(default_factory=dict)  # device → why

    @property
    def name(self) -> str:
        return self.link.name

    def healthy(self) -> bool:
        return self.link.connected.is_set() and not self.reported_down


class UplinkManager:
    def __init__(self, uplinks: list[Uplink], outbox: Outbox, bus: Bus, registry: DeviceRegistry,
                 topics: wire.Topics, version: str) -> None:
        self.uplinks = sorted(uplinks, key=lambda u: u.priority)
        self.outbox = outbox
        self.bus = bus
        self.registry = registry
        self.topics = topics
        self.version = version
        self.active: Uplink | None = None
        self.failovers = 0
        self._changed = asyncio.Event()
        self._states_now = asyncio.Event()
        self._dirty: set[str] = set()
        self._parked: list[tuple[float, Item]] = []
        self._rejections_reported: dict[str, float] = {}
        self._rate = _Rate()
        self._sub = bus.subscribe("uplink", (Position, Telemetry, Event, Ack, DeviceStateChanged, LinkHealth,
                                             DispatchChanged, Order, AuditRecorded), maxsize=50_000)
        # Per-device telemetry coalescing (off unless a device is listed): within each interval the newest value
        # of each name wins and one telemetry message goes out at its end. For thin links (64 kbit/s satellite)
        # and fast pollers; positions, events, acks and everything else are never coalesced.
        self.telemetry_every_s: dict[str, float] = {}
        self._coalescing: dict[str, Telemetry] = {}
        self._coalesce_timers: dict[str, asyncio.TimerHandle] = {}
        self.order_acked: Callable[[str], None] | None = None  # the dispatcher learns which orders the broker holds
        self.status_extra: Callable[[], dict[str, Any]] | None = None  # the kit's health on the status topic
        self._tasks: list[asyncio.Task[Any]] = []

    def changed(self) -> None:
        self._changed.set()

    # --- bus → outbox ---------------------------------------------------------
    def _take(self, msg: object) -> None:
        ob = self.outbox
        if isinstance(msg, Position):
            if ob.admit_position(msg.device, msg.ts):
                out = wire.position(self.topics, msg, ob.next_position_seq(msg.device))
                ob.put(out.topic, out.payload, POSITIONS, msg.device)
        elif isinstance(msg, Telemetry):
            if msg.device in self.telemetry_every_s:
                self._coalesce(msg)
                return
            out = wire.telemetry(self.topics, msg)
            ob.put(out.topic, out.payload, TELEMETRY, msg.device)
        elif isinstance(msg, Event):
            out = wire.event(self.topics, msg)
            ob.put(out.topic, out.payload, URGENT if msg.severity == "critical" else TELEMETRY, msg.device)
        elif isinstance(msg, Ack):
            out = wire.ack(self.topics, msg)
            ob.put(out.topic, out.payload, URGENT, msg.device)
        elif isinstance(msg, DeviceStateChanged):
            self._dirty.add(msg.device)
            if msg.urgent:
                self._states_now.set()
        elif isinstance(msg, LinkHealth):
            self._link_health(msg)
        elif isinstance(msg, DispatchChanged):
            out = wire.dispatch_ack(self.topics, msg)
            ob.put(out.topic, out.payload, URGENT, "")
        elif isinstance(msg, Order):
            out = wire.order(self.topics, msg)
            ob.put(out.topic, out.payload, URGENT, msg.device)
        elif isinstance(msg, AuditRecorded):
            out = wire.audit(self.topics, msg)
            ob.put(out.topic, out.payload, URGENT, "")

    def _coalesce(self, msg: Telemetry) -> None:
        held = self._coalescing.get(msg.device)
        if held is None:
            self._coalescing[msg.device] = Telemetry(msg.device, msg.ts, dict(msg.values))
            self._coalesce_timers[msg.device] = asyncio.get_running_loop().call_later(
                self.telemetry_every_s[msg.device], self._flush_coalesced, msg.device)
        else:
            held.values.update(msg.values)  # the newest value of each name wins
            held.ts = max(held.ts, msg.ts)

    def _flush_coalesced(self, device: str) -> None:
        self._coalesce_timers.pop(device, None)
        held = self._coalescing.pop(device, None)
        if held is not None:
            out = wire.telemetry(self.topics, held)
            self.outbox.put(out.topic, out.payload, TELEMETRY, device)

    def flush_coalesced(self) -> None:
        """Put every device's held telemetry in the outbox now (at a stop, so nothing held is lost)."""
        for device in list(self._coalescing):
            timer = self._coalesce_timers.pop(device, None)
            if timer is not None:
                timer.cancel()
            self._flush_coalesced(device)

    def _link_health(self, msg: LinkHealth) -> None:
        for up in self.uplinks:
            if msg.device in up.health_from:
                before = up.healthy()
                if msg.up:
                    up.reported_down.pop(msg.device, None)
                else:
                    up.reported_down[msg.device] = msg.detail or "reported down"
                if up.healthy() != before:
                    log.info("uplink %s %s per %s (%s)", up.name, "healthy" if up.healthy() else "down", msg.device, msg.detail)
                    self._changed.set()

    async def _pump(self) -> None:
        while True:
            self._take(await self._sub.get())

    # --- running ----------------------------------------------------------------
    async def run(self) -> None:
        self._tasks = [asyncio.create_task(self._pump(), name="uplink-pump")]
        self._tasks += [asyncio.create_task(u.link.run(), name=f"uplink:{u.name}") for u in self.uplinks]
        try:
            await self._select_loop()
        finally:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def best(self) -> Uplink | None:
        """The first healthy uplink; failing that, a connected one whose terminal says it is down.

        A terminal's report is a strong hint, not proof (its management line may be
        what failed): as a last resort the gateway tries the connection it has, and
        anything unacknowledged stays in the outbox either way.
        """
        return (next((u for u in self.uplinks if u.healthy()), None)
                or next((u for u in self.uplinks if u.link.connected.is_set()), None))

    async def _select_loop(self) -> None:
        # At start, give the preferred uplink a moment to connect before spending a standby's budget.
        deadline = asyncio.get_running_loop().time() + STARTUP_GRACE_S
        while self.uplinks and not self.uplinks[0].healthy() and asyncio.get_running_loop().time() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - asyncio.get_running_loop().time())
        while True:
            self._changed.clear()
            up = self.best()
            self.outbox.online = up is not None
            if up is None:
                if self.active is not None:
                    log.warning("no healthy uplink: data waits in the outbox")
                self.active = None
                await self._changed.wait()
                continue
            if self.active is not None and self.active is not up:
                self.failovers += 1
                log.warning("uplink %s → %s", self.active.name, up.name)
            self.active = up
            await self._serve(up)

    async def _serve(self, up: Uplink) -> None:
        """Send over `up` until it is no longer the best choice."""
        self._dirty.update(self.registry.devices)
        tasks = [asyncio.create_task(self._send_loop(up), name=f"send:{up.name}"),
                 asyncio.create_task(self._status_loop(up), name=f"status:{up.name}")]
        watcher = asyncio.create_task(self._until_not_best(up))
        try:
            done, _ = await asyncio.wait(tasks + [watcher], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not watcher and not t.cancelled() and t.exception() and not isinstance(t.exception(), LinkDown):
                    log.error("uplink %s sender failed: %r", up.name, t.exception())
        finally:
            for t in tasks + [watcher]:
                t.cancel()
            await asyncio.gather(*tasks, watcher, return_exceptions=True)
            self.outbox.rewind()

    async def _until_not_best(self, up: Uplink) -> None:
        while self.best() is up:
            await self._changed.wait()
            self._changed.clear()
        self._changed.set()  # let the select loop look again

    async def _status_loop(self, up: Uplink) -> None:
        await self._publish_status(up)
        started = time.monotonic()
        reasserted = False
        while True:
            try:
                await asyncio.wait_for(self._states_now.wait(), 1.0)
            except TimeoutError:
                pass
            self._states_now.clear()
            await self._flush_states(up)
            elapsed = time.monotonic() - started
            if not reasserted and elapsed > WILL_REASSERT_S and self.failovers:
                reasserted = True
                await self._publish_status(up)
            elif elapsed > STATUS_EVERY_S:
                started = time.monotonic()
                reasserted = True
                await self._publish_status(up)
            self._unpark()

    async def _publish_status(self, up: Uplink) -> None:
        extra = self.summary()
        if self.status_extra is not None:
            extra["kit"] = self.status_extra()
        out = wire.gateway_status(self.topics, "online", now_ms(), self.version, extra)
        try:
            await up.link.publish(out.topic, out.payload, 1, True)
        except PublishRejected as exc:
            self._report_refusal(out.topic, "", str(exc))

    async def _flush_states(self, up: Uplink) -> None:
        while self._dirty:
            dev = self.registry.get(self._dirty.pop())
            if dev is not None:
                out = wire.device_state(self.topics, dev)
                if up.bucket is not None:
                    await up.bucket.take(len(out.payload) + len(out.topic))
                try:
                    await up.link.publish(out.topic, out.payload, 1, True)
                except PublishRejected as exc:  # the next change of this device's state tries again
                    self._report_refusal(out.topic, dev.id, str(exc))

    async def _send_loop(self, up: Uplink) -> None:
        """Keep up to WINDOW publishes in flight; outcomes arrive as callbacks, not tasks."""
        room = asyncio.Semaphore(WINDOW)
        failure: list[BaseException] = []
        outbox = self.outbox

        def finished(item: Item, exc: BaseException | None) -> None:
            room.release()
            if exc is None:
                outbox.acked(item)
                self._rate.add()
                if item.row.cls == URGENT and self.order_acked is not None and item.row.topic.endswith("/orders"):
                    self.order_acked(json.loads(item.row.payload)["id"])
            elif isinstance(exc, PublishRejected):
                self._park(item, str(exc))
            elif not failure:
                failure.append(exc)

        while not failure:
            await room.acquire()
            item = await outbox.take()
            if failure:
                break
            if up.bucket is not None:
                await up.bucket.take(item.row.size)
            payload = wire.with_replayed(item.row.payload) if item.replayed else item.row.payload
            up.link.publish_nowait(item.row.topic, payload, item.row.qos, False,
                                   lambda exc, it=item: finished(it, exc))
        raise failure[0]

    async def close(self) -> None:
        """Say goodbye on the active uplink: the devices' last states, then `offline` (no will fires)."""
        while not self._sub.queue.empty():  # what the bus still holds: devices just marked offline
            self._take(self._sub.get_nowait())
        self.flush_coalesced()
        up = self.active
        if up is None or not up.link.connected.is_set():
            return
        out = wire.gateway_status(self.topics, "offline", now_ms(), self.version)
        try:
            await asyncio.wait_for(self._flush_states(up), 1.5)
            await asyncio.wait_for(up.link.publish(out.topic, out.payload, 1, True), 1.5)
        except (LinkDown, PublishRejected, TimeoutError):
            log.warning("could not say goodbye to the broker; its will marks the gateway offline")

    # --- refused publishes --------------------------------------------------------
    def _park(self, item: Item, reason: str) -> None:
        self.outbox.park(item)
        self._parked.append((time.monotonic() + PARK_RETRY_S, item))
        if len(self._parked) > MAX_PARKED:
            _, oldest = self._parked.pop(0)
            self.outbox.discard(oldest, "refused by the broker too long")
        self._report_refusal(item.row.topic, item.row.device, reason)

    def _report_refusal(self, topic: str, device: str, reason: str) -> None:
        """Once a minute per topic: a log line and (for a device) an `uplink_rejected` event."""
        last = self._rejections_reported.get(topic, -PARK_RETRY_S)
        if time.monotonic() - last < PARK_RETRY_S:
            return
        self._rejections_reported[topic] = time.monotonic()
        log.error("%s on %s (kept; retried every %.0f s)", reason, topic, PARK_RETRY_S)
        if device:
            self.bus.publish(Event(device, now_ms(), "uplink_rejected", "warning",
                                   f"{reason} on {topic}; kept and retried", {"topic": topic}))

    def _unpark(self) -> None:
        now = time.monotonic()
        due = [item for when, item in self._parked if when <= now]
        if due:
            self._parked = [(w, i) for w, i in self._parked if w > now]
            self.outbox.unpark(due)

    # --- visibility -----------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        stats = self.outbox.stats()
        return {"uplink": self.active.name if self.active else None, "backlog": stats["messages"],
                "oldest_age_s": max(c["oldest_age_s"] for c in stats["backlog"].values())}

    def uplink_stats(self) -> list[dict[str, Any]]:
        summary = self.summary()
        out = []
        for up in self.uplinks:
            s = up.link.stats()
            s.update({"active": up is self.active, "healthy": up.healthy(), "priority": up.priority,
                      "budget_kbps": up.budget_kbps, "reported_down": dict(up.reported_down),
                      "backlog": summary["backlog"], "oldest_age_s": summary["oldest_age_s"]})
            out.append(s)
        return out

    def outbox_stats(self) -> dict[str, Any]:
        return self.outbox.stats() | {"send_rate_per_s": round(self._rate.per_second(), 1),
                                      "parked": len(self._parked), "failovers": self.failovers}


class _Rate:
    """Messages per second over the last ten seconds."""

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}

    def add(self) -> None:
        sec = int(time.monotonic())
        self._buckets[sec] = self._buckets.get(sec, 0) + 1
        if len(self._buckets) > 20:
            for old in sorted(self._buckets)[:-12]:
                del self._buckets[old]

    def per_second(self) -> float:
        now = int(time.monotonic())
        return sum(v for k, v in self._buckets.items() if now - 10 <= k < now) / 10.0

