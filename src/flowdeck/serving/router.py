"""The router in front of an InferenceService's replicas: a small reverse proxy, one process per service.

It forwards every request (V1, V2, metadata, health...) to a ready replica, round robin within a
revision, splits traffic between revisions by their percentages (smooth weighted round robin, so 20%
is 200 of every 1,000 requests, not 20% on average), answers with an `x-flowdeck-revision` header
naming the revision that served, and skips replicas that are down: a connection failure marks the
replica down and the request goes to the next one; a background probe (`/v2/health/ready`) brings it
back. With no replica up it answers 503 `{"error": ...}`.

Why a process of its own, started through the runtime like the replicas, rather than a server inside
`flowdeck up`: model traffic then never competes with the control plane's API and controllers for one
interpreter and event loop; the router stops with the runtime like every other workload (nothing is
left listening when the control plane stops or crashes); one that dies is restarted by the same
reconcile that restarts replicas; and it maps one to one onto a Deployment on Kubernetes.

The controller hands over the routing table as a JSON file, replaced atomically, that the router
re-reads when it changes (`RELOAD_SECONDS`); `GET /.flowdeck/router` reports the table in use, so
the controller stops an old revision only once the router no longer sends it traffic. The table:

    {"name": "iris", "version": 3, "namespace": "team-a", "credentials": true,
     "revisions": [{"name": "iris-predictor-00001", "percent": 80, "replicas": ["http://127.0.0.1:41001"]},
                   {"name": "iris-predictor-00002", "percent": 20, "replicas": ["http://127.0.0.1:41002"]}]}

Access. The router binds 127.0.0.1. When the control plane requires credentials, the controller says
so in the table (`credentials`, from the control plane's own rule, re-evaluated at every reconcile,
so creating the first user closes every router within a second) and every request must come from a
principal who may read in the service's `namespace` (`serving.access` explains the checks and their
cost); otherwise, as with `flowdeck serve` and a single-user control plane, the router is open to
local processes. The design: the router checks credentials itself, against the control plane's store
(opened read-only through the same database URL the control plane passes it with its settings), so a
request costs no hop through the control plane and a cache hit stays in-process. Checked credentials
(`Authorization`, `Cookie`) are not forwarded: a model's code never sees a caller's token.
The health endpoints (`/v2/health/live`, `/v2/health/ready`) stay open for probes and load balancers:
they reveal nothing, since to callers not known to read the namespace they answer without the
revision header and the 503 without the service's name. `GET /.flowdeck/router` is guarded too (it
names replicas): the controller proves itself with the key it gave the router (`KEY_HEADER`).

    python -m flowdeck.serving.router --routes ROUTES.json [--port N]
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from flowdeck.config import Settings
from flowdeck.serving.access import RouterAccess

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: How often the routing table file is checked for changes, and down replicas probed.
RELOAD_SECONDS = 0.2
PROBE_SECONDS = 0.5
#: The path at which the router describes itself instead of forwarding.
STATUS_PATH = "/.flowdeck/router"
REVISION_HEADER = b"x-flowdeck-revision"
#: Health endpoints: open to anyone, whatever the table says.
HEALTH_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
#: The header with which the controller reads `STATUS_PATH` of a router that requires credentials.
KEY_HEADER = b"x-flowdeck-router-key"
#: The environment variables the controller passes: the control plane's settings (JSON) and the key.
SETTINGS_ENV, KEY_ENV = "FLOWDECK_ROUTER_SETTINGS", "FLOWDECK_ROUTER_KEY"
#: Request headers that carry the credentials the router checked: not passed on to replicas.
_CREDENTIALS = frozenset({b"authorization", b"cookie"})
#: Headers that belong to one connection, not to the request (RFC 9110 §7.6.1), plus those httpx recomputes.
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                         b"trailer", b"transfer-encoding", b"upgrade", b"host", b"content-length"})


@dataclass
class Backend:
    """One replica; `up` is False from a failed connection until a health probe answers 200."""

    url: str
    up: bool = True


@dataclass
class Revision:
    name: str
    percent: int
    backends: list[Backend]
    #: Smooth weighted round robin state, and the next backend to try.
    current: int = 0
    turn: int = 0

    def available(self, exclude: set[str], down_too: bool = False) -> bool:
        return any((b.up or down_too) and b.url not in exclude for b in self.backends)

    def next_backend(self, exclude: set[str], down_too: bool = False) -> Backend | None:
        """The next up backend (or any, `down_too`) not in `exclude`, round robin."""
        for offset in range(len(self.backends)):
            backend = self.backends[(self.turn + offset) % len(self.backends)]
            if (backend.up or down_too) and backend.url not in exclude:
                self.turn = (self.turn + offset + 1) % len(self.backends)
                return backend
        return None


@dataclass
class Routes:
    """The routing table in use."""

    name: str = ""
    version: int = 0
    revisions: list[Revision] = field(default_factory=list)
    #: The service's namespace (as the store keeps it), and whether requests need a principal who may read there.
    namespace: str = ""
    credentials: bool = False

    def pick(self, exclude: set[str], down_too: bool = False) -> tuple[Revision, Backend] | None:
        """A revision by weight among those with an up backend (any revision when no weighted one has one);
        `down_too`: backends marked down count too (one may be back before the probe has seen it)."""
        live = [r for r in self.revisions if r.available(exclude, down_too)]
        weighted = [r for r in live if r.percent > 0] or live
        if not weighted:
            return None
        total = sum(max(r.percent, 1) for r in weighted)
        for revision in weighted:
            revision.current += max(revision.percent, 1)
        chosen = max(weighted, key=lambda r: r.current)
        chosen.current -= total
        backend = chosen.next_backend(exclude, down_too)
        assert backend is not None
        return chosen, backend

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "namespace": self.namespace,
                "credentials": self.credentials,
                "revisions": [{"name": r.name, "percent": r.percent,
                               "replicas": [{"url": b.url, "up": b.up} for b in r.backends]}
                              for r in self.revisions]}


def load_routes(path: Path, previous: Routes) -> Routes:
    """The table in `path`; replicas already known keep their up/down state."""
    document = json.loads(path.read_text())
    known = {b.url: b for r in previous.revisions for b in r.backends}
    revisions = [Revision(name=r["name"], percent=int(r["percent"]),
                          backends=[known.get(url) or Backend(url) for url in r["replicas"]])
                 for r in document["revisions"]]
    return Routes(name=document.get("name", ""), version=int(document["version"]), revisions=revisions,
                  namespace=document.get("namespace", ""), credentials=bool(document.get("credentials")))


def write_routes(path: Path, name: str, version: int, revisions: list[tuple[str, int, list[str]]], *,
                 namespace: str = "", credentials: bool = False) -> None:
    """Replace the routing table at `path` atomically (the router never reads half a file)."""
    document = {"name": name, "version": version, "namespace": namespace, "credentials": credentials,
                "revisions": [{"name": n, "percent": p, "replicas": urls} for n, p, urls in revisions]}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document))
    os.replace(partial, path)


class Router:
    """The ASGI app: forwards each request to a replica chosen by `Routes.pick`."""

    def __init__(self, routes_path: Path, access: RouterAccess, key: str | None = None) -> None:
        self.routes_path = routes_path
        self.access = access
        self.key = key.encode() if key else None
        self.routes = Routes()
        self._mtime: int | None = None
        self._client: httpx.AsyncClient | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            routes, path = self.routes, scope["path"]
            known = not routes.credentials  # whether the caller may know which service this is
            if routes.credentials and path not in HEALTH_PATHS and not (path == STATUS_PATH and self._keyed(scope)):
                refusal = await self.access.refusal(scope, routes.namespace)
                if refusal is not None:
                    await _answer(send, refusal.status, json.dumps({"error": refusal.message}).encode(),
                                  refusal.headers)
                    return
                known = True
            if path == STATUS_PATH:
                await _answer(send, 200, json.dumps(routes.to_json()).encode())
            else:
                await self._forward(scope, receive, send, known)

    def _keyed(self, scope: Scope) -> bool:
        """Whether the request carries the controller's key."""
        given = next((v for k, v in scope["headers"] if k.lower() == KEY_HEADER), None)
        return self.key is not None and given is not None and hmac.compare_digest(given, self.key)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._reload()
                self._client = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=2.0),
                                                 limits=httpx.Limits(max_connections=1000,
                                                                     max_keepalive_connections=100))
                self._watcher = asyncio.create_task(self._watch())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._watcher is not None:
                    self._watcher.cancel()
                if self._client is not None:
                    await self._client.aclose()
                self.access.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- the routing table and replica health ------------------------------------------------------
    def _reload(self) -> None:
        try:
            mtime = self.routes_path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            self.routes = load_routes(self.routes_path, self.routes)
            self._mtime = mtime

    async def _watch(self) -> None:
        probes = 0.0
        while True:
            await asyncio.sleep(RELOAD_SECONDS)
            self._reload()
            probes += RELOAD_SECONDS
            if probes >= PROBE_SECONDS:
                probes = 0.0
                down = [b for r in self.routes.revisions for b in r.backends if not b.up]
                await asyncio.gather(*(self._probe(b) for b in down))

    async def _probe(self, backend: Backend) -> None:
        assert self._client is not None
        try:
            response = await self._client.get(backend.url + "/v2/health/ready", timeout=1.0)
            backend.up = response.status_code == 200
        except httpx.HTTPError:
            backend.up = False

    # -- forwarding ---------------------------------------------------------------------------------
    async def _forward(self, scope: Scope, receive: Receive, send: Send, known: bool) -> None:
        """Answer with a replica's answer; naming the service and the revision only when `known`."""
        assert self._client is not None
        body = await _read_body(receive)
        target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        dropped = _HOP_BY_HOP | _CREDENTIALS if self.routes.credentials else _HOP_BY_HOP
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in dropped]
        service = (self.routes.name or "this service") if known else "this service"
        tried: set[str] = set()
        while (picked := self.routes.pick(tried) or self.routes.pick(tried, down_too=True)) is not None:
            revision, backend = picked
            tried.add(backend.url)
            request = self._client.build_request(scope["method"], backend.url + target, headers=headers,
                                                 content=body)
            try:
                response = await self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                backend.up = False  # the request never reached it: another replica may take it
                continue
            except httpx.TimeoutException:
                await _error(send, 504, f"{service}: {_replica(backend, known)} did not answer in time")
                return
            except httpx.TransportError:
                backend.up = False  # nothing was answered: another replica may take the request
                continue
            try:
                content = b"".join([chunk async for chunk in response.aiter_raw()])
            except httpx.HTTPError as exc:
                backend.up = False
                await _error(send, 502, f"{service}: {_replica(backend, known)} broke off its answer: {exc}")
                return
            finally:
                await response.aclose()
            backend.up = True  # it answered (it may have been marked down before the probe saw it back)
            answer = [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP]
            answer.append((b"content-length", str(len(content)).encode()))
            if known:
                answer.append((REVISION_HEADER, revision.name.encode()))
            await send({"type": "http.response.start", "status": response.status_code, "headers": answer})
            await send({"type": "http.response.body", "body": content})
            return
        await _error(send, 503, f"{service} has no ready replica")


def _replica(backend: Backend, known: bool) -> str:
    return f"replica {backend.url}" if known else "a replica"


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or ())]})
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, status: int, message: str) -> None:
    await _answer(send, status, json.dumps({"error": message}).encode())


class _Server(uvicorn.Server):
    """uvicorn's server, announcing the router's URL once it accepts connections."""

    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self.url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(f"routing at {self.url}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowdeck.serving.router", description=__doc__.splitlines()[0])
    parser.add_argument("--routes", required=True, type=Path, help="The routing table (JSON) to follow.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (the printed URL names it).")
    args = parser.parse_args(argv)
    from flowdeck.serving.server import ServeError, bind

    try:
        sock = bind(args.host, args.port)
    except ServeError as exc:
        print(f"router: {exc}", file=sys.stderr)
        return 1
    url = f"http://{args.host}:{sock.getsockname()[1]}"
    given = os.environ.get(SETTINGS_ENV)
    settings = Settings.model_validate_json(given) if given else Settings()
    router = Router(args.routes, RouterAccess(settings), os.environ.get(KEY_ENV))
    config = uvicorn.Config(router, http="auto", loop="auto", lifespan="on", access_log=False,
                            log_level="warning", server_header=False, date_header=False, proxy_headers=False,
                            timeout_graceful_shutdown=5)
    # uvicorn stops gracefully on SIGTERM/Ctrl-C, then re-raises the signal to the handlers it found:
    # finding these no-ops, a requested stop ends in a clean exit 0.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _ignore)
    try:
        _Server(config, url).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def _ignore(_signum: int, _frame: object) -> None:
    """A signal handler that does nothing (see `main`)."""


if __name__ == "__main__":
    sys.exit(main())
