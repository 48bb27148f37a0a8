"""Serial parsers: LIP (TETRA PEI), SBD (Iridium AT+SBDRB) and RDSS (BeiDou sentences), against the floor.

For each protocol one byte stream is built with the drivers' own encoders and
cut into 4 KiB chunks (what one serial read returns at most). Three paths
read the same chunks, in the same run:

  floor    the least any reader must do: a plain `bytes.split` (carrying the unfinished tail to
           the next chunk) and the protocol's checksum, nothing else
             LIP   split on CRLF + `binascii.unhexlify` of each hex line; LIP has no checksum of its
                   own (SDS-TL over PEI carries none; the air interface's CRC is checked in the radio)
             SBD   cut the frames by their 2-byte length prefix + the 16-bit sum checksum
             RDSS  split on CRLF + XOR of the bytes between `$` and `*` (`functools.reduce(operator.xor)`),
                   compared with the `*HH`
  parser   the drivers' framing and decoding, as their read loops run them
             LIP   drivers/common/at.py `AtChannel` (the TETRA driver's reader: `_buf += data; _drain()`)
                   handing each `+CTSDSR` pair to the driver's steps up to the decoded report: the
                   `_CTSDSR` header regex, `binascii.unhexlify`, `lip.decode`
             SBD   drivers/iridium_sbd/sbd.py `SbdrbReader` called on a bytearray as AtChannel's binary
                   branch calls it (`used = reader(buf); del buf[:used]`), then `compact_report.decode`
             RDSS  drivers/beidou_rdss/sentence.py `SentenceReader.feed` + `parse`
  driver   the same plus what the driver does with the decoded message, into a collecting context
           (tests/serial_sims.py Collector; no bus):
             LIP   `TetraPeiDriver._unsolicited` (adds the kit lookup and the Position)
             SBD   drivers/iridium_sbd/receive.py `handle_mt` on an IridiumSbdDriver
             RDSS  `BeidouRdssDriver._line` with the BDS-3 dialect (TCI → compact report → Position,
                   PWI → beam power, GNRMC → pynmea2 via the driver's Rnss)

Inputs (default 60,000 messages each; lat/lon move message to message):
  LIP   `+CTSDSR: 12,<calling>,0,2001,0,84\\r\\n<22 hex digits>\\r\\n` from 60 team radios
        (PDUs from drivers.tetra_pei.lip.encode)
  SBD   SBDRB frames (2-byte length, payload, 2-byte checksum) of 0x03 position batches
        (drivers/compact_report.py encode_batch) from 20 units, 1-14 positions each (14 fill the
        270-byte MT limit)
  RDSS  `$BDTCI` (a 0x01 compact position from one of 20 cards), `$BDPWI` (10 beams) and `$GNRMC`,
        in turn (a third each), built with drivers/beidou_rdss/sentence.py `build`

Timing: best of 5 repetitions; within a repetition the three paths run one after the other, in an
order that rotates each repetition. Every path's output is counted and checked against what was built.
RATIO = parser time / floor time per protocol (lower is better; 1.0 would be "free").

    .venv/bin/python -m bench.serial_parsers [--messages N] [--reps R] [--quick]
"""

from __future__ import annotations

import argparse
import binascii
import gc
import math
import operator
import random
import sys
import time
from collections.abc import Callable
from functools import reduce
from typing import Any

from bench._common import machine_note
from drivers import compact_report
from drivers.beidou_rdss import sentence as rdss
from drivers.beidou_rdss.dialects import DialectBds3
from drivers.beidou_rdss.driver import BeidouRdssDriver
from drivers.common.at import AtChannel
from drivers.iridium_sbd import sbd
from drivers.iridium_sbd.driver import IridiumSbdDriver
from drivers.iridium_sbd.receive import handle_mt
from drivers.tetra_pei import driver as tetra_driver
from drivers.tetra_pei import lip
from drivers.tetra_pei.driver import TetraPeiDriver
from gateway.model import Position
from tests.serial_sims import Collector, link_spec

CHUNK = 4096
N_TETRA, N_CARDS, N_SBD = 60, 20, 20
OWN_ISSI = 2001
LAT0, LON0 = 30.6586, 104.0648
Chunks = list[bytes]


def chunked(stream: bytes) -> Chunks:
    return [stream[i:i + CHUNK] for i in range(0, len(stream), CHUNK)]


def _walk(i: int, n: int) -> tuple[float, float]:
    a = i / 500.0
    return LAT0 + 0.01 * math.sin(a + n), LON0 + 0.01 * math.cos(a + n)


# --- the inputs ------------------------------------------------------------------------------
def lip_stream(n: int, rnd: random.Random) -> bytes:
    out = []
    for i in range(n):
        k = i % N_TETRA
        lat, lon = _walk(i, k)
        speed = rnd.choice([None, 0.0, 4.0, 12.0, 36.0, 80.0])
        pdu = lip.encode(lat, lon, speed, rnd.uniform(0, 360) if speed else None, rnd.randint(0, 3), 0, 0)
        out.append(b"+CTSDSR: 12,%d,0,%d,0,84\r\n%s\r\n" % (1001 + k, OWN_ISSI, pdu.hex().upper().encode()))
    return b"".join(out)


def sbd_stream(n: int, rnd: random.Random) -> tuple[bytes, int]:
    out, fixes_total = [], 0
    ts0 = int(time.time()) - 3600
    for i in range(n):
        k = i % N_SBD
        count = 1 + i % 14
        fixes = []
        for j in range(count):
            lat, lon = _walk(i * 14 + j, k)
            fixes.append(compact_report.Fix(ts0 + i * 60 + j * 5, lat, lon, round(rnd.uniform(400, 1500)),
                                            rnd.uniform(0, 3), rnd.uniform(0, 360)))
        data = compact_report.encode_batch(f"ird-{k + 1:02d}", fixes)
        assert len(data) <= sbd.MT_MAX, len(data)
        out.append(sbd.sbdrb_frame(data))
        fixes_total += count
    return b"".join(out), fixes_total


def _nmea_dm(deg: float, width: int) -> str:
    minutes = round(abs(deg) * 60, 5)
    d, m = divmod(minutes, 60)
    return f"{int(d):0{width}d}{m:08.5f}"


def rdss_stream(n: int, rnd: random.Random) -> tuple[bytes, dict[str, int]]:
    out = []
    kinds = {"TCI": 0, "PWI": 0, "RMC": 0}
    t0 = int(time.time()) - 3600
    for i in range(n):
        sec = t0 + i // 3
        hhmmss = time.strftime("%H%M%S", time.gmtime(sec))
        lat, lon = _walk(i, 0)
        if i % 3 == 0:
            k = (i // 3) % N_CARDS
            data = compact_report.encode_short(compact_report.Fix(sec, *_walk(i, k + 1)))
            s = rdss.build("BD", "TCI", [f"{200001 + k:07d}", "0200000", "2", "2", hhmmss, data.hex().upper()])
            kinds["TCI"] += 1
        elif i % 3 == 1:
            powers = [rnd.randint(38, 48), rnd.randint(38, 48), rnd.randint(0, 45)] + [0] * 7
            pairs = [str(x) for b, p in enumerate(powers) for x in (b + 1, p)]
            s = rdss.build("BD", "PWI", [f"{hhmmss}.00", "10", *pairs])
            kinds["PWI"] += 1
        else:
            date = time.strftime("%d%m%y", time.gmtime(sec))
            s = rdss.build("GN", "RMC", [f"{hhmmss}.00", "A", _nmea_dm(lat, 2), "N", _nmea_dm(lon, 3), "E",
                                         f"{rnd.uniform(0, 3):.2f}", f"{rnd.uniform(0, 360):.2f}", date, "", "", "A"])
            kinds["RMC"] += 1
        out.append(s)
    return b"".join(out), kinds


# --- the floors --------------------------------------------------------------------------------
def floor_lip(chunks: Chunks) -> dict[str, int]:
    unhex = binascii.unhexlify
    tail = b""
    pdus = 0
    for chunk in chunks:
        lines = (tail + chunk).split(b"\r\n")
        tail = lines.pop()
        for line in lines:
            if line[:1] != b"+":
                unhex(line)
                pdus += 1
    return {"messages": pdus}


def floor_sbd(chunks: Chunks) -> dict[str, int]:
    frames = bad = 0
    tail = b""
    frm = int.from_bytes
    for chunk in chunks:
        buf = tail + chunk
        i, end = 0, len(buf)
        while i + 2 <= end:
            n = frm(buf[i:i + 2], "big")
            if i + n + 4 > end:
                break
            data = buf[i + 2:i + 2 + n]
            if sum(data) & 0xFFFF != frm(buf[i + 2 + n:i + 4 + n], "big"):
                bad += 1
            frames += 1
            i += n + 4
        tail = buf[i:]
    return {"messages": frames, "bad": bad}


def floor_rdss(chunks: Chunks) -> dict[str, int]:
    xor = operator.xor
    tail = b""
    n = bad = 0
    for chunk in chunks:
        lines = (tail + chunk).split(b"\r\n")
        tail = lines.pop()
        for line in lines:
            if reduce(xor, line[1:-3], 0) != int(line[-2:], 16):
                bad += 1
            n += 1
    return {"messages": n, "bad": bad}


# --- the parsers ---------------------------------------------------------------------------------
def _at_channel(on_urc: Callable[[list[str]], None]) -> AtChannel:
    # the TETRA driver's own AtChannel set-up (drivers/tetra_pei/driver.py serve()); no stream needed for _drain
    return AtChannel(None, None, on_urc, ("+CTSDSR:",), {"+CTSDSR:": 1})  # type: ignore[arg-type]


def parser_lip(chunks: Chunks) -> dict[str, int]:
    header, unhex, decode = tetra_driver._CTSDSR, binascii.unhexlify, lip.decode  # noqa: SLF001
    reports: list[lip.ShortReport] = []
    bad = [0]

    def on_urc(lines: list[str]) -> None:  # _unsolicited's steps up to the decoded report
        m = header.match(lines[0])
        if m is None or len(lines) < 2:
            bad[0] += 1
            return
        pdu = unhex(lines[1].strip())
        if pdu[0] == lip.PID_LIP:
            reports.append(decode(pdu))

    at = _at_channel(on_urc)
    for chunk in chunks:
        at._buf += chunk  # noqa: SLF001 - AtChannel.serve's body, without the await
        at._drain()  # noqa: SLF001
    return {"messages": len(reports), "bad": bad[0] + at.stats["unexpected_lines"]}


def make_tetra() -> tuple[TetraPeiDriver, Collector]:
    ctx = Collector()
    devices: list[tuple[str, str, dict[str, Any]]] = [("radio-gw", "radio", {})]
    devices += [(f"team-{k + 1}", "radio", {"address": str(1001 + k)}) for k in range(N_TETRA)]
    return TetraPeiDriver(link_spec("tetra_pei", "serial:///dev/null?baud=38400", devices), ctx), ctx


def driver_lip(chunks: Chunks) -> dict[str, int]:
    drv, ctx = make_tetra()
    at = _at_channel(drv._unsolicited)  # noqa: SLF001
    for chunk in chunks:
        at._buf += chunk  # noqa: SLF001
        at._drain()  # noqa: SLF001
    positions = sum(1 for m in ctx.messages if isinstance(m, Position))
    return {"messages": drv.counts["lip_reports"], "positions": positions,
            "bad": sum(v for k, v in drv.counts.items() if k.startswith("bad_")) + at.stats["unexpected_lines"]}


def parser_sbd(chunks: Chunks) -> dict[str, int]:
    decode = compact_report.decode
    buf = bytearray()
    frames = fixes = bad = 0
    reader = sbd.SbdrbReader()
    for chunk in chunks:
        buf += chunk
        while buf:
            used = reader(buf)
            if used is None:
                break
            del buf[:used]
            if reader.data is None:
                bad += 1
            else:
                fixes += len(decode(reader.data).fixes)
                frames += 1
            reader = sbd.SbdrbReader()  # one reader per AT+SBDRB answer, as sessions.py makes them
    return {"messages": frames, "positions": fixes, "bad": bad}


def make_iridium() -> tuple[IridiumSbdDriver, Collector]:
    ctx = Collector()
    devices: list[tuple[str, str, dict[str, Any]]] = [("sbd-gw", "satcom", {})]
    devices += [(f"ird-team-{k + 1}", "satcom", {"address": f"ird-{k + 1:02d}"}) for k in range(N_SBD)]
    return IridiumSbdDriver(link_spec("iridium_sbd", "serial:///dev/null?baud=19200", devices), ctx), ctx


def driver_sbd(chunks: Chunks) -> dict[str, int]:
    drv, ctx = make_iridium()
    buf = bytearray()
    bad = 0
    mtmsn = 0
    reader = sbd.SbdrbReader()
    for chunk in chunks:
        buf += chunk
        while buf:
            used = reader(buf)
            if used is None:
                break
            del buf[:used]
            if reader.data is None:
                bad += 1
            else:
                mtmsn += 1
                handle_mt(drv, reader.data, mtmsn)
            reader = sbd.SbdrbReader()
    positions = sum(1 for m in ctx.messages if isinstance(m, Position))
    return {"messages": drv.counts["mt_received"], "positions": positions,
            "bad": bad + drv.counts["mt_undecodable"] + drv.counts["mt_no_sender"]}


def parser_rdss(chunks: Chunks) -> dict[str, int]:
    reader = rdss.SentenceReader()
    parse = rdss.parse
    n = bad = 0
    for chunk in chunks:
        for line in reader.feed(chunk):
            try:
                parse(line)
                n += 1
            except rdss.SentenceError:
                bad += 1
    return {"messages": n, "bad": bad + sum(reader.counts.values())}


def make_beidou() -> tuple[BeidouRdssDriver, Collector]:
    ctx = Collector()
    devices: list[tuple[str, str, dict[str, Any]]] = [("bd-gw", "satcom", {"dialect": "bds3"})]
    devices += [(f"bd-team-{k + 1}", "satcom", {"address": f"{200001 + k:07d}"}) for k in range(N_CARDS)]
    return BeidouRdssDriver(link_spec("beidou_rdss", "serial:///dev/null?baud=115200", devices), ctx), ctx


def driver_rdss(chunks: Chunks) -> dict[str, int]:
    drv, ctx = make_beidou()
    dialect = DialectBds3()
    reader = drv._reader  # noqa: SLF001 - the driver's own SentenceReader, as its _read loop uses it
    line_of = drv._line  # noqa: SLF001
    for chunk in chunks:
        for line in reader.feed(chunk):
            line_of(line, dialect)
    positions = sum(1 for m in ctx.messages if isinstance(m, Position) and m.device != "bd-gw")  # the teams' (TCI)
    bad = sum(v for k, v in drv.counts.items() if k.startswith("bad_") or k in ("handler_errors", "unknown_sentences"))
    return {"messages": drv.counts["sentences"], "positions": positions, "bad": bad + sum(reader.counts.values())}


# --- the benchmark --------------------------------------------------------------------------------
PATHS = ("floor", "parser", "driver")


def run_protocol(name: str, chunks: Chunks, fns: dict[str, Callable[[Chunks], dict[str, int]]], reps: int,
                 expect: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for rep in range(reps):
        order = PATHS[rep % 3:] + PATHS[:rep % 3]
        for path in order:
            gc.collect()
            t0 = time.perf_counter()
            result = fns[path](chunks)
            took = time.perf_counter() - t0
            for key, want in expect.get(path, {}).items():
                if result.get(key) != want:
                    print(f"  WARNING: {name} {path}: {key} = {result.get(key)}, expected {want}")
            if result.get("bad"):
                print(f"  WARNING: {name} {path}: {result['bad']} messages rejected or counted as noise")
            if path not in best or took < best[path]["seconds"]:
                best[path] = {**result, "seconds": took}
    return best


def report(name: str, n: int, nbytes: int, best: dict[str, dict[str, Any]], what: dict[str, str]) -> str:
    floor = best["floor"]["seconds"]
    print(f"{name}: {n:,} messages, {nbytes / 1e6:.2f} MB ({nbytes / n:.1f} B/message)")
    for path in PATHS:
        s = best[path]["seconds"]
        extra = f", {best[path]['positions']:,} positions" if "positions" in best[path] else ""
        ratio = "" if path == "floor" else f"  x{s / floor:.2f} floor"
        print(f"  {path:6s} {n / s:12,.0f} msg/s  {s / n * 1e6:6.2f} us/msg  ({s:.3f} s{extra}){ratio}  {what[path]}")
    parser, driver = best["parser"]["seconds"], best["driver"]["seconds"]
    line = (f"RATIO {name} parser time / floor time = {parser / floor:.2f}  "
            f"(driver time / floor time = {driver / floor:.2f})")
    print(line)
    return line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=60_000, help="messages per protocol (RDSS: a multiple of 3)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smoke run: 15k messages per protocol, best of 3")
    args = ap.parse_args(argv)
    if args.quick:
        args.messages, args.reps = min(args.messages, 15_000), min(args.reps, 3)
    n = args.messages - args.messages % 3
    rnd = random.Random(7)
    lip_bytes = lip_stream(n, rnd)
    sbd_bytes, sbd_fixes = sbd_stream(n, rnd)
    rdss_bytes, kinds = rdss_stream(n, rnd)
    n_tci = kinds["TCI"]
    gc.collect()
    gc.freeze()  # the inputs live for the whole run
    print(f"[{machine_note()}]")
    print(f"Serial parsers: {n:,} messages per protocol fed in {CHUNK} B chunks; best of {args.reps}, "
          "order rotating; RATIO = parser time / floor time (lower is better)")

    lip_chunks = chunked(lip_bytes)
    best = run_protocol("LIP", lip_chunks, {"floor": floor_lip, "parser": parser_lip, "driver": driver_lip}, args.reps,
                        {"floor": {"messages": n}, "parser": {"messages": n}, "driver": {"messages": n, "positions": n}})
    report("LIP", n, len(lip_bytes), best, {
        "floor": "split CRLF + unhexlify (LIP has no checksum)",
        "parser": "AtChannel lines + _CTSDSR regex + unhexlify + lip.decode",
        "driver": "AtChannel + TetraPeiDriver._unsolicited -> Position"})

    sbd_chunks = chunked(sbd_bytes)
    best = run_protocol("SBD", sbd_chunks, {"floor": floor_sbd, "parser": parser_sbd, "driver": driver_sbd}, args.reps,
                        {"floor": {"messages": n}, "parser": {"messages": n, "positions": sbd_fixes},
                         "driver": {"messages": n, "positions": sbd_fixes}})
    report("SBD", n, len(sbd_bytes), best, {
        "floor": "length-prefix slicing + 16-bit sum",
        "parser": "SbdrbReader + compact_report.decode",
        "driver": "SbdrbReader + receive.handle_mt -> Positions"})

    rdss_chunks = chunked(rdss_bytes)
    best = run_protocol("RDSS", rdss_chunks, {"floor": floor_rdss, "parser": parser_rdss, "driver": driver_rdss},
                        args.reps, {"floor": {"messages": n}, "parser": {"messages": n},
                                    "driver": {"messages": n, "positions": n_tci}})
    report("RDSS", n, len(rdss_bytes), best, {
        "floor": "split CRLF + XOR checksum",
        "parser": "SentenceReader.feed + sentence.parse",
        "driver": "SentenceReader + BeidouRdssDriver._line (bds3, pynmea2 for RMC)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
