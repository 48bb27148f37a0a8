"""Simulated TETRA radio on PEI (serial AT) for hardware-in-the-loop tests.

``python -m hil.tetra --link /tmp/tetra0 --team 2002:30.66,104.06:90:20 --group 9001``
puts a radio (ISSI 2001) on a pty reachable as /tmp/tetra0: AT command set of
docs/serial-protocols.md (echo, CTSP routing, CMGS with SDS-TL, CSQ, CREG,
CNUMF), delivery reports from team radios, LIP short location reports as they
move, LIP reporting control (team radios set and report their basic location
parameters), and a control port for faults (unplug, noise, cut lines, +CME
ERROR) and for changing a team radio's LIP parameters behind the host's back.
Imports nothing of the gateway.
"""
from .cli import main
from .radio import Radio, RadioConfig

__all__ = ["Radio", "RadioConfig", "main"]
