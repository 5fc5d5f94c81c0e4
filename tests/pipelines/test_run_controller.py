"""The run controller of the control plane: executing, terminating, retrying and resuming runs."""

from pathlib import Path
from typing import Any

import pytest
from kfp import dsl

from flowdeck.config import Settings
from flowdeck.pipelines.controller import RunController, RunStateError
from flowdeck.pipelines.errors import PipelineError
from flowdeck.store import Store, open_store
from helpers import spec, wait_for
from sample_pipelines import count, gated, sleeper


@dsl.component
def fail_once(marker_dir: str, value: str) -> str:
    import os

    marker = os.path.join(marker_dir, "failed-once")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise SystemExit("first attempt fails on purpose")
    return value + "!"


@dsl.pipeline
def flaky(marker_dir: str):
    first = count(marker_dir=marker_dir, name="first")
    fail_once(marker_dir=marker_dir, value=first.output)


@pytest.fixture
def store(settings: Settings) -> Store:
    opened = open_store(settings.resolved_database_url)
    yield opened
    opened.close()


def wait_state(store: Store, run_id: str, states: set[str], timeout: float = 60) -> str:
    assert wait_for(lambda: store.get_run(run_id).state in states, timeout=timeout, interval=0.05), \
        f"run stayed {store.get_run(run_id).state}"
    return store.get_run(run_id).state


def states_by_name(store: Store, run_id: str) -> dict[str, Any]:
    return {task.name: task for task in store.list_tasks(run_id)}


def test_created_run_executes_with_its_parameters(controller: RunController, store: Store, tmp_path: Path) -> None:
    (tmp_path / "failed-once").touch()  # fail_once succeeds at once
    run_id = controller.create_run(pipeline_spec=spec(flaky), parameters={"marker_dir": str(tmp_path)},
                                   display_name="api run", namespace="", experiment_id="exp-1")
    assert wait_state(store, run_id, {"SUCCEEDED", "FAILED"}) == "SUCCEEDED"
    run = store.get_run(run_id)
    assert (run.display_name, run.origin, run.experiment_id) == ("api run", "server", "exp-1")
    assert states_by_name(store, run_id)["fail-once"].outputs["parameters"]["Output"] == "first!"


def test_invalid_arguments_are_refused_before_anything_is_recorded(controller: RunController, store: Store) -> None:
    with pytest.raises(PipelineError, match="nope"):
        controller.create_run(pipeline_spec=spec(flaky), parameters={"marker_dir": "/tmp", "nope": 1})
    with pytest.raises(PipelineError):
        controller.create_run(pipeline_spec={"pipelineInfo": {"name": "x"}})
    assert store.list_runs() == []


def test_terminate_cancels_a_running_run(controller: RunController, store: Store) -> None:
    run_id = controller.create_run(pipeline_spec=spec(sleeper))
    assert wait_for(lambda: any(t.state == "RUNNING" for t in store.list_tasks(run_id)), timeout=30)
    controller.terminate(run_id)
    assert wait_state(store, run_id, {"CANCELED", "FAILED", "SUCCEEDED"}, timeout=15) == "CANCELED"
    assert "terminated" in store.get_run(run_id).error
    assert [t.state for t in store.list_tasks(run_id)] == ["CANCELED"]
    assert not controller.is_active(run_id)
    controller.terminate(run_id)  # a finished run: nothing changes
    assert store.get_run(run_id).state == "CANCELED"


def test_terminate_cancels_a_queued_run_before_it_starts(store: Store, settings: Settings) -> None:
    controller = RunController(store, settings.model_copy(update={"max_concurrent_runs": 1}))
    controller.start()
    try:
        busy = controller.create_run(pipeline_spec=spec(sleeper))
        queued = controller.create_run(pipeline_spec=spec(sleeper), parameters={"seconds": 0})
        assert store.get_run(queued).state == "PENDING"
        controller.terminate(queued)
        assert store.get_run(queued).state == "CANCELED"
        controller.terminate(busy)
        wait_state(store, busy, {"CANCELED"})
        assert store.list_tasks(queued) == []  # it never ran
    finally:
        controller.stop()


def test_retry_of_a_failed_run_succeeds_and_reuses_succeeded_tasks(
        controller: RunController, store: Store, tmp_path: Path) -> None:
    run_id = controller.create_run(pipeline_spec=spec(flaky), parameters={"marker_dir": str(tmp_path)})
    assert wait_state(store, run_id, {"SUCCEEDED", "FAILED"}) == "FAILED"
    before = states_by_name(store, run_id)
    controller.retry(run_id)
    assert wait_state(store, run_id, {"SUCCEEDED", "FAILED", "CANCELED"}) == "SUCCEEDED"
    after = states_by_name(store, run_id)
    assert (tmp_path / "first.count").read_text() == "x"  # the task that had succeeded did not run again
    assert after["count"].id == before["count"].id and after["count"].attempts == 1
    assert after["fail-once"].id == before["fail-once"].id
    assert after["fail-once"].attempts == 2 and after["fail-once"].state == "SUCCEEDED"
    assert store.get_run(run_id).error is None
    with pytest.raises(RunStateError, match="only FAILED or CANCELED"):
        controller.retry(run_id)


def test_a_stopped_controller_resumes_its_runs_without_rerunning_succeeded_tasks(
        store: Store, settings: Settings, tmp_path: Path) -> None:
    first = RunController(store, settings)
    first.start()
    run_id = first.create_run(pipeline_spec=spec(gated), parameters={"marker_dir": str(tmp_path)})
    assert wait_for(lambda: states_by_name(store, run_id).get("wait-for-go") is not None
                    and states_by_name(store, run_id)["wait-for-go"].state == "RUNNING", timeout=30)
    first.stop()
    assert store.get_run(run_id).state == "RUNNING"  # suspended, not ended
    (tmp_path / "go").touch()
    second = RunController(store, settings)
    second.start()
    try:
        assert wait_state(store, run_id, {"SUCCEEDED", "FAILED", "CANCELED"}) == "SUCCEEDED"
    finally:
        second.stop()
    assert (tmp_path / "first.count").read_text() == "x"  # ran once, before the stop
    assert (tmp_path / "last.count").read_text() == "x"
    tasks = states_by_name(store, run_id)
    assert {t.state for t in tasks.values()} == {"SUCCEEDED"}
    assert tasks["wait-for-go"].attempts == 2


def test_the_execution_cache_is_shared_within_a_profile_never_across(
        controller: RunController, store: Store, tmp_path: Path) -> None:
    """A run reuses an identical task of its own profile's earlier run, never one of another profile's (whose
    inputs, credentials and logs it may not see)."""
    def finished(namespace: str) -> dict[str, Any]:
        run_id = controller.create_run(pipeline_spec=spec(flaky), parameters={"marker_dir": str(tmp_path)},
                                       namespace=namespace)
        assert wait_state(store, run_id, {"SUCCEEDED", "FAILED"}) == "SUCCEEDED"
        return states_by_name(store, run_id)

    (tmp_path / "failed-once").touch()  # fail_once succeeds at once
    first = finished("team-a")
    assert not first["count"].cached
    assert finished("team-a")["count"].cached  # the same profile: served from the cache
    assert not finished("team-b")["count"].cached  # another profile: runs again
    assert (tmp_path / "first.count").read_text().count("x") == 2
