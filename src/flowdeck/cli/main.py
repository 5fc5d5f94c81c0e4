"""The `flowdeck` entry point: the root command group and the one place errors become exit codes.

Subcommands are listed as `(name, "module:attribute")` and imported only when used (or when `--help`
lists them), so starting the CLI costs click and little else. Every error a user can fix surfaces as
one line, `flowdeck: error: ...`, with exit status 2 for usage mistakes and 1 for failures; no
traceback. Unexpected exceptions still show their traceback: those are bugs worth reporting.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

import click

from flowdeck import __version__

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Subcommands of `flowdeck`, imported on first use.
COMMANDS: dict[str, str] = {
    "run": "flowdeck.cli.run:run",
    "runs": "flowdeck.cli.runs:runs",
    "logs": "flowdeck.cli.logs:logs",
    "up": "flowdeck.cli.up:up",
    "serve": "flowdeck.cli.serve:serve",
    "isvc": "flowdeck.cli.isvc:isvc",
    "apply": "flowdeck.cli.resources:apply",
    "get": "flowdeck.cli.resources:get",
    "describe": "flowdeck.cli.resources:describe",
    "delete": "flowdeck.cli.resources:delete",
    "login": "flowdeck.cli.login:login",
    "logout": "flowdeck.cli.login:logout",
    "users": "flowdeck.cli.users:users",
    "tokens": "flowdeck.cli.tokens:tokens",
    "profiles": "flowdeck.cli.profiles:profiles",
}


class LazyGroup(click.Group):
    """A click group whose subcommands live in modules that are imported only when needed."""

    def __init__(self, *args: object, lazy_commands: dict[str, str] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands and cmd_name not in self.commands:
            module_name, attribute = self.lazy_commands[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="flowdeck", message="%(prog)s %(version)s")
def cli() -> None:
    """flowdeck: Kubeflow's ML platform on this machine.

    `flowdeck up` starts the control plane: the KFP API (the real kfp.Client works against it), the
    resource API behind apply/get/describe/delete, and the dashboard. `flowdeck run` runs one
    pipeline written with the kfp SDK (a Python file) or compiled by it (a YAML file) without a
    server; every run is recorded, so `flowdeck runs` and `flowdeck logs` can show it afterwards.

    \b
    Examples:
      flowdeck up
      flowdeck run examples/hello_pipeline.py -p name=Ada
      flowdeck runs list
      flowdeck logs 1a2b3c4d train
      flowdeck apply -f run.yaml --wait
      flowdeck get pipelineruns

    State lives in FLOWDECK_HOME (default ~/.flowdeck): the run database, artifacts and logs.
    Commands that talk to the control plane use FLOWDECK_URL (default http://127.0.0.1:8080) and
    FLOWDECK_TOKEN.
    """


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI and exit with its status: 0 success, 1 failure, 2 usage error."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="flowdeck", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        result = 0
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        click.echo(f"flowdeck: error: {exc.format_message()}{hint}", err=True)
        result = exc.exit_code
    except click.ClickException as exc:
        click.echo(f"flowdeck: error: {exc.format_message()}", err=True)
        result = exc.exit_code
    except click.exceptions.Abort:
        click.echo("flowdeck: aborted", err=True)
        result = 1
    except BrokenPipeError:
        # The reader went away (`flowdeck runs list | head`): not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        result = 1
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
