"""A camera's encoder settings as a configuration profile (firmware_configs/onvif/MODEL.yaml).

```yaml
model: ...            # what the profile is for
version: 1            # this file's own version, bumped on every change
encoder:              # the chosen media profile's video encoder (ONVIF Media, ver10)
  codec: H264         # H264 | JPEG | MPEG4 (H.265 needs ONVIF Media2: not covered)
  width: 1280
  height: 720
  fps: 25             # RateControl.FrameRateLimit
  bitrate_kbps: 2048  # RateControl.BitrateLimit
  gov_length: 50      # optional: H264.GovLength (frames between keyframes)
```

Audit reads GetVideoEncoderConfiguration and names each setting that differs;
apply changes those fields in the configuration the camera gave (everything
else kept as it is), sends SetVideoEncoderConfiguration and reads back.
"""

from __future__ import annotations

from typing import Any

from gateway.driver_api import ConfigDiff

CODECS = ("H264", "JPEG", "MPEG4")
_RANGES: dict[str, tuple[int, int]] = {"width": (16, 8192), "height": (16, 8192), "fps": (1, 240),
                                       "bitrate_kbps": (8, 200_000), "gov_length": (1, 1000)}
REQUIRED = ("codec", "width", "height", "fps", "bitrate_kbps")


def check_profile(profile: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    version = profile.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append("version: a whole number from 1 (bump it on every change)")
    enc = profile.get("encoder")
    if enc is None:
        return problems
    if not isinstance(enc, dict):
        return problems + ["encoder: a mapping of codec, width, height, fps, bitrate_kbps (gov_length)"]
    for name in sorted(set(enc) - {*_RANGES, "codec"}):
        problems.append(f"encoder.{name}: unknown setting; known: codec, {', '.join(_RANGES)}")
    for name in REQUIRED:
        if name not in enc:
            problems.append(f"encoder.{name}: missing")
    if "codec" in enc and enc["codec"] not in CODECS:
        problems.append(f"encoder.codec: one of {', '.join(CODECS)} (ONVIF Media ver10), not {enc['codec']!r}")
    for name, (lo, hi) in _RANGES.items():
        v = enc.get(name)
        if name in enc and (isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi):
            problems.append(f"encoder.{name}: a whole number {lo}..{hi}")
    return problems


def wanted(profile: dict[str, Any] | None) -> dict[str, Any]:
    enc = (profile or {}).get("encoder")
    return dict(enc) if isinstance(enc, dict) else {}


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return obj


def _set(obj: Any, name: str, value: Any) -> None:
    if isinstance(obj, dict):
        obj[name] = value
    else:
        setattr(obj, name, value)


def read(config: Any) -> dict[str, Any]:
    """The profile's names for what a VideoEncoderConfiguration holds."""
    def num(v: Any) -> int | None:
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    return {"codec": None if _get(config, "Encoding") is None else str(_get(config, "Encoding")),
            "width": num(_get(config, "Resolution", "Width")), "height": num(_get(config, "Resolution", "Height")),
            "fps": num(_get(config, "RateControl", "FrameRateLimit")),
            "bitrate_kbps": num(_get(config, "RateControl", "BitrateLimit")),
            "gov_length": num(_get(config, "H264", "GovLength"))}


def differences(want: dict[str, Any], have: dict[str, Any]) -> list[ConfigDiff]:
    return [ConfigDiff(f"encoder.{name}", value, have.get(name)) for name, value in want.items() if have.get(name) != value]


def patch(config: Any, want: dict[str, Any]) -> Any:
    """`config` (as the camera sent it) with the profile's values put in; the other fields untouched."""
    if "codec" in want:
        _set(config, "Encoding", want["codec"])
    for name, (parent, field) in {"width": ("Resolution", "Width"), "height": ("Resolution", "Height"),
                                  "fps": ("RateControl", "FrameRateLimit"),
                                  "bitrate_kbps": ("RateControl", "BitrateLimit"),
                                  "gov_length": ("H264", "GovLength")}.items():
        if name not in want:
            continue
        holder = _get(config, parent)
        if holder is None:
            holder = {"FrameRateLimit": want.get("fps", 25), "EncodingInterval": 1,
                      "BitrateLimit": want.get("bitrate_kbps", 2048)} if parent == "RateControl" else (
                {"GovLength": want.get("gov_length", 50), "H264Profile": "Baseline"} if parent == "H264" else {})
            _set(config, parent, holder)
        _set(holder, field, want[name])
    return config
