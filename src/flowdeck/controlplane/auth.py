"""Who is calling: the authentication hook every API request passes through.

With a token configured (`flowdeck up --token` or `FLOWDECK_TOKEN`), every API call must carry
`Authorization: Bearer <token>` (what `kfp.Client(existing_token=...)` sends); without one, the
control plane serves whoever can reach it, which is why it binds 127.0.0.1 by default.

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
from starlette.types import ASGIApp, Receive, Scope, Send

from flowdeck.controlplane.errors import ApiError, error_response

#: Paths served without a token: the dashboard shell (it shows no data), and API documentation.
PUBLIC_PATHS = frozenset({"/", "/favicon.ico", "/docs", "/openapi.json", "/docs/oauth2-redirect"})


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
    """FastAPI dependency: the caller of this request (set by `TokenAuthMiddleware`)."""
    return getattr(request.state, "caller", ADMIN)


#: A handler parameter annotated `CallerDep` receives the request's caller.
CallerDep = Annotated[Caller, Depends(caller)]


class TokenAuthMiddleware:
    """Require the configured bearer token on every HTTP request outside `PUBLIC_PATHS`."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["caller"] = ADMIN
            if self.expected is not None and scope["path"] not in PUBLIC_PATHS:
                given = dict(scope["headers"]).get(b"authorization", b"")
                if not secrets.compare_digest(given, self.expected):
                    reason = "invalid bearer token" if given else "this control plane requires a bearer token"
                    response = error_response(401, reason, headers={"WWW-Authenticate": "Bearer"})
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
