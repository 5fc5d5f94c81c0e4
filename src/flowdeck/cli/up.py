"""`flowdeck up`: start the control plane (API, controllers, dashboard) on this machine."""

from __future__ import annotations

import click

from flowdeck.cli.common import FAILURE, CLIError, load_settings
from flowdeck.defaults import DEFAULT_HOST, DEFAULT_PORT


@click.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on. Anything but a loopback address exposes the API to the network.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port; the printed URL names it).")
@click.option("--token", envvar="FLOWDECK_TOKEN", default=None, metavar="TOKEN",
              help="Require this bearer token on every API call (also FLOWDECK_TOKEN). "
                   "kfp.Client sends it with existing_token=TOKEN.")
def up(host: str, port: int, token: str | None) -> None:
    """Start the flowdeck control plane and serve until Ctrl-C.

    Serves the KFP v2beta1 API (so `kfp.Client(host=URL)` works unchanged), the resource API used by
    `flowdeck apply/get/describe/delete`, and the dashboard at the printed URL. Runs submitted over
    the API execute on this machine; runs left unfinished when the server stops resume on its next
    start, reusing the tasks that had succeeded.

    \b
    Examples:
      flowdeck up
      flowdeck up --port 9000 --token s3cret
    """
    from flowdeck.controlplane.server import ServeError, serve

    settings = load_settings()
    if token:
        settings = settings.model_copy(update={"token": token})
    try:
        serve(settings, host, port)
    except ServeError as exc:
        raise CLIError(str(exc), FAILURE) from None
