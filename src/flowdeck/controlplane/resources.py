"""The resource API: apply, read, delete and follow resources of every registered kind.

    GET    /apis/flowdeck/v1/kinds
    POST   /apis/flowdeck/v1/apply                                 {"items": [...]}: all or none
    GET    /apis/flowdeck/v1/{kind}                                 every namespace the caller may use
    GET    /apis/flowdeck/v1/namespaces/{ns}/{kind}
    GET    /apis/flowdeck/v1/namespaces/{ns}/{kind}/{name}
    PUT    /apis/flowdeck/v1/namespaces/{ns}/{kind}/{name}          apply one resource
    DELETE /apis/flowdeck/v1/namespaces/{ns}/{kind}/{name}
    GET    /apis/flowdeck/v1/namespaces/{ns}/{kind}/{name}/log      text/plain
    GET    /apis/flowdeck/v1/namespaces/{ns}/{kind}/{name}/describe {object, details, events}

`{kind}` may be the kind, its plural or a short name, in any case (`PipelineRun`, `pipelineruns`,
`pr`). Handlers only translate: the work is `flowdeck.resources.service.ResourceService`'s, reached
through the resource controller running in the server (or a controller-less service in tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from flowdeck.controlplane.app import ServerContext, context
from flowdeck.controlplane.auth import Caller, caller
from flowdeck.controlplane.errors import ApiError
from flowdeck.resources.controller import ResourceController, create_controller
from flowdeck.resources.model import DEFAULT_NAMESPACE, store_namespace
from flowdeck.resources.registry import UnknownKind
from flowdeck.resources.service import (
    NotFound,
    ResourceConflict,
    ResourceError,
    ResourceService,
    resolve_namespace,
)

router = APIRouter(prefix="/apis/flowdeck/v1", tags=["resources"])

_OBJECT = "/namespaces/{namespace}/{kind}/{name}"


def resource_service(ctx: Annotated[ServerContext, Depends(context)]) -> ResourceService:
    """The running resource controller's service; a service of its own when no controller runs."""
    for service in ctx.services:
        if isinstance(service, ResourceController):
            return service.service
    return create_controller(ctx.store, ctx.settings, ctx.runs).service


Service = Annotated[ResourceService, Depends(resource_service)]
Who = Annotated[Caller, Depends(caller)]


class ApplyRequest(BaseModel):
    #: Resource documents, as in a (multi-document) YAML file.
    items: list[Any]


def _translate(exc: UnknownKind | NotFound | ResourceConflict | ResourceError) -> ApiError:
    if isinstance(exc, (UnknownKind, NotFound)):
        return ApiError(404, exc.message)
    return ApiError(409 if isinstance(exc, ResourceConflict) else 400, str(exc))


def _namespace(namespace: str, who: Caller) -> str:
    """The namespace of a request, checked, once the caller is known to be allowed in it."""
    try:
        checked = resolve_namespace(namespace)
    except ResourceError as exc:
        raise ApiError(400, exc.message) from None
    _allow(who, checked)
    return checked


def _allow(who: Caller, namespace: str) -> None:
    """`Caller.check` on the namespace as every API names it (the store's: "" for `default`)."""
    if not who.can_access(store_namespace(namespace)):
        raise ApiError(404, f"namespace {namespace!r} not found")


@router.get("/kinds", summary="The kinds of resources this server knows")
def list_kinds(service: Service) -> dict[str, Any]:
    return {"kinds": service.kinds()}


@router.post("/apply", summary="Create or update resources, all or none")
def apply_resources(request: ApplyRequest, service: Service, who: Who,
                    namespace: Annotated[str | None, Query()] = None) -> dict[str, Any]:
    if namespace is not None:
        _namespace(namespace, who)
    for document in request.items:
        metadata = document.get("metadata") if isinstance(document, dict) else None
        named = metadata.get("namespace") if isinstance(metadata, dict) else None
        _allow(who, named if isinstance(named, str) and named else namespace or DEFAULT_NAMESPACE)
    try:
        applied = service.apply(request.items, namespace)
    except (ResourceError, ResourceConflict) as exc:
        raise _translate(exc) from None
    return {"items": [{"result": result, "object": resource.to_json()} for result, resource in applied]}


@router.get("/{kind}", summary="Resources of a kind in every namespace the caller may use")
def list_all(kind: str, service: Service,
             who: Who) -> dict[str, Any]:
    try:
        found = service.list(kind, None)
    except UnknownKind as exc:
        raise _translate(exc) from None
    items = [r.to_json() for r in found if who.can_access(store_namespace(r.metadata.namespace))]
    return {"apiVersion": "v1", "kind": "List", "items": items}


@router.get("/namespaces/{namespace}/{kind}", summary="Resources of a kind in a namespace")
def list_resources(namespace: str, kind: str, service: Service,
                   who: Who) -> dict[str, Any]:
    namespace = _namespace(namespace, who)
    try:
        found = service.list(kind, namespace)
    except UnknownKind as exc:
        raise _translate(exc) from None
    return {"apiVersion": "v1", "kind": "List", "items": [r.to_json() for r in found]}


@router.get(_OBJECT, summary="One resource with its status")
def get_resource(namespace: str, kind: str, name: str, service: Service,
                 who: Who) -> dict[str, Any]:
    namespace = _namespace(namespace, who)
    try:
        return service.get(kind, namespace, name).to_json()
    except (UnknownKind, NotFound) as exc:
        raise _translate(exc) from None


@router.put(_OBJECT, summary="Create or update one resource")
def put_resource(namespace: str, kind: str, name: str, document: Annotated[dict[str, Any], Body()],
                 service: Service, who: Who) -> JSONResponse:
    namespace = _namespace(namespace, who)
    try:
        wanted = service.kind(kind)
        metadata = document.get("metadata")
        if document.get("kind") not in (None, wanted.kind):
            raise ResourceError(f"kind: {document.get('kind')!r} differs from the kind in the URL ({wanted.kind})")
        if isinstance(metadata, dict) and metadata.get("name") not in (None, name):
            raise ResourceError(f"metadata.name: {metadata.get('name')!r} differs from the name in the URL ({name})")
        metadata = {**metadata, "name": name} if isinstance(metadata, dict) else {"name": name}
        [(result, resource)] = service.apply([{**document, "kind": wanted.kind, "metadata": metadata}], namespace)
    except (UnknownKind, ResourceError, ResourceConflict) as exc:
        raise _translate(exc) from None
    return JSONResponse(resource.to_json(), status_code=201 if result == "created" else 200)


@router.delete(_OBJECT, summary="Delete a resource (its controller releases what it holds first)")
def delete_resource(namespace: str, kind: str, name: str, service: Service,
                    who: Who) -> dict[str, Any]:
    namespace = _namespace(namespace, who)
    try:
        return service.delete(kind, namespace, name).to_json()
    except (UnknownKind, NotFound) as exc:
        raise _translate(exc) from None


@router.get(_OBJECT + "/log", summary="The resource's logs, as text", response_class=StreamingResponse)
def resource_logs(namespace: str, kind: str, name: str, service: Service,
                  who: Who) -> StreamingResponse:
    namespace = _namespace(namespace, who)
    try:
        chunks: Iterator[str] = iter(service.logs(kind, namespace, name))
        first = next(chunks, "")  # a hook that fails, fails here: before the response starts
    except (UnknownKind, NotFound, ResourceError) as exc:
        raise _translate(exc) from None
    return StreamingResponse(chain([first], chunks), media_type="text/plain; charset=utf-8")


@router.get(_OBJECT + "/describe", summary="The resource, a summary of it, and its events")
def describe_resource(namespace: str, kind: str, name: str, service: Service,
                      who: Who) -> dict[str, Any]:
    namespace = _namespace(namespace, who)
    try:
        return service.describe(kind, namespace, name)
    except (UnknownKind, NotFound) as exc:
        raise _translate(exc) from None
