"""Engine behaviour: container components run their command and args locally, placeholders resolved."""

import json
from typing import Any, Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from flowdeck.pipelines.engine import Listener
from flowdeck.store import open_store
from helpers import tasks

IMAGE = "python:3.11"

# `sh -c SCRIPT sh ARGS...`: the script prints each argument on its own line into the file given as $1,
# so a test can see exactly which arguments the container received.
RECORD_ARGS = 'out="$1"; shift; for a in "$@"; do printf "%s\\n" "$a"; done > "$out"'


class Collector(Listener):
    """A run listener that keeps every message and task state change."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.changes: list[tuple[str, str]] = []

    def task_changed(self, node: Any) -> None:
        self.changes.append((node.path, node.state))

    def message(self, text: str) -> None:
        self.messages.append(text)



def task_outputs(settings, run_id: str, path: str) -> dict[str, Any]:
    store = open_store(settings.resolved_database_url)
    try:
        return {t.path: t for t in store.list_tasks(run_id)}[path].outputs
    finally:
        store.close()


def recorded_args(settings, run_id: str, path: str) -> list[str]:
    (artifact,) = task_outputs(settings, run_id, path)["artifacts"]["out"]
    with open(artifact["uri"]) as handle:
        return handle.read().splitlines()


# ------------------------------------------------------------------------ inputs and output path


@dsl.container_component
def record(msg: str, count: int, out: Output[Dataset]):
    return dsl.ContainerSpec(
        image="alpine:3.19", command=["sh", "-c", RECORD_ARGS, "sh"],
        args=[out.path, msg, count],
    )


@dsl.pipeline
def record_pipeline(msg: str = "hello world", count: int = 3):
    record(msg=msg, count=count)


def test_input_parameters_and_output_path_placeholders_are_substituted(run, settings) -> None:
    result = run(record_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert recorded_args(settings, result["run_id"], "record") == ["hello world", "3"]


# --------------------------------------------------------------------------------- Concat, IfPresent


@dsl.container_component
def structured(msg: str, out: Output[Dataset], opt: Optional[str] = None):
    return dsl.ContainerSpec(
        image="alpine:3.19", command=["sh", "-c", RECORD_ARGS, "sh"],
        args=[
            out.path,
            dsl.ConcatPlaceholder(["msg=", msg, "!"]),
            dsl.IfPresentPlaceholder(input_name="opt", then=["--opt", opt], else_=["--no-opt"]),
            "end",
        ],
    )


@dsl.pipeline
def structured_without_optional(msg: str = "hi"):
    structured(msg=msg)


@dsl.pipeline
def structured_with_optional(msg: str = "hi", opt: str = "value"):
    structured(msg=msg, opt=opt)


def test_concat_placeholder_joins_into_one_argument(run, settings) -> None:
    result = run(structured_without_optional, {"msg": "a b"})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert recorded_args(settings, result["run_id"], "structured")[0] == "msg=a b!"


def test_if_present_takes_the_else_branch_without_the_optional_input(run, settings) -> None:
    result = run(structured_without_optional)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert recorded_args(settings, result["run_id"], "structured") == ["msg=hi!", "--no-opt", "end"]


def test_if_present_takes_the_then_branch_with_the_optional_input(run, settings) -> None:
    result = run(structured_with_optional)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert recorded_args(settings, result["run_id"], "structured") == ["msg=hi!", "--opt", "value", "end"]


# ------------------------------------------------------------------------- output parameter, artifacts


@dsl.container_component
def shout(text: str, loud: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image="alpine:3.19", command=["sh", "-c", 'printf "%s" "$0" | tr a-z A-Z > "$1"'],
        args=[text, loud],
    )


@dsl.component(base_image=IMAGE)
def exclaim(text: str) -> str:
    return text + "!"


@dsl.pipeline
def shout_pipeline(text: str = "quiet") -> str:
    shouted = shout(text=text)
    return exclaim(text=shouted.outputs["loud"]).output


def test_output_parameter_written_by_the_container_feeds_the_next_task(run) -> None:
    result = run(shout_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "QUIET!"


@dsl.container_component
def produce(out: Output[Dataset]):
    return dsl.ContainerSpec(image="alpine:3.19", command=["sh", "-c", 'echo produced > "$0"'], args=[out.path])


@dsl.container_component
def consume(data: Input[Dataset], result: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image="alpine:3.19", command=["sh", "-c", 'tr a-z A-Z < "$0" > "$1"'], args=[data.path, result],
    )


@dsl.pipeline
def artifact_chain() -> str:
    produced = produce()
    return consume(data=produced.outputs["out"]).outputs["result"]


def test_container_output_artifact_is_registered_and_read_by_a_container(run) -> None:
    # Container components write no executor_output.json: the provisioned artifact still counts.
    result = run(artifact_chain)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "PRODUCED\n"


@dsl.container_component
def exit_with(code: int):
    return dsl.ContainerSpec(image="alpine:3.19", command=["sh", "-c", 'echo "exiting $0"; exit "$0"'], args=[code])


@dsl.pipeline
def exit_pipeline(code: int = 3):
    exit_with(code=code)


def test_non_zero_exit_fails_the_task_and_names_the_code(run) -> None:
    result = run(exit_pipeline)

    assert result["state"] == "FAILED"
    task = tasks(result)["exit-with"]
    assert task["state"] == "FAILED"
    assert "3" in task["error"]


# ------------------------------------------------------------------------------------ image warning


@dsl.pipeline
def two_containers():
    first = produce()
    second = produce()
    second.after(first)


def test_run_warns_once_that_images_are_not_used_locally(settings) -> None:
    from flowdeck.pipelines.api import run_pipeline

    listener = Collector()
    result = run_pipeline(two_containers, {}, settings=settings, listener=listener)

    assert result["state"] == "SUCCEEDED", result["error"]
    warnings = [m for m in listener.messages if "image" in m.lower()]
    assert len(warnings) == 1, listener.messages
    assert "not used" in warnings[0]


def test_listener_sees_task_state_changes(settings) -> None:
    from flowdeck.pipelines.api import run_pipeline

    listener = Collector()
    # without caching: otherwise produce-2 is a cache hit of produce, which goes PENDING -> SUCCEEDED
    result = run_pipeline(two_containers, {}, settings=settings, listener=listener, enable_caching=False)

    assert result["state"] == "SUCCEEDED", result["error"]
    for path in ("produce", "produce-2"):
        states = [state for p, state in listener.changes if p == path]
        assert states[0] == "RUNNING" and states[-1] == "SUCCEEDED", (path, states)


@dsl.pipeline
def python_only(text: str = "x") -> str:
    return exclaim(text=text).output


def test_python_components_do_not_warn_about_images(settings) -> None:
    from flowdeck.pipelines.api import run_pipeline

    listener = Collector()
    result = run_pipeline(python_only, {}, settings=settings, listener=listener)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert not [m for m in listener.messages if "image" in m.lower()], listener.messages


# --------------------------------------------------------------------------------- {{$}} and env


@dsl.container_component
def dump_executor_input(msg: str, out: Output[Dataset]):
    return dsl.ContainerSpec(
        image="alpine:3.19", command=["sh", "-c", 'printf "%s" "$0" > "$1"'], args=["{{$}}", out.path],
    )


@dsl.pipeline
def executor_input_pipeline(msg: str = "m"):
    dump_executor_input(msg=msg)


def test_whole_executor_input_placeholder_is_json(run, settings) -> None:
    result = run(executor_input_pipeline)
    assert result["state"] == "SUCCEEDED", result["error"]

    (artifact,) = task_outputs(settings, result["run_id"], "dump-executor-input")["artifacts"]["out"]
    with open(artifact["uri"]) as handle:
        executor_input = json.load(handle)
    assert executor_input["inputs"]["parameterValues"] == {"msg": "m"}
    assert executor_input["outputs"]["artifacts"]["out"]["artifacts"][0]["uri"] == artifact["uri"]


@dsl.container_component
def read_env(value: dsl.OutputPath(str)):
    return dsl.ContainerSpec(image="alpine:3.19", command=["sh", "-c", 'printf "%s" "$GREETING" > "$0"'],
                             args=[value])


@dsl.pipeline
def env_pipeline() -> str:
    task = read_env()
    task.set_env_variable("GREETING", "hello from env")
    return task.outputs["value"]


def test_env_variables_set_on_the_task_reach_the_container(run) -> None:
    result = run(env_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "hello from env"


@dsl.container_component
def maybe_data(out: Output[Dataset], data: Input[Dataset] = None):
    return dsl.ContainerSpec(
        image="alpine:3.19", command=["sh", "-c", RECORD_ARGS, "sh"],
        args=[out.path, dsl.IfPresentPlaceholder(input_name="data", then=["--data", data.path], else_=["--no-data"])],
    )


@dsl.pipeline
def without_data():
    maybe_data()


@dsl.pipeline
def with_data():
    produced = produce()
    maybe_data(data=produced.outputs["out"])


def test_if_present_on_an_absent_optional_artifact(run, settings) -> None:
    result = run(without_data)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert recorded_args(settings, result["run_id"], "maybe-data") == ["--no-data"]


def test_if_present_on_a_given_optional_artifact_passes_its_path(run, settings) -> None:
    result = run(with_data)

    assert result["state"] == "SUCCEEDED", result["error"]
    flag, path = recorded_args(settings, result["run_id"], "maybe-data")
    assert flag == "--data"
    with open(path) as handle:
        assert handle.read() == "produced\n"


class DuckListener:
    """A listener that is not a Listener subclass: just the two progress methods."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def task_changed(self, node: Any) -> None:
        pass

    def message(self, text: str) -> None:
        self.messages.append(text)


def test_listener_with_only_progress_methods_is_accepted(settings) -> None:
    from flowdeck.pipelines.api import run_pipeline

    listener = DuckListener()
    result = run_pipeline(two_containers, {}, settings=settings, listener=listener)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert len([m for m in listener.messages if "image" in m.lower()]) == 1
