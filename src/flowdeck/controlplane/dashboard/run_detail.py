"""The run-detail page: a run's facts, its live DAG, and each task's inputs, outputs, attempts and logs.

    GET /runs/{run_id}                               the page (facts, DAG, task panel, terminate/retry)
    GET /runs/{run_id}/state                         JSON the page polls while the run is unfinished
    GET /runs/{run_id}/graph?path=DAG                JSON graph of a sub-pipeline or loop body
    GET /runs/{run_id}/tasks/{task_id}               HTML fragment for the task panel
    GET /runs/{run_id}/tasks/{task_id}/logs?attempt=N  text/plain: one attempt's log (every attempt without N;
                                                     `&tail=BYTES`: only about its last BYTES, see `task_logs`)

A run in a profile the visitor cannot read answers exactly as a missing run does, and a task is
found only under the run it belongs to. Logs come from `pipelines.tasklogs.find_logs`, as
`flowdeck logs` and the API's run-logs endpoint do, so a cached task shows the log of the execution
it reused. Terminate and retry are buttons that call the KFP API (`static/dashboard.js`); the page's
behaviour (polling, the task panel, sub-graphs) is `static/run.js`, the drawing `static/graph.js`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from flowdeck.controlplane.dashboard.common import DashboardRoute, PageView, View, query_text, readable, shown
from flowdeck.controlplane.dashboard.graph import pipeline_graph
from flowdeck.controlplane.errors import ApiError
from flowdeck.controlplane.rendering import duration, when
from flowdeck.pipelines.errors import PipelineError
from flowdeck.pipelines.tasklogs import RunLogs, TaskNotFound, find_logs
from flowdeck.store.catalog import FINISHED_RUN_STATES, Experiments, NotFound, RunCatalog
from flowdeck.store.models import RunRow, TaskRow

router = APIRouter(include_in_schema=False, route_class=DashboardRoute)

#: Run states in which the terminate and retry buttons apply (the API decides all the same).
TERMINABLE = ("PENDING", "RUNNING", "PAUSED")
RETRYABLE = ("FAILED", "CANCELED")
#: The task states the legend explains, in the order it lists them.
LEGEND = ("SUCCEEDED", "RUNNING", "PENDING", "FAILED", "CANCELED", "SKIPPED")
#: Rows of the page's task table (a loop may have thousands of tasks; the graph opens any iteration).
TASK_LIMIT = 500
#: What the polled state reads of a run: not its spec, arguments or outputs.
_STATE_COLUMNS = (RunRow.id, RunRow.namespace, RunRow.state, RunRow.created_at, RunRow.started_at,
                  RunRow.finished_at, RunRow.error)
#: What the page and its polling read of each task (the task panel reads the rest of one).
_TASK_COLUMNS = (TaskRow.id, TaskRow.path, TaskRow.state, TaskRow.cached)
#: The header of a log answer cut by `?tail=`: how many bytes of its start were left out.
OMITTED_HEADER = "X-Log-Omitted"


def _run(view: View, run_id: str) -> Any:
    """The run (every column), if the visitor may read it; otherwise the same 404 as for a run that does not exist."""
    return readable(view, "run", run_id, RunCatalog(view.ctx.store).get)


def _run_state(view: View, run_id: str) -> Any:
    """`_run` for polling: only the columns `_state` shows, in one small statement."""
    def load(wanted: str) -> Any:
        with view.ctx.store.engine.connect() as conn:
            return conn.execute(select(*_STATE_COLUMNS).where(RunRow.id == wanted)).first()

    return readable(view, "run", run_id, load)


def _tasks(view: View, run_id: str) -> Sequence[Any]:
    """The run's tasks (`_TASK_COLUMNS`), in the order they were created."""
    query = select(*_TASK_COLUMNS).where(TaskRow.run_id == run_id).order_by(TaskRow.created_at, TaskRow.path)
    with view.ctx.store.engine.connect() as conn:
        return conn.execute(query).all()


def _task(view: View, run_id: str, task_id: str) -> tuple[Any, TaskRow]:
    """The run and its task `task_id` (a task of another run is not found here)."""
    run = _run(view, run_id)
    with Session(view.ctx.store.engine, expire_on_commit=False) as session:
        task = session.scalars(select(TaskRow).where(TaskRow.id == task_id, TaskRow.run_id == run.id)).first()
    if task is None:
        raise ApiError(404, f"task {task_id!r} not found in run {run_id!r}")
    return run, task


def _state(run: Any, tasks: Any) -> dict[str, Any]:
    """What the page shows of a run that changes while it runs."""
    return {
        "state": run.state, "finished": run.state in FINISHED_RUN_STATES,
        "facts": {"state": run.state, "started": when(run.started_at), "finished": when(run.finished_at),
                  "duration": duration(run), "error": run.error or ""},
        "tasks": {task.path: task.state for task in tasks},
        "task_ids": {task.path: task.id for task in tasks},
        "cached": sorted(task.path for task in tasks if task.cached),
    }


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(run_id: str, view: PageView) -> HTMLResponse:
    run = _run(view, run_id)
    tasks = _tasks(view, run.id)
    experiment = None
    if run.experiment_id:
        try:
            experiment = Experiments(view.ctx.store).get(run.experiment_id)
        except NotFound:
            experiment = None
    graph = pipeline_graph(run.pipeline_spec or {})
    state = _state(run, tasks)
    writable = view.can("write", run.namespace)
    page = {"state_url": f"/runs/{run.id}/state", "graph_url": f"/runs/{run.id}/graph",
            "task_url": f"/runs/{run.id}/tasks/"}
    root_states = {path: value for path, value in state["tasks"].items() if "/" not in path}
    return view.render(
        "run.html", title=run.display_name, run=run, experiment=experiment, graph=graph, state=state,
        root_states=root_states, page=page, writable=writable, terminable=TERMINABLE, retryable=RETRYABLE,
        legend=LEGEND, task_limit=TASK_LIMIT,
        arguments=[(name, shown(value)) for name, value in sorted((run.arguments or {}).items())],
        outputs=[(name, shown(value)) for name, value in sorted((run.outputs or {}).items())])


@router.get("/runs/{run_id}/state")
def run_state(run_id: str, view: PageView) -> JSONResponse:
    run = _run_state(view, run_id)
    return JSONResponse(_state(run, _tasks(view, run.id)), headers={"Cache-Control": "no-store"})


@router.get("/runs/{run_id}/graph")
def run_graph(run_id: str, view: PageView,
              path: Annotated[str | None, Query(description="The sub-DAG's task path.")] = None) -> JSONResponse:
    path = query_text("path", path, 2048)
    run = _run(view, run_id)
    try:
        return JSONResponse(pipeline_graph(run.pipeline_spec or {}, path))
    except PipelineError as exc:  # JSON, as `flowdeck.api` in the page reads errors
        return JSONResponse({"message": str(exc)}, status_code=404)


@router.get("/runs/{run_id}/tasks/{task_id}", response_class=HTMLResponse)
def task_panel(run_id: str, task_id: str, view: PageView) -> HTMLResponse:
    run, task = _task(view, run_id, task_id)
    store = view.ctx.store
    attempts = store.list_attempts([task.id])
    lineage = store.lineage(task.id)
    inputs, outputs = task.inputs or {}, task.outputs or {}
    cached_from = outputs.get("cached_from") or {}
    if task.cached and cached_from.get("task_id"):
        source_attempts = store.list_attempts([cached_from["task_id"]])
    else:
        source_attempts = []
    response = view.fragment(
        "run_task.html", run=run, task=task, attempts=attempts, source_attempts=source_attempts,
        cached_from=cached_from, iterations=inputs.get("iterations") if task.kind == "loop" else None,
        input_parameters=[(k, shown(v)) for k, v in sorted((inputs.get("parameters") or {}).items())],
        output_parameters=[(k, shown(v)) for k, v in sorted((outputs.get("parameters") or {}).items())],
        input_artifacts=[(key, artifact) for kind, key, artifact in lineage if kind == "INPUT"],
        output_artifacts=[(key, artifact) for kind, key, artifact in lineage if kind == "OUTPUT"],
        logs_url=f"/runs/{run.id}/tasks/{task.id}/logs")
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/runs/{run_id}/tasks/{task_id}/logs", response_model=None)
def task_logs(run_id: str, task_id: str, view: PageView,
              attempt: Annotated[int | None, Query(ge=1, description="The attempt; every one when omitted.")] = None,
              tail: Annotated[int | None, Query(ge=1, description="Only about the last this many bytes (with "
                                                                  "attempt).")] = None
              ) -> Response:
    """The log as text/plain. With `tail`, a log longer than `tail` bytes is cut to its last `tail` bytes, from the
    first line that starts among them, and the answer says in `X-Log-Omitted` how many bytes were left out: the
    page shows that much and links the whole log. A bad parameter or a missing run is an HTML error page, as for
    every page: a browser is what opens this link."""
    if tail is not None and attempt is None:
        raise ApiError(400, "query parameter tail: needs attempt (the tail of one attempt's log)")
    run, task = _task(view, run_id, task_id)
    try:
        found = find_logs(view.ctx.store, run, task.path)
    except TaskNotFound as exc:  # a path shared by no task row: cannot happen for a row of this run
        raise ApiError(404, str(exc)) from None
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if attempt is not None:
        found = RunLogs([log for log in found.files if log.attempt.number == attempt], found.notes, found.missing)
        if not found.files:
            return PlainTextResponse(f"task {task.path!r} has no log for attempt {attempt}\n", 404, headers=headers)
    if not found.files:
        return PlainTextResponse("\n".join(found.notes) + "\n", 404, headers=headers)
    if tail is not None:
        cut = _tail(found.files[0].attempt.log_path or "", tail)
        if cut is not None:
            omitted, text = cut
            return Response(text, media_type="text/plain; charset=utf-8",
                            headers={**headers, **found.headers(), OMITTED_HEADER: str(omitted)})
    return StreamingResponse(found.chunks(), media_type="text/plain; charset=utf-8",
                             headers={**headers, **found.headers()})


def _tail(path: str, size: int) -> tuple[int, bytes] | None:
    """(bytes left out, the rest) of a file longer than `size`: its last `size` bytes from the first line that
    starts among them (none when no line does); None for a shorter (or unreadable) file, which is sent whole."""
    try:
        with open(path, "rb") as handle:
            length = os.fstat(handle.fileno()).st_size
            if length <= size:
                return None
            handle.seek(length - size)
            data = handle.read(size)
    except OSError:
        return None
    start = data.find(b"\n") + 1
    if 0 < start < len(data):
        data = data[start:]
    return length - len(data), data
