"""Runs a Gateway until SIGINT/SIGTERM, with a clean stop inside 5 s."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable

from gateway.app import Gateway, GatewayOptions
from gateway.kit import LoadedKit

log = logging.getLogger(__name__)


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_gateway(loaded: LoadedKit, opts: GatewayOptions,
                      started: Callable[[Gateway], Awaitable[None]] | None = None) -> int:
    stop = stop_on_signals()
    gw = Gateway(loaded, opts)
    try:
        await gw.start()
    except (OSError, RuntimeError) as exc:
        log.error("cannot start: %s", exc)
        await gw.stop()
        return 1
    # Everything built at start-up lives for the whole run: keep it out of the collector's way,
    # whose full passes over it paused the loop for 20-60 ms at high message rates.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)  # fewer young-generation passes: half the cost of a put() was the collector
    log.info("fieldgw %s running kit %s: HTTP %s://%s:%d, MQTT %s", gw.version, loaded.kit.kit, gw.http_scheme,
             opts.http_host, gw.http_port, gw.broker_url)
    if gw.http_scheme == "http" and opts.http_host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("HTTP on %s without TLS: passwords and bearer tokens cross the network in clear text; "
                    "give the kit http.tls_cert and http.tls_key", opts.http_host)
    try:
        if started is not None:
            await started(gw)
        await stop.wait()
    finally:
        log.info("stopping")
        await asyncio.wait_for(gw.stop(), 4.5)
    return 0
