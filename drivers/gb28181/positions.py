"""MobilePosition: a SUBSCRIBE (`Event: presence`, the interval in its body) kept renewed, and the
positions that come back as NOTIFY or MESSAGE → `Position(source="gb28181")`.

A position names the device or one of its channels (devices differ): it goes to that
channel's device, else to the kit's device. Speed is km/h on the wire, m/s in the model.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from drivers.gb28181 import manscdp
from drivers.gb28181.dialog import MANSCDP, Dialog, Requests
from drivers.gb28181.options import Platform
from drivers.gb28181.registrar import DevState
from drivers.gb28181.transport import SipTransport
from gateway.model import Position, now_ms

if TYPE_CHECKING:
    from drivers.gb28181.driver import Gb28181Driver

log = logging.getLogger(__name__)

RENEW_AT = 0.8  # of the granted expiry
RETRY_S = 60.0  # after a refused or failed SUBSCRIBE


class Positions:
    def __init__(self, driver: Gb28181Driver, platform: Platform, next_sn: Callable[[], int]) -> None:
        self.driver = driver
        self.next_sn = next_sn
        self.platform = platform
        self.transport: SipTransport | None = None
        self.requests: Requests | None = None
        self.dialogs: dict[str, Dialog] = {}  # device GB id → its subscription
        self.counts: Counter[str] = Counter()

    def attach(self, transport: SipTransport, requests: Requests) -> None:
        self.transport, self.requests = transport, requests

    def forget(self, st: DevState) -> None:
        self.dialogs.pop(st.cam.device_id, None)

    async def close(self) -> None:
        self.dialogs.clear()

    async def subscribe_loop(self, st: DevState) -> None:
        """Subscribe, renew before expiry, subscribe anew when a renewal is refused; ends when cancelled."""
        assert self.transport is not None and self.requests is not None
        dlg: Dialog | None = None
        while st.valid and st.peer is not None:
            peer = st.peer
            interval = max(1, int(st.cam.position_interval_s))
            expires = int(self.platform.subscribe_expires_s)
            body = manscdp.build("Query", "MobilePosition", self.next_sn(), st.cam.device_id,
                                 [("Interval", str(interval))], self.platform.charset)
            fresh = dlg is None
            if dlg is None:
                dlg = self.requests.new_dialog(st.cam.device_id, peer)
            req = self.requests.in_dialog(dlg, "SUBSCRIBE", body, MANSCDP, cseq=1 if fresh else None,
                                          headers=[("Event", "presence"), ("Expires", str(expires))])
            self.counts["subscribes" if fresh else "subscribe_renewals"] += 1
            try:
                resp = await self.transport.request(req, peer, 10.0)
            except (TimeoutError, ConnectionError) as exc:
                self.counts["subscribe_failed"] += 1
                log.info("SUBSCRIBE to %s failed: %s", st.cam.id, exc or "timeout")
                dlg = None
                await asyncio.sleep(RETRY_S)
                continue
            if not 200 <= resp.status < 300:
                self.counts[f"subscribe_{resp.status}"] += 1
                dlg = None
                await asyncio.sleep(RETRY_S)
                continue
            if fresh:
                dlg.absorb(resp)
            self.dialogs[st.cam.device_id] = dlg
            granted = resp.get("Expires")
            seconds = int(granted) if granted.isdigit() and int(granted) > 0 else expires
            await asyncio.sleep(max(1.0, seconds * RENEW_AT))

    def received(self, st: DevState, doc: manscdp.Doc) -> None:
        try:
            pos = manscdp.mobile_position(doc)
        except manscdp.ManscdpError:
            self.counts["bad_positions"] += 1
            return
        if pos.lat == 0 and pos.lon == 0:
            self.counts["positions_without_fix"] += 1
            return
        device = st.cam.id
        for ch in st.channels.values():
            if ch.gb_id == pos.device_id and pos.device_id != st.cam.device_id:
                device = ch.device
        speed = pos.speed_kmh / 3.6 if pos.speed_kmh is not None else None
        fix = "3d" if pos.alt_m is not None else "2d"
        self.counts["positions"] += 1
        self.driver.ctx.publish(Position(device, now_ms(), pos.lat, pos.lon, pos.alt_m, pos.direction_deg, speed, fix, "gb28181"))
