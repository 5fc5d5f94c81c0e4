"""Issue 3, acceptance 1: the real `kfp.Client` drives `flowdeck up` end to end.

One control plane serves the whole module; every step goes through kfp.Client (or, where the client
has no method, through the kfp_server_api calls it wraps), as a user's notebook or CI job would.
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import kfp
import pytest
from kfp import compiler

from helpers import ControlPlane, start_control_plane, wait_for
from sample_pipelines import adder, flaky, sleeper


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    started = start_control_plane(tmp_path_factory.mktemp("kfp-e2e") / "home")
    yield started
    assert started.stop() == 0, "\n".join(started.output)


@pytest.fixture(scope="module")
def client(server: ControlPlane) -> kfp.Client:
    return kfp.Client(host=server.url)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("packages") / "adder.yaml"
    compiler.Compiler().compile(adder, str(path))
    return path


def finished(client: kfp.Client, run_id: str, states: tuple[str, ...] = ("SUCCEEDED", "FAILED", "CANCELED"),
             timeout: float = 60) -> str:
    """Poll get_run quickly (wait_for_run_completion sleeps 5 s between polls) until a final state."""
    assert wait_for(lambda: client.get_run(run_id).state in states, timeout=timeout, interval=0.1), \
        client.get_run(run_id).state
    return client.get_run(run_id).state


def test_upload_pipeline_and_version_then_run_the_version(client: kfp.Client, package: Path) -> None:
    experiment = client.create_experiment("uploads", description="uploaded pipelines")
    pipeline = client.upload_pipeline(str(package), pipeline_name="adder-e2e", description="adds")
    version = client.upload_pipeline_version(str(package), pipeline_version_name="v2",
                                             pipeline_name="adder-e2e")
    assert version.pipeline_id == pipeline.pipeline_id
    assert client.get_pipeline_id("adder-e2e") == pipeline.pipeline_id
    names = {v.display_name for v in client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions}
    assert "v2" in names and len(names) == 2
    run = client.run_pipeline(experiment_id=experiment.experiment_id, job_name="from version",
                              pipeline_id=pipeline.pipeline_id, version_id=version.pipeline_version_id,
                              params={"a": 5, "b": 6})
    assert finished(client, run.run_id) == "SUCCEEDED"
    fetched = client.get_run(run.run_id)
    assert fetched.experiment_id == experiment.experiment_id
    assert fetched.pipeline_version_reference.pipeline_version_id == version.pipeline_version_id
    assert fetched.runtime_config.parameters == {"a": 5, "b": 6}


def test_create_run_from_func_and_package_and_wait_for_completion(client: kfp.Client, package: Path) -> None:
    from_func = client.create_run_from_pipeline_func(adder, arguments={"a": 3, "b": 4}, experiment_name="e2e")
    from_package = client.create_run_from_pipeline_package(str(package), arguments={"a": 7},
                                                           experiment_name="e2e", run_name="packaged")
    done = client.wait_for_run_completion(from_func.run_id, timeout=60)
    assert done.state == "SUCCEEDED"
    tasks = {t.display_name: t for t in done.run_details.task_details}
    assert {"add", "add-2"} <= set(tasks)
    assert all(t.state == "SUCCEEDED" for t in tasks.values())
    assert all(t.start_time and t.end_time for t in tasks.values())
    assert finished(client, from_package.run_id) == "SUCCEEDED"
    packaged = client.get_run(from_package.run_id)
    assert packaged.display_name == "packaged"
    assert packaged.runtime_config.parameters == {"a": 7}
    experiment = client.get_experiment(experiment_name="e2e")
    assert packaged.experiment_id == experiment.experiment_id


def test_list_runs_pages_sorted_newest_first_within_an_experiment(client: kfp.Client) -> None:
    experiment = client.create_experiment("paging")
    created = []
    for index in range(5):
        created.append(client.create_run_from_pipeline_func(
            adder, arguments={"a": index}, experiment_id=experiment.experiment_id, run_name=f"page-{index}").run_id)
        time.sleep(0.01)  # distinct creation times
    client.create_run_from_pipeline_func(adder, experiment_name="elsewhere")  # must not be listed
    seen, token, pages = [], "", []
    while True:
        page = client.list_runs(experiment_id=experiment.experiment_id, page_size=2, page_token=token,
                                sort_by="created_at desc")
        pages.append(len(page.runs))
        seen.extend(run.run_id for run in page.runs)
        assert page.total_size == 5
        token = page.next_page_token
        if not token:
            break
    assert pages == [2, 2, 1]
    assert seen == list(reversed(created))
    by_name = client.list_runs(experiment_id=experiment.experiment_id, filter=json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "string_value": "page-3"}]}))
    assert [run.run_id for run in by_name.runs] == [created[3]]
    for run_id in created:
        finished(client, run_id)


def test_a_long_run_is_terminated_and_ends_canceled(client: kfp.Client) -> None:
    run = client.create_run_from_pipeline_func(sleeper, experiment_name="e2e")
    assert wait_for(lambda: client.get_run(run.run_id).state == "RUNNING", timeout=30, interval=0.1)
    client.terminate_run(run.run_id)
    assert finished(client, run.run_id, timeout=20) == "CANCELED"


def test_a_failed_run_is_retried_and_then_succeeds(client: kfp.Client, tmp_path: Path) -> None:
    run = client.create_run_from_pipeline_func(flaky, arguments={"marker": str(tmp_path / "marker")},
                                               experiment_name="e2e", enable_caching=False)
    assert finished(client, run.run_id) == "FAILED"
    assert "no marker yet" in client.get_run(run.run_id).error.message
    client._run_api.run_service_retry_run(run.run_id)  # kfp.Client has no retry method; this is its API
    assert finished(client, run.run_id) == "SUCCEEDED"


def test_a_recurring_run_fires_every_second_until_disabled(client: kfp.Client, package: Path) -> None:
    experiment = client.create_experiment("schedules")
    recurring = client.create_recurring_run(
        experiment_id=experiment.experiment_id, job_name="every second", cron_expression="*/1 * * * * *",
        pipeline_package_path=str(package), params={"a": 1}, max_concurrency=10)

    def fired() -> list:
        runs = client.list_runs(experiment_id=experiment.experiment_id, page_size=100).runs or []
        return [run for run in runs if run.recurring_run_id == recurring.recurring_run_id]

    assert wait_for(lambda: len(fired()) >= 2, timeout=20, interval=0.2)
    client.disable_recurring_run(recurring.recurring_run_id)
    assert client.get_recurring_run(recurring.recurring_run_id).status == "DISABLED"
    count = len(fired())  # nothing fires once disable has returned, not even a firing that was under way
    time.sleep(2.5)
    assert len(fired()) == count
    for run in fired():
        finished(client, run.run_id)
