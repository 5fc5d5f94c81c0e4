"""Fixtures for the resource tests: a controller with the test kinds (`store`, on each backend: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from widget_kind import WIDGET

from flowdeck.config import Settings
from flowdeck.pipelines.kind import PIPELINE_RUN
from flowdeck.resources import Registry
from flowdeck.resources.controller import ResourceController, create_controller
from flowdeck.store import Store, open_store


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
