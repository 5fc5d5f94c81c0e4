"""The dashboard: server-rendered pages (Jinja2) over the same store and access rules as the API.

One module per page family — `home`, `runs` (list), `run_detail` (graph, tasks, logs),
`pipelines`, `experiments` (and run comparison), `artifacts` (viewers and lineage) — plus
`static` (scripts, styles, vendored libraries) and `common` (the page frame, the profile selector,
HTML error pages). Buttons call the public API from the browser (`static/dashboard.js`), so the UI
does nothing a client could not.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter

#: Page modules, each with a `router`; order matters only where paths overlap.
PAGES = ("home", "static", "artifacts", "run_detail", "runs", "pipelines", "experiments")

router = APIRouter(include_in_schema=False)
for _module in PAGES:
    router.include_router(importlib.import_module(f"{__name__}.{_module}").router)
