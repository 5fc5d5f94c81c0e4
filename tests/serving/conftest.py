"""Fixtures for the serving tests: a tiny scikit-learn model saved in KServe's layout, and its data."""

from __future__ import annotations

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
