"""Which log files hold a run's task logs, and what to say when a task has none.

Each attempt of each task has its own log file (`task_attempts.log_path`), so logs survive the run
and retries keep every try. A task served from the cache ran nothing itself: its logs are those of
the execution whose results it reused, in whichever run that was. `flowdeck logs RUN`, the control
plane's run-logs endpoint and the PipelineRun kind all go through `find_logs`, so they agree on what
is shown and on what is said when there is nothing to show.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowdeck.store import AttemptRow, RunRow, Store, TaskRow

#: Bytes read from a log file at a time.
_CHUNK = 64 * 1024
#: Response headers in which the control plane's run-logs endpoint sends `notes` (JSON) and `missing`.
NOTES_HEADER, MISSING_HEADER = "Flowdeck-Log-Notes", "Flowdeck-Logs-Missing"


class TaskNotFound(LookupError):
    """No task of the run has the path or name asked for; the message lists the run's task names."""


@dataclass(frozen=True)
class LogFile:
    """One attempt's log file, of the task it is shown for."""

    task: TaskRow
    attempt: AttemptRow
    #: For a task served from the cache: the run whose execution (and log) it reused.
    cached_from: str | None = None

    @property
    def header(self) -> str:
        origin = f", cached: run {self.cached_from[:8]}" if self.cached_from else ""
        return f"==> {self.task.path} (attempt {self.attempt.number}, {self.attempt.state}{origin}) <==\n"


@dataclass
class RunLogs:
    """The log files to print, in order, and what to tell the reader besides (stderr, for the CLI)."""

    files: list[LogFile] = field(default_factory=list)
    #: One line each: a task asked for that has no logs and why, where a cached task's log comes from.
    notes: list[str] = field(default_factory=list)
    #: Logs asked for that cannot be shown (a named task without any, a log file that is gone).
    missing: int = 0

    def headers(self) -> dict[str, str]:
        """`notes` and `missing` as HTTP response headers (JSON keeps them ASCII, one line)."""
        return {NOTES_HEADER: json.dumps(self.notes), MISSING_HEADER: str(self.missing)}

    def chunks(self) -> Iterator[bytes]:
        """The logs as bytes; each under a `==> TASK (attempt N, STATE) <==` header when there are several."""
        headers = len(self.files) > 1
        for log in self.files:
            if headers:
                yield log.header.encode()
            last = b"\n"
            try:
                with open(log.attempt.log_path or "", "rb") as handle:
                    while data := handle.read(_CHUNK):
                        last = data[-1:]
                        yield data
            except OSError as exc:  # removed since find_logs looked
                last = b"\n"
                yield f"(cannot read {log.attempt.log_path}: {exc.strerror or exc})\n".encode()
            if last != b"\n":
                yield b"\n"
            if headers:
                yield b"\n"


def find_logs(store: Store, run: RunRow, task_ref: str | None = None) -> RunLogs:
    """The logs of every task of `run` that has any, or of the tasks `task_ref` names (a path, or a
    name matching every loop iteration). Raises `TaskNotFound`."""
    tasks = list(store.list_tasks(run.id))
    selected = tasks if task_ref is None else _match(tasks, task_ref, run.id)
    sources = {t.id: source for t in selected if t.cached and (source := _source(t)).get("task_id")}
    wanted = [t.id for t in selected] + [source["task_id"] for source in sources.values()]
    by_task: dict[str, list[AttemptRow]] = {}
    for attempt in store.list_attempts(wanted) if wanted else ():
        by_task.setdefault(attempt.task_id, []).append(attempt)
    found = RunLogs()
    for task in selected:
        source = sources.get(task.id)
        attempts = by_task.get(source["task_id"] if source else task.id, [])
        if not attempts and task_ref is not None:
            found.notes.append(f"task {task.path!r} of run {run.id[:8]} has no logs: {_why_no_logs(task)}")
            found.missing += 1
        for attempt in attempts:
            if attempt.log_path and os.path.isfile(attempt.log_path):
                found.files.append(LogFile(task, attempt, source.get("run_id") if source else None))
            else:
                gone = f"its log file {attempt.log_path} is gone" if attempt.log_path else "it recorded no log file"
                found.notes.append(f"{task.path} (attempt {attempt.number}): {gone}")
                found.missing += 1
    if not found.files and not found.missing:
        found.notes.append(_why_run_has_none(run, selected))
    elif len(found.files) == 1 and found.files[0].cached_from:
        log = found.files[0]
        found.notes.insert(0, f"{log.task.path} was served from the cache: these are the logs of "
                              f"{sources[log.task.id].get('path', log.task.path)} in run {log.cached_from[:8]}")
    return found


def _source(task: TaskRow) -> dict[str, str]:
    """Where a cached task's results come from: {run_id, task_id, path} of the execution it reused."""
    return (task.outputs or {}).get("cached_from") or {}


def _match(tasks: Sequence[TaskRow], ref: str, run_id: str) -> list[TaskRow]:
    exact = [t for t in tasks if t.path == ref]
    if exact:
        return exact
    named = [t for t in tasks if ref in (t.name, t.display_name)]
    if named:
        return named
    names = sorted({t.name for t in tasks})
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    raise TaskNotFound(f"no task {ref!r} in run {run_id[:8]} (tasks: {shown or 'none'})")


def _why_no_logs(task: TaskRow) -> str:
    if task.cached:
        run_id = _source(task).get("run_id")
        return (f"its result came from the cache (run {run_id[:8]}), and that execution's logs are gone" if run_id
                else "its result came from the cache, nothing ran")
    if task.kind in ("dag", "loop"):
        return f"it is a {task.kind} that groups other tasks and runs no process itself"
    if task.kind != "container":
        return f"it is an {task.kind} task and runs no process"
    return f"it is {task.state} and never started a process" + (f" ({task.error})" if task.error else "")


def _why_run_has_none(run: RunRow, tasks: Sequence[TaskRow]) -> str:
    from flowdeck.store.store import TERMINAL_RUN_STATES

    if run.state not in TERMINAL_RUN_STATES:
        return f"run {run.id[:8]} has no task logs yet (it is {run.state})"
    origins = sorted({_source(t)["run_id"][:8] for t in tasks if t.cached and _source(t).get("run_id")})
    if origins:
        return (f"run {run.id[:8]} has no task logs: its tasks' results came from the cache (run "
                f"{', '.join(origins)}), and those executions' logs are gone")
    return f"run {run.id[:8]} has no task logs (no task ran a process)"
