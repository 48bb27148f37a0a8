"""MAVLink 2 ArduCopter-like simulator for hardware-in-the-loop tests.

``python -m hil.uav --udp-listen 127.0.0.1:14550`` or ``hil.uav.main(argv)``.
Written from the MAVLink spec and ArduPilot behaviour, independent of the
gateway's own MAVLink driver.
"""
from .cli import main

__all__ = ["main"]
