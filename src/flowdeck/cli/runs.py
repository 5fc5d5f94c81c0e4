"""`flowdeck runs list|get`: the recorded runs, from the metadata store or from a control plane.

Every `flowdeck run` and every run the control plane executes lands in the same store, so these
commands need no server. Runs whose engine process died are marked FAILED first, so that a crashed
or killed `flowdeck run` never shows as RUNNING forever. With `FLOWDECK_URL` set, the runs come from
that control plane's KFP API instead (it may run on another machine). KFP's run lists carry no
pipeline, so a remote list shows each run's name where a local one shows its pipeline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

from flowdeck.cli.common import CLIError, find_run, load_settings, open_cli_store

if TYPE_CHECKING:
    from flowdeck.cli.client import ControlPlaneClient

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

    With FLOWDECK_URL set, the runs come from that control plane (`flowdeck up`) instead of the local
    store; its run lists carry no pipeline, so the second column is each run's NAME (`runs get`
    shows the pipeline).
    """
    from flowdeck.cli import render

    remote = bool(load_settings().url)
    if remote:
        rows: Any = _remote_runs(limit, state_filter.upper() if state_filter else None)
    else:
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
    render.runs_table(console, rows, by_name=remote)
    return 0


@runs.command("get", short_help="Show a run and its tasks.")
@click.argument("run_ref", metavar="RUN")
@click.option("--json", "as_json", is_flag=True,
              help="Print the run document (the same shape `flowdeck run --json` prints) with its timestamps.")
def get_run(run_ref: str, as_json: bool) -> int:
    """Show RUN (an id or a unique prefix of one): its state, arguments, outputs, and every task with its
    state, cache hit, attempts and error.

    Tasks inside loops appear once per iteration, as `LOOP[i]/TASK`. With FLOWDECK_URL set, the run
    comes from that control plane instead of the local store.
    """
    from flowdeck.cli import render

    if load_settings().url:
        row, document = _remote_run(run_ref)
    else:
        from flowdeck.pipelines.api import describe_run

        with open_cli_store() as store:
            store.fail_orphaned_runs()
            row = find_run(store, run_ref)
            document = describe_run(store, row.id)
    if as_json:
        extra = {"arguments": row.arguments or {}, "enable_caching": row.enable_caching,
                 "created_at": row.created_at, "started_at": row.started_at, "finished_at": row.finished_at}
        for key, value in extra.items():
            if value is not None or key != "enable_caching":
                document.setdefault(key, value)
        render.print_json(document)
        return 0
    render.run_details(render.stdout(), row, document)
    return 0


# -- from a control plane ---------------------------------------------------------------------------
KFP_RUNS = "/apis/v2beta1/runs"
#: The largest page the KFP API serves; longer lists follow next_page_token.
_PAGE_SIZE = 200
#: Runs looked at when a RUN prefix has to be resolved through the API.
_PREFIX_CANDIDATES = 100


@dataclass
class RemoteRun:
    """A run as the KFP API describes it, with the attributes the renderers read from a stored run."""

    id: str
    display_name: str
    state: str
    #: Known for one run (from its spec or its uploaded pipeline); None in lists, which carry neither.
    pipeline_name: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    #: Not part of KFP's run message; None leaves it out.
    enable_caching: bool | None = None

    @classmethod
    def from_api(cls, run: dict[str, Any], pipeline_name: str | None = None) -> RemoteRun:
        from flowdeck.cli.client import parse_time

        started = next((h.get("update_time") for h in run.get("state_history") or [] if h.get("state") == "RUNNING"),
                       None)
        return cls(
            id=run["run_id"], display_name=run.get("display_name", ""), state=run.get("state", ""),
            pipeline_name=pipeline_name, created_at=parse_time(run.get("created_at")), started_at=parse_time(started),
            finished_at=parse_time(run.get("finished_at")), error=(run.get("error") or {}).get("message"),
            arguments=(run.get("runtime_config") or {}).get("parameters") or {},
        )


def _remote_runs(limit: int, state: str | None) -> list[RemoteRun]:
    """Up to `limit` runs, newest first, page after page."""
    from flowdeck.cli.client import ControlPlaneClient

    params: dict[str, Any] = {"sort_by": "created_at desc"}
    if state:
        params["filter"] = json.dumps({"predicates": [{"operation": "EQUALS", "key": "state", "string_value": state}]})
    runs: list[dict[str, Any]] = []
    with ControlPlaneClient() as client:
        while len(runs) < limit:
            answer = client.request("GET", KFP_RUNS, params={**params, "page_size": min(limit - len(runs), _PAGE_SIZE)})
            runs += answer.get("runs") or []
            if not answer.get("next_page_token"):
                break
            params = {"page_token": answer["next_page_token"]}  # the token carries the filter and the order
    return [RemoteRun.from_api(run) for run in runs[:limit]]


def _remote_run(ref: str) -> tuple[RemoteRun, dict[str, Any]]:
    """The run whose id is `ref` (or the only one whose id starts with it), and its run document."""
    from flowdeck.cli.client import ControlPlaneClient

    with ControlPlaneClient() as client:
        run = client.request("GET", f"{KFP_RUNS}/{quote(ref, safe='')}", missing_ok=True)
        if run is None:
            substring = {"predicates": [{"operation": "IS_SUBSTRING", "key": "run_id", "string_value": ref}]}
            listed = client.request("GET", KFP_RUNS, params={"filter": json.dumps(substring),
                                                             "page_size": _PREFIX_CANDIDATES})
            matches = [r["run_id"] for r in listed.get("runs") or [] if r["run_id"].startswith(ref)]
            if len(matches) != 1:
                raise CLIError(f"several runs match {ref!r}; give more of the id" if matches
                               else f"no run matches {ref!r} at {client.url}")
            run = client.request("GET", f"{KFP_RUNS}/{quote(matches[0], safe='')}")
        row = RemoteRun.from_api(run, _pipeline_name(client, run))
    details = (run.get("run_details") or {}).get("task_details") or []
    by_id = {task["task_id"]: task for task in details}

    def path(task: dict[str, Any]) -> str:
        parent = by_id.get(task.get("parent_task_id") or "")
        name = task.get("display_name", "")
        return f"{path(parent)}/{name}" if parent is not None else name

    tasks = [{"name": t.get("display_name", ""), "display_name": t.get("display_name", ""), "path": path(t),
              "state": t.get("state", ""), "error": (t.get("error") or {}).get("message"),
              "started_at": t.get("start_time"), "finished_at": t.get("end_time")} for t in details]
    document = {"run_id": row.id, "pipeline": row.pipeline_name, "display_name": row.display_name,
                "state": row.state, "error": row.error, "outputs": {}, "tasks": tasks}
    return row, document


def _pipeline_name(client: ControlPlaneClient, run: dict[str, Any]) -> str:
    """The pipeline a run ran: its spec's name, or that of the uploaded pipeline its version reference names."""
    spec = run.get("pipeline_spec") or {}
    spec = spec.get("pipeline_spec", spec)
    if spec:
        return (spec.get("pipelineInfo") or {}).get("name") or "?"
    pipeline_id = (run.get("pipeline_version_reference") or {}).get("pipeline_id")
    pipeline = pipeline_id and client.request("GET", f"/apis/v2beta1/pipelines/{quote(pipeline_id, safe='')}",
                                              missing_ok=True)
    if not pipeline:
        return f"{pipeline_id} (not found)" if pipeline_id else "?"
    return pipeline.get("display_name") or pipeline.get("name") or pipeline_id
