"""What an MT message means: fieldgw's compact reports (drivers/compact_report.py) → the model.

  0x03 position batch → Positions (`source: sbd`) on the remote device whose
       `options.address` is the batch's sender id; an unlisted sender is an
       info event on the modem (and counted)
  0x04 text           → a `message` event on the modem: the 0x04 layout names
       only the addressee, and an MT message carries no sender of its own
  anything else       → an `undecodable_mt` warning event ("undecodable MT message …")
                        with the hex, counted
"""

from __future__ import annotations

from drivers import compact_report
from drivers.common.terminal_driver import TerminalDriver
from gateway.model import Position, now_ms

PLAUSIBLE_TS = 1_000_000_000  # 2001: a report's own time before this is a unit without a clock
HEX_SHOWN = 270  # bytes of an undecodable message shown in its event (an MT message is at most 270)


def handle_mt(drv: TerminalDriver, data: bytes, mtmsn: int) -> None:
    drv.counts["mt_received"] += 1
    try:
        report = compact_report.decode(data)
    except compact_report.ReportError as exc:
        drv.counts["mt_undecodable"] += 1
        drv.event(drv.modem.id, "undecodable_mt", "warning",
                  f"undecodable MT message {mtmsn} ({len(data)} bytes), not a fieldgw report: {exc}",
                  hex=data[:HEX_SHOWN].hex(), length=len(data), mtmsn=mtmsn)
        return
    if report.kind == "text":
        drv.counts["mt_texts"] += 1
        drv.event(drv.modem.id, "message", "info", report.text, to=report.to, channel="sbd", mtmsn=mtmsn)
        return
    if report.sender is None:  # 0x01 / 0x02 name no sender; on SBD nothing else does either
        drv.counts["mt_no_sender"] += 1
        drv.event(drv.modem.id, "undecodable_mt", "warning",
                  f"undecodable MT message {mtmsn}: a position without a sender id (type 0x{data[0]:02x}); "
                  "SBD units must send position batches (0x03)",
                  hex=data[:HEX_SHOWN].hex(), length=len(data), mtmsn=mtmsn)
        return
    drv.counts["mt_positions"] += len(report.fixes)
    dev = drv.heard(report.sender)
    if dev is None:
        last = max(report.fixes, key=lambda f: f.ts)
        drv.event(drv.modem.id, "unlisted_sender", "info",
                  f"{len(report.fixes)} position(s) from Iridium sender {report.sender!r}, which the kit does not list",
                  sender=report.sender, lat=last.lat, lon=last.lon, ts=last.ts * 1000, mtmsn=mtmsn)
        return
    for fix in sorted(report.fixes, key=lambda f: f.ts):
        ts = fix.ts * 1000 if fix.ts >= PLAUSIBLE_TS else now_ms()  # a unit without a clock yet: arrival time
        drv.ctx.publish(Position(dev.id, ts, fix.lat, fix.lon, fix.alt_m, fix.heading_deg,
                                 fix.speed_mps, fix.fix, "sbd"))  # type: ignore[arg-type]
