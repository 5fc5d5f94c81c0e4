"""`serve`: start the whole control plane in this process and block until Ctrl-C or SIGTERM.

The listening socket is bound before anything else, so a busy port fails at once with one line,
and `--port 0` picks a free port (the printed URL names it). uvicorn owns the signals: on Ctrl-C or
SIGTERM it stops accepting requests, and the app's lifespan stops the controllers, which suspend
running runs so that the next start resumes them.
"""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Callable

import uvicorn

from flowdeck.config import Settings
from flowdeck.controlplane.app import ServerContext, Service, create_app
from flowdeck.controlplane.auth import AccessMode, is_loopback
from flowdeck.pipelines.controller import RunController
from flowdeck.pipelines.schedules import ScheduleRunner
from flowdeck.resources.controller import create_controller
from flowdeck.sockets import listen
from flowdeck.store import open_store
from flowdeck.store.ownership import StoreLocked, control_plane_lock


class ServeError(RuntimeError):
    """The control plane cannot start (the port is taken, the database cannot be opened...)."""


def bind(host: str, port: int) -> socket.socket:
    """The control plane's listening socket on host:port (port 0: any free port)."""
    return listen(host, port, ServeError, "is another `flowdeck up` running? pick another with --port")


class _Server(uvicorn.Server):
    """uvicorn's server, telling us once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.on_ready()


def serve(settings: Settings, host: str, port: int, announce: Callable[[str], None] = print) -> None:
    """Run the control plane on host:port until interrupted."""
    sock = bind(host, port)
    url_host = f"[{host}]" if ":" in host else host
    url = f"http://{url_host}:{sock.getsockname()[1]}"
    try:
        store = open_store(settings.resolved_database_url)
    except Exception as exc:
        sock.close()
        raise ServeError(f"cannot open the run database: {str(exc).splitlines()[0]}") from None
    try:
        lock = control_plane_lock(store.engine)
    except StoreLocked as exc:
        sock.close()
        store.close()
        raise ServeError(f"{exc}; stop it first, or give this one its own FLOWDECK_HOME") from None
    ctx = ServerContext(settings=settings, store=store, runs=RunController(store, settings), bind_host=host)
    if not is_loopback(host) and not _sign_in_configured(ctx):
        sock.close()
        lock.release()
        store.close()
        raise ServeError(f"refusing to serve on {host} with nobody able to sign in: create a cluster-admin user "
                         "(`flowdeck users create NAME --cluster-admin`), or configure OIDC or trusted proxies "
                         "(or bind 127.0.0.1)")
    ctx.runs.api_url = url
    mode = AccessMode(ctx)
    ctx.runs.requires_credentials = lambda: mode.multi_user  # then each run gets its own token
    ctx.services.extend(_services(ctx))
    app = create_app(ctx)
    # proxy_headers=False: uvicorn would otherwise take X-Forwarded-For/-Proto from any local process as
    # the client's address and scheme, and the trusted-proxy check must see the real TCP peer.
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=10,
                            proxy_headers=False,
                            server_header=False)

    def ready() -> None:
        announce(f"flowdeck is up at {url}  (KFP API: {url}/apis/v2beta1, API docs: {url}/docs; "
                 "Ctrl-C stops it)")
        sys.stdout.flush()

    # uvicorn handles Ctrl-C/SIGTERM itself (a graceful stop), then re-raises the signal to the
    # handlers it found; finding these no-ops, a stop asked for by a signal ends in a clean exit 0.
    previous = {signum: signal.signal(signum, _ignore) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        _Server(config, ready).run(sockets=[sock])
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
        lock.release()
        store.close()


def _sign_in_configured(ctx: ServerContext) -> bool:
    """Whether someone can sign in as an admin: the legacy token, OIDC, a trusted proxy, or a cluster-admin user."""
    settings = ctx.settings
    if settings.token or settings.oidc_issuer or settings.trusted_proxies:
        return True
    return any(user.is_cluster_admin and not user.disabled for user in ctx.identity.list_users())


def _ignore(_signum: int, _frame: object) -> None:
    """A signal handler that does nothing (see `serve`)."""


def _services(ctx: ServerContext) -> list[Service]:
    """Background services besides the run controller (schedules, resource controllers)."""
    ctx.schedules = ScheduleRunner(ctx.store, ctx.runs)
    return [ctx.schedules, create_controller(ctx.store, ctx.settings, ctx.runs)]
