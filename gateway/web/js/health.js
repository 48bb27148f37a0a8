// The kit health summary from GET /api/v1/health (open route), refreshed periodically:
// overall status, devices online, battery time left, uplinks, live video, the outbox backlog.
"use strict";

import { h, replace } from "./dom.js";
import { t } from "./i18n.js";
import { api } from "./api.js";

export class HealthView {
  constructor(chipsEl, detailEl) {
    this.chipsEl = chipsEl;
    this.detailEl = detailEl;
    this.last = null;
    this.updated = null;
  }

  async refresh() {
    try {
      this.last = await api("/api/v1/health");
      this.updated = Date.now();
    } catch (e) {
      this.last = { status: "unknown", error: e.message };
    }
    this.render();
    return this.last;
  }

  render() {
    const hl = this.last;
    if (!hl) return;
    const kit = hl.kit || {};
    const outbox = hl.outbox || {};
    const uplinks = Array.isArray(hl.uplinks) ? hl.uplinks : [];
    const chips = [];
    const status = hl.status === "ok" || hl.status === "degraded" ? hl.status : "unknown";
    chips.push(h("span", { class: `chip health-${status}`, dataset: { health: status } }, t(`health.${status}`)));
    if (hl.devices) chips.push(h("span", { class: "chip" }, t("health.devices", hl.devices)));
    if ("battery_time_left_h" in kit) {
      const left = kit.battery_time_left_h;
      chips.push(h("span", { class: `chip${typeof left === "number" && left < 2 ? " bad" : ""}`, dataset: { battery: String(left) } },
        typeof left === "number" ? t("health.battery", { h: left.toFixed(1) }) : t("health.battery_none")));
    }
    for (const u of uplinks) {
      const up = u.connected && u.healthy !== false;
      chips.push(h("span", { class: `chip uplink ${up ? "good" : "bad"}${u.active ? " active" : ""}`,
        title: `${t("health.uplink")} ${u.name}${u.last_error ? `: ${u.last_error}` : ""}` },
        `${u.name}: ${up ? t("health.uplink_up") : t("health.uplink_down")}${u.active ? ` (${t("health.active")})` : ""}`));
    }
    if ("streams_live" in kit) chips.push(h("span", { class: "chip" }, t("health.streams", { live: kit.streams_live, total: kit.streams_total })));
    if (typeof outbox.messages === "number") {
      const ages = Object.values(outbox.backlog || {}).map(b => b.oldest_age_s || 0);
      const age = ages.length ? Math.max(...ages) : 0;
      chips.push(h("span", { class: `chip${outbox.messages > 0 ? " warn" : ""}`, dataset: { backlog: String(outbox.messages) },
        title: age ? t("health.backlog_age", { s: Math.round(age) }) : "" }, t("health.backlog", { n: outbox.messages })));
    }
    replace(this.chipsEl, chips);
    // the detail box: each battery and each uplink
    const batteries = Object.entries(kit.batteries || {}).map(([id, b]) => h("div", { class: "hl-row" },
      h("span", {}, id), h("span", {}, typeof b.soc_pct === "number" ? `${Math.round(b.soc_pct)}%` : t("common.none")),
      h("span", { class: "muted" }, typeof b.trend_pct_per_h === "number" ? `${b.trend_pct_per_h} %/h` : ""),
      h("span", {}, typeof b.time_left_h === "number" ? `${b.time_left_h} h` : "")));
    const links = uplinks.map(u => h("div", { class: "hl-row" }, h("span", {}, u.name),
      h("span", { class: u.connected && u.healthy !== false ? "good" : "bad" }, u.connected && u.healthy !== false ? t("health.uplink_up") : t("health.uplink_down")),
      h("span", { class: "muted" }, u.active ? t("health.active") : ""),
      h("span", { class: "muted" }, typeof u.backlog === "number" ? t("health.backlog", { n: u.backlog }) : "")));
    replace(this.detailEl, batteries, links,
      this.updated ? h("div", { class: "muted small" }, t("health.updated", { time: new Date(this.updated).toLocaleTimeString(undefined, { hour12: false }) })) : null);
  }
}
