"""What the simulators' command lines share: argparse types, ``--log-level``, the JSON
ready line, and running until SIGTERM/SIGINT. Stdlib only (hil/ never imports the gateway).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import math
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


# -- argparse types -------------------------------------------------------------------------

def _split_hostport(text: str, host_required: bool) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or (host_required and not host) or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too); port 0..65535."""
    return _split_hostport(text, host_required=True)


def hostport_any(text: str) -> tuple[str, int]:
    """Like `hostport`, but the host may be left out: ``:14550`` is every address."""
    return _split_hostport(text, host_required=False)


def _number(text: str, unit: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number{' of ' + unit if unit else ''}, got {text!r}") from None


def non_negative(text: str, unit: str = "") -> float:
    """A finite number >= 0; `unit` (e.g. "seconds") is named in the error."""
    v = _number(text, unit)
    if not v >= 0 or math.isinf(v):
        raise argparse.ArgumentTypeError(f"must be >= 0{' ' + unit if unit else ''}, got {text}")
    return v


def positive(text: str, unit: str = "") -> float:
    """A finite number > 0; `unit` (e.g. "seconds") is named in the error."""
    v = _number(text, unit)
    if not v > 0 or math.isinf(v):
        raise argparse.ArgumentTypeError(f"must be > 0{' ' + unit if unit else ''}, got {text}")
    return v


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in low..high."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= v <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, got {v}")
        return v
    return parse


def arg_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a parser that raises ValueError: the error's text is what argparse says."""
    @functools.wraps(parse)
    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


Parser = argparse.ArgumentParser | argparse._ArgumentGroup


def add_link(parser: Parser, help: str) -> None:
    """``--link PATH`` (required): where the simulator puts the symlink to its pty."""
    parser.add_argument("--link", type=Path, required=True, metavar="PATH", help=help)


def add_control(parser: Parser, help: str) -> None:
    """``--control HOST:PORT``, the line-based control port; default 127.0.0.1:0 (any free port)."""
    parser.add_argument("--control", type=hostport, default=("127.0.0.1", 0), metavar="HOST:PORT", help=help)


def add_log_level(parser: Parser) -> None:
    parser.add_argument("--log-level", default="WARNING", type=str.upper, choices=LOG_LEVELS)


# -- running --------------------------------------------------------------------------------

def run_main(main: Coroutine[Any, Any, int], log_level: str) -> int:
    """Log to stderr at `log_level`, run `main` to its exit code; a SIGINT that comes before the
    simulator's own handlers are in place is a clean exit too."""
    logging.basicConfig(level=log_level, format=LOG_FORMAT)
    try:
        return asyncio.run(main)
    except KeyboardInterrupt:
        return 0


def print_ready(report: dict[str, Any]) -> None:
    """The one JSON line on stdout that says the simulator is ready (flushed: a pipe reads it at once)."""
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An event that SIGTERM and SIGINT set while inside; on the way out they act as usual again
    (a second signal during the cleanup that follows is not swallowed)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (if any) and wait until it has stopped."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until_signalled(ready: dict[str, Any] | None = None) -> None:
    """Print the `ready` line (unless None), then wait for SIGTERM/SIGINT. The handlers are in place
    before the line goes out (whoever reads it may stop us at once) and gone when this returns."""
    with stop_signals() as stop:
        if ready is not None:
            print_ready(ready)
        await stop.wait()
