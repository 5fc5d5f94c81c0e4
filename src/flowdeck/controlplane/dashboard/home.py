"""The dashboard's home page: recent runs and pipelines, what is running now, the system's status (its
database, how many runs it executes at once) and where the APIs are.

kfp.Client prints links such as `/#/runs/details/<id>` (the KFP UI's routes); `static/dashboard.js`
sends those on to the matching page here.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from flowdeck.controlplane.dashboard.common import DashboardRoute, PageView
from flowdeck.store.catalog import ListQuery, Pipelines, Predicate, RunCatalog

router = APIRouter(include_in_schema=False, route_class=DashboardRoute)

RECENT = 10


@router.get("/", response_class=HTMLResponse)
def home(view: PageView) -> HTMLResponse:
    namespaces = view.namespaces
    runs = RunCatalog(view.ctx.store)
    recent = runs.list(ListQuery(sort="created_at", desc=True, page_size=RECENT, namespaces=namespaces))
    active = runs.list(ListQuery(predicates=(Predicate("state", "IN", ("PENDING", "RUNNING")),),
                                 sort="created_at", desc=True, page_size=RECENT, namespaces=namespaces))
    pipelines = Pipelines(view.ctx.store).list(ListQuery(sort="created_at", desc=True, page_size=RECENT,
                                                         namespaces=namespaces))
    system = {"database": {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(
                  view.ctx.store.engine.dialect.name, view.ctx.store.engine.dialect.name),
              "capacity": view.ctx.settings.max_concurrent_runs}
    return view.render("home.html", title="Home", runs=recent.rows, total_runs=recent.total_size,
                       active=active.rows, total_active=active.total_size, pipelines=pipelines.rows,
                       base_url=str(view.request.base_url).rstrip("/"), system=system)
