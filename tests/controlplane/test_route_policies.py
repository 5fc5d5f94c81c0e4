"""Deny by default: every route the control plane serves declares who may call it, and none answers undecided."""

import logging

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from flowdeck.config import Settings
from flowdeck.controlplane.app import ServerContext, create_app
from flowdeck.controlplane.auth import POLICIES, Scoped, route_policies


def _app() -> FastAPI:
    return create_app(ServerContext(settings=Settings(), store=None, runs=None))  # type: ignore[arg-type]


def test_every_route_and_websocket_declares_one_authorization_policy() -> None:
    routes = route_policies(_app().routes)
    assert len(routes) > 40  # the KFP API, the resource API, pages, identity: the walk sees them all
    undeclared = [f"{sorted(methods)} {path}" for path, methods, policy in routes if policy is None]
    assert not undeclared, f"routes without an authorization policy (add Public/Authenticated/Scoped/...): " \
                           f"{undeclared}"
    assert {policy for _, _, policy in routes} <= set(POLICIES.values())


def test_a_route_added_without_a_policy_is_found_by_the_walk() -> None:
    app = _app()
    router = APIRouter()

    @router.get("/apis/flowdeck/v1/forgotten")
    def forgotten() -> dict:
        return {}

    @router.websocket("/apis/flowdeck/v1/stream")
    async def stream(websocket) -> None:  # noqa: ANN001
        await websocket.close()

    app.include_router(router)
    found = {path: policy for path, _, policy in route_policies(app.routes)}
    assert found["/apis/flowdeck/v1/forgotten"] is None
    assert found["/apis/flowdeck/v1/stream"] is None
    assert found["/apis/v2beta1/runs/{run_id}"] == "scoped"
    assert found["/apis/v2beta1/healthz"] == "public"


def test_a_handler_that_answers_without_deciding_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    app = _app()
    router = APIRouter()

    @router.get("/undecided")
    def undecided(_access: Scoped) -> dict:
        return {"secret": "should not leave"}

    app.include_router(router)
    with caplog.at_level(logging.ERROR, logger="flowdeck.controlplane.auth"):
        answer = TestClient(app, base_url="http://127.0.0.1").get("/undecided")
    assert answer.status_code == 500
    assert "secret" not in answer.text
    assert "no authorization decision" in answer.json()["message"]
    assert "/undecided" in caplog.text
