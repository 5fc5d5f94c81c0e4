"""`flowdeck isvc list`: InferenceServices with their URLs, readiness and traffic split, at a glance.

`flowdeck get isvc` shows the generic columns; this command answers what a user deploying models asks:
where do I send requests, is it ready, and which revision gets what share. It reads the control
plane's resource API like `flowdeck get`.
"""

from __future__ import annotations

from typing import Any

import click

from flowdeck.cli.client import ControlPlaneClient
from flowdeck.cli.resources import default_namespace, object_path

KIND = "inferenceservices"


@click.group()
def isvc() -> None:
    """InferenceServices (KServe's serving.kserve.io/v1beta1), served locally by `flowdeck up`.

    Create and change them with `flowdeck apply -f isvc.yaml`, remove them with
    `flowdeck delete isvc NAME`.
    """


@isvc.command("list")
@click.option("-n", "--namespace", default=None, metavar="NAMESPACE",
              help="The namespace (default: your config's, else `default`).")
@click.option("-A", "--all-namespaces", is_flag=True, help="List every namespace you can read.")
def list_services(namespace: str | None, all_namespaces: bool) -> int:
    """List InferenceServices: name, namespace, predict URL, readiness and traffic per revision.

    \b
    Example:
      flowdeck isvc list
      curl -d '{"instances": [[6.8, 2.8, 4.8, 1.4]]}' URL
    """
    from rich.table import Table
    from rich.text import Text

    from flowdeck.cli import render

    if all_namespaces and namespace:
        raise click.UsageError("give --namespace or --all-namespaces, not both")
    where = None if all_namespaces else default_namespace(namespace)
    with ControlPlaneClient() as client:
        items: list[dict[str, Any]] = client.request("GET", object_path(where, KIND))["items"]
    if not items:
        click.echo("No InferenceServices found" + (f" in namespace {where}." if where else "."), err=True)
        return 0
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for header in ("NAME", "NAMESPACE", "URL", "READY", "TRAFFIC"):
        table.add_column(header, no_wrap=header != "TRAFFIC")
    for item in items:
        status = item.get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        word = ready["status"] if ready else "Unknown"
        reason = f" ({ready['reason']})" if ready and ready.get("reason") not in (None, "", "Serving") else ""
        table.add_row(item["metadata"]["name"], item["metadata"].get("namespace", ""),
                      status.get("modelUrl") or "", Text(word + reason, style="green" if word == "True" else "yellow"),
                      _traffic(status))
    render.stdout().print(table)
    return 0


def _traffic(status: dict[str, Any]) -> str:
    """`00001 80%, 00002 20% (canary)`: each revision's share, by its number."""
    traffic = ((status.get("components") or {}).get("predictor") or {}).get("traffic") or []
    return ", ".join(f"{t['revisionName'].rsplit('-', 1)[-1]} {t['percent']}%"
                     + (" (canary)" if t.get("latestRevision") and len(traffic) > 1 else "") for t in traffic)
