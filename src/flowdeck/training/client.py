"""The Kubeflow SDK's `TrainerClient` and `CustomTrainer`, run against a flowdeck control plane.

    from flowdeck.training.client import CustomTrainer, TrainerClient

    def train(epochs: int, out: str) -> None:
        import torch.distributed as dist
        dist.init_process_group("gloo")
        ...

    client = TrainerClient()                       # FLOWDECK_URL, else http://127.0.0.1:8080
    name = client.train(trainer=CustomTrainer(train, func_args={"epochs": 3, "out": "/tmp/m"}, num_nodes=2))
    client.wait_for_job_status(name)               # {"Complete"}; a Failed job raises RuntimeError
    for line in client.get_job_logs(name, follow=True):
        print(line)

Method names, arguments and records follow the Kubeflow SDK's (`kubeflow.trainer`, reference/training.md
§3.4), so code written for it runs here by changing the import. Differences, on purpose: `num_nodes=N`
really runs N nodes of `numProcPerNode` processes (the SDK's local backends run 1 × 1), `func_args` are
keyword arguments on every backend, and jobs live in the control plane (listed from any process, kept
across restarts), not in the client object.

`train` creates a TrainJob (`trainer.kubeflow.org/v1alpha1`, runtime `torch-distributed`) whose nodes run
`torchrun -m flowdeck.runtime.function` with the function's source and arguments in its args: the job
document carries everything it needs. The function must be a `def` whose source `inspect` can read and
that is self-contained (its imports inside), as the SDK requires.

The control plane and credentials are found as `flowdeck.connection` says: `url`, else
`FLOWDECK_URL` (or `KF_PIPELINES_ENDPOINT`), else the default local one; `token`, else the file named by
`FLOWDECK_TOKEN_PATH` (inside a pipeline run), else `FLOWDECK_TOKEN`; `namespace`, else
`FLOWDECK_NAMESPACE`, else `default`. Every failure to reach or be understood by it is one `TrainerError`
line.
"""

from __future__ import annotations

import base64
import inspect
import json
import math
import random
import re
import string
import textwrap
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowdeck.connection import ControlPlaneError, ResourceClient
from flowdeck.runtime.quotas import QuotaError, parse_quantity
from flowdeck.training.specs import BUILTIN_RUNTIMES

API_VERSION = "trainer.kubeflow.org/v1alpha1"
DEFAULT_RUNTIME = "torch-distributed"
#: The statuses the SDK reports for a TrainJob (it synthesises Created and Running; the API has neither).
STATUSES = ("Created", "Running", "Complete", "Failed")
#: How often `get_job_logs(follow=True)` looks for new lines.
FOLLOW_SECONDS = 0.2
_SECTION = re.compile(r"^==> (\S+) \((attempt-\d+)\) <==\n", re.MULTILINE)


class TrainerError(ControlPlaneError):
    """The control plane could not be reached, or refused or failed a request: one line saying why."""


@dataclass
class CustomTrainer:
    """A training function and how to run it (the SDK's `kubeflow.trainer.CustomTrainer`).

    `func` runs in every process of every node with `func_args` as keyword arguments; `num_nodes` nodes
    (default 1) of `resources_per_node["cpu"]` processes each (default 1). `resources_per_node`
    ({"cpu": 2, "memory": "4Gi", "gpu": 1}) becomes the node's requests and limits; `packages_to_install`
    are pip-installed once per node before the call (from `pip_index_urls`, else pip's configured index);
    `env` is set in every process; `image` is recorded but not used locally.
    """

    func: Callable[..., Any]
    func_args: dict[str, Any] | None = None
    image: str | None = None
    packages_to_install: list[str] | None = None
    pip_index_urls: list[str] | None = None
    num_nodes: int | None = None
    resources_per_node: dict[str, Any] | None = None
    env: dict[str, str] | None = None


@dataclass(frozen=True)
class RuntimeTrainer:
    """What a runtime trains with (the SDK's `RuntimeTrainer`)."""

    trainer_type: str = "CustomTrainer"
    framework: str = "torch"
    num_nodes: int = 1
    device: str = "cpu"
    device_count: str = "1"


@dataclass(frozen=True)
class Runtime:
    """A training runtime (the SDK's `Runtime`); flowdeck has the built-in `torch-distributed`."""

    name: str
    trainer: RuntimeTrainer = field(default_factory=RuntimeTrainer)
    pretrained_model: str | None = None


@dataclass
class Step:
    """One node of a job (the SDK's `Step`): status Pending, Running, Succeeded or Failed.

    A TrainJob's status counts its nodes (`jobsStatus`) without saying which is which, so every step
    shows the nodes' common state: Succeeded once the job is Complete, Failed once it has failed.
    """

    name: str
    status: str | None
    pod_name: str
    device: str = "cpu"
    device_count: str = "1"


@dataclass
class TrainJob:
    """A job as the SDK describes it: status Created, Running, Complete or Failed."""

    name: str
    runtime: Runtime
    steps: list[Step]
    num_nodes: int
    creation_timestamp: datetime | None
    status: str = "Created"


class TrainerClient:
    """The Kubeflow SDK's `TrainerClient`, for TrainJobs of one namespace of a flowdeck control plane."""

    def __init__(self, url: str | None = None, namespace: str | None = None, token: str | None = None) -> None:
        self._api = ResourceClient(url, namespace, token, error=TrainerError)

    @property
    def namespace(self) -> str:
        return self._api.namespace

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> TrainerClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- runtimes -----------------------------------------------------------------------------------------
    def list_runtimes(self) -> list[Runtime]:
        return [Runtime(name) for name in BUILTIN_RUNTIMES]

    def get_runtime(self, name: str) -> Runtime:
        if name not in BUILTIN_RUNTIMES:
            raise ValueError(f"unknown runtime {name!r} (built in: {', '.join(BUILTIN_RUNTIMES)})")
        return Runtime(name)

    # -- jobs ---------------------------------------------------------------------------------------------
    def train(self, runtime: str | Runtime | None = None, initializer: Any = None,
              trainer: CustomTrainer | None = None, options: list[Any] | None = None) -> str:
        """Create a TrainJob running `trainer` on `runtime` (default torch-distributed); returns its name.

        `options` may hold the SDK's `Name(name)` (any object of a class named `Name` with `.name`) to choose
        the job's name; without it the name is a lowercase letter and 11 hex digits, as the SDK makes them.
        """
        runtime_name = self.get_runtime(runtime.name if isinstance(runtime, Runtime) else runtime
                                        or DEFAULT_RUNTIME).name
        if initializer is not None:
            raise ValueError("initializer: dataset and model initializers are not supported locally yet")
        if not isinstance(trainer, CustomTrainer):
            raise ValueError(f"trainer: give a CustomTrainer (got {type(trainer).__name__})")
        name = _job_name(options)
        if self._api.request("GET", self._api.path("trainjobs", name), allow=(404,)).status_code != 404:
            raise TrainerError(f"TrainJob {name} already exists in namespace {self.namespace}")
        self._api.apply(trainjob_document(name, trainer, runtime_name))
        return name

    def list_jobs(self, runtime: str | Runtime | None = None) -> list[TrainJob]:
        wanted = runtime.name if isinstance(runtime, Runtime) else runtime
        items = self._api.request("GET", self._api.path("trainjobs")).json()["items"]
        return [_record(item) for item in items
                if wanted is None or (item.get("spec", {}).get("runtimeRef") or {}).get("name") == wanted]

    def get_job(self, name: str) -> TrainJob:
        return _record(self._api.get("trainjobs", name))

    def get_job_logs(self, name: str, step: str = "node-0", follow: bool = False) -> Iterator[str]:
        """The lines `step` (node-0, node-1...) printed in the job's latest attempt; with `follow`, also the
        lines it prints until the job ends."""
        job = self._api.get("trainjobs", name)
        nodes = int((job.get("spec", {}).get("trainer") or {}).get("numNodes") or 1)
        if step not in {f"node-{index}" for index in range(nodes)}:
            raise ValueError(f"step {step!r}: TrainJob {name} has steps node-0 to node-{nodes - 1}")
        return self._follow(name, step) if follow else iter(self._log(name, step)[1].splitlines())

    def wait_for_job_status(self, name: str, status: Iterable[str] = frozenset({"Complete"}), timeout: float = 600,
                            polling_interval: float = 2,
                            callbacks: list[Callable[[TrainJob], Any]] | None = None) -> TrainJob:
        """Poll the job until its status is one of `status`, calling each callback with it every time.

        A job that ends Failed when Failed is not in `status` raises RuntimeError (a `TrainerError`) naming
        the reason; a job in none of them after `timeout` seconds raises TimeoutError.
        """
        wanted = set(status)
        unknown = sorted(wanted - set(STATUSES))
        if unknown or not wanted:
            raise ValueError(f"status: {', '.join(unknown) or 'nothing'} is not a status to wait for "
                             f"({', '.join(STATUSES)})")
        if not 0 < polling_interval < timeout:
            raise ValueError(f"polling_interval must be more than 0 and less than timeout ({timeout}), "
                             f"got {polling_interval}")
        deadline = time.monotonic() + timeout
        while True:
            document = self._api.get("trainjobs", name)
            job = _record(document)
            for callback in callbacks or ():
                callback(job)
            if job.status in wanted:
                return job
            if job.status == "Failed":
                failed = _condition(document, "Failed") or {}
                raise TrainerError(f"TrainJob {name} failed ({failed.get('reason', 'Failed')}): "
                                   f"{failed.get('message', '')}")
            if time.monotonic() + polling_interval > deadline:
                raise TimeoutError(f"TrainJob {name} is {job.status}, not {' or '.join(sorted(wanted))}, "
                                   f"after {timeout} s")
            time.sleep(polling_interval)

    def delete_job(self, name: str) -> None:
        """Delete the job; its processes are stopped first."""
        self._api.request("DELETE", self._api.path("trainjobs", name))

    # -- logs ---------------------------------------------------------------------------------------------
    def _log(self, name: str, step: str) -> tuple[str | None, str]:
        """(attempt, text) of `step`'s latest log; (None, "") before it has one."""
        response = self._api.request("GET", self._api.path("trainjobs", name) + "/log", allow=(400,))
        if response.status_code == 400:  # no replica has started yet
            return None, ""
        parts = _SECTION.split(response.text)
        for index in range(1, len(parts) - 2, 3):
            if parts[index] == step:
                return parts[index + 1], parts[index + 2]
        return None, ""

    def _follow(self, name: str, step: str) -> Iterator[str]:
        sent, attempt = 0, None
        while True:
            finished = _record(self._api.get("trainjobs", name)).status in ("Complete", "Failed")
            current, text = self._log(name, step)
            if current != attempt:  # a new attempt logs from its start
                sent, attempt = 0, current
            lines = text.split("\n")
            complete = lines[:-1]
            yield from complete[sent:]
            sent = len(complete)
            if finished:
                if lines[-1]:
                    yield lines[-1]
                return
            time.sleep(FOLLOW_SECONDS)


# -- documents and records ----------------------------------------------------------------------------------
def trainjob_document(name: str, trainer: CustomTrainer, runtime: str = DEFAULT_RUNTIME) -> dict[str, Any]:
    """The TrainJob that runs `trainer`'s function on every process of every node (also valid YAML to apply)."""
    source, function_name = _function_source(trainer.func)
    kwargs = dict(trainer.func_args or {})
    _check_arguments(trainer.func, kwargs)
    args = ["--name", function_name, "--source-b64", base64.b64encode(source.encode()).decode(),
            "--kwargs", json.dumps(kwargs)]
    if trainer.packages_to_install:
        args += ["--packages", json.dumps(list(trainer.packages_to_install)),
                 "--index-urls", json.dumps(list(trainer.pip_index_urls or []))]
    spec: dict[str, Any] = {"command": ["torchrun", "-m", "flowdeck.runtime.function"], "args": args,
                            "numNodes": trainer.num_nodes or 1,
                            "numProcPerNode": _procs_per_node(trainer.resources_per_node)}
    if trainer.resources_per_node:
        resources = {("nvidia.com/gpu" if key == "gpu" else key): str(value)
                     for key, value in trainer.resources_per_node.items()}
        spec["resourcesPerNode"] = {"requests": resources, "limits": dict(resources)}
    if trainer.env:
        spec["env"] = [{"name": key, "value": str(value)} for key, value in trainer.env.items()]
    if trainer.image:
        spec["image"] = trainer.image
    return {"apiVersion": API_VERSION, "kind": "TrainJob", "metadata": {"name": name},
            "spec": {"runtimeRef": {"name": runtime}, "trainer": spec}}


def _function_source(func: Callable[..., Any]) -> tuple[str, str]:
    """The dedented source of `func` and its name; refused when it cannot run on its own elsewhere."""
    if not inspect.isfunction(func) or func.__name__ == "<lambda>":
        raise ValueError(f"func must be a function defined with def, whose source inspect can read (got {func!r})")
    if func.__code__.co_freevars:
        raise ValueError(f"func {func.__name__} uses {', '.join(func.__code__.co_freevars)} from its enclosing "
                         "function: it must be self-contained (pass values in func_args, import inside it)")
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError) as exc:
        raise ValueError(f"func {func.__name__}: its source cannot be read ({exc}): define it in a file or "
                         "a notebook cell") from None
    return textwrap.dedent(source), func.__name__


def _check_arguments(func: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    for key, value in kwargs.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ValueError(f"func_args[{key!r}]: a {type(value).__name__} cannot be sent to the job "
                             "(give JSON values: numbers, strings, booleans, lists, dicts)") from None
    try:
        inspect.signature(func).bind(**kwargs)
    except TypeError as exc:
        raise ValueError(f"func_args do not fit {func.__name__}{inspect.signature(func)}: {exc}") from None


def _procs_per_node(resources: dict[str, Any] | None) -> int:
    """Processes per node: the CPUs asked for per node, rounded up (1 when none are)."""
    cpu = (resources or {}).get("cpu")
    if cpu is None:
        return 1
    try:
        return max(1, math.ceil(parse_quantity(cpu)))
    except QuotaError as exc:
        raise ValueError(f"resources_per_node['cpu']: {exc}") from None


def _job_name(options: list[Any] | None) -> str:
    for option in options or ():
        if type(option).__name__ == "Name" and isinstance(getattr(option, "name", None), str):
            return option.name
        raise ValueError(f"options: {type(option).__name__} is not supported locally (only Name)")
    return random.choice(string.ascii_lowercase) + uuid.uuid4().hex[:11]


def _condition(document: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """Condition `kind` of the job when it is True."""
    for condition in (document.get("status") or {}).get("conditions") or ():
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def _record(document: dict[str, Any]) -> TrainJob:
    """The SDK's view of a TrainJob document: Created until every node runs, Running, then Complete or Failed."""
    metadata, spec = document["metadata"], document.get("spec") or {}
    trainer = spec.get("trainer") or {}
    nodes = int(trainer.get("numNodes") or 1)
    counts = next((entry for entry in (document.get("status") or {}).get("jobsStatus") or ()
                   if entry.get("name") == "node"), {})
    active, succeeded = int(counts.get("active") or 0), int(counts.get("succeeded") or 0)
    if _condition(document, "Complete"):
        status, step_status = "Complete", "Succeeded"
    elif _condition(document, "Failed"):
        status, step_status = "Failed", "Failed"
    elif active and active + succeeded >= nodes:
        status, step_status = "Running", "Running"
    else:
        status, step_status = "Created", "Running" if active else "Pending"
    device_count = str(trainer.get("numProcPerNode") or 1)
    name = metadata["name"]
    created = metadata.get("creationTimestamp")
    return TrainJob(
        name=name, runtime=Runtime((spec.get("runtimeRef") or {}).get("name") or DEFAULT_RUNTIME),
        steps=[Step(f"node-{index}", step_status, f"{name}-node-0-{index}", device_count=device_count)
               for index in range(nodes)],
        num_nodes=nodes, status=status,
        creation_timestamp=datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None)
