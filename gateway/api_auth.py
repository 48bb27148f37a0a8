"""Auth routes: log in (password → bearer token), log out (revoke it), who am I."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request

from gateway.auth import AuthFailed, LoginThrottle, Principal, client_address, require
from gateway.users import LOGIN_TTL_S

if TYPE_CHECKING:
    from gateway.app import Gateway


def auth_routes(gw: Gateway) -> APIRouter:
    router = APIRouter()
    throttle = LoginThrottle()

    @router.post("/api/v1/auth/login")
    async def login(request: Request) -> dict[str, Any]:
        address = client_address(request)
        throttle.check(address)
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("username"), str) or not isinstance(body.get("password"), str):
            raise AuthFailed(400, "bad_request", 'the body must be {"username": STR, "password": STR}')
        user = await asyncio.to_thread(gw.users.check_password, body["username"], body["password"])
        if user is None:
            throttle.failed(address)
            raise AuthFailed(401, "bad_credentials", "wrong user name or password")
        throttle.succeeded(address)
        token, info = gw.users.issue(user.name, LOGIN_TTL_S)
        return {"token": token, "user": info.user, "role": info.role, "expires_ts": info.expires_ts}

    @router.post("/api/v1/auth/logout")
    async def logout(who: Principal = Depends(require("viewer"))) -> dict[str, Any]:
        gw.users.revoke(who.token_id, who.expires_ts)
        return {"user": who.name, "revoked": True}

    @router.get("/api/v1/auth/me")
    async def me(who: Principal = Depends(require("viewer"))) -> dict[str, Any]:
        return {"user": who.name, "role": who.role, "expires_ts": who.expires_ts}

    return router
