"""Video relay: fieldgw's WHEP relay vs Janus (streaming plugin), fed the same 720p30 H.264 camera, in one run.

Processes (all on 127.0.0.1; server on core 0, everything else on core 1):

  camera   `python -m hil.camera rtsp` 1280x720 30 fps ~2 Mbit/s, GOP 2 s, a stamp SEI
           (frame counter, send wall time in µs) in every access unit
  fieldgw  `python -m gateway.cli run KIT` with one passthrough stream from the camera's RTSP URL,
           `media: {ice_addresses: [127.0.0.1]}`
  janus    Debian's janus, private config (bench/_janus.py): mountpoint 1 default join behaviour,
           mountpoint 2 `videobufferkf = true`; fed by one `ffmpeg -i rtsp://camera -c copy -f rtp`
           (no re-encode: the very same access units, SEI included)
  agent    bench/_video_agent.py: aiortc viewers (WHEP for fieldgw, the Janus HTTP API for
           Janus). Viewers do not decode (aiortc's decoder thread is replaced): each encoded frame the
           jitter buffer releases is counted and its SEI stamp read; one viewer (the first) decodes,
           for the decoded latency and for the time to first decoded frame.

Measured:
  1. server CPU-s per s at 0, 1, 4, 16 viewers; marginal ms/s per viewer above the 0-viewer
     ingest cost; RATIO fieldgw/Janus (target <= 1.5)
  2. fieldgw latency from the camera's send stamp to: the frame's last RTP packet at the viewer
     (`arrive`), aiortc's jitter buffer releasing it (`release`, waits for the next frame's first
     packet, ~1 frame), decoded (`decoded`, viewer 0 only); p50/p95 at 1 and 16 viewers
     (target: decoded p95 <= 30 ms; reported with and without aiortc's hold)
  3. time to first decoded frame for a viewer joining at a random moment in the GOP, from sending
     the viewer's SDP (WHEP offer / Janus answer): fieldgw, Janus default, Janus videobufferkf
     (target fieldgw median <= 100 ms, p95 <= 250 ms)
  4. (not with --quick) H.265 640x360 camera, stream mode auto (transcoded once): fieldgw CPU with
     1 and 8 viewers (target 8 <= 1.2 x 1)

    .venv/bin/python -m bench.video_relay [--quick] [--window S] [--joins N] [--no-h265]
        [--cpu-only] [--repeat N] [--profile DIR]

  --cpu-only   parts 1 and 2 only (the CPU windows; the latency is collected in the same windows)
  --repeat N   part 1 N times over (fieldgw then Janus each time): the spread of the ratios
  --profile D  after each fieldgw window with viewers, `py-spy record` the gateway for 10 s at that
               viewer count into D/fieldgw-N.txt (raw collapsed stacks; not during a CPU window)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import (
    PYTHON,
    ROOT,
    GatewayProcess,
    cpu_seconds,
    machine_note,
    percentile,
    stop_process,
    write_kit,
)

SERVER_CPU, OTHER_CPU = 0, 1
TARGET_RATIO = 1.5
TARGET_LAT_P95_MS = 30.0
TARGET_TTFF_MEDIAN_MS, TARGET_TTFF_P95_MS = 100.0, 250.0
TARGET_TRANSCODE = 1.2


# ======================================================================================
# the orchestrator
# ======================================================================================
def pin(pid: int, cpu: int) -> None:
    """Every thread of `pid` onto one core (threads started later inherit it from their creator)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except OSError:
            pass


class Agent:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(["taskset", "-c", str(OTHER_CPU), PYTHON, "-m", "bench._video_agent"],
                                     cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def __call__(self, **cmd: Any) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("viewer agent died")
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"agent: {out['error']}")
        return out

    def stop(self) -> None:
        try:
            self(op="quit")
        except Exception:
            pass
        stop_process(self.proc)


def camera(*args: str) -> tuple[subprocess.Popen[bytes], dict]:
    proc = subprocess.Popen(["taskset", "-c", str(OTHER_CPU), PYTHON, "-m", "hil.camera", "rtsp", "--listen",
                             "127.0.0.1:0", "--print-port", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def gateway(tmp: Path, name: str, stream: dict) -> GatewayProcess:
    kit = write_kit(tmp / f"{name}.yaml", [], streams=[stream], media={"ice_addresses": ["127.0.0.1"]})
    gw = GatewayProcess(kit, tmp / f"{name}-data")
    pin(gw.proc.pid, SERVER_CPU)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = gw.get_json("/api/v1/streams")
        if st and st[0]["state"] == "live":
            pin(gw.proc.pid, SERVER_CPU)  # the ingest thread too
            return gw
        time.sleep(0.2)
    gw.stop()
    raise TimeoutError(f"stream never went live: {st}")


def measure_cpu(pid: int, window: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(window)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def pyspy(pid: int, out: Path, seconds: float = 10.0) -> None:
    """Sample `pid` with py-spy (on the other core) into `out` as raw collapsed stacks."""
    exe = Path(PYTHON).with_name("py-spy")
    subprocess.run(["taskset", "-c", str(OTHER_CPU), str(exe), "record", "-p", str(pid), "-d", str(int(seconds)),
                    "-r", "200", "--nonblocking", "-f", "raw", "-o", str(out)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    print(f"  py-spy: {out}", flush=True)


def cpu_series(agent: Agent, pid: int, counts: list[int], window: float, settle: float,
               others: list[subprocess.Popen[Any]], profile: Path | None = None, **target: Any
               ) -> tuple[list[dict], dict[int, dict]]:
    rows: list[dict] = []
    lat: dict[int, dict] = {}
    have = 0
    for n in counts:
        if n > have:
            if n > 4:
                agent(op="nodecode")  # the viewer core cannot decode 720p and receive 16 streams
            r = agent(op="add", n=n - have, decode=True, **target)
            have = n
            if r["silent"]:
                print(f"  warning: {r['silent']} of {n} viewers got no frame", flush=True)
        time.sleep(settle)
        agent(op="reset")
        t0 = time.monotonic()
        a0 = cpu_seconds(agent.proc.pid)
        o0 = {p.pid: cpu_seconds(p.pid) for p in others}
        cpu = measure_cpu(pid, window)
        agent_cpu = (cpu_seconds(agent.proc.pid) - a0) / (time.monotonic() - t0)
        others_cpu = sum(cpu_seconds(p.pid) - o0[p.pid] for p in others) / (time.monotonic() - t0)
        st = agent(op="stats")
        span = time.monotonic() - t0
        fps = [x / span for x in st["released"]]
        rows.append({"n": n, "cpu": cpu, "agent_cpu": agent_cpu, "others_cpu": others_cpu, "fps_min": min(fps) if fps else None,
                     "fps_mean": sum(fps) / len(fps) if fps else None})
        lat[n] = st
        if profile is not None and n:
            pyspy(pid, profile / f"{target['target']}-{n}.txt")
    agent(op="close")
    return rows, lat


def marginal(rows: list[dict]) -> dict[int, float]:
    base = rows[0]["cpu"]
    return {r["n"]: (r["cpu"] - base) / r["n"] * 1000 for r in rows if r["n"]}


def print_cpu(name: str, rows: list[dict]) -> None:
    m = marginal(rows)
    for r in rows:
        per = f", {m[r['n']]:.1f} ms/s per viewer (marginal)" if r["n"] else " (ingest only)"
        fps = f", viewer fps min {r['fps_min']:.1f} mean {r['fps_mean']:.1f}" if r["fps_min"] is not None else ""
        fps += f" [core 1: viewers {r['agent_cpu']:.2f}, camera+feed {r['others_cpu']:.2f} CPU-s/s]"
        print(f"  {name:8s} {r['n']:2d} viewers: {r['cpu']:.3f} CPU-s/s{per}{fps}", flush=True)


def cpu_summary(repeats: list[tuple[dict[int, float], dict[int, float]]], counts: list[int]) -> None:
    for n in counts[1:]:
        for i, (mf, mj) in enumerate(repeats):
            tag = f" (run {i + 1})" if len(repeats) > 1 else ""
            if n in mj:
                print(f"RATIO fieldgw/janus marginal CPU per viewer at {n:2d} viewers = {mf[n] / mj[n]:.2f} "
                      f"({mf[n]:.1f} vs {mj[n]:.1f} ms/s; target <= {TARGET_RATIO}){tag}", flush=True)
            else:
                print(f"fieldgw marginal CPU per viewer at {n} viewers = {mf[n]:.1f} ms/s{tag} "
                      "(no Janus in this run; janus-peer.md measured 12.0 / 7.25 / 7.75 ms/s at 1 / 4 / 16)")
        ratios = [mf[n] / mj[n] for mf, mj in repeats if n in mj and mj[n] > 0]
        if len(ratios) > 1:
            print(f"  RATIO at {n:2d} viewers over {len(ratios)} runs: min {min(ratios):.2f}, "
                  f"median {percentile(ratios, 50):.2f}, max {max(ratios):.2f}", flush=True)


def lat_summary(st: dict) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"arrive": [], "release": [], "hold": [], "decoded": [], "decoded_minus_hold": []}
    for send, arr, rel, _ in st["records"]:
        out["release"].append((rel - send) * 1000)
        if arr is not None:
            out["arrive"].append((arr - send) * 1000)
            out["hold"].append((rel - arr) * 1000)
    for send, arr, rel, dec in st["decoded"]:
        out["decoded"].append((dec - send) * 1000)
        if arr is not None:
            out["decoded_minus_hold"].append((dec - rel + arr - send) * 1000)
    return out


def pq(values: list[float]) -> str:
    if not values:
        return "n=0"
    return f"p50 {percentile(values, 50):.1f} ms, p95 {percentile(values, 95):.1f} ms (n={len(values)})"


def joins(agent: Agent, n: int, gop_s: float, **target: Any) -> tuple[list[float], list[float], int]:
    ttff, conn, failed = [], [], 0
    for _ in range(n):
        time.sleep(random.uniform(0.05, gop_s))
        r = agent(op="join", **target)
        if r["ttff_ms"] is None:
            failed += 1
        else:
            ttff.append(r["ttff_ms"])
        if r["connect_ms"] is not None:
            conn.append(r["connect_ms"])
    return ttff, conn, failed


def run(args: argparse.Namespace) -> int:
    from bench import _janus

    t_start = time.monotonic()
    print(f"video relay benchmark ({machine_note()}){' --quick' if args.quick else ''}", flush=True)
    counts = [0, 1, 4] if args.quick else [0, 1, 4, 16]
    window, settle = args.window, (1.0 if args.quick else 2.0)
    procs: list[subprocess.Popen[Any]] = []
    gw = janus = agent = None
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-video-") as td:
        tmp = Path(td)
        try:
            cam, info = camera("--width", "1280", "--height", "720", "--fps", "30", "--bitrate-kbps", "2000",
                               "--gop-s", "2")
            procs.append(cam)
            url = info["rtsp"]
            print(f"camera: {url} 1280x720 30 fps 2000 kbit/s GOP 2 s (hil.camera, SEI stamps)", flush=True)
            gw = gateway(tmp, "h264", {"id": "cam", "url": url, "mode": "passthrough"})
            why_not = _janus.available()
            if why_not is None:
                try:
                    janus = _janus.Janus(tmp)
                    feed = subprocess.Popen(["taskset", "-c", str(OTHER_CPU), *janus.feed_args(url)],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    procs.append(feed)
                except Exception as exc:
                    why_not, janus = f"janus failed to start: {exc}", None
            if why_not:
                print(f"JANUS NOT MEASURED: {why_not}", flush=True)
            agent = Agent()
            time.sleep(1.0)
            fg = {"target": "fieldgw", "base": gw.base, "token": gw.token}

            # 1. CPU per viewer (+ 2. latency, collected during the same windows)
            print("\n1. server CPU (server pinned to core 0; camera, feed and viewers on core 1), "
                  f"{window:.0f} s windows", flush=True)
            repeats: list[tuple[dict[int, float], dict[int, float]]] = []
            for rep in range(args.repeat):
                if args.repeat > 1:
                    print(f" run {rep + 1}/{args.repeat}", flush=True)
                rows_f, lat_f = cpu_series(agent, gw.proc.pid, counts, window, settle, procs,
                                           profile=args.profile if rep == 0 else None, **fg)
                print_cpu("fieldgw", rows_f)
                rows_j: list[dict] = []
                if janus is not None:
                    rows_j, _ = cpu_series(agent, janus.proc.pid, counts, window, settle, procs, target="janus",
                                           base=janus.base, mount=1)
                    print_cpu("janus", rows_j)
                repeats.append((marginal(rows_f), marginal(rows_j) if rows_j else {}))
            mf, mj = repeats[-1]
            top = counts[-1]

            print("\n2. fieldgw latency from the camera's SEI send stamp (same host clock)", flush=True)
            for n in (1, top):
                s = lat_summary(lat_f[n])
                print(f"  {n:2d} viewers  arrive (last RTP packet at viewer): {pq(s['arrive'])}", flush=True)
                print(f"  {n:2d} viewers  aiortc hold (arrive -> jitter buffer release): {pq(s['hold'])}", flush=True)
                print(f"  {n:2d} viewers  release (decoder input): {pq(s['release'])}", flush=True)
                print(f"  {n:2d} viewers  decoded (viewer 0): {pq(s['decoded'])}", flush=True)
                print(f"  {n:2d} viewers  decoded without aiortc's hold (viewer 0): {pq(s['decoded_minus_hold'])}",
                      flush=True)
                results[f"lat{n}"] = s

            if args.cpu_only:
                print(flush=True)
                cpu_summary(repeats, counts)
                print(f"took {time.monotonic() - t_start:.0f} s")
                return 0

            # 3. time to first decoded frame
            nj = args.joins
            print(f"\n3. time to first decoded frame, {nj} joins each at random moments of the 2 s GOP "
                  "(from sending the viewer's SDP)", flush=True)
            tt: dict[str, tuple[list[float], list[float], int]] = {}
            tt["fieldgw"] = joins(agent, nj, 2.0, **fg)
            if janus is not None:
                tt["janus default"] = joins(agent, nj, 2.0, target="janus", base=janus.base, mount=1)
                tt["janus videobufferkf"] = joins(agent, nj, 2.0, target="janus", base=janus.base, mount=2)
            for name, (t, c, failed) in tt.items():
                if t:
                    print(f"  {name:20s} median {percentile(t, 50):.0f} ms, p95 {percentile(t, 95):.0f} ms, "
                          f"min {min(t):.0f}, max {max(t):.0f} (n={len(t)}, no frame in 8 s: {failed}); "
                          f"ICE+DTLS connected median {percentile(c, 50):.0f} ms", flush=True)
                else:
                    print(f"  {name:20s} no decoded frame in {failed} joins", flush=True)

            # 4. H.265 transcoding
            rows_t: list[dict] = []
            if not args.quick and not args.no_h265:
                gw.stop()
                gw = None
                cam265, info265 = camera("--codec", "h265", "--width", "640", "--height", "360", "--fps", "30")
                procs.append(cam265)
                gw = gateway(tmp, "h265", {"id": "cam", "url": info265["rtsp"], "mode": "auto"})
                print("\n4. H.265 640x360 camera, mode auto (one transcoder for all viewers): fieldgw CPU", flush=True)
                rows_t, _ = cpu_series(agent, gw.proc.pid, [0, 1, 8], window, settle, [cam265], target="fieldgw",
                                       base=gw.base, token=gw.token)
                print_cpu("fieldgw", rows_t)

            # summary
            print(flush=True)
            cpu_summary(repeats, counts)
            for n in (1, top):
                s_ = results[f"lat{n}"]
                if s_["arrive"]:
                    print(f"fieldgw latency p95 at {n:2d} viewers: arrive {percentile(s_['arrive'], 95):.1f} ms, "
                          f"aiortc release {percentile(s_['release'], 95):.1f} ms"
                          + (f", decoded {percentile(s_['decoded'], 95):.1f} ms" if s_["decoded"] else "")
                          + f" (target decoded <= {TARGET_LAT_P95_MS:.0f})")
            t = tt["fieldgw"][0]
            if t:
                print(f"fieldgw time to first frame median {percentile(t, 50):.0f} ms / p95 {percentile(t, 95):.0f} ms "
                      f"(target <= {TARGET_TTFF_MEDIAN_MS:.0f} / {TARGET_TTFF_P95_MS:.0f})")
                for name in ("janus default", "janus videobufferkf"):
                    if name in tt and tt[name][0]:
                        print(f"RATIO fieldgw/{name} time to first frame median = "
                              f"{percentile(t, 50) / percentile(tt[name][0], 50):.2f}")
            if rows_t:
                c1 = rows_t[1]["cpu"]
                c8 = rows_t[2]["cpu"]
                print(f"RATIO fieldgw H.265 transcode CPU 8 viewers / 1 viewer = {c8 / c1:.2f} "
                      f"({c8:.3f} vs {c1:.3f} CPU-s/s; target <= {TARGET_TRANSCODE})")
            print(f"took {time.monotonic() - t_start:.0f} s")
        finally:
            if agent is not None:
                agent.stop()
            if gw is not None:
                gw.stop()
            for p in procs:
                stop_process(p)
            if janus is not None:
                janus.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 0/1/4 viewers, 2 s windows, 5 joins, no H.265")
    ap.add_argument("--window", type=float, help="CPU window per viewer count, seconds (default 6; quick 2)")
    ap.add_argument("--joins", type=int, help="joins per server for time to first frame (default 20; quick 5)")
    ap.add_argument("--no-h265", action="store_true", help="skip the H.265 transcoding part")
    ap.add_argument("--cpu-only", action="store_true", help="parts 1 and 2 only (CPU windows and their latency)")
    ap.add_argument("--repeat", type=int, default=1, help="run part 1 this many times (the spread of the ratio)")
    ap.add_argument("--profile", type=Path, help="py-spy the gateway 10 s at each viewer count into this directory")
    args = ap.parse_args(argv)
    args.window = args.window or (2.0 if args.quick else 6.0)
    args.joins = args.joins or (5 if args.quick else 20)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
