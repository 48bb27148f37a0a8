"""Dispatch fan-out: one `POST /api/v1/dispatch` to 100 targets over TETRA, BeiDou and Iridium, against each channel's floor.

One real gateway process (`python -m gateway.cli run KIT`) and three simulators, each its own process
(hil/, serial devices on ptys):

  TETRA    `python -m hil.tetra --report-delay 0.05` with 60 team radios (`--team ISSI:LAT,LON`, their LIP
           reports every 5 s run throughout, as in the field); the kit lists them as tetra_pei devices
  BeiDou   `python -m hil.beidou --dialect bds3 --interval 1 --level 3`; 20 team cards in the kit
           (7-digit addresses; the terminal accepts any)
  Iridium  `python -m hil.iridium --session-delay 0.05-0.2 --seed 7`; 20 team units in the kit

One order (56 bytes GB18030, 88 bytes UCS-2: one part on every channel) to all 100 team devices by id.
The clock starts just before the POST. Each simulator stamps what it takes from the gateway (`received`:
`ts`, wall clock of the same host): a TETRA SDS when the radio accepts `AT+CMGS`, a BeiDou message when
the terminal accepts `$CCTCQ`, an Iridium MO message when the session that carries it completes.
Fan-out time = the last receipt on any channel.

Each channel's floor, measured in the same run:
  TETRA    the simulated radio needs, per SDS, its 50 ms before `+CMGS` (hil/tetra/radio.py SEND_DELAY_S)
           and `--report-delay` until the delivery report the driver waits for, so the n-th receipt cannot
           come before (n-1) x (send delay + report delay). The pty moves bytes at once; on a real
           38,400-baud line the bytes of each exchange (command + PDU, answer, report) would add their
           serial time, printed alongside, as is n x report delay + serial time.
  BeiDou   (n-1) x the card's service interval: one message per interval. (The driver adds a margin of
           its own, drivers/beidou_rdss/sender.py MARGIN_S = 0.25 s per message; printed, not in the floor.)
  Iridium  the sum of the `duration_s` of the MO sessions that carried the order (`stats` session_log);
           one session at a time.
RATIO per channel = completion time / floor (1.0 = the gateway adds nothing); "over/msg" = (completion -
floor) per message. Total: fan-out time / the largest floor. Also counted: the `dispatch/acks` MQTT
messages and bytes the fan-out caused (a paho subscriber on the gateway's embedded broker) and the
gateway's CPU seconds.

    .venv/bin/python -m bench.dispatch_fanout [--tetra N] [--beidou N] [--iridium N] [--quick] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from bench._common import GatewayProcess, cpu_seconds, machine_note, write_kit
from drivers.beidou_rdss.sender import MARGIN_S
from hil.tetra.radio import SEND_DELAY_S
from tests.serial_sims import SimProcess

ORDER = "全体注意：18:00前到二号高地集结 Rally at hill 2 by 18:00"
TETRA_BAUD = 38400
OWN_ISSI, OWN_CARD = 2001, "0200001"
LAT0, LON0 = 30.6586, 104.0648
BITS_PER_BYTE = 10  # 8N1


def tetra_ids(n: int) -> list[tuple[str, int]]:
    return [(f"tetra-{k + 1:03d}", 1001 + k) for k in range(n)]


def beidou_ids(n: int) -> list[tuple[str, str]]:
    return [(f"bd-{k + 1:03d}", f"{200101 + k:07d}") for k in range(n)]


def iridium_ids(n: int) -> list[tuple[str, str]]:
    return [(f"ird-{k + 1:03d}", f"ird-{k + 1:03d}") for k in range(n)]


def build_kit(path: Path, dev: Path, n_tetra: int, n_beidou: int, n_iridium: int) -> Path:
    tetra = f"serial://{dev}/tetra?baud={TETRA_BAUD}"
    beidou = f"serial://{dev}/beidou?baud=115200"
    iridium = f"serial://{dev}/iridium?baud=19200"
    devices: list[dict[str, Any]] = [{"id": "radio-gw", "driver": "tetra_pei", "transport": tetra,
                                      "options": {"poll_s": 10}}]
    devices += [{"id": i, "driver": "tetra_pei", "transport": tetra, "options": {"address": str(a)}}
                for i, a in tetra_ids(n_tetra)]
    devices.append({"id": "bd-gw", "driver": "beidou_rdss", "transport": beidou, "options": {"dialect": "bds3"}})
    devices += [{"id": i, "driver": "beidou_rdss", "transport": beidou, "options": {"address": a}}
                for i, a in beidou_ids(n_beidou)]
    devices.append({"id": "sbd-gw", "driver": "iridium_sbd", "transport": iridium})
    devices += [{"id": i, "driver": "iridium_sbd", "transport": iridium, "options": {"address": a}}
                for i, a in iridium_ids(n_iridium)]
    return write_kit(path, devices)


def start_sims(dev: Path, n_tetra: int, report_delay: float, lip_interval: float, interval: int,
               session_delay: str) -> dict[str, SimProcess]:
    sims: dict[str, SimProcess] = {}
    try:
        teams = []
        for k, (_, issi) in enumerate(tetra_ids(n_tetra)):
            teams += ["--team", f"{issi}:{LAT0 + 0.001 * (k % 10):.4f},{LON0 + 0.001 * (k // 10):.4f}"]
        sims["tetra"] = SimProcess("hil.tetra", ["--link", str(dev / "tetra"), "--issi", str(OWN_ISSI),
                                                 "--report-delay", str(report_delay),
                                                 "--lip-interval", str(lip_interval), *teams])
        sims["beidou"] = SimProcess("hil.beidou", ["--link", str(dev / "beidou"), "--dialect", "bds3",
                                                   "--address", OWN_CARD, "--level", "3", "--interval", str(interval)])
        sims["iridium"] = SimProcess("hil.iridium", ["--link", str(dev / "iridium"), "--session-delay",
                                                     session_delay, "--seed", "7"])
    except BaseException:
        for s in sims.values():
            s.stop()
        raise
    return sims


def post_json(gw: GatewayProcess, path: str, body: Any) -> tuple[int, Any]:
    req = urllib.request.Request(gw.base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **gw.headers})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read())


def wait_online(gw: GatewayProcess, ids: list[str], timeout: float = 30.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        devs = {d["id"]: d.get("online") for d in gw.get_json("/api/v1/devices")}
        if all(devs.get(i) for i in ids):
            return time.monotonic() - t0
        time.sleep(0.1)
    raise TimeoutError(f"modems not online after {timeout} s: {ids}")


class AckCounter:
    """A paho subscriber on the embedded broker's `dispatch/acks`: how many messages, how many bytes."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages = 0
        self.bytes = 0
        self.largest = 0
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise TimeoutError("could not subscribe to dispatch/acks")

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages += 1
            self.bytes += len(msg.payload)
            self.largest = max(self.largest, len(msg.payload))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# --- what each simulator took ----------------------------------------------------------------
def tetra_receipts(sim: SimProcess, since: float) -> list[dict[str, Any]]:
    return [m for m in sim.control("received", 10)["messages"] if m["ts"] >= since and m.get("text") == ORDER]


def beidou_receipts(sim: SimProcess, since: float) -> list[dict[str, Any]]:
    want = ORDER.encode("gb18030").hex().upper()
    return [m for m in sim.control("received", 10)["messages"] if m["ts"] >= since and m["hex"].upper() == want]


def iridium_receipts(sim: SimProcess, since: float) -> list[dict[str, Any]]:
    out = []
    for m in sim.control("received", 10)["messages"]:
        data = bytes.fromhex(m["hex"])
        if m["ts"] < since or data[:1] != b"\x04":
            continue
        to = data[2:2 + data[1]].decode("ascii", "replace")
        if data[2 + data[1]:].decode("utf-8", "replace") == ORDER:
            out.append({**m, "to": to})
    return out


def tetra_serial_bytes(m: dict[str, Any]) -> int:
    """Bytes on the line for one SDS: AT+CMGS + hex PDU + Ctrl-Z, `+CMGS: 0,<ref>` + OK, the +CTSDSR report."""
    command = len(f"AT+CMGS={m['to']},{m['bits']}\r\n") + len(m["pdu_hex"]) + 1
    answer = len(f"\r\n+CMGS: 0,{m.get('ref') or 0}\r\n\r\nOK\r\n")
    report = len(f"\r\n+CTSDSR: 12,{m['to']},0,{OWN_ISSI},0,32\r\n") + 8 + 2  # SDS-REPORT: 4 bytes, 8 hex digits
    return command + answer + report


def gaps(ts: list[float]) -> str:
    if len(ts) < 2:
        return "–"
    d = [b - a for a, b in zip(ts, ts[1:])]
    d.sort()
    return f"median {d[len(d) // 2] * 1000:.0f} ms, max {d[-1] * 1000:.0f} ms"


# --- the benchmark ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tetra", type=int, default=60, help="TETRA team radios (default 60)")
    ap.add_argument("--beidou", type=int, default=20, help="BeiDou team cards (default 20)")
    ap.add_argument("--iridium", type=int, default=20, help="Iridium team units (default 20)")
    ap.add_argument("--report-delay", type=float, default=0.05, help="TETRA delivery report delay, s (default 0.05)")
    ap.add_argument("--lip-interval", type=float, default=5.0, help="TETRA teams' LIP reports, s (default 5; 0 = none)")
    ap.add_argument("--interval", type=int, default=1, help="BeiDou service interval, whole s (default 1)")
    ap.add_argument("--session-delay", default="0.05-0.2", help="Iridium session delay range, s (default 0.05-0.2)")
    ap.add_argument("--timeout", type=float, default=100.0, help="give up waiting for receipts after this, s")
    ap.add_argument("--quick", action="store_true", help="smoke run: 30 + 5 + 5 targets (~20 s)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (kit, gateway log)")
    args = ap.parse_args(argv)
    if args.quick:
        args.tetra, args.beidou, args.iridium = min(args.tetra, 30), min(args.beidou, 5), min(args.iridium, 5)
    n = {"tetra": args.tetra, "beidou": args.beidou, "iridium": args.iridium}
    print(f"[{machine_note()}]")
    print(f"Dispatch fan-out: one order to {sum(n.values())} targets: {n['tetra']} TETRA (report delay "
          f"{args.report_delay:g} s, LIP every {args.lip_interval:g} s), {n['beidou']} BeiDou (BDS-3, level 3, "
          f"interval {args.interval} s), {n['iridium']} Iridium (sessions {args.session_delay} s)")

    base = Path(tempfile.mkdtemp(prefix="fieldgw-bench-dispatch-"))
    dev = base / "dev"
    dev.mkdir()
    sims: dict[str, SimProcess] = {}
    gw: GatewayProcess | None = None
    acks: AckCounter | None = None
    try:
        t_start = time.monotonic()
        sims = start_sims(dev, n["tetra"], args.report_delay, args.lip_interval, args.interval, args.session_delay)
        kit = build_kit(base / "kit.yaml", dev, n["tetra"], n["beidou"], n["iridium"])
        gw = GatewayProcess(kit, base / "data")
        up = wait_online(gw, ["radio-gw", "bd-gw", "sbd-gw"])
        print(f"  gateway ready and modems online {time.monotonic() - t_start:.1f} s after start "
              f"(modems {up:.1f} s after health)")
        targets = [i for i, _ in tetra_ids(n["tetra"])] + [i for i, _ in beidou_ids(n["beidou"])] + \
                  [i for i, _ in iridium_ids(n["iridium"])]
        mqtt_port = int(gw.proc.args[gw.proc.args.index("--mqtt-port") + 1])  # type: ignore[union-attr]
        acks = AckCounter(mqtt_port, "fieldgw/v1/bench/dispatch/acks")
        time.sleep(1.0)  # let the start-up chatter (card read, first polls) settle
        cpu0 = cpu_seconds(gw.proc.pid)

        t0 = time.time()
        status, body = post_json(gw, "/api/v1/dispatch", {"text": ORDER, "targets": targets})
        t_resp = time.time() - t0
        if status != 202:
            raise RuntimeError(f"dispatch refused: {status} {body}")
        split = [d for d in body["deliveries"] if d["detail"] or d["status"] == "failed"]
        if split:
            print(f"  WARNING: {len(split)} deliveries not a plain single part: {split[:3]}")
        channels: dict[str, int] = {}
        for d in body["deliveries"]:
            channels[d["channel"]] = channels.get(d["channel"], 0) + 1
        print(f"  POST answered 202 in {t_resp * 1000:.0f} ms; channels {channels}")

        fetch = {"tetra": tetra_receipts, "beidou": beidou_receipts, "iridium": iridium_receipts}
        got: dict[str, list[dict[str, Any]]] = {k: [] for k in fetch}
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            for k, f in fetch.items():
                if len(got[k]) < n[k]:
                    got[k] = f(sims[k], t0)
            if all(len(got[k]) >= n[k] for k in fetch):
                break
            time.sleep(0.25)
        t_poll_end = time.time()
        record: dict[str, Any] = {}
        while time.monotonic() < deadline:
            record = gw.get_json(f"/api/v1/dispatch/{body['id']}")
            if record.get("done"):
                break
            time.sleep(0.25)
        cpu = cpu_seconds(gw.proc.pid) - cpu0
        session_log = [s for s in sims["iridium"].control("stats", 10)["session_log"] if s["ts"] >= t0 - 0.01]
        tetra_stats = sims["tetra"].control("stats", 10)
        bd_stats = sims["beidou"].control("stats", 10)
        time.sleep(0.5)  # the last dispatch/acks messages
    finally:
        if acks is not None:
            acks.close()
        if gw is not None:
            gw.stop()
        for s in sims.values():
            s.stop()
        if args.keep:
            print(f"  kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    # --- figures ---------------------------------------------------------------------------------
    missing = {k: n[k] - len(got[k]) for k in got if len(got[k]) < n[k]}
    if missing:
        print(f"  WARNING: receipts missing after {args.timeout:g} s: {missing}")
    dupes = {k: len(v) - len({m['to'] for m in v}) for k, v in got.items()}
    if any(dupes.values()):
        print(f"  WARNING: duplicate receipts: {dupes}")

    ts = {k: sorted(m["ts"] - t0 for m in v) for k, v in got.items()}
    active = [k for k in ("tetra", "beidou", "iridium") if ts[k]]
    if not active:
        print("  nothing was received")
        return 1
    done = {k: ts[k][-1] for k in active}
    delivered: dict[str, float] = {}
    for d in record.get("deliveries", []):
        key = {"tetra_sds": "tetra", "beidou": "beidou", "sbd": "iridium"}.get(d["channel"])
        if key is not None and d["status"] == "delivered":
            delivered[key] = max(delivered.get(key, 0.0), d["ts"] / 1000.0 - t0)
    statuses: dict[str, int] = {}
    for d in record.get("deliveries", []):
        statuses[d["status"]] = statuses.get(d["status"], 0) + 1

    cycle = SEND_DELAY_S + args.report_delay
    serial_s = sum(tetra_serial_bytes(m) for m in got["tetra"]) * BITS_PER_BYTE / TETRA_BAUD
    mo_sessions = [s for s in session_log if s.get("mo_length")]
    floors = {"tetra": max(0, n["tetra"] - 1) * cycle,
              "beidou": max(0, n["beidou"] - 1) * args.interval,
              "iridium": sum(s["duration_s"] or 0.0 for s in mo_sessions)}
    floor_text = {
        "tetra": f"(n-1) x ({SEND_DELAY_S * 1000:.0f} ms send + {args.report_delay * 1000:.0f} ms report)",
        "beidou": f"(n-1) x {args.interval} s service interval",
        "iridium": f"sum of {len(mo_sessions)} MO sessions' duration_s"}
    total = max(done.values())
    print(f"  all receipts in after {total:.2f} s; dispatch record done: {record.get('done')} {statuses}; "
          f"gateway CPU {cpu:.2f} s over {t_poll_end - t0:.1f} s")
    print(f"  {'channel':8s} {'n':>3s} {'first':>7s} {'last (done)':>11s} {'delivered':>9s} {'floor':>7s}  "
          f"{'ratio':>5s} {'over/msg':>8s}  gaps between receipts; floor")
    ratios = {}
    for k in active:
        ratios[k] = done[k] / floors[k] if floors[k] > 0 else float("nan")
        over = (done[k] - floors[k]) / max(1, len(ts[k]) - (0 if k == "iridium" else 1)) * 1000
        print(f"  {k:8s} {len(ts[k]):3d} {ts[k][0]:6.2f}s {done[k]:10.2f}s {delivered.get(k, float('nan')):8.2f}s "
              f"{floors[k]:6.2f}s  {ratios[k]:5.2f} {over:6.1f}ms  {gaps(ts[k])}; {floor_text[k]}")
    if ts["tetra"]:
        line_floor = n["tetra"] * args.report_delay + serial_s
        print(f"  TETRA on a real {TETRA_BAUD}-baud line: the {len(got['tetra'])} exchanges' bytes take {serial_s:.2f} s "
              f"(8N1; the pty does not pace them); n x report delay + serial = {line_floor:.2f} s "
              f"(ratio {done['tetra'] / line_floor:.2f})")
    if ts["beidou"] and n["beidou"] > 1:
        paced = (n["beidou"] - 1) * (args.interval + MARGIN_S)
        print(f"  BeiDou: the driver waits {MARGIN_S:g} s beyond the interval (drivers/beidou_rdss/sender.py MARGIN_S); "
              f"with it the floor is {paced:.2f} s (ratio {done['beidou'] / paced:.3f})")
    if mo_sessions:
        print(f"  Iridium: {len(session_log)} sessions in the window ({len(mo_sessions)} with an MO message), "
              f"MO codes {sorted({s['mo_status'] for s in mo_sessions})}, mean session "
              f"{floors['iridium'] / len(mo_sessions) * 1000:.0f} ms")
    if acks is not None:
        print(f"  dispatch/acks: {acks.messages} MQTT messages, {acks.bytes / 1e6:.2f} MB (largest {acks.largest / 1e3:.1f} kB): "
              f"whole when new and done, only the changed deliveries (at most every 0.5 s) between")
    refused = {k: v for k, v in bd_stats.items() if k.startswith("refused_")}
    print(f"  BeiDou terminal: {bd_stats.get('sends_accepted', 0)} sends accepted, refused {refused or 'none'}; "
          f"TETRA radio: {tetra_stats.get('sds_to_host', 0)} SDS to the host (LIP + reports), "
          f"{tetra_stats.get('held', 0)} held")
    worst = max(active, key=lambda k: floors[k])
    for k in active:
        print(f"RATIO {k} completion / floor = {ratios[k]:.2f}  ({done[k]:.2f} s vs {floors[k]:.2f} s)")
    if floors[worst] > 0:
        print(f"RATIO total fan-out / largest floor ({worst}) = {total / floors[worst]:.2f}  "
              f"({total:.2f} s vs {floors[worst]:.2f} s)")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
