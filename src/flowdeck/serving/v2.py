"""Open Inference Protocol (V2) REST codec: request bytes -> `InferRequest`, `InferResponse` -> bytes.

Accepts JSON whatever the Content-Type says (tritonclient sends none, curl sends a form type), and
the binary tensor extension whenever `Inference-Header-Content-Length` is present: the first N bytes
are the JSON header, the rest the tensors, in the order of the inputs that carry `binary_data_size`.
Binary numeric tensors become zero-copy numpy views over the body; JSON data may be flat or nested.
Every malformed request is a `ServingError(400)` naming the input and the problem; the fuzz tests hold
the decoder to that.

The gRPC codec (`grpc.py`) shares the public helpers here (datatype and shape checks, raw tensor
bytes, typed-value range checks, output selection and the model-result-to-response rules), so the
two protocols accept and refuse the same tensors with the same messages.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from flowdeck.serving.errors import ServingError, bad_request
from flowdeck.serving.tensors import DTYPES, InferRequest, InferResponse, RequestedOutput, Tensor

if TYPE_CHECKING:
    from flowdeck.serving.model import Model

_U32 = struct.Struct("<I")
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
#: JSON element kinds numpy may infer that each datatype accepts (b: bool, i/u: integers, f: floats).
_JSON_KINDS = {name: ("b" if name == "BOOL" else "biu" if dtype.kind in "iu" else "biuf")
               for name, dtype in DTYPES.items() if name != "BYTES"}
_INT_RANGE = {name: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
              for name, dtype in DTYPES.items() if dtype.kind in "iu"}
_HALF = ("FP16", "BF16")


def decode_request(model_name: str, body: bytes, header_length: bytes | str | None = None) -> InferRequest:
    """Decode a V2 infer request body; `header_length` is the raw Inference-Header-Content-Length value."""
    if header_length is None:
        json_end = len(body)
    else:
        try:
            json_end = int(header_length)
        except ValueError:
            raise bad_request("Inference-Header-Content-Length must be an integer") from None
        if not 0 <= json_end <= len(body):
            raise bad_request(f"Inference-Header-Content-Length is {json_end} but the body has {len(body)} bytes")
    try:
        document = orjson.loads(memoryview(body)[:json_end] if json_end != len(body) else body)
    except orjson.JSONDecodeError as exc:
        hint = "" if header_length is not None else (
            "; a body with binary tensors needs the Inference-Header-Content-Length header")
        raise bad_request(f"request body is not valid JSON: {exc}{hint}") from None
    if not isinstance(document, dict):
        raise bad_request("the inference request must be a JSON object")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise bad_request("'id' must be a string")
    parameters = _parameters(document.get("parameters"), "request")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise bad_request("'inputs' must be a non-empty list of tensors")
    offset = json_end
    inputs = []
    for raw in raw_inputs:
        tensor, offset = _decode_input(raw, body, offset)
        inputs.append(tensor)
    if offset != len(body):
        raise bad_request(f"{len(body) - offset} bytes after the JSON header belong to no input "
                          "(check the inputs' binary_data_size)")
    check_unique_names(inputs)
    outputs = _requested_outputs(document.get("outputs"))
    return InferRequest(model_name, inputs, request_id, outputs, parameters)


def encode_request(request: InferRequest) -> tuple[bytes, int]:
    """A request body with every input as a binary tensor (what a transformer sends its predictor), and the
    JSON header's length for Inference-Header-Content-Length."""
    blobs: list[bytes] = []
    document: dict[str, Any] = {"inputs": [_encode_output(tensor, True, blobs) for tensor in request.inputs]}
    if request.id is not None:
        document["id"] = request.id
    if request.parameters:
        document["parameters"] = request.parameters
    if request.outputs is not None:
        document["outputs"] = [{"name": wanted.name, "parameters": {
            **(wanted.parameters or {}), **({} if wanted.binary is None else {"binary_data": wanted.binary})}}
            for wanted in request.outputs]
    header = orjson.dumps(document, option=_NUMPY)
    return b"".join([header, *blobs]), len(header)


def decode_response(body: bytes, header_length: str | None = None) -> InferResponse:
    """Decode a V2 infer response (JSON, or JSON plus binary outputs); a malformed one is a ServingError(400)."""
    json_end = len(body) if header_length is None else int(header_length)
    document = orjson.loads(memoryview(body)[:json_end] if json_end != len(body) else body)
    if not isinstance(document, dict) or not isinstance(document.get("outputs"), list):
        raise bad_request("the response has no 'outputs' list")
    offset, outputs = json_end, []
    for raw in document["outputs"]:
        tensor, offset = _decode_input(raw, body, offset)
        outputs.append(tensor)
    return InferResponse(str(document.get("model_name", "")), outputs, document.get("id"),
                         document.get("model_version"), document.get("parameters"))


def check_unique_names(inputs: list[Tensor]) -> None:
    """Refuse a request naming two inputs alike."""
    if len(inputs) > 1 and len({tensor.name for tensor in inputs}) != len(inputs):
        raise bad_request("input names must be unique")


def tensor_spec(name: str, datatype: Any, shape: Any) -> tuple[np.dtype, int]:
    """Check an input's datatype and shape; its numpy dtype and element count."""
    dtype = DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise bad_request(f"input '{name}': unknown datatype {datatype!r} (expected one of {', '.join(DTYPES)})")
    if not isinstance(shape, list) or not all(type(dim) is int and dim >= 0 for dim in shape):
        raise bad_request(f"input '{name}': 'shape' must be a list of non-negative integers")
    return dtype, math.prod(shape)


def _parameters(value: Any, where: str) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise bad_request(f"'parameters' of the {where} must be a JSON object")


def _decode_input(raw: Any, body: bytes, offset: int) -> tuple[Tensor, int]:
    if not isinstance(raw, dict):
        raise bad_request("each input must be a JSON object with name, shape, datatype and data")
    name = raw.get("name")
    if not isinstance(name, str):
        raise bad_request("each input needs a string 'name'")
    datatype = raw.get("datatype")
    shape = raw.get("shape")
    dtype, count = tensor_spec(name, datatype, shape)
    parameters = _parameters(raw.get("parameters"), f"input '{name}'")
    size = parameters.get("binary_data_size") if parameters else None
    if size is not None:
        if type(size) is not int or size < 0:
            raise bad_request(f"input '{name}': binary_data_size must be a non-negative integer")
        if offset + size > len(body):
            raise bad_request(f"input '{name}': binary_data_size {size} runs past the end of the body "
                              f"({len(body) - offset} bytes left)")
        data = binary_array(name, datatype, dtype, shape, count, body, offset, size)
        return Tensor(name, datatype, shape, data, parameters), offset + size
    if "data" not in raw:
        raise bad_request(f"input '{name}' has no 'data' (nor a binary_data_size parameter)")
    data = _json_array(name, datatype, dtype, shape, count, raw["data"])
    return Tensor(name, datatype, shape, data, parameters), offset


def _json_array(name: str, datatype: str, dtype: np.dtype, shape: list[int], count: int, data: Any) -> np.ndarray:
    if not isinstance(data, list):
        raise bad_request(f"input '{name}': 'data' must be a list")
    if datatype == "BYTES":
        items = _flat_strings(name, data)
        array = np.empty(len(items), dtype=object)
        array[:] = items
    else:
        try:
            array = np.array(data)
        except (ValueError, TypeError, OverflowError, RecursionError):
            raise bad_request(f"input '{name}': 'data' is not a rectangular (nested) list of numbers") from None
        if array.size and array.dtype.kind not in _JSON_KINDS[datatype]:
            expected = "true/false" if datatype == "BOOL" else ("integers" if datatype in _INT_RANGE else "numbers")
            raise bad_request(f"input '{name}': {datatype} data must be {expected}")
        array = cast_in_range(name, datatype, dtype, array)
    return shaped(name, shape, count, array, "'data'")


def cast_in_range(name: str, datatype: str, dtype: np.dtype, array: np.ndarray) -> np.ndarray:
    """`array` as `dtype`, refusing integers the datatype cannot hold (rather than wrapping them around)."""
    bounds = _INT_RANGE.get(datatype)
    if bounds is not None and array.size and not (bounds[0] <= int(array.min()) and int(array.max()) <= bounds[1]):
        raise bad_request(f"input '{name}': a value is out of range for {datatype}")
    return array.astype(dtype, copy=False)


def shaped(name: str, shape: list[int], count: int, array: np.ndarray, source: str) -> np.ndarray:
    """The flat or nested `array` in `shape`, refusing data whose element count does not fit it."""
    if array.size != count:
        raise bad_request(f"input '{name}': shape {shape} holds {count} elements but {source} has {array.size}")
    return array.reshape(shape)


def _flat_strings(name: str, data: list[Any]) -> list[bytes]:
    items: list[bytes] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, str):
                items.append(item.encode())
            elif isinstance(item, list):
                stack.append(iter(item))
                break
            else:
                raise bad_request(f"input '{name}': BYTES data must be strings")
        else:
            stack.pop()
    return items


def binary_array(name: str, datatype: str, dtype: np.dtype, shape: list[int], count: int,
                 body: bytes, offset: int, size: int, size_source: str = "binary_data_size") -> np.ndarray:
    """The tensor held raw (little-endian, row-major; BYTES length-prefixed) in `body[offset:offset + size]`."""
    if datatype == "BYTES":
        return _binary_strings(name, shape, count, body, offset, offset + size)
    if count * dtype.itemsize != size:
        raise bad_request(f"input '{name}': shape {shape} of {datatype} needs {count * dtype.itemsize} bytes "
                          f"but {size_source} is {size}")
    if datatype == "BOOL":
        raw = np.frombuffer(body, np.uint8, count, offset)
        if count and raw.max() > 1:
            raise bad_request(f"input '{name}': BOOL bytes must be 0 or 1")
        return raw.view(np.bool_).reshape(shape)
    return np.frombuffer(body, dtype, count, offset).reshape(shape)


def _binary_strings(name: str, shape: list[int], count: int, body: bytes, start: int, end: int) -> np.ndarray:
    items = []
    position = start
    while position < end:
        if position + 4 > end:
            raise bad_request(f"input '{name}': truncated BYTES element length")
        (length,) = _U32.unpack_from(body, position)
        position += 4
        if position + length > end:
            raise bad_request(f"input '{name}': BYTES element of {length} bytes runs past binary_data_size")
        items.append(body[position:position + length])
        position += length
    if len(items) != count:
        raise bad_request(f"input '{name}': shape {shape} holds {count} elements but the binary data has "
                          f"{len(items)}")
    array = np.empty(count, dtype=object)
    array[:] = items
    return array.reshape(shape)


def _requested_outputs(raw: Any) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise bad_request("'outputs' must be a list")
    outputs = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise bad_request("each requested output must be a JSON object with a string 'name'")
        parameters = _parameters(item.get("parameters"), f"output '{item['name']}'")
        binary = parameters.get("binary_data") if parameters else None
        if binary is not None and not isinstance(binary, bool):
            raise bad_request(f"output '{item['name']}': binary_data must be true or false")
        outputs.append(RequestedOutput(item["name"], binary, parameters))
    return outputs


def encode_response(response: InferResponse, request: InferRequest) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it (else None)."""
    blobs: list[bytes] = []
    outputs = [_encode_output(tensor, binary, blobs) for tensor, binary in select_outputs(response, request)]
    document: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version is not None:
        document["model_version"] = response.model_version
    if response.id is not None:
        document["id"] = response.id
    if response.parameters:
        document["parameters"] = response.parameters
    document["outputs"] = outputs
    try:
        header = orjson.dumps(document, option=_NUMPY)
    except TypeError as exc:
        raise ServingError(500, f"the model's response is not JSON-serialisable: {exc}") from None
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def select_outputs(response: InferResponse, request: InferRequest) -> list[tuple[Tensor, bool]]:
    """The outputs to send, in order, each with whether to send it binary: all of them or those requested."""
    default_binary = request.binary_output
    if request.outputs is None:
        return [(tensor, default_binary) for tensor in response.outputs]
    by_name = {tensor.name: tensor for tensor in response.outputs}
    selected = []
    for wanted in request.outputs:
        tensor = by_name.get(wanted.name)
        if tensor is None:
            raise bad_request(f"model '{response.model_name}' has no output '{wanted.name}' "
                              f"(it has: {', '.join(by_name) or 'none'})")
        selected.append((tensor, default_binary if wanted.binary is None else wanted.binary))
    return selected


def flat_output(tensor: Tensor) -> np.ndarray:
    """An output's data as a contiguous 1-D array, after checking that it fills the output's shape."""
    data = tensor.data
    if data.size != math.prod(tensor.shape):
        raise ServingError(500, f"output '{tensor.name}': shape {tensor.shape} does not match its "
                                f"{data.size} elements")
    return np.ascontiguousarray(data).reshape(-1)


def raw_output(datatype: str, flat: np.ndarray) -> bytes:
    """An output's raw bytes, as the binary extension and gRPC's raw_output_contents carry them."""
    return _strings_blob(flat) if datatype == "BYTES" else flat.tobytes()


def _encode_output(tensor: Tensor, binary: bool, blobs: list[bytes]) -> dict[str, Any]:
    flat = flat_output(tensor)
    output: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
    if binary:
        blob = raw_output(tensor.datatype, flat)
        blobs.append(blob)
        output["parameters"] = {**(tensor.parameters or {}), "binary_data_size": len(blob)}
        return output
    if tensor.parameters:
        output["parameters"] = tensor.parameters
    if tensor.datatype == "BYTES":
        output["data"] = [_text(tensor.name, item) for item in flat]
    elif tensor.datatype in _HALF:
        output["data"] = flat.astype(np.float32)
    else:
        output["data"] = flat
    return output


def _strings_blob(flat: np.ndarray) -> bytes:
    parts = []
    for item in flat:
        raw = as_bytes(item)
        parts.append(_U32.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def as_bytes(item: Any) -> bytes:
    """A BYTES element as bytes (a model may return str or other objects; they are sent as their text)."""
    return bytes(item) if isinstance(item, (bytes, bytearray)) else str(item).encode()


def _text(name: str, item: Any) -> str:
    if not isinstance(item, (bytes, bytearray)):
        return str(item)
    try:
        return item.decode()
    except UnicodeDecodeError:
        raise bad_request(f"output '{name}' holds bytes that are not UTF-8; request it with binary_data") from None


def as_response(result: Any, request: InferRequest, model: Model) -> InferResponse:
    """A V2 response from what the model's last step returned: an InferResponse, Tensors, or arrays."""
    if isinstance(result, InferResponse):
        response = result
    elif isinstance(result, Tensor):
        response = InferResponse(model.name, [result])
    elif isinstance(result, list) and all(isinstance(item, Tensor) for item in result):
        response = InferResponse(model.name, result)
    elif isinstance(result, dict):
        response = InferResponse(model.name, [Tensor.from_numpy(str(key), value) for key, value in result.items()])
    elif isinstance(result, np.ndarray):
        response = InferResponse(model.name, [Tensor.from_numpy("output-0", result)])
    else:
        raise ServingError(500, f"model '{model.name}' returned a {type(result).__name__}, which is not a V2 "
                                "response (return an InferResponse, Tensors, or numpy arrays)")
    if response.id is None:
        response.id = request.id
    if response.model_version is None:
        response.model_version = model.version
    return response


def model_metadata(model: Model) -> dict[str, Any]:
    """V2 model metadata: name, versions (when versioned), platform, input and output tensors."""
    metadata: dict[str, Any] = {"name": model.name}
    if model.version is not None:
        metadata["versions"] = [model.version]
    metadata.update(platform=model.platform, inputs=model.get_input_types(), outputs=model.get_output_types())
    return metadata
