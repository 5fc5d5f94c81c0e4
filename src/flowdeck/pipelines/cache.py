"""Execution cache keys, with KFP's semantics.

A task's fingerprint covers what determines its result: the component's interface, the executor's
image/command/args, and the resolved inputs (parameter values; artifact URIs and metadata). With a
user `cacheKey` the fingerprint is the component name plus that key alone. Entries are scoped to
the pipeline name, like the KFP backend's cache, and to the run's profile: a run never reuses (nor
sees the logs of) an execution of another profile, whose inputs and credentials it may not have.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from flowdeck.artifacts import is_local


def fingerprint(*, component_name: str, component: dict[str, Any], container: dict[str, Any],
                parameters: dict[str, Any], artifacts: dict[str, list[dict[str, Any]]],
                cache_key: str | None = None, namespace: str = "") -> str:
    if cache_key:
        payload: Any = [component_name, cache_key]
    else:
        payload = {
            "inputs": component.get("inputDefinitions") or {},
            "outputs": component.get("outputDefinitions") or {},
            "container": {k: container.get(k) for k in ("image", "command", "args", "env")},
            "parameters": parameters,
            "artifacts": {
                name: [{"uri": a.get("uri"), "metadata": a.get("metadata") or {}} for a in items]
                for name, items in sorted(artifacts.items())
            },
        }
    text = json.dumps([namespace, payload], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def written_files(artifacts: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The local artifact URIs that exist now (Metrics artifacts, say, may have no file at all)."""
    return [
        artifact["uri"] for items in artifacts.values() for artifact in items
        if is_local(artifact.get("uri", "")) and os.path.exists(artifact.get("uri", ""))
    ]


def artifacts_present(entry: dict[str, Any]) -> bool:
    """A cached result is usable only while the files its artifacts had when cached still exist."""
    return all(os.path.exists(uri) for uri in entry.get("files") or [])
