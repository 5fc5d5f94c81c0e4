"""The V1 and V2 REST codecs: every datatype both ways, the binary extension, and every bad request a 400."""

from __future__ import annotations

import json
import struct

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ml_dtypes import bfloat16

from flowdeck.serving import v1, v2
from flowdeck.serving.errors import ServingError
from flowdeck.serving.tensors import DTYPES, InferResponse, Tensor

NUMERIC = [name for name in DTYPES if name not in ("BYTES", "BOOL")]


def binary_body(document: dict, *blobs: bytes) -> tuple[bytes, bytes]:
    header = orjson.dumps(document)
    return header + b"".join(blobs), str(len(header)).encode()


def sample(datatype: str) -> np.ndarray:
    if datatype == "BYTES":
        return np.array([b"a", b"", "é".encode(), b"xyz", b"\x00\x01", b"q"], dtype=object).reshape(2, 3)
    if datatype == "BOOL":
        return np.array([[True, False, True], [False, False, True]])
    return np.arange(6).reshape(2, 3).astype(DTYPES[datatype])


def bytes_blob(items) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def raw(datatype: str, array: np.ndarray) -> bytes:
    return bytes_blob(array.reshape(-1)) if datatype == "BYTES" else array.tobytes()


@pytest.mark.parametrize("datatype", list(DTYPES))
def test_every_datatype_decodes_from_binary_and_json(datatype: str) -> None:
    expected = sample(datatype)
    blob = raw(datatype, expected)
    tensor = {"name": "x", "datatype": datatype, "shape": [2, 3], "parameters": {"binary_data_size": len(blob)}}
    body, length = binary_body({"inputs": [tensor]}, blob)
    decoded = v2.decode_request("m", body, length).inputs[0].as_numpy()
    assert decoded.dtype == DTYPES[datatype] and decoded.shape == (2, 3)
    assert np.array_equal(decoded, expected)

    if datatype == "BYTES":
        data = [item.decode() for item in expected.reshape(-1)]
    else:
        data = expected.astype(np.float64 if datatype in ("FP16", "BF16") else expected.dtype).tolist()
    body = orjson.dumps({"inputs": [{"name": "x", "datatype": datatype, "shape": [2, 3], "data": data}]})
    decoded = v2.decode_request("m", body).inputs[0].data
    assert decoded.dtype == DTYPES[datatype] and np.array_equal(decoded, expected)


@pytest.mark.parametrize("datatype", list(DTYPES))
@pytest.mark.parametrize("binary", [False, True])
def test_every_datatype_encodes_as_json_and_binary(datatype: str, binary: bool) -> None:
    array = sample(datatype)
    request = v2.decode_request("m", orjson.dumps({"inputs": [{"name": "x", "datatype": "INT8", "shape": [1],
                                                                "data": [1]}],
                                                     "parameters": {"binary_data_output": binary}}))
    body, length = v2.encode_response(InferResponse("m", [Tensor.from_numpy("y", array)], id="7"), request)
    if binary:
        header = orjson.loads(body[:length])
        output = header["outputs"][0]
        assert output["parameters"]["binary_data_size"] == len(body) - length
        assert body[length:] == raw(datatype, array)
    else:
        assert length is None
        header = orjson.loads(body)
        output = header["outputs"][0]
        expected = array.reshape(-1)
        if datatype == "BYTES":
            expected = np.array([item.decode() for item in expected])
        elif datatype in ("FP16", "BF16"):
            expected = expected.astype(np.float32)
        assert output["data"] == expected.tolist()
    assert header["id"] == "7" and output["datatype"] == datatype and output["shape"] == [2, 3]


def test_non_utf8_bytes_output_needs_binary() -> None:
    request = v2.decode_request("m", b'{"inputs":[{"name":"x","datatype":"INT8","shape":[0],"data":[]}]}')
    with pytest.raises(ServingError, match="not UTF-8; request it with binary_data"):
        v2.encode_response(InferResponse("m", [Tensor.from_numpy("y", np.array([b"\xff"], dtype=object))]),
                           request)


def test_json_data_may_be_nested_or_flat_and_id_is_echoed() -> None:
    for data in ([1, 2, 3, 4], [[1, 2], [3, 4]]):
        request = v2.decode_request("m", orjson.dumps(
            {"id": "abc", "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": data}]}))
        assert request.id == "abc"
        assert request.inputs[0].data.tolist() == [[1, 2], [3, 4]]


def test_mixed_binary_and_json_inputs_and_requested_outputs() -> None:
    blob = np.array([1.5, 2.5], dtype="<f8").tobytes()
    body, length = binary_body({
        "inputs": [{"name": "a", "datatype": "INT32", "shape": [1], "data": [9]},
                   {"name": "b", "datatype": "FP64", "shape": [2], "parameters": {"binary_data_size": 16}}],
        "outputs": [{"name": "q", "parameters": {"binary_data": True}}, {"name": "p"}]}, blob)
    request = v2.decode_request("m", body, length)
    assert request.inputs[0].data.tolist() == [9] and request.inputs[1].data.tolist() == [1.5, 2.5]
    response = InferResponse("m", [Tensor.from_numpy("p", [1, 2]), Tensor.from_numpy("q", np.array([3.0]))])
    out, header_length = v2.encode_response(response, request)
    header = orjson.loads(out[:header_length])
    assert [output["name"] for output in header["outputs"]] == ["q", "p"]
    assert header["outputs"][1]["data"] == [1, 2]
    assert np.frombuffer(out[header_length:], "<f8").tolist() == [3.0]


def test_unknown_requested_output_is_400() -> None:
    request = v2.decode_request("m", b'{"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[1]}],'
                                     b'"outputs":[{"name":"nope"}]}')
    with pytest.raises(ServingError, match="has no output 'nope'") as caught:
        v2.encode_response(InferResponse("m", [Tensor.from_numpy("output-0", [1])]), request)
    assert caught.value.status == 400


X = {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}

BAD_V2 = [
    (b"{not json", None, "not valid JSON"),
    (b"[1, 2]", None, "must be a JSON object"),
    (b'{"inputs": []}', None, "'inputs' must be a non-empty list"),
    (b'{"id": 5, "inputs": []}', None, "'id' must be a string"),
    (orjson.dumps({"inputs": [{**X, "datatype": "FLOAT"}]}), None, "unknown datatype 'FLOAT'"),
    (orjson.dumps({"inputs": [{k: v for k, v in X.items() if k != "datatype"}]}), None, "unknown datatype None"),
    (orjson.dumps({"inputs": [{k: v for k, v in X.items() if k != "name"}]}), None, "string 'name'"),
    (orjson.dumps({"inputs": [{k: v for k, v in X.items() if k != "data"}]}), None, "has no 'data'"),
    (orjson.dumps({"inputs": [{**X, "shape": [2, 4]}]}), None, "holds 8 elements but 'data' has 2"),
    (orjson.dumps({"inputs": [{**X, "shape": [-1, 2]}]}), None, "non-negative integers"),
    (orjson.dumps({"inputs": [{**X, "shape": "1,2"}]}), None, "non-negative integers"),
    (orjson.dumps({"inputs": [{**X, "data": [1, "a"]}]}), None, "FP32 data must be numbers"),
    (orjson.dumps({"inputs": [{**X, "data": [[1], [2, 3]]}]}), None, "not a rectangular"),
    (orjson.dumps({"inputs": [{**X, "datatype": "INT32", "data": [1.5, 2]}]}), None, "must be integers"),
    (orjson.dumps({"inputs": [{**X, "datatype": "UINT8", "data": [1, 300]}]}), None, "out of range for UINT8"),
    (orjson.dumps({"inputs": [{**X, "datatype": "BOOL", "data": [1, 0]}]}), None, "must be true/false"),
    (orjson.dumps({"inputs": [{**X, "datatype": "BYTES", "data": [1, 2]}]}), None, "BYTES data must be strings"),
    (orjson.dumps({"inputs": [X, X]}), None, "input names must be unique"),
    (orjson.dumps({"inputs": [X], "outputs": {"name": "y"}}), None, "'outputs' must be a list"),
    (orjson.dumps({"inputs": [X], "outputs": [{"name": "y", "parameters": {"binary_data": "yes"}}]}), None,
     "binary_data must be true or false"),
    (orjson.dumps({"inputs": [X], "parameters": [1]}), None, "'parameters' of the request"),
    (orjson.dumps({"inputs": [X]}), b"abc", "must be an integer"),
    (orjson.dumps({"inputs": [X]}), b"9999", "body has"),
]


@pytest.mark.parametrize(("body", "length", "message"), BAD_V2)
def test_bad_v2_requests_are_400_with_a_useful_message(body: bytes, length: bytes | None, message: str) -> None:
    with pytest.raises(ServingError, match=message) as caught:
        v2.decode_request("m", body, length)
    assert caught.value.status == 400


def binary_input(datatype: str, shape: list[int], size: int) -> dict:
    return {"inputs": [{"name": "x", "datatype": datatype, "shape": shape,
                        "parameters": {"binary_data_size": size}}]}


BAD_BINARY = [
    (binary_input("FP32", [2], 8), b"\x00" * 4, "runs past the end"),
    (binary_input("FP32", [3], 8), b"\x00" * 8, "needs 12 bytes but binary_data_size is 8"),
    (binary_input("FP32", [2], 8), b"\x00" * 12, "4 bytes after the JSON header belong to no input"),
    (binary_input("BOOL", [2], 2), b"\x00\x02", "BOOL bytes must be 0 or 1"),
    (binary_input("BYTES", [1], 3), b"\x01\x00\x00", "truncated BYTES"),
    (binary_input("BYTES", [1], 5), b"\x09\x00\x00\x00a", "runs past binary_data_size"),
    (binary_input("BYTES", [2], 5), b"\x01\x00\x00\x00a", "holds 2 elements but the binary data has 1"),
    (binary_input("FP32", [2], -8), b"", "non-negative integer"),
]


@pytest.mark.parametrize(("document", "blob", "message"), BAD_BINARY)
def test_bad_binary_requests_are_400(document: dict, blob: bytes, message: str) -> None:
    body, length = binary_body(document, blob)
    with pytest.raises(ServingError, match=message) as caught:
        v2.decode_request("m", body, length)
    assert caught.value.status == 400


def test_binary_body_without_header_hints_at_the_header() -> None:
    body, _ = binary_body(binary_input("FP32", [1], 4), b"\x00\x00\x80\x3f")
    with pytest.raises(ServingError, match="needs the Inference-Header-Content-Length header"):
        v2.decode_request("m", body)


def test_bf16_round_trips_through_binary() -> None:
    values = np.array([1.5, -2.0, 0.25], dtype=bfloat16)
    body, length = binary_body(binary_input("BF16", [3], 6), values.tobytes())
    decoded = v2.decode_request("m", body, length).inputs[0].data
    assert decoded.astype(np.float32).tolist() == [1.5, -2.0, 0.25]


def test_v1_decoding() -> None:
    assert v1.instances(v1.decode_request(b'{"instances": [[1, 2]]}')) == [[1, 2]]
    assert v1.instances(v1.decode_request(b'{"inputs": [[1, 2]]}')) == [[1, 2]]
    for body, message in [(b"{bad", "not valid JSON"), (b"[1]", "must be a JSON object"),
                          (b'{"instances": 5}', '"instances" must be a list')]:
        with pytest.raises(ServingError, match=message):
            v1.decode_request(body)
    with pytest.raises(ServingError, match='needs "instances"'):
        v1.instances(v1.decode_request(b'{"rows": []}'))
    assert orjson.loads(v1.encode_response({"predictions": np.array([1, 2])})) == {"predictions": [1, 2]}


# Fuzzing: whatever the bytes, the decoders answer with a tensor or a 400, never another exception.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)
tensors = st.fixed_dictionaries(
    {"name": st.text(max_size=4) | st.integers(),
     "datatype": st.sampled_from([*DTYPES, "FLOAT", 3]),
     "shape": st.lists(st.integers(min_value=-2, max_value=2**63), max_size=3) | json_values,
     "data": json_values},
    optional={"parameters": st.fixed_dictionaries({}, optional={"binary_data_size": st.integers(-4, 64)})})
requests = st.fixed_dictionaries({"inputs": st.lists(tensors, max_size=3) | json_values},
                                 optional={"id": json_values, "outputs": json_values, "parameters": json_values})
FUZZ = settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def decodes_or_400(body: bytes, length: bytes | None) -> None:
    try:
        v2.decode_request("m", body, length)
    except ServingError as exc:
        assert 400 <= exc.status < 500, exc.message


@FUZZ
@given(requests)
def test_fuzz_v2_json_decoder(document: dict) -> None:
    decodes_or_400(json.dumps(document).encode(), None)


@FUZZ
@given(requests, st.binary(max_size=64), st.integers(-2, 4096) | st.binary(max_size=4))
def test_fuzz_v2_binary_decoder(document: dict, blob: bytes, length: int | bytes) -> None:
    header = json.dumps(document).encode()
    header_length = str(len(header)).encode() if length == 0 else (
        length if isinstance(length, bytes) else str(length).encode())
    decodes_or_400(header + blob, header_length)


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_v2_raw_bytes(body: bytes) -> None:
    decodes_or_400(body, None)
    decodes_or_400(body, str(len(body) // 2).encode())
