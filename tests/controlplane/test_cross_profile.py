"""Profiles are isolated on every endpoint: another profile's objects are as good as missing.

Two profiles, team-a and team-b. team-a's owner makes one object of every kind (experiment, pipeline
and version, run, recurring run, PipelineRun resource, Profile, contributors, tokens); then users of
team-b with each role (view, edit, admin, owner) call every endpoint on them — ids in paths, query
strings and bodies, `namespace` in bodies and queries, page tokens — and must get exactly what a
missing object gives (same status, same message but for the id): no read, no write, no existence
leak. A team-a token limited to `read` reads but changes nothing; a revoked and an expired token get
nothing at all. After each matrix team-a's objects are as they were. The probes are checked against
the routes the app registers (`route_policies`): a new route without a probe, or a reasoned
exemption, fails the module. A cluster admin sees everything; a viewer of team-a reads but may not
write (403). Last, `kfp.Client` with a view-only and an edit token: the acceptance test of the
profiles issue.
"""

import json
import signal
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import kfp
import pytest
from kfp_server_api.exceptions import ApiException
from starlette.routing import compile_path

from accounts import add_users
from flowdeck.config import Settings
from flowdeck.controlplane.app import ServerContext, create_app
from flowdeck.controlplane.auth import route_policies
from flowdeck.profiles import tokens
from flowdeck.store import open_store
from flowdeck.store.identity import IdentityStore
from flowdeck.store.models import ArtifactRow, utcnow
from helpers import ControlPlane, start_control_plane, wait_for

#: user -> (profile, role); "root" is a cluster admin.
USERS = {
    "a-owner": ("team-a", "owner"), "a-view": ("team-a", "view"), "a-edit": ("team-a", "edit"),
    "b-view": ("team-b", "view"), "b-edit": ("team-b", "edit"), "b-admin": ("team-b", "admin"),
    "b-owner": ("team-b", "owner"), "root": (None, None),
}
OUTSIDERS = ("b-view", "b-edit", "b-admin", "b-owner")
#: Tokens of a-owner that must get nothing, or only reads, of team-a (minted by `seed`).
DEAD_TOKENS = ("revoked", "expired")
#: The id of a-owner's token that others try to revoke.
VICTIM_TOKEN = "victim0token"

V2 = "/apis/v2beta1"
V1 = "/apis/flowdeck/v1"
#: Routes no probe aims at, and why none is needed.
EXEMPT = {
    ("GET", f"{V2}/healthz"): "public: the server's mode and version, nothing of a profile",
    ("GET", "/login"): "the sign-in page (test_login.py)",
    ("POST", "/login"): "signing in names a user, no profile's objects (test_login.py)",
    ("POST", "/logout"): "ends the caller's own login (test_login.py)",
    ("GET", "/oidc/login"): "starts an OIDC sign-in (test_login_oidc.py)",
    ("GET", "/oidc/callback"): "ends an OIDC sign-in (test_login_oidc.py)",
    ("GET", "/docs"): "API documentation, the same for everyone",
    ("GET", "/openapi.json"): "API documentation, the same for everyone",
    ("GET", f"{V1}/kinds"): "the registered kinds, the same for everyone",
    ("GET", "/static/{path:path}"): "the dashboard's scripts and styles, the same for everyone",
}


def seed(home: Path) -> dict[str, str]:
    """USERS, their bindings and one token each; plus a-owner's read-only token of team-a ("a-read"), a revoked
    and an expired one, and VICTIM_TOKEN. user (or token name) -> token."""
    minted = add_users(home, admins=tuple(n for n, (p, _) in USERS.items() if p is None),
                       users=tuple(n for n, (p, _) in USERS.items() if p is not None),
                       roles={n: pr for n, pr in USERS.items() if pr[0] is not None})
    store = open_store(f"sqlite:///{home / 'flowdeck.db'}")
    now = utcnow()
    try:
        for name, values in (("a-read", {"scopes": ["read"], "profile": "team-a"}),
                             ("revoked", {"revoked_at": now}),
                             ("expired", {"expires_at": now - timedelta(days=1)}),
                             ("victim", {"id": VICTIM_TOKEN})):
            secret = tokens.mint()
            IdentityStore(store.engine).add_token(**{
                "id": uuid.uuid4().hex[:12], "lookup": tokens.lookup_key(secret), "digest": tokens.digest(secret),
                "owner": "user:a-owner", "scopes": ["read", "write", "manage", "own"], **values})
            minted[name] = secret
    finally:
        store.close()
    return minted


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, dict[str, str]]]:
    home = tmp_path_factory.mktemp("profiles") / "home"
    home.mkdir()
    minted = seed(home)
    plane = start_control_plane(home)
    yield plane, minted
    assert plane.stop() in (0, -signal.SIGTERM), "\n".join(plane.output)


def client(server: tuple[ControlPlane, dict[str, str]], user: str | None, apis: bool = True) -> httpx.Client:
    """An HTTP client of `user` (a user or token name of `seed`; None: anonymous), based at /apis or at /."""
    plane, minted = server
    headers = {"Authorization": f"Bearer {minted[user]}"} if user else {}
    return httpx.Client(base_url=plane.url + ("/apis" if apis else ""), headers=headers, timeout=30)


def ok(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def pipeline_run(spec: dict[str, Any], **metadata: str) -> dict[str, Any]:
    return {"apiVersion": "pipelines.flowdeck.dev/v1alpha1", "kind": "PipelineRun", "metadata": metadata,
            "spec": {"pipelineSpec": spec, "parameters": {"a": 1, "b": 2}}}


def profile(name: str, owner: str) -> dict[str, Any]:
    return {"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": name},
            "spec": {"owner": {"kind": "User", "name": owner}}}


@pytest.fixture(scope="module")
def team_a(server: tuple[ControlPlane, dict[str, str]], spec: dict[str, Any]) -> dict[str, str]:
    """One object of every kind in team-a (two of the listed ones, for page tokens): ids by placeholder."""
    with client(server, "root") as root:
        ok(root.put("/flowdeck/v1/profiles/team-a", json=profile("team-a", "a-owner")))
    with client(server, "a-owner") as api:
        experiment = ok(api.post("/v2beta1/experiments", json={"display_name": "a-exp", "namespace": "team-a"}))
        ok(api.post("/v2beta1/experiments", json={"display_name": "a-exp2", "namespace": "team-a"}))
        pipeline = ok(api.post("/v2beta1/pipelines/create", json={
            "pipeline": {"name": "a-pipeline", "namespace": "team-a"},
            "pipeline_version": {"name": "v1", "pipeline_spec": spec}}))
        ok(api.post("/v2beta1/pipelines", json={"name": "a-pipeline2", "namespace": "team-a"}))
        ok(api.post(f"/v2beta1/pipelines/{pipeline['pipeline_id']}/versions", json={"name": "v2",
                                                                                    "pipeline_spec": spec}))
        versions = ok(api.get(f"/v2beta1/pipelines/{pipeline['pipeline_id']}/versions"))["pipeline_versions"]
        run = ok(api.post("/v2beta1/runs", json={
            "display_name": "a-run", "experiment_id": experiment["experiment_id"],
            "pipeline_version_reference": {"pipeline_id": pipeline["pipeline_id"]},
            "runtime_config": {"parameters": {"a": 1, "b": 2}}}))
        schedule = {"experiment_id": experiment["experiment_id"], "mode": "DISABLE",
                    "pipeline_version_reference": {"pipeline_id": pipeline["pipeline_id"]},
                    "runtime_config": {"parameters": {"a": 1, "b": 2}},
                    "trigger": {"periodic_schedule": {"interval_second": 3600}}}
        recurring = ok(api.post("/v2beta1/recurringruns", json={"display_name": "a-schedule", **schedule}))
        ok(api.post("/v2beta1/recurringruns", json={"display_name": "a-schedule2", **schedule}))
        resource = "/flowdeck/v1/namespaces/team-a/pipelineruns/alpha-pr"
        ok(api.put(resource, json=pipeline_run(spec)))
        assert wait_for(lambda: "runId" in api.get(resource).json().get("status", {}), timeout=30)
    artifact = uuid.uuid4().hex  # adder writes no artifact: team-a's run gets one, as if it had
    store = open_store(f"sqlite:///{server[0].home / 'flowdeck.db'}")
    try:
        with store.engine.begin() as conn:
            conn.execute(ArtifactRow.__table__.insert().values(
                id=artifact, run_id=run["run_id"], name="report", uri=str(server[0].home / "report.html"),
                schema_title="system.HTML", metadata={}, created_at=utcnow()))
    finally:
        store.close()
    (server[0].home / "report.html").write_text("<p>team-a's report</p>")
    return {"exp": experiment["experiment_id"], "pl": pipeline["pipeline_id"], "art": artifact,
            "ver": versions[-1]["pipeline_version_id"], "run": run["run_id"], "run8": run["run_id"][:8],
            "rr": recurring["recurring_run_id"], "ns": "team-a", "name": "a-pipeline", "pr": "alpha-pr",
            "user": "a-owner", "tok": VICTIM_TOKEN}


def missing_ids(team_a: dict[str, str]) -> dict[str, str]:
    """Ids of the same shape that name nothing (the pipeline name stays: its namespace is what differs)."""
    missing = {key: uuid.uuid4().hex[:len(value)] for key, value in team_a.items()}
    return {**missing, "ns": "team-zz", "name": team_a["name"], "pr": "zulu-pr", "user": "nobody"}


def probes(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every endpoint, aimed at team-a's objects through placeholders ({exp}, {pl}, {ver}, {run}, {rr}, {art}, {ns},
    {name}, {pr}, {user}, {tok}; {own}: an experiment of the caller's own): (method, path, request keywords)."""
    source = {"pipeline_version_reference": {"pipeline_id": "{pl}"}, "runtime_config": {"parameters": {"a": 1}}}
    package = {"files": {"uploadfile": ("p.yaml", json.dumps(spec).encode())}}
    trigger = {"trigger": {"periodic_schedule": {"interval_second": 60}}, "mode": "DISABLE"}
    ns_filter = json.dumps({"predicates": [{"key": "namespace", "operation": "EQUALS", "string_value": "{ns}"}]})
    id_filter = json.dumps({"predicates": [{"key": "run_id", "operation": "EQUALS", "string_value": "{run}"}]})
    obj = f"{V1}/namespaces/{{ns}}/pipelineruns/{{pr}}"
    binding = {"user": {"kind": "User", "name": "b-view"}, "referredNamespace": "{ns}", "RoleRef": {"name": "edit"}}
    return [
        ("GET", f"{V2}/experiments/{{exp}}", {}),
        ("DELETE", f"{V2}/experiments/{{exp}}", {}),
        ("POST", f"{V2}/experiments/{{exp}}:archive", {}),
        ("POST", f"{V2}/experiments/{{exp}}:unarchive", {}),
        ("GET", f"{V2}/experiments", {"params": {"namespace": "{ns}"}}),
        ("GET", f"{V2}/experiments", {"params": {"filter": ns_filter}}),
        ("POST", f"{V2}/experiments", {"json": {"display_name": "x", "namespace": "{ns}"}}),
        ("GET", f"{V2}/pipelines/{{pl}}", {}),
        ("DELETE", f"{V2}/pipelines/{{pl}}", {"params": {"cascade": "true"}}),
        ("GET", f"{V2}/pipelines/{{pl}}/versions", {}),
        ("POST", f"{V2}/pipelines/{{pl}}/versions", {"json": {"name": "v9", "pipeline_spec": spec}}),
        ("GET", f"{V2}/pipelines/{{pl}}/versions/{{ver}}", {}),
        ("DELETE", f"{V2}/pipelines/{{pl}}/versions/{{ver}}", {}),
        ("GET", f"{V2}/pipelines", {"params": {"namespace": "{ns}"}}),
        ("GET", f"{V2}/pipelines", {"params": {"filter": ns_filter}}),
        ("GET", f"{V2}/pipelines/names/{{name}}", {"params": {"namespace": "{ns}"}}),
        ("POST", f"{V2}/pipelines", {"json": {"name": "x", "namespace": "{ns}"}}),
        ("POST", f"{V2}/pipelines/create", {"json": {"pipeline": {"name": "x", "namespace": "{ns}"},
                                                     "pipeline_version": {"pipeline_spec": spec}}}),
        ("POST", f"{V2}/pipelines/upload", {"params": {"namespace": "{ns}"}, **package}),
        ("POST", f"{V2}/pipelines/upload_version", {"params": {"pipelineid": "{pl}", "name": "v8"}, **package}),
        ("GET", f"{V2}/runs/{{run}}", {}),
        ("DELETE", f"{V2}/runs/{{run}}", {}),
        ("POST", f"{V2}/runs/{{run}}:terminate", {}),
        ("POST", f"{V2}/runs/{{run}}:retry", {}),
        ("POST", f"{V2}/runs/{{run}}:archive", {}),
        ("POST", f"{V2}/runs/{{run}}:unarchive", {}),
        ("GET", f"{V2}/runs", {"params": {"namespace": "{ns}"}}),
        ("GET", f"{V2}/runs", {"params": {"experiment_id": "{exp}"}}),
        ("GET", f"{V2}/runs", {"params": {"filter": id_filter}}),
        ("POST", f"{V2}/runs", {"json": {"display_name": "x", "experiment_id": "{exp}", **source}}),
        ("POST", f"{V2}/runs", {"params": {"experiment_id": "{exp}"}, "json": {"display_name": "x", **source}}),
        ("POST", f"{V2}/runs", {"json": {"display_name": "x", "experiment_id": "{own}", **source}}),
        ("POST", f"{V2}/runs", {"json": {"display_name": "x", "experiment_id": "{own}",
                                         "pipeline_version_id": "{ver}"}}),
        ("GET", f"{V2}/recurringruns/{{rr}}", {}),
        ("DELETE", f"{V2}/recurringruns/{{rr}}", {}),
        ("POST", f"{V2}/recurringruns/{{rr}}:enable", {}),
        ("POST", f"{V2}/recurringruns/{{rr}}:disable", {}),
        ("GET", f"{V2}/recurringruns", {"params": {"namespace": "{ns}"}}),
        ("GET", f"{V2}/recurringruns", {"params": {"experiment_id": "{exp}"}}),
        ("POST", f"{V2}/recurringruns", {"json": {"display_name": "x", "experiment_id": "{exp}", **trigger,
                                                  **source}}),
        ("POST", f"{V2}/recurringruns", {"json": {"display_name": "x", "experiment_id": "{own}", **trigger,
                                                  **source}}),
        ("POST", f"{V2}/recurringruns", {"json": {"display_name": "x", "experiment_id": "{own}", "namespace": "{ns}",
                                                  **trigger, "pipeline_spec": spec}}),
        # flowdeck's resource API: the namespaced PipelineRun, the cluster-scoped Profile, run logs
        ("GET", f"{V1}/runs/{{run}}/logs", {}),
        ("GET", f"{V1}/runs/{{run8}}/logs", {"params": {"task": "add"}}),
        ("GET", f"{V1}/pipelineruns", {}),
        ("GET", f"{V1}/profiles", {}),
        ("GET", f"{V1}/namespaces/{{ns}}/pipelineruns", {}),
        ("GET", obj, {}),
        ("PUT", obj, {"json": pipeline_run(spec)}),
        ("PUT", f"{V1}/namespaces/team-b/pipelineruns/{{pr}}", {"json": pipeline_run(spec, namespace="{ns}")}),
        ("DELETE", obj, {}),
        ("GET", f"{obj}/log", {}),
        ("GET", f"{obj}/describe", {}),
        ("POST", f"{V1}/apply", {"json": {"items": [pipeline_run(spec, name="{pr}", namespace="{ns}")]}}),
        ("POST", f"{V1}/apply", {"params": {"namespace": "{ns}"}, "json": {"items": [pipeline_run(spec, name="r3")]}}),
        ("POST", f"{V1}/apply", {"params": {"namespace": "team-b"},
                                 "json": {"items": [pipeline_run(spec, name="{pr}", namespace="{ns}")]}}),
        ("POST", f"{V1}/apply", {"json": {"items": [profile("{ns}", "b-owner")]}}),
        ("GET", f"{V1}/profiles/{{ns}}", {}),
        ("PUT", f"{V1}/profiles/{{ns}}", {"json": profile("{ns}", "b-owner")}),
        ("DELETE", f"{V1}/profiles/{{ns}}", {}),
        ("GET", f"{V1}/profiles/{{ns}}/log", {}),
        ("GET", f"{V1}/profiles/{{ns}}/describe", {}),
        # KFAM: contributors of the other profile
        ("GET", "/kfam/v1/bindings", {"params": {"namespace": "{ns}"}}),
        ("GET", "/kfam/v1/bindings", {"params": {"user": "{user}"}}),
        ("POST", "/kfam/v1/bindings", {"json": binding}),
        ("DELETE", "/kfam/v1/bindings", {"json": {**binding, "user": {"kind": "User", "name": "{user}"},
                                                   "RoleRef": {"name": "admin"}}}),
        ("GET", "/kfam/v1/role/clusteradmin", {"params": {"user": "{user}"}}),
        # identity: another user's tokens; the users API as a non-admin
        ("GET", f"{V1}/tokens", {"params": {"owner": "user:{user}"}}),
        ("POST", f"{V1}/tokens", {"json": {"owner": "user:{user}"}}),
        ("DELETE", f"{V1}/tokens/{{tok}}", {}),
        ("GET", f"{V1}/users", {}),
        ("POST", f"{V1}/users", {"json": {"name": "{user}"}}),
        ("GET", f"{V1}/users/{{user}}", {}),
        ("POST", f"{V1}/users/{{user}}/disable", {}),
        ("PUT", f"{V1}/users/{{user}}/password", {"json": {"password": "correct horse battery"}}),
        # the dashboard's pages show only what the visitor may read
        ("GET", "/", {}),
        ("GET", "/", {"params": {"ns": "{ns}"}}),
        ("GET", "/runs", {"params": {"ns": "{ns}"}}),
        ("GET", "/runs", {"params": {"experiment": "{exp}"}}),
        ("GET", "/runs/{run}", {}),
        ("GET", "/runs/{run}/state", {}),
        ("GET", "/runs/{run}/graph", {"params": {"path": "x"}}),
        ("GET", "/runs/{run}/tasks/x", {}),
        ("GET", "/runs/{run}/tasks/x/logs", {"params": {"attempt": 1}}),
        ("GET", "/artifacts/{art}", {}),
        ("GET", "/artifacts/{art}/content", {}),
        ("GET", "/artifacts/{art}/content", {"params": {"file": "x"}}),
        ("GET", "/pipelines", {"params": {"ns": "{ns}"}}),
        ("GET", "/pipelines/{pl}", {}),
        ("GET", "/pipelines/{pl}", {"params": {"version": "{ver}"}}),
        ("GET", "/experiments", {"params": {"ns": "{ns}"}}),
        ("GET", "/experiments/{exp}", {}),
        ("GET", "/compare", {"params": {"runs": "{run}"}}),
    ]


def fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, replacement in ids.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(fill(v, ids) for v in value)
    return value


def send(api: httpx.Client, method: str, path: str, request: dict[str, Any], ids: dict[str, str]) -> tuple[int, str]:
    """(status, message with the ids put back as placeholders) of one probe."""
    request = fill(request, ids)
    if "json" in request and method == "DELETE":  # httpx has no json= for DELETE
        request["content"], request["headers"] = json.dumps(request.pop("json")), {"content-type": "application/json"}
    answer = api.request(method, fill(path, ids), **request)
    message = answer.text
    if answer.status_code >= 400 and answer.headers.get("content-type", "").startswith("application/json"):
        message = answer.json().get("message", answer.text)
    for key, value in sorted(ids.items(), key=lambda item: -len(item[1])):
        message = message.replace(value, "{" + key + "}")
    return answer.status_code, message


def test_every_route_has_a_probe_or_a_reasoned_exemption(spec) -> None:
    app = create_app(ServerContext(settings=Settings(), store=None, runs=None))  # type: ignore[arg-type]
    routes = [(path, methods, compile_path(path)[0]) for path, methods, _ in route_policies(app.routes)]
    registered = {(method, path) for path, methods, _ in routes for method in methods}
    probed = set()
    for method, path, _ in probes(spec):  # the route that serves it: the first that matches, as in Starlette
        probed.add((method, next(template for template, methods, pattern in routes
                                 if method in methods and pattern.fullmatch(path))))
    assert not probed & set(EXEMPT), "an exempted route has probes: drop its exemption"
    unprobed = sorted(registered - probed - set(EXEMPT))
    assert not unprobed, f"routes no cross-profile probe calls (add one to probes(), or to EXEMPT with a reason): " \
                         f"{unprobed}"
    assert set(EXEMPT) <= registered, sorted(set(EXEMPT) - registered)


def snapshot(server: tuple[ControlPlane, dict[str, str]], team_a: dict[str, str]) -> dict[str, Any]:
    """What a cluster admin sees of team-a, less what changes by itself (run states, timestamps)."""
    with client(server, "root", apis=False) as api:
        def listed(path: str, key: str, field: str) -> list[str]:
            return sorted(item[field] for item in ok(api.get(path, params={"namespace": "team-a",
                                                                             "page_size": 200})).get(key, []))

        run = ok(api.get(f"{V2}/runs/{team_a['run']}"))
        recurring = ok(api.get(f"{V2}/recurringruns/{team_a['rr']}"))
        experiment = ok(api.get(f"{V2}/experiments/{team_a['exp']}"))
        resources = ok(api.get(f"{V1}/namespaces/team-a/pipelineruns"))["items"]
        return {
            "run": (run["display_name"], run["storage_state"], run["experiment_id"]),
            "recurring": (recurring["display_name"], recurring["status"]),
            "experiment": (experiment["display_name"], experiment["storage_state"]),
            "runs": listed(f"{V2}/runs", "runs", "run_id"),
            "experiments": listed(f"{V2}/experiments", "experiments", "experiment_id"),
            "pipelines": listed(f"{V2}/pipelines", "pipelines", "pipeline_id"),
            "recurring_runs": listed(f"{V2}/recurringruns", "recurringRuns", "recurring_run_id"),
            "versions": sorted(v["pipeline_version_id"] for v in ok(api.get(
                f"{V2}/pipelines/{team_a['pl']}/versions"))["pipeline_versions"]),
            "pipelineruns": [(r["metadata"]["name"], r["metadata"].get("generation"), r["spec"],
                              r["metadata"].get("deletionTimestamp")) for r in resources],
            "profile": ok(api.get(f"{V1}/profiles/team-a"))["spec"],
            "bindings": sorted((b["user"]["name"], b["flowdeckRole"]) for b in ok(api.get(
                "/kfam/v1/bindings", params={"namespace": "team-a"}))["bindings"]),
            "tokens": sorted((t["id"], t["state"], tuple(t["scopes"])) for t in ok(api.get(
                f"{V1}/tokens", params={"owner": "user:a-owner"}))["tokens"]),
            "users": sorted((u["name"], u["disabled"], u["cluster_admin"], u["has_password"])
                            for u in ok(api.get(f"{V1}/users"))["users"]),
        }


def test_the_snapshot_sees_every_kind_of_team_a_object(server, team_a) -> None:
    seen = snapshot(server, team_a)
    assert seen["run"][1] == "AVAILABLE" and seen["recurring"][1] == "DISABLED"
    assert len(seen["runs"]) == 2 and len(seen["experiments"]) >= 2 and len(seen["pipelines"]) == 2
    assert len(seen["recurring_runs"]) == 2 and len(seen["versions"]) == 2 and seen["pipelineruns"]
    assert ("a-owner", "owner") in seen["bindings"] and (VICTIM_TOKEN, "active", ("read", "write", "manage", "own")) \
        in seen["tokens"]


@pytest.mark.parametrize("user", OUTSIDERS)
def test_other_profiles_objects_answer_exactly_like_missing_ones(server, team_a, spec, user: str) -> None:
    before = snapshot(server, team_a)
    with client(server, "b-owner") as api:
        own = ok(api.post("/v2beta1/experiments", json={"display_name": f"own-{user}", "namespace": "team-b"}))
    real_ids = {**team_a, "own": own["experiment_id"]}
    fake_ids = {**missing_ids(team_a), "own": own["experiment_id"]}
    statuses = []
    with client(server, user, apis=False) as api:
        for method, path, request in probes(spec):
            real = send(api, method, path, request, real_ids)
            statuses.append(real[0])
            fake = send(api, method, path, request, fake_ids)
            assert real[0] in (200, 400, 403, 404), (user, method, path, real)  # 200: a list without team-a
            assert real == fake, f"{user} {method} {path}: {real} differs from a missing object's {fake}"
            assert team_a["run"] not in real[1] and team_a["exp"] not in real[1], (method, path, real)
    assert statuses.count(404) >= 45, statuses  # the probes reached the objects' checks, not an earlier error
    assert snapshot(server, team_a) == before  # and nothing of team-a changed


def test_a_read_only_token_of_team_a_reads_and_changes_nothing(server, team_a, spec) -> None:
    before = snapshot(server, team_a)
    with client(server, "b-owner") as api:
        own = ok(api.get("/v2beta1/experiments", params={"namespace": "team-b", "page_size": 1}))["experiments"][0]
    real_ids = {**team_a, "own": own["experiment_id"]}
    with client(server, "a-read", apis=False) as api:
        assert ok(api.get(f"{V2}/runs/{team_a['run']}"))["run_id"] == team_a["run"]
        assert api.get(f"{V1}/namespaces/team-a/pipelineruns/alpha-pr/describe").status_code == 200
        for method, path, request in probes(spec):
            status, message = send(api, method, path, request, real_ids)
            if method != "GET":
                assert status in (400, 403, 404), f"a-read {method} {path}: {status} {message}"
        assert snapshot(server, team_a) == before
        mine = [t["id"] for t in ok(api.get(f"{V1}/tokens"))["tokens"] if t["scopes"] == ["read"]]
        assert ok(api.delete(f"{V1}/tokens/{mine[0]}"))["state"] == "revoked"  # a token no stronger: itself


@pytest.mark.parametrize("token", DEAD_TOKENS)
def test_revoked_and_expired_tokens_get_nothing(server, team_a, spec, token: str) -> None:
    before = snapshot(server, team_a)
    fake_ids = {**missing_ids(team_a), "own": "0" * 32}
    with client(server, token, apis=False) as api:
        for method, path, request in probes(spec):
            real = send(api, method, path, request, {**team_a, "own": "0" * 32})
            fake = send(api, method, path, request, fake_ids)
            assert real[0] == 401, (token, method, path, real)  # even on public pages: a dead credential
            assert real == fake, f"{token} {method} {path}: {real} differs from a missing object's {fake}"
            assert team_a["run"] not in real[1], (method, path)
    assert snapshot(server, team_a) == before


@pytest.mark.parametrize("user", OUTSIDERS)
def test_lists_and_page_tokens_show_nothing_of_other_profiles(server, team_a, user: str) -> None:
    kinds = (("experiments", "experiments"), ("pipelines", "pipelines"), ("runs", "runs"),
             ("recurringruns", "recurringRuns"))
    with client(server, "a-owner") as owner:
        pages = {kind: ok(owner.get(f"/v2beta1/{kind}", params={"page_size": 1, "namespace": "team-a"}))
                 for kind, _ in kinds}
        versions = ok(owner.get(f"/v2beta1/pipelines/{team_a['pl']}/versions", params={"page_size": 1}))
    ids = [v for k, v in team_a.items() if k in ("exp", "pl", "ver", "run", "rr", "art")]
    with client(server, user) as api:
        for kind, key in kinds:
            listed = api.get(f"/v2beta1/{kind}", params={"page_size": 200}).text
            assert not any(i in listed for i in ids) and "team-a" not in listed, kind
            token = pages[kind]["next_page_token"]
            assert token, kind  # team-a holds two of each
            for params in ({"page_token": token}, {"page_token": token, "namespace": "team-b"}):
                continued = ok(api.get(f"/v2beta1/{kind}", params=params))  # the caller's own rows, if any
                assert all(item["namespace"] == "team-b" for item in continued.get(key, [])), (kind, continued)
                assert not any(i in str(continued) for i in ids), (kind, continued)
            assert api.get(f"/v2beta1/{kind}", params={"page_token": token, "namespace": "team-a"}).status_code == 404
        assert versions["next_page_token"]
        page = api.get(f"/v2beta1/pipelines/{team_a['pl']}/versions",
                       params={"page_token": versions["next_page_token"]})
        assert page.status_code == 404 and team_a["ver"] not in page.text
        for kind in ("pipelineruns", "profiles"):
            listed = api.get(f"/flowdeck/v1/{kind}").text
            assert "team-a" not in listed and "alpha-pr" not in listed


def test_a_cluster_admin_reads_every_profile(server, team_a) -> None:
    with client(server, "root") as api:
        assert ok(api.get(f"/v2beta1/runs/{team_a['run']}"))["experiment_id"] == team_a["exp"]
        assert team_a["exp"] in api.get("/v2beta1/experiments", params={"page_size": 200}).text
        assert ok(api.get("/v2beta1/pipelines", params={"namespace": "team-a"}))["total_size"] == 2


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
    home = httpx.get(plane.url + "/", headers={"Accept": "text/html"})  # a browser: off to sign in
    assert home.status_code == 303 and home.headers["location"] == "/login?next=%2F" and "a-run" not in home.text
    assert httpx.get(plane.url + "/static/dashboard.js").status_code == 200


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


def test_artifact_files_outside_readable_runs_are_shown_to_cluster_admins_only(server, team_a) -> None:
    """An importer may name any URI: a file elsewhere on the machine (the store's own database, say) or the
    artifact root itself (every profile's outputs). The dashboard serves such a file to full cluster admins
    only, never to a profile's own members."""
    plane, _ = server
    root_artifact = uuid.uuid4().hex
    store = open_store(f"sqlite:///{plane.home / 'flowdeck.db'}")
    try:
        with store.engine.begin() as conn:
            conn.execute(ArtifactRow.__table__.insert().values(
                id=root_artifact, run_id=team_a["run"], name="everything", uri=str(plane.home / "artifacts"),
                schema_title="system.Dataset", metadata={}, created_at=utcnow()))
    finally:
        store.close()
    with client(server, "a-owner", apis=False) as owner:
        for artifact in (team_a["art"], root_artifact):
            refused = owner.get(f"/artifacts/{artifact}/content")
            assert refused.status_code == 404 and "outside the runs you may read" in refused.text
            page = owner.get(f"/artifacts/{artifact}")
            assert page.status_code == 200 and "outside the runs you may read" in page.text
    with client(server, "root", apis=False) as root:
        assert root.get(f"/artifacts/{team_a['art']}/content").text == "<p>team-a's report</p>"
        assert "outside the runs" not in root.get(f"/artifacts/{root_artifact}").text
