"""Live view on demand: a viewer connection on a channel's feed → INVITE → RTP → PS into it → BYE.

The call lasts as long as the viewer connection: it is hung up (BYE) when the relay
closes the connection, and the connection is closed when the call ends by itself (the
device's BYE, its TCP media closing, a re-registration after a reboot, the device going
offline). The relay then reconnects, which invites again once the device is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import Counter
from dataclasses import dataclass, field

from drivers.gb28181 import sdp
from drivers.gb28181.dialog import Dialog, Requests
from drivers.gb28181.feed import PsSink
from drivers.gb28181.options import Platform
from drivers.gb28181.registrar import Channel, DevState
from drivers.gb28181.rtp_in import RtpIn
from drivers.gb28181.sip import SipMessage
from drivers.gb28181.transport import Peer, SipTransport

log = logging.getLogger(__name__)

WAIT_REGISTERED_S = 8.0  # a viewer connection waits this long for its device (the relay retries after)
INVITE_TIMEOUT_S = 10.0
BYE_TIMEOUT_S = 4.0


@dataclass(eq=False)
class Call:
    dialog: Dialog
    state: DevState
    channel: Channel
    invite_cseq: int = 1
    answered: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    why: str = ""

    def end(self, why: str) -> None:
        if not self.ended.is_set():
            self.why = why
            self.ended.set()


class Live:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.transport: SipTransport | None = None
        self.requests: Requests | None = None
        self.calls: dict[str, Call] = {}
        self.counts: Counter[str] = Counter()
        self._ssrc_seq = itertools.count(1)

    def attach(self, transport: SipTransport, requests: Requests) -> None:
        self.transport, self.requests = transport, requests

    def new_ssrc(self) -> str:
        """`y=`: 0 (live) + 5 digits of the SIP domain + a 4-digit sequence (GB/T 28181-2016 Annex F)."""
        domain = (self.platform.realm + "00000000")[3:8]
        domain = domain if domain.isdigit() else "00000"
        return f"0{domain}{next(self._ssrc_seq) % 10000:04d}"

    def end_calls(self, st: DevState, why: str) -> None:
        for call in list(self.calls.values()):
            if call.state is st:
                call.end(why)

    # -- a viewer ----------------------------------------------------------------------
    async def serve(self, st: DevState, ch: Channel, sink: PsSink) -> None:
        self.counts["viewer_connections"] += 1
        try:
            async with asyncio.timeout(WAIT_REGISTERED_S):
                await st.registered.wait()
        except TimeoutError:
            self.counts["viewer_device_absent"] += 1
            return
        assert self.transport is not None and self.requests is not None
        peer = st.peer
        if peer is None or not peer.usable:
            self.counts["viewer_device_absent"] += 1
            return
        mode = st.cam.media
        ssrc = self.new_ssrc()
        rin = RtpIn(mode, int(ssrc), sink.deliver)
        call: Call | None = None
        try:
            port = await rin.bind("0.0.0.0")
            ip = self.platform.media_ip or self.transport.local_ip(peer.addr[0])
            dlg = self.requests.new_dialog(ch.gb_id, peer)
            call = Call(dlg, st, ch)
            self.calls[dlg.call_id] = call
            offer = sdp.Offer(self.platform.server_id, ip, port, ssrc, mode).encode()
            invite = self.requests.in_dialog(dlg, "INVITE", offer, "APPLICATION/SDP", cseq=1,
                                             headers=[("Subject", f"{ch.gb_id}:{ssrc},{self.platform.server_id}:0")])
            self.counts["invites"] += 1
            try:
                resp = await self.transport.request(invite, peer, INVITE_TIMEOUT_S)
            except (TimeoutError, ConnectionError) as exc:
                self.counts["invite_failed"] += 1
                log.info("INVITE of %s failed: %s", ch.gb_id, exc or type(exc).__name__)
                return
            if resp.status >= 300:
                self.counts[f"invite_{resp.status}"] += 1
                self.transport.send(self._ack_failure(invite, resp), peer)
                log.info("INVITE of %s refused: %d %s", ch.gb_id, resp.status, resp.reason)
                return
            dlg.absorb(resp)
            call.answered = True
            self.transport.send(self.requests.ack(dlg, 1), peer)
            try:
                answer = sdp.parse_answer(resp.body)
            except sdp.SdpError as exc:
                self.counts["bad_answers"] += 1
                call.why = f"unusable SDP answer: {exc}"
                return
            if mode == "tcp-active":
                try:
                    await rin.connect(answer.ip, answer.port)
                except (OSError, TimeoutError) as exc:
                    self.counts["media_connect_failed"] += 1
                    call.why = f"media connection to {answer.ip}:{answer.port} failed: {exc}"
                    return
            self.counts["calls_up"] += 1
            waits = [asyncio.create_task(e.wait()) for e in (sink.closed, rin.closed, call.ended)]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
            if rin.closed.is_set() and not call.ended.is_set():
                call.why = "the device closed the media connection"
        finally:
            sink.close()
            if call is not None:
                self.calls.pop(call.dialog.call_id, None)
                if call.answered and not call.why.startswith("device BYE"):
                    await self._bye(call)  # before the media closes: a device hangs up itself when it sees that
            await rin.close()
            for k, v in rin.stats().items():
                self.counts[k] += v
            for k, v in sink.counts.items():
                self.counts[f"ps_{k}"] += v

    async def _bye(self, call: Call) -> None:
        assert self.transport is not None and self.requests is not None
        bye = self.requests.in_dialog(call.dialog, "BYE")
        self.counts["byes_sent"] += 1
        with contextlib.suppress(TimeoutError, ConnectionError):
            await self.transport.request(bye, call.dialog.peer, BYE_TIMEOUT_S)

    @staticmethod
    def _ack_failure(invite: SipMessage, resp: SipMessage) -> SipMessage:
        """RFC 3261 §17.1.1.3: the ACK of a non-2xx is in the INVITE's transaction (its Via and branch)."""
        ack = SipMessage(method="ACK", uri=invite.uri)
        ack.headers = [("Via", invite.get_all("Via")[0]), ("From", invite.get("From")), ("To", resp.get("To")),
                       ("Call-ID", invite.call_id), ("CSeq", f"{invite.cseq[0]} ACK"), ("Max-Forwards", "70")]
        return ack

    # -- the device's side ------------------------------------------------------------
    def device_bye(self, req: SipMessage, peer: Peer) -> bool:
        call = self.calls.get(req.call_id)
        if call is None:
            return False
        self.counts["byes_received"] += 1
        call.end("device BYE")
        return True

    def stray_2xx(self, resp: SipMessage, peer: Peer) -> None:
        """A 2xx to our INVITE repeated because our ACK was lost: ACK again (RFC 3261 §13.2.2.4)."""
        call = self.calls.get(resp.call_id)
        try:
            num, method = resp.cseq
        except ValueError:
            return
        if call is not None and method == "INVITE" and 200 <= resp.status < 300 and self.requests is not None:
            assert self.transport is not None
            self.counts["acks_repeated"] += 1
            self.transport.send(self.requests.ack(call.dialog, num), peer)

    def stats(self) -> dict[str, int]:
        return {**self.counts, "calls": len(self.calls)}
