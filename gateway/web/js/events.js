// The event log (SSE `event`, newest first, filtered by severity), the one-key
// dispatch form with each delivery's status live (SSE `dispatch`), and the audit
// view for admins (GET /api/v1/audit). All received text is shown as text.
"use strict";

import { h, replace, clear } from "./dom.js";
import { t, tOr } from "./i18n.js";
import { api } from "./api.js";

const MAX_EVENTS = 500;
const MAX_DISPATCHES = 12;
const SEVERITIES = ["info", "warning", "critical"];

export function clock(ts) {
  if (typeof ts !== "number") return "";
  const d = new Date(ts);
  return d.toLocaleTimeString(undefined, { hour12: false });
}

export class EventLog {
  constructor(listEl, filterEl, { store }) {
    this.listEl = listEl;
    this.filterEl = filterEl;
    this.store = store;
    this.events = [];
    this.seen = new Set();
    this.pending = [];
    this._timer = null;
    const saved = JSON.parse(localStorage.getItem("fieldgw.severities") || "null");
    this.shown = new Set(Array.isArray(saved) ? saved : SEVERITIES);
    this._filters();
    this._applyFilter();
  }

  _filters() {
    replace(this.filterEl, SEVERITIES.map(sev => h("label", { class: `sev-filter sev-${sev}` },
      h("input", { type: "checkbox", checked: this.shown.has(sev), dataset: { severity: sev }, onchange: e => {
        e.target.checked ? this.shown.add(sev) : this.shown.delete(sev);
        localStorage.setItem("fieldgw.severities", JSON.stringify([...this.shown]));
        this._applyFilter();
      } }), h("span", {}, t(`events.${sev}`)))));
  }

  _applyFilter() {
    for (const sev of SEVERITIES) this.listEl.classList.toggle(`hide-${sev}`, !this.shown.has(sev));
  }

  add(ev) {
    // the gateway replays its recent events to every new stream (`history`): after a reconnect
    // some are already shown, so each event is shown once
    const key = `${ev.device}|${ev.ts}|${ev.type}|${ev.text}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.seen.size > 4 * MAX_EVENTS) this.seen = new Set([...this.seen].slice(-MAX_EVENTS));
    this.pending.push(ev);
    if (this._timer) return;
    this._timer = setTimeout(() => { this._timer = null; this.flush(); }, 200);
  }

  flush() {
    const batch = this.pending.splice(0);
    if (!batch.length) return;
    const frag = document.createDocumentFragment();
    for (const ev of batch.reverse()) frag.appendChild(this._row(ev));
    this.listEl.prepend(frag);
    this.events.push(...batch);
    while (this.listEl.childElementCount > MAX_EVENTS) this.listEl.lastElementChild.remove();
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
  }

  _row(ev) {
    const sev = SEVERITIES.includes(ev.severity) ? ev.severity : "info";
    const dev = this.store.devices.get(ev.device);
    return h("div", { class: `ev-row sev-${sev}`, dataset: { severity: sev, type: String(ev.type || "") } },
      h("span", { class: "ev-time" }, clock(ev.ts)),
      h("span", { class: "ev-sev" }, t(`events.${sev}`)),
      h("span", { class: "ev-dev", title: String(ev.device || "") }, dev ? (dev.name || dev.id) : String(ev.device || "")),
      h("span", { class: "ev-type" }, String(ev.type || "")),
      h("span", { class: "ev-text" }, String(ev.text ?? "")));
  }

  relabel() {
    this._filters();
    clear(this.listEl);
    const all = this.events.slice();
    const frag = document.createDocumentFragment();
    for (const ev of all.reverse()) frag.appendChild(this._row(ev));
    this.listEl.appendChild(frag);
  }

  clearAll() { this.events = []; this.pending = []; clear(this.listEl); }
}

export class DispatchPanel {
  constructor(formEl, targetsEl, listEl, { store, onUnauthorized }) {
    this.form = formEl;
    this.targetsEl = targetsEl;
    this.listEl = listEl;
    this.store = store;
    this.dispatches = new Map();   // id → dispatch (as GET /api/v1/dispatch/{id})
    this.cards = new Map();
    this._targetsKey = "";
    this.form.addEventListener("submit", e => { e.preventDefault(); this.send(); });
    this.form.elements.text.addEventListener("keydown", e => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); this.send(); }
    });
    for (const radio of this.form.querySelectorAll("input[name=scope]")) radio.addEventListener("change", () => this._scope());
    this._scope();
  }

  _scope() {
    this.targetsEl.hidden = this.form.elements.scope.value !== "selected";
  }

  // the teams to choose from: radios and satellite terminals (not the gateway's own modems' list order)
  devicesChanged() {
    const devs = [...this.store.devices.values()].filter(d => d.kind === "radio" || d.kind === "satcom")
      .sort((a, b) => a.id.localeCompare(b.id));
    const key = devs.map(d => `${d.id}:${d.name}`).join("|");
    if (key === this._targetsKey) return;
    this._targetsKey = key;
    const checked = new Set([...this.targetsEl.querySelectorAll("input:checked")].map(i => i.value));
    replace(this.targetsEl, devs.map(d => h("label", { class: "target" },
      h("input", { type: "checkbox", value: d.id, checked: checked.has(d.id) }), h("span", { title: d.id }, d.name || d.id))));
  }

  async send() {
    const text = this.form.elements.text.value.trim();
    const out = this.form.querySelector(".form-error");
    out.textContent = "";
    if (!text) { this.form.elements.text.focus(); return; }
    let targets = "all";
    if (this.form.elements.scope.value === "selected") {
      targets = [...this.targetsEl.querySelectorAll("input:checked")].map(i => i.value);
      if (!targets.length) { out.textContent = t("dispatch.nochoice"); return; }
    }
    const priority = this.form.elements.priority.value === "flash" ? "flash" : "routine";
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const answer = await api("/api/v1/dispatch", { method: "POST", body: { text, targets, priority } });
      const existing = this.dispatches.get(answer.id);
      if (!existing) this.update({ id: answer.id, text, priority, targets, ts: Date.now(), deliveries: answer.deliveries, done: false });
      this.form.elements.text.value = "";
    } catch (e) {
      out.textContent = t("dispatch.error", { detail: `${e.status || ""} ${e.message}`.trim() });
    } finally {
      button.disabled = false;
    }
  }

  // SSE `dispatch` or the POST's answer: the whole dispatch with every delivery's status
  update(d) {
    if (!d || typeof d.id !== "string") return;
    this.dispatches.delete(d.id);
    this.dispatches.set(d.id, d);
    while (this.dispatches.size > MAX_DISPATCHES) {
      const oldest = this.dispatches.keys().next().value;
      this.dispatches.delete(oldest);
      const card = this.cards.get(oldest);
      if (card) card.remove();
      this.cards.delete(oldest);
    }
    const card = this._card(d);
    const old = this.cards.get(d.id);
    if (old) old.replaceWith(card); else this.listEl.prepend(card);
    this.cards.set(d.id, card);
  }

  _card(d) {
    const deliveries = Array.isArray(d.deliveries) ? d.deliveries : [];
    return h("div", { class: `dispatch-card prio-${d.priority === "flash" ? "flash" : "routine"}${d.done ? " done" : ""}`,
      dataset: { dispatch: d.id } },
      h("div", { class: "dispatch-head" }, h("span", { class: "ev-time" }, clock(d.ts)),
        h("span", { class: "badge" }, tOr(`dispatch.${d.priority}`, d.priority)),
        d.issued_by ? h("span", { class: "muted" }, String(d.issued_by)) : null),
      h("div", { class: "dispatch-text" }, String(d.text ?? "")),
      h("div", { class: "deliveries" }, deliveries.map(dl => {
        const dev = this.store.devices.get(dl.device);
        return h("div", { class: `delivery status-${dl.status}`, dataset: { device: String(dl.device), status: String(dl.status) },
          title: String(dl.detail || "") },
          h("span", { class: "dl-dev" }, dev ? (dev.name || dev.id) : String(dl.device)),
          h("span", { class: "dl-chan" }, String(dl.channel || "")),
          h("span", { class: "dl-status" }, tOr(`delivery.${dl.status}`, dl.status)),
          dl.detail ? h("span", { class: "dl-detail muted" }, String(dl.detail)) : null);
      })));
  }

  async loadRecent() {
    try {
      const list = await api("/api/v1/dispatch");
      if (Array.isArray(list)) for (const d of list.slice(-MAX_DISPATCHES)) this.update(d);
    } catch (e) { /* older gateway, or not allowed: nothing to show */ }
  }

  relabel() {
    for (const d of [...this.dispatches.values()]) this.update(d);
    this._targetsKey = "";
    this.devicesChanged();
  }

  clearAll() { this.dispatches.clear(); this.cards.clear(); clear(this.listEl); }
}

export class AuditView {
  constructor(el) { this.el = el; this.records = null; this.verified = null; this.error = ""; }

  async load() {
    this.error = "";
    try {
      const r = await api("/api/v1/audit?limit=200");
      this.records = Array.isArray(r.records) ? r.records : [];
      this.verified = r.verified;
    } catch (e) {
      this.records = [];
      this.error = `${e.status || ""} ${e.message}`.trim();
    }
    this.render();
  }

  render() {
    const cols = ["seq", "ts", "user", "address", "action", "target", "detail", "outcome"];
    const heads = { seq: "#", ts: t("audit.time"), user: t("audit.user"), address: t("audit.address"), action: t("audit.action"),
      target: t("audit.target"), detail: t("audit.detail"), outcome: t("audit.outcome") };
    const cell = (r, c) => {
      const v = r[c];
      if (c === "ts" && typeof v === "number") {
        const d = new Date(v);
        return `${d.toLocaleDateString(undefined, { month: "2-digit", day: "2-digit" })} ${d.toLocaleTimeString(undefined, { hour12: false })}`;
      }
      if (v === null || v === undefined) return "";
      return typeof v === "object" ? JSON.stringify(v) : String(v);
    };
    replace(this.el,
      h("div", { class: "audit-head" },
        this.verified === null ? null : h("span", { class: `badge ${this.verified ? "ok" : "bad"}`, dataset: { verified: String(this.verified) } },
          this.verified ? t("audit.verified") : t("audit.broken")),
        h("button", { class: "small", onclick: () => this.load() }, t("audit.refresh")),
        this.error ? h("span", { class: "form-error" }, this.error) : null),
      h("table", { class: "audit" }, h("thead", {}, h("tr", {}, cols.map(c => h("th", {}, heads[c])))),
        h("tbody", {}, (this.records || []).slice().reverse().map(r => h("tr", { class: `outcome-${String(r.outcome || "")}` },
          cols.map(c => h("td", { class: `c-${c}` }, cell(r, c))))))));
  }
}
