"""`flowdeck tokens create|list|revoke`: API tokens for scripts, CI and `kfp.Client(existing_token=...)`.

A new token is printed once (to standard output alone, so `$(flowdeck tokens create -q)` captures
it); the server keeps only its digest. Its rights are its scopes (and profile) intersected with its
owner's current rights.
"""

from __future__ import annotations

from urllib.parse import quote

import click

from flowdeck.cli.common import CLIError

TOKENS = "/apis/flowdeck/v1/tokens"
SCOPES = ("read", "write", "manage", "own")


@click.group()
def tokens() -> None:
    """Create, list and revoke API tokens."""


@tokens.command("create")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(SCOPES),
              help="A scope the token carries (repeatable; default: all of them, within your own rights).")
@click.option("--profile", default=None, metavar="PROFILE", help="Limit the token to this profile (namespace).")
@click.option("--expires", type=click.IntRange(1, 3650), default=None, metavar="DAYS",
              help="Days until the token expires (default: the server's, 90).")
@click.option("--note", default=None, help="What the token is for.")
@click.option("--owner", default=None, metavar="USER", help="Mint it for another user (cluster admins).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the token.")
def create(scopes: tuple[str, ...], profile: str | None, expires: int | None, note: str | None,
           owner: str | None, quiet: bool) -> None:
    """Create an API token and print it (once: it cannot be shown again)."""
    from flowdeck.cli.client import ControlPlaneClient

    body = {"scopes": list(scopes) or None, "profile": profile, "expires_in_days": expires, "note": note,
            "owner": f"user:{owner}" if owner else None}
    with ControlPlaneClient() as client:
        made = client.request("POST", TOKENS, json={key: value for key, value in body.items() if value is not None})
    click.echo(made["token"])
    if not quiet:
        click.echo(f"token {made['id']}: scopes {', '.join(made['scopes'])}"
                   + (f", profile {made['profile']}" if made["profile"] else "")
                   + f", expires {made['expires_at']}. Keep it now: it is not shown again.", err=True)


@tokens.command("list")
@click.option("--owner", default=None, metavar="USER", help="Another user's tokens (cluster admins).")
@click.option("--all", "all_owners", is_flag=True, help="Everyone's tokens (cluster admins).")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_tokens(owner: str | None, all_owners: bool, output: str) -> None:
    """List your API tokens (never their secrets)."""
    from flowdeck.cli.client import ControlPlaneClient
    from flowdeck.cli.render import print_json, stdout

    if owner and all_owners:
        raise CLIError("give --owner or --all, not both")
    params = {"owner": "*"} if all_owners else {"owner": f"user:{owner}"} if owner else {}
    with ControlPlaneClient() as client:
        found = client.request("GET", TOKENS, params=params)["tokens"]
    if output == "json":
        print_json(found)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("ID", "OWNER", "SCOPES", "PROFILE", "STATE", "EXPIRES", "LAST USED", "NOTE"):
        table.add_column(column)
    for token in found:
        table.add_row(token["id"], token["owner"], ",".join(token["scopes"]), token["profile"] or "",
                      token["state"], (token["expires_at"] or "never")[:19], (token["last_used_at"] or "")[:19],
                      token["note"] or "")
    stdout().print(table)


@tokens.command("revoke")
@click.argument("token_id")
def revoke(token_id: str) -> None:
    """Revoke token TOKEN_ID (see `flowdeck tokens list`): it stops working at once."""
    from flowdeck.cli.client import ControlPlaneClient

    with ControlPlaneClient() as client:
        client.request("DELETE", f"{TOKENS}/{quote(token_id, safe='')}")
    click.echo(f"token {token_id} revoked")
