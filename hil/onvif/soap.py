"""SOAP 1.2 for the camera: a defensive XML reader, envelopes and faults as ONVIF devices send them.

Reading: expat (stdlib) builds an ElementTree; a document type declaration is refused outright (SOAP 1.2
Part 1 §5: a SOAP message must not contain one), so no entity is ever declared or expanded, and the body
size is capped before parsing. Writing: text templates with every value escaped.

Faults follow the ONVIF Core Specification's generic faults: a code (env:Sender, env:Receiver,
env:VersionMismatch, env:MustUnderstand), an ONVIF subcode (ter:...) and optionally a second subcode.
The HTTP status follows SOAP 1.2's HTTP binding: 400 for env:Sender, 500 for everything else
(an authentication failure's status is the camera's choice: see wsse.py).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

ENV = "http://www.w3.org/2003/05/soap-envelope"
ENV11 = "http://schemas.xmlsoap.org/soap/envelope/"
TER = "http://www.onvif.org/ver10/error"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSA = "http://www.w3.org/2005/08/addressing"
WSA_2004 = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
TT = "http://www.onvif.org/ver10/schema"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TPTZ = "http://www.onvif.org/ver20/ptz/wsdl"
CONTENT_TYPE = "application/soap+xml; charset=utf-8"
MAX_BODY = 256 * 1024

NAMESPACES = {"env": ENV, "ter": TER, "tt": TT, "tds": TDS, "trt": TRT, "tptz": TPTZ,
              "xs": "http://www.w3.org/2001/XMLSchema"}
_XMLNS = " ".join(f"xmlns:{k}={quoteattr(v)}" for k, v in NAMESPACES.items())


class SoapFault(Exception):
    """A fault to send back: code env:Sender|Receiver|VersionMismatch|MustUnderstand, ONVIF subcodes."""

    def __init__(self, code: str, subcodes: tuple[str, ...], reason: str, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.subcodes = subcodes
        self.reason = reason
        self.http_status = http_status or (400 if code == "Sender" else 500)

    @property
    def name(self) -> str:
        return "/".join(self.subcodes) or self.code


def sender(*subcodes: str, reason: str) -> SoapFault:
    return SoapFault("Sender", tuple(f"ter:{s}" for s in subcodes), reason)


def receiver(*subcodes: str, reason: str) -> SoapFault:
    return SoapFault("Receiver", tuple(f"ter:{s}" for s in subcodes), reason)


def invalid_arg(sub: str, reason: str) -> SoapFault:
    return sender("InvalidArgVal", sub, reason=reason)


def q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def ns_of(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def parse_xml(data: bytes) -> ET.Element:
    """An element tree from untrusted bytes; SoapFault(Sender, ter:WellFormed) for anything else."""
    if len(data) > MAX_BODY:
        raise sender("WellFormed", reason=f"message of {len(data)} bytes is too large")
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def tag(name: str) -> str:
        return "{" + name if "}" in name else name

    def refuse(*_: object) -> None:
        raise sender("WellFormed", reason="a document type declaration is not allowed in a SOAP message")

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = lambda name, attrs: builder.start(tag(name), {tag(k): v for k, v in attrs.items()})
    parser.EndElementHandler = lambda name: builder.end(tag(name))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        root = builder.close()
    except expat.ExpatError as exc:
        raise sender("WellFormed", reason=f"not well-formed XML: {exc}") from None
    except SoapFault:
        raise
    except Exception as exc:  # TreeBuilder's own complaints (no root, ...)
        raise sender("WellFormed", reason=f"not well-formed XML: {exc}") from None
    return root


@dataclass
class Message:
    header: ET.Element | None
    body: ET.Element        # the one element inside env:Body: the operation

    @property
    def operation(self) -> str:
        return local(self.body.tag)

    @property
    def namespace(self) -> str:
        return ns_of(self.body.tag)


UNDERSTOOD_HEADERS = {WSSE, WSA, WSA_2004}


def read_envelope(data: bytes) -> Message:
    root = parse_xml(data)
    if root.tag == q(ENV11, "Envelope"):
        raise SoapFault("VersionMismatch", (), "SOAP 1.1 is not supported: ONVIF devices speak SOAP 1.2")
    if root.tag != q(ENV, "Envelope"):
        raise sender("WellFormed", reason="the document is not a SOAP 1.2 Envelope")
    header = root.find(q(ENV, "Header"))
    body = root.find(q(ENV, "Body"))
    if body is None:
        raise sender("WellFormed", reason="the Envelope has no Body")
    children = list(body)
    if len(children) != 1:
        raise sender("InvalidArgs", reason=f"the Body holds {len(children)} elements, expected one operation")
    if header is not None:
        for block in header:
            must = block.get(q(ENV, "mustUnderstand"), "false").strip().lower()
            if must in ("1", "true") and ns_of(block.tag) not in UNDERSTOOD_HEADERS:
                raise SoapFault("MustUnderstand", (), f"header block {block.tag} is not understood")
    return Message(header, children[0])


def envelope(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope {_XMLNS}><env:Body>{body}</env:Body>'
            f"</env:Envelope>").encode("utf-8")


def fault_envelope(f: SoapFault) -> bytes:
    code = f"<env:Value>env:{f.code}</env:Value>"
    inner = ""
    for sub in reversed(f.subcodes):
        inner = f"<env:Subcode><env:Value>{escape(sub)}</env:Value>{inner}</env:Subcode>"
    return envelope(f"<env:Fault><env:Code>{code}{inner}</env:Code><env:Reason><env:Text xml:lang=\"en\">"
                    f"{escape(f.reason)}</env:Text></env:Reason></env:Fault>")


def esc(v: object) -> str:
    return escape(str(v))


def attr(v: object) -> str:
    return quoteattr(str(v))


def text_of(el: ET.Element | None, path: str, default: str | None = None) -> str | None:
    if el is None:
        return default
    found = el.find(path, NAMESPACES)
    if found is None:
        return default
    return (found.text or "").strip()
