"""The local training operator: runs a job's replicas as processes and applies Kubeflow's job semantics.

One replica (a Kubernetes pod) is one process group, started through the control plane's runtime with
the container's `command + args`, its `env`, in its `workingDir`, plus the environment the Kubeflow
operator would inject (`env.replica_env`: MASTER_ADDR, RANK, TF_CONFIG...) with every address
127.0.0.1 and ports chosen per attempt. A bare `python` is the control plane's interpreter and
`torchrun` is torchrun in it, so the job sees the same packages as flowdeck. Replicas run through the
training runtime, whose fork server has imported torch (`flowdeck.runtime.launch`): a `python SCRIPT`, `python -m
MODULE` or `torchrun` replica is forked from it and starts warm, without paying the interpreter start
and torch import every rank would otherwise pay at once (`flowdeck.runtime.launch` says how torchrun's agent is played).
The image is not used (an `ImageIgnored` event says so once).

Semantics follow the operators' (reference/training.md §1.6-1.8, §3.1):
- Admission is all-or-nothing: the whole job passes its profile's quota and the machine's training
  capacity (`FLOWDECK_TRAINING_CPU_CAPACITY`, CPUs requested by running jobs) before any replica starts,
  and waits, with the reason in its `Created` condition, until both have room.
- Success: the Master (or Chief) decides; without one, every Worker (TFJob: worker 0, or all workers
  with `successPolicy: AllWorkers`; TrainJob: every node).
- A failed replica under `Never` fails the job; under `ExitCode` exit codes 1-127 are permanent and
  128+ (and deaths by signal) retryable; under `OnFailure`/`Always` every failure is retryable. A
  retryable failure restarts the whole group on fresh ports (a *gang restart*: a rank whose peer
  died would otherwise wait in rendezvous forever), counted against `backoffLimit`.
- Whenever the job fails, every replica still running is stopped, whatever `cleanPodPolicy` says, so
  no rank is left blocked; on success `cleanPodPolicy: Running/All` stops the rest (`None` lets them end).
- `activeDeadlineSeconds` counts from `startTime` (reset on resume) and fails the job with reason
  `DeadlineExceeded`; `suspend` stops every replica and `resume` starts a fresh attempt;
  `ttlSecondsAfterFinished` deletes the job that long after it finished.

Process handles live in memory, per runtime; attempts, restarts, ports and times live in the status.
After `flowdeck up` restarts, a job that was running is started again as a new attempt (its processes
ended with the control plane), which is not counted as a restart. Replica logs are kept per replica
and attempt under `<logs>/training/<namespace>/<job>/`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from pydantic import BaseModel

from flowdeck.resources.kinds import KindContext
from flowdeck.resources.loader import ResourceError
from flowdeck.resources.model import Resource, api_namespace
from flowdeck.runtime import Runtime, Workload, WorkloadHandle
from flowdeck.runtime.commands import LAUNCH_MODULE, local_command
from flowdeck.runtime.quotas import QuotaGate
from flowdeck.training.env import JobPorts, replica_env
from flowdeck.training.specs import ReplicaSlot, job_demand, replica_plan, run_policy

if TYPE_CHECKING:
    from flowdeck.config import Settings

#: How often a running job is looked at when no process exit woke it (exits normally do).
WATCH_SECONDS = 2.0
#: How long replicas get to end after SIGTERM before SIGKILL.
STOP_GRACE_SECONDS = 3.0
#: The kinds whose status follows Trainer v2 (Complete/Failed/Suspended, jobsStatus) rather than v1's.
TRAINER_V2 = ("TrainJob",)


@dataclass
class Gang:
    """The processes of one attempt of a job."""

    attempt: int
    handles: dict[str, WorkloadHandle] = field(default_factory=dict)  # replica name -> process
    slots: dict[str, ReplicaSlot] = field(default_factory=dict)


_lock = threading.Lock()
_gangs: WeakKeyDictionary[Runtime, dict[str, Gang]] = WeakKeyDictionary()
_capacity_gates: WeakKeyDictionary[Runtime, QuotaGate] = WeakKeyDictionary()
#: Ports handed out recently: never given again soon, so a restarted gang cannot meet a stale peer.
_recent_ports: dict[int, float] = {}


def _runtime(ctx: KindContext) -> Runtime:
    """The training runtime: its fork server preloads `launch` (and torch), so replicas start warm."""
    runtime_for = getattr(ctx.runs, "runtime_for", None)
    if runtime_for is None or getattr(ctx.runs, "runtime", None) is None:
        raise RuntimeError("the control plane's runtime is not running")
    return runtime_for("training", (LAUNCH_MODULE,))


def _capacity_gate(ctx: KindContext, runtime: Runtime) -> QuotaGate:
    """The machine's training capacity, as a quota on a namespace of its own."""
    with _lock:
        gate = _capacity_gates.get(runtime)
        if gate is None:
            capacity = ctx.settings.training_cpu_capacity or float(os.cpu_count() or 1)
            gate = _capacity_gates[runtime] = QuotaGate(
                lambda _namespace: {"cpu": str(capacity)}, lambda _namespace: "this machine (training capacity, "
                "FLOWDECK_TRAINING_CPU_CAPACITY)", "capacity")
        return gate


# -- reconcile ------------------------------------------------------------------------------------------
def reconcile(ctx: KindContext, resource: Resource, spec: BaseModel) -> float | None:
    """Bring the job's processes in line with its spec and status; returns when to look again."""
    kind = resource.kind
    status = resource.status
    runtime = _runtime(ctx)
    uid = resource.metadata.uid or ""
    plan = replica_plan(kind, spec)
    policy = run_policy(kind, spec)
    v2 = kind in TRAINER_V2
    now = time.time()
    status.lastReconcileTime = _stamp(now)

    if not v2 and status.condition("Created") is None:
        status.set_condition("Created", True, f"{kind}Created", f"{kind} {resource.metadata.name} is created.")

    if _finished(status):
        return _after_finish(ctx, resource, policy, runtime, now)

    if policy.suspend:
        _stop_gang(ctx, resource, runtime, release=True)
        if not status.is_true("Suspended"):
            status.set_condition("Suspended", True, "Suspended" if v2 else f"{kind}Suspended",
                                 f"{kind} {resource.metadata.name} is suspended.")
            if not v2:
                status.set_condition("Running", False, f"{kind}Suspended", "suspended")
            ctx.event(resource, "Suspended", "every replica was stopped")
        _write_replica_statuses(resource, plan, None, v2)
        return None
    if status.is_true("Suspended"):
        status.set_condition("Suspended", False, "Resumed" if v2 else f"{kind}Resumed",
                             f"{kind} {resource.metadata.name} is resumed.")
        status.startTime = None  # the deadline counts again from the resumed start
        status.attempt = int(getattr(status, "attempt", 0) or 0) + 1
        ctx.event(resource, "Resumed", "starting every replica again")

    deadline = policy.activeDeadlineSeconds
    started_at = _epoch(getattr(status, "startTime", None))
    if deadline is not None and started_at is not None and now >= started_at + deadline:
        return _fail(ctx, resource, runtime, policy, "DeadlineExceeded",
                     f"Job {resource.metadata.name} has failed because it was active longer than specified "
                     f"deadline ({deadline} s)", now)

    gang = _gang(runtime, uid)
    if gang is None:
        waiting = _admit(ctx, resource, spec, runtime)
        if waiting is not None:
            return waiting
        attempt = int(getattr(status, "attempt", 0) or 0)
        launched = getattr(status, "launched", None)
        if launched is None:
            images = sorted({slot.container.image for slot in plan if slot.container.image})
            if images:
                ctx.event(resource, "ImageIgnored", f"image {', '.join(images)} is not used locally: the command "
                          "runs in the control plane's Python environment", warning=True)
        elif launched >= attempt:  # this attempt ran, and its processes ended with the previous control plane
            attempt = status.attempt = launched + 1
            ctx.event(resource, "Relaunched", f"the control plane restarted: starting attempt {attempt}")
        gang = _start_gang(ctx, resource, plan, runtime, attempt)
        status.launched = attempt
        if getattr(status, "startTime", None) is None:
            status.startTime = _stamp(now)
            started_at = now
        if not v2:
            status.set_condition("Running", True, f"{kind}Running", f"{kind} {resource.metadata.name} is running.")
            status.set_condition("Restarting", False, f"{kind}Running", "")

    exits = {name: _exit_code(handle) for name, handle in gang.handles.items()}
    _write_replica_statuses(resource, plan, exits, v2)
    if _succeeded(kind, spec, plan, exits):
        return _succeed(ctx, resource, runtime, plan, policy, now)
    failed = [(gang.slots[name], code) for name, code in exits.items() if code not in (None, 0)]
    if failed:
        slot, code = failed[0]
        what = f"replica {slot.name} exited with code {code}"
        retryable = _retryable(slot.restart_policy, code)
        if not retryable:
            reason = "non-retryable exit code (ExitCode policy: 1-127 are permanent)" \
                if slot.restart_policy == "ExitCode" else f"restartPolicy {slot.restart_policy}"
            return _fail(ctx, resource, runtime, policy, f"{kind}Failed",
                         f"{kind} {resource.metadata.name} has failed: {what} ({reason})", now)
        restarts = int(getattr(status, "restarts", 0) or 0)
        if policy.backoffLimit is not None and restarts >= policy.backoffLimit:
            return _fail(ctx, resource, runtime, policy, "BackoffLimitExceeded",
                         f"Job {resource.metadata.name} has failed because it has reached the specified backoff "
                         f"limit ({policy.backoffLimit}); last failure: {what}", now)
        _stop_gang(ctx, resource, runtime, release=False)
        status.restarts = restarts + 1
        status.attempt = gang.attempt + 1
        if not v2:
            status.set_condition("Restarting", True, f"{kind}Restarting",
                                 f"{what}; restarting every replica (restart {restarts + 1})")
            status.set_condition("Running", False, f"{kind}Restarting", "")
        limit = "" if policy.backoffLimit is None else f" of {policy.backoffLimit}"
        ctx.event(resource, "Restarting", f"{what}: stopping every replica and starting them again on fresh "
                  f"ports (restart {restarts + 1}{limit})", warning=True)
        _write_replica_statuses(resource, plan, None, v2)
        return 0.2
    delays = [WATCH_SECONDS]
    if deadline is not None and started_at is not None:
        delays.append(max(0.0, started_at + deadline - now))
    return min(delays)


def _finished(status: Any) -> bool:
    return status.is_true("Succeeded") or status.is_true("Complete") or status.is_true("Failed")


def _after_finish(ctx: KindContext, resource: Resource, policy: Any, runtime: Runtime, now: float) -> float | None:
    """A finished job: delete it once its TTL is over."""
    ttl = policy.ttlSecondsAfterFinished
    finished_at = _epoch(getattr(resource.status, "completionTime", None))
    if ttl is None or finished_at is None:
        return None
    left = finished_at + ttl - now
    if left > 0:
        return left
    ctx.event(resource, "Deleted", f"deleted {ttl} s after it finished (ttlSecondsAfterFinished)")
    ctx.request_deletion(resource)
    return None


def _succeeded(kind: str, spec: BaseModel, plan: list[ReplicaSlot], exits: dict[str, int | None]) -> bool:
    types = {slot.type for slot in plan}
    leader = next((t for t in ("Master", "Chief") if t in types), None)
    if leader is not None:
        return all(exits.get(slot.name) == 0 for slot in plan if slot.type == leader)
    workers = [slot for slot in plan if slot.type in ("Worker", "Node")]
    if kind == "TFJob" and getattr(spec, "successPolicy", "") != "AllWorkers":
        return any(exits.get(slot.name) == 0 for slot in workers if slot.index == 0)
    return bool(workers) and all(exits.get(slot.name) == 0 for slot in workers)


def _retryable(restart_policy: str, code: int) -> bool:
    if restart_policy in ("OnFailure", "Always"):
        return True
    if restart_policy == "ExitCode":
        return code >= 128
    return False


def _succeed(ctx: KindContext, resource: Resource, runtime: Runtime, plan: list[ReplicaSlot], policy: Any,
             now: float) -> None:
    kind, status = resource.kind, resource.status
    if (policy.cleanPodPolicy or "None") in ("Running", "All"):
        _stop_gang(ctx, resource, runtime, release=True)
    else:
        _release(ctx, resource, runtime)
    status.completionTime = _stamp(now)
    if kind in TRAINER_V2:
        status.set_condition("Complete", True, "Completed", f"{kind} {resource.metadata.name} has completed.")
    else:
        status.set_condition("Running", False, f"{kind}Succeeded", "")
        status.set_condition("Succeeded", True, f"{kind}Succeeded",
                             f"{kind} {resource.metadata.name} is successfully completed.")
    # active replicas count as succeeded once the job has (as the operator reports them)
    for counts in (getattr(status, "replicaStatuses", None) or {}).values():
        counts["succeeded"] = counts.get("succeeded", 0) + counts.pop("active", 0)
    ctx.event(resource, "Succeeded", "the job succeeded")
    return _after_finish(ctx, resource, policy, runtime, now)


def _fail(ctx: KindContext, resource: Resource, runtime: Runtime, policy: Any, reason: str, message: str,
          now: float) -> float | None:
    """Fail the job: every replica still running is stopped, whatever cleanPodPolicy says."""
    kind, status = resource.kind, resource.status
    _stop_gang(ctx, resource, runtime, release=True)
    status.completionTime = _stamp(now)
    if kind not in TRAINER_V2:
        status.set_condition("Running", False, reason, "")
        if status.condition("Restarting") is not None:
            status.set_condition("Restarting", False, reason, "")
    status.set_condition("Failed", True, reason, message)
    ctx.event(resource, reason, message, warning=True)
    return _after_finish(ctx, resource, policy, runtime, now)


def _spec_of(resource: Resource) -> BaseModel:
    from flowdeck.training.kind import spec_model

    return spec_model(resource.kind).model_validate(resource.spec)


# -- admission ----------------------------------------------------------------------------------------------
def _admit(ctx: KindContext, resource: Resource, spec: BaseModel, runtime: Runtime) -> float | None:
    """None once the job may start; else it waits (woken when room frees) or has failed."""
    namespace = resource.metadata.namespace or "default"
    key = f"{resource.kind}/{resource.metadata.uid}"
    demand = job_demand(resource.kind, spec)
    uid = resource.metadata.uid or ""

    def wake() -> None:
        ctx.requeue(uid, 0.0)

    gates = [(getattr(ctx.runs, "quota", None), namespace), (_capacity_gate(ctx, runtime), "(machine)")]
    admitted: list[tuple[QuotaGate, str]] = []
    for gate, space in gates:
        if gate is None:
            continue
        admission = gate.try_admit(space, key, demand, wake)
        if admission.admitted:
            admitted.append((gate, space))
            continue
        for earlier, earlier_space in admitted:
            earlier.release(earlier_space, key)
        if admission.never_fits:
            return _fail(ctx, resource, runtime, run_policy(resource.kind, spec), f"{resource.kind}Failed",
                         f"cannot run: {admission.reason}", time.time())
        message = admission.reason
        if resource.kind not in TRAINER_V2:
            resource.status.set_condition("Created", True, f"{resource.kind}Created", message)
        ctx.event(resource, "Waiting", message)
        return WATCH_SECONDS * 5
    return None


def _release(ctx: KindContext, resource: Resource, runtime: Runtime) -> None:
    key = f"{resource.kind}/{resource.metadata.uid}"
    quota = getattr(ctx.runs, "quota", None)
    if quota is not None:
        quota.release(resource.metadata.namespace or "default", key)
    _capacity_gate(ctx, runtime).release("(machine)", key)


# -- processes ----------------------------------------------------------------------------------------------
def _gang(runtime: Runtime, uid: str) -> Gang | None:
    with _lock:
        return _gangs.get(runtime, {}).get(uid)


def _start_gang(ctx: KindContext, resource: Resource, plan: list[ReplicaSlot], runtime: Runtime,
                attempt: int) -> Gang:
    spec = _spec_of(resource)
    fresh = _free_ports(len(plan) + 1)
    ports = JobPorts(master=fresh[0], replicas={slot.name: port for slot, port in zip(plan, fresh[1:], strict=True)})
    gang = Gang(attempt=attempt)
    uid = resource.metadata.uid or ""
    namespace = api_namespace(resource.metadata.namespace or "")
    log_dir = log_directory(ctx.settings, resource)

    def exited(_handle: WorkloadHandle, _code: int) -> None:
        ctx.requeue(uid, 0.0)

    with _lock:
        _gangs.setdefault(runtime, {})[uid] = gang
    for slot in plan:
        container = slot.container
        env = {item.name: item.value for item in container.env}
        env.update(replica_env(resource.kind, resource.metadata.name, spec, plan, slot, ports))
        env.setdefault("FLOWDECK_NAMESPACE", namespace)
        workload = Workload(
            name=f"{resource.metadata.name}-{slot.name}", command=local_command(container.command or [],
                                                                                 container.args),
            env=env, working_dir=container.workingDir, namespace=namespace,
            log_path=str(log_dir / f"{slot.name}.attempt-{attempt}.log"),
            labels={"training.kubeflow.org/job-name": resource.metadata.name,
                    "training.kubeflow.org/replica-type": slot.type.lower(),
                    "training.kubeflow.org/replica-index": str(slot.index), "flowdeck.dev/uid": uid})
        gang.slots[slot.name] = slot
        gang.handles[slot.name] = runtime.start(workload, on_exit=exited)
    ctx.event(resource, "Started", f"attempt {attempt}: started {', '.join(gang.handles)} "
              f"(master port {ports.master})")
    return gang


def _stop_gang(ctx: KindContext, resource: Resource, runtime: Runtime, release: bool) -> None:
    """Stop every replica of the job at once (SIGTERM, then SIGKILL after the grace period)."""
    with _lock:
        gang = _gangs.get(runtime, {}).pop(resource.metadata.uid or "", None)
    if gang is not None:
        stop_all(runtime, list(gang.handles.values()))
    if release:
        _release(ctx, resource, runtime)


def stop_all(runtime: Runtime, handles: list[WorkloadHandle]) -> None:
    """Stop workloads in parallel, so a gang of N replicas takes one grace period, not N."""
    threads = [threading.Thread(target=runtime.stop, args=(handle, STOP_GRACE_SECONDS), daemon=True)
               for handle in handles if handle.exit_code is None]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _exit_code(handle: WorkloadHandle) -> int | None:
    """The exit code Kubernetes would report: a death by signal N is 128 + N."""
    code = handle.exit_code
    return None if code is None else (128 - code if code < 0 else code)


def _free_ports(count: int) -> list[int]:
    """`count` free ports on 127.0.0.1, none of them handed out in the last minute."""
    now = time.monotonic()
    with _lock:
        for port, until in list(_recent_ports.items()):
            if until < now:
                del _recent_ports[port]
        ports: list[int] = []
        probes = []
        try:
            while len(ports) < count:
                probe = socket.socket()
                probe.bind(("127.0.0.1", 0))
                probes.append(probe)
                port = probe.getsockname()[1]
                if port not in _recent_ports:
                    ports.append(port)
                    _recent_ports[port] = now + 60
        finally:
            for probe in probes:
                probe.close()
        return ports


def log_directory(settings: Settings, resource: Resource) -> Path:
    path = settings.logs_dir / "training" / api_namespace(resource.metadata.namespace or "") / resource.metadata.name
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- status ------------------------------------------------------------------------------------------------
def _write_replica_statuses(resource: Resource, plan: list[ReplicaSlot], exits: dict[str, int | None] | None,
                            v2: bool) -> None:
    """v1 `replicaStatuses` per type, or Trainer v2 `jobsStatus`, from the replicas' exits (None: none run)."""
    counts: dict[str, dict[str, int]] = {}
    for slot in plan:
        entry = counts.setdefault(slot.type, {"active": 0, "succeeded": 0, "failed": 0})
        if exits is None or slot.name not in exits:
            continue
        code = exits[slot.name]
        entry["active" if code is None else "succeeded" if code == 0 else "failed"] += 1
    if v2:
        node = counts.get("Node", {"active": 0, "succeeded": 0, "failed": 0})
        resource.status.jobsStatus = [{"name": "node", "ready": node["active"], "active": node["active"],
                                       "succeeded": node["succeeded"], "failed": node["failed"],
                                       "suspended": len(plan) if resource.status.is_true("Suspended") else 0}]
        return
    name = resource.metadata.name
    resource.status.replicaStatuses = {
        rtype: {**entry, "selector": f"training.kubeflow.org/job-name={name},"
                                      f"training.kubeflow.org/replica-type={rtype.lower()}"}
        for rtype, entry in counts.items()}


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


# -- finalize, logs ------------------------------------------------------------------------------------------
def finalize(ctx: KindContext, resource: Resource) -> None:
    """Stop the job's replicas and give back its quota."""
    if getattr(ctx.runs, "runtime", None) is not None:
        _stop_gang(ctx, resource, _runtime(ctx), release=True)


def logs(ctx: KindContext, resource: Resource) -> Iterator[str]:
    """Each replica's log of the latest attempt (earlier attempts stay on disk), under `==> name <==` lines."""
    directory = log_directory(ctx.settings, resource)
    files = sorted(directory.glob("*.attempt-*.log"))
    if not files:
        raise ResourceError(f"{resource.ref} has no logs yet")
    latest: dict[str, Path] = {}
    for path in files:
        replica, _, attempt = path.name.removesuffix(".log").rpartition(".attempt-")
        if replica not in latest or int(attempt) > int(latest[replica].name.removesuffix(".log").rpartition(
                ".attempt-")[2]):
            latest[replica] = path
    for replica in sorted(latest, key=_replica_order):
        path = latest[replica]
        yield f"==> {replica} ({path.name.removesuffix('.log').rpartition('.')[2]}) <==\n"
        yield path.read_text(errors="replace")


def _replica_order(name: str) -> tuple[int, int]:
    rtype, _, index = name.rpartition("-")
    order = {"master": 0, "chief": 0, "ps": 1, "worker": 2, "node": 2, "evaluator": 3}
    return order.get(rtype, 4), int(index) if index.isdigit() else 0
