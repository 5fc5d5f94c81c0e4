"""Failure paths that must neither hang a run nor leave work behind (found in review)."""

import os
from pathlib import Path

import pytest
from kfp import dsl

from flowdeck.config import Settings
from flowdeck.pipelines.api import run_pipeline
from helpers import process_gone, tasks, wait_for

IMAGE = "python:3.11"


@dsl.component(base_image=IMAGE, packages_to_install=["/nonexistent/flowdeck-missing-1.0-py3-none-any.whl"])
def a_needs_missing_package() -> str:
    return "never"


@dsl.component(base_image=IMAGE)
def fine() -> str:
    return "fine"


@dsl.pipeline
def failing_install():
    a_needs_missing_package()
    fine()


@pytest.mark.timeout(60)
def test_a_failed_package_install_frees_its_slot_so_the_run_ends(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", max_parallel_tasks=1)

    result = run_pipeline(failing_install, settings=settings)

    assert result["state"] == "FAILED"
    by_path = tasks(result)
    assert by_path["fine"]["state"] == "SUCCEEDED"
    assert by_path["a-needs-missing-package"]["state"] == "FAILED"
    assert "installing" in by_path["a-needs-missing-package"]["error"]


@dsl.component(base_image=IMAGE)
def bad_int_output(n: dsl.OutputPath(int)):
    with open(n, "w") as handle:
        handle.write("1.5")


@dsl.pipeline
def bad_output():
    bad_int_output()


def test_an_output_file_of_the_wrong_type_fails_the_task_naming_the_output(run) -> None:
    result = run(bad_output)

    assert result["state"] == "FAILED"
    (task,) = result["tasks"]
    assert task["state"] == "FAILED"
    assert "output parameter 'n'" in task["error"]


@dsl.container_component
def leaves_a_background_process(pid_file: str):
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", 'sleep 300 & echo $! > "$0"'], args=[pid_file])


@dsl.pipeline
def background(pid_file: str):
    leaves_a_background_process(pid_file=pid_file)


def test_processes_a_task_leaves_behind_are_stopped_with_it(run, tmp_path: Path) -> None:
    pid_file = tmp_path / "bg.pid"

    result = run(background, {"pid_file": str(pid_file)})

    assert result["state"] == "SUCCEEDED", result["error"]
    pid = int(pid_file.read_text())
    try:
        assert wait_for(lambda: process_gone(pid), timeout=5), "the background process outlived its task"
    finally:
        if not process_gone(pid):
            os.kill(pid, 9)


@dsl.component(base_image=IMAGE)
def echo(text: str) -> str:
    return text


@dsl.pipeline
def echo_user_text(text: str) -> str:
    return echo(text=text).output


def test_user_text_that_looks_like_a_placeholder_is_data(run) -> None:
    text = "job={{$.pipeline_job_name}} raw={{$.user}} all={{$}}"

    result = run(echo_user_text, {"text": text})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"] == {"Output": text}


def test_max_parallel_tasks_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_parallel_tasks"):
        Settings(home=tmp_path, max_parallel_tasks=0)


