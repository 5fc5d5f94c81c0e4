"""Recurring runs over the KFP API, driven by the real kfp.Client: create, fire, disable, enable, delete."""

import json
from pathlib import Path

import httpx
import kfp
import pytest
from kfp_server_api.exceptions import ApiException

from helpers import wait_for


@pytest.fixture(scope="module")
def experiment_id(kfp_client: kfp.Client) -> str:
    return kfp_client.create_experiment("recurring").experiment_id


def runs_of(kfp_client: kfp.Client, recurring_run_id: str) -> list:
    started = json.dumps({"predicates": [{"operation": 1, "key": "recurring_run_id",
                                          "stringValue": recurring_run_id}]})
    return kfp_client.list_runs(filter=started, page_size=100).runs or []


def test_a_cron_schedule_of_a_version_fires_until_disabled(kfp_client: kfp.Client, package: Path,
                                                           experiment_id: str) -> None:
    pipeline = kfp_client.upload_pipeline(str(package), pipeline_name="recurring-version")
    version, = kfp_client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions
    schedule = kfp_client.create_recurring_run(
        experiment_id, "every second", cron_expression="*/1 * * * * *", max_concurrency=2, no_catchup=True,
        params={"a": 7}, pipeline_id=pipeline.pipeline_id, version_id=version.pipeline_version_id)
    assert (schedule.mode, schedule.status) == ("ENABLE", "ENABLED")
    assert schedule.trigger.cron_schedule.cron == "*/1 * * * * *"
    assert schedule.max_concurrency == "2" and schedule.no_catchup is True
    assert schedule.pipeline_version_reference.pipeline_version_id == version.pipeline_version_id
    assert schedule.runtime_config.parameters == {"a": 7}

    assert wait_for(lambda: len(runs_of(kfp_client, schedule.recurring_run_id)) >= 2, timeout=20, interval=0.2)
    fired = runs_of(kfp_client, schedule.recurring_run_id)[0]
    assert fired.experiment_id == experiment_id
    assert kfp_client.get_run(fired.run_id).runtime_config.parameters == {"a": 7}

    kfp_client.disable_recurring_run(schedule.recurring_run_id)
    disabled = kfp_client.get_recurring_run(schedule.recurring_run_id)
    assert (disabled.mode, disabled.status) == ("DISABLE", "DISABLED")
    assert disabled.updated_at >= disabled.created_at
    count = len(runs_of(kfp_client, schedule.recurring_run_id))
    assert not wait_for(lambda: len(runs_of(kfp_client, schedule.recurring_run_id)) > count + 1, timeout=2.5)

    kfp_client.enable_recurring_run(schedule.recurring_run_id)
    assert kfp_client.get_recurring_run(schedule.recurring_run_id).status == "ENABLED"
    kfp_client.delete_recurring_run(schedule.recurring_run_id)
    with pytest.raises(ApiException) as error:
        kfp_client.get_recurring_run(schedule.recurring_run_id)
    assert error.value.status == 404
    assert runs_of(kfp_client, schedule.recurring_run_id)  # the runs it started stay


def test_a_periodic_schedule_from_a_package_created_disabled(kfp_client: kfp.Client, package: Path,
                                                             experiment_id: str) -> None:
    schedule = kfp_client.create_recurring_run(
        experiment_id, "hourly", interval_second=3600, pipeline_package_path=str(package), enabled=False,
        description="once an hour", start_time="2030-01-01T00:00:00Z")
    assert (schedule.status, schedule.description) == ("DISABLED", "once an hour")
    assert schedule.trigger.periodic_schedule.interval_second == "3600"  # int64 as a string
    assert schedule.trigger.periodic_schedule.start_time.year == 2030
    assert schedule.pipeline_spec["pipelineInfo"]["name"] == "adder"

    listed = kfp_client.list_recurring_runs(experiment_id=experiment_id, sort_by="created_at desc")
    assert listed.recurring_runs[0].recurring_run_id == schedule.recurring_run_id
    assert listed.recurring_runs[0].pipeline_spec is None  # lists leave specs out
    assert kfp_client.get_recurring_run(schedule.recurring_run_id).pipeline_spec["pipelineInfo"]["name"] == "adder"


@pytest.mark.parametrize(("changes", "expected"), [
    ({"trigger": {"cron_schedule": {"cron": "0 * * * *"}}}, "has 5 fields; a KFP cron has 6"),
    ({"trigger": {"cron_schedule": {"cron": "0 0 25 * * *"}}}, "not a valid cron expression"),
    ({"trigger": {"periodic_schedule": {"interval_second": "0"}}}, "must be at least 1"),
    ({"trigger": {}}, "exactly one of cron_schedule and periodic_schedule"),
    ({"trigger": None}, "exactly one of cron_schedule and periodic_schedule"),
    ({"trigger": {"periodic_schedule": {"interval_second": 5, "start_time": "2030-01-02T00:00:00Z",
                                        "end_time": "2030-01-01T00:00:00Z"}}}, "end_time must be after"),
    ({"trigger": {"cron_schedule": {"cron": "0 0 0 30 2 *"}}}, "matches no date"),
    ({"trigger": {"periodic_schedule": {"interval_second": "99999999999999999999"}}}, "must be at most"),
    ({"max_concurrency": "0"}, "max_concurrency must be between 1 and 10"),
    ({"max_concurrency": 11}, "max_concurrency must be between 1 and 10"),
    ({"pipeline_spec": None}, "exactly one pipeline source"),
    ({"display_name": ""}, "display_name is required"),
    ({"runtime_config": {"parameters": {"z": 1}}}, "unknown parameter 'z'"),
    ({"mode": "SOMETIMES"}, "mode"),
    ({"schedule": "daily"}, "schedule"),
])
def test_bad_recurring_runs_are_400(api: httpx.Client, spec: dict, experiment_id: str, changes: dict,
                                    expected: str) -> None:
    body = {"display_name": "bad", "experiment_id": experiment_id, "pipeline_spec": spec, "max_concurrency": "1",
            "trigger": {"periodic_schedule": {"interval_second": "60"}}, "mode": "ENABLE"}
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not None}
    response = api.post("/recurringruns", json=body)
    assert response.status_code == 400, response.text
    assert expected in response.json()["message"]


def test_unknown_recurring_runs_are_404(api: httpx.Client) -> None:
    for method, path in [("GET", "/recurringruns/nope"), ("DELETE", "/recurringruns/nope"),
                         ("POST", "/recurringruns/nope:enable"), ("POST", "/recurringruns/nope:disable")]:
        response = api.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == 5


def test_trigger_times_keep_four_digit_years_and_milliseconds(api: httpx.Client, spec: dict,
                                                              experiment_id: str) -> None:
    body = {"display_name": "since year one", "experiment_id": experiment_id, "pipeline_spec": spec, "mode": "DISABLE",
            "trigger": {"periodic_schedule": {"interval_second": "3600", "start_time": "0001-01-01T00:00:00Z",
                                              "end_time": "2030-01-01T00:00:00.250Z"}}}
    response = api.post("/recurringruns", json=body)
    assert response.status_code == 200, response.text
    periodic = response.json()["trigger"]["periodic_schedule"]
    assert (periodic["start_time"], periodic["end_time"]) == ("0001-01-01T00:00:00Z", "2030-01-01T00:00:00.250Z")
    assert api.delete(f"/recurringruns/{response.json()['recurring_run_id']}").status_code == 200
