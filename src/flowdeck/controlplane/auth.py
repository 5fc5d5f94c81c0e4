"""Who is calling: the authentication hook every API request passes through.

With a token configured (`flowdeck up --token` or `FLOWDECK_TOKEN`), every API call must carry
`Authorization: Bearer <token>` (what `kfp.Client(existing_token=...)` sends); without one, the
control plane serves whoever can reach it, which is why it binds 127.0.0.1 by default. Either way,
web pages cannot use it: requests must name the server itself as Host (no DNS rebinding), and
state-changing requests from another site are refused (`RequestGuard`).

Handlers never look at headers themselves: they receive a `Caller` and ask it whether a namespace
may be read or written. Today a caller is the single implicit admin and may use every namespace;
multi-user profiles replace `authenticate` and `Caller.can_access` without touching the routes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowdeck.controlplane.errors import ApiError, error_response

#: Paths served without a token: the dashboard shell (it shows no data), and API documentation.
PUBLIC_PATHS = frozenset({"/", "/favicon.ico", "/docs", "/openapi.json"})
#: Host names that always reach a control plane bound to a loopback address.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
#: Methods that change state: refused when a browser sends them from another origin.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The largest request body accepted (a pipeline package upload is the largest legitimate one).
MAX_BODY_BYTES = 64 * 1024 * 1024
TOO_LARGE = f"request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB"


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of a request."""

    name: str
    #: Namespaces the caller may use; None means every namespace (the single-user admin).
    namespaces: frozenset[str] | None = None

    def can_access(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    def check(self, namespace: str) -> None:
        """Raise a 404 (not 403: other namespaces' objects are not acknowledged) unless allowed."""
        if not self.can_access(namespace):
            raise ApiError(404, f"namespace {namespace!r} not found")


ADMIN = Caller(name="admin")


def caller(request: Request) -> Caller:
    """FastAPI dependency: the caller of this request (set by `RequestGuard`)."""
    return getattr(request.state, "caller", ADMIN)


#: A handler parameter annotated `CallerDep` receives the request's caller.
CallerDep = Annotated[Caller, Depends(caller)]


class RequestGuard:
    """Checks every HTTP request before any route sees it.

    - Outside `PUBLIC_PATHS`, the configured bearer token is required (when there is one).
    - The Host header must name this server: a loopback name, or the address it was bound to. A web
      page cannot then reach a loopback control plane through DNS rebinding.
    - State-changing requests that a browser marks as coming from another site (Origin naming
      another host, or Sec-Fetch-Site: cross-site) are refused: no web page can submit a run.
    - Request bodies larger than `MAX_BODY_BYTES` are refused with 413 before they are read whole.
    """

    def __init__(self, app: ASGIApp, token: str | None, bind_host: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        # bound to every interface without a token: the user chose exposure (and was warned)
        self.any_host = bind_host in ("0.0.0.0", "::") and token is None
        self.hosts = LOOPBACK_NAMES | {bind_host.lower(), f"[{bind_host.lower()}]"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = ADMIN
        problem = self._problem(scope)
        if problem is not None:
            status, message = problem
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            await error_response(status, message, headers=headers)(scope, receive, send)
            return
        received = 0
        refused = False

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
            if not refused:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)

    def _problem(self, scope: Scope) -> tuple[int, str] | None:
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return 413, TOO_LARGE
        host = headers.get(b"host", b"").decode("latin-1").lower()
        if not self.any_host and _hostname(host) not in self.hosts:
            return 403, f"host {host!r} is not this control plane's address (DNS rebinding is refused)"
        if scope["method"] in UNSAFE_METHODS:
            origin = headers.get(b"origin", b"").decode("latin-1").lower()
            cross_origin = origin not in ("", "null") and origin.split("://", 1)[-1] != host
            if cross_origin or headers.get(b"sec-fetch-site") == b"cross-site":
                return 403, "cross-site request refused"
        if self.expected is not None and scope["path"] not in PUBLIC_PATHS:
            given = headers.get(b"authorization", b"")
            scheme, _, credentials = given.partition(b" ")
            if not secrets.compare_digest(b"Bearer " + credentials if scheme.lower() == b"bearer" else given,
                                          self.expected):
                return 401, "invalid bearer token" if given else "this control plane requires a bearer token"
        return None


def _hostname(host: str) -> str:
    """`host[:port]` or `[v6]:port` without the port."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
