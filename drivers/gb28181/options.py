"""The kit's options for a GB/T 28181 link (docs/gb28181.md), checked with clear messages.

One link = one SIP listener (`transport: sip://HOST:PORT`, UDP and TCP). On it, the
entry without `device_id` is the **platform** (the listener itself: server id, realm,
timers, media defaults); every entry with `device_id` is a GB/T 28181 device that
registers there (a dome camera, a body-worn transmitter), with its password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gateway.model import ID_PATTERN

GB_ID = re.compile(r"^\d{20}$")
MEDIA_MODES = ("udp", "tcp-passive", "tcp-active")
CHARSETS = ("gb2312", "utf-8")
KINDS = ("camera", "bodycam")
PLATFORM_KEYS = {"server_id", "realm", "password", "heartbeat_s", "heartbeat_misses", "media", "media_ip", "charset",
                 "position_interval_s", "subscribe_expires_s", "idle_close_s", "stream_mode", "max_expires_s"}
DEVICE_KEYS = {"device_id", "password", "media", "channel_kind", "channels", "position_interval_s", "stream_mode"}
_NUMBERS: dict[str, tuple[float, float]] = {"heartbeat_s": (1, 3600), "heartbeat_misses": (1, 20),
                                            "position_interval_s": (0, 3600), "subscribe_expires_s": (30, 86400),
                                            "idle_close_s": (0, 3600), "max_expires_s": (60, 86400)}

Problem = tuple[tuple[str | int, ...], str]


@dataclass(frozen=True)
class Platform:
    server_id: str = "34020000002000000001"
    realm: str = "3402000000"
    password: str | None = None
    heartbeat_s: float = 60.0
    heartbeat_misses: int = 3
    media: str = "udp"
    media_ip: str | None = None
    charset: str = "GB2312"
    position_interval_s: float = 5.0
    subscribe_expires_s: float = 3600.0
    idle_close_s: float = 30.0
    stream_mode: str = "auto"
    max_expires_s: float = 86400.0


@dataclass(frozen=True)
class Camera:
    id: str  # the kit's device id
    kind: str
    name: str
    device_id: str  # the 20-digit GB/T 28181 id
    password: str
    media: str
    channel_kind: str
    position_interval_s: float
    stream_mode: str
    channels: dict[str, str] = field(default_factory=dict)  # channel GB id -> the kit's device id for it


def check_device(options: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    platform = "device_id" not in options
    allowed = PLATFORM_KEYS if platform else DEVICE_KEYS
    for key in sorted(set(options) - allowed):
        hint = ("a platform entry (no device_id) takes " if platform else "a device entry takes ") + ", ".join(sorted(allowed))
        problems.append(((key,), f"unknown option; {hint}"))
    for key in ("server_id", "device_id"):
        if key in options and not GB_ID.match(str(options[key])):
            problems.append(((key,), "a GB/T 28181 id is 20 digits (quote it in YAML)"))
    if "realm" in options and not re.match(r"^[0-9A-Za-z.-]{1,64}$", str(options["realm"])):
        problems.append((("realm",), "a SIP domain: digits (the first 10 of the server id), letters, dots"))
    for key, (lo, hi) in _NUMBERS.items():
        if key in options:
            v = options[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                problems.append(((key,), f"a number from {lo:g} to {hi:g}"))
    if "password" in options and (not isinstance(options["password"], (str, int)) or not str(options["password"])):
        problems.append((("password",), "a non-empty string"))
    if "media" in options and options["media"] not in MEDIA_MODES:
        problems.append((("media",), f"one of {', '.join(MEDIA_MODES)} (tcp-passive: the gateway listens, the device connects)"))
    if "charset" in options and str(options["charset"]).lower() not in CHARSETS:
        problems.append((("charset",), f"one of {', '.join(CHARSETS)}"))
    if "stream_mode" in options and options["stream_mode"] not in ("passthrough", "transcode", "auto"):
        problems.append((("stream_mode",), "passthrough, transcode or auto"))
    if "channel_kind" in options and options["channel_kind"] not in KINDS:
        problems.append((("channel_kind",), "camera or bodycam"))
    channels = options.get("channels")
    if channels is not None:
        if not isinstance(channels, dict):
            problems.append((("channels",), "a mapping of 20-digit channel ids to device ids"))
        else:
            for k, v in channels.items():
                if not GB_ID.match(str(k)) or not isinstance(v, str) or not re.match(ID_PATTERN, v):
                    problems.append((("channels", str(k)), f"{k!r}: {v!r}: a 20-digit channel id to a device id like dome-1-cam"))
    return problems


def check_link(devices: list[dict[str, Any]]) -> list[tuple[int, tuple[str | int, ...], str]]:
    problems: list[tuple[int, tuple[str | int, ...], str]] = []
    platforms = [i for i, d in enumerate(devices) if "device_id" not in (d.get("options") or {})]
    if not platforms:
        problems.append((0, (), "a gb28181 listener needs one platform entry (the one without device_id) on this transport"))
    for i in platforms[1:]:
        problems.append((i, (), f"a second platform entry on one transport (the first is {devices[platforms[0]]['id']}); "
                                "give each device its device_id"))
    platform_password = (devices[platforms[0]].get("options") or {}).get("password") if platforms else None
    seen: dict[str, str] = {}
    for i, d in enumerate(devices):
        opts = d.get("options") or {}
        if "device_id" not in opts:
            continue
        gid = str(opts["device_id"])
        if gid in seen:
            problems.append((i, ("device_id",), f"device_id {gid} is also {seen[gid]}'s"))
        seen[gid] = d["id"]
        if "password" not in opts and platform_password is None:
            problems.append((i, (), "no password: give the device one, or the platform entry a shared one"))
        if d.get("kind") not in (None, *KINDS):
            problems.append((i, (), f"a GB/T 28181 device is kind camera or bodycam, not {d.get('kind')}"))
    return problems


def platform_of(options: dict[str, Any]) -> Platform:
    server_id = str(options.get("server_id", Platform.server_id))
    return Platform(server_id=server_id, realm=str(options.get("realm", server_id[:10])),
                    password=str(options["password"]) if "password" in options else None,
                    heartbeat_s=float(options.get("heartbeat_s", 60)), heartbeat_misses=int(options.get("heartbeat_misses", 3)),
                    media=options.get("media", "udp"), media_ip=options.get("media_ip"),
                    charset=str(options.get("charset", "gb2312")).upper(),
                    position_interval_s=float(options.get("position_interval_s", 5)),
                    subscribe_expires_s=float(options.get("subscribe_expires_s", 3600)),
                    idle_close_s=float(options.get("idle_close_s", 30)), stream_mode=options.get("stream_mode", "auto"),
                    max_expires_s=float(options.get("max_expires_s", 86400)))


def camera_of(dev_id: str, kind: str, name: str, options: dict[str, Any], platform: Platform) -> Camera:
    kind = kind if kind in KINDS else "camera"
    return Camera(id=dev_id, kind=kind, name=name, device_id=str(options["device_id"]),
                  password=str(options.get("password", platform.password or "")),
                  media=options.get("media", platform.media), channel_kind=options.get("channel_kind", kind),
                  position_interval_s=float(options.get("position_interval_s", platform.position_interval_s)),
                  stream_mode=options.get("stream_mode", platform.stream_mode),
                  channels={str(k): str(v) for k, v in (options.get("channels") or {}).items()})
