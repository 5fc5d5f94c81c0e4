"""Placeholder resolution in container commands, as the KFP launcher formats values."""

import json

import pytest

from flowdeck.pipelines.errors import TaskFailure
from flowdeck.pipelines.placeholders import PlaceholderContext, resolve_arguments, resolve_string

EXECUTOR_INPUT = {
    "inputs": {
        "parameterValues": {"text": 'say "hi"', "n": 5, "ratio": 0.5, "flag": True, "items": [1, 2]},
        "artifacts": {"data": {"artifacts": [{"name": "data", "uri": "/a/data", "metadata": {"rows": 3}}]}},
    },
    "outputs": {
        "parameters": {"out": {"outputFile": "/t/out"}},
        "artifacts": {"model": {"artifacts": [{"name": "model", "uri": "/t/model", "metadata": {}}]}},
        "outputFile": "/t/executor_output.json",
    },
}


@pytest.fixture
def context() -> PlaceholderContext:
    return PlaceholderContext(executor_input=EXECUTOR_INPUT, pipeline_values={"pipeline_job_name": "job-1"})


@pytest.mark.parametrize(("text", "expected"), [
    ("{{$.inputs.parameters['n']}}", "5"),
    ("{{$.inputs.parameters['ratio']}}", "0.5"),
    ("{{$.inputs.parameters['flag']}}", "true"),
    ("{{$.inputs.parameters['items']}}", "[1, 2]"),
    ("{{$.inputs.artifacts['data'].path}}", "/a/data"),
    ("{{$.inputs.artifacts['data'].metadata['rows']}}", "3"),
    ("{{$.outputs.artifacts['model'].uri}}/x", "/t/model/x"),
    ("{{$.outputs.parameters['out'].output_file}}", "/t/out"),
    ("name={{$.pipeline_job_name}}", "name=job-1"),
    ("{{$.inputs.parameters['text'].json_escape[1]}}", 'say \\"hi\\"'),
    ("{{$.inputs.parameters['text'].json_escape[0]}}", 'say "hi"'),
])
def test_path_placeholders_format_values_like_the_launcher(context, text: str, expected: str) -> None:
    assert resolve_string(text, context) == expected


def test_whole_executor_input_placeholder_is_its_json(context) -> None:
    assert json.loads(resolve_string("{{$}}", context)) == EXECUTOR_INPUT


def test_json_escaped_value_fits_inside_a_json_document(context) -> None:
    document = resolve_string('{"message": "{{$.inputs.parameters[\'text\'].json_escape[1]}}"}', context)
    assert json.loads(document) == {"message": 'say "hi"'}


def test_structured_placeholders_expand_to_arguments(context) -> None:
    concat = json.dumps({"Concat": ["--n=", "{{$.inputs.parameters['n']}}"]})
    present = json.dumps({"IfPresent": {"InputName": "n", "Then": ["--n", "{{$.inputs.parameters['n']}}"]}})
    absent = json.dumps({"IfPresent": {"InputName": "missing", "Then": ["--m"], "Else": ["--no-m"]}})
    dropped = json.dumps({"IfPresent": {"InputName": "missing", "Then": ["--m"]}})
    assert resolve_arguments(["run", concat, present, absent, dropped], context) == [
        "run", "--n=5", "--n", "5", "--no-m",
    ]


def test_unknown_placeholder_fails_the_task_naming_it(context) -> None:
    with pytest.raises(TaskFailure, match="pipeline_google_cloud_project_id"):
        resolve_string("{{$.pipeline_google_cloud_project_id}}", context)
