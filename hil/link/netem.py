"""Kernel-level shaping: a network namespace joined to the host by a veth pair,
with ``tc netem`` (delay, jitter, rate, loss) on both ends.

    python -m hil.link netem check
    python -m hil.link netem up --index 7 --delay-ms 300 --jitter-ms 20 --rate-kbit 64 --loss-pct 1
    python -m hil.link netem down --index 7

Namespace ``fgwlinkN``; host end ``fgwlNh`` 10.200.N.1/30, namespace end
``fgwlNn`` 10.200.N.2/30. Run a process inside with ``ip netns exec fgwlinkN CMD``.
Needs root, iproute2 (``ip``, ``tc``) and a kernel with sch_netem
(CONFIG_NET_SCH_NETEM). Without sch_netem a rate-only spec falls back to
``tbf``; anything with delay or loss fails with NetemError.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class NetemError(RuntimeError):
    pass


@dataclass(frozen=True)
class NetemSpec:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_kbit: float | None = None
    loss_pct: float = 0.0

    @property
    def needs_netem(self) -> bool:
        return bool(self.delay_ms or self.jitter_ms or self.loss_pct)

    def netem_args(self) -> list[str]:
        args = ["netem", "delay", f"{self.delay_ms:g}ms"]
        if self.jitter_ms:
            args.append(f"{self.jitter_ms:g}ms")
        if self.rate_kbit:
            args += ["rate", f"{self.rate_kbit:g}kbit"]
        if self.loss_pct:
            args += ["loss", f"{self.loss_pct:g}%"]
        return args

    def tbf_args(self) -> list[str]:
        assert self.rate_kbit
        burst = max(3200, int(self.rate_kbit * 1000 / 8 * 0.02))  # >= 2 MTUs, ~20 ms of rate
        return ["tbf", "rate", f"{self.rate_kbit:g}kbit", "burst", str(burst), "latency", "200ms"]


@dataclass(frozen=True)
class NetnsLink:
    index: int

    def __post_init__(self) -> None:
        if not 0 <= self.index <= 255:
            raise ValueError("index must be 0..255")

    @property
    def namespace(self) -> str:
        return f"fgwlink{self.index}"

    @property
    def host_if(self) -> str:
        return f"fgwl{self.index}h"

    @property
    def ns_if(self) -> str:
        return f"fgwl{self.index}n"

    @property
    def host_ip(self) -> str:
        return f"10.200.{self.index}.1"

    @property
    def ns_ip(self) -> str:
        return f"10.200.{self.index}.2"


def _ip_tc_paths() -> tuple[str | None, str | None]:
    def find(name: str) -> str | None:
        return shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    return find("ip"), find("tc")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=10, check=False)


def _must(*args: str) -> None:
    r = _run(*args)
    if r.returncode != 0:
        raise NetemError(f"{' '.join(args)}: {(r.stderr or r.stdout).strip()}")


def unavailable_reason() -> str | None:
    """Why namespaces + tc cannot be used here (None when they can)."""
    if os.geteuid() != 0:
        return "needs root"
    ip, tc = _ip_tc_paths()
    if ip is None or tc is None:
        return "needs iproute2 (ip, tc): apt-get install iproute2"
    return None


def netem_supported() -> bool:
    """Probe sch_netem inside a throw-away namespace (the host is not touched)."""
    if unavailable_reason() is not None:
        return False
    ns = f"fgwprobe{os.getpid()}"
    try:
        _must("ip", "netns", "add", ns)
        _must("ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
        return _run("tc", "-n", ns, "qdisc", "add", "dev", "p0", "root", "netem", "delay", "1ms").returncode == 0
    except NetemError:
        return False
    finally:
        _run("ip", "netns", "del", ns)


def up(link: NetnsLink, spec: NetemSpec) -> str:
    """Create the namespace and veth pair, shape both ends; returns the qdisc kind used."""
    reason = unavailable_reason()
    if reason:
        raise NetemError(reason)
    exists = _run("ip", "link", "show", link.host_if).returncode == 0
    if exists or link.namespace in _run("ip", "netns", "list").stdout.split():
        raise NetemError(f"{link.namespace}/{link.host_if} already exists (netem down --index {link.index})")
    kind = "netem" if netem_supported() else "tbf"
    if kind == "tbf" and spec.needs_netem:
        raise NetemError("this kernel has no sch_netem (CONFIG_NET_SCH_NETEM): delay, jitter and loss "
                         "need it; only rate (via tbf) is possible here")
    qdisc = spec.netem_args() if kind == "netem" else (spec.tbf_args() if spec.rate_kbit else [])
    try:
        _must("ip", "netns", "add", link.namespace)
        _must("ip", "link", "add", link.host_if, "type", "veth", "peer", "name", link.ns_if, "netns", link.namespace)
        _must("ip", "addr", "add", f"{link.host_ip}/30", "dev", link.host_if)
        _must("ip", "link", "set", link.host_if, "up")
        _must("ip", "-n", link.namespace, "addr", "add", f"{link.ns_ip}/30", "dev", link.ns_if)
        _must("ip", "-n", link.namespace, "link", "set", link.ns_if, "up")
        _must("ip", "-n", link.namespace, "link", "set", "lo", "up")
        if qdisc:
            _must("tc", "qdisc", "replace", "dev", link.host_if, "root", *qdisc)
            _must("tc", "-n", link.namespace, "qdisc", "replace", "dev", link.ns_if, "root", *qdisc)
    except NetemError:
        down(link)
        raise
    return kind if qdisc else "none"


def down(link: NetnsLink) -> None:
    """Remove the namespace (which takes both veth ends with it); idempotent."""
    _run("ip", "netns", "del", link.namespace)
    _run("ip", "link", "del", link.host_if)


@contextmanager
def netns_link(index: int, spec: NetemSpec) -> Iterator[tuple[NetnsLink, str]]:
    link = NetnsLink(index)
    kind = up(link, spec)
    try:
        yield link, kind
    finally:
        down(link)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hil.link netem", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=["check", "up", "down"])
    p.add_argument("--index", type=int, default=1, help="N in fgwlinkN and 10.200.N.0/30 (0..255)")
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--rate-kbit", type=float)
    p.add_argument("--loss-pct", type=float, default=0.0)
    a = p.parse_args(argv)
    if a.action == "check":
        reason = unavailable_reason()
        ok = reason is None and netem_supported()
        reason = reason or (None if ok else "kernel has no sch_netem (CONFIG_NET_SCH_NETEM)")
        print(json.dumps({"netem": ok, "reason": reason}))
        return 0 if ok else 1
    try:
        link = NetnsLink(a.index)
        if a.action == "down":
            down(link)
            return 0
        kind = up(link, NetemSpec(a.delay_ms, a.jitter_ms, a.rate_kbit, a.loss_pct))
    except (NetemError, ValueError) as exc:
        print(f"netem: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"namespace": link.namespace, "host": [link.host_if, link.host_ip],
                      "peer": [link.ns_if, link.ns_ip], "qdisc": kind}), flush=True)
    return 0
