"""Control-port commands of the TETRA simulator (added to ControlPort's `unplug` and `stats`).

received [clear]      every SDS the host sent (decoded; pdu_hex as typed)
text ISSI TEXT...     a radio sends a text SDS (Latin-1, or UCS-2 when needed)
lip ISSI [LAT LON]    one LIP short location report now (a team is moved there)
noise HEX             these raw bytes on the serial line
cut [TEXT]            the first half of a line, no terminator
cme N                 the next AT command answers +CME ERROR: N
csq N | creg N        signal (0..31, 99) / registration state (0..5)
teams                 team radios: positions and counters
status [ISSI]         team radios' LIP parameters (interval code and seconds, report type, what it
                      really does, supported report types, requests answered/refused)
lip_interval ISSI S   change a team radio's reporting interval behind the gateway's back (S >= 0 seconds;
                      it reads back as the nearest code: exact for 0-59 s and whole minutes to 60 min)
lip_report_type ISSI TYPE        long | long_time_elapsed | long_time_of_position | short
lip_support ISSI TYPE[,TYPE...]  the report types it accepts (all by default); others are refused
lip_mute ISSI N       its next N LIP control requests get no answer (0: answer again)
lip_refuse ISSI CODE  it answers every LIP control request with this result code (1..255; 0: as usual)
"""
from __future__ import annotations

import math
import time
from typing import Any

from ..serialport import Handler
from . import lipctl
from .radio import Radio
from .team import Team, check_position, parse_ssi

DEFAULT_CUT = "+CTSDSR: 12,2002,0,2001,0,84"


def _float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"not a finite number: {text}")
    return v


def _int_in(args: list[str], low: int, high: int, usage: str) -> int:
    if len(args) != 1 or not args[0].isdigit() or not low <= int(args[0]) <= high:
        raise ValueError(f"usage: {usage}")
    return int(args[0])


def _report_type(text: str) -> int:
    if text not in lipctl.REPORT_TYPE_CODES:
        raise ValueError(f"report type must be one of {', '.join(lipctl.REPORT_TYPE_CODES)}, got {text!r}")
    return lipctl.REPORT_TYPE_CODES[text]


def handlers(radio: Radio) -> dict[str, Handler]:
    def team_of(args: list[str], nargs: int, usage: str) -> Team:
        if len(args) != nargs:
            raise ValueError(f"usage: {usage}")
        team = radio.teams.get(parse_ssi(args[0]))
        if team is None:
            raise ValueError(f"{args[0]} is not a team radio")
        return team

    async def received(args: list[str]) -> dict[str, Any]:
        messages = list(radio.received)
        if args == ["clear"]:
            radio.received.clear()
        elif args:
            raise ValueError("usage: received [clear]")
        return {"ok": True, "messages": messages}

    async def text(args: list[str]) -> dict[str, Any]:
        if len(args) < 2:
            raise ValueError("usage: text FROM_ISSI TEXT...")
        # the control line is split on whitespace; single spaces rejoin the words
        return {"ok": True, **radio.send_text(parse_ssi(args[0]), " ".join(args[1:]))}

    async def lip(args: list[str]) -> dict[str, Any]:
        if len(args) not in (1, 3):
            raise ValueError("usage: lip ISSI [LAT LON]")
        issi = parse_ssi(args[0])
        lat, lon = (_float(args[1]), _float(args[2])) if len(args) == 3 else (None, None)
        if lat is not None and lon is not None:
            check_position(lat, lon)
        return {"ok": True, **radio.send_lip(issi, lat, lon)}

    async def noise(args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise ValueError("usage: noise HEX")
        data = bytes.fromhex(args[0])
        return {"ok": True, "bytes": len(data), "result": radio.emit(data)}

    async def cut(args: list[str]) -> dict[str, Any]:
        line = " ".join(args) or DEFAULT_CUT
        fragment = line[: max(1, len(line) // 2)]
        return {"ok": True, "written": fragment, "result": radio.emit(fragment.encode("utf-8"))}

    async def cme(args: list[str]) -> dict[str, Any]:
        radio.state.cme_next = _int_in(args, 0, 999, "cme N")
        return {"ok": True, "cme_next": radio.state.cme_next}

    async def csq(args: list[str]) -> dict[str, Any]:
        v = _int_in(args, 0, 99, "csq N (0..31, 99 unknown)")
        if 31 < v < 99:
            raise ValueError("usage: csq N (0..31, 99 unknown)")
        radio.state.csq = v
        return {"ok": True, "csq": v}

    async def creg(args: list[str]) -> dict[str, Any]:
        radio.set_creg(_int_in(args, 0, 5, "creg N (0..5; 1 registered)"))
        return {"ok": True, "creg": radio.state.creg}

    async def teams(args: list[str]) -> dict[str, Any]:
        now = time.monotonic()
        for team in radio.teams.values():
            team.advance(now)
        return {"ok": True, "teams": [t.to_json() for t in radio.teams.values()], "groups": sorted(radio.cfg.groups)}

    async def status(args: list[str]) -> dict[str, Any]:
        if not args:
            return {"ok": True, "teams": [t.lip_params() for t in radio.teams.values()]}
        return {"ok": True, **team_of(args, 1, "status [ISSI]").lip_params()}

    async def lip_interval(args: list[str]) -> dict[str, Any]:
        team = team_of(args, 2, "lip_interval ISSI SECONDS")
        seconds = _float(args[1])
        if seconds < 0:
            raise ValueError("usage: lip_interval ISSI SECONDS (>= 0; 0 = no periodic reports)")
        radio.set_lip_interval(team.issi, seconds)
        return {"ok": True, **team.lip_params()}

    async def lip_report_type(args: list[str]) -> dict[str, Any]:
        team = team_of(args, 2, "lip_report_type ISSI TYPE")
        team.report_type = _report_type(args[1])
        return {"ok": True, **team.lip_params()}

    async def lip_support(args: list[str]) -> dict[str, Any]:
        team = team_of(args, 2, "lip_support ISSI TYPE[,TYPE...]")
        team.report_types_supported = frozenset(_report_type(t) for t in args[1].split(","))
        return {"ok": True, **team.lip_params()}

    async def lip_mute(args: list[str]) -> dict[str, Any]:
        team = team_of(args, 2, "lip_mute ISSI N")
        team.lip_mute = _int_in(args[1:], 0, 1000, "lip_mute ISSI N (0..1000)")
        return {"ok": True, **team.lip_params()}

    async def lip_refuse(args: list[str]) -> dict[str, Any]:
        team = team_of(args, 2, "lip_refuse ISSI CODE")
        team.lip_refuse = _int_in(args[1:], 0, 255, "lip_refuse ISSI CODE (0..255; 0 = answer as usual)")
        return {"ok": True, **team.lip_params()}

    return {"received": received, "text": text, "lip": lip, "noise": noise, "cut": cut, "cme": cme,
            "csq": csq, "creg": creg, "teams": teams, "status": status, "lip_interval": lip_interval,
            "lip_report_type": lip_report_type, "lip_support": lip_support, "lip_mute": lip_mute,
            "lip_refuse": lip_refuse}
