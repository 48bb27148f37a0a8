"""Simulated power equipment on Modbus for hardware-in-the-loop tests.

``python -m hil.power epever --link /tmp/epever0 --unit 1 --unit 2 --time-scale 600``
puts EPEVER Tracer charge controllers (slave ids 1 and 2) on one RTU bus on a
pty reachable as /tmp/epever0; ``python -m hil.power victron --listen
127.0.0.1:5020`` serves a Victron GX's system registers (unit 100) on Modbus
TCP. Every unit is a model of its own: PV by time of day, an MPPT charger with
its stages, a battery whose state of charge integrates charge − load, a noisy
load, a drifting temperature. pymodbus does the framing, request decoding and
datastore; a control port injects faults (charger fault, dead unit, broken CRC,
unplugged cable) and reports the model's values. Imports nothing of the gateway.
"""
from .cli import main
from .model import Clock, PowerSystem, Settings, SystemConfig, Values

__all__ = ["Clock", "PowerSystem", "Settings", "SystemConfig", "Values", "main"]
