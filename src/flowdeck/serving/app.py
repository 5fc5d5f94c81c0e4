"""The data plane's ASGI app: KServe V1, Open Inference Protocol V2 REST, the model repository extension,
and Prometheus metrics, for the models in a `ModelRepository`.

Raw ASGI with a hand-written dispatcher rather than a web framework: a tiny model's predict takes
~80 µs, so routing, validation and response objects would otherwise be most of the cost (KServe's
FastAPI stack spends ~3x the model's time per request). Health and metadata are answered on the
event loop and never wait behind a model; model code runs on each model's own threads (`ModelRunner`).
Every non-2xx answer is `{"error": "..."}`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from flowdeck import __version__
from flowdeck.serving import v1, v2
from flowdeck.serving.errors import ServingError, bad_request
from flowdeck.serving.metrics import Measured, Metrics
from flowdeck.serving.model import ModelRepository, ModelRunner

log = logging.getLogger("flowdeck.serving")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Answer = tuple[int, bytes, list[tuple[bytes, bytes]] | None]

#: Extensions of the V2 protocol this server implements, as advertised by `GET /v2`.
EXTENSIONS = ["binary_tensor_data", "model_repository"]
#: Largest request body accepted (413 beyond it).
MAX_BODY_BYTES = 256 * 1024 * 1024
_JSON = b"application/json"
_HEADER_LENGTH = b"inference-header-content-length"
_METRICS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class ServingApp:
    """ASGI app serving the models of `repository`."""

    def __init__(self, repository: ModelRepository, metrics: Metrics | None = None,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.repository = repository
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        server_metadata = orjson.dumps({"name": "flowdeck", "version": __version__, "extensions": EXTENSIONS})
        live = orjson.dumps({"live": True})
        self._static: dict[str, dict[str, Callable[..., Awaitable[Answer]]]] = {
            "/": {"GET": self._constant(orjson.dumps({"status": "alive"}))},
            "/v2/health/live": {"GET": self._constant(live)},
            "/v2/health/ready": {"GET": self._server_ready},
            "/v2": {"GET": self._constant(server_metadata)},
            "/v2/": {"GET": self._constant(server_metadata)},
            "/v2/models": {"GET": self._model_list},
            "/v1/models": {"GET": self._model_list},
            "/metrics": {"GET": self._metrics},
            "/v2/repository/index": {"POST": self._repository_index},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, body, headers = await self._dispatch(scope, receive)
        except ServingError as exc:
            status, body, headers = exc.status, _error(exc.message), None
        except Exception as exc:  # a fault of ours or of the model's code: logged, answered as a 500
            log.exception("error answering %s %s", scope["method"], scope["path"])
            status, body, headers = 500, _error(f"internal error: {type(exc).__name__}: {exc}"), None
        await send({"type": "http.response.start", "status": status,
                    "headers": headers or [(b"content-type", _JSON), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    async def _dispatch(self, scope: Scope, receive: Receive) -> Answer:
        path: str = scope["path"]
        method: str = scope["method"]
        routes = self._static.get(path)
        if routes is not None:
            handler = routes.get(method)
            if handler is None:
                raise _not_allowed(method, path)
            return await handler(scope, receive)
        if path.startswith("/v2/models/"):
            return await self._v2_model_route(scope, receive, method, path[11:].split("/"))
        if path.startswith("/v1/models/"):
            return await self._v1_model_route(scope, receive, method, path[11:])
        if path.startswith("/v2/repository/models/"):
            parts = path[22:].split("/")
            if len(parts) == 2 and parts[1] in ("load", "unload"):
                if method != "POST":
                    raise _not_allowed(method, path)
                return await self._repository_action(parts[0], parts[1])
        raise ServingError(404, f"no such endpoint: {path}")

    # V2

    async def _v2_model_route(self, scope: Scope, receive: Receive, method: str, parts: list[str]) -> Answer:
        name = parts[0]
        version = None
        action = ""
        if len(parts) >= 3 and parts[1] == "versions":
            version = parts[2]
            rest = parts[3:]
        else:
            rest = parts[1:]
        if len(rest) == 1:
            action = rest[0]
        elif rest:
            raise ServingError(404, f"no such endpoint: {scope['path']}")
        expected = "POST" if action == "infer" else "GET"
        if action not in ("", "ready", "infer") or not name:
            raise ServingError(404, f"no such endpoint: {scope['path']}")
        if method != expected:
            raise _not_allowed(method, scope["path"])
        runner = self.repository.get(name)
        if version is not None and version != runner.model.version:
            raise ServingError(404, f"model '{name}' has no version '{version}'")
        if action == "infer":
            return await self._v2_infer(scope, receive, runner)
        model = runner.model
        if action == "ready":
            if not model.ready:
                raise ServingError(503, f"model '{name}' is not ready")
            return _json({"name": name, "ready": True})
        return _json(v2.model_metadata(model))

    async def _v2_infer(self, scope: Scope, receive: Receive, runner: ModelRunner) -> Answer:
        model = runner.model
        with Measured(self.metrics, model.name, "v2"):
            headers = _headers(scope)
            body = await self._body(receive)
            request = v2.decode_request(model.name, body, headers.get("inference-header-content-length"))
            result = await runner(request, headers)
            payload, header_length = v2.encode_response(v2.as_response(result, request, model), request)
        if header_length is None:
            return 200, payload, None
        return 200, payload, [(b"content-type", b"application/octet-stream"),
                              (b"content-length", b"%d" % len(payload)),
                              (_HEADER_LENGTH, b"%d" % header_length)]

    async def _server_ready(self, scope: Scope, receive: Receive) -> Answer:
        if not self.repository.is_ready():
            waiting = [name for name in self.repository.names() if not self.repository.get(name).model.ready]
            raise ServingError(503, f"not ready: waiting for model(s) {', '.join(waiting)}")
        return 200, b'{"ready":true}', None

    async def _model_list(self, scope: Scope, receive: Receive) -> Answer:
        return _json({"models": self.repository.names()})

    # V1

    async def _v1_model_route(self, scope: Scope, receive: Receive, method: str, rest: str) -> Answer:
        name, _, verb = rest.partition(":") if ":" in rest else (rest, "", "")
        if not name or "/" in name or verb not in ("", "predict", "explain"):
            raise ServingError(404, f"no such endpoint: {scope['path']}")
        if method != ("POST" if verb else "GET"):
            raise _not_allowed(method, scope["path"])
        runner = self.repository.get(name)
        if not verb:
            if not runner.model.ready:
                raise ServingError(503, f"model '{name}' is not ready")
            return _json({"name": name, "ready": True})
        with Measured(self.metrics, name, "v1"):
            payload = v1.decode_request(await self._body(receive))
            body = v1.encode_response(await runner(payload, _headers(scope), verb))
        return 200, body, None

    # Model repository extension and metrics

    async def _repository_index(self, scope: Scope, receive: Receive) -> Answer:
        body = await self._body(receive)
        ready_only = False
        if body.strip():
            try:
                options = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise bad_request(f"request body is not valid JSON: {exc}") from None
            if not isinstance(options, dict) or not isinstance(options.get("ready", False), bool):
                raise bad_request('the index request must be a JSON object such as {"ready": true}')
            ready_only = options.get("ready", False)
        return _json(self.repository.index(ready_only))

    async def _repository_action(self, name: str, action: str) -> Answer:
        if action == "load":
            await self.repository.load(name)
        else:
            self.repository.unload(name)
        return _json({"name": name, action: True})

    async def _metrics(self, scope: Scope, receive: Receive) -> Answer:
        if self.metrics is None:
            raise ServingError(404, "metrics are off")
        body = self.metrics.exposition()
        return 200, body, [(b"content-type", _METRICS_TYPE), (b"content-length", b"%d" % len(body))]

    # Plumbing

    async def _body(self, receive: Receive) -> bytes:
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body"):
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise ServingError(413, f"request body is larger than {self.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _constant(body: bytes) -> Callable[[Scope, Receive], Awaitable[Answer]]:
        async def answer(scope: Scope, receive: Receive) -> Answer:
            return 200, body, None

        return answer

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.repository.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


def _json(value: Any) -> Answer:
    return 200, orjson.dumps(value), None


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


def _not_allowed(method: str, path: str) -> ServingError:
    return ServingError(405, f"{method} is not allowed on {path}")
