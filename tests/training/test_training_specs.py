"""Training job specs: Kubeflow's documents parse, and every invalid one is one line naming the field at fault."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from flowdeck.resources import Kind, Registry, ResourceError, parse_resource, read_documents
from flowdeck.resources.loader import describe_error
from flowdeck.runtime.quotas import Demand
from flowdeck.training.specs import (
    FRAMEWORKS,
    SPEC_MODELS,
    PyTorchJobSpec,
    RunPolicy,
    TFJobSpec,
    TrainJobSpec,
    job_demand,
    replica_plan,
    run_policy,
)

API_VERSIONS = {"TrainJob": "trainer.kubeflow.org/v1alpha1"}


def kinds() -> Registry:
    """The training kinds as the loader sees them (the real Kind objects are the controller's)."""
    return Registry(Kind(kind, (API_VERSIONS.get(kind, "kubeflow.org/v1"),), kind.lower() + "s", model,
                         reconcile=lambda ctx, resource: None)
                    for kind, model in SPEC_MODELS.items())


def replica(container: str = "pytorch", replicas: int | None = None, **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"spec": {"containers": [
        {"name": container, "image": "pytorch/pytorch:2.13.0", "command": ["python", "train.py"]}]}}, **fields}
    if replicas is not None:
        spec["replicas"] = replicas
    return spec


def pytorch(**replicas: Any) -> dict[str, Any]:
    return {"pytorchReplicaSpecs": replicas or {"Master": replica(), "Worker": replica(replicas=2)}}


def error(kind: str, spec: dict[str, Any]) -> str:
    """The one line `flowdeck apply` shows for an invalid spec."""
    model = SPEC_MODELS[kind]
    with pytest.raises(ValidationError) as caught:
        model.model_validate(spec)
    return describe_error(caught.value, model, prefix="spec")


def parse(text: str) -> tuple[str, BaseModel]:
    """Load a YAML document as `flowdeck apply` does, then read its stored spec back as the controller does."""
    kind, resource = parse_resource(read_documents(textwrap.dedent(text))[0], kinds())
    return kind.kind, SPEC_MODELS[kind.kind].model_validate(resource.spec)


PYTORCH_YAML = """\
    apiVersion: kubeflow.org/v1
    kind: PyTorchJob
    metadata: {name: ddp, namespace: team-a}
    spec:
      nprocPerNode: 1
      runPolicy: {backoffLimit: 3, cleanPodPolicy: None}
      pytorchReplicaSpecs:
        Master:
          replicas: 1
          restartPolicy: ExitCode
          template:
            spec:
              containers:
                - name: pytorch
                  image: pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime
                  command: [python, /work/train.py]
                  args: [--epochs, "2"]
                  env: [{name: LR, value: 0.1}]
                  workingDir: /work
                  resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {cpu: "1", memory: 2Gi}}
        Worker:
          replicas: 2
          template:
            spec:
              containers:
                - name: pytorch
                  image: pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime
                  command: [python, /work/train.py]
                  resources: {limits: {cpu: "1", memory: 1Gi}}
    """


def test_a_pytorchjob_with_a_master_and_two_workers_parses_into_three_ordered_replicas() -> None:
    kind, spec = parse(PYTORCH_YAML)
    assert isinstance(spec, PyTorchJobSpec)
    assert spec.nprocPerNode == "1"
    plan = replica_plan(kind, spec)
    assert [(slot.name, slot.restart_policy) for slot in plan] == [
        ("master-0", "ExitCode"), ("worker-0", "OnFailure"), ("worker-1", "OnFailure")]
    assert len({slot: slot.name for slot in plan}) == 3  # slots key the controller's bookkeeping
    master = plan[0].container
    assert master.command == ["python", "/work/train.py"] and master.args == ["--epochs", "2"]
    assert [(var.name, var.value) for var in master.env] == [("LR", "0.1")]
    assert master.workingDir == "/work"
    assert run_policy(kind, spec) == RunPolicy(backoffLimit=3, cleanPodPolicy="None")
    # requests where given, else limits: 0.5 + 1 + 1 CPU, 1 + 1 + 1 GiB
    assert job_demand(kind, spec) == Demand(cpu=2.5, memory=3 * 2**30, gpu=0.0, workloads=3.0)


def test_a_tfjob_with_chief_ps_and_two_workers_orders_chief_ps_then_workers() -> None:
    kind, spec = parse("""\
        apiVersion: kubeflow.org/v1
        kind: TFJob
        metadata: {name: tf}
        spec:
          successPolicy: AllWorkers
          tfReplicaSpecs:
            Worker: {replicas: 2, template: {spec: {containers: [{name: tensorflow, command: [python, w.py]}]}}}
            PS: {replicas: 1, template: {spec: {containers: [{name: tensorflow, command: [python, w.py]}]}}}
            Chief: {replicas: 1, template: {spec: {containers: [{name: tensorflow, command: [python, w.py]}]}}}
        """)
    assert isinstance(spec, TFJobSpec) and spec.successPolicy == "AllWorkers"
    assert [(slot.name, slot.restart_policy) for slot in replica_plan(kind, spec)] == [
        ("chief-0", "Never"), ("ps-0", "Never"), ("worker-0", "Never"), ("worker-1", "Never")]
    assert job_demand(kind, spec) == Demand(workloads=4.0)


def test_a_trainjob_runs_num_nodes_node_replicas_of_its_trainer() -> None:
    kind, spec = parse("""\
        apiVersion: trainer.kubeflow.org/v1alpha1
        kind: TrainJob
        metadata: {name: tj}
        spec:
          runtimeRef: {name: torch-distributed}
          trainer:
            image: pytorch/pytorch:2.13.0
            command: [torchrun, /work/train.py]
            env: [{name: EPOCHS, value: "3"}]
            numNodes: 2
            numProcPerNode: 2
            resourcesPerNode: {requests: {cpu: "2", memory: 4Gi}}
          activeDeadlineSeconds: 600
        """)
    assert isinstance(spec, TrainJobSpec) and spec.trainer.numProcPerNode == 2
    plan = replica_plan(kind, spec)
    assert [(slot.name, slot.restart_policy) for slot in plan] == [("node-0", "Never"), ("node-1", "Never")]
    node = plan[0].container
    assert (node.name, node.command, [var.name for var in node.env]) == ("node", ["torchrun", "/work/train.py"],
                                                                         ["EPOCHS"])
    assert run_policy(kind, spec) == RunPolicy(activeDeadlineSeconds=600, backoffLimit=0)
    assert job_demand(kind, spec) == Demand(cpu=4.0, memory=8 * 2**30, workloads=2.0)


@pytest.mark.parametrize(("kind", "spec", "types"), [
    ("PyTorchJob", pytorch(master=replica(), worker=replica(replicas=2)), ["Master", "Worker"]),
    ("TFJob", {"tfReplicaSpecs": {"chief": replica("tensorflow"), "ps": replica("tensorflow"),
                                  "evaluator": replica("tensorflow")}}, ["Chief", "PS", "Evaluator"]),
    ("JAXJob", {"jaxReplicaSpecs": {"worker": replica("jax", replicas=2)}}, ["Worker", "Worker"]),
])
def test_lower_case_replica_types_are_normalised_to_camel_case(kind: str, spec: dict, types: list[str]) -> None:
    model = SPEC_MODELS[kind].model_validate(spec)
    assert [slot.type for slot in replica_plan(kind, model)] == (types if kind != "PyTorchJob"
                                                                 else ["Master", "Worker", "Worker"])
    assert list(getattr(model, FRAMEWORKS[kind].replica_key)) == list(dict.fromkeys(types))


def test_the_stored_spec_validates_again_unchanged() -> None:
    """`Kind.validate_spec` stores the dumped spec; the controller validates it again."""
    elastic = {**pytorch(Worker=replica(replicas=2)), "elasticPolicy": {"maxReplicas": 4, "nProcPerNode": 2}}
    for kind, spec in [("PyTorchJob", pytorch()), ("PyTorchJob", elastic),
                       ("TrainJob", {"runtimeRef": {"name": "torch-distributed"},
                                     "trainer": {"command": ["python", "t.py"], "numProcPerNode": "auto"}})]:
        model = SPEC_MODELS[kind]
        stored = model.model_validate(spec).model_dump(mode="json", by_alias=True, exclude_none=True)
        assert model.model_validate(stored).model_dump(mode="json", by_alias=True, exclude_none=True) == stored


def test_the_deprecated_elastic_nproc_per_node_becomes_nproc_per_node() -> None:
    spec = PyTorchJobSpec.model_validate({**pytorch(Worker=replica(replicas=2)),
                                          "elasticPolicy": {"nProcPerNode": 2}})
    assert spec.nprocPerNode == "2"


@pytest.mark.parametrize(("kind", "spec", "message"), [
    ("PyTorchJob", pytorch(Master=replica(replicas=2), Worker=replica()),
     "spec.pytorchReplicaSpecs.Master.replicas: must be 1 (got 2)"),
    ("PyTorchJob", pytorch(Master=replica(), Worker={"replicas": 1, "template": {"spec": {"containers": []}}}),
     "spec.pytorchReplicaSpecs.Worker.template.spec.containers: required"),
    ("PyTorchJob", pytorch(Master=replica(), Worker={"replicas": 1, "template": {"spec": {}}}),
     "spec.pytorchReplicaSpecs.Worker.template.spec.containers: required"),
    ("PyTorchJob", pytorch(Master=replica(), Worker={"replicas": 1}),
     "spec.pytorchReplicaSpecs.Worker.template: required"),
    ("PyTorchJob", pytorch(Chief=replica(), Worker=replica()),
     "spec.pytorchReplicaSpecs.Chief: unknown replica type (PyTorchJob has Master, Worker)"),
    ("PyTorchJob", {"pytorchReplicaSpecs": {}},
     "spec.pytorchReplicaSpecs: give at least one replica type (PyTorchJob has Master, Worker)"),
    ("PyTorchJob", {}, "spec.pytorchReplicaSpecs: required"),
    ("PyTorchJob", pytorch(Master=replica(restartPolicy="Sometimes")),
     "spec.pytorchReplicaSpecs.Master.restartPolicy: Input should be 'Always', 'OnFailure', 'Never' or 'ExitCode' "
     "(got 'Sometimes')"),
    ("PyTorchJob", pytorch(Master=replica("trainer")),
     "spec.pytorchReplicaSpecs.Master.template.spec.containers: no container named 'pytorch'"),
    ("PyTorchJob", pytorch(Master={"template": {"spec": {"containers": [{"image": "pytorch/pytorch"}]}}}),
     "spec.pytorchReplicaSpecs.Master.template.spec.containers: no container named 'pytorch'"),
    ("PyTorchJob", pytorch(Master={"template": {"spec": {"containers": [
        {"name": "sidecar", "command": ["sleep", "1"]}, {"name": "pytorch", "image": "pytorch/pytorch"}]}}}),
     "spec.pytorchReplicaSpecs.Master.template.spec.containers[1].command: required locally (the image's "
     "entrypoint is not run here)"),
    ("PyTorchJob", pytorch(Master={"template": {"spec": {"containers": [
        {"name": "pytorch", "command": ["python"], "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {}}}]}]}}}),
     "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].env[0].valueFrom: not resolved locally (no "
     "secrets or pod fields here): give a value"),
    ("PyTorchJob", pytorch(Master={"template": {"spec": {"containers": [
        {"name": "pytorch", "command": ["python"], "workingDir": "work"}]}}}),
     "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].workingDir: 'work' is relative: give an "
     "absolute path"),
    ("PyTorchJob", pytorch(Master={"template": {"spec": {"containers": [
        {"name": "pytorch", "command": ["python"], "resources": {"requests": {"cpu": "lots"}}}]}}}),
     "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].resources.requests.cpu: 'lots' is not a "
     "quantity (e.g. 2, 500m, 4Gi)"),
    ("PyTorchJob", pytorch(Master=replica(replica=1)),
     "spec.pytorchReplicaSpecs.Master.replica: unknown field"),
    ("PyTorchJob", {**pytorch(), "nprocPerNode": "many"},
     "spec.nprocPerNode: must be auto, cpu, gpu or a number of processes of 1 or more (got 'many')"),
    ("PyTorchJob", {**pytorch(Master=replica()), "elasticPolicy": {"maxReplicas": 2}},
     "spec.elasticPolicy: needs a Worker replica spec (pytorchReplicaSpecs.Worker)"),
    ("PyTorchJob", {**pytorch(), "nprocPerNode": "1", "elasticPolicy": {"nProcPerNode": 2}},
     "spec.elasticPolicy.nProcPerNode: is deprecated and conflicts with spec.nprocPerNode: give only nprocPerNode"),
    ("PyTorchJob", {**pytorch(), "runPolicy": {"backoffLimit": -1}},
     "spec.runPolicy.backoffLimit: Input should be greater than or equal to 0 (got -1)"),
    ("TFJob", {"tfReplicaSpecs": {"Chief": replica("tensorflow"), "Master": replica("tensorflow")}},
     "spec.tfReplicaSpecs: give Chief or Master, not both"),
    ("TFJob", {"tfReplicaSpecs": {"chief": replica("tensorflow", replicas=2)}},
     "spec.tfReplicaSpecs.Chief.replicas: must be at most 1 (got 2)"),
    ("XGBoostJob", {"xgbReplicaSpecs": {"Worker": replica("xgboost", replicas=2)}},
     "spec.xgbReplicaSpecs.Master: required (the Rabit tracker runs there)"),
    ("JAXJob", {"jaxReplicaSpecs": {"Master": replica("jax"), "Worker": replica("jax")}},
     "spec.jaxReplicaSpecs.Master: unknown replica type (JAXJob has Worker)"),
    ("TrainJob", {"runtimeRef": {"name": "torch-distributed"},
                  "trainer": {"command": ["torchrun", "t.py"], "env": [{"name": "A", "value": "1"},
                                                                       {"name": "PET_NNODES", "value": "4"}]}},
     "spec.trainer.env[1].name: reserved: the torch-distributed runtime sets it (got 'PET_NNODES')"),
    ("TrainJob", {"runtimeRef": {"name": "deepspeed-distributed"}, "trainer": {"command": ["python"]}},
     "spec.runtimeRef.name: unknown runtime 'deepspeed-distributed' (built in: torch-distributed)"),
    ("TrainJob", {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"image": "pytorch/pytorch"}},
     "spec.trainer.command: required locally (the image's entrypoint is not run here)"),
    ("TrainJob", {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"command": ["python"], "numNodes": 0}},
     "spec.trainer.numNodes: Input should be greater than or equal to 1 (got 0)"),
    ("TrainJob", {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"command": ["python"],
                                                                           "numProcPerNode": 0}},
     "spec.trainer.numProcPerNode: must be a number of processes of 1 or more, or auto, cpu or gpu (got 0)"),
    ("TrainJob", {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"command": ["python"]},
                  "initializer": {"dataset": {"storageUri": "hf://x"}}},
     "spec.initializer: dataset and model initializers are not supported locally yet"),
])
def test_an_invalid_spec_is_one_line_naming_the_field(kind: str, spec: dict, message: str) -> None:
    assert error(kind, spec) == message


def test_apply_refuses_an_invalid_document_with_the_field_named() -> None:
    """Acceptance 4 through the loader that `flowdeck apply` and the resource API use."""
    bad = PYTORCH_YAML.replace("replicas: 1\n", "replicas: 2\n", 1)
    with pytest.raises(ResourceError) as caught:
        parse(bad)
    assert caught.value.message == "spec.pytorchReplicaSpecs.Master.replicas: must be 1 (got 2)"
