"""`GET /apis/v2beta1/healthz`: what `kfp.Client` asks first when it does not know its namespace.

The client retries a failing healthz five times, five seconds apart, so answering it at once (and
without touching the database) is what makes `kfp.Client(host=...)` construct instantly.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from flowdeck.controlplane.auth import Public
from flowdeck.controlplane.kfp.messages import GetHealthzResponse
from flowdeck.controlplane.kfp.routing import kfp_router
from flowdeck.controlplane.kfp.wire import respond

router = kfp_router("healthz")


@router.get("/healthz", response_model=None, responses={200: {"model": GetHealthzResponse}})
async def get_healthz(request: Request, _access: Public) -> JSONResponse:
    """Whether the server runs in multi-user mode (users exist) and where pipelines are stored."""
    return respond({"multi_user": bool(getattr(request.state, "multi_user", False)), "pipeline_store": "database"})
