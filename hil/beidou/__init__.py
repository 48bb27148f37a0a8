"""BeiDou RDSS short-message terminal simulator (2.1 and BDS-3 dialects) on a pty.

Written from docs/serial-protocols.md ("BeiDou RDSS short message"), separately
from drivers/beidou_rdss, so that a test of one against the other can fail.
Imports nothing of the gateway. ``python -m hil.beidou --help``.
"""

from .cli import main

__all__ = ["main"]
