"""REGISTER (digest), unregister, registration expiry and keepalives: who is registered and online.

A device is online while its registration holds and it has been heard within
`heartbeat_s × heartbeat_misses`. Each device has two timers (asyncio TimerHandles,
moved on each refresh or keepalive): no polling, even with a thousand devices.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from drivers.gb28181 import sip
from drivers.gb28181.digest import Digest
from drivers.gb28181.options import Camera, Platform
from drivers.gb28181.sip import SipMessage
from drivers.gb28181.transport import Peer, SipTransport

log = logging.getLogger(__name__)

DEFAULT_EXPIRES = 3600
EXPIRY_GRACE_S = 5.0


@dataclass
class Channel:
    gb_id: str
    device: str  # the kit's (or discovered) device id
    kind: str
    name: str = ""
    status: str = "ON"
    ptz_type: int | None = None
    feed: object | None = None  # its FeedServer (drivers/gb28181/feed.py)


@dataclass
class DevState:
    cam: Camera
    peer: Peer | None = None
    contact: str = ""
    register_call_id: str = ""
    registered_until: float = 0.0  # loop time
    online: bool = False
    last_heard: float = 0.0
    channels: dict[str, Channel] = field(default_factory=dict)
    registered: asyncio.Event = field(default_factory=asyncio.Event)
    generation: int = 0  # +1 for each fresh registration (a reboot, a new Call-ID)
    expiry: asyncio.TimerHandle | None = None
    heartbeat: asyncio.TimerHandle | None = None
    last_auth_event: float = -1e9

    @property
    def valid(self) -> bool:
        return self.registered_until > asyncio.get_running_loop().time()


OnOnline = Callable[[DevState, bool, str], None]
OnFresh = Callable[[DevState], None]
OnAuthFailed = Callable[[DevState, str], None]


class Registrar:
    def __init__(self, platform: Platform, cameras: list[Camera], transport: SipTransport,
                 on_online: OnOnline, on_fresh: OnFresh, on_auth_failed: OnAuthFailed) -> None:
        self.platform = platform
        self.transport = transport
        self.digest = Digest(platform.realm)
        self.devices: dict[str, DevState] = {c.device_id: DevState(c) for c in cameras}
        self.on_online, self.on_fresh, self.on_auth_failed = on_online, on_fresh, on_auth_failed
        self.counts: Counter[str] = Counter()
        self.unknown_ids: deque[str] = deque(maxlen=20)

    def reset(self, transport: SipTransport) -> None:
        """A new run of the listener: nobody is registered any more (devices learn it at their next keepalive)."""
        self.transport = transport
        for st in self.devices.values():
            self._cancel_timers(st)
            st.registered_until = 0.0
            st.registered.clear()
            st.online = False
            st.peer = None

    def known(self, msg: SipMessage) -> DevState | None:
        try:
            user = sip.name_addr(msg.get("From")).user
        except ValueError:
            return None
        return self.devices.get(user)

    def unknown(self, gb_id: str) -> None:
        self.counts["unknown_devices"] += 1
        if gb_id not in self.unknown_ids:
            self.unknown_ids.append(gb_id[:40])

    # -- REGISTER --------------------------------------------------------------------
    def register(self, req: SipMessage, peer: Peer) -> None:
        def answer(status: int, reason: str, headers: list[tuple[str, str]] | None = None) -> None:
            self.transport.respond(req, sip.response_to(req, status, reason, sip.new_tag(), peer.addr, headers), peer)

        self.counts["registers"] += 1
        try:
            user = sip.name_addr(req.get("From")).user or sip.name_addr(req.get("To")).user
            expires = self._expires(req)
        except ValueError:
            self.counts["bad_registers"] += 1
            return answer(400, "Bad Request")
        st = self.devices.get(user)
        if st is None:
            self.unknown(user)
            return answer(404, "Not Found")
        auth = req.get("Authorization")
        if not auth:
            self.counts["challenges"] += 1
            return answer(401, "Unauthorized", [("WWW-Authenticate", self.digest.challenge())])
        verdict = self.digest.check(auth, "REGISTER", user, st.cam.password)
        if verdict in ("bad", "stale"):
            self.counts["challenges"] += 1
            return answer(401, "Unauthorized", [("WWW-Authenticate", self.digest.challenge(stale=verdict == "stale"))])
        if verdict == "wrong":
            self.counts["auth_failures"] += 1
            self.on_auth_failed(st, "wrong password (digest response does not match)")
            return answer(403, "Forbidden")
        loop = asyncio.get_running_loop()
        now = loop.time()
        contact = req.get("Contact")
        if expires == 0:
            self.counts["unregisters"] += 1
            answer(200, "OK", [("Date", _gb_date())])
            self._drop(st, "unregistered (Expires: 0)")
            return
        expires = min(expires, int(self.platform.max_expires_s))
        fresh = not st.valid or req.call_id != st.register_call_id
        st.peer, st.contact, st.register_call_id = peer, contact, req.call_id
        st.registered_until = now + expires
        self.counts["registrations"] += 1
        headers = [("Date", _gb_date()), ("Expires", str(expires))]
        if contact:
            headers.insert(0, ("Contact", f"{contact.split(';expires=')[0]};expires={expires}" if "<" in contact else contact))
        answer(200, "OK", headers)
        if st.expiry is not None:
            st.expiry.cancel()
        st.expiry = loop.call_later(expires + EXPIRY_GRACE_S, self._expired, st)
        st.registered.set()
        if fresh:
            st.generation += 1
            self.counts["fresh_registrations"] += 1
        self.heard(st, peer)
        if fresh:
            self.on_fresh(st)

    def _expires(self, req: SipMessage) -> int:
        value = req.get("Expires")
        if not value:
            contact = req.get("Contact")
            value = sip.name_addr(contact).params.get("expires", "") if contact and contact != "*" else ""
        if not value:
            return DEFAULT_EXPIRES
        if not value.strip().isdigit():
            raise ValueError("bad Expires")
        return int(value.strip())

    # -- liveness --------------------------------------------------------------------
    def heard(self, st: DevState, peer: Peer) -> bool:
        """A valid message from a registered device; False (and nothing changes) if it is not registered."""
        if not st.valid:
            return False
        st.peer = peer  # a NAT may have moved it; answers go where it speaks from
        loop = asyncio.get_running_loop()
        st.last_heard = time.time()
        if st.heartbeat is not None:
            st.heartbeat.cancel()
        window = self.platform.heartbeat_s * self.platform.heartbeat_misses
        st.heartbeat = loop.call_later(window, self._silent, st)
        if not st.online:
            st.online = True
            self.on_online(st, True, "registered" if st.generation else "heard")
        return True

    def _silent(self, st: DevState) -> None:
        st.heartbeat = None
        if st.online:
            self.counts["heartbeat_timeouts"] += 1
            window = self.platform.heartbeat_s * self.platform.heartbeat_misses
            st.online = False
            self.on_online(st, False, f"no keepalive for {window:g} s ({self.platform.heartbeat_misses} missed)")

    def _expired(self, st: DevState) -> None:
        st.expiry = None
        self.counts["expired"] += 1
        self._drop(st, "registration expired")

    def _drop(self, st: DevState, reason: str) -> None:
        self._cancel_timers(st)
        st.registered_until = 0.0
        st.registered.clear()
        if st.online:
            st.online = False
            self.on_online(st, False, reason)

    @staticmethod
    def _cancel_timers(st: DevState) -> None:
        for h in (st.expiry, st.heartbeat):
            if h is not None:
                h.cancel()
        st.expiry = st.heartbeat = None

    def stats(self) -> dict[str, object]:
        return {**self.counts, "registered": sum(1 for s in self.devices.values() if s.registered.is_set()),
                "unknown_ids": list(self.unknown_ids)}


def _gb_date() -> str:
    """GB/T 28181-2016 §9.10 time sync: `Date: yyyy-MM-ddTHH:mm:ss.SSS` (local time, no zone)."""
    now = datetime.now()
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}"
