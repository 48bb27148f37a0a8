"""Prometheus text for `/metrics`, read from the live parts at scrape time.

A custom collector per scrape, so nothing is counted twice and the numbers
are the same ones the API and the device status show.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gateway.app import Gateway


class _GatewayCollector(Collector):
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        gw = self.gw
        online = GaugeMetricFamily("fieldgw_device_online", "1 when the device is online", labels=["device", "kind"])
        for dev in gw.registry.all():
            online.add_metric([dev.id, dev.kind], 1.0 if dev.online else 0.0)
        yield online
        published = CounterMetricFamily("fieldgw_bus_messages", "messages published on the internal bus")
        published.add_metric([], gw.bus.published)
        yield published
        dropped = CounterMetricFamily("fieldgw_bus_dropped", "messages dropped by a full bus subscriber queue", labels=["subscriber"])
        for name, s in gw.bus.stats().items():
            dropped.add_metric([name.split(":")[0]], s["dropped"])
        yield dropped
        frames = CounterMetricFamily("fieldgw_link_frames", "frames per link and outcome", labels=["transport", "outcome"])
        restarts = CounterMetricFamily("fieldgw_link_restarts", "driver restarts per link", labels=["transport"])
        for link in gw.supervisor.stats():
            restarts.add_metric([str(link["transport"])], float(link["restarts"]))  # type: ignore[arg-type]
            for outcome, value in (link.get("frames") or {}).items():  # type: ignore[union-attr]
                frames.add_metric([str(link["transport"]), outcome], float(value))
        yield frames
        yield restarts
        if gw.uplink is not None:
            up = gw.uplink.stats()
            pending = GaugeMetricFamily("fieldgw_uplink_pending", "data messages waiting for the broker's PUBACK")
            pending.add_metric([], up["pending"])
            yield pending
            sent = CounterMetricFamily("fieldgw_uplink_published", "data messages acknowledged by the broker")
            sent.add_metric([], up["published"])
            yield sent
            lost = CounterMetricFamily("fieldgw_uplink_dropped", "data messages dropped before reaching the broker")
            lost.add_metric([], up["dropped"])
            yield lost


def render_metrics(gw: Gateway) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_GatewayCollector(gw))
    return generate_latest(registry), CONTENT_TYPE_LATEST
