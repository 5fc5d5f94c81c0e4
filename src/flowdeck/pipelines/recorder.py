"""What the metadata store learns about a run while the engine drives it.

The engine says what happened (a task was created, changed state, started an attempt, produced an
artifact); `RunRecorder` turns that into rows in one `Batch` and commits it once per scheduling step.
Keeping this apart leaves the engine about scheduling, and gives one place that defines the records
behind `flowdeck runs get`, lineage and the cache.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flowdeck.pipelines import cache as cache_keys
from flowdeck.pipelines.executors import public
from flowdeck.pipelines.model import Node, new_id
from flowdeck.store import Batch, Store


def _now() -> datetime:
    return datetime.now(timezone.utc)


class RunRecorder:
    def __init__(self, store: Store, run_id: str, pipeline_name: str) -> None:
        self.store = store
        self.run_id = run_id
        self.pipeline_name = pipeline_name
        self.batch = Batch()

    def flush(self) -> None:
        """Commit everything recorded since the last flush, in one transaction."""
        if self.batch:
            self.store.commit(self.run_id, self.batch)
            self.batch = Batch()  # only after the commit: a failed one is retried whole by the next flush

    # -- the run ---------------------------------------------------------------------------------------
    def run_changed(self, **values: Any) -> None:
        self.batch.run_update.update(values)

    # -- tasks -----------------------------------------------------------------------------------------
    def task_created(self, node: Node, parent: Node | None) -> None:
        self.batch.new_tasks.append({
            "id": node.id, "run_id": self.run_id, "parent_id": parent.id if parent else None, "name": node.name,
            "display_name": node.display_name, "path": node.path, "kind": node.kind, "state": node.state,
            "cached": False, "attempts": 0, "inputs": {}, "outputs": {},
        })

    def task_reset(self, node: Node, parent: Node | None) -> None:
        """A task recorded by an earlier execution of this run runs again: clear what that one left."""
        self.batch.update_task(node.id, parent_id=parent.id if parent else None, state=node.state, error=None,
                               cached=False, inputs={}, outputs={}, fingerprint=None, started_at=None,
                               finished_at=None)

    def task_ended(self, task_id: str, state: str, error: str) -> None:
        """End a task that has no node (left over from an earlier execution of the run)."""
        self.batch.update_task(task_id, state=state, error=error, finished_at=_now())

    def task_changed(self, node: Node, **values: Any) -> None:
        self.batch.update_task(node.id, **values)

    def task_state(self, node: Node, error: str | None = None) -> None:
        values: dict[str, Any] = {"state": node.state}
        if error:
            values["error"] = error
        if node.state == "RUNNING":
            values["started_at"] = _now()
        elif node.state == "CANCELED":
            values["finished_at"] = _now()
        self.batch.update_task(node.id, **values)

    def task_finished(self, node: Node) -> None:
        values: dict[str, Any] = {"finished_at": _now(), "cached": node.cached}
        if node.parameters_out or node.artifacts_out or node.cached_from:
            values["outputs"] = {
                "parameters": node.parameters_out,
                "artifacts": {k: [public(a) for a in v] for k, v in node.artifacts_out.items()},
            }
            if node.cached_from:
                values["outputs"]["cached_from"] = node.cached_from  # the execution whose results were reused
        self.batch.update_task(node.id, **values)

    def task_inputs(self, node: Node, **extra: Any) -> None:
        self.batch.update_task(node.id, inputs={
            "parameters": node.parameters_in,
            "artifacts": {k: [public(a) for a in v] for k, v in node.artifacts_in.items()},
            **extra,
        })

    # -- attempts ----------------------------------------------------------------------------------------
    def attempt_started(self, node: Node, log_path: str | None) -> None:
        self.batch.update_task(node.id, attempts=node.attempts)
        self.batch.new_attempts.append({"task_id": node.id, "number": node.attempts, "state": "RUNNING",
                                        "log_path": log_path, "started_at": _now()})

    def attempt_ended(self, node: Node, exit_code: int) -> None:
        self.batch.attempt_updates.append((node.id, node.attempts, {
            "state": "SUCCEEDED" if exit_code == 0 else "FAILED", "exit_code": exit_code, "finished_at": _now()}))

    # -- artifacts and lineage --------------------------------------------------------------------------
    def artifact_output(self, node: Node, key: str, artifact: dict[str, Any], position: int = 0) -> dict[str, Any]:
        """Register a new artifact written by `node`; returns it with its id (the engine's `_id` key)."""
        artifact = {**artifact, "_id": new_id()}
        self.batch.new_artifacts.append({
            "id": artifact["_id"], "run_id": self.run_id, "name": artifact["name"], "uri": artifact["uri"],
            "schema_title": artifact["type"]["schemaTitle"],
            "schema_version": artifact["type"].get("schemaVersion", "0.0.1"),
            "metadata": artifact.get("metadata") or {},
        })
        self._event(node, artifact, "OUTPUT", key, position)
        return artifact

    def lineage(self, node: Node, *, reused_outputs: bool = False) -> None:
        """INPUT events for what `node` read; OUTPUT events too when it reused (cached) existing artifacts."""
        for key, artifacts in node.artifacts_in.items():
            for position, artifact in enumerate(artifacts):
                self._event(node, artifact, "INPUT", key, position)
        if reused_outputs:
            for key, artifacts in node.artifacts_out.items():
                for position, artifact in enumerate(artifacts):
                    self._event(node, artifact, "OUTPUT", key, position)

    def _event(self, node: Node, artifact: dict[str, Any], kind: str, key: str, position: int) -> None:
        if artifact.get("_id"):
            self.batch.new_events.append({"task_id": node.id, "artifact_id": artifact["_id"], "type": kind,
                                          "key": key, "position": position})

    # -- cache -------------------------------------------------------------------------------------------
    def cache_lookup(self, fingerprint: str) -> dict[str, Any] | None:
        """A usable cached result for `fingerprint` in this pipeline (pending writes are flushed first)."""
        self.flush()
        entry = self.store.cache_lookup(fingerprint, self.pipeline_name)
        if entry is None or not cache_keys.artifacts_present(entry):
            return None
        return entry

    def cache_result(self, node: Node) -> None:
        assert node.fingerprint is not None
        self.batch.cache_entries.append({
            "fingerprint": node.fingerprint, "pipeline_name": self.pipeline_name, "task_id": node.id,
            "outputs": {"parameters": node.parameters_out, "artifacts": node.artifacts_out,
                        "files": cache_keys.written_files(node.artifacts_out),
                        "source": {"run_id": self.run_id, "task_id": node.id, "path": node.path}},
        })
