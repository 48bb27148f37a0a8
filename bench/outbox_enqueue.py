"""Outbox enqueue: durable messages/s through fieldgw's Outbox, against raw batched SQLite inserts.

The same N messages (default 200,000; JSON payloads of ~250 bytes built with
gateway/wire.py for a kit of drones, a radio and a power unit; mixed classes:
positions, telemetry, info events, critical events and command acks) are
written, on the same disk and in the same run, by

  raw      the peer: plain sqlite3 in this process, the outbox's schema (copied below, checked
           against gateway/outbox_store.py), WAL, synchronous=FULL as the outbox uses,
           `executemany` of 1,000 rows per transaction (BEGIN IMMEDIATE … COMMIT), nothing else
  fieldgw  `gateway.outbox.Outbox(path)`: `await open()`, then `put(topic, payload, cls, device)`
           for every message, 1,000 puts per `await asyncio.sleep(0)` as a producer on the
           event loop would; its writer thread group-commits what arrived

Timing runs from the first insert / put to the moment the COMMIT holding the
last message returned (for fieldgw: `OutboxStore.commit` is wrapped in this
process only, to time that moment and to count commits and rows per commit).
Opening the database is not timed. Afterwards each file is re-opened and its
rows counted: all N must be there.

Best of 3 repetitions of each path; the order alternates each repetition
(raw first, then fieldgw first, …) so a noisy neighbour slows both alike.
RATIO fieldgw/raw is the figure to compare across machines (target >= 0.5).

    .venv/bin/python -m bench.outbox_enqueue [--messages N] [--reps R] [--dir DIR] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._common import machine_note
from gateway import outbox_store, wire
from gateway.model import Ack, Event, Position, Telemetry, now_ms
from gateway.outbox import BULK, POSITIONS, TELEMETRY, URGENT, Outbox
from gateway.outbox_store import OutboxStore

TARGET_RATIO = 0.5
BATCH = 1_000  # rows per raw transaction, and puts per event-loop turn for fieldgw
KIT = "kit"

# The raw peer writes the very same schema and rows as the outbox.
SCHEMA = outbox_store._SCHEMA  # noqa: SLF001
INSERT = "INSERT INTO outbox(id, class, device, topic, payload, qos, ts) VALUES (?,?,?,?,?,?,?)"

Msg = tuple[str, bytes, int, str]  # topic, payload, class, device

DRONES = ["drone-1", "drone-2", "drone-3"]
OTHERS = ["radio-1", "power-1"]
CLASS_LABELS = {URGENT: "urgent", POSITIONS: "positions", TELEMETRY: "telemetry", BULK: "bulk"}


# --- the messages (shared with bench.outbox_replay) ------------------------------------
def build_messages(n: int, seed: int = 7, number: bool = False) -> list[Msg]:
    """n messages as the uplink manager would put them: wire-encoded, in its classes (payloads ~250 B mean).

    Mix (by count): 55 % positions (3 drones), 33 % telemetry (drones, radio, power),
    9 % info/warning events, 3 % critical events and command acks (class 0).
    With `number`, each payload also carries `"n": <index>` (the replay benchmark checks order with it).
    """
    rnd = random.Random(seed)
    topics = wire.Topics(KIT)
    seqs: dict[str, int] = {}
    out: list[Msg] = []
    ts0 = now_ms()
    for i in range(n):
        ts = ts0 + i * 5
        r = rnd.random()
        if r < 0.55:
            dev = DRONES[i % len(DRONES)]
            a = i / 600.0
            pos = Position(dev, ts, 30.6586 + 0.0005 * math.sin(a) + rnd.uniform(-1e-6, 1e-6),
                           104.0648 + 0.0005 * math.cos(a), round(120.0 + 5 * math.sin(a / 3), 2),
                           round((a * 57.3) % 360, 1), round(rnd.uniform(4.0, 12.0), 2), "3d", "mavlink")
            seqs[dev] = seqs.get(dev, 0) + 1
            o, cls = wire.position(topics, pos, seqs[dev]), POSITIONS
        elif r < 0.88:
            dev = rnd.choice(DRONES + OTHERS)
            values = {"battery_v": round(rnd.uniform(21.0, 25.2), 2), "battery_pct": round(rnd.uniform(20, 100), 1),
                      "current_a": round(rnd.uniform(3, 30), 2), "groundspeed_mps": round(rnd.uniform(0, 15), 2),
                      "airspeed_mps": round(rnd.uniform(0, 15), 2), "climb_mps": round(rnd.uniform(-3, 3), 2),
                      "roll_deg": round(rnd.uniform(-20, 20), 2), "pitch_deg": round(rnd.uniform(-20, 20), 2),
                      "throttle_pct": round(rnd.uniform(30, 80), 1), "gps_sats": float(rnd.randint(8, 22)),
                      "hdop": round(rnd.uniform(0.6, 1.6), 2), "alt_rel_m": round(rnd.uniform(0, 120), 2),
                      "temperature_c": round(rnd.uniform(20, 45), 1), "rssi_dbm": float(rnd.randint(-100, -60)),
                      "wind_mps": round(rnd.uniform(0, 9), 2), "cell_min_v": round(rnd.uniform(3.5, 4.2), 3)}
            o, cls = wire.telemetry(topics, Telemetry(dev, ts, values)), TELEMETRY
        elif r < 0.97:
            dev = rnd.choice(DRONES + OTHERS)
            sev = "warning" if rnd.random() < 0.3 else "info"
            text = rnd.choice(["mode changed to AUTO (waypoint mission)", "GPS fix regained: 3D, 14 satellites",
                               "link quality degraded: RSSI -97 dBm, SNR 4 dB", "battery below 40 %: return planned"])
            o, cls = wire.event(topics, Event(dev, ts, "status_text", sev, text, {"source": "autopilot"})), TELEMETRY
        elif r < 0.985:
            dev = rnd.choice(DRONES)
            o = wire.event(topics, Event(dev, ts, "failsafe", "critical", "battery failsafe: RTL engaged, 18 % left",
                                         {"source": "autopilot", "battery_pct": 18}))
            cls = URGENT
        else:
            dev = rnd.choice(DRONES)
            o = wire.ack(topics, Ack(dev, f"{rnd.getrandbits(64):016x}-{i}", rnd.choice(["accepted", "done"]),
                                     "COMMAND_ACK MAV_RESULT_ACCEPTED from autopilot", ts))
            cls = URGENT
        payload = o.payload[:-1] + b',"n":%d}' % i if number else o.payload
        out.append((o.topic, payload, cls, dev))
    return out


def describe_mix(msgs: list[Msg]) -> str:
    counts = {c: 0 for c in CLASS_LABELS}
    for _, _, cls, _ in msgs:
        counts[cls] += 1
    avg = sum(len(p) for _, p, _, _ in msgs) / len(msgs)
    topic = sum(len(t) for t, _, _, _ in msgs) / len(msgs)
    mix = ", ".join(f"{CLASS_LABELS[c]} {100.0 * v / len(msgs):.1f} %" for c, v in counts.items() if v)
    return f"payload {avg:.0f} B mean, topic {topic:.0f} B mean; classes: {mix}"


def count_rows(path: Path) -> int:
    db = sqlite3.connect(str(path))
    try:
        return db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    finally:
        db.close()


# --- the peer: raw batched inserts ------------------------------------------------------
def run_raw(path: Path, msgs: list[Msg]) -> dict[str, Any]:
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    commits = 0
    t0 = time.perf_counter()
    for start in range(0, len(msgs), BATCH):
        rows = [(start + i + 1, cls, dev, topic, payload, 1, time.time_ns() // 1_000_000)
                for i, (topic, payload, cls, dev) in enumerate(msgs[start:start + BATCH])]
        db.execute("BEGIN IMMEDIATE")
        db.executemany(INSERT, rows)
        db.execute("COMMIT")
        commits += 1
    took = time.perf_counter() - t0
    db.close()
    return {"seconds": took, "commits": commits, "max_rows": BATCH, "rows": count_rows(path)}


# --- fieldgw: Outbox.put, group commit ---------------------------------------------------
class CommitWatch:
    """Wraps OutboxStore.commit (this process only): counts commits and rows, times the last row's commit."""

    def __init__(self) -> None:
        self.original = OutboxStore.commit
        self.lock = threading.Lock()
        self.reset(0, None, None)

    def reset(self, target: int, loop: asyncio.AbstractEventLoop | None, done: asyncio.Future[None] | None) -> None:
        self.target, self.loop, self.done = target, loop, done
        self.commits = self.rows = self.max_rows = 0
        self.done_at: float | None = None
        self.commit_s = 0.0

    def install(self) -> None:
        watch = self
        original = self.original

        def commit(store: OutboxStore, rows: list[Any], delete_ids: list[int], seqs: dict[str, int]) -> None:
            t = time.perf_counter()
            original(store, rows, delete_ids, seqs)
            end = time.perf_counter()
            with watch.lock:
                watch.commits += 1
                watch.rows += len(rows)
                watch.max_rows = max(watch.max_rows, len(rows))
                watch.commit_s += end - t
                if watch.done_at is None and watch.target and watch.rows >= watch.target:
                    watch.done_at = end
                    if watch.loop is not None and watch.done is not None:
                        watch.loop.call_soon_threadsafe(_resolve, watch.done)

        OutboxStore.commit = commit  # type: ignore[method-assign]

    def uninstall(self) -> None:
        OutboxStore.commit = self.original  # type: ignore[method-assign]


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _fieldgw(path: Path, msgs: list[Msg], watch: CommitWatch) -> dict[str, Any]:
    ob = Outbox(path)  # synchronous="FULL", the default the gateway uses
    await ob.open()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    watch.reset(len(msgs), loop, done)
    put = ob.put
    t0 = time.perf_counter()
    for start in range(0, len(msgs), BATCH):
        for topic, payload, cls, dev in msgs[start:start + BATCH]:
            put(topic, payload, cls, dev)
        await asyncio.sleep(0)
    t_put = time.perf_counter() - t0
    await asyncio.wait_for(done, 120)
    assert watch.done_at is not None
    took = watch.done_at - t0
    # the honest completion check: nothing left uncommitted, every message counted
    pending = len(ob._pending)  # noqa: SLF001
    stats = ob.stats()
    result = {"seconds": took, "put_seconds": t_put, "commits": watch.commits, "max_rows": watch.max_rows,
              "commit_s": watch.commit_s, "pending_after": pending, "stats_messages": stats["messages"]}
    await ob.close()
    result["rows"] = count_rows(path)
    return result


def run_fieldgw(path: Path, msgs: list[Msg], watch: CommitWatch) -> dict[str, Any]:
    return asyncio.run(_fieldgw(path, msgs, watch))


# --- the benchmark ------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="where the SQLite files go (default: a temp dir)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 50k messages, best of 2")
    args = ap.parse_args(argv)
    if args.quick:
        args.messages, args.reps = min(args.messages, 50_000), min(args.reps, 2)

    msgs = build_messages(args.messages)
    gc.collect()
    gc.freeze()  # the prepared messages live for the whole run (the gateway freezes its start-up state too)
    print(f"[{machine_note()}]")
    print(f"Outbox enqueue: {args.messages} messages, {describe_mix(msgs)}; best of {args.reps}, order alternating")
    print(f"  SQLite {sqlite3.sqlite_version}, WAL, synchronous=FULL; schema imported from gateway/outbox_store.py")

    base = Path(tempfile.mkdtemp(prefix="fieldgw-bench-outbox-", dir=args.dir))
    print(f"  files in {base} (disk: {_disk_of(base)})")
    watch = CommitWatch()
    watch.install()
    best: dict[str, dict[str, Any]] = {}
    try:
        for rep in range(args.reps):
            order = ["raw", "fieldgw"] if rep % 2 == 0 else ["fieldgw", "raw"]
            line = []
            for name in order:
                d = base / f"{name}-{rep}"
                d.mkdir()
                gc.collect()
                r = run_raw(d / "raw.sqlite3", msgs) if name == "raw" else run_fieldgw(d / "outbox.sqlite3", msgs, watch)
                shutil.rmtree(d)
                r["rate"] = args.messages / r["seconds"]
                if r["rows"] != args.messages:
                    print(f"  WARNING: {name} rep {rep + 1}: {r['rows']} rows on disk, expected {args.messages}")
                if name not in best or r["seconds"] < best[name]["seconds"]:
                    best[name] = r
                extra = (f", {r['commits']} commits (max {r['max_rows']} rows), puts done at {r['put_seconds']:.2f} s"
                         if name == "fieldgw" else f", {r['commits']} commits")
                line.append(f"{name} {r['rate']:,.0f} msg/s ({r['seconds']:.2f} s{extra})")
            print(f"  rep {rep + 1}: " + "; ".join(line))
    finally:
        watch.uninstall()
        shutil.rmtree(base, ignore_errors=True)

    raw, gw = best["raw"], best["fieldgw"]
    n = args.messages
    print(f"raw sqlite3 executemany x{BATCH} (peer): {raw['rate']:12,.0f} msg/s  ({n} rows in {raw['seconds']:.3f} s, "
          f"{raw['commits']} commits, {raw['seconds'] / raw['commits'] * 1000:.2f} ms each)")
    print(f"fieldgw Outbox.put + group commit:      {gw['rate']:12,.0f} msg/s  ({n} rows in {gw['seconds']:.3f} s, "
          f"{gw['commits']} commits, mean {n / gw['commits']:.0f} / max {gw['max_rows']} rows per commit)")
    print(f"  fieldgw: puts returned after {gw['put_seconds']:.3f} s ({gw['put_seconds'] / n * 1e6:.2f} us per put incl. "
          f"loop turns); writer thread inside commit {gw['commit_s']:.3f} s; after the last commit: "
          f"{gw['pending_after']} pending, stats count {gw['stats_messages']} messages; rows on disk {gw['rows']}")
    print(f"  per message: raw {raw['seconds'] / n * 1e6:.2f} us, fieldgw {gw['seconds'] / n * 1e6:.2f} us")
    ratio = gw["rate"] / raw["rate"]
    ok = ratio >= TARGET_RATIO
    print(f"RATIO fieldgw/raw = {ratio:.3f}  (target >= {TARGET_RATIO}: {'met' if ok else 'NOT met'})")
    return 0


def _disk_of(path: Path) -> str:
    try:
        best = ""
        dev = ""
        for line in Path("/proc/mounts").read_text().splitlines():
            src, mnt, fstype = line.split()[:3]
            if str(path).startswith(mnt) and len(mnt) >= len(best):
                best, dev = mnt, f"{src} {fstype} on {mnt}"
        return dev or "unknown"
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
