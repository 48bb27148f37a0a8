"""Ground-station routing: vehicle → router → GCS, fieldgw against MAVProxy, one after the other.

A vehicle (pymavlink-built MAVLink 2 frames, system 1, the copter mix of
bench.mavlink_ingest, one frame per UDP datagram as an autopilot sends
them) sends to the router's vehicle port; the router copies the frames to a
ground-station UDP port where a receiver process counts the frames from
system 1 (the routers' own frames are filtered out by source system) and
stamps their arrival. Routers:

  fieldgw   `python -m gateway.cli run KIT --mqtt …` (real Mosquitto): one mavlink device on
            udp-listen, ground_stations [{id: gcs, url: udp://127.0.0.1:GCSPORT}]. The gateway
            does its normal work on the same frames (positions to MQTT, telemetry, state).
  MAVProxy  `mavproxy.py --master=udpin:127.0.0.1:PORT --out=udp:127.0.0.1:GCSPORT --daemon
            --non-interactive --nowait --no-state --default-modules=` — headless, no telemetry
            log, no modules: the leanest router MAVProxy can be (its default modules cost it
            about half its rate; `--mavproxy-modules default` measures that configuration).

Measured per router: (i) the highest offered rate it forwards with <= 1 % loss
(a 1 s saturation probe, then a rising ladder of 1.5 s steps from half the probe's
rate, x1.25 a step, a failed step repeated once, then one step between the last
pass and the first fail; losses are attributed with the kernel's per-socket drop
counters); (ii) the added
latency (receive - send wall time, frames matched by their bytes) at a fixed
500 msg/s. RATIO fieldgw/MAVProxy of the sustained rate (target >= 3), and the p95s.

    .venv/bin/python -m bench.gcs_routing [--quick] [--mavproxy-modules lean|default]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ["MAVLINK20"] = "1"

from bench._common import (  # noqa: E402
    PYTHON,
    ROOT,
    GatewayProcess,
    cpu_seconds,
    drone,
    machine_note,
    fmt_ms,
    free_udp_port,
    mosquitto,
    stop_process,
    summary_ms,
    udp_drops,
    write_kit,
)
from bench.mavlink_ingest import build_frames  # noqa: E402

VEHICLE_SYSID = 1
TARGET_RATIO = 3.0
LOSS_LIMIT = 0.01
LATENCY_RATE = 500.0
N_FRAMES = 256 * 80  # a whole number of sequence-number cycles: replaying the list keeps seq continuous
MAVPROXY = Path(sys.executable).parent / "mavproxy.py"
MAVPROXY_FLAGS = {
    "lean": ["--daemon", "--non-interactive", "--nowait", "--no-state", "--default-modules="],
    "default": ["--daemon", "--non-interactive", "--nowait", "--no-state"],
}


# --- the ground-station receiver (its own process) -----------------------------------------
def run_receiver(port: int) -> int:
    """Counts frames from VEHICLE_SYSID on a UDP port; commands on stdin: count | latency | report | quit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:  # lose nothing ourselves: SO_RCVBUFFORCE (33 on Linux, needs root) passes net.core.rmem_max
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 16 << 20)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    sock.bind(("127.0.0.1", port))
    state: dict[str, Any] = {"frames": 0, "other": 0, "datagrams": 0, "record": False, "records": []}
    lock = threading.Lock()

    def loop() -> None:
        while True:
            data = sock.recv(65535)
            now = time.time()
            i, n, other = 0, len(data), 0
            mine: list[bytes] = []
            while i < n:
                if data[i] == 0xFD and i + 10 <= n:
                    flen = 12 + data[i + 1] + (13 if data[i + 2] & 1 else 0)
                    sysid = data[i + 5]
                elif data[i] == 0xFE and i + 6 <= n:
                    flen = 8 + data[i + 1]
                    sysid = data[i + 3]
                else:
                    break
                if sysid == VEHICLE_SYSID:
                    mine.append(data[i:i + flen])
                else:
                    other += 1
                i += flen
            with lock:
                state["datagrams"] += 1
                state["frames"] += len(mine)
                state["other"] += other
                if state["record"]:
                    state["records"].extend((f, now) for f in mine)

    threading.Thread(target=loop, daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        with lock:
            if cmd in ("count", "latency"):
                state.update(frames=0, other=0, datagrams=0, record=cmd == "latency", records=[])
                print("ok", flush=True)  # the sender starts only after the reset
            elif cmd == "report":
                out = {k: state[k] for k in ("frames", "other", "datagrams")}
                out["records"] = [(f.hex(), t) for f, t in state["records"]]
                print(json.dumps(out), flush=True)
            elif cmd == "quit":
                break
    return 0


class Receiver:
    def __init__(self, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen([PYTHON, "-m", "bench.gcs_routing", "--role", "receiver", "--port", str(port)],
                                     cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self._line() != "ready":
            raise RuntimeError("receiver did not start")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def command(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        if cmd in ("count", "latency") and self._line() != "ok":
            raise RuntimeError(f"receiver did not take {cmd!r}")

    def report(self) -> dict[str, Any]:
        self.command("report")
        return json.loads(self._line())

    def close(self) -> None:
        try:
            self.command("quit")
        except OSError:
            pass
        stop_process(self.proc)


# --- the vehicle (in the benchmark process) --------------------------------------------------
class Vehicle:
    def __init__(self, port: int, frames: list[bytes]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)  # never wait on the router; a full buffer is a loss, counted as such
        self.addr = ("127.0.0.1", port)
        self.frames = frames
        self.i = 0
        self.send_errors = 0
        self._drain = threading.Thread(target=self._read_replies, daemon=True)
        self._stop = False
        self._drain.start()

    def _read_replies(self) -> None:
        """Read (and ignore) what the router sends the vehicle: its HEARTBEATs and commands."""
        while not self._stop:
            try:
                self.sock.recv(65535)
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                return

    def send(self, rate: float, duration: float, record: dict[bytes, float] | None = None) -> tuple[int, float]:
        """Send at `rate` frames/s for `duration` s. Returns (sent, seconds).

        Paced in ticks: what is due is sent, then the sender sleeps (at most 0.5 ms, or until the next
        frame is due), so it never spins: on 2 vCPU a spinning sender would steal the router's CPU."""
        frames, n_frames, sendto, addr = self.frames, len(self.frames), self.sock.sendto, self.addr
        sent = 0
        t0 = time.perf_counter()
        while True:
            now = time.perf_counter()
            elapsed = now - t0
            if elapsed >= duration:
                break
            due = int(elapsed * rate) + 1 - sent
            if due <= 0:
                time.sleep(min(0.0005, max(0.0001, sent / rate - elapsed)))
                continue
            for _ in range(due):
                f = frames[self.i]
                self.i = (self.i + 1) % n_frames
                try:
                    sendto(f, addr)
                except BlockingIOError:
                    self.send_errors += 1
                    continue
                if record is not None:
                    record[f] = time.time()
                sent += 1
        return sent, time.perf_counter() - t0

    def blast(self, duration: float) -> tuple[int, float]:
        """As fast as this process can send."""
        frames, n_frames, sendto, addr = self.frames, len(self.frames), self.sock.sendto, self.addr
        sent = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < duration:
            for _ in range(100):
                try:
                    sendto(frames[self.i], addr)
                    sent += 1
                except BlockingIOError:
                    self.send_errors += 1
                self.i = (self.i + 1) % n_frames
        return sent, time.perf_counter() - t0

    def close(self) -> None:
        self._stop = True
        self.sock.close()


# --- one router -------------------------------------------------------------------------------
def measure_router(name: str, vehicle: Vehicle, rx: Receiver, pid: int, quick: bool) -> dict[str, Any]:
    vport, gport = vehicle.addr[1], rx.port
    # quick: a smoke run (short steps, at most 3, no retry); full: ~20 s per router
    step_s, drain_s, lat_s, probe_s, max_steps, retry = (0.6, 0.3, 1.0, 0.5, 3, False) if quick else (1.5, 0.6, 5.0, 1.0, 10, True)
    # ready: wait until the router forwards at all
    rx.command("count")
    deadline = time.monotonic() + 20
    while rx.report()["frames"] == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} forwards nothing")
        vehicle.send(50, 0.1)
    vehicle.send(LATENCY_RATE, 0.5 if quick else 1.0)  # warm-up
    time.sleep(0.3)

    # (ii) added latency at a moderate fixed rate
    rx.command("latency")
    sent_at: dict[bytes, float] = {}
    sent, _ = vehicle.send(LATENCY_RATE, lat_s, sent_at)
    time.sleep(0.5)
    rep = rx.report()
    lat = [t - sent_at[bytes.fromhex(h)] for h, t in rep["records"] if bytes.fromhex(h) in sent_at]
    latency = summary_ms(lat)
    latency_lost = sent - rep["frames"]
    print(f"  {name}: latency at {LATENCY_RATE:g} msg/s: {fmt_ms(latency)}; received {rep['frames']}/{sent}")

    # (i) highest offered rate forwarded with <= 1 % loss
    def step(rate: float) -> tuple[bool, float, float, float]:
        rx.command("count")
        d0 = (udp_drops(vport), udp_drops(gport))
        c0 = cpu_seconds(pid)
        sent, secs = vehicle.send(rate, step_s)
        c1 = cpu_seconds(pid)
        time.sleep(drain_s)
        got = rx.report()["frames"]
        d1 = (udp_drops(vport), udp_drops(gport))
        loss = 1.0 - got / max(1, sent)
        ok = loss <= LOSS_LIMIT and sent / secs >= 0.97 * rate
        where = f"; kernel drops: router in {d1[0] - d0[0]}, receiver {d1[1] - d0[1]}" if got < sent else ""
        print(f"    offered {rate:8,.0f} msg/s (sent {sent / secs:8,.0f}/s): forwarded {got / secs:8,.0f}/s, "
              f"loss {100 * loss:5.2f} %, router CPU {100 * (c1 - c0) / secs:4.0f} %  {'ok' if ok else 'FAIL'}{where}")
        time.sleep(0.2)
        return ok, got / secs, sent / secs, (c1 - c0) / secs

    rx.command("count")
    c0 = cpu_seconds(pid)
    sent, secs = vehicle.blast(probe_s)
    c1 = cpu_seconds(pid)
    time.sleep(drain_s + 0.5)
    probe = rx.report()["frames"] / secs
    print(f"    saturation probe: sent {sent / secs:,.0f}/s as fast as the vehicle could, forwarded {probe:,.0f}/s, "
          f"router CPU {100 * (c1 - c0) / secs:.0f} %")
    rate = max(200.0, 0.5 * probe)
    best = None  # (offered, forwarded, cpu)
    fail = None
    for _ in range(max_steps):
        ok, fwd, offered, cpu = step(rate)
        if not ok and retry:  # one transient (a GC pause, a busy neighbour) must not end the ladder
            ok, fwd, offered, cpu = step(rate)
        if ok:
            best = (rate, fwd, cpu)
            rate *= 1.25
        else:
            fail = rate
            break
    if best is not None and fail is not None and not quick:
        mid = (best[0] * fail) ** 0.5
        ok, fwd, offered, cpu = step(mid)
        if ok:
            best = (mid, fwd, cpu)
    if best is None:  # even half the probe rate lost frames: walk down
        rate = 0.5 * probe
        for _ in range(3 if quick else 6):
            rate *= 0.6
            ok, fwd, offered, cpu = step(rate)
            if ok:
                best = (rate, fwd, cpu)
                break
    sustained = best[1] if best else 0.0
    print(f"  {name}: sustained {sustained:,.0f} msg/s forwarded with <= {100 * LOSS_LIMIT:g} % loss "
          f"(router CPU {100 * best[2]:.0f} % of one core there)" if best else f"  {name}: no rate without loss")
    return {"sustained": sustained, "probe": probe, "latency": latency, "latency_lost": latency_lost,
            "cpu": best[2] if best else float("nan")}


def run_fieldgw(tmp: Path, frames: list[bytes], quick: bool, position_interval: float | None) -> dict[str, Any]:
    vport, gport = free_udp_port(), free_udp_port()
    rx = Receiver(gport)
    options = {} if position_interval is None else {"position_interval_s": position_interval}
    name = "fieldgw" if position_interval is None else f"fieldgw (position_interval_s {position_interval:g})"
    try:
        with mosquitto(tmp) as url:
            kit = write_kit(tmp / "kit.yaml", [drone("drone-1", vport, VEHICLE_SYSID, **options)],
                            ground_stations=[{"id": "gcs", "url": f"udp://127.0.0.1:{gport}"}])
            gw = GatewayProcess(kit, tmp / "data", mqtt_url=url)
            vehicle = Vehicle(vport, frames)
            try:
                result = measure_router(name, vehicle, rx, gw.proc.pid, quick)
                time.sleep(1.0)
                stats = gw.get_json("/api/v1/health")
                result["health"] = stats
            finally:
                vehicle.close()
                gw.stop()
    finally:
        rx.close()
    return result


def run_mavproxy(tmp: Path, frames: list[bytes], quick: bool, modules: str) -> dict[str, Any]:
    vport, gport = free_udp_port(), free_udp_port()
    rx = Receiver(gport)
    workdir = tmp / f"mavproxy-{modules}"
    workdir.mkdir()
    cmd = [PYTHON, str(MAVPROXY), f"--master=udpin:127.0.0.1:{vport}", f"--out=udp:127.0.0.1:{gport}",
           *MAVPROXY_FLAGS[modules]]
    log = (workdir / "mavproxy.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "MAVLINK20": "1"})
    vehicle = Vehicle(vport, frames)
    try:
        return measure_router(f"MAVProxy ({modules})", vehicle, rx, proc.pid, quick)
    finally:
        vehicle.close()
        stop_process(proc)
        log.close()
        rx.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: shorter steps")
    ap.add_argument("--mavproxy-modules", choices=sorted(MAVPROXY_FLAGS), default="lean",
                    help="lean: --default-modules= (the peer); default: MAVProxy's default modules")
    ap.add_argument("--position-interval", type=float, default=None, metavar="S",
                    help="fieldgw kit option position_interval_s (positions to MQTT at most every S s); "
                         "default: none, every GLOBAL_POSITION_INT is published")
    ap.add_argument("--role", choices=["bench", "receiver"], default="bench", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.role == "receiver":
        return run_receiver(args.port)
    if not MAVPROXY.exists():
        print(f"MAVProxy is not installed ({MAVPROXY}): .venv/bin/pip install -c constraints.txt MAVProxy")
        return 0
    frames, mix = build_frames(N_FRAMES, VEHICLE_SYSID)
    print(f"[{machine_note()}]")
    print(f"GCS routing: one vehicle (system {VEHICLE_SYSID}), copter mix, one frame per datagram; "
          f"MAVProxy flags: {' '.join(MAVPROXY_FLAGS[args.mavproxy_modules])}")
    with tempfile.TemporaryDirectory(prefix="fieldgw-bench-") as tmp:
        gw = run_fieldgw(Path(tmp), frames, args.quick, args.position_interval)
        mp = run_mavproxy(Path(tmp), frames, args.quick, args.mavproxy_modules)
    print(f"  fieldgw uplinks at the end: {json.dumps((gw.get('health') or {}).get('uplinks'))}")
    print(f"fieldgw:  sustained {gw['sustained']:10,.0f} msg/s; latency at {LATENCY_RATE:g} msg/s {fmt_ms(gw['latency'])}")
    print(f"MAVProxy: sustained {mp['sustained']:10,.0f} msg/s; latency at {LATENCY_RATE:g} msg/s {fmt_ms(mp['latency'])}")
    ratio = gw["sustained"] / mp["sustained"] if mp["sustained"] else float("inf")
    ok = ratio >= TARGET_RATIO
    print(f"RATIO fieldgw/MAVProxy sustained rate = {ratio:.2f}  (target >= {TARGET_RATIO:g}: {'met' if ok else 'NOT met'}); "
          f"p95 added latency fieldgw {gw['latency']['p95']:.2f} ms vs MAVProxy {mp['latency']['p95']:.2f} ms "
          f"(ratio {gw['latency']['p95'] / mp['latency']['p95']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
