"""GB/T 28181-2016 platform side: the SIP server dome cameras and body-worn transmitters register to.

One link is one listener (`sip://HOST:PORT`, UDP and TCP). Devices register with digest
auth and keep alive; each registration is followed by a Catalog query (its video channels
become devices of their own, each with an on-demand stream) and a MobilePosition
subscription. PTZ commands go as DeviceControl PTZCmd. See docs/gb28181.md.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from typing import Any, ClassVar
from urllib.parse import urlsplit

from drivers.gb28181 import catalog, manscdp, options, ptz, sip
from drivers.gb28181.catalog import Assembly
from drivers.gb28181.dialog import Requests
from drivers.gb28181.feed import FeedServer, PsSink
from drivers.gb28181.live import Live
from drivers.gb28181.positions import Positions
from drivers.gb28181.registrar import Channel, DevState, Registrar
from drivers.gb28181.sip import SipMessage
from drivers.gb28181.transport import Peer, SipTransport
from gateway.command_specs import COMMANDS_BY_KIND
from gateway.driver_api import CommandError, Driver, DriverContext, LinkSpec, OnSent
from gateway.model import Event, StatusUpdate, StreamOffer, now_ms

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, NOTIFY, SUBSCRIBE, REGISTER"
CATALOG_WAIT_S = 15.0
PTZ_TIMEOUT_S = 10.0
PTZ_RESPONSE_WAIT_S = 0.5  # a DeviceControl Response, if the device sends one, comes within this
# how the relay opens a channel's feed: PyAV's `mpeg` demuxer (MPEG-PS), probing kept short for a live stream
FEED_OPTIONS = {"format": "mpeg", "probesize": "1000000", "analyzeduration": "1500000", "fflags": "nobuffer"}


class Gb28181Driver(Driver):
    name: ClassVar[str] = "gb28181"
    default_kind: ClassVar[str] = "camera"
    transport_schemes: ClassVar[tuple[str, ...]] = ("sip",)

    def __init__(self, link: LinkSpec, ctx: DriverContext) -> None:
        super().__init__(link, ctx)
        entry = next((d for d in link.devices if "device_id" not in d.options), None)
        self.platform_id = entry.id if entry else None
        self.platform = options.platform_of(entry.options if entry else {})
        cams = [options.camera_of(d.id, d.kind, d.name, d.options, self.platform) for d in link.devices if "device_id" in d.options]
        parts = urlsplit(link.transport)
        self.host, self.port = parts.hostname or "0.0.0.0", parts.port or 5060
        self.counts: Counter[str] = Counter()
        self.transport: SipTransport | None = None
        self.requests: Requests | None = None
        self.registrar = Registrar(self.platform, cams, None, self._online, self._fresh, self._auth_failed)  # type: ignore[arg-type]
        self.by_kit_id = {st.cam.id: st for st in self.registrar.devices.values()}
        self.channel_devices: dict[str, tuple[DevState, Channel]] = {}
        self.live = Live(self.platform)
        self._sn = itertools.count(1)
        self.positions = Positions(self, self.platform, lambda: next(self._sn))
        self._catalogs: dict[str, Assembly] = {}
        self._ptz_waiters: dict[tuple[str, int], asyncio.Future[str]] = {}
        self._after: dict[str, asyncio.Task[None]] = {}  # per device: the catalog query and subscription after registering
        self._feed_ports: dict[str, int] = {}

    # -- kit checks and commands ------------------------------------------------------
    @classmethod
    def check_device(cls, options_: dict[str, Any], transport: str) -> list[tuple[tuple[str | int, ...], str]]:
        return options.check_device(options_)

    @classmethod
    def check_link(cls, devices: list[dict[str, Any]]) -> list[tuple[int, tuple[str | int, ...], str]]:
        return options.check_link(devices)

    @classmethod
    def commands_for(cls, kind: str) -> list[str]:
        return list(COMMANDS_BY_KIND["camera"]) if kind in ("camera", "bodycam") else []

    def check_command(self, device_id: str, command: str, args: dict[str, Any]) -> str | None:
        if device_id == self.platform_id:
            return "the GB/T 28181 listener takes no commands; send PTZ to a camera or its channel"
        target = self._ptz_target(device_id)
        if target is None:
            return "no channel known for this device yet (its catalog has not come)"
        if target[1].ptz_type == 3:
            return "the channel reports a fixed camera (PTZType 3): no PTZ"
        return None

    def command_timeout(self, command: str) -> float | None:
        return PTZ_TIMEOUT_S + 2.0

    def _ptz_target(self, device_id: str) -> tuple[DevState, Channel] | None:
        if device_id in self.channel_devices:
            return self.channel_devices[device_id]
        st = self.by_kit_id.get(device_id)
        if st is None:
            return None
        if st.channels:
            return st, next(iter(st.channels.values()))
        return st, Channel(st.cam.device_id, st.cam.id, st.cam.kind)  # before the catalog: the device itself

    async def execute(self, device_id: str, command: str, args: dict[str, Any], on_sent: OnSent) -> str:
        target = self._ptz_target(device_id)
        if target is None:
            raise CommandError("rejected", "no such GB/T 28181 device on this link")
        st, ch = target
        try:
            if command == "ptz_move":
                cmd = ptz.move(float(args.get("pan", 0)), float(args.get("tilt", 0)), float(args.get("zoom", 0)))
            elif command == "ptz_stop":
                cmd = ptz.stop()
            elif command == "ptz_preset":
                cmd = ptz.preset(int(args["preset"]))
            else:
                raise CommandError("rejected", f"{self.name} takes ptz_move, ptz_stop, ptz_preset")
        except ptz.PtzError as exc:
            raise CommandError("rejected", str(exc)) from None
        peer = st.peer
        if self.transport is None or self.requests is None or not st.valid or peer is None:
            raise CommandError("failed", f"{st.cam.id} is not registered")
        sn = next(self._sn)
        body = manscdp.build("Control", "DeviceControl", sn, ch.gb_id,
                             [("PTZCmd", cmd.encode()), ("<Info>", "<Info><ControlPriority>5</ControlPriority></Info>")],
                             self.platform.charset)
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._ptz_waiters[(ch.gb_id, sn)] = waiter
        try:
            try:
                resp = await self.transport.request(self.requests.message(ch.gb_id, peer, body), peer, PTZ_TIMEOUT_S, on_sent)
            except (TimeoutError, ConnectionError) as exc:
                raise CommandError("failed", f"no answer to the DeviceControl: {exc or 'timeout'}") from None
            if resp.status != 200:
                raise CommandError("failed", f"device answered {resp.status} {resp.reason}")
            self.counts["ptz_sent"] += 1
            try:
                result = await asyncio.wait_for(waiter, PTZ_RESPONSE_WAIT_S)
            except TimeoutError:
                return f"PTZCmd {cmd.encode()} taken (200 OK)"
            if result.upper() != "OK":
                raise CommandError("failed", f"device answered Result {result} to PTZCmd {cmd.encode()}")
            return f"PTZCmd {cmd.encode()} taken (200 OK, Result OK)"
        finally:
            self._ptz_waiters.pop((ch.gb_id, sn), None)

    # -- the listener ---------------------------------------------------------------
    async def run(self) -> None:
        transport = SipTransport(self.host, self.port, self._request, self._stray)
        self.transport = transport
        self.requests = Requests(transport, self.platform.server_id, self.platform.realm)
        self.registrar.reset(transport)
        self.live.attach(transport, self.requests)
        self.positions.attach(transport, self.requests)
        feeds = [ch.feed for st in self.registrar.devices.values() for ch in st.channels.values()]
        try:
            await transport.start()  # datagrams may come in before it returns: everything above is ready
            for feed in feeds:
                assert isinstance(feed, FeedServer)
                await feed.start(self._feed_ports.get(feed.name, 0))
            if self.platform_id:
                self.ctx.set_online(self.platform_id, True, f"SIP listener on {self.host}:{transport.port} (UDP, TCP)")
            while True:
                await asyncio.sleep(10.0)
                if self.platform_id:
                    self.ctx.publish(StatusUpdate(self.platform_id, now_ms(), {"sip": self.stats()}))
        finally:
            for task in self._after.values():
                task.cancel()
            await asyncio.gather(*self._after.values(), return_exceptions=True)
            self._after.clear()
            await self.positions.close()
            for st in self.registrar.devices.values():
                for ch in st.channels.values():
                    if isinstance(ch.feed, FeedServer):
                        await ch.feed.close()
            self.registrar.reset(transport)
            await transport.close()
            self.transport = None

    def _request(self, msg: SipMessage, peer: Peer) -> None:
        assert self.transport is not None
        method = msg.method
        if method == "REGISTER":
            self.registrar.register(msg, peer)
        elif method in ("MESSAGE", "NOTIFY"):
            self._manscdp(msg, peer)
        elif method == "BYE":
            found = self.live.device_bye(msg, peer)
            self._answer(msg, peer, 200 if found else 481, "OK" if found else "Call/Transaction Does Not Exist")
        elif method == "OPTIONS":
            self._answer(msg, peer, 200, "OK", [("Allow", ALLOW)])
        elif method == "CANCEL":
            self._answer(msg, peer, 481, "Call/Transaction Does Not Exist")
        elif method != "ACK":
            self.counts["methods_refused"] += 1
            self._answer(msg, peer, 405, "Method Not Allowed", [("Allow", ALLOW)])

    def _answer(self, req: SipMessage, peer: Peer, status: int, reason: str, headers: list[tuple[str, str]] | None = None) -> None:
        assert self.transport is not None
        self.transport.respond(req, sip.response_to(req, status, reason, sip.new_tag(), peer.addr, headers), peer)

    def _stray(self, resp: SipMessage, peer: Peer) -> None:
        self.live.stray_2xx(resp, peer)

    def _manscdp(self, msg: SipMessage, peer: Peer) -> None:
        st = self.registrar.known(msg)
        if st is None:
            try:
                self.registrar.unknown(sip.name_addr(msg.get("From")).user)
            except ValueError:
                pass
            return self._answer(msg, peer, 404, "Not Found")
        if not st.valid:
            self.counts["unregistered_messages"] += 1
            return self._answer(msg, peer, 403, "Forbidden")  # register first (devices re-register on this)
        ctype = msg.get("Content-Type")
        if "manscdp" not in ctype.lower():
            self.counts["not_manscdp"] += 1
            return self._answer(msg, peer, 415, "Unsupported Media Type")
        try:
            doc = manscdp.read(msg.body, ctype)
        except manscdp.ManscdpError as exc:
            self.counts["bad_xml"] += 1
            log.debug("bad MANSCDP from %s: %s", st.cam.id, exc)
            return self._answer(msg, peer, 400, "Bad Request")
        self._answer(msg, peer, 200, "OK")
        self.registrar.heard(st, peer)
        self._document(st, doc)

    def _document(self, st: DevState, doc: manscdp.Doc) -> None:
        kind = (doc.root, doc.cmd)
        if kind == ("Notify", "Keepalive"):
            self.counts["keepalives"] += 1
        elif doc.cmd == "MobilePosition" and doc.root in ("Notify", "Response"):
            self.positions.received(st, doc)
        elif kind == ("Response", "Catalog"):
            self._catalog_part(st, doc)
        elif kind == ("Response", "DeviceControl"):
            waiter = self._ptz_waiters.get((doc.device_id, doc.sn or -1))
            if waiter is not None and not waiter.done():
                waiter.set_result(doc.text("Result", "OK"))
        else:
            self.counts[f"ignored_{doc.root}_{doc.cmd}"[:48]] += 1

    # -- registration and what follows -----------------------------------------------
    def _online(self, st: DevState, online: bool, reason: str) -> None:
        self.ctx.set_online(st.cam.id, online, reason)
        for ch in st.channels.values():
            self.ctx.set_online(ch.device, online and ch.status != "OFF", reason)
        if not online:
            self.live.end_calls(st, f"device offline: {reason}")
            self.positions.forget(st)
            self.ctx.publish(Event(st.cam.id, now_ms(), "offline", "warning", f"{st.cam.name}: {reason}"))
        else:
            self.ctx.publish(StatusUpdate(st.cam.id, now_ms(), {"gb_id": st.cam.device_id, "sip_from": f"{st.peer.transport} {st.peer.addr[0]}:{st.peer.addr[1]}" if st.peer else ""}))

    def _fresh(self, st: DevState) -> None:
        """A new registration (first, or a new Call-ID: the device restarted): old calls are gone; catalog, subscribe."""
        self.live.end_calls(st, "device registered anew")
        self.positions.forget(st)
        self.ctx.publish(Event(st.cam.id, now_ms(), "registered", "info", f"{st.cam.name} registered ({st.cam.device_id})"))
        old = self._after.pop(st.cam.device_id, None)
        if old is not None:
            old.cancel()
        self._after[st.cam.device_id] = asyncio.create_task(self._after_register(st), name=f"gb28181-after:{st.cam.id}")

    def _auth_failed(self, st: DevState, why: str) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - st.last_auth_event >= 60:
            st.last_auth_event = loop.time()
            self.ctx.publish(Event(st.cam.id, now_ms(), "auth_failed", "warning", f"{st.cam.name}: REGISTER refused, {why}"))

    async def _after_register(self, st: DevState) -> None:
        try:
            await self._query_catalog(st)
        except (TimeoutError, ConnectionError) as exc:
            self.counts["catalog_failed"] += 1
            log.info("catalog of %s failed: %s", st.cam.id, exc or "timeout")
        if st.cam.position_interval_s > 0:
            await self.positions.subscribe_loop(st)

    async def _query_catalog(self, st: DevState) -> None:
        assert self.transport is not None and self.requests is not None
        peer = st.peer
        if peer is None:
            return
        sn = next(self._sn)
        asm = self._catalogs[st.cam.device_id] = Assembly()
        body = manscdp.build("Query", "Catalog", sn, st.cam.device_id, charset=self.platform.charset)
        self.counts["catalog_queries"] += 1
        resp = await self.transport.request(self.requests.message(st.cam.device_id, peer, body), peer, 10.0)
        if resp.status != 200:
            self.counts["catalog_refused"] += 1
            return
        try:
            async with asyncio.timeout(CATALOG_WAIT_S):
                await asm.done.wait()
        except TimeoutError:
            self.counts["catalog_incomplete"] += 1
            if asm.items:
                self._apply_catalog(st, asm)

    def _catalog_part(self, st: DevState, doc: manscdp.Doc) -> None:
        try:
            part = manscdp.catalog(doc)
        except manscdp.ManscdpError:
            self.counts["bad_catalog"] += 1
            return
        self.counts["catalog_parts"] += 1
        asm = self._catalogs.setdefault(st.cam.device_id, Assembly())
        if asm.done.is_set():  # an unsolicited catalog after a complete one: start over
            asm = self._catalogs[st.cam.device_id] = Assembly()
        if asm.add(part):
            self._apply_catalog(st, asm)

    def _apply_catalog(self, st: DevState, asm: Assembly) -> None:
        items = catalog.video_items(st.cam, list(asm.items.values()))
        self.counts["catalog_items"] += len(asm.items)
        taken = {ch.device for s in self.registrar.devices.values() for ch in s.channels.values()} | set(self.by_kit_id)
        for item in items:
            ch = st.channels.get(item.device_id)
            if ch is None:
                dev_id = catalog.channel_device_id(st.cam, item.device_id, taken)
                name = f"{st.cam.name} · {item.name or item.device_id[-4:]}"
                if not self.ctx.add_device(dev_id, st.cam.channel_kind, name):
                    self.counts["channels_refused"] += 1
                    continue
                taken.add(dev_id)
                ch = st.channels[item.device_id] = Channel(item.device_id, dev_id, st.cam.channel_kind, name)
                self.channel_devices[dev_id] = (st, ch)
                asyncio.get_running_loop().create_task(self._open_feed(st, ch))
            ch.status, ch.ptz_type = (item.status or "ON"), item.ptz_type
            self.ctx.publish(StatusUpdate(ch.device, now_ms(), {"gb_id": ch.gb_id, "parent": st.cam.id,
                                                                "ptz_type": ch.ptz_type, "catalog_status": ch.status}))
            self.ctx.set_online(ch.device, st.online and ch.status != "OFF", "catalog")
        self.ctx.publish(StatusUpdate(st.cam.id, now_ms(), {"channels": [c.device for c in st.channels.values()]}))

    async def _open_feed(self, st: DevState, ch: Channel) -> None:
        async def serve(sink: PsSink) -> None:
            await self.live.serve(st, ch, sink)

        feed = FeedServer(ch.device, serve)
        ch.feed = feed
        await feed.start(self._feed_ports.get(ch.device, 0))
        self._feed_ports[ch.device] = feed.port
        self.ctx.publish(StreamOffer(ch.device, now_ms(), ch.device, feed.url, ch.name, options=dict(FEED_OPTIONS),
                                     on_demand=True, mode=st.cam.stream_mode, idle_close_s=self.platform.idle_close_s))

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.counts, **self.registrar.stats(), **self.live.stats(), **self.positions.counts}
        if self.transport is not None:
            out.update({f"sip_{k}": v for k, v in self.transport.stats().items()})
        return out
