"""Fixtures for the serving tests: a tiny scikit-learn model saved in KServe's layout, its data, and KServe's
clients (which live in a venv of their own)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (marked `anyio`) run on asyncio, as the server does."""
    return "asyncio"


@pytest.fixture(scope="session")
def classifier() -> tuple[Any, np.ndarray]:
    """A LogisticRegression fitted on 4-feature synthetic data, and rows to ask it about."""
    features, labels = make_classification(n_samples=200, n_features=4, n_informative=3, n_redundant=0,
                                           n_classes=3, n_clusters_per_class=1, random_state=0)
    return LogisticRegression(max_iter=500).fit(features, labels), features[:8]


@pytest.fixture(scope="session")
def model_dir(classifier: tuple[Any, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory in KServe's layout: model.joblib inside."""
    directory = tmp_path_factory.mktemp("sklearn-model")
    joblib.dump(classifier[0], directory / "model.joblib")
    return directory


@pytest.fixture(scope="session")
def run_in_kserve() -> Callable[..., Any]:
    """Runs a Python script with kserve 0.21 (`run_in_kserve(script, *args)`) and returns the JSON it printed last.

    kserve pins other fastapi/starlette versions than ours, so its clients run in their own venv: the python
    named by FLOWDECK_KSERVE_PYTHON, else the one `.ci/kserve-venv` (and benchmarks/serving_vs_kserve.py)
    makes. Without it the tests that need it are skipped locally, but fail in CI (CI=true), so CI cannot
    silently stop testing against KServe's clients.
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    python = Path(os.environ.get("FLOWDECK_KSERVE_PYTHON", cache / "flowdeck-bench/kserve-0.21.0/bin/python"))
    if not python.exists():
        reason = f'no kserve 0.21 venv at {python} (export FLOWDECK_KSERVE_PYTHON="$(bash .ci/kserve-venv)")'
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{reason}; CI must test KServe's clients", pytrace=False)
        pytest.skip(reason)

    def run(script: str, *args: str) -> Any:
        result = subprocess.run([str(python), "-c", script, *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.splitlines()[-1])

    return run
