"""Resolving a task's inputs from its DAG scope, as the KFP driver does.

Parameters come from the enclosing DAG's inputs, sibling tasks' outputs, constants, or the final
status of an exit handler's body; a `parameterExpressionSelector` then picks a field of the value.
Values a producer never made (it failed, or was not triggered) are simply absent, so the
component's declared default applies, or the task fails naming the missing input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowdeck.pipelines.errors import TaskFailure
from flowdeck.pipelines.model import Node
from flowdeck.pipelines.values import coerce, normalize, select

Artifacts = dict[str, list[dict[str, Any]]]
FinalStatus = Callable[[Node | None], dict[str, Any]]


def resolve(node: Node, final_status: FinalStatus) -> tuple[dict[str, Any], Artifacts]:
    """The parameters and artifacts `node` receives, before component defaults."""
    inputs = node.spec.get("inputs") or {}
    parameters: dict[str, Any] = {}
    for name, spec in (inputs.get("parameters") or {}).items():
        found, value = _parameter(node, spec, final_status)
        if found and spec.get("parameterExpressionSelector") and value is not None:
            value = select(spec["parameterExpressionSelector"], value)
        if found:
            parameters[name] = value
    artifacts: Artifacts = {}
    scope = node.scope
    for name, spec in (inputs.get("artifacts") or {}).items():
        value = None
        if "componentInputArtifact" in spec:
            value = scope.artifacts.get(spec["componentInputArtifact"])
        elif "taskOutputArtifact" in spec:
            source = spec["taskOutputArtifact"]
            producer = scope.nodes.get(source["producerTask"])
            value = producer.artifacts_out.get(source["outputArtifactKey"]) if producer else None
        if value is not None:
            artifacts[name] = value
    return parameters, artifacts


def _parameter(node: Node, spec: dict[str, Any], final_status: FinalStatus) -> tuple[bool, Any]:
    scope = node.scope
    if "componentInputParameter" in spec:
        name = spec["componentInputParameter"]
        return (name in scope.parameters), scope.parameters.get(name)
    if "taskOutputParameter" in spec:
        source = spec["taskOutputParameter"]
        producer = scope.nodes.get(source["producerTask"])
        key = source["outputParameterKey"]
        if producer is None or key not in producer.parameters_out:
            return False, None
        return True, producer.parameters_out[key]
    if "runtimeValue" in spec:
        return True, normalize(spec["runtimeValue"].get("constant"))
    if "taskFinalStatus" in spec:
        return True, final_status(scope.nodes.get(spec["taskFinalStatus"]["producerTask"]))
    return False, None


def with_defaults(component: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """Fill declared defaults for absent parameters and give scalars their declared type."""
    definitions = (component.get("inputDefinitions") or {}).get("parameters") or {}
    for name, definition in definitions.items():
        if name not in parameters and "defaultValue" in definition:
            parameters[name] = definition["defaultValue"]
    for name, value in list(parameters.items()):
        definition = definitions.get(name)
        if definition and value is not None and isinstance(value, (int, float, str, bool)):
            try:
                parameters[name] = coerce(value, definition.get("parameterType", ""), name)
            except ValueError:
                pass  # the executor reports a real type mismatch with the component's own words
    return parameters


def check_required(component: dict[str, Any], parameters: dict[str, Any], artifacts: Artifacts) -> None:
    """Raise TaskFailure naming the first required input that has no value."""
    definitions = component.get("inputDefinitions") or {}
    for name, definition in (definitions.get("parameters") or {}).items():
        if name not in parameters and not definition.get("isOptional"):
            raise TaskFailure(f"input parameter {name!r} has no value (its producer did not provide one)")
    for name, definition in (definitions.get("artifacts") or {}).items():
        if name not in artifacts and not definition.get("isOptional"):
            raise TaskFailure(f"input artifact {name!r} has no value (its producer did not provide one)")
