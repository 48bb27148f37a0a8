"""media/rtsp: the native RTSP ingest. Depacketizers (unit + hypothesis), reordering and loss,
SPS parsing, SDP and auth; then against the camera simulator (TCP and UDP, H.264 and H.265,
session keep-alive, a camera reboot) and against a stub server in this file that demands
Digest or Basic auth and records the client's RTCP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.camera.sei import find_stamp
from media.annexb import split_nals
from media.ingest import StreamInfo
from media.rtsp import RtspIngest, wants_native
from media.rtsp.audio import AudioTrack, AuLayout, split_aus
from media.rtsp.auth import Auth, parse_challenge
from media.rtsp.client import split_credentials
from media.rtsp.h26x import AccessUnit, Depacketizer, ParameterSets, sps_info
from media.rtsp.rtp import Reorder, RtpPacket, ReceiverStats, parse_rtp, receiver_report
from media.rtsp.sdp import parameter_sets, parse_sdp, resolve_control
from media.source import StreamConfig, StreamSource
from tests.conftest import free_port
from tests.test_media_camera import _camera


# ======================================================================================
# test-side packetizers (independent of media/rtsp and of hil/camera)
# ======================================================================================
def h264_nal(t: int, body: bytes, ref: int = 3) -> bytes:
    return bytes(((ref << 5) | t,)) + body


def hevc_nal(t: int, body: bytes) -> bytes:
    return bytes((t << 1, 1)) + body


def packetize(codec: str, nals: list[bytes], rnd: random.Random, max_payload: int, don: bool = False) -> list[bytes]:
    """RTP payloads for one access unit: per NAL unit, at random, a single-NAL packet, FU
    fragments cut at random points, or (runs of small ones) an aggregation packet."""
    out: list[bytes] = []
    i = 0
    while i < len(nals):
        nal = nals[i]
        choice = rnd.random()
        if choice < 0.3 and i + 1 < len(nals) and len(nal) + len(nals[i + 1]) + 8 <= max_payload:
            group = [nal, nals[i + 1]]
            i += 2
            if codec == "h264":
                nri = max(n[0] & 0x60 for n in group)
                out.append(bytes((nri | 24,)) + b"".join(len(n).to_bytes(2, "big") + n for n in group))
            else:
                hdr = bytes((48 << 1, 1))
                parts = []
                for k, n in enumerate(group):
                    parts.append((b"\x00\x07" if k == 0 else b"\x01") if don else b"")
                    parts.append(len(n).to_bytes(2, "big") + n)
                out.append(hdr + b"".join(parts))
            continue
        i += 1
        if choice < 0.6 and len(nal) <= max_payload:
            out.append(nal if not don else nal[:2] + b"\x00\x07" + nal[2:])
            continue
        hlen = 1 if codec == "h264" else 2
        body = nal[hlen:]
        cuts = sorted(rnd.sample(range(1, len(body)), min(len(body) - 1, rnd.randint(1, 6)))) if len(body) > 1 else []
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
        for k, piece in enumerate(pieces):
            s, e = k == 0, k == len(pieces) - 1
            if codec == "h264":
                ind = (nal[0] & 0xE0) | 28
                fu = (0x80 if s else 0) | (0x40 if e else 0) | (nal[0] & 0x1F)
                out.append(bytes((ind, fu)) + piece)
            else:
                ntype = (nal[0] >> 1) & 0x3F
                hdr = bytes(((nal[0] & 0x81) | (49 << 1), nal[1]))
                fu = (0x80 if s else 0) | (0x40 if e else 0) | ntype
                out.append(hdr + bytes((fu,)) + (b"\x00\x07" if don and s else b"") + piece)
    return out


def rtp(payload: bytes, seq: int, ts: int, marker: bool, pt: int = 96, ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def body_st(min_size: int = 1, max_size: int = 3000) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=min_size, max_size=max_size)


def access_units(codec: str) -> st.SearchStrategy[list[tuple[list[bytes], bool]]]:
    """A stream: first AU a keyframe, then P frames and keyframes; each AU = [non-VCL...] + slices."""
    def au(key: bool) -> st.SearchStrategy[tuple[list[bytes], bool]]:
        if codec == "h264":
            slice_t = 5 if key else 1
            pre = st.lists(st.sampled_from([6, 7, 8, 9]).flatmap(lambda t: body_st(1, 60).map(lambda b: h264_nal(t, b, 0 if t == 6 else 3))), max_size=3)
            first = body_st(1, 4000).map(lambda b: h264_nal(slice_t, bytes((b[0] | 0x80,)) + b[1:]))
            more = st.lists(body_st(1, 2000).map(lambda b: h264_nal(slice_t, bytes((b[0] & 0x7F,)) + b[1:])), max_size=2)
        else:
            slice_t = 19 if key else 1
            pre = st.lists(st.sampled_from([32, 33, 34, 39]).flatmap(lambda t: body_st(1, 60).map(lambda b: hevc_nal(t, b))), max_size=3)
            first = body_st(1, 4000).map(lambda b: hevc_nal(slice_t, bytes((b[0] | 0x80,)) + b[1:]))
            more = st.lists(body_st(1, 2000).map(lambda b: hevc_nal(slice_t, bytes((b[0] & 0x7F,)) + b[1:])), max_size=2)
        return st.tuples(pre, first, more).map(lambda x: (x[0] + [x[1]] + x[2], key))

    return st.tuples(au(True), st.lists(st.booleans().flatmap(au), min_size=0, max_size=8)).map(lambda x: [x[0]] + x[1])


def stream_packets(codec: str, aus: list[tuple[list[bytes], bool]], seed: int, max_payload: int = 1200,
                   don: bool = False) -> list[tuple[int, list[bytes]]]:
    """[(ts, [rtp payloads])] per access unit."""
    rnd = random.Random(seed)
    return [(1000 + 3000 * i, packetize(codec, nals, rnd, max_payload, don)) for i, (nals, _) in enumerate(aus)]


def feed(d: Depacketizer, packets: list[tuple[int, list[bytes]]]) -> list[AccessUnit]:
    out: list[AccessUnit] = []
    for ts, payloads in packets:
        for k, p in enumerate(payloads):
            out += d.push(p, ts, k == len(payloads) - 1)
    return out


# ======================================================================================
# depacketizers
# ======================================================================================
SPS = h264_nal(7, b"\x42\xc0\x1f\xda\x01\x40\x16\xe8\x40\x00\x00\x03\x00\x40\x00\x00\x0f\x23\xc6\x0c\xa8")
PPS = h264_nal(8, b"\xce\x3c\x80")
IDR = h264_nal(5, b"\x88" + bytes(range(256)) * 12)
P1 = h264_nal(1, b"\x9a" + bytes(200))


def test_h264_single_stap_fu_and_marker_closes_at_once() -> None:
    d = Depacketizer("h264")
    stap = bytes((0x78,)) + len(SPS).to_bytes(2, "big") + SPS + len(PPS).to_bytes(2, "big") + PPS
    assert d.push(stap, 100, False) == []
    fus = packetize("h264", [IDR], random.Random(1), 100)
    assert len(fus) > 1
    out: list[AccessUnit] = []
    for k, p in enumerate(fus):
        got = d.push(p, 100, k == len(fus) - 1)
        if k < len(fus) - 1:
            assert got == [], "nothing before the marker"
        out += got
    assert [(a.nals, a.ts, a.keyframe) for a in out] == [([SPS, PPS, IDR], 100, True)]
    assert [(a.nals, a.keyframe) for a in d.push(P1, 3100, True)] == [([P1], False)]


def test_timestamp_change_closes_an_access_unit_when_the_marker_never_comes() -> None:
    d = Depacketizer("h264")
    assert d.push(IDR, 100, False) == []
    out = d.push(P1, 3100, False)
    assert [(a.nals, a.ts) for a in out] == [([IDR], 100)]
    assert d.marker_missing == 1


def test_picture_less_access_unit_goes_in_front_of_the_next_one() -> None:
    """Cameras that put the marker on their SPS and PPS (a 'frame' without a picture)."""
    d = Depacketizer("h264")
    assert d.push(SPS, 100, True) == []
    assert d.push(PPS, 100, True) == []
    out = d.push(IDR, 3100, True)
    assert [(a.nals, a.keyframe) for a in out] == [([SPS, PPS, IDR], True)]


def test_nothing_before_the_first_keyframe() -> None:
    d = Depacketizer("h264")
    assert d.push(P1, 100, True) == []
    assert len(d.push(IDR, 3100, True)) == 1
    assert d.dropped == 1


def test_a_gap_drops_the_frame_and_waits_for_a_keyframe() -> None:
    d = Depacketizer("h264")
    fus = packetize("h264", [IDR], random.Random(2), 300)
    assert len(d.push(IDR, 0, True)) == 1
    assert len(d.push(P1, 3000, True)) == 1
    d.push(P1, 6000, False)
    d.lost()  # the rest of that frame is gone
    assert d.push(P1, 6000, True) == []
    assert d.push(P1, 9000, True) == [], "a P frame after the loss would reference a broken picture"
    out = []
    for k, p in enumerate(fus):
        out += d.push(p, 12000, k == len(fus) - 1)
    assert [(a.nals, a.keyframe) for a in out] == [([IDR], True)]
    assert len(d.push(P1, 15000, True)) == 1


def test_a_keyframe_missing_its_first_slice_is_not_sent() -> None:
    d = Depacketizer("h264")
    assert len(d.push(IDR, 0, True)) == 1
    d.lost()  # e.g. the first slice of the next IDR was lost
    second_slice = h264_nal(5, b"\x40" + bytes(100))  # first_mb_in_slice != 0
    assert d.push(second_slice, 3000, True) == []
    assert len(d.push(IDR, 6000, True)) == 1


def test_hevc_ap_fu_and_donl() -> None:
    vps, sps, pps = hevc_nal(32, b"\x0c\x01"), hevc_nal(33, b"\x01\x01"), hevc_nal(34, b"\xc1\x72")
    idr = hevc_nal(19, b"\xaf" + bytes(range(200)) * 5)
    for don in (False, True):
        d = Depacketizer("hevc", max_don_diff=2 if don else 0)
        rnd = random.Random(3)
        payloads = packetize("hevc", [vps, sps, pps, idr], rnd, 300, don)
        out = feed(d, [(5, payloads)])
        assert [(a.nals, a.keyframe) for a in out] == [([vps, sps, pps, idr], True)]


def test_interleaved_mode_packets_are_refused_not_misread() -> None:
    d = Depacketizer("h264")
    assert d.push(bytes((25,)) + b"\x00\x01" + bytes(10), 0, True) == []  # STAP-B
    assert d.unsupported == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(codec=st.sampled_from(["h264", "hevc"]), data=st.data(), seed=st.integers(0, 2**32), don=st.booleans())
def test_random_fragmentations_reassemble_exactly(codec: str, data: st.DataObject, seed: int, don: bool) -> None:
    aus = data.draw(access_units(codec))
    don = don and codec == "hevc"
    packets = stream_packets(codec, aus, seed, max_payload=data.draw(st.integers(80, 1400)), don=don)
    out = feed(Depacketizer(codec, max_don_diff=1 if don else 0), packets)
    assert [(a.nals, a.keyframe, a.ts) for a in out] == [(nals, key, ts) for (nals, key), (ts, _) in zip(aus, packets)]


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 300), seed=st.integers(0, 2**32), start=st.integers(0, 0xFFFF),
       displacement=st.integers(1, 40))
def test_reordering_within_the_window_restores_the_order(n: int, seed: int, start: int, displacement: int) -> None:
    rnd = random.Random(seed)
    pkts = [RtpPacket((start + i) & 0xFFFF, i, 1, 96, False, bytes((i & 0xFF,))) for i in range(n)]
    # each packet may move up to `displacement` places later (sort by a jittered key)
    keys = [i + rnd.uniform(0, displacement) for i in range(n)]
    arrived = [p for _, p in sorted(zip(keys, pkts), key=lambda kp: kp[0])]
    arrived = [pkts[0]] + [p for p in arrived if p is not pkts[0]]  # the first one sets the origin
    r = Reorder(window=64)
    out = [x for p in arrived for x in r.push(p)]
    assert [p.seq for lost, p in out] == [p.seq for p in pkts]
    assert not any(lost for lost, _ in out) and r.lost == 0


def test_reorder_declares_loss_when_the_window_fills_and_drops_late_packets() -> None:
    r = Reorder(window=4)
    mk = lambda s: RtpPacket(s & 0xFFFF, 0, 1, 96, False, b"")  # noqa: E731
    assert [p.seq for _, p in r.push(mk(65534))] == [65534]
    assert r.push(mk(1)) == [] and r.push(mk(2)) == [] and r.push(mk(3)) == []
    out = r.push(mk(4))  # 65535 and 0 never came
    assert [(lost, p.seq) for lost, p in out] == [(True, 1), (False, 2), (False, 3), (False, 4)]
    assert r.lost == 2
    assert r.push(mk(0)) == [] and r.late == 1


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(codec=st.sampled_from(["h264", "hevc"]), data=st.data(), seed=st.integers(0, 2**32))
def test_gaps_drop_the_frame_never_corrupt_data(codec: str, data: st.DataObject, seed: int) -> None:
    """Lose one packet anywhere: every access unit that comes out has all of its original
    pictures' slices, byte for byte; one that lost a slice never comes out, and none does between
    it and the next keyframe. (When the lost packet held only SEI/SPS/PPS of the access unit that
    follows a closed one, that unit's picture is whole and goes out without them: the parameter
    sets are put back in front of keyframes anyway.)"""
    aus = data.draw(access_units(codec))
    packets = stream_packets(codec, aus, seed, max_payload=400)
    flat = [(i, ts, p, k == len(ps) - 1) for i, (ts, ps) in enumerate(packets) for k, p in enumerate(ps)]
    drop = data.draw(st.integers(0, len(flat) - 1))
    r, d = Reorder(window=8), Depacketizer(codec)
    out: list[AccessUnit] = []
    for seq, (_, ts, p, m) in enumerate(flat):
        if seq == drop:
            continue
        for lost, pkt in r.push(RtpPacket(seq, ts, 1, 96, m, p)):
            if lost:
                d.lost()
            out += d.push(pkt.payload, pkt.ts, pkt.marker)
    broken = flat[drop][0]
    by_ts = {ts: i for i, (ts, _) in enumerate(packets)}
    got = [by_ts[a.ts] for a in out]
    for a in out:
        nals, key = aus[by_ts[a.ts]]
        if by_ts[a.ts] == broken:
            vcl = [n for n in nals if (n[0] & 0x1F if codec == "h264" else n[0] >> 1 & 0x3F) in (1, 5, 19)]
            assert a.nals == nals[len(nals) - len(a.nals):] and a.nals[-len(vcl):] == vcl and a.keyframe == key
            continue
        assert (a.nals, a.keyframe) == (nals, key)
    after = [i for i in got if i > broken]
    if after and broken not in got:
        assert aus[after[0]][1], "the first frame after the loss is a keyframe"


# ======================================================================================
# SPS, SDP, parameter sets, RTCP, auth, URLs
# ======================================================================================
def _encoded_sps(codec: str, w: int, h: int) -> bytes:
    cc = av.CodecContext.create(codec, "w")
    cc.width, cc.height, cc.pix_fmt, cc.time_base = w, h, "yuv420p", Fraction(1, 25)
    cc.framerate = Fraction(25, 1)
    if codec == "libx265":
        cc.options = {"x265-params": "log-level=error"}
    cc.open()
    frame = av.VideoFrame.from_ndarray(np.zeros((h, w, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
    data = b"".join(bytes(p) for p in cc.encode(frame)) + b"".join(bytes(p) for p in cc.encode(None))
    t = 33 if codec == "libx265" else 7
    return next(n for n in split_nals(data) if ((n[0] >> 1) & 0x3F if codec == "libx265" else n[0] & 0x1F) == t)


@pytest.mark.parametrize(("codec", "w", "h"), [("libx264", 320, 180), ("libx264", 1280, 720), ("libx264", 642, 362),
                                               ("libx265", 640, 360), ("libx265", 328, 184)])
def test_sps_gives_the_picture_size(codec: str, w: int, h: int) -> None:
    sps = _encoded_sps(codec, w, h)
    info = sps_info("hevc" if codec == "libx265" else "h264", sps)
    assert info is not None and info[:2] == (w, h)
    if codec == "libx264":
        assert info[2] == pytest.approx(25.0)  # x264 writes VUI timing


SDP = """v=0\r
o=- 1 1 IN IP4 127.0.0.1\r
s=cam\r
a=control:*\r
m=video 0 RTP/AVP 96\r
a=rtpmap:96 H264/90000\r
a=fmtp:96 packetization-mode=1;profile-level-id=42C01F;sprop-parameter-sets=Z0LAH9oBQBboQAAAAwBAAAAPI8YMqA==,aM48gA==\r
a=framerate:30\r
a=control:trackID=0\r
m=audio 0 RTP/AVP 97\r
a=rtpmap:97 MPEG4-GENERIC/16000/1\r
a=fmtp:97 streamtype=5; profile-level-id=15; mode=AAC-hbr; config=1408; SizeLength=13; IndexLength=3; IndexDeltaLength=3\r
a=control:rtsp://10.0.0.1/live/track2\r
m=audio 0 RTP/AVP 8\r
"""


def test_sdp_media_parameter_sets_and_controls() -> None:
    sdp = parse_sdp(SDP)
    v, a, g = sdp.media
    assert (v.kind, v.encoding, v.clock_rate, v.framerate, v.control) == ("video", "H264", 90000, 30.0, "trackID=0")
    sets = split_nals(parameter_sets(v))
    assert [n[0] & 0x1F for n in sets] == [7, 8]
    assert sps_info("h264", sets[0])[:2] == (1280, 720)
    assert (a.encoding, a.clock_rate, a.fmtp["sizelength"], a.fmtp["config"]) == ("MPEG4-GENERIC", 16000, "13", "1408")
    assert (g.encoding, g.clock_rate) == ("PCMA", 8000)  # static payload type, no rtpmap
    assert resolve_control("rtsp://h/s/", v.control) == "rtsp://h/s/trackID=0"
    assert resolve_control("rtsp://h/s?x=1", v.control) == "rtsp://h/s?x=1/trackID=0"
    assert resolve_control("rtsp://h/s", a.control) == "rtsp://10.0.0.1/live/track2"
    assert resolve_control("rtsp://h/s", sdp.control) == "rtsp://h/s"


def test_parameter_sets_go_before_keyframes_that_lack_them() -> None:
    ps = ParameterSets("h264", [SPS, PPS])
    assert ps.complete([IDR]) == [SPS, PPS, IDR]
    assert ps.complete([SPS, PPS, IDR]) == [SPS, PPS, IDR]
    assert ps.complete([SPS, IDR]) == [SPS, PPS, SPS, IDR]  # PPS lost in the stream: both again
    new_sps = h264_nal(7, b"\x42\xc0\x1e" + SPS[4:])
    assert ps.update([new_sps, PPS]) is True and ps.sps == new_sps
    assert ps.update([new_sps]) is False


def test_receiver_report_layout() -> None:
    s = ReceiverStats(90000)
    for i in range(10):
        if i != 4:
            s.packet(100 + i, 3000 * i, 0xCAFE, i / 30)
    s.sender_report(0x12345678, 0.0)
    pkt = receiver_report(0xBEEF, s, b"fieldgw-x", now=0.5)
    v_rc, pt, length, ssrc = struct.unpack_from("!BBHI", pkt)
    assert (v_rc, pt, ssrc) == (0x81, 201, 0xBEEF) and (length + 1) * 4 == 32
    src, frac, lost3, ext, jitter, lsr, dlsr = struct.unpack_from("!IB3sIIII", pkt, 8)
    assert (src, int.from_bytes(lost3, "big"), ext, lsr) == (0xCAFE, 1, 109, 0x12345678)
    assert frac == 25  # 1 of 10 lost: 0.1 * 256
    assert dlsr == 32768  # 0.5 s in 1/65536 s
    assert pkt[32 + 1] == 202  # SDES follows


def test_digest_answer_matches_rfc_2617() -> None:
    a = Auth("Mufasa", "Circle Of Life")
    assert a.challenge(['Digest realm="testrealm@host.com", qop="auth,auth-int", '
                        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'])
    header = a.header("GET", "/dir/index.html")
    assert header is not None
    _, p = parse_challenge(header)
    ha1 = hashlib.md5(b"Mufasa:testrealm@host.com:Circle Of Life").hexdigest()
    ha2 = hashlib.md5(b"GET:/dir/index.html").hexdigest()
    expect = hashlib.md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}".encode()).hexdigest()
    assert p["response"] == expect and p["nc"] == "00000001" and p["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    assert not a.challenge(['Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"']), \
        "the same nonce refused again means wrong credentials"
    assert a.challenge(['Digest realm="testrealm@host.com", nonce="new", stale=true'])


def test_credentials_are_taken_out_of_the_url() -> None:
    assert split_credentials("rtsp://ad%40min:p%3Ass@10.0.0.5:554/Streaming/101?x=1") == \
        ("rtsp://10.0.0.5:554/Streaming/101?x=1", "ad@min", "p:ss")
    assert split_credentials("rtsp://10.0.0.5/s") == ("rtsp://10.0.0.5/s", None, None)


def test_which_urls_use_the_native_ingest() -> None:
    assert wants_native("rtsp://h/s", {})
    assert wants_native("rtsp://h/s", {"rtsp_transport": "udp"})
    assert not wants_native("rtsp://h/s", {"ingest": "ffmpeg"})
    assert not wants_native("rtsp://h/s", {"rtsp_transport": "http"})
    assert not wants_native("rtsps://h/s", {})
    assert not wants_native("rtmp://h/s", {})


# ======================================================================================
# audio
# ======================================================================================
def _aac_frames(n: int, rate: int = 16000) -> tuple[bytes, list[bytes]]:
    enc = av.CodecContext.create("aac", "w")
    enc.sample_rate, enc.layout, enc.format = rate, "mono", "fltp"
    enc.open()
    out: list[bytes] = []
    for k in range(n):
        t = (np.arange(1024) + k * 1024) / rate
        frame = av.AudioFrame.from_ndarray((np.sin(2 * np.pi * 440 * t) * 0.3).astype(np.float32).reshape(1, -1),
                                           format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, k * 1024
        out += [bytes(p) for p in enc.encode(frame)]
    return bytes(enc.extradata), out


def _au_payload(aus: list[bytes], sizes: list[int] | None = None) -> bytes:
    bits = 0
    for k, au in enumerate(aus):
        bits = (bits << 16) | ((sizes[k] if sizes else len(au)) << 3)  # 13-bit size, 3-bit index(delta) 0
    head = bits.to_bytes(2 * len(aus), "big")
    return (16 * len(aus)).to_bytes(2, "big") + head + b"".join(aus)


def test_mpeg4_generic_au_headers_split_and_fragment() -> None:
    layout = AuLayout(13, 3, 3)
    assert split_aus(_au_payload([b"abc", b"defgh"]), layout) == [(3, b"abc"), (5, b"defgh")]
    assert split_aus(_au_payload([b"ab"], sizes=[10]), layout) == [(10, b"ab")]


def test_aac_is_transcoded_to_opus_and_g711_passes_in_20_ms_pieces() -> None:
    config, frames = _aac_frames(40)
    sdp = parse_sdp(SDP.replace("config=1408", f"config={config.hex()}"))
    got: list[tuple[bytes, int, str]] = []
    track = AudioTrack(sdp.media[1], lambda d, p, c: got.append((d, p, c)))
    assert (track.source_codec, track.out_codec) == ("aac", "opus")
    seq = 0
    for k in range(0, len(frames) - 1, 2):  # two AUs per packet
        track.packet(parse_rtp(rtp(_au_payload(frames[k:k + 2]), seq, k * 1024, True, pt=97)), False)
        seq += 1
    big = frames[-1]  # and one fragmented across two packets
    track.packet(parse_rtp(rtp(_au_payload([big[:5]], sizes=[len(big)]), seq, 0, False, pt=97)), False)
    track.packet(parse_rtp(rtp(_au_payload([big[5:]], sizes=[len(big)]), seq + 1, 0, True, pt=97)), False)
    assert len(got) > 20 and {c for _, _, c in got} == {"opus"}
    g711: list[tuple[bytes, int, str]] = []
    pcma = AudioTrack(sdp.media[2], lambda d, p, c: g711.append((d, p, c)))
    pcma.packet(parse_rtp(rtp(bytes(320), 0, 8000, True, pt=8)), False)
    assert [(len(d), p, c) for d, p, c in g711] == [(160, 0, "PCMA"), (160, 160, "PCMA")]


# ======================================================================================
# against the camera simulator
# ======================================================================================
def camera(*args: str) -> tuple[subprocess.Popen[bytes], dict]:
    return _camera("rtsp", *args)  # 320x240 unless the args say otherwise


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


class Sink:
    def __init__(self) -> None:
        self.infos: list[StreamInfo] = []
        self.packets: list[tuple[bytes, int, bool, float]] = []
        self.ends: list[str] = []
        self.new = asyncio.Event()

    def info(self, i: StreamInfo) -> None:
        self.infos.append(i)

    def packet(self, data: bytes, pts: int | None, key: bool) -> None:
        self.packets.append((data, pts or 0, key, time.time()))
        self.new.set()

    def end(self, reason: str) -> None:
        self.ends.append(reason)
        self.new.set()

    async def wait_packets(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.packets) < n:
            self.new.clear()
            await asyncio.wait_for(self.new.wait(), max(0.01, deadline - time.monotonic()))


@pytest.mark.parametrize("transport", ["tcp", "udp"])
@pytest.mark.parametrize("codec", ["h264", "h265"])
async def test_camera_simulator_frames_arrive_whole_and_at_once(processes: list, transport: str, codec: str) -> None:
    cam, info = camera("--listen", "127.0.0.1:0", "--codec", codec, "--gop-s", "1")
    processes.append(cam)
    sink = Sink()
    ingest = RtspIngest(info["rtsp"], {"rtsp_transport": transport}, asyncio.get_running_loop(), sink.info,
                        sink.packet, sink.end)
    ingest.start()
    try:
        await sink.wait_packets(45)
    finally:
        ingest.stop()
    name = "h264" if codec == "h264" else "hevc"
    assert sink.infos == [StreamInfo(name, 320, 240, 30.0)]
    assert sink.packets[0][2], "the first packet is a keyframe"
    assert sum(1 for p in sink.packets if p[2]) >= 2  # GOP 1 s
    stamps = [find_stamp(p[0]) for p in sink.packets]
    assert all(stamps)
    counters = [s[0] for s in stamps]  # type: ignore[index]
    assert counters == list(range(counters[0], counters[0] + len(counters))), "no frame lost or repeated"
    pts = [p[1] for p in sink.packets]
    assert all(b - a == 3000 for a, b in zip(pts, pts[1:]))
    lat = sorted((arr - s[1] / 1e6) * 1000 for (_, _, _, arr), s in zip(sink.packets, stamps))  # type: ignore[index]
    assert lat[len(lat) // 2] < 15, f"median send→on_packet {lat[len(lat) // 2]:.1f} ms: held for a frame?"
    for data, _, key, _ in sink.packets:
        types = {n[0] & 0x1F if name == "h264" else (n[0] >> 1) & 0x3F for n in split_nals(data)}
        if key:
            assert {7, 8} <= types if name == "h264" else {32, 33, 34} <= types
    assert ingest.stats()["dropped"] == 0 and sink.ends == []


async def test_session_kept_alive_past_the_camera_timeout(processes: list) -> None:
    """--session-timeout 2: without GET_PARAMETER (or RTCP) the camera would end the session after 2 s."""
    cam, info = camera("--listen", "127.0.0.1:0", "--session-timeout", "2")
    processes.append(cam)
    sink = Sink()
    ingest = RtspIngest(info["rtsp"], {}, asyncio.get_running_loop(), sink.info, sink.packet, sink.end)
    ingest.start()
    try:
        await sink.wait_packets(10)
        await asyncio.sleep(5.5)
        n = len(sink.packets)
        await asyncio.sleep(0.5)
        assert len(sink.packets) > n and sink.ends == []
    finally:
        ingest.stop()


async def test_camera_restart_the_stream_resumes(processes: list) -> None:
    port = free_port()
    cam, info = camera("--listen", f"127.0.0.1:{port}")
    processes.append(cam)
    src = StreamSource(StreamConfig(id="dome", url=info["rtsp"]))
    got: list[float] = []
    src.gop.add = lambda pkt, _add=src.gop.add: (got.append(time.monotonic()), _add(pkt))[1]  # type: ignore[method-assign]
    src.start()
    try:
        await until(lambda: src.state == "live")
        assert src.state == "live" and src.stats()["ingest"] == "native"
        cam.kill()
        cam.wait()
        await asyncio.sleep(1.0)
        cam2, _ = camera("--listen", f"127.0.0.1:{port}")
        processes.append(cam2)
        back = time.monotonic()
        n = len(got)
        await until(lambda: len(got) > n + 5, 6.0)
        assert len(got) > n + 5, "frames resumed"
        assert got[n] - back < 3.0
        assert src.reconnects >= 1 and src.state == "live"
    finally:
        await src.stop()


async def test_ffmpeg_ingest_still_available_per_stream(processes: list) -> None:
    cam, info = camera("--listen", "127.0.0.1:0")
    processes.append(cam)
    src = StreamSource(StreamConfig(id="dome", url=info["rtsp"], options={"ingest": "ffmpeg"}))
    src.start()
    try:
        await until(lambda: src.state == "live")
        assert src.state == "live" and src.stats()["ingest"] == "ffmpeg" and src.info is not None
        assert (src.info.width, src.info.height) == (320, 240)
    finally:
        await src.stop()


# ======================================================================================
# a stub camera that demands authentication (hil/camera has none)
# ======================================================================================
class StubCamera:
    """RTSP over TCP: every request needs Digest (or Basic) auth; after PLAY it sends a few
    H.264 frames interleaved, and it records what the client sent on the RTCP channel."""

    def __init__(self, scheme: str = "digest", user: str = "admin", password: str = "s3cret", sdp: str | None = None,
                 frames: list[list[bytes]] | None = None) -> None:
        self.scheme, self.user, self.password = scheme, user, password
        self.nonce = "n" + str(random.getrandbits(64))
        self.sdp = sdp
        self.frames = frames or []
        self.methods: list[tuple[str, bool]] = []  # (method, authorized)
        self.rtcp: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return f"rtsp://127.0.0.1:{self.port}/live"

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()

    def _authorized(self, method: str, uri: str, header: str | None) -> bool:
        if header is None:
            return False
        if self.scheme == "basic":
            return header == "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        scheme, p = parse_challenge(header)
        if scheme != "digest" or p.get("nonce") != self.nonce or p.get("uri") != uri:
            return False
        ha1 = hashlib.md5(f"{self.user}:cam:{self.password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
        return p.get("response") == hashlib.md5(f"{ha1}:{self.nonce}:{ha2}".encode()).hexdigest()

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                first = await reader.readexactly(1)
                if first == b"$":
                    head = await reader.readexactly(3)
                    data = await reader.readexactly(int.from_bytes(head[1:], "big"))
                    if head[0] == 1:
                        self.rtcp.append(data)
                    continue
                raw = first + await reader.readuntil(b"\r\n\r\n")
                lines = raw.decode().split("\r\n")
                method, uri, _ = lines[0].split(" ")
                hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                cseq = hdrs.get("cseq", "0")
                ok = self._authorized(method, uri, hdrs.get("authorization"))
                self.methods.append((method, ok))
                if not ok:
                    challenge = (f'Digest realm="cam", nonce="{self.nonce}"' if self.scheme == "digest"
                                 else 'Basic realm="cam"')
                    writer.write(f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: {challenge}\r\n\r\n".encode())
                    continue
                extra, body = "", b""
                if method == "OPTIONS":
                    extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n"
                elif method == "DESCRIBE":
                    body = (self.sdp or SDP).encode()
                    extra = f"Content-Type: application/sdp\r\nContent-Base: rtsp://127.0.0.1:{self.port}/live/\r\n"
                elif method == "SETUP":
                    extra = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 4242;timeout=60\r\n"
                elif method == "PLAY":
                    extra = "Session: 4242\r\n"
                if body:
                    extra += f"Content-Length: {len(body)}\r\n"
                writer.write(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}\r\n".encode() + body)
                if method == "PLAY":
                    asyncio.get_running_loop().create_task(self._send(writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter) -> None:
        seq = 7
        for i, nals in enumerate(self.frames):
            payloads = packetize("h264", nals, random.Random(i), 500)
            for k, p in enumerate(payloads):
                pkt = rtp(p, seq, 90000 + 3000 * i, k == len(payloads) - 1, ssrc=0xC0FFEE)
                writer.write(b"$\x00" + len(pkt).to_bytes(2, "big") + pkt)
                seq += 1
            await asyncio.sleep(1 / 30)


SDP_SETS = split_nals(parameter_sets(parse_sdp(SDP).media[0]))


@pytest.mark.parametrize("scheme", ["digest", "basic"])
async def test_auth_and_receiver_reports_with_a_stub_camera(scheme: str) -> None:
    frames = [[IDR]] + [[P1]] * 44
    stub = StubCamera(scheme, frames=frames, sdp=SDP.split("m=audio")[0])
    url = await stub.start()
    sink = Sink()
    ingest = RtspIngest(url.replace("rtsp://", "rtsp://admin:s3cret@"), {}, asyncio.get_running_loop(),
                        sink.info, sink.packet, sink.end)
    ingest.start()
    try:
        await sink.wait_packets(45)
        await asyncio.sleep(0.2)
    finally:
        ingest.stop()
        await asyncio.sleep(0.1)
        await stub.close()
    assert sink.infos == [StreamInfo("h264", 1280, 720, 30.0)]
    first = sink.packets[0]
    assert first[2] and split_nals(first[0]) == SDP_SETS + [IDR], "sprop parameter sets before the IDR"
    assert ("DESCRIBE", True) in stub.methods and ("PLAY", True) in stub.methods
    assert stub.methods[-1] == ("TEARDOWN", True)
    assert stub.methods[0] == ("OPTIONS", False), "credentials only after the server asked"
    rrs = [r for r in stub.rtcp if r[1] == 201]
    assert rrs, "an RTCP receiver report within ~1 s of PLAY"
    assert struct.unpack_from("!I", rrs[-1], 8)[0] == 0xC0FFEE


async def _until_end(stub: StubCamera, credentials: str) -> tuple[RtspIngest, Sink]:
    url = await stub.start()
    sink = Sink()
    ingest = RtspIngest(url.replace("rtsp://", f"rtsp://{credentials}@"), {}, asyncio.get_running_loop(),
                        sink.info, sink.packet, sink.end)
    ingest.start()
    try:
        await until(lambda: bool(sink.ends), 2.5)
    finally:
        ingest.stop()
        await stub.close()
    return ingest, sink


async def test_wrong_password_ends_with_401() -> None:
    stub = StubCamera("digest")
    _, sink = await _until_end(stub, "admin:wrong")
    assert sink.ends and "401" in sink.ends[0]
    assert len(stub.methods) == 2, "one try with the credentials, not a loop"


async def test_a_camera_without_h264_or_h265_is_left_to_pyav() -> None:
    mjpeg = "v=0\r\ns=x\r\nm=video 0 RTP/AVP 26\r\na=control:trackID=0\r\n"
    ingest, sink = await _until_end(StubCamera("basic", sdp=mjpeg), "admin:s3cret")
    assert ingest.unsupported and "JPEG" in sink.ends[0]


def test_frame_rate_from_timestamps_when_neither_sdp_nor_sps_says() -> None:
    """The first frame waits for the second (once), so on_info carries the rate before any packet."""
    from media.rtsp.ingest import VideoTrack

    sps = _encoded_sps("libx265", 320, 240)  # x265's VUI timing is not read: only the size comes from it
    media = parse_sdp("v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n"
                      f"a=fmtp:96 sprop-sps={base64.b64encode(sps).decode()}\r\n").media[0]
    events: list[object] = []
    track = VideoTrack(media, events.append, lambda d, p, k: events.append((p, k)))
    assert events == []
    idr, trail = hevc_nal(19, b"\x80" + bytes(50)), hevc_nal(1, b"\x80" + bytes(20))
    track.rtp(rtp(idr, 1, 1000, True), 0.0)
    assert events == [], "held until the rate is known"
    track.rtp(rtp(trail, 2, 4600, True), 0.04)
    track.rtp(rtp(trail, 3, 8200, True), 0.08)
    assert events == [StreamInfo("hevc", 320, 240, 25.0), (0, True), (3600, False), (7200, False)]
