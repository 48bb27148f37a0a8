"""LIP long PDUs for reporting control (TS 100 392-18-1), as docs/serial-protocols.md
("LIP reporting control") lays them out: the team radio's side.

After the PID 0x0A: PDU type 2 (`01`, with extension), PDU type extension 4,
request/response 1 (0 request, 1 response), then per extension:

- `0101` Basic location parameters: request = minimum reporting interval 7 +
  report type 2; response = result code 8 (23 bits with the PID).
- `1001` Report basic location parameters: request = nothing more (15 bits);
  response = result code 8, and on success minimum reporting interval 7 +
  report type 2 (32 bits).

Bits after the fields read are ignored. The interval coding and the result
codes other than 0x00 are the spec page's [unverified] choices.
"""
from __future__ import annotations

from dataclasses import dataclass

from .bits import BitReader, BitWriter
from .lip import PID_LIP

PDU_TYPE_SHORT = 0b00
PDU_TYPE_EXTENDED = 0b01
EXT_BASIC_PARAMS = 0b0101
EXT_REPORT_BASIC_PARAMS = 0b1001
HEADER_BITS = 8 + 2 + 4 + 1  # PID, PDU type, extension, request/response

REPORT_TYPES = {0b00: "long", 0b01: "long_time_elapsed", 0b10: "long_time_of_position", 0b11: "short"}
REPORT_TYPE_CODES = {name: code for code, name in REPORT_TYPES.items()}
REPORT_SHORT = REPORT_TYPE_CODES["short"]

RESULT_SUCCESS = 0x00
RESULT_SYSTEM_FAILURE = 0x01
RESULT_UNSPECIFIED_ERROR = 0x02   # what this radio answers to a value it cannot take (the spec names no better code)
RESULT_NAMES = {0x00: "success", 0x01: "system failure", 0x02: "unspecified error", 0x03: "unauthorised application",
                0x04: "unknown subscriber", 0x05: "absent subscriber", 0x06: "congestion in mobile network",
                0x07: "congestion in mobile station"}

INTERVAL_MAX_CODE = 119           # 120..127 reserved


def interval_seconds(code: int) -> int | None:
    """7-bit minimum reporting interval → seconds: 0 none, 1–59 s, 60–119 (v − 59) min; None for 120–127."""
    if not 0 <= code <= 127:
        raise ValueError(f"interval code {code} is not 7 bits")
    if code < 60:
        return code
    if code <= INTERVAL_MAX_CODE:
        return (code - 59) * 60
    return None


def interval_code(seconds: float) -> int:
    """The code nearest to `seconds` (exact for 0–59 s and whole minutes up to 60 min); 0 only for 0."""
    if seconds <= 0:
        return 0
    return min(range(1, INTERVAL_MAX_CODE + 1), key=lambda c: abs((interval_seconds(c) or 0) - seconds))


@dataclass(frozen=True)
class ControlPdu:
    """A decoded long LIP PDU; the fields its extension has, None otherwise."""

    ext: int
    response: bool
    min_interval_code: int | None = None
    report_type: int | None = None
    result: int | None = None

    @property
    def name(self) -> str:
        what = {EXT_BASIC_PARAMS: "basic_params", EXT_REPORT_BASIC_PARAMS: "report_basic_params"}.get(
            self.ext, f"ext_{self.ext:04b}")
        return f"{what}_{'response' if self.response else 'request'}"

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"pdu": self.name, "ext": self.ext, "response": self.response}
        if self.min_interval_code is not None:
            out["min_interval_code"] = self.min_interval_code
            out["min_interval_s"] = interval_seconds(self.min_interval_code)
        if self.report_type is not None:
            out["report_type"] = REPORT_TYPES[self.report_type]
        if self.result is not None:
            out["result"] = self.result
        return out


def decode(pdu: bytes, bits: int) -> ControlPdu:
    """A long (PDU type 01) LIP PDU of `bits` bits, PID included; ValueError when it is not one or is cut short.

    Extensions other than the two above decode to their header only (what follows is not read)."""
    r = BitReader(pdu, bits)
    if r.get(8) != PID_LIP:
        raise ValueError("not a LIP PDU")
    if r.get(2) != PDU_TYPE_EXTENDED:
        raise ValueError("not a LIP PDU with extension")
    ext, response = r.get(4), bool(r.get(1))
    if ext == EXT_BASIC_PARAMS and not response:
        return ControlPdu(ext, response, min_interval_code=r.get(7), report_type=r.get(2))
    if ext == EXT_BASIC_PARAMS:
        return ControlPdu(ext, response, result=r.get(8))
    if ext == EXT_REPORT_BASIC_PARAMS and response:
        result = r.get(8)
        if result != RESULT_SUCCESS:
            return ControlPdu(ext, response, result=result)
        return ControlPdu(ext, response, result=result, min_interval_code=r.get(7), report_type=r.get(2))
    return ControlPdu(ext, response)


def _header(ext: int, response: bool) -> BitWriter:
    return BitWriter().put(PID_LIP, 8).put(PDU_TYPE_EXTENDED, 2).put(ext, 4).put(int(response), 1)


def basic_params_response(result: int) -> tuple[bytes, int]:
    """Basic location parameters response: (PDU bytes, bit length = 23)."""
    w = _header(EXT_BASIC_PARAMS, True).put(result, 8)
    return w.to_bytes(), w.length


def report_params_response(result: int, min_interval_code: int = 0,
                           report_type: int = REPORT_SHORT) -> tuple[bytes, int]:
    """Report basic location parameters response: 32 bits on success (interval and type), else 23."""
    w = _header(EXT_REPORT_BASIC_PARAMS, True).put(result, 8)
    if result == RESULT_SUCCESS:
        w.put(min_interval_code, 7).put(report_type, 2)
    return w.to_bytes(), w.length
