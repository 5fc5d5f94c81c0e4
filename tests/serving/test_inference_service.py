"""InferenceService end to end: a real `flowdeck up`, replicas run by `flowdeck serve`, the router in front.

A user applies KServe YAML, waits for Ready, and predicts through the URL in the status; canaries
split traffic and are promoted or rolled back; a killed replica is replaced while the others answer;
and a restarted control plane serves the service again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from helpers import ControlPlane, process_gone, start_control_plane, wait_for

API = "/apis/flowdeck/v1/namespaces/default/inferenceservices"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    started = start_control_plane(tmp_path_factory.mktemp("isvc") / "home")
    yield started
    assert started.stop() == 0, "\n".join(started.output)


def flowdeck(server: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update(FLOWDECK_URL=server.url, FLOWDECK_HOME=str(server.home))
    return subprocess.run([sys.executable, "-m", "flowdeck.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def isvc(name: str, storage: Path | str, **predictor: Any) -> dict[str, Any]:
    model = {"modelFormat": {"name": "sklearn"}, "storageUri": f"file://{storage}",
             "protocolVersion": predictor.pop("protocol", "v1")}
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": name},
            "spec": {"predictor": {"model": model, **predictor}}}


def apply(server: ControlPlane, document: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / f"{document['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(document))
    result = flowdeck(server, "apply", "-f", str(path))
    assert result.returncode == 0, result.stderr


def get(server: ControlPlane, name: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}{API}/{name}")
    response.raise_for_status()
    return response.json()


def wait_condition(server: ControlPlane, name: str, condition: str, timeout: float = 90.0,
                   reason: str | None = None) -> dict[str, Any]:
    """The resource once its current generation has `condition` True (with `reason`, if given)."""
    def reached() -> dict[str, Any] | None:
        resource = get(server, name)
        status = resource.get("status") or {}
        if status.get("observedGeneration") != resource["metadata"]["generation"]:
            return None
        found = next((c for c in status.get("conditions", []) if c["type"] == condition), None)
        if found and found["status"] == "True" and reason in (None, found["reason"]):
            return resource
        return None

    assert wait_for(reached, timeout=timeout, interval=0.2), (get(server, name).get("status"), server.output[-20:])
    return reached()  # type: ignore[return-value]


def router_table(url: str) -> dict[str, Any]:
    return httpx.get(url + "/.flowdeck/router").json()


def listening_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:`port` (found through /proc, as `ss -p` does)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            inodes.add(fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}").removeprefix("socket:[").removesuffix("]") in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def test_serves_v1_and_v2_through_the_router(server: ControlPlane, model_dir: Path,
                                             classifier: tuple[Any, np.ndarray], tmp_path: Path) -> None:
    apply(server, isvc("iris", model_dir, protocol="v2"), tmp_path)
    resource = wait_condition(server, "iris", "Ready")
    status = resource["status"]
    url = status["url"]
    assert url.startswith("http://127.0.0.1:") and status["address"]["url"] == url
    assert status["modelUrl"] == f"{url}/v2/models/iris/infer"
    predictor = status["components"]["predictor"]
    assert predictor["latestReadyRevision"] == predictor["latestRolledoutRevision"] == "iris-predictor-00001"
    assert predictor["traffic"] == [{"revisionName": "iris-predictor-00001", "percent": 100, "latestRevision": True}]
    assert {c["type"]: c["status"] for c in status["conditions"]} == \
        {"PredictorReady": "True", "IngressReady": "True", "Ready": "True"}
    assert status["modelStatus"]["states"] == {"activeModelState": "Loaded", "targetModelState": "Loaded"}

    model, rows = classifier
    expected = model.predict(rows).tolist()
    v1 = httpx.post(f"{url}/v1/models/iris:predict", json={"instances": rows.tolist()})
    assert v1.status_code == 200 and v1.json() == {"predictions": expected}
    assert v1.headers["x-flowdeck-revision"] == "iris-predictor-00001"
    v2 = httpx.post(status["modelUrl"], json={
        "id": "r1", "inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64",
                                "data": rows.ravel().tolist()}]})
    assert v2.status_code == 200, v2.text
    assert v2.json()["id"] == "r1" and v2.json()["outputs"][0]["data"] == expected
    assert httpx.get(f"{url}/v2/health/ready").status_code == 200
    assert httpx.post(f"{url}/v1/models/nope:predict", json={"instances": [[1, 2, 3, 4]]}).status_code == 404

    listed = flowdeck(server, "isvc", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("iris "))
    assert row.split()[:4] == ["iris", "default", status["modelUrl"], "True"] and "00001 100%" in row
    got = flowdeck(server, "get", "isvc")
    assert got.returncode == 0 and status["modelUrl"] in got.stdout, got.stdout


def test_unsupported_specs_are_refused_with_one_line(server: ControlPlane, model_dir: Path) -> None:
    custom = isvc("custom", model_dir)
    custom["spec"]["predictor"] = {"containers": [{"name": "kserve-container", "image": "me/model:1"}]}
    transformer = isvc("transformed", model_dir)
    transformer["spec"]["transformer"] = {"containers": [{"image": "me/transformer:1", "args": ["--x"]}]}
    tensorflow = isvc("tf", model_dir)
    tensorflow["spec"]["predictor"]["model"]["modelFormat"]["name"] = "tensorflow"
    for document, words in ((custom, "containers are not supported locally"),
                            (transformer, "command is required locally"),
                            (tensorflow, "'tensorflow' is not served locally")):
        response = httpx.post(f"{server.url}/apis/flowdeck/v1/apply", json={"items": [document]})
        assert response.status_code in (400, 422) and words in response.text, response.text


TRANSFORMER = """
import argparse, os
from flowdeck.serving import Model, ModelServer, model_server

parser = argparse.ArgumentParser(parents=[model_server.parser])
parser.add_argument("--scale", type=float, required=True)
args, _ = parser.parse_known_args()


class Scaler(Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    def preprocess(self, payload, headers=None):
        if isinstance(payload, dict):
            return {"instances": [[value * args.scale for value in row] for row in payload["instances"]]}
        for tensor in payload.inputs:
            tensor.data = tensor.data * args.scale
        return payload

    def postprocess(self, result, headers=None):
        if isinstance(result, dict):
            return {**result, "transformed_by": os.environ["TRANSFORMER_TAG"]}
        return result


ModelServer().start([Scaler(args.model_name)])
"""


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_transformer_preprocesses_in_front_of_the_predictor(server: ControlPlane, model_dir: Path, protocol: str,
                                                          classifier: tuple[Any, np.ndarray],
                                                          tmp_path: Path) -> None:
    (tmp_path / "transformer.py").write_text(TRANSFORMER)
    name = f"scaled-{protocol}"
    document = isvc(name, model_dir, protocol=protocol)
    document["spec"]["transformer"] = {"containers": [{
        "name": "kserve-container", "image": "me/transformer:1", "command": ["python", "transformer.py"],
        "args": ["--scale", "-2"], "workingDir": str(tmp_path), "env": [{"name": "TRANSFORMER_TAG", "value": "t1"}]}]}
    apply(server, document, tmp_path)
    status = wait_condition(server, name, "Ready")["status"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["TransformerReady"] == "True"
    model, rows = classifier
    expected = model.predict(rows * -2).tolist()
    assert expected != model.predict(rows).tolist()  # the scaling shows in the answer
    if protocol == "v1":
        answer = httpx.post(status["modelUrl"], json={"instances": rows.tolist()})
        assert answer.status_code == 200 and answer.json() == {"predictions": expected, "transformed_by": "t1"}
        # the predictor's own refusal reaches the client as its 4xx, through the transformer
        wrong = httpx.post(status["modelUrl"], json={"instances": [[1.0, 2.0]]})
        assert wrong.status_code == 400 and "features" in wrong.json()["error"], wrong.text
    else:
        answer = httpx.post(status["modelUrl"], json={"id": "t", "inputs": [
            {"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"] == "t" and answer.json()["outputs"][0]["data"] == expected

    # the transformer dies: the replica (both processes) is replaced and serves again
    transformer_url = router_table(status["url"])["revisions"][0]["replicas"][0]["url"]
    victim = listening_pid(int(transformer_url.rsplit(":", 1)[1]))
    assert victim is not None
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        replicas = [r for revision in router_table(status["url"])["revisions"] for r in revision["replicas"]]
        return len(replicas) == 1 and replicas[0]["up"] and replicas[0]["url"] != transformer_url

    assert wait_for(replaced, timeout=60, interval=0.2), router_table(status["url"])
    assert httpx.post(status["modelUrl"], json={"instances": rows.tolist()} if protocol == "v1" else {
        "inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}]
    }).status_code == 200
    events = httpx.get(f"{server.url}{API}/{name}/describe").json()["events"]
    assert any(e["reason"] == "ReplicaRestarted" and "transformer" in e["message"] for e in events), events
    assert flowdeck(server, "delete", "isvc", name).returncode == 0


def test_canary_split_promotion_and_rollback(server: ControlPlane, model_dir: Path,
                                             classifier: tuple[Any, np.ndarray], tmp_path: Path) -> None:
    second = tmp_path / "second"
    shutil.copytree(model_dir, second)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.joblib").write_bytes(b"not a model")
    rows = classifier[1].tolist()
    apply(server, isvc("canary", model_dir), tmp_path)
    url = wait_condition(server, "canary", "Ready")["status"]["url"]

    def revisions(count: int) -> Counter[str]:
        with httpx.Client() as client:
            answers = [client.post(f"{url}/v1/models/canary:predict", json={"instances": rows})
                       for _ in range(count)]
        assert all(a.status_code == 200 for a in answers), {a.status_code for a in answers}
        return Counter(a.headers["x-flowdeck-revision"] for a in answers)

    # a new model with canaryTrafficPercent 20: both revisions serve, 20/80
    apply(server, isvc("canary", second, canaryTrafficPercent=20), tmp_path)
    status = wait_condition(server, "canary", "Ready")["status"]
    assert status["url"] == url
    assert status["components"]["predictor"]["traffic"] == [
        {"revisionName": "canary-predictor-00001", "percent": 80, "latestRevision": False, "tag": "prev"},
        {"revisionName": "canary-predictor-00002", "percent": 20, "latestRevision": True, "tag": "latest"}]
    split = revisions(1000)
    assert 150 <= split["canary-predictor-00002"] <= 250 and sum(split.values()) == 1000, split

    # promotion: all traffic to the new revision, the old one stopped
    old_replica = router_table(url)["revisions"][0]["replicas"][0]["url"]
    apply(server, isvc("canary", second, canaryTrafficPercent=100), tmp_path)
    status = wait_condition(server, "canary", "Ready")["status"]
    predictor = status["components"]["predictor"]
    assert predictor["latestRolledoutRevision"] == "canary-predictor-00002"
    assert predictor["previousRolledoutRevision"] == "canary-predictor-00001"
    assert revisions(50) == {"canary-predictor-00002": 50}
    assert wait_for(lambda: [r["name"] for r in router_table(url)["revisions"]] == ["canary-predictor-00002"])
    assert wait_for(lambda: listening_pid(int(old_replica.rsplit(":", 1)[1])) is None, timeout=15)

    # a canary that cannot load: rolled back, the promoted revision keeps serving everything
    apply(server, isvc("canary", broken, canaryTrafficPercent=20), tmp_path)
    resource = wait_condition(server, "canary", "Failed")
    conditions = {c["type"]: c for c in resource["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True" and conditions["Ready"]["reason"] == "RolledBack"
    assert "canary-predictor-00003" in conditions["Failed"]["message"]
    assert "before it was ready" in conditions["Failed"]["message"], conditions["Failed"]
    assert resource["status"]["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad"
    assert resource["status"]["components"]["predictor"]["traffic"] == [
        {"revisionName": "canary-predictor-00002", "percent": 100, "latestRevision": False}]
    assert revisions(50) == {"canary-predictor-00002": 50}

    deleted = flowdeck(server, "delete", "isvc", "canary")
    assert deleted.returncode == 0, deleted.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v2/health/ready")


def test_a_killed_replica_is_replaced_while_the_other_answers(server: ControlPlane, model_dir: Path,
                                                             classifier: tuple[Any, np.ndarray],
                                                             tmp_path: Path) -> None:
    apply(server, isvc("pair", model_dir, minReplicas=2, maxReplicas=4), tmp_path)
    url = wait_condition(server, "pair", "Ready")["status"]["url"]
    assert wait_for(lambda: len(router_table(url)["revisions"][0]["replicas"]) == 2)
    before = [r["url"] for r in router_table(url)["revisions"][0]["replicas"]]
    victim = listening_pid(int(before[0].rsplit(":", 1)[1]))
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: process_gone(victim))
    rows = classifier[1].tolist()
    with httpx.Client() as client:
        answers = [client.post(f"{url}/v1/models/pair:predict", json={"instances": rows}) for _ in range(100)]
    assert [a.status_code for a in answers] == [200] * 100

    def replaced() -> bool:
        replicas = router_table(url)["revisions"][0]["replicas"]
        return len(replicas) == 2 and before[0] not in {r["url"] for r in replicas} and all(r["up"] for r in replicas)

    assert wait_for(replaced, timeout=60, interval=0.2), router_table(url)
    events = httpx.get(f"{server.url}{API}/pair/describe").json()["events"]
    assert any(e["reason"] == "ReplicaRestarted" for e in events), events
    assert httpx.post(f"{url}/v1/models/pair:predict", json={"instances": rows}).status_code == 200


def test_serving_again_after_the_control_plane_restarts(model_dir: Path, classifier: tuple[Any, np.ndarray],
                                                         tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = start_control_plane(home)
    try:
        apply(first, isvc("durable", model_dir), tmp_path)
        url = wait_condition(first, "durable", "Ready")["status"]["url"]
    finally:
        assert first.stop() == 0, "\n".join(first.output)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v2/health/ready")  # the replicas and the router stopped with the control plane
    second = start_control_plane(home)
    try:
        started = time.monotonic()
        def serving() -> bool:
            try:
                return httpx.post(f"{url}/v1/models/durable:predict",
                                  json={"instances": classifier[1].tolist()}).status_code == 200
            except httpx.HTTPError:
                return False
        assert wait_for(serving, timeout=60, interval=0.2), "\n".join(second.output)
        assert time.monotonic() - started < 60
        assert wait_condition(second, "durable", "Ready")["status"]["url"] == url
    finally:
        assert second.stop() == 0, "\n".join(second.output)
