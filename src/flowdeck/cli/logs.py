"""`flowdeck logs`: print what a run's tasks wrote to stdout and stderr, or a resource's logs.

Each attempt of each task has its own log file, recorded in the store (`task_attempts.log_path`), so
logs survive the run and retries keep every try. A TASK names a task by path or by name; a name
matches every iteration of a loop, and each match is printed under a header.

When the first argument names a resource kind (`flowdeck logs pipelinerun nightly`), the logs come
from the control plane instead, through the kind's own logs hook.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from flowdeck.cli.common import FAILURE, CLIError, find_run, open_cli_store

if TYPE_CHECKING:
    from flowdeck.store import AttemptRow, TaskRow


@click.command(short_help="Print the logs of a run's tasks, or of a resource.")
@click.argument("run_ref", metavar="RUN|KIND")
@click.argument("task_ref", metavar="[TASK|NAME]", required=False)
@click.option("-n", "--namespace", default=None, metavar="NAMESPACE",
              help="With KIND NAME: the resource's namespace (default: `default`).")
def logs(run_ref: str, task_ref: str | None, namespace: str | None) -> int:
    """Print the logs of RUN's tasks (RUN is an id or a unique prefix of one), or of the resource NAME
    of KIND (through the control plane, see `flowdeck up`).

    TASK is a task's path (as `flowdeck runs get` shows it, e.g. `train` or `for-loop-2[0]/square`) or
    its name (`square`: every loop iteration of it). Without TASK, every task that ran is printed.
    When more than one log is printed, each starts with a `==> TASK (attempt N, STATE) <==` header.

    \b
    Examples:
      flowdeck logs 1a2b3c4d
      flowdeck logs 1a2b3c4d train
      flowdeck logs 1a2b3c4d 'for-loop-2[0]/square'
      flowdeck logs pipelinerun nightly
    """
    from flowdeck.resources.registry import registry

    kind = registry().find(run_ref)
    if kind is not None:
        return _resource_logs(kind.kind, task_ref, namespace)
    if namespace is not None:
        raise CLIError(f"--namespace goes with KIND NAME; {run_ref!r} is not a resource kind")
    with open_cli_store() as store:
        run = find_run(store, run_ref)
        tasks = list(store.list_tasks(run.id))
        selected = tasks if task_ref is None else _match(tasks, task_ref, run.id)
        # a cached task shows the logs of the execution whose results it reused
        sources = {t.id: (t.outputs or {}).get("cached_from", {}).get("task_id") for t in selected if t.cached}
        wanted = [t.id for t in selected] + [s for s in sources.values() if s]
        attempts = store.list_attempts(wanted) if selected else []
    by_task: dict[str, list[AttemptRow]] = {}
    for attempt in attempts:
        by_task.setdefault(attempt.task_id, []).append(attempt)
    for task_id, source in sources.items():
        if source in by_task:
            by_task[task_id] = by_task[source]
    if task_ref is None:
        selected = [t for t in selected if t.id in by_task]
        if not selected:
            click.echo(f"flowdeck: run {run.id[:8]} has no task logs (no task ran a process)", err=True)
            return 0
    logs_found = [(task, attempt) for task in selected for attempt in by_task.get(task.id, [])]
    if not logs_found:
        task = selected[0]
        raise CLIError(f"task {task.path!r} of run {run.id[:8]} has no logs: {_why_no_logs(task)}", FAILURE)
    headers = len(logs_found) > 1
    missing = False
    for task, attempt in logs_found:
        if headers:
            _write(f"==> {task.path} (attempt {attempt.number}, {attempt.state}{_origin(task)}) <==\n")
        elif task.cached:
            source = (task.outputs or {}).get("cached_from") or {}
            click.echo(f"flowdeck: {task.path} was served from the cache: these are the logs of "
                       f"{source.get('path', task.path)} in run {str(source.get('run_id', '?'))[:8]}", err=True)
        missing |= not _print_log(attempt.log_path)
        if headers:
            _write("\n")
    for task in selected:
        if task.id not in by_task and task_ref is not None:
            click.echo(f"flowdeck: {task.path}: no logs ({_why_no_logs(task)})", err=True)
    return FAILURE if missing else 0


def _resource_logs(kind: str, name: str | None, namespace: str | None) -> int:
    from flowdeck.cli.client import ControlPlaneClient
    from flowdeck.cli.resources import object_path

    if not name:
        raise CLIError(f"give the NAME of the {kind} whose logs to print: flowdeck logs {kind.lower()} NAME")
    with ControlPlaneClient() as client:
        text = client.request("GET", object_path(namespace or "default", kind, name) + "/log")
    _write(text if isinstance(text, str) else str(text))
    return 0


def _match(tasks: Sequence[TaskRow], ref: str, run_id: str) -> list[TaskRow]:
    exact = [t for t in tasks if t.path == ref]
    if exact:
        return exact
    named = [t for t in tasks if ref in (t.name, t.display_name)]
    if named:
        return named
    names = sorted({t.name for t in tasks})
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    raise CLIError(f"no task {ref!r} in run {run_id[:8]} (tasks: {shown or 'none'})")


def _origin(task: TaskRow) -> str:
    """`, cached: run 1a2b3c4d` for a task whose results (and logs) come from an earlier execution."""
    source = (task.outputs or {}).get("cached_from") or {}
    return f", cached: run {source['run_id'][:8]}" if task.cached and source.get("run_id") else ""


def _why_no_logs(task: TaskRow) -> str:
    if task.cached:
        return "its result came from the cache, nothing ran"
    if task.kind in ("dag", "loop"):
        return f"it is a {task.kind} that groups other tasks and runs no process itself"
    if task.kind != "container":
        return f"it is an {task.kind} task and runs no process"
    return f"it is {task.state} and never started a process" + (f" ({task.error})" if task.error else "")


def _print_log(path: str | None) -> bool:
    """Copy one log file to stdout; False (with a note on stderr) when it is missing."""
    if not path:
        click.echo("flowdeck: this attempt recorded no log file", err=True)
        return False
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        click.echo(f"flowdeck: cannot read log {path}: {exc.strerror or exc}", err=True)
        return False
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    if data and not data.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    sys.stdout.buffer.flush()
    return True


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
