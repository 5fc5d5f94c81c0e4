"""How runs and tasks look on a terminal: states, durations, tables, the end-of-run summary.

Kept apart from the commands so every command shows a run the same way, and so that the commands
themselves read as "parse, call, render". User-provided text (task errors, outputs, log lines) is
always wrapped in `rich.text.Text`, never interpreted as rich markup.
"""

from __future__ import annotations

import json
import os
import shlex
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from flowdeck.store import RunRow

STATE_STYLES = {
    "SUCCEEDED": "green",
    "FAILED": "bold red",
    "CANCELED": "yellow",
    "RUNNING": "cyan",
    "PENDING": "dim",
    "SKIPPED": "dim",
    "NOT_TRIGGERED": "dim",
}
#: Characters of a run id shown in tables and hints; any unique prefix is accepted back.
SHORT_ID = 8


#: Width of tables written to a pipe or file (rich would otherwise wrap them at 80 columns).
PIPE_WIDTH = 200


def stdout() -> Console:
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH  # tables size to their content; this only stops needless wrapping
    return console


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(document: Any) -> None:
    """Print one JSON document on stdout (datetimes as ISO 8601)."""
    print(json.dumps(document, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def state(text: str) -> Text:
    return Text(text, style=STATE_STYLES.get(text, ""))


def short_id(run_id: str) -> str:
    return run_id[:SHORT_ID]


def format_duration(seconds: float | None) -> str:
    """`0.42s`, `12.3s`, `4m 05s`, `2h 03m`; empty when unknown."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f}s" if seconds < 1 else f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_time(value: datetime | None) -> str:
    """A timestamp in the local time zone, to the second."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def run_seconds(run: RunRow) -> float | None:
    """How long the run took, or has been running so far."""
    start = run.started_at or run.created_at
    if start is None:
        return None
    end = run.finished_at or (None if run.state in ("SUCCEEDED", "FAILED", "CANCELED") else datetime.now(timezone.utc))
    if end is None:
        return None
    return max(0.0, (_aware(end) - _aware(start)).total_seconds())


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def format_value(value: Any) -> str:
    """A parameter or output value as JSON (strings too, so that `"1"` and `1` look different)."""
    return json.dumps(value, default=str)


def run_record(run: RunRow) -> dict[str, Any]:
    """A run as a JSON-able dict, for `runs list --json`."""
    return {
        "run_id": run.id,
        "pipeline": run.pipeline_name,
        "display_name": run.display_name,
        "state": run.state,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_seconds": run_seconds(run),
        "error": run.error,
    }


def task_counts(tasks: Iterable[dict[str, Any]]) -> str:
    """`5 succeeded (2 cached), 1 failed, 1 skipped`."""
    tasks = list(tasks)
    counts = Counter(task["state"] for task in tasks)
    cached = sum(1 for task in tasks if task.get("cached"))
    order = ["SUCCEEDED", "FAILED", "CANCELED", "RUNNING", "PENDING", "SKIPPED", "NOT_TRIGGERED"]
    parts = []
    for name in order + sorted(set(counts) - set(order)):
        if counts.get(name):
            part = f"{counts[name]} {name.lower().replace('_', ' ')}"
            if name == "SUCCEEDED" and cached:
                part += f" ({cached} cached)"
            parts.append(part)
    return ", ".join(parts) or "no tasks"


def logs_hint(run_id: str, task: dict[str, Any]) -> str:
    return f"flowdeck logs {short_id(run_id)} {shlex.quote(task['path'])}"


def run_summary(console: Console, document: dict[str, Any], seconds: float | None) -> None:
    """The end of `flowdeck run`: state, id, duration, outputs, and what failed with where to look."""
    run_id = document["run_id"]
    headline = Text.assemble(
        state(document["state"]), "  ", Text(str(document.get("pipeline") or ""), style="bold"),
        "  run ", Text(run_id, style="bold"),
    )
    if seconds is not None:
        headline.append(f"  in {format_duration(seconds)}")
    console.print(headline)
    tasks = document.get("tasks") or []
    console.print(Text(f"  tasks: {task_counts(tasks)}"))
    outputs = document.get("outputs") or {}
    if outputs:
        console.print("  outputs:")
        for name, value in outputs.items():
            console.print(Text(f"    {name} = {format_value(value)}"))
    if document["state"] == "SUCCEEDED":
        return
    if document.get("error"):
        console.print(Text(f"  error: {document['error']}", style="red"))
    failed = [task for task in tasks if task["state"] == "FAILED"]
    if failed:
        console.print("  failed tasks:")
        for task in failed:
            console.print(Text.assemble("    ", Text(task["path"], style="bold"), f": {task.get('error') or ''}"))
            if task.get("attempts"):
                console.print(Text(f"      logs: {logs_hint(run_id, task)}", style="dim"))


def runs_table(console: Console, runs: Sequence[RunRow], *, by_name: bool = False) -> None:
    """`flowdeck runs list`; `by_name`: a NAME column of run names where the pipeline is unknown (KFP lists)."""
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    table.add_column("RUN", no_wrap=True)
    table.add_column("NAME" if by_name else "PIPELINE", overflow="fold")
    table.add_column("STATE", no_wrap=True)
    table.add_column("CREATED", no_wrap=True)
    table.add_column("DURATION", no_wrap=True, justify="right")
    for run in runs:
        table.add_row(short_id(run.id), Text(run.display_name if by_name else run.pipeline_name), state(run.state),
                      format_time(run.created_at), format_duration(run_seconds(run)))
    console.print(table)


def run_details(console: Console, run: RunRow, document: dict[str, Any]) -> None:
    """`flowdeck runs get`: the run's fields, then one row per task."""
    fields: list[tuple[str, Text | str]] = [
        ("Run", run.id),
        ("Pipeline", run.pipeline_name),
        ("Name", run.display_name),
        ("State", state(run.state)),
        ("Created", format_time(run.created_at)),
        ("Finished", format_time(run.finished_at)),
        ("Duration", format_duration(run_seconds(run))),
        ("Caching", "" if run.enable_caching is None else "on" if run.enable_caching else "off (--no-cache)"),
    ]
    arguments = run.arguments or {}
    if arguments:
        fields.append(("Arguments", ", ".join(f"{k}={format_value(v)}" for k, v in arguments.items())))
    outputs = document.get("outputs") or {}
    if outputs:
        fields.append(("Outputs", ", ".join(f"{k}={format_value(v)}" for k, v in outputs.items())))
    if run.error:
        fields.append(("Error", Text(run.error, style="red")))
    width = max(len(name) for name, _ in fields) + 2
    for name, value in fields:
        if value != "":
            console.print(Text.assemble(Text(name.ljust(width), style="bold"),
                                        value if isinstance(value, Text) else Text(value)))
    console.print()
    tasks = document.get("tasks") or []
    if not tasks:
        console.print("No tasks recorded.")
        return
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    table.add_column("TASK", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("CACHED", no_wrap=True)
    table.add_column("ATTEMPTS", no_wrap=True, justify="right")
    table.add_column("ERROR", overflow="fold")
    for task in tasks:
        table.add_row(Text(task["path"]), state(task["state"]), "yes" if task.get("cached") else "",
                      str(task["attempts"] or 0) if "attempts" in task else "",
                      Text(task.get("error") or "", style="red"))
    console.print(table)
    failed = [task for task in tasks if task["state"] == "FAILED" and task.get("attempts")]
    if failed:
        console.print()
        for task in failed:
            console.print(Text(f"logs of {task['path']}: {logs_hint(run.id, task)}", style="dim"))
