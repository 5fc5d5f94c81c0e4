"""The artifact viewer: one page per artifact, shown by its type, with where it came from and went.

    GET /artifacts/{artifact_id}                 the page: a viewer by `schema_title`, lineage, metadata, files
    GET /artifacts/{artifact_id}/content         the artifact's bytes (`?file=REL` for a file of a directory)

Viewers: `system.Metrics` as a table; `system.ClassificationMetrics` as a confusion-matrix heat map
and a ROC curve (`static/charts.js`); `system.HTML` in a sandboxed frame; `system.Markdown` rendered
(raw HTML off); `system.Dataset` as its first rows; anything else (`system.Model`...) as metadata
and files. Lineage comes from the `events` table: the tasks that wrote (OUTPUT) and read (INPUT) it.

An artifact belongs to the run that produced it, and is read under that run's profile: in a profile
the visitor cannot read it answers exactly as a missing artifact does. Its bytes come only from its
own URI (a `?file=` must name a file inside it), and are served under a sandboxing
Content-Security-Policy, so HTML someone logged cannot run script in the dashboard's origin even
when opened directly.
"""

from __future__ import annotations

import json
import mimetypes
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from flowdeck.artifacts import ArtifactStore
from flowdeck.controlplane.dashboard import previews
from flowdeck.controlplane.dashboard.common import DashboardRoute, PageView, View
from flowdeck.controlplane.errors import ApiError
from flowdeck.store.models import ArtifactRow, EventRow, RunRow, TaskRow

router = APIRouter(include_in_schema=False, route_class=DashboardRoute)

#: Artifact bytes run nothing in our origin, load nothing, and are never sniffed into another type.
CONTENT_POLICY = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
#: Types a browser may show in place (under `CONTENT_POLICY`); anything else is a download.
INLINE_TYPES = frozenset({"text/html", "text/plain", "text/csv", "text/tab-separated-values", "application/json",
                          "image/png", "image/jpeg", "image/gif", "image/webp"})
#: A directory's page lists at most this many of its files.
LISTED_FILES = 200
#: The page shows at most this much of an artifact's metadata (as indented JSON).
METADATA_CHARS = 64 * 1024
_READ_CHUNK = 1 << 16


@dataclass
class Owned:
    """An artifact and the run it belongs to."""

    artifact: ArtifactRow
    run: RunRow


@dataclass
class Link:
    """One lineage event: a task of a run that wrote or read the artifact under `key`."""

    key: str
    task_id: str
    task: str
    run_id: str
    run: str


def _owned(view: View, artifact_id: str) -> Owned:
    """The artifact and its run, if the visitor may read that run; otherwise the same 404 as for no artifact."""
    def missing() -> ApiError:
        return ApiError(404, f"artifact {artifact_id!r} not found")

    with Session(view.ctx.store.engine, expire_on_commit=False) as session:
        artifact = session.get(ArtifactRow, artifact_id)
        run_id = artifact.run_id if artifact is not None else None
        if artifact is not None and run_id is None:
            run_id = session.scalars(
                select(TaskRow.run_id).join(EventRow, EventRow.task_id == TaskRow.id)
                .where(EventRow.artifact_id == artifact_id, EventRow.type == "OUTPUT")
                .order_by(TaskRow.created_at, EventRow.id).limit(1)).first()  # its first writer, not a cache reuse
        run = session.get(RunRow, run_id) if run_id is not None else None
    if artifact is None or run is None:
        raise missing()
    view.access.require("read", run.namespace, missing=missing)
    return Owned(artifact, run)


def _lineage(view: View, owned: Owned) -> tuple[list[Link], list[Link]]:
    """(producers, consumers) of the artifact, leaving out tasks of runs the visitor may not read."""
    query = (select(EventRow.type, EventRow.key, TaskRow.id, TaskRow.display_name, TaskRow.path,
                    RunRow.id, RunRow.display_name, RunRow.namespace)
             .join(TaskRow, TaskRow.id == EventRow.task_id).join(RunRow, RunRow.id == TaskRow.run_id)
             .where(EventRow.artifact_id == owned.artifact.id)
             .order_by(RunRow.created_at, TaskRow.path, EventRow.key))
    producers: list[Link] = []
    consumers: list[Link] = []
    with view.ctx.store.engine.connect() as conn:
        for kind, key, task_id, task_name, path, run_id, run_name, namespace in conn.execute(query):
            if run_id != owned.run.id and not view.can("read", namespace):
                continue
            link = Link(key, task_id, path or task_name, run_id, run_name)
            (producers if kind == "OUTPUT" else consumers).append(link)
    return producers, consumers


def _store(view: View) -> ArtifactStore:
    return ArtifactStore(view.ctx.settings.resolved_artifact_root)


def _shown_listing(view: View, store: ArtifactStore, uri: str) -> Listing:
    """What is at `uri`, as far as the visitor may see. An importer may name any URI (the artifact root itself,
    another profile's run, the store's own database): unless the visitor is a full cluster admin, only URIs
    inside the directory of a run they may read (`<artifact root>/<pipeline>/<run id>/...`) are shown."""
    if not view.access.principal.full_cluster_admin and not _in_readable_run(view, store, uri):
        return Listing(False, outside=True)
    return _listing(store, uri)


def _in_readable_run(view: View, store: ArtifactStore, uri: str) -> bool:
    root = view.ctx.settings.resolved_artifact_root
    local, local_root = store.local_path(uri), store.local_path(root)
    if local is not None and local_root is not None:
        base, target = os.path.realpath(local_root), os.path.realpath(local)
        if not target.startswith(base + os.sep):
            return False
        parts = os.path.relpath(target, base).split(os.sep)
    elif local is None and local_root is None:
        base = root.rstrip("/") + "/"
        parts = uri[len(base):].split("/") if uri.startswith(base) else []
        if ".." in parts:
            return False
    else:
        return False
    if len(parts) < 2:  # the root or a pipeline's directory: every run's outputs
        return False
    with view.ctx.store.engine.connect() as conn:
        namespace = conn.execute(select(RunRow.namespace).where(RunRow.id == parts[1])).scalar()
    return namespace is not None and view.can("read", namespace)


@dataclass
class Listing:
    """What is at an artifact's URI: nothing, one file, or a directory of files (relative names)."""

    exists: bool
    directory: bool = False
    files: tuple[str, ...] = ()
    #: Whether the directory holds more files than `files` lists.
    more: bool = False
    #: Outside the runs this visitor may read, so not shown (see `_shown_listing`).
    outside: bool = False


def _listing(store: ArtifactStore, uri: str) -> Listing:
    local = store.local_path(uri)
    if local is not None:
        if os.path.isfile(local):
            return Listing(True)
        if not os.path.isdir(local):
            return Listing(False)
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(local):
            dirnames.sort()
            for name in sorted(filenames):
                if len(found) == LISTED_FILES:
                    return Listing(True, True, tuple(found), more=True)
                found.append(os.path.relpath(os.path.join(dirpath, name), local).replace(os.sep, "/"))
        return Listing(True, True, tuple(found))
    files = store.list(uri)
    if files == [uri]:
        return Listing(True)
    if not files:
        return Listing(store.exists(uri), True)
    prefix = uri.rstrip("/") + "/"
    names = tuple(name[len(prefix):] for name in files)
    return Listing(True, True, names[:LISTED_FILES], more=len(names) > LISTED_FILES)


def _file_uri(store: ArtifactStore, uri: str, relative: str) -> str:
    """The URI of `relative` inside directory artifact `uri`; a 404 for anything that would leave it."""
    parts = relative.split("/")
    if not relative or "\\" in relative or any(part in ("", ".", "..") for part in parts):
        raise ApiError(404, f"no file {relative!r} in this artifact")
    local = store.local_path(uri)
    if local is None:
        target = uri.rstrip("/") + "/" + relative
        if not store.exists(target):
            raise ApiError(404, f"no file {relative!r} in this artifact")
        return target
    root = os.path.realpath(local)
    target = os.path.realpath(os.path.join(root, *parts))
    if not target.startswith(root + os.sep) or not os.path.isfile(target):
        raise ApiError(404, f"no file {relative!r} in this artifact")
    return target


def _previewed(listing: Listing) -> str | None:
    """The file of a directory a preview shows: its first one that is not hidden or a marker (`_SUCCESS`)."""
    return next((name for name in listing.files if not name.rpartition("/")[2].startswith((".", "_"))), None)


@router.get("/artifacts/{artifact_id}", response_class=HTMLResponse)
def artifact_page(artifact_id: str, view: PageView) -> HTMLResponse:
    owned = _owned(view, artifact_id)
    artifact = owned.artifact
    producers, consumers = _lineage(view, owned)
    store = _store(view)
    listing = _shown_listing(view, store, artifact.uri)
    metadata = artifact.artifact_metadata or {}
    kind = artifact.schema_title
    shown: dict[str, Any] = {}
    if kind == "system.Metrics":
        shown["metrics"] = previews.metric_rows(metadata)
        if isinstance(metadata, dict):  # anything else is shown as it is, below
            metadata = {}
    elif kind == "system.ClassificationMetrics":
        shown.update(_classification(metadata))
        drawn = {"confusionMatrix": shown["matrix"] is not None, "confidenceMetrics": shown["roc_total"] > 0}
        if isinstance(metadata, dict):  # what could not be drawn stays readable below
            metadata = {k: v for k, v in metadata.items() if not drawn.get(k)}
    elif kind in ("system.Markdown", "system.Dataset") and listing.exists:
        shown.update(_file_view(store, artifact, listing, kind))
    metadata_json = json.dumps(metadata, indent=2, ensure_ascii=False) if metadata else ""
    return view.render("artifact.html", title=artifact.name or artifact.id, artifact=artifact, run=owned.run,
                       kind=kind, producers=producers, consumers=consumers, listing=listing,
                       metadata_json=metadata_json[:METADATA_CHARS], metadata_cut=len(metadata_json) > METADATA_CHARS,
                       **shown)


def _classification(metadata: Any) -> dict[str, Any]:
    points = previews.roc_curve(metadata)
    return {"matrix": previews.confusion_matrix(metadata), "roc": previews.roc_table(points), "roc_total": len(points),
            "roc_chart": previews.roc_chart(points) if points else None, "auc": previews.area_under(points)}


def _file_view(store: ArtifactStore, artifact: ArtifactRow, listing: Listing, kind: str) -> dict[str, Any]:
    """The rendered Markdown or the dataset preview, from the artifact's file (a directory's first one)."""
    name = _previewed(listing) if listing.directory else None
    if listing.directory and name is None:
        return {"unpreviewable": "the directory holds no files"}
    uri = _file_uri(store, artifact.uri, name) if name else artifact.uri
    try:
        with store.open(uri, "rb") as stream:
            if kind == "system.Markdown":
                head, truncated = previews.read_head(stream, previews.MARKDOWN_BYTES)
                html = previews.render_markdown(head.decode("utf-8", errors="replace"))
                return {"markdown": Markup(html), "truncated": truncated, "preview_file": name}
            return {"table": previews.table_preview(stream, name or artifact.uri), "preview_file": name}
    except previews.Unpreviewable as exc:
        return {"unpreviewable": str(exc), "preview_file": name}
    except OSError as exc:
        return {"unpreviewable": f"its file cannot be read ({exc.strerror or exc})", "preview_file": name}


@router.get("/artifacts/{artifact_id}/content")
def artifact_content(artifact_id: str, view: PageView,
                     file: Annotated[str | None, Query(max_length=1024,
                                                       description="A file inside a directory artifact.")] = None
                     ) -> Response:
    owned = _owned(view, artifact_id)
    store = _store(view)
    uri = owned.artifact.uri
    listing = _shown_listing(view, store, uri)
    if listing.outside:
        raise ApiError(404, f"artifact {artifact_id!r} lies outside the runs you may read; only a cluster admin "
                            "may read it here")
    if not listing.exists:
        raise ApiError(404, f"artifact {artifact_id!r} has no content at {uri}")
    if listing.directory and file is None:
        raise ApiError(404, f"artifact {artifact_id!r} is a directory: name one of its files with ?file=")
    if file is not None:
        if not listing.directory:
            raise ApiError(404, f"artifact {artifact_id!r} is a single file: ask without ?file=")
        uri = _file_uri(store, uri, file)
    name = (file or uri).rstrip("/").rpartition("/")[2] or owned.artifact.name
    media_type, headers = _served_as(owned.artifact.schema_title, name)
    local = store.local_path(uri)
    if local is not None:
        return FileResponse(local, media_type=media_type, headers=headers)
    return StreamingResponse(_chunks(store, uri), media_type=media_type, headers=headers)


def _served_as(schema_title: str, name: str) -> tuple[str, dict[str, str]]:
    """The media type and headers for a file: shown in place if known and harmless, else a download."""
    headers = {"Content-Security-Policy": CONTENT_POLICY, "X-Content-Type-Options": "nosniff",
               "Cache-Control": "private, no-cache"}
    if schema_title == "system.HTML":
        guessed: str | None = "text/html"
    elif schema_title == "system.Markdown":
        guessed = "text/plain"
    else:
        guessed = mimetypes.guess_type(name)[0]
    if guessed in INLINE_TYPES:
        return (f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed), headers
    headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
    return "application/octet-stream", headers


def _chunks(store: ArtifactStore, uri: str) -> Iterator[bytes]:
    with store.open(uri, "rb") as stream:
        while chunk := stream.read(_READ_CHUNK):
            yield chunk
