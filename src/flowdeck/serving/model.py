"""`Model`, the class a served model is (KServe's `kserve.Model`, same methods), and the repository of them.

A KServe custom model ports by changing its import to `from flowdeck.serving import Model`: `load`
sets `ready`, `preprocess -> predict -> postprocess` run per request, and each of them may be a plain
or an `async def` method. Unlike KServe, plain (sync) methods never run on the event loop: they run on
the model's own small thread pool, so a slow predict stalls neither health checks nor other models.
Consecutive sync steps share one trip to the pool, and steps a model does not override are skipped.

A thread hand-off costs ~50-70 µs, as much as a small sklearn predict itself. So once a model has
answered `INLINE_AFTER` requests and its sync steps take under `inline_limit_s` (1 ms) on a moving
average, they run on the event loop; a slow call lifts the average and sends them back to the threads
until it has decayed. A slow model never runs on the loop, and health checks wait at most for a rare
slow call of a fast one.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from flowdeck.serving.errors import ServingError, model_not_found, model_not_ready

if TYPE_CHECKING:
    from flowdeck.serving.batching import BatchConfig, Batcher
    from flowdeck.serving.metrics import Metrics
    from flowdeck.serving.predictor import PredictorConfig

Headers = dict[str, str]

#: Calls a model's sync steps make on its threads before they may run on the event loop.
INLINE_AFTER = 20
#: Weight of the newest call in the moving average of the sync steps' duration.
_AVERAGE_WEIGHT = 0.1


class Model:
    """A model the server answers for. Override `load` and `predict`; the other steps are optional."""

    #: The model's version for `/v2/models/{name}/versions/{version}` (None: the model is not versioned).
    version: str | None = None
    #: V2 metadata `platform`, e.g. `sklearn_joblib` or `onnx_onnxv1` (informational).
    platform: str = ""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready = False

    def load(self) -> bool:
        """Read the model's artifacts; set `ready` once it can answer."""
        self.ready = True
        return self.ready

    def preprocess(self, payload: Any, headers: Headers | None = None) -> Any:
        """Turn the decoded request (a dict under V1, an `InferRequest` under V2) into predict's input."""
        return payload

    @property
    def predictor_config(self) -> PredictorConfig | None:
        """Where the default `predict` forwards (a transformer's predictor): the legacy `self.predictor_host`
        attribute with `self.protocol`, else what `ModelServer` was given with `--predictor_host`."""
        from flowdeck.serving.predictor import PredictorConfig, process_config

        host = getattr(self, "predictor_host", None)
        if not host:
            return process_config()
        try:
            return PredictorConfig(host, getattr(self, "protocol", None) or "v1")
        except ValueError as exc:
            raise ServingError(501, f"model '{self.name}': {exc}") from None

    async def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        """Answer one request: a dict under V1; under V2 an `InferResponse`, `Tensor`s or numpy arrays.

        Not overridden, it forwards to the predictor (`predictor_config`), as a KServe transformer's does."""
        config = self.predictor_config
        if config is None:
            raise ServingError(501, f"model '{self.name}' does not implement predict (and has no predictor_host "
                                    "to forward to)")
        client = self.__dict__.get("_predictor_client")
        if client is None or client.config != config:
            from flowdeck.serving.predictor import PredictorClient

            client = self.__dict__["_predictor_client"] = PredictorClient(config)
        return await client.predict(self.name, payload, headers)

    def postprocess(self, result: Any, headers: Headers | None = None) -> Any:
        """Turn predict's result into the response."""
        return result

    def explain(self, payload: Any, headers: Headers | None = None) -> Any:
        """Explain a prediction (V1 `:explain`); models without an explainer answer 501."""
        raise ServingError(501, f"model '{self.name}' has no explainer")

    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 metadata for the inputs: `[{"name", "datatype", "shape"}]` (-1 for variable dimensions)."""
        return []

    def get_output_types(self) -> list[dict[str, Any]]:
        """V2 metadata for the outputs, as `get_input_types`."""
        return []

    def unload(self) -> None:
        """Release what `load` acquired; called when the model is unloaded or the server stops."""
        self.ready = False


def _overridden(model: Model, method: str) -> bool:
    return getattr(type(model), method) is not getattr(Model, method)


Step = Callable[..., Any]


class ModelRunner:
    """Runs one model's request pipeline: async steps on the loop, runs of sync steps on the model's pool."""

    def __init__(self, model: Model, metrics: Metrics | None = None, workers: int | None = None,
                 batching: BatchConfig | None = None, inline_limit_s: float = 0.001) -> None:
        self.model = model
        self.inline_limit_s = inline_limit_s
        self._sync_calls = 0
        self._sync_seconds = 0.0  # moving average of the sync steps' duration
        self._inline = False
        self.executor = ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1),
                                           thread_name_prefix=f"model-{model.name}")
        self.metrics = metrics
        self.batcher: Batcher | None = None
        if batching is not None and batching.max_batch_size > 1:
            from flowdeck.serving.batching import Batcher, batch_function

            function = batch_function(model)
            if function is not None:
                self.batcher = Batcher(function, self.executor, batching, metrics and metrics.batch_size(model.name))
        self._pipelines = {verb: self._plan(verb) for verb in ("predict", "explain")}

    def _plan(self, verb: str) -> list[tuple[bool, list[tuple[str, Step]]]]:
        """The request pipeline as groups of (is_async, [(stage, step)]): sync neighbours share one group."""
        steps: list[tuple[str, Step]] = []
        if _overridden(self.model, "preprocess"):
            steps.append(("preprocess", self.model.preprocess))
        if verb == "predict" and self.batcher is not None:
            steps.append(("predict", self._batched_predict))
        else:
            steps.append((verb, getattr(self.model, verb)))
        if _overridden(self.model, "postprocess"):
            steps.append(("postprocess", self.model.postprocess))
        groups: list[tuple[bool, list[tuple[str, Step]]]] = []
        for stage, step in steps:
            is_async = inspect.iscoroutinefunction(step)
            if groups and not is_async and not groups[-1][0]:
                groups[-1][1].append((stage, step))
            else:
                groups.append((is_async, [(stage, step)]))
        return groups

    async def _batched_predict(self, payload: Any, headers: Headers | None = None) -> Any:
        assert self.batcher is not None
        rows = self.model.batch_input(payload)  # type: ignore[attr-defined]
        return self.model.batch_output(payload, await self.batcher.submit(rows))  # type: ignore[attr-defined]

    async def __call__(self, payload: Any, headers: Headers | None, verb: str = "predict") -> Any:
        """Run the model on one decoded request and return what its last step returned."""
        if not self.model.ready:
            raise model_not_ready(self.model.name)
        value = payload
        for is_async, steps in self._pipelines[verb]:
            if is_async:
                for stage, step in steps:
                    started = time.perf_counter()
                    value = await step(value, headers)
                    self._observe(stage, started)
            else:
                if self._inline:
                    value, seconds = self._run_sync(steps, value, headers)
                else:
                    value, seconds = await asyncio.get_running_loop().run_in_executor(
                        self.executor, self._run_sync, steps, value, headers)
                self._sync_calls += 1
                self._sync_seconds += (seconds - self._sync_seconds) * _AVERAGE_WEIGHT
                self._inline = self._sync_calls >= INLINE_AFTER and self._sync_seconds <= self.inline_limit_s
        return value

    def _run_sync(self, steps: list[tuple[str, Step]], value: Any, headers: Headers | None) -> tuple[Any, float]:
        """Run sync steps in order; returns the last one's result and how long they took together."""
        first = time.perf_counter()
        for stage, step in steps:
            started = time.perf_counter()
            value = step(value, headers)
            self._observe(stage, started)
        return value, time.perf_counter() - first

    def _observe(self, stage: str, started: float) -> None:
        if self.metrics is not None:
            self.metrics.stage_seconds(self.model.name, stage).observe(time.perf_counter() - started)

    def close(self) -> None:
        """Stop the model's threads (after the requests in flight) and let it release its resources."""
        if self.batcher is not None:
            self.batcher.close()
        self.executor.shutdown(wait=False)
        self.model.unload()


class ModelRepository:
    """The models this server answers for, by name; each may also have a factory to (re)load it from."""

    def __init__(self, metrics: Metrics | None = None, workers: int | None = None,
                 batching: BatchConfig | None = None) -> None:
        self.metrics = metrics
        self.workers = workers
        self.batching = batching
        self._runners: dict[str, ModelRunner] = {}
        self._factories: dict[str, Callable[[], Model]] = {}
        self._errors: dict[str, str] = {}

    def add(self, model: Model, factory: Callable[[], Model] | None = None) -> None:
        """Serve `model` (loading it first if it is not ready); `factory` makes a fresh one for a repository load."""
        if not model.ready:
            model.load()
        previous = self._runners.get(model.name)
        self._runners[model.name] = ModelRunner(model, self.metrics, self.workers, self.batching)
        if factory is not None:
            self._factories[model.name] = factory
        self._errors.pop(model.name, None)
        if previous is not None:
            previous.close()

    def get(self, name: str) -> ModelRunner:
        """The runner for a loaded model; 404 for a name never heard of, 503 for one known but not loaded."""
        runner = self._runners.get(name)
        if runner is not None:
            return runner
        if name in self._factories:
            raise ServingError(503, f"model '{name}' is not loaded (POST /v2/repository/models/{name}/load "
                                    "loads it)")
        raise model_not_found(name)

    def names(self) -> list[str]:
        return list(self._runners)

    def is_ready(self) -> bool:
        """Whether every loaded model is ready (the server's readiness)."""
        return all(runner.model.ready for runner in self._runners.values())

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """The repository index of the model repository extension: every model known, loaded or not."""
        entries = []
        for name in dict.fromkeys([*self._runners, *self._factories]):
            runner = self._runners.get(name)
            ready = runner is not None and runner.model.ready
            if ready_only and not ready:
                continue
            reason = "" if ready else self._errors.get(name, "unloaded" if runner is None else "not ready")
            entries.append({"name": name, "state": "READY" if ready else "UNAVAILABLE", "reason": reason})
        return entries

    async def load(self, name: str) -> None:
        """(Re)load a model from its factory, off the event loop; the old one serves until the new one is ready."""
        factory = self._factories.get(name)
        if factory is None:
            if name in self._runners:
                return
            raise model_not_found(name)
        try:
            model = await asyncio.get_running_loop().run_in_executor(None, self._make, factory)
        except Exception as exc:
            self._errors[name] = str(exc)
            raise ServingError(400, f"failed to load model '{name}': {exc}") from None
        self.add(model)

    @staticmethod
    def _make(factory: Callable[[], Model]) -> Model:
        model = factory()
        if not model.ready:
            model.load()
        return model

    def unload(self, name: str) -> None:
        """Stop serving a model; with a factory it can be loaded again."""
        runner = self._runners.pop(name, None)
        if runner is None:
            raise model_not_found(name) if name not in self._factories else ServingError(
                400, f"model '{name}' is not loaded")
        runner.close()

    def close(self) -> None:
        for name in list(self._runners):
            self._runners.pop(name).close()
