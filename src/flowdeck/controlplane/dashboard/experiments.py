"""Experiments: the list with run counts, one experiment's runs, and the comparison of selected runs.

`/compare?runs=A,B,...` (or `runs=A&runs=B`, as the run lists' forms send it) sets up to
`MAX_COMPARE` runs side by side: their runtime arguments and the scalar metrics their tasks logged
(`system.Metrics` artifacts, found through the tasks' OUTPUT events, so a cached task's metrics
count too). Rows whose values are not all equal get the class "diff"; each metric is also a bar
chart across the runs (`static/charts.js`). Whatever the number of runs, the page reads the store
in three statements (runs, experiment names, metrics). An id that names no run, or a run the
visitor may not read, is a 404 worded like a missing run.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from flowdeck.controlplane.dashboard import paging, previews
from flowdeck.controlplane.dashboard.common import ID_CHARS, DashboardRoute, PageView, View, query_text, readable, shown
from flowdeck.controlplane.dashboard.runs import SHOWN, RunFilterDep, experiment_names, run_list
from flowdeck.controlplane.errors import ApiError
from flowdeck.controlplane.kfp import listing
from flowdeck.resources.model import api_namespace
from flowdeck.store.catalog import AVAILABLE, Experiments, Predicate
from flowdeck.store.models import ArtifactRow, EventRow, RunRow, TaskRow

router = APIRouter(include_in_schema=False, route_class=DashboardRoute)

FIELDS = listing.Fields("dashboard experiments", {"created_at": "created_at"})
MAX_COMPARE = 200
METRICS = "system.Metrics"
#: The run states an experiment's row counts separately.
COUNTED_STATES = ("RUNNING", "SUCCEEDED", "FAILED")


def _run_counts(view: View, experiment_ids: Sequence[str]) -> dict[str, Counter[str]]:
    """{experiment id: Counter of its runs by state, plus "total"}, in one statement. Archived runs are not
    counted, as the experiment's page does not list them unless asked to."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    if not experiment_ids:
        return counts
    query = (select(RunRow.experiment_id, RunRow.state, func.count())
             .where(RunRow.experiment_id.in_(experiment_ids), RunRow.storage_state == AVAILABLE)
             .group_by(RunRow.experiment_id, RunRow.state))
    with view.ctx.store.engine.connect() as conn:
        for experiment_id, state, count in conn.execute(query):
            counts[experiment_id][state] += count
            counts[experiment_id]["total"] += count
    return counts


@router.get("/experiments", response_class=HTMLResponse)
def experiments(view: PageView, q: str | None = None, show: str | None = None, size: str | None = None,
                page_token: str | None = None) -> HTMLResponse:
    search, show = query_text("q", q), query_text("show", show, 16) or "active"
    if show not in SHOWN:
        raise ApiError(400, f"show must be one of {', '.join(SHOWN)}, not {show!r}")
    predicates = (Predicate("storage_state", "IN", SHOWN[show]),)
    if search:
        predicates += (Predicate("display_name", "IS_SUBSTRING", search),)
    listed = paging.newest_first(Experiments(view.ctx.store).list, FIELDS, view.access,
                                 token=query_text("page_token", page_token, 4096) or None, size=paging.page_size(size),
                                 predicates=predicates, namespaces=view.namespaces)
    return view.render("experiments.html", title="Experiments", experiments=listed.rows, total=listed.total,
                       q=search, show=show, counted_states=COUNTED_STATES,
                       counts=_run_counts(view, [row.id for row in listed.rows]),
                       newer=paging.page_link(view.request, listed.newer),
                       older=paging.page_link(view.request, listed.older))


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment(experiment_id: str, view: PageView, filters: RunFilterDep) -> HTMLResponse:
    row = readable(view, "experiment", experiment_id, Experiments(view.ctx.store).get)
    runs = run_list(view, filters, [row.namespace], experiment_id=row.id)
    return view.render("experiment.html", title=row.display_name, experiment=row,
                       namespace=api_namespace(row.namespace), **runs)


# -- comparison --------------------------------------------------------------------------------------

_ABSENT = object()


@dataclass
class Row:
    """One line of the comparison: a parameter or metric and its value in each run (`_ABSENT` where none)."""

    label: str
    values: list[Any]
    differs: bool = field(init=False)

    def __post_init__(self) -> None:
        self.differs = len({_comparable(v) for v in self.values}) > 1

    def cells(self) -> list[tuple[str, str] | None]:
        """(shown text, full JSON) per run; None where the run has no value."""
        return [None if v is _ABSENT else (shown(v, digits=6), json.dumps(v)) for v in self.values]

    def numbers(self) -> list[float | None]:
        """The values a chart can draw: finite numbers (None for the rest, NaN and infinities included: JSON has
        no words for them, and the table shows them as text)."""
        return [float(v) if _is_number(v) and math.isfinite(v) else None for v in self.values]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _comparable(value: Any) -> str:
    if value is _ABSENT:
        return ""
    if _is_number(value):
        return repr(float(value))
    return json.dumps(value, sort_keys=True)


def _run_ids(values: Iterable[str]) -> list[str]:
    """The ids in `runs=A,B&runs=C`, in order, each once."""
    ids: dict[str, None] = {}
    for value in values:
        for part in value.split(","):
            if part.strip():
                ids[part.strip()] = None
    return list(ids)


def _read_runs(view: View, ids: list[str]) -> list[Any]:
    """The runs in the order asked; a 404 for the first that is missing or that the visitor may not read."""
    columns = (RunRow.id, RunRow.display_name, RunRow.state, RunRow.namespace, RunRow.experiment_id,
               RunRow.arguments, RunRow.pipeline_name, RunRow.created_at, RunRow.started_at, RunRow.finished_at)
    possible = [i for i in ids if len(i) <= ID_CHARS]
    with view.ctx.store.engine.connect() as conn:
        found = {row.id: row for row in conn.execute(select(*columns).where(RunRow.id.in_(possible)))}
    return [readable(view, "run", run_id, found.get) for run_id in ids]


def _metrics(view: View, run_ids: list[str]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """{(task path, output name, metric): {run id: value}} of the runs' Metrics outputs, in one statement."""
    query = (select(TaskRow.run_id, TaskRow.path, EventRow.key, ArtifactRow.artifact_metadata)
             .join(EventRow, EventRow.task_id == TaskRow.id)
             .join(ArtifactRow, ArtifactRow.id == EventRow.artifact_id)
             .where(TaskRow.run_id.in_(run_ids), EventRow.type == "OUTPUT", ArtifactRow.schema_title == METRICS)
             .order_by(TaskRow.path, EventRow.key, EventRow.position))
    found: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(dict)
    with view.ctx.store.engine.connect() as conn:
        for run_id, path, key, metadata in conn.execute(query):
            for metric, value in previews.metrics(metadata):
                found[(path, key, metric)][run_id] = value
    return found


def _metric_labels(keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """The shortest unambiguous label of each metric: "accuracy", else "task.accuracy", else "task.output.accuracy"."""
    keys = list(keys)
    by_metric = Counter(metric for _, _, metric in keys)
    by_task = Counter((path, metric) for path, _, metric in keys)
    labels = {}
    for path, output, metric in keys:
        if by_metric[metric] == 1:
            labels[(path, output, metric)] = metric
        elif by_task[(path, metric)] == 1:
            labels[(path, output, metric)] = f"{path}.{metric}"
        else:
            labels[(path, output, metric)] = f"{path}.{output}.{metric}"
    return labels


def _run_labels(runs: Sequence[Any]) -> list[str]:
    """The runs' names for chart axes; a name several runs share gets the start of each one's id."""
    names = Counter(run.display_name for run in runs)
    return [run.display_name if names[run.display_name] == 1 else f"{run.display_name} ({run.id[:8]})" for run in runs]


@router.get("/compare", response_class=HTMLResponse)
def compare(view: PageView, runs: Annotated[list[str], Query(description="Run ids (comma-separated or repeated).")]
            = []) -> HTMLResponse:  # noqa: B006 - FastAPI copies the default
    ids = _run_ids(runs)
    if len(ids) > MAX_COMPARE:
        raise ApiError(400, f"too many runs to compare: {len(ids)}; select at most {MAX_COMPARE}")
    if not ids:
        view.access.record("no runs asked for: only how to choose them is shown")
    selected = _read_runs(view, ids)
    order = [run.id for run in selected]
    parameters = sorted({name for run in selected for name in (run.arguments or {})})
    parameter_rows = [Row(name, [(run.arguments or {}).get(name, _ABSENT) for run in selected]) for name in parameters]
    metrics = _metrics(view, order) if order else {}
    labels = _metric_labels(metrics)
    metric_rows = sorted((Row(labels[key], [values.get(run_id, _ABSENT) for run_id in order])
                          for key, values in metrics.items()), key=lambda row: row.label)
    axis = _run_labels(selected)
    charts = [{"type": "bar", "title": row.label, "xLabel": "Run", "yLabel": row.label, "x": axis,
               "series": [{"label": row.label, "values": row.numbers()}]}
              for row in metric_rows if any(value is not None for value in row.numbers())]
    return view.render("compare.html", title="Compare runs", runs=selected, parameter_rows=parameter_rows,
                       metric_rows=metric_rows, charts=charts, max_runs=MAX_COMPARE,
                       experiments=experiment_names(view, [run.experiment_id for run in selected]))
