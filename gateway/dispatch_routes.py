"""Which channels reach a dispatch target, and which is best right now.

A target's channels, in the kit's order of preference:
  1. `mqtt`, when the kit says the device reads orders over IP (`dispatch_mqtt: true`);
  2. its own driver's text route (a radio heard over TETRA, a BeiDou card, an Iridium unit);
  3. the routes of the devices it lists in `dispatch_via` (the same team's other terminals).
The best is the first whose carrier (the modem that sends) is online now;
when none is, the first (the delivery waits for its carrier, nothing is lost).
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.dispatch_model import Delivery
from gateway.dispatch_split import fit
from gateway.driver_api import Driver, TextRoute
from gateway.model import now_ms
from gateway.registry import DeviceRegistry

MQTT = "mqtt"


class RoutePlanner:
    def __init__(self, registry: DeviceRegistry, driver_for: Callable[[str], Driver | None],
                 mqtt_targets: set[str], via: dict[str, list[str]]) -> None:
        self.registry = registry
        self.driver_for = driver_for
        self.mqtt_targets = mqtt_targets
        self.via = via

    def _route(self, device_id: str) -> TextRoute | None:
        driver = self.driver_for(device_id)
        return driver.text_route(device_id) if driver is not None else None

    def channels(self, device_id: str) -> list[TextRoute | str]:
        out: list[TextRoute | str] = [MQTT] if device_id in self.mqtt_targets else []
        for dev in (device_id, *self.via.get(device_id, ())):
            route = self._route(dev)
            if route is not None:
                out.append(route)
        return out

    def all_targets(self) -> list[str]:
        """Every device some channel reaches, except talk groups (their members are targets themselves)."""
        out = []
        for d in self.registry.all():
            own = self._route(d.id)
            if (own is None or not own.group) and self.channels(d.id):
                out.append(d.id)
        return out

    def _online(self, carrier: str) -> bool:
        dev = self.registry.get(carrier)
        return dev is not None and dev.online

    def _best(self, device_id: str, tried: list[str]) -> TextRoute | str | None:
        left = [c for c in self.channels(device_id) if (c if isinstance(c, str) else c.carrier) not in tried]
        if not left:
            return None
        return next((c for c in left if isinstance(c, str) or self._online(c.carrier)), left[0])

    def plan(self, device_id: str, text: str) -> Delivery:
        dl = Delivery(device=device_id, channel="none", ts_updated=now_ms())
        if not self._apply(dl, text):
            dev = self.registry.get(device_id)
            kind = dev.kind if dev else "unknown"
            dl.status, dl.detail = "failed", f"no channel reaches {device_id} (a {kind} with no text route)"
        return dl

    def next_channel(self, dl: Delivery, text: str, reason: str) -> bool:
        """Move a delivery to the target's next untried channel; False when none is left."""
        dl.tried.append(MQTT if dl.channel == MQTT else dl.carrier)
        before = dl.channel
        if not self._apply(dl, text):
            return False
        dl.note = f"{before} gave up ({reason}); {dl.note}".rstrip("; ")
        return True

    def route_for(self, dl: Delivery) -> TextRoute | None:
        """The current route of the delivery's channel (its limit may have changed since planning)."""
        return next((c for c in self.channels(dl.device)
                     if isinstance(c, TextRoute) and c.carrier == dl.carrier and c.to == dl.to), None)

    def reroute(self, dl: Delivery, text: str, reason: str) -> bool:
        """Move a delivery that has not started to a channel whose modem is online now, if it has one."""
        for c in self.channels(dl.device):
            if isinstance(c, TextRoute) and c.carrier != dl.carrier and c.carrier not in dl.tried and self._online(c.carrier):
                parts, note = fit(text, c.size, c.max_size, c.max_parts)
                dl.channel, dl.carrier, dl.to, dl.parts, dl.note = c.channel, c.carrier, c.to, parts, note
                dl.parts_done = 0
                return True
        return False

    def _apply(self, dl: Delivery, text: str) -> bool:
        best = self._best(dl.device, dl.tried)
        if best is None:
            return False
        dl.parts_done = dl.attempts = 0
        if isinstance(best, str):
            dl.channel, dl.carrier, dl.to, dl.parts, dl.note = MQTT, "", dl.device, [text], ""
            return True
        parts, note = fit(text, best.size, best.max_size, best.max_parts)
        dl.channel, dl.carrier, dl.to, dl.parts, dl.note = best.channel, best.carrier, best.to, parts, note
        return True
