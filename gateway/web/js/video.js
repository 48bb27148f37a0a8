// The video wall: any stream of GET /api/v1/streams in a tile, several at once, each
// played by WHEP (js/whep.js: retries on 409 + Retry-After, failed connections and
// frozen video). Hovering a tile shows the gateway's stream stats and what this
// browser decodes. The open tiles are remembered (localStorage) for a wall screen.
"use strict";

import { h, replace } from "./dom.js";
import { t, tOr } from "./i18n.js";
import { WhepPlayer } from "./whep.js";
import { api, authHeaders } from "./api.js";

const MAX_TILES = 9;
const KEY = "fieldgw.wall";

export class VideoWall {
  constructor(grid, chips, { onUnauthorized }) {
    this.grid = grid;
    this.chips = chips;
    this.onUnauthorized = onUnauthorized;
    this.streams = new Map();           // id → Stream (as listed)
    this.tiles = new Map();             // id → {el, video, player, stateEl, statsEl, posterUrl}
    this.wanted = JSON.parse(localStorage.getItem(KEY) || "[]").filter(x => typeof x === "string");
    this._renderChips();
    this._layout();
  }

  setStreams(list) {
    this.streams = new Map(list.map(s => [s.id, s]));
    this._renderChips();
    for (const [id, tile] of this.tiles) this._stats(id, tile);
    for (const id of this.wanted) if (this.streams.has(id) && !this.tiles.has(id)) this.open(id);
  }

  _renderChips() {
    const chips = [...this.streams.values()].map(s => h("button", {
      class: `chip stream-chip state-${s.state}${this.tiles.has(s.id) ? " open" : ""}`,
      dataset: { stream: s.id }, title: `${s.id}${s.device ? ` (${s.device})` : ""} · ${tOr(`video.stream.${s.state}`, s.state)}`,
      onclick: () => (this.tiles.has(s.id) ? this.close(s.id) : this.open(s.id)),
    }, s.id));
    replace(this.chips, chips.length ? chips : h("span", { class: "muted" }, t("video.none")));
  }

  open(id) {
    if (this.tiles.has(id)) return;
    if (this.tiles.size >= MAX_TILES) this.close(this.tiles.keys().next().value);
    const video = h("video", { autoplay: true, muted: true, playsInline: true });
    video.muted = true;
    const stateEl = h("span", { class: "tile-state" });
    const statsEl = h("div", { class: "tile-stats" });
    const el = h("div", { class: "tile", dataset: { stream: id } },
      video,
      h("div", { class: "tile-bar" }, h("span", { class: "tile-name" }, id), stateEl,
        h("button", { class: "tile-close", title: t("video.close"), "aria-label": t("video.close"), onclick: () => this.close(id) }, "×")),
      statsEl);
    const tile = { el, video, stateEl, statsEl, player: null, posterUrl: null };
    tile.player = new WhepPlayer(video, id, {
      headers: authHeaders,
      onchange: p => this._state(id, tile, p),
      onunauthorized: this.onUnauthorized,
    });
    this.tiles.set(id, tile);
    this.grid.appendChild(el);
    this._poster(id, tile);
    tile.player.start();
    this._remember();
    this._layout();
    this._renderChips();
    this._stats(id, tile);
  }

  async _poster(id, tile) {
    // the latest picture while WHEP connects: fetched with the header, shown from a blob
    if ((this.streams.get(id) || {}).state !== "live") return;
    try {
      const resp = await api(`/api/v1/streams/${encodeURIComponent(id)}/snapshot.jpg`, { raw: true });
      const url = URL.createObjectURL(await resp.blob());
      if (this.tiles.get(id) !== tile) { URL.revokeObjectURL(url); return; }
      tile.posterUrl = url;
      tile.video.poster = url;
    } catch (e) { /* no poster: fine */ }
  }

  close(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    this.tiles.delete(id);
    tile.player.stop();
    tile.video.srcObject = null;
    if (tile.posterUrl) URL.revokeObjectURL(tile.posterUrl);
    tile.el.remove();
    this._remember();
    this._layout();
    this._renderChips();
  }

  stopAll() {
    // log-out: stop playing, but remember the wall for the next session
    for (const id of [...this.tiles.keys()]) {
      const tile = this.tiles.get(id);
      this.tiles.delete(id);
      tile.player.stop();
      tile.el.remove();
    }
    this._layout();
  }

  _remember() {
    this.wanted = [...this.tiles.keys()];
    localStorage.setItem(KEY, JSON.stringify(this.wanted));
  }

  _layout() {
    const n = this.tiles.size;
    const cols = n <= 1 ? 1 : n <= 4 ? 2 : 3;
    this.grid.style.gridTemplateColumns = `repeat(${Math.max(cols, 1)}, minmax(0, 1fr))`;
    this.grid.classList.toggle("empty", n === 0);
  }

  _state(id, tile, p) {
    tile.stateEl.textContent = tOr(`video.state.${p.state}`, p.state);
    tile.el.dataset.state = p.state;
    this._stats(id, tile);
  }

  _stats(id, tile) {
    const s = this.streams.get(id) || {};
    const local = tile.player ? tile.player.stats : {};
    replace(tile.statsEl,
      h("div", {}, t("video.stats", { codec: s.codec || "?", w: s.width ?? "?", h: s.height ?? "?", fps: s.fps ?? "?",
        kbps: s.bitrate_kbps ?? "?", viewers: s.viewers ?? "?" })),
      h("div", {}, t("video.local", { frames: local.framesDecoded || 0, fps: Math.round(local.fps || 0), kbps: local.kbps || 0 })),
      s.device ? h("div", {}, s.device) : null,
      tile.player && tile.player.detail ? h("div", { class: "muted" }, tile.player.detail) : null);
  }

  relabel() {
    this._renderChips();
    for (const [id, tile] of this.tiles) { this._state(id, tile, tile.player); }
  }
}
