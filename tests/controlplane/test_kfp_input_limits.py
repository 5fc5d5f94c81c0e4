"""Values a database cannot hold are one 400 naming the field, the same on SQLite and PostgreSQL.

PostgreSQL refuses strings longer than their column and any NUL byte (a DataError), where SQLite
stores them; the API checks both itself, so neither backend answers a 500 and both answer alike.
Each backend gets one control plane, and one test walks every case through it.
"""

import copy

import httpx
import yaml

from helpers import StartControlPlane

#: The smallest valid pipeline: what matters here is the text around it.
SPEC = {"pipelineInfo": {"name": "empty"}, "root": {"dag": {"tasks": {}}}, "schemaVersion": "2.1.0"}
NUL_FILTER = '{"predicates": [{"operation": 1, "key": "display_name", "string_value": "a\\u0000b"}]}'


def test_over_long_and_nul_values_are_400_naming_the_field(control_plane: StartControlPlane,
                                                           store_url: str) -> None:
    server = control_plane(env={"FLOWDECK_DATABASE_URL": store_url})
    spec, package = copy.deepcopy(SPEC), yaml.safe_dump(SPEC).encode()
    upload = {"uploadfile": ("empty.yaml", package)}
    cases = [
        ("POST", "/experiments", {"json": {"display_name": "x" * 600}},
         "display_name: String should have at most 512 characters"),
        ("POST", "/experiments", {"json": {"display_name": "ns", "namespace": "n" * 300}},
         "namespace: String should have at most 253 characters"),
        ("POST", "/experiments", {"json": {"display_name": "nul\u0000byte"}},
         "display_name: must not contain a NUL byte"),
        ("POST", "/pipelines", {"json": {"name": "p", "description": "a\u0000b"}},
         "description: must not contain a NUL byte"),
        ("POST", "/pipelines/upload", {"params": {"name": "x" * 600}, "files": upload},
         "query parameter name: String should have at most 512 characters"),
        ("POST", "/pipelines/upload", {"params": {"namespace": "n" * 300}, "files": upload},
         "query parameter namespace: String should have at most 253 characters"),
        ("POST", "/pipelines/upload", {"params": {"description": "a\u0000b"}, "files": upload},
         "query parameter description: must not contain a NUL byte"),
        # a name that comes from the file name is checked against its column too
        ("POST", "/pipelines/upload", {"files": {"uploadfile": ("y" * 600 + ".yaml", package)}},
         "name is too long: 600 characters, at most 512"),
        ("POST", "/runs", {"json": {"display_name": "x" * 600, "pipeline_spec": spec}},
         "display_name: String should have at most 512 characters"),
        ("POST", "/runs", {"json": {"display_name": "sa", "service_account": "s" * 600, "pipeline_spec": spec}},
         "service_account: String should have at most 256 characters"),
        ("POST", "/runs", {"json": {"display_name": "x", "experiment_id": "a\u0000b", "pipeline_spec": spec}},
         "experiment_id: must not contain a NUL byte"),
        ("GET", "/runs/a%00b", {}, "path parameter run_id: must not contain a NUL byte"),
        ("GET", "/pipelines/names/a%00b", {}, "path parameter name: must not contain a NUL byte"),
        ("GET", "/experiments", {"params": {"filter": NUL_FILTER}},
         "invalid filter: the value of 'display_name' must not contain a NUL byte"),
        ("GET", "/runs", {"params": {"experiment_id": "a\u0000b"}},
         "query parameter experiment_id: must not contain a NUL byte"),
    ]
    with httpx.Client(base_url=f"{server.url}/apis/v2beta1", timeout=30) as api:
        for method, path, request, expected in cases:
            response = api.request(method, path, **request)
            assert response.status_code == 400, (method, path, response.text)
            assert response.json()["message"] == expected, (method, path)
        # nothing was written by the refused requests, and values that fit still are
        assert "experiments" not in api.get("/experiments").json()
        assert "pipelines" not in api.get("/pipelines").json()
        assert api.post("/experiments", json={"display_name": "x" * 512}).status_code == 200

        # a run's pipeline name comes from its spec, where the API's field checks do not reach: the spec's
        # own validation refuses a name the store cannot hold, on every backend alike
        spec["pipelineInfo"]["name"] = "p" * 300
        response = api.post("/runs", json={"display_name": "long name", "pipeline_spec": spec})
        assert response.status_code == 400, response.text
        assert response.json()["message"].startswith("pipeline_spec: pipelineInfo.name must be a string of at most 256")
