"""In-memory state of a running pipeline: task nodes and the DAG scopes that hold them.

A `Scope` is one instance of a DAG (the root, a sub-pipeline, a condition group, one loop
iteration). A `Node` is one task of a scope. Nodes know how many upstream tasks they still wait for
and which nodes wait for them, so a finished task wakes its dependents directly, with no polling.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "NOT_TRIGGERED", "CANCELED"})
#: Upstream states that make a dependent skip, unless it runs on ALL_UPSTREAM_TASKS_COMPLETED.
BLOCKING = frozenset({"FAILED", "SKIPPED", "CANCELED"})


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(eq=False)
class Scope:
    component: dict[str, Any]
    owner: Node | None
    path: str
    parameters: dict[str, Any]
    artifacts: dict[str, list[dict[str, Any]]]
    nodes: dict[str, Node] = field(default_factory=dict)
    unfinished: int = 0
    failed: bool = False
    error: str | None = None
    canceled: bool = False

    @property
    def tasks(self) -> dict[str, Any]:
        return (self.component.get("dag") or {}).get("tasks") or {}


@dataclass(frozen=True)
class PreviousTask:
    """A task recorded by an earlier execution of the same run (see Engine's `previous`)."""

    id: str
    kind: str
    state: str
    attempts: int
    #: (parameters, artifacts with their store ids) of a container or importer task that succeeded.
    outputs: tuple[dict[str, Any], dict[str, list[dict[str, Any]]]] | None = None


@dataclass(eq=False)
class Node:
    name: str
    spec: dict[str, Any]
    scope: Scope
    path: str
    kind: str
    id: str = field(default_factory=new_id)
    state: str = "PENDING"
    waiting: int = 0
    dependents: list[Node] = field(default_factory=list)
    parameters_in: dict[str, Any] = field(default_factory=dict)
    artifacts_in: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    parameters_out: dict[str, Any] = field(default_factory=dict)
    artifacts_out: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    attempts: int = 0
    cached: bool = False
    cached_from: dict[str, str] | None = None
    error: str | None = None
    handle: Any = None
    fingerprint: str | None = None
    task_dir: str | None = None
    # resuming a run: attempts made before this execution (retry limits count from here), and the
    # outputs of a task that already succeeded then (it is not run again)
    retry_base: int = 0
    reuse: tuple[dict[str, Any], dict[str, list[dict[str, Any]]]] | None = None
    # loops
    items: list[Any] | None = None
    next_item: int = 0
    active_iterations: int = 0
    failed_iterations: int = 0
    iteration_results: dict[int, Scope] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return (self.spec.get("taskInfo") or {}).get("name") or self.name

    @property
    def component_name(self) -> str:
        return self.spec["componentRef"]["name"]

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL
