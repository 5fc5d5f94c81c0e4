"""`ArrayModel`: the request semantics of KServe's sklearn/xgboost/lightgbm servers, for any numpy-in,
numpy-out runtime.

V1: `instances` (rows as lists, or objects of named features -> a pandas DataFrame) -> predict ->
`{"predictions": [...]}`. V2: the first input tensor -> predict -> one output tensor named `output-0`.
A format only implements `predict_array`. Inputs the runtime rejects (wrong feature count, strings for
a numeric model) are the client's mistake: 400 with the runtime's message, where KServe answers 500.
The same `predict_array` is what the adaptive batcher calls on several requests' rows at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowdeck.serving import v1
from flowdeck.serving.errors import bad_request
from flowdeck.serving.model import Headers, Model
from flowdeck.serving.tensors import InferRequest, InferResponse, Tensor

#: The V2 output name KServe's predictive runtimes use.
OUTPUT_NAME = "output-0"


class ArrayModel(Model):
    """A model whose runtime maps a 2-D array of rows to an array of predictions."""

    def predict_array(self, rows: Any) -> np.ndarray:
        """Predictions for `rows` (a numpy array, or a DataFrame for named features), one per row."""
        raise NotImplementedError

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        return self.batch_output(payload, self.predict_rows(self.batch_input(payload)))

    def batch_input(self, payload: Any) -> Any:
        """The rows a request asks about."""
        if isinstance(payload, InferRequest):
            return payload.inputs[0].data
        rows = v1.instances(payload)
        if rows and isinstance(rows[0], dict):
            return _data_frame(rows)
        try:
            return np.asarray(rows)
        except ValueError as exc:
            raise bad_request(f"instances are not a rectangular list of rows: {exc}") from None

    def batch_output(self, payload: Any, predictions: np.ndarray) -> Any:
        """The response for a request, given the predictions for its rows."""
        if isinstance(payload, InferRequest):
            return InferResponse(self.name, [Tensor.from_numpy(OUTPUT_NAME, predictions)], payload.id,
                                 self.version)
        return {"predictions": _jsonable(predictions)}

    def predict_rows(self, rows: Any) -> np.ndarray:
        """`predict_array`, with the runtime's complaints about the input turned into a 400."""
        try:
            return np.asarray(self.predict_array(rows))
        except (ValueError, TypeError) as exc:
            raise bad_request(f"model '{self.name}' cannot predict on this input: {exc}") from None


def _data_frame(rows: list[Any]) -> Any:
    try:
        import pandas
    except ImportError:
        raise bad_request("instances given as objects of named features need pandas on the server; "
                          "send lists of values instead") from None
    if not all(isinstance(row, dict) for row in rows):
        raise bad_request("instances mix objects and lists")
    return pandas.DataFrame.from_records(rows)


def _jsonable(array: np.ndarray) -> Any:
    """The array itself when orjson can write it directly (the fast path), else nested lists."""
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array)
    return array.tolist()
