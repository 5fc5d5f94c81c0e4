"""KFP RecurringRunService: schedules (cron or fixed interval) that start runs while the control plane runs.

This module validates and records schedules; the schedule runner (`ctx.schedules`) reads the rows and
fires them, and is woken whenever one is created, enabled, disabled or deleted. Cron expressions have
six fields, seconds first, as KFP's robfig/cron parser reads them ("0 0 * * * *": hourly).

A schedule made from a pipeline version keeps a copy of that version's spec, as KFP does, so
deleting the version later does not break it.
"""

from __future__ import annotations

from typing import Any

from fastapi import Query
from fastapi.responses import JSONResponse

from flowdeck.controlplane.app import Ctx, ServerContext
from flowdeck.controlplane.auth import Access, Scoped
from flowdeck.controlplane.errors import ApiError
from flowdeck.controlplane.kfp import listing, wire
from flowdeck.controlplane.kfp.messages import Empty, ListRecurringRunsResponse, RecurringRun, Trigger
from flowdeck.controlplane.kfp.packages import parse_spec
from flowdeck.controlplane.kfp.routing import kfp_router, missing
from flowdeck.controlplane.kfp.runs import check_one_source, resolve_experiment, resolve_version
from flowdeck.pipelines.api import prepare_arguments
from flowdeck.pipelines.schedules import parse_trigger
from flowdeck.pipelines.spec import spec_document
from flowdeck.store.catalog import Predicate, RecurringRuns

router = kfp_router("recurring runs")

FIELDS = listing.Fields("recurring runs", {
    "recurring_run_id": "id", "id": "id", "display_name": "display_name", "name": "display_name",
    "description": "description", "created_at": "created_at", "updated_at": "updated_at", "namespace": "namespace",
    "experiment_id": "experiment_id", "pipeline_id": "pipeline_id", "pipeline_version_id": "pipeline_version_id",
})
MAX_CONCURRENCY = 10


def validate_trigger(trigger: Trigger | None) -> dict[str, Any]:
    """The trigger as stored (KFP's Trigger in snake_case, times in RFC 3339 to the second).

    The schedule runner's parser makes every check (it raises `ScheduleError`, a 400), so the API
    never accepts a schedule that the runner would then refuse to fire.
    """
    stored: dict[str, Any] = {}
    for kind, schedule in (trigger.model_dump(exclude_none=True) if trigger is not None else {}).items():
        times = {key: wire.timestamp(schedule.get(key)) for key in ("start_time", "end_time")}
        stored[kind] = wire.compact({**schedule, **times})
    parsed = parse_trigger(stored)
    if parsed.cron is not None:
        stored["cron_schedule"]["cron"] = parsed.cron  # white space folded, as the runner reads it
    return stored


def _source(ctx: ServerContext, access: Access, body: RecurringRun) -> dict[str, Any]:
    """The pipeline columns of a schedule, after validating its spec and parameters."""
    check_one_source(body, "a recurring run")
    version = resolve_version(ctx, access, body.pipeline_version_reference, body.pipeline_version_id)
    if version is not None:
        loaded = parse_spec(spec_document(version.pipeline_spec, version.platform_spec))
        columns = {"pipeline_id": version.pipeline_id, "pipeline_version_id": version.id}
    else:
        loaded = parse_spec(body.pipeline_spec or {})
        columns = {}
    parameters = (body.runtime_config.parameters if body.runtime_config else None) or {}
    prepare_arguments(loaded, parameters)
    return {**columns, "pipeline_spec": loaded.spec, "platform_spec": loaded.platform_spec or None}


def _wake(ctx: ServerContext) -> None:
    if ctx.schedules is not None:
        ctx.schedules.wake()


def _checked(ctx: ServerContext, access: Access, recurring_run_id: str, scope: str = "write") -> RecurringRuns:
    """The repository, after checking that the caller holds `scope` in the recurring run's namespace."""
    recurring_runs = RecurringRuns(ctx.store)
    access.require(scope, recurring_runs.get(recurring_run_id).namespace, missing("recurring run", recurring_run_id))
    return recurring_runs


@router.post("/recurringruns", response_model=None, responses={200: {"model": RecurringRun}})
def create_recurring_run(body: RecurringRun, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Create a schedule: a cron_schedule (6 fields) or a periodic_schedule, a pipeline source, max_concurrency 1-10."""
    if not body.display_name or not body.display_name.strip():
        raise ApiError(400, "recurring run display_name is required")
    trigger = validate_trigger(body.trigger)
    max_concurrency = 1 if body.max_concurrency is None else body.max_concurrency
    if not 1 <= max_concurrency <= MAX_CONCURRENCY:
        raise ApiError(400, f"max_concurrency must be between 1 and {MAX_CONCURRENCY}, got {max_concurrency}")
    experiment = resolve_experiment(ctx, access, body.experiment_id)
    if body.namespace and body.namespace != experiment.namespace:
        raise ApiError(400, f"namespace {body.namespace!r} differs from the namespace of experiment "
                            f"{experiment.id!r} ({experiment.namespace!r})")
    runtime_config = body.runtime_config
    row = RecurringRuns(ctx.store).create(
        namespace=experiment.namespace, display_name=body.display_name, description=body.description,
        experiment_id=experiment.id, **_source(ctx, access, body),
        runtime_config=wire.compact({"parameters": runtime_config.parameters if runtime_config else None,
                                     "pipeline_root": runtime_config.pipeline_root if runtime_config else None}),
        service_account=body.service_account, max_concurrency=max_concurrency, trigger=trigger,
        enabled=body.mode != "DISABLE", no_catchup=bool(body.no_catchup),
    )
    _wake(ctx)
    return wire.respond(wire.recurring_run(row, with_spec=True))


@router.get("/recurringruns", response_model=None, responses={200: {"model": ListRecurringRunsResponse}})
def list_recurring_runs(
    ctx: Ctx, access: Scoped, params: listing.ListParamsDep,
    namespace: str | None = Query(None, description="Only this namespace's recurring runs."),
    experiment_id: str | None = Query(None, description="Only this experiment's recurring runs."),
) -> JSONResponse:
    """List recurring runs (without their specs), filtered, sorted and paged."""
    extra = (Predicate("experiment_id", "EQUALS", experiment_id),) if experiment_id else ()
    query = listing.build_query(FIELDS, params, access=access, namespace=namespace, extra=extra)
    result = RecurringRuns(ctx.store).list(query)
    return listing.respond("recurringRuns", map(wire.recurring_run, result.rows), FIELDS, query, result, extra)


@router.get("/recurringruns/{recurring_run_id}", response_model=None, responses={200: {"model": RecurringRun}})
def get_recurring_run(recurring_run_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """One recurring run."""
    row = RecurringRuns(ctx.store).get(recurring_run_id)
    access.require("read", row.namespace, missing("recurring run", recurring_run_id))
    return wire.respond(wire.recurring_run(row, with_spec=True))


@router.delete("/recurringruns/{recurring_run_id}", response_model=None, responses={200: {"model": Empty}})
def delete_recurring_run(recurring_run_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Delete a schedule; the runs it started stay."""
    _checked(ctx, access, recurring_run_id).delete(recurring_run_id)
    _wake(ctx)
    return wire.respond({})


@router.post("/recurringruns/{recurring_run_id}:enable", response_model=None, responses={200: {"model": Empty}})
def enable_recurring_run(recurring_run_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Start firing the schedule again."""
    _checked(ctx, access, recurring_run_id).set_enabled(recurring_run_id, True)
    _wake(ctx)
    return wire.respond({})


@router.post("/recurringruns/{recurring_run_id}:disable", response_model=None, responses={200: {"model": Empty}})
def disable_recurring_run(recurring_run_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Stop firing the schedule (runs already started go on)."""
    _checked(ctx, access, recurring_run_id).set_enabled(recurring_run_id, False)
    _wake(ctx)
    return wire.respond({})
