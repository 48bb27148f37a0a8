"""MANSCDP bodies (GB/T 28181 appendix A): XML built as text, parsed defensively.

Built bodies start with `<?xml version="1.0" encoding="GB2312"?>` (or UTF-8) and are encoded in
that charset. Received bodies are decoded by the charset their prolog declares (GB2312 is read as
GB18030, its superset), any DOCTYPE is refused (no entity expansion), and size is capped.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

CONTENT_TYPE = "Application/MANSCDP+xml"
MAX_BODY = 64 * 1024
CHARSETS = {"gb2312": "GB2312", "utf-8": "UTF-8"}
_PROLOG_ENCODING = re.compile(rb"""<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_\-]+)["']""")


class XmlError(ValueError):
    """A MANSCDP body that cannot be used."""


@dataclass(frozen=True)
class Doc:
    root: str            # Query | Control | Notify | Response
    cmd: str             # CmdType
    sn: str
    device_id: str
    element: ET.Element

    def text(self, path: str, default: str = "") -> str:
        el = self.element.find(path)
        return (el.text or "").strip() if el is not None and el.text is not None else default


def python_codec(charset: str) -> str:
    c = charset.strip().lower()
    return "gb18030" if c in ("gb2312", "gbk", "gb18030") else c


def content_type(charset: str) -> str:
    return f"{CONTENT_TYPE};charset={CHARSETS[charset]}"


def parse(body: bytes) -> Doc:
    if len(body) > MAX_BODY:
        raise XmlError(f"body of {len(body)} bytes is too large")
    if re.search(rb"<!(DOCTYPE|ENTITY)", body, re.IGNORECASE):
        raise XmlError("DOCTYPE/ENTITY not accepted")
    m = _PROLOG_ENCODING.search(body[:200])
    codec = python_codec(m.group(1).decode("ascii")) if m else "utf-8"
    try:
        text = body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        text = body.decode("gb18030", "replace")
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)  # the declaration would name an encoding for bytes
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as exc:
        raise XmlError(f"not XML: {exc}") from None
    cmd = root.findtext("CmdType")
    if not cmd:
        raise XmlError("no CmdType")
    return Doc(root.tag, cmd.strip(), (root.findtext("SN") or "").strip(),
               (root.findtext("DeviceID") or "").strip(), root)


def _fields(items: Iterable[tuple[str, object]], indent: str) -> list[str]:
    out = []
    for k, v in items:
        if isinstance(v, list):
            out.append(f"{indent}<{k}>")
            out += _fields(v, indent + "  ")
            out.append(f"{indent}</{k}>")
        else:
            out.append(f"{indent}<{k}>{escape(str(v))}</{k}>")
    return out


def build(root: str, cmd: str, sn: int | str, device_id: str, fields: Iterable[tuple[str, object]] = (),
          charset: str = "gb2312", raw: str = "") -> bytes:
    """`<root><CmdType/><SN/><DeviceID/>fields...raw</root>` in `charset`. A field's value may be a
    list of (name, value) pairs for a nested element; `raw` is inserted as is (pre-built XML)."""
    lines = [f'<?xml version="1.0" encoding="{CHARSETS[charset]}"?>', f"<{root}>",
             f"<CmdType>{escape(cmd)}</CmdType>", f"<SN>{escape(str(sn))}</SN>", f"<DeviceID>{escape(device_id)}</DeviceID>"]
    lines += _fields(fields, "")
    if raw:
        lines.append(raw)
    lines.append(f"</{root}>")
    return ("\r\n".join(lines) + "\r\n").encode(python_codec(charset), "replace")


def item_list(tag: str, items: list[list[tuple[str, object]]]) -> str:
    """`<tag Num="n"><Item>...</Item>...</tag>` as text."""
    lines = [f'<{tag} Num="{len(items)}">']
    for item in items:
        lines.append("<Item>")
        lines += _fields(item, "")
        lines.append("</Item>")
    lines.append(f"</{tag}>")
    return "\r\n".join(lines)
