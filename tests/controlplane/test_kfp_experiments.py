"""Experiments over the KFP API, driven by the real kfp.Client (raw HTTP only for what it cannot send)."""

import base64
import json

import httpx
import kfp
import pytest
from kfp import dsl
from kfp_server_api.exceptions import ApiException


@dsl.component
def noop():
    pass


@dsl.pipeline
def tiny():
    noop()


def test_create_get_and_find_by_name(kfp_client: kfp.Client) -> None:
    created = kfp_client.create_experiment("exp-create", description="first")
    assert created.experiment_id and created.display_name == "exp-create"
    assert created.storage_state == "AVAILABLE"
    assert created.created_at.tzinfo is not None

    by_id = kfp_client.get_experiment(experiment_id=created.experiment_id)
    assert (by_id.display_name, by_id.description) == ("exp-create", "first")
    # by name: the client lists with {"predicates": [{"operation": 1, "key": "display_name", "stringValue": ...}]}
    assert kfp_client.get_experiment(experiment_name="exp-create").experiment_id == created.experiment_id
    # creating it again returns the existing one (the client looks it up first)
    assert kfp_client.create_experiment("exp-create").experiment_id == created.experiment_id


def test_a_duplicate_name_is_a_conflict(api: httpx.Client) -> None:
    assert api.post("/experiments", json={"display_name": "exp-dup"}).status_code == 200
    response = api.post("/experiments", json={"display_name": "exp-dup"})
    assert response.status_code == 409
    assert response.json()["code"] == 6  # gRPC ALREADY_EXISTS
    assert "exp-dup" in response.json()["message"]


def test_list_sorts_filters_and_pages(kfp_client: kfp.Client) -> None:
    names = [f"exp-page-{i}" for i in range(5)]
    for name in names:
        kfp_client.create_experiment(name)
    substring = json.dumps({"predicates": [{"operation": "IS_SUBSTRING", "key": "display_name",
                                            "string_value": "exp-page-"}]})
    seen, token = [], ""
    while True:
        page = kfp_client.list_experiments(page_size=2, page_token=token, sort_by="display_name desc",
                                           filter=substring)
        assert page.total_size == 5
        assert len(page.experiments) <= 2
        seen += [e.display_name for e in page.experiments]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(names, reverse=True)

    in_filter = json.dumps({"predicates": [{"operation": 8, "key": "display_name",
                                            "stringValues": {"values": ["exp-page-1", "exp-page-3"]}}]})
    found = kfp_client.list_experiments(filter=in_filter, sort_by="created_at")
    assert [e.display_name for e in found.experiments] == ["exp-page-1", "exp-page-3"]

    since = found.experiments[1].created_at.isoformat()  # timestamps compare as times, not as text
    newer = json.dumps({"predicates": [json.loads(substring)["predicates"][0],
                                       {"operation": "GREATER_THAN_EQUALS", "key": "created_at",
                                        "timestamp_value": since}]})
    assert {e.display_name for e in kfp_client.list_experiments(filter=newer).experiments} >= {"exp-page-3",
                                                                                             "exp-page-4"}
    epoch = json.dumps({"predicates": [{"operation": 3, "key": "created_at", "long_value": "0"}]})
    assert kfp_client.list_experiments(filter=epoch).total_size >= 5


def test_archiving_an_experiment_archives_its_runs_and_unarchive_restores_only_it(
        kfp_client: kfp.Client, tmp_path) -> None:
    experiment = kfp_client.create_experiment("exp-archive")
    run = kfp_client.create_run_from_pipeline_func(tiny, experiment_name="exp-archive")

    kfp_client.archive_experiment(experiment.experiment_id)
    assert kfp_client.get_experiment(experiment_id=experiment.experiment_id).storage_state == "ARCHIVED"
    assert kfp_client.get_run(run.run_id).storage_state == "ARCHIVED"
    archived = json.dumps({"predicates": [{"operation": "EQUALS", "key": "storage_state",
                                           "string_value": "ARCHIVED"}]})
    assert [e.display_name for e in kfp_client.list_experiments(filter=archived).experiments] == ["exp-archive"]
    with pytest.raises(ApiException) as error:  # no new runs in an archived experiment
        kfp_client.create_run_from_pipeline_func(tiny, experiment_name="exp-archive")
    assert error.value.status == 400 and "archived" in error.value.body

    kfp_client.unarchive_experiment(experiment.experiment_id)
    assert kfp_client.get_experiment(experiment_id=experiment.experiment_id).storage_state == "AVAILABLE"
    assert kfp_client.get_run(run.run_id).storage_state == "ARCHIVED"  # as in KFP: runs stay archived
    kfp_client.unarchive_run(run.run_id)
    assert kfp_client.get_run(run.run_id).storage_state == "AVAILABLE"


def test_delete(kfp_client: kfp.Client) -> None:
    experiment = kfp_client.create_experiment("exp-delete")
    kfp_client.delete_experiment(experiment.experiment_id)
    with pytest.raises(ApiException) as error:
        kfp_client.get_experiment(experiment_id=experiment.experiment_id)
    assert error.value.status == 404


def test_json_names_are_accepted_and_unknown_fields_rejected(api: httpx.Client) -> None:
    camel = api.post("/experiments", json={"displayName": "exp-camel", "description": "d"})
    assert camel.status_code == 200
    assert camel.json()["display_name"] == "exp-camel"  # answers use the proto (snake_case) names

    unknown = api.post("/experiments", json={"display_name": "exp-unknown", "colour": "red"})
    assert unknown.status_code == 400
    assert "colour" in unknown.json()["message"]
    assert api.post("/experiments", json={"description": "no name"}).status_code == 400
    assert api.post("/experiments", content=b"{not json", headers={"content-type": "application/json"}
                    ).status_code == 400


@pytest.mark.parametrize(("params", "expected"), [
    ({"filter": "{not json"}, "invalid filter: not valid JSON"),
    ({"filter": json.dumps({"predicates": [{"operation": 1, "key": "colour", "string_value": "x"}]})},
     "cannot filter experiments by 'colour'"),
    ({"filter": json.dumps({"predicates": [{"operation": 42, "key": "display_name", "string_value": "x"}]})},
     "unknown operation 42"),
    ({"filter": json.dumps({"predicates": [{"operation": 1, "key": "display_name"}]})},
     "needs exactly one value field"),
    ({"filter": json.dumps({"predicates": [{"operation": 1, "key": "created_at", "string_value": "yesterday"}]})},
     "not an RFC 3339 timestamp"),
    ({"filter": json.dumps({"predicates": [{"operation": 9, "key": "created_at", "string_value": "2026"}]})},
     "IS_SUBSTRING applies to text fields only"),
    ({"filter": json.dumps({"predicates": [{"operation": 3, "key": "created_at", "long_value": "9" * 20}]})},
     "out of range"),
    ({"filter": json.dumps({"predicates": [{"operation": 8, "key": "display_name", "string_value": "x"}]})},
     "IN on 'display_name' takes a list"),
    ({"filter": json.dumps({"filters": []})}, "unknown field 'filters'"),
    ({"sort_by": "colour desc"}, "cannot sort experiments by 'colour'"),
    ({"sort_by": "display_name sideways"}, "invalid sort_by"),
    ({"page_token": "not-a-token"}, "invalid page token"),
    ({"page_token": base64.urlsafe_b64encode(json.dumps(
        {"r": "experiments", "p": [[1, 2, 3, 4]], "s": "created_at", "d": False, "a": [None, "x"]}).encode()).decode()},
     "invalid page token"),
    ({"page_size": "-1"}, "page_size must be positive"),
    ({"page_size": "ten"}, "page_size"),
])
def test_bad_list_requests_are_400_naming_the_problem(api: httpx.Client, params: dict, expected: str) -> None:
    response = api.get("/experiments", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert expected in body["message"]
    assert body["code"] == 3 and body["error"] == body["message"]  # KFP's error body: gRPC INVALID_ARGUMENT


@pytest.mark.parametrize("path", ["/experiments", "/pipelines", "/runs", "/recurringruns"])
def test_a_missing_body_is_named(api: httpx.Client, path: str) -> None:
    response = api.post(path)
    assert response.status_code == 400
    assert response.json()["message"] == "request body is required (JSON)"


def test_unknown_ids_are_404_in_kfp_error_shape(api: httpx.Client) -> None:
    for method, path in [("GET", "/experiments/nope"), ("DELETE", "/experiments/nope"),
                         ("POST", "/experiments/nope:archive"), ("POST", "/experiments/nope:unarchive")]:
        response = api.request(method, path)
        assert response.status_code == 404, (method, path)
        body = response.json()
        assert body["code"] == 5 and "nope" in body["message"]
        assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.Status"
