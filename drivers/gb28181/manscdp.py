"""MANSCDP bodies (Application/MANSCDP+xml): read them safely, write the platform's queries and controls.

Reading: the charset comes from the XML prolog, else the Content-Type's `charset`,
else UTF-8; GB2312 is decoded as GB18030 (its superset, as devices really send).
expat cannot read multi-byte Chinese charsets itself, so the text is decoded here
and parsed by defusedxml with DTDs forbidden: no entity expansion, no external
entities (a "billion laughs" body is refused, never expanded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

MAX_BODY_BYTES = 32 * 1024
_PROLOG = re.compile(rb'^\s*<\?xml[^>]*?encoding\s*=\s*["\']([A-Za-z0-9_.-]+)["\'][^>]*\?>', re.I)
_PROLOG_ANY = re.compile(r"^\s*<\?xml[^>]*\?>")
_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9_.-]+)", re.I)
_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "gb18030": "gb18030", "utf-8": "utf-8", "utf8": "utf-8"}
ROOTS = ("Query", "Control", "Notify", "Response")


class ManscdpError(ValueError):
    pass


@dataclass
class Doc:
    """A MANSCDP document: its root (Query/Control/Notify/Response), CmdType, SN, DeviceID and the element."""

    root: str
    cmd: str
    sn: int | None
    device_id: str
    element: Element = field(repr=False)

    def text(self, path: str, default: str = "") -> str:
        found = self.element.find(path)
        return (found.text or "").strip() if found is not None and found.text else default

    def number(self, path: str) -> float | None:
        try:
            value = float(self.text(path))
        except ValueError:
            return None
        return value if value == value and abs(value) != float("inf") else None


def charset_of(body: bytes, content_type: str = "") -> str:
    m = _PROLOG.match(body[:200])
    if m:
        return m.group(1).decode("ascii").lower()
    m2 = _CHARSET.search(content_type)
    return m2.group(1).lower() if m2 else "utf-8"


def decode_text(body: bytes, content_type: str = "") -> str:
    declared = charset_of(body, content_type)
    codec = _ALIASES.get(declared)
    if codec is None:
        raise ManscdpError(f"unsupported charset {declared!r}")
    try:
        return body.decode(codec)
    except UnicodeDecodeError:
        other = "gb18030" if codec == "utf-8" else "utf-8"  # devices that declare one and send the other
        try:
            return body.decode(other)
        except UnicodeDecodeError:
            raise ManscdpError(f"body is neither {declared} nor {other}") from None


def read(body: bytes, content_type: str = "") -> Doc:
    """Parse one MANSCDP body; ManscdpError for anything unusable (too big, a DTD, bad XML, no CmdType)."""
    if len(body) > MAX_BODY_BYTES:
        raise ManscdpError(f"body of {len(body)} bytes")
    text = _PROLOG_ANY.sub("", decode_text(body, content_type), count=1)
    try:
        root = SafeET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise ManscdpError(f"XML refused: {type(exc).__name__}: {str(exc)[:80]}") from None
    if root.tag not in ROOTS:
        raise ManscdpError(f"root <{root.tag[:20]}> is not a MANSCDP command")
    cmd = (root.findtext("CmdType") or "").strip()
    if not cmd:
        raise ManscdpError("no CmdType")
    sn_text = (root.findtext("SN") or "").strip()
    sn = int(sn_text) if sn_text.isdigit() and len(sn_text) < 10 else None
    return Doc(root.tag, cmd, sn, (root.findtext("DeviceID") or "").strip(), root)


# -- what the platform reads ------------------------------------------------------------


@dataclass(frozen=True)
class CatalogItem:
    device_id: str
    name: str
    status: str
    parent: str
    ptz_type: int | None
    lat: float | None
    lon: float | None


@dataclass(frozen=True)
class CatalogPart:
    sum_num: int
    items: tuple[CatalogItem, ...]


def catalog(doc: Doc) -> CatalogPart:
    try:
        sum_num = int(doc.text("SumNum", "-1"))
    except ValueError:
        raise ManscdpError("SumNum is not a number") from None
    if not 0 <= sum_num <= 100_000:
        raise ManscdpError("SumNum missing or out of range")
    items = []
    for el in doc.element.iterfind("DeviceList/Item"):
        item = Doc("Item", "", None, (el.findtext("DeviceID") or "").strip(), el)
        if not item.device_id:
            continue
        ptz = item.text("Info/PTZType") or item.text("PTZType")
        items.append(CatalogItem(item.device_id, item.text("Name"), item.text("Status").upper(), item.text("ParentID"),
                                 int(ptz) if ptz.isdigit() and len(ptz) < 4 else None,
                                 item.number("Latitude"), item.number("Longitude")))
    return CatalogPart(sum_num, tuple(items))


@dataclass(frozen=True)
class MobilePosition:
    device_id: str
    lat: float
    lon: float
    speed_kmh: float | None
    direction_deg: float | None
    alt_m: float | None
    time: str


def mobile_position(doc: Doc) -> MobilePosition:
    lat, lon = doc.number("Latitude"), doc.number("Longitude")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ManscdpError("MobilePosition without a valid Latitude/Longitude")
    direction = doc.number("Direction")
    return MobilePosition(doc.device_id, lat, lon, doc.number("Speed"),
                          direction % 360 if direction is not None else None, doc.number("Altitude"), doc.text("Time"))


# -- what the platform writes -----------------------------------------------------------


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build(root: str, cmd: str, sn: int, device_id: str, fields: list[tuple[str, str]] | None = None,
          charset: str = "GB2312") -> bytes:
    """`<?xml ... encoding=charset?><Root><CmdType/><SN/><DeviceID/>fields</Root>`; a field may be raw XML
    when its name starts with '<' (nested elements the caller built)."""
    parts = [f'<?xml version="1.0" encoding="{charset}"?>', f"<{root}>", f"<CmdType>{_escape(cmd)}</CmdType>",
             f"<SN>{sn}</SN>", f"<DeviceID>{_escape(device_id)}</DeviceID>"]
    for name, value in fields or []:
        parts.append(value if name.startswith("<") else f"<{name}>{_escape(value)}</{name}>")
    parts.append(f"</{root}>")
    return ("\r\n".join(parts) + "\r\n").encode(_ALIASES.get(charset.lower(), "utf-8"))
