"""Engine behaviour when the engine process itself dies: its tasks die with it, the run is failed later."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kfp import compiler, dsl

from flowdeck.store import open_store
from helpers import process_gone, wait_for

IMAGE = "python:3.11"

ENGINE = """
import sys
from flowdeck.config import Settings
from flowdeck.pipelines.api import run_pipeline

run_pipeline(sys.argv[1], {"pid_file": sys.argv[3]}, settings=Settings(home=sys.argv[2]))
"""


@dsl.component(base_image=IMAGE)
def sleeper(pid_file: str, seconds: int = 60):
    import os
    import time

    with open(pid_file + ".tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.rename(pid_file + ".tmp", pid_file)
    time.sleep(seconds)


@dsl.pipeline
def sleepy(pid_file: str):
    sleeper(pid_file=pid_file)




@pytest.fixture
def engine_with_running_task(tmp_path: Path, settings) -> Iterator[dict]:
    """A run in a separate engine process whose task is running (its pid is known)."""
    spec = tmp_path / "sleepy.yaml"
    compiler.Compiler().compile(sleepy, str(spec))
    pid_file = tmp_path / "task.pid"
    engine = subprocess.Popen(
        [sys.executable, "-c", ENGINE, str(spec), str(settings.home), str(pid_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    task_pid = None
    try:
        store = open_store(settings.resolved_database_url)
        try:
            def task_running() -> bool:
                runs = store.list_runs()
                return bool(runs) and any(t.state == "RUNNING" for t in store.list_tasks(runs[0].id))

            assert wait_for(lambda: pid_file.exists() and task_running(), timeout=60), \
                engine.stderr.read().decode() if engine.poll() is not None else "the task never started"
            (run,) = store.list_runs()
        finally:
            store.close()
        task_pid = int(pid_file.read_text())
        assert not process_gone(task_pid)
        yield {"engine": engine, "run_id": run.id, "task_pid": task_pid}
    finally:
        if engine.poll() is None:
            engine.kill()
        engine.wait()
        engine.stderr.close()
        if task_pid is not None and not process_gone(task_pid):
            os.kill(task_pid, signal.SIGKILL)


@pytest.fixture
def crashed_run(engine_with_running_task) -> dict:
    """The same, after the engine was killed with SIGKILL (it could not clean up)."""
    engine = engine_with_running_task["engine"]
    engine.send_signal(signal.SIGKILL)
    engine.wait(timeout=10)
    return engine_with_running_task


def test_task_processes_die_when_the_engine_is_killed(crashed_run) -> None:
    assert wait_for(lambda: process_gone(crashed_run["task_pid"]), timeout=5), "the task outlived its engine"


def test_run_of_a_dead_engine_shows_running_until_orphans_are_failed(crashed_run, settings) -> None:
    store = open_store(settings.resolved_database_url)
    try:
        assert store.get_run(crashed_run["run_id"]).state == "RUNNING"

        assert store.fail_orphaned_runs() == [crashed_run["run_id"]]

        run = store.get_run(crashed_run["run_id"])
        assert run.state == "FAILED"
        assert run.error
        assert [r.state for r in store.list_runs()] == ["FAILED"]
        assert {t.state for t in store.list_tasks(run.id)} == {"FAILED"}
    finally:
        store.close()


def test_failing_orphans_leaves_runs_of_live_engines_alone(crashed_run, settings) -> None:
    store = open_store(settings.resolved_database_url)
    try:
        store.create_run(id="live", pipeline_name="other", display_name="other", state="RUNNING",
                         pipeline_spec={}, arguments={})  # recorded with this (live) process as engine

        assert store.fail_orphaned_runs() == [crashed_run["run_id"]]

        assert store.get_run("live").state == "RUNNING"
    finally:
        store.close()


@dsl.component(base_image=IMAGE)
def quick() -> int:
    return 1


@dsl.pipeline
def quick_pipeline() -> int:
    return quick().output


def test_next_run_through_the_api_fails_the_orphaned_run(crashed_run, run, settings) -> None:
    result = run(quick_pipeline)
    assert result["state"] == "SUCCEEDED", result["error"]

    store = open_store(settings.resolved_database_url)
    try:
        states = {r.id: r.state for r in store.list_runs()}
    finally:
        store.close()
    assert states == {crashed_run["run_id"]: "FAILED", result["run_id"]: "SUCCEEDED"}


def test_sigterm_to_the_engine_cancels_the_run_and_stops_its_tasks(engine_with_running_task, settings) -> None:
    engine = engine_with_running_task["engine"]

    engine.send_signal(signal.SIGTERM)

    engine.wait(timeout=20)
    assert wait_for(lambda: process_gone(engine_with_running_task["task_pid"]), timeout=5)
    store = open_store(settings.resolved_database_url)
    try:
        run = store.get_run(engine_with_running_task["run_id"])
        states = {t.path: t.state for t in store.list_tasks(run.id)}
    finally:
        store.close()
    assert run.state == "CANCELED"
    assert states == {"sleeper": "CANCELED"}
