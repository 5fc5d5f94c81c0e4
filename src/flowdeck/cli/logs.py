"""`flowdeck logs`: print what a run's tasks wrote to stdout and stderr, or a resource's logs.

Which logs a run has, and what to say when a task has none, is `flowdeck.pipelines.tasklogs`'s
business; this command only prints: the logs on stdout, the notes on stderr. The run's logs come
from the local store, or, with `FLOWDECK_URL` set, from that control plane (which may run on
another machine). When the first argument names a resource kind (`flowdeck logs pipelinerun
nightly`), the logs come from the control plane, through the kind's own logs hook.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from urllib.parse import quote

import click

from flowdeck.cli.common import FAILURE, CLIError, find_run, load_settings, open_cli_store

#: What a run id (a UUID) or a prefix of one looks like; anything else may be a resource kind.
_RUN_REF = re.compile(r"[0-9a-fA-F-]+")


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
    A task served from the cache shows the logs of the execution it reused.

    With FLOWDECK_URL set, RUN's logs come from that control plane instead of the local store.

    \b
    Examples:
      flowdeck logs 1a2b3c4d
      flowdeck logs 1a2b3c4d train
      flowdeck logs 1a2b3c4d 'for-loop-2[0]/square'
      flowdeck logs pipelinerun nightly
    """
    if not _RUN_REF.fullmatch(run_ref):
        from flowdeck.resources.registry import registry

        kind = registry().find(run_ref)
        if kind is not None:
            return _resource_logs(kind.kind, task_ref, namespace)
    if namespace is not None:
        raise CLIError(f"--namespace goes with KIND NAME; {run_ref!r} is not a resource kind")
    if load_settings().url:
        return _remote_run_logs(run_ref, task_ref)
    from flowdeck.pipelines.tasklogs import TaskNotFound, find_logs

    with open_cli_store() as store:
        try:
            found = find_logs(store, find_run(store, run_ref), task_ref)
        except TaskNotFound as exc:
            raise CLIError(str(exc)) from None
    return _print(found.chunks(), found.notes, found.missing)


def _remote_run_logs(run_ref: str, task_ref: str | None) -> int:
    import json

    from flowdeck.cli.client import ControlPlaneClient
    from flowdeck.pipelines.tasklogs import MISSING_HEADER, NOTES_HEADER

    path = f"/apis/flowdeck/v1/runs/{quote(run_ref, safe='')}/logs"
    with ControlPlaneClient() as client:
        with client.stream("GET", path, params={"task": task_ref} if task_ref else None) as response:
            notes = json.loads(response.headers.get(NOTES_HEADER) or "[]")
            return _print(response.iter_bytes(), notes, int(response.headers.get(MISSING_HEADER) or 0))


def _resource_logs(kind: str, name: str | None, namespace: str | None) -> int:
    from flowdeck.cli.client import ControlPlaneClient
    from flowdeck.cli.resources import object_path

    if not name:
        raise CLIError(f"give the NAME of the {kind} whose logs to print: flowdeck logs {kind.lower()} NAME")
    with ControlPlaneClient() as client:
        with client.stream("GET", object_path(namespace or "default", kind, name) + "/log") as response:
            return _print(response.iter_bytes(), [], 0)


def _print(chunks: Iterable[bytes], notes: Iterable[str], missing: int) -> int:
    """Notes on stderr, then the logs on stdout as they are; FAILURE when some asked-for log is missing."""
    for note in notes:
        click.echo(f"flowdeck: {note}", err=True)
    sys.stdout.flush()
    for chunk in chunks:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    return FAILURE if missing else 0
