"""The V2 tensor model shared by the REST and gRPC codecs and by every model format.

A tensor's data is always a numpy array of its datatype's dtype, already in its shape: numeric
tensors are (often zero-copy) views over the request bytes, BYTES tensors are object arrays of
`bytes`. Decoding happens once, at the edge; models only ever see numpy.

BF16 has no numpy dtype of its own: it is `ml_dtypes.bfloat16` (the dtype JAX, TensorFlow and
onnx use; a small numpy-only package in the `serving` extra).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ml_dtypes import bfloat16

from flowdeck.serving.errors import ServingError

#: V2 datatype name -> the little-endian numpy dtype its elements have (BYTES: object holding bytes).
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BF16": np.dtype(bfloat16),
    "BYTES": np.dtype(object),
}

_DATATYPE_OF: dict[np.dtype, str] = {dtype: name for name, dtype in DTYPES.items()}


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype for a numpy array a model returned (str and bytes arrays are BYTES)."""
    dtype = array.dtype
    name = _DATATYPE_OF.get(dtype) or _DATATYPE_OF.get(dtype.newbyteorder("<"))
    if name is not None:
        return name
    if dtype.kind in "OSU":
        return "BYTES"
    raise ServingError(500, f"the model returned a tensor of dtype {dtype}, which has no V2 datatype")


class Tensor:
    """One named input or output tensor. `as_numpy()` exists so KServe-style model code reads the same."""

    __slots__ = ("name", "datatype", "shape", "data", "parameters")

    def __init__(self, name: str, datatype: str, shape: list[int], data: np.ndarray,
                 parameters: dict[str, Any] | None = None) -> None:
        self.name = name
        self.datatype = datatype
        self.shape = shape
        self.data = data
        self.parameters = parameters

    @classmethod
    def from_numpy(cls, name: str, array: Any, parameters: dict[str, Any] | None = None) -> Tensor:
        """A tensor holding `array` (anything numpy can turn into an array), its datatype taken from the dtype."""
        data = np.asarray(array)
        return cls(name, datatype_of(data), list(data.shape), data, parameters)

    def as_numpy(self) -> np.ndarray:
        return self.data

    def __repr__(self) -> str:
        return f"Tensor({self.name!r}, {self.datatype}, {self.shape})"


class RequestedOutput:
    """An output the client asked for by name; `binary` is its binary_data flag (None: the request's default)."""

    __slots__ = ("name", "binary", "parameters")

    def __init__(self, name: str, binary: bool | None = None, parameters: dict[str, Any] | None = None) -> None:
        self.name = name
        self.binary = binary
        self.parameters = parameters


class InferRequest:
    """A decoded V2 inference request: what a model's preprocess/predict receive under the V2 protocol."""

    __slots__ = ("model_name", "id", "inputs", "outputs", "parameters")

    def __init__(self, model_name: str, inputs: list[Tensor], id: str | None = None,
                 outputs: list[RequestedOutput] | None = None, parameters: dict[str, Any] | None = None) -> None:
        self.model_name = model_name
        self.id = id
        self.inputs = inputs
        self.outputs = outputs
        self.parameters = parameters

    @property
    def binary_output(self) -> bool:
        """The request-wide default for returning outputs as binary (`parameters.binary_data_output`)."""
        return bool(self.parameters and self.parameters.get("binary_data_output"))


class InferResponse:
    """What a model's V2 predict returns (or what its return value is turned into)."""

    __slots__ = ("model_name", "model_version", "id", "outputs", "parameters")

    def __init__(self, model_name: str, outputs: list[Tensor], id: str | None = None,
                 model_version: str | None = None, parameters: dict[str, Any] | None = None) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.id = id
        self.outputs = outputs
        self.parameters = parameters
