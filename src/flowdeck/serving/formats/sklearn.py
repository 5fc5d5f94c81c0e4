"""scikit-learn models saved with joblib or pickle (KServe's sklearnserver: model.joblib / model.pkl)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from flowdeck.serving.formats import ModelLoadError, require
from flowdeck.serving.formats.array import ArrayModel
from flowdeck.serving.tensors import datatype_of


class SKLearnModel(ArrayModel):
    """`estimator.predict(rows)` for an estimator loaded from a joblib or pickle file."""

    platform = "sklearn"

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.estimator: Any = None

    def load(self) -> bool:
        require("sklearn", "serving")
        try:
            if self.path.suffix == ".joblib":
                self.estimator = require("joblib", "serving").load(self.path)
            else:
                with self.path.open("rb") as file:
                    self.estimator = pickle.load(file)
        except Exception as exc:
            raise ModelLoadError(f"cannot load {self.path}: {exc}") from None
        if not hasattr(self.estimator, "predict"):
            raise ModelLoadError(f"{self.path} holds a {type(self.estimator).__name__}, which has no predict()")
        self.ready = True
        return True

    def predict_array(self, rows: Any) -> np.ndarray:
        return self.estimator.predict(rows)

    def get_input_types(self) -> list[dict[str, Any]]:
        features = getattr(self.estimator, "n_features_in_", -1)
        return [{"name": "input-0", "datatype": "FP64", "shape": [-1, int(features)]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [{"name": "output-0", "datatype": _output_datatype(self.estimator), "shape": [-1]}]


def _output_datatype(estimator: Any) -> str:
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return "FP64"
    return datatype_of(np.asarray(classes))
