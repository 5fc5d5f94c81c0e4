"""Engine behaviour: the execution cache, with KFP's semantics."""

from pathlib import Path

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from flowdeck.store import open_store
from helpers import tasks

IMAGE = "python:3.11"



def attempt_count(settings, run_id: str) -> int:
    store = open_store(settings.resolved_database_url)
    try:
        ids = [t.id for t in store.list_tasks(run_id)]
        return len(store.list_attempts(ids))
    finally:
        store.close()


def executions(directory: Path) -> list[str]:
    """Names of the components that really ran (each appends its name to a journal)."""
    journal = directory / "journal.txt"
    return journal.read_text().split() if journal.exists() else []


@dsl.component(base_image=IMAGE)
def make_data(directory: str, text: str, out: Output[Dataset]):
    import os

    with open(os.path.join(directory, "journal.txt"), "a") as journal:
        journal.write("make_data\n")
    with open(out.path, "w") as handle:
        handle.write(text)


@dsl.component(base_image=IMAGE)
def measure(directory: str, data: Input[Dataset]) -> int:
    import os

    with open(os.path.join(directory, "journal.txt"), "a") as journal:
        journal.write("measure\n")
    with open(data.path) as handle:
        return len(handle.read())


@dsl.pipeline
def cached_pipeline(directory: str, text: str = "hello") -> int:
    made = make_data(directory=directory, text=text)
    return measure(directory=directory, data=made.outputs["out"]).output


@dsl.pipeline(name="cached-pipeline")  # same name: the same cache scope as cached_pipeline
def partly_uncached(directory: str, text: str = "hello") -> int:
    made = make_data(directory=directory, text=text)
    measured = measure(directory=directory, data=made.outputs["out"])
    measured.set_caching_options(False)
    return measured.output


def test_first_run_executes_every_task(run, tmp_path: Path) -> None:
    result = run(cached_pipeline, {"directory": str(tmp_path)})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert not any(t["cached"] for t in result["tasks"])
    assert executions(tmp_path) == ["make_data", "measure"]


def test_second_identical_run_is_served_from_the_cache(run, tmp_path: Path) -> None:
    first = run(cached_pipeline, {"directory": str(tmp_path)})
    second = run(cached_pipeline, {"directory": str(tmp_path)})

    assert second["state"] == "SUCCEEDED", second["error"]
    assert [(t["path"], t["cached"]) for t in sorted(second["tasks"], key=lambda t: t["path"])] == [
        ("make-data", True), ("measure", True)]
    assert second["outputs"] == first["outputs"] == {"Output": 5}
    assert executions(tmp_path) == ["make_data", "measure"]


def test_cached_tasks_have_no_attempts(run, settings, tmp_path: Path) -> None:
    run(cached_pipeline, {"directory": str(tmp_path)})
    second = run(cached_pipeline, {"directory": str(tmp_path)})

    assert attempt_count(settings, second["run_id"]) == 0
    assert all(t["attempts"] == 0 for t in second["tasks"])


def test_cached_artifact_outputs_are_the_original_artifacts(run, settings, tmp_path: Path) -> None:
    first = run(cached_pipeline, {"directory": str(tmp_path)})
    second = run(cached_pipeline, {"directory": str(tmp_path)})

    store = open_store(settings.resolved_database_url)
    try:
        def uri(run_id: str) -> str:
            rows = {t.path: t for t in store.list_tasks(run_id)}
            return rows["make-data"].outputs["artifacts"]["out"][0]["uri"]

        assert uri(second["run_id"]) == uri(first["run_id"])
    finally:
        store.close()


def test_task_with_caching_disabled_reruns(run, tmp_path: Path) -> None:
    run(partly_uncached, {"directory": str(tmp_path)})
    second = run(partly_uncached, {"directory": str(tmp_path)})

    assert second["state"] == "SUCCEEDED", second["error"]
    by_path = tasks(second)
    assert by_path["make-data"]["cached"] is True
    assert by_path["measure"]["cached"] is False
    assert by_path["measure"]["attempts"] == 1
    assert executions(tmp_path) == ["make_data", "measure", "measure"]


def test_run_with_caching_disabled_reruns_everything(run, tmp_path: Path) -> None:
    run(cached_pipeline, {"directory": str(tmp_path)})
    second = run(cached_pipeline, {"directory": str(tmp_path)}, enable_caching=False)

    assert second["state"] == "SUCCEEDED", second["error"]
    assert not any(t["cached"] for t in second["tasks"])
    assert executions(tmp_path) == ["make_data", "measure"] * 2


def test_run_with_caching_disabled_does_not_fill_the_cache(run, tmp_path: Path) -> None:
    run(cached_pipeline, {"directory": str(tmp_path)}, enable_caching=False)
    second = run(cached_pipeline, {"directory": str(tmp_path)})

    assert not any(t["cached"] for t in second["tasks"])


def test_task_with_caching_disabled_does_not_fill_the_cache(run, tmp_path: Path) -> None:
    run(partly_uncached, {"directory": str(tmp_path)})
    second = run(cached_pipeline, {"directory": str(tmp_path)})  # same tasks, caching on for both

    by_path = tasks(second)
    assert by_path["make-data"]["cached"] is True
    assert by_path["measure"]["cached"] is False


def test_changed_component_code_misses_the_cache(run, tmp_path: Path) -> None:
    from flowdeck.pipelines.spec import load_pipeline

    run(cached_pipeline, {"directory": str(tmp_path)})
    changed = load_pipeline(cached_pipeline)
    container = changed.spec["deploymentSpec"]["executors"]["exec-measure"]["container"]
    container["command"] = [part.replace("return len(handle.read())", "return len(handle.read()) * 10")
                            for part in container["command"]]

    second = run(changed, {"directory": str(tmp_path)})

    assert second["state"] == "SUCCEEDED", second["error"]
    by_path = tasks(second)
    assert by_path["make-data"]["cached"] is True
    assert by_path["measure"]["cached"] is False
    assert second["outputs"]["Output"] == 50


def test_changed_input_misses_the_cache(run, tmp_path: Path) -> None:
    run(cached_pipeline, {"directory": str(tmp_path), "text": "hello"})
    second = run(cached_pipeline, {"directory": str(tmp_path), "text": "hello!"})

    assert second["state"] == "SUCCEEDED", second["error"]
    assert not any(t["cached"] for t in second["tasks"])
    assert second["outputs"]["Output"] == 6


def test_deleted_cached_artifact_file_misses_the_cache(run, settings, tmp_path: Path) -> None:
    first = run(cached_pipeline, {"directory": str(tmp_path)})
    store = open_store(settings.resolved_database_url)
    try:
        rows = {t.path: t for t in store.list_tasks(first["run_id"])}
    finally:
        store.close()
    Path(rows["make-data"].outputs["artifacts"]["out"][0]["uri"]).unlink()

    second = run(cached_pipeline, {"directory": str(tmp_path)})

    assert second["state"] == "SUCCEEDED", second["error"]
    assert tasks(second)["make-data"]["cached"] is False
    assert second["outputs"]["Output"] == 5
    assert executions(tmp_path).count("make_data") == 2


@dsl.component(base_image=IMAGE)
def flaky_once(directory: str) -> str:
    import os

    marker = os.path.join(directory, "failed-once")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first run fails")
    return "ok"


@dsl.pipeline
def flaky_pipeline(directory: str) -> str:
    return flaky_once(directory=directory).output


def test_failed_tasks_are_not_cached(run, tmp_path: Path) -> None:
    first = run(flaky_pipeline, {"directory": str(tmp_path)})
    second = run(flaky_pipeline, {"directory": str(tmp_path)})

    assert first["state"] == "FAILED"
    assert second["state"] == "SUCCEEDED", second["error"]
    assert tasks(second)["flaky-once"]["cached"] is False


@dsl.component(base_image=IMAGE)
def noted(directory: str, value: int) -> int:
    import os

    with open(os.path.join(directory, "journal.txt"), "a") as journal:
        journal.write(f"noted-{value}\n")
    return value


@dsl.pipeline
def loop_pipeline(directory: str, values: list) -> list:
    with dsl.ParallelFor(values) as value:
        done = noted(directory=directory, value=value)
    return dsl.Collected(done.output)


def test_loop_iterations_are_cached_individually(run, tmp_path: Path) -> None:
    run(loop_pipeline, {"directory": str(tmp_path), "values": [1, 2]})
    second = run(loop_pipeline, {"directory": str(tmp_path), "values": [1, 2, 3]})

    assert second["outputs"]["Output"] == [1, 2, 3]
    cached = sorted((t["path"], t["cached"]) for t in second["tasks"] if t["name"] == "noted")
    assert [c for _, c in cached] == [True, True, False]
    assert sorted(executions(tmp_path)) == ["noted-1", "noted-2", "noted-3"]


@dsl.component(base_image=IMAGE)
def report_state(directory: str, status: dsl.PipelineTaskFinalStatus) -> str:
    import os

    with open(os.path.join(directory, "journal.txt"), "a") as journal:
        journal.write("report_state\n")
    return status.state


@dsl.pipeline
def with_exit_handler(directory: str):
    reporter = report_state(directory=directory)
    with dsl.ExitHandler(reporter):
        make_data(directory=directory, text="x")


def test_exit_task_runs_again_on_a_cached_run(run, tmp_path: Path) -> None:
    # its status input names the run, so it never matches an earlier execution
    run(with_exit_handler, {"directory": str(tmp_path)})
    second = run(with_exit_handler, {"directory": str(tmp_path)})

    assert second["state"] == "SUCCEEDED", second["error"]
    by_path = tasks(second)
    assert by_path["exit-handler-1/make-data"]["cached"] is True
    assert by_path["report-state"]["cached"] is False
    assert executions(tmp_path) == ["make_data", "report_state", "report_state"]


@dsl.pipeline
def other_name_pipeline(directory: str, text: str = "hello") -> int:
    made = make_data(directory=directory, text=text)
    return measure(directory=directory, data=made.outputs["out"]).output


def test_cache_entries_are_scoped_to_the_pipeline_name(run, tmp_path: Path) -> None:
    run(cached_pipeline, {"directory": str(tmp_path)})
    other = run(other_name_pipeline, {"directory": str(tmp_path)})

    assert other["state"] == "SUCCEEDED", other["error"]
    assert not any(t["cached"] for t in other["tasks"])
