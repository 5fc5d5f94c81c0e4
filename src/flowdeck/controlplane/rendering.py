"""One Jinja2 environment for every server-rendered page, with autoescaping always on.

Whatever users typed (run names, descriptions, parameters) reaches pages as text, never as markup.
The filters format what many pages show: times in UTC (`when`), a run's or task's `duration`, and a
profile's API name (`profile`: the store's "" is `default`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from flowdeck.resources.model import api_namespace

_environment = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def when(value: datetime | None) -> str:
    """`2026-11-29 08:41:07` (UTC), or an empty string."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def duration(item: Any) -> str:
    """How long an object with `started_at`/`finished_at` (or `created_at`) ran: `1h 02m`, `3m 07s`, `4.2s`."""
    start = getattr(item, "started_at", None) or getattr(item, "created_at", None)
    end = getattr(item, "finished_at", None)
    if start is None or end is None:
        return ""
    seconds = max((end - start).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"


_environment.filters.update(when=when, duration=duration, profile=api_namespace)


def render(template: str, **context: Any) -> HTMLResponse:
    """The page `templates/<template>` rendered with `context`."""
    return HTMLResponse(_environment.get_template(template).render(**context))
