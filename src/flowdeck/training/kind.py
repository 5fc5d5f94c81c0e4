"""The training job kinds: Kubeflow's PyTorchJob, TFJob, XGBoostJob, JAXJob, PaddleJob (kubeflow.org/v1)
and Trainer v2's TrainJob (trainer.kubeflow.org/v1alpha1), run by the local operator in `controller`.

    flowdeck apply -f pytorchjob.yaml --wait     # ends with the job: Succeeded or Failed (with the reason)
    flowdeck get pytorchjob mnist -o json        # status: conditions, replicaStatuses, startTime...
    flowdeck logs pytorchjob mnist               # every replica's log, latest attempt

`status.state` (the STATE column) is the newest true condition, as kubectl shows it; `status.restarts`
counts gang restarts and `status.attempt` numbers the current one (flowdeck's additions).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import MappingProxyType

from pydantic import BaseModel

from flowdeck.resources.kinds import Kind, KindContext
from flowdeck.resources.model import Resource
from flowdeck.training import specs


def spec_model(kind: str) -> type[BaseModel]:
    return specs.SPEC_MODELS[kind]


def reconcile(ctx: KindContext, resource: Resource) -> float | None:
    from flowdeck.training.controller import reconcile as run

    delay = run(ctx, resource, spec_model(resource.kind).model_validate(resource.spec))
    resource.status.state = resource.status.newest_true()
    return delay


def finalize(ctx: KindContext, resource: Resource) -> None:
    from flowdeck.training.controller import finalize as run

    run(ctx, resource)


def logs(ctx: KindContext, resource: Resource) -> Iterator[str]:
    from flowdeck.training.controller import logs as run

    return run(ctx, resource)


def describe(ctx: KindContext, resource: Resource) -> list[tuple[str, str]]:
    """Each replica's command, and the job's attempt and restarts."""
    from flowdeck.runtime.commands import local_command

    plan = specs.replica_plan(resource.kind, spec_model(resource.kind).model_validate(resource.spec))
    lines = [(f"Replica {slot.name}", f"{' '.join(local_command(slot.container.command or [], slot.container.args))}"
              f" (restartPolicy {slot.restart_policy})") for slot in plan]
    status = resource.status
    lines.append(("Attempt", f"{getattr(status, 'attempt', 0) or 0} (restarts: {getattr(status, 'restarts', 0) or 0})"))
    return lines


def _v1(kind: str, plural: str) -> Kind:
    return Kind(kind=kind, api_versions=("kubeflow.org/v1",), plural=plural,
                spec_model=specs.SPEC_MODELS[kind], reconcile=reconcile, finalize=finalize, logs=logs,
                describe=describe,
                columns=(("STATE", "status.state"), ("RESTARTS", "status.restarts"),
                         ("STARTED", "status.startTime")))


PYTORCH_JOB = _v1("PyTorchJob", "pytorchjobs")
TF_JOB = _v1("TFJob", "tfjobs")
XGBOOST_JOB = _v1("XGBoostJob", "xgboostjobs")
JAX_JOB = _v1("JAXJob", "jaxjobs")
PADDLE_JOB = _v1("PaddleJob", "paddlejobs")
TRAIN_JOB = Kind(kind="TrainJob", api_versions=("trainer.kubeflow.org/v1alpha1",), plural="trainjobs",
                 spec_model=specs.SPEC_MODELS["TrainJob"], reconcile=reconcile, finalize=finalize,
                 logs=logs, describe=describe,
                 outcomes=MappingProxyType({"Complete": "Succeeded", "Failed": "Failed"}),
                 columns=(("STATE", "status.state"), ("RESTARTS", "status.restarts"),
                          ("STARTED", "status.startTime")))
