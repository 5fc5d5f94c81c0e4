"""Hyperparameter tuning: Katib's Experiments (`kubeflow.org/v1beta1`), run locally on optuna.

`specs` validates the Experiment document and renders trials, `metrics` reads what trials report (StdOut, File,
Push), `search` is `katib.search`. Inside a trial, `flowdeck.tuning.report_metrics({...})` is Katib's Push.

The public names load on first use, so that registering the Experiment kind imports neither optuna nor numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it; a name equal to its module's name exports the module itself.
_EXPORTS = {"report_metrics": "metrics", "search": "search", "KatibClient": "client"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return module if name == _EXPORTS[name] else getattr(module, name)
