"""LightGBM boosters saved with `save_model` (KServe's lgbserver: a text model file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flowdeck.serving.formats import ModelLoadError, require
from flowdeck.serving.formats.array import ArrayModel


class LightGBMModel(ArrayModel):
    """`booster.predict(rows)`, as lgbserver answers."""

    platform = "lightgbm"

    def __init__(self, name: str, path: Path, nthread: int = 1) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.nthread = nthread
        self.booster: Any = None

    def load(self) -> bool:
        lightgbm = require("lightgbm", "lightgbm")
        try:
            self.booster = lightgbm.Booster(model_file=str(self.path))
        except Exception as exc:
            raise ModelLoadError(f"cannot load {self.path}: {exc}") from None
        self.ready = True
        return True

    def predict_array(self, rows: Any) -> np.ndarray:
        return self.booster.predict(rows, num_threads=self.nthread)
