"""Simulated ONVIF Profile S dome camera with PTZ: SOAP 1.2 device, media (ver10) and PTZ (ver20) services
with WS-UsernameToken checking, RTSP video from hil.camera child processes, optional WS-Discovery and a
control port. See docs/onvif-nmea-simulators.md. Imports nothing of the gateway; importing this package
does not import PyAV (the video children do).
"""
from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """``python -m hil.onvif`` as a function; returns the exit code."""
    from .cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
