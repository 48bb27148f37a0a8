"""GB/T 28181 cameras through a whole in-process gateway: the simulator registers, its channel's live video
(MPEG-PS over RTP on UDP or TCP) reaches an aiortc WHEP viewer and is decoded, PTZ over the HTTP API moves
the simulated dome, positions reach MQTT with source gb28181, the call is hung up when the viewers are gone,
and a camera reboot mid-stream is survived."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from gateway.app import Gateway
from tests.conftest import free_port
from tests.helpers import MqttProbe
from tests.serial_sims import SimProcess, until
from tests.test_media_whep import media_gateway

DOME = "34020000001320000001"


def kit_devices(port: int, media: str = "udp", **platform: Any) -> list[dict[str, Any]]:
    t = f"sip://127.0.0.1:{port}"
    return [{"id": "gb", "driver": "gb28181", "kind": "network", "transport": t,
             "options": {"heartbeat_s": 1, "media": media, "idle_close_s": 1, "position_interval_s": 1, **platform}},
            {"id": "dome-1", "driver": "gb28181", "kind": "camera", "transport": t,
             "options": {"device_id": DOME, "password": "12345678"}}]


@contextlib.asynccontextmanager
async def camera_kit(tmp_path: Path, media: str = "udp", sip: str = "udp", sim_args: tuple[str, ...] = (),
                     **platform: Any) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient, SimProcess]]:
    port = free_port()
    async with media_gateway(tmp_path, [], kit_devices(port, media, **platform)) as (gw, client):
        sim = SimProcess("hil.gb28181", ["--platform", f"{sip}://127.0.0.1:{port}", "--keepalive", "1", *sim_args])
        try:
            await until(lambda: "dome-1-ch1" in gw.media.sources and gw.registry.get("dome-1-ch1").online, 15, "channel stream")
            yield gw, client, sim
        finally:
            await asyncio.to_thread(sim.stop)


async def watch(client: httpx.AsyncClient, stream: str, timeout: float = 20.0) -> tuple[RTCPeerConnection, asyncio.Queue[av.VideoFrame], str]:
    """Join by WHEP, retrying while the on-demand stream starts (409); frames arrive on the queue."""
    deadline = time.monotonic() + timeout
    while True:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        frames: asyncio.Queue[av.VideoFrame] = asyncio.Queue()

        @pc.on("track")
        def _on_track(track) -> None:  # type: ignore[no-untyped-def]
            async def pump() -> None:
                while True:
                    try:
                        frames.put_nowait(await track.recv())
                    except Exception:
                        return
            asyncio.ensure_future(pump())

        await pc.setLocalDescription(await pc.createOffer())
        r = await client.post(f"/api/v1/streams/{stream}/whep", content=pc.localDescription.sdp,
                              headers={"Content-Type": "application/sdp"})
        if r.status_code == 201:
            await pc.setRemoteDescription(RTCSessionDescription(r.text, "answer"))
            return pc, frames, r.headers["location"]
        await pc.close()
        assert r.status_code == 409, r.text
        if time.monotonic() > deadline:
            raise AssertionError(f"stream {stream} never went live: {r.text}")
        await asyncio.sleep(0.3)


async def frames_of(frames: asyncio.Queue[av.VideoFrame], n: int, timeout: float = 10.0) -> list[av.VideoFrame]:
    return [await asyncio.wait_for(frames.get(), timeout) for _ in range(n)]


def distinct(frames: list[av.VideoFrame]) -> int:
    """How many different pictures (the simulator's frame counter changes every frame)."""
    return len({hash(f.to_ndarray(format="gray")[::8, ::8].tobytes()) for f in frames})


async def command(client: httpx.AsyncClient, device: str, name: str, args: dict[str, Any] | None = None) -> httpx.Response:
    return await client.post(f"/api/v1/devices/{device}/commands", json={"command": name, "args": args or {}})


async def final(client: httpx.AsyncClient, cmd_id: str) -> dict[str, Any]:
    async def get() -> dict[str, Any]:
        return (await client.get(f"/api/v1/commands/{cmd_id}")).json()
    for _ in range(150):
        rec = await get()
        if rec["status"] in ("done", "failed", "rejected", "timeout"):
            return rec
        await asyncio.sleep(0.1)
    raise AssertionError(f"command {cmd_id} never finished: {rec}")


async def test_live_video_over_udp_ptz_positions_on_mqtt_and_bye_when_idle(tmp_path: Path) -> None:
    async with camera_kit(tmp_path) as (gw, client, sim):
        probe = await asyncio.to_thread(MqttProbe, gw.broker_url, "fieldgw/v1/test/devices/+/position")
        try:
            device = (await client.get("/api/v1/devices/dome-1-ch1")).json()
            assert device["kind"] == "camera" and device["streams"] == ["dome-1-ch1"] and "ptz_move" in device["commands"]
            assert sim.control("status")["streams"] == []  # on demand: nothing invited before a viewer
            pc, frames, location = await watch(client, "dome-1-ch1")
            try:
                got = await frames_of(frames, 40)
                assert (got[0].width, got[0].height) == (640, 360) and distinct(got) > 20
                call = sim.control("status")["streams"][0]
                assert call["transport"] == "UDP" and call["packets"] > 0
                listed = next(s for s in (await client.get("/api/v1/streams")).json() if s["id"] == "dome-1-ch1")
                assert listed["state"] == "live" and listed["codec"] == "h264" and listed["viewers"] == 1

                # PTZ through the API: the dome turns; a speed out of range is refused and nothing is sent
                r = await command(client, "dome-1-ch1", "ptz_move", {"pan": -0.5, "tilt": 1.0})
                assert r.status_code == 202
                rec = await final(client, r.json()["id"])
                assert rec["status"] == "done", rec
                ptz = sim.control("status")["channels"][0]["ptz"]
                assert ptz["pan_rate"] < 0 and ptz["tilt_rate"] != 0
                bad = await command(client, "dome-1-ch1", "ptz_move", {"pan": 1.5})
                assert bad.status_code == 400
                assert (await final(client, (await command(client, "dome-1-ch1", "ptz_stop")).json()["id"]))["status"] == "done"
                assert sim.control("status")["ptz_commands"] == 2 and not sim.control("status")["channels"][0]["ptz"]["moving"]
            finally:
                await client.delete(location)
                await pc.close()
            # the last viewer left: after idle_close_s the relay lets go and the call is hung up
            await until(lambda: sim.control("status")["byes_received"] == 1, 10, "BYE from the platform")
            assert sim.control("status")["streams"] == []

            # positions on MQTT with source gb28181
            await until(lambda: probe.find(lambda t, p: t.endswith("/dome-1/position")), 10, "a position on MQTT")
            _, pos = probe.find(lambda t, p: t.endswith("/dome-1/position"))[-1]
            assert pos["source"] == "gb28181" and abs(pos["lat"] - 30.6586) < 1e-3 and "seq" in pos
        finally:
            await asyncio.to_thread(probe.close)
        await asyncio.to_thread(sim.stop)  # unregisters: the camera is offline, PTZ answers 409
        await until(lambda: not gw.registry.get("dome-1-ch1").online, 5, "offline")
        assert (await command(client, "dome-1-ch1", "ptz_stop")).status_code == 409


@pytest.mark.parametrize("media,sip,codec", [("tcp-passive", "tcp", "h264"), ("tcp-active", "udp", "h265")])
async def test_live_video_over_tcp_media(tmp_path: Path, media: str, sip: str, codec: str) -> None:
    async with camera_kit(tmp_path, media, sip, ("--codec", codec)) as (gw, client, sim):
        pc, frames, location = await watch(client, "dome-1-ch1")
        try:
            got = await frames_of(frames, 30)
            assert distinct(got) > (15 if codec == "h264" else 1)  # H.265: the picture's motion, in the test below
            call = sim.control("status")["streams"][0]
            assert call["transport"] == "TCP" and call["setup"] == ("active" if media == "tcp-passive" else "passive")
            listed = next(s for s in (await client.get("/api/v1/streams")).json() if s["id"] == "dome-1-ch1")
            assert listed["codec"] == "h264"
            if codec == "h265":  # the relay's auto mode transcodes what browsers cannot play
                assert gw.media.sources["dome-1-ch1"].source_codec == "hevc"
                assert (got[0].width, got[0].height) == (480, 270)
        finally:
            await client.delete(location)
            await pc.close()
        drv = gw.supervisor.driver_for("dome-1")
        await until(lambda: sim.control("status")["byes_received"] == 1, 10, "BYE",
                    lambda: f"; driver {drv.stats() if drv else None}; streams {gw.media.stats()}; sim {sim.control('status')['streams']}")


async def test_camera_reboot_mid_stream_viewer_resumes(tmp_path: Path) -> None:
    async with camera_kit(tmp_path, sim_args=("--reboot-s", "2")) as (gw, client, sim):
        pc, frames, location = await watch(client, "dome-1-ch1")
        try:
            await frames_of(frames, 10)
            sim.control("reboot")  # a power cut: no BYE, no unregister; it registers anew 2 s later
            t0 = time.monotonic()
            await asyncio.sleep(1.0)
            while not frames.empty():
                frames.get_nowait()
            after = await frames_of(frames, 20, timeout=25)
            resumed = time.monotonic() - t0
            assert distinct(after) > 10
            status = sim.control("status")
            assert status["reboots"] == 1 and status["invites"] == 2 and len(status["streams"]) == 1  # re-invited
            drv = gw.supervisor.driver_for("dome-1")
            assert drv is not None and drv.registrar.counts["fresh_registrations"] == 2
            assert resumed < 20, resumed
            # the same viewer session throughout: the browser never had to reconnect
            assert (await client.get("/api/v1/streams")).json()[0]["viewers"] == 1
        finally:
            await client.delete(location)
            await pc.close()


async def test_h265_channel_transcoded_picture_moves(tmp_path: Path) -> None:
    async with camera_kit(tmp_path, sim_args=("--codec", "h265")) as (gw, client, sim):
        pc, frames, location = await watch(client, "dome-1-ch1")
        try:
            assert distinct(await frames_of(frames, 30)) > 15
        finally:
            await client.delete(location)
            await pc.close()
