"""KFP ExperimentService: create, get, list, delete, archive and unarchive experiments.

Archiving an experiment archives its runs and disables its recurring runs, as KFP does;
unarchiving brings back only the experiment.
"""

from __future__ import annotations

from fastapi import Query
from fastapi.responses import JSONResponse

from flowdeck.controlplane.app import Ctx, ServerContext
from flowdeck.controlplane.auth import Access, Scoped
from flowdeck.controlplane.errors import ApiError
from flowdeck.controlplane.kfp import listing, wire
from flowdeck.controlplane.kfp.messages import Empty, Experiment, ListExperimentsResponse
from flowdeck.controlplane.kfp.routing import kfp_router, missing
from flowdeck.store.catalog import Experiments

router = kfp_router("experiments")

FIELDS = listing.Fields("experiments", {
    "experiment_id": "id", "id": "id", "display_name": "display_name", "name": "display_name",
    "created_at": "created_at", "last_run_created_at": "last_run_created_at", "description": "description",
    "namespace": "namespace", "storage_state": "storage_state",
})


def get_checked(ctx: ServerContext, access: Access, experiment_id: str, scope: str = "write") -> Experiments:
    """The repository, after checking that the experiment exists and the caller holds `scope` in its namespace."""
    experiments = Experiments(ctx.store)
    access.require(scope, experiments.get(experiment_id).namespace, missing("experiment", experiment_id))
    return experiments


@router.post("/experiments", response_model=None, responses={200: {"model": Experiment}})
def create_experiment(body: Experiment, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Create an experiment; its display_name must be unique in its namespace (409 otherwise)."""
    if not body.display_name or not body.display_name.strip():
        raise ApiError(400, "experiment display_name is required")
    namespace = body.namespace or ""
    access.require("write", namespace)
    row = Experiments(ctx.store).create(display_name=body.display_name, namespace=namespace,
                                        description=body.description)
    return wire.respond(wire.experiment(row))


@router.get("/experiments", response_model=None, responses={200: {"model": ListExperimentsResponse}})
def list_experiments(
    ctx: Ctx, access: Scoped, params: listing.ListParamsDep,
    namespace: str | None = Query(None, description="Only this namespace's experiments."),
) -> JSONResponse:
    """List experiments, filtered, sorted and paged."""
    query = listing.build_query(FIELDS, params, access=access, namespace=namespace)
    result = Experiments(ctx.store).list(query)
    return listing.respond("experiments", map(wire.experiment, result.rows), FIELDS, query, result)


@router.get("/experiments/{experiment_id}", response_model=None, responses={200: {"model": Experiment}})
def get_experiment(experiment_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """One experiment."""
    row = Experiments(ctx.store).get(experiment_id)
    access.require("read", row.namespace, missing("experiment", experiment_id))
    return wire.respond(wire.experiment(row))


@router.delete("/experiments/{experiment_id}", response_model=None, responses={200: {"model": Empty}})
def delete_experiment(experiment_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Delete an experiment. Its runs and recurring runs are kept."""
    get_checked(ctx, access, experiment_id).delete(experiment_id)
    return wire.respond({})


@router.post("/experiments/{experiment_id}:archive", response_model=None, responses={200: {"model": Empty}})
def archive_experiment(experiment_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Archive an experiment with all its runs, and disable its recurring runs."""
    get_checked(ctx, access, experiment_id).archive(experiment_id)
    if ctx.schedules is not None:
        ctx.schedules.wake()
    return wire.respond({})


@router.post("/experiments/{experiment_id}:unarchive", response_model=None, responses={200: {"model": Empty}})
def unarchive_experiment(experiment_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Make an archived experiment available again (its runs stay archived until unarchived one by one)."""
    get_checked(ctx, access, experiment_id).unarchive(experiment_id)
    return wire.respond({})
