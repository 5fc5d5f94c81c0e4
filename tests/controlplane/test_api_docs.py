"""The API reference: docs/api.md is generated from the live schema and kept current; /docs serves it."""

from pathlib import Path

import httpx

from flowdeck.config import Settings
from flowdeck.controlplane.apidocs import endpoints, markdown
from flowdeck.controlplane.app import ServerContext, create_app
from helpers import ControlPlane

DOCS = Path(__file__).parents[2] / "docs" / "api.md"


def schema() -> dict:
    app = create_app(ServerContext(settings=Settings(), store=None, runs=None))  # type: ignore[arg-type]
    return app.openapi()


def test_docs_api_md_matches_the_code() -> None:
    assert DOCS.read_text() == markdown(schema()), (
        "docs/api.md is stale: run `python -m flowdeck.controlplane.apidocs docs/api.md`")


def test_every_kfp_endpoint_the_client_uses_is_documented() -> None:
    documented = {(e.method, e.path) for e in endpoints(schema())}
    for expected in [("GET", "/apis/v2beta1/healthz"), ("POST", "/apis/v2beta1/runs"),
                     ("GET", "/apis/v2beta1/runs"), ("POST", "/apis/v2beta1/runs/{run_id}:terminate"),
                     ("POST", "/apis/v2beta1/pipelines/upload"), ("POST", "/apis/v2beta1/recurringruns"),
                     ("GET", "/apis/v2beta1/experiments")]:
        assert expected in documented
    assert all(e.summary for e in endpoints(schema())), "every endpoint says what it does"


def test_the_server_serves_the_reference_without_a_network(kfp_server: ControlPlane) -> None:
    page = httpx.get(f"{kfp_server.url}/docs")
    assert page.status_code == 200
    assert "/apis/v2beta1/runs" in page.text
    assert "cdn" not in page.text.lower() and "<script src" not in page.text
    assert httpx.get(f"{kfp_server.url}/openapi.json").json()["paths"]
