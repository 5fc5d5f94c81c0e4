"""The pipeline run controller: executes runs submitted to the control plane.

Runs created over the API are recorded PENDING with origin "server" and executed by the same engine
as `flowdeck run`, each on a worker thread, at most `max_concurrent_runs` at once. The controller
also terminates and retries runs, and when the control plane starts it resumes the runs a previous
server left unfinished (killed, crashed or stopped): tasks that had succeeded are reused, never run
again; the others run anew.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flowdeck.config import Settings
from flowdeck.store import Store


class RunStateError(ValueError):
    """The run is not in a state that allows the request (e.g. retrying a run that succeeded)."""


class RunController:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def start(self) -> None:
        """Warm the runtime, then resume (or fail, with a reason) runs a previous server left unfinished."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop executing: running runs are suspended (their processes stopped) and resume on next start."""
        raise NotImplementedError

    def create_run(self, *, pipeline_spec: dict[str, Any], parameters: dict[str, Any] | None = None,
                   display_name: str | None = None, namespace: str = "", experiment_id: str | None = None,
                   description: str | None = None, pipeline_id: str | None = None,
                   pipeline_version_id: str | None = None, recurring_run_id: str | None = None,
                   scheduled_at: datetime | None = None, service_account: str | None = None) -> str:
        """Validate, record (PENDING) and queue a run; returns its id.

        `pipeline_spec` is a PipelineSpec dict, or `{"pipeline_spec": ..., "platform_spec": ...}` as
        kfp.Client sends for pipelines with Kubernetes settings. Raises `PipelineError` (a client
        mistake: invalid spec, unknown or mistyped parameter) before anything is recorded.
        """
        raise NotImplementedError

    def terminate(self, run_id: str) -> None:
        """Cancel a run: PENDING ones end CANCELED at once, running ones once their processes stop.

        Raises `RunNotFound`. Terminating a finished run changes nothing.
        """
        raise NotImplementedError

    def retry(self, run_id: str) -> None:
        """Run a FAILED or CANCELED run again in place, reusing the tasks that succeeded.

        Raises `RunNotFound`, or `RunStateError` for a run in any other state.
        """
        raise NotImplementedError

    def is_active(self, run_id: str) -> bool:
        """Whether this controller is executing (or has queued) the run."""
        raise NotImplementedError
