// The device map: Leaflet (vendored, global L), an optional basemap of tiles, a
// lat/lon graticule drawn here (there is no internet in the field, so no tiles by
// default), one marker per positioned device with its kind icon and heading, a
// short track (last TRACK_POINTS positions), and a box for devices with no position.
//
// Updates are batched: SSE handlers only record what changed; the map applies it at
// most every FLUSH_MS in one animation frame, so 200 devices at 1 Hz cost 10 small
// batches a second instead of 200 layouts.
"use strict";

import { h, replace } from "./dom.js";
import { kindIcon } from "./icons.js";
import { t } from "./i18n.js";

/* global L */
export const TRACK_POINTS = 50;
const FLUSH_MS = 100;
const STEPS = [30, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001, 0.00005];

// The tile URL template: ?tiles=URL beats the stored setting; "" = none (graticule only).
export function tileUrl() {
  const fromQuery = new URLSearchParams(location.search).get("tiles");
  if (fromQuery !== null) return fromQuery;
  return localStorage.getItem("fieldgw.tiles") || "";
}

export function storeTileUrl(url) {
  url ? localStorage.setItem("fieldgw.tiles", url) : localStorage.removeItem("fieldgw.tiles");
}

// A lat/lon grid on a canvas in its own pane (above tiles, below tracks and markers).
const Graticule = L.Layer.extend({
  onAdd(map) {
    this._map = map;
    const pane = map.getPane("graticule") || map.createPane("graticule");
    pane.style.zIndex = 250;
    pane.style.pointerEvents = "none";
    this._canvas = L.DomUtil.create("canvas", "graticule", pane);
    map.on("moveend zoomend resize viewreset", this._redraw, this);
    map.on("zoomstart", this._hide, this);
    this._redraw();
  },
  onRemove(map) {
    map.off("moveend zoomend resize viewreset", this._redraw, this);
    map.off("zoomstart", this._hide, this);
    L.DomUtil.remove(this._canvas);
  },
  _hide() { this._canvas.style.visibility = "hidden"; },
  _redraw() {
    const map = this._map, canvas = this._canvas;
    const size = map.getSize(), ratio = window.devicePixelRatio || 1;
    // the canvas covers the map plus a margin, so a drag shows grid until moveend redraws
    const margin = 0.5;
    const w = Math.round(size.x * (1 + 2 * margin)), hgt = Math.round(size.y * (1 + 2 * margin));
    const topLeft = L.point(-size.x * margin, -size.y * margin);
    L.DomUtil.setPosition(canvas, map.containerPointToLayerPoint(topLeft));
    canvas.width = w * ratio;
    canvas.height = hgt * ratio;
    canvas.style.width = `${w}px`;
    canvas.style.height = `${hgt}px`;
    canvas.style.visibility = "visible";
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    const b = map.getBounds();
    const span = Math.max(b.getNorth() - b.getSouth(), (b.getEast() - b.getWest()) * Math.cos(map.getCenter().lat * Math.PI / 180));
    const step = STEPS.find(s => span / s >= 4) || STEPS[STEPS.length - 1];
    const decimals = Math.max(0, Math.ceil(-Math.log10(step) + 1e-9));
    const south = Math.max(-85, b.getSouth() - (b.getNorth() - b.getSouth()) * margin);
    const north = Math.min(85, b.getNorth() + (b.getNorth() - b.getSouth()) * margin);
    const west = b.getWest() - (b.getEast() - b.getWest()) * margin;
    const east = b.getEast() + (b.getEast() - b.getWest()) * margin;
    const toCanvas = ll => map.latLngToContainerPoint(ll).subtract(topLeft);
    const dark = !this.options.light;
    ctx.strokeStyle = dark ? "rgba(150, 180, 210, 0.28)" : "rgba(40, 60, 90, 0.35)";
    ctx.fillStyle = dark ? "rgba(190, 210, 230, 0.75)" : "rgba(30, 40, 60, 0.8)";
    ctx.lineWidth = 1;
    ctx.font = "11px system-ui, sans-serif";
    const n0 = Math.floor(south / step), n1 = Math.ceil(north / step);
    const visTop = size.y * margin, visLeft = size.x * margin, visBottom = visTop + size.y;
    if (n1 - n0 < 400) {
      for (let i = n0; i <= n1; i++) {
        const lat = i * step;
        const y = Math.round(toCanvas([lat, west]).y) + 0.5;
        ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(w, y); ctx.stroke();
        const label = `${Math.abs(lat).toFixed(decimals)}°${lat >= 0 ? "N" : "S"}`;
        ctx.fillText(label, visLeft + size.x - ctx.measureText(label).width - 6, y - 3);
      }
    }
    const m0 = Math.floor(west / step), m1 = Math.ceil(east / step);
    if (m1 - m0 < 400) {
      for (let i = m0; i <= m1; i++) {
        const lon = i * step;
        const x = Math.round(toCanvas([south, lon]).x) + 0.5;
        ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, hgt); ctx.stroke();
        ctx.fillText(`${Math.abs(lon).toFixed(decimals)}°${lon >= 0 ? "E" : "W"}`, x + 3, visBottom - 26);
      }
    }
    void visTop;
  },
});

// Devices that have no position yet: listed in a box on the map, so every device is visible.
const NoPositionBox = L.Control.extend({
  options: { position: "topleft" },
  onAdd() {
    this._div = h("div", { class: "nopos-box leaflet-bar", hidden: true });
    L.DomEvent.disableClickPropagation(this._div);
    L.DomEvent.disableScrollPropagation(this._div);
    return this._div;
  },
});

export class DeviceMap {
  constructor(container, { onSelect }) {
    this.onSelect = onSelect;
    this.entries = new Map();           // id → {dev, marker, root, arrow, label, tip, track, points, pending}
    this.dirty = new Set();
    this.selected = null;
    this.fitted = false;
    this._timer = null;
    this._lastFlush = 0;
    this.perf = { flushes: 0, flushMs: 0, positions: 0 };
    this.map = L.map(container, { zoomControl: true, attributionControl: true, preferCanvas: false, zoomSnap: 0.5,
      worldCopyJump: false, minZoom: 2, maxZoom: 20 }).setView([30.66, 104.06], 13);
    this.map.attributionControl.setPrefix("");
    L.control.scale({ metric: true, imperial: false }).addTo(this.map);
    this.graticule = new Graticule();
    this.graticule.addTo(this.map);
    this.tiles = null;
    this.setTiles(tileUrl());
    this.noPos = new NoPositionBox().addTo(this.map);
    this.map.on("zoomend", () => this._labels());
    // the layout moves the map's edges (tabs, window size): keep Leaflet's idea of its size right
    new ResizeObserver(() => this.map.invalidateSize({ pan: false })).observe(container);
    this._labels();
  }

  setTiles(url) {
    if (this.tiles) { this.tiles.remove(); this.tiles = null; }
    this.map.getContainer().classList.toggle("no-tiles", !url);
    this.graticule.options.light = !!url;
    if (url) {
      // the attribution is the tile server's own business (an offline server of the county's maps)
      this.tiles = L.tileLayer(url, { maxZoom: 20, maxNativeZoom: 19, attribution: "tiles: local server" });
      this.tiles.addTo(this.map);
    }
    this.graticule._redraw();
  }

  _labels() {
    this.map.getContainer().classList.toggle("show-labels", this.map.getZoom() >= 15 && this.entries.size <= 60);
  }

  // a Device (GET /api/v1/devices, SSE `state`)
  upsert(dev, stale) {
    let e = this.entries.get(dev.id);
    if (!e) {
      e = { dev, marker: null, root: null, arrow: null, label: null, tip: null, track: null, points: [], pending: null,
            stale: null, nopos: null };
      this.entries.set(dev.id, e);
      this._labels();
    }
    const renamed = e.dev.name !== dev.name || !e.root;
    e.dev = dev;
    if (dev.position && (!e.points.length || e.points[e.points.length - 1].ts < dev.position.ts)) {
      this._addPoint(e, dev.position);
    }
    e.stale = stale;
    e.renamed = renamed;
    this._mark(dev.id);
  }

  position(id, pos) {
    const e = this.entries.get(id);
    if (!e) return;
    this.perf.positions += 1;
    this._addPoint(e, pos);
    this._mark(id);
  }

  setStale(id, stale) {
    const e = this.entries.get(id);
    if (e && e.stale !== stale) { e.stale = stale; this._mark(id); }
  }

  _addPoint(e, pos) {
    if (typeof pos.lat !== "number" || typeof pos.lon !== "number") return;
    e.points.push({ lat: pos.lat, lon: pos.lon, ts: pos.ts });
    if (e.points.length > TRACK_POINTS) e.points.splice(0, e.points.length - TRACK_POINTS);
    e.pending = pos;
  }

  _mark(id) {
    this.dirty.add(id);
    if (this._timer) return;
    const wait = Math.max(0, FLUSH_MS - (performance.now() - this._lastFlush));
    this._timer = setTimeout(() => requestAnimationFrame(() => { this._timer = null; this.flush(); }), wait);
  }

  flush() {
    const t0 = performance.now();
    this._lastFlush = t0;
    for (const id of this.dirty) this._apply(this.entries.get(id));
    this.dirty.clear();
    if (!this.fitted) { this.map.invalidateSize(); this.fit(true); }
    this.perf.flushes += 1;
    this.perf.flushMs += performance.now() - t0;
  }

  _apply(e) {
    if (!e) return;
    const dev = e.dev;
    const last = e.points[e.points.length - 1];
    if (!last) { this._showNoPos(e); return; }
    if (e.nopos) { e.nopos.remove(); e.nopos = null; this._noPosTitle(); }
    const ll = [last.lat, last.lon];
    if (!e.marker) {
      e.arrow = h("div", { class: "heading" });
      e.label = h("div", { class: "dev-label" });
      e.root = h("div", { class: `dev-icon kind-${dev.kind}`, dataset: { device: dev.id } }, e.arrow, kindIcon(dev.kind, 18), e.label);
      e.tip = h("span");
      e.marker = L.marker(ll, {
        icon: L.divIcon({ html: e.root, className: "dev-marker", iconSize: [30, 30], iconAnchor: [15, 15] }),
        keyboard: false, riseOnHover: true,
      }).bindTooltip(e.tip, { direction: "top", offset: [0, -14] }).addTo(this.map);
      e.marker.on("click", () => this.onSelect(dev.id));
      e.track = L.polyline([], { className: `track kind-${dev.kind}`, weight: 2, interactive: false }).addTo(this.map);
      e.renamed = true;
    } else {
      e.marker.setLatLng(ll);
    }
    if (e.renamed) {
      e.label.textContent = dev.name || dev.id;
      e.tip.textContent = `${dev.name || dev.id} (${dev.id})`;
      e.renamed = false;
    }
    const pos = e.pending || dev.position || {};
    const heading = pos.heading_deg;
    const moving = dev.kind === "uav" || (pos.speed_mps ?? 0) > 0.3;
    if (typeof heading === "number" && moving) {
      e.arrow.style.transform = `rotate(${heading}deg)`;
      e.arrow.hidden = false;
    } else {
      e.arrow.hidden = true;
    }
    e.pending = null;
    e.root.classList.toggle("stale", !!e.stale);
    e.root.classList.toggle("selected", this.selected === dev.id);
    e.track.setLatLngs(e.points.map(p => [p.lat, p.lon]));
    e.track.setStyle({ opacity: e.stale ? 0.25 : 0.7 });
  }

  _showNoPos(e) {
    const dev = e.dev;
    if (!e.nopos) {
      e.nopos = h("div", { class: "nopos-item", dataset: { device: dev.id }, onclick: () => this.onSelect(dev.id) },
        kindIcon(dev.kind, 14), h("span", { class: "name" }));
      this.noPos._div.appendChild(e.nopos);
      this._noPosTitle();
    }
    e.nopos.querySelector(".name").textContent = dev.name || dev.id;
    e.nopos.title = dev.id;
    e.nopos.classList.toggle("stale", !!e.stale);
    e.nopos.classList.toggle("selected", this.selected === dev.id);
  }

  _noPosTitle() {
    const box = this.noPos._div;
    let title = box.querySelector(".nopos-title");
    if (!title) { title = h("div", { class: "nopos-title" }); box.prepend(title); }
    title.textContent = t("map.nopos");
    box.hidden = box.querySelectorAll(".nopos-item").length === 0;
  }

  relabel() { if (this.noPos._div.querySelector(".nopos-title")) this._noPosTitle(); }

  select(id, pan = false) {
    const prev = this.selected;
    this.selected = id;
    if (prev) this._mark(prev);
    if (id) this._mark(id);
    const e = this.entries.get(id);
    const last = e && e.points[e.points.length - 1];
    if (pan && last) this.map.panTo([last.lat, last.lon]);
  }

  // auto: the first view, around where most devices are (a terminal reporting a stray or default
  // position far away must not shrink the team to a dot); the "All" button shows every device.
  fit(auto = false) {
    let pts = [];
    for (const e of this.entries.values()) {
      const last = e.points[e.points.length - 1];
      if (last) pts.push([last.lat, last.lon]);
    }
    if (!pts.length) return;
    if (auto) {
      this.fitted = true;
      const med = i => pts.map(p => p[i]).sort((a, b) => a - b)[Math.floor(pts.length / 2)];
      const c = L.latLng(med(0), med(1));
      const near = pts.filter(p => c.distanceTo(p) < 50000);
      if (near.length * 2 >= pts.length) pts = near;
    }
    this.map.fitBounds(L.latLngBounds(pts).pad(0.15), { maxZoom: 16, animate: !auto });
  }

  clearAll() {
    for (const e of this.entries.values()) {
      if (e.marker) e.marker.remove();
      if (e.track) e.track.remove();
      if (e.nopos) e.nopos.remove();
    }
    this.entries.clear();
    this.dirty.clear();
    this.fitted = false;
    replace(this.noPos._div);
    this.noPos._div.hidden = true;
  }

  markerCount() { return this.map.getContainer().querySelectorAll(".dev-icon").length; }
}
