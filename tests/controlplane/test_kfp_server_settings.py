"""The KFP API under server settings: a bearer token (kfp.Client's existing_token), and PostgreSQL as the store."""

from pathlib import Path

import httpx
import kfp
import pytest
from kfp import compiler

from helpers import StartControlPlane, wait_for
from sample_pipelines import adder


def client(url: str, token: str | None = None) -> kfp.Client:
    return kfp.Client(host=url, existing_token=token)


def test_with_a_token_kfp_client_needs_existing_token(control_plane: StartControlPlane) -> None:
    server = control_plane(env={"FLOWDECK_TOKEN": "s3cret"})
    experiment = client(server.url, token="s3cret").create_experiment("with-token")
    assert experiment.experiment_id

    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.get(f"{server.url}/apis/v2beta1/experiments", headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == 16  # gRPC UNAUTHENTICATED, in KFP's error body


@pytest.mark.postgres
def test_experiments_pipelines_and_runs_on_postgresql(control_plane: StartControlPlane, postgres_schema_url: str,
                                                      tmp_path: Path) -> None:
    server = control_plane(env={"FLOWDECK_DATABASE_URL": postgres_schema_url})
    kfp_client = client(server.url)

    package = tmp_path / "adder.yaml"
    compiler.Compiler().compile(adder, str(package))
    pipeline = kfp_client.upload_pipeline(str(package), pipeline_name="pg-adder")
    version, = kfp_client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions
    experiment = kfp_client.create_experiment("pg")
    run = kfp_client.run_pipeline(experiment.experiment_id, "on postgres", pipeline_id=pipeline.pipeline_id,
                                  version_id=version.pipeline_version_id, params={"a": 40})
    assert wait_for(lambda: kfp_client.get_run(run.run_id).state == "SUCCEEDED", timeout=60, interval=0.1), \
        kfp_client.get_run(run.run_id)
    listed = kfp_client.list_runs(experiment_id=experiment.experiment_id, sort_by="created_at desc")
    assert [r.run_id for r in listed.runs] == [run.run_id]
    assert {t.display_name for t in kfp_client.get_run(run.run_id).run_details.task_details} == {"add", "add-2"}
