"""What every KFP route shares: the `/apis/v2beta1` router, its dependencies, and error mapping.

Handlers raise the store's and the run controller's own exceptions; `KfpRoute` turns them into
`ApiError`s with KFP's status codes in one place (`KfpRoute.statuses`), so no handler repeats
try/except blocks and no client mistake surfaces as a 500. Bodies are checked for NUL bytes and
column lengths by `messages.Message`, query and path parameters for NUL bytes by `DomainErrorRoute`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from flowdeck.controlplane.errors import DomainErrorRoute
from flowdeck.controlplane.kfp.messages import Error
from flowdeck.pipelines.controller import RunStateError
from flowdeck.pipelines.errors import PipelineError
from flowdeck.pipelines.schedules import ScheduleError
from flowdeck.store import RunNotFound
from flowdeck.store.catalog import AlreadyExists, InvalidQuery, InvalidValue, NotFound, StateConflict

PREFIX = "/apis/v2beta1"


class KfpRoute(DomainErrorRoute):
    """A route whose domain exceptions become KFP error responses.

    KFP's codes: InvalidInput/FailedPrecondition 400, NotFound 404, AlreadyExists 409.
    """

    statuses = (
        (NotFound, 404),
        (RunNotFound, 404),
        (AlreadyExists, 409),
        (StateConflict, 400),
        (InvalidQuery, 400),
        (InvalidValue, 400),
        (PipelineError, 400),
        (RunStateError, 400),
        (ScheduleError, 400),
    )


def missing(what: str, object_id: str) -> Callable[[], Exception]:
    """The error of an object that does not exist, for one the caller may not see (same words, same 404)."""
    return lambda: NotFound(f"{what} {object_id!r} not found")


def kfp_router(tag: str) -> APIRouter:
    """A router for one KFP service (documented under `tag`)."""
    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": Error, "description": "Invalid request (gRPC INVALID_ARGUMENT)"},
        404: {"model": Error, "description": "Not found (gRPC NOT_FOUND)"},
    }
    return APIRouter(prefix=PREFIX, route_class=KfpRoute, tags=[f"KFP: {tag}"], responses=errors)
