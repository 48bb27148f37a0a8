// WHEP playback of one gateway stream (CONTRACT.md §4), shared by player.html and the console.
//
//   const p = new WhepPlayer(videoElement, "dome-1", { headers: () => ({Authorization: "Bearer …"}) });
//   p.onchange = () => …;   // p.state, p.framesDecoded, p.attempts, p.stats
//   p.start(); … p.stop();
//
// It retries by itself: while the stream is not live (409 + Retry-After), when the
// POST fails, when the peer connection fails or disconnects, and when no frame has
// decoded for 5 s (frozen video). `stop()` DELETEs the session URL (Location).
// A 401 is not retried: `onunauthorized` is called instead.
"use strict";

const FROZEN_MS = 5000;
const STATS_MS = 500;

function gathered(conn, timeoutMs = 3000) {
  return new Promise(resolve => {
    if (conn.iceGatheringState === "complete") return resolve();
    const done = () => { if (conn.iceGatheringState === "complete") resolve(); };
    conn.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);
  });
}

export class WhepPlayer {
  constructor(video, streamId, options = {}) {
    this.video = video;
    this.streamId = streamId;
    this.headers = options.headers || (() => ({}));
    this.onchange = options.onchange || null;
    this.onunauthorized = options.onunauthorized || null;
    this.pc = null;
    this.session = null;
    this.state = "idle";        // idle | connecting | waiting | playing | retrying | stopped | unauthorized
    this.detail = "";
    this.attempts = 0;
    this.framesDecoded = 0;
    this.stats = { codec: "", width: 0, height: 0, fps: 0, kbps: 0, framesDecoded: 0 };
    this._retryTimer = null;
    this._statsTimer = null;
    this._lastFrames = 0;
    this._stalledSince = null;
    this._lastBytes = null;
    this._running = false;
    this._generation = 0;
  }

  _set(state, detail = "") {
    this.state = state;
    this.detail = detail;
    if (this.onchange) this.onchange(this);
  }

  start() {
    if (this._running) return;
    this._running = true;
    this._statsTimer = setInterval(() => this._poll(), STATS_MS);
    this._play();
  }

  async stop() {
    this._running = false;
    this._generation += 1;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    clearInterval(this._statsTimer);
    this._statsTimer = null;
    await this._close();
    this._set("stopped");
  }

  async _close() {
    const session = this.session, pc = this.pc;
    this.session = null;
    this.pc = null;
    if (session) fetch(session, { method: "DELETE", headers: this.headers(), keepalive: true }).catch(() => {});
    if (pc) pc.close();
  }

  _retry(seconds, why) {
    if (!this._running || this._retryTimer) return;
    this._set("retrying", why);
    this._retryTimer = setTimeout(() => { this._retryTimer = null; this._play(); }, Math.max(1, seconds) * 1000);
  }

  async _play() {
    const generation = ++this._generation;
    await this._close();
    if (!this._running) return;
    this.attempts += 1;
    this._lastFrames = 0;
    this._stalledSince = null;
    this._lastBytes = null;
    this._set("connecting");
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.ontrack = ev => { this.video.srcObject = ev.streams[0] || new MediaStream([ev.track]); };
    pc.onconnectionstatechange = () => {
      if (this.pc === pc && (pc.connectionState === "failed" || pc.connectionState === "disconnected")) {
        this._retry(2, pc.connectionState);
      }
    };
    let resp;
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      if (generation !== this._generation) return;
      resp = await fetch(`/api/v1/streams/${encodeURIComponent(this.streamId)}/whep`, {
        method: "POST", headers: { "Content-Type": "application/sdp", ...this.headers() }, body: pc.localDescription.sdp });
    } catch (e) {
      if (generation === this._generation) this._retry(2, String(e));
      return;
    }
    if (generation !== this._generation) {
      const loc = resp.headers.get("Location");
      if (resp.status === 201 && loc) fetch(loc, { method: "DELETE", headers: this.headers() }).catch(() => {});
      return;
    }
    if (resp.status === 401) {
      this._running = false;
      this._set("unauthorized", "HTTP 401");
      if (this.onunauthorized) this.onunauthorized();
      return;
    }
    if (resp.status !== 201) {
      const wait = parseInt(resp.headers.get("Retry-After") || "3", 10);
      let why = `HTTP ${resp.status}`;
      try { const body = await resp.json(); if (body && body.error) why += ` ${body.error.code}`; } catch (e) { /* not JSON */ }
      if (resp.status === 409) this._set("waiting", why);
      return this._retry(Number.isFinite(wait) ? wait : 3, why);
    }
    this.session = resp.headers.get("Location");
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
    } catch (e) {
      return this._retry(2, String(e));
    }
    this._set("playing");
  }

  async _poll() {
    const pc = this.pc;
    if (!pc) return;
    let stats;
    try { stats = await pc.getStats(); } catch (e) { return; }
    const codecs = new Map();
    let inbound = null;
    stats.forEach(r => {
      if (r.type === "codec") codecs.set(r.id, r.mimeType || "");
      if (r.type === "inbound-rtp" && r.kind === "video") inbound = r;
    });
    if (inbound) {
      const now = inbound.timestamp;
      let kbps = this.stats.kbps;
      if (this._lastBytes && now > this._lastBytes.t) {
        kbps = Math.round((inbound.bytesReceived - this._lastBytes.b) * 8 / (now - this._lastBytes.t));
      }
      this._lastBytes = { t: now, b: inbound.bytesReceived || 0 };
      this.framesDecoded = inbound.framesDecoded || 0;
      this.stats = {
        codec: (codecs.get(inbound.codecId) || "").replace(/^video\//, ""),
        width: inbound.frameWidth || this.video.videoWidth || 0,
        height: inbound.frameHeight || this.video.videoHeight || 0,
        fps: inbound.framesPerSecond || 0,
        kbps,
        framesDecoded: this.framesDecoded,
      };
    }
    if (this.framesDecoded > this._lastFrames) {
      this._lastFrames = this.framesDecoded;
      this._stalledSince = null;
    } else if (this.state === "playing") {
      this._stalledSince = this._stalledSince || Date.now();
      if (Date.now() - this._stalledSince > FROZEN_MS) {
        this._stalledSince = null;
        this._retry(1, "frozen");
      }
    }
    if (this.onchange) this.onchange(this);
  }
}
