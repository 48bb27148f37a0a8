"""GB/T 28181 device simulator: a dome camera or body-worn transmitter that registers to a platform.

SIP over UDP/TCP with digest auth, MANSCDP (Keepalive, Catalog, DeviceInfo, DeviceStatus,
DeviceControl PTZCmd, MobilePosition), and live H.264/H.265 as MPEG-PS over RTP on INVITE.
See docs/gb28181-simulator.md. Importing this package does not import PyAV.
"""
from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """``python -m hil.gb28181`` as a function; returns the exit code."""
    from .cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
