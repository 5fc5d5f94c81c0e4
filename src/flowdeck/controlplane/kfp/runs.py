"""KFP RunService: create, list, get, terminate, retry, archive, unarchive and delete runs.

Runs are created and executed by the run controller (`ctx.runs`); this module resolves what KFP's
request names (the experiment, a pipeline version) and renders rows. A run without an experiment
goes to its namespace's "Default" experiment, as in KFP. Runs started by `flowdeck run` (no
experiment, namespace "") are listed alongside those made over the API.
"""

from __future__ import annotations

from typing import Any

from fastapi import Query
from fastapi.responses import JSONResponse

from flowdeck.controlplane.app import Ctx, ServerContext
from flowdeck.controlplane.auth import Access, Scoped
from flowdeck.controlplane.errors import ApiError
from flowdeck.controlplane.kfp import listing, wire
from flowdeck.controlplane.kfp.messages import Empty, ListRunsResponse, PipelineVersionReference, RecurringRun, Run
from flowdeck.controlplane.kfp.routing import kfp_router, missing
from flowdeck.pipelines.references import run_experiment, run_version
from flowdeck.pipelines.spec import spec_document
from flowdeck.store.catalog import (
    ARCHIVED,
    AVAILABLE,
    Pipelines,
    Predicate,
    RunCatalog,
)

router = kfp_router("runs")

FIELDS = listing.Fields("runs", {
    "run_id": "id", "id": "id", "display_name": "display_name", "name": "display_name", "created_at": "created_at",
    "finished_at": "finished_at", "description": "description", "scheduled_at": "scheduled_at",
    "storage_state": "storage_state", "namespace": "namespace", "experiment_id": "experiment_id", "state": "state",
    "recurring_run_id": "recurring_run_id", "pipeline_id": "pipeline_id", "pipeline_version_id": "pipeline_version_id",
})


def check_one_source(body: Run | RecurringRun, what: str) -> None:
    """KFP's pipeline_source is a oneof: exactly one of the spec, a version reference, or a version id."""
    sources = [name for name in ("pipeline_spec", "pipeline_version_reference", "pipeline_version_id")
               if getattr(body, name)]
    if len(sources) != 1:
        raise ApiError(400, f"{what} needs exactly one pipeline source: pipeline_spec or pipeline_version_reference"
                            + (f" (got {' and '.join(sources)})" if sources else ""))


def resolve_experiment(ctx: ServerContext, access: Access, experiment_id: str | None) -> Any:
    """The experiment a new run or recurring run goes to (the namespace's "Default" one when none is named);
    the caller must be allowed to write in its namespace."""

    def authorize(found: str) -> None:
        access.require("write", found, missing("experiment", experiment_id) if experiment_id else None)

    return run_experiment(ctx.store, experiment_id=experiment_id, authorize=authorize)


def resolve_version(ctx: ServerContext, access: Access, reference: PipelineVersionReference | None,
                    version_id: str | None) -> Any:
    """The pipeline version a request refers to (a pipeline's newest when only the pipeline is named), or None."""
    pipeline_id = reference.pipeline_id if reference else None
    version_id = (reference.pipeline_version_id if reference else None) or version_id
    if not pipeline_id and not version_id:
        if reference is not None:
            raise ApiError(400, "pipeline_version_reference needs a pipeline_id or a pipeline_version_id")
        return None
    hidden = missing("pipeline", pipeline_id) if pipeline_id else missing("pipeline version", version_id or "")
    if pipeline_id:
        access.require("read", Pipelines(ctx.store).get(pipeline_id).namespace, hidden)
    version = run_version(ctx.store, pipeline_id=pipeline_id, version=version_id)
    access.require("read", Pipelines(ctx.store).get(version.pipeline_id).namespace, hidden)
    return version


def _run_row(ctx: ServerContext, access: Access, run_id: str, scope: str = "write") -> Any:
    """The run, after checking that the caller holds `scope` in its namespace."""
    row = RunCatalog(ctx.store).get(run_id)
    access.require(scope, row.namespace, missing("run", run_id))
    return row


@router.post("/runs", response_model=None, responses={200: {"model": Run}})
def create_run(body: Run, ctx: Ctx, access: Scoped,
               experiment_id: str | None = Query(None, description="The experiment, when the body names none.")
               ) -> JSONResponse:
    """Create a run from an inline pipeline_spec or a pipeline version, with runtime_config.parameters."""
    check_one_source(body, "a run")
    experiment = resolve_experiment(ctx, access, body.experiment_id or experiment_id)
    version = resolve_version(ctx, access, body.pipeline_version_reference, body.pipeline_version_id)
    if version is not None:
        spec = spec_document(version.pipeline_spec, version.platform_spec)
    else:
        spec = body.pipeline_spec
    parameters = body.runtime_config.parameters if body.runtime_config else None
    run_id = ctx.runs.create_run(
        pipeline_spec=spec, parameters=parameters or {}, display_name=body.display_name or None,
        namespace=experiment.namespace, experiment_id=experiment.id, description=body.description,
        pipeline_id=version.pipeline_id if version is not None else None,
        pipeline_version_id=version.id if version is not None else None,
        service_account=body.service_account,
    )
    row = RunCatalog(ctx.store).get(run_id)
    return wire.respond(wire.run(row, with_spec=True))


@router.get("/runs", response_model=None, responses={200: {"model": ListRunsResponse}})
def list_runs(
    ctx: Ctx, access: Scoped, params: listing.ListParamsDep,
    namespace: str | None = Query(None, description="Only this namespace's runs."),
    experiment_id: str | None = Query(None, description="Only this experiment's runs."),
) -> JSONResponse:
    """List runs (those of `flowdeck run` too), filtered, sorted and paged. Lists leave out specs and tasks."""
    extra = (Predicate("experiment_id", "EQUALS", experiment_id),) if experiment_id else ()
    query = listing.build_query(FIELDS, params, access=access, namespace=namespace, extra=extra)
    result = RunCatalog(ctx.store).list(query)
    return listing.respond("runs", map(wire.run, result.rows), FIELDS, query, result, extra)


@router.get("/runs/{run_id}", response_model=None, responses={200: {"model": Run}})
def get_run(run_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """One run, with run_details.task_details (one entry per task, sub-DAG and loop iteration)."""
    row = _run_row(ctx, access, run_id, "read")
    tasks, events = RunCatalog(ctx.store).tasks(row.id)
    return wire.respond(wire.run(row, with_spec=True, task_details=wire.task_details(row.id, tasks, events)))


@router.delete("/runs/{run_id}", response_model=None, responses={200: {"model": Empty}})
def delete_run(run_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Delete a finished run with its tasks (a run still going must be terminated first)."""
    _run_row(ctx, access, run_id)
    RunCatalog(ctx.store).delete(run_id)
    return wire.respond({})


@router.post("/runs/{run_id}:terminate", response_model=None, responses={200: {"model": Empty}})
def terminate_run(run_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Cancel a run: it ends CANCELED once its running tasks have stopped. A finished run is left as it is."""
    _run_row(ctx, access, run_id)
    ctx.runs.terminate(run_id)
    return wire.respond({})


@router.post("/runs/{run_id}:retry", response_model=None, responses={200: {"model": Empty}})
def retry_run(run_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Run a FAILED or CANCELED run again in place, reusing the tasks that succeeded."""
    _run_row(ctx, access, run_id)
    ctx.runs.retry(run_id)
    return wire.respond({})


@router.post("/runs/{run_id}:archive", response_model=None, responses={200: {"model": Empty}})
def archive_run(run_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Archive a run (it stays listed, with storage_state ARCHIVED)."""
    _run_row(ctx, access, run_id)
    RunCatalog(ctx.store).set_storage_state(run_id, ARCHIVED)
    return wire.respond({})


@router.post("/runs/{run_id}:unarchive", response_model=None, responses={200: {"model": Empty}})
def unarchive_run(run_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Make an archived run available again (not while its experiment is archived)."""
    _run_row(ctx, access, run_id)
    RunCatalog(ctx.store).set_storage_state(run_id, AVAILABLE)
    return wire.respond({})
