"""GB/T 28181 platform load: SIP registrations and keepalives as devices grow, and CPU per PS-over-RTP stream
against an RTSP source of the same video, in one run.

Processes (127.0.0.1; the gateway on core 0, everything else on core 1):

  gateway  `python -m gateway.cli run KIT`: one gb28181 listener (sip://127.0.0.1:PORT) with N device entries
  devices  `python -m hil.gb28181 --devices N`: N simulated cameras in one process, each registering with
           digest auth (401 → 200), answering the Catalog query, then sending keepalives every K s
  camera   `python -m hil.camera rtsp` (part 2): the RTSP source
  agent    bench/_video_agent.py (part 2): one aiortc WHEP viewer

Measured:
  1. for N = 100 and 1,000: the time until all N are registered (registration throughput), the gateway's
     CPU per registration (401 + 200 + the Catalog query and its answer, a channel device made), then the
     keepalives it answers per second at steady state and its CPU per keepalive, and the rate one core would
     carry (1 / CPU per keepalive)
  2. CPU of the gateway relaying one 640x360 25 fps 1 Mbit/s H.264 stream to one WHEP viewer: from a GB/T 28181
     camera (MPEG-PS over RTP/UDP, INVITE on demand) and from an RTSP camera (hil.camera) with the same
     encoder settings; RATIO GB/T 28181 / RTSP (the PS path's own cost: RTP reordering, the loopback feed,
     PyAV's mpeg demuxer)

    .venv/bin/python -m bench.gb28181_load [--quick] [--devices 100,1000] [--keepalive 5] [--window 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import PYTHON, ROOT, GatewayProcess, cpu_seconds, free_port, machine_note, stop_process, write_kit
from bench.video_relay import OTHER_CPU, SERVER_CPU, Agent, camera, pin

PLATFORM = "34020000002000000001"
PASSWORD = "bench-pass"


def gb_id(serial: int, kind: str = "132") -> str:
    return f"3402000000{kind}{serial:07d}"


def kit(tmp: Path, name: str, port: int, n: int, channels: dict[str, str] | None = None, **platform: Any) -> Path:
    t = f"sip://127.0.0.1:{port}"
    devices = [{"id": "gb", "driver": "gb28181", "kind": "network", "transport": t,
                "options": {"password": PASSWORD, "position_interval_s": 0, **platform}}]
    devices += [{"id": f"cam-{i}", "driver": "gb28181", "kind": "camera", "transport": t,
                 "options": {"device_id": gb_id(i), **({"channels": channels} if channels else {})}} for i in range(1, n + 1)]
    return write_kit(tmp / f"{name}.yaml", devices, media={"ice_addresses": ["127.0.0.1"]})


def simulator(port: int, *args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(["taskset", "-c", str(OTHER_CPU), PYTHON, "-m", "hil.gb28181", "--platform",
                             f"udp://127.0.0.1:{port}", "--password", PASSWORD, "--log-level", "ERROR", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def control(ready: dict[str, Any], line: str) -> dict[str, Any]:
    from tests.serial_sims import control_port

    return control_port(tuple(ready["control"]), line, timeout=30.0)


def sip_load(tmp: Path, n: int, keepalive: float, window: float) -> dict[str, float]:
    port = free_port()
    gw = GatewayProcess(kit(tmp, f"load-{n}", port, n, heartbeat_s=max(keepalive, 5)), tmp / f"load-{n}-data")
    sim = None
    try:
        pin(gw.proc.pid, SERVER_CPU)
        time.sleep(1.0)
        c0 = cpu_seconds(gw.proc.pid)
        t0 = time.monotonic()
        sim, ready = simulator(port, "--devices", str(n), "--keepalive", str(keepalive), "--register-rate", "1000",
                               "--expires", "3600")
        deadline = t0 + 120
        most_s = float("nan")  # 99 % registered (a straggler whose first REGISTER failed waits out timer F)
        while time.monotonic() < deadline:
            stats = control(ready, "stats")
            if most_s != most_s and stats["registered_devices"] >= 0.99 * n:
                most_s = time.monotonic() - t0
            if stats["registered_devices"] >= n and stats["totals"]["catalog_messages"] >= n:
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"only {stats['registered_devices']} of {n} registered")
        reg_s = time.monotonic() - t0
        reg_cpu = cpu_seconds(gw.proc.pid) - c0
        time.sleep(keepalive + 1)  # the first keepalives of everyone, then steady state
        k0, c0, t0 = control(ready, "stats")["totals"]["keepalives_ok"], cpu_seconds(gw.proc.pid), time.monotonic()
        time.sleep(window)
        k1, c1, t1 = control(ready, "stats")["totals"]["keepalives_ok"], cpu_seconds(gw.proc.pid), time.monotonic()
        health = gw.get_json("/api/v1/health")
        ka_rate = (k1 - k0) / (t1 - t0)
        cpu = (c1 - c0) / (t1 - t0)
        per_ka = (c1 - c0) / max(1, k1 - k0)
        return {"devices": n, "registered_s": reg_s, "most_s": most_s, "attempts": stats["totals"]["register_attempts"], "reg_per_s": n / reg_s, "cpu_ms_per_registration": reg_cpu / n * 1000,
                "keepalives_per_s": ka_rate, "cpu_share": cpu, "cpu_us_per_keepalive": per_ka * 1e6,
                "keepalives_per_core_s": 1 / per_ka if per_ka > 0 else float("inf"),
                "online": health["devices"]["online"], "total": health["devices"]["total"]}
    finally:
        if sim is not None:
            stop_process(sim)
        gw.stop()


def relay_cpu(tmp: Path, name: str, kit_path: Path, window: float, source: Any = None) -> float:
    """The gateway's CPU share relaying the kit's stream `cam` to one viewer; `source()` starts the camera once
    the gateway listens (and is stopped at the end)."""
    gw = GatewayProcess(kit_path, tmp / f"{name}-data")
    agent = Agent()
    proc = None
    try:
        pin(gw.proc.pid, SERVER_CPU)
        if source is not None:
            proc = source()
            deadline = time.monotonic() + 20
            while not any(d["id"] == "cam" and d["online"] for d in gw.get_json("/api/v1/devices")):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name}: the camera's channel never came online")
                time.sleep(0.1)
        agent(op="join", target="fieldgw", base=gw.base, token=gw.token)  # opens an on-demand stream, decodes a frame
        agent(op="add", n=1, target="fieldgw", base=gw.base, token=gw.token)
        pin(gw.proc.pid, SERVER_CPU)  # the ingest thread too
        time.sleep(2.0)
        c0, t0 = cpu_seconds(gw.proc.pid), time.monotonic()
        time.sleep(window)
        cpu = (cpu_seconds(gw.proc.pid) - c0) / (time.monotonic() - t0)
        released = agent(op="stats")["released"]
        if not released or released[0] == 0:
            raise RuntimeError(f"{name}: the viewer got no frames")
        return cpu
    finally:
        agent.stop()
        if proc is not None:
            stop_process(proc)
        gw.stop()


def stream_ratio(tmp: Path, window: float) -> dict[str, float]:
    video = ["--width", "640", "--height", "360", "--fps", "25", "--bitrate-kbps", "1000", "--gop-s", "2"]
    cam, info = camera(*video)
    port = free_port()
    channel = gb_id(1, "131")
    gb_kit = kit(tmp, "ps", port, 1, channels={channel: "cam"}, stream_mode="passthrough", idle_close_s=60)
    rtsp_kit = write_kit(tmp / "rtsp.yaml", [], streams=[{"id": "cam", "url": info["rtsp"], "mode": "passthrough"}],
                         media={"ice_addresses": ["127.0.0.1"]})
    try:
        rtsp = relay_cpu(tmp, "rtsp", rtsp_kit, window)
    finally:
        stop_process(cam)
    ps = relay_cpu(tmp, "ps", gb_kit, window, lambda: simulator(port, "--keepalive", "5", *video)[0])
    return {"rtsp_cpu": rtsp, "ps_cpu": ps, "ratio": ps / rtsp}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 devices only, 5 s windows")
    ap.add_argument("--devices", default="100,1000")
    ap.add_argument("--keepalive", type=float, default=5.0, help="keepalive period of the simulated devices (s)")
    ap.add_argument("--window", type=float, default=10.0)
    args = ap.parse_args(argv)
    counts = [100] if args.quick else [int(x) for x in args.devices.split(",")]
    window = 5.0 if args.quick else args.window
    print(f"GB/T 28181 platform load ({machine_note()}), keepalive every {args.keepalive:g} s", flush=True)
    os.environ.setdefault("FIELDGW_LOG_LEVEL", "warning")
    with tempfile.TemporaryDirectory(prefix="bench-gb28181-") as td:
        tmp = Path(td)
        for n in counts:
            r = sip_load(tmp, n, args.keepalive, window)
            print(f"{n:>5} devices: 99 % registered in {r['most_s']:.2f} s, all in {r['registered_s']:.2f} s "
                  f"({r['attempts']} REGISTERs), "
                  f"{r['cpu_ms_per_registration']:.2f} ms CPU per registration (401, 200, Catalog, channel device); "
                  f"{r['keepalives_per_s']:.0f} keepalives/s at {r['cpu_share'] * 100:.1f} % of a core = "
                  f"{r['cpu_us_per_keepalive']:.0f} µs each (~{r['keepalives_per_core_s']:.0f}/s per core); "
                  f"online {r['online']}/{r['total']}", flush=True)
        s = stream_ratio(tmp, window)
        print(f"one 640x360 25 fps 1 Mbit/s stream to one WHEP viewer: RTSP {s['rtsp_cpu'] * 100:.1f} % of a core, "
              f"GB/T 28181 PS over RTP/UDP {s['ps_cpu'] * 100:.1f} %; RATIO PS/RTSP {s['ratio']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
