"""The runs list: every run the visitor may read, newest first, searchable, filterable and paged.

Filters (name substring, state, experiment, active or archived) become store predicates, and the
profile filter is part of the same query, so a page of 50 costs two statements (the page and its
count) whether the store holds a hundred runs or a hundred thousand; experiment names for the page
come in one more. Ticking runs and pressing "Compare" opens `/compare?runs=ID&runs=ID...`.
The experiment page shows the same list fixed to its experiment (`run_list`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from flowdeck.controlplane.dashboard import paging
from flowdeck.controlplane.dashboard.common import DashboardRoute, PageView, View, query_text
from flowdeck.controlplane.errors import ApiError
from flowdeck.controlplane.kfp import listing
from flowdeck.store.catalog import ARCHIVED, AVAILABLE, Experiments, ListQuery, Predicate, RunCatalog
from flowdeck.store.models import ExperimentRow

router = APIRouter(include_in_schema=False, route_class=DashboardRoute)

#: Page tokens of this list are not accepted by other lists (nor by the API), and the other way round.
FIELDS = listing.Fields("dashboard runs", {"created_at": "created_at"})
STATES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELING", "CANCELED", "SKIPPED", "PAUSED")
#: The `show` choices: which storage states a list includes.
SHOWN = {"active": (AVAILABLE,), "archived": (ARCHIVED,), "all": (AVAILABLE, ARCHIVED)}
#: The experiment filter offers at most this many experiments (by name); a chosen one is always offered.
EXPERIMENT_CHOICES = 500


@dataclass(frozen=True)
class RunFilter:
    """What the visitor asked the list for (from the query string, checked)."""

    q: str
    state: str
    experiment: str
    show: str
    size: int
    page: str | None

    def predicates(self) -> tuple[Predicate, ...]:
        found = [Predicate("storage_state", "IN", SHOWN[self.show])]
        if self.q:
            found.append(Predicate("display_name", "IS_SUBSTRING", self.q))
        if self.state:
            found.append(Predicate("state", "EQUALS", self.state))
        if self.experiment:
            found.append(Predicate("experiment_id", "EQUALS", self.experiment))
        return tuple(found)


def run_filter(q: Annotated[str | None, Query(description="Part of the run's name.")] = None,
               state: Annotated[str | None, Query(description="Only runs in this state.")] = None,
               experiment: Annotated[str | None, Query(description="Only runs of this experiment (id).")] = None,
               show: Annotated[str | None, Query(description="active (default), archived or all.")] = None,
               size: Annotated[str | None, Query(description="Runs per page.")] = None,
               page_token: Annotated[str | None, Query(description="A page link's token.")] = None) -> RunFilter:
    """FastAPI dependency: the list's filters, or a 400 naming the one that is wrong."""
    state = query_text("state", state, 32).upper()
    if state and state not in STATES:
        raise ApiError(400, f"unknown run state {state!r}; use one of {', '.join(STATES)}")
    show = query_text("show", show, 16) or "active"
    if show not in SHOWN:
        raise ApiError(400, f"show must be one of {', '.join(SHOWN)}, not {show!r}")
    return RunFilter(q=query_text("q", q), state=state, experiment=query_text("experiment", experiment, 64),
                     show=show, size=paging.page_size(size),
                     page=query_text("page_token", page_token, 4096) or None)


RunFilterDep = Annotated[RunFilter, Depends(run_filter)]


def experiment_names(view: View, ids: Iterable[str | None]) -> dict[str, str]:
    """{experiment id: name} of these experiments that the visitor may read, in one statement."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    query = select(ExperimentRow.id, ExperimentRow.display_name).where(ExperimentRow.id.in_(wanted))
    readable = view.access.visible("read")
    if readable is not None:
        query = query.where(ExperimentRow.namespace.in_(readable))
    with view.ctx.store.engine.connect() as conn:
        return dict(conn.execute(query).tuples().all())


def run_list(view: View, filters: RunFilter, namespaces: Collection[str] | None, *,
             experiment_id: str | None = None) -> dict[str, Any]:
    """The template context of a run list (`run_list.html`): one page of runs and everything around it."""
    if experiment_id is not None:
        filters = replace(filters, experiment=experiment_id)
    page = paging.newest_first(RunCatalog(view.ctx.store).list, FIELDS, view.access, token=filters.page,
                               size=filters.size, predicates=filters.predicates(), namespaces=namespaces)
    names = experiment_names(view, [row.experiment_id for row in page.rows] + [filters.experiment])
    choices: list[tuple[str, str]] = []
    if experiment_id is None:
        experiments = Experiments(view.ctx.store).list(ListQuery(sort="display_name", page_size=EXPERIMENT_CHOICES,
                                                                 namespaces=namespaces))
        choices = [(row.id, row.display_name) for row in experiments.rows]
        if filters.experiment and all(chosen != filters.experiment for chosen, _ in choices):
            choices.insert(0, (filters.experiment, names.get(filters.experiment, filters.experiment)))
    return {"runs": page.rows, "total": page.total, "experiments": names, "filters": filters, "states": STATES,
            "sizes": paging.SIZES, "experiment_choices": choices, "fixed_experiment": experiment_id,
            "newer": paging.page_link(view.request, page.newer), "older": paging.page_link(view.request, page.older)}


@router.get("/runs", response_class=HTMLResponse)
def runs(view: PageView, filters: RunFilterDep) -> HTMLResponse:
    return view.render("runs.html", title="Runs", **run_list(view, filters, view.namespaces))
