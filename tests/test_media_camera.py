"""The relay against the simulated RTSP camera and body-worn transmitter (real processes, real protocols)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, free_port
from tests.test_media_whep import _viewer, _wait_live, first_frame, media_gateway

W, H = 320, 240


def _camera(*args: str) -> tuple[subprocess.Popen[bytes], dict]:
    proc = subprocess.Popen([sys.executable, "-m", "hil.camera", *args, "--print-port", "--width", str(W), "--height", str(H)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


async def test_viewer_survives_a_camera_reboot(tmp_path: Path, processes: list) -> None:
    port = free_port()
    cam, info = _camera("rtsp", "--listen", f"127.0.0.1:{port}")
    processes.append(cam)
    async with media_gateway(tmp_path, [{"id": "dome-1", "url": info["rtsp"]}]) as (gw, client):
        live = await _wait_live(gw, client)
        assert live["width"] == W and live["codec"] == "h264"
        pc, frames, location = await _viewer(client, "dome-1")
        for _ in range(10):
            await asyncio.wait_for(frames.get(), 10)
        cam.kill()  # the camera reboots
        cam.wait()
        await asyncio.sleep(2.0)
        while not frames.empty():
            frames.get_nowait()
        cam2, _ = _camera("rtsp", "--listen", f"127.0.0.1:{port}")
        processes.append(cam2)
        back = time.monotonic()
        frame = await asyncio.wait_for(frames.get(), 15)  # the same peer connection, no new WHEP
        resumed = time.monotonic() - back
        assert frame.width == W
        assert resumed < 2.0, f"frames resumed {resumed:.1f} s after the camera came back"
        assert gw.media.get("dome-1").reconnects >= 1
        await client.delete(location)
        await pc.close()


async def test_body_worn_transmitter_over_udp_mpegts(tmp_path: Path, processes: list) -> None:
    port = free_port(socket.SOCK_DGRAM)
    async with media_gateway(tmp_path, [{"id": "bodycam-1", "url": f"udp://127.0.0.1:{port}"}]) as (gw, client):
        tx, _ = _camera("ts", "--to", f"udp://127.0.0.1:{port}")
        processes.append(tx)
        assert (await _wait_live(gw, client))["width"] == W
        assert (await first_frame(client, "bodycam-1")).width == W


async def test_rtmp_push_into_a_listening_stream(tmp_path: Path, processes: list) -> None:
    """A transmitter that pushes RTMP (FLV: AVCC H.264, converted to Annex-B by the relay)."""
    port = free_port()
    streams = [{"id": "pusher-1", "url": f"rtmp://127.0.0.1:{port}/live/pusher-1",
                "options": {"listen": "1", "analyzeduration": "500000"}}]
    async with media_gateway(tmp_path, streams) as (gw, client):
        await asyncio.sleep(0.5)  # the gateway listens before the transmitter dials in
        tx, _ = _camera("ts", "--rtmp", f"rtmp://127.0.0.1:{port}/live/pusher-1")
        processes.append(tx)
        live = await _wait_live(gw, client)
        assert live["width"] == W and live["codec"] == "h264"
        assert (await first_frame(client, "pusher-1")).width == W


async def test_h265_rtsp_camera_reaches_viewers_as_h264(tmp_path: Path, processes: list) -> None:
    cam, info = _camera("rtsp", "--listen", "127.0.0.1:0", "--codec", "h265")
    processes.append(cam)
    async with media_gateway(tmp_path, [{"id": "dome-h265", "url": info["rtsp"], "mode": "auto"}]) as (gw, client):
        live = await _wait_live(gw, client)
        assert live["codec"] == "h264" and gw.media.get("dome-h265").stats()["source_codec"] == "hevc"
        assert (await first_frame(client, "dome-h265", timeout=15)).width == W
