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
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import manscdp, sip
from .channels import DEFAULT_NAMES, PTZ_TYPE, Channel, channel_ids
from .manscdp import Doc, XmlError
from .media import SdpError, StreamSession, parse_offer
from .position import Walker
from .ptz import PtzError, PtzState, decode
from .sip import Message, SipError
from .transport import SipTransport
from .video import ChannelVideo, VideoConfig

log = logging.getLogger("hil.gb28181")

USER_AGENT = "fieldgw-hil-gb28181/1.0"
ALLOW = "INVITE, ACK, BYE, CANCEL, MESSAGE, SUBSCRIBE, OPTIONS"
MAX_SUBSCRIPTION_S = 86_400


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


class AuthFailed(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"credentials refused ({status})")
        self.status = status


@dataclass
class Subscription:
    call_id: str
    remote_uri: str          # their Contact (the NOTIFY's Request-URI)
    their_from: str          # the SUBSCRIBE's From (our NOTIFY's To)
    our_to: str              # the SUBSCRIBE's To with our tag (our NOTIFY's From)
    event: str
    interval: float
    expires_at: float
    cseq: int = 0
    sent: int = 0
    task: asyncio.Task[None] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "event": self.event, "interval": self.interval, "notifies": self.sent,
                "expires_in": round(max(0.0, self.expires_at - time.monotonic()), 1)}


@dataclass
class Dialog:
    """An INVITE dialog as the device (UAS) sees it."""
    call_id: str
    channel: Channel
    session: StreamSession
    remote_target: str       # their Contact
    their_from: str
    our_to: str
    answer: str
    cseq: int = 0
    acked: bool = False


class Device:
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

    def lose_registration(self, why: str) -> None:
        """Start over: the life task re-registers (after closing the transport)."""
        log.info("%s: registration lost: %s", self.id, why)
        if self._lost is not None:
            self._lost.set()

    async def _run(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        backoff = self.cfg.register_retry
        while True:
            self._lost = asyncio.Event()
            try:
                await self._open()
                ok = await self._register_loop()
                if ok:
                    backoff = self.cfg.register_retry
                    await self._online()
            except (OSError, ConnectionError, TimeoutError) as exc:
                self.state = "unreachable"
                log.info("%s: platform unreachable: %s", self.id, exc or type(exc).__name__)
            except Exception:  # noqa: BLE001 - a bug must not end the device's life for good
                self.state = "failed"
                log.exception("%s: registration cycle failed", self.id)
            await self._drop_session()
            if self.state == "registered":
                self.state = "lost"
            wait = backoff if self.state in ("forbidden", "failed", "unreachable") else 1.0
            backoff = min(60.0, backoff * 2) if wait == backoff else backoff
            await asyncio.sleep(wait)

    async def _open(self) -> None:
        cfg = self.cfg
        bind = (cfg.bind[0], self.sip_port)
        self.transport = SipTransport(cfg.proto, cfg.platform, bind, self._on_request,
                                      lambda: self.lose_registration("TCP connection closed"),
                                      cfg.sip_timeout, cfg.local_ip)
        try:
            await self.transport.open()
        except OSError:
            if cfg.proto == "tcp" and self.sip_port:   # the old local port may linger in TIME_WAIT
                self.transport.bind = (cfg.bind[0], 0)
                await self.transport.open()
            else:
                self.transport = None
                raise
        self.sip_port = self.transport.local[1]
        self.local_ip = self.transport.local[0]
        self._reg_call_id = self._new_call_id()
        self._reg_from_tag = sip.random_token(4)
        self._nc = 0

    async def _register_loop(self) -> bool:
        """REGISTER until 200 OK; False (state forbidden/failed) to back off and retry."""
        self.state = "registering"
        try:
            resp = await self._register(self.cfg.expires)
        except AuthFailed as exc:
            self.counters["auth_failures"] += 1
            self.state = "forbidden"
            log.warning("%s: registration refused (%d): wrong password? backing off", self.id, exc.status)
            return False
        if resp is None or resp.status != 200:
            self.counters["register_errors"] += 1
            self.state = "failed" if resp is not None else "unreachable"
            log.warning("%s: registration failed: %s", self.id, resp.summary() if resp else "no answer")
            return False
        self._registered(resp)
        return True

    def _registered(self, resp: Message) -> None:
        self.counters["registrations"] += 1
        self.state = "registered"
        self.platform_date = resp.get("Date")
        expires = self.cfg.expires
        contact_exp = sip.param(resp.get("Contact"), "expires")
        for text in (resp.get("Expires"), contact_exp or ""):
            if text.strip().isdigit():
                expires = int(text.strip())
                break
        self.expires_at = time.monotonic() + expires
        log.info("%s: registered (expires %d s, platform date %r)", self.id, expires, self.platform_date)

    async def _register(self, expires: int) -> Message | None:
        """One REGISTER exchange, answering up to two challenges. AuthFailed on 403, or on a second
        401 that is not `stale` (our credentials were refused)."""
        uri = self.platform_uri
        auth: str | None = None
        for _ in range(3):
            m = self._request("REGISTER", uri, f"<{self.our_uri}>;tag={self._reg_from_tag}", f"<{self.our_uri}>",
                              self._reg_call_id, self._next_cseq())
            m.add("Contact", self.contact)
            m.add("Expires", str(expires))
            if auth:
                m.add("Authorization", auth)
            self.counters["register_attempts"] += 1
            resp = await self._send(m)
            if resp is None:
                return None
            self.last_register_status = resp.status
            if resp.status in (401, 407):
                value = resp.get("WWW-Authenticate") or resp.get("Proxy-Authenticate")
                try:
                    challenge = sip.parse_challenge(value)
                except SipError:
                    return resp
                if auth is not None and challenge.get("stale", "").lower() != "true":
                    raise AuthFailed(resp.status)
                self._nc += 1
                auth = sip.digest_authorization(challenge, "REGISTER", uri, self.id, self.password, self._nc)
                continue
            if resp.status == 403:
                raise AuthFailed(403)
            return resp
        return None

    async def _online(self) -> None:
        """While registered: keepalives, refreshes and (message mode) positions, until lost."""
        assert self._lost is not None
        tasks = [asyncio.create_task(self._keepalive_loop()), asyncio.create_task(self._refresh_loop())]
        if self.cfg.position_mode == "message" and self.cfg.position_interval > 0:
            tasks.append(asyncio.create_task(self._position_messages(self.cfg.position_interval)))
        try:
            await self._lost.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _keepalive_loop(self) -> None:
        misses = 0
        while True:
            await asyncio.sleep(self.cfg.keepalive)
            if self.keepalive_paused:
                continue
            body = self._build("Notify", "Keepalive", self._next_sn(), self.id, [("Status", "OK")])
            self.counters["keepalives_sent"] += 1
            resp = await self._send(self._manscdp_request(body))
            if resp is not None and 200 <= resp.status < 300:
                self.counters["keepalives_ok"] += 1
                misses = 0
            elif resp is not None and resp.status in (401, 403, 404, 481):
                self.lose_registration(f"keepalive answered {resp.status}")  # the platform forgot us
                return
            else:
                misses += 1
                self.counters["keepalive_misses"] += 1
                if misses >= self.cfg.keepalive_misses:
                    self.lose_registration(f"{misses} keepalives unanswered")
                    return

    async def _refresh_loop(self) -> None:
        while True:
            left = self.expires_at - time.monotonic()
            await asyncio.sleep(max(1.0, left * 0.8 if left < 60 else left - max(left * 0.1, 30.0)))
            try:
                resp = await self._register(self.cfg.expires)
            except AuthFailed:
                self.counters["auth_failures"] += 1
                self.lose_registration("refresh refused")
                return
            if resp is not None and resp.status == 200:
                self._registered(resp)
            else:
                self.lose_registration("refresh failed")
                return

    def force_register(self) -> None:
        self.lose_registration("re-register requested")

    # -- requests from the platform ---------------------------------------------------------

    def _respond(self, req: Message, status: int, reason: str = "", to_tag: str = "", headers: list[tuple[str, str]] = [],
                 body: bytes = b"", content_type: str = "") -> Message:  # noqa: B006 - never mutated
        assert self.transport is not None
        r = sip.response(req, status, reason, to_tag or (sip.random_token(4) if status >= 200 else ""))
        r.add("User-Agent", USER_AGENT)
        for k, v in headers:
            r.add(k, v)
        if body:
            r.add("Content-Type", content_type)
            r.body = body
        self.transport.respond(req, r)
        return r

    def _on_request(self, req: Message) -> None:
        handler = {"MESSAGE": self._on_message, "INVITE": self._on_invite, "ACK": self._on_ack, "BYE": self._on_bye,
                   "CANCEL": self._on_cancel, "SUBSCRIBE": self._on_subscribe, "OPTIONS": self._on_options}.get(req.method)
        log.debug("%s: <- %s", self.id, req.summary())
        if handler is None:
            self._respond(req, 405, headers=[("Allow", ALLOW)])
            return
        handler(req)

    def _on_options(self, req: Message) -> None:
        self._respond(req, 200, headers=[("Allow", ALLOW)])

    def _on_message(self, req: Message) -> None:
        if not req.content_type().endswith("manscdp+xml"):
            self._respond(req, 415)
            return
        try:
            doc = manscdp.parse(req.body)
        except XmlError as exc:
            self.counters["bad_xml"] += 1
            log.warning("%s: bad MANSCDP body: %s", self.id, exc)
            self._respond(req, 400, reason="Bad Request")
            return
        target = doc.device_id
        if doc.root in ("Query", "Control") and target and target != self.id and self._channel(target) is None:
            self._respond(req, 404, reason="Not Found")
            return
        self._respond(req, 200)
        key = (doc.root, doc.cmd)
        if key == ("Query", "Catalog"):
            self.counters["catalog_queries"] += 1
            self._spawn(self._send_catalog(doc.sn), "catalog")
        elif key == ("Query", "DeviceInfo"):
            self.counters["info_queries"] += 1
            self._spawn(self._send_device_info(doc), "deviceinfo")
        elif key == ("Query", "DeviceStatus"):
            self.counters["status_queries"] += 1
            self._spawn(self._send_device_status(doc), "devicestatus")
        elif key == ("Query", "PresetQuery"):
            self._spawn(self._send_presets(doc), "presets")
        elif key == ("Query", "MobilePosition"):
            self._spawn(self._send_position_message(), "position")
        elif key == ("Control", "DeviceControl"):
            self._device_control(doc)
        else:
            self.counters["unknown_commands"] += 1
            log.info("%s: ignored %s/%s", self.id, doc.root, doc.cmd)

    # MANSCDP answers

    def _catalog_item(self, c: Channel) -> list[tuple[str, object]]:
        pos = self.walker.at()
        return [("DeviceID", c.id), ("Name", c.name), ("Manufacturer", self.cfg.manufacturer),
                ("Model", self.cfg.model or f"SIM-{self.cfg.kind.upper()}"), ("Owner", "Owner"),
                ("CivilCode", self.id[:6]), ("Address", "Address"), ("Parental", 0), ("ParentID", self.id),
                ("SafetyWay", 0), ("RegisterWay", 1), ("Secrecy", 0), ("IPAddress", self.local_ip),
                ("Port", self.sip_port), ("Status", "ON"), ("Longitude", pos["longitude"]),
                ("Latitude", pos["latitude"]), ("Info", [("PTZType", PTZ_TYPE[self.cfg.kind])])]

    async def _send_catalog(self, sn: str) -> None:
        batch = max(1, self.cfg.catalog_batch)
        total = len(self.channels)
        parts = [self.channels[i:i + batch] for i in range(0, total, batch)] or [[]]
        for part in parts:
            raw = manscdp.item_list("DeviceList", [self._catalog_item(c) for c in part])
            body = self._build("Response", "Catalog", sn, self.id, [("SumNum", total)], raw)
            self.counters["catalog_messages"] += 1
            await self._send(self._manscdp_request(body))

    async def _send_device_info(self, doc: Doc) -> None:
        body = self._build("Response", "DeviceInfo", doc.sn, self.id, [
            ("DeviceName", self.cfg.name or DEFAULT_NAMES[self.cfg.kind]), ("Result", "OK"),
            ("DeviceType", "IPC" if self.cfg.kind == "dome" else "MobileDevice"),
            ("Manufacturer", self.cfg.manufacturer), ("Model", self.cfg.model or f"SIM-{self.cfg.kind.upper()}"),
            ("Firmware", self.cfg.firmware), ("Channel", len(self.channels))])
        await self._send(self._manscdp_request(body))

    async def _send_device_status(self, doc: Doc) -> None:
        body = self._build("Response", "DeviceStatus", doc.sn, doc.device_id or self.id, [
            ("Result", "OK"), ("Online", "ONLINE"), ("Status", "OK"), ("Encode", "ON"), ("Record", "OFF"),
            ("DeviceTime", datetime.now().strftime("%Y-%m-%dT%H:%M:%S"))], '<Alarmstatus Num="0">\r\n</Alarmstatus>')
        await self._send(self._manscdp_request(body))

    async def _send_presets(self, doc: Doc) -> None:
        c = self._channel(doc.device_id)
        presets = sorted(c.ptz.presets) if c and c.ptz else []
        raw = manscdp.item_list("PresetList", [[("PresetID", p), ("PresetName", f"预置点{p}")] for p in presets])
        body = self._build("Response", "PresetQuery", doc.sn, doc.device_id or self.id, [], raw)
        await self._send(self._manscdp_request(body))

    def _device_control(self, doc: Doc) -> None:
        c = self._channel(doc.device_id)
        if doc.text("TeleBoot"):
            self._spawn(self.reboot(self.cfg.reboot_s), "teleboot")
            return
        ptz_text = doc.text("PTZCmd")
        if not ptz_text:
            self.counters["unknown_commands"] += 1
            self._spawn(self._control_result(doc, "OK"), "control")  # record/guard/alarm: acknowledged, no effect
            return
        if c is None or c.ptz is None:
            self.counters["ptz_unsupported"] += 1
            self._spawn(self._control_result(doc, "ERROR"), "control")
            return
        try:
            cmd = decode(ptz_text)
        except PtzError as exc:
            self.counters["ptz_bad"] += 1
            log.warning("%s: bad PTZCmd %r: %s", self.id, ptz_text, exc)
            self._spawn(self._control_result(doc, "ERROR"), "control")
            return
        self.counters["ptz_commands"] += 1
        c.ptz.apply(cmd)
        log.info("%s: PTZ %s on %s -> %s", self.id, cmd.to_json(), c.id, c.ptz.to_json())

    async def _control_result(self, doc: Doc, result: str) -> None:
        body = self._build("Response", "DeviceControl", doc.sn, doc.device_id or self.id, [("Result", result)])
        await self._send(self._manscdp_request(body))

    # INVITE / ACK / BYE / CANCEL

    def _on_invite(self, req: Message) -> None:
        existing = self.dialogs.get(req.call_id)
        if existing is not None:  # re-INVITE: the same answer again
            self._respond(req, 200, to_tag=sip.param(existing.our_to, "tag") or "", body=existing.answer.encode(),
                          content_type="application/sdp", headers=[("Contact", self.contact)])
            return
        self.counters["invites"] += 1
        code = sip.user_of(req.uri) or req.get("Subject").split(":", 1)[0]
        channel = self._channel(code)
        if channel is None:
            self._respond(req, 404, reason="Not Found")
            return
        if len(self.dialogs) >= self.cfg.max_streams:
            self._respond(req, 486)
            return
        if req.content_type() != "application/sdp":
            self._respond(req, 415)
            return
        try:
            offer = parse_offer(req.body.decode("utf-8", "replace"))
        except SdpError as exc:
            log.warning("%s: INVITE refused: %s", self.id, exc)
            self._respond(req, exc.status, reason=str(exc)[:60])
            return
        self._respond(req, 100, to_tag="")
        self._spawn(self._answer(req, channel, offer), "invite")

    async def _answer(self, req: Message, channel: Channel, offer: Any) -> None:
        assert self.transport is not None
        bind_ip = self.cfg.bind[0]
        session = StreamSession(offer, self.videos[channel.id], self.cfg.video.codec, self.local_ip, bind_ip,
                                self._session_ended)
        try:
            await session.prepare()
        except OSError as exc:
            self._respond(req, 500, reason="Media Unavailable")
            log.warning("%s: no media socket: %s", self.id, exc)
            return
        v = self.cfg.video
        answer = session.answer(self.id, v.width, v.height, v.fps, v.bitrate_kbps)
        tag = sip.random_token(4)
        to = req.get("To")
        our_to = to if sip.param(to, "tag") else f"{to};tag={tag}"
        session.call_id = req.call_id
        dialog = Dialog(req.call_id, channel, session, sip.uri_of(req.get("Contact") or req.get("From")),
                        req.get("From"), our_to, answer)
        self.dialogs[req.call_id] = dialog
        channel.streams[req.call_id] = session
        self._respond(req, 200, to_tag=sip.param(our_to, "tag") or tag, body=answer.encode(),
                      content_type="application/sdp", headers=[("Contact", self.contact)])
        log.info("%s: INVITE for %s answered: %s %s -> %s:%d (ssrc %s)", self.id, channel.id,
                 "TCP" if offer.tcp else "UDP", offer.setup, offer.address, offer.port, offer.ssrc_text)

    def _on_ack(self, req: Message) -> None:
        d = self.dialogs.get(req.call_id)
        if d is not None and not d.acked:
            d.acked = True
            d.session.ack()

    def _on_bye(self, req: Message) -> None:
        d = self.dialogs.pop(req.call_id, None)
        if d is None:
            self._respond(req, 481)
            return
        self.counters["byes_received"] += 1
        self._respond(req, 200)
        d.channel.streams.pop(d.call_id, None)
        d.session.close_media()
        log.info("%s: BYE from the platform: stream %s of %s stopped", self.id, d.session.offer.ssrc_text, d.channel.id)

    def _on_cancel(self, req: Message) -> None:
        self._respond(req, 200 if req.call_id in self.dialogs else 481)

    def _session_ended(self, session: StreamSession, reason: str) -> None:
        d = self.dialogs.get(session.call_id)
        if d is not None:
            self._hang_up(d, reason)

    def _hang_up(self, d: Dialog, reason: str) -> None:
        """The device ends the call: media stops, a BYE goes to the platform."""
        self.dialogs.pop(d.call_id, None)
        d.channel.streams.pop(d.call_id, None)
        d.session.close_media()
        if self.transport is None or self.transport.closed:
            return
        d.cseq += 1
        bye = self._request("BYE", d.remote_target, d.our_to, d.their_from, d.call_id, d.cseq)
        self.counters["byes_sent"] += 1
        log.info("%s: BYE to the platform for %s (%s)", self.id, d.channel.id, reason)
        self._spawn(self._send(bye), "bye")

    def hang_up(self, which: str) -> list[str]:
        """Device-side BYE for the calls of `which` (a Call-ID, a channel id, or "all")."""
        ended = []
        for d in list(self.dialogs.values()):
            if which in ("all", d.call_id, d.channel.id):
                self._hang_up(d, "hung up by the control port")
                ended.append(d.call_id)
        return ended

    # SUBSCRIBE / NOTIFY (MobilePosition)

    def _on_subscribe(self, req: Message) -> None:
        event = req.get("Event")
        try:
            doc = manscdp.parse(req.body) if req.body else None
        except XmlError as exc:
            self.counters["bad_xml"] += 1
            self._respond(req, 400, reason=str(exc)[:60])
            return
        if doc is None or doc.cmd != "MobilePosition":
            self._respond(req, 489, reason="Bad Event")
            return
        try:
            expires = min(int(req.get("Expires", "3600").strip()), MAX_SUBSCRIPTION_S)
            interval = float(doc.text("Interval", "5") or 5)
        except ValueError:
            self._respond(req, 400)
            return
        interval = min(max(interval, 1.0), 3600.0)
        old = self.subscriptions.pop(req.call_id, None)
        if old is not None and old.task is not None:
            old.task.cancel()
        tag = sip.param(old.our_to, "tag") if old else None
        tag = tag or sip.random_token(4)
        to = req.get("To")
        our_to = to if sip.param(to, "tag") else f"{to};tag={tag}"
        self._respond(req, 200, to_tag=sip.param(our_to, "tag") or tag,
                      headers=[("Expires", str(max(0, expires))), ("Contact", self.contact)])
        sub = Subscription(req.call_id, sip.uri_of(req.get("Contact") or req.get("From")), req.get("From"), our_to,
                           event or "presence", interval, time.monotonic() + max(0, expires),
                           cseq=old.cseq if old else 0)
        if expires <= 0:
            self._spawn(self._notify(sub, terminated=True), "notify-end")
            return
        self.subscriptions[req.call_id] = sub
        sub.task = asyncio.create_task(self._subscription_loop(sub))
        log.info("%s: MobilePosition subscribed every %.1f s for %d s (%s)", self.id, interval, expires,
                 self.cfg.position_mode)

    async def _subscription_loop(self, sub: Subscription) -> None:
        try:
            while time.monotonic() < sub.expires_at:
                if self.cfg.position_mode == "notify":
                    await self._notify(sub)
                else:
                    await self._send_position_message()
                await asyncio.sleep(min(sub.interval, max(0.0, sub.expires_at - time.monotonic())))
            if self.cfg.position_mode == "notify":
                await self._notify(sub, terminated=True)
        finally:
            if self.subscriptions.get(sub.call_id) is sub:
                del self.subscriptions[sub.call_id]

    def _position_body(self) -> bytes:
        p = self.walker.at()
        return self._build("Notify", "MobilePosition", self._next_sn(), self.id, [
            ("Time", datetime.now().strftime("%Y-%m-%dT%H:%M:%S")), ("Longitude", p["longitude"]),
            ("Latitude", p["latitude"]), ("Speed", p["speed"]), ("Direction", p["direction"]),
            ("Altitude", p["altitude"])])

    async def _notify(self, sub: Subscription, terminated: bool = False) -> None:
        sub.cseq += 1
        m = self._request("NOTIFY", sub.remote_uri, sub.our_to, sub.their_from, sub.call_id, sub.cseq)
        m.add("Event", sub.event)
        left = max(0, int(sub.expires_at - time.monotonic()))
        m.add("Subscription-State", "terminated;reason=timeout" if terminated or not left else f"active;expires={left}")
        m.add("Contact", self.contact)
        m.add("Content-Type", manscdp.content_type(self.cfg.charset))
        m.body = self._position_body()
        sub.sent += 1
        self.counters["positions_sent"] += 1
        await self._send(m)

    async def _send_position_message(self) -> None:
        self.counters["positions_sent"] += 1
        await self._send(self._manscdp_request(self._position_body()))

    async def _position_messages(self, interval: float) -> None:
        while True:
            await self._send_position_message()
            await asyncio.sleep(interval)

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

