"""Fixtures for engine tests: an isolated flowdeck home, and running pipelines in it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.config import Settings
from flowdeck.pipelines.api import run_pipeline
from flowdeck.pipelines.controller import RunController
from flowdeck.store import Store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", max_parallel_tasks=8)


@pytest.fixture
def run(settings: Settings) -> Callable[..., dict[str, Any]]:
    """Run a pipeline (function, path or spec) in the test's own flowdeck home."""

    def _run(pipeline: Any, arguments: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
        return run_pipeline(pipeline, arguments, settings=settings, **options)

    return _run


@pytest.fixture
def controller(store: Store, settings: Settings) -> Iterator[RunController]:
    """A started run controller over the test module's `store` (stopped at the end)."""
    started = RunController(store, settings)
    started.start()
    yield started
    started.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the KFP compatibility pass count per tier when the compat test ran."""
    module = __import__("sys").modules.get("test_kfp_compat")
    if module is None or not module.RESULTS:
        return
    terminalreporter.section("KFP compatibility set: passed per tier")
    for line in module.pytest_terminal_summary_lines():
        terminalreporter.write_line(line)
