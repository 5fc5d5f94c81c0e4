"""`flowdeck profiles create|list|get|add-contributor|remove-contributor`: profiles and who works in them.

A profile is a `Profile` resource (`/apis/flowdeck/v1/profiles`), so `flowdeck get profiles` and
`flowdeck apply -f profile.yaml` see the same objects; contributors go through the KFAM endpoint
(`/kfam/v1/bindings`), as Kubeflow's dashboard adds them. The server decides who may do what: a
cluster admin creates profiles, a profile's admins and owners add and remove contributors.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click

from flowdeck.cli.common import CLIError

PROFILES = "/apis/flowdeck/v1/profiles"
BINDINGS = "/kfam/v1/bindings"
#: `create` options -> resourceQuotaSpec.hard keys (the ones the local quota gate enforces).
QUOTA_KEYS = {"cpu": "cpu", "memory": "memory", "gpus": "requests.nvidia.com/gpu", "max_workloads": "pods"}


@click.group()
def profiles() -> None:
    """Profiles (namespaces): create them, list them, add and remove contributors."""


def _subject(user: str) -> dict[str, str]:
    """`alice` or `user:alice` -> a User, `group:ml` -> a Group."""
    kind, _, name = user.partition(":") if user.startswith(("user:", "group:")) else ("user", "", user)
    if not name:
        raise CLIError(f"{user!r} names nobody: give a user name (or group:NAME)")
    return {"kind": kind.title(), "name": name}


@profiles.command("create")
@click.argument("name")
@click.option("--owner", required=True, metavar="USER", help="The user who owns the profile.")
@click.option("--cpu", default=None, metavar="N", help="CPU quota (e.g. 4, 500m).")
@click.option("--memory", default=None, metavar="Q", help="Memory quota (e.g. 16Gi).")
@click.option("--gpus", default=None, metavar="N", help="GPU quota.")
@click.option("--max-workloads", default=None, metavar="N", help="How many workloads may run at once.")
def create(name: str, owner: str, cpu: str | None, memory: str | None, gpus: str | None,
           max_workloads: str | None) -> None:
    """Create profile NAME owned by USER (cluster admins only).

    \b
    Example:
      flowdeck profiles create team-a --owner alice --cpu 4 --memory 16Gi --max-workloads 3
    """
    from flowdeck.cli.client import ControlPlaneClient

    given = {"cpu": cpu, "memory": memory, "gpus": gpus, "max_workloads": max_workloads}
    hard = {QUOTA_KEYS[option]: value for option, value in given.items() if value is not None}
    document = {"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": name},
                "spec": {"owner": {"kind": "User", "name": owner},
                         **({"resourceQuotaSpec": {"hard": hard}} if hard else {})}}
    path = f"{PROFILES}/{quote(name, safe='')}"
    with ControlPlaneClient() as client:
        if client.request("GET", path, missing_ok=True) is not None:
            raise CLIError(f"profile {name} exists already (change it with `flowdeck apply -f`)")
        client.request("PUT", path, json=document)
    click.echo(f"profile {name} created, owned by {owner}")


@profiles.command("list")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_profiles(output: str) -> None:
    """List the profiles you may see."""
    from flowdeck.cli.client import ControlPlaneClient
    from flowdeck.cli.render import print_json

    with ControlPlaneClient() as client:
        items = client.request("GET", PROFILES)["items"]
    if output == "json":
        print_json(items)
        return
    if not items:
        click.echo("No profiles you may see.", err=True)
        return
    _table(["NAME", "OWNER", "STATUS", "QUOTA", "AGE"], [_row(item) for item in items])


def _row(item: dict[str, Any]) -> list[str]:
    from flowdeck.cli.resources import age, status_summary

    spec = item.get("spec") or {}
    hard = (spec.get("resourceQuotaSpec") or {}).get("hard") or {}
    return [item["metadata"]["name"], (spec.get("owner") or {}).get("name", ""), status_summary(item),
            ", ".join(f"{k}={v}" for k, v in hard.items()) or "-", age(item["metadata"].get("creationTimestamp"))]


def _table(headers: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table
    from rich.text import Text

    from flowdeck.cli import render

    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for header in headers:
        table.add_column(header, no_wrap=True)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    render.stdout().print(table)


@profiles.command("get")
@click.argument("name")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def get(name: str, output: str) -> None:
    """Show profile NAME: owner, quota, status and contributors."""
    from flowdeck.cli.client import ControlPlaneClient
    from flowdeck.cli.render import print_json

    with ControlPlaneClient() as client:
        profile = client.request("GET", f"{PROFILES}/{quote(name, safe='')}")
        bindings = client.request("GET", BINDINGS, params={"namespace": name})["bindings"]
    if output == "json":
        print_json({"profile": profile, "bindings": bindings})
        return
    cells = _row(profile)
    for label, value in zip(("Name", "Owner", "Status", "Quota", "Age"), cells, strict=True):
        click.echo(f"{label + ':':<14}{value}")
    click.echo("Contributors:" + ("" if bindings else " none"))
    for binding in bindings:
        user = binding["user"]
        who = user["name"] if user["kind"] == "User" else f"group:{user['name']}"
        click.echo(f"  {who} ({binding.get('flowdeckRole') or binding['RoleRef']['name']})")


@profiles.command("add-contributor")
@click.argument("profile")
@click.argument("user")
@click.option("--role", type=click.Choice(["view", "edit", "admin"]), default="edit", show_default=True,
              help="view reads; edit also runs and changes; admin also manages contributors.")
def add_contributor(profile: str, user: str, role: str) -> None:
    """Give USER (or group:NAME) ROLE in PROFILE (replacing the role they had)."""
    from flowdeck.cli.client import ControlPlaneClient

    body = {"user": _subject(user), "referredNamespace": profile, "RoleRef": {"kind": "ClusterRole", "name": role}}
    with ControlPlaneClient() as client:
        client.request("POST", BINDINGS, json=body)
    click.echo(f"{user} is now {role} in profile {profile}")


@profiles.command("remove-contributor")
@click.argument("profile")
@click.argument("user")
def remove_contributor(profile: str, user: str) -> None:
    """Take USER's (or group:NAME's) role in PROFILE away; their tokens lose access at once."""
    from flowdeck.cli.client import ControlPlaneClient

    body = {"user": _subject(user), "referredNamespace": profile}
    with ControlPlaneClient() as client:
        removed = client.request("DELETE", BINDINGS, content=json.dumps(body),
                                 headers={"Content-Type": "application/json"})
    click.echo(f"{user} ({removed.get('flowdeckRole', 'contributor')}) removed from profile {profile}")
