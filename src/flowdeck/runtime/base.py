"""The seam between *what* to run and *where* it runs.

Capabilities describe work as a `Workload` (a plain record: a command, its environment, where its
logs go) and hand it to a `Runtime`. `LocalRuntime` runs it as a local process group; a Kubernetes
runtime turns the same record into a Pod. Nothing above this layer calls `subprocess` or the
Kubernetes API directly.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field

#: Called once when a workload ends, with its handle and exit code (negative: killed by that signal).
ExitCallback = Callable[["WorkloadHandle", int], None]


@dataclass
class Workload:
    """Something to run: a command with arguments, environment and resources."""

    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    log_path: str | None = None
    namespace: str = "default"
    image: str | None = None
    resources: dict[str, str] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class WorkloadHandle:
    """What a runtime returns for a started workload."""

    id: str
    workload: Workload
    pid: int | None = None
    exit_code: int | None = None

    @property
    def running(self) -> bool:
        return self.exit_code is None


class Runtime(abc.ABC):
    """Where workloads run."""

    @abc.abstractmethod
    def start(self, workload: Workload, on_exit: ExitCallback | None = None) -> WorkloadHandle:
        """Start `workload`; `on_exit` is called (from any thread) when it ends."""

    @abc.abstractmethod
    def status(self, handle: WorkloadHandle) -> str:
        """One of `starting`, `running`, `succeeded`, `failed`."""

    @abc.abstractmethod
    def logs(self, handle: WorkloadHandle) -> str:
        """Everything the workload has written to stdout and stderr so far."""

    @abc.abstractmethod
    def stop(self, handle: WorkloadHandle, grace_seconds: float = 5.0) -> None:
        """Ask the workload to stop (SIGTERM or equivalent), and force it after `grace_seconds`."""

    @abc.abstractmethod
    def endpoint(self, handle: WorkloadHandle, port: int) -> str:
        """A URL at which `port` of the running workload is reachable."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the runtime's own resources; running workloads are stopped."""
