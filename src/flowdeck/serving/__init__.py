"""Model serving: KServe V1 and Open Inference Protocol (V2) data plane, `flowdeck serve`.

A custom model subclasses `Model` exactly as a KServe model subclasses `kserve.Model`; V2 requests
reach it as `InferRequest` (inputs are `Tensor`s with `as_numpy()`), and it may answer with an
`InferResponse`.

The public names load on first use, so that the `InferenceService` kind (`serving.kind`) registers
in every control plane, also one installed without the `serving` extra (numpy and friends); there
`flowdeck serve`, which its replicas run, names the extra to install.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it.
_EXPORTS = {"ServingError": "errors", "Model": "model", "InferRequest": "tensors", "InferResponse": "tensors",
            "RequestedOutput": "tensors", "Tensor": "tensors", "ModelServer": "server", "PredictorConfig": "predictor"}
#: Modules importable under KServe's names (`from flowdeck.serving import model_server` for its `parser`).
_MODULES = {"model_server": "server"}

__all__ = sorted([*_EXPORTS, *_MODULES])


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{_MODULES[name]}")
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
