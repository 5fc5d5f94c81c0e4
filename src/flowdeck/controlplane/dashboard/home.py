"""The dashboard's home page: recent runs and pipelines, what is running now, the system's status (its
database, how many runs it executes at once) and where the APIs are.

Its counts and lists are those of the runs list's default view (archived runs left out), so the
"runs" count is the number `/runs` shows, and "in progress" counts every run not yet finished.

kfp.Client prints links such as `/#/runs/details/<id>` (the KFP UI's routes); `static/dashboard.js`
sends those on to the matching page here.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from flowdeck.controlplane.dashboard.common import DashboardRoute, PageView
from flowdeck.store.catalog import AVAILABLE, ListQuery, Pipelines, Predicate, RunCatalog

router = APIRouter(include_in_schema=False, route_class=DashboardRoute)

RECENT = 10
#: The run states "in progress" counts and lists: every state a run leaves before it finishes.
IN_PROGRESS = ("PENDING", "RUNNING", "PAUSED", "CANCELING")


@router.get("/", response_class=HTMLResponse)
def home(view: PageView) -> HTMLResponse:
    namespaces = view.namespaces
    runs = RunCatalog(view.ctx.store)
    shown = Predicate("storage_state", "IN", (AVAILABLE,))
    recent = runs.list(ListQuery(predicates=(shown,), sort="created_at", desc=True, page_size=RECENT,
                                 namespaces=namespaces))
    active = runs.list(ListQuery(predicates=(shown, Predicate("state", "IN", IN_PROGRESS)),
                                 sort="created_at", desc=True, page_size=RECENT, namespaces=namespaces))
    pipelines = Pipelines(view.ctx.store).list(ListQuery(sort="created_at", desc=True, page_size=RECENT,
                                                         namespaces=namespaces))
    system = {"database": {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(
                  view.ctx.store.engine.dialect.name, view.ctx.store.engine.dialect.name),
              "capacity": view.ctx.settings.max_concurrent_runs}
    return view.render("home.html", title="Home", runs=recent.rows, total_runs=recent.total_size,
                       active=active.rows, total_active=active.total_size, in_progress=IN_PROGRESS,
                       pipelines=pipelines.rows,
                       base_url=str(view.request.base_url).rstrip("/"), system=system)
