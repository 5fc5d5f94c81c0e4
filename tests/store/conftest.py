"""The store conformance suite runs every test against each backend: SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from flowdeck.store import Store, open_store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty database of one backend: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flowdeck.db'}"
    database_url = request.getfixturevalue("postgres_url")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    url = make_url(database_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = open_store(store_url)
    yield store
    store.close()


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
