"""The dashboard's own scripts and styles, and the vendored libraries it draws with, served from the package.

Nothing is fetched from a CDN: the files ship inside flowdeck (`controlplane/static/`), so the
dashboard works without a network. Only files under that folder are served; anything else is a 404.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from flowdeck.controlplane.auth import Public
from flowdeck.controlplane.errors import ApiError

STATIC_ROOT = (Path(__file__).parent.parent / "static").resolve()
#: Pages link `/static/FILE?v=VERSION`, so browsers may keep a file for a day.
CACHE_CONTROL = "public, max-age=86400"

router = APIRouter(include_in_schema=False)


@router.get("/static/{path:path}")
def static_file(path: str, _access: Public) -> FileResponse:
    """The file at `path` under `STATIC_ROOT` (public: no page data is in it); a 404 for anything outside it."""
    target = (STATIC_ROOT / path).resolve()
    if not target.is_relative_to(STATIC_ROOT) or not target.is_file():
        raise ApiError(404, f"no such file: /static/{path}")
    return FileResponse(target, headers={"Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"})
