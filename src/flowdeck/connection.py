"""How code that calls a control plane finds it and signs in: a pipeline task, a notebook, a script.

A task that `flowdeck up` runs is told where its control plane is (`FLOWDECK_URL`), which profile its
run belongs to (`FLOWDECK_NAMESPACE`) and, when the control plane requires credentials, where its run's
short-lived token is (`FLOWDECK_TOKEN_PATH`). Elsewhere the same variables, `KF_PIPELINES_ENDPOINT`
(what kfp users already set) and `FLOWDECK_TOKEN` say it. Shared by every client helper (deploying a
model, launching a training job) so they all find the control plane the same way.
"""

from __future__ import annotations

import os


def control_plane_url(default: str | None = None) -> str | None:
    """The control plane's URL (no trailing slash), or `default` when nothing says where it is."""
    url = os.environ.get("FLOWDECK_URL") or os.environ.get("KF_PIPELINES_ENDPOINT") or default
    return url.rstrip("/") if url else None


def namespace(given: str | None = None) -> str:
    """The profile to act in: `given`, else the run's (`FLOWDECK_NAMESPACE`), else `default`."""
    return given or os.environ.get("FLOWDECK_NAMESPACE") or "default"


def credentials(token: str | None = None) -> dict[str, str]:
    """The Authorization header for `token`, else the run's token file or `FLOWDECK_TOKEN` ({} when none)."""
    if token is None:
        token_path = os.environ.get("FLOWDECK_TOKEN_PATH")
        token = open(token_path).read().strip() if token_path else os.environ.get("FLOWDECK_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}
