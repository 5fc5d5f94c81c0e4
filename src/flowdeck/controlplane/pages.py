"""The dashboard's pages, rendered on the server with Jinja2 (autoescaped: user strings are text).

Today this is the home page: what is running, recent runs, and where the APIs are. kfp.Client
prints links such as `/#/runs/details/<id>`; those land here too, so the page names the run the
link points at.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from flowdeck import __version__
from flowdeck.controlplane.app import Ctx
from flowdeck.controlplane.rendering import render

router = APIRouter(include_in_schema=False)

RECENT_RUNS = 20


@router.get("/", response_class=HTMLResponse)
def home(request: Request, ctx: Ctx) -> HTMLResponse:
    protected = bool(ctx.settings.token)  # the page itself needs no token, so it shows no data then
    runs: list[Any] = [] if protected else list(ctx.store.list_runs(limit=RECENT_RUNS))
    return render("home.html", version=__version__, base_url=str(request.base_url).rstrip("/"),
                  protected=protected, runs=runs)
