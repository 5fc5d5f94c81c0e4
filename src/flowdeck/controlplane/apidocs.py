"""The API reference, generated from the app's OpenAPI schema so it cannot drift from the code.

Served at `/docs` as a plain server-rendered page (FastAPI's Swagger UI would load its scripts from
a CDN, and flowdeck must work without a network), and written to `docs/api.md` by
`python -m flowdeck.controlplane.apidocs docs/api.md` (a test checks that file is current).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from flowdeck.controlplane.auth import Public
from flowdeck.controlplane.rendering import render

router = APIRouter(include_in_schema=False)
METHODS = ("get", "post", "put", "patch", "delete")


@dataclass
class Parameter:
    name: str
    location: str
    required: bool
    type: str
    description: str


@dataclass
class Endpoint:
    method: str
    path: str
    summary: str
    description: str
    tag: str
    parameters: list[Parameter] = field(default_factory=list)
    body: str = ""


def _type_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_name(s) for s in schema["anyOf"] if s.get("type") != "null")
    if schema.get("type") == "array":
        return f"list[{_type_name(schema.get('items') or {})}]"
    return str(schema.get("type") or "object")


def endpoints(schema: dict[str, Any]) -> list[Endpoint]:
    """Every operation of the schema, grouped by tag, in path order."""
    found = []
    for path, operations in schema.get("paths", {}).items():
        for method in METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            parameters = [
                Parameter(name=p["name"], location=p["in"], required=bool(p.get("required")),
                          type=_type_name(p.get("schema") or {}), description=p.get("description") or "")
                for p in operation.get("parameters") or []
            ]
            body = ""
            content = (operation.get("requestBody") or {}).get("content") or {}
            for media_type, media in content.items():
                body = f"{media_type}: {_type_name(media.get('schema') or {})}"
            # FastAPI's summary is the function name; the handler's docstring says more
            summary, _, description = (operation.get("description") or "").strip().partition("\n")
            found.append(Endpoint(
                method=method.upper(), path=path, summary=summary or operation.get("summary") or "",
                description=description.strip(), tag=(operation.get("tags") or ["other"])[0],
                parameters=parameters, body=body,
            ))
    return sorted(found, key=lambda e: (e.tag, e.path, METHODS.index(e.method.lower())))


@dataclass
class Model:
    name: str
    description: str
    fields: list[Parameter]


def models(schema: dict[str, Any]) -> list[Model]:
    """The request and response messages (component schemas) with their fields."""
    found = []
    for name, model in sorted(((schema.get("components") or {}).get("schemas") or {}).items()):
        required = set(model.get("required") or ())
        fields = [
            Parameter(name=field_name, location="", required=field_name in required, type=_type_name(spec),
                      description=(spec.get("description") or "").replace("\n", " "))
            for field_name, spec in (model.get("properties") or {}).items()
        ]
        found.append(Model(name=name, description=(model.get("description") or "").strip(), fields=fields))
    return found


def markdown(schema: dict[str, Any]) -> str:
    info = schema.get("info") or {}
    lines = [
        f"# {info.get('title', 'API')} — API reference",
        "",
        "Generated from the OpenAPI schema by `python -m flowdeck.controlplane.apidocs docs/api.md`;",
        "a running control plane serves the same reference at `/docs` and the schema at `/openapi.json`.",
        "Errors have KFP's shape: `{\"error\", \"code\" (gRPC code), \"message\", \"details\"}`.",
    ]
    tag = None
    for endpoint in endpoints(schema):
        if endpoint.tag != tag:
            tag = endpoint.tag
            lines += ["", f"## {tag}"]
        lines += ["", f"### `{endpoint.method} {endpoint.path}`", ""]
        if endpoint.summary:
            lines.append(endpoint.summary + ("" if endpoint.summary.endswith(".") else "."))
        if endpoint.description and endpoint.description != endpoint.summary:
            lines += ["", endpoint.description]
        if endpoint.parameters:
            lines += ["", "| parameter | in | type | required | description |", "|---|---|---|---|---|"]
            for p in endpoint.parameters:
                text = p.description.replace("\n", " ").replace("|", "\\|")
                lines.append(f"| `{p.name}` | {p.location} | {p.type} | {'yes' if p.required else 'no'} | {text} |")
        if endpoint.body:
            lines += ["", f"Body: `{endpoint.body}`"]
    lines += ["", "## Messages"]
    for model in models(schema):
        lines += ["", f"### {model.name}"]
        if model.description:
            lines += ["", model.description]
        if model.fields:
            lines += ["", "| field | type | required | description |", "|---|---|---|---|"]
            for f in model.fields:
                text = f.description.replace("|", "\\|")
                lines.append(f"| `{f.name}` | {f.type} | {'yes' if f.required else 'no'} | {text} |")
    return "\n".join(lines) + "\n"


@router.get("/docs", response_class=HTMLResponse)
def reference_page(request: Request, _access: Public) -> HTMLResponse:
    schema = request.app.openapi()
    return render("api.html", info=schema.get("info") or {}, endpoints=endpoints(schema), models=models(schema))


@router.get("/openapi.json")
def openapi_schema(request: Request, _access: Public) -> JSONResponse:
    """The OpenAPI schema (public, like the page above: it describes the API, not anyone's data)."""
    return JSONResponse(request.app.openapi())


def main(argv: list[str]) -> None:
    from flowdeck.config import Settings
    from flowdeck.controlplane.app import ServerContext, create_app

    app = create_app(ServerContext(settings=Settings(), store=None, runs=None))  # type: ignore[arg-type]
    text = markdown(app.openapi())
    if argv:
        Path(argv[0]).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
