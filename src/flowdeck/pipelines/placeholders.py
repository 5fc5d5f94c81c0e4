"""Resolving KFP placeholders in container commands, arguments and parameter values.

Three forms appear in compiled pipelines: `{{$}}` (the whole ExecutorInput as JSON); path-like
placeholders such as `{{$.inputs.parameters['x']}}` or `{{$.outputs.artifacts['m'].path}}`, plus
pipeline-level ones (`{{$.pipeline_job_name}}`...); and structured `{"Concat": [...]}` /
`{"IfPresent": {...}}` arguments, which are JSON strings standing for one or more arguments.
Values are formatted as the KFP backend does: integral numbers without `.0`, lists and structs as JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from flowdeck.pipelines.errors import TaskFailure

_PLACEHOLDER = re.compile(r"\{\{\$(\.[^{}]*?)?\}\}")
_IO = re.compile(
    r"^\.(inputs|outputs)\.(parameters|artifacts)\['([^']+)'\]"
    r"(?:\.(path|uri|metadata|output_file|value)(?:\['([^']+)'\])?)?$"
)
#: `{{$.inputs.parameters['x'].json_escape[N]}}`: the value escaped N times for use inside a JSON string.
_JSON_ESCAPE = re.compile(r"^(.*)\.json_escape\[(\d+)\]$")


@dataclass
class PlaceholderContext:
    """What placeholders can refer to: the ExecutorInput and run-level values."""

    executor_input: dict[str, Any]
    pipeline_values: dict[str, str] = field(default_factory=dict)

    def provided(self, name: str) -> bool:
        inputs = self.executor_input.get("inputs", {})
        if inputs.get("parameterValues", {}).get(name) is not None:
            return True
        artifacts = inputs.get("artifacts", {}).get(name)
        return bool(artifacts and artifacts.get("artifacts"))


def format_value(value: Any) -> str:
    """A value as the backend puts it on a command line."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    if value is None:
        return ""
    return json.dumps(value)


def resolve_string(text: str, context: PlaceholderContext) -> str:
    """Replace every placeholder inside `text`."""
    if "{{$" not in text:
        return text
    return _PLACEHOLDER.sub(lambda match: _lookup(match.group(1), context), text)


def _lookup(path: str | None, context: PlaceholderContext) -> str:
    if not path:
        return json.dumps(context.executor_input)
    key = path[1:]
    if key in context.pipeline_values:
        return context.pipeline_values[key]
    escaped = _JSON_ESCAPE.match(path)
    if escaped:
        value = _lookup(escaped.group(1) or None, context)
        for _ in range(int(escaped.group(2))):
            value = json.dumps(value)[1:-1]
        return value
    match = _IO.match(path)
    if match is None:
        raise TaskFailure(f"unsupported placeholder {{{{${path}}}}}")
    side, kind, name, attribute, subkey = match.groups()
    if side == "outputs" and kind == "parameters":
        spec = context.executor_input.get("outputs", {}).get("parameters", {}).get(name)
        if spec is None:
            raise TaskFailure(f"placeholder refers to unknown output parameter {name!r}")
        return spec["outputFile"]
    if kind == "parameters":
        return format_value(context.executor_input.get("inputs", {}).get("parameterValues", {}).get(name))
    container = context.executor_input.get(side, {}).get("artifacts", {}).get(name)
    artifacts = (container or {}).get("artifacts") or []
    if attribute is None:
        return json.dumps(artifacts)
    if not artifacts:
        return ""
    artifact = artifacts[0]
    if attribute in ("path", "uri"):
        return artifact.get("uri", "")
    if attribute == "metadata":
        metadata = artifact.get("metadata") or {}
        return format_value(metadata.get(subkey)) if subkey else json.dumps(metadata)
    raise TaskFailure(f"unsupported placeholder {{{{${path}}}}}")


def resolve_arguments(arguments: list[str], context: PlaceholderContext) -> list[str]:
    """Resolve a command or args list; structured placeholders may add or drop arguments."""
    resolved: list[str] = []
    for argument in arguments:
        for item in _expand_structured(argument, context):
            resolved.append(resolve_string(item, context))
    return resolved


def _expand_structured(argument: Any, context: PlaceholderContext) -> list[str]:
    if isinstance(argument, str):
        stripped = argument.lstrip()
        if stripped.startswith(('{"Concat"', '{"IfPresent"')):
            try:
                structure = json.loads(argument)
            except ValueError:
                return [argument]
            return _expand_structure(structure, context)
        return [argument]
    return _expand_structure(argument, context)


def _expand_structure(node: Any, context: PlaceholderContext) -> list[str]:
    if node is None:
        return []
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        result: list[str] = []
        for item in node:
            result.extend(_expand_structure(item, context))
        return result
    if isinstance(node, dict) and "Concat" in node:
        parts: list[str] = []
        for item in node["Concat"]:
            parts.extend(resolve_string(p, context) for p in _expand_structure(item, context))
        return ["".join(parts)]
    if isinstance(node, dict) and "IfPresent" in node:
        branch = node["IfPresent"]
        chosen = branch.get("Then") if context.provided(branch["InputName"]) else branch.get("Else")
        return _expand_structure(chosen, context)
    raise TaskFailure(f"unsupported structured placeholder {json.dumps(node)[:80]}")


_INPUT_PARAMETER = re.compile(r"^\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}$")


def resolve_parameter_values(parameters: dict[str, Any], context: PlaceholderContext,
                             templates: set[str]) -> dict[str, Any]:
    """Resolve placeholders inside the parameter values named in `templates` (the compiler's constants).

    A string constant is an f-string of upstream outputs: it becomes text. Inside a list or struct
    constant (`[a.output, b.output]`), an element that is exactly one input placeholder becomes that
    input's value with its own type, so a list of int outputs stays a list of ints. Values that came
    from users or upstream tasks are data, never templates, and stay as they are.
    """
    resolved = dict(parameters)
    for name in templates & parameters.keys():
        value = parameters[name]
        resolved[name] = resolve_string(value, context) if isinstance(value, str) else _resolve_nested(value, context)
    return resolved


def _resolve_nested(value: Any, context: PlaceholderContext) -> Any:
    if isinstance(value, list):
        return [_resolve_nested(item, context) for item in value]
    if isinstance(value, dict):
        return {key: _resolve_nested(item, context) for key, item in value.items()}
    if isinstance(value, str):
        match = _INPUT_PARAMETER.match(value)
        values = context.executor_input.get("inputs", {}).get("parameterValues", {})
        if match and match.group(1) in values:
            return values[match.group(1)]
        return resolve_string(value, context)
    return value
