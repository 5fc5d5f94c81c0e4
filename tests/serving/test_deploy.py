"""A pipeline deploys the model it trained: `flowdeck.serving.deploy.deploy_model` inside a component.

The run's task finds the control plane, its profile and (multi-user) its run token in its environment,
applies an InferenceService for its Model artifact and waits until it is Ready; the test then asks
the service for predictions and compares them with the model's own.
"""

from pathlib import Path

import httpx
import joblib
import kfp
import pytest
from kfp import dsl

from helpers import ControlPlane, start_control_plane


@dsl.component
def train(model: dsl.Output[dsl.Model]):
    import os

    import joblib
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    features, labels = make_classification(n_samples=60, n_features=4, random_state=0)
    os.makedirs(model.path, exist_ok=True)
    joblib.dump(LogisticRegression().fit(features, labels), os.path.join(model.path, "model.joblib"))


@dsl.component
def deploy(model: dsl.Input[dsl.Model]) -> str:
    from flowdeck.serving.deploy import deploy_model

    return deploy_model("trained", model.uri, model_format="sklearn", timeout=120)["modelUrl"]


@dsl.pipeline
def train_and_deploy() -> str:
    return deploy(model=train().outputs["model"]).output


@pytest.fixture
def server(tmp_path: Path) -> ControlPlane:
    server = start_control_plane(tmp_path / "home")
    yield server
    server.stop()


def test_a_pipeline_deploys_the_model_it_trained(server: ControlPlane) -> None:
    client = kfp.Client(host=server.url)
    run = client.create_run_from_pipeline_func(train_and_deploy, experiment_name="deploy")
    finished = client.wait_for_run_completion(run.run_id, timeout=180)
    assert finished.state == "SUCCEEDED", finished.error
    model_url = httpx.get(f"{server.url}/apis/flowdeck/v1/namespaces/default/inferenceservices/trained").json()[
        "status"]["modelUrl"]
    assert model_url.endswith("/v1/models/trained:predict")
    [model_file] = (server.home / "artifacts").rglob("model.joblib")
    rows = [[0.5, -1.0, 2.0, 0.1], [-2.0, 0.3, 0.0, 1.5]]
    answer = httpx.post(model_url, json={"instances": rows})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == joblib.load(model_file).predict(rows).tolist()
