"""Input artifacts behind fsspec URIs are downloaded before the task runs, as the KFP launcher does."""

from pathlib import Path

import fsspec
import pytest
from kfp import dsl
from kfp.dsl import Dataset, Input

from flowdeck.config import Settings
from flowdeck.pipelines.api import run_pipeline
from flowdeck.pipelines.errors import PipelineError


@dsl.component(base_image="python:3.11")
def read_text(data: Input[Dataset]) -> str:
    with open(data.path) as handle:
        return handle.read()


@dsl.pipeline(name="remote-import")
def import_and_read(uri: str) -> str:
    imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset, reimport=False)
    return read_text(data=imported.output).output


def test_importer_of_an_fsspec_uri_hands_the_task_a_local_copy(run) -> None:
    # memory:// lives in this process, which is where the engine stages inputs
    with fsspec.open("memory://flowdeck-test-bucket/greeting.txt", "w") as handle:
        handle.write("hello from object storage")

    result = run(import_and_read, {"uri": "memory://flowdeck-test-bucket/greeting.txt"})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"] == {"Output": "hello from object storage"}
    importer = next(t for t in result["tasks"] if t["name"] == "importer")
    assert importer["state"] == "SUCCEEDED"


def test_an_input_that_cannot_be_downloaded_fails_the_task_naming_the_uri(run) -> None:
    result = run(import_and_read, {"uri": "memory://flowdeck-test-bucket/missing.txt"})

    assert result["state"] == "FAILED"
    reader = next(t for t in result["tasks"] if t["name"] == "read-text")
    assert "memory://flowdeck-test-bucket/missing.txt" in reader["error"]
    assert reader["attempts"] == 1  # the attempt failed before its process could start


def test_a_remote_artifact_root_is_refused_before_any_run(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", artifact_root="s3://bucket/artifacts")
    with pytest.raises(PipelineError, match="artifact root s3://bucket/artifacts"):
        run_pipeline(import_and_read, {"uri": "/tmp/x"}, settings=settings)
