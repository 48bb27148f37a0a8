"""Outbox replay: a 30,000-message backlog on disk sent to a real Mosquitto, against plain aiomqtt.

A backlog of N messages (default 30,000; the mix and ~250-byte payloads of
bench.outbox_enqueue, each payload numbered with `"n"`) is written once with
`Outbox.put` while offline and closed: the file a gateway finds after an
outage. Then, one after the other, each in its own process, against the same
Mosquitto (docs/mosquitto.conf):

  fieldgw  the gateway's own parts, wired as gateway/app.py wires them: Outbox(copy of the file)
           + MqttLink + UplinkManager (with a Bus, a DeviceRegistry holding the kit's five
           devices, wire.Topics). Timed from `outbox.open()` until every message is PUBACKed
           (`outbox.sent == N`, no rows left in its counts); also reported: until the deletes are
           committed. Payloads go out flagged `"replayed":true` as in the field.
  aiomqtt  the peer: one aiomqtt.Client (MQTT 5 like the gateway's link, max_inflight_messages
           1000 like it), the same topics and payload bytes (read from the same file, in the
           order the outbox sends them, with `"replayed":true` added the same way), QoS 1,
           pipelined: `asyncio.gather` of windows of 64, 256 and 1,000 publishes. Timed from
           the start of the connect until the last PUBACK. The best window is the peer's figure.

Best of 3 repetitions of each publisher (fieldgw and each window); the order
alternates each repetition.

A subscriber process (paho, QoS 1, `fieldgw/v1/kit/devices/+/+`) runs during every
run and checks what arrived: all N distinct `n`, duplicates, order (each topic's `n`
only grows within a class: critical events overtake info events on the same `events`
topic by design), and `replayed: true` on every message.

RATIO fieldgw/aiomqtt (best window) is the figure to compare across machines (target >= 0.8).

    .venv/bin/python -m bench.outbox_replay [--messages N] [--windows 64,256,1000] [--reps R] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench._common import PYTHON, ROOT, machine_note, mosquitto, stop_process
from bench.outbox_enqueue import DRONES, KIT, OTHERS, CommitWatch, build_messages, describe_mix

TARGET_RATIO = 0.8
DATA_LEAVES = ("position", "telemetry", "events", "acks")


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --- the backlog file (built once, copied per run) ---------------------------------------
async def _build_backlog(path: Path, n: int) -> dict[str, Any]:
    from gateway.outbox import Outbox

    msgs = build_messages(n, number=True)
    ob = Outbox(path)
    await ob.open()  # never marked online: what was put is a backlog, sent `replayed`
    loop = asyncio.get_running_loop()
    committed: asyncio.Future[None] = loop.create_future()
    watch = CommitWatch()
    watch.install()
    try:
        watch.reset(n, loop, committed)
        for i in range(0, n, 1000):
            for topic, payload, cls, dev in msgs[i:i + 1000]:
                ob.put(topic, payload, cls, dev)
            await asyncio.sleep(0)
        # Wait for the writer's own commits before closing: Outbox.close() right after a burst of puts can
        # lose the batch the writer had taken but not yet started to commit (see docs/benchmarks.md).
        await asyncio.wait_for(committed, 60)
    finally:
        watch.uninstall()
    await ob.close()  # checkpoints the WAL into the file
    return {"mix": describe_mix(msgs), "rows": _count_rows(path), "bytes": path.stat().st_size}


def _count_rows(path: Path) -> int:
    db = sqlite3.connect(str(path))
    try:
        return db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    finally:
        db.close()


def _rows_in_send_order(path: Path) -> list[tuple[str, bytes]]:
    """(topic, payload as sent) in the outbox's order: class 0 first, then 1, 2, 3; enqueue order inside a class."""
    from gateway.wire import with_replayed

    db = sqlite3.connect(str(path))
    try:
        rows = db.execute("SELECT topic, payload FROM outbox ORDER BY class, id").fetchall()
    finally:
        db.close()
    return [(t, with_replayed(bytes(p))) for t, p in rows]


# --- the fieldgw run (its own process) -----------------------------------------------------
async def _fieldgw(url: str, path: Path, n: int) -> dict[str, Any]:
    from gateway import __version__
    from gateway.bus import Bus
    from gateway.model import Device
    from gateway.mqtt_link import BrokerTarget, MqttLink
    from gateway.outbox import Outbox
    from gateway.outbox_store import OutboxStore
    from gateway.registry import DeviceRegistry
    from gateway.uplinks import Uplink, UplinkManager
    from gateway.wire import Topics

    deletes = {"rows": 0, "at": 0.0}
    original = OutboxStore.commit

    def commit(store: OutboxStore, rows: list[Any], delete_ids: list[int], seqs: dict[str, int]) -> None:
        original(store, rows, delete_ids, seqs)
        deletes["rows"] += len(delete_ids)
        if delete_ids:
            deletes["at"] = time.perf_counter()

    OutboxStore.commit = commit  # type: ignore[method-assign]  # this process only: when are the deletes on disk

    topics = Topics(KIT)
    bus = Bus()
    registry = DeviceRegistry()
    for dev in DRONES:
        registry.add(Device(id=dev, kind="uav", driver="mavlink", name=dev))
    registry.add(Device(id=OTHERS[0], kind="radio", driver="snmp", name=OTHERS[0]))
    registry.add(Device(id=OTHERS[1], kind="power", driver="modbus", name=OTHERS[1]))
    bus.add_tap(registry.tap)
    outbox = Outbox(path)
    manager: UplinkManager | None = None

    def changed() -> None:
        if manager is not None:
            manager.changed()

    link = MqttLink("default", BrokerTarget.from_url(url, f"fieldgw-{KIT}-bench-{os.getpid()}"), topics, __version__,
                    on_command=lambda topic, payload: None, on_change=changed)
    manager = UplinkManager([Uplink(link)], outbox, bus, registry, topics, __version__)
    gc.collect()
    gc.freeze()  # as gateway/runner.py does after start-up
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    await outbox.open()
    backlog = outbox.stats()["messages"]
    task = asyncio.create_task(manager.run(), name="uplinks")
    await asyncio.wait_for(link.connected.wait(), 20)
    t_conn = time.perf_counter()
    deadline = t0 + 300
    while (outbox.sent < backlog or sum(c.rows for c in outbox.classes)) and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
    t_done = time.perf_counter()
    cpu1 = _cpu_s()
    while deletes["rows"] < backlog and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
    result = {"seconds": t_done - t0, "connect_s": t_conn - t0, "sent": outbox.sent, "backlog": backlog,
              "left": sum(c.rows for c in outbox.classes), "deleted_at_s": deletes["at"] - t0,
              "cpu_s": cpu1 - cpu0, "protocol": link.stats()["protocol"], "connects": link.connects}
    await manager.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await outbox.close()
    result["rows_on_disk"] = _count_rows(path)
    return result


# --- the aiomqtt peer (its own process) -------------------------------------------------------
async def _aiomqtt(url: str, rows: list[tuple[str, bytes]], window: int) -> dict[str, Any]:
    import logging

    import aiomqtt

    logging.getLogger("mqtt").setLevel(logging.ERROR)  # it warns on > 10 publishes in flight
    parts = urlsplit(url)
    gc.collect()
    gc.freeze()
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883, identifier=f"bench-aiomqtt-{os.getpid()}",
                              protocol=aiomqtt.ProtocolVersion.V5, max_inflight_messages=1000) as client:
        t_conn = time.perf_counter()
        publish = client.publish
        for i in range(0, len(rows), window):
            await asyncio.gather(*(publish(topic, payload, qos=1) for topic, payload in rows[i:i + window]))
        t_done = time.perf_counter()
        cpu1 = _cpu_s()
    return {"seconds": t_done - t0, "connect_s": t_conn - t0, "sent": len(rows), "cpu_s": cpu1 - cpu0, "protocol": "5"}


# --- the subscriber (its own process) ------------------------------------------------------------
def run_subscriber(url: str, expect: int) -> int:
    """Count and check data messages; after stdin closes, wait for `expect` (or 10 s of silence), print JSON."""
    import paho.mqtt.client as paho

    parts = urlsplit(url)
    lock = threading.Lock()
    ready = threading.Event()
    got_all = threading.Event()
    st: dict[str, Any] = {"received": 0, "dup": 0, "out_of_order": 0, "replayed": 0, "not_replayed": 0, "bad": 0,
                          "first": 0.0, "last": 0.0}
    seen: set[int] = set()
    top: dict[str, int] = {}
    last_rx = [time.monotonic()]

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        now = time.time()
        if msg.topic.rsplit("/", 1)[-1] not in DATA_LEAVES:
            return  # retained device states
        try:
            body = json.loads(msg.payload)
            n = int(body["n"])
        except (ValueError, KeyError, TypeError):
            with lock:
                st["bad"] += 1
            return
        with lock:
            last_rx[0] = time.monotonic()
            st["received"] += 1
            st["first"] = st["first"] or now
            st["last"] = now
            if body.get("replayed") is True:
                st["replayed"] += 1
            else:
                st["not_replayed"] += 1
            if n in seen:
                st["dup"] += 1
                return
            seen.add(n)
            # order is promised per class (critical events overtake info events on the same topic by design)
            key = msg.topic + ("#critical" if body.get("severity") == "critical" else "")
            if n < top.get(key, -1):
                st["out_of_order"] += 1
            else:
                top[key] = n
            if len(seen) >= expect:
                got_all.set()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{os.getpid()}")
    client.max_inflight_messages_set(100)
    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"fieldgw/v1/{KIT}/devices/+/+", qos=1)
    client.on_subscribe = lambda *a: ready.set()
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    if not ready.wait(10):
        print("subscriber: no SUBACK", file=sys.stderr)
        return 1
    print("ready", flush=True)
    sys.stdin.read()  # until the parent says the publisher is done
    while not got_all.wait(0.2):
        if time.monotonic() - last_rx[0] > 10.0:
            break
    client.loop_stop()
    client.disconnect()
    with lock:
        st["distinct"] = len(seen)
        st["streams"] = len(top)
        st["cpu_s"] = _cpu_s()
        print(json.dumps(st), flush=True)
    return 0


# --- the orchestration -------------------------------------------------------------------------------
def _child(role: str, *extra: str) -> dict[str, Any]:
    proc = subprocess.run([PYTHON, "-m", "bench.outbox_replay", "--role", role, *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{role} run failed (exit {proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def _one_run(url: str, n: int, role: str, *extra: str) -> tuple[dict[str, Any], dict[str, Any]]:
    sub = subprocess.Popen([PYTHON, "-m", "bench.outbox_replay", "--role", "subscriber", "--mqtt", url,
                            "--expect", str(n)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert sub.stdout is not None and sub.stdin is not None
        if sub.stdout.readline().strip() != "ready":
            raise RuntimeError(f"subscriber did not start (exit {sub.poll()})")
        result = _child(role, "--mqtt", url, "--messages", str(n), *extra)
        t_pub_end = time.time()
        sub.stdin.close()
        out = sub.stdout.read()
        sub.wait(30)
        received = json.loads(out.strip().splitlines()[-1])
        received["after_publisher_s"] = max(0.0, received["last"] - t_pub_end) if received["last"] else float("nan")
        return result, received
    finally:
        stop_process(sub)


def _check_line(n: int, rx: dict[str, Any]) -> str:
    ok = rx["distinct"] == n and rx["out_of_order"] == 0 and rx["not_replayed"] == 0 and rx["bad"] == 0
    return (f"subscriber: {rx['distinct']}/{n} distinct over {rx['streams']} topic+class streams, {rx['dup']} duplicates, "
            f"{rx['out_of_order']} out of order, replayed:true on {rx['replayed']}/{rx['received']}"
            f"{', ' + str(rx['bad']) + ' unreadable' if rx['bad'] else ''} -> {'OK' if ok else 'PROBLEM'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=30_000)
    ap.add_argument("--windows", default="64,256,1000", help="aiomqtt gather window sizes to try")
    ap.add_argument("--reps", type=int, default=3, help="repetitions; the best run of each publisher counts")
    ap.add_argument("--quick", action="store_true", help="smoke run: 8,000 messages, windows 64 and 1000, best of 2")
    ap.add_argument("--role", choices=["bench", "fieldgw", "aiomqtt", "subscriber"], default="bench", help=argparse.SUPPRESS)
    ap.add_argument("--mqtt", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--window", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.role == "subscriber":
        return run_subscriber(args.mqtt, args.expect)
    if args.role == "fieldgw":
        print(json.dumps(asyncio.run(_fieldgw(args.mqtt, Path(args.file), args.messages))))
        return 0
    if args.role == "aiomqtt":
        rows = _rows_in_send_order(Path(args.file))
        print(json.dumps(asyncio.run(_aiomqtt(args.mqtt, rows, args.window)) | {"window": args.window}))
        return 0
    if args.quick:
        args.messages, args.windows, args.reps = min(args.messages, 8_000), "64,1000", min(args.reps, 2)
    windows = [int(w) for w in args.windows.split(",")]
    with tempfile.TemporaryDirectory(prefix="fieldgw-bench-replay-") as tmp:
        return _bench(Path(tmp), args.messages, windows, args.reps)


def _bench(tmp: Path, n: int, windows: list[int], reps: int) -> int:
    print(f"[{machine_note()}]")
    template = tmp / "backlog.sqlite3"
    t = time.perf_counter()
    info = asyncio.run(_build_backlog(template, n))
    print(f"Outbox replay: backlog of {info['rows']} messages ({info['bytes'] / 1e6:.1f} MB file, built in "
          f"{time.perf_counter() - t:.1f} s), {info['mix']}")
    print(f"  publishers run one after the other, each in its own process, against one Mosquitto; "
          f"a paho subscriber process checks every run; best of {reps}, order alternating")
    runs: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    labels = ["fieldgw"] + [f"aiomqtt-{w}" for w in windows]
    with mosquitto(tmp) as url:
        for rep in range(reps):
            # fieldgw first in even repetitions, last in odd ones: a noisy neighbour slows both alike
            for label in (labels if rep % 2 == 0 else labels[::-1]):
                role, _, window = label.partition("-")
                work = tmp / f"{label}-{rep}"
                work.mkdir()
                shutil.copy(template, work / "outbox.sqlite3")
                extra = ["--window", window] if window else []
                r, rx = _one_run(url, n, role, "--file", str(work / "outbox.sqlite3"), *extra)
                shutil.rmtree(work)
                r["rate"] = n / r["seconds"]
                runs.setdefault(label, []).append((r, rx))
                if r.get("backlog", n) != n or r["sent"] != n:
                    print(f"  WARNING: {label}: backlog {r.get('backlog')} / sent {r['sent']}, expected {n}")
                more = ""
                if role == "fieldgw":
                    more = (f", connected after {r['connect_s'] * 1000:.0f} ms, deletes on disk at "
                            f"{r['deleted_at_s']:.2f} s, rows left {r['rows_on_disk']}")
                print(f"  rep {rep + 1} {label:13s} {r['rate']:9,.0f} msg/s  ({n} in {r['seconds']:.2f} s, CPU "
                      f"{r['cpu_s']:.2f} s = {100 * r['cpu_s'] / r['seconds']:.0f} % of a core, MQTT {r['protocol']}{more})")
                print(f"  {'':19s} {_check_line(n, rx)}; last arrival {rx['after_publisher_s']:.2f} s after the publisher ended")
    results = {label: min(rs, key=lambda x: x[0]["seconds"]) for label, rs in runs.items()}
    print("  best of each: " + ", ".join(f"{label} {results[label][0]['rate']:,.0f} msg/s" for label in labels))

    gw_label = min((k for k in results if k.startswith("fieldgw")), key=lambda k: results[k][0]["seconds"])
    peer_label = min((k for k in results if k.startswith("aiomqtt")), key=lambda k: results[k][0]["seconds"])
    gw, gw_rx = results[gw_label]
    peer, peer_rx = results[peer_label]
    print(f"aiomqtt QoS 1, gather windows of {peer['window']} (best peer): {peer['rate']:9,.0f} msg/s  "
          f"({n} in {peer['seconds']:.2f} s, {peer['cpu_s'] / n * 1e6:.0f} us CPU per message)")
    print(f"fieldgw Outbox + MqttLink + UplinkManager:      {gw['rate']:9,.0f} msg/s  "
          f"({n} in {gw['seconds']:.2f} s, {gw['cpu_s'] / n * 1e6:.0f} us CPU per message)")
    all_ok = all(rx["distinct"] == n and rx["out_of_order"] == 0 and rx["not_replayed"] == 0 and rx["bad"] == 0
                 for rs in runs.values() for _, rx in rs)
    print(f"  delivery: all {n} arrived, in order per topic, every one replayed:true in every run: "
          f"{'yes' if all_ok else 'NO (see the subscriber lines)'}")
    ratio = gw["rate"] / peer["rate"]
    ok = ratio >= TARGET_RATIO
    print(f"RATIO fieldgw/aiomqtt = {ratio:.3f}  (target >= {TARGET_RATIO}: {'met' if ok else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
