"""Profile quotas (`resourceQuotaSpec.hard`) applied to the workloads this machine runs.

Part of the runtime layer because every capability that starts workloads (pipeline runs, training
jobs, trials) must pass the same gate, and none of them may import another.

Kubernetes enforces a profile's ResourceQuota when pods are created; locally, `QuotaGate` does the
same for every workload a run (and later a training job) starts: a workload is admitted when its
requests fit in what its profile has left, waits while they do not (with a reason the user can read),
and is refused outright when they could never fit. Waiters are woken when another workload of the
same profile ends — no polling.

Quantities use Kubernetes' notation: `cpu: "1"`, `"500m"`; `memory: "2Gi"`, `"1G"`;
`requests.nvidia.com/gpu: "1"`; `pods: "3"` counts running workloads.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")
_SUFFIXES = {
    "": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
    "E": 1e18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
#: How long a profile's quota is believed before it is read again.
_LIMITS_TTL = 1.0
#: resourceQuotaSpec.hard keys -> the demand they limit.
_KEYS = {
    "cpu": "cpu", "requests.cpu": "cpu", "limits.cpu": "cpu",
    "memory": "memory", "requests.memory": "memory", "limits.memory": "memory",
    "requests.nvidia.com/gpu": "gpu", "nvidia.com/gpu": "gpu", "limits.nvidia.com/gpu": "gpu",
    "pods": "workloads", "count/pods": "workloads",
}
_UNITS = {"cpu": "CPU", "memory": "bytes of memory", "gpu": "GPU", "workloads": "running workloads"}


class QuotaError(ValueError):
    """A quantity or a quota that cannot be read."""


def parse_quantity(value: object) -> float:
    """A Kubernetes quantity ("2", "500m", "1.5Gi", 3) as a number."""
    if isinstance(value, (int, float)):
        return float(value)
    match = _QUANTITY.match(str(value))
    if not match or match.group(2) not in _SUFFIXES:
        raise QuotaError(f"{value!r} is not a quantity (e.g. 2, 500m, 4Gi)")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


@dataclass(frozen=True)
class Demand:
    """What one workload asks for while it runs."""

    cpu: float = 0.0
    memory: float = 0.0
    gpu: float = 0.0
    workloads: float = 1.0

    def get(self, resource: str) -> float:
        return getattr(self, resource)


def container_amounts(resources: Mapping[str, object] | None) -> dict[str, float]:
    """cpu, memory and gpu of a container's `resources`: its requests, else its limits (Kubernetes defaults one
    to the other)."""
    resources = resources or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    assert isinstance(requests, Mapping) and isinstance(limits, Mapping)
    amounts: dict[str, float] = {}
    for name, resource in (("cpu", "cpu"), ("memory", "memory"), ("nvidia.com/gpu", "gpu")):
        value = requests.get(name, limits.get(name))
        if value is not None:
            amounts[resource] = parse_quantity(value)
    return amounts


def limits_from_hard(hard: Mapping[str, object] | None) -> dict[str, float]:
    """resourceQuotaSpec.hard as {cpu, memory, gpu, workloads: limit}; keys it does not limit are ignored."""
    limits: dict[str, float] = {}
    for key, value in (hard or {}).items():
        resource = _KEYS.get(key)
        if resource is not None:
            limits[resource] = min(limits.get(resource, float("inf")), parse_quantity(value))
    return limits


def _amount(resource: str, value: float) -> str:
    if resource == "memory":
        return f"{value / 2**30:g} GiB of memory"
    return f"{value:g} {_UNITS[resource]}"


@dataclass(frozen=True)
class Admission:
    admitted: bool
    #: Why not: what the profile allows and what is in use.
    reason: str | None = None
    #: The demand exceeds the quota itself: waiting cannot help.
    never_fits: bool = False


class QuotaGate:
    """Admits workloads within their profile's quota; thread-safe, shared by every engine."""

    def __init__(self, limits_for: Callable[[str], Mapping[str, object] | None],
                 holder: Callable[[str], str] = lambda namespace: f"profile {namespace or 'default'}",
                 waiting_for: str = "quota") -> None:
        #: namespace -> resourceQuotaSpec.hard (None: no quota).
        self.limits_for = limits_for
        #: How messages name what holds the limits (a profile; for a machine-wide gate, "this machine").
        self.holder = holder
        self.waiting_for = waiting_for
        self._limits: dict[str, tuple[float, dict[str, float]]] = {}
        self._lock = threading.Lock()
        self._held: dict[str, dict[str, Demand]] = {}
        self._waiters: dict[str, list[Callable[[], None]]] = {}

    def limits(self, namespace: str) -> dict[str, float]:
        """The namespace's quota as {resource: limit} ({}: none), read at most once a second."""
        cached = self._limits.get(namespace)
        if cached is None or time.monotonic() - cached[0] > _LIMITS_TTL:
            cached = (time.monotonic(), limits_from_hard(self.limits_for(namespace)))
            self._limits[namespace] = cached
        return cached[1]

    def try_admit(self, namespace: str, key: str, demand: Demand, wake: Callable[[], None]) -> Admission:
        """Admit the workload `key`, or say why not; `wake` is called once something is released."""
        limits = self.limits(namespace)
        with self._lock:
            held = self._held.setdefault(namespace, {})
            if key in held:
                return Admission(True)
            for resource, limit in limits.items():
                asked = demand.get(resource)
                if asked > limit:
                    return Admission(False, f"it asks for {_amount(resource, asked)} and {self.holder(namespace)} "
                                            f"allows {_amount(resource, limit)} in all", never_fits=True)
                in_use = sum(d.get(resource) for d in held.values())
                if in_use + asked > limit:
                    waiters = self._waiters.setdefault(namespace, [])
                    if wake not in waiters:
                        waiters.append(wake)
                    return Admission(False, f"waiting for {self.waiting_for}: {self.holder(namespace)} allows "
                                            f"{_amount(resource, limit)} and {_amount(resource, in_use)} "
                                            "are in use")
            held[key] = demand
            return Admission(True)

    def release(self, namespace: str, key: str) -> None:
        """The workload `key` ended: free what it held and wake whoever waits in its profile."""
        with self._lock:
            if self._held.get(namespace, {}).pop(key, None) is None:
                return
            waiters = self._waiters.pop(namespace, [])
        for wake in waiters:
            wake()
