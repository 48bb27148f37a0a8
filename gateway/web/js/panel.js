// The device list and the device panel: status, last position, battery/signal, the
// device's video, its commands (operator and admin only) with a confirmation for
// anything that moves a drone or a camera, and each command's acks as they come
// (SSE `ack`, and GET /api/v1/commands/{id} until it is final).
"use strict";

import { h, replace, clear } from "./dom.js";
import { kindIcon } from "./icons.js";
import { t, tOr } from "./i18n.js";
import { api } from "./api.js";

const KIND_ORDER = ["uav", "camera", "bodycam", "radio", "satcom", "network", "power"];
const FINAL = new Set(["done", "failed", "rejected", "timeout"]);
const POLL_MS = 2000, POLL_FOR_MS = 120000;
const STEP = s => ({ accepted: 0, sent: 1 }[s] ?? 2);

// What each command takes (CONTRACT.md §2) and whether it moves something (→ confirm).
const NUM = (min, max, step) => ({ type: "number", min, max, step });
export const COMMAND_SPECS = {
  rtl: { args: {}, moves: true },
  land: { args: {}, moves: true },
  hold: { args: {}, moves: true },
  goto: { args: { lat: NUM(-90, 90, "any"), lon: NUM(-180, 180, "any"), alt_m: NUM(-500, 10000, "any") }, moves: true },
  set_mode: { args: { mode: { type: "text", maxlength: 32, list: "flight-modes" } }, moves: true },
  ptz_move: { args: { pan: NUM(-1, 1, 0.1), tilt: NUM(-1, 1, 0.1), zoom: NUM(-1, 1, 0.1) }, moves: true, optional: true },
  ptz_stop: { args: {}, moves: false },
  ptz_preset: { args: { preset: { type: "number", min: 1, max: 255, step: 1 } }, moves: true },
  text: { args: { to: { type: "text", maxlength: 64 }, text: { type: "textarea", maxlength: 4096 } }, moves: false },
};

export function fmtNum(v, digits = 1) {
  return typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : t("common.none");
}

export function batteryOf(dev) {
  const s = dev.status || {};
  for (const k of ["battery_pct", "soc_pct", "battery_soc_pct"]) if (typeof s[k] === "number") return `${Math.round(s[k])}%`;
  return "";
}

export function signalOf(dev) {
  const s = dev.status || {};
  if (typeof s.rssi_dbm === "number") return `${s.rssi_dbm} dBm`;
  if (typeof s.signal_bars === "number") return `${s.signal_bars}/5`;
  if (typeof s.cn0_dbhz === "number") return `${s.cn0_dbhz} dBHz`;
  if (typeof s.beam_power === "number") return `${s.beam_power}`;
  if (Array.isArray(s.beam_power) && s.beam_power.length) return `beam ${Math.max(...s.beam_power.filter(Number.isFinite))}`;
  if (typeof s.latency_ms === "number") return `${Math.round(s.latency_ms)} ms`;
  if (typeof s.gps_sats === "number") return `${s.gps_sats} sats`;
  return "";
}

export class DevicePanel {
  constructor(listEl, panelEl, { store, onSelect, onOpenStream, confirm, onUnauthorized }) {
    this.listEl = listEl;
    this.panelEl = panelEl;
    this.store = store;
    this.onSelect = onSelect;
    this.onOpenStream = onOpenStream;
    this.confirm = confirm;
    this.onUnauthorized = onUnauthorized;
    this.rows = new Map();        // id → row element
    this.dirty = new Set();
    this.selected = null;
    this.commands = new Map();    // command id → record {id, device, command, args, status, detail, history: []}
    this._timer = null;
    this._cmdKey = "";
    this._skeleton();
  }

  _skeleton() {
    this.infoEl = h("div", { class: "dev-info" });
    this.streamsEl = h("div", { class: "dev-streams" });
    this.cmdEl = h("div", { class: "dev-commands" });
    this.historyEl = h("div", { class: "dev-history" });
    this.detailsEl = h("details", { class: "dev-details" });
    replace(this.panelEl, h("div", { class: "muted empty-note" }, t("device.none")));
  }

  upsert(dev) {
    this.dirty.add(dev.id);
    this._schedule();
  }

  position(id) {
    if (id === this.selected) { this.dirty.add(id); this._schedule(); }
  }

  refreshStale() {
    for (const id of this.store.devices.keys()) this.dirty.add(id);
    this._schedule();
  }

  _schedule() {
    if (this._timer) return;
    this._timer = setTimeout(() => { this._timer = null; this.flush(); }, 250);
  }

  flush() {
    let reorder = false;
    for (const id of this.dirty) {
      const dev = this.store.devices.get(id);
      if (!dev) continue;
      if (!this.rows.has(id)) reorder = true;
      this._row(dev);
    }
    if (this.dirty.has(this.selected)) this._renderInfo();
    this.dirty.clear();
    if (reorder) this._order();
  }

  _row(dev) {
    let row = this.rows.get(dev.id);
    if (!row) {
      row = h("div", { class: "dev-row", dataset: { device: dev.id }, tabindex: 0, role: "button",
        onclick: () => this.onSelect(dev.id, true), onkeydown: e => { if (e.key === "Enter") this.onSelect(dev.id, true); } },
        kindIcon(dev.kind, 16), h("span", { class: "dev-name" }), h("span", { class: "dev-meta" }), h("span", { class: "dot" }));
      this.rows.set(dev.id, row);
    }
    const stale = this.store.isStale(dev);
    row.querySelector(".dev-name").textContent = dev.name || dev.id;
    row.title = `${dev.id} · ${tOr(`kind.${dev.kind}`, dev.kind)}`;
    row.querySelector(".dev-meta").textContent = [batteryOf(dev), signalOf(dev)].filter(Boolean).join(" · ");
    row.classList.toggle("stale", stale);
    row.classList.toggle("offline", !dev.online);
    row.classList.toggle("selected", dev.id === this.selected);
  }

  _order() {
    const devs = [...this.store.devices.values()].sort((a, b) =>
      (KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind)) || a.id.localeCompare(b.id));
    for (const dev of devs) { const row = this.rows.get(dev.id); if (row) this.listEl.appendChild(row); }
  }

  select(id) {
    const prev = this.selected;
    this.selected = id;
    if (prev && this.rows.has(prev)) this.rows.get(prev).classList.remove("selected");
    if (id && this.rows.has(id)) {
      const row = this.rows.get(id);
      row.classList.add("selected");
      row.scrollIntoView({ block: "nearest" });
    }
    this._cmdKey = "";
    this.render();
  }

  // role or language changed, or a new device chosen: rebuild the whole panel
  render() {
    const dev = this.store.devices.get(this.selected);
    if (!dev) { replace(this.panelEl, h("div", { class: "muted empty-note" }, t("device.none"))); return; }
    replace(this.panelEl, this.infoEl, this.streamsEl, this.cmdEl, this.historyEl, this.detailsEl);
    this._cmdKey = "";
    this._renderInfo();
  }

  relabel() {
    for (const dev of this.store.devices.values()) this._row(dev);
    this.render();
  }

  _renderInfo() {
    const dev = this.store.devices.get(this.selected);
    if (!dev) return;
    const stale = this.store.isStale(dev);
    const stateKey = !dev.online ? "offline" : stale ? "stale" : "online";
    const pos = this.store.lastPosition(dev.id) || dev.position;
    const rows = [
      [t("device.kind"), tOr(`kind.${dev.kind}`, dev.kind)],
      [t("device.status"), t(`state.${stateKey}`)],
      [t("device.last_seen"), this.store.ago(dev.last_seen)],
      [t("device.battery"), batteryOf(dev) || t("common.none")],
      [t("device.signal"), signalOf(dev) || t("common.none")],
    ];
    if (pos) {
      rows.push([t("device.position"), `${fmtNum(pos.lat, 6)}, ${fmtNum(pos.lon, 6)}`]);
      rows.push([t("device.alt"), pos.alt_m == null ? t("common.none") : `${fmtNum(pos.alt_m, 1)} m`]);
      rows.push([t("device.heading"), pos.heading_deg == null ? t("common.none") : `${fmtNum(pos.heading_deg, 0)}°`]);
      rows.push([t("device.speed"), pos.speed_mps == null ? t("common.none") : `${fmtNum(pos.speed_mps, 1)} m/s`]);
      rows.push([t("device.fix"), `${pos.fix || t("common.none")} · ${pos.source || ""}`]);
    } else {
      rows.push([t("device.position"), t("map.nopos")]);
    }
    if (dev.status && typeof dev.status.mode === "string") rows.unshift([t("device.mode"), dev.status.mode]);
    replace(this.infoEl,
      h("div", { class: `dev-head state-${stateKey}` }, kindIcon(dev.kind, 22),
        h("div", {}, h("div", { class: "dev-title" }, dev.name || dev.id), h("div", { class: "muted" }, `${dev.id} · ${dev.driver}`)),
        h("span", { class: `badge state-${stateKey}` }, t(`state.${stateKey}`))),
      h("dl", { class: "kv" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
    // video of this device
    const streams = dev.streams || [];
    replace(this.streamsEl, streams.length ? [h("h4", {}, t("device.streams")),
      streams.map(sid => h("button", { class: "chip", dataset: { openStream: sid }, onclick: () => this.onOpenStream(sid) }, `▶ ${sid}`))] : []);
    // status details, as text
    const open = this.detailsEl.open;
    replace(this.detailsEl, h("summary", {}, t("device.details")),
      h("dl", { class: "kv small" }, Object.entries(dev.status || {}).map(([k, v]) =>
        [h("dt", {}, k), h("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))])));
    this.detailsEl.open = open;
    // commands: rebuilt only when the device, its command list or the role changes (keeps what is typed)
    const key = `${dev.id}|${(dev.commands || []).join(",")}|${this.store.role}|${dev.kind}`;
    if (key !== this._cmdKey) { this._cmdKey = key; this._renderCommands(dev); }
    this._renderHistory();
  }

  _renderCommands(dev) {
    clear(this.cmdEl);
    if (!this.store.can("operator") || !(dev.commands || []).length) return;
    const simple = [], forms = [];
    for (const name of dev.commands) {
      const spec = COMMAND_SPECS[name] || { args: {}, moves: true };
      if (!Object.keys(spec.args).length) {
        simple.push(h("button", { class: `cmd-btn${spec.moves ? " moves" : ""}`, dataset: { command: name },
          onclick: () => this.send(dev, name, {}, spec) }, tOr(`cmd.${name}`, name)));
      } else {
        forms.push(this._commandForm(dev, name, spec));
      }
    }
    this.cmdEl.append(h("h4", {}, t("device.commands")), h("div", { class: "cmd-buttons" }, simple), ...forms);
  }

  _commandForm(dev, name, spec) {
    const inputs = {};
    const pos = this.store.lastPosition(dev.id) || dev.position;
    const fields = Object.entries(spec.args).map(([arg, a]) => {
      let input;
      if (a.type === "textarea") input = h("textarea", { name: arg, maxlength: a.maxlength, rows: 2 });
      else input = h("input", { name: arg, type: a.type, min: a.min, max: a.max, step: a.step, maxlength: a.maxlength, list: a.list });
      if (name === "goto" && pos && arg in { lat: 1, lon: 1, alt_m: 1 } && pos[arg] != null) input.value = String(pos[arg]);
      if (name === "ptz_move") input.value = "0";
      inputs[arg] = input;
      return h("label", {}, h("span", {}, tOr(`arg.${arg}`, arg)), input);
    });
    return h("form", { class: "cmd-form", dataset: { command: name }, onsubmit: e => {
      e.preventDefault();
      const args = {};
      for (const [arg, input] of Object.entries(inputs)) {
        const raw = input.value.trim();
        if (raw === "" && spec.optional) continue;
        args[arg] = spec.args[arg].type === "number" ? Number(raw) : input.value;
      }
      this.send(dev, name, args, spec);
    } }, h("div", { class: "cmd-fields" }, fields),
      h("button", { type: "submit", class: `cmd-btn${spec.moves ? " moves" : ""}`, dataset: { command: name } }, tOr(`cmd.${name}`, name)));
  }

  async send(dev, name, args, spec) {
    if (spec.moves) {
      const argText = Object.keys(args).length ? ` ${JSON.stringify(args)}` : "";
      const ok = await this.confirm(t("cmd.confirm.title"),
        t("cmd.confirm.body", { device: `${dev.name || dev.id} (${dev.id})`, command: `${tOr(`cmd.${name}`, name)}${argText}` }));
      if (!ok) return;
    }
    const local = { id: `local-${Date.now()}`, device: dev.id, command: name, args, status: "sending", detail: "", history: [], ts: Date.now() };
    this.commands.set(local.id, local);
    this._renderHistory();
    try {
      const answer = await api(`/api/v1/devices/${encodeURIComponent(dev.id)}/commands`, { method: "POST", body: { command: name, args } });
      this.commands.delete(local.id);
      const rec = { ...local, id: answer.id, status: answer.status, history: [answer.status] };
      const early = this.commands.get(answer.id);   // an ack may have come over SSE first
      if (early) {
        rec.status = early.status;
        rec.detail = early.detail;
        rec.history = [...new Set([answer.status, ...early.history])].sort((a, b) => STEP(a) - STEP(b));
      }
      this.commands.set(answer.id, rec);
      this._poll(answer.id);
    } catch (e) {
      local.status = "error";
      local.detail = t("cmd.error", { detail: `${e.status || ""} ${e.message}`.trim() });
    }
    this._renderHistory();
  }

  ack(msg) {
    // SSE `ack`: {device, id, status, detail, ts}
    let rec = this.commands.get(msg.id);
    if (!rec) {
      // not sent from this page (another operator, MQTT): shown too, for the device
      rec = { id: msg.id, device: msg.device, command: "", args: {}, status: msg.status, detail: "", history: [], ts: msg.ts, foreign: true };
      this.commands.set(msg.id, rec);
      this._trim();
    }
    this._update(rec, msg.status, msg.detail);
  }

  _update(rec, status, detail) {
    if (FINAL.has(rec.status) && !FINAL.has(status)) return;   // acks may overtake each other
    rec.status = status;
    if (detail) rec.detail = detail;
    if (!rec.history.includes(status)) rec.history.push(status);
    rec.history.sort((a, b) => STEP(a) - STEP(b));    // acks can overtake the POST's answer
    if (rec.device === this.selected) this._renderHistory();
  }

  async _poll(id) {
    const until = Date.now() + POLL_FOR_MS;
    while (Date.now() < until) {
      await new Promise(r => setTimeout(r, POLL_MS));
      const rec = this.commands.get(id);
      if (!rec || FINAL.has(rec.status)) return;
      try {
        const r = await api(`/api/v1/commands/${encodeURIComponent(id)}`);
        if (!rec.command) rec.command = r.command;
        this._update(rec, r.status, r.detail);
      } catch (e) { if (e.status === 401 || e.status === 404) return; }
    }
  }

  _trim() {
    if (this.commands.size <= 200) return;
    for (const id of [...this.commands.keys()].slice(0, this.commands.size - 200)) this.commands.delete(id);
  }

  _renderHistory() {
    const mine = [...this.commands.values()].filter(r => r.device === this.selected).slice(-8).reverse();
    replace(this.historyEl, mine.length ? [h("h4", {}, t("cmd.history")), mine.map(r =>
      h("div", { class: `cmd-row status-${r.status}`, dataset: { command: r.command, status: r.status, id: r.id } },
        h("span", { class: "cmd-name" }, r.command ? tOr(`cmd.${r.command}`, r.command) : r.id.slice(0, 8)),
        h("span", { class: "cmd-status" }, r.history.map(s => tOr(`cmd.status.${s}`, s)).join(" → ") || tOr(`cmd.status.${r.status}`, r.status)),
        r.detail ? h("div", { class: "cmd-detail muted" }, r.detail) : null))] : []);
  }

  clearAll() {
    this.rows.clear();
    clear(this.listEl);
    this.commands.clear();
    this.selected = null;
    this.render();
  }
}
