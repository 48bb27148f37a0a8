"""fieldgw benchmarks: each prints a ratio against a peer measured in the same run.

    .venv/bin/python -m bench.mavlink_ingest     # parser + driver vs plain pymavlink
    .venv/bin/python -m bench.position_latency   # simulator → gateway → Mosquitto → subscriber
    .venv/bin/python -m bench.gcs_routing        # ground-station routing vs MAVProxy
    .venv/bin/python -m bench.run_all            # all three (add --quick for a smoke run)

Results and the machine they were measured on: docs/benchmarks.md.
"""
