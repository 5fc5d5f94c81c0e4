"""Engine behaviour: parameters of every KFP type, defaults, NamedTuple and OutputPath outputs."""

from typing import Dict, List, NamedTuple, Optional

from kfp import dsl

from helpers import tasks

IMAGE = "python:3.11"



# ----------------------------------------------------------------------------------------- ints


@dsl.component(base_image=IMAGE)
def sum_ints(values: list[int]) -> int:
    # kfp's executor checks the return type: a float sum would fail the task
    return sum(values)


@dsl.pipeline
def sum_pipeline(values: list[int]) -> int:
    return sum_ints(values=values).output


def test_list_of_ints_stays_ints_and_sum_returns_an_int(run) -> None:
    result = run(sum_pipeline, {"values": [1, 2, 3, 4]})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == 10
    assert type(result["outputs"]["Output"]) is int


@dsl.pipeline
def sum_default_pipeline(values: list[int] = [1, 2, 3]) -> int:  # noqa: B006 - kfp needs a literal default
    return sum_ints(values=values).output


def test_list_of_ints_default_sums_to_an_int(run) -> None:
    result = run(sum_default_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == 6


@dsl.component(base_image=IMAGE)
def make_ints(n: int) -> list:
    return [i * 2 for i in range(n)]


@dsl.pipeline
def sum_upstream_pipeline(n: int = 4) -> int:
    return sum_ints(values=make_ints(n=n).output).output


def test_list_of_ints_from_an_upstream_output_sums_to_an_int(run) -> None:
    result = run(sum_upstream_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == 12


@dsl.component(base_image=IMAGE)
def int_kind(x: int) -> str:
    return type(x).__name__


@dsl.pipeline
def int_kind_pipeline(x: int = 3) -> str:
    return int_kind(x=x).output


def test_int_default_compiled_as_float_reaches_the_component_as_int(run) -> None:
    result = run(int_kind_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "int"


# --------------------------------------------------------------------------------------- floats


@dsl.component(base_image=IMAGE)
def halve(x: float) -> float:
    return x / 2


@dsl.pipeline
def halve_pipeline(x: float) -> float:
    return halve(x=x).output


def test_float_parameter_and_output(run) -> None:
    result = run(halve_pipeline, {"x": 3.0})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == 1.5


def test_int_argument_is_accepted_for_a_float_parameter(run) -> None:
    result = run(halve_pipeline, {"x": 5})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == 2.5


# --------------------------------------------------------------------- str, bool, list and dict


@dsl.component(base_image=IMAGE)
def describe(s: str, b: bool, items: list, mapping: dict) -> str:
    import json

    return json.dumps({
        "types": [type(s).__name__, type(b).__name__, type(items).__name__, type(mapping).__name__],
        "values": [s, b, items, mapping],
    }, sort_keys=True)


@dsl.pipeline
def describe_pipeline(s: str, b: bool, items: list, mapping: dict) -> str:
    return describe(s=s, b=b, items=items, mapping=mapping).output


def test_str_bool_list_dict_parameters_arrive_with_their_types(run) -> None:
    import json

    arguments = {"s": "hello world", "b": False, "items": ["a", 1, 2.5, True], "mapping": {"k": [1, 2], "n": None}}
    result = run(describe_pipeline, arguments)

    assert result["state"] == "SUCCEEDED", result["error"]
    described = json.loads(result["outputs"]["Output"])
    assert described["types"] == ["str", "bool", "list", "dict"]
    assert described["values"] == ["hello world", False, ["a", 1, 2.5, True], {"k": [1, 2], "n": None}]


@dsl.component(base_image=IMAGE)
def negate(b: bool) -> bool:
    return not b


@dsl.pipeline
def negate_pipeline(b: bool) -> bool:
    return negate(b=b).output


def test_bool_given_as_string_true_is_a_bool(run) -> None:
    result = run(negate_pipeline, {"b": "true"})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] is False


@dsl.component(base_image=IMAGE)
def make_structures(n: int) -> NamedTuple("Out", [("items", list), ("mapping", dict)]):
    from collections import namedtuple

    out = namedtuple("Out", ["items", "mapping"])
    return out(list(range(n)), {"n": n, "square": n * n})


class Structures(NamedTuple):
    items: list
    mapping: dict


@dsl.pipeline
def structures_pipeline(n: int = 3) -> Structures:
    task = make_structures(n=n)
    return Structures(task.outputs["items"], task.outputs["mapping"])


def test_list_and_dict_outputs_are_json_values_with_ints(run) -> None:
    result = run(structures_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["items"] == [0, 1, 2]
    assert all(type(v) is int for v in result["outputs"]["items"])
    assert result["outputs"]["mapping"] == {"n": 3, "square": 9}


# ------------------------------------------------------------------------------------- defaults


@dsl.component(base_image=IMAGE)
def greet(name: str, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


@dsl.pipeline
def defaults_pipeline(name: str = "world") -> str:
    return greet(name=name).output


def test_pipeline_and_component_defaults_apply(run) -> None:
    result = run(defaults_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "hello world!"


def test_argument_overrides_the_pipeline_default(run) -> None:
    result = run(defaults_pipeline, {"name": "Ada"})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "hello Ada!"


@dsl.component(base_image=IMAGE)
def maybe(x: Optional[int] = None) -> str:
    return "none" if x is None else f"got {x}"


@dsl.pipeline
def optional_pipeline() -> str:
    return maybe().output


def test_optional_parameter_left_unset_is_none(run) -> None:
    result = run(optional_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "none"


# ------------------------------------------------------------------------------ NamedTuple outputs


@dsl.component(base_image=IMAGE)
def divmod_op(a: int, b: int) -> NamedTuple("DivMod", [("quotient", int), ("remainder", int)]):
    from collections import namedtuple

    result = namedtuple("DivMod", ["quotient", "remainder"])
    return result(a // b, a % b)


@dsl.component(base_image=IMAGE)
def join(a: int, b: int) -> str:
    return f"{a}r{b}"


@dsl.pipeline
def divmod_pipeline(a: int, b: int) -> str:
    task = divmod_op(a=a, b=b)
    return join(a=task.outputs["quotient"], b=task.outputs["remainder"]).output


def test_named_tuple_outputs_feed_a_consumer(run) -> None:
    result = run(divmod_pipeline, {"a": 17, "b": 5})

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "3r2"
    assert tasks(result)["divmod-op"]["state"] == "SUCCEEDED"


# ------------------------------------------------------------------------------------- OutputPath


@dsl.component(base_image=IMAGE)
def write_outputs(text: str, message: dsl.OutputPath(str), count: dsl.OutputPath(int)):
    with open(message, "w") as handle:
        handle.write(text.upper())
    with open(count, "w") as handle:
        handle.write(str(len(text)))


@dsl.component(base_image=IMAGE)
def combine(message: str, count: int) -> str:
    assert isinstance(count, int), type(count)
    return f"{message}:{count + 1}"


@dsl.pipeline
def output_path_pipeline(text: str = "abc") -> str:
    task = write_outputs(text=text)
    return combine(message=task.outputs["message"], count=task.outputs["count"]).output


def test_output_path_files_become_typed_output_parameters(run) -> None:
    result = run(output_path_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "ABC:4"


def test_output_path_values_are_recorded_on_the_producer_task(run, settings) -> None:
    from flowdeck.store import open_store

    result = run(output_path_pipeline, {"text": "hello"})
    assert result["state"] == "SUCCEEDED", result["error"]

    store = open_store(settings.resolved_database_url)
    try:
        rows = {t.path: t for t in store.list_tasks(result["run_id"])}
    finally:
        store.close()
    assert rows["write-outputs"].outputs["parameters"] == {"message": "HELLO", "count": 5}


@dsl.component(base_image=IMAGE)
def write_bad_int(count: dsl.OutputPath(int)):
    with open(count, "w") as handle:
        handle.write("not a number")


@dsl.pipeline
def bad_output_pipeline():
    write_bad_int()


def test_output_path_file_that_does_not_parse_fails_the_task(run) -> None:
    result = run(bad_output_pipeline)

    assert result["state"] == "FAILED"
    task = tasks(result)["write-bad-int"]
    assert task["state"] == "FAILED"
    assert "not a number" in task["error"]


@dsl.component(base_image=IMAGE)
def double(x: int) -> int:
    return 2 * x


@dsl.component(base_image=IMAGE)
def describe_all(values: List[int], named: Dict[str, int]) -> str:
    assert all(isinstance(v, int) for v in values), values
    return f"{sum(values)}:{sorted(named.items())}"


@dsl.pipeline
def list_of_outputs() -> str:
    a = double(x=1)
    b = double(x=2)
    return describe_all(values=[a.output, b.output, 10], named={"a": a.output, "b": b.output}).output


def test_lists_and_dicts_of_upstream_outputs_keep_the_outputs_types(run) -> None:
    result = run(list_of_outputs)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "16:[('a', 2), ('b', 4)]"
