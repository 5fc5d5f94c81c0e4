"""Rows to KFP v2beta1 JSON, as KFP's grpc-gateway writes it.

KFP marshals with `UseProtoNames: true, EmitUnpopulated: false`: snake_case keys, enums as their
names, Timestamps as RFC 3339 in UTC (with milliseconds when there is a fraction of a second),
int64 values as strings, and no key at all for an empty value (None, "", false, 0, {} or []).
`kfp.Client` maps these keys through its generated models and ignores keys it does not know. One
function per message; each takes a row (ORM or Core) whose attributes are the table's columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from fastapi.responses import JSONResponse

from flowdeck.pipelines.spec import spec_document
from flowdeck.store.models import as_utc

#: Our run and task states that KFP's RuntimeState names differently.
_STATE_NAMES = {"NOT_TRIGGERED": "SKIPPED"}
RUNTIME_STATES = frozenset({"PENDING", "RUNNING", "SUCCEEDED", "SKIPPED", "FAILED", "CANCELING", "CANCELED",
                            "PAUSED"})
#: gRPC codes for the error attached to a finished run or task.
_CANCELLED, _UNKNOWN = 1, 2


def respond(body: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """A JSON response of an already-built body (no pydantic validation on the way out)."""
    return JSONResponse(body, status_code=status_code)


def compact(message: dict[str, Any]) -> dict[str, Any]:
    """`message` without its empty fields (EmitUnpopulated: false)."""
    return {k: v for k, v in message.items() if v is not None and v != "" and v is not False and v != {} and v != []}


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 in UTC: "2026-11-29T05:53:52Z", with milliseconds when the time has a fraction of a second.

    Milliseconds are truncated, not rounded, so a time read back from the API never filters as later
    than the stored one. The year always has four digits (0001-01-01T00:00:00Z).
    """
    if value is None:
        return None
    utc = as_utc(value).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds" if utc.microsecond else "seconds") + "Z"


def int64(value: int | None) -> str | None:
    return None if value is None else str(value)


def runtime_state(state: str | None) -> str:
    state = _STATE_NAMES.get(state or "", state or "")
    return state if state in RUNTIME_STATES else "RUNTIME_STATE_UNSPECIFIED"


def status(message: str | None, state: str | None = None) -> dict[str, Any] | None:
    if not message:
        return None
    return {"code": _CANCELLED if state == "CANCELED" else _UNKNOWN, "message": message}


def pipeline_spec(row: Any) -> dict[str, Any] | None:
    """A row's pipeline_spec Struct: the bare spec, or {pipeline_spec, platform_spec} when it has a platform spec."""
    return None if row.pipeline_spec is None else spec_document(row.pipeline_spec, row.platform_spec)


def page(kind: str, items: Iterable[dict[str, Any]], total_size: int, next_page_token: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {kind: list(items), "total_size": total_size}
    if next_page_token:
        body["next_page_token"] = next_page_token
    return compact(body)


# -- messages ----------------------------------------------------------------------------------------

def experiment(row: Any) -> dict[str, Any]:
    return compact({
        "experiment_id": row.id,
        "display_name": row.display_name,
        "description": row.description,
        "created_at": timestamp(row.created_at),
        "namespace": row.namespace,
        "storage_state": row.storage_state,
        "last_run_created_at": timestamp(row.last_run_created_at),
    })


def pipeline(row: Any) -> dict[str, Any]:
    return compact({
        "pipeline_id": row.id,
        "display_name": row.display_name,
        "name": row.name,
        "description": row.description,
        "created_at": timestamp(row.created_at),
        "namespace": row.namespace,
        "tags": row.tags,
    })


def pipeline_version(row: Any, *, with_spec: bool = False) -> dict[str, Any]:
    """A version; its spec only when asked for (lists leave it out: specs are large)."""
    return compact({
        "pipeline_id": row.pipeline_id,
        "pipeline_version_id": row.id,
        "display_name": row.display_name,
        "name": row.name,
        "description": row.description,
        "created_at": timestamp(row.created_at),
        "code_source_url": row.code_source_url,
        "pipeline_spec": pipeline_spec(row) if with_spec else None,
        "tags": row.tags,
    })


def _pipeline_source(row: Any, with_spec: bool) -> dict[str, Any]:
    """The oneof pipeline_source: a version reference when the row has one, else (if wanted) the spec."""
    if row.pipeline_version_id:
        return {"pipeline_version_reference": compact({"pipeline_id": row.pipeline_id,
                                                       "pipeline_version_id": row.pipeline_version_id})}
    if with_spec:
        return {"pipeline_spec": pipeline_spec(row)}
    return {}


def _history(created: datetime | None, started: datetime | None, finished: datetime | None,
             state: str, error: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The state changes we can tell from a row's timestamps: PENDING, RUNNING, then its final state."""
    history = [{"update_time": timestamp(created), "state": "PENDING"}]
    if started is not None:
        history.append({"update_time": timestamp(started), "state": "RUNNING"})
    if finished is not None and state not in ("PENDING", "RUNNING"):
        history.append(compact({"update_time": timestamp(finished), "state": state, "error": error}))
    return [compact(entry) for entry in history]


def run(row: Any, *, with_spec: bool = False, task_details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A run; `with_spec` and `task_details` for a single run (lists read neither)."""
    state = runtime_state(row.state)
    error = status(row.error, state)
    message = {
        "experiment_id": row.experiment_id,
        "run_id": row.id,
        "display_name": row.display_name,
        "storage_state": row.storage_state,
        "description": row.description,
        **_pipeline_source(row, with_spec),
        "runtime_config": compact({"parameters": row.arguments}),
        "service_account": row.service_account,
        "created_at": timestamp(row.created_at),
        "scheduled_at": timestamp(row.scheduled_at),
        "finished_at": timestamp(row.finished_at),
        "state": state,
        "error": error,
        "run_details": {"task_details": task_details} if task_details else None,
        "recurring_run_id": row.recurring_run_id,
        "state_history": _history(row.created_at, row.started_at, row.finished_at, state, error),
    }
    return compact(message)


def task_details(run_id: str, tasks: Sequence[Any], events: Sequence[Any]) -> list[dict[str, Any]]:
    """PipelineTaskDetail for each task row; artifacts come from the lineage events (task, artifact, type, key)."""
    children: dict[str, list[dict[str, str]]] = {}
    for task in tasks:
        if task.parent_id:
            children.setdefault(task.parent_id, []).append({"task_id": task.id})
    artifacts: dict[tuple[str, str], dict[str, list[str]]] = {}
    for event in events:
        direction = "inputs" if event.type == "INPUT" else "outputs"
        artifacts.setdefault((event.task_id, direction), {}).setdefault(event.key, []).append(event.artifact_id)
    details = []
    for task in tasks:
        state = runtime_state(task.state)
        error = status(task.error, state)
        details.append(compact({
            "run_id": run_id,
            "task_id": task.id,
            "display_name": task.display_name,
            "create_time": timestamp(task.created_at),
            "start_time": timestamp(task.started_at),
            "end_time": timestamp(task.finished_at),
            "state": state,
            "error": error,
            "inputs": {k: {"artifact_ids": v} for k, v in artifacts.get((task.id, "inputs"), {}).items()},
            "outputs": {k: {"artifact_ids": v} for k, v in artifacts.get((task.id, "outputs"), {}).items()},
            "parent_task_id": task.parent_id,
            "state_history": _history(task.created_at, task.started_at, task.finished_at, state, error),
            "child_tasks": children.get(task.id, []),
        }))
    return details


def trigger(stored: dict[str, Any]) -> dict[str, Any]:
    """The stored Trigger (snake_case, interval as a number) as KFP writes it (int64 as a string)."""
    result: dict[str, Any] = {}
    for kind, schedule in (stored or {}).items():
        schedule = dict(schedule or {})
        if "interval_second" in schedule:
            schedule["interval_second"] = int64(schedule["interval_second"])
        result[kind] = compact(schedule)
    return result


def recurring_run(row: Any, *, with_spec: bool = False) -> dict[str, Any]:
    runtime_config = row.runtime_config or {}
    return compact({
        "recurring_run_id": row.id,
        "display_name": row.display_name,
        "description": row.description,
        **_pipeline_source(row, with_spec),
        "runtime_config": compact({"parameters": runtime_config.get("parameters"),
                                   "pipeline_root": runtime_config.get("pipeline_root")}),
        "service_account": row.service_account,
        "max_concurrency": int64(row.max_concurrency),
        "trigger": trigger(row.trigger),
        "mode": "ENABLE" if row.enabled else "DISABLE",
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
        "status": "ENABLED" if row.enabled else "DISABLED",
        "error": status(row.error),
        "no_catchup": row.no_catchup,
        "namespace": row.namespace,
        "experiment_id": row.experiment_id,
    })
