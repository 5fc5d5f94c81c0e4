"""Live progress of `flowdeck run`: the engine's `Listener`, rendered with rich.

The engine calls `task_changed` on its own thread each time a task changes state, and `message` for
warnings (container images ignored, Kubernetes settings ignored, retries, venv builds). The spinner
line is drawn only on an interactive terminal; warnings always go to stderr, so that `--json` keeps
stdout to exactly one JSON document.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from flowdeck.pipelines.engine import Listener
from flowdeck.pipelines.model import Node

#: Node kinds that run something; DAGs, conditions and loops only group them.
_WORK = ("container", "importer")
_SHOWN_RUNNING = 3


class ProgressListener(Listener):
    """Counts tasks by state and shows them on a spinner line; prints engine messages to stderr."""

    def __init__(self, console: Console, errors: Console, live: bool) -> None:
        self.console = console
        self.errors = errors
        self.live = live
        self.states: dict[str, str] = {}
        self.running: dict[str, str] = {}
        self.cached = 0
        self.run_id: str | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    @contextmanager
    def display(self) -> Iterator[None]:
        """Show the spinner line while the block runs (a no-op unless live)."""
        if not self.live:
            yield
            return
        progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=self.console, transient=True,
        )
        self._task = progress.add_task(self.describe(), total=None)
        self._progress = progress
        try:
            with progress:
                yield
        finally:
            self._progress = None

    def run_started(self, run_id: str) -> None:
        self.run_id = run_id
        if self.live:  # on a terminal, above the progress line: where to look while a long run goes on
            self.console.print(Text(f"flowdeck: run {run_id[:8]} started (logs so far: flowdeck logs {run_id[:8]})",
                                   style="dim"))

    def task_changed(self, node: Node) -> None:
        if node.kind not in _WORK:
            return
        self.states[node.id] = node.state
        if node.state == "RUNNING":
            self.running[node.id] = node.path
        else:
            self.running.pop(node.id, None)
        if node.cached and node.state == "SUCCEEDED":
            self.cached += 1
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=self.describe())

    def message(self, text: str) -> None:
        self.errors.print(Text(f"flowdeck: {text}", style="yellow"))

    def describe(self) -> str:
        """`running 2 (train, eval) · done 5 (1 cached) · failed 1`, as rich markup."""
        values = list(self.states.values())
        done = sum(1 for s in values if s == "SUCCEEDED")
        failed = sum(1 for s in values if s == "FAILED")
        running = list(self.running.values())
        text = f"running {len(running)}"
        if running:
            names = ", ".join(running[:_SHOWN_RUNNING]) + (", ..." if len(running) > _SHOWN_RUNNING else "")
            text += f" ({names})"
        text += f" · done {done}" + (f" ({self.cached} cached)" if self.cached else "")
        text = escape(text)  # task paths of loop iterations hold brackets
        if failed:
            text += f" · [red]failed {failed}[/red]"
        return text
