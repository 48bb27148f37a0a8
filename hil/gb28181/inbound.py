"""Requests from the platform for the simulated GB/T 28181 device (a mixin of `Device`): the
MANSCDP queries and controls (MESSAGE), live video sessions (INVITE / ACK / BYE / CANCEL) and
MobilePosition (SUBSCRIBE / NOTIFY, or MESSAGE reports).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import manscdp, sip
from .channels import DEFAULT_NAMES, PTZ_TYPE, Channel
from .manscdp import Doc, XmlError
from .media import SdpError, StreamSession, parse_offer
from .ptz import PtzError, decode
from .sip import Message

log = logging.getLogger("hil.gb28181")

USER_AGENT = "fieldgw-hil-gb28181/1.0"
ALLOW = "INVITE, ACK, BYE, CANCEL, MESSAGE, SUBSCRIBE, OPTIONS"
MAX_SUBSCRIPTION_S = 86_400


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


class InboundMixin:
    """The platform-facing UAS side of `Device` (which provides cfg, transport, channels, videos,
    walker, dialogs, subscriptions, counters, _request, _send, _spawn, _build, reboot, ...)."""

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
