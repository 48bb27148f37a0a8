"""media/fanout.py: each access unit packetized once per stream, shared by every viewer's sender;
the RTP each viewer gets is what aiortc's own sender would send (viewers decode it)."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc import RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket
from av.bitstream import BitStreamFilterContext

import media.fanout as fanout
from media.gop import VideoPacket
from media.source import VIEWER_QUEUE, Viewer
from tests.test_media_whep import W, H, _viewer, _wait_live, make_clip, media_gateway


def _access_units(path: Path) -> list[VideoPacket]:
    out = []
    with av.open(str(path)) as c:
        bsf = BitStreamFilterContext("h264_mp4toannexb", c.streams.video[0])
        for pkt in c.demux(c.streams.video[0]):
            for p in bsf.filter(pkt):
                out.append(VideoPacket(bytes(p), int(p.pts or 0), bool(p.is_keyframe)))
    return out


def test_shared_payloads_are_aiortcs_own_packetization(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    make_clip(clip, seconds=1.0)
    aus = _access_units(clip)
    assert aus and aus[0].keyframe
    for au in aus:
        pkt = av.Packet(au.data)
        pkt.pts, pkt.time_base = au.pts, Fraction(1, 90000)
        expected, ts = H264Encoder().pack(pkt)
        assert fanout.h264_payloads(au) == expected and ts == au.pts
        assert fanout.h264_payloads(au) is fanout.h264_payloads(au)  # computed once, kept on the packet


async def test_two_viewers_share_one_packetization_and_both_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packed: Counter[int] = Counter()  # id of the access unit's bytes -> packetizations
    real_pack = fanout.packetize_h264

    def counting_pack(data: bytes) -> list[bytes]:
        packed[id(data)] += 1
        return real_pack(data)

    monkeypatch.setattr(fanout, "packetize_h264", counting_pack)

    sent: dict[int, dict[int, list[bytes]]] = defaultdict(dict)  # sender -> pts -> the payload list it sent
    real_send = fanout.FanoutSender._send_frame

    def recording_send(self: Any, pt: int, payloads: list[bytes], pts: int, *args: Any) -> int:
        sent[id(self)][pts] = payloads
        return real_send(self, pt, payloads, pts, *args)

    monkeypatch.setattr(fanout.FanoutSender, "_send_frame", recording_send)

    # on the receiving side: every packet in order, the marker bit on each frame's last one
    received: dict[int, list[tuple[int, int, int]]] = defaultdict(list)  # receiver -> (seq, timestamp, marker)
    real_handle = RTCRtpReceiver._handle_rtp_packet

    async def handle(self: Any, packet: RtpPacket, arrival_time_ms: int) -> None:
        assert packet.extensions.mid is not None and packet.extensions.abs_send_time is not None
        received[id(self)].append((packet.sequence_number, packet.timestamp, packet.marker))
        await real_handle(self, packet, arrival_time_ms)

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", handle)

    clip = tmp_path / "clip.mp4"
    make_clip(clip)
    async with media_gateway(tmp_path, [{"id": "cam-1", "url": str(clip)}]) as (gw, client):
        await _wait_live(gw, client)
        viewers = [await _viewer(client) for _ in range(2)]
        try:
            for _, frames, _ in viewers:
                got = [await asyncio.wait_for(frames.get(), 10) for _ in range(20)]
                assert all((f.width, f.height) == (W, H) for f in got)
            sessions = list(gw.media.whep.sessions.values())
            assert len(sessions) == 2
            senders = [s.pc.getSenders()[0] for s in sessions]
            assert all(type(s) is fanout.FanoutSender for s in senders)
            for s in senders:  # the counters aiortc's RTCP sender reports and getStats read are kept
                stats = [x for x in (await s.getStats()).values() if x.type == "outbound-rtp"]
                assert stats[0].packetsSent > 0 and stats[0].bytesSent > 0
        finally:
            for pc, _, location in viewers:
                await client.delete(location)
                await pc.close()

    assert packed and max(packed.values()) == 1, "an access unit was packetized more than once"
    a, b = sent.values()
    common = set(a) & set(b)
    assert len(common) >= 20
    assert all(a[pts] is b[pts] for pts in common)  # the very same payload objects went to both viewers
    assert sum(len(x) for x in sent.values()) > len(packed)  # fewer packetizations than frames sent

    assert len(received) == 2
    for packets in received.values():
        seqs = [s for s, _, _ in packets]
        assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:])), "sequence numbers not contiguous"
        for (_, ts, marker), (_, next_ts, _) in zip(packets, packets[1:]):
            assert (ts != next_ts) == bool(marker), "marker bit not on each frame's last packet"


class _FakeDtls:
    state = "connected"

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)


async def test_nack_retransmits_the_plain_packet_or_its_rtx_wrapping() -> None:
    dtls = _FakeDtls()
    sender = RTCRtpSender("video", dtls)  # type: ignore[arg-type]
    fanout.use_fanout(sender)
    au_head = RtpPacket(payload_type=102, sequence_number=0, timestamp=1234, ssrc=sender._ssrc).serialize()
    sender._fanout_history = {7: (7, au_head, b"au", True)}  # type: ignore[attr-defined]
    plain = RtpPacket(payload_type=102, sequence_number=7, timestamp=1234, ssrc=sender._ssrc, marker=1,
                      payload=b"au").serialize()
    await sender._retransmit(7 + 128)  # an older packet in the same slot: nothing
    await sender._retransmit(7)
    assert dtls.sent == [plain]
    sender._RTCRtpSender__rtx_payload_type = 103  # type: ignore[attr-defined]
    await sender._retransmit(7)
    rtx = RtpPacket.parse(dtls.sent[-1])
    assert (rtx.payload_type, rtx.ssrc, rtx.payload) == (103, sender._rtx_ssrc, b"\x00\x07au")
    with pytest.raises(TypeError):
        fanout.use_fanout(sender)  # already swapped


def test_ntp_now_is_aiortcs_clock() -> None:
    from aiortc import clock
    a = clock.current_ntp_time()
    b = fanout.ntp_now()
    c = clock.current_ntp_time()
    assert a - (1 << 28) <= b <= c + (1 << 28)  # within 1/16 s of two readings around it


@pytest.mark.parametrize("extensions", [["mid", "abs"], ["mid"], []])
async def test_header_template_is_aiortcs_serialization(extensions: list[str]) -> None:
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    uris = {"mid": "urn:ietf:params:rtp-hdrext:sdes:mid",
            "abs": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"}
    sender = RTCRtpSender("video", _FakeDtls())  # type: ignore[arg-type]
    fanout.use_fanout(sender)
    params = RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=i + 3, uri=uris[e])
                                                for i, e in enumerate(extensions)])
    ext_map = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
    ext_map.configure(params)
    sender._RTCRtpSender__mid = "0"  # type: ignore[attr-defined]
    for ts, ntp in ((0, 0), (123456789, fanout.ntp_now()), (0xFFFFFFFF, (1 << 64) - 1)):
        expected = RtpPacket(payload_type=102, sequence_number=0, timestamp=ts, ssrc=sender._ssrc)
        expected.extensions.abs_send_time = (ntp >> 14) & 0xFFFFFF
        expected.extensions.mid = "0"
        assert bytes(sender._header(102, ts, ntp)) == expected.serialize(ext_map)


def test_import_check_fails_loudly_when_aiortc_internals_change(monkeypatch: pytest.MonkeyPatch) -> None:
    fanout._check_internals()

    async def _run_rtp(self: Any, codec: Any, extra: Any) -> None: ...

    monkeypatch.setattr(RTCRtpSender, "_run_rtp", _run_rtp)
    with pytest.raises(ImportError, match=r"aiortc 1\.16\.0.*_run_rtp"):
        fanout._check_internals()


async def test_a_full_viewer_queue_drops_to_the_next_keyframe() -> None:
    key = VideoPacket(b"k", 0, True)
    viewer = Viewer([key])
    for i in range(1, VIEWER_QUEUE):
        viewer.offer(VideoPacket(b"p", i, False))
    viewer.offer(VideoPacket(b"p", VIEWER_QUEUE, False))  # one too many: all dropped, wait for a keyframe
    assert viewer.dropped == VIEWER_QUEUE
    viewer.offer(VideoPacket(b"p", VIEWER_QUEUE + 1, False))
    next_key = VideoPacket(b"k", VIEWER_QUEUE + 2, True)
    viewer.offer(next_key)
    assert await viewer.get() is next_key
