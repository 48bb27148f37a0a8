"""The simulated camera's PTZ service (tptz, ver20): moves, presets, home, status, nodes and configurations.

A mixin of Camera (hil.onvif.camera): the handlers use the camera's state (ptz, presets, home, gps, cfg,
profiles) and plumbing (_profile, _text, now), so the operation table and the camera's attributes are
unchanged.
"""
from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from .model import (HIL_NS, MAX_PRESETS, MAX_PTZ_TIMEOUT_S, PT_POSITION, PT_SPEED, PT_TRANSLATION, PT_VELOCITY,
                    Z_POSITION, Z_SPEED, Z_TRANSLATION, Z_VELOCITY, Preset, _float, _range, duration,
                    parse_duration, utc_text)
from .ptz import Ptz
from .soap import TPTZ, TT, esc, invalid_arg, q, receiver, sender

if TYPE_CHECKING:
    from .model import CameraConfig, Profile


class PtzService:
    """PTZ operations; mixed into Camera, which provides the state and plumbing declared here."""

    cfg: CameraConfig
    profiles: dict[str, Profile]
    ptz: Ptz
    presets: dict[str, Preset]
    home: tuple[float, float, float]
    gps: tuple[float, float, float] | None

    if TYPE_CHECKING:
        def now(self) -> dt.datetime: ...
        def _profile(self, body: ET.Element, tag: str = "ProfileToken", ns: str | None = None) -> Profile: ...
        @staticmethod
        def _text(body: ET.Element, tag: str, ns: str | None = None) -> str | None: ...

    def _ptz_service_caps(self) -> str:
        return ("<tptz:Capabilities EFlip=\"false\" Reverse=\"false\" GetCompatibleConfigurations=\"false\" "
                "MoveStatus=\"true\" StatusPosition=\"true\"/>")

    async def ptz_service_capabilities(self, body: ET.Element) -> str:
        return f"<tptz:GetServiceCapabilitiesResponse>{self._ptz_service_caps()}</tptz:GetServiceCapabilitiesResponse>"

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
