"""Profiles are isolated on every endpoint: another profile's objects are as good as missing.

Two profiles, team-a and team-b. team-a's owner makes one object of every kind; then users of team-b
with each role (view, edit, admin, owner) try every endpoint on them — ids in paths, query strings and
bodies, `namespace` in bodies and queries, page tokens — and must get exactly what a missing object
gives (same status, same message but for the id): no read, no write, no existence leak. A cluster
admin sees everything; a viewer of team-a reads but may not write (403). Last, `kfp.Client` with a
view-only and an edit token: the acceptance test of the profiles issue.
"""

import json
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kfp
import pytest
from kfp_server_api.exceptions import ApiException

from accounts import add_users
from helpers import ControlPlane, start_control_plane

#: user -> (profile, role); "root" is a cluster admin.
USERS = {
    "a-owner": ("team-a", "owner"), "a-view": ("team-a", "view"), "a-edit": ("team-a", "edit"),
    "b-view": ("team-b", "view"), "b-edit": ("team-b", "edit"), "b-admin": ("team-b", "admin"),
    "b-owner": ("team-b", "owner"), "root": (None, None),
}
OUTSIDERS = ("b-view", "b-edit", "b-admin", "b-owner")


def seed(home: Path) -> dict[str, str]:
    """USERS, their bindings and one token each; user -> token."""
    return add_users(home, admins=tuple(n for n, (p, _) in USERS.items() if p is None),
                     users=tuple(n for n, (p, _) in USERS.items() if p is not None),
                     roles={n: pr for n, pr in USERS.items() if pr[0] is not None})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, dict[str, str]]]:
    home = tmp_path_factory.mktemp("profiles") / "home"
    home.mkdir()
    minted = seed(home)
    plane = start_control_plane(home)
    yield plane, minted
    assert plane.stop() in (0, -signal.SIGTERM), "\n".join(plane.output)


def client(server: tuple[ControlPlane, dict[str, str]], user: str | None) -> httpx.Client:
    plane, minted = server
    headers = {"Authorization": f"Bearer {minted[user]}"} if user else {}
    return httpx.Client(base_url=f"{plane.url}/apis", headers=headers, timeout=30)


def ok(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def team_a(server: tuple[ControlPlane, dict[str, str]], spec: dict[str, Any]) -> dict[str, str]:
    """One object of every kind in team-a, made by its owner: ids by kind."""
    with client(server, "a-owner") as api:
        experiment = ok(api.post("/v2beta1/experiments", json={"display_name": "a-exp", "namespace": "team-a"}))
        pipeline = ok(api.post("/v2beta1/pipelines/create", json={
            "pipeline": {"name": "a-pipeline", "namespace": "team-a"},
            "pipeline_version": {"name": "v1", "pipeline_spec": spec}}))
        versions = ok(api.get(f"/v2beta1/pipelines/{pipeline['pipeline_id']}/versions"))["pipeline_versions"]
        run = ok(api.post("/v2beta1/runs", json={
            "display_name": "a-run", "experiment_id": experiment["experiment_id"],
            "pipeline_version_reference": {"pipeline_id": pipeline["pipeline_id"]},
            "runtime_config": {"parameters": {"a": 1, "b": 2}}}))
        recurring = ok(api.post("/v2beta1/recurringruns", json={
            "display_name": "a-schedule", "experiment_id": experiment["experiment_id"], "mode": "DISABLE",
            "pipeline_version_reference": {"pipeline_id": pipeline["pipeline_id"]},
            "runtime_config": {"parameters": {"a": 1, "b": 2}},
            "trigger": {"periodic_schedule": {"interval_second": 3600}}}))
    return {"exp": experiment["experiment_id"], "pl": pipeline["pipeline_id"],
            "ver": versions[0]["pipeline_version_id"], "run": run["run_id"],
            "rr": recurring["recurring_run_id"], "ns": "team-a", "name": "a-pipeline"}


def probes(spec: dict[str, Any], own_experiment: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every endpoint, aimed at {exp}, {pl}, {ver}, {run}, {rr}, {ns} and {name}: (method, path, request keywords)."""
    source = {"pipeline_version_reference": {"pipeline_id": "{pl}"}, "runtime_config": {"parameters": {"a": 1}}}
    package = {"files": {"uploadfile": ("p.yaml", json.dumps(spec).encode())}}
    v2 = "/v2beta1"
    return [
        ("GET", f"{v2}/experiments/{{exp}}", {}),
        ("DELETE", f"{v2}/experiments/{{exp}}", {}),
        ("POST", f"{v2}/experiments/{{exp}}:archive", {}),
        ("POST", f"{v2}/experiments/{{exp}}:unarchive", {}),
        ("GET", f"{v2}/experiments", {"params": {"namespace": "{ns}"}}),
        ("POST", f"{v2}/experiments", {"json": {"display_name": "x", "namespace": "{ns}"}}),
        ("GET", f"{v2}/pipelines/{{pl}}", {}),
        ("DELETE", f"{v2}/pipelines/{{pl}}", {"params": {"cascade": "true"}}),
        ("GET", f"{v2}/pipelines/{{pl}}/versions", {}),
        ("POST", f"{v2}/pipelines/{{pl}}/versions", {"json": {"name": "v9", "pipeline_spec": spec}}),
        ("GET", f"{v2}/pipelines/{{pl}}/versions/{{ver}}", {}),
        ("DELETE", f"{v2}/pipelines/{{pl}}/versions/{{ver}}", {}),
        ("GET", f"{v2}/pipelines", {"params": {"namespace": "{ns}"}}),
        ("GET", f"{v2}/pipelines/names/{{name}}", {"params": {"namespace": "{ns}"}}),
        ("POST", f"{v2}/pipelines", {"json": {"name": "x", "namespace": "{ns}"}}),
        ("POST", f"{v2}/pipelines/create", {"json": {"pipeline": {"name": "x", "namespace": "{ns}"},
                                                     "pipeline_version": {"pipeline_spec": spec}}}),
        ("POST", f"{v2}/pipelines/upload", {"params": {"namespace": "{ns}"}, **package}),
        ("POST", f"{v2}/pipelines/upload_version", {"params": {"pipelineid": "{pl}", "name": "v8"}, **package}),
        ("GET", f"{v2}/runs/{{run}}", {}),
        ("DELETE", f"{v2}/runs/{{run}}", {}),
        ("POST", f"{v2}/runs/{{run}}:terminate", {}),
        ("POST", f"{v2}/runs/{{run}}:retry", {}),
        ("POST", f"{v2}/runs/{{run}}:archive", {}),
        ("POST", f"{v2}/runs/{{run}}:unarchive", {}),
        ("GET", f"{v2}/runs", {"params": {"namespace": "{ns}"}}),
        ("GET", f"{v2}/runs", {"params": {"experiment_id": "{exp}"}}),
        ("POST", f"{v2}/runs", {"json": {"display_name": "x", "experiment_id": "{exp}", **source}}),
        ("POST", f"{v2}/runs", {"params": {"experiment_id": "{exp}"}, "json": {"display_name": "x", **source}}),
        ("POST", f"{v2}/runs", {"json": {"display_name": "x", "experiment_id": own_experiment, **source}}),
        ("POST", f"{v2}/runs", {"json": {"display_name": "x", "experiment_id": own_experiment,
                                         "pipeline_version_id": "{ver}"}}),
        ("GET", f"{v2}/recurringruns/{{rr}}", {}),
        ("DELETE", f"{v2}/recurringruns/{{rr}}", {}),
        ("POST", f"{v2}/recurringruns/{{rr}}:enable", {}),
        ("POST", f"{v2}/recurringruns/{{rr}}:disable", {}),
        ("GET", f"{v2}/recurringruns", {"params": {"namespace": "{ns}"}}),
        ("POST", f"{v2}/recurringruns", {"json": {"display_name": "x", "experiment_id": "{exp}", "mode": "DISABLE",
                                                  "trigger": {"periodic_schedule": {"interval_second": 60}},
                                                  **source}}),
        ("GET", "/flowdeck/v1/runs/{run}/logs", {}),
        ("GET", "/flowdeck/v1/namespaces/{ns}/pipelineruns", {}),
        ("GET", "/flowdeck/v1/namespaces/{ns}/pipelineruns/r1", {}),
        ("PUT", "/flowdeck/v1/namespaces/{ns}/pipelineruns/r1", {"json": {
            "apiVersion": "pipelines.flowdeck.dev/v1alpha1", "kind": "PipelineRun", "spec": {"pipelineSpec": spec}}}),
        ("DELETE", "/flowdeck/v1/namespaces/{ns}/pipelineruns/r1", {}),
        ("GET", "/flowdeck/v1/namespaces/{ns}/pipelineruns/r1/log", {}),
        ("GET", "/flowdeck/v1/namespaces/{ns}/pipelineruns/r1/describe", {}),
        ("POST", "/flowdeck/v1/apply", {"json": {"items": [{
            "apiVersion": "pipelines.flowdeck.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": {"name": "r2", "namespace": "{ns}"}, "spec": {"pipelineSpec": spec}}]}}),
        ("POST", "/flowdeck/v1/apply", {"params": {"namespace": "{ns}"}, "json": {"items": [{
            "apiVersion": "pipelines.flowdeck.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": {"name": "r3"}, "spec": {"pipelineSpec": spec}}]}}),
    ]


def fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, replacement in ids.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value


def send(api: httpx.Client, method: str, path: str, request: dict[str, Any], ids: dict[str, str]) -> tuple[int, str]:
    """(status, message with the ids put back as placeholders) of one probe."""
    answer = api.request(method, fill(path, ids), **fill(request, ids))
    message = answer.json().get("message", answer.text) if answer.status_code >= 400 else answer.text
    for key, value in sorted(ids.items(), key=lambda item: -len(item[1])):
        message = message.replace(value, "{" + key + "}")
    return answer.status_code, message


@pytest.mark.parametrize("user", OUTSIDERS)
def test_other_profiles_objects_answer_exactly_like_missing_ones(server, team_a, spec, user: str) -> None:
    missing = {key: (uuid.uuid4().hex[:len(value)] if key != "ns" else "team-zz") for key, value in team_a.items()}
    missing["name"] = "a-pipeline"
    with client(server, "b-owner") as api:
        own = api.post("/v2beta1/experiments", json={"display_name": f"own-{user}", "namespace": "team-b"}).json()
    statuses = []
    with client(server, user) as api:
        for method, path, request in probes(spec, own["experiment_id"]):
            real = send(api, method, path, request, team_a)
            statuses.append(real[0])
            fake = send(api, method, path, request, missing)
            assert real[0] in (200, 403, 404), (user, method, path, real)  # 200: an empty list
            assert real == fake, f"{user} {method} {path}: {real} differs from a missing object's {fake}"
    assert statuses.count(404) >= 35, statuses  # the probes reached the objects' checks, not an earlier error
    with client(server, "a-owner") as owner:  # and nothing of team-a changed
        assert ok(owner.get(f"/v2beta1/runs/{team_a['run']}"))["storage_state"] == "AVAILABLE"
        assert ok(owner.get(f"/v2beta1/experiments/{team_a['exp']}"))["storage_state"] == "AVAILABLE"
        assert ok(owner.get(f"/v2beta1/recurringruns/{team_a['rr']}"))["status"] == "DISABLED"
        assert len(ok(owner.get(f"/v2beta1/pipelines/{team_a['pl']}/versions"))["pipeline_versions"]) == 1


@pytest.mark.parametrize("user", OUTSIDERS)
def test_lists_and_page_tokens_show_nothing_of_other_profiles(server, team_a, user: str) -> None:
    with client(server, "a-owner") as owner:
        page = ok(owner.get("/v2beta1/runs", params={"page_size": 1}))
    with client(server, user) as api:
        for kind, key in (("experiments", "exp"), ("pipelines", "pl"), ("runs", "run"), ("recurringruns", "rr")):
            listed = api.get(f"/v2beta1/{kind}", params={"page_size": 200}).text
            assert team_a[key] not in listed and "team-a" not in listed, kind
        if page.get("next_page_token"):
            continued = api.get("/v2beta1/runs", params={"page_token": page["next_page_token"]})
            assert "team-a" not in continued.text
        listed = api.get("/flowdeck/v1/pipelineruns").text
        assert "team-a" not in listed


def test_a_cluster_admin_reads_every_profile(server, team_a) -> None:
    with client(server, "root") as api:
        assert ok(api.get(f"/v2beta1/runs/{team_a['run']}"))["experiment_id"] == team_a["exp"]
        assert team_a["exp"] in api.get("/v2beta1/experiments", params={"page_size": 200}).text
        assert ok(api.get("/v2beta1/pipelines", params={"namespace": "team-a"}))["total_size"] == 1


def test_a_viewer_reads_but_may_not_write(server, team_a, spec) -> None:
    with client(server, "a-view") as api:
        assert ok(api.get(f"/v2beta1/runs/{team_a['run']}"))["run_id"] == team_a["run"]
        assert ok(api.get("/v2beta1/experiments", params={"namespace": "team-a"}))["total_size"] >= 1
        for method, path, body in (
            ("POST", f"/v2beta1/runs/{team_a['run']}:archive", None),
            ("DELETE", f"/v2beta1/experiments/{team_a['exp']}", None),
            ("POST", "/v2beta1/experiments", {"display_name": "nope", "namespace": "team-a"}),
            ("POST", f"/v2beta1/pipelines/{team_a['pl']}/versions", {"name": "v7", "pipeline_spec": spec}),
        ):
            answer = api.request(method, path, json=body)
            assert answer.status_code == 403, (method, path, answer.text)
            assert "may not write in namespace 'team-a'" in answer.json()["message"]


def test_anonymous_requests_are_refused_but_public_pages_answer(server) -> None:
    with client(server, None) as api:
        assert api.get("/v2beta1/runs").status_code == 401
        assert api.get("/flowdeck/v1/kinds").status_code == 401
        assert ok(api.get("/v2beta1/healthz"))["multi_user"] is True
    plane, _ = server
    home = httpx.get(plane.url + "/")
    assert home.status_code == 200 and "a-run" not in home.text


def test_kfp_client_view_token_reads_and_edit_token_runs(server, team_a, package: Path) -> None:
    plane, minted = server
    viewer = kfp.Client(host=plane.url, existing_token=minted["a-view"], namespace="team-a")
    runs = viewer.list_runs(namespace="team-a", page_size=100).runs or []
    assert team_a["run"] in [r.run_id for r in runs]
    assert viewer.get_run(team_a["run"]).display_name == "a-run"
    with pytest.raises(ApiException) as refused:
        viewer.create_run_from_pipeline_package(str(package), arguments={"a": 1, "b": 2}, namespace="team-a",
                                                experiment_name="a-exp")
    assert refused.value.status == 403

    editor = kfp.Client(host=plane.url, existing_token=minted["a-edit"], namespace="team-a")
    run = editor.create_run_from_pipeline_package(str(package), arguments={"a": 1, "b": 2}, namespace="team-a",
                                                  experiment_name="a-exp")
    assert editor.wait_for_run_completion(run.run_id, timeout=120).state == "SUCCEEDED"

    outsider = kfp.Client(host=plane.url, existing_token=minted["b-edit"], namespace="team-b")
    seen = [r.run_id for r in outsider.list_runs(page_size=100).runs or []]
    assert run.run_id not in seen and team_a["run"] not in seen
    with pytest.raises(ApiException) as hidden:
        outsider.get_run(run.run_id)
    assert hidden.value.status == 404
    assert run.run_id in [r.run_id for r in editor.list_runs(namespace="team-a", page_size=100).runs or []]


def test_up_on_a_public_address_refuses_to_start_until_someone_can_sign_in(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="refusing to serve on 0.0.0.0 with nobody able to sign in"):
        start_control_plane(tmp_path / "bare", args=["--host", "0.0.0.0"])
    home = tmp_path / "with-admin"
    home.mkdir()
    seed(home)  # "root" is a cluster admin
    plane = start_control_plane(home, args=["--host", "0.0.0.0"])
    try:
        port = plane.url.rsplit(":", 1)[1]
        assert httpx.get(f"http://127.0.0.1:{port}/apis/v2beta1/runs").status_code == 401
    finally:
        plane.stop()
