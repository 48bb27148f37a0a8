"""One AT interface of the terminal (the pty, or one TCP connection).

Characters are echoed as they are taken in (``ATE0`` turns that off, after
echoing itself); a command ends at CR, LF is ignored, backspace edits.
Answers are V.250 verbose: ``\\r\\n<line>\\r\\n`` for the information lines,
then ``\\r\\nOK\\r\\n`` or ``\\r\\nERROR\\r\\n``. Commands, per
docs/serial-protocols.md "Satellite terminal status" (forms are taken exactly):

    AT  ATE0 ATE1            → OK
    AT_ISIG                  → _ISIG: <C/N0 dBHz, one decimal>
    AT+CGREG?  AT+CGREG=<n>  → +CGREG: <n>,<stat>   (n 1|2: unsolicited +CGREG: <stat> on change)
    AT+CGACT?                → +CGACT: <cid>,<0|1> per defined context
    AT+CGACT=<0|1>[,<cid>…]  activate (only while registered) / deactivate; no cid: all
    AT_IGPS?                 → _IGPS: <fix 0-3>,<lat>,<lon>   (6 decimals)
    AT+CGDCONT?              → +CGDCONT: <cid>,"IP","<APN>","<addr>",0,0 per defined context
    AT+CGDCONT=<cid>[,"IP","<APN>"]   define / (cid alone) undefine an inactive context
    AT+CGPADDR[=<cid>,…]     → +CGPADDR: <cid>,"<addr>" per active context (named: per cid)
    anything else            → ERROR
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .terminal import DEFAULT_APN, Context, Terminal, check_cid, sorted_contexts

MAX_LINE = 1024
CR, LF, BS, DEL = 0x0D, 0x0A, 0x08, 0x7F


class AtError(Exception):
    """The command is answered ERROR."""


@dataclass
class Counters:
    commands: int = 0
    errors: int = 0
    overflows: int = 0
    by_command: dict[str, int] = field(default_factory=dict)


class AtSession:
    def __init__(self, terminal: Terminal, write: Callable[[bytes], object], counters: Counters) -> None:
        self.t = terminal
        self.write = write
        self.counters = counters
        self.echo = True
        self.cgreg_n = 0
        self._line = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> None:
        echo_from = 0
        for i, byte in enumerate(data):
            if byte == CR:
                if self.echo:
                    self.write(data[echo_from:i + 1])
                echo_from = i + 1
                line, overflow = self._line.decode("ascii", "replace"), self._overflow
                self._line.clear()
                self._overflow = False
                if overflow:
                    self.counters.overflows += 1
                    self._answer([], ok=False)
                elif line.strip():
                    self.command(line.strip())
            elif byte == LF:
                continue
            elif byte in (BS, DEL):
                del self._line[-1:]
            elif len(self._line) < MAX_LINE:
                self._line.append(byte)
            else:
                self._overflow = True
        if self.echo and echo_from < len(data):
            self.write(data[echo_from:])

    def command(self, line: str) -> None:
        self.counters.commands += 1
        if line[:2].upper() != "AT":
            self.counters.errors += 1
            self._answer([], ok=False)
            return
        body = line[2:]
        try:
            lines = self._run(body)
        except (AtError, ValueError):
            self.counters.errors += 1
            self._answer([], ok=False)
            return
        name = body.upper().split("=", 1)[0].rstrip("?") or "AT"
        self.counters.by_command[name] = self.counters.by_command.get(name, 0) + 1
        self._answer(lines, ok=True)

    def unsolicited(self, stat: int) -> None:
        if self.cgreg_n:
            self.write(f"\r\n+CGREG: {stat}\r\n".encode())

    def _answer(self, lines: list[str], ok: bool) -> None:
        info = "".join(f"\r\n{line}\r\n" if i == 0 else f"{line}\r\n" for i, line in enumerate(lines))
        self.write((info + ("\r\nOK\r\n" if ok else "\r\nERROR\r\n")).encode("ascii"))

    # ---------------------------------------------------------------- commands

    def _run(self, body: str) -> list[str]:
        upper = body.upper()
        t = self.t
        if upper == "":
            return []
        if upper in ("E", "E0", "E1"):
            self.echo = upper == "E1"
            return []
        if upper == "_ISIG":
            return [f"_ISIG: {t.cn0_reading():.1f}"]
        if upper == "_IGPS?":
            fix, lat, lon = t.gps
            return [f"_IGPS: {fix},{lat:.6f},{lon:.6f}"]
        if upper == "+CGREG?":
            return [f"+CGREG: {self.cgreg_n},{t.reg}"]
        if upper.startswith("+CGREG="):
            n = _int(upper[7:])
            if not 0 <= n <= 2:
                raise AtError
            self.cgreg_n = n
            return []
        if upper == "+CGACT?":
            return [f"+CGACT: {c.cid},{int(c.active)}" for c in sorted_contexts(t)]
        if upper.startswith("+CGACT="):
            return self._cgact(_args(body[7:]))
        if upper == "+CGDCONT?":
            return [f'+CGDCONT: {c.cid},"IP","{c.apn}","{c.address if c.active else "0.0.0.0"}",0,0'
                    for c in sorted_contexts(t)]
        if upper.startswith("+CGDCONT="):
            return self._cgdcont(_args(body[9:]))
        if upper in ("+CGPADDR", "+CGPADDR="):
            return [f'+CGPADDR: {c.cid},"{c.address}"' for c in sorted_contexts(t) if c.active]
        if upper.startswith("+CGPADDR="):
            return [self._cgpaddr(self._context(_int(a))) for a in _args(body[9:])]
        raise AtError

    def _context(self, cid: int) -> Context:
        context = self.t.contexts.get(check_cid(cid))
        if context is None:
            raise AtError
        return context

    def _cgact(self, args: list[str]) -> list[str]:
        if not args or args[0] not in ("0", "1"):
            raise AtError
        targets = [self._context(_int(a)) for a in args[1:]] or sorted_contexts(self.t)
        if args[0] == "1" and not self.t.registered:
            raise AtError
        for context in targets:
            context.active = args[0] == "1"
        return []

    def _cgdcont(self, args: list[str]) -> list[str]:
        cid = check_cid(_int(args[0]) if args else -1)
        existing = self.t.contexts.get(cid)
        if existing is not None and existing.active:
            raise AtError
        if len(args) == 1:
            self.t.contexts.pop(cid, None)
            return []
        if args[1].upper() != "IP" or len(args) > 3:
            raise AtError
        apn = args[2] if len(args) > 2 and args[2] else DEFAULT_APN
        self.t.contexts[cid] = Context(cid, apn=apn)
        return []

    @staticmethod
    def _cgpaddr(context: Context) -> str:
        return f'+CGPADDR: {context.cid},"{context.address}"' if context.active else f"+CGPADDR: {context.cid}"


def _int(text: str) -> int:
    text = text.strip()
    if not text.isdigit():
        raise AtError
    return int(text)


def _args(text: str) -> list[str]:
    """Comma-separated parameters; double quotes protect commas and are removed."""
    out, cur, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if quoted:
        raise AtError
    out.append("".join(cur).strip())
    return out if out != [""] else []
