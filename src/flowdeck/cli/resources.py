"""`flowdeck apply|get|describe|delete`: kubectl-style verbs over the control plane's resource API.

The commands know no kinds: KIND is passed to the server as typed (kind, plural or short name), and
what a kind adds to the output (extra columns, which conditions end `--wait`) comes from the
server's `/kinds`. The YAML is parsed here, so a syntax error names its line without a round trip;
everything else (unknown kinds, invalid fields) is the server's one-line answer, prefixed with the
file name. A multi-document file is applied all or none.

Without `-n`, commands use the namespace of the user's config (`flowdeck login`), else `default`.
Cluster-scoped kinds (Profile; `clusterScoped` in `/kinds`) are addressed without a namespace.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from flowdeck.cli.client import ControlPlaneClient, parse_time
from flowdeck.cli.common import FAILURE, USAGE, CLIError

API = "/apis/flowdeck/v1"
#: How often `--wait` and `delete` look at the resources again.
POLL_SECONDS = 0.25
#: How long `delete` waits for a kind's controller to release what the resource holds.
DELETE_WAIT_SECONDS = 60.0


def _namespace_option(help_text: str = "The resource's namespace (default: your config's, else `default`).") -> Any:
    return click.option("-n", "--namespace", default=None, metavar="NAMESPACE", help=help_text)


def default_namespace(namespace: str | None) -> str:
    """`-n`, else the namespace of the user's config, else `default`."""
    from flowdeck.cli.userconfig import load_config

    return namespace or load_config().namespace or "default"


def object_path(namespace: str | None, kind: str, name: str | None = None) -> str:
    """A resource's (or a list's) path; namespace None: a cluster-scoped kind."""
    path = f"{API}/{quote(kind, safe='')}" if namespace is None else \
        f"{API}/namespaces/{quote(namespace, safe='')}/{quote(kind, safe='')}"
    return path + (f"/{quote(name, safe='')}" if name else "")


def kind_info(client: ControlPlaneClient, kind: str) -> dict[str, Any] | None:
    """What the server's `/kinds` says of KIND (kind, plural or short name, any case), or None."""
    wanted = kind.lower()
    for known in client.request("GET", f"{API}/kinds")["kinds"]:
        names = [known["kind"], known["plural"], *known.get("shortNames", [])]
        if wanted in (name.lower() for name in names):
            return known
    return None


def _address(client: ControlPlaneClient, kind: str, namespace: str | None) -> str | None:
    """The namespace to address KIND in: None for a cluster-scoped kind (refusing an explicit `-n`)."""
    info = kind_info(client, kind)
    if info is not None and info.get("clusterScoped"):
        if namespace:
            raise CLIError(f"{info['plural']} are cluster-scoped: give no --namespace")
        return None
    return default_namespace(namespace)


def _ref(resource: dict[str, Any]) -> str:
    return f"{str(resource.get('kind', '')).lower()}/{resource.get('metadata', {}).get('name', '')}"


# ------------------------------------------------------------------------------------------------- apply
@click.command(short_help="Create or update resources from a YAML file.")
@click.option("-f", "--filename", "filename", required=True, metavar="FILE",
              help="A YAML (or JSON) file of one or more resources; - reads standard input.")
@_namespace_option("The namespace of the documents that name none (default: `default`); a document naming "
                   "another namespace is refused.")
@click.option("--wait", is_flag=True,
              help="Return once every resource has Succeeded, Failed or become Ready (exit 0, 1 if any failed).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="With --wait: give up (exit 1) after this many seconds.")
def apply(filename: str, namespace: str | None, wait: bool, timeout: float | None) -> int:
    """Create the resources in FILE, or update them to match it.

    Every document is checked first and the file is applied all or none. Changing a resource's spec
    makes its controller act on the new spec; applying an unchanged file changes nothing.

    \b
    Examples:
      flowdeck apply -f run.yaml
      flowdeck apply -f run.yaml --wait --timeout 600
      cat jobs.yaml | flowdeck apply -f -
    """
    from flowdeck.resources.loader import ResourceError, read_documents

    if timeout is not None and not wait:
        raise CLIError("--timeout goes with --wait")
    source = "<stdin>" if filename == "-" else filename
    try:
        text = sys.stdin.read() if filename == "-" else Path(filename).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CLIError(f"{filename}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"{filename}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        documents = read_documents(text, source)
    except ResourceError as exc:
        raise CLIError(exc.message) from None
    if namespace is None:
        documents = [_in_namespace(document, default_namespace(None)) for document in documents]
    with ControlPlaneClient() as client:
        try:
            answer = client.request("POST", f"{API}/apply", json={"items": documents},
                                    params={"namespace": namespace} if namespace else None)
        except CLIError as exc:
            if exc.exit_code == USAGE:
                raise CLIError(f"{source}: {exc.message}") from None
            raise
        applied = [item["object"] for item in answer["items"]]
        for item in answer["items"]:
            click.echo(f"{_ref(item['object'])} {item['result']}")
        if wait:
            return _wait(client, applied, timeout)
    return 0


def _in_namespace(document: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The document in `namespace` unless it names one (the server ignores it for cluster-scoped kinds)."""
    metadata = document.get("metadata")
    if namespace == "default" or not isinstance(metadata, dict) or metadata.get("namespace") is not None:
        return document
    return {**document, "metadata": {**metadata, "namespace": namespace}}


def _wait(client: ControlPlaneClient, resources: list[dict[str, Any]], timeout: float | None) -> int:
    """Poll until every resource reaches an outcome; report each, exit 0 only if none failed."""
    kinds = {k["kind"]: k for k in client.request("GET", f"{API}/kinds")["kinds"]}
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = {_ref(r): r for r in resources}
    shown: dict[str, str] = {}
    failed = False
    while pending:
        for ref, resource in list(pending.items()):
            meta = resource["metadata"]
            path = object_path(meta.get("namespace"), resource["kind"], meta["name"])
            current = client.request("GET", path, missing_ok=True)
            if current is None:
                click.echo(f"{ref} Deleted: it was deleted while waiting")
                failed = True
                del pending[ref]
                continue
            summary = status_summary(current)
            outcomes = kinds.get(resource["kind"], {}).get("outcomes") or {}
            outcome = outcome_of(current, outcomes)
            if outcome is not None:
                click.echo(f"{ref} {outcome}{_because(current, outcome, outcomes)}")
                failed |= outcome == "Failed"
                del pending[ref]
            elif shown.get(ref) != summary:
                click.echo(f"{ref}: {summary}", err=True)
            shown[ref] = summary
        if pending and deadline is not None and time.monotonic() >= deadline:
            for ref in pending:
                click.echo(f"{ref} timed out after {_seconds(timeout)}: still {shown.get(ref, 'Pending')}", err=True)
            return FAILURE
        if pending:
            time.sleep(POLL_SECONDS)
    return FAILURE if failed else 0


def outcome_of(resource: dict[str, Any], outcomes: dict[str, str]) -> str | None:
    """`Succeeded`, `Failed` or `Ready` once the status of the resource's current spec says so; else None."""
    status = resource.get("status") or {}
    if status.get("observedGeneration") != resource.get("metadata", {}).get("generation"):
        return None  # the controller has not acted on this spec yet
    reached = {outcomes[c.get("type")] for c in status.get("conditions") or []
               if c.get("status") == "True" and c.get("type") in outcomes}
    for outcome in ("Failed", "Succeeded", "Ready"):
        if outcome in reached:
            return outcome
    return None


def status_summary(resource: dict[str, Any]) -> str:
    """One word for a resource's state: its newest "True" condition (Running, Succeeded...)."""
    if resource.get("metadata", {}).get("deletionTimestamp"):
        return "Terminating"
    conditions = (resource.get("status") or {}).get("conditions") or []
    true = [c for c in conditions if c.get("status") == "True"]
    if true:
        return max(enumerate(true), key=lambda ic: (ic[1].get("lastTransitionTime") or "", ic[0]))[1]["type"]
    if conditions:
        last = conditions[-1]
        return last.get("reason") or f"{last.get('type')}={last.get('status')}"
    return "Pending"


def _because(resource: dict[str, Any], outcome: str, outcomes: dict[str, str]) -> str:
    """`: MESSAGE` of the condition that gave the outcome."""
    for condition in (resource.get("status") or {}).get("conditions") or []:
        if condition.get("status") == "True" and outcomes.get(condition.get("type")) == outcome:
            return f": {condition['message']}" if condition.get("message") else ""
    return ""


def _seconds(value: float | None) -> str:
    return f"{value:g}s" if value is not None else ""


# --------------------------------------------------------------------------------------------------- get
@click.command(short_help="List resources of a kind, or show one.")
@click.argument("kind")
@click.argument("name", required=False)
@_namespace_option()
@click.option("-A", "--all-namespaces", is_flag=True, help="List the kind in every namespace.")
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table", show_default=True,
              help="json and yaml print whole resources, with their status.")
def get(kind: str, name: str | None, namespace: str | None, all_namespaces: bool, output: str) -> int:
    """List the resources of KIND (a kind, its plural or a short name: PipelineRun, pipelineruns, pr),
    or show the one called NAME.

    \b
    Examples:
      flowdeck get pipelineruns
      flowdeck get pr nightly -o yaml
    """
    if all_namespaces and (name or namespace):
        raise CLIError("--all-namespaces lists every resource of a kind: give no NAME and no --namespace")
    with ControlPlaneClient() as client:
        info = kind_info(client, kind)
        cluster_scoped = bool(info and info.get("clusterScoped"))
        if cluster_scoped and namespace:
            raise CLIError(f"{info['plural']} are cluster-scoped: give no --namespace")  # type: ignore[index]
        namespace = None if all_namespaces or cluster_scoped else default_namespace(namespace)
        if name:
            document = client.request("GET", object_path(namespace, kind, name))
            items = [document]
        else:
            document = client.request("GET", object_path(namespace, kind))
            items = document["items"]
        if output == "json":
            click.echo(json.dumps(document, indent=2))
            return 0
        if output == "yaml":
            import yaml

            click.echo(yaml.safe_dump(document, sort_keys=False, default_flow_style=False).rstrip("\n"))
            return 0
        if not items:
            where = "" if cluster_scoped else " in any namespace" if all_namespaces else f" in namespace {namespace}"
            click.echo(f"No {kind} found{where}.", err=True)
            return 0
    _table(items, (info or {}).get("columns") or [], all_namespaces and not cluster_scoped)
    return 0


def _table(items: list[dict[str, Any]], columns: list[dict[str, str]], with_namespace: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    from flowdeck.cli import render

    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    headers = (["NAMESPACE"] if with_namespace else []) + ["NAME", "STATUS"] + [c["name"] for c in columns] + ["AGE"]
    for header in headers:
        table.add_column(header, no_wrap=True)
    for item in items:
        meta = item.get("metadata", {})
        summary = status_summary(item)
        row = ([meta.get("namespace", "")] if with_namespace else []) + [meta.get("name", "")]
        cells = [Text(v) for v in row] + [Text(summary, style=_STATUS_STYLES.get(summary, ""))]
        cells += [Text(str(_lookup(item, c["path"]) or "")) for c in columns]
        cells.append(Text(age(meta.get("creationTimestamp"))))
        table.add_row(*cells)
    render.stdout().print(table)


_STATUS_STYLES = {"Succeeded": "green", "Ready": "green", "Failed": "bold red", "Running": "cyan",
                  "Terminating": "yellow"}


def _lookup(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def age(timestamp: str | None) -> str:
    """`12s`, `5m`, `3h`, `2d` since an RFC 3339 time."""
    when = parse_time(timestamp)
    if when is None:
        return ""
    seconds = max(0, int((datetime.now(timezone.utc) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# ---------------------------------------------------------------------------------------------- describe
@click.command(short_help="Show a resource: spec summary, conditions, events.")
@click.argument("kind")
@click.argument("name")
@_namespace_option()
def describe(kind: str, name: str, namespace: str | None) -> int:
    """Show the resource NAME of KIND: what it asks for, its conditions, and what happened to it.

    \b
    Example:
      flowdeck describe pipelinerun nightly
    """
    from rich.table import Table
    from rich.text import Text

    from flowdeck.cli import render

    with ControlPlaneClient() as client:
        answer = client.request("GET", object_path(_address(client, kind, namespace), kind, name) + "/describe")
    resource, console = answer["object"], render.stdout()
    meta, status = resource["metadata"], resource.get("status") or {}
    observed = status.get("observedGeneration")
    created = meta.get("creationTimestamp")
    fields = [
        ("Name", meta["name"]), ("Namespace", meta.get("namespace", "(cluster-scoped)")),
        ("Kind", f"{resource['kind']} ({resource['apiVersion']})"), ("UID", meta.get("uid", "")),
        ("Created", f"{render.format_time(parse_time(created))} ({age(created)} ago)"),
        ("Generation", f"{meta.get('generation')}" + (f" (observed: {observed})" if observed is not None else "")),
        ("Status", status_summary(resource)),
    ]
    for key in ("labels", "annotations"):
        if meta.get(key):
            fields.append((key.title(), ", ".join(f"{k}={v}" for k, v in meta[key].items())))
    _fields(console, fields)
    console.print()
    details = [(detail["name"], detail["value"]) for detail in answer.get("details") or []]
    console.print(Text("Summary:", style="bold") + Text("" if details else " nothing to show"))
    _fields(console, details, indent="  ")
    console.print()
    conditions = status.get("conditions") or []
    console.print(Text("Conditions:", style="bold") + Text("" if conditions else " none yet"))
    if conditions:
        table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False, padding=(0, 2, 0, 0))
        for header in ("  TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"):
            table.add_column(header, no_wrap=header != "MESSAGE", overflow="fold")
        for c in conditions:
            table.add_row(Text("  " + c["type"]), c["status"], Text(c.get("reason", "")),
                          age(c.get("lastTransitionTime")), Text(c.get("message", "")))
        console.print(table)
    console.print()
    events = answer.get("events") or []
    console.print(Text("Events:", style="bold") + Text("" if events else " none"))
    if events:
        table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False, padding=(0, 2, 0, 0))
        for header in ("  TYPE", "REASON", "AGE", "MESSAGE"):
            table.add_column(header, no_wrap=header != "MESSAGE", overflow="fold")
        for event in events:
            table.add_row(Text("  " + event["type"], style="yellow" if event["type"] == "Warning" else ""),
                          Text(event["reason"]), age(event.get("time")), Text(event["message"]))
        console.print(table)
    return 0


def _fields(console: Any, fields: list[tuple[str, Any]], indent: str = "") -> None:
    """`Label:  value` lines, values aligned."""
    from rich.text import Text

    width = max((len(label) for label, _ in fields), default=0) + 2
    for label, value in fields:
        console.print(Text.assemble(indent, Text(f"{label}:".ljust(width), style="bold"), Text(str(value))))


# ------------------------------------------------------------------------------------------------ delete
@click.command(short_help="Delete resources.")
@click.argument("kind")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@_namespace_option("The resources' namespace (default: `default`).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until the resources are gone (their controller may first stop what they run).")
def delete(kind: str, names: tuple[str, ...], namespace: str | None, wait: bool) -> int:
    """Delete the resources NAME... of KIND. A PipelineRun's run is terminated first (and stays in
    the run history).

    \b
    Example:
      flowdeck delete pipelinerun nightly
    """
    with ControlPlaneClient() as client:
        namespace = _address(client, kind, namespace)
        deleted = [client.request("DELETE", object_path(namespace, kind, name)) for name in names]
        if wait:
            deadline = time.monotonic() + DELETE_WAIT_SECONDS
            for resource in deleted:
                path = object_path(namespace, kind, resource["metadata"]["name"])
                while client.request("GET", path, missing_ok=True) is not None:
                    if time.monotonic() >= deadline:
                        raise CLIError(f"{_ref(resource)} is still being deleted after {DELETE_WAIT_SECONDS:g}s "
                                       "(see `flowdeck describe`)", FAILURE)
                    time.sleep(POLL_SECONDS)
    for resource in deleted:
        click.echo(f"{_ref(resource)} deleted" if wait else f"{_ref(resource)} deletion requested")
    return 0
