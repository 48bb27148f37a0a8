"""The passthrough video send path: each access unit packetized once per stream, per viewer only
the RTP header, SRTP and the send.

aiortc's own sender (`RTCRtpSender._run_rtp`) does, for every viewer and every access unit: the
track's `recv()` (an `av.Packet` copy of the access unit), `H264Encoder.pack` (NAL splitting and
FU-A/STAP-A packetization), then per RTP packet an `RtpPacket` object, its header extensions
serialized, and four nested coroutines (`RTCDtlsTransport._send_rtp` → aioice `Connection.send` →
`sendto` → `StunProtocol.send_data`) around one `protect()` and one `sendto()`. With 16 viewers that
was 1.3-2× Janus's CPU per viewer (docs/benchmarks.md, "Where the per-viewer CPU goes").

`FanoutSender` replaces only `_run_rtp` and `_retransmit` of the viewer's own `RTCRtpSender`
instance (its class is swapped by `use_fanout`, nothing global is patched):

- it takes `VideoPacket`s straight from the `Viewer` queue (no `av.Packet`);
- H.264 payloads are computed once per access unit, by the first viewer that sends it, and kept on
  the `VideoPacket` (`VideoPacket.rtp`), so every viewer, and a late joiner's GOP, share them;
  VP8's payload descriptor carries a per-sender picture id, so VP8 is still packetized per viewer;
- per sender one RTP header serialized by aiortc; per access unit only its timestamp and
  abs-send-time bytes are written into a copy (the NTP time without aiortc's datetime arithmetic),
  per RTP packet only the marker bit and sequence number; then libsrtp's `srtp_protect` in place
  in the sender's own buffer (pylibsrtp's `protect()` allocates and copies twice per packet) and
  the UDP `sendto()` on the nominated ICE pair's asyncio transport, without the coroutine chain;
- the history that NACKs are answered from keeps the plain packets (bytes, not `RtpPacket`s);
- RTCP (sender reports, PLI/FIR/NACK/REMB handling) stays aiortc's: the counters its sender
  reports read are kept up to date.

It reaches into aiortc's private state (name-mangled attributes of `RTCRtpSender`,
`RTCDtlsTransport._tx_srtp`/`_state`, `RTCIceTransport._connection`, aioice's
`Connection._nominated`, pylibsrtp's `Session._srtp` and its cffi `lib.srtp_protect`). Written
against aiortc 1.16.0, aioice 0.13.0 and pylibsrtp 1.0.0 (pinned in constraints.txt); `_check_internals()` runs at import and raises ImportError if any of them is
gone, rather than failing at the first viewer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from typing import Any

import aioice.ice
import aiortc
import pylibsrtp
from aiortc import RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket, wrap_rtx
from aiortc.utils import random32, uint16_add
from pylibsrtp import SRTP_MAX_TRAILER_LEN, Session as SrtpSession
from pylibsrtp import Error as SrtpError
from pylibsrtp._binding import ffi as _ffi, lib as _srtp_lib

from media.gop import VideoPacket

log = logging.getLogger(__name__)

WRITTEN_FOR = {"aiortc": "1.16.0", "aioice": "0.13.0", "pylibsrtp": "1.0.0"}
_SCRATCH = 2048  # bytes: an RTP packet (aiortc's payloads are at most 1300) + SRTP's trailer
_NTP_UNIX_OFFSET = 2208988800  # seconds from 1900 to 1970
_srtp_protect = getattr(_srtp_lib, "srtp_protect", None)

_SENDER_ATTRS = ("__track", "__mid", "__rtp_started", "__rtp_exited", "__rtp_header_extensions_map",
                 "__rtx_payload_type", "__rtx_sequence_number", "__ntp_timestamp", "__rtp_timestamp",
                 "__octet_count", "__packet_count", "__encoder")


def _check_internals() -> None:
    """What this module relies on in aiortc/aioice; ImportError (not a silent black screen) if changed."""
    missing: list[str] = []
    sender_names = set(RTCRtpSender.__init__.__code__.co_names) | set(RTCRtpSender.replaceTrack.__code__.co_names)
    missing += [f"RTCRtpSender.{a}" for a in _SENDER_ATTRS if f"_RTCRtpSender{a}" not in sender_names]
    missing += [f"RTCRtpSender.{a}" for a in ("_enabled", "_ssrc", "_rtx_ssrc") if a not in sender_names]
    run_rtp = RTCRtpSender._run_rtp
    if run_rtp.__code__.co_argcount != 2 or run_rtp.__code__.co_varnames[:2] != ("self", "codec"):
        missing.append("RTCRtpSender._run_rtp(self, codec)")
    if "_run_rtp" not in RTCRtpSender.send.__code__.co_names:
        missing.append("RTCRtpSender.send starting _run_rtp")
    dtls_names = set(RTCDtlsTransport.__init__.__code__.co_names)
    for a in ("_tx_srtp", "_state", "_RTCDtlsTransport__tx_bytes", "_RTCDtlsTransport__tx_packets"):
        if a not in dtls_names:
            missing.append(f"RTCDtlsTransport.{a}")
    if not hasattr(State, "CONNECTED"):
        missing.append("aiortc.rtcdtlstransport.State.CONNECTED")
    if "_connection" not in RTCIceTransport.__init__.__code__.co_names:
        missing.append("RTCIceTransport._connection")
    if "_nominated" not in aioice.ice.Connection.__init__.__code__.co_names:
        missing.append("aioice Connection._nominated")
    if "transport" not in aioice.ice.StunProtocol.send_data.__code__.co_names:
        missing.append("aioice StunProtocol.send_data → transport.sendto")
    if "_srtp" not in SrtpSession.__init__.__code__.co_names or _srtp_protect is None:
        missing.append("pylibsrtp Session._srtp / srtp_protect")
    for cls, name in ((H264Encoder, "_packetize"), (H264Encoder, "_split_bitstream"), (Vp8Encoder, "_packetize")):
        if not callable(getattr(cls, name, None)):
            missing.append(f"{cls.__name__}.{name}")
    if missing:
        raise ImportError(f"media.fanout was written against aiortc {WRITTEN_FOR['aiortc']} / aioice "
                          f"{WRITTEN_FOR['aioice']} / pylibsrtp {WRITTEN_FOR['pylibsrtp']} (found "
                          f"{aiortc.__version__} / {aioice.__version__} / {pylibsrtp.__version__}); "
                          f"these internals changed: {', '.join(missing)}")


_check_internals()


def h264_payloads(pkt: VideoPacket) -> list[bytes]:
    """The access unit's RTP payloads (aiortc's own packetizer), computed once and kept on the packet."""
    payloads = pkt.rtp.get("h264")
    if payloads is None:
        payloads = pkt.rtp["h264"] = packetize_h264(pkt.data)
    return payloads


def packetize_h264(data: bytes) -> list[bytes]:
    return H264Encoder._packetize(H264Encoder._split_bitstream(data))


_STUN_SEND = aioice.ice.StunProtocol.send_data


class FanoutSender(RTCRtpSender):
    """An `RTCRtpSender` for a `PassthroughTrack`: see the module's docstring. Never constructed:
    `use_fanout` swaps the class of the sender aiortc made."""

    _fanout_history: dict[int, tuple[int, bytes, bytes, bool]]
    _vp8_picture_id: int
    _fanout_template: tuple[bytes, int] | None = None
    _fanout_srtp: Any = None

    async def _run_rtp(self, codec: Any) -> None:  # type: ignore[override]
        self._RTCRtpSender__rtp_started.set()  # type: ignore[attr-defined]
        self._fanout_history = history = {}
        self._vp8_picture_id = random32() % (1 << 15)
        track = self._RTCRtpSender__track  # type: ignore[attr-defined]
        sequence_number = random_sequence_number()
        timestamp_origin = random32()
        pt = codec.payloadType
        h264 = codec.mimeType.lower() == "video/h264"
        try:
            viewer = track.viewer
            while True:
                pkt = await viewer.get()
                if not self._enabled:
                    continue
                if h264:
                    payloads = h264_payloads(pkt)
                else:
                    payloads = Vp8Encoder._packetize(pkt.data, self._vp8_picture_id)
                    self._vp8_picture_id = (self._vp8_picture_id + 1) % (1 << 15)
                if payloads:
                    sequence_number = self._send_frame(pt, payloads, pkt.pts, timestamp_origin,
                                                       sequence_number, history)
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:  # as aiortc: _rtp_exited must be set or stop() hangs
            log.warning("fanout sender: %s", traceback.format_exc())
        if self._RTCRtpSender__track:  # type: ignore[attr-defined]
            self._RTCRtpSender__track.stop()  # type: ignore[attr-defined]
            self._RTCRtpSender__track = None  # type: ignore[attr-defined]
        self._RTCRtpSender__encoder = None  # type: ignore[attr-defined]
        self._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]

    def _send_frame(self, pt: int, payloads: list[bytes], pts: int, timestamp_origin: int, seq: int,
                    history: dict[int, tuple[int, bytes, bytes, bool]]) -> int:
        dtls = self.transport
        if dtls._state != State.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            raise ConnectionError("Cannot send data, not connected")
        timestamp = (timestamp_origin + pts) & 0xFFFFFFFF
        ntp = ntp_now()
        head = self._header(pt, timestamp, ntp)
        au_head = bytes(head)  # what NACKs are answered from (seq and marker set again then)
        srtp = dtls._tx_srtp
        if srtp is not self._fanout_srtp:
            self._fanout_srtp, self._fanout_srtp_t = srtp, srtp._srtp[0]
            self._fanout_cbuf = _ffi.new("char[]", _SCRATCH)
            self._fanout_len = _ffi.new("int *")
        srtp_t, cbuf, length = self._fanout_srtp_t, self._fanout_cbuf, self._fanout_len
        buf = _ffi.buffer(cbuf)
        view = memoryview(buf)
        protocol = pair.protocol
        addr = pair.remote_addr
        direct = type(protocol).send_data is _STUN_SEND
        sendto = protocol.transport.sendto if direct else None
        hl = len(head)
        last = len(payloads) - 1
        octets = sent_bytes = 0
        for i, payload in enumerate(payloads):
            marker = i == last
            head[1] = pt | 0x80 if marker else pt
            head[2] = seq >> 8
            head[3] = seq & 0xFF
            history[seq % RTP_HISTORY_SIZE] = (seq, au_head, payload, marker)
            n = hl + len(payload)
            if n <= _SCRATCH - SRTP_MAX_TRAILER_LEN:  # SRTP in place in our own buffer: one copy in, none out
                buf[0:hl] = head
                buf[hl:n] = payload
                length[0] = n
                rc = _srtp_protect(srtp_t, cbuf, length)
                if rc:
                    raise SrtpError(f"srtp_protect: {rc}")
                data: bytes | memoryview = view[:length[0]]
            else:
                data = srtp.protect(bytes(head) + payload)
            if direct:
                sendto(data, addr)  # asyncio copies it if the socket would block
            else:  # TURN: aioice wraps the datagram itself (a coroutine)
                asyncio.ensure_future(protocol.send_data(bytes(data), addr))
            octets += len(payload)
            sent_bytes += len(data)
            seq = (seq + 1) & 0xFFFF
        # what aiortc's loop keeps for its RTCP sender reports and getStats()
        self._RTCRtpSender__ntp_timestamp = ntp  # type: ignore[attr-defined]
        self._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        self._RTCRtpSender__octet_count += octets  # type: ignore[attr-defined]
        self._RTCRtpSender__packet_count += len(payloads)  # type: ignore[attr-defined]
        dtls._RTCDtlsTransport__tx_bytes += sent_bytes  # type: ignore[attr-defined]
        dtls._RTCDtlsTransport__tx_packets += len(payloads)  # type: ignore[attr-defined]
        return seq

    def _header(self, pt: int, timestamp: int, ntp: int) -> bytearray:
        """This access unit's RTP header (sequence number 0, no marker): aiortc's own serialization
        once per sender, then only the timestamp and the abs-send-time bytes written into it."""
        ext_map = self._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
        mid = self._RTCRtpSender__mid  # type: ignore[attr-defined]

        def serialize(abs_send_time: int, ts: int) -> bytes:
            p = RtpPacket(payload_type=pt, sequence_number=0, timestamp=ts, ssrc=self._ssrc)
            p.extensions.abs_send_time = abs_send_time
            p.extensions.mid = mid
            return p.serialize(ext_map)

        abs_send_time = (ntp >> 14) & 0x00FFFFFF
        if self._fanout_template is None:
            a, b = serialize(0, 0), serialize(0xFFFFFF, 0)
            diff = [i for i in range(len(a)) if a[i] != b[i]] if len(a) == len(b) else [-1]
            if not diff:  # abs-send-time not negotiated
                self._fanout_template = (a, 0)
            elif len(diff) == 3 and diff[2] - diff[0] == 2 and diff[0] >= 12:
                self._fanout_template = (a, diff[0])
            else:  # not the layout expected: aiortc serializes every header
                self._fanout_template = (b"", -1)
        template, offset = self._fanout_template
        if offset < 0:
            return bytearray(serialize(abs_send_time, timestamp))
        head = bytearray(template)
        head[4:8] = timestamp.to_bytes(4, "big")
        if offset:
            head[offset:offset + 3] = abs_send_time.to_bytes(3, "big")
        return head

    async def _retransmit(self, sequence_number: int) -> None:
        """A NACKed packet again (as aiortc: RTX-wrapped when RTX was negotiated)."""
        entry = getattr(self, "_fanout_history", {}).get(sequence_number % RTP_HISTORY_SIZE)
        if entry is None or entry[0] != sequence_number:
            return
        _, au_head, payload, marker = entry
        head = bytearray(au_head)
        if marker:
            head[1] |= 0x80
        head[2:4] = sequence_number.to_bytes(2, "big")
        plain = bytes(head) + payload
        rtx_pt = self._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
        if rtx_pt is not None:
            ext_map = self._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
            packet = wrap_rtx(RtpPacket.parse(plain, ext_map), payload_type=rtx_pt,
                              sequence_number=self._RTCRtpSender__rtx_sequence_number,  # type: ignore[attr-defined]
                              ssrc=self._rtx_ssrc)
            self._RTCRtpSender__rtx_sequence_number = uint16_add(  # type: ignore[attr-defined]
                self._RTCRtpSender__rtx_sequence_number, 1)  # type: ignore[attr-defined]
            plain = packet.serialize(ext_map)
        await self.transport._send_rtp(plain)


def ntp_now() -> int:
    """aiortc's clock.current_ntp_time() (64-bit NTP, µs resolution) without the datetime arithmetic."""
    t = time.time()
    sec = int(t)
    return ((sec + _NTP_UNIX_OFFSET) << 32) | ((round((t - sec) * 1e6) * (1 << 32)) // 1000000)


def use_fanout(sender: RTCRtpSender) -> None:
    """Make aiortc's sender of a `PassthroughTrack` (video, before it starts) a `FanoutSender`."""
    if type(sender) is not RTCRtpSender:
        raise TypeError(f"expected a plain RTCRtpSender, got {type(sender).__name__}")
    sender.__class__ = FanoutSender
