"""`flowdeck run`: run a pipeline to completion on this machine and report how it went.

The command parses `-p NAME=VALUE` arguments, hands everything to `flowdeck.pipelines.api.run_pipeline`
and renders the document it returns. Ctrl-C (or SIGTERM) is turned into the API's cancellation: the
run is recorded as CANCELED, its processes stopped, and the command exits 1.
"""

from __future__ import annotations

import time
from typing import Any

import click

from flowdeck.cli.common import (
    FAILURE,
    CLIError,
    first_line,
    load_settings,
    open_cli_store,
    safe_url,
)


def parse_parameters(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    """`-p NAME=VALUE` pairs, VALUE as typed: the engine reads it as JSON for numbers, booleans, lists and
    structs, and keeps it verbatim for string parameters (so `-p version=1.10` stays "1.10")."""
    result: dict[str, Any] = {}
    for item in values:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="-p")
        if name in result:
            raise click.BadParameter(f"parameter {name!r} is given twice", param_hint="-p")
        result[name] = text
    return result


@click.command(short_help="Run a pipeline on this machine.")
@click.argument("pipeline", metavar="PIPELINE")
@click.option("-p", "--param", "arguments", multiple=True, metavar="NAME=VALUE", callback=parse_parameters,
              help="A pipeline parameter (repeatable), converted to its declared type: JSON for numbers, "
                   "booleans, lists and structs (3, 0.5, true, [1,2], {\"k\":1}); verbatim for strings. "
                   "An artifact input takes a local path or a URI.")
@click.option("--no-cache", is_flag=True,
              help="Run every task, even when a cached result exists (and record nothing in the cache).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as one JSON document on stdout (progress and warnings go to stderr).")
def run(pipeline: str, arguments: dict[str, Any], no_cache: bool, as_json: bool) -> int:
    """Run PIPELINE to the end and print a summary.

    PIPELINE is a Python file with one @dsl.pipeline (pick one with FILE.py:FUNCTION when it has
    several), or a pipeline YAML compiled by the kfp SDK. Python components run in local processes;
    container components run their command on this machine (the image is ignored).

    \b
    Examples:
      flowdeck run examples/hello_pipeline.py
      flowdeck run train.py:training_pipeline -p epochs=3 -p lr=0.01
      flowdeck run pipeline.yaml -p 'config={"depth": 4}' --no-cache
      flowdeck run pipeline.yaml --json | jq .outputs

    Exit status: 0 when the run SUCCEEDED, 1 when it FAILED or was canceled (Ctrl-C), 2 when the
    pipeline or its parameters are invalid (then no run is recorded). Inspect runs afterwards with
    `flowdeck runs get RUN` and `flowdeck logs RUN TASK`.
    """
    from flowdeck.cli import render

    settings = load_settings()
    from sqlalchemy.exc import SQLAlchemyError

    from flowdeck.cli.progress import ProgressListener
    from flowdeck.pipelines.api import run_pipeline
    from flowdeck.pipelines.errors import PipelineError

    out, err = render.stdout(), render.stderr()
    listener = ProgressListener(out, err, live=not as_json and out.is_terminal)
    started = time.monotonic()
    try:
        with listener.display():
            document = run_pipeline(pipeline, arguments, enable_caching=not no_cache, settings=settings,
                                    listener=listener)
    except PipelineError as exc:
        hint = " (use -p NAME=VALUE)" if str(exc).startswith(("missing value", "missing artifact")) else ""
        raise CLIError(f"{exc}{hint}") from None
    except SQLAlchemyError as exc:
        raise CLIError(f"run database {safe_url(settings.resolved_database_url)}: {first_line(exc)}", FAILURE) from None
    except KeyboardInterrupt:
        return _canceled(listener.run_id, as_json)
    if as_json:
        render.print_json(document)
    else:
        render.run_summary(out, document, time.monotonic() - started)
    return 0 if document["state"] == "SUCCEEDED" else FAILURE


def _canceled(run_id: str | None, as_json: bool) -> int:
    """Say which run Ctrl-C (or SIGTERM) canceled; the engine has already recorded it as CANCELED."""
    from flowdeck.cli import render
    from flowdeck.pipelines.api import describe_run

    if run_id is None:
        click.echo("flowdeck: canceled before the run started", err=True)
        return FAILURE
    with open_cli_store() as store:
        document = describe_run(store, run_id)
    what = "canceled" if document["state"] == "CANCELED" else f"interrupted (state {document['state']})"
    click.echo(f"flowdeck: run {run_id} {what}; see `flowdeck runs get {render.short_id(run_id)}`", err=True)
    if as_json:
        render.print_json(document)
    return FAILURE
