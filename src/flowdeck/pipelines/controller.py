"""The pipeline run controller: executes runs submitted to the control plane.

Runs created over the API are recorded PENDING with origin "server" and executed by the same engine
as `flowdeck run`, each on a worker thread, at most `max_concurrent_runs` at once; the others wait
in PENDING. The controller also terminates and retries runs, and when the control plane starts it
resumes the runs that a previous server left unfinished (killed, crashed or stopped): tasks that had
succeeded keep their results and never run again; the others run anew. When the control plane
requires credentials, each execution of a run gets its own API token (`profiles.workload`), revoked
when the execution stops.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

from sqlalchemy import select

from flowdeck.config import Settings
from flowdeck.pipelines.api import WARM_EXECUTOR_MODULE, drive, new_engine, prepare_arguments, record_run
from flowdeck.pipelines.engine import Engine, RunSuspended
from flowdeck.pipelines.executors import EXECUTOR_MODULE
from flowdeck.pipelines.model import PreviousTask
from flowdeck.pipelines.spec import from_documents, load_pipeline, spec_document
from flowdeck.profiles.workload import RunCredential, WorkloadTokens
from flowdeck.runtime import LocalRuntime
from flowdeck.runtime.quotas import QuotaGate
from flowdeck.store import ResourceRow, RunNotFound, Store
from flowdeck.store.catalog import Experiments
from flowdeck.store.identity import IdentityStore
from flowdeck.store.ownership import instance_alive
from flowdeck.store.store import TERMINAL_RUN_STATES

logger = logging.getLogger("flowdeck.controller")

TERMINATED = "canceled: terminated through the API"
SUSPENDED = "the control plane stopped; the run resumes when it starts again"
#: How long `stop` waits for suspended engines before their processes are killed.
STOP_SECONDS = 30.0


class RunStateError(ValueError):
    """The run is not in a state that allows the request (e.g. retrying a run that succeeded)."""


class RunController:
    """Executes the control plane's runs; thread-safe (API handlers call it from many threads).

    `start` before use and `stop` at the end; in between, `create_run`, `terminate` and `retry`
    return at once and the work happens on the controller's worker threads.
    """

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.runtime: LocalRuntime | None = None
        self._runtimes: dict[str, LocalRuntime] = {}  # other capabilities' runtimes, by name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._engines: dict[str, Engine] = {}
        self._queued: set[str] = set()
        self._futures: set[Future[None]] = set()
        self._stopping = False
        #: The control plane's URL, given to tasks (KF_PIPELINES_ENDPOINT) so their code can call the API.
        self.api_url: str | None = None
        #: Whether the control plane requires credentials (then every run gets a token); None: it never does.
        self.requires_credentials: Callable[[], bool] | None = None
        self.workload = WorkloadTokens(IdentityStore(store.engine), settings.home)
        self._credentials: dict[str, RunCredential] = {}
        #: Every run's workloads pass their profile's quota (shared with other capabilities' workloads).
        self.quota = QuotaGate(lambda namespace: profile_quota(store, namespace))

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Warm the runtime, then resume the runs a previous server on this host left unfinished."""
        self.runtime = LocalRuntime(preload=(EXECUTOR_MODULE, WARM_EXECUTOR_MODULE),
                                    log_dir=str(self.settings.logs_dir))
        self.runtime.warm_up()
        self._pool = ThreadPoolExecutor(max_workers=self.settings.max_concurrent_runs, thread_name_prefix="run")
        self.store.fail_orphaned_runs()  # embedded runs whose `flowdeck run` process died
        self.workload.revoke_all()  # tokens of runs a previous control plane left executing
        for run_id in self.store.claim_orphaned_runs():
            logger.warning("resuming run %s, left unfinished by a previous control plane", run_id)
            self._submit(run_id, resume=True)

    def stop(self) -> None:
        """Stop executing: running runs are suspended (processes stopped) and resume on the next start."""
        with self._lock:
            self._stopping = True
            engines = list(self._engines.values())
            futures = list(self._futures)
        for engine in engines:
            engine.request_suspend(SUSPENDED)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            wait(futures, timeout=STOP_SECONDS)  # engines stop their processes within seconds
        if self.runtime is not None:
            self.runtime.close()  # whatever still runs is killed with the fork server
        with self._lock:
            runtimes, self._runtimes = list(self._runtimes.values()), {}
        for runtime in runtimes:
            runtime.close()
        self.store.release_runs()

    def runtime_for(self, name: str, preload: tuple[str, ...]) -> LocalRuntime:
        """A runtime of capability `name`'s own, whose fork server preloads `preload` (training: torch);
        started on first use, stopped with the controller."""
        with self._lock:
            runtime = self._runtimes.get(name)
            if runtime is None:
                runtime = self._runtimes[name] = LocalRuntime(preload=preload, log_dir=str(self.settings.logs_dir))
                runtime.warm_up()
            return runtime

    # -- requests ---------------------------------------------------------------------------------
    def create_run(self, *, pipeline_spec: dict[str, Any], parameters: dict[str, Any] | None = None,
                   display_name: str | None = None, namespace: str = "", experiment_id: str | None = None,
                   description: str | None = None, pipeline_id: str | None = None,
                   pipeline_version_id: str | None = None, recurring_run_id: str | None = None,
                   scheduled_at: datetime | None = None, service_account: str | None = None,
                   owner: str | None = None) -> str:
        """Validate, record (PENDING) and queue a run; returns its id.

        `pipeline_spec` is a PipelineSpec dict, or `{"pipeline_spec": ..., "platform_spec": ...}` as
        kfp.Client sends for pipelines with Kubernetes settings. Raises `PipelineError` (a client
        mistake: invalid spec, unknown or mistyped parameter) before anything is recorded.
        """
        pipeline = from_documents([pipeline_spec], "pipeline_spec")
        typed, artifacts = prepare_arguments(pipeline, parameters or {})
        run_id = record_run(
            self.store, pipeline, typed, artifacts, display_name=display_name, namespace=namespace,
            experiment_id=experiment_id, description=description, pipeline_id=pipeline_id,
            pipeline_version_id=pipeline_version_id, recurring_run_id=recurring_run_id,
            scheduled_at=scheduled_at, service_account=service_account, origin="server", owner=owner,
        )
        if experiment_id:
            Experiments(self.store).run_created(experiment_id, self.store.get_run(run_id).created_at)
        self._submit(run_id, resume=False)
        return run_id

    def terminate(self, run_id: str) -> None:
        """Cancel a run: PENDING ones end CANCELED at once, running ones once their processes stop.

        Raises `RunNotFound`. Terminating a finished run changes nothing. A run that a `flowdeck run`
        process on this machine executes is canceled by signalling that process, as Ctrl-C would.
        """
        run = self.store.get_run(run_id)
        with self._lock:
            engine = self._engines.get(run.id)
            if engine is not None:
                engine.request_cancel(TERMINATED)
                return
            if run.id in self._queued:
                self._queued.discard(run.id)  # its worker finds it gone and does nothing
                self.store.end_run(run.id, "CANCELED", TERMINATED)
                return
        if run.state in TERMINAL_RUN_STATES:
            return
        if (run.origin == "embedded" and run.engine_host == socket.gethostname() and run.engine_pid
                and instance_alive(run.engine_instance) and _signal(run.engine_pid, signal.SIGTERM)):
            return  # that engine records CANCELED itself
        self.store.end_run(run.id, "CANCELED", TERMINATED)  # only if it has not ended meanwhile

    def retry(self, run_id: str) -> None:
        """Run a FAILED or CANCELED run again in place, reusing the tasks that succeeded.

        Raises `RunNotFound`, or `RunStateError` for a run in any other state.
        """
        run = self.store.get_run(run_id)
        with self._lock:
            busy = run.id in self._engines or run.id in self._queued
        if busy or not self.store.restart_run(run.id, from_states=("FAILED", "CANCELED")):
            state = self.store.get_run(run.id).state
            raise RunStateError(f"run {run.id} is {state}: only FAILED or CANCELED runs can be retried")
        self._submit(run.id, resume=True)

    def is_active(self, run_id: str) -> bool:
        """Whether this controller is executing (or has queued) the run."""
        with self._lock:
            return run_id in self._engines or run_id in self._queued

    # -- execution ------------------------------------------------------------------------------
    def _submit(self, run_id: str, *, resume: bool) -> None:
        with self._lock:
            if self._stopping or self._pool is None:
                return  # stays PENDING; the next start resumes it
            self._queued.add(run_id)
            self._futures = {f for f in self._futures if not f.done()}
            self._futures.add(self._pool.submit(self._execute, run_id, resume))

    def _execute(self, run_id: str, resume: bool) -> None:
        try:
            self._drive(run_id, resume)
        finally:  # the run stopped executing (ended, suspended, or never started): its token ends too
            with self._lock:
                credential = self._credentials.pop(run_id, None)
            if credential is not None:
                self.workload.revoke(credential)

    def _drive(self, run_id: str, resume: bool) -> None:
        try:
            engine = self._prepare(run_id, resume)
        except Exception as exc:  # the run cannot start (its pipeline or arguments no longer load)
            with self._lock:
                self._queued.discard(run_id)
            self.store.end_run(run_id, "FAILED", f"cannot start the run: {str(exc).splitlines()[0]}")
            return
        if engine is None:
            return
        try:
            drive(engine, self.store)
        except (KeyboardInterrupt, RunSuspended):
            pass  # canceled (recorded by drive), or suspended (left for the next start to resume)
        except Exception:  # an engine bug: drive() recorded the run FAILED; keep the worker alive
            logger.exception("run %s: engine error", run_id)
        finally:
            with self._lock:
                self._engines.pop(run_id, None)

    def _task_env(self, run_id: str, namespace: str) -> dict[str, str]:
        """What a run's tasks need to call the control plane (kfp.Client() finds it by itself), and their profile.

        When the control plane requires credentials, that includes the path of the run's token file.
        """
        if not self.api_url:
            return {}
        env = {"KF_PIPELINES_ENDPOINT": self.api_url, "FLOWDECK_URL": self.api_url,
               "FLOWDECK_NAMESPACE": namespace or "default"}
        if self.requires_credentials is not None and self.requires_credentials():
            credential = self.workload.issue(run_id, namespace)
            with self._lock:
                self._credentials[run_id] = credential
            env.update(credential.env())
        return env

    def _prepare(self, run_id: str, resume: bool) -> Engine | None:
        """The engine for a queued run, registered as executing; None when it must not run any more."""
        try:
            run = self.store.get_run(run_id)
        except RunNotFound:  # deleted while queued
            run = None
        if run is None or run.state not in ("PENDING", "RUNNING"):  # terminated or deleted meanwhile
            with self._lock:
                self._queued.discard(run_id)
            return None
        assert self.runtime is not None
        pipeline = load_pipeline(spec_document(run.pipeline_spec, run.platform_spec))
        parameters, artifacts = prepare_arguments(pipeline, run.arguments or {})
        previous = _previous_tasks(self.store, run_id) if resume else None
        engine = new_engine(run, pipeline, parameters, artifacts, store=self.store, runtime=self.runtime,
                            settings=self.settings, previous=previous, quota=self.quota,
                            extra_env=self._task_env(run.id, run.namespace))
        with self._lock:
            if run_id not in self._queued or self._stopping:  # terminated while queued, or shutting down
                self._queued.discard(run_id)
                return None
            self._queued.discard(run_id)
            self._engines[run_id] = engine
        return engine


def _previous_tasks(store: Store, run_id: str) -> dict[str, PreviousTask]:
    """The run's recorded tasks by path; for a path recorded twice, the one that succeeded (or the latest)."""
    rows = store.list_tasks(run_id)
    reusable = [row.id for row in rows if row.state == "SUCCEEDED" and row.kind in ("container", "importer")]
    artifact_ids = store.output_artifact_ids(reusable) if reusable else {}
    previous: dict[str, PreviousTask] = {}
    for row in rows:
        known = previous.get(row.path)
        if known is not None and known.outputs is not None:
            continue
        outputs = None
        if row.id in reusable:
            recorded = row.outputs or {}
            artifacts = {
                key: [{**artifact, "_id": artifact_ids.get((row.id, key, position))}
                      for position, artifact in enumerate(items)]
                for key, items in (recorded.get("artifacts") or {}).items()
            }
            outputs = (dict(recorded.get("parameters") or {}), artifacts)
        previous[row.path] = PreviousTask(id=row.id, kind=row.kind, state=row.state, attempts=row.attempts,
                                          outputs=outputs)
    return previous


def profile_quota(store: Store, namespace: str) -> dict[str, Any] | None:
    """The `resourceQuotaSpec.hard` of the profile named `namespace` (a Profile resource), if it has one."""
    query = select(ResourceRow.spec).where(ResourceRow.kind == "Profile", ResourceRow.namespace == "",
                                           ResourceRow.name == (namespace or "default"))
    with store.engine.connect() as conn:
        spec = conn.execute(query).scalar_one_or_none()
    return ((spec or {}).get("resourceQuotaSpec") or {}).get("hard")


def _signal(pid: int, signum: int) -> bool:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True
