"""PipelineRun's controller in process, with the real run controller: idempotent across crashes, spec changes.

The verbs over HTTP are covered in tests/cli/test_resource_verbs.py; these tests stop and restart
controllers at chosen moments, which only an in-process test can do.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler, dsl
from sqlalchemy import func, select

from flowdeck.config import Settings
from flowdeck.pipelines.controller import RunController
from flowdeck.pipelines.kind import API_VERSION, PIPELINE_RUN, _start_run
from flowdeck.resources import Registry, Resource
from flowdeck.resources.controller import ResourceController, create_controller
from flowdeck.resources.service import to_resource
from flowdeck.store import RunRow, Store
from flowdeck.store.catalog import Experiments, RunCatalog
from helpers import wait_for


@dsl.component(base_image="python:3.11")
def echo(text: str) -> str:
    print(text)
    return text


@dsl.component(base_image="python:3.11")
def nap(seconds: float):
    import time

    time.sleep(seconds)


@dsl.pipeline(name="echo")
def echo_pipeline(text: str = "hi") -> str:
    return echo(text=text).output


@dsl.pipeline(name="napper")
def napper(seconds: float = 300.0):
    nap(seconds=seconds)


def compiled(pipeline: Any, directory: Path) -> dict[str, Any]:
    path = directory / f"{pipeline.name}.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    return yaml.safe_load(path.read_text())


@pytest.fixture
def runs(sqlite_store: Store, tmp_path: Path) -> Iterator[RunController]:
    controller = RunController(sqlite_store, Settings(home=tmp_path))
    controller.start()
    yield controller
    controller.stop()


def resources(store: Store, runs: RunController, tmp_path: Path) -> ResourceController:
    return create_controller(store, Settings(home=tmp_path), runs, kinds=Registry([PIPELINE_RUN]))


def document(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "PipelineRun", "metadata": {"name": name}, "spec": spec}


def current(controller: ResourceController, name: str) -> Resource:
    return controller.service.get("pipelinerun", "default", name)


def true_conditions(resource: Resource) -> list[str]:
    return [c.type for c in resource.status.conditions if c.status == "True"]


def run_count(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(RunRow)).scalar_one()


def test_a_run_started_just_before_a_crash_is_found_again_not_started_twice(
        sqlite_store: Store, runs: RunController, tmp_path: Path) -> None:
    """The control plane died after starting the run and before recording status.runId."""
    crashed = resources(sqlite_store, runs, tmp_path)  # never started: it "died" before reconciling
    spec = compiled(echo_pipeline, tmp_path)
    [(_, applied)] = crashed.service.apply([document("echo-once", pipelineSpec=spec, parameters={"text": "once"})])
    owner = f"PipelineRun/{applied.metadata.uid}/1"
    # anyone may describe a run as they like: a description naming the resource must not be adopted
    decoy = runs.create_run(pipeline_spec=spec, parameters={"text": "decoy"}, description=owner)
    row = crashed.repository.get_uid(applied.metadata.uid)
    started = _start_run(crashed.service.context, to_resource(row))  # what the dead reconcile got done
    assert started is not None and run_count(sqlite_store) == 2
    assert (sqlite_store.get_run(started).owner, sqlite_store.get_run(started).description) == (owner, None)
    assert sqlite_store.get_run(decoy).owner is None

    restarted = resources(sqlite_store, runs, tmp_path)
    restarted.start()
    try:
        assert wait_for(lambda: "Succeeded" in true_conditions(current(restarted, "echo-once")), timeout=60)
        assert current(restarted, "echo-once").status.runId == started
        assert run_count(sqlite_store) == 2
    finally:
        restarted.stop()


def test_a_changed_spec_replaces_the_run_and_delete_terminates_it(
        sqlite_store: Store, runs: RunController, tmp_path: Path) -> None:
    controller = resources(sqlite_store, runs, tmp_path)
    controller.start()
    try:
        spec = compiled(napper, tmp_path)
        controller.service.apply([document("nap", pipelineSpec=spec, parameters={"seconds": 300})])
        assert wait_for(lambda: "Running" in true_conditions(current(controller, "nap")), timeout=60)
        first = current(controller, "nap").status.runId

        [(result, changed)] = controller.service.apply([document("nap", pipelineSpec=spec,
                                                                 parameters={"seconds": 301})])
        assert (result, changed.metadata.generation) == ("configured", 2)
        assert wait_for(lambda: current(controller, "nap").status.runId not in (None, first), timeout=30)
        assert wait_for(lambda: sqlite_store.get_run(first).state == "CANCELED", timeout=30)
        second = current(controller, "nap").status.runId
        reasons = [e["reason"] for e in controller.service.describe("pr", "default", "nap")["events"]]
        assert "SpecChanged" in reasons

        controller.service.delete("pipelinerun", "default", "nap")
        assert wait_for(lambda: controller.repository.get("PipelineRun", "", "nap") is None, timeout=30)
        assert wait_for(lambda: sqlite_store.get_run(second).state == "CANCELED", timeout=30)
        assert run_count(sqlite_store) == 2  # the runs stay in the history
    finally:
        controller.stop()


def test_a_run_that_cannot_start_fails_the_resource_once(sqlite_store: Store, runs: RunController,
                                                         tmp_path: Path) -> None:
    archived = Experiments(sqlite_store).create(display_name="retired")
    Experiments(sqlite_store).archive(archived.id)
    controller = resources(sqlite_store, runs, tmp_path)
    controller.start()
    try:
        controller.service.apply([document("lost", pipelineRef={"name": "never-uploaded", "version": "v1"}),
                                  document("late", pipelineSpec=compiled(echo_pipeline, tmp_path),
                                           experiment="retired")])
        for name in ("lost", "late"):
            assert wait_for(lambda name=name: "Failed" in true_conditions(current(controller, name)), timeout=30)
        failed = current(controller, "lost").status.condition("Failed")
        assert failed.reason == "PipelineNotFound"
        assert "no pipeline named 'never-uploaded' in namespace default" in failed.message
        refused = current(controller, "late").status.condition("Failed")
        assert (refused.reason, refused.message) == (
            "ExperimentArchived", "experiment 'retired' is archived; unarchive it before adding runs to it")
        assert run_count(sqlite_store) == 0
    finally:
        controller.stop()


def test_logs_of_a_run_served_from_the_cache_name_the_run_that_ran(sqlite_store: Store, runs: RunController,
                                                                   tmp_path: Path) -> None:
    controller = resources(sqlite_store, runs, tmp_path)
    controller.start()
    try:
        spec = compiled(echo_pipeline, tmp_path)
        for name in ("ran", "reused"):
            controller.service.apply([document(name, pipelineSpec=spec, parameters={"text": "said once"})])
            assert wait_for(lambda name=name: "Succeeded" in true_conditions(current(controller, name)), timeout=60)
        ran, reused = (current(controller, name).status.runId for name in ("ran", "reused"))
        assert all(task.cached for task in sqlite_store.list_tasks(reused) if task.kind == "container")

        text = "".join(controller.service.logs("pr", "default", "reused"))
        assert text.startswith(f"echo was served from the cache: these are the logs of echo in run {ran[:8]}\n")
        assert "said once" in text

        RunCatalog(sqlite_store).delete(ran)  # and with it the only log of echo
        assert "".join(controller.service.logs("pr", "default", "reused")) == (
            f"run {reused[:8]} has no task logs: its tasks' results came from the cache (run {ran[:8]}), "
            "and those executions' logs are gone\n")
    finally:
        controller.stop()
