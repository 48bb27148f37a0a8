"""Position latency: vehicle sends GLOBAL_POSITION_INT → MQTT subscriber receives it, over real Mosquitto.

Two vehicles (system ids 1 and 2; HEARTBEAT 1 Hz, GLOBAL_POSITION_INT 10 Hz,
the second 50 ms after the first), written here with pymavlink, send each
frame to two paths at once (alternating which goes first):

  fieldgw  the gateway as a real process (`python -m gateway.cli run KIT --mqtt …`), one
           udp-listen port per vehicle, publishing `fieldgw/v1/bench/devices/<id>/position`
  direct   the peer: one process with a blocking UDP socket, pymavlink parse_buffer and a paho
           client publishing the same JSON (QoS 1) to `direct/v1/devices/<id>/position`

Both publish to the same Mosquitto (docs/mosquitto.conf). A subscriber
process (paho, QoS 1) takes both topics. Each position carries a counter in
its altitude (alt = 100 m + counter mm, which the gateway passes through as
`alt_m`); the sender keeps counter → send wall time, the subscriber stamps
the receive wall time (same host clock). The vehicles answer the gateway's
COMMAND_LONGs (stream-rate set-up) with COMMAND_ACK like an autopilot.

Reported: p50/p95/p99/max latency per path, sent vs received (losses), the
CPU each path's process used, and RATIO fieldgw p95 / direct p95.
Target: fieldgw p95 <= 20 ms.

    .venv/bin/python -m bench.position_latency [--duration S] [--quick]
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
from urllib.parse import urlsplit

os.environ["MAVLINK20"] = "1"

from pymavlink.dialects.v20 import ardupilotmega as m2  # noqa: E402

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
    write_kit,
)

TARGET_P95_MS = 20.0
ALT_BASE_MM = 100_000
KIT = "bench"
DEVICES = {1: "drone-1", 2: "drone-2"}


# --- the subscriber (its own process) ------------------------------------------------
def run_subscriber(url: str, out: str) -> int:
    """Subscribe to both paths' position topics; on stdin EOF write [[path, device, counter, t_recv], …] to `out`."""
    import paho.mqtt.client as paho

    parts = urlsplit(url)
    records: list[tuple[str, str, int, float]] = []
    lock = threading.Lock()
    ready = threading.Event()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        now = time.time()
        topic = msg.topic
        path = "fieldgw" if topic.startswith("fieldgw/") else "direct"
        try:
            body = json.loads(msg.payload)
            counter = int(round(body["alt_m"] * 1000)) - ALT_BASE_MM
        except (ValueError, KeyError, TypeError):
            return
        device = topic.split("/")[-2]
        with lock:
            records.append((path, device, counter, now))

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{os.getpid()}")
    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(
        [(f"fieldgw/v1/{KIT}/devices/+/position", 1), ("direct/v1/devices/+/position", 1)])
    client.on_subscribe = lambda *a: ready.set()
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    if not ready.wait(10):
        print("subscriber: no SUBACK", file=sys.stderr)
        return 1
    print("ready", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    client.loop_stop()
    client.disconnect()
    with lock:
        Path(out).write_text(json.dumps(records))
    return 0


# --- the direct peer (its own process) --------------------------------------------------
def run_direct(url: str, port: int) -> int:
    """UDP → pymavlink → JSON → paho QoS 1: the least a bridge must do. Runs until terminated."""
    import paho.mqtt.client as paho

    parts = urlsplit(url)
    connected = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-direct-{os.getpid()}")
    client.on_connect = lambda *a: connected.set()
    client.max_inflight_messages_set(64)
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    if not connected.wait(10):
        return 1
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    mav = m2.MAVLink(None)
    mav.robust_parsing = True
    seq: dict[int, int] = {}
    print("ready", flush=True)
    while True:
        data, _ = sock.recvfrom(65535)
        for msg in mav.parse_buffer(data) or []:
            if type(msg) is not m2.MAVLink_global_position_int_message:
                continue
            src = msg.get_srcSystem()
            seq[src] = seq.get(src, 0) + 1
            body = {"ts": time.time_ns() // 1_000_000, "lat": msg.lat / 1e7, "lon": msg.lon / 1e7,
                    "alt_m": msg.alt / 1000.0, "heading_deg": None if msg.hdg == 65535 else msg.hdg / 100.0,
                    "speed_mps": (msg.vx ** 2 + msg.vy ** 2) ** 0.5 / 100.0, "fix": "3d", "source": "mavlink",
                    "seq": seq[src]}
            client.publish(f"direct/v1/devices/drone-{src}/position",
                           json.dumps(body, separators=(",", ":")).encode(), qos=1)


# --- the vehicles (in the benchmark process) ----------------------------------------------
class Vehicles:
    """Two pymavlink vehicles sending to the gateway's ports and to the direct peer's port."""

    def __init__(self, gw_ports: dict[int, int], direct_port: int) -> None:
        self.encoders = {s: m2.MAVLink(None, srcSystem=s, srcComponent=1) for s in gw_ports}
        self.gw_socks = {}
        for s in gw_ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(0.2)
            self.gw_socks[s] = sock
        self.gw_addr = {s: ("127.0.0.1", p) for s, p in gw_ports.items()}
        self.direct_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.direct_addr = ("127.0.0.1", direct_port)
        self.sent: dict[tuple[str, str, int], float] = {}  # (path, device, counter) → send wall time
        self.acks = 0
        self._locks = {s: threading.Lock() for s in gw_ports}  # one encoder (sequence numbers) per vehicle
        self._stop = threading.Event()
        self._ackers = [threading.Thread(target=self._ack_loop, args=(s,), daemon=True) for s in gw_ports]
        for t in self._ackers:
            t.start()

    def _pack(self, sysid: int, msg: Any) -> bytes:
        enc = self.encoders[sysid]
        buf = msg.pack(enc)
        enc.seq = (enc.seq + 1) % 256
        return buf

    def _ack_loop(self, sysid: int) -> None:
        """Answer the gateway's COMMAND_LONG / COMMAND_INT with COMMAND_ACK ACCEPTED, as an autopilot would."""
        sock = self.gw_socks[sysid]
        mav = m2.MAVLink(None)
        mav.robust_parsing = True
        while not self._stop.is_set():
            try:
                data, addr = sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            for msg in mav.parse_buffer(data) or []:
                if msg.get_type() in ("COMMAND_LONG", "COMMAND_INT") and msg.target_system == sysid:
                    enc = self.encoders[sysid]
                    ack = enc.command_ack_encode(msg.command, m2.MAV_RESULT_ACCEPTED, 0, 0,
                                                 msg.get_srcSystem(), msg.get_srcComponent())
                    with self._lock_for(sysid):
                        sock.sendto(self._pack(sysid, ack), addr)
                    self.acks += 1

    def _lock_for(self, sysid: int) -> threading.Lock:
        return self._locks[sysid]

    def heartbeat(self, sysid: int) -> None:
        msg = self.encoders[sysid].heartbeat_encode(
            m2.MAV_TYPE_QUADROTOR, m2.MAV_AUTOPILOT_ARDUPILOTMEGA,
            m2.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | m2.MAV_MODE_FLAG_SAFETY_ARMED, 5, m2.MAV_STATE_ACTIVE)
        with self._lock_for(sysid):
            buf = self._pack(sysid, msg)
        self.gw_socks[sysid].sendto(buf, self.gw_addr[sysid])
        self.direct_sock.sendto(buf, self.direct_addr)

    def position(self, sysid: int, counter: int, record: bool, gateway_first: bool) -> None:
        t = counter / 10.0
        msg = self.encoders[sysid].global_position_int_encode(
            int(t * 1000) & 0xFFFFFFFF, int((30.6586 + 0.0001 * sysid + 1e-6 * (counter % 500)) * 1e7),
            int(104.0648 * 1e7), ALT_BASE_MM + counter, 50_000, 300, 400, 0, 9000)
        with self._lock_for(sysid):
            buf = self._pack(sysid, msg)
        device = DEVICES[sysid]
        order = ("fieldgw", "direct") if gateway_first else ("direct", "fieldgw")
        for path in order:
            now = time.time()
            if path == "fieldgw":
                self.gw_socks[sysid].sendto(buf, self.gw_addr[sysid])
            else:
                self.direct_sock.sendto(buf, self.direct_addr)
            if record:
                self.sent[(path, device, counter)] = now

    def run(self, warmup_s: float, duration_s: float) -> tuple[int, int]:
        """Send for warmup + duration; only positions sent after the warm-up are recorded.

        Returns (first, last) recorded counters."""
        period = 0.1
        start = time.monotonic() + 0.05
        counter = 0
        first_recorded = None
        tick = 0
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= warmup_s + duration_s:
                break
            for sysid, offset in ((1, 0.0), (2, period / 2)):
                due = start + tick * period + offset
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if tick % 10 == 0:
                    self.heartbeat(sysid)
                record = (due - start) >= warmup_s
                if record and first_recorded is None:
                    first_recorded = counter
                self.position(sysid, counter, record, gateway_first=(tick + sysid) % 2 == 0)
            counter += 1
            tick += 1
        return first_recorded or 0, counter - 1

    def close(self) -> None:
        self._stop.set()
        for t in self._ackers:
            t.join(1)
        for s in self.gw_socks.values():
            s.close()
        self.direct_sock.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds (after a warm-up)")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--quick", action="store_true", help="smoke run: 5 s measured")
    ap.add_argument("--role", choices=["bench", "subscriber", "direct"], default="bench", help=argparse.SUPPRESS)
    ap.add_argument("--mqtt", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.role == "subscriber":
        return run_subscriber(args.mqtt, args.out)
    if args.role == "direct":
        return run_direct(args.mqtt, args.port)
    if args.quick:
        args.duration, args.warmup = min(args.duration, 5.0), min(args.warmup, 1.5)
    with tempfile.TemporaryDirectory(prefix="fieldgw-bench-") as tmp:
        return _bench(Path(tmp), args.duration, args.warmup)


def _start_role(role: str, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([PYTHON, "-m", "bench.position_latency", "--role", role, *extra], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        stop_process(proc)
        raise RuntimeError(f"{role} process did not start (exit {proc.poll()})")
    return proc


def _bench(tmp: Path, duration: float, warmup: float) -> int:
    gw_ports = {1: free_udp_port(), 2: free_udp_port()}
    direct_port = free_udp_port()
    print(f"[{machine_note()}]")
    print(f"Position latency: 2 vehicles x 10 Hz GLOBAL_POSITION_INT, {duration:g} s measured after {warmup:g} s warm-up; "
          "both paths fed the same frames at the same time")
    with mosquitto(tmp) as url:
        kit = write_kit(tmp / "kit.yaml", [drone(DEVICES[s], p, s) for s, p in gw_ports.items()], kit=KIT)
        gw = GatewayProcess(kit, tmp / "data", mqtt_url=url)
        procs: list[subprocess.Popen[Any]] = []
        vehicles: Vehicles | None = None
        try:
            out = tmp / "received.json"
            sub = _start_role("subscriber", "--mqtt", url, "--out", str(out))
            procs.append(sub)
            direct = _start_role("direct", "--mqtt", url, "--port", str(direct_port))
            procs.append(direct)
            vehicles = Vehicles(gw_ports, direct_port)
            cpu0 = {"fieldgw": cpu_seconds(gw.proc.pid), "direct": cpu_seconds(direct.pid)}
            t0 = time.monotonic()
            first, last = vehicles.run(warmup, duration)
            sent_window = time.monotonic() - t0
            cpu1 = {"fieldgw": cpu_seconds(gw.proc.pid), "direct": cpu_seconds(direct.pid)}
            time.sleep(2.0)  # stragglers
            health = gw.get_json("/api/v1/health")
            assert sub.stdin is not None
            sub.stdin.close()
            sub.wait(15)
            received = json.loads(out.read_text())
        finally:
            if vehicles is not None:
                vehicles.close()
            for p in procs:
                stop_process(p)
            gw.stop()

    sent = vehicles.sent
    lat: dict[str, list[float]] = {"fieldgw": [], "direct": []}
    seen: set[tuple[str, str, int]] = set()
    dups = {"fieldgw": 0, "direct": 0}
    for path, device, counter, t_recv in received:
        key = (path, device, counter)
        if key not in sent:
            continue  # warm-up
        if key in seen:
            dups[path] += 1
            continue
        seen.add(key)
        lat[path].append(t_recv - sent[key])
    n_sent = {p: sum(1 for k in sent if k[0] == p) for p in lat}
    stats = {p: summary_ms(v) for p, v in lat.items()}
    cpu = {p: cpu1[p] - cpu0[p] for p in lat}
    print(f"  sent {n_sent['fieldgw']} positions per path in {sent_window - warmup:.1f} s (counters {first}..{last}); "
          f"vehicle acks sent to the gateway: {vehicles.acks}")
    for p, label in (("fieldgw", "fieldgw (gateway process)"), ("direct", "direct (pymavlink+paho, peer)")):
        lost = n_sent[p] - len(lat[p])
        print(f"{label:32s} {fmt_ms(stats[p])}")
        print(f"{'':32s} received {len(lat[p])}/{n_sent[p]} (lost {lost}, {100.0 * lost / max(1, n_sent[p]):.2f} %, "
              f"duplicates {dups[p]}), process CPU {cpu[p]:.2f} s over {sent_window:.1f} s "
              f"({100.0 * cpu[p] / sent_window:.1f} % of one core)")
    print(f"  gateway health at the end: {health.get('status')}, uplinks {json.dumps(health.get('uplinks'))}")
    ratio = stats["fieldgw"]["p95"] / stats["direct"]["p95"]
    ok = stats["fieldgw"]["p95"] <= TARGET_P95_MS
    print(f"RATIO fieldgw p95 / direct p95 = {ratio:.2f}  (fieldgw p95 {stats['fieldgw']['p95']:.2f} ms, "
          f"direct p95 {stats['direct']['p95']:.2f} ms; target fieldgw p95 <= {TARGET_P95_MS:g} ms: "
          f"{'met' if ok else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
