"""The resource API over HTTP (in process): paths, kind aliases, status codes, error bodies, namespaces; run logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection
from widget_kind import API_VERSION, WIDGET

from flowdeck.config import Settings
from flowdeck.controlplane.app import ServerContext, create_app
from flowdeck.controlplane.auth import Access, scoped
from flowdeck.pipelines.controller import RunController
from flowdeck.pipelines.tasklogs import MISSING_HEADER, NOTES_HEADER
from flowdeck.profiles.rbac import Principal
from flowdeck.resources import Registry
from flowdeck.resources.controller import create_controller
from flowdeck.store import AttemptRow, Store, TaskRow
from flowdeck.store.catalog import RunCatalog

API = "/apis/flowdeck/v1"
QUIET = replace(WIDGET, kind="Quiet", plural="quiets", short_names=(), logs=None, finalize=None)


def widget(name: str = "w1", namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": API_VERSION, "kind": "Widget", "metadata": metadata, "spec": {"size": 1, **spec}}


@pytest.fixture
def client(sqlite_store: Store, tmp_path: Path) -> Iterator[TestClient]:
    """The control plane's app with a resource controller (not started: these tests read what the API stores)."""
    settings = Settings(home=tmp_path)
    runs = RunController(sqlite_store, settings)
    ctx = ServerContext(settings=settings, store=sqlite_store, runs=runs)
    ctx.services.append(create_controller(sqlite_store, settings, runs, kinds=Registry([WIDGET, QUIET])))
    app = create_app(ctx)
    yield TestClient(app, base_url="http://127.0.0.1")
    app.dependency_overrides.clear()


def error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["message"] == body["error"] and "\n" not in body["message"]
    return body["message"]


def test_kinds_lists_what_is_registered(client: TestClient) -> None:
    kinds = client.get(f"{API}/kinds").json()["kinds"]
    assert [k["kind"] for k in kinds] == ["Quiet", "Widget"]
    assert kinds[1]["shortNames"] == ["wd"] and kinds[1]["hasLogs"] is True


def test_apply_then_get_by_every_name_of_the_kind(client: TestClient) -> None:
    answer = client.post(f"{API}/apply", json={"items": [widget("w1"), widget("w2", color="blue")]})
    assert answer.status_code == 200, answer.text
    assert [(i["result"], i["object"]["metadata"]["name"]) for i in answer.json()["items"]] == [
        ("created", "w1"), ("created", "w2")]
    for alias in ("Widget", "widget", "widgets", "wd"):
        got = client.get(f"{API}/namespaces/default/{alias}/w2")
        assert got.status_code == 200, got.text
        assert got.json()["spec"]["color"] == "blue"
        assert got.json()["metadata"]["generation"] == 1
    listed = client.get(f"{API}/namespaces/default/widgets").json()
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == ["w1", "w2"]
    again = client.post(f"{API}/apply", json={"items": [widget("w1"), widget("w2", color="red")]}).json()
    assert [i["result"] for i in again["items"]] == ["unchanged", "configured"]
    assert again["items"][1]["object"]["metadata"]["generation"] == 2


def test_put_creates_then_updates_one_resource(client: TestClient) -> None:
    created = client.put(f"{API}/namespaces/team-a/wd/w9", json={"apiVersion": API_VERSION, "spec": {"size": 4}})
    assert created.status_code == 201, created.text
    assert created.json()["metadata"]["namespace"] == "team-a"
    updated = client.put(f"{API}/namespaces/team-a/wd/w9", json={"apiVersion": API_VERSION, "spec": {"size": 5}})
    assert updated.status_code == 200 and updated.json()["metadata"]["generation"] == 2
    assert "differs from the name in the URL (w9)" in error(
        client.put(f"{API}/namespaces/team-a/wd/w9", json=widget("other")), 400)
    assert "differs from the namespace asked for (team-a)" in error(
        client.put(f"{API}/namespaces/team-a/wd/w9", json=widget("w9", namespace="team-b")), 400)


def test_an_invalid_document_is_a_400_naming_the_field_and_nothing_is_stored(client: TestClient) -> None:
    invalid = widget("bad", parts={"Master": {"replicas": 3}})
    answer = client.post(f"{API}/apply", json={"items": [widget("ok"), invalid]})
    assert error(answer, 400) == "document 2: spec.parts.Master.replicas: must be 1"
    assert client.get(f"{API}/namespaces/default/widgets").json()["items"] == []
    unknown = client.post(f"{API}/apply", json={"items": [{**widget(), "kind": "PyTorchJob"}]})
    assert error(unknown, 400).startswith("unknown kind 'PyTorchJob' (apiVersion test.flowdeck.dev/v1)")
    assert error(client.post(f"{API}/apply", json={"items": []}), 400) == "no resources to apply"
    assert error(client.post(f"{API}/apply", json={"items": [widget(), widget()]}), 400) == \
        "document 2: widget/w1 appears twice in namespace default"
    assert error(client.post(f"{API}/apply", json={"item": []}), 400) == "items: Field required"


def test_unknown_kinds_names_and_namespaces_are_404s_or_400s(client: TestClient) -> None:
    assert error(client.get(f"{API}/namespaces/default/gizmos"), 404) == \
        "unknown kind 'gizmos'; known kinds: Quiet, Widget"
    assert error(client.get(f"{API}/namespaces/default/widgets/nope"), 404) == \
        "widget/nope not found in namespace default"
    assert error(client.delete(f"{API}/namespaces/default/widgets/nope"), 404) == \
        "widget/nope not found in namespace default"
    assert "is not a valid namespace" in error(client.get(f"{API}/namespaces/Bad_NS/widgets"), 400)


def test_a_stale_resource_version_is_a_409(client: TestClient) -> None:
    client.post(f"{API}/apply", json={"items": [widget()]})
    stale = widget(size=2)
    stale["metadata"]["resourceVersion"] = "7"
    assert "has changed since resourceVersion 7" in error(client.post(f"{API}/apply", json={"items": [stale]}), 409)


def test_logs_come_as_text_from_the_kinds_hook(client: TestClient) -> None:
    client.post(f"{API}/apply", json={"items": [widget(size=3), {**widget("q1"), "kind": "Quiet"}]})
    logs = client.get(f"{API}/namespaces/default/wd/w1/log")
    assert logs.status_code == 200 and logs.headers["content-type"].startswith("text/plain")
    assert logs.text == "widget w1: size 3\nsteps taken: 0\n"
    assert error(client.get(f"{API}/namespaces/default/quiets/q1/log"), 400) == "Quiet resources have no logs"


def test_delete_of_a_kind_without_a_finalizer_is_immediate(client: TestClient) -> None:
    client.post(f"{API}/apply", json={"items": [{**widget("q1"), "kind": "Quiet"}, widget("w1")]})
    assert client.delete(f"{API}/namespaces/default/quiets/q1").status_code == 200
    assert client.get(f"{API}/namespaces/default/quiets/q1").status_code == 404
    # a kind with a finalizer is marked, and left for its controller to finalize
    marked = client.delete(f"{API}/namespaces/default/widgets/w1").json()
    assert marked["metadata"]["deletionTimestamp"]
    assert client.get(f"{API}/namespaces/default/widgets/w1").status_code == 200


def test_describe_has_the_spec_summary_and_the_events(client: TestClient) -> None:
    client.post(f"{API}/apply", json={"items": [widget(color="green")]})
    described = client.get(f"{API}/namespaces/default/wd/w1/describe").json()
    assert described["object"]["metadata"]["name"] == "w1"
    assert {"name": "color", "value": "green"} in described["details"]
    assert described["events"] == []


def as_alice(connection: HTTPConnection) -> Access:
    """The `scoped` policy for a user who may edit in namespace alice and nowhere else."""
    return Access(Principal("user:alice", roles={"alice": "edit"}), connection.scope["state"].setdefault("authz", []))


def test_a_caller_only_sees_the_namespaces_it_may_use(client: TestClient) -> None:
    client.post(f"{API}/apply", json={"items": [widget("mine", "alice"), widget("theirs", "bob"), widget("shared")]})
    client.app.dependency_overrides[scoped] = as_alice
    assert client.get(f"{API}/namespaces/alice/widgets/mine").status_code == 200
    assert error(client.get(f"{API}/namespaces/bob/widgets/theirs"), 404) == "namespace 'bob' not found"
    assert error(client.get(f"{API}/namespaces/default/widgets"), 404) == "namespace 'default' not found"
    assert error(client.post(f"{API}/apply", json={"items": [widget("x", "bob")]}), 404) == "namespace 'bob' not found"
    assert error(client.delete(f"{API}/namespaces/bob/widgets/theirs"), 404) == "namespace 'bob' not found"
    everywhere = client.get(f"{API}/widgets").json()["items"]
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere] == [("alice", "mine")]


# -------------------------------------------------------------------------------------------- run logs
def record_run(store: Store, run_id: str, namespace: str = "", **task: Any) -> str:
    """A finished run with one container task `echo` (columns of `task` override the defaults)."""
    store.create_run(id=run_id, pipeline_name="echo", display_name=run_id, state="SUCCEEDED", namespace=namespace,
                     pipeline_spec={"pipelineInfo": {"name": "echo"}})
    with Session(store.engine) as session, session.begin():
        session.add(TaskRow(**{"id": f"{run_id}-echo", "run_id": run_id, "name": "echo", "display_name": "echo",
                               "path": "echo", "kind": "container", "state": "SUCCEEDED", **task}))
    return run_id


def add_attempt(store: Store, task_id: str, log_path: Path, text: str) -> None:
    log_path.write_text(text)
    with Session(store.engine) as session, session.begin():
        session.add(AttemptRow(task_id=task_id, number=1, state="SUCCEEDED", log_path=str(log_path)))


def logs_of(client: TestClient, run: str, **params: str) -> tuple[str, list[str], int]:
    answer = client.get(f"{API}/runs/{run}/logs", params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text, json.loads(answer.headers[NOTES_HEADER]), int(answer.headers[MISSING_HEADER])


def test_run_logs_are_the_logs_flowdeck_logs_prints(client: TestClient, sqlite_store: Store, tmp_path: Path) -> None:
    first = record_run(sqlite_store, "1111aaaa-first")
    add_attempt(sqlite_store, f"{first}-echo", tmp_path / "echo.log", "hello from echo")
    second = record_run(sqlite_store, "2222bbbb-second", cached=True,
                        outputs={"cached_from": {"run_id": first, "task_id": f"{first}-echo", "path": "echo"}})

    assert logs_of(client, "1111") == ("hello from echo\n", [], 0)  # a unique prefix will do
    assert logs_of(client, second, task="echo") == (
        "hello from echo\n", ["echo was served from the cache: these are the logs of echo in run 1111aaaa"], 0)

    RunCatalog(sqlite_store).delete(first)
    assert logs_of(client, second) == ("", [
        "run 2222bbbb has no task logs: its tasks' results came from the cache (run 1111aaaa), and those "
        "executions' logs are gone"], 0)
    assert logs_of(client, second, task="echo") == ("", [
        "task 'echo' of run 2222bbbb has no logs: its result came from the cache (run 1111aaaa), and that "
        "execution's logs are gone"], 1)


def test_run_logs_errors_are_one_line_4xx(client: TestClient, sqlite_store: Store, tmp_path: Path) -> None:
    record_run(sqlite_store, "3333cccc-team", namespace="team-a")
    assert error(client.get(f"{API}/runs/nope/logs"), 404) == "no run matches 'nope'"
    assert error(client.get(f"{API}/runs/3333/logs", params={"task": "train"}), 404) == \
        "no task 'train' in run 3333cccc (tasks: echo)"
    assert error(client.get(f"{API}/runs/3333/logs", params={"task": "a\x00b"}), 400) == \
        "query parameter task: must not contain a NUL byte"
    client.app.dependency_overrides[scoped] = as_alice
    assert error(client.get(f"{API}/runs/3333/logs"), 404) == "no run matches '3333'"  # existence not revealed


def test_a_server_without_a_resource_controller_says_so(sqlite_store: Store, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    app = create_app(ServerContext(settings=settings, store=sqlite_store, runs=RunController(sqlite_store, settings)))
    answer = TestClient(app, base_url="http://127.0.0.1").get(f"{API}/kinds")
    assert error(answer, 503) == "this control plane runs no resource controller"
