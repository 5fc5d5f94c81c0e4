"""Engine behaviour: nested pipelines, pipeline outputs, importers and pipeline-level placeholders."""

import json
from pathlib import Path
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from flowdeck.store import open_store
from helpers import task_rows, tasks

IMAGE = "python:3.11"




@dsl.component(base_image=IMAGE)
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image=IMAGE)
def write_text(text: str, out: Output[Dataset]):
    with open(out.path, "w") as handle:
        handle.write(text)
    out.metadata["length"] = len(text)


@dsl.component(base_image=IMAGE)
def read_text(data: Input[Dataset]) -> str:
    with open(data.path) as handle:
        return handle.read()


# --------------------------------------------------------------------------------- nested pipelines


class InnerOutputs(NamedTuple):
    total: int
    data: Dataset


@dsl.pipeline
def inner(a: int, b: int = 10) -> InnerOutputs:
    summed = add(a=a, b=b)
    written = write_text(text="inner data")
    return InnerOutputs(total=summed.output, data=written.outputs["out"])


@dsl.component(base_image=IMAGE)
def join(a: int, b: str) -> str:
    return f"{a}|{b}"


@dsl.pipeline
def outer(a: int = 1) -> str:
    nested = inner(a=a)
    doubled = add(a=nested.outputs["total"], b=nested.outputs["total"])
    read = read_text(data=nested.outputs["data"])
    return join(a=doubled.output, b=read.output).output


def test_nested_pipeline_outputs_feed_the_outer_pipeline(run) -> None:
    result = run(outer, {"a": 5})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "30|inner data"


def test_nested_pipeline_tasks_are_children_of_the_pipeline_task(run) -> None:
    result = run(outer)

    by_path = tasks(result)
    assert by_path["inner"]["state"] == "SUCCEEDED"
    assert by_path["inner/add"]["state"] == "SUCCEEDED"
    assert by_path["inner/write-text"]["state"] == "SUCCEEDED"


@dsl.component(base_image=IMAGE)
def fail() -> int:
    raise RuntimeError("inner failure")


@dsl.pipeline
def failing_inner() -> int:
    return fail().output


@dsl.pipeline
def failing_outer() -> int:
    nested = failing_inner()
    return add(a=nested.output, b=1).output


def test_failure_inside_a_nested_pipeline_fails_it_and_skips_its_consumers(run) -> None:
    result = run(failing_outer)

    assert result["state"] == "FAILED"
    by_path = tasks(result)
    assert by_path["failing-inner/fail"]["state"] == "FAILED"
    assert by_path["failing-inner"]["state"] == "FAILED"
    assert by_path["add"]["state"] == "SKIPPED"


# ----------------------------------------------------------------------------------- pipeline outputs


class Outputs(NamedTuple):
    number: int
    text: str
    data: Dataset
    model: Model


@dsl.component(base_image=IMAGE)
def train(model: Output[Model]):
    with open(model.path, "w") as handle:
        handle.write("weights")
    model.metadata["accuracy"] = 0.75


@dsl.pipeline
def many_outputs() -> Outputs:
    summed = add(a=2, b=3)
    written = write_text(text="hello")
    trained = train()
    read = read_text(data=written.outputs["out"])
    return Outputs(number=summed.output, text=read.output, data=written.outputs["out"], model=trained.outputs["model"])


def test_pipeline_parameter_outputs_are_plain_values(run) -> None:
    result = run(many_outputs)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["number"] == 5
    assert result["outputs"]["text"] == "hello"


def test_pipeline_artifact_outputs_are_uri_and_metadata(run) -> None:
    result = run(many_outputs)

    data, model = result["outputs"]["data"], result["outputs"]["model"]
    assert set(data) == {"uri", "metadata"} and set(model) == {"uri", "metadata"}
    assert data["metadata"] == {"length": 5}
    assert model["metadata"] == {"accuracy": 0.75}
    assert Path(data["uri"]).read_text() == "hello"
    assert Path(model["uri"]).read_text() == "weights"


def test_pipeline_outputs_are_stored_on_the_run(run, settings) -> None:
    result = run(many_outputs)

    store = open_store(settings.resolved_database_url)
    try:
        stored = store.get_run(result["run_id"]).outputs
    finally:
        store.close()
    assert stored == result["outputs"]


# ------------------------------------------------------------------------------------------ importer


@dsl.pipeline
def import_pipeline(uri: str) -> str:
    imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset, metadata={"source": "test"})
    return read_text(data=imported.output).output


def test_importer_reads_a_local_file_path(run, tmp_path: Path) -> None:
    source = tmp_path / "input.txt"
    source.write_text("imported contents")

    result = run(import_pipeline, {"uri": str(source)})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "imported contents"


def test_importer_reads_a_file_uri(run, tmp_path: Path) -> None:
    source = tmp_path / "input.txt"
    source.write_text("via file uri")

    result = run(import_pipeline, {"uri": source.as_uri()})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "via file uri"


def test_imported_artifact_keeps_its_metadata_and_type(run, settings, tmp_path: Path) -> None:
    source = tmp_path / "input.txt"
    source.write_text("x")

    result = run(import_pipeline, {"uri": str(source)})

    rows = task_rows(settings, result["run_id"])
    (artifact,) = rows["importer"].outputs["artifacts"]["artifact"]
    assert artifact["metadata"] == {"source": "test"}
    assert artifact["type"]["schemaTitle"] == "system.Dataset"
    assert Path(artifact["uri"]) == source


@dsl.pipeline
def constant_import_pipeline() -> str:
    imported = dsl.importer(artifact_uri="PLACEHOLDER_URI", artifact_class=Dataset)
    return read_text(data=imported.output).output


def test_importer_with_a_constant_uri(run, tmp_path: Path) -> None:
    from flowdeck.pipelines.spec import load_pipeline

    source = tmp_path / "constant.txt"
    source.write_text("constant")
    pipeline = load_pipeline(constant_import_pipeline)
    text = json.dumps(pipeline.spec).replace("PLACEHOLDER_URI", source.as_uri())
    pipeline.spec = json.loads(text)

    result = run(pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "constant"


# ------------------------------------------------------------------------- pipeline-level placeholders


@dsl.component(base_image=IMAGE)
def show_context(job_name: str, job_id: str, task_name: str, task_id: str) -> str:
    import json

    return json.dumps({"job_name": job_name, "job_id": job_id, "task_name": task_name, "task_id": task_id})


@dsl.pipeline(name="placeholder-pipeline")
def placeholders() -> str:
    return show_context(
        job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        task_name=dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
        task_id=dsl.PIPELINE_TASK_ID_PLACEHOLDER,
    ).output


def test_pipeline_placeholders_resolve_to_the_run_and_task(run, settings) -> None:
    result = run(placeholders)
    assert result["state"] == "SUCCEEDED", result["error"]

    values = json.loads(result["outputs"]["Output"])
    assert "{{" not in json.dumps(values)
    assert values["job_id"] == result["run_id"]
    assert values["task_name"] == "show-context"
    assert values["task_id"] == task_rows(settings, result["run_id"])["show-context"].id
    assert values["job_name"]
    assert "placeholder-pipeline" in values["job_name"]


@dsl.component(base_image=IMAGE)
def greet(greeting: str) -> str:
    return greeting


@dsl.pipeline
def fstring_pipeline(name: str = "Ada") -> str:
    first = add(a=1, b=2)
    return greet(greeting=f"hello {name}, {first.output}").output


def test_f_string_of_a_pipeline_parameter_and_an_upstream_output(run) -> None:
    result = run(fstring_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "hello Ada, 3"


@dsl.component(base_image=IMAGE)
def fails_once(marker: str) -> str:
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return "second attempt"


@dsl.pipeline
def fragile(marker: str) -> str:
    return fails_once(marker=marker).output


@dsl.pipeline
def retried_sub_pipeline(marker: str) -> str:
    sub = fragile(marker=marker)
    sub.set_retry(num_retries=1, backoff_duration="0s")
    return sub.output


def test_set_retry_on_a_nested_pipeline_reruns_the_whole_sub_pipeline(run, tmp_path) -> None:
    result = run(retried_sub_pipeline, {"marker": str(tmp_path / "marker")})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"] == {"Output": "second attempt"}
    sub = next(t for t in result["tasks"] if t["path"] == "fragile")
    assert (sub["state"], sub["attempts"]) == ("SUCCEEDED", 2)
    inner = [t["state"] for t in result["tasks"] if t["path"] == "fragile/fails-once"]
    assert inner == ["FAILED", "SUCCEEDED"]
