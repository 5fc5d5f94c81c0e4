"""`Kind`: what a capability package declares to add a resource kind to flowdeck.

A kind is data plus a few hooks: its names (kind, plural, short names, accepted apiVersions), whether it
is namespaced or cluster-scoped, a pydantic model that validates `spec`, the controller's `reconcile`
(and `finalize` on delete), and optional `logs`, `describe` and `deletable` hooks. Capability packages
publish their kinds as `flowdeck.kinds` entry points (see `registry`); nothing in the core lists kinds.

Hooks receive a `KindContext`: the store, the settings, the control plane's run controller, and a way
to record events that `flowdeck describe` shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from flowdeck.resources.model import Resource

if TYPE_CHECKING:
    from flowdeck.config import Settings
    from flowdeck.store import Store

#: How a resource ended (or became usable), as `flowdeck apply --wait` reports it.
Outcome = Literal["Succeeded", "Failed", "Ready"]

#: Condition types that end a wait when "True": what Kubeflow's jobs, experiments and services use.
DEFAULT_OUTCOMES: Mapping[str, Outcome] = MappingProxyType(
    {"Succeeded": "Succeeded", "Failed": "Failed", "Ready": "Ready"})


class KindContext:
    """What a kind's hooks may use: the store, the settings, the run controller, and events."""

    def __init__(self, store: Store, settings: Settings, runs: Any,
                 record_event: Callable[[str, str, str, str], None]) -> None:
        self.store = store
        self.settings = settings
        #: The control plane's pipeline run controller (`flowdeck.pipelines.controller.RunController`).
        self.runs = runs
        self._record_event = record_event
        #: Reconcile a resource (by uid) again after a delay, for hooks that hear of changes outside the
        #: store: a process exiting, a quota freeing. The resource controller sets it.
        self.requeue: Callable[[str, float], None] = lambda uid, delay: None
        #: Mark a resource for deletion (its finalizer runs first), e.g. when its time to live is over.
        self.delete: Callable[[str], None] = lambda uid: None
        #: The resource service (`flowdeck.resources.service.ResourceService`), for hooks that manage resources
        #: of other kinds: an Experiment's trials are training jobs. The resource controller sets it.
        self.resources: Any = None

    def request_deletion(self, resource: Resource) -> None:
        """Delete `resource` as `flowdeck delete` would: finalize, then remove."""
        if resource.metadata.uid:
            self.delete(resource.metadata.uid)

    def event(self, resource: Resource, reason: str, message: str, *, warning: bool = False) -> None:
        """Record what happened to `resource` (shown by `flowdeck describe`); a repeat of the last one is dropped."""
        if resource.metadata.uid:
            self._record_event(resource.metadata.uid, "Warning" if warning else "Normal", reason, message)


#: Bring the world in line with the resource's spec and update `resource.status` in place (the caller
#: stores it). Must be idempotent: it runs again after every change, on every start of the control plane,
#: and after a crash at any point. Returns seconds until it should run again unasked, or None.
Reconcile = Callable[[KindContext, Resource], "float | None"]
#: Release what the resource holds (stop its processes...) before it is removed; raise to retry later.
Finalize = Callable[[KindContext, Resource], None]
#: The resource's logs, as chunks of text.
Logs = Callable[[KindContext, Resource], Iterable[str]]
#: Extra lines for `flowdeck describe`, as (label, value): a summary of the spec and of what it runs.
Describe = Callable[[KindContext, Resource], "list[tuple[str, str]]"]
#: Why the resource may not be deleted now (the delete is refused with that message), or None.
Deletable = Callable[[KindContext, Resource], "str | None"]


@dataclass(frozen=True)
class Kind:
    """One kind of resource and its controller."""

    kind: str
    #: The apiVersions accepted in YAML; the first is the one stored and served.
    api_versions: tuple[str, ...]
    plural: str
    spec_model: type[BaseModel]
    reconcile: Reconcile
    short_names: tuple[str, ...] = ()
    finalize: Finalize | None = None
    logs: Logs | None = None
    describe: Describe | None = None
    #: Condition types that, when "True", end `flowdeck apply --wait`, and the outcome each means.
    outcomes: Mapping[str, Outcome] = field(default_factory=lambda: DEFAULT_OUTCOMES)
    #: Extra columns of `flowdeck get`: (header, dotted path into the resource, e.g. "status.runId").
    columns: tuple[tuple[str, str], ...] = ()
    #: Cluster-scoped kinds belong to no namespace: the store keeps them in namespace "", the API
    #: addresses them as /apis/flowdeck/v1/{plural}/{name}, and a namespace in their YAML is ignored.
    cluster_scoped: bool = False
    #: Cluster-scoped kinds whose objects are named after the namespace they govern (Profile): the
    #: namespace's readers see the object, its owners change or delete it, and only cluster admins
    #: create one. Objects of other cluster-scoped kinds are for cluster admins alone.
    governs_namespace: bool = False
    #: Spec fields of such a kind that only a cluster admin may set or change (a Profile's quota): the
    #: namespace's owners may change the rest of the spec, not these.
    admin_fields: tuple[str, ...] = ()
    #: Refuses a delete while the resource is still in use (e.g. a Profile with unfinished runs).
    deletable: Deletable | None = None

    def __post_init__(self) -> None:
        if not self.api_versions:
            raise ValueError(f"kind {self.kind}: give at least one apiVersion")
        if self.governs_namespace and not self.cluster_scoped:
            raise ValueError(f"kind {self.kind}: only a cluster-scoped kind can govern a namespace")

    @property
    def api_version(self) -> str:
        return self.api_versions[0]

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a command or URL may use for this kind, lowercased."""
        return tuple(dict.fromkeys(n.lower() for n in (self.kind, self.plural, *self.short_names)))

    def validate_spec(self, spec: Any) -> dict[str, Any]:
        """The spec checked and defaulted by the kind's model, as JSON (raises pydantic's ValidationError)."""
        return self.spec_model.model_validate(spec).model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_json(self) -> dict[str, Any]:
        """The kind as `GET /apis/flowdeck/v1/kinds` describes it."""
        return {
            "kind": self.kind,
            "apiVersion": self.api_version,
            "apiVersions": list(self.api_versions),
            "plural": self.plural,
            "shortNames": list(self.short_names),
            "outcomes": dict(self.outcomes),
            "columns": [{"name": name, "path": path} for name, path in self.columns],
            "hasLogs": self.logs is not None,
            "clusterScoped": self.cluster_scoped,
        }
