"""The pipelines list (with an upload form) and a pipeline's page: its versions and the graph of one of them.

Uploading goes through the KFP API (`POST /apis/v2beta1/pipelines/upload`, and `upload_version` for a
new version) from `static/pipelines.js`, as the visitor, so the page can do nothing `kfp.Client`
could not. The graph is `graph.pipeline_graph` of the chosen version's spec (the newest without
`?version=`), drawn by `static/graph.js`. A pipeline in a profile the visitor may not read answers
exactly as a missing one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from flowdeck.controlplane.dashboard import paging
from flowdeck.controlplane.dashboard.common import DashboardRoute, PageView, View, query_text, readable
from flowdeck.controlplane.dashboard.graph import pipeline_graph
from flowdeck.controlplane.errors import ApiError
from flowdeck.controlplane.kfp import listing
from flowdeck.resources.model import api_namespace, store_namespace
from flowdeck.store.catalog import NotFound, Pipelines, PipelineVersions, Predicate
from flowdeck.store.models import PipelineVersionRow

router = APIRouter(include_in_schema=False, route_class=DashboardRoute)

PIPELINE_FIELDS = listing.Fields("dashboard pipelines", {"created_at": "created_at"})
VERSION_FIELDS = listing.Fields("dashboard pipeline versions", {"created_at": "created_at"})


def _version_summary(view: View, pipeline_ids: Sequence[str]) -> dict[str, tuple[int, Any]]:
    """{pipeline id: (number of versions, newest version's creation time)}, in one statement."""
    if not pipeline_ids:
        return {}
    versions = PipelineVersionRow.__table__.c
    query = (select(versions.pipeline_id, func.count(), func.max(versions.created_at))
             .where(versions.pipeline_id.in_(pipeline_ids)).group_by(versions.pipeline_id))
    with view.ctx.store.engine.connect() as conn:
        return {pipeline_id: (count, latest) for pipeline_id, count, latest in conn.execute(query)}


@router.get("/pipelines", response_class=HTMLResponse)
def pipelines(view: PageView, q: str | None = None, size: str | None = None, page_token: str | None = None
              ) -> HTMLResponse:
    search = query_text("q", q)
    predicates = (Predicate("display_name", "IS_SUBSTRING", search),) if search else ()
    listed = paging.newest_first(Pipelines(view.ctx.store).list, PIPELINE_FIELDS, view.access,
                                 token=query_text("page_token", page_token, 4096) or None, size=paging.page_size(size),
                                 predicates=predicates, namespaces=view.namespaces)
    writable = [name for name in view.profiles() if view.can("write", store_namespace(name))]
    return view.render("pipelines.html", title="Pipelines", pipelines=listed.rows, total=listed.total, q=search,
                       versions=_version_summary(view, [row.id for row in listed.rows]), writable=writable,
                       newer=paging.page_link(view.request, listed.newer),
                       older=paging.page_link(view.request, listed.older))


@router.get("/pipelines/{pipeline_id}", response_class=HTMLResponse)
def pipeline(pipeline_id: str, view: PageView, version: str | None = None, page_token: str | None = None
             ) -> HTMLResponse:
    row = readable(view, "pipeline", pipeline_id, Pipelines(view.ctx.store).get)
    version = query_text("version", version, 64)
    store = PipelineVersions(view.ctx.store)
    listed = paging.newest_first(lambda query: store.list(pipeline_id, query), VERSION_FIELDS, view.access,
                                 token=query_text("page_token", page_token, 4096) or None, size=paging.DEFAULT_SIZE,
                                 predicates=(),
                                 namespaces=None)  # the pipeline's namespace is checked above
    chosen = None
    try:
        chosen = store.get(version, pipeline_id=pipeline_id) if version else store.latest(pipeline_id)
    except NotFound as exc:
        if version:
            raise ApiError(404, f"pipeline version {version!r} not found") from exc
    spec = chosen.pipeline_spec if chosen is not None else {}
    inputs = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return view.render("pipeline.html", title=row.display_name or row.name, pipeline=row, versions=listed.rows,
                       total_versions=listed.total, chosen=chosen, graph=pipeline_graph(spec) if chosen else None,
                       inputs=inputs, can_write=view.can("write", row.namespace),
                       namespace=api_namespace(row.namespace),
                       newer=paging.page_link(view.request, listed.newer),
                       older=paging.page_link(view.request, listed.older))
