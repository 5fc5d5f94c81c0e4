"""Engine behaviour: dsl.If/Elif/Else, dsl.OneOf, dsl.ParallelFor, dsl.Collected and .after()."""

import json
import re
from pathlib import Path
from typing import Any

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from helpers import task_rows, tasks

IMAGE = "python:3.11"



def leaf_tasks(result: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    return {t["path"]: t for t in result["tasks"] if t["name"] == name}



@dsl.component(base_image=IMAGE)
def echo(text: str) -> str:
    print(text)
    return text


@dsl.component(base_image=IMAGE)
def number(n: int) -> int:
    return n


# ----------------------------------------------------------------------------------- If/Elif/Else


@dsl.pipeline
def branches(value: int) -> str:
    checked = number(n=value)
    with dsl.If(checked.output > 10, name="big"):
        big = echo(text="big")
    with dsl.Elif(checked.output > 5, name="medium"):
        medium = echo(text="medium")
    with dsl.Else(name="small"):
        small = echo(text="small")
    return dsl.OneOf(big.output, medium.output, small.output)


def _branch_states(result: dict[str, Any]) -> dict[str, str]:
    """State of each condition group (by display name) and of the echo task inside it."""
    states = {}
    for task in result["tasks"]:
        if task["name"].startswith("condition-") and not task["name"].startswith("condition-branches"):
            states[task["display_name"]] = task["state"]
    for task in result["tasks"]:
        if task["name"].startswith("echo"):
            states["echo:" + task["path"].split("/")[-2]] = task["state"]
    return states


def test_if_branch_runs_and_the_others_are_not_triggered(run) -> None:
    result = run(branches, {"value": 11})

    assert result["state"] == "SUCCEEDED", result["error"]
    states = _branch_states(result)
    assert states["big"] == "SUCCEEDED"
    assert states["medium"] == "NOT_TRIGGERED"
    assert states["small"] == "NOT_TRIGGERED"
    assert result["outputs"]["Output"] == "big"
    assert [t["state"] for t in result["tasks"] if t["name"].startswith("echo")] == ["SUCCEEDED"]


def test_elif_branch_runs_and_the_others_are_not_triggered(run) -> None:
    result = run(branches, {"value": 7})

    assert result["state"] == "SUCCEEDED", result["error"]
    states = _branch_states(result)
    assert (states["big"], states["medium"], states["small"]) == ("NOT_TRIGGERED", "SUCCEEDED", "NOT_TRIGGERED")
    assert result["outputs"]["Output"] == "medium"


def test_else_branch_runs_and_the_others_are_not_triggered(run) -> None:
    result = run(branches, {"value": 1})

    assert result["state"] == "SUCCEEDED", result["error"]
    states = _branch_states(result)
    assert (states["big"], states["medium"], states["small"]) == ("NOT_TRIGGERED", "NOT_TRIGGERED", "SUCCEEDED")
    assert result["outputs"]["Output"] == "small"


def test_tasks_inside_a_branch_that_is_not_taken_never_run(run) -> None:
    result = run(branches, {"value": 1})

    ran = [t for t in result["tasks"] if t["name"].startswith("echo")]
    assert len(ran) == 1
    assert ran[0]["state"] == "SUCCEEDED" and ran[0]["attempts"] == 1


@dsl.pipeline
def string_condition(word: str) -> str:
    with dsl.If(word == "heads"):
        heads = echo(text="got heads")
    with dsl.Else():
        tails = echo(text="got tails")
    return dsl.OneOf(heads.output, tails.output)


def test_condition_on_a_pipeline_string_parameter(run) -> None:
    assert run(string_condition, {"word": "heads"})["outputs"]["Output"] == "got heads"
    assert run(string_condition, {"word": "other"})["outputs"]["Output"] == "got tails"


@dsl.pipeline
def single_if(flag: bool):
    # a channel comparison, not a truth test: kfp turns it into a CEL condition
    with dsl.If(flag == True):  # noqa: E712
        echo(text="on")


def test_plain_if_with_false_condition_succeeds_with_nothing_run(run) -> None:
    result = run(single_if, {"flag": False})

    assert result["state"] == "SUCCEEDED", result["error"]
    (condition,) = [t for t in result["tasks"] if t["name"].startswith("condition-")]
    assert condition["state"] == "NOT_TRIGGERED"
    assert not leaf_tasks(result, "echo")


# --------------------------------------------------------------------------------------- ParallelFor


@dsl.component(base_image=IMAGE)
def square(x: int) -> int:
    return x * x


@dsl.component(base_image=IMAGE)
def total(values: list[int]) -> int:
    return sum(values)


@dsl.pipeline
def static_loop() -> int:
    with dsl.ParallelFor([1, 2, 3]) as x:
        squared = square(x=x)
    return total(values=dsl.Collected(squared.output)).output


def test_parallel_for_over_a_static_list_runs_one_task_per_item(run) -> None:
    result = run(static_loop)

    assert result["state"] == "SUCCEEDED", result["error"]
    squares = leaf_tasks(result, "square")
    assert len(squares) == 3
    assert all(t["state"] == "SUCCEEDED" for t in squares.values())
    assert result["outputs"]["Output"] == 14


def test_iteration_tasks_have_indexed_paths_and_their_own_outputs(run, settings) -> None:
    result = run(static_loop)
    assert result["state"] == "SUCCEEDED", result["error"]

    rows = task_rows(settings, result["run_id"])
    by_index = {}
    for path, row in rows.items():
        match = re.fullmatch(r"for-loop-\d+\[(\d+)\]/square", path)
        if match:
            by_index[int(match.group(1))] = row.outputs["parameters"]["Output"]
    assert by_index == {0: 1, 1: 4, 2: 9}


@dsl.component(base_image=IMAGE)
def make_list(n: int) -> list:
    return list(range(1, n + 1))


@dsl.pipeline
def dynamic_loop(n: int = 4) -> int:
    items = make_list(n=n)
    with dsl.ParallelFor(items.output) as x:
        squared = square(x=x)
    return total(values=dsl.Collected(squared.output)).output


def test_parallel_for_over_an_upstream_output(run) -> None:
    result = run(dynamic_loop)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert len(leaf_tasks(result, "square")) == 4
    assert result["outputs"]["Output"] == 1 + 4 + 9 + 16


def test_parallel_for_over_an_empty_upstream_list_runs_no_iteration(run) -> None:
    result = run(dynamic_loop, {"n": 0})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert not leaf_tasks(result, "square")
    assert result["outputs"]["Output"] == 0


@dsl.component(base_image=IMAGE)
def describe_pair(a: int, b: int) -> str:
    return f"{a}:{b}"


@dsl.pipeline
def dict_loop() -> list:
    with dsl.ParallelFor([{"a": 1, "b": 10}, {"a": 2, "b": 20}, {"a": 3, "b": 30}]) as item:
        described = describe_pair(a=item.a, b=item.b)
    return dsl.Collected(described.output)


def test_parallel_for_over_dicts_with_sub_field_access(run) -> None:
    result = run(dict_loop)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == ["1:10", "2:20", "3:30"]


@dsl.component(base_image=IMAGE)
def sub_field_type(a: int) -> str:
    return type(a).__name__


@dsl.pipeline
def dict_loop_types() -> list:
    with dsl.ParallelFor([{"a": 1}, {"a": 2}]) as item:
        kinds = sub_field_type(a=item.a)
    return dsl.Collected(kinds.output)


def test_int_sub_fields_of_loop_items_arrive_as_ints(run) -> None:
    result = run(dict_loop_types)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == ["int", "int"]


@dsl.component(base_image=IMAGE)
def write_item(text: str, out: Output[Dataset]):
    with open(out.path, "w") as handle:
        handle.write(text)


@dsl.component(base_image=IMAGE)
def read_item(data: Input[Dataset]) -> str:
    with open(data.path) as handle:
        return handle.read().upper()


@dsl.pipeline
def make_artifacts(texts: list) -> list[Dataset]:
    with dsl.ParallelFor(texts) as text:
        written = write_item(text=text)
    return dsl.Collected(written.outputs["out"])


@dsl.pipeline
def artifact_loop() -> list:
    made = make_artifacts(texts=["p", "q", "r"])
    with dsl.ParallelFor(made.output) as artifact:
        read = read_item(data=artifact)
    return dsl.Collected(read.output)


def test_parallel_for_over_a_list_of_artifacts(run) -> None:
    result = run(artifact_loop)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert len(leaf_tasks(result, "read-item")) == 3
    assert result["outputs"]["Output"] == ["P", "Q", "R"]


@dsl.component(base_image=IMAGE)
def multiply(a: int, b: int) -> int:
    return a * b


@dsl.pipeline
def nested_loops():
    with dsl.ParallelFor([1, 2]) as outer:
        with dsl.ParallelFor([10, 20, 30]) as inner:
            multiply(a=outer, b=inner)


def test_nested_parallel_for_runs_the_cross_product(run, settings) -> None:
    result = run(nested_loops)
    assert result["state"] == "SUCCEEDED", result["error"]

    rows = task_rows(settings, result["run_id"])
    products = sorted(r.outputs["parameters"]["Output"] for r in rows.values() if r.name == "multiply")
    assert products == [10, 20, 20, 30, 40, 60]
    paths = sorted(p for p, r in rows.items() if r.name == "multiply")
    indices = [tuple(int(i) for i in re.findall(r"\[(\d+)\]", p)) for p in paths]
    assert indices == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)], paths


# ---------------------------------------------------------------------------------- parallelism


@dsl.component(base_image=IMAGE)
def timed(index: int, directory: str, seconds: float):
    import os
    import time

    start = time.time()
    time.sleep(seconds)
    with open(os.path.join(directory, f"{index}.json"), "w") as handle:
        handle.write(f'[{start}, {time.time()}]')


@dsl.pipeline
def limited_loop(directory: str, seconds: float = 0.6):
    with dsl.ParallelFor([0, 1, 2, 3, 4], parallelism=2) as index:
        timed(index=index, directory=directory, seconds=seconds)


@dsl.pipeline
def unlimited_loop(directory: str, seconds: float = 0.6):
    with dsl.ParallelFor([0, 1, 2, 3]) as index:
        timed(index=index, directory=directory, seconds=seconds)


def _max_overlap(directory: Path) -> tuple[int, int]:
    spans = [json.loads(p.read_text()) for p in directory.glob("*.json")]
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak, len(spans)


def test_parallelism_limit_caps_concurrent_iterations(run, tmp_path: Path) -> None:
    directory = tmp_path / "spans"
    directory.mkdir()

    result = run(limited_loop, {"directory": str(directory)})

    assert result["state"] == "SUCCEEDED", result["error"]
    peak, count = _max_overlap(directory)
    assert count == 5
    assert peak == 2


def test_iterations_without_a_limit_run_concurrently(run, tmp_path: Path) -> None:
    directory = tmp_path / "spans"
    directory.mkdir()

    result = run(unlimited_loop, {"directory": str(directory)})

    assert result["state"] == "SUCCEEDED", result["error"]
    peak, count = _max_overlap(directory)
    assert count == 4
    assert peak >= 3


# ------------------------------------------------------------------------------------ Collected


@dsl.component(base_image=IMAGE)
def slow_identity(x: int) -> int:
    import time

    time.sleep(0.15 * x)  # later items finish first
    return x


@dsl.pipeline
def collected_order() -> list:
    with dsl.ParallelFor([4, 3, 2, 1, 0]) as x:
        echoed = slow_identity(x=x)
    return dsl.Collected(echoed.output)


def test_collected_values_are_ordered_by_iteration_not_by_finish_time(run) -> None:
    result = run(collected_order)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == [4, 3, 2, 1, 0]


@dsl.component(base_image=IMAGE)
def join_words(words: list) -> str:
    return " ".join(words)


@dsl.pipeline
def collected_strings() -> str:
    with dsl.ParallelFor(["a", "b", "c"]) as word:
        echoed = echo(text=word)
    return join_words(words=dsl.Collected(echoed.output)).output


def test_collected_output_feeds_a_downstream_task(run) -> None:
    result = run(collected_strings)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "a b c"


# ---------------------------------------------------------------------------------------- .after()


@dsl.component(base_image=IMAGE)
def write_marker(path: str):
    import time

    time.sleep(0.4)
    with open(path, "w") as handle:
        handle.write("done")


@dsl.component(base_image=IMAGE)
def require_marker(path: str) -> str:
    with open(path) as handle:  # fails if the first task has not finished
        return handle.read()


@dsl.pipeline
def after_pipeline(path: str) -> str:
    first = write_marker(path=path)
    second = require_marker(path=path)
    second.after(first)
    return second.output


def test_after_orders_tasks_without_a_data_dependency(run, tmp_path: Path) -> None:
    result = run(after_pipeline, {"path": str(tmp_path / "marker")})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "done"


@dsl.pipeline
def independent_pipeline(path: str):
    write_marker(path=path)
    require_marker(path=path)


def test_tasks_without_after_start_together(run, tmp_path: Path) -> None:
    # the control for the test above: with no ordering the reader runs before the marker exists
    result = run(independent_pipeline, {"path": str(tmp_path / "marker")})

    assert result["state"] == "FAILED"
    assert tasks(result)["require-marker"]["state"] == "FAILED"
    assert tasks(result)["write-marker"]["state"] == "SUCCEEDED"


@dsl.pipeline
def condition_in_loop() -> list:
    with dsl.ParallelFor([1, 5, 2, 8]) as x:
        with dsl.If(x > 3):
            big = echo(text="big")
        with dsl.Else():
            small = echo(text="small")
        picked = dsl.OneOf(big.output, small.output)
        out = echo(text=picked)
    return dsl.Collected(out.output)


def test_condition_inside_a_loop_is_evaluated_per_iteration(run) -> None:
    result = run(condition_in_loop)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == ["small", "big", "small", "big"]


# ------------------------------------------------------------------------------ float conditions


@dsl.pipeline
def float_threshold(x: float) -> str:
    with dsl.If(x >= 0.5):
        high = echo(text="high")
    with dsl.Else():
        low = echo(text="low")
    return dsl.OneOf(high.output, low.output)


def test_condition_on_a_float_parameter(run) -> None:
    assert run(float_threshold, {"x": 0.75})["outputs"]["Output"] == "high"
    assert run(float_threshold, {"x": 0.25})["outputs"]["Output"] == "low"


def test_condition_on_a_float_parameter_with_an_integral_value(run) -> None:
    result = run(float_threshold, {"x": 1.0})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "high"


# ------------------------------------------------------------------------- global parallelism


@dsl.pipeline
def four_independent(directory: str, seconds: float = 0.6):
    for index in range(4):
        timed(index=index, directory=directory, seconds=seconds)


def test_max_parallel_tasks_setting_caps_concurrent_tasks(tmp_path: Path) -> None:
    from flowdeck.config import Settings
    from flowdeck.pipelines.api import run_pipeline

    directory = tmp_path / "spans"
    directory.mkdir()
    settings = Settings(home=tmp_path / "home", max_parallel_tasks=2)

    result = run_pipeline(four_independent, {"directory": str(directory)}, settings=settings)

    assert result["state"] == "SUCCEEDED", result["error"]
    peak, count = _max_overlap(directory)
    assert count == 4
    assert peak == 2
