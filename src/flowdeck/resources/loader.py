"""From YAML (or JSON) text to validated resources, with every mistake as one line naming the field.

`read_documents` parses a (multi-document) file; `parse_resource` checks one document against the
registry: the kind and apiVersion, the metadata, and the spec with the kind's own model. A cluster-scoped
kind's document loses any namespace it names (as Kubernetes ignores it). Errors read
like `spec.pytorchReplicaSpecs.Master.replicas: must be 1` or `unknown kind 'PyTorchJobs' ...`, so
`flowdeck apply` and the resource API can show them as they are.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from flowdeck.resources.kinds import Kind
from flowdeck.resources.model import Resource, check_namespace
from flowdeck.resources.registry import Registry, UnknownKind

#: Metadata fields the server sets: accepted in an applied document (so `get -o yaml` output applies
#: again unchanged) and ignored.
SERVER_METADATA = ("uid", "creationTimestamp", "generation", "deletionTimestamp")


class ResourceError(ValueError):
    """A document that is not a valid resource; the message is one line naming what is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def read_documents(text: str, source: str = "<input>") -> list[dict[str, Any]]:
    """The non-empty documents of a YAML stream; a syntax error names its line and column."""
    import yaml

    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ResourceError(f"{source}: {where}{exc.problem or exc.context or 'invalid YAML'}") from None
    except yaml.YAMLError as exc:
        raise ResourceError(f"{source}: invalid YAML: {exc}") from None
    if not documents:
        raise ResourceError(f"{source}: no resources in it")
    for number, document in enumerate(documents, 1):
        if not isinstance(document, dict):
            where = f"document {number}: " if len(documents) > 1 else ""
            raise ResourceError(f"{source}: {where}expected a mapping with apiVersion, kind, metadata and spec, "
                                f"got {_type_name(document)}")
    return documents


def parse_resource(document: Any, registry: Registry) -> tuple[Kind, Resource]:
    """Validate one document; the resource's spec comes back checked and defaulted by its kind."""
    if not isinstance(document, dict):
        raise ResourceError(f"expected a mapping with apiVersion, kind, metadata and spec, got {_type_name(document)}")
    for key in ("apiVersion", "kind"):
        if not document.get(key):
            raise ResourceError(f"{key}: required")
        if not isinstance(document[key], str):
            raise ResourceError(f"{key}: must be a string, got {_type_name(document[key])}")
    try:
        kind = registry.for_document(document["apiVersion"], document["kind"])
    except UnknownKind as exc:
        raise ResourceError(exc.message) from None
    envelope = {key: value for key, value in document.items() if key not in ("spec", "status")}
    metadata = envelope.get("metadata")
    if isinstance(metadata, dict):
        ignored = SERVER_METADATA + (("namespace",) if kind.cluster_scoped else ())
        envelope["metadata"] = {k: v for k, v in metadata.items() if k not in ignored}
    elif metadata is None:
        raise ResourceError("metadata.name: required")
    if isinstance(envelope["metadata"], dict) and envelope["metadata"].get("resourceVersion") is not None:
        envelope["metadata"]["resourceVersion"] = str(envelope["metadata"]["resourceVersion"])
    try:
        resource = Resource.model_validate(envelope)
    except ValidationError as exc:
        raise ResourceError(describe_error(exc, Resource)) from None
    if kind.cluster_scoped:
        resource.metadata.namespace = None
    if kind.governs_namespace:
        try:
            check_namespace(resource.metadata.name)
        except ValueError as exc:
            raise ResourceError(f"metadata.name: a {kind.kind} is named after its namespace: {exc}") from None
    spec = document.get("spec")
    try:
        resource.spec = kind.validate_spec({} if spec is None else spec)
    except ValidationError as exc:
        raise ResourceError(describe_error(exc, kind.spec_model, prefix="spec")) from None
    resource.apiVersion = kind.api_version
    return kind, resource


def field_error(loc: tuple[str | int, ...], message: str, given: Any = None) -> ValidationError:
    """A validation error at `loc` (relative to the model raising it) that reads `message`."""
    return ValidationError.from_exception_data(
        "spec", [{"type": PydanticCustomError("invalid", message), "loc": loc, "input": given}])


def describe_error(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """One line for pydantic's first error: `spec.workers[0].replicas: must be at least 1 (got 0)`."""
    error = exc.errors(include_url=False)[0]
    location = list(error.get("loc", ()))
    path = prefix
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    kind = error.get("type", "")
    if kind == "missing":
        text = "required"
    elif kind == "extra_forbidden":
        text = "unknown field" + _suggestion(model, location)
    else:
        text = str(error.get("msg", "invalid value")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        given = error.get("input")
        if isinstance(given, (str, int, float, bool)) and kind not in ("value_error", "assertion_error"):
            shown = repr(given)
            text += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return f"{path}: {text}" if path else text


def _suggestion(model: type[BaseModel], location: list[Any]) -> str:
    """`(did you mean 'replicas'?)` for a misspelt field, when the model holding it is known."""
    if not location:
        return ""
    current: Any = model
    for part in location[:-1]:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return ""
        annotation = fields[part].annotation
        current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if current is None:
            return ""
    fields = getattr(current, "model_fields", None) or {}
    names = [info.alias or name for name, info in fields.items()]
    close = difflib.get_close_matches(str(location[-1]), names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"
