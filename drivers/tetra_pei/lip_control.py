"""LIP reporting control (TS 100 392-18-1 long PDUs), as docs/serial-protocols.md fixes them.

fieldgw sets a team radio's basic location parameters (minimum reporting
interval, report type) with a Basic location parameters request and reads
them back with a Report basic location parameters request; each answer is a
response PDU of the same extension with the response bit set. After the PID
0x0A, bits MSB first: PDU type 2 (01), PDU type extension 4, request/response 1,
then per PDU the fields below. A PDU goes as whole bytes (zero padding at the
end); a reader ignores bits after the fields it reads.

The minimum reporting interval coding, the result code names and the absence of
optional elements are the spec page's [unverified] choices.

Also the profile (`firmware_configs/tetra/*.yaml`, `protocol: tetra_lip`) and
its schema check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

PID_LIP = 0x0A
PDU_TYPE_EXTENDED = 0b01
EXT_BASIC_PARAMS = 0b0101  # Basic location parameters request/response
EXT_REPORT_BASIC_PARAMS = 0b1001  # Report basic location parameters request/response
EXTENSIONS = {
    0b0001: "immediate location report request", 0b0011: "long location report",
    0b0100: "location report acknowledgement", 0b0101: "basic location parameters",
    0b0110: "add/modify trigger", 0b0111: "remove trigger", 0b1000: "report trigger",
    0b1001: "report basic location parameters", 0b1010: "location reporting enable/disable",
    0b1011: "location reporting temporary control", 0b1100: "backlog"}
REQUEST, RESPONSE = 0, 1

# Report type (2 bits)
REPORT_TYPES = {"long": 0, "long_time_elapsed": 1, "long_time_of_position": 2, "short": 3}
REPORT_TYPE_NAMES = {v: k for k, v in REPORT_TYPES.items()}

# Result code (8 bits): 0 success; the names are [unverified]
SUCCESS = 0x00
RESULT_NAMES = {0x00: "success", 0x01: "system failure", 0x02: "unspecified error",
                0x03: "unauthorised application", 0x04: "unknown subscriber", 0x05: "absent subscriber",
                0x06: "congestion in mobile network", 0x07: "congestion in mobile station"}

# Minimum reporting interval (7 bits) [unverified coding]: 0 none, 1-59 s, 60-119 (v-59) min, 120-127 reserved
INTERVAL_RESERVED_FROM = 120
MAX_INTERVAL_S = 3600

_HEAD_BITS = 8 + 2 + 4 + 1  # PID, PDU type, extension, request/response


class LipControlError(ValueError):
    """Bytes that are not a LIP control PDU this module reads, or a value it cannot encode."""


def result_name(code: int) -> str:
    return RESULT_NAMES.get(code, f"result code 0x{code:02x}")


def interval_code(seconds: float) -> int:
    """Seconds → the 7-bit code; LipControlError when the coding cannot say it exactly."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        raise LipControlError(f"{seconds!r} is not a number of seconds")
    if seconds == int(seconds):
        s = int(seconds)
        if 0 <= s <= 59:
            return s
        if 60 <= s <= MAX_INTERVAL_S and s % 60 == 0:
            return 59 + s // 60
    raise LipControlError(f"{seconds:g} s cannot be sent: LIP's minimum reporting interval is 0-59 s "
                          f"in seconds or 1-60 min in whole minutes (nearest: {', '.join(map(str, nearest_intervals(seconds)))})")


def interval_seconds(code: int) -> int | None:
    """The 7-bit code → seconds; None for a reserved code."""
    if not 0 <= code < 128:
        raise LipControlError(f"interval code {code} does not fit in 7 bits")
    if code <= 59:
        return code
    if code < INTERVAL_RESERVED_FROM:
        return (code - 59) * 60
    return None


def nearest_intervals(seconds: float) -> list[int]:
    """The sayable intervals on either side of `seconds` (for error messages)."""
    sayable = [interval_seconds(c) for c in range(INTERVAL_RESERVED_FROM)]
    below = [s for s in sayable if s is not None and s <= seconds]
    above = [s for s in sayable if s is not None and s >= seconds]
    return sorted({*(below[-1:]), *(above[:1])})


# -- PDUs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BasicParams:
    """What fieldgw sets and reads back: the minimum reporting interval code and the report type."""

    interval_code: int
    report_type: int

    @property
    def min_interval_s(self) -> int | None:
        return interval_seconds(self.interval_code)

    @property
    def report_type_name(self) -> str:
        return REPORT_TYPE_NAMES[self.report_type]


@dataclass(frozen=True)
class Response:
    """A team radio's response: which extension it answers, its result, and (report response) the parameters."""

    extension: int
    result: int
    params: BasicParams | None = None

    @property
    def ok(self) -> bool:
        return self.result == SUCCESS


def _pack(fields: list[tuple[int, int]]) -> bytes:
    word, bits = 0, 0
    for value, width in fields:
        if not 0 <= value < 1 << width:
            raise LipControlError(f"{value} does not fit in {width} bits")
        word, bits = (word << width) | value, bits + width
    pad = -bits % 8
    return (word << pad).to_bytes((bits + pad) // 8, "big")


def _head(extension: int, rr: int) -> list[tuple[int, int]]:
    return [(PID_LIP, 8), (PDU_TYPE_EXTENDED, 2), (extension, 4), (rr, 1)]


def set_request(params: BasicParams) -> bytes:
    """Basic location parameters REQUEST: 24 bits with the PID."""
    if params.interval_code >= INTERVAL_RESERVED_FROM:
        raise LipControlError(f"interval code {params.interval_code} is reserved")
    return _pack(_head(EXT_BASIC_PARAMS, REQUEST) + [(params.interval_code, 7), (params.report_type, 2)])


def report_request() -> bytes:
    """Report basic location parameters REQUEST: 15 bits with the PID (2 bytes)."""
    return _pack(_head(EXT_REPORT_BASIC_PARAMS, REQUEST))


def set_response(result: int) -> bytes:
    """Basic location parameters RESPONSE (a team radio's; for tests): 23 bits with the PID."""
    return _pack(_head(EXT_BASIC_PARAMS, RESPONSE) + [(result, 8)])


def report_response(result: int, params: BasicParams | None = None) -> bytes:
    """Report basic location parameters RESPONSE: 32 bits with the parameters, 23 without."""
    fields = _head(EXT_REPORT_BASIC_PARAMS, RESPONSE) + [(result, 8)]
    if params is not None:
        fields += [(params.interval_code, 7), (params.report_type, 2)]
    return _pack(fields)


class _Bits:
    def __init__(self, data: bytes, length: int) -> None:
        self.word, self.total = int.from_bytes(data, "big"), len(data) * 8
        self.length, self.pos = min(length, self.total), 0

    def get(self, width: int) -> int:
        if self.pos + width > self.length:
            raise LipControlError(f"PDU ends after {self.length} bits; {self.pos + width} needed")
        self.pos += width
        return (self.word >> (self.total - self.pos)) & ((1 << width) - 1)


def is_control(pdu: bytes) -> bool:
    """A LIP PDU with extension (PDU type 01), i.e. not a short location report."""
    return len(pdu) >= 2 and pdu[0] == PID_LIP and pdu[1] >> 6 == PDU_TYPE_EXTENDED


def head(pdu: bytes, bits: int | None = None) -> tuple[int, int]:
    """(PDU type extension, request/response bit) of a LIP PDU with extension."""
    r = _Bits(pdu, len(pdu) * 8 if bits is None else bits)
    if r.get(8) != PID_LIP:
        raise LipControlError("not a LIP PDU")
    if (t := r.get(2)) != PDU_TYPE_EXTENDED:
        raise LipControlError(f"LIP PDU type {t} has no extension")
    return r.get(4), r.get(1)


def parse_request(pdu: bytes, bits: int | None = None) -> tuple[int, BasicParams | None]:
    """A request fieldgw sends (for tests and tools): (extension, parameters of a set request)."""
    r = _Bits(pdu, len(pdu) * 8 if bits is None else bits)
    ext, rr = head(pdu, bits)
    r.pos = _HEAD_BITS
    if rr != REQUEST:
        raise LipControlError("a response, not a request")
    if ext == EXT_BASIC_PARAMS:
        return ext, BasicParams(r.get(7), r.get(2))
    if ext == EXT_REPORT_BASIC_PARAMS:
        return ext, None
    raise LipControlError(f"LIP {EXTENSIONS.get(ext, f'extension {ext}')} request not handled")


def parse_response(pdu: bytes, bits: int | None = None) -> Response:
    """A team radio's response to one of fieldgw's requests; LipControlError for anything else."""
    r = _Bits(pdu, len(pdu) * 8 if bits is None else bits)
    ext, rr = head(pdu, bits)
    r.pos = _HEAD_BITS
    if rr != RESPONSE:
        raise LipControlError(f"LIP {EXTENSIONS.get(ext, f'extension {ext}')} request, not a response")
    if ext not in (EXT_BASIC_PARAMS, EXT_REPORT_BASIC_PARAMS):
        raise LipControlError(f"LIP {EXTENSIONS.get(ext, f'extension {ext}')} response not handled")
    result = r.get(8)
    if ext == EXT_REPORT_BASIC_PARAMS and result == SUCCESS:
        return Response(ext, result, BasicParams(r.get(7), r.get(2)))
    return Response(ext, result)


# -- the profile ----------------------------------------------------------------------

PROTOCOL = "tetra_lip"
_TOP_KEYS = {"profile", "protocol", "model", "version", "lip", "note"}
_LIP_KEYS = {"min_interval_s", "report_type"}


def check_profile(data: Any) -> list[str]:
    """Every problem with a LIP reporting profile, in words a person can act on."""
    if not isinstance(data, dict):
        return ["a LIP reporting profile is a mapping with protocol, version and lip"]
    problems = [f"unknown key {k!r} (known: {', '.join(sorted(_TOP_KEYS))})" for k in data if k not in _TOP_KEYS]
    if data.get("protocol") != PROTOCOL:
        problems.append(f"protocol: {PROTOCOL} for the tetra_pei driver (got {data.get('protocol')!r})")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append("version: the profile's version, a whole number >= 1 (raise it when the profile changes)")
    lip = data.get("lip")
    if not isinstance(lip, dict) or not lip:
        problems.append("lip: a mapping with min_interval_s and/or report_type")
        return problems
    problems += [f"lip: unknown key {k!r} (known: {', '.join(sorted(_LIP_KEYS))})" for k in lip if k not in _LIP_KEYS]
    if "min_interval_s" in lip:
        try:
            if interval_code(lip["min_interval_s"]) == 0:
                problems.append("lip.min_interval_s: at least 1 s (0 means no minimum: the radio's own triggers "
                                "alone would decide how often it reports, which fieldgw cannot audit)")
        except LipControlError as exc:
            problems.append(f"lip.min_interval_s: {exc}")
    if "report_type" in lip and lip["report_type"] not in REPORT_TYPES:
        problems.append(f"lip.report_type: one of {', '.join(REPORT_TYPES)} (got {lip['report_type']!r})")
    return problems


@dataclass(frozen=True)
class LipProfile:
    """The settings a profile wants; None: the profile leaves it as the radio has it."""

    min_interval_s: int | None = None
    report_type: str | None = None

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> LipProfile | None:
        """The profile's LIP settings, or None when it has none (not a LIP profile)."""
        if not data or data.get("protocol") != PROTOCOL or not isinstance(data.get("lip"), dict):
            return None
        lip = data["lip"]
        interval = lip.get("min_interval_s")
        return cls(None if interval is None else int(interval), lip.get("report_type"))

    def wanted(self, have: BasicParams) -> BasicParams:
        """`have` with every setting of this profile put in."""
        return BasicParams(have.interval_code if self.min_interval_s is None else interval_code(self.min_interval_s),
                           have.report_type if self.report_type is None else REPORT_TYPES[self.report_type])

    def differences(self, have: BasicParams) -> list[tuple[str, Any, Any]]:
        """(name, profile value, radio value) for each setting the radio does not hold."""
        out: list[tuple[str, Any, Any]] = []
        if self.min_interval_s is not None and have.interval_code != interval_code(self.min_interval_s):
            secs = have.min_interval_s
            out.append(("min_interval_s", self.min_interval_s, f"reserved code {have.interval_code}" if secs is None else secs))
        if self.report_type is not None and have.report_type != REPORT_TYPES[self.report_type]:
            out.append(("report_type", self.report_type, have.report_type_name))
        return out
