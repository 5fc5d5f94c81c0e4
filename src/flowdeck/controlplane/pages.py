"""The dashboard's pages, rendered on the server with Jinja2 (autoescaped: user strings are text).

Today this is the home page: what is running, recent runs (of the profiles the visitor may read), and
where the APIs are; a browser signed in with a login sees who it is signed in as and can sign out, an
anonymous one on a multi-user control plane gets a link to the sign-in page. kfp.Client
prints links such as `/#/runs/details/<id>`; those land here too, so the page names the run the
link points at.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from flowdeck import __version__
from flowdeck.controlplane.app import Ctx
from flowdeck.controlplane.auth import Public
from flowdeck.controlplane.rendering import render
from flowdeck.store.catalog import ListQuery, RunCatalog

router = APIRouter(include_in_schema=False)

RECENT_RUNS = 20


@router.get("/", response_class=HTMLResponse)
def home(request: Request, ctx: Ctx, access: Public) -> HTMLResponse:
    protected = not access.principal.authenticated  # the page needs no login, so it shows no data then
    runs: list[Any] = [] if protected else list(RunCatalog(ctx.store).list(ListQuery(
        sort="created_at", desc=True, page_size=RECENT_RUNS, namespaces=access.visible("read"))).rows)
    signed_in = access.principal.name.partition(":")[2] if access.principal.by_cookie else None
    return render("home.html", version=__version__, base_url=str(request.base_url).rstrip("/"),
                  protected=protected, runs=runs, signed_in=signed_in)
