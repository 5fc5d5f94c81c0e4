"""The ASGI app in process: every route, the error table, the repository extension, metrics, batching."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from flowdeck.serving import InferRequest, Model
from flowdeck.serving.app import ServingApp
from flowdeck.serving.batching import BatchConfig
from flowdeck.serving.formats import load_model
from flowdeck.serving.metrics import Metrics
from flowdeck.serving.model import ModelRepository

pytestmark = pytest.mark.anyio


def make_app(*models: Model, batching: BatchConfig | None = None, factory: Any = None) -> ServingApp:
    metrics = Metrics()
    repository = ModelRepository(metrics, batching=batching)
    for model in models:
        repository.add(model, factory)
    return ServingApp(repository, metrics)


def client(app: ServingApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def v2_body(rows: np.ndarray, **extra: Any) -> bytes:
    return orjson.dumps({"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
                                     "data": rows.reshape(-1).tolist()}], **extra})


@pytest.fixture
def sklearn_app(model_dir: Path) -> ServingApp:
    return make_app(load_model(model_dir, "iris"), factory=lambda: load_model(model_dir, "iris"))


async def test_v1_routes_and_predictions_equal_the_models_own(sklearn_app: ServingApp, classifier) -> None:
    estimator, rows = classifier
    async with client(sklearn_app) as http:
        assert (await http.get("/v1/models")).json() == {"models": ["iris"]}
        assert (await http.get("/v1/models/iris")).json() == {"name": "iris", "ready": True}
        for key in ("instances", "inputs"):
            # a form content type, as `curl -d` sends: still parsed as JSON
            answer = await http.post("/v1/models/iris:predict", content=orjson.dumps({key: rows.tolist()}),
                                     headers={"content-type": "application/x-www-form-urlencoded"})
            assert answer.status_code == 200
            assert answer.json() == {"predictions": estimator.predict(rows).tolist()}


async def test_v2_routes(sklearn_app: ServingApp, classifier) -> None:
    estimator, rows = classifier
    async with client(sklearn_app) as http:
        assert (await http.get("/v2/health/live")).json() == {"live": True}
        assert (await http.get("/v2/health/ready")).json() == {"ready": True}
        for path in ("/v2", "/v2/"):
            metadata = (await http.get(path)).json()
            assert metadata["name"] == "flowdeck" and "binary_tensor_data" in metadata["extensions"]
        assert (await http.get("/v2/models/iris/ready")).json() == {"name": "iris", "ready": True}
        metadata = (await http.get("/v2/models/iris")).json()
        assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
        assert metadata["outputs"][0]["name"] == "output-0"
        answer = await http.post("/v2/models/iris/infer", content=v2_body(rows, id="req-1"))
        assert answer.status_code == 200
        document = answer.json()
        assert document["id"] == "req-1" and document["model_name"] == "iris"
        assert "model_version" not in document and "parameters" not in document
        assert document["outputs"] == [{"name": "output-0", "datatype": "INT64", "shape": [8],
                                        "data": estimator.predict(rows).tolist()}]


async def test_v2_binary_in_and_out(sklearn_app: ServingApp, classifier) -> None:
    estimator, rows = classifier
    blob = rows.astype("<f4").tobytes()
    header = orjson.dumps({"inputs": [{"name": "input-0", "shape": [8, 4], "datatype": "FP32",
                                       "parameters": {"binary_data_size": len(blob)}}],
                           "outputs": [{"name": "output-0", "parameters": {"binary_data": True}}]})
    async with client(sklearn_app) as http:
        answer = await http.post("/v2/models/iris/infer", content=header + blob,
                                 headers={"Inference-Header-Content-Length": str(len(header))})
    assert answer.status_code == 200
    length = int(answer.headers["inference-header-content-length"])
    document = orjson.loads(answer.content[:length])
    assert document["outputs"][0]["parameters"] == {"binary_data_size": 64}
    predictions = np.frombuffer(answer.content[length:], "<i8")
    assert predictions.tolist() == estimator.predict(rows.astype(np.float32)).tolist()


class Versioned(Model):
    version = "3"

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> Any:
        return {"doubled": payload.inputs[0].as_numpy() * 2}


async def test_versioned_paths() -> None:
    async with client(make_app(Versioned("v"))) as http:
        assert (await http.get("/v2/models/v/versions/3")).json()["versions"] == ["3"]
        assert (await http.get("/v2/models/v/versions/3/ready")).status_code == 200
        body = orjson.dumps({"inputs": [{"name": "x", "shape": [2], "datatype": "INT32", "data": [1, 2]}]})
        document = (await http.post("/v2/models/v/versions/3/infer", content=body)).json()
        assert document["model_version"] == "3"
        assert document["outputs"] == [{"name": "doubled", "datatype": "INT32", "shape": [2], "data": [2, 4]}]
        answer = await http.get("/v2/models/v/versions/9/ready")
        assert answer.status_code == 404 and answer.json() == {"error": "model 'v' has no version '9'"}


ROWS = [[0.1, 0.2, 0.3, 0.4]]
ERRORS = [
    ("POST", "/v2/models/nope/infer", v2_body(np.array(ROWS)), 404, "model 'nope' does not exist"),
    ("GET", "/v2/models/nope/ready", b"", 404, "model 'nope' does not exist"),
    ("GET", "/v2/models/nope", b"", 404, "model 'nope' does not exist"),
    ("POST", "/v1/models/nope:predict", b'{"instances": []}', 404, "model 'nope' does not exist"),
    ("GET", "/v2/models/iris/versions/1", b"", 404, "has no version '1'"),
    ("POST", "/v2/models/iris/infer", b"{nope", 400, "not valid JSON"),
    ("POST", "/v1/models/iris:predict", b"{nope", 400, "not valid JSON"),
    ("POST", "/v1/models/iris:predict", b'{"instances": 5}', 400, '"instances" must be a list'),
    ("POST", "/v1/models/iris:predict", b'{"rows": []}', 400, 'needs "instances"'),
    ("POST", "/v1/models/iris:predict", b'{"instances": [[1, 2]]}', 400, "X has 2 features"),
    ("POST", "/v2/models/iris/infer", v2_body(np.array([[1.0, 2.0]])), 400, "X has 2 features"),
    ("POST", "/v2/models/iris/infer", v2_body(np.array(ROWS), outputs=[{"name": "nonexistent"}]), 400,
     "has no output 'nonexistent'"),
    ("POST", "/v2/models/iris/infer", b'{"inputs": []}', 400, "'inputs' must be a non-empty list"),
    ("POST", "/v1/models/iris:explain", b'{"instances": [[1, 2, 3, 4]]}', 501, "has no explainer"),
    ("GET", "/v2/models/iris/infer", b"", 405, "GET is not allowed"),
    ("POST", "/v2/health/ready", b"", 405, "POST is not allowed"),
    ("GET", "/v3/anything", b"", 404, "no such endpoint"),
    ("GET", "/v2/models/iris/stats", b"", 404, "no such endpoint"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), ERRORS)
async def test_errors_are_json_with_the_right_status(sklearn_app: ServingApp, method: str, path: str, body: bytes,
                                                     status: int, message: str) -> None:
    async with client(sklearn_app) as http:
        answer = await http.request(method, path, content=body)
    assert answer.status_code == status
    assert message in answer.json()["error"]


async def test_repository_extension(sklearn_app: ServingApp) -> None:
    async with client(sklearn_app) as http:
        assert (await http.post("/v2/repository/index")).json() == [{"name": "iris", "state": "READY", "reason": ""}]
        assert (await http.post("/v2/repository/models/iris/unload")).json() == {"name": "iris", "unload": True}
        assert (await http.post("/v2/repository/index", json={"ready": True})).json() == []
        answer = await http.post("/v2/models/iris/infer", content=v2_body(np.array(ROWS)))
        assert answer.status_code == 503 and "not loaded" in answer.json()["error"]
        assert (await http.post("/v2/repository/models/iris/load")).json() == {"name": "iris", "load": True}
        assert (await http.post("/v2/models/iris/infer", content=v2_body(np.array(ROWS)))).status_code == 200
        assert (await http.post("/v2/repository/models/nope/load")).status_code == 404


class Pipeline(Model):
    """A custom model mixing async and sync steps, as KServe models do."""

    def load(self) -> bool:
        self.offset = 10
        self.ready = True
        return True

    async def preprocess(self, payload: dict, headers: dict[str, str] | None = None) -> list[int]:
        return [value + 1 for value in payload["instances"]]

    def predict(self, payload: list[int], headers: dict[str, str] | None = None) -> list[int]:
        return [value + self.offset for value in payload]

    def postprocess(self, result: list[int], headers: dict[str, str] | None = None) -> dict:
        return {"predictions": result, "trace": headers.get("x-trace") if headers else None}


async def test_custom_model_steps_run_in_order() -> None:
    async with client(make_app(Pipeline("p"))) as http:
        answer = await http.post("/v1/models/p:predict", json={"instances": [1, 2]}, headers={"x-trace": "t1"})
    assert answer.json() == {"predictions": [12, 13], "trace": "t1"}


async def test_model_exceptions_are_500_and_logged() -> None:
    class Broken(Model):
        def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
            raise RuntimeError("boom")

    async with client(make_app(Broken("b"))) as http:
        answer = await http.post("/v1/models/b:predict", json={"instances": [1]})
    assert answer.status_code == 500 and answer.json() == {"error": "internal error: RuntimeError: boom"}


class Sleepy(Model):
    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        time.sleep(1)
        return {"predictions": []}


async def test_sync_predict_does_not_block_health() -> None:
    async with client(make_app(Sleepy("slow"))) as http:
        slow = asyncio.ensure_future(http.post("/v1/models/slow:predict", json={"instances": [1]}))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        assert (await http.get("/v2/health/ready")).status_code == 200
        assert time.perf_counter() - started < 0.05
        assert not slow.done()
        assert (await slow).status_code == 200


async def test_metrics(sklearn_app: ServingApp) -> None:
    async with client(sklearn_app) as http:
        await http.post("/v2/models/iris/infer", content=v2_body(np.array(ROWS)))
        await http.post("/v1/models/iris:predict", json={"instances": [[1, 2]]})
        text = (await http.get("/metrics")).text
    assert 'flowdeck_inference_requests_total{code="200",model="iris",protocol="v2"} 1.0' in text
    assert 'flowdeck_inference_requests_total{code="400",model="iris",protocol="v1"} 1.0' in text
    assert 'request_predict_seconds_count{model_name="iris"} 1.0' in text  # the failed one is not timed
    assert 'flowdeck_inference_requests_in_flight{model="iris"} 0.0' in text


async def test_batching_combines_concurrent_requests_and_keeps_answers_apart(model_dir: Path, classifier) -> None:
    estimator, rows = classifier
    app = make_app(load_model(model_dir, "iris"), batching=BatchConfig(max_batch_size=64, max_latency_ms=20))
    async with client(app) as http:
        requests = [http.post("/v2/models/iris/infer", content=v2_body(rows[i:i + 1 + i % 3], id=str(i)))
                    for i in range(6)]
        requests.append(http.post("/v1/models/iris:predict", json={"instances": [[1.0, 2.0]]}))
        answers = await asyncio.gather(*requests)
        text = (await http.get("/metrics")).text
    for i, answer in enumerate(answers[:6]):
        assert answer.json()["id"] == str(i)
        assert answer.json()["outputs"][0]["data"] == estimator.predict(rows[i:i + 1 + i % 3]).tolist()
    assert answers[6].status_code == 400 and "X has 2 features" in answers[6].json()["error"]
    count = float(text.split('flowdeck_inference_batch_size_count{model="iris"} ')[1].split()[0])
    assert count < 7  # 7 requests in fewer model calls
    assert 'flowdeck_inference_batch_size_bucket{le="1.0",model="iris"}' in text
