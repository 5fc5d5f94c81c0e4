"""A run's tasks pass their profile's quota: over-quota tasks wait (saying why), impossible ones fail."""

from pathlib import Path

import pytest
from kfp import dsl

from flowdeck.config import Settings
from flowdeck.pipelines.controller import RunController
from flowdeck.store import ResourceRow, Store, open_store
from helpers import spec, wait_for


@dsl.component
def busy(marker_dir: str, name: str):
    import os
    import time

    open(os.path.join(marker_dir, name + ".started"), "w").close()
    time.sleep(1.0)


@dsl.pipeline
def two_one_cpu_tasks(marker_dir: str):
    busy(marker_dir=marker_dir, name="a").set_cpu_request("1")
    busy(marker_dir=marker_dir, name="b").set_cpu_request("1")


@dsl.pipeline
def too_big(marker_dir: str):
    busy(marker_dir=marker_dir, name="big").set_cpu_request("2")


@dsl.pipeline
def small_memory_limit(marker_dir: str):
    busy(marker_dir=marker_dir, name="small").set_memory_limit("512K")


@pytest.fixture
def store(settings: Settings) -> Store:
    opened = open_store(settings.resolved_database_url)
    with opened.engine.begin() as conn:
        conn.execute(ResourceRow.__table__.insert(), [{
            "uid": "profile-team-a", "api_version": "kubeflow.org/v1", "kind": "Profile", "namespace": "",
            "name": "team-a", "labels": {}, "annotations": {}, "status": {}, "generation": 1,
            "resource_version": 1,
            "spec": {"owner": {"kind": "User", "name": "ada"}, "resourceQuotaSpec": {"hard": {"cpu": "1"}}},
        }])
    yield opened
    opened.close()


def test_two_one_cpu_tasks_in_a_one_cpu_profile_run_one_after_the_other(
        controller: RunController, store: Store, tmp_path: Path) -> None:
    run_id = controller.create_run(pipeline_spec=spec(two_one_cpu_tasks), namespace="team-a",
                                   parameters={"marker_dir": str(tmp_path)})
    reasons: set[str] = set()

    def finished() -> bool:
        tasks = store.list_tasks(run_id)
        reasons.update(t.error for t in tasks if t.state == "PENDING" and t.error)
        return store.get_run(run_id).state in ("SUCCEEDED", "FAILED")

    assert wait_for(finished, timeout=60, interval=0.05)
    assert store.get_run(run_id).state == "SUCCEEDED"
    first, second = sorted(store.list_tasks(run_id), key=lambda t: t.started_at)
    assert second.started_at >= first.finished_at  # never both at once
    assert reasons == {"waiting for quota: profile team-a allows 1 CPU and 1 CPU are in use"}
    assert {t.error for t in store.list_tasks(run_id)} == {None}  # the reason goes once the task starts


def test_the_same_pipeline_elsewhere_is_not_limited(controller: RunController, store: Store, tmp_path: Path) -> None:
    run_id = controller.create_run(pipeline_spec=spec(two_one_cpu_tasks), parameters={"marker_dir": str(tmp_path)})
    assert wait_for(lambda: store.get_run(run_id).state in ("SUCCEEDED", "FAILED"), timeout=60)
    first, second = sorted(store.list_tasks(run_id), key=lambda t: t.started_at)
    assert second.started_at < first.finished_at  # side by side


def test_a_task_that_can_never_fit_fails_saying_why(controller: RunController, store: Store, tmp_path: Path) -> None:
    run_id = controller.create_run(pipeline_spec=spec(too_big), namespace="team-a",
                                   parameters={"marker_dir": str(tmp_path)})
    assert wait_for(lambda: store.get_run(run_id).state in ("SUCCEEDED", "FAILED"), timeout=60)
    assert store.get_run(run_id).state == "FAILED"
    (task,) = store.list_tasks(run_id)
    assert task.error == "cannot run: it asks for 2 CPU and profile team-a allows 1 CPU in all"
    assert not (tmp_path / "big.started").exists()


def test_any_kubernetes_quantity_kfp_accepts_is_read(controller: RunController, store: Store, tmp_path: Path) -> None:
    run_id = controller.create_run(pipeline_spec=spec(small_memory_limit), namespace="team-a",
                                   parameters={"marker_dir": str(tmp_path)})
    assert wait_for(lambda: store.get_run(run_id).state in ("SUCCEEDED", "FAILED"), timeout=60)
    assert store.get_run(run_id).state == "SUCCEEDED", store.get_run(run_id).error
