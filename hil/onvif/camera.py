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

The PTZ handlers are a mixin (ptz_service.PtzService); the records, limits and helpers are in model.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from .model import (BITRATE_RANGE, FPS_RANGE, GOV_RANGE, OPEN_OPERATIONS, QUALITY_RANGE, RESOLUTIONS, SERVICE_PATHS,
                    CameraConfig, Encoder, Preset, Profile, _ns, _range, parse_duration, utc_text)
from .ptz import Ptz
from .ptz_service import PtzService
from .soap import TDS, TPTZ, TRT, TT, SoapFault, attr, esc, invalid_arg, local, q, receiver, sender
from .wsse import Auth

log = logging.getLogger(__name__)


Handler = Callable[[ET.Element], Awaitable[str]]


class Camera(PtzService):
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


__all__ = ["Camera", "CameraConfig", "Encoder", "Profile", "SoapFault", "local"]
