"""The Kubeflow SDK's TrainerClient against a real control plane: CustomTrainer functions on real nodes.

`num_nodes=2` must really run two nodes whose ranks all-reduce (the SDK's local backend runs 1 × 1),
`func_args` must arrive as keyword arguments, and list/get/logs/wait/delete must see the job as the
SDK reports it (Created, Running, Complete, Failed).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobs_api import Jobs

from flowdeck.training.client import CustomTrainer, TrainerClient, TrainerError, trainjob_document
from helpers import wait_for


@pytest.fixture(scope="module")
def torch_installed() -> None:
    """Like the top of test_training_ddp.py, per test: the tests without torch run everywhere."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        import torch  # noqa: F401 - CI must run these tests: a missing torch is a failure there, not a skip
    else:
        pytest.importorskip("torch", reason="torch is an optional extra: pip install 'flowdeck[torch]'")


@pytest.fixture
def client(torch_installed: None, jobs: Jobs) -> Iterator[TrainerClient]:
    with TrainerClient(url=jobs.server.url, namespace="default") as trainer_client:
        yield trainer_client


def ddp_train(out: str, steps: int) -> None:
    """Train a linear model with DDP over gloo; write this rank's final weights' digest to `out`."""
    import hashlib
    import json
    import os

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    data = torch.Generator().manual_seed(100 + rank)  # each rank its own batches
    for _ in range(steps):
        features = torch.randn(16, 4, generator=data)
        optimizer.zero_grad()
        ((model(features) - features.sum(1, keepdim=True)) ** 2).mean().backward()
        optimizer.step()
    weights = b"".join(p.detach().numpy().tobytes() for p in model.parameters())
    print(f"rank {rank} of {world} trained {steps} steps", flush=True)
    with open(os.path.join(out, f"rank-{rank}.json"), "w") as file:
        json.dump({"world": world, "digest": hashlib.sha256(weights).hexdigest(),
                   "node": os.environ["GROUP_RANK"]}, file)
    dist.destroy_process_group()


def wait_for_release(release: str) -> None:
    """Print a line, then wait until the test releases the job."""
    import os
    import time

    print("ready", flush=True)
    deadline = time.time() + 60
    while not os.path.exists(release) and time.time() < deadline:
        time.sleep(0.05)
    print("released", flush=True)


def diverge(lr: float) -> None:
    raise FloatingPointError(f"loss is nan at lr {lr}")


def test_custom_trainer_on_two_nodes_all_reduces(client: TrainerClient, tmp_path: Path) -> None:
    name = client.train(trainer=CustomTrainer(ddp_train, func_args={"out": str(tmp_path), "steps": 4}, num_nodes=2))
    assert re.fullmatch(r"[a-z][0-9a-f]{11}", name)
    seen: list[str] = []
    job = client.wait_for_job_status(name, timeout=120, polling_interval=0.1,
                                     callbacks=[lambda job: seen.append(job.status)])
    assert job.status == "Complete" and seen[-1] == "Complete"
    ranks = {int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in tmp_path.glob("rank-*.json")}
    assert sorted(ranks) == [0, 1] and {r["world"] for r in ranks.values()} == {2}
    assert {r["node"] for r in ranks.values()} == {"0", "1"}  # two nodes, one process each
    assert len({r["digest"] for r in ranks.values()}) == 1, ranks  # the same final weights on every rank

    job = client.get_job(name)
    assert (job.name, job.runtime.name, job.num_nodes, job.status) == (name, "torch-distributed", 2, "Complete")
    assert [(s.name, s.status, s.device) for s in job.steps] == [("node-0", "Succeeded", "cpu"),
                                                                   ("node-1", "Succeeded", "cpu")]
    assert job.creation_timestamp is not None
    assert name in [j.name for j in client.list_jobs()]
    assert name in [j.name for j in client.list_jobs(runtime="torch-distributed")]
    assert "rank 1 of 2 trained 4 steps" in list(client.get_job_logs(name, step="node-1"))
    assert "rank 0 of 2 trained 4 steps" in list(client.get_job_logs(name))

    client.delete_job(name)  # the operator stops the job's processes first, then the job is gone
    assert wait_for(lambda: name not in [j.name for j in client.list_jobs()], timeout=20)
    with pytest.raises(TrainerError, match=name):
        client.get_job(name)


def test_following_logs_streams_lines_before_the_job_ends(client: TrainerClient, tmp_path: Path) -> None:
    release = tmp_path / "release"
    name = client.train(trainer=CustomTrainer(wait_for_release, func_args={"release": str(release)}))
    lines: list[str] = []
    for line in client.get_job_logs(name, follow=True):
        lines.append(line)
        if line == "ready":
            assert client.get_job(name).status == "Running"  # the line came while the job ran
            release.touch()
    assert lines == ["ready", "released"]
    assert client.get_job(name).status == "Complete"


def test_a_raising_function_fails_the_job_and_the_wait(client: TrainerClient) -> None:
    name = client.train(trainer=CustomTrainer(diverge, func_args={"lr": 10.0}))
    with pytest.raises(RuntimeError, match=f"TrainJob {name} failed .*node-0 exited with code 1"):
        client.wait_for_job_status(name, timeout=60, polling_interval=0.1)
    job = client.wait_for_job_status(name, status={"Failed"}, timeout=5, polling_interval=0.1)
    assert (job.status, job.steps[0].status) == ("Failed", "Failed")
    assert "FloatingPointError: loss is nan at lr 10.0" in list(client.get_job_logs(name))


# -- without a control plane -------------------------------------------------------------------------------
@pytest.mark.parametrize(("arguments", "message"), [
    ({"polling_interval": 0}, "polling_interval must be more than 0"),
    ({"polling_interval": 10, "timeout": 5}, "less than timeout"),
    ({"status": {"Succeeded"}}, "Succeeded is not a status to wait for"),
])
def test_wait_refuses_bad_arguments_before_asking(arguments: dict[str, Any], message: str) -> None:
    with TrainerClient(url="http://127.0.0.1:9") as trainer_client, pytest.raises(ValueError, match=message):
        trainer_client.wait_for_job_status("any", **arguments)


def test_a_missing_control_plane_is_one_clear_line() -> None:
    with TrainerClient(url="http://127.0.0.1:9") as trainer_client, \
            pytest.raises(TrainerError, match=r"^no control plane at http://127.0.0.1:9: start one with `flowdeck up`"):
        trainer_client.list_jobs()


def nested() -> Any:
    scale = 2

    def closure(x: int) -> int:
        return x * scale

    return closure


@pytest.mark.parametrize(("trainer", "message"), [
    (CustomTrainer(lambda: None), "func must be a function defined with def"),
    (CustomTrainer(nested()), "uses scale from its enclosing function"),
    (CustomTrainer(ddp_train, func_args={"out": Path("/tmp"), "steps": 1}), r"func_args\['out'\]: a PosixPath"),
    (CustomTrainer(ddp_train, func_args={"out": "/tmp"}), "func_args do not fit ddp_train"),
    (CustomTrainer(ddp_train, func_args={"out": "/tmp", "steps": 1}, resources_per_node={"cpu": "lots"}),
     r"resources_per_node\['cpu'\]"),
])
def test_trainers_that_cannot_run_elsewhere_are_refused(trainer: CustomTrainer, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        trainjob_document("job", trainer)


def test_the_trainjob_carries_the_function_and_the_node_shape() -> None:
    trainer = CustomTrainer(ddp_train, func_args={"out": "/o", "steps": 2}, num_nodes=3, env={"A": "1"},
                            resources_per_node={"cpu": 2, "memory": "1Gi"}, packages_to_install=["toolz"])
    spec = trainjob_document("j", trainer)["spec"]["trainer"]
    assert spec["command"] == ["torchrun", "-m", "flowdeck.runtime.function"]
    assert (spec["numNodes"], spec["numProcPerNode"], spec["env"]) == (3, 2, [{"name": "A", "value": "1"}])
    assert spec["resourcesPerNode"]["requests"] == {"cpu": "2", "memory": "1Gi"}
    args = dict(zip(spec["args"][::2], spec["args"][1::2], strict=True))
    assert base64.b64decode(args["--source-b64"]).decode().startswith("def ddp_train(out: str, steps: int)")
    assert (json.loads(args["--kwargs"]), json.loads(args["--packages"])) == ({"out": "/o", "steps": 2}, ["toolz"])


# -- the function runner -------------------------------------------------------------------------------------
def tiny_wheel(directory: Path) -> Path:
    """A one-module wheel, installable without any index."""
    path = directory / "flowdecktiny-1.0-py3-none-any.whl"
    files = {"flowdecktiny.py": "VALUE = 42\n",
             "flowdecktiny-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: flowdecktiny\nVersion: 1.0\n",
             "flowdecktiny-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                 "Tag: py3-none-any\n"}
    record = "".join(f"{name},,\n" for name in files) + "flowdecktiny-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in {**files, "flowdecktiny-1.0.dist-info/RECORD": record}.items():
            wheel.writestr(name, text)
    return path


def test_ranks_of_a_node_install_packages_once_and_get_keyword_arguments(tmp_path: Path) -> None:
    source = textwrap.dedent("""
        def use_package(out, rank):
            import flowdecktiny
            with open(out + f"/{rank}.txt", "w") as file:
                file.write(str(flowdecktiny.VALUE))
    """)
    wheel = tiny_wheel(tmp_path)
    env = {**os.environ, "FLOWDECK_HOME": str(tmp_path / "home")}
    results: list[subprocess.CompletedProcess[str]] = []

    def rank(number: int) -> None:
        command = [sys.executable, "-m", "flowdeck.runtime.function", "--name", "use_package",
                   "--source-b64", base64.b64encode(source.encode()).decode(),
                   "--kwargs", json.dumps({"rank": number, "out": str(tmp_path)}),
                   "--packages", json.dumps([str(wheel)])]
        results.append(subprocess.run(command, env=env, capture_output=True, text=True, timeout=120))

    threads = [threading.Thread(target=rank, args=(number,)) for number in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert (tmp_path / "0.txt").read_text() == (tmp_path / "1.txt").read_text() == "42"
    installed = [p for p in (tmp_path / "home" / "function-packages").iterdir() if p.is_dir()]
    assert len(installed) == 1 and (installed[0] / "flowdecktiny.py").exists()
