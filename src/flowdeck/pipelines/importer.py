"""Importer tasks: registering an existing file or object as an artifact, without running anything.

The URI is a constant or a runtime parameter; `file://` URIs become plain local paths (what KFP's
executor expects), and metadata values may hold placeholders of the importer's own inputs.
"""

from __future__ import annotations

import json
from typing import Any

from flowdeck.pipelines.errors import TaskFailure
from flowdeck.pipelines.executors import artifact_type
from flowdeck.pipelines.placeholders import PlaceholderContext, resolve_string


def imported_artifact(spec: dict[str, Any], parameters: dict[str, Any],
                      pipeline_values: dict[str, str]) -> dict[str, Any]:
    """The artifact an importer executor spec produces, given the task's resolved parameters."""
    source = spec.get("artifactUri") or {}
    uri = source["constant"] if "constant" in source else parameters.get(source.get("runtimeParameter", "uri"))
    if not isinstance(uri, str) or not uri:
        raise TaskFailure("importer has no artifact URI")
    context = PlaceholderContext(executor_input={"inputs": {"parameterValues": parameters}},
                                 pipeline_values=pipeline_values)
    return {
        "name": "artifact",
        "uri": uri.removeprefix("file://"),
        "metadata": _resolve_json(spec.get("metadata") or {}, context),
        "type": artifact_type({"artifactType": spec.get("typeSchema") or {}}),
    }


def _resolve_json(value: Any, context: PlaceholderContext) -> Any:
    """Resolve placeholders in a metadata structure; a value that is one placeholder keeps its JSON type."""
    if isinstance(value, str):
        resolved = resolve_string(value, context)
        stripped = value.strip()
        if resolved != value and stripped.startswith("{{$") and stripped.endswith("}}"):
            try:
                return json.loads(resolved)
            except ValueError:
                return resolved
        return resolved
    if isinstance(value, list):
        return [_resolve_json(v, context) for v in value]
    if isinstance(value, dict):
        return {_resolve_json(k, context): _resolve_json(v, context) for k, v in value.items()}
    return value
