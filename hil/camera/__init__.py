"""Video device simulators: an RTSP IP camera and an MPEG-TS/UDP body-worn transmitter.

Both replay a synthetic H.264/H.265 loop encoded once at start-up and insert a per-frame
SEI stamp (counter, send time) that ``find_stamp`` reads back. See docs/camera-simulators.md.
Importing this package (or ``hil.camera.sei``) does not import PyAV.
"""
from __future__ import annotations

from .sei import STAMP_UUID, find_stamp


def main(argv: list[str] | None = None) -> int:
    """``python -m hil.camera`` as a function; returns the exit code (argparse errors raise SystemExit(2))."""
    from .cli import main as cli_main

    return cli_main(argv)


__all__ = ["STAMP_UUID", "find_stamp", "main"]
