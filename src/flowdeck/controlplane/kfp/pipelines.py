"""KFP PipelineService and PipelineUploadService: pipelines, their versions, and package uploads.

A pipeline is a named container; each version holds a validated pipeline spec. Uploading a package
creates the pipeline and its first version (named like the pipeline) at once, as KFP does; a spec
that would not run is rejected then, with the loader's message, not when a run starts.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import File, Query, UploadFile
from fastapi.responses import JSONResponse

from flowdeck.controlplane.app import Ctx, ServerContext
from flowdeck.controlplane.auth import Access, Scoped
from flowdeck.controlplane.errors import ApiError
from flowdeck.controlplane.kfp import listing, wire
from flowdeck.controlplane.kfp.messages import (
    CreatePipelineAndVersionRequest,
    Empty,
    ListPipelinesResponse,
    ListPipelineVersionsResponse,
    Name,
    Namespace,
    Pipeline,
    PipelineVersion,
)
from flowdeck.controlplane.kfp.packages import MAX_PACKAGE_BYTES, fetch_package, package_name, parse_package, parse_spec
from flowdeck.controlplane.kfp.routing import kfp_router, missing
from flowdeck.pipelines.spec import Pipeline as LoadedPipeline
from flowdeck.store.catalog import Pipelines, PipelineVersions

router = kfp_router("pipelines")

PIPELINE_FIELDS = listing.Fields("pipelines", {
    "pipeline_id": "id", "id": "id", "name": "name", "display_name": "display_name", "description": "description",
    "created_at": "created_at", "namespace": "namespace",
})
VERSION_FIELDS = listing.Fields("pipeline versions", {
    "pipeline_version_id": "id", "id": "id", "name": "name", "display_name": "display_name",
    "description": "description", "created_at": "created_at", "pipeline_id": "pipeline_id",
})

UploadFileField = Annotated[UploadFile | None, File(description="A compiled pipeline: .yaml/.yml, or a "
                                                                 ".zip/.tar.gz/.tgz that holds one.")]
_UPLOAD_NAME = Query(None, description="Default: the file name without its suffix.")


def version_values(pipeline: LoadedPipeline, *, name: str, display_name: str | None = None,
                   description: str | None = None, code_source_url: str | None = None,
                   tags: dict[str, str] | None = None) -> dict[str, Any]:
    """The keywords of `PipelineVersions.create` for a loaded pipeline."""
    return {"name": name, "display_name": display_name or name, "description": description,
            "pipeline_spec": pipeline.spec, "platform_spec": pipeline.platform_spec or None,
            "code_source_url": code_source_url, "tags": tags}


def _version_source(version: PipelineVersion) -> tuple[LoadedPipeline, str | None]:
    """The pipeline a version request carries inline or by package_url, and the package's file name."""
    if version.pipeline_spec:
        return parse_spec(version.pipeline_spec, "pipeline_version.pipeline_spec"), None
    url = version.package_url.pipeline_url if version.package_url else None
    if url:
        filename, data = fetch_package(url)
        return parse_package(filename, data), filename
    raise ApiError(400, "a pipeline version needs pipeline_spec or package_url.pipeline_url")


def _tags(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    try:
        tags = json.loads(text)
    except ValueError:
        tags = None
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise ApiError(400, 'tags must be a JSON object of strings, e.g. {"team": "ml"}')
    return tags


def _read_upload(uploadfile: UploadFile | None) -> tuple[str, LoadedPipeline]:
    if uploadfile is None or not uploadfile.filename:
        raise ApiError(400, "no pipeline file: send it as the multipart/form-data field 'uploadfile'")
    data = uploadfile.file.read(MAX_PACKAGE_BYTES + 1)
    return uploadfile.filename, parse_package(uploadfile.filename, data)


def _pipeline(ctx: ServerContext, access: Access, pipeline_id: str, scope: str = "write") -> Any:
    """The pipeline row, after checking that the caller holds `scope` in its namespace."""
    row = Pipelines(ctx.store).get(pipeline_id)
    access.require(scope, row.namespace, missing("pipeline", pipeline_id))
    return row


# -- pipelines ---------------------------------------------------------------------------------------

@router.post("/pipelines", response_model=None, responses={200: {"model": Pipeline}})
def create_pipeline(body: Pipeline, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Create a pipeline without versions; its name must be unique in its namespace."""
    name = body.name or body.display_name
    if not name:
        raise ApiError(400, "pipeline name is required")
    namespace = body.namespace or ""
    access.require("write", namespace)
    row, _ = Pipelines(ctx.store).create(name=name, display_name=body.display_name, namespace=namespace,
                                         description=body.description, tags=body.tags)
    return wire.respond(wire.pipeline(row))


@router.post("/pipelines/create", response_model=None, responses={200: {"model": Pipeline}})
def create_pipeline_and_version(body: CreatePipelineAndVersionRequest, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Create a pipeline and its first version (spec inline, or fetched from package_url) together."""
    p, v = body.pipeline, body.pipeline_version
    namespace = p.namespace or ""
    access.require("write", namespace)
    loaded, filename = _version_source(v)
    name = p.name or p.display_name or v.name or (package_name(filename) if filename else loaded.name)
    version = version_values(loaded, name=v.name or name, display_name=v.display_name, description=v.description,
                             code_source_url=v.code_source_url, tags=v.tags)
    row, _ = Pipelines(ctx.store).create(name=name, display_name=p.display_name, namespace=namespace,
                                         description=p.description, tags=p.tags, version=version)
    return wire.respond(wire.pipeline(row))


@router.get("/pipelines", response_model=None, responses={200: {"model": ListPipelinesResponse}})
def list_pipelines(ctx: Ctx, access: Scoped, params: listing.ListParamsDep,
                   namespace: str | None = None) -> JSONResponse:
    """List pipelines, filtered, sorted and paged."""
    query = listing.build_query(PIPELINE_FIELDS, params, access=access, namespace=namespace)
    result = Pipelines(ctx.store).list(query)
    return listing.respond("pipelines", map(wire.pipeline, result.rows), PIPELINE_FIELDS, query, result)


@router.get("/pipelines/names/{name}", response_model=None, responses={200: {"model": Pipeline}})
def get_pipeline_by_name(name: str, ctx: Ctx, access: Scoped, namespace: Namespace | None = None) -> JSONResponse:
    """The pipeline with this name in the namespace ("" when omitted)."""
    access.require("read", namespace or "")
    return wire.respond(wire.pipeline(Pipelines(ctx.store).get_by_name(name, namespace=namespace or "")))


@router.get("/pipelines/{pipeline_id}", response_model=None, responses={200: {"model": Pipeline}})
def get_pipeline(pipeline_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """One pipeline."""
    return wire.respond(wire.pipeline(_pipeline(ctx, access, pipeline_id, "read")))


@router.delete("/pipelines/{pipeline_id}", response_model=None, responses={200: {"model": Empty}})
def delete_pipeline(pipeline_id: str, ctx: Ctx, access: Scoped,
                    cascade: bool = Query(False, description="Also delete the pipeline's versions. Without it, "
                                                             "a pipeline that has versions is not deleted (400).")
                    ) -> JSONResponse:
    """Delete a pipeline (with its versions when cascade=true)."""
    _pipeline(ctx, access, pipeline_id)
    Pipelines(ctx.store).delete(pipeline_id, cascade=cascade)
    return wire.respond({})


# -- versions ----------------------------------------------------------------------------------------

@router.post("/pipelines/{pipeline_id}/versions", response_model=None, responses={200: {"model": PipelineVersion}})
def create_pipeline_version(pipeline_id: str, body: PipelineVersion, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Add a version (spec inline, or fetched from package_url) to a pipeline; names are unique per pipeline."""
    if body.pipeline_id and body.pipeline_id != pipeline_id:
        raise ApiError(400, f"pipeline_version.pipeline_id {body.pipeline_id!r} does not match the path's "
                            f"{pipeline_id!r}")
    _pipeline(ctx, access, pipeline_id)
    loaded, filename = _version_source(body)
    name = body.name or body.display_name or (package_name(filename) if filename else None)
    if not name:
        raise ApiError(400, "pipeline version name is required")
    row = PipelineVersions(ctx.store).create(pipeline_id=pipeline_id, **version_values(
        loaded, name=name, display_name=body.display_name, description=body.description,
        code_source_url=body.code_source_url, tags=body.tags))
    return wire.respond(wire.pipeline_version(row, with_spec=True))


@router.get("/pipelines/{pipeline_id}/versions", response_model=None,
            responses={200: {"model": ListPipelineVersionsResponse}})
def list_pipeline_versions(pipeline_id: str, ctx: Ctx, access: Scoped,
                           params: listing.ListParamsDep) -> JSONResponse:
    """List a pipeline's versions (without their specs), filtered, sorted and paged."""
    _pipeline(ctx, access, pipeline_id, "read")
    query = listing.build_query(VERSION_FIELDS, params, access=access, scoped=False)
    result = PipelineVersions(ctx.store).list(pipeline_id, query)
    versions = (wire.pipeline_version(row) for row in result.rows)
    return listing.respond("pipeline_versions", versions, VERSION_FIELDS, query, result)


@router.get("/pipelines/{pipeline_id}/versions/{pipeline_version_id}", response_model=None,
            responses={200: {"model": PipelineVersion}})
def get_pipeline_version(pipeline_id: str, pipeline_version_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """One version, with its pipeline spec."""
    _pipeline(ctx, access, pipeline_id, "read")
    row = PipelineVersions(ctx.store).get(pipeline_version_id, pipeline_id=pipeline_id)
    return wire.respond(wire.pipeline_version(row, with_spec=True))


@router.delete("/pipelines/{pipeline_id}/versions/{pipeline_version_id}", response_model=None,
               responses={200: {"model": Empty}})
def delete_pipeline_version(pipeline_id: str, pipeline_version_id: str, ctx: Ctx, access: Scoped) -> JSONResponse:
    """Delete a version. Runs made from it keep their copy of its spec."""
    _pipeline(ctx, access, pipeline_id)
    PipelineVersions(ctx.store).delete(pipeline_version_id, pipeline_id=pipeline_id)
    return wire.respond({})


# -- uploads -----------------------------------------------------------------------------------------

@router.post("/pipelines/upload", response_model=None, responses={200: {"model": Pipeline}})
def upload_pipeline(ctx: Ctx, access: Scoped,
                    uploadfile: UploadFileField = None,
                    name: Name | None = _UPLOAD_NAME,
                    display_name: Name | None = None, description: str | None = None,
                    namespace: Namespace | None = None,
                    tags: str | None = Query(None, description='JSON object of strings, e.g. {"team": "ml"}.'),
                    ) -> JSONResponse:
    """Upload a compiled pipeline: creates the pipeline and its first version (of the same name)."""
    access.require("write", namespace or "")
    tag_map = _tags(tags)
    filename, loaded = _read_upload(uploadfile)
    name = name or display_name or package_name(filename)
    version = version_values(loaded, name=name, display_name=display_name, description=description, tags=tag_map)
    row, _ = Pipelines(ctx.store).create(name=name, display_name=display_name, namespace=namespace or "",
                                         description=description, tags=tag_map, version=version)
    return wire.respond(wire.pipeline(row))


@router.post("/pipelines/upload_version", response_model=None, responses={200: {"model": PipelineVersion}})
def upload_pipeline_version(ctx: Ctx, access: Scoped,
                            uploadfile: UploadFileField = None,
                            name: Name | None = _UPLOAD_NAME,
                            display_name: Name | None = None,
                            pipelineid: str | None = Query(None, description="Required: the pipeline's id."),
                            description: str | None = None,
                            tags: str | None = Query(None, description="JSON object of strings."),
                            ) -> JSONResponse:
    """Upload a compiled pipeline as a new version of an existing pipeline."""
    if not pipelineid:
        raise ApiError(400, "pipelineid is required: the id of the pipeline to add the version to")
    _pipeline(ctx, access, pipelineid)
    tag_map = _tags(tags)
    filename, loaded = _read_upload(uploadfile)
    name = name or display_name or package_name(filename)
    row = PipelineVersions(ctx.store).create(pipeline_id=pipelineid, **version_values(
        loaded, name=name, display_name=display_name, description=description, tags=tag_map))
    return wire.respond(wire.pipeline_version(row, with_spec=True))
