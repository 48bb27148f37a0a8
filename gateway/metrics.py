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
        connected = GaugeMetricFamily("fieldgw_uplink_connected", "1 when the uplink's MQTT connection is up", labels=["uplink"])
        active = GaugeMetricFamily("fieldgw_uplink_active", "1 for the uplink carrying the traffic", labels=["uplink"])
        sent_bytes = CounterMetricFamily("fieldgw_uplink_sent_bytes", "bytes published per uplink", labels=["uplink"])
        for up in gw.uplinks.uplink_stats():
            connected.add_metric([up["name"]], 1.0 if up["connected"] else 0.0)
            active.add_metric([up["name"]], 1.0 if up["active"] else 0.0)
            sent_bytes.add_metric([up["name"]], up["bytes_sent"])
        yield connected
        yield active
        yield sent_bytes
        ob = gw.uplinks.outbox_stats()
        backlog = GaugeMetricFamily("fieldgw_outbox_messages", "messages waiting for a PUBACK, per class", labels=["class"])
        age = GaugeMetricFamily("fieldgw_outbox_oldest_age_seconds", "age of the oldest waiting message, per class", labels=["class"])
        drops = CounterMetricFamily("fieldgw_outbox_dropped", "messages dropped (disk cap, memory while the disk is full)", labels=["class"])
        for name, c in ob["backlog"].items():
            backlog.add_metric([name], c["messages"])
            age.add_metric([name], c["oldest_age_s"])
            drops.add_metric([name], c["dropped"])
        yield backlog
        yield age
        yield drops
        size = GaugeMetricFamily("fieldgw_outbox_bytes", "bytes in the outbox (counted against its cap)")
        size.add_metric([], ob["bytes"])
        yield size
        thinned = CounterMetricFamily("fieldgw_outbox_thinned", "positions not queued because of backlog thinning")
        thinned.add_metric([], ob["thinned"])
        yield thinned
        sent = CounterMetricFamily("fieldgw_outbox_sent", "messages acknowledged by a broker")
        sent.add_metric([], ob["sent"])
        yield sent
        live = GaugeMetricFamily("fieldgw_stream_live", "1 when the stream's source is live", labels=["stream"])
        viewers = GaugeMetricFamily("fieldgw_stream_viewers", "WebRTC viewers of the stream", labels=["stream"])
        reconnects = CounterMetricFamily("fieldgw_stream_reconnects", "times the stream's source was reopened", labels=["stream"])
        kbps = GaugeMetricFamily("fieldgw_stream_bitrate_kbps", "the stream's incoming video bitrate", labels=["stream"])
        for st in gw.media.stats():
            live.add_metric([st["id"]], 1.0 if st["state"] == "live" else 0.0)
            viewers.add_metric([st["id"]], st["viewers"])
            reconnects.add_metric([st["id"]], st["reconnects"])
            kbps.add_metric([st["id"]], st["bitrate_kbps"] or 0)
        yield live
        yield viewers
        yield reconnects
        yield kbps
        rate = GaugeMetricFamily("fieldgw_outbox_send_rate", "messages acknowledged per second (10 s average)")
        rate.add_metric([], ob["send_rate_per_s"])
        yield rate


def render_metrics(gw: Gateway) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_GatewayCollector(gw))
    return generate_latest(registry), CONTENT_TYPE_LATEST
