"""The store conformance suite runs every test against each backend, SQLite and PostgreSQL (`store` and
`store_url` come from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flowdeck.store import Store


@pytest.fixture
def make_run(store: Store) -> Callable[..., str]:
    """Create a run with the required columns filled in; keyword arguments override them."""

    def make(run_id: str, **values: Any) -> str:
        values = {
            "id": run_id,
            "pipeline_name": "pipe",
            "display_name": f"run {run_id}",
            "state": "RUNNING",
            "pipeline_spec": {"pipelineInfo": {"name": "pipe"}},
            **values,
        }
        return store.create_run(**values)

    return make
