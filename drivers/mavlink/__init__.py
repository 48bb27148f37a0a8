"""MAVLink 2 driver: vehicles on UDP/TCP/serial links, ground-station routing, signing."""

import os

os.environ.setdefault("MAVLINK20", "1")
