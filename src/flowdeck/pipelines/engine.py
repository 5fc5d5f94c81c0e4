"""The pipeline engine: executes a KFP v2 pipeline spec, event by event.

One thread owns all run state. Workloads finish on the runtime's threads and post an event to a
queue; the engine drains the queue, updates nodes, wakes dependents, starts whatever became ready
(bounded by the global and per-loop parallelism), and commits the step's store writes in one
transaction. Nothing sleeps or polls except retry back-off timers.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import queue
import re
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flowdeck.artifacts import is_local
from flowdeck.pipelines import cache as cache_keys
from flowdeck.pipelines import executors, inputs
from flowdeck.pipelines.components import PythonComponent, parse_python_component, satisfied_here
from flowdeck.pipelines.errors import TaskFailure
from flowdeck.pipelines.importer import imported_artifact
from flowdeck.pipelines.model import BLOCKING, Node, PreviousTask, Scope
from flowdeck.pipelines.recorder import RunRecorder
from flowdeck.pipelines.spec import Pipeline
from flowdeck.pipelines.values import evaluate_condition, normalize
from flowdeck.pipelines.venvs import VenvError, python_for
from flowdeck.runtime import Runtime, Workload, WorkloadHandle
from flowdeck.runtime.quotas import Demand, QuotaError, QuotaGate, parse_quantity
from flowdeck.store import Store

logger = logging.getLogger("flowdeck")
INTERRUPTED = "canceled by the user (Ctrl-C)"
#: Iterations of a loop without a parallelism limit that are open at once (see _next_iterations).
ITERATION_WINDOW = 64
_DURATION = re.compile(r"^\s*([0-9.]+)\s*s?\s*$")


@dataclass
class RunOptions:
    run_id: str
    display_name: str
    artifact_root: str
    logs_dir: Path
    venv_dir: Path
    enable_caching: bool = True
    max_parallel: int = 8
    #: The run's profile: its quota (if any) limits the run's workloads.
    namespace: str = ""
    #: Added to every task's environment (e.g. how to reach the control plane, with the run's token).
    extra_env: dict[str, str] = field(default_factory=dict)


class Listener:
    """Receives progress; the CLI renders it. Methods are called on the engine thread.

    The default one logs messages (warnings about what cannot apply locally) to the `flowdeck` logger.
    """

    def run_started(self, run_id: str) -> None:
        """The run is recorded in the store under `run_id` and about to start."""

    def task_changed(self, node: Node) -> None:
        """A task changed state (node.state); override to show progress."""

    def message(self, text: str) -> None:
        logger.warning(text)


class RunSuspended(Exception):
    """The engine stopped a run without ending it (the control plane is stopping); it can be resumed."""


class Engine:
    """Drives one run to its end on the calling thread.

    `previous` resumes a run that an earlier execution left unfinished (or that is retried): tasks
    keep their ids, containers and importers that succeeded then are reused without running again,
    and every other task runs anew.
    """

    def __init__(self, pipeline: Pipeline, arguments: dict[str, Any], store: Store, runtime: Runtime,
                 options: RunOptions, listener: Listener | None = None,
                 root_artifacts: dict[str, list[dict[str, Any]]] | None = None,
                 previous: dict[str, PreviousTask] | None = None, quota: QuotaGate | None = None) -> None:
        self.pipeline = pipeline
        self.arguments = arguments
        self.root_artifacts = root_artifacts or {}
        self.outputs: dict[str, Any] = {"parameters": {}, "artifacts": {}}
        self.store = store
        self.runtime = runtime
        self.options = options
        self.listener = listener or Listener()
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.record = RunRecorder(store, options.run_id, pipeline.name)
        self.ready: deque[Node] = deque()
        self.launch_queue: deque[Node] = deque()
        self.running: dict[str, Node] = {}
        self.timers: list[tuple[float, int, Node]] = []  # (due, tie-breaker, node to retry)
        self._timer_seq = 0
        self.root: Scope | None = None
        self.done = False
        self.canceled = False
        self.cancel_reason = ""
        self.suspended = False
        self.previous = dict(previous or {})
        self.quota = quota
        self.admitted: set[str] = set()  # nodes holding quota for their current attempt
        self.quota_waiting: dict[str, str] = {}  # node id -> why it waits for quota
        self.warned: set[str] = set()
        self.failed_nodes: list[Node] = []
        self._python_components: dict[str, PythonComponent | None] = {}
        self._packages_satisfied: dict[tuple[str, ...], bool] = {}
        self.created = datetime.now(timezone.utc)
        self.resource_name = f"{pipeline.name}-{options.run_id[:8]}"
        self.pipeline_values = {
            "pipeline_job_name": options.display_name,
            "pipeline_job_resource_name": self.resource_name,
            "pipeline_job_uuid": options.run_id,
            "pipeline_root": options.artifact_root,
            "pipeline_job_create_time_utc": self.created.isoformat(),
            "pipeline_job_schedule_time_utc": self.created.isoformat(),
            "workspace_path": os.path.join(options.artifact_root, pipeline.name, options.run_id, "workspace"),
        }

    # ---------------------------------------------------------------------------------- main loop
    def run(self) -> str:
        """Execute the pipeline to the end and return the run's final state.

        Ctrl-C (SIGINT) or SIGTERM cancels the run between two steps, so the store is never left
        half-written; the engine then raises KeyboardInterrupt.
        """
        root_component = self.pipeline.root
        parameters = inputs.with_defaults(root_component, dict(self.arguments))
        self.root = Scope(component=root_component, owner=None, path="", parameters=parameters,
                          artifacts=dict(self.root_artifacts))
        self.record.run_changed(state="RUNNING", started_at=datetime.now(timezone.utc))
        previous_handlers = self._catch_signals()
        try:
            self._open_scope(self.root)
            self._pump()
            while not self.done:
                if not (self.running or self.timers or self.events.qsize() or self.quota_waiting):
                    raise RuntimeError("the run cannot make progress: no task is running, ready or waiting")
                timeout = None
                if self.timers:
                    timeout = max(0.0, self.timers[0][0] - time.monotonic())
                try:
                    event = self.events.get(timeout=timeout)
                except queue.Empty:
                    event = None
                if event is not None:
                    self._handle(event)
                    while not self.done:
                        try:
                            self._handle(self.events.get_nowait())
                        except queue.Empty:
                            break
                if self.done:
                    break
                self._fire_timers()
                self._pump()
        except KeyboardInterrupt:
            self.cancel(INTERRUPTED)
        except Exception as exc:
            # an engine bug: stop the run's processes and record every unfinished task as FAILED, then re-raise
            self._stop_all(f"engine error: {type(exc).__name__}: {exc}", "FAILED")
            raise
        finally:
            for node_id in list(self.admitted):
                self._release(node_id)
            self._close_leftovers()
            self.record.flush()
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
        if self.suspended:
            raise RunSuspended(self.cancel_reason)
        if self.canceled:
            raise KeyboardInterrupt(self.cancel_reason)
        return self.final_state

    def _close_leftovers(self) -> None:
        """End the tasks of an earlier execution that this one never reached (resumed runs only)."""
        state = "CANCELED" if self.canceled else "SKIPPED"
        for previous in self.previous.values():
            if previous.state not in ("SUCCEEDED", "SKIPPED", "NOT_TRIGGERED", "CANCELED", "FAILED"):
                self.record.task_ended(previous.id, state, "not reached when the run was resumed")
        self.previous.clear()

    def request_cancel(self, reason: str) -> None:
        """Cancel the run from another thread (it ends CANCELED; `run` raises KeyboardInterrupt)."""
        self.events.put(("cancel", reason))

    def request_suspend(self, reason: str) -> None:
        """Stop the run from another thread without ending it (`run` raises RunSuspended)."""
        self.events.put(("suspend", reason))

    def _catch_signals(self) -> dict[int, Any]:
        """Turn SIGINT/SIGTERM into a cancel event (only the main thread can own signal handlers)."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def interrupt(signum: int, _frame: Any) -> None:
            self.events.put(("interrupt", signal.Signals(signum).name))

        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, interrupt)
        return previous

    @property
    def final_state(self) -> str:
        assert self.root is not None
        if self.canceled:
            return "CANCELED"
        return "FAILED" if self.root.failed else "SUCCEEDED"

    def public_outputs(self) -> dict[str, Any]:
        """Pipeline outputs: parameter values, and `{"uri", "metadata"}` for artifacts."""
        result: dict[str, Any] = dict(self.outputs["parameters"])
        definitions = (self.pipeline.root.get("outputDefinitions") or {}).get("artifacts") or {}
        for name, artifacts in self.outputs["artifacts"].items():
            described = [{"uri": a["uri"], "metadata": a.get("metadata") or {}} for a in artifacts]
            is_list = (definitions.get(name) or {}).get("isArtifactList") or len(described) != 1
            result[name] = described if is_list else described[0]
        return _jsonable(result)

    def run_error(self) -> str | None:
        """One line saying why the run did not succeed, naming the first failed task."""
        if self.final_state == "SUCCEEDED":
            return None
        for node in self.failed_nodes:
            return f"task {node.path} failed: {node.error}"
        return None

    def cancel(self, reason: str) -> None:
        """Stop everything: running workloads are killed, pending tasks end CANCELED."""
        if self.canceled:
            return
        self.canceled = True
        self.cancel_reason = reason
        self._stop_all(reason, "CANCELED")
        self.record.run_changed(error=reason)

    def _stop_all(self, reason: str, state: str) -> None:
        """Stop every running workload and end every unfinished task in `state`."""
        self.quota_waiting.clear()
        for key in [k for k in self.running if k.startswith("venv:")]:
            self._set_state(self.running.pop(key), state, error=reason)
        stoppers = [
            threading.Thread(target=self.runtime.stop, args=(node.handle,), kwargs={"grace_seconds": 3.0})
            for node in self.running.values() if node.handle is not None
        ]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        deadline = time.monotonic() + 10
        while self.running and time.monotonic() < deadline:
            try:
                kind, payload = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            if kind == "exit":
                node = self.running.pop(payload[0].id, None)
                if node is not None:
                    self.record.attempt_ended(node, payload[1])
                    self._set_state(node, state, error=reason)
        for scope_node in self._all_nodes():
            if not scope_node.finished:
                self._set_state(scope_node, state, error=reason)
        self.done = True

    def _all_nodes(self) -> list[Node]:
        result: list[Node] = []
        stack = [self.root] if self.root else []
        while stack:
            scope = stack.pop()
            for node in scope.nodes.values():
                result.append(node)
                stack.extend(node.iteration_results.values())
        return result

    def _handle(self, event: tuple[str, Any]) -> None:
        kind, payload = event
        if kind == "exit":
            handle, code = payload
            node = self.running.pop(handle.id, None)
            if node is not None:
                self._release(node.id)
                self._executor_exited(node, code)
        elif kind == "message":
            self.listener.message(payload)
        elif kind == "interrupt":
            self.cancel(INTERRUPTED if payload == "SIGINT" else f"canceled: the engine received {payload}")
        elif kind == "cancel":
            self.cancel(payload)
        elif kind == "quota":
            pass  # quota was released in the run's profile: the next pump retries waiting workloads
        elif kind == "suspend" and not self.canceled:
            self.suspended = self.canceled = True
            self.cancel_reason = payload
            self._stop_all(payload, "CANCELED")
        elif kind == "venv-ready":
            node, python, error = payload
            self.running.pop(f"venv:{node.id}", None)
            if error:
                node.attempts += 1
                self.record.task_changed(node, attempts=node.attempts)
                self._attempt_failed(node, error)
            else:
                self._launch(node, python)

    def _pump(self) -> None:
        """Process ready nodes and launch queued workloads until nothing more can move."""
        while True:
            while self.ready:
                self._start_node(self.ready.popleft())
            if not self._launch_queued() and not self.ready:
                break
        self.record.flush()

    def _launch_queued(self) -> bool:
        """Start queued workloads while slots are free and their profile's quota admits them."""
        launched = False
        waiting: deque[Node] = deque()
        while self.launch_queue and len(self.running) < self.options.max_parallel:
            node = self.launch_queue.popleft()
            if node.finished:
                continue
            if not self._admit(node):
                if not node.finished:
                    waiting.append(node)
                continue
            self._run_executor(node)
            launched = True
        self.launch_queue.extendleft(reversed(waiting))
        return launched

    def _admit(self, node: Node) -> bool:
        """Whether the profile's quota lets `node` start now (a node that can never fit fails)."""
        if self.quota is None or not self.quota.limits(self.options.namespace):
            return True
        component = self.pipeline.component(node.component_name)
        container = self.pipeline.executor(component["executorLabel"])["container"]
        try:
            demand = workload_demand(container)
        except QuotaError as exc:  # e.g. a resource request given by a pipeline parameter
            self._finish(node, "FAILED", error=f"cannot run in a profile with a quota: resources: {exc}")
            return False
        admission = self.quota.try_admit(self.options.namespace, node.id, demand, wake=self._wake_for_quota)
        if admission.admitted:
            self.admitted.add(node.id)
            if self.quota_waiting.pop(node.id, None) is not None:
                self.record.task_changed(node, error=None)
            return True
        if admission.never_fits:
            self.quota_waiting.pop(node.id, None)
            self._finish(node, "FAILED", error=f"cannot run: {admission.reason}")
        elif self.quota_waiting.get(node.id) != admission.reason:
            self.quota_waiting[node.id] = admission.reason or "waiting for quota"
            self.record.task_changed(node, error=admission.reason)
            self.listener.message(f"{node.path}: {admission.reason}")
        return False

    def _wake_for_quota(self) -> None:
        self.events.put(("quota", None))

    def _release(self, node_id: str) -> None:
        if self.quota is not None and node_id in self.admitted:
            self.admitted.discard(node_id)
            self.quota.release(self.options.namespace, node_id)

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, node = heapq.heappop(self.timers)
            if node.finished or self.canceled:
                continue
            if node.kind == "dag":
                self._open_dag(node)
            else:
                self.launch_queue.append(node)

    # ------------------------------------------------------------------------------------ scopes
    def _open_scope(self, scope: Scope) -> None:
        tasks = scope.tasks
        for name, spec in tasks.items():
            component = self.pipeline.component(spec["componentRef"]["name"])
            if spec.get("parameterIterator") or spec.get("artifactIterator"):
                kind = "loop"
            elif "dag" in component:
                kind = "dag"
            elif "importer" in self.pipeline.executor(component["executorLabel"]):
                kind = "importer"
            else:
                kind = "container"
            path = f"{scope.path}/{name}" if scope.path else name
            node = Node(name=name, spec=spec, scope=scope, path=path, kind=kind)
            scope.nodes[name] = node
            previous = self.previous.pop(path, None)
            if previous is None:
                self.record.task_created(node, scope.owner)
            else:
                node.id, node.attempts, node.retry_base, node.reuse = (
                    previous.id, previous.attempts, previous.attempts, previous.outputs)
                if node.reuse is None:
                    self.record.task_reset(node, scope.owner)
        for node in scope.nodes.values():
            upstream = [scope.nodes[d] for d in node.spec.get("dependentTasks") or [] if d in scope.nodes]
            node.waiting = len(upstream)
            for producer in upstream:
                producer.dependents.append(node)
        scope.unfinished = len(scope.nodes)
        if not scope.nodes:
            self._close_scope(scope)
            return
        for node in scope.nodes.values():
            if node.waiting == 0:
                self.ready.append(node)

    def _close_scope(self, scope: Scope) -> None:
        owner = scope.owner
        if owner is None:
            self._finish_run(scope)
            return
        if owner.kind == "loop":
            self._iteration_done(owner, scope)
            return
        if scope.failed:
            error = scope.error or "a task inside failed"
            if not self.canceled and self._schedule_retry(owner):  # set_retry on a pipeline used as a component
                self.listener.message(f"{owner.path} failed ({error}); retrying (attempt {owner.attempts + 1})")
                return
            self._finish(owner, "FAILED", error=error)
            return
        owner.parameters_out, owner.artifacts_out = self._scope_outputs(scope)
        self._finish(owner, "SUCCEEDED")

    def _scope_outputs(self, scope: Scope) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        outputs = (scope.component.get("dag") or {}).get("outputs") or {}
        parameters: dict[str, Any] = {}
        for name, spec in (outputs.get("parameters") or {}).items():
            selectors = []
            if "valueFromParameter" in spec:
                selectors = [spec["valueFromParameter"]]
            elif "valueFromOneof" in spec:
                selectors = spec["valueFromOneof"].get("parameterSelectors") or []
            for selector in selectors:
                producer = scope.nodes.get(selector["producerSubtask"])
                key = selector["outputParameterKey"]
                if producer is not None and key in producer.parameters_out:
                    parameters[name] = producer.parameters_out[key]
                    break
        artifacts: dict[str, list[dict[str, Any]]] = {}
        for name, spec in (outputs.get("artifacts") or {}).items():
            for selector in spec.get("artifactSelectors") or []:
                producer = scope.nodes.get(selector["producerSubtask"])
                key = selector["outputArtifactKey"]
                if producer is not None and key in producer.artifacts_out:
                    artifacts[name] = producer.artifacts_out[key]
                    break
        return parameters, artifacts

    def _finish_run(self, scope: Scope) -> None:
        parameters, artifacts = self._scope_outputs(scope)
        self.outputs = {"parameters": parameters, "artifacts": artifacts}
        self.done = True

    # ------------------------------------------------------------------------------------- nodes
    def _start_node(self, node: Node) -> None:
        if node.finished or self.canceled:
            return
        scope = node.scope
        policy = node.spec.get("triggerPolicy") or {}
        all_completed = policy.get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED"
        blocked = [
            d for d in node.spec.get("dependentTasks") or []
            if d in scope.nodes and scope.nodes[d].state in BLOCKING
        ]
        if blocked and not all_completed:
            self._finish(node, "SKIPPED", error=f"upstream task {blocked[0]} did not succeed")
            return
        try:
            self._resolve_inputs(node)
            condition = policy.get("condition")
            if condition and not evaluate_condition(condition, node.parameters_in):
                self._finish(node, "NOT_TRIGGERED")
                return
        except TaskFailure as exc:
            self._finish(node, "FAILED", error=str(exc))
            return
        if node.reuse is not None:  # succeeded in an earlier execution of this run: not run again
            node.parameters_out, node.artifacts_out = node.reuse
            node.state = "SUCCEEDED"
            self.listener.task_changed(node)
            self._settle(node)
            return
        if node.kind != "container":  # a container task is RUNNING once it has a slot (see _run_executor)
            self._set_state(node, "RUNNING")
        self.record.task_inputs(node)
        component = self.pipeline.component(node.component_name)
        if node.kind == "loop":
            self._start_loop(node)
        elif node.kind == "dag":
            self._open_dag(node)
        elif node.kind == "importer":
            self._run_importer(node, component)
        else:
            self._prepare_executor(node, component)

    def _open_dag(self, node: Node) -> None:
        """Run a sub-pipeline (or control-flow group) task: one more attempt of its DAG."""
        component = self.pipeline.component(node.component_name)
        node.attempts += 1
        self.record.task_changed(node, attempts=node.attempts)
        parameters = inputs.with_defaults(component, dict(node.parameters_in))
        child = Scope(component=component, owner=node, path=node.path, parameters=parameters,
                      artifacts=dict(node.artifacts_in))
        node.iteration_results[0] = child
        self._open_scope(child)

    def _finish(self, node: Node, state: str, error: str | None = None) -> None:
        if node.finished:
            return
        self._set_state(node, state, error=error)
        self.record.task_finished(node)
        self._settle(node)

    def _settle(self, node: Node) -> None:
        """Account for a finished node: its scope's failure, its dependents, and its scope's end."""
        scope = node.scope
        if node.state == "FAILED":
            if not scope.failed:
                scope.error = node.error if node.kind in ("dag", "loop") else f"task {node.path} failed: {node.error}"
            scope.failed = True
            if node.kind in ("container", "importer") or not self.failed_nodes:
                self.failed_nodes.append(node)
        for dependent in node.dependents:
            dependent.waiting -= 1
            if dependent.waiting == 0:
                self.ready.append(dependent)
        scope.unfinished -= 1
        if node.kind in ("dag", "loop"):
            node.iteration_results.clear()  # release finished sub-scopes: memory stays flat
        if scope.unfinished == 0:
            self._close_scope(scope)

    def _set_state(self, node: Node, state: str, error: str | None = None) -> None:
        node.state = state
        if error:
            node.error = error
        self.record.task_state(node, error)
        self.listener.task_changed(node)

    # ------------------------------------------------------------------------------------ inputs
    def _resolve_inputs(self, node: Node) -> None:
        parameters, artifacts = inputs.resolve(node, self._final_status)
        if node.kind in ("container", "importer"):
            component = self.pipeline.component(node.component_name)
            parameters = inputs.with_defaults(component, parameters)
            inputs.check_required(component, parameters, artifacts)
        node.parameters_in, node.artifacts_in = parameters, artifacts

    def _final_status(self, producer: Node | None) -> dict[str, Any]:
        state = producer.state if producer else "FAILED"
        status = {"SUCCEEDED": "COMPLETE"}.get(state, state)
        error = producer.error if producer and state != "SUCCEEDED" else None
        return {
            "state": status,
            "pipelineJobResourceName": self.resource_name,
            "pipelineTaskName": producer.name if producer else "",
            "error": {"code": 0 if not error else 2, "message": error or ""},
        }

    # ------------------------------------------------------------------------------------- loops
    def _start_loop(self, node: Node) -> None:
        spec = node.spec
        if spec.get("parameterIterator"):
            iterator = spec["parameterIterator"]
            items_spec = iterator.get("items") or {}
            if "raw" in items_spec:
                items = json.loads(items_spec["raw"]) if isinstance(items_spec["raw"], str) else items_spec["raw"]
            else:
                items = node.parameters_in.get(items_spec.get("inputParameter"))
                if isinstance(items, str):
                    try:
                        items = json.loads(items)
                    except ValueError:
                        items = None
            if not isinstance(items, list):
                self._finish(node, "FAILED", error=f"loop items are not a list: {json.dumps(items)[:80]}")
                return
            node.items = [normalize(item) for item in items]
        else:
            iterator = spec["artifactIterator"]
            node.items = list(node.artifacts_in.get(iterator["items"]["inputArtifact"]) or [])
        self.record.task_inputs(node, iterations=len(node.items))
        if not node.items:
            self._loop_outputs(node)
            self._finish(node, "SUCCEEDED")
            return
        self._next_iterations(node)

    def _next_iterations(self, node: Node) -> None:
        """Open iterations up to the loop's parallelism limit.

        Without a limit, iterations are still opened in a bounded window ahead of the global task
        slots: they are independent, so this changes no result, and memory stays flat for huge loops.
        """
        limit = (node.spec.get("iteratorPolicy") or {}).get("parallelismLimit") or 0
        if limit <= 0:
            limit = max(ITERATION_WINDOW, 4 * self.options.max_parallel)
        assert node.items is not None
        component = self.pipeline.component(node.component_name)
        is_parameter = bool(node.spec.get("parameterIterator"))
        item_input = (node.spec.get("parameterIterator") or node.spec.get("artifactIterator"))["itemInput"]
        while node.next_item < len(node.items) and node.active_iterations < limit:
            index = node.next_item
            node.next_item += 1
            node.active_iterations += 1
            parameters = dict(node.parameters_in)
            artifacts = dict(node.artifacts_in)
            if is_parameter:
                parameters[item_input] = node.items[index]
            else:
                artifacts[item_input] = [node.items[index]]
            parameters = inputs.with_defaults(component, parameters)
            child = Scope(component=component, owner=node, path=f"{node.path}[{index}]",
                          parameters=parameters, artifacts=artifacts)
            node.iteration_results[index] = child
            self._open_scope(child)
            if node.finished:
                return

    def _iteration_done(self, node: Node, scope: Scope) -> None:
        node.active_iterations -= 1
        if scope.failed:
            node.failed_iterations += 1
            node.error = node.error or scope.error
        parameters, artifacts = self._scope_outputs(scope)
        scope.nodes = {}  # the iteration's tasks are recorded; keep only its outputs
        scope.parameters, scope.artifacts = parameters, artifacts
        assert node.items is not None
        if node.next_item < len(node.items) and not self.canceled:
            self._next_iterations(node)
        if node.active_iterations == 0 and node.next_item >= len(node.items) and not node.finished:
            if node.failed_iterations:
                self._finish(node, "FAILED", error=node.error or "an iteration failed")
            else:
                self._loop_outputs(node)
                self._finish(node, "SUCCEEDED")

    def _loop_outputs(self, node: Node) -> None:
        """Collect per-iteration outputs (dsl.Collected) in iteration order."""
        component = self.pipeline.component(node.component_name)
        outputs = (component.get("dag") or {}).get("outputs") or {}
        iterations = [node.iteration_results[i] for i in sorted(node.iteration_results)]
        for name in outputs.get("parameters") or {}:
            node.parameters_out[name] = [s.parameters[name] for s in iterations if name in s.parameters]
        for name in outputs.get("artifacts") or {}:
            node.artifacts_out[name] = [a for s in iterations for a in s.artifacts.get(name, [])]

    # --------------------------------------------------------------------------------- importers
    def _run_importer(self, node: Node, component: dict[str, Any]) -> None:
        spec = self.pipeline.executor(component["executorLabel"])["importer"]
        try:
            artifact = imported_artifact(spec, node.parameters_in, self.pipeline_values)
        except TaskFailure as exc:
            self._finish(node, "FAILED", error=str(exc))
            return
        if is_local(artifact["uri"]) and not os.path.exists(artifact["uri"]):
            self._warn(f"importer {node.path}: {artifact['uri']} does not exist on this machine")
        node.artifacts_out = {"artifact": [self.record.artifact_output(node, "artifact", artifact)]}
        self._finish(node, "SUCCEEDED")

    # --------------------------------------------------------------------------------- executors
    def _prepare_executor(self, node: Node, component: dict[str, Any]) -> None:
        executor = self.pipeline.executor(component["executorLabel"])
        container = executor.get("container")
        if container is None:
            kind = next(iter(executor), "unknown")
            self._finish(node, "FAILED", error=f"executor type {kind!r} cannot run locally")
            return
        self._note_platform(node, component)
        if str(container.get("image", "")).startswith("argostub/"):
            self._finish(node, "FAILED", error=f"{container['image'].split('/')[-1]} needs Kubernetes (PVCs); "
                         "it cannot run on the local runtime")
            return
        node.task_dir = os.path.join(self.options.artifact_root, self.pipeline.name,
                                     self.options.run_id, _safe_path(node.path))
        if self._try_cache(node, component, container):
            return
        self.launch_queue.append(node)

    def _note_platform(self, node: Node, component: dict[str, Any]) -> None:
        label = component["executorLabel"]
        if label in self.pipeline.kubernetes_executors:
            keys = ", ".join(sorted(self.pipeline.kubernetes_executors[label]))
            self._warn(f"Kubernetes settings of {node.name} ({keys}) have no effect locally")

    def _try_cache(self, node: Node, component: dict[str, Any], container: dict[str, Any]) -> bool:
        options = node.spec.get("cachingOptions") or {}
        node.fingerprint = cache_keys.fingerprint(
            component_name=node.component_name, component=component, container=container,
            parameters=node.parameters_in, artifacts=node.artifacts_in, cache_key=options.get("cacheKey"),
            namespace=self.options.namespace,
        )
        self.record.task_changed(node, fingerprint=node.fingerprint)
        if not (self.options.enable_caching and options.get("enableCache")):
            return False
        entry = self.record.cache_lookup(node.fingerprint)
        if entry is None:
            return False
        node.cached = True
        node.cached_from = entry.get("source")
        node.parameters_out = entry.get("parameters") or {}
        node.artifacts_out = entry.get("artifacts") or {}
        self.record.lineage(node, reused_outputs=True)
        self._finish(node, "SUCCEEDED")
        return True

    def _python_component(self, label: str) -> PythonComponent | None:
        """The Python component behind executor `label` (parsed once per run), or None for plain containers."""
        if label not in self._python_components:
            container = self.pipeline.executor(label)["container"]
            self._python_components[label] = parse_python_component(container)
        return self._python_components[label]

    def _run_executor(self, node: Node) -> None:
        if node.state != "RUNNING":
            self._set_state(node, "RUNNING")
        component = self.pipeline.component(node.component_name)
        python_component = self._python_component(component["executorLabel"])
        if python_component and python_component.packages and not self._packages_here(python_component):
            self.running[f"venv:{node.id}"] = node
            threading.Thread(target=self._build_venv, args=(node, python_component), daemon=True).start()
            return
        self._launch(node, sys.executable)

    def _packages_here(self, python_component: PythonComponent) -> bool:
        key = tuple(python_component.packages)
        if key not in self._packages_satisfied:
            self._packages_satisfied[key] = satisfied_here(python_component.packages)
        return self._packages_satisfied[key]

    def _build_venv(self, node: Node, python_component: PythonComponent) -> None:
        try:
            python = python_for(python_component.packages, python_component.pip_options,
                                self.options.venv_dir, announce=lambda text: self.events.put(("message", text)))
            self.events.put(("venv-ready", (node, python, None)))
        except VenvError as exc:
            self.events.put(("venv-ready", (node, None, str(exc))))

    def _launch(self, node: Node, python: str) -> None:
        self.running.pop(f"venv:{node.id}", None)
        if node.finished or self.canceled:
            self._release(node.id)
            return
        component = self.pipeline.component(node.component_name)
        container = self.pipeline.executor(component["executorLabel"])["container"]
        node.attempts += 1
        assert node.task_dir is not None
        try:
            workload = self._workload(node, component, container, python)
        except TaskFailure as exc:  # the attempt failed before its process could start
            self.record.task_changed(node, attempts=node.attempts)
            self._attempt_failed(node, str(exc))
            return
        self.record.attempt_started(node, workload.log_path)
        try:
            node.handle = self.runtime.start(workload, self._on_exit)
        except RuntimeError as exc:  # the runtime itself is unavailable (e.g. the fork server cannot start)
            self.record.attempt_ended(node, -1)
            self._attempt_failed(node, f"could not start: {exc}")
            return
        self.running[node.handle.id] = node

    def _on_exit(self, handle: WorkloadHandle, code: int) -> None:
        self.events.put(("exit", (handle, code)))

    def _workload(self, node: Node, component: dict[str, Any], container: dict[str, Any],
                  python: str) -> Workload:
        assert node.task_dir is not None
        os.makedirs(self.pipeline_values["workspace_path"], exist_ok=True)
        python_component = self._python_component(component["executorLabel"])
        if python_component is None:
            self._warn_image(container)
        prepared = executors.prepare(
            component=component, container=container, python_component=python_component, python=python,
            parameters=node.parameters_in, artifacts=node.artifacts_in, task_dir=node.task_dir,
            pipeline_values={**self.pipeline_values, "pipeline_task_name": node.name, "pipeline_task_uuid": node.id},
            staging_dir=os.path.join(node.task_dir, ".flowdeck", "inputs"),
            templates={name for name, spec in ((node.spec.get("inputs") or {}).get("parameters") or {}).items()
                       if "runtimeValue" in spec},
        )
        log_path = self.options.logs_dir / self.options.run_id / f"{_safe_path(node.path)}.{node.attempts}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        return Workload(
            name=node.name, command=prepared.command, env={**prepared.env, **self.options.extra_env},
            working_dir=node.task_dir,
            log_path=str(log_path), image=container.get("image"),
            labels={"run": self.options.run_id, "task": node.path},
        )

    def _executor_exited(self, node: Node, code: int) -> None:
        self.record.attempt_ended(node, code)
        if self.canceled:
            return
        if code == 0:
            try:
                self._collect_outputs(node)
            except TaskFailure as exc:
                code, error = 1, str(exc)
            else:
                self.record.lineage(node)
                options = node.spec.get("cachingOptions") or {}
                if self.options.enable_caching and options.get("enableCache") and node.fingerprint:
                    self.record.cache_result(node)
                self._finish(node, "SUCCEEDED")
                return
        else:
            error = f"exited with code {code}" if code > 0 else f"killed by signal {-code}"
            last_line = _last_log_line(node.handle.workload.log_path if node.handle else None)
            if last_line:
                error = f"{error}: {last_line}"
        self._attempt_failed(node, error)

    def _attempt_failed(self, node: Node, error: str) -> None:
        """Retry the task if its policy allows, else fail it."""
        self._release(node.id)
        if not self.canceled and self._schedule_retry(node):
            self.listener.message(f"{node.path} failed ({error}); retrying (attempt {node.attempts + 1})")
            return
        self._finish(node, "FAILED", error=error)

    def _schedule_retry(self, node: Node) -> bool:
        policy = node.spec.get("retryPolicy") or {}
        if node.attempts - node.retry_base > int(policy.get("maxRetryCount") or 0):
            return False
        backoff = _seconds(policy.get("backoffDuration"), 0.0)
        factor = float(policy.get("backoffFactor") or 2.0)
        ceiling = _seconds(policy.get("backoffMaxDuration"), 3600.0)
        delay = min(backoff * factor ** (node.attempts - node.retry_base - 1), ceiling)
        self._timer_seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self._timer_seq, node))
        return True

    def _collect_outputs(self, node: Node) -> None:
        assert node.task_dir is not None
        component = self.pipeline.component(node.component_name)
        parameters, artifacts = executors.collect(component, node.task_dir, self.options.artifact_root)
        node.parameters_out = parameters
        node.artifacts_out = {
            name: [self.record.artifact_output(node, name, record, position) for position, record in enumerate(records)]
            for name, records in artifacts.items()
        }

    # ------------------------------------------------------------------------------- messages
    def _warn(self, text: str) -> None:
        if text not in self.warned:
            self.warned.add(text)
            self.listener.message(text)

    def _warn_image(self, container: dict[str, Any]) -> None:
        if container.get("image"):
            self._warn("container images are not used locally: container commands run on this machine")


def workload_demand(container: dict[str, Any]) -> Demand:
    """What a container asks for: its requests (else limits), as kfp compiles `set_cpu_request` & co."""
    resources = container.get("resources") or {}

    def pick(*keys: str) -> float:
        for key in keys:
            if resources.get(key) not in (None, ""):
                return parse_quantity(resources[key])
        return 0.0

    memory = pick("resourceMemoryRequest", "resourceMemoryLimit")
    if not memory:
        memory = pick("memoryRequest", "memoryLimit") * 1e9  # the older fields are in GB
    accelerator = resources.get("accelerator") or {}
    gpu = parse_quantity(accelerator.get("resourceCount") or accelerator.get("count") or 0)
    return Demand(cpu=pick("resourceCpuRequest", "cpuRequest", "resourceCpuLimit", "cpuLimit"), memory=memory,
                  gpu=gpu)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _last_log_line(path: str | None, limit: int = 300) -> str | None:
    """The last non-empty line a task wrote (for a Python component: the exception), to explain a failure."""
    if not path:
        return None
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 8192))
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.strip():
            return line.strip()[:limit]
    return None


def _safe_path(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._/\[\]-]", "_", path).replace("[", "-").replace("]", "")


def _seconds(value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(str(value))
    return float(match.group(1)) if match else default

