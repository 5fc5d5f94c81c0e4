"""`flowdeck users create|list|disable|passwd`: manage the control plane's users (cluster admins only).

Passwords are asked for without echo (twice, to catch typos), or read from standard input with
`--password-stdin` (or when there is no terminal) for scripts; they are never command-line
arguments (those show up in `ps`).
"""

from __future__ import annotations

from urllib.parse import quote

import click

USERS = "/apis/flowdeck/v1/users"


@click.group()
def users() -> None:
    """Manage users: create, list, disable, set a password (cluster admins only)."""


def _password(from_stdin: bool) -> str:
    from flowdeck.cli.login import read_password

    return read_password(from_stdin=from_stdin, confirm=True)


@users.command("create")
@click.argument("name")
@click.option("--email", default=None, help="The user's email address.")
@click.option("--cluster-admin", is_flag=True, help="Make the user a cluster admin (every profile, every scope).")
@click.option("--no-password", is_flag=True, help="No password: the user signs in through OIDC or a proxy.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create(name: str, email: str | None, cluster_admin: bool, no_password: bool, password_stdin: bool) -> None:
    """Create user NAME (asks for their password)."""
    from flowdeck.cli.client import ControlPlaneClient

    password = None if no_password else _password(password_stdin)
    with ControlPlaneClient() as client:
        client.request("POST", USERS, json={"name": name, "password": password, "email": email,
                                            "cluster_admin": cluster_admin})
    click.echo(f"user {name} created" + (" (cluster admin)" if cluster_admin else ""))


@users.command("list")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_users(output: str) -> None:
    """List users."""
    from flowdeck.cli.client import ControlPlaneClient
    from flowdeck.cli.render import print_json, stdout

    with ControlPlaneClient() as client:
        found = client.request("GET", USERS)["users"]
    if output == "json":
        print_json(found)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "EMAIL", "ADMIN", "STATE", "SIGN-IN", "CREATED"):
        table.add_column(column)
    for user in found:
        sign_in = "password" if user["has_password"] else "oidc" if user["oidc_issuer"] else "proxy"
        table.add_row(user["name"], user["email"] or "", "yes" if user["cluster_admin"] else "",
                      "disabled" if user["disabled"] else "active", sign_in, (user["created_at"] or "")[:19])
    stdout().print(table)


@users.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Disable user NAME: their logins end and their tokens are revoked."""
    from flowdeck.cli.client import ControlPlaneClient

    with ControlPlaneClient() as client:
        client.request("POST", f"{USERS}/{quote(name, safe='')}/disable")
    click.echo(f"user {name} disabled; their logins ended and their tokens were revoked")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
def passwd(name: str, password_stdin: bool) -> None:
    """Set the password of user NAME (their logins end and their tokens are revoked)."""
    from flowdeck.cli.client import ControlPlaneClient

    password = _password(password_stdin)
    with ControlPlaneClient() as client:
        client.request("PUT", f"{USERS}/{quote(name, safe='')}/password", json={"password": password})
    click.echo(f"password of {name} set; their logins ended and their tokens were revoked")
