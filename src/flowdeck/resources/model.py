"""The Kubeflow-style object every kind shares: apiVersion, kind, metadata, spec, status.

A resource is what a user writes in YAML (`flowdeck apply -f`) and what the resource API returns.
The envelope is the same for every kind; only `spec` differs, and each kind validates it with its own
pydantic model (see `kinds.Kind`). `status` belongs to the kind's controller: it carries Kubernetes-
style conditions, which is how every client (`--wait`, `get`, `describe`) tells where a resource is.

The single-user namespace is called `default` here, as in Kubernetes; the store calls it "" like
every other table (see `store_namespace`).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: The namespace a resource lands in when its metadata names none.
DEFAULT_NAMESPACE = "default"

ConditionStatus = Literal["True", "False", "Unknown"]

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def check_name(value: str) -> str:
    """A resource name: a DNS-1123 subdomain (lowercase letters, digits, '-' and '.'), at most 253 characters."""
    if not value or len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid name: use lowercase letters, digits, '-' and '.', "
                         "starting and ending with a letter or digit (at most 253 characters)")
    return value


def check_namespace(value: str) -> str:
    """A namespace: a DNS-1123 label (lowercase letters, digits and '-'), at most 63 characters."""
    if not value or len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid namespace: use lowercase letters, digits and '-', "
                         "starting and ending with a letter or digit (at most 63 characters)")
    return value


def store_namespace(namespace: str) -> str:
    """The namespace as the store keeps it ("" for `default`, the single-user namespace)."""
    return "" if namespace == DEFAULT_NAMESPACE else namespace


def api_namespace(namespace: str) -> str:
    """The namespace as the resource API shows it (`default` for the store's "")."""
    return namespace or DEFAULT_NAMESPACE


def now() -> datetime:
    return datetime.now(timezone.utc)


class Condition(BaseModel):
    """One observation about a resource: `Running` is "True" since 12:03, because `RunStarted`."""

    model_config = ConfigDict(extra="forbid")

    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    lastTransitionTime: datetime | None = None


class ObjectMeta(BaseModel):
    """What identifies a resource. `uid` and the fields after it are set by the server, never by users."""

    model_config = ConfigDict(extra="forbid")

    name: str
    #: None for a cluster-scoped resource.
    namespace: str | None = DEFAULT_NAMESPACE
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    creationTimestamp: datetime | None = None
    #: Bumped each time the spec changes; `status.observedGeneration` says which one the controller saw.
    generation: int | None = None
    #: Changes on every write. Given on apply, the write is refused if the resource changed since.
    resourceVersion: str | None = None
    #: Set when a delete was requested and the kind's controller is still cleaning up.
    deletionTimestamp: datetime | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("namespace")
    @classmethod
    def _valid_namespace(cls, value: str | None) -> str | None:
        return None if value is None else check_namespace(value)


class Status(BaseModel):
    """Written by the kind's controller: conditions, the generation it acted on, and kind-specific fields."""

    model_config = ConfigDict(extra="allow")

    conditions: list[Condition] = Field(default_factory=list)
    observedGeneration: int | None = None

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def newest_true(self) -> str | None:
        """The type of the condition that became True most recently (kubectl's STATE column), or None."""
        true = [c for c in self.conditions if c.status == "True"]
        return max(true, key=lambda c: (c.lastTransitionTime is not None, c.lastTransitionTime or 0)).type \
            if true else None

    def is_true(self, type_: str) -> bool:
        found = self.condition(type_)
        return found is not None and found.status == "True"

    def set_condition(self, type_: str, status: ConditionStatus | bool, reason: str = "", message: str = "") -> bool:
        """Record a condition; its transition time moves only when its status changes. True if anything changed."""
        value: ConditionStatus = ("True" if status else "False") if isinstance(status, bool) else status
        found = self.condition(type_)
        if found is None:
            self.conditions.append(Condition(type=type_, status=value, reason=reason, message=message,
                                             lastTransitionTime=now()))
            return True
        if (found.status, found.reason, found.message) == (value, reason, message):
            return False
        if found.status != value:
            found.lastTransitionTime = now()
        found.status, found.reason, found.message = value, reason, message
        return True


class Resource(BaseModel):
    """A resource of any kind; `spec` is the kind's validated spec as plain JSON."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any] = Field(default_factory=dict)
    status: Status = Field(default_factory=Status)

    @property
    def ref(self) -> str:
        """`pipelinerun/train`, as commands print it."""
        return f"{self.kind.lower()}/{self.metadata.name}"

    def to_json(self) -> dict[str, Any]:
        """The resource as the API returns it (unset server fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)
