"""`flowdeck runs list|get`: the recorded runs, read straight from the metadata store.

Every `flowdeck run` (and, later, every run the server executes) lands in the same store, so these
commands need no server. Runs whose engine process died are marked FAILED first, so that a crashed
or killed `flowdeck run` never shows as RUNNING forever.
"""

from __future__ import annotations

import click

from flowdeck.cli.common import find_run, open_cli_store

RUN_STATES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED")


@click.group(short_help="List runs and show one run's tasks.")
def runs() -> None:
    """List recorded pipeline runs, and show one run with its tasks.

    \b
    Examples:
      flowdeck runs list
      flowdeck runs list --state FAILED --limit 5
      flowdeck runs get 1a2b3c4d
      flowdeck runs get 1a2b3c4d --json | jq '.tasks[] | select(.state == "FAILED")'
    """


@runs.command("list", short_help="List recent runs, newest first.")
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(min=1),
              help="Show at most this many runs.")
@click.option("-s", "--state", "state_filter", type=click.Choice(RUN_STATES, case_sensitive=False),
              help="Only runs in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of runs instead of a table.")
def list_runs(limit: int, state_filter: str | None, as_json: bool) -> int:
    """List recent runs, newest first: id (a unique prefix), pipeline, state, creation time, duration.

    Any unique prefix of a run id works wherever a RUN is expected (`flowdeck runs get`,
    `flowdeck logs`).
    """
    from flowdeck.cli import render

    with open_cli_store() as store:
        store.fail_orphaned_runs()
        rows = store.list_runs(limit=limit, state=state_filter.upper() if state_filter else None)
    if as_json:
        render.print_json([render.run_record(row) for row in rows])
        return 0
    console = render.stdout()
    if not rows:
        if state_filter:
            console.print(f"No {state_filter.upper()} runs.")
        else:
            console.print("No runs yet. Start one with: flowdeck run PIPELINE")
        return 0
    render.runs_table(console, rows)
    return 0


@runs.command("get", short_help="Show a run and its tasks.")
@click.argument("run_ref", metavar="RUN")
@click.option("--json", "as_json", is_flag=True,
              help="Print the run document (the same shape `flowdeck run --json` prints) with its timestamps.")
def get_run(run_ref: str, as_json: bool) -> int:
    """Show RUN (an id or a unique prefix of one): its state, arguments, outputs, and every task with its
    state, cache hit, attempts and error.

    Tasks inside loops appear once per iteration, as `LOOP[i]/TASK`.
    """
    from flowdeck.cli import render
    from flowdeck.pipelines.api import describe_run

    with open_cli_store() as store:
        store.fail_orphaned_runs()
        row = find_run(store, run_ref)
        document = describe_run(store, row.id)
    if as_json:
        extra = {"arguments": row.arguments or {}, "enable_caching": row.enable_caching,
                 "created_at": row.created_at, "started_at": row.started_at, "finished_at": row.finished_at}
        for key, value in extra.items():
            document.setdefault(key, value)
        render.print_json(document)
        return 0
    render.run_details(render.stdout(), row, document)
    return 0
