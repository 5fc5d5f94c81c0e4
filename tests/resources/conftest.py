"""Fixtures for the resource tests: a store on each backend, and a controller with the test kinds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from widget_kind import WIDGET

from flowdeck.config import Settings
from flowdeck.pipelines.kind import PIPELINE_RUN
from flowdeck.resources import Registry
from flowdeck.resources.controller import ResourceController, create_controller
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
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'flowdeck.db'}")
    yield store
    store.close()


@pytest.fixture
def kinds() -> Registry:
    return Registry([WIDGET, PIPELINE_RUN])


@pytest.fixture
def controller(sqlite_store: Store, kinds: Registry, tmp_path: Path) -> Iterator[ResourceController]:
    """A started controller over SQLite, with no run controller (Widget needs none)."""
    started = create_controller(sqlite_store, Settings(home=tmp_path), None, kinds=kinds)
    started.start()
    yield started
    started.stop()
