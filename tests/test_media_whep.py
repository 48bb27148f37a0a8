"""WHEP end to end in-process: a file source (AVCC MP4, so the Annex-B conversion is exercised),
the gateway's relay, and a real aiortc peer that decodes what it receives."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from gateway.app import Gateway, GatewayOptions
from gateway.kit import load_kit
from media import ice
from tests.auth import bearer
from tests.conftest import free_port
from tests.helpers import write_kit

W, H, FPS = 320, 240, 30


def make_clip(path: Path, seconds: float = 4.0, gop_s: float = 2.0, codec: str = "libx264", audio: str | None = None) -> None:
    out = av.open(str(path), "w")
    aus = None
    if audio:
        aus = out.add_stream(audio, rate=48000 if audio != "pcm_mulaw" else 8000)
        aus.layout = "mono"
    gop = str(int(FPS * gop_s))
    options = ({"preset": "ultrafast", "tune": "zerolatency", "g": gop, "keyint_min": gop, "bf": "0"} if codec == "libx264"
               else {"g": gop, "deadline": "realtime", "cpu-used": "8"} if codec == "libvpx"
               else {"preset": "ultrafast", "x265-params": f"keyint={gop}:min-keyint={gop}:bframes=0:log-level=error"})
    vs = out.add_stream(codec, rate=FPS, options=options)
    vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
    vs.codec_context.time_base = Fraction(1, FPS)
    for i in range(int(seconds * FPS)):
        img = np.zeros((H, W, 3), dtype=np.uint8)
        img[:, : (i * 7) % W] = (200, 50, 50)  # a bar that moves: every frame differs
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        for pkt in vs.encode(frame):
            out.mux(pkt)
    for pkt in vs.encode(None):
        out.mux(pkt)
    if aus is not None:  # a 440 Hz tone
        rate = aus.codec_context.sample_rate
        n = aus.codec_context.frame_size or 1024
        for k in range(int(seconds * rate / n)):
            t = (np.arange(n) + k * n) / rate
            samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, k * n
            for pkt in aus.encode(frame):
                out.mux(pkt)
        for pkt in aus.encode(None):
            out.mux(pkt)
    out.close()


@pytest.fixture
async def gateway(tmp_path: Path):  # type: ignore[no-untyped-def]
    clip = tmp_path / "clip.mp4"
    make_clip(clip)
    kit = write_kit(tmp_path / "kit.yaml", [], streams=[{"id": "cam-1", "url": str(clip)},
                                                       {"id": "dead", "url": f"rtsp://127.0.0.1:{free_port()}/none"}],
                    media={"ice_addresses": ["127.0.0.1"]})
    gw = Gateway(load_kit(kit), GatewayOptions(data_dir=tmp_path / "data", http_port=0, mqtt_port=free_port()))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()
        ice.pin_addresses(None)


@contextlib.asynccontextmanager
async def media_gateway(tmp_path: Path, streams: list[dict], devices: list[dict] | None = None
                        ) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    """An in-process gateway with these streams (ICE pinned to loopback) and an HTTP client for it."""
    kit = write_kit(tmp_path / "kit.yaml", devices or [], streams=streams, media={"ice_addresses": ["127.0.0.1"]})
    gw = Gateway(load_kit(kit), GatewayOptions(data_dir=tmp_path / "data", http_port=0, mqtt_port=free_port()))
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10, headers=bearer(gw.users)) as client:
            yield gw, client
    finally:
        await gw.stop()
        ice.pin_addresses(None)


async def first_frame(client: httpx.AsyncClient, stream: str, expect_codec: str = "H264", timeout: float = 10) -> av.VideoFrame:
    """Join by WHEP, decode one frame, leave."""
    pc, frames, location = await _viewer(client, stream, expect_codec=expect_codec)
    try:
        return await asyncio.wait_for(frames.get(), timeout)
    finally:
        await client.delete(location)
        await pc.close()


async def _wait_live(gw: Gateway, client: httpx.AsyncClient) -> dict:
    for _ in range(100):
        streams = (await client.get("/api/v1/streams")).json()
        if streams and streams[0]["state"] == "live":
            return streams[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"stream never went live: {streams}")


async def _viewer(client: httpx.AsyncClient, stream: str = "cam-1", audio: "asyncio.Queue[av.AudioFrame] | None" = None,
                  expect_codec: str = "H264") -> tuple[RTCPeerConnection, "asyncio.Queue[av.VideoFrame]", str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    if audio is not None:
        pc.addTransceiver("audio", direction="recvonly")
    frames: asyncio.Queue[av.VideoFrame] = asyncio.Queue()

    @pc.on("track")
    def _on_track(track) -> None:  # type: ignore[no-untyped-def]
        target = frames if track.kind == "video" else audio

        async def pump() -> None:
            while True:
                try:
                    target.put_nowait(await track.recv())  # type: ignore[union-attr]
                except Exception:
                    return
        asyncio.ensure_future(pump())

    await pc.setLocalDescription(await pc.createOffer())
    r = await client.post(f"/api/v1/streams/{stream}/whep", content=pc.localDescription.sdp,
                          headers={"Content-Type": "application/sdp"})
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/sdp")
    assert "a=candidate" in r.text and "127.0.0.1" in r.text
    assert expect_codec in r.text
    await pc.setRemoteDescription(RTCSessionDescription(r.text, "answer"))
    return pc, frames, r.headers["location"]


async def test_whep_viewer_decodes_frames_and_late_joiner_starts_at_once(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=10, headers=bearer(gateway.users)) as client:
        info = await _wait_live(gateway, client)
        assert info["codec"] == "h264" and info["width"] == W and info["height"] == H
        pc, frames, location = await _viewer(client)
        try:
            first = await asyncio.wait_for(frames.get(), 10)
            assert (first.width, first.height) == (W, H)
            got = [first]
            for _ in range(30):
                got.append(await asyncio.wait_for(frames.get(), 5))
            # the picture changes from frame to frame (the moving bar): real frames, not a frozen one
            arrays = [f.to_ndarray(format="rgb24")[:, :, 0].mean() for f in got]
            assert len({round(a, 1) for a in arrays}) > 10
            listed = (await client.get("/api/v1/streams")).json()[0]
            assert listed["viewers"] == 1 and listed["fps"] and listed["bitrate_kbps"]

            # a viewer joining mid-GOP gets its first frame from the cached GOP, not at the next keyframe
            await asyncio.sleep(0.7)
            t0 = asyncio.get_running_loop().time()
            pc2, frames2, location2 = await _viewer(client)
            await asyncio.wait_for(frames2.get(), 10)
            assert asyncio.get_running_loop().time() - t0 < 1.5  # generous here; the benchmark has the tight figure
            assert (await client.delete(location2)).status_code == 200
            await pc2.close()
        finally:
            assert (await client.delete(location)).status_code == 200
            assert (await client.delete(location)).status_code == 404
            await pc.close()


async def test_whep_refuses_bad_requests(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=10, headers=bearer(gateway.users)) as client:
        await _wait_live(gateway, client)
        r = await client.post("/api/v1/streams/cam-1/whep", content="v=0", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415 and r.json()["error"]["code"] == "bad_content_type"
        r = await client.post("/api/v1/streams/cam-1/whep", content="garbage\x00", headers={"Content-Type": "application/sdp"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_sdp"
        r = await client.post("/api/v1/streams/nope/whep", content="v=0\r\nm=video 9 UDP 96\r\n", headers={"Content-Type": "application/sdp"})
        assert r.status_code == 404
        r = await client.options("/api/v1/streams/cam-1/whep")
        assert r.headers["accept-post"] == "application/sdp"
        # the stream keeps flowing for everyone else
        assert (await client.get("/api/v1/streams")).json()[0]["state"] == "live"
        snap = await client.get("/api/v1/streams/cam-1/snapshot.jpg")
        assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
        picture = av.open(__import__("io").BytesIO(snap.content))
        frame = next(picture.decode(video=0))
        assert (frame.width, frame.height) == (W, H)
        assert (await client.get("/api/v1/streams/nope/snapshot.jpg")).status_code == 404
        # an unreachable source: the stream keeps trying, viewers are told to come back
        dead = next(s for s in (await client.get("/api/v1/streams")).json() if s["id"] == "dead")
        assert dead["state"] == "connecting"
        r = await client.post("/api/v1/streams/dead/whep", content="v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
                              headers={"Content-Type": "application/sdp"})
        assert r.status_code == 409 and r.headers["retry-after"]
        r = await client.get("/api/v1/streams/dead/snapshot.jpg")
        assert r.status_code == 503
        await asyncio.sleep(1.0)
        assert gateway.media.get("dead").reconnects >= 1 and gateway.media.get("dead").last_error


async def test_h265_source_is_transcoded_once_for_every_viewer(tmp_path: Path) -> None:
    clip = tmp_path / "hevc.mp4"
    make_clip(clip, codec="libx265")
    kit = write_kit(tmp_path / "kit.yaml", [], streams=[{"id": "cam-h265", "url": str(clip), "mode": "auto"}],
                    media={"ice_addresses": ["127.0.0.1"]})
    gw = Gateway(load_kit(kit), GatewayOptions(data_dir=tmp_path / "data", http_port=0, mqtt_port=free_port()))
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10, headers=bearer(gw.users)) as client:
            info = await _wait_live(gw, client)
            assert info["codec"] == "h264"  # what viewers get
            viewers = [await _viewer(client, "cam-h265") for _ in range(2)]
            for _, frames, _ in viewers:
                frame = await asyncio.wait_for(frames.get(), 10)
                assert (frame.width, frame.height) == (W, H)
            stats = gw.media.get("cam-h265").stats()
            assert stats["source_codec"] == "hevc" and stats["transcoding"] is True
            for pc, _, location in viewers:
                await client.delete(location)
                await pc.close()
    finally:
        await gw.stop()
        ice.pin_addresses(None)


async def test_drone_announces_its_camera_and_the_gateway_relays_it(tmp_path: Path, processes: list) -> None:
    from tests.conftest import start_sim
    from tests.helpers import drone

    clip = tmp_path / "onboard.mp4"
    make_clip(clip)
    port = free_port()
    kit = write_kit(tmp_path / "kit.yaml", [drone("drone-1", port, 1)], media={"ice_addresses": ["127.0.0.1"]})
    gw = Gateway(load_kit(kit), GatewayOptions(data_dir=tmp_path / "data", http_port=0, mqtt_port=free_port()))
    await gw.start()
    try:
        sim, _ = start_sim("--sysid", "1", "--udp-out", f"127.0.0.1:{port}", "--no-autostart", "--video-uri", f"file://{clip}")
        processes.append(sim)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10, headers=bearer(gw.users)) as client:
            for _ in range(100):
                dev = (await client.get("/api/v1/devices/drone-1")).json()
                if dev["streams"]:
                    break
                await asyncio.sleep(0.1)
            assert dev["streams"] == ["drone-1-video1"]
            info = await _wait_live(gw, client)
            assert info["id"] == "drone-1-video1" and info["device"] == "drone-1" and info["width"] == W
            dev = (await client.get("/api/v1/devices/drone-1")).json()
            assert dev["status"]["video"] == {"drone-1-video1": "live"}
    finally:
        await gw.stop()
        ice.pin_addresses(None)


async def test_recording_segments_by_remux_and_download(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    make_clip(clip, seconds=4)
    kit = write_kit(tmp_path / "kit.yaml", [], streams=[{"id": "cam-rec", "url": str(clip), "record": {"segment_s": 2}}],
                    media={"ice_addresses": ["127.0.0.1"]})
    gw = Gateway(load_kit(kit), GatewayOptions(data_dir=tmp_path / "data", http_port=0, mqtt_port=free_port()))
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10, headers=bearer(gw.users)) as client:
            await _wait_live(gw, client)
            await asyncio.sleep(5.5)  # two GOPs of 2 s: at least two closed segments
            listed = (await client.get("/api/v1/streams/cam-rec/recordings")).json()
            assert len(listed) >= 2, listed
            first = listed[0]
            r = await client.get(f"/api/v1/streams/cam-rec/recordings/{first['name']}")
            assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
            path = tmp_path / first["name"]
            path.write_bytes(r.content)
            with av.open(str(path)) as played:
                frames = sum(1 for _ in played.decode(video=0))
                assert played.streams.video[0].codec_context.name == "h264"
            assert frames >= 50  # ~2 s at 30 fps, by remuxing only
            (gw.opts.data_dir / "recordings" / "secret.mp4").write_bytes(b"not for download")
            for bad in ("..%2Fsecret.mp4", "%2E%2E%2Fsecret.mp4", "..%5Csecret.mp4", "%2Fetc%2Fpasswd.mp4",
                        "x%00.mp4", ".hidden.mp4", "..", first["name"] + "%2F..%2F..%2Fsecret.mp4"):
                assert (await client.get(f"/api/v1/streams/cam-rec/recordings/{bad}")).status_code == 404, bad
            # a download link (no header possible) may carry the token in the query; nothing else may
            token = client.headers["authorization"][7:]
            link = f"http://127.0.0.1:{gw.http_port}/api/v1/streams/cam-rec/recordings/{first['name']}?access_token={token}"
            assert (await httpx.AsyncClient().get(link)).status_code == 200
            listing = f"http://127.0.0.1:{gw.http_port}/api/v1/streams/cam-rec/recordings?access_token={token}"
            assert (await httpx.AsyncClient().get(listing)).status_code == 401
    finally:
        await gw.stop()
        ice.pin_addresses(None)


@pytest.mark.parametrize(("audio_codec", "expected"), [("aac", "opus"), ("pcm_mulaw", "PCMU")])
async def test_camera_audio_reaches_the_viewer(tmp_path: Path, audio_codec: str, expected: str) -> None:
    clip = tmp_path / ("av.mp4" if audio_codec == "aac" else "av.mov")
    make_clip(clip, audio=audio_codec)
    kit = write_kit(tmp_path / "kit.yaml", [], streams=[{"id": "cam-av", "url": str(clip)}], media={"ice_addresses": ["127.0.0.1"]})
    gw = Gateway(load_kit(kit), GatewayOptions(data_dir=tmp_path / "data", http_port=0, mqtt_port=free_port()))
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10, headers=bearer(gw.users)) as client:
            await _wait_live(gw, client)
            await asyncio.sleep(0.5)
            sound: asyncio.Queue[av.AudioFrame] = asyncio.Queue()
            pc, frames, location = await _viewer(client, "cam-av", audio=sound)
            await asyncio.wait_for(frames.get(), 10)
            chunks = [await asyncio.wait_for(sound.get(), 10) for _ in range(20)]
            loud = max(float(np.abs(c.to_ndarray()).max()) for c in chunks)
            assert loud > 1000, "the tone came through, not silence"
            stats = gw.media.get("cam-av").stats()
            assert stats["audio"] == expected and stats["audio_source"] == audio_codec
            await client.delete(location)
            await pc.close()
    finally:
        await gw.stop()
        ice.pin_addresses(None)


async def test_srt_source_through_debian_ffmpeg(tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import need_binary

    ffmpeg = need_binary("ffmpeg")
    clip = tmp_path / "clip.mp4"
    make_clip(clip, seconds=20)
    port = free_port(__import__("socket").SOCK_DGRAM)
    sender = subprocess.Popen([ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
                               "-c", "copy", "-f", "mpegts", f"srt://127.0.0.1:{port}?mode=listener"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with media_gateway(tmp_path, [{"id": "srt-cam", "url": f"srt://127.0.0.1:{port}?mode=caller"}]) as (gw, client):
            info = await _wait_live(gw, client)
            assert info["codec"] == "h264" and info["width"] == W
            assert (await first_frame(client, "srt-cam")).width == W
    finally:
        sender.kill()
        sender.wait()
        ice.pin_addresses(None)


async def test_vp8_source_passes_through(tmp_path: Path) -> None:
    clip = tmp_path / "vp8.webm"
    make_clip(clip, codec="libvpx")
    async with media_gateway(tmp_path, [{"id": "cam-vp8", "url": str(clip)}]) as (gw, client):
        info = await _wait_live(gw, client)
        assert info["codec"] == "vp8"
        assert gw.media.get("cam-vp8").stats()["transcoding"] is False  # browsers play VP8 as it is
        assert (await first_frame(client, "cam-vp8", expect_codec="VP8")).width == W
