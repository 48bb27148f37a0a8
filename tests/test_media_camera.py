"""The relay against the simulated RTSP camera and body-worn transmitter (real processes, real protocols)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.app import Gateway, GatewayOptions
from gateway.kit import load_kit
from media import ice
from tests.conftest import ROOT, free_port, stop_process
from tests.helpers import write_kit
from tests.test_media_whep import _viewer, _wait_live

W, H = 320, 240


def _camera(*args: str) -> tuple[subprocess.Popen[bytes], dict]:
    proc = subprocess.Popen([sys.executable, "-m", "hil.camera", *args, "--print-port", "--width", str(W), "--height", str(H)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


async def _gateway(tmp_path: Path, streams: list[dict]) -> Gateway:
    kit = write_kit(tmp_path / "kit.yaml", [], streams=streams, media={"ice_addresses": ["127.0.0.1"]})
    gw = Gateway(load_kit(kit), GatewayOptions(data_dir=tmp_path / "data", http_port=0, mqtt_port=free_port()))
    await gw.start()
    return gw


async def test_viewer_survives_a_camera_reboot(tmp_path: Path, processes: list) -> None:
    port = free_port()
    cam, info = _camera("rtsp", "--listen", f"127.0.0.1:{port}")
    processes.append(cam)
    gw = await _gateway(tmp_path, [{"id": "dome-1", "url": info["rtsp"]}])
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10) as client:
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
    finally:
        await gw.stop()
        ice.pin_addresses(None)


async def test_body_worn_transmitter_over_udp_mpegts(tmp_path: Path, processes: list) -> None:
    port = free_port(__import__("socket").SOCK_DGRAM)
    gw = await _gateway(tmp_path, [{"id": "bodycam-1", "url": f"udp://127.0.0.1:{port}"}])
    try:
        tx, _ = _camera("ts", "--to", f"udp://127.0.0.1:{port}")
        processes.append(tx)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10) as client:
            live = await _wait_live(gw, client)
            assert live["width"] == W
            pc, frames, location = await _viewer(client, "bodycam-1")
            assert (await asyncio.wait_for(frames.get(), 10)).width == W
            await client.delete(location)
            await pc.close()
    finally:
        await gw.stop()
        ice.pin_addresses(None)
        for p in processes:
            stop_process(p)


async def test_rtmp_push_into_a_listening_stream(tmp_path: Path, processes: list) -> None:
    """A transmitter that pushes RTMP (FLV: AVCC H.264, converted to Annex-B by the relay)."""
    port = free_port()
    gw = await _gateway(tmp_path, [{"id": "pusher-1", "url": f"rtmp://127.0.0.1:{port}/live/pusher-1",
                                    "options": {"listen": "1", "analyzeduration": "500000"}}])
    try:
        await asyncio.sleep(0.5)  # the gateway listens before the transmitter dials in
        tx, _ = _camera("ts", "--rtmp", f"rtmp://127.0.0.1:{port}/live/pusher-1")
        processes.append(tx)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10) as client:
            live = await _wait_live(gw, client)
            assert live["width"] == W and live["codec"] == "h264"
            pc, frames, location = await _viewer(client, "pusher-1")
            assert (await asyncio.wait_for(frames.get(), 10)).width == W
            await client.delete(location)
            await pc.close()
    finally:
        await gw.stop()
        ice.pin_addresses(None)


async def test_h265_rtsp_camera_reaches_viewers_as_h264(tmp_path: Path, processes: list) -> None:
    cam, info = _camera("rtsp", "--listen", "127.0.0.1:0", "--codec", "h265")
    processes.append(cam)
    gw = await _gateway(tmp_path, [{"id": "dome-h265", "url": info["rtsp"], "mode": "auto"}])
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10) as client:
            live = await _wait_live(gw, client)
            assert live["codec"] == "h264" and gw.media.get("dome-h265").stats()["source_codec"] == "hevc"
            pc, frames, location = await _viewer(client, "dome-h265")
            assert (await asyncio.wait_for(frames.get(), 15)).width == W
            await client.delete(location)
            await pc.close()
    finally:
        await gw.stop()
        ice.pin_addresses(None)
