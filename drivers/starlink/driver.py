"""Starlink dish driver: the dish's local gRPC status API as a `satcom` device.

Transport `grpc://HOST:PORT` (a dish answers at 192.168.100.1:9200). Each
`run()` learns the message types by server reflection (a firmware update
comes with a reboot, so they are learned afresh on every connect) and then
asks `Request{get_status{}}` every `poll_s`. The answer is read by field
name (drivers/starlink/status.py).

Published: the status map and telemetry each poll; events when an alert is
raised or cleared and when an obstruction starts or ends; `LinkHealth` for
the uplink manager whenever the verdict changes. The link is down when the
dish does not answer, when `pop_ping_drop_rate >= max_drop_rate` (and up again
after two polls below it), or when it has been obstructed for
`obstruction_grace_s`. After `max_failures` polls in
a row without an answer the run ends with ConnectionError (the supervisor
marks the dish offline and backs off).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, ClassVar
from urllib.parse import urlsplit

import grpc

from drivers.starlink.reflection import ReflectionError, learn_method
from drivers.starlink.status import METHOD, SERVICE, DishStatus, NotADish, build_request, read_status
from gateway.driver_api import Driver, DriverContext, LinkSpec
from gateway.model import Event, LinkHealth, Severity, StatusUpdate, Telemetry, now_ms

log = logging.getLogger(__name__)

# option: (default, low, high); max_failures is a whole number
OPTIONS: dict[str, tuple[float, float, float]] = {
    "poll_s": (5.0, 0.1, 3600.0),
    "max_drop_rate": (0.5, 0.0, 1.0),
    "obstruction_grace_s": (10.0, 0.0, 3600.0),
    "timeout_s": (3.0, 0.1, 60.0),
    "max_failures": (3, 1, 100),
}
RECOVER_POLLS = 2  # polls in a row below max_drop_rate before a link down on drops counts as up again
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 500), ("grpc.max_reconnect_backoff_ms", 5000),
                   ("grpc.enable_http_proxy", 0)]


def parse_target(transport: str) -> str:
    """`grpc://HOST:PORT` → `HOST:PORT`; ValueError with a reason a person can act on."""
    parts = urlsplit(transport)
    if parts.scheme != "grpc":
        raise ValueError(f"transport must be grpc://HOST:PORT (a dish: grpc://192.168.100.1:9200), not {transport!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or not port or parts.path not in ("", "/") or parts.query:
        raise ValueError(f"transport must be grpc://HOST:PORT (a dish: grpc://192.168.100.1:9200), not {transport!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


class StarlinkDriver(Driver):
    name: ClassVar[str] = "starlink"
    default_kind: ClassVar[str] = "satcom"
    transport_schemes: ClassVar[tuple[str, ...]] = ("grpc",)

    def __init__(self, link: LinkSpec, ctx: DriverContext) -> None:
        super().__init__(link, ctx)
        self.dish = link.devices[0]
        self.target = parse_target(link.transport)
        opts = self.dish.options
        self.poll_s, self.max_drop_rate, self.grace_s, self.timeout_s = (
            float(opts.get(k, OPTIONS[k][0])) for k in ("poll_s", "max_drop_rate", "obstruction_grace_s", "timeout_s"))
        self.max_failures = int(opts.get("max_failures", OPTIONS["max_failures"][0]))
        self.counts: Counter[str] = Counter()
        # What the last answer said; kept across runs so a dish coming back does not repeat old news.
        self._health: tuple[bool, str] | None = None  # (up, why): published again only when this changes
        self._alerts: set[str] | None = None
        self._obstructed_since: float | None = None  # monotonic time obstruction was first seen
        self._drops_ok = 0  # polls in a row below max_drop_rate since the link went down on drops

    # -- kit checks ------------------------------------------------------------------
    @classmethod
    def check_device(cls, options: dict[str, Any], transport: str) -> list[tuple[tuple[str | int, ...], str]]:
        """Paths are below the device's `options` (as gateway/kit.py reports them)."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        try:
            parse_target(transport)
        except ValueError as exc:  # the kit checks host and port itself; this adds path and query
            problems.append(((), str(exc)))
        for name, value in options.items():
            if name not in OPTIONS:
                problems.append(((name,), f"unknown option {name!r}; the starlink driver takes {', '.join(OPTIONS)}"))
                continue
            _, lo, hi = OPTIONS[name]
            whole = name == "max_failures"
            if isinstance(value, bool) or not isinstance(value, int if whole else int | float) or not lo <= value <= hi:
                problems.append(((name,), f"{name} must be a {'whole ' if whole else ''}number {lo:g}..{hi:g}"))
        return problems

    @classmethod
    def check_link(cls, devices: list[dict[str, Any]]) -> list[tuple[int, tuple[str | int, ...], str]]:
        return [(i, (), "one dish per grpc:// address: this transport is already used by device #1")
                for i in range(1, len(devices))]

    # -- the link ----------------------------------------------------------------------
    async def run(self) -> None:
        channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        try:
            try:
                method = await learn_method(channel, SERVICE, METHOD, self.timeout_s * 2)
                request = build_request(method.request)
            except (grpc.RpcError, TimeoutError, ReflectionError, NotADish) as exc:
                self.counts["reflection_failures"] += 1
                why = _why(exc)
                self._link(False, "no_answer", f"dish at {self.target} not answering: {why}")
                raise ConnectionError(f"cannot learn the dish's API at {self.target}: {why}") from None
            self.counts["reflections"] += 1
            handle = channel.unary_unary(method.path, request_serializer=method.request.SerializeToString,
                                         response_deserializer=method.response.FromString)
            await self._poll_loop(handle, request)
        finally:
            await channel.close(grace=None)

    async def _poll_loop(self, handle: Any, request: Any) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        online = False
        next_poll = loop.time()
        while True:
            wake = next_poll
            if self._obstructed_since is not None and self._health is not None and self._health[0]:
                # an obstruction's grace runs out between two polls: look again right then
                grace_end = loop.time() + self.grace_s - (time.monotonic() - self._obstructed_since) + 0.01
                wake = min(wake, grace_end)
            await asyncio.sleep(max(0.0, wake - loop.time()))
            started, scheduled = loop.time(), loop.time() >= next_poll
            self.counts["polls"] += 1
            try:
                status = read_status(await handle(request, timeout=self.timeout_s))
            except (grpc.RpcError, NotADish) as exc:
                status, failures, why = None, failures + 1, _why(exc)
                self.counts["failed_polls"] += 1
                log.debug("dish %s poll failed (%d/%d): %s", self.target, failures, self.max_failures, why)
                what = "gives no dish status" if isinstance(exc, NotADish) else "not answering"
                self._link(False, "no_answer", f"dish at {self.target} {what}: {why}")
                if failures >= self.max_failures:
                    raise ConnectionError(f"dish at {self.target} failed {failures} polls in a row: {why}") from None
            if scheduled:  # the cadence holds even when a call is slow (never less than half a poll apart)
                next_poll = max(started + self.poll_s, loop.time() + self.poll_s / 2)
            if status is None:
                continue
            failures = 0
            if not online:
                online = True
                self.ctx.set_online(self.dish.id, True, f"dish answering at {self.target}")
            self._take(status)

    # -- what the dish said -------------------------------------------------------------
    def _take(self, s: DishStatus) -> None:
        dev = self.dish.id
        self._obstruction(s)
        self._alert_changes(s)
        up, why, detail = self._verdict(s)
        self._link(up, why, detail)
        ts = now_ms()
        status = s.status()
        status.update({"link_up": up, "link_detail": detail})
        self.ctx.publish(StatusUpdate(dev, ts, status))
        values = s.values()
        if values:
            self.ctx.publish(Telemetry(dev, ts, values))

    def _obstruction(self, s: DishStatus) -> None:
        if s.currently_obstructed and self._obstructed_since is None:
            self._obstructed_since = time.monotonic()
            pct = f" ({s.fraction_obstructed:.1%} of the sky obstructed)" if s.fraction_obstructed is not None else ""
            self._event("obstruction", "warning", f"dish obstructed{pct}", obstructed=True,
                        fraction_obstructed=s.fraction_obstructed)
        elif not s.currently_obstructed and self._obstructed_since is not None:
            lasted = time.monotonic() - self._obstructed_since
            self._obstructed_since = None
            self._event("obstruction", "info", f"dish no longer obstructed (after {lasted:.0f} s)",
                        obstructed=False, duration_s=round(lasted, 1))

    def _alert_changes(self, s: DishStatus) -> None:
        now = set(s.alerts)
        before = self._alerts if self._alerts is not None else set()
        for name in sorted(now - before):
            self._event("dish_alert", "warning", f"dish alert {name} raised", alert=name, active=True)
        for name in sorted(before - now):
            self._event("dish_alert", "info", f"dish alert {name} cleared", alert=name, active=False)
        self._alerts = now

    def _verdict(self, s: DishStatus) -> tuple[bool, str, str]:
        """(up, why, detail) for LinkHealth; `why` names the reason so that noise in the numbers is no change.

        Down on drops at once, up again only after RECOVER_POLLS polls below the limit: a drop rate
        wandering around the limit must not swing the uplinks back and forth every poll.
        """
        if s.drop_rate is not None and s.drop_rate >= self.max_drop_rate:
            self._drops_ok = 0
            return False, "drop_rate", f"PoP ping drop rate {s.drop_rate:.0%} (limit {self.max_drop_rate:.0%})"
        if self._health == (False, "drop_rate") and s.drop_rate is not None:
            self._drops_ok += 1
            if self._drops_ok < RECOVER_POLLS:
                return False, "drop_rate", f"PoP ping drop rate {s.drop_rate:.0%}, below the limit for {self._drops_ok} poll(s)"
        if self._obstructed_since is not None:
            lasted = time.monotonic() - self._obstructed_since
            if lasted >= self.grace_s:
                return False, "obstructed", f"dish obstructed for {lasted:.0f} s (grace {self.grace_s:g} s)"
        latency = f", latency {s.latency_ms:.0f} ms" if s.latency_ms is not None else ""
        drops = f", drop rate {s.drop_rate:.1%}" if s.drop_rate is not None else ""
        return True, "ok", f"dish online{latency}{drops}"

    def _link(self, up: bool, why: str, detail: str) -> None:
        if self._health == (up, why):
            return
        self._health = (up, why)
        self.counts["reported_up" if up else "reported_down"] += 1
        log.info("starlink %s link %s: %s", self.dish.id, "up" if up else "down", detail)
        self.ctx.publish(LinkHealth(self.dish.id, now_ms(), up, detail))

    def _event(self, type_: str, severity: Severity, text: str, **extra: Any) -> None:
        self.ctx.publish(Event(self.dish.id, now_ms(), type_, severity, text, extra))

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.counts)
        if self._health is not None:
            out["link_up"] = self._health[0]
        return out


def _why(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        details = exc.details() if callable(getattr(exc, "details", None)) else ""
        name = code.name if code is not None else "error"
        return f"{name}: {details}" if details else name
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__
