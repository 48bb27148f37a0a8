"""Iridium 9603 SBD modem simulator for hardware-in-the-loop tests, on a pty.

``python -m hil.iridium --link /tmp/iridium0 --session-delay 0.1-0.3`` prints one JSON line
(``{"ready": true, "link": ..., "control": [host, port], "imei": ...}``) once the link exists.
Written from docs/serial-protocols.md ("Iridium SBD"); imports nothing of the gateway.
"""
from .atcmd import ModemConfig
from .cli import main
from .modem import Modem
from .network import Network
from .port import ModemPort
from .sbd import checksum, parse_sbdrb, sbdrb_frame, with_checksum

__all__ = ["Modem", "ModemConfig", "ModemPort", "Network", "checksum", "main", "parse_sbdrb", "sbdrb_frame",
           "with_checksum"]
