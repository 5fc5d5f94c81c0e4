"""Signing in and out in a browser: the login page, password and OIDC logins, logout.

`POST /login` takes the page's form (answering with a redirect, or the page again with the error)
or JSON `{"username", "password"}` (answering `{"user": ...}`); either way a success sets the login
cookie (`profiles.logins`) and a failure says only "wrong user name or password". Failed attempts
are throttled per account and client address, per account and per client address (429; behind a
trusted proxy the client address comes from X-Forwarded-For: `logins.client_address`). `next=` is
followed only to a path on this server. These routes are public: they are how one gets credentials.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from flowdeck.controlplane.app import Ctx, ServerContext
from flowdeck.controlplane.auth import Public
from flowdeck.controlplane.errors import ApiError
from flowdeck.controlplane.rendering import render
from flowdeck.profiles import logins
from flowdeck.profiles.authn import login_cookie

if TYPE_CHECKING:
    from flowdeck.profiles.oidc import OidcLogin
from flowdeck.profiles.logins import safe_next
from flowdeck.profiles.passwords import MAX_PASSWORD_BYTES, verify_password_async

router = APIRouter(include_in_schema=False)

WRONG = "wrong user name or password"


@dataclass
class LoginServices:
    """What the login routes keep for the server's lifetime: the throttle and the OIDC client."""

    ctx: ServerContext

    @cached_property
    def throttle(self) -> logins.LoginThrottle:
        return logins.LoginThrottle()

    @cached_property
    def oidc(self) -> OidcLogin | None:
        settings = self.ctx.settings
        if not (settings.oidc_issuer and settings.oidc_client_id):
            return None
        from flowdeck.profiles.oidc import OidcLogin  # authlib is imported only when OIDC is configured

        return OidcLogin(settings)


def _services(request: Request) -> LoginServices:
    state = request.app.state
    if getattr(state, "login_services", None) is None:
        state.login_services = LoginServices(request.app.state.context)
    return state.login_services


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, _access: Public, next: str = "/") -> HTMLResponse:
    return render("login.html", next=safe_next(next), username="", error=None,
                  oidc=_services(request).oidc is not None)


@router.post("/login")
async def login(request: Request, ctx: Ctx, _access: Public) -> Response:
    as_form = "json" not in request.headers.get("content-type", "")
    fields = await _credentials(request, as_form)
    username, password = str(fields.get("username") or ""), str(fields.get("password") or "")
    next_path = safe_next(str(fields.get("next") or "/"))
    services = _services(request)

    def refuse(status: int, message: str) -> Response:
        if as_form:
            page = render("login.html", next=next_path, username=username[:253], error=message,
                          oidc=services.oidc is not None)
            page.status_code = status
            return page
        raise ApiError(status, message)

    if not username or not password:
        return refuse(400, "give a user name and a password")
    address = logins.client_address(_client(request), request.headers.getlist("x-forwarded-for"),
                                    ctx.settings.trusted_proxies)
    with services.throttle.attempt(username[:253], address) as attempt:
        if attempt.refused:
            return refuse(429, attempt.refused)
        user = ctx.identity.get_user(username) if len(username) <= 253 else None
        valid, new_hash = await verify_password_async(user.password_hash if user else None, password)
        if user is None or not valid or user.disabled:
            attempt.failed()
            return refuse(401, WRONG)
    if new_hash:
        ctx.identity.update_user(user.name, password_hash=new_hash)
    response: Response = (RedirectResponse(next_path, status_code=303) if as_form
                          else JSONResponse({"user": user.name}))
    _begin(request, ctx, response, user.name)
    return response


async def _credentials(request: Request, as_form: bool) -> dict[str, Any]:
    if int(request.headers.get("content-length") or 0) > 4 * MAX_PASSWORD_BYTES:
        raise ApiError(413, "a sign-in request is a user name and a password: this one is too large")
    if as_form:
        async with request.form(max_files=0, max_fields=8) as form:
            return {key: value for key, value in form.items() if isinstance(value, str)}
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, 'request body must be a JSON object {"username": ..., "password": ...}')
    return body


def _begin(request: Request, ctx: ServerContext, response: Response, user: str,
           groups: tuple[str, ...] | None = None) -> None:
    """Start a login for `user` (with their OIDC `groups`) on `response`, ending the one the browser had
    (a new value every time)."""
    https = _https(request)
    previous = login_cookie(request.headers.getlist("cookie"), https)
    if previous:
        logins.end_login(ctx.identity, previous)
    value = logins.start_login(ctx.identity, user, ctx.settings, _client(request), groups)
    logins.set_login_cookie(response, value, https=https, settings=ctx.settings)


@router.post("/logout")
def logout(request: Request, ctx: Ctx, _access: Public) -> Response:
    """End the browser's login (the server forgets it: the cookie is worthless even if kept)."""
    https = _https(request)
    value = login_cookie(request.headers.getlist("cookie"), https)
    if value:
        logins.end_login(ctx.identity, value)
    wants_page = "json" not in request.headers.get("accept", "") and "json" not in request.headers.get(
        "content-type", "")
    response: Response = RedirectResponse("/login", status_code=303) if wants_page else JSONResponse({})
    logins.clear_login_cookie(response, https=https)
    return response


@router.get("/oidc/login")
async def oidc_login(request: Request, _access: Public, next: str = "/") -> Response:
    oidc = _services(request).oidc
    if oidc is None:
        raise ApiError(404, "OIDC login is not configured on this control plane (FLOWDECK_OIDC_ISSUER)")
    from flowdeck.profiles.oidc import OidcFailed

    try:
        return await oidc.redirect(request, str(request.url_for("oidc_callback")), next)
    except OidcFailed as exc:
        raise ApiError(502, str(exc)) from None


@router.get("/oidc/callback", name="oidc_callback")
async def oidc_callback(request: Request, ctx: Ctx, _access: Public) -> Response:
    oidc = _services(request).oidc
    if oidc is None:
        raise ApiError(404, "OIDC login is not configured on this control plane (FLOWDECK_OIDC_ISSUER)")
    from flowdeck.profiles.oidc import STATE_COOKIE, OidcFailed

    try:
        who, next_path = await oidc.complete(request, ctx.identity)
    except OidcFailed as exc:
        page = render("login.html", next="/", username="", error=str(exc), oidc=True)
        page.status_code = 401
        page.delete_cookie(STATE_COOKIE, path="/oidc/")
        return page
    response = RedirectResponse(next_path, status_code=303)
    response.delete_cookie(STATE_COOKIE, path="/oidc/")
    _begin(request, ctx, response, who.user, who.groups)
    return response
