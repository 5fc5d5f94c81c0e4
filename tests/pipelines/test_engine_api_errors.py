"""The Python API rejects bad input with a PipelineError naming the problem, before any run exists."""

from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl
from kfp.dsl import Dataset, Input

from flowdeck.pipelines.errors import PipelineError
from flowdeck.store import open_store

IMAGE = "python:3.11"


@dsl.component(base_image=IMAGE)
def repeat(text: str, times: int) -> str:
    return text * times


@dsl.pipeline
def typed(text: str, times: int = 2) -> str:
    return repeat(text=text, times=times).output


@dsl.component(base_image=IMAGE)
def size(data: Input[Dataset]) -> int:
    import os

    return os.path.getsize(data.path)


@dsl.pipeline
def takes_artifact(data: Input[Dataset]) -> int:
    return size(data=data).output


@pytest.fixture
def no_run_created(settings):
    """After the test, the store holds no run at all."""
    yield
    store = open_store(settings.resolved_database_url)
    try:
        assert list(store.list_runs()) == []
    finally:
        store.close()


def _error(run, pipeline, arguments=None) -> str:
    with pytest.raises(PipelineError) as raised:
        run(pipeline, arguments)
    return str(raised.value)


def test_unknown_parameter_is_rejected(run, no_run_created) -> None:
    message = _error(run, typed, {"text": "a", "bogus": 1})

    assert "bogus" in message
    assert "unknown" in message


def test_wrong_type_is_rejected(run, no_run_created) -> None:
    message = _error(run, typed, {"text": "a", "times": "abc"})

    assert "times" in message
    assert "int" in message
    assert "abc" in message


def test_float_for_an_int_parameter_is_rejected(run, no_run_created) -> None:
    message = _error(run, typed, {"text": "a", "times": 2.5})

    assert "times" in message


def test_missing_required_parameter_is_rejected(run, no_run_created) -> None:
    message = _error(run, typed, {"times": 3})

    assert "text" in message
    assert "missing" in message


def test_missing_pipeline_file_is_rejected(run, no_run_created, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"

    message = _error(run, str(missing))

    assert str(missing) in message
    assert "no such file" in message


def test_yaml_that_is_not_a_pipeline_is_rejected(run, no_run_created, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("name: not a pipeline\nitems: [1, 2]\n")

    message = _error(run, str(path))

    assert "config.yaml" in message
    assert "pipeline" in message


def test_invalid_yaml_is_rejected(run, no_run_created, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("root: [unclosed\n")

    message = _error(run, str(path))

    assert "broken.yaml" in message
    assert "YAML" in message


def test_yaml_with_an_unknown_component_reference_is_rejected(run, no_run_created, tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(typed, str(path))
    spec = yaml.safe_load(path.read_text())
    spec["root"]["dag"]["tasks"]["repeat"]["componentRef"]["name"] = "comp-missing"
    path.write_text(yaml.safe_dump(spec))

    message = _error(run, str(path), {"text": "a"})

    assert "comp-missing" in message


@dsl.pipeline
def two_steps(text: str) -> str:
    first = repeat(text=text, times=1)
    return repeat(text=first.output, times=2).output


def test_yaml_with_a_dependency_cycle_is_rejected(run, no_run_created, tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    compiler.Compiler().compile(two_steps, str(path))
    spec = yaml.safe_load(path.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    tasks["repeat"]["dependentTasks"] = ["repeat-2"]  # repeat-2 already depends on repeat
    path.write_text(yaml.safe_dump(spec))

    message = _error(run, str(path), {"text": "a"})

    assert "cycle" in message and "repeat -> repeat-2 -> repeat" in message


def test_python_file_without_a_pipeline_is_rejected(run, no_run_created, tmp_path: Path) -> None:
    path = tmp_path / "empty.py"
    path.write_text("x = 1\n")

    message = _error(run, str(path))

    assert "empty.py" in message
    assert "pipeline" in message


def test_missing_artifact_input_is_rejected(run, no_run_created) -> None:
    message = _error(run, takes_artifact, {})

    assert "data" in message


def test_artifact_input_pointing_at_a_missing_file_is_rejected(run, no_run_created, tmp_path: Path) -> None:
    message = _error(run, takes_artifact, {"data": str(tmp_path / "absent.csv")})

    assert "absent.csv" in message


def test_artifact_input_given_a_local_path_runs(run, tmp_path: Path) -> None:
    path = tmp_path / "present.csv"
    path.write_text("12345")

    result = run(takes_artifact, {"data": str(path)})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == 5


def test_artifact_input_given_a_file_uri_runs(run, tmp_path: Path) -> None:
    path = tmp_path / "present.csv"
    path.write_text("123")

    result = run(takes_artifact, {"data": path.as_uri()})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == 3
