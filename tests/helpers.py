"""Helpers shared by the test packages: reading run documents and the store, waiting on processes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from flowdeck.config import Settings
from flowdeck.store import open_store


def tasks(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The tasks of a run document, by path."""
    return {task["path"]: task for task in result["tasks"]}


def task_rows(settings: Settings, run_id: str) -> dict[str, Any]:
    """The store's task rows of a run, by path."""
    store = open_store(settings.resolved_database_url)
    try:
        return {t.path: t for t in store.list_tasks(run_id)}
    finally:
        store.close()


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie nobody reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return True


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; its last value decides."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
