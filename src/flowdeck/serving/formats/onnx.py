"""ONNX models run by onnxruntime on the CPU (KServe serves them through Triton; the protocol is the same)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flowdeck.serving.formats import ModelLoadError, require
from flowdeck.serving.formats.array import ArrayModel

#: onnxruntime's input type strings -> numpy dtypes, for casting JSON numbers to what the graph wants.
_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
                "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


class ONNXModel(ArrayModel):
    """The graph's first output for its first input, fed the request's first tensor."""

    platform = "onnx_onnxv1"

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.session: Any = None

    def load(self) -> bool:
        onnxruntime = require("onnxruntime", "onnx")
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(f"cannot load {self.path}: {exc}") from None
        first = self.session.get_inputs()[0]
        self._input_name = first.name
        self._input_dtype = _ONNX_DTYPES.get(first.type)
        self.ready = True
        return True

    def predict_array(self, rows: Any) -> np.ndarray:
        array = np.asarray(rows)
        if self._input_dtype is not None and array.dtype != self._input_dtype:
            array = array.astype(self._input_dtype)
        return self.session.run(None, {self._input_name: array})[0]
