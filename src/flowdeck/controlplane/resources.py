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
    GET    /apis/flowdeck/v1/runs/{run_id}/logs?task=TASK           text/plain, as `flowdeck logs RUN [TASK]`

`{kind}` may be the kind, its plural or a short name, in any case (`PipelineRun`, `pipelineruns`,
`pr`). Handlers only translate: the work is `flowdeck.resources.service.ResourceService`'s, reached
through the resource controller the server runs, and `flowdeck.pipelines.tasklogs`'. Their
exceptions become error responses in one place, `ResourceRoute`.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from flowdeck.controlplane.app import Ctx
from flowdeck.controlplane.auth import Caller, CallerDep
from flowdeck.controlplane.errors import ApiError, DomainErrorRoute
from flowdeck.pipelines.tasklogs import MISSING_HEADER, NOTES_HEADER, TaskNotFound, find_logs
from flowdeck.resources.controller import ResourceController
from flowdeck.resources.model import DEFAULT_NAMESPACE, store_namespace
from flowdeck.resources.registry import UnknownKind
from flowdeck.resources.service import (
    NotFound,
    ResourceConflict,
    ResourceError,
    ResourceService,
    resolve_namespace,
)
from flowdeck.store import RunNotFound


class ResourceRoute(DomainErrorRoute):
    """Unknown kinds, resources, runs and tasks are 404s; stale or deleting resources 409s; bad input 400s."""

    statuses = ((UnknownKind, 404), (NotFound, 404), (RunNotFound, 404), (TaskNotFound, 404),
                (ResourceConflict, 409), (ResourceError, 400))


router = APIRouter(prefix="/apis/flowdeck/v1", tags=["resources"], route_class=ResourceRoute)

_OBJECT = "/namespaces/{namespace}/{kind}/{name}"


def resource_service(ctx: Ctx) -> ResourceService:
    """The service of the resource controller the server runs."""
    for service in ctx.services:
        if isinstance(service, ResourceController):
            return service.service
    raise ApiError(503, "this control plane runs no resource controller")


def checked_namespace(namespace: Annotated[str, Path(description="`default`, or another namespace.")],
                      who: CallerDep) -> str:
    """The namespace a request names, valid and one the caller may use."""
    checked = resolve_namespace(namespace)
    _allow(who, checked)
    return checked


def _allow(who: Caller, namespace: str) -> None:
    """`Caller.check` on the namespace as every API names it (the store's: "" for `default`)."""
    if not who.can_access(store_namespace(namespace)):
        raise ApiError(404, f"namespace {namespace!r} not found")


Service = Annotated[ResourceService, Depends(resource_service)]
#: The path's `{namespace}`, checked (see `checked_namespace`).
Namespace = Annotated[str, Depends(checked_namespace)]


class ApplyRequest(BaseModel):
    #: Resource documents, as in a (multi-document) YAML file.
    items: list[Any]


@router.get("/kinds", summary="The kinds of resources this server knows")
def list_kinds(service: Service) -> dict[str, Any]:
    return {"kinds": service.kinds()}


@router.post("/apply", summary="Create or update resources, all or none")
def apply_resources(request: ApplyRequest, service: Service, who: CallerDep,
                    namespace: Annotated[str | None, Query()] = None) -> dict[str, Any]:
    if namespace is not None:
        checked_namespace(namespace, who)
    for document in request.items:
        metadata = document.get("metadata") if isinstance(document, dict) else None
        named = metadata.get("namespace") if isinstance(metadata, dict) else None
        _allow(who, named if isinstance(named, str) and named else namespace or DEFAULT_NAMESPACE)
    applied = service.apply(request.items, namespace)
    return {"items": [{"result": result, "object": resource.to_json()} for result, resource in applied]}


@router.get("/{kind}", summary="Resources of a kind in every namespace the caller may use")
def list_all(kind: str, service: Service, who: CallerDep) -> dict[str, Any]:
    items = [r.to_json() for r in service.list(kind, None) if who.can_access(store_namespace(r.metadata.namespace))]
    return {"apiVersion": "v1", "kind": "List", "items": items}


@router.get("/namespaces/{namespace}/{kind}", summary="Resources of a kind in a namespace")
def list_resources(namespace: Namespace, kind: str, service: Service) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": [r.to_json() for r in service.list(kind, namespace)]}


@router.get(_OBJECT, summary="One resource with its status")
def get_resource(namespace: Namespace, kind: str, name: str, service: Service) -> dict[str, Any]:
    return service.get(kind, namespace, name).to_json()


@router.put(_OBJECT, summary="Create or update one resource")
def put_resource(namespace: Namespace, kind: str, name: str, document: Annotated[dict[str, Any], Body()],
                 service: Service) -> JSONResponse:
    wanted = service.kind(kind)
    metadata = document.get("metadata")
    if document.get("kind") not in (None, wanted.kind):
        raise ResourceError(f"kind: {document.get('kind')!r} differs from the kind in the URL ({wanted.kind})")
    if isinstance(metadata, dict) and metadata.get("name") not in (None, name):
        raise ResourceError(f"metadata.name: {metadata.get('name')!r} differs from the name in the URL ({name})")
    metadata = {**metadata, "name": name} if isinstance(metadata, dict) else {"name": name}
    [(result, resource)] = service.apply([{**document, "kind": wanted.kind, "metadata": metadata}], namespace)
    return JSONResponse(resource.to_json(), status_code=201 if result == "created" else 200)


@router.delete(_OBJECT, summary="Delete a resource (its controller releases what it holds first)")
def delete_resource(namespace: Namespace, kind: str, name: str, service: Service) -> dict[str, Any]:
    return service.delete(kind, namespace, name).to_json()


@router.get(_OBJECT + "/log", summary="The resource's logs, as text", response_class=StreamingResponse)
def resource_logs(namespace: Namespace, kind: str, name: str, service: Service) -> StreamingResponse:
    chunks: Iterator[str] = iter(service.logs(kind, namespace, name))
    first = next(chunks, "")  # a hook that fails, fails here: before the response starts
    return StreamingResponse(chain([first], chunks), media_type="text/plain; charset=utf-8")


@router.get(_OBJECT + "/describe", summary="The resource, a summary of it, and its events")
def describe_resource(namespace: Namespace, kind: str, name: str, service: Service) -> dict[str, Any]:
    return service.describe(kind, namespace, name)


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
             who: CallerDep,
             task: Annotated[str | None, Query(description="A task's path, or a name matching every loop "
                                                           "iteration of it; every task when omitted.")] = None
             ) -> StreamingResponse:
    """The text `flowdeck logs RUN [TASK]` prints, and its notes (response headers).

    Each attempt's log comes under a `==> TASK (attempt N, STATE) <==` header when there are several; a
    task served from the cache shows the log of the execution it reused. The `Flowdeck-Log-Notes` header
    holds a JSON list of notes (tasks without logs and why), `Flowdeck-Logs-Missing` how many logs asked
    for cannot be shown.
    """
    row = ctx.store.get_run(run_id)
    who.check(row.namespace)
    found = find_logs(ctx.store, row, task)
    return StreamingResponse(found.chunks(), media_type="text/plain; charset=utf-8", headers=found.headers())
