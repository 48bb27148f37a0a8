"""One unit (slave id) on a Modbus line: its map, schedule, online state, counters and alarms.

A unit is online while it answers. After `max_failures` polls in a row
without an answer it goes offline and is retried with bounded backoff
(jittered) while the other units on the line keep their own cadence. A
block the unit refuses with exception 0x02 (illegal data address: a
firmware without some register of the map) is read register by register
from then on, and a register still refused is left out (until the gateway
restarts) and named in the status, so one missing register never costs the
rest of the block.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from drivers.modbus_power.link import EXCEPTIONS, Answer
from drivers.modbus_power.maps import STATUS_NAMES, Block, RegisterMap
from drivers.modbus_power.thresholds import Alarms, Thresholds
from gateway.backoff import Backoff
from gateway.driver_api import DeviceSpec

DEFAULT_POLL_S = 5.0
DEFAULT_TIMEOUT_S = 1.0
DEFAULT_MAX_FAILURES = 3
DEFAULT_RETRY_MAX_S = 60.0


class Unit:
    def __init__(self, spec: DeviceSpec, rmap: RegisterMap) -> None:
        opts = spec.options
        self.id = spec.id
        self.map = rmap
        self.unit = int(opts.get("unit", rmap.default_unit))
        self.poll_s = float(opts.get("poll_s", DEFAULT_POLL_S))
        self.timeout_s = float(opts.get("timeout_s", DEFAULT_TIMEOUT_S))
        self.max_failures = int(opts.get("max_failures", DEFAULT_MAX_FAILURES))
        self.retry_max_s = max(self.poll_s, float(opts.get("retry_max_s", DEFAULT_RETRY_MAX_S)))
        self.alarms = Alarms(spec.id, Thresholds.from_options(opts.get("thresholds")))
        self.counts: Counter[str] = Counter()
        self.exceptions: Counter[int] = Counter()
        self.last_error = ""
        self.online = False
        self.given_up = False  # offline after max_failures (and told so)
        self._reset_blocks()
        self.reset_link()
        self._sent_status: dict[str, Any] = {}

    def _reset_blocks(self) -> None:
        self.blocks: list[Block] = list(self.map.blocks)
        self.unsupported: dict[str, str] = {}  # register label → why it is left out

    def reset_link(self) -> None:
        """A new run of the line: poll at once, nothing known about being online."""
        self.failures = 0
        self.next_due = 0.0
        self.online = False
        self.given_up = False
        self.backoff = Backoff(initial=max(self.poll_s, 0.05), maximum=self.retry_max_s)

    # -- outcome of one read --------------------------------------------------------
    def count(self, ans: Answer) -> None:
        self.counts["requests"] += 1
        if ans.kind == "ok":
            self.counts["answers"] += 1
            return
        self.counts[{"timeout": "timeouts", "crc": "crc_errors", "exception": "exceptions"}.get(ans.kind, "bad_answers")] += 1
        if ans.exception_code is not None:
            self.exceptions[ans.exception_code] += 1
        self.last_error = ans.detail

    def refused(self, block: Block, ans: Answer) -> None:
        """Exception 0x02 for `block`: read its registers one by one; a single one refused is left out."""
        i = self.blocks.index(block)
        parts = block.split()
        if len(parts) > 1:
            self.blocks[i:i + 1] = parts
            return
        del self.blocks[i]
        for reg in block.registers:
            self.unsupported[reg.label()] = f"exception 0x{ans.exception_code or 0:02X} ({EXCEPTIONS.get(ans.exception_code or 0, '?')})"

    # -- schedule --------------------------------------------------------------------
    def polled(self, started: float, now: float, heard: bool) -> str | None:
        """Book one poll; the reason when the unit just went offline, else None."""
        self.counts["polls"] += 1
        if heard:
            self.failures = 0
            self.given_up = False
            self.backoff = Backoff(initial=max(self.poll_s, 0.05), maximum=self.retry_max_s)
            self.next_due = max(started + self.poll_s, now + self.poll_s / 2)
            return None
        self.failures += 1
        self.counts["failed_polls"] += 1
        if self.failures < self.max_failures:
            self.next_due = max(started + self.poll_s, now + self.poll_s / 2)
            return None
        self.next_due = now + self.backoff.next_delay()
        if self.given_up:
            return None
        self.given_up = True
        self.online = False
        return f"unit {self.unit} did not answer {self.failures} polls in a row: {self.last_error}"

    # -- what the unit said -----------------------------------------------------------
    def split_values(self, values: dict[str, float]) -> tuple[dict[str, float], dict[str, Any]]:
        """(telemetry numbers, status fields) from one poll's decoded registers."""
        telemetry: dict[str, float] = {}
        status: dict[str, Any] = {}
        for name, value in values.items():
            reg = self.map.by_name(name)
            if name == "charger_stage" or (reg is not None and reg.states):
                code = int(value)
                status[name] = reg.states.get(code, f"code {code}") if reg is not None else code
                status[f"{name}_code"] = code
            elif name == "charger_fault":
                status[name] = value != 0
            elif name in STATUS_NAMES:
                status[name] = value
            else:
                telemetry[name] = value
        return telemetry, status

    def comm_status(self, transport: str) -> dict[str, Any]:
        exceptions = {f"0x{code:02X} {EXCEPTIONS.get(code, 'unknown')}": n for code, n in sorted(self.exceptions.items())}
        return {"unit": self.unit, "model": self.map.model, "map_version": self.map.version, "transport": transport,
                "timeouts": self.counts["timeouts"], "crc_errors": self.counts["crc_errors"],
                "exceptions": exceptions, "bad_answers": self.counts["bad_answers"], "last_error": self.last_error,
                "unsupported": dict(self.unsupported)}

    def status_changes(self, status: dict[str, Any]) -> dict[str, Any]:
        """The fields of `status` that differ from what was last published (and remembers them)."""
        changed = {k: v for k, v in status.items() if self._sent_status.get(k) != v}
        self._sent_status.update(changed)
        return changed

    def stats(self) -> dict[str, Any]:
        return {**dict(self.counts), "exceptions_by_code": {f"0x{c:02X}": n for c, n in self.exceptions.items()},
                "online": self.online, "unsupported": len(self.unsupported)}
