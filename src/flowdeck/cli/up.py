"""`flowdeck up`: start the control plane (API, controllers, dashboard) on this machine.

The legacy bearer token comes from FLOWDECK_TOKEN or `--token-file`; `--token` still works but
warns, since a command line is visible to every local user (`ps`).
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from flowdeck.cli.common import FAILURE, CLIError, load_settings
from flowdeck.defaults import DEFAULT_HOST, DEFAULT_PORT

#: Printed (to stderr) when the token is given on the command line; the token itself never is.
TOKEN_ON_COMMAND_LINE = ("flowdeck: warning: --token on the command line is visible to other local users (ps); "
                         "set FLOWDECK_TOKEN or use --token-file instead")


@click.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on. Anything but a loopback address exposes the API to the network.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port; the printed URL names it).")
@click.option("--token", envvar="FLOWDECK_TOKEN", default=None, metavar="TOKEN",
              help="Require this bearer token on every API call. Prefer FLOWDECK_TOKEN or --token-file: a "
                   "command line is visible to other local users. kfp.Client sends it with existing_token=TOKEN.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PATH",
              help="Read the bearer token from this file (surrounding whitespace is ignored).")
def up(host: str, port: int, token: str | None, token_file: Path | None) -> None:
    """Start the flowdeck control plane and serve until Ctrl-C.

    Serves the KFP v2beta1 API (so `kfp.Client(host=URL)` works unchanged), the resource API used by
    `flowdeck apply/get/describe/delete`, and the dashboard at the printed URL. Runs submitted over
    the API execute on this machine; runs left unfinished when the server stops resume on its next
    start, reusing the tasks that had succeeded.

    \b
    Examples:
      flowdeck up
      FLOWDECK_TOKEN=s3cret flowdeck up --port 9000
      flowdeck up --token-file ~/.flowdeck-token
    """
    from flowdeck.controlplane.server import ServeError, serve

    source = click.get_current_context().get_parameter_source("token")
    from_command_line = source is ParameterSource.COMMANDLINE
    if token_file is not None:
        if from_command_line:
            raise CLIError("give --token or --token-file, not both")
        token = read_token_file(token_file)
    elif token and from_command_line:
        click.echo(TOKEN_ON_COMMAND_LINE, err=True)
    settings = load_settings()
    if token:
        settings = settings.model_copy(update={"token": token})
    try:
        serve(settings, host, port)
    except ServeError as exc:
        raise CLIError(str(exc), FAILURE) from None


def read_token_file(path: Path) -> str:
    """The token in `path`, stripped of surrounding whitespace; a missing, unreadable or empty file is an error."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise CLIError(f"--token-file: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"--token-file: cannot read {path}: {exc.strerror if isinstance(exc, OSError) else exc}"
                       ) from None
    if not token:
        raise CLIError(f"--token-file: {path} is empty")
    if any(character.isspace() for character in token):
        raise CLIError(f"--token-file: {path} holds more than one word; put the token alone in it")
    return token
