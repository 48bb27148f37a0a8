"""Runs every fieldgw benchmark, one after the other (each its own process), and prints their results.

    .venv/bin/python -m bench.run_all [--quick]

Each benchmark prints its absolute figures and a RATIO against a peer measured
in the same run; the summary at the end repeats the RATIO lines. Exit status 0
unless a benchmark crashed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench._common import PYTHON, ROOT, machine_note

BENCHMARKS = ["bench.mavlink_ingest", "bench.position_latency", "bench.gcs_routing", "bench.outbox_enqueue",
              "bench.outbox_replay", "bench.video_relay", "bench.serial_parsers", "bench.dispatch_fanout",
              "bench.modbus_poll", "bench.console_load"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a ~10 s smoke run of each benchmark")
    args = ap.parse_args(argv)
    extra = ["--quick"] if args.quick else []
    print(f"fieldgw benchmarks ({machine_note()}){' --quick' if args.quick else ''}", flush=True)
    summary: list[str] = []
    failed = 0
    for module in BENCHMARKS:
        print(f"\n=== {module} ===", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run([PYTHON, "-m", module, *extra], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        print(proc.stdout, end="", flush=True)
        took = time.monotonic() - t0
        ratios = [line.strip() for line in proc.stdout.splitlines() if line.startswith("RATIO")]
        if proc.returncode != 0:
            failed += 1
            summary.append(f"{module}: FAILED (exit {proc.returncode}) after {took:.0f} s")
        else:
            summary.extend(f"{module} ({took:.0f} s): {r}" for r in ratios or ["no RATIO line"])
    print("\n=== summary ===")
    for line in summary:
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
