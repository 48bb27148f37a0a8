"""MAVLink ingest: fieldgw's parser + driver into the bus, against plain pymavlink parsing.

One buffer of MAVLink 2 frames with the mix an ArduCopter sends (per second
of flight: HEARTBEAT 1, GLOBAL_POSITION_INT 10, GPS_RAW_INT 5, ATTITUDE 10,
VFR_HUD 4, SYS_STATUS 2, BATTERY_STATUS 1; fields vary frame to frame),
fed in 4 KiB chunks to

  peer     pymavlink `MAVLink(None).parse_buffer` (decode only, nothing done with the messages)
  fieldgw  drivers.mavlink.framing.FrameParser.feed + MavlinkDriver._handle, which updates the
           vehicle and publishes normalized Position / StatusUpdate / Event objects on a real
           gateway.bus.Bus (with the device-registry tap the gateway installs, the real
           supervisor link context, and one subscriber taking what the MQTT uplink takes).

Best of 3 repetitions each; within a repetition the two paths alternate every
32 chunks (~3,300 frames), so a noisy neighbour slows both alike. The ratio fieldgw/pymavlink is the
figure to compare across machines (target >= 0.5).

    .venv/bin/python -m bench.mavlink_ingest [--frames N] [--reps R] [--block B] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import sys
import time
from collections import Counter
from typing import Any

os.environ["MAVLINK20"] = "1"

from pymavlink.dialects.v20 import ardupilotmega as m2  # noqa: E402

from bench._common import machine_note  # noqa: E402
from drivers.mavlink.driver import MavlinkDriver  # noqa: E402
from drivers.mavlink.framing import FrameParser  # noqa: E402
from gateway.bus import Bus  # noqa: E402
from gateway.driver_api import DeviceSpec, LinkSpec  # noqa: E402
from gateway.model import Ack, Device, DeviceStateChanged, Event, Position, Telemetry  # noqa: E402
from gateway.registry import DeviceRegistry  # noqa: E402

CHUNK = 4096
TARGET_RATIO = 0.5
# messages per second of a copter's telemetry (ArduCopter with typical SRx rates)
MIX_PER_SECOND = [("HEARTBEAT", 1), ("GLOBAL_POSITION_INT", 10), ("GPS_RAW_INT", 5), ("ATTITUDE", 10),
                  ("VFR_HUD", 4), ("SYS_STATUS", 2), ("BATTERY_STATUS", 1)]


def build_buffer(n_frames: int, sysid: int = 1) -> tuple[bytes, Counter[str]]:
    """n_frames MAVLink 2 frames from one vehicle in one buffer (see build_frames)."""
    frames, counts = build_frames(n_frames, sysid)
    return b"".join(frames), counts


def build_frames(n_frames: int, sysid: int = 1) -> tuple[list[bytes], Counter[str]]:
    """n_frames MAVLink 2 frames from one vehicle, one simulated second after another, HEARTBEAT first."""
    enc = m2.MAVLink(None, srcSystem=sysid, srcComponent=1)
    frames: list[bytes] = []
    counts: Counter[str] = Counter()
    boot_ms = 0
    lat0, lon0 = 30.6586, 104.0648
    while len(frames) < n_frames:
        # interleave the second's messages by rate: HEARTBEAT, then 10 ticks of 100 ms
        schedule: list[str] = ["HEARTBEAT"]
        for tick in range(10):
            for name, per_s in MIX_PER_SECOND[1:]:
                if tick in {i * 10 // per_s for i in range(per_s)}:
                    schedule.append(name)
        for name in schedule:
            if len(frames) >= n_frames:
                break
            t = boot_ms / 1000.0
            ang = t / 60.0 * 2 * math.pi  # one circle a minute
            lat = int((lat0 + 0.0005 * math.sin(ang)) * 1e7)
            lon = int((lon0 + 0.0005 * math.cos(ang)) * 1e7)
            if name == "HEARTBEAT":
                msg = enc.heartbeat_encode(m2.MAV_TYPE_QUADROTOR, m2.MAV_AUTOPILOT_ARDUPILOTMEGA,
                                           m2.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | m2.MAV_MODE_FLAG_SAFETY_ARMED,
                                           5, m2.MAV_STATE_ACTIVE)
            elif name == "GLOBAL_POSITION_INT":
                msg = enc.global_position_int_encode(boot_ms, lat, lon, 550_000 + boot_ms % 1000, 50_000,
                                                     int(500 * math.cos(ang)), int(-500 * math.sin(ang)), 0,
                                                     int(math.degrees(ang) * 100) % 36000)
            elif name == "GPS_RAW_INT":
                msg = enc.gps_raw_int_encode(boot_ms * 1000, 3, lat, lon, 550_000, 80, 120, 500, 9000, 14)
            elif name == "ATTITUDE":
                msg = enc.attitude_encode(boot_ms, 0.02 * math.sin(t), 0.03 * math.cos(t), ang % (2 * math.pi), 0.01, 0.01, 0.1)
            elif name == "VFR_HUD":
                msg = enc.vfr_hud_encode(5.1, 5.0, int(math.degrees(ang)) % 360, 45, 50.0, 0.1)
            elif name == "SYS_STATUS":
                msg = enc.sys_status_encode(0x3FFFFF, 0x3FFFFF, 0x3FFFFF, 250, 15800 - boot_ms // 10000, 1250, 87, 0, 0, 0, 0, 0, 0)
            else:
                msg = enc.battery_status_encode(0, 0, 0, 2500, [3950, 3950, 3950, 3950] + [65535] * 6, 1250,
                                                boot_ms // 1000, -1, 87)
            frames.append(msg.pack(enc))
            enc.seq = (enc.seq + 1) % 256
            counts[name] += 1
            boot_ms += 1000 // 33
        boot_ms = (boot_ms // 1000 + 1) * 1000
    return frames, counts


def chunks_of(buf: bytes, size: int = CHUNK) -> list[bytes]:
    return [buf[i:i + size] for i in range(0, len(buf), size)]


class PymavlinkPath:
    """The peer: pymavlink's own parser, nothing done with the messages."""

    def __init__(self) -> None:
        self.mav = m2.MAVLink(None)
        self.n = 0

    def feed(self, chunks: list[bytes]) -> None:
        parse = self.mav.parse_buffer
        n = 0
        for c in chunks:
            msgs = parse(c)
            if msgs:
                n += len(msgs)
        self.n += n


class _DummyTransport:
    """What `_handle` needs of a transport: `learn(system)` (no socket here)."""

    def __init__(self) -> None:
        self.learned = 0

    def learn(self, system: int) -> None:
        self.learned += 1

    def send(self, data: bytes, to_system: int | None = None) -> None:
        return None


def _link_context(bus: Bus, ids: set[str]) -> Any:
    """The supervisor's own DriverContext when importable, else an equivalent one."""
    try:
        from gateway.supervisor import _LinkContext

        return _LinkContext(bus, ids, lambda _dev_id: False, "mavlink")
    except ImportError:  # pragma: no cover
        from gateway.model import OnlineChange, now_ms

        class Ctx:
            def publish(self, msg: Any) -> None:
                bus.publish(msg)

            def set_online(self, device_id: str, online: bool, reason: str = "") -> None:
                bus.publish(OnlineChange(device_id, now_ms(), online, reason))

        return Ctx()


class FieldgwPath:
    """The gateway's ingest path: FrameParser.feed + MavlinkDriver._handle → bus (registry tap, uplink-like subscriber)."""

    def __init__(self, n_frames: int) -> None:
        self.bus = Bus()
        registry = DeviceRegistry()
        registry.add(Device(id="drone-1", kind="uav", driver="mavlink", name="drone-1"))
        self.bus.add_tap(registry.tap)
        # what the MQTT uplink subscribes to, with room for everything (counted after the clock stops)
        self.sub = self.bus.subscribe("bench", (Position, Telemetry, Event, Ack, DeviceStateChanged), maxsize=n_frames + 1000)
        dev = DeviceSpec(id="drone-1", kind="uav", name="drone-1", transport="udp-listen://127.0.0.1:14550",
                         options={"system_id": 1, "position_interval_s": 0})  # every position, as the peer parses every frame
        link = LinkSpec(driver="mavlink", transport=dev.transport, devices=(dev,))
        self.driver = MavlinkDriver(link, _link_context(self.bus, {"drone-1"}))
        self.parser = FrameParser(self.driver.counts)
        self.transport = _DummyTransport()
        self.n = 0

    def feed(self, chunks: list[bytes]) -> None:
        feed, handle, transport = self.parser.feed, self.driver._handle, self.transport
        n = 0
        for c in chunks:
            msgs = feed(c)
            n += len(msgs)
            handle(msgs, transport, None)  # type: ignore[arg-type]
        self.n += n

    def positions(self) -> int:
        if self.sub.dropped:
            raise RuntimeError(f"bench subscriber dropped {self.sub.dropped} messages: enlarge its queue")
        count = 0
        while not self.sub.queue.empty():
            if isinstance(self.sub.get_nowait(), Position):
                count += 1
        return count


async def one_repetition(chunks: list[bytes], n_frames: int, block: int) -> tuple[float, float, PymavlinkPath, FieldgwPath]:
    """Both paths over the whole buffer, alternating every `block` chunks (and which goes first),
    so a noisy neighbour slows both alike. Returns (pymavlink seconds, fieldgw seconds, paths)."""
    py, gw = PymavlinkPath(), FieldgwPath(n_frames)
    t_py = t_gw = 0.0
    clock = time.perf_counter
    for k, i in enumerate(range(0, len(chunks), block)):
        part = chunks[i:i + block]
        order = (py, gw) if k % 2 == 0 else (gw, py)
        for path in order:
            t0 = clock()
            path.feed(part)
            dt = clock() - t0
            if path is py:
                t_py += dt
            else:
                t_gw += dt
    await asyncio.sleep(0)  # let the vehicle-online configuration task run (it fails at once: no transport)
    return t_py, t_gw, py, gw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--block", type=int, default=32, help="chunks per interleaving block (32 x 4 KiB ~ 3,300 frames)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 50k frames, 2 repetitions")
    args = ap.parse_args(argv)
    if args.quick:
        args.frames, args.reps = min(args.frames, 50_000), min(args.reps, 2)

    buf, mix = build_buffer(args.frames)
    chunks = chunks_of(buf)
    print(f"[{machine_note()}]")
    print(f"MAVLink ingest: {args.frames} MAVLink 2 frames, {len(buf) / 1e6:.2f} MB, {len(chunks)} chunks of {CHUNK} B; "
          f"best of {args.reps}, interleaved every {args.block} chunks")
    print("  mix: " + ", ".join(f"{k} {v}" for k, v in mix.items()))

    best_py = best_gw = math.inf
    py_n = gw_n = positions = 0
    frame_counts: dict[str, int] = {}
    for rep in range(args.reps):
        gc.collect()
        t_py, t_gw, py, gw = asyncio.run(one_repetition(chunks, args.frames, args.block))
        py_n, gw_n = py.n, gw.n
        positions, frame_counts = gw.positions(), gw.driver.counts.as_dict()
        best_py, best_gw = min(best_py, t_py), min(best_gw, t_gw)
        print(f"  rep {rep + 1}: pymavlink {py_n / t_py:,.0f} msg/s, fieldgw {gw_n / t_gw:,.0f} msg/s "
              f"(ratio {(gw_n / t_gw) / (py_n / t_py):.3f})")
        del py, gw

    py_rate = py_n / best_py
    gw_rate = gw_n / best_gw
    ratio = gw_rate / py_rate
    expected_positions = mix["GLOBAL_POSITION_INT"]
    print(f"pymavlink parse_buffer (peer):        {py_rate:12,.0f} msg/s  ({py_n} msgs in {best_py:.3f} s)")
    print(f"fieldgw FrameParser + driver + bus:   {gw_rate:12,.0f} msg/s  ({gw_n} msgs in {best_gw:.3f} s)")
    print(f"  per message: pymavlink {best_py / py_n * 1e6:.2f} us, fieldgw {best_gw / gw_n * 1e6:.2f} us "
          f"(driver + bus overhead {(best_gw - best_py) / gw_n * 1e6:.2f} us)")
    print(f"  frames: {frame_counts}")
    ok_positions = positions == expected_positions
    print(f"  positions on the bus: {positions} (GLOBAL_POSITION_INT frames: {expected_positions}) "
          f"{'OK' if ok_positions else 'MISMATCH'}")
    ok = ratio >= TARGET_RATIO
    print(f"RATIO fieldgw/pymavlink = {ratio:.3f}  (target >= {TARGET_RATIO}: {'met' if ok else 'NOT met'})")
    if py_n != args.frames or gw_n != args.frames:
        print(f"  WARNING: parsed {py_n} (pymavlink) / {gw_n} (fieldgw) of {args.frames} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
