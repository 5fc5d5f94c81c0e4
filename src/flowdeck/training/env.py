"""The environment each replica of a training job sees: what the Kubernetes operator would inject.

Pure functions, no I/O. References `T:n` are lines of shared/reference/training.md. On Kubernetes every
replica is a pod with its own address (`<job>-<type>-<index>`) and the kind's default port; here every
address is 127.0.0.1 and ports are chosen per job (`JobPorts`), so replicas on one machine never collide:

- `master` is the job's rendezvous port: MASTER_PORT / PET_MASTER_PORT (PyTorchJob, XGBoostJob, TrainJob),
  COORDINATOR_PORT (JAXJob), the port of PADDLE_MASTER (PaddleJob).
- `replicas[slot.name]` is a replica's own port: its TF_CONFIG address (TFJob), its WORKER_PORT (XGBoostJob;
  on Kubernetes every pod gets the Worker port number), worker-0's port is PyTorch's elastic rendezvous
  endpoint (as worker-0's service is on Kubernetes; rdzvHost/rdzvPort are not used locally).

The container's own `env` is not merged here: the launcher starts from it and puts these on top.
`GLOO_SOCKET_IFNAME` is a local addition (the loopback interface, unless the container sets it), so gloo
binds where every peer's 127.0.0.1 address points, whatever the machine's hostname resolves to.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from pydantic import BaseModel

from flowdeck.training.specs import (
    PyTorchJobSpec,
    ReplicaSlot,
    TFJobSpec,
    TrainJobSpec,
    procs_per_node,
)

LOCALHOST = "127.0.0.1"
_LOOPBACK = {"linux": "lo", "darwin": "lo0"}


@dataclass(frozen=True)
class JobPorts:
    """The ports of one attempt of a job (fresh ones on every gang restart)."""

    master: int
    replicas: dict[str, int]


def replica_env(kind: str, job_name: str, spec: BaseModel, plan: list[ReplicaSlot], slot: ReplicaSlot,
                ports: JobPorts) -> dict[str, str]:
    """The variables the operator of `kind` injects into `slot`'s main container, with local addresses."""
    env = {"PYTHONUNBUFFERED": "1"}
    if kind == "PyTorchJob":
        assert isinstance(spec, PyTorchJobSpec)
        env |= _pytorch(spec, plan, slot, ports)
    elif kind == "TFJob":
        assert isinstance(spec, TFJobSpec)
        env |= _tensorflow(spec, plan, slot, ports)
    elif kind == "XGBoostJob":
        env |= _xgboost(plan, slot, ports)
    elif kind == "JAXJob":
        env |= {"COORDINATOR_ADDRESS": LOCALHOST, "COORDINATOR_PORT": str(ports.master),
                "NUM_PROCESSES": str(len(plan)), "PROCESS_ID": str(slot.index)}
    elif kind == "PaddleJob":
        env |= _paddle(job_name, plan, slot, ports)
    elif kind == "TrainJob":
        assert isinstance(spec, TrainJobSpec)
        env |= _torch_plugin(spec, slot, ports)
    else:
        raise ValueError(f"unknown training kind {kind!r}")
    loopback = _LOOPBACK.get(sys.platform)
    if loopback and not any(var.name == "GLOO_SOCKET_IFNAME" for var in slot.container.env):
        env["GLOO_SOCKET_IFNAME"] = loopback
    return env


def _count(plan: list[ReplicaSlot], rtype: str) -> int:
    return sum(1 for slot in plan if slot.type == rtype)


def _pytorch(spec: PyTorchJobSpec, plan: list[ReplicaSlot], slot: ReplicaSlot, ports: JobPorts) -> dict[str, str]:
    """envvar.go, master.go, elastic.go (T:97-121)."""
    env: dict[str, str] = {}
    total = len(plan)
    if "Master" in spec.pytorchReplicaSpecs:
        # A non-numeric nprocPerNode (auto/cpu/gpu) counts as 1 process per node (T:106).
        per_node = int(spec.nprocPerNode) if spec.nprocPerNode.isdigit() else 1
        rank = str(slot.index if slot.type == "Master" else slot.index + _count(plan, "Master"))
        env |= {"MASTER_PORT": str(ports.master), "PET_MASTER_PORT": str(ports.master),
                "MASTER_ADDR": LOCALHOST, "PET_MASTER_ADDR": LOCALHOST,
                "WORLD_SIZE": str(total * per_node), "RANK": rank, "PET_NODE_RANK": rank}
    env["PET_NPROC_PER_NODE"] = spec.nprocPerNode
    elastic = spec.elasticPolicy
    if elastic is None:
        env["PET_NNODES"] = str(total)
        return env
    # Defaults: min and max fall back to each other, then to Worker.replicas; the master is not counted (T:111).
    workers = spec.pytorchReplicaSpecs["Worker"].replicas
    low = elastic.minReplicas or elastic.maxReplicas or workers
    high = elastic.maxReplicas or elastic.minReplicas or workers
    env |= {"PET_NNODES": f"{low}:{high}", "PET_RDZV_ENDPOINT": f"{LOCALHOST}:{ports.replicas['worker-0']}",
            "PET_RDZV_BACKEND": elastic.rdzvBackend or "c10d"}
    if elastic.maxRestarts is not None:
        env["PET_MAX_RESTARTS"] = str(elastic.maxRestarts)
    if elastic.rdzvId is not None:
        env["PET_RDZV_ID"] = elastic.rdzvId
    if elastic.rdzvConf:
        env["PET_RDZV_CONF"] = ",".join(f"{conf.key}={conf.value}" for conf in elastic.rdzvConf)
    if elastic.standalone:
        # Exactly the operator's value, which torchrun cannot parse (T:123-125).
        env["PET_STANDALONE"] = ""
    return env


def _tensorflow(spec: TFJobSpec, plan: list[ReplicaSlot], slot: ReplicaSlot, ports: JobPorts) -> dict[str, str]:
    """TF_CONFIG, only for a distributed job (total replicas != 1), keys the lower-cased types (T:179-190)."""
    if len(plan) == 1:
        return {}
    cluster: dict[str, list[str]] = {rtype.lower(): [] for rtype in spec.tfReplicaSpecs}
    for other in plan:
        cluster[other.type.lower()].append(f"{LOCALHOST}:{ports.replicas[other.name]}")
    rtype = slot.type.lower()
    task = {"type": rtype, "index": slot.index}
    if spec.enableDynamicWorker:
        # The sparse form: a worker knows itself and the PS; a PS knows itself (no "environment").
        own = cluster[rtype][slot.index]
        workers = {str(slot.index): own} if rtype == "worker" else {}
        ps = cluster.get("ps", []) if rtype == "worker" else [own] if rtype == "ps" else []
        config: dict[str, object] = {"cluster": {"worker": workers, "ps": ps}, "task": task}
    else:
        config = {"cluster": dict(sorted(cluster.items())), "task": task, "environment": "cloud"}
    return {"TF_CONFIG": json.dumps(config, separators=(",", ":"))}


def _xgboost(plan: list[ReplicaSlot], slot: ReplicaSlot, ports: JobPorts) -> dict[str, str]:
    """xgboost.go SetPodEnv (T:213-215): the Rabit tracker on the master; LightGBM's worker list."""
    total = len(plan)
    rank = slot.index if slot.type == "Master" else slot.index + _count(plan, "Master")
    env = {"MASTER_ADDR": LOCALHOST, "MASTER_PORT": str(ports.master), "WORLD_SIZE": str(total), "RANK": str(rank)}
    if total > 1:
        env |= {"WORKER_PORT": str(ports.replicas[slot.name]), "WORKER_ADDRS": ",".join([LOCALHOST] * (total - 1))}
    return env


def _paddle(job_name: str, plan: list[ReplicaSlot], slot: ReplicaSlot, ports: JobPorts) -> dict[str, str]:
    """paddlepaddle/envvar.go (T:224-227): collective mode without a Master, PS mode with one."""
    env = {"PADDLE_JOB_ID": job_name, "PADDLE_NNODES": str(len(plan)), "PADDLE_MASTER": f"{LOCALHOST}:{ports.master}"}
    if _count(plan, "Master"):
        env["PADDLE_SERVER_NUM" if slot.type == "Master" else "PADDLE_TRAINER_NUM"] = "1"
    return env


def _torch_plugin(spec: TrainJobSpec, slot: ReplicaSlot, ports: JobPorts) -> dict[str, str]:
    """Trainer v2's torch plugin (T:288-295); JOB_COMPLETION_INDEX is what Kubernetes sets in an Indexed Job."""
    return {"PET_NNODES": str(spec.trainer.numNodes), "PET_NPROC_PER_NODE": str(procs_per_node(spec.trainer)),
            "PET_NODE_RANK": str(slot.index), "PET_MASTER_ADDR": LOCALHOST, "PET_MASTER_PORT": str(ports.master),
            "JOB_COMPLETION_INDEX": str(slot.index)}
