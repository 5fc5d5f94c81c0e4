"""PyTorch models exported as TorchScript (`torch.jit.save`), run on the CPU without autograd."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flowdeck.serving.formats import ModelLoadError, require
from flowdeck.serving.formats.array import ArrayModel


class TorchScriptModel(ArrayModel):
    """`module(torch.from_numpy(rows))` under `torch.inference_mode()`."""

    platform = "pytorch_torchscript"

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.module: Any = None

    def load(self) -> bool:
        self._torch = require("torch", "torch")
        try:
            self.module = self._torch.jit.load(str(self.path), map_location="cpu").eval()
        except Exception as exc:
            raise ModelLoadError(f"cannot load {self.path} as TorchScript: {exc}") from None
        self.ready = True
        return True

    def predict_array(self, rows: Any) -> np.ndarray:
        array = np.asarray(rows)
        if array.dtype == np.float64:
            array = array.astype(np.float32)  # JSON numbers arrive as float64; models are float32
        with self._torch.inference_mode():
            result = self.module(self._torch.from_numpy(np.ascontiguousarray(array)))
        return result.numpy()
