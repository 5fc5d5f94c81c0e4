"""`serve`: load one model and answer for it over HTTP (and gRPC) until Ctrl-C (what `flowdeck serve` runs).

The socket is bound first, so a busy port fails at once with one line and `--port 0` works; then the
model is loaded (a missing file or runtime is one line too), then uvicorn serves with httptools and
uvloop when installed and no access log. With `workers` > 1, uvicorn's supervisor starts that many
processes on the shared socket, each loading the model from the options passed in the environment.
With `grpc_port` set, the Open Inference Protocol's gRPC service answers for the same models from the
same event loop (started before HTTP, so a gRPC port in use fails the start with one line).
`ModelServer` is the KServe-style entry point for scripts: `ModelServer().start([model])`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import uvicorn

from flowdeck.serving.app import MAX_BODY_BYTES, ServingApp
from flowdeck.serving.batching import BatchConfig
from flowdeck.serving.formats import ModelLoadError, load_model
from flowdeck.serving.metrics import Metrics
from flowdeck.serving.model import Model, ModelRepository
from flowdeck.serving.predictor import PredictorConfig, set_process_config
from flowdeck.sockets import listen

if TYPE_CHECKING:
    from flowdeck.serving.grpc import GRPCServer

#: Environment variable carrying `ServeOptions` (JSON) to worker processes.
OPTIONS_ENV = "FLOWDECK_SERVE_OPTIONS"


class ServeError(RuntimeError):
    """The server cannot start: the port is taken, the model cannot be loaded..."""


@dataclass(frozen=True)
class ServeOptions:
    """What `flowdeck serve` was asked to serve, and how."""

    path: str
    name: str
    format: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    model_threads: int | None = None
    max_batch_size: int = 1
    max_batch_latency_ms: float = 2.0
    grpc_port: int | None = None
    grpc_max_message_bytes: int = MAX_BODY_BYTES


def build_app(options: ServeOptions) -> ServingApp:
    """The app serving the model `options` names (loaded now); the repository can reload it from the same path."""
    batching = (BatchConfig(options.max_batch_size, options.max_batch_latency_ms)
                if options.max_batch_size > 1 else None)
    metrics = Metrics()
    repository = ModelRepository(metrics, options.model_threads, batching)

    def factory() -> Model:
        return load_model(options.path, options.name, options.format)

    try:
        repository.add(factory(), factory)
    except ModelLoadError as exc:
        raise ServeError(str(exc)) from None
    return ServingApp(repository, metrics)


def app_from_environment() -> ServingApp:
    """The app for a worker process (uvicorn factory): options come from OPTIONS_ENV."""
    return build_app(ServeOptions(**json.loads(os.environ[OPTIONS_ENV])))


def bind(host: str, port: int) -> socket.socket:
    """The model server's listening socket on host:port (port 0: any free port)."""
    return listen(host, port, ServeError)


def _config(app: Any, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(app, http="auto", loop="auto", lifespan="on", access_log=False, log_level="warning",
                          server_header=False, proxy_headers=False, timeout_graceful_shutdown=5, **extra)


class _Server(uvicorn.Server):
    """uvicorn's server, telling us once it accepts connections, and running the gRPC server beside it."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None],
                 grpc_server: GRPCServer | None = None) -> None:
        super().__init__(config)
        self.on_ready = on_ready
        self.grpc_server = grpc_server
        self.error: str | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self.grpc_server is not None:
            try:
                await self.grpc_server.start()
            except OSError as exc:
                self.error, self.should_exit = str(exc), True
                return
        await super().startup(sockets)
        if self.started:
            self.on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.grpc_server is not None:
            await self.grpc_server.stop(self.config.timeout_graceful_shutdown)
        await super().shutdown(sockets)


def serve(options: ServeOptions, announce: Callable[[str], None] = print) -> None:
    """Serve the model `options` names until interrupted; announces its URL once ready."""
    if options.grpc_port is not None and options.workers > 1:
        raise ServeError("gRPC is served by one process: --grpc-port needs --workers 1")
    sock = bind(options.host, options.port)
    url_host = f"[{options.host}]" if ":" in options.host else options.host
    url = f"http://{url_host}:{sock.getsockname()[1]}"
    try:
        app = build_app(options)
    except ServeError:
        sock.close()
        raise

    grpc_server = None
    if options.grpc_port is not None:
        from flowdeck.serving.grpc import GRPCServer

        grpc_server = GRPCServer(app.repository, app.metrics, options.host, options.grpc_port,
                                 options.grpc_max_message_bytes)

    def ready() -> None:
        grpc_address = f", gRPC: {url_host}:{grpc_server.port}" if grpc_server is not None else ""
        announce(f"serving {options.name} at {url}  (V1: {url}/v1/models/{options.name}:predict, "
                 f"V2: {url}/v2/models/{options.name}/infer{grpc_address}; Ctrl-C stops it)")
        sys.stdout.flush()

    # uvicorn handles Ctrl-C/SIGTERM (a graceful stop) and re-raises the signal to the handlers it found.
    previous = {signum: signal.signal(signum, _ignore) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        if options.workers <= 1:
            server = _Server(_config(app), ready, grpc_server)
            server.run(sockets=[sock])
            if server.error is not None:
                raise ServeError(server.error)
        else:
            app.repository.close()  # the model loaded; each worker loads its own copy
            os.environ[OPTIONS_ENV] = json.dumps(asdict(options))
            threading.Thread(target=_announce_when_ready, args=(url, ready), daemon=True).start()
            config = _config("flowdeck.serving.server:app_from_environment", factory=True, workers=options.workers)
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[sock]).run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()


def _announce_when_ready(url: str, ready: Callable[[], None], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as answer:
                if answer.status == 200:
                    ready()
                    return
        except OSError:
            pass
        time.sleep(0.1)


def _ignore(signum: int, frame: object) -> None:
    """Installed while serving so that uvicorn's re-raised signal ends the process quietly."""


def _strtobool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "y", "on"):
        return True
    if text.lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


#: KServe's `model_server.parser` flags, for scripts that build theirs with `parents=[model_server.parser]`
#: (import it as `from flowdeck.serving import model_server`). It binds 127.0.0.1 unless `--host` says
#: otherwise (KServe binds every interface), and serves gRPC only when `--grpc_port` is given.
parser = argparse.ArgumentParser(add_help=False)
parser.add_argument("--http_port", type=int, default=8080, help="HTTP port (0: any free port)")
parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
parser.add_argument("--grpc_port", type=int, default=None, help="also serve the V2 gRPC protocol on this port")
parser.add_argument("--workers", type=int, default=1, help="accepted for KServe compatibility; one process serves")
parser.add_argument("--max_threads", type=int, default=None, help="threads per model for sync steps")
parser.add_argument("--model_name", default="model", help="the name the model is served under")
parser.add_argument("--predictor_host", default=None, help="HOST:PORT of the predictor a transformer forwards to")
parser.add_argument("--protocol", default=None, help="deprecated: --predictor_protocol")
parser.add_argument("--predictor_protocol", default="v1", help="v1 or v2: how to talk to the predictor")
parser.add_argument("--predictor_use_ssl", type=_strtobool, default=False, help="reach the predictor over https")
parser.add_argument("--predictor_request_timeout_seconds", type=float, default=600, help="predictor call timeout")
parser.add_argument("--predictor_request_retries", type=int, default=0, help="retries of a failed connection")
parser.add_argument("--enable_predictor_health_check", action="store_true",
                    help="accepted for KServe compatibility (readiness is the transformer's own)")


class ModelServer:
    """KServe's `kserve.ModelServer`, for scripts that end in `ModelServer().start([MyModel("name")])`.

    Options not passed to the constructor come from the command line (`parser`'s flags), as in KServe;
    `--predictor_host` makes every model that does not override `predict` forward to that predictor.
    """

    def __init__(self, http_port: int | None = None, host: str | None = None, grpc_port: int | None = None,
                 model_threads: int | None = None, predictor_config: PredictorConfig | None = None) -> None:
        flags, _ = parser.parse_known_args()
        self.http_port = flags.http_port if http_port is None else http_port
        self.host = host or flags.host
        self.grpc_port = flags.grpc_port if grpc_port is None else grpc_port
        self.model_threads = model_threads or flags.max_threads
        if predictor_config is None and flags.predictor_host:
            try:
                predictor_config = PredictorConfig(
                    flags.predictor_host, flags.protocol or flags.predictor_protocol, flags.predictor_use_ssl,
                    flags.predictor_request_timeout_seconds, flags.predictor_request_retries,
                    flags.enable_predictor_health_check)
            except ValueError as exc:
                raise SystemExit(f"error: {exc}") from None
        set_process_config(predictor_config)

    def start(self, models: list[Model]) -> None:
        """Serve `models` until interrupted; a port in use or a model that cannot load ends with one line."""
        metrics = Metrics()
        repository = ModelRepository(metrics, self.model_threads)
        try:
            for model in models:
                repository.add(model)
            sock = bind(self.host, self.http_port)
        except (ServeError, ModelLoadError) as exc:
            raise SystemExit(f"error: {exc}") from None
        url_host = f"[{self.host}]" if ":" in self.host else self.host
        grpc_server = None
        if self.grpc_port is not None:
            from flowdeck.serving.grpc import GRPCServer

            grpc_server = GRPCServer(repository, metrics, self.host, self.grpc_port, MAX_BODY_BYTES)

        def ready() -> None:
            grpc_address = f", gRPC: {url_host}:{grpc_server.port}" if grpc_server is not None else ""
            print(f"serving {', '.join(repository.names())} at http://{url_host}:{sock.getsockname()[1]}"
                  f"{grpc_address}", flush=True)

        previous = {signum: signal.signal(signum, _ignore) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            server = _Server(_config(ServingApp(repository, metrics)), ready, grpc_server)
            server.run(sockets=[sock])
            if server.error is not None:
                raise SystemExit(f"error: {server.error}")
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            sock.close()
