"""Who is calling, and what every route lets them do: authentication once per request, deny by default.

`RequestGuard` (ASGI middleware) sees every request first. It refuses what no browser page may do
(a foreign Host: DNS rebinding; a state-changing request from another site; a cookie-authenticated
write without proof it comes from our own pages: CSRF), then resolves the request's `Principal` once:

- on a loopback address with no users, no token, no OIDC and no trusted header configured, every
  request is the implicit cluster admin (single-user flowdeck: `kfp.Client(host=...)` needs nothing);
- otherwise the credentials decide (`profiles.authn.authenticate`), and an anonymous request gets a 401 everywhere
  but on public routes.

Every route declares its authorization policy as a dependency: `Public`, `Authenticated`,
`ClusterAdmin`, or `Scoped` — a route that works on a profile's objects, whose handler decides per
object through the `Access` it receives (`require(scope, namespace)`, `visible()` for lists). Each
decision is recorded on the request; a handler that answers without any decision is answered with a
500 instead (fail closed), and `route_policies` lets a test prove that no route lacks a policy.

Objects in profiles the caller cannot read answer 404 exactly like missing ones (no existence leak);
readable but not writable is a 403.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowdeck.controlplane.errors import ApiError, error_response
from flowdeck.profiles.authn import LEGACY_ADMIN, AuthenticationError, authenticate
from flowdeck.profiles.rbac import ANONYMOUS, Principal

logger = logging.getLogger("flowdeck.controlplane.auth")

#: Host names that always reach a control plane bound to a loopback address.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
#: Methods that change state: refused when a browser sends them from another origin.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Sec-Fetch-Site values that prove a cookie-authenticated write comes from our own pages (or the user).
SAME_ORIGIN_FETCH = frozenset({b"same-origin", b"none"})
#: The largest request body accepted (a pipeline package upload is the largest legitimate one).
MAX_BODY_BYTES = 64 * 1024 * 1024
TOO_LARGE = f"request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB"
#: The principal of every request in single-user mode (the legacy `--token` is the same admin).
IMPLICIT_ADMIN = LEGACY_ADMIN


# -- the principal of a request ----------------------------------------------------------------------

class AccessMode:
    """Whether this server is single-user (everyone is the implicit admin) or requires credentials."""

    def __init__(self, context: Any) -> None:
        settings = context.settings
        self.context = context
        self.configured = bool(settings.token or settings.oidc_issuer or settings.trusted_proxies
                               or not is_loopback(context.bind_host))

    @property
    def has_users(self) -> bool:
        return self.context.store is not None and self.context.identity.has_users()

    @property
    def multi_user(self) -> bool:
        """True when requests need credentials: users exist, a login mechanism is configured, or not loopback."""
        return self.configured or self.has_users


def is_loopback(host: str) -> bool:
    """Whether `host` (an address, or "localhost") is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- decisions -----------------------------------------------------------------------------------------

class Access:
    """The request's principal, and the authorization decisions a handler makes with it."""

    def __init__(self, principal: Principal, decisions: list[str]) -> None:
        self.principal = principal
        self._decisions = decisions

    def record(self, decision: str) -> None:
        self._decisions.append(decision)

    def can(self, scope: str, namespace: str) -> bool:
        return self.principal.allows(scope, namespace)

    def require(self, scope: str, namespace: str, missing: Callable[[], Exception] | None = None) -> None:
        """Allow `scope` in `namespace`, or raise: `missing()` (default: the namespace is not found) when the
        caller cannot even read there, a 403 when they can read but not `scope`."""
        if self.principal.allows(scope, namespace):
            self.record(f"{scope}:{namespace}")
            return
        self.record(f"denied {scope}:{namespace}")
        if scope != "read" and self.principal.allows("read", namespace):
            raise ApiError(403, f"{_who(self.principal)} may not {scope} in namespace {_shown(namespace)!r}")
        raise missing() if missing is not None else namespace_not_found(namespace)

    def visible(self, scope: str = "read") -> frozenset[str] | None:
        """The namespaces where `scope` is held (None: every one), for a list to filter on before paging."""
        self.record(f"filter {scope}")
        return self.principal.profiles_with(scope)

    def require_cluster_admin(self) -> None:
        if not self.principal.full_cluster_admin:
            self.record("denied cluster-admin")
            raise ApiError(403, f"{_who(self.principal)} is not a cluster admin")
        self.record("cluster-admin")


def namespace_not_found(namespace: str) -> ApiError:
    return ApiError(404, f"namespace {_shown(namespace)!r} not found")


def _shown(namespace: str) -> str:
    return namespace or "default"


def _who(principal: Principal) -> str:
    kind, _, name = principal.name.partition(":")
    return f"{kind} {name!r}" if name else principal.name


def _access(connection: HTTPConnection) -> Access:
    state = connection.scope.setdefault("state", {})
    return Access(state.get("principal", ANONYMOUS), state.setdefault("authz", []))


def _authenticated(connection: HTTPConnection) -> Access:
    access = _access(connection)
    if not access.principal.authenticated:
        raise ApiError(401, "this control plane requires credentials (a bearer token or a login)")
    return access


def public(connection: HTTPConnection) -> Access:
    """Policy: anyone may call the route (it shows nothing of any profile, or filters by the principal)."""
    access = _access(connection)
    access.record("public")
    return access


def authenticated(connection: HTTPConnection) -> Access:
    """Policy: any signed-in principal (the route shows nothing that belongs to a profile)."""
    access = _authenticated(connection)
    access.record("authenticated")
    return access


def scoped(connection: HTTPConnection) -> Access:
    """Policy: a signed-in principal; the handler decides per namespace (`Access.require`/`visible`)."""
    return _authenticated(connection)


def cluster_admin(connection: HTTPConnection) -> Access:
    """Policy: cluster admins only."""
    access = _authenticated(connection)
    access.require_cluster_admin()
    return access


Public = Annotated[Access, Depends(public)]
Authenticated = Annotated[Access, Depends(authenticated)]
Scoped = Annotated[Access, Depends(scoped)]
ClusterAdmin = Annotated[Access, Depends(cluster_admin)]
POLICIES: dict[Callable[..., Any], str] = {public: "public", authenticated: "authenticated", scoped: "scoped",
                                           cluster_admin: "cluster-admin"}


def route_policies(routes: Sequence[BaseRoute]) -> list[tuple[str, frozenset[str], str | None]]:
    """(path, methods, policy) of every route an app serves (policy None: it declares none, or several)."""
    found = []
    for context in iter_route_contexts(routes):
        route = context.original_route
        policies = _policies(route.dependant) if isinstance(route, (APIRoute, APIWebSocketRoute)) else []
        methods = frozenset(getattr(route, "methods", None) or {"WEBSOCKET"})
        found.append((str(context.path), methods, policies[0] if len(policies) == 1 else None))
    return found


def _policies(dependant: Dependant) -> list[str]:
    found = [POLICIES[dependant.call]] if dependant.call in POLICIES else []
    for sub in dependant.dependencies:
        found += [p for p in _policies(sub) if p not in found]
    return found


# -- the middleware ------------------------------------------------------------------------------------

class RequestGuard:
    """Checks every request before any route sees it, and every answer before it leaves.

    - The Host header must name this server: a loopback name, or the address it was bound to.
    - State-changing requests that a browser marks as coming from another site are refused, and
      cookie-authenticated ones must prove they come from our own origin (CSRF).
    - Request bodies larger than `MAX_BODY_BYTES` are refused with 413 before they are read whole.
    - The principal is resolved once; anonymous requests reach only public routes when credentials are needed.
    - A successful answer from a route that recorded no authorization decision becomes a 500.
    """

    def __init__(self, app: ASGIApp, context: Any) -> None:
        self.app = app
        self.context = context
        bind_host = context.bind_host
        self.mode = AccessMode(context)
        # bound to every interface: clients name whatever address reaches it (such a server requires credentials)
        self.any_host = bind_host in ("0.0.0.0", "::")
        self.hosts = LOOPBACK_NAMES | {bind_host.lower(), f"[{bind_host.lower()}]"}
        self.public_paths: re.Pattern[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["authz"] = []
        try:
            self._check(scope)
        except ApiError as exc:
            await self._refuse(scope, receive, send, exc)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        await self._serve(scope, receive, send)

    def _check(self, scope: Scope) -> None:
        headers = Headers(scope=scope)
        if scope["type"] == "http":
            length = headers.get("content-length", "0")
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                raise ApiError(413, TOO_LARGE)
        host = headers.get("host", "").lower()
        if not self.any_host and _hostname(host) not in self.hosts:
            raise ApiError(403, f"host {host!r} is not this control plane's address (DNS rebinding is refused)")
        unsafe = scope["type"] == "websocket" or scope["method"] in UNSAFE_METHODS
        fetch_site = headers.get("sec-fetch-site", "").encode()
        if unsafe:
            origin = headers.get("origin", "").lower()
            if (origin not in ("", "null") and origin.split("://", 1)[-1] != host) or fetch_site == b"cross-site":
                raise ApiError(403, "cross-site request refused")
        principal = self._principal(scope)
        if unsafe and principal.by_cookie and fetch_site not in SAME_ORIGIN_FETCH:
            own = f"{'https' if scope.get('scheme') in ('https', 'wss') else 'http'}://{host}"
            if fetch_site or headers.get("origin", "").lower() != own:
                raise ApiError(403, "cross-site request refused (a cookie-authenticated write must come from "
                                    "this control plane's own pages)")
        scope["state"]["principal"] = principal
        scope["state"]["multi_user"] = self.mode.has_users
        if not principal.authenticated and not self._public_paths(scope).fullmatch(scope["path"]):
            raise ApiError(401, "this control plane requires credentials (a bearer token or a login)")

    def _principal(self, scope: Scope) -> Principal:
        if not self.mode.multi_user:
            return IMPLICIT_ADMIN
        try:
            return authenticate(scope, identity=self.context.identity, settings=self.context.settings)
        except AuthenticationError as exc:
            raise ApiError(exc.status, exc.message) from None

    def _public_paths(self, scope: Scope) -> re.Pattern[str]:
        """One pattern matching the paths of every route whose policy is `public` (fixed once the app serves)."""
        if self.public_paths is None:
            routes = route_policies(scope["app"].routes)
            patterns = [re.sub(r"\(\?P<\w+>", "(?:", compile_path(path)[0].pattern.strip("^$"))
                        for path, _, policy in routes if policy == "public"]
            self.public_paths = re.compile("|".join(f"(?:{pattern})" for pattern in patterns) or "(?!)")
        return self.public_paths

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, exc: ApiError) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": exc.message[:120]})
            return
        if exc.status == 401 and _browser_page_request(scope):  # a page visit without credentials: sign in
            target = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else "")
            await RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)(scope, receive, send)
            return
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        await error_response(exc.status, exc.message, headers=headers)(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        refused = False
        replaced = False
        decisions: list[str] = scope["state"]["authz"]

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:  # answer now; the app sees the client go away
                refused = True
                await error_response(413, TOO_LARGE)(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if refused or replaced:
                return
            if message["type"] == "http.response.start" and message["status"] < 400 and not decisions:
                route = scope.get("route")
                logger.error("%s %s answered without an authorization decision (route %s): refused",
                             scope["method"], scope["path"], getattr(route, "path", None))
                replaced = True
                await error_response(500, "internal error: no authorization decision")(scope, receive, send)
                return
            await send(message)

        await self.app(scope, counting_receive, guarded_send)


def _browser_page_request(scope: Scope) -> bool:
    """A browser asking for a page (GET, HTML accepted) with no credentials of its own."""
    headers = Headers(scope=scope)
    return (scope["method"] == "GET" and "text/html" in headers.get("accept", "")
            and "authorization" not in headers and not scope["path"].startswith(("/apis/", "/kfam/")))


def _hostname(host: str) -> str:
    """`host[:port]` or `[v6]:port` without the port."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
