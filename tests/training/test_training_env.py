"""Each replica's environment is exactly what Kubeflow's operator injects, with local addresses and ports."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from flowdeck.training.env import JobPorts, replica_env
from flowdeck.training.specs import SPEC_MODELS, replica_plan

#: The local addition every replica gets on Linux, unless its container sets it.
LOCAL = {"GLOO_SOCKET_IFNAME": "lo"} if sys.platform.startswith("linux") else {}


def replica(container: str, replicas: int = 1, env: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"replicas": replicas, "template": {"spec": {"containers": [
        {"name": container, "command": ["python", "train.py"], "env": env or []}]}}}


def envs(kind: str, spec: dict[str, Any], job: str = "job") -> dict[str, dict[str, str]]:
    """Every replica's environment, by replica name; replica i has port 40000 + i, the job's master port 29999."""
    model = SPEC_MODELS[kind].model_validate(spec)
    plan = replica_plan(kind, model)
    ports = JobPorts(master=29999, replicas={slot.name: 40000 + i for i, slot in enumerate(plan)})
    return {slot.name: replica_env(kind, job, model, plan, slot, ports) for slot in plan}


def pytorch(nproc: Any = "1", **extra: Any) -> dict[str, Any]:
    return {"nprocPerNode": nproc, "pytorchReplicaSpecs": {"Master": replica("pytorch"),
                                                           "Worker": replica("pytorch", 2)}, **extra}


def master_vars(rank: int, world: int) -> dict[str, str]:
    return {"MASTER_PORT": "29999", "PET_MASTER_PORT": "29999", "MASTER_ADDR": "127.0.0.1",
            "PET_MASTER_ADDR": "127.0.0.1", "WORLD_SIZE": str(world), "RANK": str(rank), "PET_NODE_RANK": str(rank)}


def test_pytorchjob_master_and_two_workers_one_process_each() -> None:
    assert envs("PyTorchJob", pytorch("1")) == {
        name: {"PYTHONUNBUFFERED": "1", **master_vars(rank, 3), "PET_NPROC_PER_NODE": "1", "PET_NNODES": "3",
               **LOCAL}
        for rank, name in enumerate(["master-0", "worker-0", "worker-1"])}


@pytest.mark.parametrize(("nproc", "world"), [("2", 6), (2, 6), ("auto", 3), ("cpu", 3)])
def test_pytorchjob_world_size_counts_numeric_nproc_per_node_only(nproc: Any, world: int) -> None:
    worker = envs("PyTorchJob", pytorch(nproc))["worker-1"]
    assert (worker["WORLD_SIZE"], worker["RANK"], worker["PET_NPROC_PER_NODE"]) == (str(world), "2", str(nproc))


def test_pytorchjob_elastic_sets_the_node_range_and_rendezvous_on_worker_0() -> None:
    spec = pytorch("auto", elasticPolicy={
        "minReplicas": 1, "maxReplicas": 3, "rdzvBackend": "c10d", "rdzvId": "run-1", "maxRestarts": 2,
        "rdzvConf": [{"key": "timeout", "value": "60"}, {"key": "read_timeout", "value": "5"}]})
    assert envs("PyTorchJob", spec)["worker-1"] == {
        "PYTHONUNBUFFERED": "1", **master_vars(2, 3), "PET_NPROC_PER_NODE": "auto", "PET_NNODES": "1:3",
        "PET_RDZV_ENDPOINT": "127.0.0.1:40001", "PET_RDZV_BACKEND": "c10d", "PET_MAX_RESTARTS": "2",
        "PET_RDZV_ID": "run-1", "PET_RDZV_CONF": "timeout=60,read_timeout=5", **LOCAL}


def test_pytorchjob_worker_only_elastic_defaults_its_range_to_the_workers() -> None:
    spec = {"elasticPolicy": {"standalone": True}, "pytorchReplicaSpecs": {"Worker": replica("pytorch", 2)}}
    assert envs("PyTorchJob", spec)["worker-0"] == {
        "PYTHONUNBUFFERED": "1", "PET_NPROC_PER_NODE": "auto", "PET_NNODES": "2:2",
        "PET_RDZV_ENDPOINT": "127.0.0.1:40000", "PET_RDZV_BACKEND": "c10d", "PET_STANDALONE": "", **LOCAL}


def test_pytorchjob_without_a_master_gets_no_master_address_or_rank() -> None:
    spec = {"pytorchReplicaSpecs": {"Worker": replica("pytorch", 2)}}
    assert envs("PyTorchJob", spec)["worker-1"] == {"PYTHONUNBUFFERED": "1", "PET_NPROC_PER_NODE": "auto",
                                                    "PET_NNODES": "2", **LOCAL}


def test_a_container_that_sets_gloo_socket_ifname_keeps_its_own() -> None:
    own = [{"name": "GLOO_SOCKET_IFNAME", "value": "eth0"}]
    spec = {"pytorchReplicaSpecs": {"Master": replica("pytorch", env=own)}}
    assert "GLOO_SOCKET_IFNAME" not in envs("PyTorchJob", spec)["master-0"]


def test_tfjob_every_replica_gets_the_cluster_and_its_own_task() -> None:
    spec = {"tfReplicaSpecs": {"Worker": replica("tensorflow", 2), "PS": replica("tensorflow"),
                               "Chief": replica("tensorflow")}}
    result = envs("TFJob", spec)
    # ports by plan order: chief-0 40000, ps-0 40001, worker-0 40002, worker-1 40003
    cluster = {"chief": ["127.0.0.1:40000"], "ps": ["127.0.0.1:40001"],
               "worker": ["127.0.0.1:40002", "127.0.0.1:40003"]}
    tasks = {"chief-0": ("chief", 0), "ps-0": ("ps", 0), "worker-0": ("worker", 0), "worker-1": ("worker", 1)}
    assert list(result) == list(tasks)
    for name, (rtype, index) in tasks.items():
        config = {"cluster": cluster, "task": {"type": rtype, "index": index}, "environment": "cloud"}
        assert result[name] == {"PYTHONUNBUFFERED": "1", "TF_CONFIG": json.dumps(config, separators=(",", ":")),
                                **LOCAL}
    assert json.loads(result["worker-1"]["TF_CONFIG"])["task"] == {"type": "worker", "index": 1}


def test_tfjob_master_is_keyed_master_and_a_single_replica_gets_no_tf_config() -> None:
    two = envs("TFJob", {"tfReplicaSpecs": {"Master": replica("tensorflow"), "Worker": replica("tensorflow")}})
    assert json.loads(two["master-0"]["TF_CONFIG"]) == {
        "cluster": {"master": ["127.0.0.1:40000"], "worker": ["127.0.0.1:40001"]},
        "task": {"type": "master", "index": 0}, "environment": "cloud"}
    assert envs("TFJob", {"tfReplicaSpecs": {"Worker": replica("tensorflow")}}) == {
        "worker-0": {"PYTHONUNBUFFERED": "1", **LOCAL}}


def test_tfjob_dynamic_workers_get_the_sparse_cluster() -> None:
    spec = {"enableDynamicWorker": True, "tfReplicaSpecs": {"PS": replica("tensorflow"),
                                                            "Worker": replica("tensorflow", 2)}}
    result = envs("TFJob", spec)
    assert json.loads(result["worker-1"]["TF_CONFIG"]) == {
        "cluster": {"worker": {"1": "127.0.0.1:40002"}, "ps": ["127.0.0.1:40000"]},
        "task": {"type": "worker", "index": 1}}
    assert json.loads(result["ps-0"]["TF_CONFIG"]) == {
        "cluster": {"worker": {}, "ps": ["127.0.0.1:40000"]}, "task": {"type": "ps", "index": 0}}


def test_xgboostjob_ranks_follow_the_master_and_workers_get_their_addresses() -> None:
    spec = {"xgbReplicaSpecs": {"Worker": replica("xgboost", 2), "Master": replica("xgboost")}}
    base = {"PYTHONUNBUFFERED": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999", "WORLD_SIZE": "3",
            "WORKER_ADDRS": "127.0.0.1,127.0.0.1", **LOCAL}
    assert envs("XGBoostJob", spec) == {
        "master-0": {**base, "RANK": "0", "WORKER_PORT": "40000"},
        "worker-0": {**base, "RANK": "1", "WORKER_PORT": "40001"},
        "worker-1": {**base, "RANK": "2", "WORKER_PORT": "40002"}}
    alone = envs("XGBoostJob", {"xgbReplicaSpecs": {"Master": replica("xgboost")}})["master-0"]
    assert alone == {"PYTHONUNBUFFERED": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999",
                     "WORLD_SIZE": "1", "RANK": "0", **LOCAL}


def test_jaxjob_workers_share_the_coordinator() -> None:
    assert envs("JAXJob", {"jaxReplicaSpecs": {"Worker": replica("jax", 2)}}) == {
        f"worker-{i}": {"PYTHONUNBUFFERED": "1", "COORDINATOR_ADDRESS": "127.0.0.1", "COORDINATOR_PORT": "29999",
                        "NUM_PROCESSES": "2", "PROCESS_ID": str(i), **LOCAL}
        for i in range(2)}


def test_paddlejob_collective_mode_and_ps_mode() -> None:
    base = {"PYTHONUNBUFFERED": "1", "PADDLE_JOB_ID": "pj", "PADDLE_MASTER": "127.0.0.1:29999", **LOCAL}
    collective = envs("PaddleJob", {"paddleReplicaSpecs": {"Worker": replica("paddle", 2)}}, job="pj")
    assert collective == {f"worker-{i}": {**base, "PADDLE_NNODES": "2"} for i in range(2)}
    ps = envs("PaddleJob", {"paddleReplicaSpecs": {"Master": replica("paddle"), "Worker": replica("paddle")}},
              job="pj")
    assert ps == {"master-0": {**base, "PADDLE_NNODES": "2", "PADDLE_SERVER_NUM": "1"},
                  "worker-0": {**base, "PADDLE_NNODES": "2", "PADDLE_TRAINER_NUM": "1"}}


def trainjob(**trainer: Any) -> dict[str, Any]:
    return {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"command": ["torchrun", "t.py"], **trainer}}


def test_trainjob_nodes_get_the_torch_plugin_variables() -> None:
    assert envs("TrainJob", trainjob(numNodes=2, numProcPerNode=2)) == {
        f"node-{i}": {"PYTHONUNBUFFERED": "1", "PET_NNODES": "2", "PET_NPROC_PER_NODE": "2",
                      "PET_NODE_RANK": str(i), "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": "29999",
                      "JOB_COMPLETION_INDEX": str(i), **LOCAL}
        for i in range(2)}


@pytest.mark.parametrize(("trainer", "nproc"), [
    ({}, "1"),
    ({"resourcesPerNode": {"requests": {"cpu": "3"}}}, "3"),
    ({"resourcesPerNode": {"limits": {"cpu": "1500m"}}}, "2"),
    ({"resourcesPerNode": {"requests": {"cpu": "4"}, "limits": {"nvidia.com/gpu": "2"}}}, "2"),
    ({"numProcPerNode": "cpu", "resourcesPerNode": {"requests": {"cpu": "4", "nvidia.com/gpu": "2"}}}, "4"),
    ({"numProcPerNode": "3"}, "3"),
])
def test_trainjob_auto_procs_per_node_come_from_the_resources_per_node(trainer: dict, nproc: str) -> None:
    assert envs("TrainJob", trainjob(**trainer))["node-0"]["PET_NPROC_PER_NODE"] == nproc
