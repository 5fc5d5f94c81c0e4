"""What every dashboard page shares: the visitor, the profile they look at, and the page frame.

Every page is a `Scoped` route: its handler takes a `View` and decides per object through
`view.access` (`require` for one object, `view.namespaces` for a list), exactly as the API does, so a
page shows nothing the visitor could not read through the API. The profile selector on every page
sets `?ns=NAME` (kept in a cookie, so links need not carry it); without one, lists show every profile
the visitor may read. Choosing a profile one may not read shows what a profile with no objects shows.

Handlers raise `ApiError` as the API does; `DashboardRoute` answers it, and a parameter FastAPI cannot
validate, with an HTML error page of the same status (and refuses parameters holding a NUL byte
first, as the API does). `readable` finds one object the way every page must: an object in a profile
the visitor cannot read answers exactly as a missing one. Pages allow no
inline script (`PAGE_POLICY`): data for scripts travels as JSON in `<script type="application/json">`
blocks, and user strings are escaped by Jinja2's autoescaping.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from sqlalchemy import select, union

from flowdeck import __version__
from flowdeck.controlplane.app import Ctx, ServerContext
from flowdeck.controlplane.auth import Access, Scoped
from flowdeck.controlplane.errors import ApiError, describe_validation_error, refuse_nul_bytes
from flowdeck.controlplane.rendering import render
from flowdeck.resources.model import api_namespace, store_namespace
from flowdeck.store.catalog import NotFound
from flowdeck.store.models import ExperimentRow, PipelineRow, ResourceRow

T = TypeVar("T")

#: The cookie that remembers the profile chosen in the selector (not a credential).
NAMESPACE_COOKIE = "flowdeck_ns"
#: Ids of runs, pipelines and experiments are at most this long (a longer one names nothing).
ID_CHARS = 64
#: Pages run only our own scripts and styles; frames only our own (sandboxed) artifact views.
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'")


@dataclass
class View:
    """One page request: who asks, through which server, looking at which profile."""

    request: Request
    ctx: ServerContext
    access: Access
    #: The profile chosen in the selector (as the store names it: "" is `default`), None for all.
    namespace: str | None

    @property
    def namespaces(self) -> Collection[str] | None:
        """What a list shows: the chosen profile if readable, else every readable one (None: all)."""
        readable = self.access.visible("read")
        if self.namespace is None:
            return readable
        return frozenset({self.namespace} if readable is None or self.namespace in readable else ())

    def can(self, scope: str, namespace: str) -> bool:
        """Whether the visitor holds `scope` in `namespace` (to show or hide a button; the API decides)."""
        return self.access.can(scope, namespace)

    def profiles(self) -> list[str]:
        """The profiles the selector offers (API names), sorted."""
        readable = self.access.principal.profiles_with("read")
        if readable is None:
            readable = _known_namespaces(self.ctx)
        return sorted(api_namespace(name) for name in readable)

    def render(self, template: str, *, status: int = 200, title: str = "", **context: Any) -> HTMLResponse:
        """The page `templates/dashboard/<template>` inside the common frame."""
        principal = self.access.principal
        response = render(
            f"dashboard/{template}", title=title, version=__version__, request=self.request,
            path=self.request.url.path, profiles=self.profiles(),
            selected=None if self.namespace is None else api_namespace(self.namespace),
            signed_in=principal.name.partition(":")[2] if principal.by_cookie else None,
            multi_user=bool(self.request.scope.get("state", {}).get("multi_user")), **context)
        response.status_code = status
        return response

    def fragment(self, template: str, **context: Any) -> HTMLResponse:
        """A part of a page (`templates/dashboard/<template>`, outside the frame) that a page's script loads: no
        profile selector, so nothing is read for one."""
        return render(f"dashboard/{template}", version=__version__, request=self.request, **context)


def _known_namespaces(ctx: ServerContext) -> set[str]:
    """Every profile something lives in, for a visitor who may read them all."""
    query = union(select(ExperimentRow.namespace), select(PipelineRow.namespace),
                  select(ResourceRow.name).where(ResourceRow.kind == "Profile"))
    with ctx.store.engine.connect() as conn:
        return {"", *conn.execute(query).scalars()}


def view(request: Request, ctx: Ctx, access: Scoped,
         ns: Annotated[str | None, Query(description="The profile to show.")] = None) -> View:
    """FastAPI dependency: the page's `View` (the `Scoped` policy: the handler decides per object)."""
    chosen = query_text("ns", ns, 63) if ns is not None else request.cookies.get(NAMESPACE_COOKIE)
    return View(request, ctx, access, None if not chosen else store_namespace(chosen))


#: A handler parameter annotated `PageView` receives the page's `View`.
PageView = Annotated[View, Depends(view)]


def query_text(name: str, value: str | None, limit: int = 512) -> str:
    """A text query parameter without surrounding blanks ("" when absent); a 400 naming it when too long."""
    value = (value or "").strip()
    if len(value) > limit:
        raise ApiError(400, f"{name} is too long: {len(value)} characters, at most {limit}")
    return value


def not_found(kind: str, object_id: str) -> ApiError:
    """The 404 for an object that does not exist, or that the visitor may not read: `run 'ID' not found`."""
    return ApiError(404, f"{kind} {object_id!r} not found")


def readable(view: View, kind: str, object_id: str, load: Callable[[str], T | None]) -> T:
    """The object `load(object_id)` finds (it returns None or raises `NotFound` for none), if the visitor may read
    its profile (its `namespace`); otherwise the same `not_found` 404, so a page does not tell an object in a
    profile one cannot read from a missing one."""
    found = None
    if len(object_id) <= ID_CHARS:
        try:
            found = load(object_id)
        except NotFound:
            found = None
    if found is None:
        raise not_found(kind, object_id)
    view.access.require("read", found.namespace, missing=lambda: not_found(kind, object_id))
    return found


def shown(value: Any, *, digits: int | None = None) -> str:
    """A parameter or metric value as text: strings as they are, anything else as JSON (keys sorted); floats with
    at most `digits` significant digits when given."""
    if isinstance(value, str):
        return value
    if digits is not None and isinstance(value, float):
        return format(value, f".{digits}g")
    return json.dumps(value, sort_keys=True)


class DashboardRoute(APIRoute):
    """A page route: errors (and parameters that fail validation, as a 400) become HTML pages with their status,
    and every answer carries `PAGE_POLICY`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                refuse_nul_bytes(request)
                response = await handler(request)
            except ApiError as exc:
                response = _error_page(request, exc.status, exc.message)
            except RequestValidationError as exc:
                response = _error_page(request, 400, describe_validation_error(exc))
            response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "same-origin")
            return response

        return route


def _error_page(request: Request, status: int, message: str) -> HTMLResponse:
    response = render("dashboard/error.html", title=f"Error {status}", status=status, message=message,
                      version=__version__, request=request, path="", profiles=[], selected=None, signed_in=None,
                      multi_user=False)
    response.status_code = status
    return response
