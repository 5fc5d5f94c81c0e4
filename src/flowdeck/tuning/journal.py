"""`StudyJournal`: where an experiment's optuna study is kept, so that a restarted control plane resumes it.

optuna's own file journal takes a file lock and fsyncs on every write, which made the study's bookkeeping
half of an experiment's time here (tens of milliseconds per ask or tell). Only one control plane
runs on a home (the store lock sees to that) and one reconcile at a time handles an experiment, so a
thread lock is enough; and a flushed write survives the control plane's crash (the kernel has it),
which is the failure a resume must handle. The log stays in memory as well, so reads cost nothing.
The file format is optuna's (one JSON operation per line).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from optuna.storages.journal import BaseJournalBackend


class StudyJournal(BaseJournalBackend):
    """An append-only JSON-lines journal of optuna operations, in memory and in `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._logs: list[dict[str, Any]] = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    self._logs.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line cut short by a crash: what follows it was never acknowledged
        self._file = path.open("a", encoding="utf-8")

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        with self._lock:
            return list(self._logs[log_number_from:])

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with self._lock:
            self._file.write("".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs))
            self._file.flush()
            self._logs.extend(logs)
