"""Conformance of the V2 gRPC API: real `flowdeck serve --grpc-port 0` processes driven by real clients.

tritonclient.grpc and kserve's InferenceGRPCClient against a scikit-learn model, whose predictions
must equal its own `predict`; every datatype through raw and typed contents against an echo model; the
same bad requests over REST and gRPC answered with the same message and the mapped status code; our
message descriptors checked field by field against tritonclient's.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as triton
from google.protobuf import descriptor_pb2
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from flowdeck.serving import oip_proto as pb
from helpers import ServeProcess

FLOWDECK = [sys.executable, "-m", "flowdeck.cli.main"]
ECHO_MODEL = '''
from flowdeck.serving import InferResponse, Model, Tensor


class Echo(Model):
    """Answers each input as an output of the same name; request parameters and x-echo header as parameters."""

    def predict(self, payload, headers=None):
        outputs = [Tensor(t.name, t.datatype, t.shape, t.data) for t in payload.inputs]
        parameters = dict(payload.parameters or {})
        if headers and "x-echo" in headers:
            parameters["x-echo"] = headers["x-echo"]
        return InferResponse(self.name, outputs, parameters=parameters)
'''
#: Datatype -> a small tensor of it (two rows, so shapes are exercised too).
SAMPLES: dict[str, np.ndarray] = {
    "BOOL": np.array([[True, False], [False, True]]),
    "UINT8": np.array([[0, 255], [1, 2]], np.uint8),
    "UINT16": np.array([[0, 65535], [1, 2]], np.uint16),
    "UINT32": np.array([[0, 2**32 - 1], [1, 2]], np.uint32),
    "UINT64": np.array([[0, 2**64 - 1], [1, 2]], np.uint64),
    "INT8": np.array([[-128, 127], [1, 2]], np.int8),
    "INT16": np.array([[-32768, 32767], [1, 2]], np.int16),
    "INT32": np.array([[-(2**31), 2**31 - 1], [1, 2]], np.int32),
    "INT64": np.array([[-(2**63), 2**63 - 1], [1, 2]], np.int64),
    "FP16": np.array([[0.5, -1.25], [65504, 1e-3]], np.float16),
    "FP32": np.array([[0.5, -1.25], [3.4e38, 1e-7]], np.float32),
    "FP64": np.array([[0.5, -1.25], [1.7e308, 1e-300]], np.float64),
    "BF16": np.array([[0.5, -1.25], [3.0e38, 1e-3]], ml_dtypes.bfloat16),
    "BYTES": np.array([[b"", b"\x00\xff binary"], ["ünïcode".encode(), b"x" * 300]], dtype=object),
}
#: Datatype -> its InferTensorContents field (the OIP table; FP16/BF16 have none).
CONTENTS = {"BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
            "UINT64": "uint64_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
            "INT64": "int64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[ServeProcess]:
    running = ServeProcess(str(model_dir), "--name", "iris", grpc=True)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    path = tmp_path_factory.mktemp("echo") / "echo.py"
    path.write_text(ECHO_MODEL)
    running = ServeProcess(f"{path}:Echo", "--name", "echo", "--grpc-max-message-mb", "1", grpc=True)
    yield running
    running.stop()


def call(address: str, rpc: str, message: Any, answer: Any) -> Any:
    """One unary call of GRPCInferenceService with our own messages (for requests clients would not send)."""
    with grpc.insecure_channel(address) as channel:
        method = channel.unary_unary(f"/inference.GRPCInferenceService/{rpc}",
                                     request_serializer=type(message).SerializeToString,
                                     response_deserializer=answer.FromString)
        return method(message, timeout=10)


def rpc_error(address: str, rpc: str, message: Any, answer: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(address, rpc, message, answer)
    return caught.value


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_tritonclient_infer_equals_predict(server: ServeProcess, classifier, datatype: str) -> None:
    estimator, rows = classifier
    rows = rows.astype(np.float32 if datatype == "FP32" else np.float64)
    client = triton.InferenceServerClient(server.address)
    tensor = triton.InferInput("input-0", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows)
    result = client.infer("iris", [tensor], outputs=[triton.InferRequestedOutput("output-0")], request_id="r-1")
    assert result.as_numpy("output-0").tolist() == estimator.predict(rows).tolist()
    assert result.get_response().id == "r-1" and result.get_response().model_name == "iris"


def test_tritonclient_health_and_metadata(server: ServeProcess) -> None:
    client = triton.InferenceServerClient(server.address)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("iris")
    metadata = client.get_server_metadata(as_json=True)
    assert metadata["name"] == "flowdeck" and "model_repository" in metadata["extensions"]
    rest = httpx.get(f"{server.url}/v2/models/iris").json()
    grpc_metadata = client.get_model_metadata("iris", as_json=True)
    assert grpc_metadata["inputs"] == [{**tensor, "shape": [str(dim) for dim in tensor["shape"]]}
                                       for tensor in rest["inputs"]]  # protobuf's JSON writes int64 as strings
    assert grpc_metadata["name"] == "iris" and grpc_metadata["platform"] == rest["platform"]
    assert "protocol=\"grpc\"" in httpx.get(f"{server.url}/metrics").text


def test_tritonclient_unknown_model_and_unimplemented_rpc(server: ServeProcess) -> None:
    client = triton.InferenceServerClient(server.address)
    rows = np.zeros((1, 4), np.float32)
    tensor = triton.InferInput("input-0", [1, 4], "FP32").set_data_from_numpy(rows)
    for attempt, message in [(lambda: client.infer("nope", [tensor]), "model 'nope' does not exist"),
                             (lambda: client.is_model_ready("nope"), "model 'nope' does not exist"),
                             (lambda: client.get_model_metadata("nope"), "model 'nope' does not exist"),
                             (lambda: client.is_model_ready("iris", "7"), "model 'iris' has no version '7'")]:
        with pytest.raises(InferenceServerException) as caught:
            attempt()
        assert caught.value.status() == "StatusCode.NOT_FOUND" and caught.value.message() == message
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_config("iris")
    assert caught.value.status() == "StatusCode.UNIMPLEMENTED"


def test_tritonclient_repository_extension(server: ServeProcess) -> None:
    client = triton.InferenceServerClient(server.address)
    assert [(model.name, model.state) for model in client.get_model_repository_index().models] == [("iris", "READY")]
    client.unload_model("iris")
    try:
        assert not client.is_model_ready("iris")
        assert client.get_model_repository_index().models[0].state == "UNAVAILABLE"
        tensor = triton.InferInput("input-0", [1, 4], "FP32").set_data_from_numpy(np.zeros((1, 4), np.float32))
        with pytest.raises(InferenceServerException) as caught:
            client.infer("iris", [tensor])
        assert caught.value.status() == "StatusCode.UNAVAILABLE" and "not loaded" in caught.value.message()
        assert httpx.get(f"{server.url}/v2/models/iris/ready").status_code == 503  # one repository for both
    finally:
        client.load_model("iris")
    assert client.is_model_ready("iris")
    with pytest.raises(InferenceServerException) as caught:
        client.load_model("nope")
    assert caught.value.status() == "StatusCode.NOT_FOUND"


def as_grpc(model: str, document: dict[str, Any], version: str = "") -> Any:
    """The ModelInferRequest saying what a V2 JSON request says, with typed contents."""
    message = pb.ModelInferRequest(model_name=model, model_version=version, id=document.get("id", ""))
    for item in document["inputs"]:
        tensor = message.inputs.add(name=item["name"], datatype=item["datatype"], shape=item["shape"])
        field = CONTENTS.get(item["datatype"])
        if field:
            getattr(tensor.contents, field).extend(value.encode() if isinstance(value, str) else value
                                                   for value in flatten(item["data"]))
    for output in document.get("outputs", []):
        message.outputs.add(name=output["name"])
    return message


def flatten(data: Any) -> list[Any]:
    return [value for item in data for value in flatten(item)] if isinstance(data, list) else [data]


def v2_input(datatype: str = "FP64", shape: list[int] | None = None, data: Any = None, name: str = "input-0") -> dict:
    return {"name": name, "datatype": datatype, "shape": [1, 4] if shape is None else shape,
            "data": [[0.1, 0.2, 0.3, 0.4]] if data is None else data}


GRPC_CODE = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
             503: grpc.StatusCode.UNAVAILABLE, 501: grpc.StatusCode.UNIMPLEMENTED}
BAD_REQUESTS = [  # (model, version, request, REST status, part of the message)
    ("nope", "", {"inputs": [v2_input()]}, 404, "model 'nope' does not exist"),
    ("iris", "9", {"inputs": [v2_input()]}, 404, "has no version '9'"),
    ("iris", "", {"inputs": []}, 400, "'inputs' must be a non-empty list"),
    ("iris", "", {"inputs": [v2_input("FLOAT")]}, 400, "unknown datatype 'FLOAT'"),
    ("iris", "", {"inputs": [v2_input(shape=[-1, 4])]}, 400, "'shape' must be a list of non-negative integers"),
    ("iris", "", {"inputs": [v2_input(shape=[2, 4])]}, 400, "holds 8 elements"),
    ("iris", "", {"inputs": [v2_input(), v2_input()]}, 400, "input names must be unique"),
    ("iris", "", {"inputs": [v2_input("INT8", data=[[1, 2, 3, 300]])]}, 400, "out of range for INT8"),
    ("iris", "", {"inputs": [v2_input(shape=[1, 2], data=[1.0, 2.0])]}, 400, "X has 2 features"),
    ("iris", "", {"inputs": [v2_input()], "outputs": [{"name": "nonexistent"}]}, 400, "has no output 'nonexistent'"),
]


@pytest.mark.parametrize(("model", "version", "document", "status", "message"), BAD_REQUESTS,
                         ids=[case[4] for case in BAD_REQUESTS])
def test_bad_requests_answer_as_over_rest(server: ServeProcess, model: str, version: str, document: dict, status: int,
                                          message: str) -> None:
    path = f"/v2/models/{model}/versions/{version}/infer" if version else f"/v2/models/{model}/infer"
    rest = httpx.post(server.url + path, content=json.dumps(document))
    assert rest.status_code == status and message in rest.json()["error"]
    error = rpc_error(server.address, "ModelInfer", as_grpc(model, document, version), pb.ModelInferResponse)
    assert error.code() == GRPC_CODE[status]
    assert error.details().replace("its contents", "'data'") == rest.json()["error"]


def test_bad_grpc_only_requests(server: ServeProcess) -> None:
    raw = pb.ModelInferRequest(model_name="iris", raw_input_contents=[b"\x00" * 8])
    raw.inputs.add(name="input-0", datatype="FP32", shape=[1, 4])
    assert "needs 16 bytes but its raw_input_contents entry's size is 8" in rpc_error(
        server.address, "ModelInfer", raw, pb.ModelInferResponse).details()
    raw.inputs.add(name="input-1", datatype="FP32", shape=[1, 4])
    assert "raw_input_contents has 1 entries but the request has 2 inputs" in rpc_error(
        server.address, "ModelInfer", raw, pb.ModelInferResponse).details()
    half = pb.ModelInferRequest(model_name="iris")
    half.inputs.add(name="input-0", datatype="FP16", shape=[1]).contents.fp32_contents.append(1.0)
    error = rpc_error(server.address, "ModelInfer", half, pb.ModelInferResponse)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "only be sent in raw_input_contents" in error.details()
    mixed = pb.ModelInferRequest(model_name="iris")
    mixed.inputs.add(name="input-0", datatype="FP32", shape=[1]).contents.int_contents.append(1)
    assert "FP32 data belongs in contents.fp32_contents" in rpc_error(
        server.address, "ModelInfer", mixed, pb.ModelInferResponse).details()


def test_every_datatype_round_trips_raw(echo: ServeProcess) -> None:
    client = triton.InferenceServerClient(echo.address)
    inputs = [triton.InferInput(datatype.lower(), list(array.shape), datatype).set_data_from_numpy(array)
              for datatype, array in SAMPLES.items()]
    result = client.infer("echo", inputs, parameters={"flag": True, "count": 3, "label": "x"},
                          headers={"x-echo": "hello"})
    for datatype, array in SAMPLES.items():
        echoed = result.as_numpy(datatype.lower())
        assert echoed.dtype == array.dtype and echoed.shape == array.shape, datatype
        assert echoed.tolist() == array.tolist(), datatype
    parameters = result.get_response(as_json=True)["parameters"]
    assert parameters == {"flag": {"bool_param": True}, "count": {"int64_param": "3"},
                          "label": {"string_param": "x"}, "x-echo": {"string_param": "hello"}}


def test_typed_contents_round_trip_as_typed_contents(echo: ServeProcess) -> None:
    document = {"id": "typed", "inputs": [{"name": datatype, "datatype": datatype, "shape": list(array.shape),
                                           "data": [item.decode() if isinstance(item, bytes) else item
                                                    for item in array.reshape(-1).tolist()]}
                                          for datatype, array in SAMPLES.items() if datatype in CONTENTS
                                          and datatype != "BYTES"]}
    message = as_grpc("echo", document)
    message.inputs.add(name="BYTES", datatype="BYTES", shape=[2, 2]).contents.bytes_contents.extend(
        SAMPLES["BYTES"].reshape(-1).tolist())
    answer = call(echo.address, "ModelInfer", message, pb.ModelInferResponse)
    assert answer.id == "typed" and not answer.raw_output_contents
    for output in answer.outputs:
        array = SAMPLES[output.datatype]
        values = list(getattr(output.contents, CONTENTS[output.datatype]))
        assert list(output.shape) == list(array.shape) and values == array.reshape(-1).tolist(), output.datatype


def test_max_message_size(echo: ServeProcess) -> None:
    client = triton.InferenceServerClient(echo.address)
    big = np.zeros(300_000, np.float32)  # 1.2 MB, over the server's 1 MiB limit
    with pytest.raises(InferenceServerException) as caught:
        client.infer("echo", [triton.InferInput("x", [big.size], "FP32").set_data_from_numpy(big)])
    assert caught.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    small = np.zeros(1000, np.float32)
    assert client.infer("echo", [triton.InferInput("x", [1000], "FP32").set_data_from_numpy(small)]).as_numpy(
        "x").shape == (1000,)


def test_grpc_port_in_use_and_workers_are_one_line_errors(model_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        run = subprocess.run([*FLOWDECK, "serve", str(model_dir), "--name", "iris", "--port", "0", "--grpc-port",
                              port], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and run.stderr.count("\n") == 1
    assert f"gRPC port {port} on 127.0.0.1 is in use" in run.stderr
    run = subprocess.run([*FLOWDECK, "serve", str(model_dir), "--name", "iris", "--workers", "2", "--grpc-port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "--grpc-port needs --workers 1" in run.stderr


def _fields(descriptor: Any) -> dict[str, Any]:
    proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(proto)
    return {field.name: (field.number, field.type, field.label, field.type_name.rpartition(".")[2])
            for field in proto.field}


def test_messages_match_tritonclients_descriptors() -> None:
    """Wire compatibility: every field tritonclient knows has our number and type (we add OIP's `properties`)."""
    for name in pb.__dict__:
        ours = getattr(pb, name)
        theirs = getattr(service_pb2, name, None)
        if not hasattr(ours, "DESCRIPTOR") or theirs is None:
            continue
        pending = [(ours.DESCRIPTOR, theirs.DESCRIPTOR)]
        while pending:
            mine, reference = pending.pop()
            expected = _fields(reference)
            assert {key: value for key, value in _fields(mine).items() if key in expected} == expected, mine.full_name
            assert set(_fields(mine)) - set(expected) <= {"properties"}, mine.full_name
            assert set(mine.nested_types_by_name) - set(reference.nested_types_by_name) <= {"PropertiesEntry"}
            pending += [(nested, reference.nested_types_by_name[nested.name]) for nested in mine.nested_types
                        if nested.name != "PropertiesEntry"]


KSERVE_SCRIPT = '''
import asyncio, json, sys
import grpc, numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest

async def main(address, rows):
    rows = np.array(rows)
    async with InferenceGRPCClient(address) as client:
        out = {"ready": [await client.is_server_live(), await client.is_server_ready(),
                         await client.is_model_ready("iris")]}
        tensor = InferInput("input-0", list(rows.shape), "FP64")
        tensor.set_data_from_numpy(rows)
        response = await client.infer(InferRequest("iris", [tensor], request_id="k-1"))
        out["raw"] = [response.id, response.outputs[0].as_numpy().tolist()]
        typed = InferInput("input-0", list(rows.shape), "FP64", data=rows.reshape(-1).tolist())
        out["typed"] = (await client.infer(InferRequest("iris", [typed]))).outputs[0].as_numpy().tolist()
        try:
            await client.infer(InferRequest("nope", [tensor]))
        except grpc.RpcError as error:
            out["unknown"] = error.code().name
    print(json.dumps(out))

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
'''


def test_kserve_inference_grpc_client(server: ServeProcess, classifier, run_in_kserve) -> None:
    estimator, rows = classifier
    answer = run_in_kserve(KSERVE_SCRIPT, server.address, json.dumps(rows.tolist()))
    predictions = estimator.predict(rows).tolist()
    assert answer == {"ready": [True, True, True], "raw": ["k-1", predictions], "typed": predictions,
                      "unknown": "NOT_FOUND"}
