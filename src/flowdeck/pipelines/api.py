"""The Python API for running pipelines: `run_pipeline`, used by the CLI and by users directly.

It loads and validates the pipeline and its arguments first, so bad input fails before any run is
recorded; then records the run, drives the engine on a local runtime, and returns one document
describing the result (the same one `flowdeck run --json` prints).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flowdeck.artifacts import is_local
from flowdeck.config import Settings, get_settings
from flowdeck.pipelines.engine import Engine, Listener, RunOptions, RunSuspended
from flowdeck.pipelines.errors import PipelineError
from flowdeck.pipelines.executors import EXECUTOR_MODULE, artifact_type
from flowdeck.pipelines.model import PreviousTask, new_id
from flowdeck.pipelines.spec import Pipeline, load_pipeline
from flowdeck.pipelines.values import coerce_arguments
from flowdeck.runtime import LocalRuntime
from flowdeck.runtime.quotas import QuotaGate
from flowdeck.store import RunRow, Store, open_store
from flowdeck.store.store import as_utc

#: Imported by the fork server after kfp's executor: runs one trivial component so tasks fork warm.
WARM_EXECUTOR_MODULE = "flowdeck.pipelines.warm_executor"


def run_pipeline(
    pipeline: Any,
    arguments: dict[str, Any] | None = None,
    *,
    enable_caching: bool = True,
    settings: Settings | None = None,
    listener: Listener | None = None,
) -> dict[str, Any]:
    """Run a pipeline to completion and describe the result.

    `pipeline` is a `@dsl.pipeline` function, a path to a compiled YAML or a Python file
    (`file.py` or `file.py:function`), or a parsed pipeline spec dict. Returns
    `{"run_id", "state", "outputs", "tasks"}`. Raises `PipelineError` for invalid pipelines or
    arguments (no run is created); Ctrl-C cancels the run and re-raises `KeyboardInterrupt`.
    """
    settings = settings or get_settings()
    if settings.runtime != "local":
        raise PipelineError(f"runtime {settings.runtime!r} cannot run pipelines yet; use FLOWDECK_RUNTIME=local")
    if not is_local(settings.resolved_artifact_root):
        raise PipelineError(f"artifact root {settings.resolved_artifact_root}: the local runtime writes artifacts to "
                            "a local directory; set FLOWDECK_ARTIFACT_ROOT to a path")
    runtime = LocalRuntime(preload=(EXECUTOR_MODULE, WARM_EXECUTOR_MODULE), log_dir=str(settings.logs_dir))
    runtime.warm_up()  # its imports overlap with loading the pipeline and opening the store
    try:
        loaded = load_pipeline(pipeline)
        parameters, artifacts = prepare_arguments(loaded, arguments or {})
        store = open_store(settings.resolved_database_url)
        try:
            store.fail_orphaned_runs()
            return execute(loaded, parameters, artifacts, store=store, runtime=runtime, settings=settings,
                           enable_caching=enable_caching, listener=listener)
        finally:
            store.close()
    finally:
        runtime.close()


def prepare_arguments(pipeline: Pipeline, arguments: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split and type-check user arguments into parameters and root artifact inputs."""
    definitions = pipeline.root.get("inputDefinitions") or {}
    artifact_definitions = definitions.get("artifacts") or {}
    parameters = {k: v for k, v in arguments.items() if k not in artifact_definitions}
    artifacts: dict[str, list[dict[str, Any]]] = {}
    for name, value in arguments.items():
        if name not in artifact_definitions:
            continue
        if not isinstance(value, str) or not value:
            raise PipelineError(f"artifact input {name!r} takes a path or URI")
        uri = value.removeprefix("file://")
        if is_local(uri):
            if not os.path.exists(uri):
                raise PipelineError(f"artifact input {name!r}: {uri}: no such file")
            uri = os.path.abspath(uri)
        artifacts[name] = [{"name": name, "uri": uri, "metadata": {},
                            "type": artifact_type(artifact_definitions[name])}]
    typed = coerce_arguments(parameters, definitions)
    missing = [
        name for name, definition in artifact_definitions.items()
        if name not in artifacts and not definition.get("isOptional")
    ]
    if missing:
        raise PipelineError(f"missing artifact input {', '.join(repr(m) for m in missing)} (a path or URI)")
    return typed, artifacts


def execute(pipeline: Pipeline, parameters: dict[str, Any], artifacts: dict[str, Any], *, store: Store,
            runtime: LocalRuntime, settings: Settings, enable_caching: bool = True,
            listener: Listener | None = None) -> dict[str, Any]:
    """Record a run of an already validated pipeline and drive it to the end."""
    run_id = record_run(store, pipeline, parameters, artifacts, enable_caching=enable_caching)
    run_started = getattr(listener, "run_started", None)
    if run_started is not None:
        run_started(run_id)
    engine = new_engine(store.get_run(run_id), pipeline, parameters, artifacts, store=store, runtime=runtime,
                        settings=settings, listener=listener)
    drive(engine, store)
    return describe_run(store, run_id)


def record_run(store: Store, pipeline: Pipeline, parameters: dict[str, Any], artifacts: dict[str, Any], *,
               enable_caching: bool = True, display_name: str | None = None, **fields: Any) -> str:
    """Record a new PENDING run of `pipeline` and return its id; `fields` are further run columns."""
    run_id = new_id()
    created = datetime.now(timezone.utc)
    store.create_run(
        id=run_id, pipeline_name=pipeline.name,
        display_name=display_name or f"{pipeline.name} {created:%Y-%m-%d %H-%M-%S}", state="PENDING",
        pipeline_spec=pipeline.spec, platform_spec=pipeline.platform_spec or None,
        arguments=_jsonable_arguments(parameters, artifacts), enable_caching=enable_caching,
        created_at=created, **fields,
    )
    return run_id


def new_engine(run: RunRow, pipeline: Pipeline, parameters: dict[str, Any], artifacts: dict[str, Any], *,
               store: Store, runtime: LocalRuntime, settings: Settings, listener: Listener | None = None,
               previous: dict[str, PreviousTask] | None = None, quota: QuotaGate | None = None,
               extra_env: dict[str, str] | None = None) -> Engine:
    """An engine for the recorded `run` (`previous`: resume it, see `Engine`; `quota`: admit its workloads)."""
    options = RunOptions(
        run_id=run.id, display_name=run.display_name, artifact_root=settings.resolved_artifact_root,
        logs_dir=Path(settings.logs_dir), venv_dir=Path(settings.venv_cache_dir),
        enable_caching=run.enable_caching, max_parallel=settings.max_parallel_tasks, namespace=run.namespace,
        extra_env=dict(extra_env or {}),
    )
    return Engine(pipeline, parameters, store, runtime, options, listener, root_artifacts=artifacts,
                  previous=previous, quota=quota)


def drive(engine: Engine, store: Store) -> str:
    """Run `engine` to the end and record how its run ended; returns the final state.

    Ctrl-C or a cancel request records CANCELED and re-raises KeyboardInterrupt; a suspended run
    (RunSuspended) is left as it is, to be resumed; an engine error records FAILED and re-raises.
    """
    run_id = engine.options.run_id
    try:
        state = engine.run()
    except KeyboardInterrupt as interrupt:
        _finish_run(store, run_id, "CANCELED", {}, str(interrupt) or "canceled by the user (Ctrl-C)")
        raise
    except RunSuspended:
        raise
    except BaseException as exc:
        _finish_run(store, run_id, "FAILED", {}, f"engine error: {type(exc).__name__}: {exc}")
        raise
    _finish_run(store, run_id, state, engine.public_outputs(), engine.run_error())
    return state


def _finish_run(store: Store, run_id: str, state: str, outputs: dict[str, Any], error: str | None) -> None:
    values: dict[str, Any] = {"state": state, "outputs": outputs, "finished_at": datetime.now(timezone.utc)}
    if error:
        values["error"] = error
    store.update_run(run_id, **values)


def _jsonable_arguments(parameters: dict[str, Any], artifacts: dict[str, Any]) -> dict[str, Any]:
    result = dict(parameters)
    for name, items in artifacts.items():
        result[name] = items[0]["uri"]
    return result


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


def describe_run(store: Store, run_id: str) -> dict[str, Any]:
    """The run document: id, state, outputs and every task with its state, cache hit and attempts."""
    run = store.get_run(run_id)
    tasks = store.list_tasks(run.id)
    return {
        "run_id": run.id,
        "pipeline": run.pipeline_name,
        "display_name": run.display_name,
        "state": run.state,
        "error": run.error,
        "outputs": run.outputs or {},
        "tasks": [
            {"name": t.name, "display_name": t.display_name, "path": t.path, "kind": t.kind, "state": t.state,
             "cached": t.cached, "cached_from": (t.outputs or {}).get("cached_from"),
             "attempts": t.attempts, "error": t.error,
             "started_at": _iso(t.started_at), "finished_at": _iso(t.finished_at)}
            for t in tasks
        ],
    }
