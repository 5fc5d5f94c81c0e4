"""The local Katib: runs an Experiment's trials as processes, asks optuna for their parameters, and
decides when the experiment ends.

Each experiment has an optuna study (sampler and pruner from `algorithms`), kept in a journal file
under `$FLOWDECK_HOME/tuning/` (`journal`), so its history survives a restart of `flowdeck up`. A trial is one
`study.ask()`: its parameter assignments (strings, as Katib's) are substituted into the trial
template (`specs.render_trial`), and the template's primary container runs as a process forked from
the warm training runtime, with `KATIB_TRIAL_NAME`, `FLOWDECK_METRICS_FILE` (for Push metrics) and the
profile in its environment. Up to `parallelTrialCount` trials run at once; each passes its profile's
quota like any workload.

Metrics come from the trial's output (StdOut, Katib's `name=value` filter), a file it writes (File,
TEXT or JSON lines) or `flowdeck.tuning.report_metrics` (Push). While a trial runs, the values of its
objective metric are reported to optuna as intermediate values, one step each, so `medianstop` and
`hyperband` can stop it early (`EarlyStopped`). When it ends, the objective's value under its metric
strategy (`min`, `max` or `latest`) is told to the study; a trial that succeeded without reporting
its objective is `MetricsUnavailable`, one that exited non-zero is `Failed`.

The experiment ends as Katib's does, checked in this order: the goal is reached (Succeeded,
`GoalReached`); `maxFailedTrialCount` failed or metrics-less trials (Failed); `maxTrialCount`
trials completed (Succeeded, `MaxTrialsReached`); the search space is exhausted (grid) with no trial
running (Succeeded, `SuggestionEndReached`). Trials still running then are stopped (`Killed`).

Trials live in the experiment's status (`trialStatuses`), with Katib's counters and name lists and
`currentOptimalTrial`. After a restart, trials that were running are started again with the same
assignments (the same optuna trial), so none is lost or repeated.
"""

from __future__ import annotations

import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from flowdeck.resources.kinds import KindContext
from flowdeck.resources.model import Resource, api_namespace
from flowdeck.runtime import Runtime, Workload, WorkloadHandle
from flowdeck.runtime.commands import LAUNCH_MODULE, local_command
from flowdeck.runtime.quotas import Demand, container_amounts
from flowdeck.tuning import metrics as metrics_module
from flowdeck.tuning.specs import ExperimentSpec, render_trial

if TYPE_CHECKING:
    import optuna

#: How often a running experiment looks at its trials' metrics when no exit woke it (for early stopping).
WATCH_SECONDS = 0.5
#: Trial states that count as completed (Katib: succeeded, failed, killed, early stopped, metrics unavailable).
COMPLETED = ("Succeeded", "Failed", "Killed", "EarlyStopped", "MetricsUnavailable")
_LISTS = {"Succeeded": "succeededTrialList", "Failed": "failedTrialList", "Killed": "killedTrialList",
          "EarlyStopped": "earlyStoppedTrialList", "MetricsUnavailable": "metricsUnavailableTrialList",
          "Running": "runningTrialList", "Pending": "pendingTrialList"}
_COUNTERS = {"Succeeded": "trialsSucceeded", "Failed": "trialsFailed", "Killed": "trialsKilled",
             "EarlyStopped": "trialsEarlyStopped", "MetricsUnavailable": "trialMetricsUnavailable",
             "Running": "trialsRunning", "Pending": "trialsPending"}


@dataclass
class TrialRun:
    """A trial's process in this control plane (None for a trial that is a training job), and how many of its
    objective values the pruner has seen."""

    handle: WorkloadHandle | None
    steps_reported: int = 0


@dataclass
class ExperimentState:
    study: optuna.Study
    runs: dict[str, TrialRun]
    #: Gives a finished trial's quota back.
    release: Callable[[str], None] | None = None
    #: Reconciles the experiment again (one callable, so a quota waiting list holds it once).
    wake: Callable[[], None] = lambda: None


_lock = threading.Lock()
_states: WeakKeyDictionary[Runtime, dict[str, ExperimentState]] = WeakKeyDictionary()


def _runtime(ctx: KindContext) -> Runtime:
    runtime_for = getattr(ctx.runs, "runtime_for", None)
    if runtime_for is None or getattr(ctx.runs, "runtime", None) is None:
        raise RuntimeError("the control plane's runtime is not running")
    return runtime_for("training", (LAUNCH_MODULE,))


def _state(ctx: KindContext, resource: Resource, spec: ExperimentSpec, runtime: Runtime) -> ExperimentState:
    uid = resource.metadata.uid or ""
    with _lock:
        state = _states.get(runtime, {}).get(uid)
    if state is not None:
        return state
    import optuna
    from optuna.storages import JournalStorage

    from flowdeck.tuning.algorithms import make_pruner, make_sampler
    from flowdeck.tuning.journal import StudyJournal

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = experiment_dir(ctx, resource) / f"study-{uid}.journal"  # a re-created experiment starts afresh
    study = optuna.create_study(
        study_name=uid, storage=JournalStorage(StudyJournal(path)), load_if_exists=True,
        sampler=make_sampler(spec.algorithm, spec.parameters), pruner=make_pruner(spec.algorithm, spec.earlyStopping),
        direction="minimize" if spec.objective.type == "minimize" else "maximize")
    if study.trials:  # a resumed study: a seeded sampler would replay the suggestions it already made
        study.sampler.reseed_rng()
    state = ExperimentState(study, {}, lambda trial_name: _release(ctx, resource, trial_name),
                            lambda: ctx.requeue(uid, 0.0))
    with _lock:
        _states.setdefault(runtime, {})[uid] = state
    return state


def experiment_dir(ctx: KindContext, resource: Resource) -> Path:
    path = ctx.settings.home / "tuning" / api_namespace(resource.metadata.namespace or "") / resource.metadata.name
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- reconcile ---------------------------------------------------------------------------------------------
def reconcile(ctx: KindContext, resource: Resource, spec: ExperimentSpec) -> float | None:
    """Observe the trials, end the experiment when Katib would, and start trials up to parallelTrialCount."""
    status = resource.status
    if status.is_true("Succeeded") or status.is_true("Failed"):
        return None
    runtime = _runtime(ctx)
    name = resource.metadata.name
    if status.condition("Created") is None:
        status.set_condition("Created", True, "ExperimentCreated", f"Experiment {name} is created")
        status.startTime = _stamp(time.time())
    try:
        state = _state(ctx, resource, spec, runtime)
    except ImportError:
        return _fail_early(ctx, resource, "tuning needs the tuning extra on the control plane: "
                                          "pip install 'flowdeck[tuning]'")
    except ValueError as exc:
        return _fail_early(ctx, resource, str(exc))
    records: list[dict[str, Any]] = list(getattr(status, "trialStatuses", None) or [])

    for record in records:
        if record["condition"] in ("Running", "Pending"):
            _observe(ctx, resource, spec, state, runtime, record)
            if "job" in record and record["condition"] in COMPLETED and not spec.trialTemplate.retain:
                _delete_job(ctx, resource, record)  # as Katib does unless the template says retain

    ended = _termination(spec, records, state)
    if ended is not None:
        return _end(ctx, resource, spec, state, runtime, records, *ended)

    active = [r for r in records if r["condition"] in ("Running", "Pending")]
    budget = (spec.maxTrialCount or 10**9) - len(records)
    while len(active) < spec.parallelTrialCount and budget > 0:
        trial_name = f"{name}-{secrets.token_hex(4)}"
        refused = _admit(ctx, resource, spec, state, trial_name)
        if refused is not None and refused.startswith("never"):
            return _end(ctx, resource, spec, state, runtime, records, "Failed", "ExperimentFailed",
                        f"a trial cannot run: {refused.removeprefix('never: ')}")
        if refused:
            break  # woken when quota frees
        record = _new_trial(ctx, resource, spec, state, runtime, trial_name)
        if record is None:
            _release(ctx, resource, trial_name)
            break  # the search space is exhausted
        records.append(record)
        active.append(record)
        budget -= 1
    if active:
        status.set_condition("Running", True, "ExperimentRunning", f"Experiment {name} is running")
    _write_status(resource, spec, records)
    return WATCH_SECONDS


def _fail_early(ctx: KindContext, resource: Resource, message: str) -> None:
    """The experiment cannot start at all (no optuna, settings it refuses): Failed, saying why."""
    resource.status.set_condition("Failed", True, "ExperimentFailed", message)
    resource.status.completionTime = _stamp(time.time())
    ctx.event(resource, "ExperimentFailed", message, warning=True)
    return None


def _end(ctx: KindContext, resource: Resource, spec: ExperimentSpec, state: ExperimentState, runtime: Runtime,
         records: list[dict[str, Any]], condition: str, reason: str, message: str) -> None:
    """End the experiment: trials still running are stopped (Killed), the condition and completion time set."""
    status = resource.status
    for record in records:
        if record["condition"] in ("Running", "Pending"):
            _stop(ctx, resource, state, runtime, record)
            _finish(state, record, "Killed", "ExperimentEnded", f"the experiment ended: {message}")
    status.set_condition("Running", False, reason, message)
    status.set_condition(condition, True, reason, message)
    status.completionTime = _stamp(time.time())
    ctx.event(resource, reason, message, warning=condition == "Failed")
    _write_status(resource, spec, records)
    return None


def _termination(spec: ExperimentSpec, records: list[dict[str, Any]],
                 state: ExperimentState) -> tuple[str, str, str] | None:
    """(condition, reason, message) when the experiment is over, in Katib's order; else None."""
    best = _best(spec, records)
    if best is not None and spec.objective.goal_reached(best["objective"]):
        return "Succeeded", "ExperimentGoalReached", \
            f"Experiment has succeeded because Objective goal has reached: {best['objective']:g} (trial {best['name']})"
    failed = sum(r["condition"] in ("Failed", "MetricsUnavailable") for r in records)
    if spec.maxFailedTrialCount is not None and failed > spec.maxFailedTrialCount:
        return "Failed", "ExperimentMaxFailedTrialsReached", \
            f"Experiment has failed because max failed count has reached: {failed} trials failed"
    completed = sum(r["condition"] in COMPLETED for r in records)
    if spec.maxTrialCount is not None and completed >= spec.maxTrialCount:
        return "Succeeded", "ExperimentMaxTrialsReached", \
            f"Experiment has succeeded because max trial count has reached: {completed} trials"
    active = any(r["condition"] in ("Running", "Pending") for r in records)
    if not active and records and state_exhausted(spec, state):
        return "Succeeded", "ExperimentSuggestionEndReached", \
            "Experiment has succeeded because the search space is exhausted"
    return None


def state_exhausted(spec: ExperimentSpec, state: ExperimentState) -> bool:
    from flowdeck.tuning.algorithms import exhausted

    return exhausted(state.study, spec.parameters)


def _best(spec: ExperimentSpec, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    scored = [r for r in records if r["condition"] == "Succeeded" and r.get("objective") is not None]
    if not scored:
        return None
    choose = max if spec.objective.type == "maximize" else min
    return choose(scored, key=lambda r: r["objective"])


# -- trials ------------------------------------------------------------------------------------------------
def _admit(ctx: KindContext, resource: Resource, spec: ExperimentSpec, state: ExperimentState,
           trial_name: str) -> str | None:
    """None when trial `trial_name` fits in its profile's quota; else "wait" (woken when quota frees), or
    "never: <why>" when one trial asks for more than the profile allows in all."""
    quota = getattr(ctx.runs, "quota", None)
    template = spec.trialTemplate.trialSpec
    if quota is None or template.get("kind") != "Job":
        return None  # a trial that is a training job passes the quota as that job
    containers = (((template.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}]
    wanted = spec.trialTemplate.primaryContainerName
    container = next((c for c in containers if wanted is None or c.get("name") == wanted), containers[0])
    demand = Demand(workloads=1.0, **container_amounts(container.get("resources")))
    admission = quota.try_admit(resource.metadata.namespace or "default", trial_name, demand, state.wake)
    if admission.admitted:
        return None
    if admission.never_fits:
        return f"never: {admission.reason}"
    ctx.event(resource, "Waiting", admission.reason or "waiting for quota")
    return "wait"


def _release(ctx: KindContext, resource: Resource, trial_name: str) -> None:
    quota = getattr(ctx.runs, "quota", None)
    if quota is not None:
        quota.release(resource.metadata.namespace or "default", trial_name)


def _new_trial(ctx: KindContext, resource: Resource, spec: ExperimentSpec, state: ExperimentState,
               runtime: Runtime, name: str) -> dict[str, Any] | None:
    from flowdeck.tuning.algorithms import exhausted, suggest

    if exhausted(state.study, spec.parameters):
        return None
    trial = state.study.ask()
    assignments = suggest(trial, spec.parameters)
    record = {"name": name, "optunaTrialId": trial._trial_id, "optunaTrialNumber": trial.number,
              "parameterAssignments": [{"name": key, "value": value} for key, value in assignments.items()],
              "condition": "Pending", "startTime": _stamp(time.time())}
    _launch(ctx, resource, spec, state, runtime, record)
    return record


def _launch(ctx: KindContext, resource: Resource, spec: ExperimentSpec, state: ExperimentState, runtime: Runtime,
            record: dict[str, Any]) -> None:
    """Start the trial's primary container as a process (again, after a restart: same assignments)."""
    namespace = resource.metadata.namespace or "default"
    assignments = {item["name"]: item["value"] for item in record["parameterAssignments"]}
    document = render_trial(spec, assignments, record["name"], namespace)
    trial_dir = experiment_dir(ctx, resource) / record["name"]
    if document["kind"] != "Job":
        _launch_job(ctx, resource, state, document, record, trial_dir)
        return
    container = _primary_container(document, spec)
    trial_dir.mkdir(parents=True, exist_ok=True)
    metrics_file = trial_dir / "metrics.jsonl"
    metrics_file.unlink(missing_ok=True)
    collected = _file_source(spec, record)
    if collected is not None:
        Path(collected).unlink(missing_ok=True)
    env = {item["name"]: str(item.get("value", "")) for item in container.get("env") or []}
    env.update(KATIB_TRIAL_NAME=record["name"], FLOWDECK_METRICS_FILE=str(metrics_file),
               FLOWDECK_NAMESPACE=api_namespace(namespace), PYTHONUNBUFFERED="1")
    log_path = trial_dir / "output.log"
    if log_path.exists():  # a relaunch: the killed run's output must not count for this one
        log_path.replace(trial_dir / "output.previous.log")
    workload = Workload(name=record["name"], command=local_command(container.get("command") or [],
                                                                   container.get("args") or []),
                        env=env, working_dir=container.get("workingDir"), namespace=api_namespace(namespace),
                        log_path=str(log_path), labels={"katib.kubeflow.org/experiment": resource.metadata.name,
                                                        "katib.kubeflow.org/trial": record["name"]})
    uid = resource.metadata.uid or ""

    def exited(_handle: WorkloadHandle, _code: int) -> None:
        ctx.requeue(uid, 0.0)

    state.runs[record["name"]] = TrialRun(runtime.start(workload, on_exit=exited))
    record["condition"] = "Running"


def _launch_job(ctx: KindContext, resource: Resource, state: ExperimentState, document: dict[str, Any],
                record: dict[str, Any], trial_dir: Path) -> None:
    """A trial that is a training job (PyTorchJob, TFJob, XGBoostJob, TrainJob): created as that resource,
    with the trial's environment in every container, and run by the training operator."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    metrics_file = trial_dir / "metrics.jsonl"
    metrics_file.unlink(missing_ok=True)
    env = [{"name": "KATIB_TRIAL_NAME", "value": record["name"]},
           {"name": "FLOWDECK_METRICS_FILE", "value": str(metrics_file)}]
    for container in _containers(document):
        given = container.get("env") or []
        container["env"] = [*given, *(item for item in env if item["name"] not in {g.get("name") for g in given})]
    labels = document["metadata"].setdefault("labels", {})
    labels.update({"katib.kubeflow.org/experiment": resource.metadata.name,
                   "katib.kubeflow.org/trial": record["name"]})
    ctx.resources.apply([document])
    state.runs[record["name"]] = TrialRun(None)
    record["job"] = {"kind": document["kind"], "name": record["name"]}
    record["condition"] = "Running"


def _containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container of a training job document (TrainJob: its trainer, which is the node's container)."""
    spec = document.get("spec") or {}
    if document["kind"] == "TrainJob":
        return [spec.setdefault("trainer", {})]
    replicas = next((value for key, value in spec.items() if key.endswith("ReplicaSpecs")), {}) or {}
    return [container for replica in replicas.values()
            for container in (((replica or {}).get("template") or {}).get("spec") or {}).get("containers") or []]


def _job_exit(ctx: KindContext, resource: Resource, record: dict[str, Any]) -> int | None:
    """A training-job trial's outcome as an exit code: 0 when it succeeded, 1 when it failed, None while it runs
    (a job that has disappeared counts as failed)."""
    job = ctx.resources.find(record["job"]["kind"], resource.metadata.namespace or "default", record["job"]["name"])
    if job is None:
        return 1
    if job.status.is_true("Succeeded") or job.status.is_true("Complete"):
        return 0
    return 1 if job.status.is_true("Failed") else None


def _job_output(ctx: KindContext, resource: Resource, record: dict[str, Any], trial_dir: Path) -> None:
    """Copy the job's primary replica's log (master-0, chief-0, node-0 or worker-0) to the trial's output.log."""
    try:
        text = "".join(ctx.resources.logs(record["job"]["kind"], resource.metadata.namespace or "default",
                                          record["job"]["name"]))
    except Exception:  # noqa: BLE001 - no logs yet: the output stays as it was
        return
    sections = {}
    for chunk in text.split("==> ")[1:]:
        header, _, body = chunk.partition("\n")
        sections[header.split(" ")[0]] = body
    for primary in ("master-0", "chief-0", "node-0", "worker-0"):
        if primary in sections:
            (trial_dir / "output.log").write_text(sections[primary])
            return


def _delete_job(ctx: KindContext, resource: Resource, record: dict[str, Any]) -> None:
    job = ctx.resources.find(record["job"]["kind"], resource.metadata.namespace or "default", record["job"]["name"])
    if job is not None:
        ctx.request_deletion(job)


def _primary_container(document: dict[str, Any], spec: ExperimentSpec) -> dict[str, Any]:
    pod = ((document.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = pod.get("containers") or []
    wanted = spec.trialTemplate.primaryContainerName
    for container in containers:
        if wanted is None or container.get("name") == wanted:
            return container
    return containers[0]


def _file_source(spec: ExperimentSpec, record: dict[str, Any]) -> str | None:
    collector = spec.metricsCollectorSpec
    if collector.collector.kind != "File":
        return None
    path = collector.source.fileSystemPath.path if collector.source and collector.source.fileSystemPath else None
    return (path or "/var/log/katib/metrics.log").replace("${trialSpec.Name}", record["name"])


def _observations(ctx: KindContext, resource: Resource, spec: ExperimentSpec,
                  record: dict[str, Any]) -> list[metrics_module.Observation]:
    names = spec.objective.metric_names()
    collector = spec.metricsCollectorSpec
    kind = collector.collector.kind
    trial_dir = experiment_dir(ctx, resource) / record["name"]
    filters = collector.filters() or [metrics_module.DEFAULT_FILTER]
    if kind == "Push":
        return metrics_module.parse_json_lines(_read(trial_dir / "metrics.jsonl"), names)
    if kind == "File":
        text = _read(Path(_file_source(spec, record) or ""))
        file_format = collector.source.fileSystemPath.format if collector.source and \
            collector.source.fileSystemPath else "TEXT"
        if file_format == "JSON":
            return metrics_module.parse_json_lines(text, names)
        return metrics_module.parse_text(text, names, filters)
    return metrics_module.parse_text(_read(trial_dir / "output.log"), names, filters)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _observe(ctx: KindContext, resource: Resource, spec: ExperimentSpec, state: ExperimentState,
             runtime: Runtime, record: dict[str, Any]) -> None:
    """Feed a running trial's new intermediate values to the pruner; record how a finished one ended."""
    import optuna

    run = state.runs.get(record["name"])
    if run is None and "job" in record:  # the job outlives a control plane restart: follow it again
        run = state.runs[record["name"]] = TrialRun(None)
    if run is None:  # its process ended with a previous control plane: run the same trial again
        refused = _admit(ctx, resource, spec, state, record["name"])
        if refused is not None and refused.startswith("never"):
            _finish(state, record, "Failed", "TrialFailed", f"it cannot run: {refused.removeprefix('never: ')}")
            return
        if refused:
            return  # woken when quota frees
        _launch(ctx, resource, spec, state, runtime, record)
        ctx.event(resource, "TrialRelaunched", f"trial {record['name']} started again after a restart")
        return
    if "job" in record:
        code = _job_exit(ctx, resource, record)
        _job_output(ctx, resource, record, experiment_dir(ctx, resource) / record["name"])
    else:
        assert run.handle is not None
        code = run.handle.exit_code
    observations = _observations(ctx, resource, spec, record)
    objective = [o for o in observations if o.name == spec.objective.objectiveMetricName]
    if spec.earlyStopping is not None or _prunes(spec):
        trial = optuna.trial.Trial(state.study, record["optunaTrialId"])
        for observation in objective[run.steps_reported:]:
            trial.report(observation.value, observation.step)
            run.steps_reported += 1
            if code is None and trial.should_prune():
                _stop(ctx, resource, state, runtime, record)
                if run.handle is not None and run.handle.exit_code == 0:
                    break  # it ended well while being stopped: it counts as completed, below
                record["metrics"] = _metric_summaries(spec, observations)
                _tell(state, record, state=optuna.trial.TrialState.PRUNED)
                _finish(state, record, "EarlyStopped", "TrialEarlyStopped",
                        f"stopped at step {observation.step}: {spec.objective.objectiveMetricName}="
                        f"{observation.value:g} is worse than the early-stopping rule allows")
                return
    if code is None and run.handle is not None:
        code = run.handle.exit_code
    if code is None:
        return
    record["metrics"] = _metric_summaries(spec, observations)
    if code != 0:
        _tell(state, record, state=optuna.trial.TrialState.FAIL)
        _finish(state, record, "Failed", "TrialFailed", f"the trial exited with code {code}")
        return
    value = metrics_module.summarize(observations, spec.objective.objectiveMetricName,
                                     spec.objective.strategy(spec.objective.objectiveMetricName))
    if value is None:
        _tell(state, record, state=optuna.trial.TrialState.FAIL)
        _finish(state, record, "MetricsUnavailable", "MetricsUnavailable",
                f"the trial succeeded but reported no {spec.objective.objectiveMetricName}")
        return
    record["objective"] = value
    _tell(state, record, values=value)
    _finish(state, record, "Succeeded", "TrialSucceeded", f"{spec.objective.objectiveMetricName}={value:g}")


def _prunes(spec: ExperimentSpec) -> bool:
    return spec.algorithm.algorithmName == "hyperband"


def _metric_summaries(spec: ExperimentSpec, observations: list[metrics_module.Observation]) -> list[dict[str, Any]]:
    summaries = []
    for name in spec.objective.metric_names():
        if any(o.name == name for o in observations):
            summaries.append({"name": name, **{key: repr(metrics_module.summarize(observations, name, key))
                                               for key in ("min", "max", "latest")}})
    return summaries


def _stop(ctx: KindContext, resource: Resource, state: ExperimentState, runtime: Runtime,
          record: dict[str, Any]) -> None:
    """Stop a running trial: its process, or its training job (deleted)."""
    if "job" in record:
        _delete_job(ctx, resource, record)
        return
    run = state.runs.get(record["name"])
    if run is not None and run.handle is not None and run.handle.exit_code is None:
        runtime.stop(run.handle, grace_seconds=2.0)


def _tell(experiment: ExperimentState, record: dict[str, Any], **outcome: Any) -> None:
    """Tell the study how the record's trial ended, once: a trial it already knows ended is left alone (a
    reconcile that failed half-way, or a restart, may come back to a trial told before)."""
    number = record.get("optunaTrialNumber", record["optunaTrialId"])
    if experiment.study.get_trials(deepcopy=False)[number].state.is_finished():
        return
    experiment.study.tell(number, **outcome)


def _finish(state: ExperimentState, record: dict[str, Any], condition: str, reason: str, message: str) -> None:
    if condition == "Killed":
        import optuna

        _tell(state, record, state=optuna.trial.TrialState.FAIL)
    state.runs.pop(record["name"], None)
    record.update(condition=condition, reason=reason, message=message, completionTime=_stamp(time.time()))
    if state.release is not None:
        state.release(record["name"])


# -- status ----------------------------------------------------------------------------------------------
def _write_status(resource: Resource, spec: ExperimentSpec, records: list[dict[str, Any]]) -> None:
    status = resource.status
    status.trialStatuses = records
    status.trials = len(records)
    for condition, counter in _COUNTERS.items():
        setattr(status, counter, sum(r["condition"] == condition for r in records))
    for condition, field in _LISTS.items():
        setattr(status, field, [r["name"] for r in records if r["condition"] == condition])
    best = _best(spec, records)
    if best is not None:
        status.currentOptimalTrial = {"bestTrialName": best["name"],
                                      "parameterAssignments": best["parameterAssignments"],
                                      "observation": {"metrics": best.get("metrics", [])}}


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- finalize, logs, describe ---------------------------------------------------------------------------------
def finalize(ctx: KindContext, resource: Resource) -> None:
    """Stop the experiment's running trials, delete its trials' training jobs, give back their quota and
    remove its directory (study journal, trial outputs)."""
    for record in getattr(resource.status, "trialStatuses", None) or []:
        if "job" in record and ctx.resources is not None:
            _delete_job(ctx, resource, record)
        if record["condition"] in ("Running", "Pending"):
            _release(ctx, resource, record["name"])
    if getattr(ctx.runs, "runtime", None) is None:
        return
    runtime = _runtime(ctx)
    with _lock:
        state = _states.get(runtime, {}).pop(resource.metadata.uid or "", None)
    if state is not None:
        for run in state.runs.values():
            if run.handle is not None and run.handle.exit_code is None:
                runtime.stop(run.handle, grace_seconds=2.0)
    shutil.rmtree(experiment_dir(ctx, resource), ignore_errors=True)


def trial_table(resource: Resource) -> list[tuple[str, str]]:
    """`describe` lines: one per trial with its state, assignments and objective."""
    lines = []
    for record in getattr(resource.status, "trialStatuses", None) or []:
        assignments = ", ".join(f"{a['name']}={a['value']}" for a in record["parameterAssignments"])
        value = record.get("objective")
        lines.append((record["name"], f"{record['condition']:<18} {assignments}"
                                      + (f"  -> {value:g}" if value is not None else "")))
    return lines

