"""Field kit manifests (YAML), validated with pydantic, every problem with its line.

`load_kit()` returns a Kit or raises KitError holding *all* problems found,
each as `FILE:LINE: message`: YAML syntax, schema (pydantic), unknown
drivers, duplicate ids, transport URLs a driver cannot open, missing
profile files and driver-specific options.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway import driver_registry
from gateway.model import ID_PATTERN

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROFILES_DIR = PROJECT_ROOT / "firmware_configs"

Loc = tuple[str | int, ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerConfig(_Strict):
    url: str
    ca_file: str | None = None
    client_id: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("broker url must be mqtt://[user:pass@]host[:port] or mqtts://…")
        if not parts.hostname:
            raise ValueError("broker url has no host")
        try:
            parts.port
        except ValueError as exc:
            raise ValueError(f"broker url has a bad port: {exc}") from None
        return v


class HttpConfig(_Strict):
    """The HTTP API and console: HTTPS when a certificate and its key are given (paths relative to the kit file)."""

    tls_cert: str | None = None
    tls_key: str | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> "HttpConfig":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key (or neither, for plain HTTP)")
        return self


class MqttClient(_Strict):
    """A command-centre MQTT user: `fieldgw mqtt-acl` gives it a password and broker ACLs by role;
    with any listed, the gateway takes commands and dispatches only from operators named here."""

    user: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    role: Literal["viewer", "operator", "admin"]


class GroundStation(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    url: str


class UplinkConfig(_Strict):
    """One backhaul (LTE, satellite, …) to a broker; the best healthy one carries the traffic."""

    name: str = Field(pattern=ID_PATTERN)
    broker: BrokerConfig | None = None  # default: the kit's broker (or --mqtt, or the embedded one)
    budget_kbps: float | None = Field(default=None, gt=0)
    priority: int = 0  # lower is preferred; ties keep the order written
    health_from: list[str] = Field(default_factory=list)  # devices whose link reports decide this uplink's health

    @field_validator("broker", mode="before")
    @classmethod
    def _broker_shorthand(cls, v: Any) -> Any:
        return {"url": v} if isinstance(v, str) else v


class OutboxConfig(_Strict):
    """The store-and-forward outbox (docs/architecture.md)."""

    cap_mb: float = Field(default=512, gt=0)
    thin_every_s: float | None = Field(default=None, gt=0)  # keep one position per device per N s of backlog
    thin_after_s: float = Field(default=60, ge=0)  # … once the position backlog is older than this


class DeviceConfig(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    driver: str
    kind: Literal["uav", "camera", "bodycam", "radio", "satcom", "power", "network"] | None = None
    name: str | None = None
    transport: str
    profile: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    dispatch_mqtt: bool = False  # reads its orders over IP at {root}/devices/{id}/orders (a team tablet)
    dispatch_via: list[str] = Field(default_factory=list)  # the team's other terminals that also carry its orders
    # at most one telemetry message per this many seconds to the uplink (newest value of each name wins);
    # None: every message, as the driver publishes it (a 64 kbit/s satellite uplink wants a few seconds here)
    telemetry_every_s: float | None = Field(default=None, gt=0, le=3600)


class RecordConfig(_Strict):
    segment_s: float = Field(default=300, ge=1)
    max_age_h: float = Field(default=72, gt=0)
    max_total_mb: float = Field(default=10240, gt=0)


class StreamEntry(_Strict):
    """A video stream the gateway ingests and relays (media/)."""

    id: str = Field(pattern=ID_PATTERN)
    url: str  # rtsp://, rtmp://, udp://@:5000 (MPEG-TS), srt:// (through ffmpeg), or a file for tests
    device: str | None = None
    mode: Literal["passthrough", "transcode", "auto"] = "auto"
    bitrate_kbps: int = Field(default=1500, gt=50, le=50_000)  # when transcoding
    on_demand: bool = False
    idle_close_s: float = Field(default=30.0, ge=0)
    options: dict[str, str] = Field(default_factory=dict)  # FFmpeg demuxer/protocol options
    record: RecordConfig | None = None


class MediaConfig(_Strict):
    ice_addresses: list[str] | None = None  # host candidates offered to browsers; default: every interface + 127.0.0.1
    advertise: dict[str, str] = Field(default_factory=dict)  # 1:1 NAT: local address → the address browsers reach


class SimulatorConfig(_Strict):
    """A hil/ simulator that `fieldgw demo` starts as its own process."""

    kind: str
    args: list[str] = Field(default_factory=list)


class Kit(_Strict):
    kit: str = Field(pattern=ID_PATTERN)
    name: str | None = None
    broker: BrokerConfig | None = None
    uplinks: list[UplinkConfig] = Field(default_factory=list)
    ground_stations: list[GroundStation] = Field(default_factory=list)
    devices: list[DeviceConfig] = Field(default_factory=list)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    streams: list[StreamEntry] = Field(default_factory=list)
    media: MediaConfig = Field(default_factory=MediaConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    mqtt_clients: list[MqttClient] = Field(default_factory=list)
    command_timeout_s: float = Field(default=15.0, gt=0, le=600)
    profiles_dir: str | None = None
    simulators: list[SimulatorConfig] = Field(default_factory=list)

    @field_validator("broker", mode="before")
    @classmethod
    def _broker_shorthand(cls, v: Any) -> Any:
        return {"url": v} if isinstance(v, str) else v


@dataclass
class LoadedKit:
    kit: Kit
    path: Path
    profiles: dict[str, dict[str, Any]]  # device id -> loaded profile

    def device_kind(self, dev: DeviceConfig) -> str:
        return dev.kind or driver_registry.load(dev.driver).default_kind


class KitError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Lines:
    """Maps a location in the parsed document to the line it came from."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.map: dict[Loc, int] = {}
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, loc: Loc) -> None:
        self.map[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = loc + (str(key.value),)
                self._walk(value, sub)
                self.map[sub + ("__key__",)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, loc + (i,))

    def line(self, loc: Loc) -> int:
        loc = tuple(loc)
        while loc and loc not in self.map:
            loc = loc[:-1]
        return self.map.get(loc, 1)


def load_kit(path: str | Path) -> LoadedKit:
    path = Path(path)
    problems: list[tuple[int, str]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KitError([f"{path}:1: cannot read kit: {exc.strerror or exc}"]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise KitError([f"{path}:{line}: YAML syntax: {getattr(exc, 'problem', exc)}"]) from None
    lines = _Lines(root)
    if not isinstance(data, dict):
        raise KitError([f"{path}:1: a kit manifest is a YAML mapping with at least `kit:` and `devices:`"])
    problems.extend(_expand_variables(data, lines))
    kit: Kit | None = None
    try:
        kit = Kit.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, lines, ()))
    # Device checks run even when another part of the kit is wrong: all problems at once.
    devices: list[tuple[int, DeviceConfig]] = []
    raw_devices = data.get("devices")
    for i, raw in enumerate(raw_devices if isinstance(raw_devices, list) else []):
        try:
            devices.append((i, DeviceConfig.model_validate(raw)))
        except ValidationError:
            pass  # already reported by the whole-kit validation
    profiles_dir = data.get("profiles_dir") if isinstance(data.get("profiles_dir"), str) else None
    profiles, more = _check_devices(devices, data, profiles_dir, path, lines)
    problems.extend(more)
    if problems or kit is None:
        raise KitError(_format(path, problems))
    return LoadedKit(kit=kit, path=path, profiles=profiles)


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_variables(data: dict[str, Any], lines: _Lines) -> list[tuple[int, str]]:
    """`${NAME}` / `${NAME:-default}` from the environment in transports, stream URLs and simulator args.

    The demo kit names its simulated serial devices this way (`fieldgw demo`
    points FIELDGW_DEMO_DEV at a directory under its data dir).
    """
    problems: list[tuple[int, str]] = []

    def expand(value: Any, loc: Loc) -> Any:
        if not isinstance(value, str):
            return value

        def one(m: re.Match[str]) -> str:
            found = os.environ.get(m.group(1), m.group(2))
            if found is None:
                problems.append((lines.line(loc), f"{'.'.join(map(str, loc))}: environment variable {m.group(1)} is not set (and no ${{{m.group(1)}:-default}})"))
                return m.group(0)
            return found

        return _VARIABLE.sub(one, value)

    for section, key in (("devices", "transport"), ("streams", "url")):
        for i, item in enumerate(data.get(section) or []):
            if isinstance(item, dict) and key in item:
                item[key] = expand(item[key], (section, i, key))
    for i, sim in enumerate(data.get("simulators") or []):
        if isinstance(sim, dict) and isinstance(sim.get("args"), list):
            sim["args"] = [expand(a, ("simulators", i, "args", j)) for j, a in enumerate(sim["args"])]
    return problems


def _pydantic_problems(exc: ValidationError, lines: _Lines, prefix: Loc) -> list[tuple[int, str]]:
    out = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "kit"
        line = lines.line(loc + ("__key__",)) if err["type"] == "extra_forbidden" else lines.line(loc)
        out.append((line, f"{where}: {err['msg']}"))
    return out


def _format(path: Path, problems: list[tuple[int, str]]) -> list[str]:
    seen: set[tuple[int, str]] = set()
    out = []
    for line, msg in sorted(problems, key=lambda p: p[0]):
        if (line, msg) not in seen:
            seen.add((line, msg))
            out.append(f"{path}:{line}: {msg}")
    return out


def _unknown_driver(i: int, driver: str) -> str:
    known = ", ".join(sorted(driver_registry.available())) or "none"
    return f"devices.{i}.driver: unknown driver {driver!r} (known: {known})"


def _profile_dirs(profiles_dir: str | None, path: Path) -> list[Path]:
    if profiles_dir:
        return [(path.parent / profiles_dir).resolve()]
    return list(dict.fromkeys([(path.parent.parent / "firmware_configs").resolve(), DEFAULT_PROFILES_DIR]))


def _check_devices(devices: list[tuple[int, DeviceConfig]], data: dict[str, Any], profiles_dir: str | None,
                   path: Path, lines: _Lines) -> tuple[dict[str, dict[str, Any]], list[tuple[int, str]]]:
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for i, dev in devices:
        line = lines.line(("devices", i, "id"))
        if dev.id in seen:
            problems.append((line, f"devices.{i}.id: duplicate device id {dev.id!r} (first on line {seen[dev.id]})"))
        else:
            seen[dev.id] = line
    stations = data.get("ground_stations")
    for i, gs in enumerate(stations if isinstance(stations, list) else []):
        if not isinstance(gs, dict):
            continue
        if gs.get("id") in seen:
            problems.append((lines.line(("ground_stations", i, "id")), f"ground_stations.{i}.id: {gs['id']!r} is also a device id"))
        if isinstance(gs.get("url"), str):
            for _, msg in _check_transport(gs["url"], schemes=("udp", "udp-listen", "tcp")):
                problems.append((lines.line(("ground_stations", i, "url")), f"ground_stations.{i}.url: {msg}"))
    uplinks = data.get("uplinks")
    names: set[str] = set()
    for i, up in enumerate(uplinks if isinstance(uplinks, list) else []):
        if not isinstance(up, dict):
            continue
        if up.get("name") in names:
            problems.append((lines.line(("uplinks", i, "name")), f"uplinks.{i}.name: duplicate uplink {up['name']!r}"))
        names.add(up.get("name"))
        for j, dev in enumerate(up.get("health_from") or []):
            if dev not in seen:
                problems.append((lines.line(("uplinks", i, "health_from", j)), f"uplinks.{i}.health_from.{j}: no device {dev!r} in this kit"))
    for i, dev in devices:
        for j, other in enumerate(dev.dispatch_via):
            if other not in seen or other == dev.id:
                problems.append((lines.line(("devices", i, "dispatch_via", j)),
                                 f"devices.{i}.dispatch_via.{j}: {other!r} is not another device of this kit"))
    streams = data.get("streams")
    stream_ids: set[str] = set()
    for i, st in enumerate(streams if isinstance(streams, list) else []):
        if not isinstance(st, dict):
            continue
        if st.get("id") in stream_ids:
            problems.append((lines.line(("streams", i, "id")), f"streams.{i}.id: duplicate stream {st['id']!r}"))
        stream_ids.add(st.get("id"))
        if st.get("device") is not None and st["device"] not in seen:
            problems.append((lines.line(("streams", i, "device")), f"streams.{i}.device: no device {st['device']!r} in this kit"))
    profiles: dict[str, dict[str, Any]] = {}
    links: dict[tuple[str, str], list[int]] = {}
    by_index = dict(devices)
    dirs = _profile_dirs(profiles_dir, path)
    for i, dev in devices:
        where: Loc = ("devices", i)
        if dev.driver not in driver_registry.available():
            problems.append((lines.line(where + ("driver",)), _unknown_driver(i, dev.driver)))
            continue
        cls = driver_registry.load(dev.driver)
        scheme = urlsplit(dev.transport).scheme
        if scheme not in cls.transport_schemes:
            problems.append((lines.line(where + ("transport",)),
                             f"devices.{i}.transport: {dev.transport!r}: the {dev.driver} driver opens "
                             f"{', '.join(s + '://' for s in cls.transport_schemes)}"))
        else:
            for _, msg in _check_transport(dev.transport):
                problems.append((lines.line(where + ("transport",)), f"devices.{i}.transport: {msg}"))
        for sub, msg in cls.check_device(dev.options, dev.transport):
            problems.append((lines.line(where + ("options",) + sub), f"devices.{i}.options{''.join('.' + str(s) for s in sub)}: {msg}"))
        if dev.profile:
            found = next((d / dev.profile for d in dirs if (d / dev.profile).is_file()), None)
            if found is None:
                problems.append((lines.line(where + ("profile",)),
                                 f"devices.{i}.profile: no profile file {dev.profile!r} in {' or '.join(str(d) for d in dirs)}"))
            else:
                try:
                    loaded = yaml.safe_load(found.read_text(encoding="utf-8"))
                    if not isinstance(loaded, dict):
                        raise ValueError("a profile is a YAML mapping")
                    profiles[dev.id] = loaded
                    for msg in cls.check_profile(loaded):
                        problems.append((lines.line(where + ("profile",)), f"devices.{i}.profile: {found.name}: {msg}"))
                except (yaml.YAMLError, ValueError) as exc:
                    problems.append((lines.line(where + ("profile",)), f"devices.{i}.profile: {found}: {exc}"))
        links.setdefault((dev.driver, dev.transport), []).append(i)
    for (driver, _transport), members in links.items():
        cls = driver_registry.load(driver)
        for j, sub, msg in cls.check_link([by_index[m].model_dump() for m in members]):
            i = members[j]
            problems.append((lines.line(("devices", i, "options") + sub), f"devices.{i}.options{''.join('.' + str(s) for s in sub)}: {msg}"))
    return profiles, problems


def _check_transport(url: str, schemes: tuple[str, ...] | None = None) -> list[tuple[Loc, str]]:
    parts = urlsplit(url)
    if schemes is not None and parts.scheme not in schemes:
        return [((), f"{url!r}: scheme must be one of {', '.join(s + '://' for s in schemes)}")]
    if parts.scheme == "serial":
        if not parts.path:
            return [((), f"{url!r}: a serial transport names a device path, e.g. serial:///dev/ttyUSB0?baud=57600")]
        return []
    if not parts.hostname:
        return [((), f"{url!r} has no host")]
    try:
        port = parts.port
    except ValueError:
        return [((), f"{url!r} has a bad port")]
    if port is None:
        return [((), f"{url!r} has no port")]
    return []
