"""One simulated GB/T 28181 device: registration, keepalives, MANSCDP queries and controls, live
video on INVITE, MobilePosition, and the faults the control port triggers.

The device's life is one task: open the SIP transport, REGISTER (digest MD5 after the 401), then
keep alive and refresh the registration until it is lost (keepalives unanswered, TCP closed, a
fault), and start over after a back-off. A reboot cancels that task without a word to the platform.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from . import manscdp, sip
from .channels import DEFAULT_NAMES, Channel, channel_ids
from .inbound import ALLOW, MAX_SUBSCRIPTION_S, USER_AGENT, Dialog, InboundMixin, Subscription
from .position import Walker
from .ptz import PtzState
from .registration import AuthFailed, RegistrationMixin
from .sip import Message
from .transport import SipTransport
from .video import ChannelVideo, VideoConfig

log = logging.getLogger("hil.gb28181")

__all__ = ["ALLOW", "GARBAGE_KINDS", "MAX_SUBSCRIPTION_S", "USER_AGENT", "AuthFailed", "Device", "DeviceConfig",
           "Dialog", "Subscription", "garbage"]


@dataclass
class DeviceConfig:
    device_id: str
    platform_id: str
    realm: str
    password: str
    proto: str                              # udp | tcp
    platform: tuple[str, int]
    bind: tuple[str, int] = ("0.0.0.0", 0)
    local_ip: str | None = None
    domain: str = ""                        # SIP domain of our URIs (default: realm)
    kind: str = "dome"
    channels: int = 1
    name: str = ""
    manufacturer: str = "fieldgw-hil"
    model: str = ""
    firmware: str = "V1.0.0"
    expires: int = 3600
    keepalive: float = 60.0
    keepalive_misses: int = 3
    charset: str = "gb2312"
    catalog_batch: int = 4
    position_mode: str = "notify"           # notify | message
    position_interval: float = 5.0          # message mode: seconds between unsolicited reports (0: none)
    position: tuple[float, float] = (30.6586, 104.0648)
    speed_kmh: float = 4.5
    reboot_s: float = 5.0
    register_retry: float = 5.0             # first back-off after a failed REGISTER; doubles to 60 s
    sip_timeout: float = 32.0
    max_streams: int = 8
    video: VideoConfig = field(default_factory=VideoConfig)

    @property
    def sip_domain(self) -> str:
        return self.domain or self.realm


class Device(RegistrationMixin, InboundMixin):
    def __init__(self, cfg: DeviceConfig) -> None:
        self.cfg = cfg
        self.id = cfg.device_id
        names = cfg.name or DEFAULT_NAMES[cfg.kind]
        self.channels = [Channel(cid, n + 1, f"{names}{n + 1}" if cfg.channels > 1 else names,
                                 PtzState() if cfg.kind == "dome" else None)
                         for n, cid in enumerate(channel_ids(cfg.device_id, cfg.channels))]
        self.videos = {c.id: ChannelVideo(cfg.video, c.number, c.ptz) for c in self.channels}
        self.walker = Walker(*cfg.position, speed_kmh=cfg.speed_kmh if cfg.kind == "bodycam" else 0.0)
        self.transport: SipTransport | None = None
        self.state = "idle"
        self.password = cfg.password
        self.keepalive_paused = False
        self.dialogs: dict[str, Dialog] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.sip_port = cfg.bind[1]
        self.local_ip = cfg.local_ip or ""
        self.platform_date = ""
        self.last_register_status = 0
        self.expires_at = 0.0
        self.counters: dict[str, int] = {k: 0 for k in (
            "register_attempts", "registrations", "auth_failures", "register_errors", "keepalives_sent",
            "keepalives_ok", "keepalive_misses", "catalog_queries", "catalog_messages", "info_queries",
            "status_queries", "ptz_commands", "ptz_bad", "ptz_unsupported", "invites", "byes_received",
            "byes_sent", "positions_sent", "bad_xml", "unknown_commands", "reboots", "garbage_sent")}
        self._sn = int.from_bytes(os.urandom(2), "big")
        self._cseq = 0
        self._reg_call_id = ""
        self._reg_from_tag = ""
        self._life: asyncio.Task[None] | None = None
        self._lost: asyncio.Event | None = None
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._rebooting = False
        self._stopping = False
        self._nc = 0

    # -- identities and messages -------------------------------------------------------------

    def _next_sn(self) -> int:
        self._sn = (self._sn + 1) % 1_000_000
        return self._sn

    def _next_cseq(self) -> int:
        self._cseq += 1
        return self._cseq

    def _channel(self, code: str) -> Channel | None:
        for c in self.channels:
            if c.id == code:
                return c
        return self.channels[0] if code == self.id and self.channels else None

    @property
    def our_uri(self) -> str:
        return f"sip:{self.id}@{self.cfg.sip_domain}"

    @property
    def platform_uri(self) -> str:
        return f"sip:{self.cfg.platform_id}@{self.cfg.realm}"

    @property
    def contact(self) -> str:
        t = self.transport
        host, port = t.local if t else (self.local_ip, self.sip_port)
        return f"<sip:{self.id}@{host}:{port}>"

    def _request(self, method: str, uri: str, from_: str, to: str, call_id: str, cseq: int) -> Message:
        assert self.transport is not None
        m = Message(method=method, uri=uri)
        m.add("Via", self.transport.via(sip.new_branch()))
        m.add("From", from_)
        m.add("To", to)
        m.add("Call-ID", call_id)
        m.add("CSeq", f"{cseq} {method}")
        m.add("Max-Forwards", "70")
        m.add("User-Agent", USER_AGENT)
        return m

    def _new_call_id(self) -> str:
        host = self.transport.local[0] if self.transport else "device"
        return f"{sip.random_token(10)}@{host}"

    def _manscdp_request(self, body: bytes, method: str = "MESSAGE") -> Message:
        m = self._request(method, self.platform_uri, f"<{self.our_uri}>;tag={sip.random_token(4)}",
                          f"<{self.platform_uri}>", self._new_call_id(), self._next_cseq())
        m.add("Content-Type", manscdp.content_type(self.cfg.charset))
        m.body = body
        return m

    async def _send(self, m: Message) -> Message | None:
        """Send a request; its final response, or None after a timeout or a closed transport."""
        if self.transport is None or self.transport.closed:
            return None
        try:
            return await self.transport.request(m)
        except (TimeoutError, ConnectionError, OSError) as exc:
            log.info("%s: %s got no answer: %s", self.id, m.summary(), exc or type(exc).__name__)
            return None

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _build(self, root: str, cmd: str, sn: int | str, device_id: str, fields: list[tuple[str, object]] = [],
               raw: str = "") -> bytes:  # noqa: B006 - never mutated
        return manscdp.build(root, cmd, sn, device_id, fields, self.cfg.charset, raw)

    # -- life cycle -------------------------------------------------------------------------

    def start(self, delay: float = 0.0) -> None:
        self._stopping = False
        self._life = asyncio.create_task(self._run(delay), name=f"device-{self.id}")

    async def stop(self) -> None:
        """Hang up the calls, unregister (Expires: 0; bounded wait) and close."""
        self._stopping = True
        if self.transport is not None and not self.transport.closed and self.state == "registered":
            for d in list(self.dialogs.values()):
                self._hang_up(d, "device stopping")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._register(0), 1.0)
        await self._halt()
        self.state = "stopped"

    async def _halt(self) -> None:
        """Drop everything at once, telling nobody (also what a power cut does)."""
        if self._life is not None:
            self._life.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._life
            self._life = None
        await self._drop_session()
        for v in self.videos.values():
            await v.close()

    async def _drop_session(self) -> None:
        for d in list(self.dialogs.values()):
            d.session.close_media()
        self.dialogs.clear()
        for c in self.channels:
            c.streams.clear()
        for s in self.subscriptions.values():
            if s.task is not None:
                s.task.cancel()
        self.subscriptions.clear()
        for t in list(self._side_tasks):
            if t is not asyncio.current_task():
                t.cancel()
        if self.transport is not None:
            await self.transport.close()
            self.transport = None

    async def reboot(self, seconds: float) -> None:
        if self._rebooting:
            return
        self._rebooting = True
        self.counters["reboots"] += 1
        log.warning("%s: rebooting (silent for %.1f s)", self.id, seconds)
        try:
            self.state = "rebooting"
            await self._halt()
            self.state = "rebooting"
            await asyncio.sleep(seconds)
        finally:
            self._rebooting = False
        if not self._stopping:
            self.start()

    # -- faults -----------------------------------------------------------------------------

    def set_wrong_password(self, on: bool) -> None:
        self.password = self.cfg.password + "-wrong" if on else self.cfg.password
        self.force_register()

    def send_garbage(self, kind: str) -> int:
        """A malformed message to the platform; the number of bytes sent."""
        if self.transport is None or self.transport.closed:
            raise ValueError("not connected to the platform")
        data = garbage(kind, self)
        self.transport.send_raw(data)
        self.counters["garbage_sent"] += 1
        return len(data)

    # -- status -----------------------------------------------------------------------------

    def to_json(self, detail: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"device_id": self.id, "kind": self.cfg.kind, "state": self.state,
                               "registered": self.state == "registered", "sip": [self.local_ip, self.sip_port],
                               "last_register_status": self.last_register_status,
                               "wrong_password": self.password != self.cfg.password,
                               "keepalive_paused": self.keepalive_paused, **self.counters}
        if detail:
            out.update(
                platform_date=self.platform_date,
                channels=[{"id": c.id, "name": c.name, "ptz": c.ptz.to_json() if c.ptz else None,
                           "streams": len(c.streams)} for c in self.channels],
                streams=[{"call_id": d.call_id, "channel": d.channel.id, **d.session.to_json()}
                         for d in self.dialogs.values()],
                subscriptions=[s.to_json() for s in self.subscriptions.values()],
                position=self.walker.at(),
                transport=self.transport.to_json() if self.transport else None)
        return out


GARBAGE_KINDS = ("bytes", "startline", "headers", "length", "xml", "entity", "oversized")


def garbage(kind: str, dev: Device) -> bytes:
    """Malformed traffic of a given kind, as a broken device (or a fuzzer) would send it."""
    host, port = dev.transport.local if dev.transport else ("127.0.0.1", 5060)
    head = (f"MESSAGE {dev.platform_uri} SIP/2.0\r\nVia: SIP/2.0/{dev.cfg.proto.upper()} {host}:{port};rport;"
            f"branch={sip.new_branch()}\r\nFrom: <{dev.our_uri}>;tag={sip.random_token(4)}\r\n"
            f"To: <{dev.platform_uri}>\r\nCall-ID: {sip.random_token(8)}@{host}\r\nCSeq: 1 MESSAGE\r\n"
            f"Max-Forwards: 70\r\nContent-Type: {manscdp.CONTENT_TYPE}\r\n")
    if kind == "bytes":
        return os.urandom(200)
    if kind == "startline":
        return b"HELLO PLATFORM SIP/9.9\r\nthis is not SIP\r\n\r\n"
    if kind == "headers":  # no Call-ID, no CSeq, a header without a colon
        return (f"MESSAGE {dev.platform_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{port}\r\nBroken header line\r\n"
                f"Content-Length: 0\r\n\r\n").encode()
    if kind == "length":  # Content-Length larger than the body (UDP) / the body never comes (TCP)
        body = dev._build("Notify", "Keepalive", 1, dev.id, [("Status", "OK")])
        return (head + f"Content-Length: {len(body) + 500}\r\n\r\n").encode() + body
    if kind == "xml":
        body = b'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify><CmdType>Keepalive</CmdType><SN>1<DeviceID>'
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    if kind == "entity":  # "billion laughs": entity expansion
        lol = ['<!ENTITY l0 "lol">'] + [f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
        body = ('<?xml version="1.0"?>\r\n<!DOCTYPE Notify [' + "".join(lol) + ']>\r\n<Notify><CmdType>Keepalive'
                f'</CmdType><SN>1</SN><DeviceID>{dev.id}</DeviceID><Status>&l9;</Status></Notify>\r\n').encode()
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    if kind == "oversized":  # a 60 KB body (a UDP datagram still fits)
        pad = "<Info>" + "x" * 60_000 + "</Info>"
        body = dev._build("Notify", "Keepalive", 1, dev.id, [("Status", "OK")], pad)
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    raise ValueError(f"garbage kind must be one of {', '.join(GARBAGE_KINDS)}")
