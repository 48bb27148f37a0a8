"""One-key dispatch: one order to every target over the best channel each has.

`submit()` checks the order (400 for an empty text, an unknown target, a bad
priority), picks each target's channel, splits or shortens the text to that
channel's limit, stores the dispatch (data dir, survives a restart) and
queues the deliveries. One worker per carrier (a radio or satellite modem)
sends one part at a time, `flash` before `routine`, and waits while its
carrier is offline (nothing is dropped). A part that fails is retried with
bounded backoff and jitter; after `MAX_ATTEMPTS` the delivery moves to the
target's next channel, or fails with the reason. MQTT deliveries go to
`{root}/devices/{id}/orders` through the durable outbox and are `delivered`
when the broker acknowledges them.

Every change is published on the bus (DispatchChanged → `dispatch/acks`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gateway.backoff import Backoff
from gateway.bus import Bus
from gateway.dispatch_model import MAX_TEXT, PRIORITIES, Delivery, Dispatch
from gateway.dispatch_routes import RoutePlanner
from gateway.dispatch_split import fit
from gateway.dispatch_store import DispatchStore
from gateway.driver_api import CommandError, Driver
from gateway.model import DispatchChanged, OnlineChange, Order, new_id, now_ms
from gateway.registry import DeviceRegistry

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 4  # per part and channel, then the next channel
MAX_OPEN_DELIVERIES = 20_000  # more than this waiting: new dispatches are refused (503), none dropped
DEFAULT_SEND_TIMEOUT_S = 60.0
RECENT_KEPT = 500
FLUSH_S = 0.5  # delivery changes are written and published at most this often
_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class DispatchRefused(Exception):
    def __init__(self, http_status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message


class _CarrierQueue:
    """The parts waiting for one modem: flash first, then in order of arrival."""

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, Dispatch, Delivery]] = []
        self.wake = asyncio.Event()
        self.online = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class Dispatcher:
    def __init__(self, bus: Bus, registry: DeviceRegistry, driver_for: Callable[[str], Driver | None],
                 data_dir: Path, mqtt_targets: set[str], via: dict[str, list[str]], retry_initial_s: float = 1.0) -> None:
        self.bus = bus
        self.registry = registry
        self.driver_for = driver_for
        self.routes = RoutePlanner(registry, driver_for, mqtt_targets, via)
        self._path = data_dir / "dispatch.sqlite3"
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-db")
        self._store: DispatchStore | None = None
        self.dispatches: dict[str, Dispatch] = {}  # open ones and the most recent
        self._carriers: dict[str, _CarrierQueue] = {}
        self._seq = itertools.count()
        self._mqtt_pending: dict[str, tuple[Dispatch, Delivery]] = {}  # order message id → delivery
        self._retry_initial_s = retry_initial_s
        self._submitting = asyncio.Lock()
        self._dirty: dict[str, set[int]] = {}  # dispatch id → indices of deliveries changed since the last flush
        self._flush_now = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self.store_error = ""  # the last failure to write the records, until a write succeeds
        bus.add_tap(self._tap)

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self) -> None:
        self._store = await self._db(DispatchStore, self._path)
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="dispatch-flush")
        for d in await self._db(self._store.open_dispatches):
            self.dispatches[d.id] = d
            for dl in d.deliveries:
                if not dl.final:
                    dl.note = (dl.note + "; " if dl.note else "") + "resumed after a gateway restart"
                    self._enqueue(d, dl)
        if self.dispatches:
            log.info("resumed %d open dispatch(es)", len(self.dispatches))

    async def close(self) -> None:
        tasks = [q.task for q in self._carriers.values() if q.task] + ([self._flusher] if self._flusher else [])
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._flush()  # what changed since the last flush
        if self._store is not None:
            await self._db(self._store.close)
        self._pool.shutdown(wait=True)

    # -- orders in -------------------------------------------------------------------
    async def submit(self, body: Any, issued_by: str) -> Dispatch:
        """Check and start one dispatch; DispatchRefused with a clear reason otherwise."""
        async with self._submitting:  # one at a time: a redelivered id must find the first one
            return await self._submit(body, issued_by)

    async def _submit(self, body: Any, issued_by: str) -> Dispatch:
        text, targets, priority = _check(body)
        client_id = body.get("id")
        if client_id is not None:
            if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
                raise DispatchRefused(400, "bad_dispatch_id", "a dispatch id is 1-64 characters of A-Z a-z 0-9 . _ : -")
            existing = await self.get(client_id)
            if existing is not None:
                return existing  # a redelivered message (MQTT QoS 1): never dispatched twice
        ids = self.routes.all_targets() if targets == "all" else targets
        if targets != "all":
            unknown = [t for t in ids if self.registry.get(t) is None]
            if unknown:
                raise DispatchRefused(400, "unknown_target", f"no device {', '.join(unknown)}")
        if not ids:
            raise DispatchRefused(400, "no_targets", "no device in this kit can take a text order")
        if sum(len(q.heap) for q in self._carriers.values()) + len(ids) > MAX_OPEN_DELIVERIES:
            raise DispatchRefused(503, "dispatch_backlog_full", "too many deliveries still waiting; try again later")
        d = Dispatch(id=client_id or new_id(), text=text, priority=priority, targets=targets, issued_by=issued_by, ts=now_ms())
        d.deliveries = [self.routes.plan(dev_id, text) for dev_id in dict.fromkeys(ids)]
        try:
            await self._save(d)
        except Exception as exc:  # nothing accepted, nothing remembered: the client may retry with the same id
            log.error("dispatch %s could not be stored: %s", d.id, exc)
            raise DispatchRefused(503, "dispatch_store_failed", f"the order could not be stored ({exc}); nothing was sent") from None
        self.dispatches[d.id] = d
        self.bus.publish(DispatchChanged("", now_ms(), d.public()))
        for dl in d.deliveries:
            if not dl.final:
                self._enqueue(d, dl)
        self._forget_old()
        return d

    async def get(self, dispatch_id: str) -> Dispatch | None:
        d = self.dispatches.get(dispatch_id)
        if d is None and self._store is not None:
            d = await self._db(self._store.load, dispatch_id)
        return d

    def recent(self, limit: int = 50) -> list[Dispatch]:
        return sorted(self.dispatches.values(), key=lambda d: d.ts, reverse=True)[:limit]

    # -- sending -------------------------------------------------------------------------
    def _enqueue(self, d: Dispatch, dl: Delivery) -> None:
        if dl.channel == "mqtt":
            self._send_mqtt(d, dl)
            return
        q = self._carriers.get(dl.carrier)
        if q is None:
            q = self._carriers[dl.carrier] = _CarrierQueue()
            dev = self.registry.get(dl.carrier)
            if dev is not None and dev.online:
                q.online.set()
            q.task = asyncio.get_running_loop().create_task(self._carrier_loop(dl.carrier, q), name=f"dispatch:{dl.carrier}")
        heapq.heappush(q.heap, (PRIORITIES.index(d.priority), next(self._seq), d, dl))
        q.wake.set()

    async def _carrier_loop(self, carrier: str, q: _CarrierQueue) -> None:
        while True:
            while not q.heap:
                q.wake.clear()
                await q.wake.wait()
            await q.online.wait()
            if not q.heap:  # rerouted while waiting
                continue
            prio, seq, d, dl = heapq.heappop(q.heap)
            try:
                more = await self._send_part(carrier, q, d, dl)
            except Exception:  # one bad delivery must not stop the modem's queue
                log.exception("dispatch %s to %s failed unexpectedly", d.id, dl.device)
                self._update(d, dl, "failed", "internal error while sending")
                continue
            if more:  # one part per turn: a flash order waits for one part, not a whole long order
                heapq.heappush(q.heap, (prio, seq, d, dl))

    async def _send_part(self, carrier: str, q: _CarrierQueue, d: Dispatch, dl: Delivery) -> bool:
        """Send the delivery's next part (with its retries); True when parts remain on this channel."""
        backoff = Backoff(initial=self._retry_initial_s, maximum=30.0)
        if dl.parts_done == 0:
            self._refit(d, dl)  # the channel's limit may be known only now (a BeiDou card read at connect)
        tries = 0
        while True:
            driver = self.driver_for(carrier)
            if driver is None:
                self._fail_over(d, dl, f"no driver runs {carrier}")
                return False
            await q.online.wait()
            if dl.carrier != carrier:  # rerouted while this modem was away
                return False
            tries += 1
            dl.attempts += 1
            part = dl.parts[dl.parts_done]
            timeout = driver.command_timeout("text") or DEFAULT_SEND_TIMEOUT_S

            def on_sent() -> None:
                if dl.status == "queued":
                    self._update(d, dl, "sent", f"taken by {carrier}")

            try:
                async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel on 3.11 (gh-86296)
                    detail = await driver.execute(carrier, "text", {"to": dl.to, "text": part}, on_sent)
            except (CommandError, TimeoutError) as exc:
                reason = exc.detail if isinstance(exc, CommandError) else f"no answer within {timeout:g} s"
                if (isinstance(exc, CommandError) and exc.status == "rejected") or tries >= MAX_ATTEMPTS:
                    self._fail_over(d, dl, reason)
                    return False
                self._update(d, dl, dl.status, f"attempt {tries} failed: {reason}; retrying")
                await asyncio.sleep(backoff.next_delay())
                continue
            dl.parts_done += 1
            if dl.parts_done == len(dl.parts):
                self._update(d, dl, "delivered", detail or f"delivered via {dl.channel}")
                return False
            self._update(d, dl, "sent", f"part {dl.parts_done} of {len(dl.parts)}: {detail}")
            return True

    def _refit(self, d: Dispatch, dl: Delivery) -> None:
        route = self.routes.route_for(dl)
        if route is not None:
            parts, note = fit(d.text, route.size, route.max_size, route.max_parts)
            if parts != dl.parts:
                dl.parts, dl.note = parts, note

    def _fail_over(self, d: Dispatch, dl: Delivery, reason: str) -> None:
        """This channel gave up: the target's next channel, or failed."""
        old, sent = dl.channel, dl.parts_done
        if not self.routes.next_channel(dl, d.text, reason):
            self._update(d, dl, "failed", reason)
            return
        again = f" ({sent} part(s) already sent over {old} go again)" if sent else ""
        self._update(d, dl, "queued", f"{old} failed; trying {dl.channel}{again}")
        self._enqueue(d, dl)

    def _reroute_waiting(self) -> None:
        """Deliveries waiting for an offline modem move to another channel of theirs that is online."""
        for carrier, q in list(self._carriers.items()):  # rerouting may add a carrier's queue
            if q.online.is_set() or not q.heap:
                continue
            keep = []
            for item in q.heap:
                _, _, d, dl = item
                if dl.parts_done == 0 and self.routes.reroute(dl, d.text, f"{carrier} is offline"):
                    self._update(d, dl, "queued", f"{carrier} offline; now via {dl.channel}")
                    self._enqueue(d, dl)
                else:
                    keep.append(item)
            if len(keep) != len(q.heap):
                q.heap[:] = keep
                heapq.heapify(q.heap)

    def _send_mqtt(self, d: Dispatch, dl: Delivery) -> None:
        if dl.order_id and dl.status == "sent":  # resumed: the order is in the durable outbox already
            self._mqtt_pending[dl.order_id] = (d, dl)
            return
        dl.order_id = new_id()
        self._mqtt_pending[dl.order_id] = (d, dl)
        self.bus.publish(Order(dl.device, now_ms(), dl.order_id, d.id, d.text, d.priority))
        dl.attempts += 1
        self._update(d, dl, "sent", "handed to the uplink's outbox")

    def order_acked(self, msg_id: str) -> None:
        """The broker acknowledged an order message (called by the uplink)."""
        found = self._mqtt_pending.pop(msg_id, None)
        if found is not None:
            d, dl = found
            dl.parts_done = len(dl.parts)
            self._update(d, dl, "delivered", "acknowledged by the broker")

    # -- records -------------------------------------------------------------------------
    def _update(self, d: Dispatch, dl: Delivery, status: str, detail: str) -> None:
        """Record a delivery's change; it is written and published with the next flush."""
        if dl.final and status != "queued":
            return
        dl.status = status  # type: ignore[assignment]
        dl.detail = detail
        dl.ts_updated = now_ms()
        self._dirty.setdefault(d.id, set()).add(next(i for i, x in enumerate(d.deliveries) if x is dl))
        self._flush_now.set()

    async def _save(self, d: Dispatch) -> None:
        """Write one new dispatch at once: it must be on disk before the 202."""
        if self._store is not None:
            await self._db(self._store.save_many, [d])

    async def _flush_loop(self) -> None:
        """Changes are written and published at most every FLUSH_S: one transaction for all of them,
        and `dispatch/acks` carries only the deliveries that changed (a 100-target order would
        otherwise rewrite and resend its whole record on every one of ~200 changes)."""
        backoff = Backoff(initial=FLUSH_S, maximum=30.0)
        while True:
            await self._flush_now.wait()
            await asyncio.sleep(FLUSH_S)
            try:
                await self._flush()
                backoff.connected()
            except Exception as exc:  # the disk refused: keep the changes, say so, try again
                self.store_error = f"{type(exc).__name__}: {exc}"
                log.error("dispatch records could not be written (%s); retrying", self.store_error)
                self._flush_now.set()
                await asyncio.sleep(backoff.next_delay())
            else:
                self.store_error = ""

    async def _flush(self) -> None:
        self._flush_now.clear()
        dirty, self._dirty = self._dirty, {}
        batch = [self.dispatches[i] for i in dirty if i in self.dispatches]
        if not batch:
            return
        if self._store is not None:
            try:
                await self._db(self._store.save_many, batch)
            except BaseException:
                for i, idx in dirty.items():  # nothing of this batch was written: keep it for the next try
                    self._dirty.setdefault(i, set()).update(idx)
                raise
        for d in batch:
            self.bus.publish(DispatchChanged("", now_ms(), d.public(), None if d.done else sorted(dirty[d.id])))

    def _forget_old(self) -> None:
        done = [d for d in self.dispatches.values() if d.done and d.id not in self._dirty]
        for d in sorted(done, key=lambda d: d.ts)[:-RECENT_KEPT] if len(done) > RECENT_KEPT else []:
            del self.dispatches[d.id]

    def _tap(self, msg: object) -> None:
        if not isinstance(msg, OnlineChange):
            return
        q = self._carriers.get(msg.device)
        if q is not None:
            (q.online.set if msg.online else q.online.clear)()
        if q is not None or msg.online:  # a modem went away, or some device (maybe a modem) came up
            self._reroute_waiting()

    def stats(self) -> dict[str, Any]:
        return {"open": sum(1 for d in self.dispatches.values() if not d.done), "store_error": self.store_error,
                "waiting": {c: len(q.heap) for c, q in self._carriers.items()}}


def _check(body: Any) -> tuple[str, list[str] | str, str]:
    if not isinstance(body, dict):
        raise DispatchRefused(400, "bad_dispatch", "body must be a JSON object")
    unknown = sorted(set(body) - {"text", "targets", "priority", "id"})
    if unknown:
        raise DispatchRefused(400, "bad_dispatch", f"unknown field(s): {', '.join(unknown)}")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise DispatchRefused(400, "empty_text", "text must be a non-empty string")
    if len(text) > MAX_TEXT:
        raise DispatchRefused(400, "text_too_long", f"text is {len(text)} characters; an order carries at most {MAX_TEXT}")
    targets = body.get("targets")
    if targets != "all" and not (isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets)):
        raise DispatchRefused(400, "bad_targets", 'targets must be "all" or a non-empty list of device ids')
    priority = body.get("priority", "routine")
    if priority not in PRIORITIES:
        raise DispatchRefused(400, "bad_priority", 'priority must be "flash" or "routine"')
    return text.strip(), targets, priority
