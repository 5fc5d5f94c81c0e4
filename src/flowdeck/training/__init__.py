"""Distributed training jobs: Kubeflow's PyTorchJob, TFJob, XGBoostJob, JAXJob, PaddleJob and TrainJob, run locally.

Each replica of a job runs as a local process group with the environment the Kubernetes operator would inject
(addresses become 127.0.0.1, ports are free ports chosen per job), under the operator's restart, success and
status rules. `specs` validates the documents, `env` computes what each replica sees, `controller` runs them,
`kind` registers the kinds; `client` is the Kubeflow SDK's `TrainerClient`/`CustomTrainer` and `pipeline`
launches a job from a pipeline component.

The public names load on first use, so that registering the kinds imports neither httpx nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it.
_EXPORTS = {"TrainerClient": "client", "CustomTrainer": "client", "launch_training_job": "pipeline"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
