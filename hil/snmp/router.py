"""The simulated LTE router: interfaces with octet counters, uptime and modem signal. No SNMP here.

Values are computed when read (from the elapsed, time-scaled clock), so nothing polls.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

WRAP32 = 2 ** 32
WRAP64 = 2 ** 64
SIGNAL_PERIOD_S = 300.0  # one slow swing of the simulated signal, in (scaled) seconds


@dataclass
class Interface:
    index: int
    name: str
    descr: str
    if_type: int          # IANAifType: 6 ethernetCsmacd, 244 wwanPP2
    speed_bps: int
    in_bps: float
    out_bps: float
    up: bool = True
    in_octets: float = 0.0   # 64-bit accumulators as of `since`; Counter32 is these mod 2^32
    out_octets: float = 0.0
    since: float = 0.0


@dataclass
class Signal:
    rssi: float = -65.0   # dBm
    rsrp: float = -95.0   # dBm
    sinr: float = 12.0    # dB
    rsrq: float = -10.0   # dB
    swing: tuple[float, float, float, float] = field(default=(3.0, 3.0, 2.0, 1.0))


class Router:
    def __init__(self, time_scale: float = 1.0, name: str = "lte-router",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.time_scale = time_scale
        self.name = name
        self.descr = "HIL LTE Router RX-4G, firmware 2.3.1 (fieldgw simulator)"
        self._clock = clock
        self.boot = self._clock()
        self.signal = Signal()
        self._signal_at = self.boot
        self.interfaces: dict[int, Interface] = {
            1: Interface(1, "eth0", "eth0 LAN", 6, 100_000_000, 800_000.0, 400_000.0),
            2: Interface(2, "wwan0", "wwan0 LTE modem", 244, 150_000_000, 2_000_000.0, 500_000.0),
        }
        for itf in self.interfaces.values():
            itf.since = self.boot
        self.reboots = 0

    # -- time --------------------------------------------------------------------------------

    def scaled(self, since: float) -> float:
        """Simulated seconds between `since` (a clock reading) and now."""
        return max(0.0, self._clock() - since) * self.time_scale

    def uptime_ticks(self) -> int:
        """sysUpTime: hundredths of a second since boot (TimeTicks wrap at 2^32 too)."""
        return int(self.scaled(self.boot) * 100) % WRAP32

    # -- interfaces --------------------------------------------------------------------------

    def interface(self, index: int) -> Interface:
        itf = self.interfaces.get(index)
        if itf is None:
            raise ValueError(f"no interface {index} (have {', '.join(map(str, self.interfaces))})")
        return itf

    def octets(self, itf: Interface) -> tuple[int, int]:
        """(in, out) 64-bit octet counters now; a down link does not count."""
        dt = self.scaled(itf.since) if itf.up else 0.0
        return (int(itf.in_octets + itf.in_bps / 8 * dt) % WRAP64,
                int(itf.out_octets + itf.out_bps / 8 * dt) % WRAP64)

    def _settle(self, itf: Interface) -> None:
        itf.in_octets, itf.out_octets = map(float, self.octets(itf))
        itf.since = self._clock()

    def set_link(self, index: int, up: bool) -> bool:
        """Change ifOperStatus; True if it changed."""
        itf = self.interface(index)
        self._settle(itf)
        changed, itf.up = itf.up != up, up
        return changed

    def set_rate(self, index: int, in_bps: float, out_bps: float) -> None:
        if not (in_bps >= 0 and out_bps >= 0) or math.isinf(in_bps) or math.isinf(out_bps):
            raise ValueError("rates must be finite and >= 0 (bits per second)")
        itf = self.interface(index)
        self._settle(itf)
        itf.in_bps, itf.out_bps = in_bps, out_bps

    def set_counter(self, index: int, value: int) -> None:
        """Both directions' counters (64-bit; the Counter32 is its low 32 bits) to `value`."""
        if not 0 <= value < WRAP64:
            raise ValueError("counter must be 0..2^64-1")
        itf = self.interface(index)
        itf.in_octets = itf.out_octets = float(value)
        itf.since = self._clock()

    def reset(self) -> None:
        """A reboot: sysUpTime and every counter back to 0; links come up."""
        self.boot = self._clock()
        for itf in self.interfaces.values():
            itf.in_octets = itf.out_octets = 0.0
            itf.since = self.boot
            itf.up = True
        self.reboots += 1

    # -- modem signal ------------------------------------------------------------------------

    def set_signal(self, rssi: float, rsrp: float, sinr: float, rsrq: float) -> None:
        self.signal.rssi, self.signal.rsrp, self.signal.sinr, self.signal.rsrq = rssi, rsrp, sinr, rsrq

    def signal_now(self) -> tuple[int, int, int, int]:
        """(RSSI dBm, RSRP dBm, SINR dB, RSRQ dB): the set values plus a slow swing."""
        s = self.signal
        phase = math.sin(2 * math.pi * self.scaled(self._signal_at) / SIGNAL_PERIOD_S)
        base = (s.rssi, s.rsrp, s.sinr, s.rsrq)
        r0, r1, r2, r3 = (round(b + w * phase) for b, w in zip(base, s.swing))
        return r0, r1, r2, r3

    def stats(self) -> dict[str, object]:
        ifs = {}
        for i, itf in self.interfaces.items():
            hc_in, hc_out = self.octets(itf)
            ifs[str(i)] = {"name": itf.name, "up": itf.up, "in_bps": itf.in_bps, "out_bps": itf.out_bps,
                           "in_octets": hc_in, "out_octets": hc_out}
        rssi, rsrp, sinr, rsrq = self.signal_now()
        return {"uptime_ticks": self.uptime_ticks(), "reboots": self.reboots, "time_scale": self.time_scale,
                "interfaces": ifs, "signal": {"rssi": rssi, "rsrp": rsrp, "sinr": sinr, "rsrq": rsrq}}
