"""Users, roles and tokens (issue 8): every route × every role, login, logout, revocation, attacks."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi.routing import APIRoute
from starlette.routing import Route

from gateway.app import Gateway, GatewayOptions
from gateway.kit import KitError, load_kit
from gateway.users import UserStore
from tests.auth import bearer
from tests.certs import make_ca_and_server
from tests.conftest import ROOT, free_port
from tests.helpers import write_kit

# Every route and the role it needs ("open": no token). A route added without a line here fails
# the first test: decide who may call it, then add it.
ROUTE_ROLES: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/health"): "open",
    ("POST", "/api/v1/auth/login"): "open",
    ("POST", "/api/v1/auth/logout"): "viewer",
    ("GET", "/api/v1/auth/me"): "viewer",
    ("GET", "/api/v1/devices"): "viewer",
    ("GET", "/api/v1/devices/{device_id}"): "viewer",
    ("POST", "/api/v1/devices/{device_id}/commands"): "operator",
    ("GET", "/api/v1/commands/{cmd_id}"): "viewer",
    ("GET", "/api/v1/events"): "viewer",
    ("POST", "/api/v1/dispatch"): "operator",
    ("GET", "/api/v1/dispatch"): "viewer",
    ("GET", "/api/v1/dispatch/{dispatch_id}"): "viewer",
    ("GET", "/api/v1/streams"): "viewer",
    ("GET", "/api/v1/streams/{stream_id}/snapshot.jpg"): "viewer",
    ("GET", "/api/v1/streams/{stream_id}/recordings"): "viewer",
    ("GET", "/api/v1/streams/{stream_id}/recordings/{name}"): "viewer",
    ("OPTIONS", "/api/v1/streams/{stream_id}/whep"): "open",  # CORS preflight carries no credentials
    ("POST", "/api/v1/streams/{stream_id}/whep"): "viewer",
    ("DELETE", "/api/v1/streams/{stream_id}/whep/{session}"): "viewer",
    ("GET", "/api/v1/audit"): "admin",
    ("GET", "/metrics"): "open on loopback",
    ("GET", "/api/openapi.json"): "open",  # the route list, no data
    ("GET", "/api/docs"): "open",
    ("GET", "/docs/oauth2-redirect"): "open",
}
ORDER = ("none", "viewer", "operator", "admin")


@pytest_asyncio.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    kit = write_kit(tmp_path / "kit.yaml", [])
    gw = Gateway(load_kit(kit), GatewayOptions(data_dir=tmp_path / "data", http_port=0, mqtt_port=free_port()))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


def _flat(routes: list[Any]) -> list[Any]:
    """Routes, with included routers opened up (FastAPI keeps them as one entry each)."""
    out = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out += _flat(inner.routes) if inner is not None else [r]
    return out


def _routes(gw: Gateway) -> dict[tuple[str, str], Any]:
    from gateway.api import create_app

    app = create_app(gw)
    return {(m, r.path): r for r in _flat(app.routes) if isinstance(r, (APIRoute, Route)) for m in r.methods - {"HEAD"}}


def _needed(route: Any) -> str:
    if not isinstance(route, APIRoute):
        return "open"
    roles = [getattr(d.call, "required_role", None) for d in route.dependant.dependencies]
    roles = [r for r in roles if r]
    return roles[0] if roles else "open"


async def test_every_route_has_a_role_and_enforces_it(gateway: Gateway) -> None:
    routes = _routes(gateway)
    assert set(routes) == set(ROUTE_ROLES), f"routes without a role in ROUTE_ROLES: {set(routes) - set(ROUTE_ROLES)}"
    for key, route in routes.items():
        want = ROUTE_ROLES[key]
        if want in ORDER:
            assert _needed(route) == want, f"{key} needs {_needed(route)}, the table says {want}"
    base = f"http://127.0.0.1:{gateway.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        for (method, path), want in ROUTE_ROLES.items():
            url = path.replace("{", "").replace("}", "")  # ids that do not exist: past auth comes 404/4xx
            for role in ORDER:
                headers = bearer(gateway.users, role) if role != "none" else {}  # fresh: logout revokes it
                async with client.stream(method, url, headers=headers,
                                         content=b"{}" if method == "POST" else None) as r:
                    status = r.status_code
                if want in ("open", "open on loopback"):
                    allowed = True
                elif role == "none":
                    allowed = False
                else:
                    allowed = ORDER.index(role) >= ORDER.index(want)
                if allowed:
                    assert status not in (401, 403), f"{method} {path} as {role}: {status}"
                else:
                    assert status == (401 if role == "none" else 403), f"{method} {path} as {role}: {status} (needs {want})"


async def test_login_me_logout(gateway: Gateway) -> None:
    gateway.users.add("duty-officer", "operator", "correct horse battery")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=10) as client:
        r = await client.post("/api/v1/auth/login", json={"username": "duty-officer", "password": "correct horse battery"})
        assert r.status_code == 200, r.text
        login = r.json()
        assert login["role"] == "operator" and login["user"] == "duty-officer"
        assert login["expires_ts"] > time.time() * 1000 + 11 * 3600 * 1000
        auth = {"Authorization": f"Bearer {login['token']}"}
        me = (await client.get("/api/v1/auth/me", headers=auth)).json()
        assert me == {"user": "duty-officer", "role": "operator", "expires_ts": login["expires_ts"]}
        assert (await client.post("/api/v1/dispatch", headers=auth, json={"text": "x", "targets": ["nobody"]})).status_code != 403
        assert (await client.get("/api/v1/audit", headers=auth)).status_code == 403
        assert (await client.post("/api/v1/auth/logout", headers=auth)).status_code == 200
        r = await client.get("/api/v1/auth/me", headers=auth)
        assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        bad = await client.post("/api/v1/auth/login", json={"username": "duty-officer", "password": "wrong"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "bad_credentials"
        nobody = await client.post("/api/v1/auth/login", json={"username": "nobody", "password": "wrong"})
        assert nobody.status_code == 401 and nobody.json() == bad.json()  # no hint which users exist
        assert (await client.post("/api/v1/auth/login", content=b"[]")).status_code == 400


async def test_guessing_passwords_is_throttled_per_address(gateway: Gateway) -> None:
    gateway.users.add("admin-1", "admin", "a long admin password")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=10) as client:
        codes = [(await client.post("/api/v1/auth/login", json={"username": "admin-1", "password": f"guess{i}"})).status_code
                 for i in range(6)]
        assert codes == [401] * 5 + [429]
        r = await client.post("/api/v1/auth/login", json={"username": "admin-1", "password": "a long admin password"})
        assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 61  # even the right one, until it passes


async def test_bad_forged_expired_and_query_tokens_are_refused(gateway: Gateway) -> None:
    store: UserStore = gateway.users
    good = bearer(store, "viewer")["Authorization"][7:]
    head, payload, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["r"] = "admin"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    short, _ = store.issue("test-viewer", 1)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=10) as client:
        async def status(path: str, token: str | None = None, header: str | None = None) -> int:
            h = {"Authorization": header or f"Bearer {token}"} if (token or header) else {}
            return (await client.get(path, headers=h)).status_code

        assert await status("/api/v1/devices", good) == 200
        assert await status("/api/v1/devices", f"{head}.{forged_payload}.{sig}") == 401
        assert await status("/api/v1/devices", "garbage") == 401
        assert await status("/api/v1/devices", header=f"Basic {good}") == 401
        assert await status("/api/v1/devices", header="Bearer") == 401
        # tokens in the query string: only where a browser cannot send a header
        assert await status(f"/api/v1/devices?access_token={good}") == 401
        async with client.stream("GET", f"/api/v1/events?access_token={good}") as r:
            assert r.status_code == 200
        assert await status(f"/api/v1/streams/none/snapshot.jpg?access_token={good}") == 404
        await asyncio.sleep(1.1)
        r = await client.get("/api/v1/devices", headers={"Authorization": f"Bearer {short}"})
        assert r.status_code == 401 and "expired" in r.json()["error"]["message"]


def _cli(*args: str, data_dir: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "users", *args, "--data-dir", str(data_dir)],
                          cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=60)


async def test_users_cli_changes_bite_on_a_running_gateway(gateway: Gateway) -> None:
    data = gateway.opts.data_dir
    add = await asyncio.to_thread(_cli, "add", "wall-screen", "--role", "operator", "--password-stdin",
                                  data_dir=data, stdin="screen password 1\n")
    assert add.returncode == 0, add.stderr
    token = (await asyncio.to_thread(_cli, "token", "wall-screen", "--ttl", "2h", "--role", "viewer", data_dir=data)).stdout.strip()
    listed = (await asyncio.to_thread(_cli, "list", data_dir=data)).stdout
    assert "wall-screen\toperator" in listed
    assert (await asyncio.to_thread(_cli, "add", "Bad Name", "--role", "viewer", "--password-stdin",
                                    data_dir=data, stdin="long enough\n")).returncode == 2
    short = await asyncio.to_thread(_cli, "add", "x1", "--role", "viewer", "--password-stdin", data_dir=data, stdin="short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr
    assert (await asyncio.to_thread(_cli, "add", "x2", "--role", "root", "--password-stdin",
                                    data_dir=data, stdin="long enough\n")).returncode == 2
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=10) as client:
        auth = {"Authorization": f"Bearer {token}"}
        me = (await client.get("/api/v1/auth/me", headers=auth)).json()
        assert me["role"] == "viewer"  # minted with less than the user's role
        r = await client.post("/api/v1/auth/login", json={"username": "wall-screen", "password": "screen password 1"})
        assert r.json()["role"] == "operator"
        removed = await asyncio.to_thread(_cli, "remove", "wall-screen", data_dir=data)
        assert removed.returncode == 0
        deadline = time.monotonic() + 3
        while (await client.get("/api/v1/auth/me", headers=auth)).status_code == 200:
            assert time.monotonic() < deadline, "a removed user's token still works"
            await asyncio.sleep(0.2)
        assert (await asyncio.to_thread(_cli, "remove", "wall-screen", data_dir=data)).returncode == 2


async def test_https_when_the_kit_gives_a_certificate(tmp_path: Path) -> None:
    ca, cert, key = make_ca_and_server(tmp_path)
    kit = write_kit(tmp_path / "kit.yaml", [], http={"tls_cert": cert.name, "tls_key": key.name})  # relative to the kit
    gw = Gateway(load_kit(kit), GatewayOptions(data_dir=tmp_path / "data", http_port=0, mqtt_port=free_port()))
    await gw.start()
    try:
        gw.users.add("duty-officer", "operator", "correct horse battery")
        async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{gw.http_port}", verify=ssl.create_default_context(cafile=str(ca)), timeout=10) as client:
            r = await client.post("/api/v1/auth/login", json={"username": "duty-officer", "password": "correct horse battery"})
            assert r.status_code == 200
            me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {r.json()['token']}"})
            assert me.json()["user"] == "duty-officer"
            assert (await client.get("/")).status_code == 200  # the console, over https
        with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port gets nowhere
            async with httpx.AsyncClient(timeout=5) as plain:
                (await plain.get(f"http://127.0.0.1:{gw.http_port}/api/v1/health")).raise_for_status()
    finally:
        await gw.stop()
    missing = write_kit(tmp_path / "kit2.yaml", [], http={"tls_cert": "nope.pem", "tls_key": key.name})
    gw2 = Gateway(load_kit(missing), GatewayOptions(data_dir=tmp_path / "data2", http_port=0, mqtt_port=free_port()))
    with pytest.raises(RuntimeError, match="nope.pem does not exist"):
        await gw2.start()
    await gw2.stop()
    half = write_kit(tmp_path / "kit3.yaml", [], http={"tls_cert": cert.name})
    with pytest.raises(KitError, match="both tls_cert and tls_key"):
        load_kit(half)


async def test_oversized_bodies_are_refused_before_they_are_read(gateway: Gateway) -> None:
    auth = bearer(gateway.users, "operator")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=10) as client:
        big = b'{"text": "' + b"x" * 300_000 + b'", "targets": "all"}'
        r = await client.post("/api/v1/dispatch", content=big, headers=auth)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

        # no Content-Length: counted as it streams, answered 413 once past the cap (not after 6 MB)
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.http_port)
        writer.write(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):  # exactly the cap, then one byte more (and no end: the answer must not wait for it)
            writer.write(b"10000\r\n" + b"x" * 65536 + b"\r\n")
        writer.write(b"1\r\nx\r\n")
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
        assert status_line.startswith(b"HTTP/1.1 413"), status_line
        r = await client.post("/api/v1/streams/cam/whep", content=b"v=0\r\n" * 100_000,
                              headers={**auth, "Content-Type": "application/sdp"})
        assert r.status_code == 413
        assert (await client.post("/api/v1/auth/login", json={"username": "a", "password": "b"})).status_code == 401
