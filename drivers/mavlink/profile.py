"""A vehicle's configuration profile (firmware_configs/mavlink/*.yaml), as data.

Flight modes, the mode used for `hold`, and the stream rates set with
SET_MESSAGE_INTERVAL come from the profile, not from code per autopilot.
Without a profile, the ArduCopter defaults below apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

ARDUCOPTER_MODES: dict[str, int] = {
    "STABILIZE": 0, "ACRO": 1, "ALT_HOLD": 2, "AUTO": 3, "GUIDED": 4, "LOITER": 5, "RTL": 6, "CIRCLE": 7,
    "LAND": 9, "DRIFT": 11, "SPORT": 13, "FLIP": 14, "AUTOTUNE": 15, "POSHOLD": 16, "BRAKE": 17, "THROW": 18,
    "AVOID_ADSB": 19, "GUIDED_NOGPS": 20, "SMART_RTL": 21, "FLOWHOLD": 22, "FOLLOW": 23, "ZIGZAG": 24,
    "SYSTEMID": 25, "AUTOROTATE": 26, "AUTO_RTL": 27,
}


@dataclass(frozen=True)
class VehicleProfile:
    modes: dict[str, int] = field(default_factory=lambda: dict(ARDUCOPTER_MODES))
    hold_mode: str = "LOITER"
    stream_rates_hz: dict[str, float] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)  # parameters `fieldgw config apply` sets and audit checks

    def mode_name(self, custom_mode: int) -> str:
        for name, number in self.modes.items():
            if number == custom_mode:
                return name
        return f"MODE_{custom_mode}"

    def stream_intervals_us(self) -> list[tuple[int, int]]:
        """(message id, interval µs; -1 disables) for SET_MESSAGE_INTERVAL."""
        out = []
        for name, hz in self.stream_rates_hz.items():
            msg_id = getattr(mavlink2, f"MAVLINK_MSG_ID_{name}")
            out.append((msg_id, -1 if hz <= 0 else int(1_000_000 / hz)))
        return out


def check_profile(data: dict[str, Any]) -> list[str]:
    problems = []
    modes = data.get("modes", {})
    if not isinstance(modes, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in modes.items()):
        problems.append("profile `modes` maps mode names to custom mode numbers")
        modes = {}
    hold = data.get("hold_mode", "LOITER")
    if (modes or ARDUCOPTER_MODES).get(hold) is None:
        problems.append(f"profile hold_mode {hold!r} is not one of its modes")
    rates = data.get("stream_rates_hz", {})
    if not isinstance(rates, dict):
        problems.append("profile `stream_rates_hz` maps message names to rates")
        rates = {}
    for name, hz in rates.items():
        if not hasattr(mavlink2, f"MAVLINK_MSG_ID_{name}"):
            problems.append(f"profile stream_rates_hz: unknown MAVLink message {name!r}")
        if not isinstance(hz, (int, float)) or hz > 50:
            problems.append(f"profile stream_rates_hz.{name}: a rate in Hz (<= 50; 0 disables)")
    params = data.get("params", {})
    if not isinstance(params, dict):
        problems.append("profile `params` maps parameter names to values")
        params = {}
    for name, value in params.items():
        if not (isinstance(name, str) and 0 < len(name) <= 16 and name.replace("_", "").isalnum() and name.isupper()):
            problems.append(f"profile params: {name!r} is not a MAVLink parameter name (1-16 of A-Z 0-9 _)")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"profile params.{name}: a number")
    return problems


def load_profile(data: dict[str, Any] | None) -> VehicleProfile:
    if not data:
        return VehicleProfile()
    return VehicleProfile(
        modes=dict(data.get("modes") or ARDUCOPTER_MODES),
        hold_mode=data.get("hold_mode", "LOITER"),
        stream_rates_hz={k: float(v) for k, v in (data.get("stream_rates_hz") or {}).items()},
        params={k: float(v) for k, v in (data.get("params") or {}).items()},
    )
