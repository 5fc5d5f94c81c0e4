"""The local controller of InferenceServices: replica processes, a router, revisions and canaries.

A *revision* is one version of the predictor: a new one is created whenever the model part of the
spec changes (format, storageUri, protocol, batcher...), named like KServe's (`iris-predictor-00002`).
Each revision runs as `minReplicas` processes of `flowdeck serve <model dir> --name <service> --port 0`,
started through the control plane's runtime, one process per replica; a replica is ready once it
prints its URL, which `flowdeck serve` does once `/v2/health/ready` would answer 200. `maxReplicas`
is recorded, but nothing autoscales locally: a service runs `minReplicas` replicas. In front of the
replicas runs one router process per service (`flowdeck.serving.router`, which says why it is a
process), on the same port across restarts when that port is free. The routing table tells the router
the service's namespace and whether the control plane requires credentials (asked at every reconcile);
the router then checks them itself (`serving.access`), with the control plane's settings passed in its
environment, and lets the controller read its state with a per-router key.

Rollouts follow KServe's canary strategy. The first revision gets all traffic once ready. A changed
spec starts a new revision beside the serving one; once it is ready it gets `canaryTrafficPercent`
of the traffic, or, without that field (or at 100), all of it: it is *rolled out*, and the previous
revision is stopped once the router has stopped sending it requests. A new revision that fails (a
replica exits before it is ready, or is not ready within `READY_TIMEOUT`) is stopped and the rolled
out revision keeps all traffic (a rollback; condition `Failed` says why); it is tried again when the
spec changes. A replica that dies after it was ready is replaced, while the router sends its share
to the others.

A service with a transformer runs it beside each predictor replica: once the predictor announced its
URL, the transformer container's command starts with `--predictor_host` naming that replica (and
`--http_port` a free port); the replica serves, and the router sends its share to the transformer,
once the transformer's `/v2/health/ready` answers 200. Either process exiting replaces both.

Process handles live in memory, per runtime; everything else (revisions and their specs, which one
is rolled out, the router's port) lives in the resource's status. When `flowdeck up` stops, its
runtime stops every replica and router with it; on the next start the controller reconciles each
service again and, finding no processes, starts the rolled-out revision (and a canary) and the router
again. Reconcile runs every `WATCH_SECONDS` while a service is up (kinds have no other way to hear
that a process died), and every `STARTING_SECONDS` while something starts.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import httpx

from flowdeck.resources.kinds import KindContext
from flowdeck.resources.loader import ResourceError
from flowdeck.resources.model import Resource, api_namespace
from flowdeck.runtime import Runtime, Workload, WorkloadHandle

if TYPE_CHECKING:
    from flowdeck.config import Settings
    from flowdeck.serving.kind import InferenceServiceSpec

#: How long a replica may take from start to serving before its revision counts as failed.
READY_TIMEOUT = 180.0
STARTING_SECONDS = 0.25
WATCH_SECONDS = 1.0
_ANNOUNCED_ROUTER = re.compile(r"routing at (http://\S+)")


class RevisionFailed(Exception):
    """A revision cannot serve; the message says why (shown in the `Failed` condition)."""


@dataclass
class Replica:
    """One replica: a predictor process and, when the service has a transformer, a transformer in front of it."""

    handle: WorkloadHandle
    started: float
    #: Where the router sends this replica's share, set once it serves: the transformer's URL when there is one.
    url: str | None = None
    #: The predictor's URL, once it announced it.
    predictor_url: str | None = None
    transformer: WorkloadHandle | None = None
    transformer_url: str | None = None

    def parts(self) -> list[tuple[str, WorkloadHandle]]:
        return [("predictor", self.handle)] + ([("transformer", self.transformer)] if self.transformer else [])

    @property
    def running(self) -> bool:
        return all(handle.running for _, handle in self.parts())


@dataclass
class Processes:
    """What runs for one service in this control plane: replicas by revision, and the router."""

    revisions: dict[str, list[Replica]] = field(default_factory=dict)
    router: WorkloadHandle | None = None
    router_url: str | None = None
    #: The routing table last written (whether it requires credentials, and the revisions), and its version.
    routes: tuple[bool, list[tuple[str, int, list[str]]]] | None = None
    routes_version: int = 0
    #: What the controller shows the router to read its table when the router requires credentials.
    key: str = field(default_factory=lambda: secrets.token_urlsafe(24))


_lock = threading.Lock()
_running: WeakKeyDictionary[Runtime, dict[str, Processes]] = WeakKeyDictionary()


def _processes(runtime: Runtime, uid: str) -> Processes:
    with _lock:
        return _running.setdefault(runtime, {}).setdefault(uid, Processes())


def _runtime(ctx: KindContext) -> Runtime:
    runtime = getattr(ctx.runs, "runtime", None)
    if runtime is None:
        raise RuntimeError("the control plane's runtime is not running")
    return runtime


# -- reconcile ----------------------------------------------------------------------------------------
def reconcile(ctx: KindContext, resource: Resource, spec: InferenceServiceSpec) -> float:
    """Run the revisions the status and spec call for, route traffic between them, and report it."""
    runtime = _runtime(ctx)
    procs = _processes(runtime, resource.metadata.uid or "")
    status = resource.status
    generation = resource.metadata.generation or 1
    predictor: dict[str, Any] = dict((getattr(status, "components", None) or {}).get("predictor") or {})
    records: dict[str, dict[str, Any]] = {r["name"]: r for r in getattr(status, "revisions", None) or []}

    template = _template(spec)
    latest = next((r for r in records.values() if r["template"] == template), None)
    if latest is None:
        status.revisionCount = (getattr(status, "revisionCount", None) or 0) + 1
        latest = {"name": f"{resource.metadata.name}-predictor-{status.revisionCount:05d}", "template": template}
        records[latest["name"]] = latest
        ctx.event(resource, "RevisionCreated", f"created revision {latest['name']} for {_model_text(template)}")
    elif latest.get("failed") and latest.get("failedGeneration") != generation:
        latest.pop("failed")  # the spec was applied again: try once more
        latest.pop("failedGeneration", None)
    predictor["latestCreatedRevision"] = latest["name"]
    stable = records.get(predictor.get("latestRolledoutRevision", ""))

    ready: dict[str, bool] = {}  # every replica serves
    routable: set[str] = set()  # at least one replica serves
    for record in _unique(stable, latest):
        if record.get("failed"):
            continue
        try:
            serving = _run_replicas(ctx, resource, runtime, procs, record, spec.predictor.minReplicas)
            ready[record["name"]] = serving == spec.predictor.minReplicas
            if serving:
                routable.add(record["name"])
        except RevisionFailed as exc:
            _stop_revision(runtime, procs, record["name"])
            record["failed"], record["failedGeneration"] = str(exc), generation
            ctx.event(resource, "RevisionFailed", f"revision {record['name']}: {exc}", warning=True)

    # who gets traffic
    canary = spec.predictor.canaryTrafficPercent
    if not latest.get("failed") and ready.get(latest["name"]) and latest is not stable \
            and (stable is None or stable.get("failed") or canary is None or canary >= 100):
        if stable is not None:
            predictor["previousRolledoutRevision"] = stable["name"]
        predictor["latestRolledoutRevision"] = latest["name"]
        ctx.event(resource, "RolledOut", f"revision {latest['name']} serves all traffic")
        stable = latest
    split: list[tuple[str, int]] = []
    if stable is not None and stable["name"] in routable:
        split = [(stable["name"], 100)]
        if latest is not stable and latest["name"] in routable and canary is not None:
            split = [(stable["name"], 100 - canary), (latest["name"], canary)]
    serving = {name for name, _ in split}
    for record in list(records.values()):
        if record is not latest and record is not stable:
            del records[record["name"]]

    url = _run_router(ctx, resource, runtime, procs, split)
    acked = url is not None and _router_acked(url, procs.routes_version, procs.key)
    for name in list(procs.revisions):
        if name not in {r["name"] for r in records.values() if not r.get("failed")} and (acked or not serving):
            _stop_revision(runtime, procs, name)

    _write_status(resource, spec, predictor, records, latest, stable, ready, split, url, acked)
    starting = not acked or any(not ready.get(r["name"]) for r in records.values() if not r.get("failed"))
    return STARTING_SECONDS if starting or (set(procs.revisions) - serving - {latest["name"]}) else WATCH_SECONDS


def _unique(*records: dict[str, Any] | None) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        if record is not None:
            found.setdefault(record["name"], record)
    return list(found.values())


def _template(spec: InferenceServiceSpec) -> dict[str, Any]:
    """What makes a revision: the model spec, the batcher and the transformer's container."""
    template = {"model": spec.predictor.model.model_dump(mode="json", exclude_none=True)}
    if spec.predictor.batcher is not None:
        template["batcher"] = spec.predictor.batcher.model_dump(mode="json")
    if spec.transformer is not None:
        template["transformer"] = spec.transformer.containers[0].model_dump(
            mode="json", include={"command", "args", "env", "workingDir"})
    return template


def _model_text(template: dict[str, Any]) -> str:
    model = template["model"]
    return f"{model['modelFormat']['name']} model {model['storageUri']}"


# -- replicas -------------------------------------------------------------------------------------------
def _run_replicas(ctx: KindContext, resource: Resource, runtime: Runtime, procs: Processes,
                  record: dict[str, Any], count: int) -> int:
    """Keep `count` replicas of the revision running; how many of them serve. Raises RevisionFailed."""
    name = record["name"]
    transformer = record["template"].get("transformer")
    replicas = procs.revisions.setdefault(name, [])
    for replica in list(replicas):
        exited = next(((part, handle) for part, handle in replica.parts() if handle.exit_code is not None), None)
        if exited is not None:
            part, handle = exited
            replicas.remove(replica)
            _stop_replica(runtime, replica)
            if replica.url is None:
                raise RevisionFailed(f"a {part} exited (code {handle.exit_code}) before it was ready: "
                                     f"{_last_line(runtime.logs(handle))}")
            ctx.event(resource, "ReplicaRestarted", f"the {part} of replica {replica.url} of {name} exited "
                      f"(code {handle.exit_code}); starting another", warning=True)
            continue
        if replica.predictor_url is None:
            found = re.search(rf"serving {re.escape(resource.metadata.name)} at (http://\S+)",
                              runtime.logs(replica.handle))
            if found:
                replica.predictor_url = found.group(1)
                if transformer is None:
                    replica.url = replica.predictor_url
                else:
                    replica.transformer, replica.transformer_url = _start_transformer(
                        ctx.settings, resource, runtime, record, replica.predictor_url)
        elif replica.url is None and replica.transformer_url and _answers_ready(replica.transformer_url):
            replica.url = replica.transformer_url
        if replica.url is None and time.monotonic() - replica.started > READY_TIMEOUT:
            part, handle = replica.parts()[-1]
            raise RevisionFailed(f"a {part} was not ready within {READY_TIMEOUT:.0f} s: "
                                 f"{_last_line(runtime.logs(handle))}")
    while len(replicas) > count:
        _stop_replica(runtime, replicas.pop())
    if len(replicas) < count:
        model_dir = _model_dir(ctx.settings, record["template"]["model"]["storageUri"])
        while len(replicas) < count:
            replicas.append(_start_replica(ctx.settings, resource, runtime, record, model_dir))
    return sum(r.url is not None for r in replicas)


def _start_replica(settings: Settings, resource: Resource, runtime: Runtime, record: dict[str, Any],
                   model_dir: str) -> Replica:
    from flowdeck.serving.kind import MODEL_FORMATS

    template, name = record["template"], resource.metadata.name
    command = [sys.executable, "-m", "flowdeck.cli.main", "serve", model_dir, "--name", name,
               "--host", "127.0.0.1", "--port", "0",
               "--format", MODEL_FORMATS[template["model"]["modelFormat"]["name"].lower()]]
    batcher = template.get("batcher")
    if batcher:
        command += ["--max-batch-size", str(batcher["maxBatchSize"]),
                    "--max-batch-latency-ms", str(batcher["maxLatency"])]
    workload = Workload(name=record["name"], command=command, env={"PYTHONUNBUFFERED": "1"},
                        namespace=api_namespace(resource.metadata.namespace or ""),
                        log_path=str(_log_dir(settings, resource) / f"{record['name']}-{time.time_ns()}.log"),
                        labels=_labels(resource, record["name"]))
    return Replica(runtime.start(workload), time.monotonic())


def _start_transformer(settings: Settings, resource: Resource, runtime: Runtime, record: dict[str, Any],
                       predictor_url: str) -> tuple[WorkloadHandle, str]:
    """Start the transformer container's command for one replica, in front of its predictor at `predictor_url`."""
    container, name = record["template"]["transformer"], resource.metadata.name
    program, *rest = container["command"]
    command = [sys.executable if program in ("python", "python3") else program, *rest, *container.get("args", [])]
    port = _free_port()
    given = {arg.split("=", 1)[0] for arg in command}
    # the flags KServe's controller adds; ours last, as argparse keeps the last occurrence
    if "--model_name" not in given:
        command += ["--model_name", name]
    if "--predictor_protocol" not in given and "--protocol" not in given:
        command += ["--predictor_protocol", record["template"]["model"].get("protocolVersion", "v1")]
    command += ["--predictor_host", predictor_url.removeprefix("http://"), "--http_port", str(port)]
    env = {item["name"]: item.get("value", "") for item in container.get("env", [])}
    workload = Workload(name=f"{record['name']}-transformer", command=command, env={**env, "PYTHONUNBUFFERED": "1"},
                        working_dir=container.get("workingDir"),
                        namespace=api_namespace(resource.metadata.namespace or ""),
                        log_path=str(_log_dir(settings, resource) / f"{record['name']}-transformer-"
                                                                   f"{time.time_ns()}.log"),
                        labels=_labels(resource, record["name"]))
    return runtime.start(workload), f"http://127.0.0.1:{port}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _stop_replica(runtime: Runtime, replica: Replica) -> None:
    for _, handle in reversed(replica.parts()):
        runtime.stop(handle, grace_seconds=5.0)


def _stop_revision(runtime: Runtime, procs: Processes, name: str) -> None:
    for replica in procs.revisions.pop(name, []):
        _stop_replica(runtime, replica)


def _model_dir(settings: Settings, uri: str) -> str:
    """The local model directory of a storageUri: the path itself, or a download cached under FLOWDECK_HOME."""
    from flowdeck.artifacts.store import ArtifactStore, is_local, resolve_uri

    if is_local(uri):
        path = os.path.abspath(resolve_uri(uri))
        if not os.path.exists(path):
            raise RevisionFailed(f"storageUri {uri}: no such file or directory")
        return path
    cache = settings.home / "serving" / "models" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if not cache.exists():
        partial = cache.with_name(cache.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            ArtifactStore(settings.resolved_artifact_root).get(uri, partial)
        except Exception as exc:  # noqa: BLE001 - any fsspec failure is the revision's failure
            raise RevisionFailed(f"storageUri {uri}: cannot download: {exc}") from None
        os.replace(partial, cache)
    return str(cache)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "it wrote nothing"


def _labels(resource: Resource, revision: str) -> dict[str, str]:
    return {"serving.kserve.io/inferenceservice": resource.metadata.name,
            "serving.knative.dev/revision": revision, "flowdeck.dev/uid": resource.metadata.uid or ""}


def _service_dir(settings: Settings, resource: Resource) -> Path:
    return settings.home / "serving" / api_namespace(resource.metadata.namespace or "") / resource.metadata.name


def _log_dir(settings: Settings, resource: Resource) -> Path:
    path = settings.logs_dir / "serving" / api_namespace(resource.metadata.namespace or "") / resource.metadata.name
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- the router --------------------------------------------------------------------------------------------
def _run_router(ctx: KindContext, resource: Resource, runtime: Runtime, procs: Processes,
                split: list[tuple[str, int]]) -> str | None:
    """Write the routing table and keep the router running; its URL once it listens."""
    from flowdeck.serving.router import write_routes

    routes_path = _service_dir(ctx.settings, resource) / "routes.json"
    table = [(name, percent, [r.url for r in procs.revisions.get(name, []) if r.url and r.running])
             for name, percent in split]
    # the control plane's own rule (AccessMode.multi_user), asked at every reconcile: it changes when users appear
    requires = getattr(ctx.runs, "requires_credentials", None)
    credentials = bool(requires is not None and requires())
    if (credentials, table) != procs.routes:
        procs.routes_version += 1
        write_routes(routes_path, resource.metadata.name, procs.routes_version, table,
                     namespace=resource.metadata.namespace or "", credentials=credentials)
        procs.routes = (credentials, table)
        if len(table) > 1:
            ctx.event(resource, "TrafficSplit", ", ".join(f"{name} {percent}%" for name, percent, _ in table))
    router = procs.router
    if router is not None and router.exit_code is not None:
        output = _last_line(runtime.logs(router))
        procs.router, procs.router_url = None, None
        ctx.event(resource, "RouterExited", f"the router exited (code {router.exit_code}): {output}; "
                  "starting another", warning=True)
        port = 0 if "in use" in output else _recorded_port(resource)
    else:
        port = _recorded_port(resource)
    if procs.router is None:
        from flowdeck.serving.router import KEY_ENV, SETTINGS_ENV

        command = [sys.executable, "-m", "flowdeck.serving.router", "--routes", str(routes_path),
                   "--host", "127.0.0.1", "--port", str(port)]
        # the control plane's settings (its database, how credentials are read), less secrets the router never uses
        settings = ctx.settings.model_dump_json(exclude={"oidc_client_secret", "secret_key"})
        env = {SETTINGS_ENV: settings, KEY_ENV: procs.key}
        workload = Workload(name=f"{resource.metadata.name}-router", command=command, env=env,
                            namespace=api_namespace(resource.metadata.namespace or ""),
                            log_path=str(_log_dir(ctx.settings, resource) / f"router-{time.time_ns()}.log"),
                            labels=_labels(resource, ""))
        procs.router = runtime.start(workload)
    if procs.router_url is None:
        found = _ANNOUNCED_ROUTER.search(runtime.logs(procs.router))
        procs.router_url = found.group(1) if found else None
    return procs.router_url


def _recorded_port(resource: Resource) -> int:
    """The port of the service's URL before (0 when it has none): a restart keeps the URL when it can."""
    found = re.search(r":(\d+)$", getattr(resource.status, "url", None) or "")
    return int(found.group(1)) if found else 0


def _router_acked(url: str, version: int, key: str) -> bool:
    """Whether the router follows routing table `version` (or a newer one)."""
    from flowdeck.serving.router import KEY_HEADER, STATUS_PATH

    try:
        answer = httpx.get(url + STATUS_PATH, headers={KEY_HEADER.decode(): key}, timeout=1.0)
        return answer.status_code == 200 and answer.json().get("version", 0) >= version
    except (httpx.HTTPError, ValueError):
        return False


# -- status -----------------------------------------------------------------------------------------------
def _write_status(resource: Resource, spec: InferenceServiceSpec, predictor: dict[str, Any],
                  records: dict[str, dict[str, Any]], latest: dict[str, Any], stable: dict[str, Any] | None,
                  ready: dict[str, bool], split: list[tuple[str, int]], router_url: str | None,
                  acked: bool) -> None:
    status, name = resource.status, resource.metadata.name
    router_up = router_url is not None and acked  # listening, and routing by the table just written
    url = router_url or getattr(status, "url", None)
    serving = bool(split)
    failed = latest.get("failed")
    if ready.get(latest["name"]):
        predictor["latestReadyRevision"] = latest["name"]
    elif stable is not None and ready.get(stable["name"]):
        predictor["latestReadyRevision"] = stable["name"]
    predictor["traffic"] = [{"revisionName": revision, "percent": percent,
                             "latestRevision": revision == latest["name"],
                             **({"tag": "latest" if revision == latest["name"] else "prev"} if len(split) > 1 else {})}
                            for revision, percent in split]
    if url:
        predictor["url"] = url
        status.url = url
        status.address = {"url": url}
        status.modelUrl = (f"{url}/v2/models/{name}/infer" if spec.predictor.model.protocolVersion == "v2"
                           else f"{url}/v1/models/{name}:predict")
    status.components = {"predictor": predictor}
    if spec.transformer is not None:
        status.components["transformer"] = {"url": url} if url else {}
        status.set_condition("TransformerReady", serving, "RevisionReady" if serving else "RevisionStarting",
                             "transformers serve in front of the predictor" if serving else "starting")
    status.revisions = list(records.values())

    if serving:
        status.set_condition("PredictorReady", True, "RevisionReady",
                             f"{split[0][0]} serves" + (f", with {split[1][0]} as canary" if len(split) > 1 else ""))
    elif failed:
        status.set_condition("PredictorReady", False, "RevisionFailed", f"revision {latest['name']}: {failed}")
    else:
        status.set_condition("PredictorReady", False, "RevisionStarting", f"revision {latest['name']} is starting")
    status.set_condition("IngressReady", router_up, "RouterReady" if router_up else "RouterStarting",
                         f"the router listens at {url}" if router_up else "the router is starting")
    in_progress = not failed and not ready.get(latest["name"])
    if not (serving and router_up):
        status.set_condition("Ready", False, "RevisionFailed" if failed else "Starting",
                             f"revision {latest['name']}: {failed}" if failed else "starting")
    elif failed:
        status.set_condition("Ready", True, "RolledBack", f"revision {latest['name']} failed: {failed}; "
                             f"{split[0][0]} keeps serving all traffic")
    elif in_progress:
        status.set_condition("Ready", False, "RolloutInProgress",
                             f"revision {latest['name']} is starting; {split[0][0]} serves all traffic")
    else:
        status.set_condition("Ready", True, "Serving", ", ".join(f"{r} {p}%" for r, p in split) + f" at {url}")
    if failed:
        status.set_condition("Failed", True, "RevisionFailed", f"revision {latest['name']}: {failed}")
    elif status.condition("Failed") is not None:
        status.set_condition("Failed", False, "RevisionReady" if not in_progress else "RevisionStarting")
    active = "Loaded" if serving else "FailedToLoad" if failed and stable is None else "Pending"
    target = "FailedToLoad" if failed else "Loaded" if ready.get(latest["name"]) else "Pending"
    status.modelStatus = {
        "states": {"activeModelState": active, "targetModelState": target},
        "transitionStatus": "BlockedByFailedLoad" if failed else "InProgress" if in_progress else "UpToDate",
        **({"lastFailureInfo": {"reason": "ModelLoadFailed", "message": failed}} if failed else {}),
    }


# -- finalize and logs ------------------------------------------------------------------------------------
def finalize(ctx: KindContext, resource: Resource) -> None:
    """Stop the service's replicas and router, and forget its routing table."""
    runtime = getattr(ctx.runs, "runtime", None)
    if runtime is not None:
        with _lock:
            procs = _running.get(runtime, {}).pop(resource.metadata.uid or "", None)
        if procs is not None:
            for name in list(procs.revisions):
                _stop_revision(runtime, procs, name)
            if procs.router is not None:
                runtime.stop(procs.router, grace_seconds=5.0)
    shutil.rmtree(_service_dir(ctx.settings, resource), ignore_errors=True)


def logs(ctx: KindContext, resource: Resource) -> Iterator[str]:
    """The logs of the service's running replicas and router, each under a `==> ... <==` line."""
    runtime = getattr(ctx.runs, "runtime", None)
    with _lock:
        procs = _running.get(runtime, {}).get(resource.metadata.uid or "") if runtime is not None else None
    if runtime is None or procs is None:
        raise ResourceError(f"{resource.ref} runs no processes in this control plane")
    handles = [(f"{part} of replica {r.url or '(starting)'} of {name}", handle)
               for name, replicas in list(procs.revisions.items()) for r in list(replicas)
               for part, handle in r.parts()]
    if procs.router is not None:
        handles.append((f"router {procs.router_url or '(starting)'}", procs.router))
    for label, handle in handles:
        yield f"==> {label} <==\n"
        yield runtime.logs(handle)
