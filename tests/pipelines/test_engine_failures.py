"""Engine behaviour on failure: exit handlers, ignore_upstream_failure, retries, skipping, crashes."""

import json
from pathlib import Path
from typing import Any

from kfp import dsl

from flowdeck.store import open_store
from helpers import task_rows, tasks

IMAGE = "python:3.11"




def attempts_of(settings, task_id: str) -> list[Any]:
    store = open_store(settings.resolved_database_url)
    try:
        return list(store.list_attempts([task_id]))
    finally:
        store.close()


def log_of(settings, run_id: str, path: str, number: int = 1) -> str:
    task = task_rows(settings, run_id)[path]
    attempt = [a for a in attempts_of(settings, task.id) if a.number == number][0]
    return Path(attempt.log_path).read_text()


@dsl.component(base_image=IMAGE)
def echo(text: str) -> str:
    return text


@dsl.component(base_image=IMAGE)
def fail(message: str = "boom") -> str:
    raise ValueError(message)


@dsl.component(base_image=IMAGE)
def slow_echo(text: str, seconds: float = 0.5) -> str:
    import time

    time.sleep(seconds)
    return text


# ------------------------------------------------------------------------------------ ExitHandler


@dsl.component(base_image=IMAGE)
def report_status(status: dsl.PipelineTaskFinalStatus) -> str:
    import json

    return json.dumps({
        "state": status.state,
        "job": status.pipeline_job_resource_name,
        "task": status.pipeline_task_name,
        "code": status.error_code,
        "message": status.error_message,
    })


@dsl.pipeline
def exit_on_failure():
    reporter = report_status()
    with dsl.ExitHandler(reporter, name="main"):
        first = echo(text="ok")
        fail(message=first.output)


@dsl.pipeline
def exit_on_success():
    reporter = report_status()
    with dsl.ExitHandler(reporter):
        echo(text="fine")


def _reported(settings, result: dict[str, Any]) -> dict[str, Any]:
    return json.loads(task_rows(settings, result["run_id"])["report-status"].outputs["parameters"]["Output"])


def test_exit_handler_runs_after_a_failure_and_the_run_fails(run) -> None:
    result = run(exit_on_failure)

    assert result["state"] == "FAILED"
    by_path = tasks(result)
    assert by_path["report-status"]["state"] == "SUCCEEDED"
    assert by_path["exit-handler-1"]["state"] == "FAILED"
    assert by_path["exit-handler-1/fail"]["state"] == "FAILED"
    assert by_path["exit-handler-1/echo"]["state"] == "SUCCEEDED"


def test_exit_task_sees_the_failed_state(run, settings) -> None:
    result = run(exit_on_failure)

    status = _reported(settings, result)
    assert status["state"] == "FAILED"
    assert status["task"] == "exit-handler-1"
    assert status["job"]
    assert status["code"] not in (None, 0)
    assert status["message"]


def test_exit_task_sees_complete_on_success(run, settings) -> None:
    result = run(exit_on_success)

    assert result["state"] == "SUCCEEDED", result["error"]
    status = _reported(settings, result)
    assert status["state"] == "COMPLETE"
    assert status["code"] in (None, 0)
    assert not status["message"]


@dsl.component(base_image=IMAGE)
def broken_step():
    raise RuntimeError("broken on purpose")


@dsl.pipeline
def broken_in_exit_handler():
    reporter = report_status()
    with dsl.ExitHandler(reporter):
        broken_step()


def test_run_error_names_the_failed_task(run) -> None:
    result = run(broken_in_exit_handler)

    assert result["state"] == "FAILED"
    assert "broken-step" in result["error"]


# ------------------------------------------------------------------------- ignore_upstream_failure


@dsl.component(base_image=IMAGE)
def cleanup(message: str = "upstream failed") -> str:
    return f"cleanup: {message}"


@dsl.pipeline
def ignoring_pipeline():
    failing = fail()
    cleanup(message=failing.output).ignore_upstream_failure()


@dsl.pipeline
def ignoring_success_pipeline():
    fine = echo(text="all good")
    cleanup(message=fine.output).ignore_upstream_failure()


def test_ignore_upstream_failure_task_runs_with_its_default(run, settings) -> None:
    result = run(ignoring_pipeline)

    assert result["state"] == "FAILED"
    by_path = tasks(result)
    assert by_path["fail"]["state"] == "FAILED"
    assert by_path["cleanup"]["state"] == "SUCCEEDED"
    outputs = task_rows(settings, result["run_id"])["cleanup"].outputs
    assert outputs["parameters"]["Output"] == "cleanup: upstream failed"


def test_ignore_upstream_failure_task_gets_the_value_when_upstream_succeeds(run, settings) -> None:
    result = run(ignoring_success_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    outputs = task_rows(settings, result["run_id"])["cleanup"].outputs
    assert outputs["parameters"]["Output"] == "cleanup: all good"


# ------------------------------------------------------------------------------------- set_retry


@dsl.component(base_image=IMAGE)
def flaky(directory: str, failures: int) -> int:
    import os
    import time

    stamps = os.path.join(directory, "attempts.txt")
    with open(stamps, "a") as handle:
        handle.write(f"{time.time()}\n")
    with open(stamps) as handle:
        attempt = len(handle.readlines())
    print(f"this is attempt {attempt}")
    if attempt <= failures:
        raise RuntimeError(f"failing attempt {attempt} on purpose")
    return attempt


@dsl.pipeline
def retry_pipeline(directory: str, failures: int = 2) -> int:
    return flaky(directory=directory, failures=failures).set_retry(num_retries=3, backoff_duration="0s").output


@dsl.pipeline
def backoff_pipeline(directory: str, failures: int = 2) -> int:
    return flaky(directory=directory, failures=failures).set_retry(
        num_retries=3, backoff_duration="1s", backoff_factor=1.5).output


@dsl.pipeline
def exhausted_pipeline(directory: str, failures: int = 10) -> int:
    return flaky(directory=directory, failures=failures).set_retry(num_retries=1, backoff_duration="0s").output


def test_retried_task_succeeds_on_the_third_attempt(run, tmp_path: Path) -> None:
    result = run(retry_pipeline, {"directory": str(tmp_path)})

    assert result["state"] == "SUCCEEDED", result["error"]
    task = tasks(result)["flaky"]
    assert task["state"] == "SUCCEEDED"
    assert task["attempts"] == 3
    assert result["outputs"]["Output"] == 3


def test_every_attempt_has_a_row_and_its_own_log(run, settings, tmp_path: Path) -> None:
    result = run(retry_pipeline, {"directory": str(tmp_path)})
    task = task_rows(settings, result["run_id"])["flaky"]

    attempts = attempts_of(settings, task.id)
    assert [a.number for a in attempts] == [1, 2, 3]
    assert [a.state for a in attempts] == ["FAILED", "FAILED", "SUCCEEDED"]
    assert [a.exit_code == 0 for a in attempts] == [False, False, True]
    assert len({a.log_path for a in attempts}) == 3
    for attempt in attempts:
        text = Path(attempt.log_path).read_text()
        assert f"this is attempt {attempt.number}" in text
    assert "failing attempt 1 on purpose" in Path(attempts[0].log_path).read_text()
    assert "on purpose" not in Path(attempts[2].log_path).read_text()


def test_retry_backoff_grows_by_the_factor(run, tmp_path: Path) -> None:
    result = run(backoff_pipeline, {"directory": str(tmp_path)})
    assert result["state"] == "SUCCEEDED", result["error"]

    stamps = [float(line) for line in (tmp_path / "attempts.txt").read_text().split()]
    first_gap, second_gap = stamps[1] - stamps[0], stamps[2] - stamps[1]
    assert 1.0 <= first_gap < 2.5
    assert 1.5 <= second_gap < 3.0


def test_retries_exhausted_fail_the_task(run, tmp_path: Path) -> None:
    result = run(exhausted_pipeline, {"directory": str(tmp_path)})

    assert result["state"] == "FAILED"
    task = tasks(result)["flaky"]
    assert task["state"] == "FAILED"
    assert task["attempts"] == 2


@dsl.pipeline
def no_retry_pipeline(directory: str, failures: int = 1) -> int:
    return flaky(directory=directory, failures=failures).output


def test_without_a_retry_policy_a_failure_is_final(run, tmp_path: Path) -> None:
    result = run(no_retry_pipeline, {"directory": str(tmp_path)})

    assert result["state"] == "FAILED"
    assert tasks(result)["flaky"]["attempts"] == 1


# ----------------------------------------------------------------------------- skipping dependents


@dsl.pipeline
def partial_failure():
    failing = fail()
    dependent = echo(text=failing.output)
    echo(text=dependent.output)
    slow_echo(text="independent")


def test_failed_task_skips_its_dependents(run) -> None:
    result = run(partial_failure)

    assert result["state"] == "FAILED"
    by_path = tasks(result)
    assert by_path["fail"]["state"] == "FAILED"
    assert by_path["echo"]["state"] == "SKIPPED"
    assert by_path["echo-2"]["state"] == "SKIPPED"
    assert by_path["echo"]["attempts"] == 0


def test_independent_branch_finishes_when_another_fails(run) -> None:
    result = run(partial_failure)

    assert result["state"] == "FAILED"
    assert tasks(result)["slow-echo"]["state"] == "SUCCEEDED"


@dsl.pipeline
def failure_in_loop():
    with dsl.ParallelFor(["ok", "boom", "fine"]) as word:
        with dsl.If(word == "boom"):
            fail(message=word)
        echo(text=word)


def test_failure_in_one_iteration_fails_the_loop_but_other_iterations_finish(run) -> None:
    result = run(failure_in_loop)

    assert result["state"] == "FAILED"
    echoes = [t for t in result["tasks"] if t["name"] == "echo"]
    assert len(echoes) == 3 and all(t["state"] == "SUCCEEDED" for t in echoes)
    (loop,) = [t for t in result["tasks"] if t["name"].startswith("for-loop")]
    assert loop["state"] == "FAILED"


# ----------------------------------------------------------------------------- raising and killed


@dsl.pipeline
def raising_pipeline():
    fail(message="something went wrong")


def test_component_that_raises_fails_task_and_run(run) -> None:
    result = run(raising_pipeline)

    assert result["state"] == "FAILED"
    task = tasks(result)["fail"]
    assert task["state"] == "FAILED"
    assert task["attempts"] == 1


def test_traceback_of_a_raising_component_is_in_its_log(run, settings) -> None:
    result = run(raising_pipeline)

    text = log_of(settings, result["run_id"], "fail")
    assert "Traceback (most recent call last)" in text
    assert "ValueError: something went wrong" in text


@dsl.component(base_image=IMAGE)
def kill_self():
    import os

    os.kill(os.getpid(), 9)


@dsl.pipeline
def killed_pipeline():
    kill_self()


def test_task_killed_by_a_signal_fails_naming_the_signal(run) -> None:
    result = run(killed_pipeline)

    assert result["state"] == "FAILED"
    task = tasks(result)["kill-self"]
    assert task["state"] == "FAILED"
    assert "signal" in task["error"]
    assert "9" in task["error"]
