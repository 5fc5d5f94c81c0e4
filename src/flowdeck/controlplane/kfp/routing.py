"""What every KFP route shares: the `/apis/v2beta1` router, its dependencies, and error mapping.

Handlers raise the store's and the run controller's own exceptions; `KfpRoute` turns them into
`ApiError`s with KFP's status codes in one place, so no handler repeats try/except blocks and no
client mistake surfaces as a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from flowdeck.controlplane.errors import ApiError
from flowdeck.controlplane.kfp.messages import Error
from flowdeck.pipelines.controller import RunStateError
from flowdeck.pipelines.errors import PipelineError
from flowdeck.pipelines.schedules import ScheduleError
from flowdeck.store import RunNotFound
from flowdeck.store.catalog import AlreadyExists, InvalidQuery, NotFound, StateConflict

PREFIX = "/apis/v2beta1"

#: Exception type -> HTTP status (KFP: InvalidInput/FailedPrecondition 400, NotFound 404, AlreadyExists 409).
STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (NotFound, 404),
    (RunNotFound, 404),
    (AlreadyExists, 409),
    (StateConflict, 400),
    (InvalidQuery, 400),
    (PipelineError, 400),
    (RunStateError, 400),
    (ScheduleError, 400),
)



class KfpRoute(APIRoute):
    """A route whose domain exceptions become KFP error responses."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except tuple(kind for kind, _ in STATUS_OF) as exc:
                status = next(code for kind, code in STATUS_OF if isinstance(exc, kind))
                raise ApiError(status, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None

        return route


def kfp_router(tag: str) -> APIRouter:
    """A router for one KFP service (documented under `tag`)."""
    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": Error, "description": "Invalid request (gRPC INVALID_ARGUMENT)"},
        404: {"model": Error, "description": "Not found (gRPC NOT_FOUND)"},
    }
    return APIRouter(prefix=PREFIX, route_class=KfpRoute, tags=[f"KFP: {tag}"], responses=errors)
