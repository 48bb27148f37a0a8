"""Video device simulators (hil.camera): the RTSP IP camera and the MPEG-TS/UDP transmitter.

The simulators run as real subprocesses on 127.0.0.1. Frames are read back with PyAV in a
child process (a hung demuxer is killed by the subprocess timeout, never wedging the test),
and RTP/RTSP details are checked with a plain-socket client written here.
"""
from __future__ import annotations

import base64
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.camera import STAMP_UUID, find_stamp
from hil.camera import main as camera_main
from hil.camera.nal import join_annexb, split_annexb
from hil.camera.rtp import RtpStream, fragment_h264, fragment_h265
from hil.camera.sei import build_stamp_nal
from tests.conftest import free_port
from tests.serial_sims import SimProcess

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"

# Child-process PyAV reader: prints one JSON line {codec, width, height, frames, stamps}.
READER = r"""
import json, sys, time
import av
from hil.camera.sei import find_stamp
url, want, options = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
container = av.open(url, options=options, timeout=8)
stream = container.streams.video[0]
frames, stamps, size = 0, [], None
for packet in container.demux(stream):
    if not packet.size:
        continue
    stamp = find_stamp(bytes(packet))
    if stamp is not None:
        stamps.append([stamp[0], stamp[1], time.time_ns() // 1000])
    for frame in packet.decode():
        frames += 1
        size = (frame.width, frame.height)
    if frames >= want:
        break
container.close()
print(json.dumps({"codec": stream.codec_context.name, "width": size[0], "height": size[1],
                  "frames": frames, "stamps": stamps}))
"""


class Sim(SimProcess):
    """``python -m hil.camera ...`` as a subprocess; ``info`` is its --print-port JSON line."""

    def __init__(self, *args: str) -> None:
        super().__init__("hil.camera", [*args, "--print-port"], ready_timeout=20.0)
        self.info: dict = self.ready


def start_reader(url: str, frames: int, **options: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", READER, url, str(frames), json.dumps(options)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_reader(proc: subprocess.Popen[str], timeout: float = 20.0) -> dict:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"PyAV reader hung; stderr:\n{err[-2000:]}") from None
    assert proc.returncode == 0 and out.strip(), f"PyAV reader failed ({proc.returncode}):\n{err[-2000:]}"
    return json.loads(out.strip().splitlines()[-1])


def check_stamps(stamps: list[list[int]], fps: int, at_least: int = 30) -> None:
    """Counters +1 per frame; send times recent (vs. the reader's clock) and ~1/fps apart."""
    assert len(stamps) >= at_least, f"only {len(stamps)} stamped packets"
    counters = [s[0] for s in stamps]
    assert all(b - a == 1 for a, b in zip(counters, counters[1:])), f"counter gaps: {counters}"
    for _, send_us, recv_us in stamps:
        assert -100_000 < recv_us - send_us < 5_000_000, "send time is not recent"
    sends = [s[1] for s in stamps]
    period = 1e6 / fps
    mean = (sends[-1] - sends[0]) / (len(sends) - 1)
    assert abs(mean - period) < 0.05 * period, f"mean spacing {mean:.0f} us, expected {period:.0f}"
    gaps = sorted(b - a for a, b in zip(sends, sends[1:]))
    assert abs(gaps[len(gaps) // 2] - period) < 5_000


def check_frames(result: dict, codec: str, width: int, height: int, fps: int = 30) -> None:
    assert result["codec"] == codec
    assert (result["width"], result["height"]) == (width, height)
    assert result["frames"] >= 30
    check_stamps(result["stamps"], fps)


# ---------------------------------------------------------------- a plain-socket RTSP client


class RawRtsp:
    """Just enough RTSP to check the server's replies and the RTP it sends over TCP."""

    def __init__(self, url: str) -> None:
        m = re.match(r"rtsp://([^:/]+):(\d+)(/.*)", url)
        assert m
        self.url = url
        self.sock = socket.create_connection((m.group(1), int(m.group(2))), timeout=5)
        self.buf = b""
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.buf += data

    def request(self, method: str, url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}"] + [f"{k.replace('_', '-')}: {v}"
                                                                       for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while True:
            if self.buf.startswith(b"$"):  # interleaved media ahead of the reply
                if not self._skip_frame():
                    self._fill()
                continue
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            self._fill()
        head, self.buf = self.buf[:end].decode(), self.buf[end + 4:]
        status = int(head.split()[1])
        hdrs = {k.lower(): v for k, _, v in (line.partition(": ") for line in head.split("\r\n")[1:])}
        n = int(hdrs.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        assert hdrs.get("cseq") == str(self.cseq)
        return status, hdrs, body

    def _skip_frame(self) -> bool:
        if len(self.buf) < 4 or len(self.buf) < 4 + struct.unpack("!H", self.buf[2:4])[0]:
            return False
        self.buf = self.buf[4 + struct.unpack("!H", self.buf[2:4])[0]:]
        return True

    def frames(self, seconds: float) -> Iterator[tuple[int, bytes]]:
        """(channel, packet) of each interleaved frame arriving within ``seconds``."""
        end = time.monotonic() + seconds
        while True:
            while len(self.buf) >= 4 and self.buf[0:1] == b"$":
                size = struct.unpack("!H", self.buf[2:4])[0]
                if len(self.buf) < 4 + size:
                    break
                yield self.buf[1], self.buf[4:4 + size]
                self.buf = self.buf[4 + size:]
            assert not self.buf or self.buf[0:1] == b"$", "garbage between interleaved frames"
            left = end - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                self._fill()
            except TimeoutError:
                return
            finally:
                self.sock.settimeout(5)

    def setup_play_tcp(self) -> tuple[dict[str, str], dict[str, str]]:
        status, hdrs, body = self.request("DESCRIBE", self.url, Accept="application/sdp")
        assert status == 200 and hdrs["content-type"] == "application/sdp"
        self.sdp = body.decode()
        status, setup, _ = self.request("SETUP", hdrs["content-base"] + "trackID=0",
                                        Transport="RTP/AVP/TCP;unicast;interleaved=0-1")
        assert status == 200, status
        self.session = setup["session"].split(";")[0]
        status, play, _ = self.request("PLAY", self.url, Session=self.session, Range="npt=0.000-")
        assert status == 200
        return setup, play


def depacketize_h264(payloads: list[bytes]) -> list[bytes]:
    nals: list[bytes] = []
    for p in payloads:
        if p[0] & 0x1F == 28:  # FU-A
            if p[1] & 0x80:
                nals.append(bytes([(p[0] & 0xE0) | (p[1] & 0x1F)]))
            nals[-1] += p[2:]
        else:
            nals.append(p)
    return nals


# ---------------------------------------------------------------- units


def test_stamp_sei_round_trip_and_documented_layout() -> None:
    tricky = 0x0000_0001_0000_0003  # zero runs force emulation-prevention bytes
    for codec in ("h264", "h265"):
        nal = build_stamp_nal(codec, tricky, 1_700_000_000_000_000)
        assert b"\x00\x00\x01" not in nal and b"\x00\x00\x00" not in nal
        au = join_annexb([nal, b"\x41\x9a\x00\x00\x03\x01" if codec == "h264" else b"\x02\x01\xd0"])
        assert find_stamp(au) == (tricky, 1_700_000_000_000_000)
        avcc = b"".join(len(n).to_bytes(4, "big") + n for n in split_annexb(au))
        assert find_stamp(avcc) == (tricky, 1_700_000_000_000_000)
        # Independent parse, exactly as docs/camera-simulators.md describes it.
        rbsp = nal.replace(b"\x00\x00\x03", b"\x00\x00")
        hdr = 1 if codec == "h264" else 2
        assert rbsp[hdr:hdr + 2] == bytes([5, 32])
        assert rbsp[hdr + 2:hdr + 18] == bytes.fromhex("85746d470450452ca433c015165bc5df") == STAMP_UUID.bytes
        assert struct.unpack(">QQ", rbsp[hdr + 18:hdr + 34]) == (tricky, 1_700_000_000_000_000)
    # x264's own unregistered-user-data SEI (another UUID) and plain slices are not stamps.
    foreign = join_annexb([b"\x06\x05\x10" + bytes(range(1, 17)) + b"\x80", b"\x65\x88\x84"])
    assert find_stamp(foreign) is None
    assert find_stamp(b"") is None


def test_rtp_fragmentation_round_trip() -> None:
    nal = bytes([0x65]) + os.urandom(5000)
    frags = fragment_h264(nal, 1400)
    assert len(frags) == 4 and all(len(f) <= 1400 for f in frags)
    assert frags[0][1] & 0x80 and frags[-1][1] & 0x40 and not frags[1][1] & 0xC0
    assert depacketize_h264(frags) == [nal]
    hevc = bytes([19 << 1, 0x01]) + os.urandom(3000)
    frags = fragment_h265(hevc, 1400)
    assert all(f[0] >> 1 == 49 and len(f) <= 1400 for f in frags)
    assert bytes([(frags[0][0] & 0x81) | ((frags[0][2] & 0x3F) << 1), frags[0][1]]) + b"".join(
        f[3:] for f in frags) == hevc
    rtp = RtpStream(time.monotonic())
    pkts = rtp.packetize([b"a", b"b", b"c"], 1234)
    seqs = [struct.unpack("!H", p[2:4])[0] for p in pkts]
    assert [p[1] >> 7 for p in pkts] == [0, 0, 1] and seqs[1] == (seqs[0] + 1) & 0xFFFF


def test_bad_arguments_exit_2() -> None:
    for argv in (["rtsp", "--width", "63"], ["ts"], ["ts", "--to", "tcp://127.0.0.1:5"],
                 ["rtsp", "--listen", "nohost"], ["rtsp", "--codec", "vp8"], []):
        with pytest.raises(SystemExit) as exc:
            camera_main(argv)
        assert exc.value.code == 2, argv
    proc = subprocess.run([sys.executable, "-m", "hil.camera", "rtsp", "--fps", "0"], cwd=ROOT,
                          capture_output=True, timeout=20)
    assert proc.returncode == 2


# ---------------------------------------------------------------- RTSP camera


@pytest.fixture(scope="module")
def camera720() -> Iterator[Sim]:
    sim = Sim("rtsp", "--listen", f"{HOST}:0")  # all defaults: H.264 1280x720 @ 30 fps, 2 s loop
    yield sim
    rc, took = sim.terminate()
    assert rc == 0 and took < 1.0


def test_rtsp_tcp_udp_and_raw_clients_at_once(camera720: Sim) -> None:
    url = camera720.info["rtsp"]
    assert re.fullmatch(rf"rtsp://{HOST}:\d+/stream", url)
    readers = {t: start_reader(url, 45, rtsp_transport=t) for t in ("tcp", "udp")}
    raw = RawRtsp(url)
    try:
        setup, play = raw.setup_play_tcp()
        assert "a=rtpmap:96 H264/90000" in raw.sdp
        fmtp = re.search(r"a=fmtp:96 (.*)\r\n", raw.sdp)
        assert fmtp and "packetization-mode=1" in fmtp.group(1)
        level = re.search(r"profile-level-id=([0-9A-Fa-f]{6})", fmtp.group(1))
        assert level and level.group(1).upper().startswith("42")  # (constrained) baseline
        sprop = re.search(r"sprop-parameter-sets=([^,;]+),([^;\s]+)", fmtp.group(1))
        assert sprop
        sps_b64, pps_b64 = sprop.groups()
        assert base64.b64decode(sps_b64)[0] & 0x1F == 7 and base64.b64decode(pps_b64)[0] & 0x1F == 8
        ssrc_m = re.search(r"ssrc=([0-9A-Fa-f]{8})", setup["transport"])
        assert ssrc_m
        ssrc = int(ssrc_m.group(1), 16)
        assert "timeout=" in setup["session"] and play["range"].startswith("npt=0")
        info = dict(kv.split("=", 1) for kv in play["rtp-info"].split(";")[1:])
        rtp: list[bytes] = []
        srs = 0
        for channel, pkt in raw.frames(2.0):
            if channel == 0:
                rtp.append(pkt)
            elif pkt[1] == 200:
                assert struct.unpack("!I", pkt[4:8])[0] == ssrc
                srs += 1
        status, _, _ = raw.request("GET_PARAMETER", url, Session=raw.session)  # keep-alive
        assert status == 200
        assert raw.request("TEARDOWN", url, Session=raw.session)[0] == 200
    finally:
        raw.close()
    assert srs >= 1
    hdrs = [struct.unpack("!BBHII", p[:12]) for p in rtp]
    assert all(h[0] == 0x80 and h[1] & 0x7F == 96 and h[4] == ssrc for h in hdrs)
    assert hdrs[0][2] == int(info["seq"]) and hdrs[0][3] == int(info["rtptime"])
    assert all((b[2] - a[2]) & 0xFFFF == 1 for a, b in zip(hdrs, hdrs[1:]))
    units: list[list[bytes]] = [[]]
    unit_ts: list[set[int]] = [set()]
    for h, p in zip(hdrs, rtp):
        units[-1].append(p[12:])
        unit_ts[-1].add(h[3])
        if h[1] & 0x80:  # marker: last packet of the access unit
            units.append([])
            unit_ts.append(set())
    units.pop()  # incomplete (or empty) tail
    unit_ts.pop()
    assert 55 <= len(units) <= 62, "2 s of real-time replay at 30 fps"
    assert all(len(t) == 1 for t in unit_ts), "one RTP timestamp per access unit"
    ts = [t.pop() for t in unit_ts]
    assert all((b - a) & 0xFFFFFFFF == 3000 for a, b in zip(ts, ts[1:]))
    first = depacketize_h264(units[0])
    assert [n[0] & 0x1F for n in first] == [7, 8, 6, 5]  # SPS, PPS, stamp SEI, IDR slice
    counters = [find_stamp(join_annexb(depacketize_h264(u)))[0] for u in units]  # type: ignore[index]
    assert counters == list(range(len(units)))

    for proc in readers.values():
        check_frames(finish_reader(proc), "h264", 1280, 720)


def test_rtsp_rejects_garbage_and_keeps_serving(camera720: Sim) -> None:
    url = camera720.info["rtsp"]
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    watcher = RawRtsp(url)  # a client streaming throughout
    watcher.setup_play_tcp()
    rng = random.Random(7)
    garbage = [bytes(rng.randrange(256) for _ in range(3000)).replace(b"$", b"#"),
               b"HELLO THERE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
               b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nBad Header Line\r\n\r\n", b"\xff" * 20000]
    for junk in garbage:
        with socket.create_connection((HOST, port), timeout=5) as s:
            reply = b""
            try:
                s.sendall(junk)
                while chunk := s.recv(4096):
                    reply += chunk
            except (ConnectionResetError, BrokenPipeError):
                pass  # closed on us with our junk unread: also a correct answer
            assert reply == b"" or reply.startswith(b"RTSP/1.0 400 "), reply[:60]
    with socket.create_connection((HOST, port), timeout=5) as s:  # unknown path and method
        s.sendall(f"DESCRIBE rtsp://{HOST}:{port}/other RTSP/1.0\r\nCSeq: 2\r\n\r\n".encode())
        assert s.recv(4096).startswith(b"RTSP/1.0 404 ")
        s.sendall(f"RECORD {url} RTSP/1.0\r\nCSeq: 3\r\n\r\n".encode())
        assert s.recv(4096).startswith(b"RTSP/1.0 501 ")
    try:
        n = sum(1 for ch, _ in watcher.frames(1.0) if ch == 0)
        assert n > 20
    finally:
        watcher.close()
    check_frames(finish_reader(start_reader(url, 30, rtsp_transport="tcp")), "h264", 1280, 720)


def test_rtsp_h265() -> None:
    sim = Sim("rtsp", "--listen", f"{HOST}:0", "--codec", "h265", "--path", "/cam/hevc")
    try:
        assert sim.info["codec"] == "h265" and (sim.info["width"], sim.info["height"]) == (640, 360)
        raw = RawRtsp(sim.info["rtsp"])
        try:
            status, _, body = raw.request("DESCRIBE", sim.info["rtsp"])
            assert status == 200 and "a=rtpmap:96 H265/90000" in body.decode()
            assert all(k in body.decode() for k in ("sprop-vps=", "sprop-sps=", "sprop-pps="))
        finally:
            raw.close()
        check_frames(finish_reader(start_reader(sim.info["rtsp"], 35, rtsp_transport="tcp")), "hevc", 640, 360)
    finally:
        assert sim.terminate()[0] == 0


def test_rtsp_camera_reboot_on_same_port() -> None:
    port = free_port()
    args = ("rtsp", "--listen", f"{HOST}:{port}", "--width", "320", "--height", "240", "--gop-s", "1")
    first = Sim(*args)
    url = first.info["rtsp"]
    assert url == f"rtsp://{HOST}:{port}/stream"
    client = RawRtsp(url)
    client.setup_play_tcp()
    assert sum(1 for ch, _ in client.frames(0.5) if ch == 0) > 0
    first.proc.kill()  # power cut with a client attached
    first.proc.wait()
    with pytest.raises((ConnectionError, OSError)):
        for _ in client.frames(3.0):
            pass
    client.close()
    second = Sim(*args)
    try:
        assert second.info["rtsp"] == url
        result = finish_reader(start_reader(url, 30, rtsp_transport="udp"))
        check_frames(result, "h264", 320, 240)
        assert result["stamps"][0][0] < 10  # a fresh session replays from the loop start
    finally:
        rc, took = second.terminate()
    assert rc == 0 and took < 1.0


def test_rtsp_session_timeout_and_keepalive() -> None:
    sim = Sim("rtsp", "--listen", f"{HOST}:0", "--width", "320", "--height", "240", "--session-timeout", "2")
    url = sim.info["rtsp"]
    quiet, chatty = RawRtsp(url), RawRtsp(url)
    try:
        setup, _ = quiet.setup_play_tcp()
        assert setup["session"].endswith(";timeout=2")
        chatty.setup_play_tcp()
        late = {"quiet": 0, "chatty": 0}
        t0 = time.monotonic()
        while (elapsed := time.monotonic() - t0) < 4.5:
            for name, client in (("quiet", quiet), ("chatty", chatty)):
                n = sum(1 for ch, _ in client.frames(0.25) if ch == 0)
                if elapsed > 3.5:
                    late[name] += n
            assert chatty.request("GET_PARAMETER", url, Session=chatty.session)[0] == 200
        assert late["quiet"] == 0, "a session without keep-alives must time out"
        assert late["chatty"] > 0
        assert quiet.request("PLAY", url, Session=quiet.session)[0] == 454
    finally:
        quiet.close()
        chatty.close()
        sim.terminate()


# ---------------------------------------------------------------- MPEG-TS transmitter


def test_ts_pusher_udp() -> None:
    port = free_port(socket.SOCK_DGRAM)
    url = f"udp://{HOST}:{port}"
    reader = start_reader(url, 40, timeout="8000000", overrun_nonfatal="1", fifo_size="100000")
    time.sleep(0.3)  # let the receiver bind; the transmitter never waits for anyone
    sim = Sim("ts", "--to", url, "--width", "640", "--height", "360")
    try:
        assert sim.info["ts"] == url
        result = finish_reader(reader)
    finally:
        rc, took = sim.terminate()
    assert rc == 0 and took < 1.0
    check_frames(result, "h264", 640, 360)


def test_rtmp_push() -> None:
    url = f"rtmp://{HOST}:{free_port()}/live/bodycam"
    reader = start_reader(url, 30, listen="1", timeout="10", analyzeduration="500000")  # PyAV as the server
    time.sleep(0.3)
    sim = Sim("ts", "--rtmp", url, "--width", "320", "--height", "240")
    try:
        assert sim.info["rtmp"] == url and "ts" not in sim.info
        result = finish_reader(reader)  # FLV carries AVCC; find_stamp reads length-prefixed NALs too
    finally:
        rc, took = sim.terminate()
    assert rc == 0 and took < 1.0
    check_frames(result, "h264", 320, 240)
