"""Simulated body-worn transmitter's GPS output: NMEA 0183 sentences (RMC, VTG, GGA, optionally GSA/GSV)
for a team walking a path, over TCP (client or server), UDP or a pty serial line, with faults on a
control port. See docs/onvif-nmea-simulators.md. Stdlib only; imports nothing of the gateway.
"""
from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """``python -m hil.nmea`` as a function; returns the exit code."""
    from .cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
