"""Link profiles: bandwidth, one-way latency and jitter, and the named presets.

A profile is always complete: a field that is not given takes its default
(unlimited bandwidth, no latency, no jitter). A named profile can be the base
that given fields override (``{base: satcom, latency_ms: 300}`` in YAML,
``satcom latency_ms=300`` on the control port).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any


class ProfileError(ValueError):
    """A profile that cannot be used; the message says which field and why."""


@dataclass(frozen=True)
class Profile:
    """Shaping applied to each direction of the link.

    ``bandwidth_kbps`` is kbit/s (1000 bit/s) per direction, shared by all
    connections in that direction; ``None`` means unlimited. ``latency_ms`` is
    the one-way delay added in each direction (a round trip gets it twice);
    each chunk's delay is drawn uniformly from ``latency_ms ± jitter_ms``
    (never below 0) and chunks are never reordered.
    """

    bandwidth_kbps: float | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0

    def __post_init__(self) -> None:
        bw = self.bandwidth_kbps
        if bw == 0 and not isinstance(bw, bool):
            object.__setattr__(self, "bandwidth_kbps", None)  # 0 means unlimited, as in tc
            bw = None
        if bw is not None and (isinstance(bw, bool) or not isinstance(bw, (int, float)) or not bw > 0 or math.isinf(bw)):
            raise ProfileError(f"bandwidth_kbps: must be a number > 0 (or 0/absent for unlimited), got {bw!r}")
        for name in ("latency_ms", "jitter_ms"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or math.isinf(v):
                raise ProfileError(f"{name}: must be a number >= 0, got {v!r}")

    @property
    def bytes_per_s(self) -> float | None:
        return None if self.bandwidth_kbps is None else self.bandwidth_kbps * 1000.0 / 8.0

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)

    def describe(self) -> str:
        bw = "unlimited" if self.bandwidth_kbps is None else f"{self.bandwidth_kbps:g} kbit/s"
        jit = f" ±{self.jitter_ms:g} ms" if self.jitter_ms else ""
        return f"{bw}, {self.latency_ms:g} ms{jit} one-way"


PROFILES: dict[str, Profile] = {
    "satcom": Profile(bandwidth_kbps=64, latency_ms=600, jitter_ms=50),
    "bgan": Profile(bandwidth_kbps=256, latency_ms=800),
    "lte-poor": Profile(bandwidth_kbps=1000, latency_ms=120, jitter_ms=40),
    "lan": Profile(),
}

FIELDS = ("bandwidth_kbps", "latency_ms", "jitter_ms")


def named(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ProfileError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})") from None


def _number(name: str, value: Any) -> float | None:
    if name == "bandwidth_kbps" and value in (None, 0):
        return None  # 0 or null: unlimited
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProfileError(f"{name}: must be a number, got {value!r}")
    return float(value)


def with_overrides(base: Profile, overrides: Mapping[str, Any]) -> Profile:
    """``base`` with the given fields replaced; unknown fields are an error."""
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise ProfileError(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    values: dict[str, Any] = {k: _number(k, v) for k, v in overrides.items()}
    return replace(base, **values)


def from_value(value: Any) -> Profile:
    """A profile from YAML: a name, or a mapping with an optional ``base`` name."""
    if isinstance(value, str):
        return named(value)
    if not isinstance(value, Mapping):
        raise ProfileError(f"must be a profile name or a mapping, got {type(value).__name__}")
    fields = dict(value)
    base_name = fields.pop("base", None)
    if base_name is not None and not isinstance(base_name, str):
        raise ProfileError(f"base: must be a profile name, got {base_name!r}")
    base = named(base_name) if base_name is not None else Profile()
    return with_overrides(base, fields)


def from_text(text: str) -> Profile:
    """A profile from ``[NAME] key=value ...`` (the control port's syntax)."""
    words = text.split()
    base = Profile()
    if words and "=" not in words[0]:
        base = named(words.pop(0))
    overrides: dict[str, Any] = {}
    for word in words:
        key, sep, raw = word.partition("=")
        if not sep:
            raise ProfileError(f"expected key=value, got {word!r}")
        if raw.lower() in ("unlimited", "none", "null"):
            overrides[key] = None
            continue
        try:
            overrides[key] = float(raw)
        except ValueError:
            raise ProfileError(f"{key}: must be a number, got {raw!r}") from None
    return with_overrides(base, overrides)
