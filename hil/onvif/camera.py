"""The simulated ONVIF Profile S camera: its state and every SOAP operation it answers.

Services and where they are served (a request for another service's operation at a path is refused
with ter:UnknownAction, so a client that posts to the wrong XAddr finds out):

* /onvif/device_service (tds, ver10): GetSystemDateAndTime (no authentication), SetSystemDateAndTime,
  GetCapabilities, GetServices, GetServiceCapabilities, GetDeviceInformation, GetScopes, GetGeoLocation,
  SystemReboot
* /onvif/media_service (trt, ver10): GetProfiles, GetProfile, GetStreamUri, GetVideoSources,
  GetVideoEncoderConfigurations, GetVideoEncoderConfiguration, SetVideoEncoderConfiguration,
  GetVideoEncoderConfigurationOptions, GetServiceCapabilities
* /onvif/ptz_service (tptz, ver20): ContinuousMove, Stop, AbsoluteMove, RelativeMove, GotoPreset,
  SetPreset, RemovePreset, GetPresets, GotoHomePosition, SetHomePosition, GetStatus, GetNodes, GetNode,
  GetConfigurations, GetConfiguration, GetConfigurationOptions, GetServiceCapabilities

Other operations of these namespaces answer env:Receiver ter:ActionNotSupported; anything else
env:Sender ter:UnknownAction.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .ptz import Ptz
from .soap import (TDS, TPTZ, TRT, TT, SoapFault, attr, esc, invalid_arg, local, q, receiver, sender)
from .video import EncoderSettings, VideoSource
from .wsse import Auth

log = logging.getLogger(__name__)

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


Handler = Callable[[ET.Element], Awaitable[str]]


class Camera:
    def __init__(self, cfg: CameraConfig, profiles: list[Profile]) -> None:
        self.cfg = cfg
        self.profiles = {p.token: p for p in profiles}
        self.auth = Auth(dict(cfg.users), cfg.max_skew_s, cfg.auth_fail_status)
        self.ptz = Ptz()
        self.presets: dict[str, Preset] = {}
        self.home = (0.0, 0.0, 0.0)
        self.clock_offset_s = cfg.clock_offset_s
        self.gps = cfg.gps
        self.requests: dict[str, int] = {}
        self.faults: dict[str, int] = {}
        self.reboots = 0
        self.rebooting = False
        self.on_reboot: Callable[[float], None] | None = None  # set by the server: take HTTP down
        self._tasks: set[asyncio.Task[Any]] = set()
        self.ops: dict[tuple[str, str], Handler] = {
            (TDS, "GetSystemDateAndTime"): self.get_system_date_and_time,
            (TDS, "SetSystemDateAndTime"): self.set_system_date_and_time,
            (TDS, "GetCapabilities"): self.get_capabilities,
            (TDS, "GetServices"): self.get_services,
            (TDS, "GetServiceCapabilities"): self.device_service_capabilities,
            (TDS, "GetDeviceInformation"): self.get_device_information,
            (TDS, "GetScopes"): self.get_scopes,
            (TDS, "GetGeoLocation"): self.get_geo_location,
            (TDS, "SystemReboot"): self.system_reboot,
            (TRT, "GetProfiles"): self.get_profiles,
            (TRT, "GetProfile"): self.get_profile,
            (TRT, "GetStreamUri"): self.get_stream_uri,
            (TRT, "GetVideoSources"): self.get_video_sources,
            (TRT, "GetVideoEncoderConfigurations"): self.get_video_encoder_configurations,
            (TRT, "GetVideoEncoderConfiguration"): self.get_video_encoder_configuration,
            (TRT, "SetVideoEncoderConfiguration"): self.set_video_encoder_configuration,
            (TRT, "GetVideoEncoderConfigurationOptions"): self.get_video_encoder_configuration_options,
            (TRT, "GetServiceCapabilities"): self.media_service_capabilities,
            (TPTZ, "ContinuousMove"): self.continuous_move,
            (TPTZ, "Stop"): self.stop,
            (TPTZ, "AbsoluteMove"): self.absolute_move,
            (TPTZ, "RelativeMove"): self.relative_move,
            (TPTZ, "GotoPreset"): self.goto_preset,
            (TPTZ, "SetPreset"): self.set_preset,
            (TPTZ, "RemovePreset"): self.remove_preset,
            (TPTZ, "GetPresets"): self.get_presets,
            (TPTZ, "GotoHomePosition"): self.goto_home,
            (TPTZ, "SetHomePosition"): self.set_home,
            (TPTZ, "GetStatus"): self.get_status,
            (TPTZ, "GetNodes"): self.get_nodes,
            (TPTZ, "GetNode"): self.get_node,
            (TPTZ, "GetConfigurations"): self.get_configurations,
            (TPTZ, "GetConfiguration"): self.get_configuration,
            (TPTZ, "GetConfigurationOptions"): self.get_configuration_options,
            (TPTZ, "GetServiceCapabilities"): self.ptz_service_capabilities,
        }

    # -- plumbing -------------------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        """The camera's clock (UTC), which may be off by `clock_offset_s`."""
        return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.clock_offset_s)

    def xaddr(self, path: str) -> str:
        host = f"[{self.cfg.advertise}]" if ":" in self.cfg.advertise else self.cfg.advertise
        return f"http://{host}:{self.cfg.port}{path}"

    async def call(self, path: str, namespace: str, operation: str, header: ET.Element | None,
                   body: ET.Element) -> str:
        """The response body for one operation, or raises SoapFault."""
        service = SERVICE_PATHS.get(path)
        handler = self.ops.get((namespace, operation))
        if handler is None:
            if namespace in (TDS, TRT, TPTZ):
                raise receiver("ActionNotSupported", reason=f"{operation} is not implemented by this device")
            raise sender("UnknownAction", reason=f"unknown action {{{namespace}}}{operation}")
        if namespace != service:
            raise sender("UnknownAction", reason=f"{operation} is not served at {path}")
        if (namespace, operation) not in OPEN_OPERATIONS:
            self.auth.check(header, self.now())
        self.requests[operation] = self.requests.get(operation, 0) + 1
        return await handler(body)

    def _profile(self, body: ET.Element, tag: str = "ProfileToken", ns: str | None = None) -> Profile:
        token = self._text(body, tag, ns)
        if token is None or token not in self.profiles:
            raise invalid_arg("NoProfile", f"no media profile {token!r}")
        return self.profiles[token]

    @staticmethod
    def _text(body: ET.Element, tag: str, ns: str | None = None) -> str | None:
        el = body.find(q(ns or _ns(body), tag))
        return None if el is None else (el.text or "").strip()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- device service -------------------------------------------------------------------------------

    async def get_system_date_and_time(self, body: ET.Element) -> str:
        t = self.now()
        dtxml = (f"<tt:Time><tt:Hour>{t.hour}</tt:Hour><tt:Minute>{t.minute}</tt:Minute><tt:Second>{t.second}"
                 f"</tt:Second></tt:Time><tt:Date><tt:Year>{t.year}</tt:Year><tt:Month>{t.month}</tt:Month>"
                 f"<tt:Day>{t.day}</tt:Day></tt:Date>")
        return ("<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>Manual</tt:DateTimeType>"
                "<tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>"
                f"<tt:UTCDateTime>{dtxml}</tt:UTCDateTime><tt:LocalDateTime>{dtxml}</tt:LocalDateTime>"
                "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>")

    async def set_system_date_and_time(self, body: ET.Element) -> str:
        kind = self._text(body, "DateTimeType")
        utc = body.find(q(TDS, "UTCDateTime"))
        if kind == "Manual":
            if utc is None:
                raise invalid_arg("InvalidDateTime", "Manual needs UTCDateTime")
            try:
                vals = {name: int(utc.findtext(f"{{{TT}}}{part}/{{{TT}}}{name}") or "")
                        for part, names in (("Date", ("Year", "Month", "Day")), ("Time", ("Hour", "Minute", "Second")))
                        for name in names}
                target = dt.datetime(vals["Year"], vals["Month"], vals["Day"], vals["Hour"], vals["Minute"],
                                     vals["Second"], tzinfo=dt.timezone.utc)
            except ValueError:
                raise invalid_arg("InvalidDateTime", "not a valid date and time") from None
            self.clock_offset_s = (target - dt.datetime.now(dt.timezone.utc)).total_seconds()
        elif kind == "NTP":
            self.clock_offset_s = 0.0  # the simulated NTP server is this host's clock
        else:
            raise invalid_arg("InvalidArgs", f"DateTimeType {kind!r}")
        return "<tds:SetSystemDateAndTimeResponse/>"

    def _device_caps(self) -> str:
        return (f"<tt:XAddr>{self.xaddr('/onvif/device_service')}</tt:XAddr>"
                "<tt:Network><tt:IPFilter>false</tt:IPFilter><tt:ZeroConfiguration>false</tt:ZeroConfiguration>"
                "<tt:IPVersion6>false</tt:IPVersion6><tt:DynDNS>false</tt:DynDNS></tt:Network>"
                "<tt:System><tt:DiscoveryResolve>false</tt:DiscoveryResolve><tt:DiscoveryBye>false</tt:DiscoveryBye>"
                "<tt:RemoteDiscovery>false</tt:RemoteDiscovery><tt:SystemBackup>false</tt:SystemBackup>"
                "<tt:SystemLogging>false</tt:SystemLogging><tt:FirmwareUpgrade>false</tt:FirmwareUpgrade>"
                "<tt:SupportedVersions><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tt:SupportedVersions>"
                "</tt:System>")

    async def get_capabilities(self, body: ET.Element) -> str:
        cats = [(c.text or "").strip() for c in body.findall(q(TDS, "Category"))] or ["All"]
        parts = []
        for cat in ("Device", "Media", "PTZ"):
            if "All" not in cats and cat not in cats:
                continue
            if cat == "Device":
                parts.append(f"<tt:Device>{self._device_caps()}</tt:Device>")
            elif cat == "Media":
                parts.append(f"<tt:Media><tt:XAddr>{self.xaddr('/onvif/media_service')}</tt:XAddr>"
                             "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
                             "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
                             "</tt:StreamingCapabilities></tt:Media>")
            else:
                parts.append(f"<tt:PTZ><tt:XAddr>{self.xaddr('/onvif/ptz_service')}</tt:XAddr></tt:PTZ>")
        unknown = [c for c in cats if c not in ("All", "Device", "Media", "PTZ")]
        if unknown:
            raise receiver("ActionNotSupported", "NoSuchService", reason=f"no {unknown[0]} service on this device")
        return f"<tds:GetCapabilitiesResponse><tds:Capabilities>{''.join(parts)}</tds:Capabilities></tds:GetCapabilitiesResponse>"

    def _device_service_caps(self) -> str:
        return ("<tds:Capabilities><tds:Network IPFilter=\"false\" ZeroConfiguration=\"false\" IPVersion6=\"false\" "
                "DynDNS=\"false\"/><tds:Security TLS1.0=\"false\" TLS1.1=\"false\" TLS1.2=\"false\" "
                "OnboardKeyGeneration=\"false\" AccessPolicyConfig=\"false\" X.509Token=\"false\" "
                "SAMLToken=\"false\" KerberosToken=\"false\" RELToken=\"false\" UsernameToken=\"true\" "
                "HttpDigest=\"false\"/><tds:System DiscoveryResolve=\"false\" DiscoveryBye=\"false\" "
                "RemoteDiscovery=\"false\" SystemBackup=\"false\" SystemLogging=\"false\" FirmwareUpgrade=\"false\" "
                "GeoLocationEntries=\"1\"/></tds:Capabilities>")

    def _media_service_caps(self) -> str:
        return ("<trt:Capabilities SnapshotUri=\"false\" Rotation=\"false\"><trt:ProfileCapabilities "
                f"MaximumNumberOfProfiles=\"{len(self.profiles)}\"/><trt:StreamingCapabilities RTPMulticast=\"false\" "
                "RTP_TCP=\"true\" RTP_RTSP_TCP=\"true\" NonAggregateControl=\"false\"/></trt:Capabilities>")

    def _ptz_service_caps(self) -> str:
        return ("<tptz:Capabilities EFlip=\"false\" Reverse=\"false\" GetCompatibleConfigurations=\"false\" "
                "MoveStatus=\"true\" StatusPosition=\"true\"/>")

    async def get_services(self, body: ET.Element) -> str:
        with_caps = (self._text(body, "IncludeCapability") or "false").lower() in ("true", "1")
        out = []
        for path, ns, caps in (("/onvif/device_service", TDS, self._device_service_caps),
                               ("/onvif/media_service", TRT, self._media_service_caps),
                               ("/onvif/ptz_service", TPTZ, self._ptz_service_caps)):
            c = f"<tds:Capabilities>{caps()}</tds:Capabilities>" if with_caps else ""
            out.append(f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{self.xaddr(path)}</tds:XAddr>"
                       f"{c}<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>")
        return f"<tds:GetServicesResponse>{''.join(out)}</tds:GetServicesResponse>"

    async def device_service_capabilities(self, body: ET.Element) -> str:
        return f"<tds:GetServiceCapabilitiesResponse>{self._device_service_caps()}</tds:GetServiceCapabilitiesResponse>"

    async def media_service_capabilities(self, body: ET.Element) -> str:
        return f"<trt:GetServiceCapabilitiesResponse>{self._media_service_caps()}</trt:GetServiceCapabilitiesResponse>"

    async def ptz_service_capabilities(self, body: ET.Element) -> str:
        return f"<tptz:GetServiceCapabilitiesResponse>{self._ptz_service_caps()}</tptz:GetServiceCapabilitiesResponse>"

    async def get_device_information(self, body: ET.Element) -> str:
        c = self.cfg
        return (f"<tds:GetDeviceInformationResponse><tds:Manufacturer>{esc(c.manufacturer)}</tds:Manufacturer>"
                f"<tds:Model>{esc(c.model)}</tds:Model><tds:FirmwareVersion>{esc(c.firmware)}</tds:FirmwareVersion>"
                f"<tds:SerialNumber>{esc(c.serial)}</tds:SerialNumber><tds:HardwareId>{esc(c.model)}-HW"
                "</tds:HardwareId></tds:GetDeviceInformationResponse>")

    def scopes(self) -> list[str]:
        return ["onvif://www.onvif.org/type/video_encoder", "onvif://www.onvif.org/type/ptz",
                "onvif://www.onvif.org/Profile/Streaming", f"onvif://www.onvif.org/name/{self.cfg.model}",
                f"onvif://www.onvif.org/hardware/{self.cfg.model}", "onvif://www.onvif.org/location/fieldgw-hil"]

    async def get_scopes(self, body: ET.Element) -> str:
        items = "".join(f"<tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef><tt:ScopeItem>{esc(s)}</tt:ScopeItem>"
                        "</tds:Scopes>" for s in self.scopes())
        return f"<tds:GetScopesResponse>{items}</tds:GetScopesResponse>"

    async def get_geo_location(self, body: ET.Element) -> str:
        """ONVIF Device Management's GetGeoLocation (Core spec 18.12 and later): the camera's own GPS, or
        no Location while it has no fix."""
        if self.gps is None:
            return "<tds:GetGeoLocationResponse/>"
        lat, lon, elev = self.gps
        return (f"<tds:GetGeoLocationResponse><tds:Location Entity=\"VideoSource\" Token=\"VideoSource_1\" "
                f"Fixed=\"false\" AutoGeo=\"true\"><tt:GeoLocation lon=\"{lon:.7f}\" lat=\"{lat:.7f}\" "
                f"elevation=\"{elev:.1f}\"/></tds:Location></tds:GetGeoLocationResponse>")

    async def system_reboot(self, body: ET.Element) -> str:
        asyncio.get_running_loop().call_later(0.2, self.reboot, self.cfg.reboot_s)
        return (f"<tds:SystemRebootResponse><tds:Message>Rebooting in {self.cfg.reboot_s:g} seconds"
                "</tds:Message></tds:SystemRebootResponse>")

    def reboot(self, seconds: float) -> None:
        """Power cycle: PTZ stops, HTTP and RTSP go away for `seconds`; settings and presets persist."""
        self.reboots += 1
        self.ptz.stop()
        if self.on_reboot is not None:
            self.on_reboot(seconds)

    # -- media service --------------------------------------------------------------------------------

    def _ptz_config(self, tag: str = "tt:PTZConfiguration") -> str:
        return (f"<{tag} token=\"PTZConfig_1\"><tt:Name>PTZ</tt:Name><tt:UseCount>{len(self.profiles)}</tt:UseCount>"
                "<tt:NodeToken>PTZNode_1</tt:NodeToken>"
                f"<tt:DefaultAbsolutePantTiltPositionSpace>{PT_POSITION}</tt:DefaultAbsolutePantTiltPositionSpace>"
                f"<tt:DefaultAbsoluteZoomPositionSpace>{Z_POSITION}</tt:DefaultAbsoluteZoomPositionSpace>"
                f"<tt:DefaultRelativePanTiltTranslationSpace>{PT_TRANSLATION}</tt:DefaultRelativePanTiltTranslationSpace>"
                f"<tt:DefaultRelativeZoomTranslationSpace>{Z_TRANSLATION}</tt:DefaultRelativeZoomTranslationSpace>"
                f"<tt:DefaultContinuousPanTiltVelocitySpace>{PT_VELOCITY}</tt:DefaultContinuousPanTiltVelocitySpace>"
                f"<tt:DefaultContinuousZoomVelocitySpace>{Z_VELOCITY}</tt:DefaultContinuousZoomVelocitySpace>"
                f"<tt:DefaultPTZSpeed><tt:PanTilt x=\"1\" y=\"1\" space=\"{PT_SPEED}\"/>"
                f"<tt:Zoom x=\"1\" space=\"{Z_SPEED}\"/></tt:DefaultPTZSpeed>"
                f"<tt:DefaultPTZTimeout>{duration(self.cfg.ptz_timeout_s)}</tt:DefaultPTZTimeout>"
                f"<tt:PanTiltLimits><tt:Range><tt:URI>{PT_POSITION}</tt:URI>{_range('XRange', -1, 1)}"
                f"{_range('YRange', -1, 1)}</tt:Range></tt:PanTiltLimits>"
                f"<tt:ZoomLimits><tt:Range><tt:URI>{Z_POSITION}</tt:URI>{_range('XRange', 0, 1)}</tt:Range>"
                f"</tt:ZoomLimits></{tag}>")

    def _profile_xml(self, p: Profile, tag: str) -> str:
        e = p.encoder
        fixed = "true"
        return (f"<{tag} token={attr(p.token)} fixed=\"{fixed}\"><tt:Name>{esc(p.name)}</tt:Name>"
                f"<tt:VideoSourceConfiguration token=\"VideoSourceConfig_1\"><tt:Name>VideoSourceConfig_1</tt:Name>"
                f"<tt:UseCount>{len(self.profiles)}</tt:UseCount><tt:SourceToken>VideoSource_1</tt:SourceToken>"
                f"<tt:Bounds x=\"0\" y=\"0\" width=\"1280\" height=\"720\"/></tt:VideoSourceConfiguration>"
                f"{e.xml('tt:VideoEncoderConfiguration')}{self._ptz_config()}</{tag}>")

    async def get_profiles(self, body: ET.Element) -> str:
        items = "".join(self._profile_xml(p, "trt:Profiles") for p in self.profiles.values())
        return f"<trt:GetProfilesResponse>{items}</trt:GetProfilesResponse>"

    async def get_profile(self, body: ET.Element) -> str:
        p = self._profile(body)
        return f"<trt:GetProfileResponse>{self._profile_xml(p, 'trt:Profile')}</trt:GetProfileResponse>"

    async def get_video_sources(self, body: ET.Element) -> str:
        return ("<trt:GetVideoSourcesResponse><trt:VideoSources token=\"VideoSource_1\"><tt:Framerate>30"
                "</tt:Framerate><tt:Resolution><tt:Width>1280</tt:Width><tt:Height>720</tt:Height></tt:Resolution>"
                "</trt:VideoSources></trt:GetVideoSourcesResponse>")

    async def get_stream_uri(self, body: ET.Element) -> str:
        p = self._profile(body)
        setup = body.find(q(TRT, "StreamSetup"))
        stream = setup.findtext(q(TT, "Stream")) if setup is not None else None
        proto = setup.findtext(f"{{{TT}}}Transport/{{{TT}}}Protocol") if setup is not None else None
        if setup is None or stream is None or proto is None:
            raise sender("InvalidArgVal", "InvalidStreamSetup", reason="StreamSetup with Stream and Transport needed")
        if stream.strip() != "RTP-Unicast":
            raise sender("InvalidArgVal", "InvalidStreamSetup", reason=f"stream type {stream.strip()} is not supported")
        if proto.strip() not in ("UDP", "TCP", "RTSP"):
            raise sender("InvalidArgVal", "InvalidStreamSetup", reason=f"transport {proto.strip()} is not supported")
        uri = p.video.uri(self.cfg.advertise)
        return (f"<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>{esc(uri)}</tt:Uri>"
                "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false"
                "</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>")

    def _encoder(self, token: str | None) -> Encoder:
        for p in self.profiles.values():
            if p.encoder.token == token:
                return p.encoder
        raise invalid_arg("NoConfig", f"no video encoder configuration {token!r}")

    async def get_video_encoder_configurations(self, body: ET.Element) -> str:
        items = "".join(p.encoder.xml("trt:Configurations") for p in self.profiles.values())
        return f"<trt:GetVideoEncoderConfigurationsResponse>{items}</trt:GetVideoEncoderConfigurationsResponse>"

    async def get_video_encoder_configuration(self, body: ET.Element) -> str:
        e = self._encoder(self._text(body, "ConfigurationToken"))
        return (f"<trt:GetVideoEncoderConfigurationResponse>{e.xml('trt:Configuration')}"
                "</trt:GetVideoEncoderConfigurationResponse>")

    async def get_video_encoder_configuration_options(self, body: ET.Element) -> str:
        token = self._text(body, "ConfigurationToken")
        if token:
            self._encoder(token)
        ptoken = self._text(body, "ProfileToken")
        if ptoken:
            self._profile(body)
        res = "".join(f"<tt:ResolutionsAvailable><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height>"
                      "</tt:ResolutionsAvailable>" for w, h in RESOLUTIONS)
        return ("<trt:GetVideoEncoderConfigurationOptionsResponse><trt:Options>"
                f"{_range('QualityRange', *QUALITY_RANGE)}<tt:H264>{res}{_range('GovLengthRange', *GOV_RANGE)}"
                f"{_range('FrameRateRange', *FPS_RANGE)}{_range('EncodingIntervalRange', 1, 1)}"
                "<tt:H264ProfilesSupported>Baseline</tt:H264ProfilesSupported></tt:H264></trt:Options>"
                "</trt:GetVideoEncoderConfigurationOptionsResponse>")

    async def set_video_encoder_configuration(self, body: ET.Element) -> str:
        conf = body.find(q(TRT, "Configuration"))
        if conf is None:
            raise sender("InvalidArgs", reason="no Configuration")
        enc = self._encoder(conf.get("token"))

        def num(path: str, kind: type = int) -> Any:
            text = conf.findtext(path)
            if text is None:
                raise invalid_arg("ConfigModify", f"{path.replace('{' + TT + '}', '')} missing")
            try:
                v = kind(text.strip())
            except ValueError:
                raise invalid_arg("ConfigModify", f"{text!r} is not a number") from None
            if isinstance(v, float) and not math.isfinite(v):
                raise invalid_arg("ConfigModify", f"{text!r} is not a finite number")
            return v

        t = f"{{{TT}}}"
        encoding = (conf.findtext(f"{t}Encoding") or "").strip()
        if encoding != "H264":
            raise invalid_arg("ConfigModify", f"encoding {encoding!r} is not supported (H264 only)")
        width, height = num(f"{t}Resolution/{t}Width"), num(f"{t}Resolution/{t}Height")
        if (width, height) not in RESOLUTIONS:
            raise invalid_arg("ConfigModify", f"resolution {width}x{height} is not available")
        quality = num(f"{t}Quality", float)
        if not QUALITY_RANGE[0] <= quality <= QUALITY_RANGE[1]:
            raise invalid_arg("ConfigModify", f"quality {quality:g} out of range")
        fps, bitrate = enc.fps, enc.bitrate_kbps
        if conf.find(f"{t}RateControl") is not None:
            fps = num(f"{t}RateControl/{t}FrameRateLimit")
            bitrate = num(f"{t}RateControl/{t}BitrateLimit")
            interval = num(f"{t}RateControl/{t}EncodingInterval")
            if not FPS_RANGE[0] <= fps <= FPS_RANGE[1] or interval != 1:
                raise invalid_arg("ConfigModify", f"frame rate {fps} / encoding interval {interval} not possible")
            if not BITRATE_RANGE[0] <= bitrate <= BITRATE_RANGE[1]:
                raise invalid_arg("ConfigModify", f"bitrate {bitrate} kbit/s out of {BITRATE_RANGE}")
        gov, profile = enc.gov_length, enc.profile
        if conf.find(f"{t}H264") is not None:
            gov = num(f"{t}H264/{t}GovLength")
            profile = (conf.findtext(f"{t}H264/{t}H264Profile") or "").strip()
            if not GOV_RANGE[0] <= gov <= GOV_RANGE[1]:
                raise invalid_arg("ConfigModify", f"GovLength {gov} out of {GOV_RANGE}")
            if profile != "Baseline":
                raise invalid_arg("ConfigModify", f"H.264 profile {profile!r} is not supported (Baseline only)")
        timeout_text = conf.findtext(f"{t}SessionTimeout")
        session_timeout = parse_duration(timeout_text) if timeout_text else enc.session_timeout_s
        name = (conf.findtext(f"{t}Name") or enc.name).strip() or enc.name
        before = enc.settings()
        enc.name, enc.width, enc.height, enc.quality = name, width, height, quality
        enc.fps, enc.bitrate_kbps, enc.gov_length, enc.profile = fps, bitrate, gov, profile
        enc.session_timeout_s = session_timeout
        enc.changes += 1
        if enc.settings() != before:  # the encoder restarts with the new settings: the stream drops and returns
            for p in self.profiles.values():
                if p.encoder is enc:
                    self._spawn(p.video.restart(enc.settings()))
        return "<trt:SetVideoEncoderConfigurationResponse/>"

    # -- PTZ service ----------------------------------------------------------------------------------

    def _vector(self, el: ET.Element | None, allowed_pt: str, allowed_z: str, pt_range: tuple[float, float],
                z_range: tuple[float, float], fault: str) -> tuple[float | None, float | None, float | None]:
        """PanTilt x/y and Zoom x of a PTZVector/PTZSpeed element (None: not given), checked."""
        if el is None:
            return None, None, None
        pan = tilt = zoom = None
        pt = el.find(q(TT, "PanTilt"))
        if pt is not None:
            if pt.get("space", allowed_pt) != allowed_pt:
                raise invalid_arg("SpaceNotSupported", f"pan/tilt space {pt.get('space')} is not supported")
            pan, tilt = _float(pt.get("x"), fault), _float(pt.get("y"), fault)
            for v in (pan, tilt):
                if not pt_range[0] <= v <= pt_range[1]:
                    raise invalid_arg(fault, f"pan/tilt {v:g} out of {pt_range[0]:g}..{pt_range[1]:g}")
        z = el.find(q(TT, "Zoom"))
        if z is not None:
            if z.get("space", allowed_z) != allowed_z:
                raise invalid_arg("SpaceNotSupported", f"zoom space {z.get('space')} is not supported")
            zoom = _float(z.get("x"), fault)
            if not z_range[0] <= zoom <= z_range[1]:
                raise invalid_arg(fault, f"zoom {zoom:g} out of {z_range[0]:g}..{z_range[1]:g}")
        return pan, tilt, zoom

    def _speeds(self, body: ET.Element) -> tuple[float, float]:
        _p, pt, z = self._vector(body.find(q(TPTZ, "Speed")), PT_SPEED, Z_SPEED, (0, 1), (0, 1), "InvalidSpeed")
        return (pt if pt is not None else 1.0), (z if z is not None else 1.0)

    async def continuous_move(self, body: ET.Element) -> str:
        self._profile(body)
        pan, tilt, zoom = self._vector(body.find(q(TPTZ, "Velocity")), PT_VELOCITY, Z_VELOCITY, (-1, 1), (-1, 1),
                                       "InvalidVelocity")
        timeout_text = self._text(body, "Timeout")
        timeout = parse_duration(timeout_text) if timeout_text else self.cfg.ptz_timeout_s
        self.ptz.continuous(pan, tilt, zoom, min(timeout, MAX_PTZ_TIMEOUT_S))
        return "<tptz:ContinuousMoveResponse/>"

    async def stop(self, body: ET.Element) -> str:
        self._profile(body)
        pt = (self._text(body, "PanTilt") or "true").lower() in ("true", "1")
        z = (self._text(body, "Zoom") or "true").lower() in ("true", "1")
        self.ptz.stop(pt, z)
        return "<tptz:StopResponse/>"

    async def absolute_move(self, body: ET.Element) -> str:
        self._profile(body)
        pos = body.find(q(TPTZ, "Position"))
        if pos is None:
            raise sender("InvalidArgs", reason="no Position")
        pan, tilt, zoom = self._vector(pos, PT_POSITION, Z_POSITION, (-1, 1), (0, 1), "InvalidPosition")
        self.ptz.absolute(pan, tilt, zoom, *self._speeds(body))
        return "<tptz:AbsoluteMoveResponse/>"

    async def relative_move(self, body: ET.Element) -> str:
        self._profile(body)
        tr = body.find(q(TPTZ, "Translation"))
        if tr is None:
            raise sender("InvalidArgs", reason="no Translation")
        dp, dt_, dz = self._vector(tr, PT_TRANSLATION, Z_TRANSLATION, (-1, 1), (-1, 1), "InvalidTranslation")
        p, t, z = self.ptz.position()
        self.ptz.absolute(p + dp if dp is not None else None, t + dt_ if dt_ is not None else None,
                          z + dz if dz is not None else None, *self._speeds(body))
        return "<tptz:RelativeMoveResponse/>"

    async def goto_preset(self, body: ET.Element) -> str:
        self._profile(body)
        token = self._text(body, "PresetToken")
        preset = self.presets.get(token or "")
        if preset is None:
            raise invalid_arg("NoToken", f"no preset {token!r}")
        self.ptz.absolute(preset.pan, preset.tilt, preset.zoom, *self._speeds(body))
        return "<tptz:GotoPresetResponse/>"

    async def set_preset(self, body: ET.Element) -> str:
        self._profile(body)
        name = self._text(body, "PresetName")
        token = self._text(body, "PresetToken")
        if self.ptz.pan_tilt_moving or self.ptz.zoom.moving:
            raise receiver("Action", "MovingPTZ", reason="a preset cannot be set while the PTZ unit is moving")
        if token and token not in self.presets:
            raise invalid_arg("NoToken", f"no preset {token!r} to overwrite")
        if name is not None and (len(name) > 64 or not name.strip()):
            raise invalid_arg("InvalidPresetName", "a preset name is 1..64 characters")
        if name and any(p.name == name and p.token != token for p in self.presets.values()):
            raise invalid_arg("PresetExist", f"a preset named {name!r} exists")
        if not token:
            if len(self.presets) >= MAX_PRESETS:
                raise receiver("Action", "TooManyPresets", reason=f"at most {MAX_PRESETS} presets")
            token = str(next(i for i in range(1, MAX_PRESETS + 2) if str(i) not in self.presets))
        p, t, z = self.ptz.position()
        self.presets[token] = Preset(token, name or (self.presets[token].name if token in self.presets
                                                     else f"Preset {token}"), p, t, z)
        return f"<tptz:SetPresetResponse><tptz:PresetToken>{esc(token)}</tptz:PresetToken></tptz:SetPresetResponse>"

    async def remove_preset(self, body: ET.Element) -> str:
        self._profile(body)
        token = self._text(body, "PresetToken")
        if token not in self.presets:
            raise invalid_arg("NoToken", f"no preset {token!r}")
        del self.presets[token]
        return "<tptz:RemovePresetResponse/>"

    async def get_presets(self, body: ET.Element) -> str:
        self._profile(body)
        items = "".join(p.xml() for p in sorted(self.presets.values(), key=lambda p: int(p.token)))
        return f"<tptz:GetPresetsResponse>{items}</tptz:GetPresetsResponse>"

    async def goto_home(self, body: ET.Element) -> str:
        self._profile(body)
        self.ptz.absolute(*self.home, *self._speeds(body))
        return "<tptz:GotoHomePositionResponse/>"

    async def set_home(self, body: ET.Element) -> str:
        self._profile(body)
        self.home = self.ptz.position()
        return "<tptz:SetHomePositionResponse/>"

    async def get_status(self, body: ET.Element) -> str:
        self._profile(body)
        p, t, z = self.ptz.position()
        pt_state = "MOVING" if self.ptz.pan_tilt_moving else "IDLE"
        z_state = "MOVING" if self.ptz.zoom.moving else "IDLE"
        gps = ""
        if self.gps is not None:  # vendor-specific: this simulator's own element (PTZStatus allows xs:any)
            lat, lon, elev = self.gps
            gps = (f"<hil:GeoLocation xmlns:hil=\"{HIL_NS}\" lat=\"{lat:.7f}\" lon=\"{lon:.7f}\" "
                   f"elevation=\"{elev:.1f}\"/>")
        return ("<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position>"
                f"<tt:PanTilt x=\"{p:.6g}\" y=\"{t:.6g}\" space=\"{PT_POSITION}\"/>"
                f"<tt:Zoom x=\"{z:.6g}\" space=\"{Z_POSITION}\"/></tt:Position>"
                f"<tt:MoveStatus><tt:PanTilt>{pt_state}</tt:PanTilt><tt:Zoom>{z_state}</tt:Zoom></tt:MoveStatus>"
                f"<tt:UtcTime>{utc_text(self.now())}</tt:UtcTime>{gps}</tptz:PTZStatus></tptz:GetStatusResponse>")

    def _spaces(self) -> str:
        return (f"<tt:AbsolutePanTiltPositionSpace><tt:URI>{PT_POSITION}</tt:URI>{_range('XRange', -1, 1)}"
                f"{_range('YRange', -1, 1)}</tt:AbsolutePanTiltPositionSpace>"
                f"<tt:AbsoluteZoomPositionSpace><tt:URI>{Z_POSITION}</tt:URI>{_range('XRange', 0, 1)}"
                "</tt:AbsoluteZoomPositionSpace>"
                f"<tt:RelativePanTiltTranslationSpace><tt:URI>{PT_TRANSLATION}</tt:URI>{_range('XRange', -1, 1)}"
                f"{_range('YRange', -1, 1)}</tt:RelativePanTiltTranslationSpace>"
                f"<tt:RelativeZoomTranslationSpace><tt:URI>{Z_TRANSLATION}</tt:URI>{_range('XRange', -1, 1)}"
                "</tt:RelativeZoomTranslationSpace>"
                f"<tt:ContinuousPanTiltVelocitySpace><tt:URI>{PT_VELOCITY}</tt:URI>{_range('XRange', -1, 1)}"
                f"{_range('YRange', -1, 1)}</tt:ContinuousPanTiltVelocitySpace>"
                f"<tt:ContinuousZoomVelocitySpace><tt:URI>{Z_VELOCITY}</tt:URI>{_range('XRange', -1, 1)}"
                "</tt:ContinuousZoomVelocitySpace>"
                f"<tt:PanTiltSpeedSpace><tt:URI>{PT_SPEED}</tt:URI>{_range('XRange', 0, 1)}</tt:PanTiltSpeedSpace>"
                f"<tt:ZoomSpeedSpace><tt:URI>{Z_SPEED}</tt:URI>{_range('XRange', 0, 1)}</tt:ZoomSpeedSpace>")

    def _node(self, tag: str) -> str:
        return (f"<{tag} token=\"PTZNode_1\" FixedHomePosition=\"false\"><tt:Name>PTZNode_1</tt:Name>"
                f"<tt:SupportedPTZSpaces>{self._spaces()}</tt:SupportedPTZSpaces>"
                f"<tt:MaximumNumberOfPresets>{MAX_PRESETS}</tt:MaximumNumberOfPresets>"
                f"<tt:HomeSupported>true</tt:HomeSupported></{tag}>")

    async def get_nodes(self, body: ET.Element) -> str:
        return f"<tptz:GetNodesResponse>{self._node('tptz:PTZNode')}</tptz:GetNodesResponse>"

    async def get_node(self, body: ET.Element) -> str:
        if self._text(body, "NodeToken") != "PTZNode_1":
            raise invalid_arg("NoEntity", "no such PTZ node")
        return f"<tptz:GetNodeResponse>{self._node('tptz:PTZNode')}</tptz:GetNodeResponse>"

    async def get_configurations(self, body: ET.Element) -> str:
        return f"<tptz:GetConfigurationsResponse>{self._ptz_config('tptz:PTZConfiguration')}</tptz:GetConfigurationsResponse>"

    async def get_configuration(self, body: ET.Element) -> str:
        if self._text(body, "PTZConfigurationToken") != "PTZConfig_1":
            raise invalid_arg("NoConfig", "no such PTZ configuration")
        return f"<tptz:GetConfigurationResponse>{self._ptz_config('tptz:PTZConfiguration')}</tptz:GetConfigurationResponse>"

    async def get_configuration_options(self, body: ET.Element) -> str:
        if self._text(body, "ConfigurationToken") != "PTZConfig_1":
            raise invalid_arg("NoConfig", "no such PTZ configuration")
        return ("<tptz:GetConfigurationOptionsResponse><tptz:PTZConfigurationOptions>"
                f"<tt:Spaces>{self._spaces()}</tt:Spaces><tt:PTZTimeout><tt:Min>PT1S</tt:Min>"
                f"<tt:Max>{duration(MAX_PTZ_TIMEOUT_S)}</tt:Max></tt:PTZTimeout></tptz:PTZConfigurationOptions>"
                "</tptz:GetConfigurationOptionsResponse>")

    # -- status ---------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"ptz": self.ptz.to_json(), "presets": [asdict(p) for p in self.presets.values()],
                "home": list(self.home),
                "profiles": [{"token": p.token, "name": p.name, "encoder": p.encoder.to_json(),
                              "stream": p.video.uri(self.cfg.advertise), "video": p.video.to_json()}
                             for p in self.profiles.values()],
                "requests": dict(self.requests), "requests_total": sum(self.requests.values()),
                "faults": dict(self.faults), "auth_failures": self.auth.failures,
                "last_auth_failure": self.auth.last_failure, "users": sorted(self.auth.users),
                "clock_offset_s": self.clock_offset_s, "camera_time": utc_text(self.now()),
                "gps": None if self.gps is None else {"lat": self.gps[0], "lon": self.gps[1], "elevation": self.gps[2]},
                "reboots": self.reboots, "rebooting": self.rebooting}


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


__all__ = ["Camera", "CameraConfig", "Encoder", "Profile", "SoapFault", "local"]
