"""`PipelineRun`: a pipeline run as a resource, for `flowdeck apply -f run.yaml`.

    apiVersion: pipelines.flowdeck.dev/v1alpha1
    kind: PipelineRun
    metadata: {name: nightly-train}
    spec:
      pipelineRef: {name: train, version: v2}   # an uploaded pipeline (newest version when omitted)
      # or pipelineSpec: {...}                  # a compiled pipeline (IR), inline
      parameters: {epochs: 3}
      experiment: nightly                       # created when missing ("Default" when omitted); not archived

Its controller starts one run through the control plane's run controller and mirrors the run's state
into conditions (Created, Running, Succeeded or Failed) and `status.runId`; logs are the run's task
logs; deleting the resource terminates the run. Changing the spec starts a new run (the previous one
is terminated if it still runs).

Each run records the resource that started it (`runs.owner`: kind, uid and generation), so a control
plane killed between starting the run and recording `status.runId` finds that run again on restart
instead of starting a second one. Only the control plane writes that column: no API caller can make
a resource adopt a run of theirs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from flowdeck.resources.kinds import Kind, KindContext
from flowdeck.resources.loader import ResourceError
from flowdeck.resources.model import Resource, store_namespace

if TYPE_CHECKING:
    from flowdeck.store import RunRow, Store

API_VERSION = "pipelines.flowdeck.dev/v1alpha1"

#: How often an unfinished run's state is read back into the resource's status.
POLL_SECONDS = 0.5

_TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED")


class PipelineRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The pipeline's name (or display name) as uploaded, in the resource's namespace.
    name: str = Field(min_length=1)
    #: A version's name or id; the newest version when omitted.
    version: str | None = None


class PipelineRunSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: A compiled pipeline (the KFP IR), or `{pipeline_spec, platform_spec}`.
    pipelineSpec: dict[str, Any] | None = None
    pipelineRef: PipelineRef | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    #: The experiment (by name) the run belongs to, created when missing; the namespace's "Default" if omitted.
    experiment: str | None = None

    @field_validator("pipelineSpec")
    @classmethod
    def _valid_pipeline(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _load(value)
        return value

    @field_validator("parameters")
    @classmethod
    def _valid_parameters(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        inline = info.data.get("pipelineSpec")
        if inline is not None:
            from flowdeck.pipelines.api import prepare_arguments
            from flowdeck.pipelines.errors import PipelineError

            try:
                prepare_arguments(_load(inline), value)
            except PipelineError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> PipelineRunSpec:
        if (self.pipelineSpec is None) == (self.pipelineRef is None):
            raise ValueError("give exactly one of pipelineSpec (a compiled pipeline) and pipelineRef "
                             "(an uploaded pipeline)")
        return self


def _load(spec: dict[str, Any]) -> Any:
    from flowdeck.pipelines.errors import PipelineError
    from flowdeck.pipelines.spec import load_pipeline

    try:
        return load_pipeline(spec)
    except PipelineError as exc:
        raise ValueError(str(exc).removeprefix("<dict>: ")) from None


# -- controller ------------------------------------------------------------------------------------
def reconcile(ctx: KindContext, resource: Resource) -> float | None:
    """Start the run of the current generation once, then mirror its state."""
    status = resource.status
    if status.observedGeneration not in (None, resource.metadata.generation):
        previous = getattr(status, "runId", None)
        if previous:
            _stop_run(ctx, previous)
            ctx.event(resource, "SpecChanged", f"the spec changed: run {previous} is replaced by a new run")
        resource.status = status = type(status)()
    run_id = getattr(status, "runId", None)
    if run_id is None:
        if status.is_true("Failed"):
            return None  # this generation could not start; a changed spec tries again
        run_id = _find_run(ctx.store, _owner(resource)) or _start_run(ctx, resource)
        if run_id is None:
            return None
        status.runId = run_id
    from flowdeck.store import RunNotFound

    try:
        run = ctx.store.get_run(run_id)
    except RunNotFound:
        _transition(ctx, resource, "Failed", "RunDeleted", f"run {run_id} was deleted")
        return None
    _mirror(ctx, resource, run)
    return None if run.state in _TERMINAL else POLL_SECONDS


def _start_run(ctx: KindContext, resource: Resource) -> str | None:
    """Start the resource's run; None (with the resource Failed) when it cannot start."""
    from flowdeck.pipelines.errors import PipelineError
    from flowdeck.pipelines.references import run_experiment
    from flowdeck.store.catalog import StateConflict

    spec = PipelineRunSpec.model_validate(resource.spec)
    namespace = store_namespace(resource.metadata.namespace)
    try:
        if spec.pipelineRef is not None:
            pipeline_spec, pipeline_id, version_id = _referenced(ctx.store, namespace, spec.pipelineRef)
        else:
            pipeline_spec, pipeline_id, version_id = spec.pipelineSpec or {}, None, None
        experiment = run_experiment(ctx.store, namespace=namespace, name=spec.experiment)
        run_id = ctx.runs.create_run(
            pipeline_spec=pipeline_spec, parameters=spec.parameters, display_name=resource.metadata.name,
            namespace=namespace, experiment_id=experiment.id, owner=_owner(resource),
            pipeline_id=pipeline_id, pipeline_version_id=version_id)
    except (PipelineError, LookupError, StateConflict) as exc:
        reason = ("PipelineNotFound" if isinstance(exc, LookupError)
                  else "ExperimentArchived" if isinstance(exc, StateConflict) else "InvalidPipeline")
        _transition(ctx, resource, "Failed", reason, str(exc))
        return None
    resource.status.set_condition("Created", True, "RunCreated", f"run {run_id} created")
    ctx.event(resource, "RunCreated", f"created run {run_id}")
    return run_id


def _mirror(ctx: KindContext, resource: Resource, run: RunRow) -> None:
    """The run's state as conditions: Created, then Running, then Succeeded or Failed."""
    status = resource.status
    status.state = run.state
    status.startTime = _iso(run.started_at)
    status.completionTime = _iso(run.finished_at) if run.state in _TERMINAL else None
    status.set_condition("Created", True, "RunCreated", f"run {run.id} created")
    if run.state == "RUNNING":
        _transition(ctx, resource, "Running", "RunRunning", f"run {run.id} is running")
    elif run.state in _TERMINAL:
        if status.condition("Running") is not None:
            status.set_condition("Running", False, "RunEnded", f"run {run.id} ended {run.state}")
        if run.state == "SUCCEEDED":
            _transition(ctx, resource, "Succeeded", "RunSucceeded", f"run {run.id} succeeded")
        else:
            reason = "RunCanceled" if run.state == "CANCELED" else "RunFailed"
            _transition(ctx, resource, "Failed", reason, run.error or f"run {run.id} ended {run.state}")


def _transition(ctx: KindContext, resource: Resource, condition: str, reason: str, message: str) -> None:
    """Set a condition "True", with an event when that is news (a Warning for Failed)."""
    if resource.status.set_condition(condition, True, reason, message):
        ctx.event(resource, reason, message, warning=condition == "Failed")


def finalize(ctx: KindContext, resource: Resource) -> None:
    """Deleting a PipelineRun terminates its run (which stays in the run history)."""
    run_id = getattr(resource.status, "runId", None) or _find_run(ctx.store, _owner(resource))
    if run_id:
        _stop_run(ctx, run_id)


def _stop_run(ctx: KindContext, run_id: str) -> None:
    from flowdeck.store import RunNotFound

    try:
        ctx.runs.terminate(run_id)
    except RunNotFound:
        pass


def _owner(resource: Resource) -> str:
    """The `runs.owner` of the run this generation of the resource starts."""
    meta = resource.metadata
    return f"PipelineRun/{meta.uid}/{meta.generation or 1}"


def _find_run(store: Store, owner: str) -> str | None:
    from sqlalchemy import select

    from flowdeck.store import RunRow

    with store.engine.connect() as conn:
        return conn.execute(select(RunRow.id).where(RunRow.owner == owner).limit(1)).scalar()


def _referenced(store: Store, namespace: str, ref: PipelineRef) -> tuple[dict[str, Any], str, str]:
    """(pipeline spec, pipeline id, version id) of an uploaded pipeline; LookupError when there is none."""
    from flowdeck.pipelines.references import run_version
    from flowdeck.pipelines.spec import spec_document
    from flowdeck.store.catalog import NotFound, Pipelines

    try:
        pipeline = Pipelines(store).get_by_name(ref.name, namespace=namespace)
    except NotFound:
        raise LookupError(f"no pipeline named {ref.name!r} in namespace {namespace or 'default'} (upload it with "
                          "kfp.Client().upload_pipeline, or give spec.pipelineSpec)") from None
    try:
        version = run_version(store, pipeline_id=pipeline.id, version=ref.version)
    except NotFound:
        which = f"no version {ref.version!r}" if ref.version else "no versions"
        raise LookupError(f"pipeline {ref.name!r} has {which}") from None
    return spec_document(version.pipeline_spec, version.platform_spec), pipeline.id, version.id


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# -- logs and describe -----------------------------------------------------------------------------
def logs(ctx: KindContext, resource: Resource) -> Iterator[str]:
    """The run's task logs as `flowdeck logs RUN` prints them, after its notes (cached tasks, missing logs)."""
    import codecs

    from flowdeck.pipelines.tasklogs import find_logs
    from flowdeck.store import RunNotFound

    run_id = getattr(resource.status, "runId", None)
    if not run_id:
        raise ResourceError(f"{resource.ref} has not started a run yet")
    try:
        found = find_logs(ctx.store, ctx.store.get_run(run_id))
    except RunNotFound:
        raise ResourceError(f"run {run_id} of {resource.ref} was deleted") from None
    for note in found.notes:
        yield note + "\n"
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in found.chunks():
        yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


def describe(ctx: KindContext, resource: Resource) -> list[tuple[str, str]]:
    """The pipeline, its arguments, and the run with a count of its tasks' states."""
    spec = PipelineRunSpec.model_validate(resource.spec)
    if spec.pipelineRef is not None:
        pipeline = spec.pipelineRef.name + (f" (version {spec.pipelineRef.version})" if spec.pipelineRef.version
                                            else " (newest version)")
    else:
        inline = spec.pipelineSpec or {}
        inner = inline.get("pipeline_spec", inline)
        pipeline = f"{inner.get('pipelineInfo', {}).get('name', '?')} (inline pipelineSpec)"
    lines = [("Pipeline", pipeline)]
    if spec.parameters:
        lines.append(("Parameters", ", ".join(f"{k}={v!r}" for k, v in spec.parameters.items())))
    if spec.experiment:
        lines.append(("Experiment", spec.experiment))
    run_id = getattr(resource.status, "runId", None)
    if run_id:
        counts: dict[str, int] = {}
        for task in ctx.store.list_tasks(run_id):
            counts[task.state] = counts.get(task.state, 0) + 1
        state = getattr(resource.status, "state", None) or "?"
        tasks = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none yet"
        lines += [("Run", f"{run_id} ({state})"), ("Tasks", tasks)]
    return lines


PIPELINE_RUN = Kind(
    kind="PipelineRun",
    api_versions=(API_VERSION,),
    plural="pipelineruns",
    short_names=("pr", "plr"),
    spec_model=PipelineRunSpec,
    reconcile=reconcile,
    finalize=finalize,
    logs=logs,
    describe=describe,
    columns=(("RUN", "status.runId"),),
)
