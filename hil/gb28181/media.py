"""Live video sessions of the device: the INVITE's SDP offer, the device's answer, and RTP senders.

Media is MPEG-PS (ps.py) over RTP (RFC 3550, payload type from the offer's `PS/90000` rtpmap, SSRC
from `y=`, 90 kHz timestamps, marker on a frame's last packet), on UDP or on TCP with the RFC 4571
two-byte length before each packet. TCP roles follow RFC 4145 from the offer's `a=setup`:

* offer `passive` (the platform listens): the device answers `active` and connects to the
  platform's `c=`/`m=` address after the ACK;
* offer `active` (the platform connects): the device answers `passive` with its own port in `m=`,
  listens there, and streams once the ACK is in and the platform has connected;
* offer `actpass` is treated as `passive` (the device connects).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..camera.rtp import RtpStream
from .ps import PsMuxer
from .video import AccessUnit, ChannelVideo

log = logging.getLogger(__name__)

MAX_RTP_PAYLOAD = 1400
TCP_BACKLOG_LIMIT = 4 * 1024 * 1024  # bytes queued on a TCP media connection before frames are dropped
CODEC_F = {"h264": "2", "h265": "5"}   # f= video codec numbers (1 MPEG-4, 2 H.264, 3 SVAC, 4 3GP; 5 H.265 is unverified)


class SdpError(ValueError):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Offer:
    session: str          # s= (Play, Playback, Download, Talk)
    address: str          # c= address
    port: int             # m=video port
    tcp: bool
    setup: str            # a=setup of the offer ("" for UDP)
    payload_type: int     # the offer's PS/90000 payload type
    ssrc_text: str        # y= as written (10 digits)
    direction: str = "recvonly"
    raw: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ssrc(self) -> int:
        return int(self.ssrc_text) & 0xFFFFFFFF

    @property
    def device_connects(self) -> bool:
        return self.tcp and self.setup != "active"


def parse_offer(text: str) -> Offer:
    """The parts of a GB/T 28181 INVITE offer this device uses; SdpError(488/400) if unusable."""
    session, conn = "", ""
    video: dict[str, Any] | None = None
    lines: dict[str, list[str]] = {}
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        key, value = line[0], line[2:].strip()
        lines.setdefault(key, []).append(value)
        if key == "s":
            session = value
        elif key == "c" and (video is None or not conn):
            conn = value.split()[-1] if value.split() else ""
        elif key == "m":
            parts = value.split()
            if video is None and parts and parts[0] == "video" and len(parts) >= 4:
                video = {"port": parts[1], "proto": parts[2], "fmts": parts[3:], "attrs": [], "c": ""}
            elif video is not None and "done" not in video:
                video["done"] = True
        elif key == "a" and video is not None and "done" not in video:
            video["attrs"].append(value)
        elif key == "c" and video is not None and "done" not in video:
            video["c"] = value.split()[-1]
    if video is None:
        raise SdpError(488, "no m=video line")
    if session and session.lower() != "play":
        raise SdpError(488, f"s={session} not supported (live Play only)")
    proto = video["proto"].upper()
    if proto not in ("RTP/AVP", "TCP/RTP/AVP", "RTP/AVP/TCP"):
        raise SdpError(488, f"media protocol {video['proto']} not supported")
    tcp = "TCP" in proto
    if not video["port"].isdigit() or not 0 <= int(video["port"]) <= 65535:
        raise SdpError(400, f"bad port {video['port']!r}")
    pt = None
    for attr in video["attrs"]:
        name, _, val = attr.partition(":")
        if name.lower() == "rtpmap":
            num, _, enc = val.partition(" ")
            if enc.strip().upper().startswith("PS/90000") and num.isdigit():
                pt = int(num)
                break
    if pt is None:
        if "96" in video["fmts"] and not any(a.lower().startswith("rtpmap:96 ") for a in video["attrs"]):
            pt = 96
        else:
            raise SdpError(488, "no PS/90000 payload type offered")
    setup = ""
    for attr in video["attrs"]:
        if attr.lower().startswith("setup:"):
            setup = attr.split(":", 1)[1].strip().lower()
    if tcp and setup not in ("", "active", "passive", "actpass"):
        raise SdpError(488, f"a=setup:{setup} not understood")
    direction = next((a.lower() for a in video["attrs"] if a.lower() in ("recvonly", "sendrecv", "sendonly", "inactive")),
                     "recvonly")
    ssrc_text = (lines.get("y") or [""])[0]
    if not ssrc_text:
        ssrc_text = "0" + os.urandom(4).hex()[:9].translate(str.maketrans("abcdef", "123456"))
    if not ssrc_text.isdigit() or len(ssrc_text) > 10 or int(ssrc_text) > 0xFFFFFFFF:
        raise SdpError(400, f"bad y= SSRC {ssrc_text!r}")
    address = video["c"] or conn
    if not address:
        raise SdpError(400, "no c= address")
    return Offer(session or "Play", address, int(video["port"]), tcp, setup or ("passive" if tcp else ""), pt,
                 ssrc_text, direction, lines)


def resolution_code(width: int, height: int) -> str:
    """f= resolution number (GB/T 28181 appendix F): 1 QCIF, 2 CIF, 3 4CIF, 4 D1, 5 720P, 6 1080P/I."""
    if height >= 1080:
        return "6"
    if height >= 720:
        return "5"
    if height >= 576 and width >= 704:
        return "4" if width == 720 else "3"
    if height >= 288:
        return "2"
    return "1"


class StreamSession:
    """One INVITE dialog's media: sockets set up at the answer, sending from the ACK until stopped."""

    def __init__(self, offer: Offer, video: ChannelVideo, codec: str, local_ip: str, bind_ip: str,
                 on_end: Callable[[StreamSession, str], None]) -> None:
        self.offer = offer
        self.video = video
        self.codec = codec
        self.local_ip = local_ip
        self.bind_ip = bind_ip
        self.on_end = on_end
        self.call_id = ""
        self.remote = (offer.address, offer.port)
        self.local_port = 0
        self.mux = PsMuxer(codec)
        self.rtp = RtpStream(0.0)
        self.rtp.ssrc = offer.ssrc
        self.packets = self.octets = self.frames = self.dropped_frames = self.send_errors = 0
        self.state = "answered"
        self._sock: socket.socket | None = None          # UDP socket, TCP client socket, or TCP listener
        self._writer: asyncio.StreamWriter | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connected = asyncio.Event()
        self._acked = False
        self._sid: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._skip_to_key = False
        self._ended = False
        self._watcher: asyncio.Task[None] | None = None

    # -- set-up at the answer -------------------------------------------------------------

    async def prepare(self) -> None:
        o = self.offer
        if not o.tcp:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.bind((self.bind_ip, 0))
            self._sock.setblocking(False)
        elif o.device_connects:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((self.bind_ip, 0))
            self._sock.setblocking(False)
        else:
            self._server = await asyncio.start_server(self._accepted, self.bind_ip, 0)
            self.local_port = self._server.sockets[0].getsockname()[1]
            return
        self.local_port = self._sock.getsockname()[1]

    def answer(self, device_id: str, width: int, height: int, fps: int, kbps: int) -> str:
        o = self.offer
        proto = "TCP/RTP/AVP" if o.tcp else "RTP/AVP"
        lines = ["v=0", f"o={device_id} 0 0 IN IP4 {self.local_ip}", "s=Play", f"c=IN IP4 {self.local_ip}", "t=0 0",
                 f"m=video {self.local_port} {proto} {o.payload_type}", "a=sendonly",
                 f"a=rtpmap:{o.payload_type} PS/90000"]
        if o.tcp:
            lines += [f"a=setup:{'active' if o.device_connects else 'passive'}", "a=connection:new"]
        lines += [f"y={o.ssrc_text}", f"f=v/{CODEC_F[self.codec]}/{resolution_code(width, height)}/{fps}/1/{kbps}a///"]
        return "\r\n".join(lines) + "\r\n"

    # -- running --------------------------------------------------------------------------

    def ack(self) -> None:
        """The ACK arrived: start (TCP active: connect first; TCP passive: wait for the platform)."""
        if self._acked or self._ended:
            return
        self._acked = True
        self._task = asyncio.create_task(self._start(), name=f"stream-{self.offer.ssrc_text}")

    async def _start(self) -> None:
        o = self.offer
        try:
            if o.tcp and o.device_connects:
                assert self._sock is not None
                self.state = "connecting"
                await asyncio.wait_for(asyncio.get_running_loop().sock_connect(self._sock, self.remote), 10.0)
                reader, self._writer = await asyncio.open_connection(sock=self._sock)
                self._sock = None
                self._watch_close(reader)
            elif o.tcp:
                self.state = "listening"
                await asyncio.wait_for(self._connected.wait(), 30.0)
        except (OSError, TimeoutError) as exc:
            log.warning("stream %s: no TCP media connection (%s)", o.ssrc_text, exc or type(exc).__name__)
            self.end("media connection failed")
            return
        self.state = "streaming"
        self._sid = self.video.subscribe(self._send_frame)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None or self._ended:
            writer.close()
            return
        self._writer = writer
        self.remote = writer.get_extra_info("peername")[:2]
        self._connected.set()
        if self._server is not None:
            self._server.close()  # one connection per session
        self._watch_close(reader)

    def _watch_close(self, reader: asyncio.StreamReader) -> None:
        """End the session when the platform closes the media connection."""
        async def watch() -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while await reader.read(65536):  # RTCP from the platform, if any, is ignored
                    pass
            if not self._ended:
                self.end("media connection closed")
        self._watcher = asyncio.get_running_loop().create_task(watch())

    def _send_frame(self, au: AccessUnit) -> None:
        if self._ended:
            return
        if self._skip_to_key and not au.keyframe:
            self.dropped_frames += 1
            return
        self._skip_to_key = False
        ps = self.mux.frame(au.annexb, round(au.due * 90_000), au.keyframe)
        payloads = [ps[i:i + MAX_RTP_PAYLOAD] for i in range(0, len(ps), MAX_RTP_PAYLOAD)]
        packets = self.rtp.packetize(payloads, self.rtp.timestamp(au.due))
        if self.offer.payload_type != 96:
            packets = [p[:1] + bytes(((p[1] & 0x80) | self.offer.payload_type,)) + p[2:] for p in packets]
        if self._writer is not None:
            if self._writer.transport.get_write_buffer_size() > TCP_BACKLOG_LIMIT:
                self.dropped_frames += 1
                self._skip_to_key = True
                return
            self._writer.write(b"".join(struct.pack(">H", len(p)) + p for p in packets))
        elif self._sock is not None:
            for p in packets:
                try:
                    self._sock.sendto(p, self.remote)
                except (BlockingIOError, InterruptedError):
                    self.send_errors += 1
                except OSError as exc:  # ICMP unreachable on loopback and the like: UDP drops
                    self.send_errors += 1
                    log.debug("stream %s: send failed: %s", self.offer.ssrc_text, exc)
        self.packets += len(packets)
        self.octets += sum(len(p) for p in packets)
        self.frames += 1

    def end(self, reason: str) -> None:
        """Stop sending and free the sockets; `on_end` tells the device (it sends a BYE unless the
        platform ended the call)."""
        if self._ended:
            return
        self._ended = True
        self.state = "ended"
        self.close_media()
        self.on_end(self, reason)

    def close_media(self) -> None:
        self._ended = True
        if self._sid is not None:
            self.video.unsubscribe(self._sid)
            self._sid = None
        for task in (self._task, self._watcher):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None

    def to_json(self) -> dict[str, Any]:
        o = self.offer
        return {"ssrc": o.ssrc_text, "transport": "TCP" if o.tcp else "UDP",
                "setup": ("active" if o.device_connects else "passive") if o.tcp else None,
                "remote": list(self.remote), "local_port": self.local_port, "state": self.state,
                "frames": self.frames, "packets": self.packets, "octets": self.octets,
                "dropped_frames": self.dropped_frames, "send_errors": self.send_errors}
