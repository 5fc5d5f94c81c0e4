"""Loading resources from YAML: each mistake is one line that names the field, the kind or the line."""

from __future__ import annotations

import textwrap

import pytest
from widget_kind import API_VERSION

from flowdeck.resources import Registry, ResourceError, parse_resource, read_documents


def widget(**spec: object) -> dict:
    return {"apiVersion": API_VERSION, "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 1, **spec}}


def error_of(document: object, kinds: Registry) -> str:
    with pytest.raises(ResourceError) as caught:
        parse_resource(document, kinds)
    message = caught.value.message
    assert "\n" not in message
    return message


def test_a_multi_document_file_gives_every_resource_in_order() -> None:
    text = textwrap.dedent(f"""\
        ---
        apiVersion: {API_VERSION}
        kind: Widget
        metadata: {{name: first}}
        spec: {{size: 1}}
        ---
        # an empty document between two resources is skipped
        ---
        apiVersion: {API_VERSION}
        kind: Widget
        metadata: {{name: second, namespace: team-a, labels: {{tier: gold}}}}
        spec: {{size: 2, color: blue}}
        """)
    documents = read_documents(text, "widgets.yaml")
    assert [d["metadata"]["name"] for d in documents] == ["first", "second"]


def test_parsing_defaults_the_spec_and_the_namespace(kinds: Registry) -> None:
    kind, resource = parse_resource(widget(color="green"), kinds)
    assert kind.kind == "Widget"
    assert resource.metadata.namespace == "default"
    assert resource.spec == {"size": 1, "color": "green", "outcome": "Succeeded", "steps": 1, "parts": {}}


def test_an_older_accepted_api_version_is_stored_as_the_preferred_one(kinds: Registry) -> None:
    _, resource = parse_resource({**widget(), "apiVersion": "test.flowdeck.dev/v1beta1"}, kinds)
    assert resource.apiVersion == API_VERSION


def test_server_fields_and_status_from_get_output_are_ignored(kinds: Registry) -> None:
    """What `flowdeck get -o yaml` printed can be applied again as it is."""
    document = widget()
    document["metadata"].update(uid="abc", generation=4, creationTimestamp="2026-01-01T00:00:00Z",
                                resourceVersion=7)
    document["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    _, resource = parse_resource(document, kinds)
    assert resource.metadata.uid is None and resource.metadata.generation is None
    assert resource.metadata.resourceVersion == "7"  # kept: it guards against overwriting a newer change
    assert resource.status.conditions == []


@pytest.mark.parametrize(("document", "expected"), [
    (widget(parts={"Master": {"replicas": 2}}), "spec.parts.Master.replicas: must be 1"),
    (widget(size=0), "spec.size: Input should be greater than or equal to 1 (got 0)"),
    (widget(size="big"), "spec.size: Input should be a valid integer, unable to parse string as an integer "
                         "(got 'big')"),
    (widget(colour="red"), "spec.colour: unknown field (did you mean 'color'?)"),
    (widget(parts={"a": {"replica": 1}}), "spec.parts.a.replica: unknown field"),
    (widget(color="pink"), "spec.color: Input should be 'red', 'green' or 'blue' (got 'pink')"),
    ({**widget(), "spec": {}}, "spec.size: required"),
    ({**widget(), "spec": [1]}, "spec: Input should be a valid dictionary or instance of WidgetSpec"),
    ({**widget(), "metadata": {}}, "metadata.name: required"),
    ({**widget(), "metadata": {"name": "Bad_Name"}}, "metadata.name: 'Bad_Name' is not a valid name"),
    ({**widget(), "metadata": {"name": "w", "namespace": "Team A"}}, "metadata.namespace: 'Team A' is not a valid"),
    ({**widget(), "metadata": {"name": "w", "nmae": "x"}}, "metadata.nmae: unknown field (did you mean 'name'?)"),
    ({**widget(), "specs": {}}, "specs: unknown field (did you mean 'spec'?)"),
    ({k: v for k, v in widget().items() if k != "kind"}, "kind: required"),
    ({k: v for k, v in widget().items() if k != "apiVersion"}, "apiVersion: required"),
    ({**widget(), "kind": "Gadget"}, "unknown kind 'Gadget' (apiVersion test.flowdeck.dev/v1); known kinds: "
                                     "PipelineRun, Widget"),
    ({**widget(), "kind": "widget"}, "unknown kind 'widget' (apiVersion test.flowdeck.dev/v1); did you mean Widget?"),
    ({**widget(), "kind": "Widgets"}, "unknown kind 'Widgets' (apiVersion test.flowdeck.dev/v1); did you mean Widget?"),
    ({**widget(), "apiVersion": "test.flowdeck.dev/v2"},
     "kind Widget has no apiVersion 'test.flowdeck.dev/v2' (expected test.flowdeck.dev/v1 or "
     "test.flowdeck.dev/v1beta1)"),
    (["not", "a", "mapping"], "expected a mapping with apiVersion, kind, metadata and spec, got a list"),
])
def test_mistakes_are_one_line_naming_the_field_or_kind(kinds: Registry, document: object, expected: str) -> None:
    assert error_of(document, kinds).startswith(expected)


def test_a_yaml_syntax_error_names_the_file_line_and_column() -> None:
    with pytest.raises(ResourceError) as caught:
        read_documents("apiVersion: v1\nkind: Widget\nmetadata: {name: x\n", "bad.yaml")
    assert caught.value.message.startswith("bad.yaml: line 4, column 1: ")


def test_a_file_of_no_resources_or_of_scalars_is_refused() -> None:
    with pytest.raises(ResourceError, match=r"^empty.yaml: no resources in it$"):
        read_documents("# nothing\n---\n", "empty.yaml")
    with pytest.raises(ResourceError, match=r"^list.yaml: document 2: expected a mapping .*, got a string$"):
        read_documents("a: 1\n---\njust text\n", "list.yaml")
