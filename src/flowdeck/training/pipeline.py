"""Launching a training job from a pipeline component, and waiting for it.

A task of a run that `flowdeck up` executes knows its control plane (`FLOWDECK_URL`), its profile
(`FLOWDECK_NAMESPACE`) and its credentials (`FLOWDECK_TOKEN_PATH`), as `flowdeck.connection`
describes. `launch_training_job` applies a job there, in the run's profile (so it counts against that
profile's quota), and by default waits for it to end; a failed job fails the task with the reason:

    @dsl.component
    def train(data: dsl.Input[dsl.Dataset], model: dsl.Output[dsl.Model]) -> str:
        from flowdeck.training.pipeline import launch_training_job
        job = launch_training_job({
            "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "mnist"},
            "spec": {"pytorchReplicaSpecs": {...}}})        # any training kind; or a CustomTrainer
        return job["status"]["completionTime"]

The job stays after it ends (`flowdeck get/logs/delete` show and remove it); applying a document
with the name of an existing job updates it, as `flowdeck apply` would.
"""

from __future__ import annotations

import time
from typing import Any

from flowdeck.connection import ResourceClient
from flowdeck.training.client import CustomTrainer, TrainerClient, TrainerError

#: The condition that ends a job well, per kind (Trainer v2's TrainJob says Complete, v1 kinds Succeeded).
_SUCCEEDED = {"TrainJob": "Complete"}
POLL_SECONDS = 0.5


class TrainingJobError(RuntimeError):
    """The job failed, or did not end within the timeout."""


def launch_training_job(document_or_trainer: dict[str, Any] | CustomTrainer, *, wait: bool = True,
                        timeout: float = 3600) -> dict[str, Any]:
    """Apply a training job and return it as the control plane shows it (metadata, spec, status), once it
    has ended when `wait`.

    `document_or_trainer` is a job document (PyTorchJob, TFJob, XGBoostJob, JAXJob, PaddleJob or
    TrainJob, as in YAML; without `metadata.namespace` it goes to the run's profile) or a `CustomTrainer`,
    which becomes a TrainJob as `TrainerClient.train` makes it. Raises `TrainingJobError` when the job
    fails (with its reason and message) or is still running after `timeout` seconds, and
    `flowdeck.training.client.TrainerError` when the control plane cannot be reached or refuses the job
    (an invalid spec: the message names the field).
    """
    if isinstance(document_or_trainer, CustomTrainer):
        with TrainerClient() as client:
            name = client.train(trainer=document_or_trainer)
        kind, namespace = "TrainJob", client.namespace
    else:
        document = document_or_trainer
        kind, metadata = document.get("kind"), document.get("metadata") or {}
        if not isinstance(kind, str) or not isinstance(metadata.get("name"), str):
            raise TrainingJobError("the job document needs a kind and a metadata.name")
        with ResourceClient(error=TrainerError) as api:
            applied = api.apply(document)
        name, namespace = applied["metadata"]["name"], applied["metadata"].get("namespace") or api.namespace
    with ResourceClient(namespace=namespace, error=TrainerError) as api:
        job = api.get(kind, name)
        deadline = time.monotonic() + timeout
        while wait:
            conditions = {c["type"]: c for c in (job.get("status") or {}).get("conditions") or ()
                          if c.get("status") == "True"}
            if _SUCCEEDED.get(job["kind"], "Succeeded") in conditions:
                return job
            if "Failed" in conditions:
                failed = conditions["Failed"]
                raise TrainingJobError(f"{job['kind']} {name} failed ({failed.get('reason')}): "
                                       f"{failed.get('message', '')}")
            if time.monotonic() > deadline:
                raise TrainingJobError(f"{job['kind']} {name} did not end within {timeout:.0f} s "
                                       f"(it is {(job.get('status') or {}).get('state') or 'starting'})")
            time.sleep(POLL_SECONDS)
            job = api.get(kind, name)
    return job
