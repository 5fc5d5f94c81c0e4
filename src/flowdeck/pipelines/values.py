"""Parameter values: typing them as the IR declares, and evaluating CEL conditions and selectors.

KFP compiles integer defaults as floats and the Go backend hands executors integral numbers as ints;
`normalize` does the same so that `List[int]` inputs stay ints. Conditions (`triggerPolicy.condition`)
and `parameterExpressionSelector`s are CEL, evaluated with cel-python against the task's inputs.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

from flowdeck.pipelines.errors import PipelineError, TaskFailure

TYPE_NAMES = {
    "NUMBER_INTEGER": "int",
    "NUMBER_DOUBLE": "float",
    "STRING": "str",
    "BOOLEAN": "bool",
    "LIST": "list",
    "STRUCT": "dict",
    "TASK_FINAL_STATUS": "PipelineTaskFinalStatus",
}

#: Types whose values arrive as JSON text when given on a command line.
JSON_TYPED = frozenset({"NUMBER_INTEGER", "NUMBER_DOUBLE", "BOOLEAN", "LIST", "STRUCT"})


def normalize(value: Any) -> Any:
    """Integral floats become ints, recursively (as the KFP backend's protojson does)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    return value


def coerce(value: Any, parameter_type: str, name: str) -> Any:
    """Convert `value` to `parameter_type`, or raise ValueError naming the parameter.

    Text is read as JSON for non-string types (`"3"` is 3 for an int, `"[1, 2]"` a list), and kept
    verbatim for strings, so `-p version=1.10` stays "1.10".
    """

    def wrong() -> ValueError:
        expected = TYPE_NAMES.get(parameter_type, parameter_type)
        return ValueError(f"parameter {name!r} expects {expected}, got {json.dumps(value)}")

    if isinstance(value, str) and parameter_type in JSON_TYPED:
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        if not isinstance(parsed, str):
            return coerce(parsed, parameter_type, name)
    if parameter_type == "NUMBER_INTEGER":
        if isinstance(value, bool):
            raise wrong()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise wrong() from None
        raise wrong()
    if parameter_type == "NUMBER_DOUBLE":
        if isinstance(value, bool):
            raise wrong()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise wrong() from None
        raise wrong()
    if parameter_type == "BOOLEAN":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise wrong()
    if parameter_type == "STRING":
        if value is None:
            raise wrong()
        if isinstance(value, str):
            return value
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    if parameter_type == "LIST":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise wrong() from None
        if not isinstance(value, list):
            raise wrong()
        return normalize(value)
    if parameter_type == "STRUCT":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise wrong() from None
        if not isinstance(value, dict):
            raise wrong()
        return normalize(value)
    return value


def parse_output_text(text: str, parameter_type: str) -> Any:
    """Read an output parameter file written by user code, as the KFP launcher does."""
    if parameter_type == "STRING":
        return text
    if parameter_type == "BOOLEAN":
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    expected = TYPE_NAMES.get(parameter_type, parameter_type)
    try:
        return coerce(json.loads(text), parameter_type, "output")
    except ValueError:
        raise TaskFailure(f"the output file holds {text[:60]!r}, not a {expected}") from None


def coerce_arguments(arguments: dict[str, Any], input_definitions: dict[str, Any]) -> dict[str, Any]:
    """Check and type root arguments; unknown names and wrong types raise PipelineError."""
    declared = input_definitions.get("parameters") or {}
    artifacts = input_definitions.get("artifacts") or {}
    result: dict[str, Any] = {}
    for name, value in arguments.items():
        if name in artifacts:
            raise PipelineError(
                f"{name!r} is an artifact input ({artifacts[name]['artifactType'].get('schemaTitle')}); "
                "pass artifacts with importers, not as parameters"
            )
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise PipelineError(f"unknown parameter {name!r} (the pipeline takes: {known})")
        try:
            result[name] = coerce(value, declared[name]["parameterType"], name)
        except ValueError as exc:
            raise PipelineError(str(exc)) from None
    missing = [
        name for name, definition in declared.items()
        if name not in result and "defaultValue" not in definition and not definition.get("isOptional")
    ]
    if missing:
        raise PipelineError(f"missing value for parameter {', '.join(repr(m) for m in missing)}")
    return result


# -- CEL ------------------------------------------------------------------------------------------------

@lru_cache(maxsize=512)
def _program(expression: str) -> Any:
    import celpy
    from celpy import celtypes

    def parse_json(text: Any) -> Any:
        return celpy.json_to_cel(json.loads(str(text)))

    environment = celpy.Environment()
    try:
        ast = environment.compile(expression)
    except Exception as exc:  # noqa: BLE001
        raise TaskFailure(f"cannot parse condition {expression!r}: {exc}") from None
    return environment.program(ast, functions={"parseJson": parse_json}), celtypes


def evaluate_condition(expression: str, parameters: dict[str, Any]) -> bool:
    """Evaluate a compiler-generated trigger condition against the task's input parameters."""
    import celpy

    program, _ = _program(expression)
    # protobuf Values hold every number as a double; the compiler wraps int operands in int(...)
    activation = {"inputs": celpy.json_to_cel({"parameter_values": _as_doubles(parameters)})}
    try:
        result = program.evaluate(activation)
    except Exception as exc:  # noqa: BLE001
        raise TaskFailure(f"cannot evaluate condition {expression!r}: {exc}") from None
    if isinstance(result, Exception):
        raise TaskFailure(f"cannot evaluate condition {expression!r}: {result}")
    return bool(result)


def _as_doubles(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, list):
        return [_as_doubles(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_doubles(v) for k, v in value.items()}
    return value


def select(expression: str, value: Any) -> Any:
    """Apply a `parameterExpressionSelector` (e.g. `parseJson(string_value)["a"]`) to `value`."""
    import celpy

    program, _ = _program(expression)
    text = value if isinstance(value, str) else json.dumps(value)
    try:
        result = program.evaluate({"string_value": celpy.celtypes.StringType(text)})
    except Exception as exc:  # noqa: BLE001
        raise TaskFailure(f"cannot evaluate selector {expression!r}: {exc}") from None
    if isinstance(result, Exception):
        raise TaskFailure(f"cannot evaluate selector {expression!r}: {result}")
    return normalize(_from_cel(result))


def _from_cel(value: Any) -> Any:
    from celpy import celtypes

    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, (celtypes.IntType, celtypes.UintType)):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.MapType):
        return {str(k): _from_cel(v) for k, v in value.items()}
    if isinstance(value, celtypes.ListType):
        return [_from_cel(v) for v in value]
    if value is None or isinstance(value, celtypes.NullType):
        return None
    return value
