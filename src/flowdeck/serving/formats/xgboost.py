"""XGBoost boosters saved with `save_model` (KServe's xgbserver: model.bst, or .json/.ubj)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flowdeck.serving.formats import ModelLoadError, require
from flowdeck.serving.formats.array import ArrayModel


class XGBoostModel(ArrayModel):
    """`booster.predict(DMatrix(rows))`, as xgbserver answers."""

    platform = "xgboost"

    def __init__(self, name: str, path: Path, nthread: int = 1) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.nthread = nthread
        self.booster: Any = None

    def load(self) -> bool:
        self._xgb = require("xgboost", "xgboost")
        try:
            self.booster = self._xgb.Booster(params={"nthread": self.nthread}, model_file=str(self.path))
        except Exception as exc:
            raise ModelLoadError(f"cannot load {self.path}: {exc}") from None
        self.ready = True
        return True

    def predict_array(self, rows: Any) -> np.ndarray:
        return self.booster.predict(self._xgb.DMatrix(rows, nthread=self.nthread))
