"""Engine behaviour: artifacts of the KFP types, their files, metadata and lists of artifacts."""

import os
from pathlib import Path
from typing import Any

from kfp import dsl
from kfp.dsl import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
)

from flowdeck.store import open_store
from helpers import task_rows

IMAGE = "python:3.11"




def lineage(settings, task_id: str) -> list[tuple[str, str, Any]]:
    store = open_store(settings.resolved_database_url)
    try:
        return store.lineage(task_id)
    finally:
        store.close()


# ------------------------------------------------------------------------- Dataset in and out


@dsl.component(base_image=IMAGE)
def make_dataset(rows: int, data: Output[Dataset]):
    with open(data.path, "w") as handle:
        for i in range(rows):
            handle.write(f"row {i}\n")
    data.metadata["rows"] = rows


@dsl.component(base_image=IMAGE)
def count_rows(data: Input[Dataset]) -> int:
    with open(data.path) as handle:
        count = len(handle.readlines())
    assert data.metadata["rows"] == count, data.metadata
    return count


@dsl.pipeline
def dataset_pipeline(rows: int = 4) -> int:
    made = make_dataset(rows=rows)
    return count_rows(data=made.outputs["data"]).output


def test_dataset_written_by_one_task_is_read_by_the_next(run) -> None:
    result = run(dataset_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == 4


def test_dataset_file_and_metadata_are_recorded(run, settings) -> None:
    result = run(dataset_pipeline, {"rows": 2})
    assert result["state"] == "SUCCEEDED", result["error"]

    producer = task_rows(settings, result["run_id"])["make-dataset"]
    (artifact,) = producer.outputs["artifacts"]["data"]
    assert artifact["metadata"] == {"rows": 2}
    assert artifact["type"]["schemaTitle"] == "system.Dataset"
    with open(artifact["uri"]) as handle:
        assert handle.read() == "row 0\nrow 1\n"


# ------------------------------------------------------------------- Model, Artifact, HTML, Markdown


@dsl.component(base_image=IMAGE)
def make_files(model: Output[Model], blob: Output[Artifact], page: Output[HTML], notes: Output[Markdown]):
    for artifact, text in ((model, "weights"), (blob, "bytes"), (page, "<h1>hi</h1>"), (notes, "# hi")):
        with open(artifact.path, "w") as handle:
            handle.write(text)
    model.metadata["framework"] = "none"


@dsl.pipeline
def files_pipeline() -> None:
    make_files()


def test_model_artifact_html_and_markdown_outputs_have_their_types_and_files(run, settings) -> None:
    result = run(files_pipeline)
    assert result["state"] == "SUCCEEDED", result["error"]

    outputs = task_rows(settings, result["run_id"])["make-files"].outputs["artifacts"]
    expected = {
        "model": ("system.Model", "weights"),
        "blob": ("system.Artifact", "bytes"),
        "page": ("system.HTML", "<h1>hi</h1>"),
        "notes": ("system.Markdown", "# hi"),
    }
    for name, (schema, text) in expected.items():
        (artifact,) = outputs[name]
        assert artifact["type"]["schemaTitle"] == schema, name
        with open(artifact["uri"]) as handle:
            assert handle.read() == text, name
    assert outputs["model"][0]["metadata"] == {"framework": "none"}


# ---------------------------------------------------------------------------------------- Metrics


@dsl.component(base_image=IMAGE)
def evaluate(metrics: Output[Metrics]):
    metrics.log_metric("accuracy", 0.9)
    metrics.log_metric("epochs", 3)


@dsl.pipeline
def metrics_pipeline() -> Metrics:
    return evaluate().outputs["metrics"]


def test_logged_metrics_are_the_artifact_metadata_in_pipeline_outputs(run) -> None:
    result = run(metrics_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    output = result["outputs"]["Output"]
    assert set(output) == {"uri", "metadata"}
    assert output["metadata"] == {"accuracy": 0.9, "epochs": 3}


def test_logged_metrics_are_visible_in_lineage(run, settings) -> None:
    result = run(metrics_pipeline)
    assert result["state"] == "SUCCEEDED", result["error"]

    task = task_rows(settings, result["run_id"])["evaluate"]
    events = lineage(settings, task.id)
    assert [(kind, key) for kind, key, _ in events] == [("OUTPUT", "metrics")]
    artifact = events[0][2]
    assert artifact.schema_title == "system.Metrics"
    assert artifact.artifact_metadata == {"accuracy": 0.9, "epochs": 3}


@dsl.component(base_image=IMAGE)
def classify(metrics: Output[ClassificationMetrics]):
    metrics.log_confusion_matrix(["cat", "dog"], [[8, 2], [1, 9]])
    metrics.log_roc_curve([0.0, 0.5, 1.0], [0.0, 0.8, 1.0], [1.0, 0.5, 0.0])


@dsl.pipeline
def classification_pipeline() -> ClassificationMetrics:
    return classify().outputs["metrics"]


def test_classification_metrics_metadata_holds_confusion_matrix_and_roc(run) -> None:
    result = run(classification_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    metadata = result["outputs"]["Output"]["metadata"]
    matrix = metadata["confusionMatrix"]
    assert [c["displayName"] for c in matrix["annotationSpecs"]] == ["cat", "dog"]
    assert [row["row"] for row in matrix["rows"]] == [[8, 2], [1, 9]]
    assert len(metadata["confidenceMetrics"]) == 3


# ----------------------------------------------------------------------- lists of artifacts (fan-in)


@dsl.component(base_image=IMAGE)
def write_text(text: str, out: Output[Dataset]):
    with open(out.path, "w") as handle:
        handle.write(text)


@dsl.component(base_image=IMAGE)
def concatenate(parts: Input[list[Dataset]]) -> str:
    texts = []
    for part in parts:
        with open(part.path) as handle:
            texts.append(handle.read())
    return "".join(texts)


@dsl.pipeline
def artifact_list_pipeline() -> str:
    with dsl.ParallelFor(["a", "b", "c", "d"]) as text:
        written = write_text(text=text)
    return concatenate(parts=dsl.Collected(written.outputs["out"])).output


def test_input_list_of_datasets_gets_every_iteration_artifact_in_order(run) -> None:
    result = run(artifact_list_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "abcd"


def test_artifact_uris_are_local_files_inside_the_artifact_root(run, settings) -> None:
    result = run(artifact_list_pipeline)
    assert result["state"] == "SUCCEEDED", result["error"]

    consumer = task_rows(settings, result["run_id"])["concatenate"]
    uris = [a["uri"] for a in consumer.inputs["artifacts"]["parts"]]
    assert len(uris) == 4 and len(set(uris)) == 4
    root = os.path.realpath(settings.resolved_artifact_root)
    for uri in uris:
        assert os.path.isfile(uri)
        assert os.path.realpath(uri).startswith(root + os.sep)


@dsl.component(base_image=IMAGE)
def count_parts(parts: Input[list[Dataset]]) -> int:
    # kfp's executor hands an empty artifact list to the function as None, on KFP as here
    return len(parts or [])


@dsl.pipeline
def fan_in_count(texts: list) -> int:
    with dsl.ParallelFor(texts) as text:
        written = write_text(text=text)
    return count_parts(parts=dsl.Collected(written.outputs["out"])).output


def test_fan_in_over_an_empty_loop_gets_an_empty_list(run) -> None:
    result = run(fan_in_count, {"texts": []})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == 0


@dsl.pipeline
def collected_artifacts(texts: list) -> list[Dataset]:
    with dsl.ParallelFor(texts) as text:
        written = write_text(text=text)
    return dsl.Collected(written.outputs["out"])


def test_pipeline_output_list_of_artifacts_is_a_list_of_uri_and_metadata(run) -> None:
    result = run(collected_artifacts, {"texts": ["x", "y"]})

    assert result["state"] == "SUCCEEDED", result["error"]
    outputs = result["outputs"]["Output"]
    assert isinstance(outputs, list) and len(outputs) == 2
    assert [Path(o["uri"]).read_text() for o in outputs] == ["x", "y"]
    assert all(set(o) == {"uri", "metadata"} for o in outputs)


def test_pipeline_output_list_of_one_artifact_is_still_a_list(run) -> None:
    result = run(collected_artifacts, {"texts": ["only"]})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert isinstance(result["outputs"]["Output"], list)
    assert len(result["outputs"]["Output"]) == 1
