"""Runs over the KFP API, driven by the real kfp.Client: create, watch, list, terminate, retry, archive, delete."""

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import kfp
import pytest
from kfp import dsl
from kfp_server_api.exceptions import ApiException

from flowdeck.config import Settings
from flowdeck.pipelines.api import run_pipeline
from flowdeck.store import open_store
from helpers import ControlPlane, wait_for
from sample_pipelines import adder, flaky, sleeper

FINAL = ("SUCCEEDED", "FAILED", "CANCELED")


@dsl.component
def make_data(out: dsl.Output[dsl.Dataset]):
    with open(out.path, "w") as handle:
        handle.write("rows")


@dsl.component
def read_data(data: dsl.Input[dsl.Dataset]) -> str:
    with open(data.path) as handle:
        return handle.read()


@dsl.pipeline
def inner():
    read_data(data=make_data().outputs["out"])


@dsl.pipeline
def outer():
    inner()


def finished(client: kfp.Client, run_id: str, states: tuple[str, ...] = FINAL, timeout: float = 60) -> Any:
    """The run once it reaches one of `states` (get_run polled every 0.1 s; wait_for_run_completion sleeps 5 s)."""
    assert wait_for(lambda: client.get_run(run_id).state in states, timeout=timeout, interval=0.1), \
        client.get_run(run_id).state
    return client.get_run(run_id)


def test_run_a_package_and_read_its_task_details(kfp_client: kfp.Client, package: Path) -> None:
    result = kfp_client.create_run_from_pipeline_package(str(package), arguments={"a": 3, "b": 4},
                                                         experiment_name="runs-package")
    run = finished(kfp_client, result.run_id)
    assert run.state == "SUCCEEDED"
    assert run.runtime_config.parameters == {"a": 3, "b": 4}
    assert run.display_name.startswith("adder.yaml ")
    assert run.created_at < run.finished_at
    assert [s.state for s in run.state_history] == ["PENDING", "RUNNING", "SUCCEEDED"]
    experiment = kfp_client.get_experiment(experiment_name="runs-package")
    assert run.experiment_id == experiment.experiment_id
    assert experiment.last_run_created_at == run.created_at

    tasks = run.run_details.task_details
    assert sorted(t.display_name for t in tasks) == ["add", "add-2"]
    for task in tasks:
        assert task.run_id == run.run_id and task.state == "SUCCEEDED"
        assert task.create_time <= task.start_time <= task.end_time
        assert task.parent_task_id is None


def test_times_have_millisecond_precision(kfp_client: kfp.Client, api: httpx.Client, kfp_home: Path,
                                          spec: dict) -> None:
    """Sub-second times keep their milliseconds on the wire (a fast task would otherwise last 0 s)."""
    run_id = api.post("/runs", json={"display_name": "precise", "pipeline_spec": spec}).json()["run_id"]
    run = finished(kfp_client, run_id)
    store = open_store(Settings(home=kfp_home).resolved_database_url)
    try:
        stored = store.get_run(run_id)
    finally:
        store.close()
    for received, kept in ((run.created_at, stored.created_at), (run.finished_at, stored.finished_at)):
        assert received == kept.replace(microsecond=kept.microsecond // 1000 * 1000)  # kfp.Client parses them
    raw = api.get(f"/runs/{run_id}").json()["created_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z", raw), raw


def test_task_details_show_nesting_and_artifacts(kfp_client: kfp.Client) -> None:
    result = kfp_client.create_run_from_pipeline_func(outer, experiment_name="runs-nested")
    run = finished(kfp_client, result.run_id)
    assert run.state == "SUCCEEDED", run.error
    tasks = {t.display_name: t for t in run.run_details.task_details}
    assert set(tasks) == {"inner", "make-data", "read-data"}
    dag = tasks["inner"]
    assert {c.task_id for c in dag.child_tasks} == {tasks["make-data"].task_id, tasks["read-data"].task_id}
    assert tasks["make-data"].parent_task_id == dag.task_id
    written = tasks["make-data"].outputs["out"].artifact_ids
    assert len(written) == 1
    assert tasks["read-data"].inputs["data"].artifact_ids == written


def test_run_an_uploaded_pipeline_version(kfp_client: kfp.Client, api: httpx.Client, package: Path) -> None:
    pipeline = kfp_client.upload_pipeline(str(package), pipeline_name="runs-version")
    version, = kfp_client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions
    experiment = kfp_client.create_experiment("runs-version")
    created = kfp_client.run_pipeline(experiment.experiment_id, "from a version", pipeline_id=pipeline.pipeline_id,
                                      version_id=version.pipeline_version_id, params={"a": 5})
    run = finished(kfp_client, created.run_id)
    assert run.state == "SUCCEEDED"
    assert run.pipeline_version_reference.pipeline_version_id == version.pipeline_version_id
    assert run.pipeline_spec is None  # one pipeline source (a oneof): the reference

    # naming only the pipeline runs its newest version
    latest = api.post("/runs", json={"display_name": "latest", "experiment_id": experiment.experiment_id,
                                     "pipeline_version_reference": {"pipeline_id": pipeline.pipeline_id}})
    assert latest.status_code == 200, latest.text
    reference = latest.json()["pipeline_version_reference"]
    assert reference == {"pipeline_id": pipeline.pipeline_id, "pipeline_version_id": version.pipeline_version_id}


def test_a_run_without_an_experiment_goes_to_default(kfp_client: kfp.Client, api: httpx.Client,
                                                     spec: dict) -> None:
    response = api.post("/runs", json={"display_name": "no experiment", "pipeline_spec": spec})
    assert response.status_code == 200, response.text
    default = kfp_client.get_experiment(experiment_name="Default")
    assert response.json()["experiment_id"] == default.experiment_id
    # the client's own flow finds (not duplicates) that experiment
    result = kfp_client.create_run_from_pipeline_func(adder, arguments={"a": 1})
    assert kfp_client.get_run(result.run_id).experiment_id == default.experiment_id


def test_list_runs_pages_newest_first_within_an_experiment(kfp_client: kfp.Client, api: httpx.Client,
                                                           spec: dict) -> None:
    experiment = kfp_client.create_experiment("runs-list")
    ids = []
    for i in range(5):
        response = api.post("/runs", json={"display_name": f"list {i}", "experiment_id": experiment.experiment_id,
                                           "pipeline_spec": spec, "runtime_config": {"parameters": {"a": i}}})
        ids.append(response.json()["run_id"])
    seen, token = [], ""
    while True:
        page = kfp_client.list_runs(experiment_id=experiment.experiment_id, page_size=2, page_token=token,
                                    sort_by="created_at desc")
        assert page.total_size == 5 and len(page.runs) <= 2
        assert all(r.pipeline_spec is None and r.run_details is None for r in page.runs)  # lists stay small
        seen += [r.run_id for r in page.runs]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids[::-1]

    named = json.dumps({"predicates": [{"operation": "IN", "key": "display_name",
                                        "string_values": {"values": ["list 1", "list 3"]}}]})
    found = kfp_client.list_runs(experiment_id=experiment.experiment_id, filter=named, sort_by="display_name")
    assert [r.display_name for r in found.runs] == ["list 1", "list 3"]

    for run_id in ids:
        finished(kfp_client, run_id)
    succeeded = json.dumps({"predicates": [{"operation": 1, "key": "state", "stringValue": "SUCCEEDED"}]})
    assert kfp_client.list_runs(experiment_id=experiment.experiment_id, filter=succeeded).total_size == 5


def test_runs_of_flowdeck_run_are_listed_too(kfp_client: kfp.Client, kfp_home: Path, spec: dict) -> None:
    embedded = run_pipeline(spec, {"a": 2, "b": 2}, settings=Settings(home=kfp_home))
    assert embedded["state"] == "SUCCEEDED"
    newest = kfp_client.list_runs(sort_by="created_at desc", page_size=1).runs[0]
    assert newest.run_id == embedded["run_id"]
    assert newest.experiment_id is None and newest.state == "SUCCEEDED"
    run = kfp_client.get_run(embedded["run_id"])
    assert run.runtime_config.parameters == {"a": 2, "b": 2}
    assert len(run.run_details.task_details) == 2


def test_kfp_client_in_namespace_default_sees_the_single_user_namespace(kfp_server: ControlPlane, kfp_home: Path,
                                                                        spec: dict) -> None:
    """"default" is the store's "": what `flowdeck run` and resources make is what namespace default shows."""
    client = kfp.Client(host=kfp_server.url, namespace="default")
    embedded = run_pipeline(spec, {"a": 1, "b": 1}, settings=Settings(home=kfp_home))
    newest = client.list_runs(page_size=1, sort_by="created_at desc").runs  # the client sends namespace=default
    assert [r.run_id for r in newest] == [embedded["run_id"]]
    experiment = client.create_experiment("runs-in-default")  # the client sends namespace "default"
    assert experiment.namespace is None  # stored as "", which KFP leaves out
    team = client.create_experiment("runs-in-team", namespace="team")
    assert team.namespace == "team"
    listed = [e.experiment_id for e in client.list_experiments(page_size=200).experiments]  # namespace=default
    assert experiment.experiment_id in listed and team.experiment_id not in listed


def _token(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def test_page_tokens_are_signed_and_anything_else_is_one_400(api: httpx.Client, spec: dict) -> None:
    for i in range(3):
        assert api.post("/runs", json={"display_name": f"token {i}", "pipeline_spec": spec}).status_code == 200
    for name in ("token-a", "token-b"):
        api.post("/experiments", json={"display_name": name})
    token = api.get("/runs", params={"page_size": 1}).json()["next_page_token"]
    assert api.get("/runs", params={"page_size": 1, "page_token": token}).status_code == 200
    payload, mac = token.split(".")
    crafted = [
        _token({"r": "runs", "p": [["state", "EQUALS"]], "s": "created_at", "d": False, "a": [None, "x"]}),
        _token({"r": "runs", "p": [5], "s": "created_at", "d": False, "a": [None, "x"]}),
        _token({"r": "runs", "p": [], "s": "created_at", "d": False, "a": [None, "x"]}),  # well formed, unsigned
        f"{_token({'r': 'runs', 'p': [], 's': 'pipeline_spec', 'd': False, 'a': [None, 'x']})}.{mac}",
        f"{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{mac}",  # tampered
        f"{payload}.",
        api.get("/experiments", params={"page_size": 1}).json()["next_page_token"],  # another list's
    ]
    for bad in crafted:
        response = api.get("/runs", params={"page_token": bad})
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["message"].startswith("invalid page token"), bad


def test_terminate_a_long_run_then_delete_it(kfp_client: kfp.Client) -> None:
    result = kfp_client.create_run_from_pipeline_func(sleeper, arguments={"seconds": 60},
                                                      experiment_name="runs-terminate")

    def napping() -> bool:
        details = kfp_client.get_run(result.run_id).run_details
        return bool(details and any(t.state == "RUNNING" for t in details.task_details or []))

    assert wait_for(napping, timeout=30, interval=0.1)
    with pytest.raises(ApiException) as error:
        kfp_client.delete_run(result.run_id)
    assert error.value.status == 400 and "terminate it" in error.value.body

    started = time.monotonic()
    kfp_client.terminate_run(result.run_id)
    run = finished(kfp_client, result.run_id, timeout=30)
    assert run.state == "CANCELED" and time.monotonic() - started < 20
    assert run.error.message

    kfp_client.delete_run(result.run_id)
    with pytest.raises(ApiException) as error:
        kfp_client.get_run(result.run_id)
    assert error.value.status == 404


def test_retry_a_failed_run(kfp_client: kfp.Client, tmp_path: Path) -> None:
    result = kfp_client.create_run_from_pipeline_func(flaky, arguments={"marker": str(tmp_path / "marker")},
                                                      experiment_name="runs-retry")
    failed = finished(kfp_client, result.run_id)
    assert failed.state == "FAILED" and failed.error.message
    assert failed.run_details.task_details[0].state == "FAILED"
    kfp_client.runs.run_service_retry_run(result.run_id)
    assert finished(kfp_client, result.run_id).state == "SUCCEEDED"
    with pytest.raises(ApiException) as error:  # only FAILED or CANCELED runs can be retried
        kfp_client.runs.run_service_retry_run(result.run_id)
    assert error.value.status == 400


def test_archive_and_unarchive_a_run(kfp_client: kfp.Client, api: httpx.Client, spec: dict) -> None:
    run_id = api.post("/runs", json={"display_name": "archive me", "pipeline_spec": spec}).json()["run_id"]
    kfp_client.archive_run(run_id)
    assert kfp_client.get_run(run_id).storage_state == "ARCHIVED"
    archived = json.dumps({"predicates": [{"operation": 1, "key": "storage_state", "stringValue": "ARCHIVED"}]})
    assert run_id in [r.run_id for r in kfp_client.list_runs(filter=archived, page_size=100).runs]
    kfp_client.unarchive_run(run_id)
    assert kfp_client.get_run(run_id).storage_state == "AVAILABLE"


@pytest.mark.parametrize(("body", "status", "expected"), [
    ({"display_name": "x"}, 400, "exactly one pipeline source"),
    ({"display_name": "x", "pipeline_spec": "SPEC", "pipeline_version_reference": {"pipeline_id": "p"}}, 400,
     "got pipeline_spec and pipeline_version_reference"),
    ({"display_name": "x", "pipeline_spec": "SPEC", "runtime_config": {"parameters": {"c": 1}}}, 400,
     "unknown parameter 'c'"),
    ({"display_name": "x", "pipeline_spec": "SPEC", "runtime_config": {"parameters": {"a": "one"}}}, 400, "'a'"),
    ({"display_name": "x", "pipeline_spec": {"pipelineInfo": {"name": "p"}}}, 400, "root"),
    ({"display_name": "x", "pipeline_spec": "SPEC", "experiment_id": "nope"}, 404, "experiment 'nope' not found"),
    ({"display_name": "x", "pipeline_version_reference": {"pipeline_id": "nope"}}, 404, "pipeline 'nope'"),
    ({"display_name": "x", "pipeline_spec": "SPEC", "runtimeConfig": {"parameters": {}, "extra": 1}}, 400,
     "extra"),
    ({"display_name": "x", "pipeline_spec": "SPEC", "priority": "high"}, 400, "priority"),
    ({"display_name": "x", "pipeline_spec": {"pipeline_spec": "SPEC", "platform_spec": 7}}, 400,
     "platform_spec must be a mapping, not a number"),
    ({"display_name": "x", "pipeline_spec": {"pipeline_spec": "SPEC", "platform_spec": {"platforms": []}}}, 400,
     "platform_spec.platforms must be a mapping, not a list"),
])
def test_bad_run_requests(api: httpx.Client, spec: dict, body: dict, status: int, expected: str) -> None:
    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return spec if value == "SPEC" else value

    body = fill(body)
    response = api.post("/runs", json=body)
    assert response.status_code == status, response.text
    assert expected in response.json()["message"]


def test_unknown_runs_are_404(api: httpx.Client) -> None:
    for method, path in [("GET", "/runs/nope"), ("DELETE", "/runs/nope"), ("POST", "/runs/nope:terminate"),
                         ("POST", "/runs/nope:retry"), ("POST", "/runs/nope:archive"),
                         ("POST", "/runs/nope:unarchive")]:
        response = api.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == 5
