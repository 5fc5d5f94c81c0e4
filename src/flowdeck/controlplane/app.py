"""Assembles the control plane's ASGI app: routers, error handling, authentication, lifecycle.

`ServerContext` is what every handler may use (settings, the store, the run controller); handlers
reach it through the `context` dependency. Background services (the run controller, the schedule
runner, resource controllers) start with the app and stop with it.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Protocol

import anyio.to_thread
from fastapi import Depends, FastAPI, Request

from flowdeck import __version__
from flowdeck.config import Settings
from flowdeck.controlplane.auth import RequestGuard
from flowdeck.controlplane.errors import install_error_handlers
from flowdeck.pipelines.controller import RunController
from flowdeck.profiles.tokens import install_log_redaction
from flowdeck.store import Store
from flowdeck.store.identity import IdentityStore

#: Routers of the control plane, as (module, attribute); each module owns one API surface.
ROUTERS: tuple[tuple[str, str], ...] = (
    ("flowdeck.controlplane.kfp", "router"),
    # before the resource API, whose /apis/flowdeck/v1/{kind} would otherwise take "users" and "tokens"
    ("flowdeck.controlplane.identity", "router"),
    ("flowdeck.controlplane.login", "router"),
    ("flowdeck.controlplane.resources", "router"),
    ("flowdeck.controlplane.kfam", "router"),
    ("flowdeck.controlplane.dashboard", "router"),
    ("flowdeck.controlplane.apidocs", "router"),
)


class Service(Protocol):
    """A background worker that lives as long as the server (a controller or a scheduler)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Schedules(Service, Protocol):
    """The service that fires recurring runs; the API wakes it when a schedule changes."""

    def wake(self) -> None: ...


@dataclass
class ServerContext:
    """Everything a request handler may use, shared by the whole server process."""

    settings: Settings
    store: Store
    runs: RunController
    #: The address the server listens on (requests must name it, or a loopback name, as Host).
    bind_host: str = "127.0.0.1"
    #: Fires recurring runs (None until one is configured, e.g. in tests of the API alone).
    schedules: Schedules | None = None
    #: Started in order after the run controller, stopped in reverse order before it.
    services: list[Service] = field(default_factory=list)

    @cached_property
    def identity(self) -> IdentityStore:
        """Users, API tokens and logins (one per server: it caches whether any user exists)."""
        return IdentityStore(self.store.engine)

    def start(self) -> None:
        self.runs.start()
        for service in self.services:
            service.start()

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.runs.stop()


def context(request: Request) -> ServerContext:
    """FastAPI dependency: the running server's context."""
    return request.app.state.context


#: A handler parameter annotated `Ctx` receives the server's context.
Ctx = Annotated[ServerContext, Depends(context)]


def create_app(ctx: ServerContext) -> FastAPI:
    """The control plane's app; starting it (lifespan) starts `ctx`'s services."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # on a worker thread: stopping waits for engines, and the event loop must stay responsive
        await anyio.to_thread.run_sync(ctx.start)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(ctx.stop)

    app = FastAPI(
        title="flowdeck control plane",
        version=__version__,
        description="KFP v2beta1-compatible pipelines API, the resource API and the dashboard.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI loads its scripts from a CDN: /docs is our own page (apidocs.py)
        redoc_url=None,
        openapi_url=None,  # served by apidocs.py, like every route with a declared authorization policy
    )
    app.state.context = ctx
    install_log_redaction()  # no API token reaches a log line, whoever logs it (uvicorn's access log too)
    install_error_handlers(app)
    app.add_middleware(RequestGuard, context=ctx)
    for module_name, attribute in ROUTERS:
        app.include_router(getattr(importlib.import_module(module_name), attribute))
    return app
