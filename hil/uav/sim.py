"""Runs several vehicles over shared transports until SIGTERM/SIGINT."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from ..cliutil import print_ready, stop_signals
from .transport import Link, TcpListenLink, UdpLink
from .vehicle import Vehicle, VehicleConfig

log = logging.getLogger(__name__)


@dataclass
class SimOptions:
    vehicles: list[VehicleConfig]
    udp_out: list[tuple[str, int]] = field(default_factory=list)
    udp_listen: list[tuple[str, int]] = field(default_factory=list)
    tcp_listen: list[tuple[str, int]] = field(default_factory=list)
    print_port: bool = False


class Router:
    """Fans each vehicle's frames out to all links and incoming frames to all vehicles."""

    def __init__(self) -> None:
        self.links: list[Link] = []
        self.vehicles: list[Vehicle] = []

    def send(self, data: bytes) -> None:
        for link in self.links:
            link.send(data)

    def dispatch(self, msg: mavlink2.MAVLink_message) -> None:
        for v in self.vehicles:
            try:
                v.handle(msg)
            except Exception:  # one bad frame must not take the simulator down
                log.exception("sysid %d: error handling %s", v.sysid, msg.get_type())


async def _open_links(opts: SimOptions, router: Router) -> dict[str, list[list[object]]]:
    bound: dict[str, list[list[object]]] = {}
    for host, port in opts.udp_out:
        link: Link = await UdpLink.out(host, port, router.dispatch)
        router.links.append(link)
        bound.setdefault("udp_out_local", []).append(list(link.local_address()))
    for host, port in opts.udp_listen:
        link = await UdpLink.listen(host, port, router.dispatch)
        router.links.append(link)
        bound.setdefault("udp_listen", []).append(list(link.local_address()))
    for host, port in opts.tcp_listen:
        link = await TcpListenLink.listen(host, port, router.dispatch)
        router.links.append(link)
        bound.setdefault("tcp_listen", []).append(list(link.local_address()))
    return bound


async def run(opts: SimOptions) -> int:
    router = Router()
    try:
        with stop_signals() as stop:  # first: whoever reads the printed ports may stop us at once
            try:
                bound = await _open_links(opts, router)
            except OSError as exc:
                log.error("cannot open transport: %s", exc)
                return 1
            if opts.print_port:
                report: dict[str, object] = {}
                for key, addrs in bound.items():
                    report[key] = addrs[0]
                    if len(addrs) > 1:
                        report[f"{key}_all"] = addrs
                report["sysids"] = [v.sysid for v in opts.vehicles]
                print_ready(report)

            router.vehicles = [Vehicle(cfg, router.send) for cfg in opts.vehicles]
            for v in router.vehicles:
                v.start()
            log.info("simulating sysids %s", [v.sysid for v in router.vehicles])
            await stop.wait()
    finally:
        for v in router.vehicles:
            v.stop()
        for link in router.links:
            link.close()
        await asyncio.sleep(0)  # let transports finish closing
    log.info("stopped")
    return 0
