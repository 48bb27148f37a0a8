// The gateway's HTTP API with the session's bearer token (CONTRACT.md §2).
//
// The token lives in sessionStorage (this tab only, gone when it closes). Every
// fetch sends `Authorization: Bearer TOKEN`; only EventSource (which cannot send
// headers) puts it in the query string as `?access_token=`. Any 401 calls the
// handler set with onUnauthorized (the console goes back to its login screen).
"use strict";

const KEY = "fieldgw.token";
let unauthorizedHandler = () => {};

export function getToken() { return sessionStorage.getItem(KEY) || ""; }
export function setToken(token) { token ? sessionStorage.setItem(KEY, token) : sessionStorage.removeItem(KEY); }
export function onUnauthorized(fn) { unauthorizedHandler = fn; }

export function authHeaders() {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// A token handed over in the URL fragment (/#token=…; fragments never reach the server):
// kept for the session and removed from the address bar and history.
export function takeTokenFromFragment() {
  const frag = new URLSearchParams(location.hash.slice(1));
  const token = frag.get("token");
  if (!token) return false;
  setToken(token);
  frag.delete("token");
  const rest = frag.toString();
  history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  return true;
}

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || "";
    this.retryAfter = retryAfter;
  }
}

// fetch + JSON; throws ApiError on a non-2xx answer (and reports 401 first).
export async function api(path, { method = "GET", body, headers = {}, raw = false, quiet401 = false } = {}) {
  const init = { method, headers: { ...authHeaders(), ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    if (!init.headers["Content-Type"]) init.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(path, init);
  if (resp.status === 401 && !quiet401) unauthorizedHandler();
  if (!resp.ok) {
    let code = "", message = "";
    try {
      const j = await resp.json();
      code = j?.error?.code || "";
      message = j?.error?.message || "";
    } catch (e) { /* not JSON */ }
    throw new ApiError(resp.status, code, message || `HTTP ${resp.status}`, resp.headers.get("Retry-After"));
  }
  if (raw) return resp;
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

export function eventsUrl() {
  const token = getToken();
  return "/api/v1/events" + (token ? `?access_token=${encodeURIComponent(token)}` : "");
}
