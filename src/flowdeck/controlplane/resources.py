"""flowdeck's own API: apply, read, delete and follow resources of every registered kind; run logs.

    GET    /apis/flowdeck/v1/kinds
    POST   /apis/flowdeck/v1/apply                                 {"items": [...]}: all or none
    GET    /apis/flowdeck/v1/{kind}                                 every namespace the caller may use
    GET    /apis/flowdeck/v1/namespaces/{ns}/{kind}
    GET    /apis/flowdeck/v1/namespaces/{ns}/{kind}/{name}
    PUT    /apis/flowdeck/v1/namespaces/{ns}/{kind}/{name}          apply one resource
    DELETE /apis/flowdeck/v1/namespaces/{ns}/{kind}/{name}
    GET    /apis/flowdeck/v1/namespaces/{ns}/{kind}/{name}/log      text/plain
    GET    /apis/flowdeck/v1/namespaces/{ns}/{kind}/{name}/describe {object, details, events}
    GET    /apis/flowdeck/v1/{kind}/{name}                          a cluster-scoped resource (Profile)
    PUT    /apis/flowdeck/v1/{kind}/{name}
    DELETE /apis/flowdeck/v1/{kind}/{name}
    GET    /apis/flowdeck/v1/{kind}/{name}/log
    GET    /apis/flowdeck/v1/{kind}/{name}/describe
    GET    /apis/flowdeck/v1/runs/{run_id}/logs?task=TASK           text/plain, as `flowdeck logs RUN [TASK]`

`{kind}` may be the kind, its plural or a short name, in any case (`PipelineRun`, `pipelineruns`,
`pr`).

Namespaced resources need `read` in their namespace to be seen and `write` to be changed. A
cluster-scoped kind that governs a namespace (a Profile governs the namespace it names) is seen by
that namespace's readers and changed or deleted by its owners (`own`), except for the spec fields
the kind keeps for cluster admins (`Kind.admin_fields`: a Profile's quota); creating one, and
anything on other cluster-scoped kinds, takes a cluster admin. What a caller may not see answers 404, like a
missing resource. Handlers only translate: the work is `flowdeck.resources.service.ResourceService`'s, reached
through the resource controller the server runs, and `flowdeck.pipelines.tasklogs`'. Their
exceptions become error responses in one place, `ResourceRoute`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError

from flowdeck.controlplane.app import Ctx
from flowdeck.controlplane.auth import Access, Authenticated, Scoped
from flowdeck.controlplane.errors import ApiError, DomainErrorRoute
from flowdeck.pipelines.tasklogs import MISSING_HEADER, NOTES_HEADER, TaskNotFound, find_logs
from flowdeck.resources.controller import ResourceController
from flowdeck.resources.kinds import Kind
from flowdeck.resources.model import DEFAULT_NAMESPACE, Resource, store_namespace
from flowdeck.resources.registry import UnknownKind
from flowdeck.resources.service import (
    NotFound,
    ResourceConflict,
    ResourceError,
    ResourceService,
    resolve_namespace,
)
from flowdeck.store import RunNotFound
from flowdeck.store.resources import ApplyResult


class ResourceRoute(DomainErrorRoute):
    """Unknown kinds, resources, runs and tasks are 404s; stale or deleting resources 409s; bad input 400s."""

    statuses = ((UnknownKind, 404), (NotFound, 404), (RunNotFound, 404), (TaskNotFound, 404),
                (ResourceConflict, 409), (ResourceError, 400))


router = APIRouter(prefix="/apis/flowdeck/v1", tags=["resources"], route_class=ResourceRoute)

_OBJECT = "/namespaces/{namespace}/{kind}/{name}"
#: How often an apply is checked and tried again when a resource changed between the check and the write.
_PINNED_TRIES = 3
_CLUSTER_OBJECT = "/{kind}/{name}"


def resource_service(ctx: Ctx) -> ResourceService:
    """The service of the resource controller the server runs."""
    for service in ctx.services:
        if isinstance(service, ResourceController):
            return service.service
    raise ApiError(503, "this control plane runs no resource controller")


def _namespace(namespace: str, access: Access, scope: str) -> str:
    """A namespace a request names, valid and one where the caller holds `scope` (the API's spelling)."""
    checked = resolve_namespace(namespace)
    access.require(scope, store_namespace(checked))
    return checked


def readable_namespace(namespace: Annotated[str, Path(description="`default`, or another namespace.")],
                       access: Scoped) -> str:
    """The path's namespace, where the caller may read."""
    return _namespace(namespace, access, "read")


def writable_namespace(namespace: Annotated[str, Path(description="`default`, or another namespace.")],
                       access: Scoped) -> str:
    """The path's namespace, where the caller may write (a 404 if they cannot even read there)."""
    return _namespace(namespace, access, "write")


Service = Annotated[ResourceService, Depends(resource_service)]
#: The path's `{namespace}`, checked for reading or for writing.
ReadNamespace = Annotated[str, Depends(readable_namespace)]
WriteNamespace = Annotated[str, Depends(writable_namespace)]


class ApplyRequest(BaseModel):
    #: Resource documents, as in a (multi-document) YAML file.
    items: list[Any]


@router.get("/kinds", summary="The kinds of resources this server knows")
def list_kinds(service: Service, _access: Authenticated) -> dict[str, Any]:
    return {"kinds": service.kinds()}


@router.post("/apply", summary="Create or update resources, all or none")
def apply_resources(request: ApplyRequest, service: Service, access: Scoped,
                    namespace: Annotated[str | None, Query()] = None) -> dict[str, Any]:
    if namespace is not None:
        _namespace(namespace, access, "write")

    def checked() -> list[Any]:
        items = list(request.items)
        for number, document in enumerate(items):
            metadata = document.get("metadata") if isinstance(document, dict) else None
            kind_name = document.get("kind") if isinstance(document, dict) else None
            kind = service.registry.find(kind_name) if isinstance(kind_name, str) else None
            if kind is not None and kind.cluster_scoped:
                name = metadata.get("name") if isinstance(metadata, dict) else None
                if not isinstance(name, str):
                    raise ResourceError("metadata.name: required")
                items[number] = may_change_cluster_object(access, service, kind, name, document=document)
                continue
            named = metadata.get("namespace") if isinstance(metadata, dict) else None
            target = named if isinstance(named, str) and named else namespace or DEFAULT_NAMESPACE
            access.require("write", store_namespace(target))
        return items

    applied = _apply_checked(service, checked, namespace)
    return {"items": [{"result": result, "object": resource.to_json()} for result, resource in applied]}


@router.get("/{kind}", summary="Resources of a kind in every namespace the caller may use (or cluster-scoped ones)")
def list_all(kind: str, service: Service, access: Scoped) -> dict[str, Any]:
    found = service.kind(kind)
    visible = access.visible("read")
    if found.cluster_scoped:
        items = [r.to_json() for r in service.list(kind, None) if _sees(access, found, r.metadata.name, visible)]
    else:
        items = [r.to_json() for r in service.list(kind, None)
                 if visible is None or store_namespace(r.metadata.namespace or "") in visible]
    return {"apiVersion": "v1", "kind": "List", "items": items}


@router.get("/namespaces/{namespace}/{kind}", summary="Resources of a kind in a namespace")
def list_resources(namespace: ReadNamespace, kind: str, service: Service) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": [r.to_json() for r in service.list(kind, namespace)]}


@router.get(_OBJECT, summary="One resource with its status")
def get_resource(namespace: ReadNamespace, kind: str, name: str, service: Service) -> dict[str, Any]:
    return service.get(kind, namespace, name).to_json()


@router.put(_OBJECT, summary="Create or update one resource")
def put_resource(namespace: WriteNamespace, kind: str, name: str, document: Annotated[dict[str, Any], Body()],
                 service: Service) -> JSONResponse:
    [(result, resource)] = service.apply([_named_document(service.kind(kind), name, document)], namespace)
    return JSONResponse(resource.to_json(), status_code=201 if result == "created" else 200)


def _named_document(wanted: Kind, name: str, document: dict[str, Any]) -> dict[str, Any]:
    """The document with the URL's kind and name, refused when it names others."""
    metadata = document.get("metadata")
    if document.get("kind") not in (None, wanted.kind):
        raise ResourceError(f"kind: {document.get('kind')!r} differs from the kind in the URL ({wanted.kind})")
    if isinstance(metadata, dict) and metadata.get("name") not in (None, name):
        raise ResourceError(f"metadata.name: {metadata.get('name')!r} differs from the name in the URL ({name})")
    metadata = {**metadata, "name": name} if isinstance(metadata, dict) else {"name": name}
    return {**document, "kind": wanted.kind, "metadata": metadata}


@router.delete(_OBJECT, summary="Delete a resource (its controller releases what it holds first)")
def delete_resource(namespace: WriteNamespace, kind: str, name: str, service: Service) -> dict[str, Any]:
    return service.delete(kind, namespace, name).to_json()


@router.get(_OBJECT + "/log", summary="The resource's logs, as text", response_class=StreamingResponse)
def resource_logs(namespace: ReadNamespace, kind: str, name: str, service: Service) -> StreamingResponse:
    chunks: Iterator[str] = iter(service.logs(kind, namespace, name))
    first = next(chunks, "")  # a hook that fails, fails here: before the response starts
    return StreamingResponse(chain([first], chunks), media_type="text/plain; charset=utf-8")


@router.get(_OBJECT + "/describe", summary="The resource, a summary of it, and its events")
def describe_resource(namespace: ReadNamespace, kind: str, name: str, service: Service) -> dict[str, Any]:
    return service.describe(kind, namespace, name)


# -- cluster-scoped resources -----------------------------------------------------------------------
def _sees(access: Access, kind: Kind, name: str, visible: frozenset[str] | None) -> bool:
    """Whether the caller sees the cluster-scoped object `name` (with `visible`: where they may read)."""
    if visible is None:
        return True
    return kind.governs_namespace and store_namespace(name) in visible


def _cluster_kind(service: ResourceService, kind: str) -> Kind:
    found = service.kind(kind)
    if not found.cluster_scoped:
        raise ResourceError(f"{found.plural} live in a namespace: address them as "
                            f"/apis/flowdeck/v1/namespaces/NAMESPACE/{found.plural}/NAME")
    return found


def _not_found(kind: Kind, name: str) -> NotFound:
    return NotFound(f"{kind.kind.lower()}/{name} not found")


def may_read_cluster_object(access: Access, kind: Kind, name: str) -> None:
    """Allow reading a cluster-scoped object, or answer 404 as if it did not exist."""
    if kind.governs_namespace:
        access.require("read", store_namespace(name), lambda: _not_found(kind, name))
    elif access.visible("read") is None:
        access.record(f"read {kind.kind}/{name}")
    else:
        raise _not_found(kind, name)


def may_change_cluster_object(access: Access, service: ResourceService, kind: Kind, name: str,
                              *, document: Any = None, deleting: bool = False) -> Any:
    """Allow changing (or deleting) a cluster-scoped object: its namespace's owners may change or delete one that
    exists, cluster admins anything. Creating takes a cluster admin; deleting what the caller cannot see is a 404.

    Returns the `document` to apply: an owner's must leave the kind's `admin_fields` as they are, and it is
    pinned to the version checked, so that a cluster admin's change made meanwhile is not undone."""
    namespace = store_namespace(name)
    existing = service.find(kind.kind, None, name)
    readable = existing is not None and kind.governs_namespace and access.can("read", namespace)
    if access.principal.full_cluster_admin:
        access.record("cluster-admin")
        return document
    if existing is not None and readable and access.can("own", namespace):
        changed = _admin_field_changed(kind, existing.spec, document)
        if changed is None:
            access.record(f"own:{namespace}")
            return _pinned(document, existing.metadata.resourceVersion)
        access.record(f"denied {kind.kind}/{name} spec.{changed}")
        raise ApiError(403, f"{_caller(access)} may not change spec.{changed} of {kind.kind.lower()}/{name}: only "
                            "a cluster admin may (leave it as it is)")
    access.record(f"denied {kind.kind}/{name}")
    if readable:
        raise ApiError(403, f"{_caller(access)} may not change or delete {kind.kind.lower()}/{name}: it takes an "
                            f"owner of namespace {name!r} or a cluster admin")
    if deleting:
        raise _not_found(kind, name)
    raise ApiError(403, f"{_caller(access)} may not create {kind.plural}: only a cluster admin may")


def _admin_field_changed(kind: Kind, current: dict[str, Any], document: Any) -> str | None:
    """The first of the kind's `admin_fields` that `document` would set or change, as validated and defaulted.

    A document whose spec is not valid changes nothing here: applying it fails with the reason."""
    if not kind.admin_fields or not isinstance(document, dict):
        return None
    try:
        wanted = kind.validate_spec(document.get("spec") or {})
    except ValidationError:
        return None
    return next((field for field in kind.admin_fields if wanted.get(field) != current.get(field)), None)


def _pinned(document: Any, version: str | None) -> Any:
    """`document` applied only over `version` (unless it names a version itself)."""
    if not isinstance(document, dict) or version is None:
        return document
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("resourceVersion") is not None:
        return document
    return {**document, "metadata": {**metadata, "resourceVersion": version}}


def _apply_checked(service: ResourceService, checked: Callable[[], list[Any]],
                   namespace: str | None = None) -> list[tuple[ApplyResult, Resource]]:
    """Apply the documents `checked()` allows, checking again when a pinned one changed meanwhile (its
    controller writing its status, say): a few tries, then the conflict is the answer."""
    for _ in range(_PINNED_TRIES - 1):
        try:
            return service.apply(checked(), namespace)
        except ResourceConflict:
            continue
    return service.apply(checked(), namespace)


def _caller(access: Access) -> str:
    kind, _, name = access.principal.name.partition(":")
    return f"{kind} {name!r}" if name else access.principal.name


@router.get(_CLUSTER_OBJECT, summary="One cluster-scoped resource (a Profile) with its status")
def get_cluster_resource(kind: str, name: str, service: Service, access: Scoped) -> dict[str, Any]:
    found = _cluster_kind(service, kind)
    may_read_cluster_object(access, found, name)
    return service.get(kind, None, name).to_json()


@router.put(_CLUSTER_OBJECT, summary="Create or update one cluster-scoped resource")
def put_cluster_resource(kind: str, name: str, document: Annotated[dict[str, Any], Body()], service: Service,
                         access: Scoped) -> JSONResponse:
    found = _cluster_kind(service, kind)
    named = _named_document(found, name, document)
    [(result, resource)] = _apply_checked(
        service, lambda: [may_change_cluster_object(access, service, found, name, document=named)])
    return JSONResponse(resource.to_json(), status_code=201 if result == "created" else 200)


@router.delete(_CLUSTER_OBJECT, summary="Delete a cluster-scoped resource")
def delete_cluster_resource(kind: str, name: str, service: Service, access: Scoped) -> dict[str, Any]:
    found = _cluster_kind(service, kind)
    may_change_cluster_object(access, service, found, name, deleting=True)
    return service.delete(kind, None, name).to_json()


@router.get(_CLUSTER_OBJECT + "/log", summary="A cluster-scoped resource's logs, as text",
            response_class=StreamingResponse)
def cluster_resource_logs(kind: str, name: str, service: Service, access: Scoped) -> StreamingResponse:
    may_read_cluster_object(access, _cluster_kind(service, kind), name)
    chunks: Iterator[str] = iter(service.logs(kind, None, name))
    first = next(chunks, "")
    return StreamingResponse(chain([first], chunks), media_type="text/plain; charset=utf-8")


@router.get(_CLUSTER_OBJECT + "/describe", summary="A cluster-scoped resource, a summary of it, and its events")
def describe_cluster_resource(kind: str, name: str, service: Service, access: Scoped) -> dict[str, Any]:
    may_read_cluster_object(access, _cluster_kind(service, kind), name)
    return service.describe(kind, None, name)


_LOG_HEADERS = {
    NOTES_HEADER: {"description": "A JSON list of notes, one line each: tasks asked for that have no logs and "
                                  "why, where a cached task's log comes from.", "schema": {"type": "string"}},
    MISSING_HEADER: {"description": "How many logs asked for cannot be shown (a named task without any, a log "
                                    "file that is gone); `flowdeck logs` then exits 1.",
                     "schema": {"type": "integer"}},
}


@router.get("/runs/{run_id}/logs", tags=["runs"], summary="A run's task logs, as text",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "headers": _LOG_HEADERS}})
def run_logs(run_id: Annotated[str, Path(description="A run id, or a unique prefix of one.")], ctx: Ctx,
             access: Scoped,
             task: Annotated[str | None, Query(description="A task's path, or a name matching every loop "
                                                           "iteration of it; every task when omitted.")] = None
             ) -> StreamingResponse:
    """The text `flowdeck logs RUN [TASK]` prints, and its notes (response headers).

    Each attempt's log comes under a `==> TASK (attempt N, STATE) <==` header when there are several; a
    task served from the cache shows the log of the execution it reused. The `Flowdeck-Log-Notes` header
    holds a JSON list of notes (tasks without logs and why), `Flowdeck-Logs-Missing` how many logs asked
    for cannot be shown.
    """
    row = ctx.store.get_run(run_id, namespaces=access.visible("read"))  # a prefix matches readable runs only
    access.require("read", row.namespace, lambda: RunNotFound(f"no run matches {run_id!r}"))
    found = find_logs(ctx.store, row, task)
    return StreamingResponse(found.chunks(), media_type="text/plain; charset=utf-8", headers=found.headers())
