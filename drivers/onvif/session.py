"""One ONVIF camera over SOAP, through onvif-zeep-async (zeep + aiohttp): no hand-built SOAP.

`CameraSession.connect()` reads the camera's clock (GetSystemDateAndTime, which
ONVIF answers without authentication) so every WS-UsernameToken digest is
stamped in the camera's time, finds its services (GetServices, or
GetCapabilities on older firmware), its media profiles (GetProfiles) and the
RTSP URI of the chosen profile (GetStreamUri); PTZ, status and encoder
settings are calls on the same session. Every call has its own timeout.

Errors are sorted for the driver: `AuthError` (the camera refuses the user or
password: ter:NotAuthorized, wsse:FailedAuthentication, HTTP 401),
`OnvifError` (the camera answered with a fault or an answer that makes no
sense: `retry` False, reconnecting would not help), and ConnectionError
(no answer: the supervisor reconnects with backoff).

XML safety: zeep parses with lxml without resolving entities; on top of that
every document it reads (answers and bundled WSDLs alike) is refused when it
carries a DTD or an entity declaration, never fetches anything external, and
keeps libxml2's size and depth limits (`harden()`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import os
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import zeep.exceptions


def _import_onvif() -> Any:
    """onvif.client calls logging.basicConfig() at import: keep the gateway's own logging as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import onvif
    import onvif.settings

    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("onvif").setLevel(logging.WARNING)
    return onvif


onvif = _import_onvif()
T = TypeVar("T")
AUTH_CODES = ("NotAuthorized", "FailedAuthentication", "InvalidSecurityToken", "FailedCheck")


def harden() -> None:
    """The XML rules every ONVIF document is read with (the library's one shared Settings object)."""
    s = onvif.settings.DEFAULT_SETTINGS
    s.forbid_dtd = True  # SOAP messages carry no DTD (SOAP 1.2 part 1, 5)
    s.forbid_entities = True
    s.forbid_external = True
    s.xml_huge_tree = False


harden()


class AuthError(Exception):
    """The camera refuses these credentials."""


class OnvifError(Exception):
    """The camera answered, but not with what was asked (a fault, a malformed or unsafe answer)."""


@dataclass
class Profile:
    token: str
    name: str
    encoder_token: str | None
    width: int | None
    height: int | None
    encoding: str | None
    ptz: bool
    zoom: bool  # its PTZ configuration has a continuous zoom velocity space


@dataclass
class Facts:
    """What connect() learnt."""

    clock_offset_s: float
    services: list[str]
    profiles: list[Profile]
    profile: Profile
    stream_uri: str
    presets: dict[str, str] = field(default_factory=dict)  # token → name
    has_ptz: bool = False
    device: dict[str, str] = field(default_factory=dict)  # manufacturer, model, firmware


def _fault_text(exc: zeep.exceptions.Fault) -> str:
    subcodes = " ".join(getattr(q, "localname", str(q)) for q in (exc.subcodes or []))
    return " ".join(p for p in (str(exc.code or ""), subcodes, exc.message or "") if p)


def classify(exc: BaseException, what: str) -> Exception:
    """Any failure of a call → AuthError, OnvifError or ConnectionError with a readable reason."""
    if isinstance(exc, zeep.exceptions.Fault):
        text = _fault_text(exc)
        if any(code in text for code in AUTH_CODES):
            return AuthError(f"{what}: the camera refuses the user or password ({text})")
        return OnvifError(f"{what}: the camera answered with a fault: {text}")
    if isinstance(exc, zeep.exceptions.TransportError):
        if exc.status_code == 401:
            return AuthError(f"{what}: the camera refuses the user or password (HTTP 401)")
        return ConnectionError(f"{what}: HTTP {exc.status_code}")
    if isinstance(exc, (zeep.exceptions.DTDForbidden, zeep.exceptions.EntitiesForbidden,
                        zeep.exceptions.ExternalReferenceForbidden)):
        return OnvifError(f"{what}: unsafe XML refused ({type(exc).__name__})")
    if isinstance(exc, (zeep.exceptions.XMLSyntaxError, zeep.exceptions.ValidationError, zeep.exceptions.Error)):
        return OnvifError(f"{what}: malformed answer ({type(exc).__name__}: {str(exc)[:200]})")
    if isinstance(exc, TimeoutError):
        return ConnectionError(f"{what}: no answer in time")
    if isinstance(exc, (aiohttp.ClientError, OSError)):
        return ConnectionError(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, onvif.ONVIFError):
        inner = exc.__cause__ or exc.__context__
        return classify(inner, what) if inner is not None and inner is not exc else OnvifError(f"{what}: {exc}")
    return OnvifError(f"{what}: {type(exc).__name__}: {exc}")


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def _int(v: Any) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Geo:
    lat: float
    lon: float
    elevation_m: float | None


def geolocation(status: Any) -> Geo | None:
    """A `GeoLocation` element (tt:GeoLocation's lat/lon/elevation attributes) among PTZStatus' extension
    elements. Vendor-specific: no ONVIF call of the WSDLs in use gives a position (GetGeoLocation came
    later); the simulator puts one here, in its own namespace, and a camera that does likewise is read."""
    for el in getattr(status, "_value_1", None) or []:
        tag = getattr(el, "tag", None)
        if not isinstance(tag, str) or tag.rsplit("}", 1)[-1] != "GeoLocation":
            continue
        try:
            lat, lon = float(el.get("lat")), float(el.get("lon"))
            elev = float(el.get("elevation")) if el.get("elevation") not in (None, "") else None
        except (TypeError, ValueError):
            return None
        if math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180:
            return Geo(lat, lon, elev if elev is not None and math.isfinite(elev) else None)
    return None


class CameraSession:
    def __init__(self, host: str, port: int, user: str, password: str, timeout_s: float) -> None:
        self.host, self.port = host, port
        self.user, self.password = user, password
        self.timeout_s = timeout_s
        self._cam: Any = None
        self._media: Any = None
        self._ptz: Any = None
        self._device: Any = None

    async def call(self, what: str, aw: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await aw
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise classify(exc, what) from exc

    async def connect(self, profile_token: str | None) -> Facts:
        saved = {k: os.environ[k] for k in ("http_proxy", "https_proxy") if k in os.environ}
        self._cam = onvif.ONVIFCamera(self.host, self.port, self.user, self.password, no_cache=True, adjust_time=True)
        os.environ.update(saved)  # ONVIFCamera() deletes them from the whole process; the rest of the gateway keeps them
        cam = self._cam
        await self.call("GetSystemDateAndTime/GetServices", cam.update_xaddrs())
        if not cam.xaddrs:
            raise OnvifError("the camera lists no services")
        self._device = await self.call("device service", cam.create_devicemgmt_service())
        # GetServices may be answered without checking credentials: prove them now
        info = await self.call("GetDeviceInformation", self._device.GetDeviceInformation())
        device = {"manufacturer": _text(getattr(info, "Manufacturer", "")), "model": _text(getattr(info, "Model", "")),
                  "firmware": _text(getattr(info, "FirmwareVersion", ""))}
        try:
            self._media = await self.call("media service", cam.create_media_service())
        except OnvifError as exc:
            raise OnvifError(f"no ONVIF media service (Profile S): {exc}") from exc
        profiles = [self._profile(p) for p in (await self.call("GetProfiles", self._media.GetProfiles()) or [])]
        if not profiles:
            raise OnvifError("the camera has no media profile")
        chosen = next((p for p in profiles if p.token == profile_token), None) if profile_token else next(
            (p for p in profiles if p.encoder_token), profiles[0])
        if chosen is None:
            raise OnvifError(f"no media profile {profile_token!r} (the camera has {', '.join(p.token for p in profiles)})")
        uri = await self.call("GetStreamUri", self._media.GetStreamUri({
            "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}, "ProfileToken": chosen.token}))
        stream_uri = _text(getattr(uri, "Uri", None)).strip()
        if not stream_uri.lower().startswith(("rtsp://", "rtsps://")):
            raise OnvifError(f"GetStreamUri gave no RTSP URI ({stream_uri[:80]!r})")
        facts = Facts(clock_offset_s=cam.dt_diff.total_seconds() if cam.dt_diff else 0.0, services=sorted(cam.xaddrs),
                      profiles=profiles, profile=chosen, stream_uri=stream_uri, device=device)
        if "http://www.onvif.org/ver20/ptz/wsdl" in cam.xaddrs and chosen.ptz:
            self._ptz = await self.call("PTZ service", cam.create_ptz_service())
            facts.has_ptz = True
            facts.presets = await self.presets(chosen.token)
        return facts

    @staticmethod
    def _profile(p: Any) -> Profile:
        enc = getattr(p, "VideoEncoderConfiguration", None)
        res = getattr(enc, "Resolution", None) if enc is not None else None
        return Profile(token=_text(p.token), name=_text(getattr(p, "Name", "")),
                       encoder_token=_text(enc.token) if enc is not None and getattr(enc, "token", None) else None,
                       width=_int(getattr(res, "Width", None)), height=_int(getattr(res, "Height", None)),
                       encoding=_text(getattr(enc, "Encoding", None)) or None if enc is not None else None,
                       ptz=getattr(p, "PTZConfiguration", None) is not None,
                       zoom=getattr(getattr(p, "PTZConfiguration", None), "DefaultContinuousZoomVelocitySpace", None)
                       is not None)

    async def close(self) -> None:
        cam, self._cam = self._cam, None
        self._media = self._ptz = self._device = None
        if cam is not None:
            try:
                await asyncio.wait_for(cam.close(), 2)
            except Exception:  # closing a dead session must not hide why it died
                pass

    # -- PTZ ---------------------------------------------------------------------------------
    def _need_ptz(self) -> Any:
        if self._ptz is None:
            raise OnvifError("this camera (profile) has no PTZ")
        return self._ptz

    async def presets(self, token: str) -> dict[str, str]:
        try:
            found = await self.call("GetPresets", self._need_ptz().GetPresets({"ProfileToken": token})) or []
        except OnvifError:
            return {}
        return {_text(p.token): _text(getattr(p, "Name", "")) for p in found if getattr(p, "token", None)}

    async def continuous_move(self, profile: Profile, pan: float | None, tilt: float | None, zoom: float | None,
                              timeout_s: float) -> None:
        """The whole motion: an axis not given moves at speed 0 (as one GB/T 28181 PTZCmd sets all three).
        Zoom is left out only for a camera without zoom (an axis left out keeps its motion in some firmware)."""
        velocity: dict[str, Any] = {"PanTilt": {"x": pan or 0.0, "y": tilt or 0.0}}
        if zoom is not None or profile.zoom:
            velocity["Zoom"] = {"x": zoom or 0.0}
        await self.call("ContinuousMove", self._need_ptz().ContinuousMove(
            {"ProfileToken": profile.token, "Velocity": velocity, "Timeout": dt.timedelta(seconds=timeout_s)}))

    async def stop(self, token: str) -> None:
        await self.call("Stop", self._need_ptz().Stop({"ProfileToken": token, "PanTilt": True, "Zoom": True}))

    async def goto_preset(self, token: str, preset: str) -> None:
        await self.call("GotoPreset", self._need_ptz().GotoPreset({"ProfileToken": token, "PresetToken": preset}))

    async def ptz_status(self, token: str) -> tuple[dict[str, Any], Geo | None]:
        st = await self.call("GetStatus", self._need_ptz().GetStatus({"ProfileToken": token}))
        pos = getattr(st, "Position", None)
        pt = getattr(pos, "PanTilt", None) if pos is not None else None
        zm = getattr(pos, "Zoom", None) if pos is not None else None
        mv = getattr(st, "MoveStatus", None)

        def num(v: Any) -> float | None:
            return round(float(v), 4) if isinstance(v, int | float) else None

        moving = [_text(getattr(mv, axis, None)).upper() for axis in ("PanTilt", "Zoom")] if mv is not None else []
        return {"pan": num(getattr(pt, "x", None)), "tilt": num(getattr(pt, "y", None)),
                "zoom": num(getattr(zm, "x", None)),
                "moving": any(m == "MOVING" for m in moving) if moving else None}, geolocation(st)

    async def alive(self) -> None:
        """A cheap call that needs no PTZ (the camera's clock)."""
        assert self._device is not None
        await self.call("GetSystemDateAndTime", self._device.GetSystemDateAndTime())

    # -- encoder settings ------------------------------------------------------------------------
    async def encoder(self, token: str) -> Any:
        assert self._media is not None
        return await self.call("GetVideoEncoderConfiguration",
                               self._media.GetVideoEncoderConfiguration({"ConfigurationToken": token}))

    async def set_encoder(self, config: Any) -> None:
        assert self._media is not None
        await self.call("SetVideoEncoderConfiguration",
                        self._media.SetVideoEncoderConfiguration({"Configuration": config, "ForcePersistence": True}))
