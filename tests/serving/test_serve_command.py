"""Conformance: a real `flowdeck serve` process driven by real clients (tritonclient, kserve, curl, httpx).

Predictions must equal the model's own `predict`; health must answer while a sync predict sleeps;
startup mistakes must be one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from helpers import ServeProcess

FLOWDECK = [sys.executable, "-m", "flowdeck.cli.main"]


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[ServeProcess]:
    running = ServeProcess(str(model_dir), "--name", "iris")
    yield running
    running.stop()


def triton_infer(server: ServeProcess, rows: np.ndarray, datatype: str, binary: bool) -> np.ndarray:
    client = triton.InferenceServerClient(server.address)
    tensor = triton.InferInput("input-0", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows, binary_data=binary)
    result = client.infer("iris", [tensor], outputs=[triton.InferRequestedOutput("output-0", binary_data=binary)])
    return result.as_numpy("output-0")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_tritonclient_http_infer(server: ServeProcess, classifier, binary: bool, datatype: str) -> None:
    estimator, rows = classifier
    rows = rows.astype(np.float32 if datatype == "FP32" else np.float64)
    assert triton_infer(server, rows, datatype, binary).tolist() == estimator.predict(rows).tolist()


def test_tritonclient_default_call_and_metadata(server: ServeProcess, classifier) -> None:
    estimator, rows = classifier
    client = triton.InferenceServerClient(server.address)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("iris")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    assert client.get_model_metadata("iris")["inputs"][0]["shape"] == [-1, 4]
    assert client.get_model_repository_index() == [{"name": "iris", "state": "READY", "reason": ""}]
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)  # tritonclient's defaults: binary in, binary_data_output out
    assert client.infer("iris", [tensor], request_id="r1").as_numpy("output-0").tolist() == \
        estimator.predict(rows).tolist()
    with pytest.raises(InferenceServerException, match="model 'nope' does not exist"):
        client.infer("nope", [tensor])



KSERVE_REST_SCRIPT = '''
import asyncio, json, sys
import httpx, numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput


async def error(call):
    try:
        await call
    except httpx.HTTPStatusError as exc:
        return [exc.response.status_code, str(exc).split(", \'")[0]]


async def main(url, rows):
    rows = np.array(rows)
    async with InferenceRESTClient(RESTConfig(protocol="v1")) as client:
        out = {"v1": {"ready": [await client.is_server_live(url), await client.is_model_ready(url, "iris")],
                      "predict": (await client.infer(url, {"instances": rows.tolist()}, model_name="iris")),
                      "unknown": await error(client.infer(url, {"instances": rows.tolist()}, model_name="nope")),
                      "explain": await error(client.explain(url, "iris", {"instances": rows.tolist()}))}}
    async with InferenceRESTClient(RESTConfig(protocol="v2")) as client:
        out["v2"] = {"ready": [await client.is_server_live(url), await client.is_server_ready(url),
                               await client.is_model_ready(url, "iris"), await client.is_model_ready(url, "nope")]}
        typed = InferInput("input-0", list(rows.shape), "FP64", data=rows.reshape(-1).tolist())
        response = await client.infer(url, InferRequest("iris", [typed], request_id="k-1"), model_name="iris")
        out["v2"]["json"] = [response.id, response.outputs[0].as_numpy().tolist()]
        binary = InferInput("input-0", list(rows.shape), "FP64")
        binary.set_data_from_numpy(rows, binary_data=True)
        request = InferRequest("iris", [binary], request_outputs=[RequestedOutput("output-0", {"binary_data": True})])
        headers = {}
        response = await client.infer(url, request, model_name="iris", response_headers=headers)
        out["v2"]["binary"] = ["inference-header-content-length" in headers, response.outputs[0].as_numpy().tolist()]
        out["v2"]["unknown"] = await error(client.infer(url, InferRequest("nope", [typed]), model_name="nope"))
    print(json.dumps(out))

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
'''


def test_kserve_inference_rest_client(server: ServeProcess, classifier, run_in_kserve) -> None:
    """KServe's own REST client, V1 and V2 (JSON and the binary extension both ways), against our server."""
    estimator, rows = classifier
    answer = run_in_kserve(KSERVE_REST_SCRIPT, server.url, json.dumps(rows.tolist()))
    predictions = estimator.predict(rows).tolist()
    assert answer["v1"] == {"ready": [True, True], "predict": {"predictions": predictions},
                            "unknown": [404, "model 'nope' does not exist"],
                            "explain": [501, "model 'iris' has no explainer"]}
    assert answer["v2"] == {"ready": [True, True, True, False], "json": ["k-1", predictions],
                            "binary": [True, predictions], "unknown": [404, "model 'nope' does not exist"]}

def curl(*args: str | bytes) -> tuple[int, Any]:
    """The status and JSON body of one curl call."""
    run = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True, check=True)
    body, _, status = run.stdout.rpartition(b"\n")
    return int(status), orjson.loads(body)


@pytest.mark.parametrize("content_type", [[], ["-H", "Content-Type: application/json"]], ids=["none", "json"])
def test_curl(server: ServeProcess, classifier, content_type: list[str]) -> None:
    """`curl -d` sends application/x-www-form-urlencoded unless told otherwise: both must work, V1 and V2."""
    if shutil.which("curl") is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("curl is not installed; CI must test with it (.ci/run installs it)", pytrace=False)
        pytest.skip("curl is not installed")
    estimator, rows = classifier
    expected = estimator.predict(rows[:2]).tolist()
    v1 = orjson.dumps({"instances": rows[:2].tolist()})
    assert curl(*content_type, "-d", v1, f"{server.url}/v1/models/iris:predict") == (200, {"predictions": expected})
    body = {"id": "c1", "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                                    "data": rows[:2].tolist()}]}
    status, document = curl(*content_type, "-d", orjson.dumps(body), f"{server.url}/v2/models/iris/infer")
    assert status == 200 and document["id"] == "c1" and document["outputs"][0]["data"] == expected
    assert curl(*content_type, "-d", orjson.dumps(body), f"{server.url}/v2/models/nope/infer") == (
        404, {"error": "model 'nope' does not exist"})
    assert curl(f"{server.url}/v1/models/iris") == (200, {"name": "iris", "ready": True})
    assert curl(f"{server.url}/v2/health/ready")[0] == 200


def test_httpx_v1_v2_and_metrics(server: ServeProcess, classifier) -> None:
    estimator, rows = classifier
    with httpx.Client(base_url=server.url) as http:
        answer = http.post("/v2/models/iris/infer", json={"inputs": [{"name": "input-0", "shape": [8, 4],
                                                                      "datatype": "FP64", "data": rows.tolist()}]})
        assert answer.json()["outputs"][0]["data"] == estimator.predict(rows).tolist()
        assert http.post("/v1/models/iris:predict", json={"instances": rows.tolist()}).json() == {
            "predictions": estimator.predict(rows).tolist()}
        bad = http.post("/v2/models/iris/infer", content=b'{"inputs": [{"name": "x"}]}')
        assert bad.status_code == 400 and "unknown datatype" in bad.json()["error"]
        assert "request_predict_seconds_bucket" in http.get("/metrics").text


SLEEPY = '''
import time
from flowdeck.serving import Model


class Sleepy(Model):
    def predict(self, payload, headers=None):
        time.sleep(1)
        return {"predictions": payload["instances"]}
'''


def test_sleeping_predict_does_not_block_health(tmp_path: Path) -> None:
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    running = ServeProcess(str(tmp_path / "sleepy.py"), "--name", "sleepy")
    try:
        with httpx.Client(base_url=running.url) as health:
            health.get("/v2/health/ready")  # connect first
            answers: list[Any] = []
            slow = threading.Thread(target=lambda: answers.append(httpx.post(
                f"{running.url}/v1/models/sleepy:predict", json={"instances": [1]}, timeout=10)))
            slow.start()
            time.sleep(0.2)
            timings = []
            for _ in range(5):
                started = time.perf_counter()
                assert health.get("/v2/health/ready").status_code == 200
                timings.append(time.perf_counter() - started)
            slow.join()
        assert answers[0].json() == {"predictions": [1]}
        assert sorted(timings)[2] < 0.05, timings
    finally:
        running.stop()


FORWARDER = '''
import os
from flowdeck.serving import Model


class Forwarder(Model):
    """A transformer in the older KServe style: predictor_host and protocol set as attributes."""

    def __init__(self, name):
        super().__init__(name)
        self.predictor_host = os.environ["PREDICTOR_HOST"]
        self.protocol = "v2"
        self.ready = True
'''


def test_a_model_with_a_predictor_host_forwards_predict(model_dir: Path, classifier, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    estimator, rows = classifier
    (tmp_path / "forwarder.py").write_text(FORWARDER)
    predictor = ServeProcess(str(model_dir), "--name", "iris")
    monkeypatch.setenv("PREDICTOR_HOST", predictor.address)
    forwarder = ServeProcess(str(tmp_path / "forwarder.py"), "--name", "iris")
    try:
        client = triton.InferenceServerClient(forwarder.address)
        tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
        tensor.set_data_from_numpy(rows, binary_data=True)
        result = client.infer("iris", [tensor], request_id="fw-1")
        assert result.as_numpy("output-0").tolist() == estimator.predict(rows).tolist()
        assert result.get_response()["id"] == "fw-1"
        predictor.stop()
        gone = httpx.post(f"{forwarder.url}/v2/models/iris/infer", json={"inputs": [
            {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": rows[0].tolist()}]})
        assert gone.status_code == 502 and "cannot reach the predictor" in gone.json()["error"], gone.text
    finally:
        forwarder.stop()
        predictor.stop()


def test_workers(model_dir: Path, classifier) -> None:
    estimator, rows = classifier
    running = ServeProcess(str(model_dir), "--name", "iris", "--workers", "2")
    try:
        answer = httpx.post(f"{running.url}/v1/models/iris:predict", json={"instances": rows.tolist()})
        assert answer.json() == {"predictions": estimator.predict(rows).tolist()}
    finally:
        running.stop()


def test_startup_errors_are_one_line(server: ServeProcess, tmp_path: Path) -> None:
    port = server.address.rsplit(":", 1)[1]
    cases = [
        (["serve", str(tmp_path / "missing"), "--name", "m"], 2, f"{tmp_path / 'missing'} does not exist"),
        (["serve", str(tmp_path), "--name", "m"], 1, "no model file in"),
        (["serve", str(tmp_path), "--name", "m", "--format", "caffe"], 1, "unknown model format 'caffe'"),
        (["serve", str(tmp_path), "--name", "m", "--port", port], 1, f"port {port} on 127.0.0.1 is in use"),
    ]
    for args, status, message in cases:
        result = subprocess.run([*FLOWDECK, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == status, result.stderr
        assert result.stderr.startswith("flowdeck: error: ") and message in result.stderr
        assert result.stderr.count("\n") == 1
