"""Command line: ``python -m hil.camera {rtsp,ts} ...`` / ``hil.camera.main(argv)``."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from urllib.parse import urlsplit

from ..cliutil import add_log_level, hostport, positive, run_main
from .app import run
from .loop import VideoConfig
from .rtp import DEFAULT_MAX_PAYLOAD

DEFAULT_SIZE = {"h264": (1280, 720), "h265": (640, 360)}


def _udp_url(text: str) -> tuple[str, int]:
    u = urlsplit(text)
    try:
        port = u.port
    except ValueError:
        port = None
    if u.scheme != "udp" or not u.hostname or not port:
        raise argparse.ArgumentTypeError(f"expected udp://HOST:PORT, got {text!r}")
    return u.hostname, port


def _rtmp_url(text: str) -> str:
    u = urlsplit(text)
    if u.scheme != "rtmp" or not u.hostname or len(u.path.strip("/")) == 0:
        raise argparse.ArgumentTypeError(f"expected rtmp://HOST[:PORT]/APP/STREAM, got {text!r}")
    return text


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be {lo}..{hi}, got {v}")
        return v
    return parse


def _seconds(text: str) -> float:
    """> 0 and below a million."""
    v = positive(text)
    if v >= 1e6:
        raise argparse.ArgumentTypeError(f"must be < 1000000, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    video = argparse.ArgumentParser(add_help=False)
    g = video.add_argument_group("video loop")
    g.add_argument("--codec", choices=["h264", "h265"], default="h264")
    g.add_argument("--width", type=_int_range(64, 4096), help="default 1280 (h264) / 640 (h265)")
    g.add_argument("--height", type=_int_range(64, 2304), help="default 720 (h264) / 360 (h265)")
    g.add_argument("--fps", type=_int_range(1, 120), default=30)
    g.add_argument("--bitrate-kbps", type=_int_range(16, 100_000), default=2000)
    g.add_argument("--gop-s", type=_seconds, default=2.0, help="loop length = GOP length, seconds")
    g.add_argument("--print-port", action="store_true", help="print one JSON line with the URL once ready")
    g.add_argument("--stats-interval", type=_seconds, metavar="S",
                   help="log a JSON stats line (CPU share, clients, frames) to stderr every S seconds")
    add_log_level(g)
    p = argparse.ArgumentParser(prog="python -m hil.camera", description="Video device simulators")
    sub = p.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("rtsp", parents=[video], help="RTSP 1.0 IP camera (TCP interleaved and UDP RTP)")
    r.add_argument("--listen", type=hostport, default=("127.0.0.1", 8554), metavar="HOST:PORT")
    r.add_argument("--path", default="/stream")
    r.add_argument("--session-timeout", type=_seconds, default=60.0, metavar="S")
    r.add_argument("--max-payload", type=_int_range(200, 65000), default=DEFAULT_MAX_PAYLOAD,
                   help="largest RTP payload before FU fragmentation")
    t = sub.add_parser("ts", parents=[video], help="body-worn transmitter: MPEG-TS over UDP (and/or RTMP)")
    t.add_argument("--to", type=_udp_url, metavar="udp://HOST:PORT", help="push MPEG-TS over UDP")
    t.add_argument("--multicast-ttl", type=_int_range(0, 255), default=1)
    t.add_argument("--rtmp", type=_rtmp_url, metavar="rtmp://HOST:PORT/APP/STREAM",
                   help="also (or only) push FLV over RTMP; reconnects every second after a failure")
    return p


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, VideoConfig]:
    parser = build_parser()
    a = parser.parse_args(argv)
    dw, dh = DEFAULT_SIZE[a.codec]
    cfg = VideoConfig(codec=a.codec, width=a.width or dw, height=a.height or dh, fps=a.fps,
                      bitrate_kbps=a.bitrate_kbps, gop_s=a.gop_s)
    try:
        cfg.validate()
    except ValueError as exc:
        parser.error(str(exc))
    if a.mode == "rtsp" and not a.path.strip("/"):
        parser.error("--path must not be empty")
    if a.mode == "ts" and not (a.to or a.rtmp):
        parser.error("need --to udp://HOST:PORT and/or --rtmp rtmp://HOST:PORT/APP/STREAM")
    return a, cfg


def main(argv: list[str] | None = None) -> int:
    a, cfg = parse_args(argv)
    return run_main(run(a, cfg), a.log_level)
