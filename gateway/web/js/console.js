// The command-centre console (issue 8): log-in, the live device map, the video wall,
// the device panel with commands, the event log, one-key dispatch, kit health and,
// for admins, the audit log. Everything the gateway sends is rendered as text.
"use strict";

import { h, $, $$ } from "./dom.js";
import { t, setLang, getLang, applyStatic, onLangChange } from "./i18n.js";
import { api, setToken, getToken, onUnauthorized, takeTokenFromFragment, eventsUrl } from "./api.js";
import { DeviceMap, storeTileUrl, tileUrl } from "./map.js";
import { VideoWall } from "./video.js";
import { DevicePanel } from "./panel.js";
import { EventLog, DispatchPanel, AuditView } from "./events.js";
import { HealthView } from "./health.js";

const RANK = { viewer: 0, operator: 1, admin: 2 };
const STALE_MS = 120000;        // a device not heard for 2 min is greyed like an offline one
const HEALTH_MS = 5000, STREAMS_MS = 5000, DEVICES_MS = 30000, STALE_CHECK_MS = 5000;

// ---- shared state --------------------------------------------------------------------------
const store = {
  devices: new Map(),
  positions: new Map(),
  user: "", role: "viewer", auth: true,
  offsets: [],                  // samples of (browser clock - gateway ts), the smallest is the best guess
  can(role) { return RANK[this.role] >= RANK[role]; },
  serverNow() { return Date.now() - (this.offsets.length ? Math.min(...this.offsets) : 0); },
  clockSample(ts) {
    if (typeof ts !== "number") return;
    this.offsets.push(Date.now() - ts);
    if (this.offsets.length > 40) this.offsets.shift();
  },
  lastPosition(id) { return this.positions.get(id) || null; },
  lastSeen(dev) {
    const p = this.positions.get(dev.id);
    return Math.max(dev.last_seen || 0, p ? p.ts || 0 : 0) || null;
  },
  // greyed: offline, or a device that reports positions has not been heard for STALE_MS
  // (some drivers cannot tell when a remote radio falls silent; their devices stay "online")
  isStale(dev) {
    if (!dev.online) return true;
    if (!dev.position && !this.positions.has(dev.id)) return false;
    const seen = this.lastSeen(dev);
    return seen !== null && this.serverNow() - seen > STALE_MS;
  },
  ago(ts) {
    if (!ts) return t("device.never");
    const s = Math.max(0, Math.round((this.serverNow() - ts) / 1000));
    return s < 120 ? t("device.ago", { s }) : t("device.ago_min", { m: Math.round(s / 60) });
  },
};

const perf = { messages: 0, byType: {}, handleMs: 0 };
let map, wall, panel, eventLog, dispatchPanel, audit, health;
let source = null, timers = [], sessionOn = false, reconnectTimer = null;

// ---- confirmation dialog -----------------------------------------------------------------
function confirmDialog(title, body) {
  const dlg = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-body").textContent = body;
  return new Promise(resolve => {
    const done = ok => { dlg.close(); resolve(ok); };
    $("#confirm-ok").onclick = () => done(true);
    $("#confirm-cancel").onclick = () => done(false);
    dlg.oncancel = e => { e.preventDefault(); done(false); };
    dlg.showModal();
    $("#confirm-cancel").focus();    // Enter alone never moves a drone
  });
}

// ---- login / logout -------------------------------------------------------------------------
function showLogin(message = "") {
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message;
  $("#login-form").elements.username.focus();
}

async function whoami() {
  try {
    return await api("/api/v1/auth/me", { quiet401: true });
  } catch (e) {
    if (e.status === 404) return { user: "", role: "admin", noauth: true };   // a gateway without auth
    if (e.status === 401) return null;
    throw e;
  }
}

async function login(ev) {
  ev.preventDefault();
  const form = ev.target;
  const err = $("#login-error");
  err.textContent = "";
  form.querySelector("button").disabled = true;
  try {
    const r = await api("/api/v1/auth/login", { method: "POST", quiet401: true,
      body: { username: form.elements.username.value, password: form.elements.password.value } });
    setToken(r.token);
    form.elements.password.value = "";
    await startSession({ user: r.user, role: r.role });
  } catch (e) {
    if (e.status === 401) err.textContent = t("login.bad");
    else if (e.status === 429) err.textContent = t("login.throttled", { s: e.retryAfter || "60" });
    else err.textContent = t("login.error", { detail: `${e.status || ""} ${e.message}`.trim() });
  } finally {
    form.querySelector("button").disabled = false;
  }
}

async function logout() {
  if (getToken()) {
    try { await api("/api/v1/auth/logout", { method: "POST", quiet401: true }); } catch (e) { /* revoked already */ }
  }
  setToken("");
  stopSession();
  showLogin();
}

function unauthorized() {
  if (!sessionOn && $("#app").hidden) return;
  setToken("");
  stopSession();
  showLogin(t("login.expired"));
}

// ---- the session ---------------------------------------------------------------------------
async function startSession(me) {
  store.user = me.user || "";
  store.role = RANK[me.role] === undefined ? "viewer" : me.role;
  store.auth = !me.noauth;
  sessionOn = true;
  $("#login").hidden = true;
  $("#app").hidden = false;
  document.body.dataset.role = store.role;
  for (const el of $$("[data-min-role]")) el.hidden = !store.can(el.dataset.minRole);
  document.body.classList.toggle("no-lower", !store.can("operator"));
  $("#user").textContent = store.auth ? `${store.user} · ${t(`role.${store.role}`)}` : t("noauth");
  $("#logout").hidden = !store.auth;
  if (!store.can("operator") && ["dispatch", "audit"].includes(document.body.dataset.tab)) setTab("devices");
  if (!store.can("operator")) document.body.dataset.lower = "";
  else if (!store.can("admin") || !document.body.dataset.lower) document.body.dataset.lower = "dispatch";
  map.map.invalidateSize();
  panel.render();
  await loadDevices();
  connectEvents();
  refreshStreams();
  health.refresh();
  if (store.can("viewer")) dispatchPanel.loadRecent();
  if (store.can("admin")) audit.load();
  timers.push(setInterval(() => health.refresh(), HEALTH_MS));
  timers.push(setInterval(refreshStreams, STREAMS_MS));
  timers.push(setInterval(loadDevices, DEVICES_MS));
  timers.push(setInterval(checkStale, STALE_CHECK_MS));
}

function stopSession() {
  sessionOn = false;
  for (const id of timers) clearInterval(id);
  timers = [];
  clearTimeout(reconnectTimer);
  if (source) { source.close(); source = null; }
  wall.stopAll();
  map.clearAll();
  panel.clearAll();
  eventLog.clearAll();
  dispatchPanel.clearAll();
  store.devices.clear();
  store.positions.clear();
}

async function loadDevices() {
  try {
    const list = await api("/api/v1/devices");
    for (const dev of list) onState(dev);
  } catch (e) { /* 401 handled; others: next time */ }
}

async function refreshStreams() {
  try { wall.setStreams(await api("/api/v1/streams")); } catch (e) { /* next time */ }
}

function checkStale() {
  for (const dev of store.devices.values()) map.setStale(dev.id, store.isStale(dev));
  panel.refreshStale();
}

// ---- live updates (SSE) --------------------------------------------------------------------
function onState(dev) {
  if (!dev || typeof dev.id !== "string") return;
  const known = store.devices.get(dev.id);
  store.devices.set(dev.id, dev);
  if (dev.position) {
    const p = store.positions.get(dev.id);
    if (!p || (dev.position.ts || 0) > (p.ts || 0)) store.positions.set(dev.id, dev.position);
  }
  if (dev.last_seen) store.clockSample(dev.last_seen);
  map.upsert(dev, store.isStale(dev));
  panel.upsert(dev);
  if (!known || known.name !== dev.name || known.kind !== dev.kind) dispatchPanel.devicesChanged();
}

function onPosition(p) {
  if (!p || typeof p.device !== "string") return;
  const dev = store.devices.get(p.device);
  store.positions.set(p.device, p);
  store.clockSample(p.ts);
  if (dev) map.setStale(dev.id, store.isStale(dev));
  map.position(p.device, p);
  panel.position(p.device);
}

const HANDLERS = {
  state: onState,
  position: onPosition,
  event: ev => { eventLog.add(ev); if (!ev.history) unseen(ev); },
  ack: a => panel.ack(a),
  dispatch: d => dispatchPanel.update(d),
};

function connectEvents() {
  if (source) source.close();
  const es = new EventSource(eventsUrl());
  source = es;
  for (const [type, fn] of Object.entries(HANDLERS)) {
    es.addEventListener(type, msg => {
      const t0 = performance.now();
      let data;
      try { data = JSON.parse(msg.data); } catch (e) { return; }
      fn(data);
      perf.messages += 1;
      perf.byType[type] = (perf.byType[type] || 0) + 1;
      perf.handleMs += performance.now() - t0;
    });
  }
  es.onopen = () => setLive(true);
  es.onerror = async () => {
    setLive(false);
    if (es.readyState !== EventSource.CLOSED || source !== es) return;   // the browser retries by itself
    // closed for good (an HTTP error): a revoked or expired token, or the gateway restarting
    const me = await whoami().catch(() => undefined);
    if (me === null) return unauthorized();
    if (sessionOn && source === es) reconnectTimer = setTimeout(connectEvents, 3000);
  };
}

function setLive(on) {
  const el = $("#live");
  el.classList.toggle("good", on);
  el.classList.toggle("bad", !on);
  el.textContent = on ? t("sse.connected") : t("sse.lost");
  el.dataset.live = String(on);
}

// ---- layout: tabs (narrow screens show one side section at a time) ------------------------
function setTab(name) {
  document.body.dataset.tab = name;
  if (name === "dispatch" || name === "audit") document.body.dataset.lower = name;
  highlightTabs();
  if (name === "events") {
    unseenCount = 0;
    const b = $(".tabs button[data-tab-button='events']");
    delete b.dataset.count;
    b.classList.remove("alarm");
  }
  if (name === "audit" && store.can("admin")) audit.load();
  if (name === "devices") map.map.invalidateSize();
}

// On a laptop the event log is a tab: its button counts the warnings and critical events not yet seen.
let unseenCount = 0;
function unseen(ev) {
  if (WIDE.matches || document.body.dataset.tab === "events" || !["warning", "critical"].includes(ev.severity)) return;
  unseenCount += 1;
  const b = $(".tabs button[data-tab-button='events']");
  b.dataset.count = String(unseenCount);
  if (ev.severity === "critical") b.classList.add("alarm");
}

const WIDE = window.matchMedia("(min-width: 1600px)");
function highlightTabs() {
  // wide screens show devices and events always; the tabs there choose between dispatch and audit
  const active = WIDE.matches ? document.body.dataset.lower : document.body.dataset.tab;
  for (const b of $$(".tabs button")) b.classList.toggle("active", b.dataset.tabButton === active);
}
WIDE.addEventListener("change", highlightTabs);

function select(id, pan = false) {
  panel.select(id);
  map.select(id, pan);
  if (window.matchMedia("(max-width: 1599px)").matches && document.body.dataset.tab !== "devices") setTab("devices");
}

// ---- start ---------------------------------------------------------------------------------
async function boot() {
  applyStatic();
  onUnauthorized(unauthorized);
  map = new DeviceMap($("#map"), { onSelect: id => select(id) });
  wall = new VideoWall($("#wall"), $("#stream-chips"), { onUnauthorized: unauthorized });
  panel = new DevicePanel($("#device-list"), $("#device-panel"), {
    store, onSelect: select, onOpenStream: id => wall.open(id), confirm: confirmDialog, onUnauthorized: unauthorized });
  eventLog = new EventLog($("#event-list"), $("#event-filter"), { store });
  dispatchPanel = new DispatchPanel($("#dispatch-form"), $("#dispatch-targets"), $("#dispatch-list"), { store, onUnauthorized: unauthorized });
  audit = new AuditView($("#audit-view"));
  health = new HealthView($("#health-chips"), $("#health-detail"));
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", logout);
  for (const b of [$("#lang"), $("#login-lang")]) b.addEventListener("click", () => setLang(getLang() === "zh" ? "en" : "zh"));
  $("#fit").addEventListener("click", () => map.fit());
  $("#tiles").addEventListener("click", () => {
    const url = window.prompt(t("map.tiles_prompt"), tileUrl());
    if (url === null) return;
    storeTileUrl(url.trim());
    map.setTiles(url.trim());
  });
  for (const b of $$(".tabs button")) b.addEventListener("click", () => setTab(b.dataset.tabButton));
  onLangChange(() => {
    $("#user").textContent = store.auth ? `${store.user} · ${t(`role.${store.role}`)}` : t("noauth");
    setLive(!!source && source.readyState === EventSource.OPEN);
    panel.relabel(); eventLog.relabel(); dispatchPanel.relabel(); wall.relabel(); health.render(); map.relabel();
    if (store.can("admin")) audit.render();
  });
  setTab("devices");
  window.fieldgwConsole = { store, perf, get map() { return map; }, get wall() { return wall; }, get panel() { return panel; },
    select, setTab };

  takeTokenFromFragment();
  let me;
  try { me = await whoami(); } catch (e) { me = null; }
  if (me) await startSession(me);
  else showLogin(getToken() ? t("login.expired") : "");
  window.fieldgwConsole.ready = true;
}

boot();
