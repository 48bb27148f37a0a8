"""The ONVIF camera simulator's model: PTZ space URIs and limits, the encoder/profile/preset records, the
camera's configuration, and the small xs:duration, time and XML helpers the service handlers share.
"""
from __future__ import annotations

import datetime as dt
import math
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any

from .soap import TDS, TPTZ, TRT, attr, esc, invalid_arg
from .video import EncoderSettings, VideoSource

SPACES = "http://www.onvif.org/ver10/tptz"
PT_POSITION = f"{SPACES}/PanTiltSpaces/PositionGenericSpace"
Z_POSITION = f"{SPACES}/ZoomSpaces/PositionGenericSpace"
PT_TRANSLATION = f"{SPACES}/PanTiltSpaces/TranslationGenericSpace"
Z_TRANSLATION = f"{SPACES}/ZoomSpaces/TranslationGenericSpace"
PT_VELOCITY = f"{SPACES}/PanTiltSpaces/VelocityGenericSpace"
Z_VELOCITY = f"{SPACES}/ZoomSpaces/VelocityGenericSpace"
PT_SPEED = f"{SPACES}/PanTiltSpaces/GenericSpeedSpace"
Z_SPEED = f"{SPACES}/ZoomSpaces/ZoomGenericSpeedSpace"
HIL_NS = "urn:fieldgw:hil:onvif"   # this simulator's own (vendor-specific) extension elements

RESOLUTIONS = [(1280, 720), (960, 540), (640, 360), (320, 180)]
GOV_RANGE = (5, 150)
FPS_RANGE = (1, 30)
QUALITY_RANGE = (0, 10)
BITRATE_RANGE = (64, 8192)
MAX_PRESETS = 255
MAX_PTZ_TIMEOUT_S = 60.0
SERVICE_PATHS = {"/onvif/device_service": TDS, "/onvif/media_service": TRT, "/onvif/ptz_service": TPTZ}
OPEN_OPERATIONS = {(TDS, "GetSystemDateAndTime")}  # answered without authentication
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d*)?)S)?)?$")


def parse_duration(text: str) -> float:
    """xs:duration in days/hours/minutes/seconds (PT1S, PT0.5S, P0DT0H1M): seconds."""
    m = _DURATION.match(text.strip())
    if not m or text.strip() in ("P", "PT"):
        raise invalid_arg("InvalidArgs", f"not a duration: {text!r}")
    d, h, mi, s = m.groups()
    return int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


def duration(seconds: float) -> str:
    return f"PT{seconds:g}S"


def utc_text(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def b(v: bool) -> str:
    return "true" if v else "false"


@dataclass
class Encoder:
    token: str
    name: str
    width: int
    height: int
    fps: int
    bitrate_kbps: int
    gov_length: int
    quality: float = 5.0
    profile: str = "Baseline"
    session_timeout_s: float = 60.0
    changes: int = 0

    def settings(self) -> EncoderSettings:
        return EncoderSettings(self.width, self.height, self.fps, self.bitrate_kbps, self.gov_length)

    def xml(self, tag: str) -> str:
        return (f"<{tag} token={attr(self.token)}><tt:Name>{esc(self.name)}</tt:Name><tt:UseCount>1</tt:UseCount>"
                f"<tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>{self.width}</tt:Width>"
                f"<tt:Height>{self.height}</tt:Height></tt:Resolution><tt:Quality>{self.quality:g}</tt:Quality>"
                f"<tt:RateControl><tt:FrameRateLimit>{self.fps}</tt:FrameRateLimit>"
                f"<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>{self.bitrate_kbps}</tt:BitrateLimit>"
                f"</tt:RateControl><tt:H264><tt:GovLength>{self.gov_length}</tt:GovLength>"
                f"<tt:H264Profile>{self.profile}</tt:H264Profile></tt:H264>"
                f"<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address>"
                f"</tt:Address><tt:Port>0</tt:Port><tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
                f"<tt:SessionTimeout>{duration(self.session_timeout_s)}</tt:SessionTimeout></{tag}>")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["encoding"] = "H264"
        return d


@dataclass
class Profile:
    token: str
    name: str
    encoder: Encoder
    video: VideoSource


@dataclass
class Preset:
    token: str
    name: str
    pan: float
    tilt: float
    zoom: float

    def xml(self) -> str:
        return (f"<tptz:Preset token={attr(self.token)}><tt:Name>{esc(self.name)}</tt:Name><tt:PTZPosition>"
                f"<tt:PanTilt x=\"{self.pan:.6g}\" y=\"{self.tilt:.6g}\" space=\"{PT_POSITION}\"/>"
                f"<tt:Zoom x=\"{self.zoom:.6g}\" space=\"{Z_POSITION}\"/></tt:PTZPosition></tptz:Preset>")


@dataclass
class CameraConfig:
    host: str                      # where the HTTP server listens
    advertise: str                 # the address in XAddrs and stream URIs
    port: int = 0
    users: dict[str, str] = field(default_factory=lambda: {"admin": "admin123"})
    max_skew_s: float = 5.0
    auth_fail_status: int = 400
    clock_offset_s: float = 0.0
    manufacturer: str = "fieldgw-hil"
    model: str = "SIM-PTZ-DOME"
    firmware: str = "1.0.0"
    serial: str = "SIM0001"
    ptz_timeout_s: float = 10.0
    gps: tuple[float, float, float] | None = (30.6586, 104.0648, 500.0)
    reboot_s: float = 5.0
    endpoint_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))


def _ns(el: ET.Element) -> str:
    return el.tag[1:].partition("}")[0]


def _range(tag: str, lo: float, hi: float) -> str:
    return f"<tt:{tag}><tt:Min>{lo:g}</tt:Min><tt:Max>{hi:g}</tt:Max></tt:{tag}>"


def _float(text: str | None, fault: str) -> float:
    try:
        v = float(text or "")
    except ValueError:
        raise invalid_arg(fault, f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise invalid_arg(fault, f"{text!r} is not a finite number")
    return v

