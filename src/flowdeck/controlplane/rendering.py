"""One Jinja2 environment for every server-rendered page, with autoescaping always on.

Whatever users typed (run names, descriptions, parameters) reaches pages as text, never as markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

_environment = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def render(template: str, **context: Any) -> HTMLResponse:
    """The page `templates/<template>` rendered with `context`."""
    return HTMLResponse(_environment.get_template(template).render(**context))
