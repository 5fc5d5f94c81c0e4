"""`ResourceService`: apply, read and delete resources of any registered kind.

This is what the resource API calls; it knows nothing of HTTP. It validates documents with the
registry, stores them through the repository, and tells the controller (`on_change`) which resources
need reconciling. Failures are `ResourceError` (bad input), `NotFound`, or `ResourceConflict`.

Namespaced resources are addressed with a namespace, cluster-scoped ones (`Kind.cluster_scoped`) with
None: naming the wrong one is a `ResourceError` that says how to address the kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from flowdeck.resources.kinds import Kind, KindContext
from flowdeck.resources.loader import ResourceError, parse_resource
from flowdeck.resources.model import (
    DEFAULT_NAMESPACE,
    ObjectMeta,
    Resource,
    Status,
    api_namespace,
    check_namespace,
    store_namespace,
)
from flowdeck.resources.registry import Registry
from flowdeck.store.models import ResourceRow
from flowdeck.store.resources import ApplyResult, Desired, ResourceConflict, ResourceRepository

__all__ = ["NotFound", "ResourceConflict", "ResourceError", "ResourceService", "to_resource"]

#: Spec values longer than this are summarised by the default `describe`.
_SUMMARY_WIDTH = 100


class NotFound(LookupError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def to_resource(row: ResourceRow, cluster_scoped: bool = False) -> Resource:
    """A stored row as the API shows it (a cluster-scoped one without a namespace)."""
    return Resource(
        apiVersion=row.api_version,
        kind=row.kind,
        metadata=ObjectMeta(
            name=row.name, namespace=None if cluster_scoped else api_namespace(row.namespace),
            labels=row.labels or {},
            annotations=row.annotations or {}, uid=row.uid, creationTimestamp=row.created_at,
            generation=row.generation, resourceVersion=str(row.resource_version),
            deletionTimestamp=row.deletion_requested_at,
        ),
        spec=row.spec or {},
        status=Status.model_validate(row.status or {}),
    )


class ResourceService:
    """Resources of the registry's kinds, stored through `repository`."""

    def __init__(self, repository: ResourceRepository, registry: Registry, context: KindContext,
                 on_change: Callable[[str], None] | None = None) -> None:
        self.repository = repository
        self.registry = registry
        self.context = context
        self.on_change = on_change or (lambda _uid: None)

    def kinds(self) -> list[dict[str, Any]]:
        return [kind.to_json() for kind in self.registry]

    def kind(self, name: str) -> Kind:
        """The kind called `name` (kind, plural, short name; any case); raises `UnknownKind`."""
        return self.registry.get(name)

    def apply(self, documents: Sequence[Any], namespace: str | None = None) -> list[tuple[ApplyResult, Resource]]:
        """Create or update every document, all or none. `namespace` fills in documents that name none.

        Errors in one of several documents name it (`document 2: spec.replicas: ...`).
        """
        if not documents:
            raise ResourceError("no resources to apply")
        items: list[Desired] = []
        seen: set[tuple[str, str, str]] = set()
        for number, document in enumerate(documents, 1):
            where = f"document {number}: " if len(documents) > 1 else ""
            try:
                kind, resource = parse_resource(self._with_namespace(document, namespace), self.registry)
            except ResourceError as exc:
                raise ResourceError(where + exc.message) from None
            meta = resource.metadata
            key = (kind.kind, meta.namespace or "", meta.name)
            if key in seen:
                where_in = f" in namespace {meta.namespace}" if meta.namespace else ""
                raise ResourceError(f"{where}{resource.ref} appears twice{where_in}")
            seen.add(key)
            items.append(Desired(
                api_version=resource.apiVersion, kind=kind.kind,
                namespace="" if meta.namespace is None else store_namespace(meta.namespace),
                name=meta.name, spec=resource.spec, labels=meta.labels, annotations=meta.annotations,
                resource_version=_version(meta.resourceVersion, where)))
        applied = self.repository.apply(items)
        for row, result in applied:
            if result != "unchanged":
                self.on_change(row.uid)
        return [(result, to_resource(row, self.registry.get(row.kind).cluster_scoped)) for row, result in applied]

    def get(self, kind_name: str, namespace: str | None, name: str) -> Resource:
        kind = self.kind(kind_name)
        return to_resource(self._row(kind, namespace, name), kind.cluster_scoped)

    def find(self, kind_name: str, namespace: str | None, name: str) -> Resource | None:
        """The resource, or None when there is none."""
        kind = self.kind(kind_name)
        _check_scope(kind, namespace)
        row = self.repository.get(kind.kind, _stored(namespace), name)
        return None if row is None else to_resource(row, kind.cluster_scoped)

    def list(self, kind_name: str, namespace: str | None) -> list[Resource]:
        """Resources of a kind in one namespace, or in every namespace (None; cluster-scoped kinds: always None)."""
        kind = self.kind(kind_name)
        if kind.cluster_scoped:
            _check_scope(kind, namespace)
        rows = self.repository.list(kind.kind, None if namespace is None else store_namespace(namespace))
        return [to_resource(row, kind.cluster_scoped) for row in rows]

    def delete(self, kind_name: str, namespace: str | None, name: str) -> Resource:
        """Delete at once when the kind holds nothing; otherwise mark it for its controller to finalize.

        Refused (`ResourceConflict`) while the kind's `deletable` hook says the resource is still in use.
        """
        kind = self.kind(kind_name)
        row = self._row(kind, namespace, name)
        if kind.deletable is not None and row.deletion_requested_at is None:
            reason = kind.deletable(self.context, to_resource(row, kind.cluster_scoped))
            if reason:
                raise ResourceConflict(reason)
        if kind.finalize is None:
            self.repository.delete(row.uid)
        elif self.repository.request_deletion(row.uid):
            self.on_change(row.uid)
            row = self.repository.get_uid(row.uid) or row
        return to_resource(row, kind.cluster_scoped)

    def logs(self, kind_name: str, namespace: str | None, name: str) -> Iterable[str]:
        kind = self.kind(kind_name)
        if kind.logs is None:
            raise ResourceError(f"{kind.kind} resources have no logs")
        return kind.logs(self.context, to_resource(self._row(kind, namespace, name), kind.cluster_scoped))

    def describe(self, kind_name: str, namespace: str | None, name: str) -> dict[str, Any]:
        """The resource, a summary of it (the kind's `describe` hook, or its spec's fields) and its events."""
        kind = self.kind(kind_name)
        row = self._row(kind, namespace, name)
        resource = to_resource(row, kind.cluster_scoped)
        details = kind.describe(self.context, resource) if kind.describe else _spec_summary(resource.spec)
        events = [{"type": e.type, "reason": e.reason, "message": e.message,
                   "time": e.created_at.isoformat()} for e in self.repository.events(row.uid)]
        return {"object": resource.to_json(), "details": [{"name": k, "value": v} for k, v in details],
                "events": events}

    def _row(self, kind: Kind, namespace: str | None, name: str) -> ResourceRow:
        _check_scope(kind, namespace)
        row = self.repository.get(kind.kind, _stored(namespace), name)
        if row is None:
            where = f" in namespace {namespace}" if namespace else ""
            raise NotFound(f"{kind.kind.lower()}/{name} not found{where}")
        return row

    def _with_namespace(self, document: Any, namespace: str | None) -> Any:
        """The document with `namespace` filled in (or checked against the one it names); cluster-scoped
        kinds' documents are left alone."""
        if namespace is None or not isinstance(document, dict) or not isinstance(document.get("metadata"), dict):
            return document
        kind = self.registry.find(document["kind"]) if isinstance(document.get("kind"), str) else None
        if kind is not None and kind.cluster_scoped:
            return document
        given = document["metadata"].get("namespace")
        if given is None:
            return {**document, "metadata": {**document["metadata"], "namespace": namespace}}
        if given != namespace:
            raise ResourceError(f"metadata.namespace: {given!r} differs from the namespace asked for ({namespace})")
        return document


def _check_scope(kind: Kind, namespace: str | None) -> None:
    """Refuse a namespace for a cluster-scoped kind, and none for a namespaced one."""
    if kind.cluster_scoped and namespace is not None:
        raise ResourceError(f"{kind.plural} are cluster-scoped: address them without a namespace "
                            f"(/apis/flowdeck/v1/{kind.plural}/NAME)")
    if not kind.cluster_scoped and namespace is None:
        raise ResourceError(f"{kind.plural} live in a namespace: address them as "
                            f"/apis/flowdeck/v1/namespaces/NAMESPACE/{kind.plural}/NAME")


def _stored(namespace: str | None) -> str:
    """The store's namespace of an address ("" for cluster-scoped resources and for `default`)."""
    return "" if namespace is None else store_namespace(namespace)


def resolve_namespace(namespace: str | None) -> str:
    """A namespace from a URL or command line, checked (`default` when none is given)."""
    try:
        return check_namespace(namespace or DEFAULT_NAMESPACE)
    except ValueError as exc:
        raise ResourceError(str(exc)) from None


def _version(value: str | None, where: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ResourceError(f"{where}metadata.resourceVersion: {value!r} is not a version this server gave") from None


def _spec_summary(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """The spec's top-level fields, long values shortened."""
    lines = []
    for key, value in spec.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > _SUMMARY_WIDTH:
            size = f"{len(value)} entries" if isinstance(value, (dict, list)) else f"{len(text)} characters"
            text = f"{text[:_SUMMARY_WIDTH - 20]}... ({size})"
        lines.append((key, text))
    return lines
