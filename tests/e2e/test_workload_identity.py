"""Workload identity: pipeline code calls the control plane as its run, with a token it finds in a file.

A multi-user `flowdeck up` (user alice, an edit member of team-a) runs a pipeline in team-a whose
component builds `kfp.Client(credentials=ServiceAccountTokenVolumeCredentials())`, as code in a
Kubeflow pod does: it sees team-a's runs (its own among them) and may write there, sees nothing of
team-b, and its token dies with the run and never shows up in a log, the server's output or the API.
In single-user mode a run gets no token at all.
"""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kfp
import pytest
from kfp import dsl

from flowdeck.profiles import tokens
from flowdeck.store import open_store
from flowdeck.store.identity import IdentityStore
from flowdeck.store.models import ApiTokenRow, BindingRow
from helpers import ControlPlane, start_control_plane, wait_for


@dsl.component
def act_as_the_run(out_dir: str, fail_first: bool) -> str:
    """Calls the API with the run's token; reports what it saw to `out_dir` (and keeps the token, as a thief would)."""
    import json
    import os
    import stat

    import kfp.dsl.component_factory  # noqa: F401 - first: kfp 2.15+ has an import cycle under _KFP_RUNTIME (#12522)
    from kfp.client import Client, ServiceAccountTokenVolumeCredentials
    from kfp_server_api.exceptions import ApiException

    path = os.environ.get("KF_PIPELINES_SA_TOKEN_PATH")
    attempt = len([name for name in os.listdir(out_dir) if name.startswith("report")])
    report = {"path": path, "flowdeck_path": os.environ.get("FLOWDECK_TOKEN_PATH")}
    if path:
        with open(path) as handle:
            token = handle.read()
        with open(os.path.join(out_dir, f"token-{attempt}"), "w") as out:
            out.write(token)
        report["mode"] = stat.S_IMODE(os.stat(path).st_mode)
        report["dir_mode"] = stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)
        report["in_env"] = any(token in value for value in os.environ.values())
        client = Client(host=os.environ["KF_PIPELINES_ENDPOINT"], credentials=ServiceAccountTokenVolumeCredentials())
        report["team_a"] = [run.run_id for run in client.list_runs(namespace="team-a", page_size=100).runs or []]
        report["experiment"] = client.create_experiment(f"made-by-run-{attempt}", namespace="team-a").namespace
        for name, call in (("team_b", lambda: client.list_runs(namespace="team-b").runs or []),
                           ("team_b_write", lambda: client.create_experiment("intruder", namespace="team-b"))):
            try:
                report[name] = repr(call())
            except ApiException as exc:
                report[name] = exc.status
    with open(os.path.join(out_dir, f"report-{attempt}.json"), "w") as out:
        json.dump(report, out)
    if fail_first and attempt == 0:
        raise SystemExit("failing the first attempt on purpose")
    return "ok"


@dsl.pipeline
def identity_pipeline(out_dir: str, fail_first: bool = False):
    act_as_the_run(out_dir=out_dir, fail_first=fail_first)


def add_alice(home: Path) -> str:
    """User alice (edit in team-a) with an API token, written to the store before the server starts."""
    store = open_store(f"sqlite:///{home / 'flowdeck.db'}")
    try:
        IdentityStore(store.engine).create_user("alice")
        with store.engine.begin() as conn:
            conn.execute(BindingRow.__table__.insert().values(profile="team-a", principal="user:alice", role="edit"))
        token = tokens.mint()
        IdentityStore(store.engine).add_token(id=uuid.uuid4().hex, lookup=tokens.lookup_key(token),
                                              digest=tokens.digest(token), owner="user:alice",
                                              scopes=["read", "write"])
    finally:
        store.close()
    return token


@pytest.fixture
def team_server(tmp_path: Path) -> Iterator[tuple[ControlPlane, Path, str]]:
    home = tmp_path / "home"
    home.mkdir()
    token = add_alice(home)
    server = start_control_plane(home)
    yield server, home, token
    server.stop()


def finished(client: kfp.Client, run_id: str) -> str:
    done = ("SUCCEEDED", "FAILED", "CANCELED")
    assert wait_for(lambda: client.get_run(run_id).state in done, timeout=90, interval=0.2)
    return client.get_run(run_id).state


def reports(out_dir: Path) -> list[dict[str, Any]]:
    return [json.loads((out_dir / f"report-{n}.json").read_text())
            for n in range(len(list(out_dir.glob("report-*.json"))))]


def run_tokens(home: Path, run_id: str) -> list[ApiTokenRow]:
    store = open_store(f"sqlite:///{home / 'flowdeck.db'}")
    try:
        return [row for row in IdentityStore(store.engine).list_tokens(f"run:{run_id}")]
    finally:
        store.close()


def test_a_run_calls_the_api_as_itself_within_its_profile(team_server: tuple[ControlPlane, Path, str],
                                                          tmp_path: Path) -> None:
    server, home, alice = team_server
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    client = kfp.Client(host=server.url, existing_token=alice)
    run = client.create_run_from_pipeline_func(identity_pipeline, arguments={"out_dir": str(out_dir)},
                                               namespace="team-a", experiment_name="identity")
    assert finished(client, run.run_id) == "SUCCEEDED", client.get_run(run.run_id).error
    [report] = reports(out_dir)
    assert report["path"] == report["flowdeck_path"] == str(home / "run-tokens" / run.run_id)
    assert report["mode"] == 0o600 and report["dir_mode"] == 0o700 and report["in_env"] is False
    assert run.run_id in report["team_a"]  # it sees its own run (and may write in its profile)
    assert report["experiment"] == "team-a"
    assert report["team_b"] in (404, "[]") and report["team_b_write"] == 404  # team-b: nothing, not even a 403
    assert not Path(report["path"]).exists()  # the file went with the run

    stolen = (out_dir / "token-0").read_text()
    [row] = run_tokens(home, run.run_id)
    assert row.revoked_at is not None and row.profile == "team-a" and row.scopes == ["read", "write"]
    refused = httpx.get(f"{server.url}/apis/v2beta1/runs", params={"namespace": "team-a"},
                        headers={"Authorization": f"Bearer {stolen}"})
    assert refused.status_code == 401 and "revoked" in refused.text

    # the token never shows up in the API, the server's output, or any file the control plane keeps
    shown = httpx.get(f"{server.url}/apis/v2beta1/runs/{run.run_id}", headers={"Authorization": f"Bearer {alice}"})
    assert shown.status_code == 200 and stolen not in shown.text
    logs = httpx.get(f"{server.url}/apis/v2beta1/runs", params={"namespace": "team-a"},
                     headers={"Authorization": f"Bearer {alice}"})
    assert stolen not in logs.text
    server.stop()
    assert stolen not in "\n".join(server.output) and tokens.PREFIX not in "\n".join(server.output)
    for path in home.rglob("*"):
        if path.is_file():
            assert stolen.encode() not in path.read_bytes(), path


def test_a_retried_run_gets_a_fresh_token(team_server: tuple[ControlPlane, Path, str], tmp_path: Path) -> None:
    server, home, alice = team_server
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    client = kfp.Client(host=server.url, existing_token=alice)
    run = client.create_run_from_pipeline_func(identity_pipeline, namespace="team-a", experiment_name="identity",
                                               arguments={"out_dir": str(out_dir), "fail_first": True})
    assert finished(client, run.run_id) == "FAILED"
    client._run_api.run_service_retry_run(run.run_id)  # kfp.Client has no retry method; this is its API
    assert finished(client, run.run_id) == "SUCCEEDED"
    first, second = (out_dir / "token-0").read_text(), (out_dir / "token-1").read_text()
    assert first != second
    rows = run_tokens(home, run.run_id)
    assert len(rows) == 2 and all(row.revoked_at is not None for row in rows)
    assert all(run.run_id in report["team_a"] for report in reports(out_dir))


def test_single_user_runs_get_no_token(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    server = start_control_plane(tmp_path / "home")
    try:
        client = kfp.Client(host=server.url)
        run = client.create_run_from_pipeline_func(identity_pipeline, arguments={"out_dir": str(out_dir)})
        assert finished(client, run.run_id) == "SUCCEEDED"
    finally:
        server.stop()
    [report] = reports(out_dir)
    assert report == {"path": None, "flowdeck_path": None}
    assert not (tmp_path / "home" / "run-tokens").exists()

