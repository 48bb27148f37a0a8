"""The viewer agent of bench/video_relay.py: aiortc viewers in their own process (core 1).

Driven over stdin/stdout, one JSON command per line; see Agent in bench/video_relay.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any


# ======================================================================================
# the viewer agent (its own process, core 1)
# ======================================================================================
class _V:
    """One viewer's counters, written by aiortc's (replaced) decoder thread."""

    def __init__(self, decode: bool) -> None:
        self.decode = decode
        self.released = 0
        self.first_decoded: float | None = None
        self.records: list[tuple[float, float | None, float, float | None]] = []  # send, arrive, release, decoded
        self.arrivals: dict[int, float] = {}
        self.connected: float | None = None
        self.ts0: int | None = None


_BY_QUEUE: dict[int, _V] = {}


def _release_on_marker() -> None:
    """Make the viewers' jitter buffer hand a video frame over when its marker-bit packet is in, as browsers
    do (Chrome's packet buffer ends an H.264 frame at the marker bit), instead of aiortc's rule of waiting
    for the next frame's first packet, which adds one frame interval (~33 ms at 30 fps) no relay can remove.
    FIELDGW_BENCH_STOCK_JITTER=1 keeps aiortc's own rule (written against aiortc 1.16.0's JitterBuffer)."""
    import os

    from aiortc import jitterbuffer as jb

    if os.environ.get("FIELDGW_BENCH_STOCK_JITTER") == "1":
        return

    stock = jb.JitterBuffer._remove_frame

    def remove_frame(self: Any, sequence_number: int) -> Any:
        if not self._is_video:
            return stock(self, sequence_number)
        packets: list[Any] = []
        timestamp = None
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:  # a frame without a marker: ends where the next begins
                self.remove(count)
                return jb.JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return jb.JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)
        return None

    jb.JitterBuffer._remove_frame = remove_frame


def _patch_aiortc() -> None:
    import av
    import aiortc.rtcrtpreceiver as rr
    from aiortc.codecs import get_decoder

    from hil.camera.sei import find_stamp

    orig_handle = rr.RTCRtpReceiver._handle_rtp_packet

    async def handle(self: Any, packet: Any, arrival_time_ms: int) -> None:
        v = _BY_QUEUE.get(id(self._RTCRtpReceiver__decoder_queue))
        if v is not None and v.ts0 is None:
            v.ts0 = packet.timestamp
        if packet.marker:
            v = _BY_QUEUE.get(id(self._RTCRtpReceiver__decoder_queue))
            if v is not None:
                if v.ts0 is None:
                    v.ts0 = packet.timestamp
                # aiortc hands the decoder timestamps relative to the first packet's
                v.arrivals[(packet.timestamp - v.ts0) & 0xFFFFFFFF] = time.time()
                if len(v.arrivals) > 300:
                    v.arrivals.pop(next(iter(v.arrivals)))
        await orig_handle(self, packet, arrival_time_ms)

    def worker(loop: Any, input_q: Any, output_q: Any, decode_error: Any) -> None:
        v = _BY_QUEUE.get(id(input_q))
        decoder = None
        while True:
            task = input_q.get()
            if task is None:
                asyncio.run_coroutine_threadsafe(output_q.put(None), loop)
                break
            codec, frame = task
            t_rel = time.time()
            if v is None:
                continue
            v.released += 1
            t_dec = None
            if v.decode:
                if decoder is None:
                    decoder = get_decoder(codec)
                try:
                    out = decoder.decode(frame)
                except av.FFmpegError:
                    out = []
                if out:
                    t_dec = time.time()
                    if v.first_decoded is None:
                        v.first_decoded = t_dec
            stamp = find_stamp(frame.data)
            if stamp is not None:
                v.records.append((stamp[1] / 1e6, v.arrivals.pop(frame.timestamp, None), t_rel, t_dec))

    rr.RTCRtpReceiver._handle_rtp_packet = handle
    rr.decoder_worker = worker


class _Viewer:
    def __init__(self, decode: bool) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        self.v = _V(decode)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.close_cb: Any = None

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            if self.pc.connectionState == "connected" and self.v.connected is None:
                self.v.connected = time.time()

    def _register(self) -> None:
        for t in self.pc.getTransceivers():
            _BY_QUEUE[id(t.receiver._RTCRtpReceiver__decoder_queue)] = self.v

    async def whep(self, http: Any, base: str, token: str) -> float:
        from aiortc import RTCSessionDescription

        self.pc.addTransceiver("video", direction="recvonly")
        self._register()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        t0 = time.time()
        auth = {"Authorization": f"Bearer {token}"}
        r = await http.post(base + "/api/v1/streams/cam/whep", content=self.pc.localDescription.sdp,
                            headers={"Content-Type": "application/sdp", **auth})
        r.raise_for_status()
        location = r.headers["location"]
        await self.pc.setRemoteDescription(RTCSessionDescription(r.text, "answer"))

        async def close() -> None:
            try:
                await http.delete(base + location if location.startswith("/") else location, headers=auth)
            except Exception:
                pass
        self.close_cb = close
        return t0

    async def janus(self, http: Any, base: str, mount: int) -> float:
        from aiortc import RTCSessionDescription

        def tx() -> str:
            return f"{random.getrandbits(48):x}"
        sid = (await http.post(base, json={"janus": "create", "transaction": tx()})).json()["data"]["id"]
        hid = (await http.post(f"{base}/{sid}", json={"janus": "attach", "plugin": "janus.plugin.streaming",
                                                      "transaction": tx()})).json()["data"]["id"]
        offer: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

        async def poll() -> None:
            while True:
                try:
                    r = await http.get(f"{base}/{sid}?maxev=10&rid={int(time.time() * 1000)}", timeout=40)
                    evs = r.json()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    await asyncio.sleep(0.2)
                    continue
                for ev in evs if isinstance(evs, list) else [evs]:
                    if "jsep" in ev and not offer.done():
                        offer.set_result(ev["jsep"])
        poller = asyncio.ensure_future(poll())
        await http.post(f"{base}/{sid}/{hid}", json={"janus": "message", "transaction": tx(),
                                                      "body": {"request": "watch", "id": mount}})
        jsep = await asyncio.wait_for(offer, 10)
        await self.pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], "offer"))
        self._register()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        t0 = time.time()
        await http.post(f"{base}/{sid}/{hid}", json={"janus": "message", "transaction": tx(), "body": {"request": "start"},
                                                     "jsep": {"type": "answer", "sdp": self.pc.localDescription.sdp,
                                                              "trickle": False}})

        async def close() -> None:
            poller.cancel()
            try:
                await http.post(f"{base}/{sid}", json={"janus": "destroy", "transaction": tx()})
            except Exception:
                pass
        self.close_cb = close
        return t0

    async def close(self) -> None:
        if self.close_cb is not None:
            await self.close_cb()
        await self.pc.close()


async def _agent_main() -> int:
    import httpx

    from media import ice

    ice.pin_addresses(["127.0.0.1"])  # the viewer side offers loopback only, too
    _patch_aiortc()
    _release_on_marker()
    viewers: list[_Viewer] = []
    http = httpx.AsyncClient(timeout=15, limits=httpx.Limits(max_connections=200))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def start(cmd: dict, decode: bool) -> tuple[_Viewer, float]:
        viewer = _Viewer(decode)
        if cmd["target"] == "fieldgw":
            t0 = await viewer.whep(http, cmd["base"], cmd["token"])
        else:
            t0 = await viewer.janus(http, cmd["base"], cmd.get("mount", 1))
        return viewer, t0

    def reply(obj: Any) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        op = cmd["op"]
        try:
            if op == "nodecode":
                for v in viewers:
                    v.v.decode = False
                reply({"ok": True})
            elif op == "add":
                new = [await start(cmd, decode=(cmd.get("decode", False) and not viewers and i == 0))
                       for i in range(cmd["n"])]
                viewers += [v for v, _ in new]
                deadline = time.time() + 15
                while time.time() < deadline and any(v.v.released == 0 for v in viewers):
                    await asyncio.sleep(0.05)
                reply({"ok": True, "viewers": len(viewers), "silent": sum(v.v.released == 0 for v in viewers)})
            elif op == "reset":
                for v in viewers:
                    v.v.released = 0
                    v.v.records.clear()
                reply({"ok": True})
            elif op == "stats":
                reply({"released": [v.v.released for v in viewers],
                       "records": [r for v in viewers for r in v.v.records],
                       "decoded": [r for r in (viewers[0].v.records if viewers else []) if r[3] is not None]})
            elif op == "close":
                await asyncio.gather(*(v.close() for v in viewers), return_exceptions=True)
                for v in viewers:
                    _BY_QUEUE.pop(next((k for k, x in _BY_QUEUE.items() if x is v.v), -1), None)
                viewers = []
                reply({"ok": True})
            elif op == "join":
                for _ in range(100):
                    try:
                        viewer, t0 = await start(cmd, decode=True)
                        break
                    except httpx.HTTPStatusError as exc:  # 409: the stream is reconnecting
                        if exc.response.status_code != 409:
                            raise
                        await asyncio.sleep(0.1)
                deadline = time.time() + 8
                while time.time() < deadline and viewer.v.first_decoded is None:
                    await asyncio.sleep(0.002)
                first, conn = viewer.v.first_decoded, viewer.v.connected
                await viewer.close()
                reply({"ttff_ms": (first - t0) * 1000 if first else None,
                       "connect_ms": (conn - t0) * 1000 if conn else None})
            elif op == "quit":
                reply({"ok": True})
                break
        except Exception as exc:  # report, keep serving
            reply({"error": f"{type(exc).__name__}: {exc}"})
    await http.aclose()
    return 0




def main() -> int:
    return asyncio.run(_agent_main())


if __name__ == "__main__":
    sys.exit(main())
