"""`flowdeck login` and `flowdeck logout`: keep an API token for a control plane in the user's config.

`login` signs in with a user name and password (asked for without echo at a terminal, read from
standard input in scripts) and stores a freshly minted API token, never the password; `--token`
stores a token made elsewhere (checked first). `logout` revokes the token `login` minted on the
server and forgets it. A password about to travel unencrypted (plain http to another machine) is
sent anyway, after a warning.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from urllib.parse import urlsplit

import click

from flowdeck.cli.common import FAILURE, CLIError, load_settings
from flowdeck.cli.userconfig import load_config, save_config

TOKENS = "/apis/flowdeck/v1/tokens"


def plain_text_warning(url: str) -> str | None:
    """The warning to print before a password goes to `url` unencrypted (http, not this machine), or None."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return None
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    return (f"flowdeck: warning: sending your password to {parts.netloc} over plain http: anyone on the network "
            "path can read it; use an https:// URL")


def read_password(*, from_stdin: bool = False, confirm: bool = False) -> str:
    """A password: asked for without echo at a terminal, else the first line of standard input.

    Without a terminal, getpass would warn that it cannot hide the input and print its prompt to
    stderr; a script piping the password in (`... | flowdeck login`) wants neither.
    """
    if not from_stdin and sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CLIError("no password on standard input")
    return password


@click.command()
@click.option("--url", default=None, metavar="URL", help="The control plane (default: FLOWDECK_URL, the stored "
                                                          "one, or http://127.0.0.1:8080).")
@click.option("--username", "-u", default=None, metavar="USER", help="Your user name (asked for when not given).")
@click.option("--token", "token", default=None, metavar="TOKEN",
              help="Store this existing API token instead of signing in with a password.")
@click.option("--expires", type=click.IntRange(1, 3650), default=None, metavar="DAYS",
              help="Days until the new token expires (default: the server's, 90).")
def login(url: str | None, username: str | None, token: str | None, expires: int | None) -> None:
    """Sign in to a control plane and keep an API token for later commands.

    The token goes to ~/.config/flowdeck/config.json (or $FLOWDECK_CONFIG), readable only by you;
    your password is sent once and never stored. Without a terminal, the password is the first line
    of standard input.

    \b
    Examples:
      flowdeck login --url https://flowdeck.example.com --username alice
      flowdeck login --token fdt_...
    """
    from flowdeck.cli.client import ControlPlaneClient

    config = load_config()
    settings = load_settings()
    url = (url or settings.url or config.url or settings.control_plane_url).rstrip("/")
    settings = settings.model_copy(update={"url": url, "token": None})
    with ControlPlaneClient(settings, credentials=False) as client:
        if token is not None:
            client.send("GET", TOKENS, headers={"Authorization": f"Bearer {token.strip()}"})
            token_id, secret = None, token.strip()
        else:
            username = username or click.prompt("User name")
            password = read_password()
            warning = plain_text_warning(url)
            if warning:
                click.echo(warning, err=True)
            client.send("POST", "/login", json={"username": username, "password": password})
            # the login is a cookie, and cookie-authenticated writes must name their origin (CSRF)
            made = client.request("POST", TOKENS, headers={"Origin": url}, json={
                "note": f"flowdeck login on {socket.gethostname()}"[:512], "expires_in_days": expires})
            client.send("POST", "/logout", headers={"Origin": url, "Accept": "application/json"})
            token_id, secret = made["id"], made["token"]
    config.url, config.token, config.token_id = url, secret, token_id
    path = save_config(config)
    click.echo(f"signed in to {url}; the token is kept in {path}")


@click.command()
def logout() -> None:
    """Forget the stored API token, and revoke it if `flowdeck login` minted it."""
    from flowdeck.cli.client import ControlPlaneClient

    config = load_config()
    if not config.token:
        raise CLIError("not signed in (no token in the configuration)", FAILURE)
    revoked = bool(config.token_id and config.url)
    if revoked:
        settings = load_settings().model_copy(update={"url": config.url, "token": config.token})
        with ControlPlaneClient(settings) as client:
            client.send("DELETE", f"{TOKENS}/{config.token_id}", missing_ok=True)
    config.token = config.token_id = None
    save_config(config)
    click.echo(f"signed out of {config.url or 'the control plane'}" + (
        "" if revoked else " (the token given to `flowdeck login --token` stays valid: "
                           "`flowdeck tokens revoke` ends it)"))
