"""The modem's end of the serial cable: a PtyPort whose unplug reaches the modem.

``power`` (default): the 9603 is powered over the USB cable (RockBLOCK-style), so pulling it
restarts the modem: settings back to power-up (echo on, ring alerts off), MO and MT buffers
empty, a running command lost; MOMSN is kept (non-volatile). ``serial``: only the USB-serial
adapter is pulled; the modem keeps running and its state, and answers into the void meanwhile.
"""
from __future__ import annotations

from pathlib import Path

from ..serialport import PtyPort
from .modem import Modem

UNPLUG_MODES = ("power", "serial")


class ModemPort(PtyPort):
    def __init__(self, link: Path, modem: Modem, unplug_mode: str = "power") -> None:
        if unplug_mode not in UNPLUG_MODES:
            raise ValueError(f"unplug mode must be one of {UNPLUG_MODES}")
        super().__init__(link, modem.feed)
        self.modem = modem
        self.unplug_mode = unplug_mode

    def plug(self) -> None:
        super().plug()
        if not self.modem.powered:
            self.modem.power_on(self.write)

    def unplug_now(self) -> None:
        if self.unplug_mode == "power":
            self.modem.power_off()
        else:
            self.modem.clear_input()
        super().unplug_now()
