"""How code that calls a control plane finds it and signs in: a pipeline task, a notebook, a script.

A task that `flowdeck up` runs is told where its control plane is (`FLOWDECK_URL`), which profile its
run belongs to (`FLOWDECK_NAMESPACE`) and, when the control plane requires credentials, where its run's
short-lived token is (`FLOWDECK_TOKEN_PATH`). Elsewhere the same variables, `KF_PIPELINES_ENDPOINT`
(what kfp users already set) and `FLOWDECK_TOKEN` say it. Shared by every client helper (deploying a
model, launching a training job, tuning) so they all find the control plane the same way;
`ResourceClient` is their HTTP client for the resource API.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from flowdeck.defaults import DEFAULT_URL

#: The resource API's prefix.
RESOURCE_API = "/apis/flowdeck/v1"


def control_plane_url(default: str | None = None) -> str | None:
    """The control plane's URL (no trailing slash), or `default` when nothing says where it is."""
    url = os.environ.get("FLOWDECK_URL") or os.environ.get("KF_PIPELINES_ENDPOINT") or default
    return url.rstrip("/") if url else None


def profile_namespace(given: str | None = None) -> str:
    """The profile to act in: `given`, else the run's (`FLOWDECK_NAMESPACE`), else `default`."""
    return given or os.environ.get("FLOWDECK_NAMESPACE") or "default"


def credentials(token: str | None = None) -> dict[str, str]:
    """The Authorization header for `token`, else the run's token file or `FLOWDECK_TOKEN` ({} when none)."""
    if token is None:
        token_path = os.environ.get("FLOWDECK_TOKEN_PATH")
        token = open(token_path).read().strip() if token_path else os.environ.get("FLOWDECK_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


class ControlPlaneError(RuntimeError):
    """The control plane could not be reached, or refused a request: one line saying why."""


class ResourceClient:
    """HTTP to a control plane's resource API, found and signed in to as this module says; every failure is one
    `error` line (a `ControlPlaneError` subclass of the caller's choosing)."""

    def __init__(self, url: str | None = None, namespace: str | None = None, token: str | None = None,
                 error: type[ControlPlaneError] = ControlPlaneError) -> None:
        self.url = (url.rstrip("/") if url else control_plane_url(DEFAULT_URL)) or DEFAULT_URL
        self.namespace = profile_namespace(namespace)
        self.error = error
        self._http = httpx.Client(base_url=self.url, headers=credentials(token),
                                  timeout=httpx.Timeout(30.0, connect=5.0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ResourceClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def path(self, kind: str, name: str | None = None) -> str:
        """The resource API path of `kind` (any spelling the API accepts) in the namespace, or of one of them."""
        base = f"{RESOURCE_API}/namespaces/{self.namespace}/{kind}"
        return f"{base}/{name}" if name else base

    def request(self, method: str, path: str, *, allow: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        """The successful response (or one with a status in `allow`), or `error` saying why there is none."""
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise self.error(f"no control plane at {self.url}: start one with `flowdeck up` "
                             "(or set FLOWDECK_URL)") from None
        except httpx.HTTPError as exc:
            raise self.error(f"cannot reach the control plane at {self.url}: {exc}") from None
        if response.is_success or response.status_code in allow:
            return response
        try:
            message = str(response.json().get("message") or "").strip().splitlines()[0]
        except (ValueError, AttributeError, IndexError):
            message = f"HTTP {response.status_code} {response.reason_phrase}: is it a flowdeck control plane?"
        raise self.error(f"{method} {path}: {message}")

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.request("GET", self.path(kind, name)).json()

    def apply(self, document: dict[str, Any]) -> dict[str, Any]:
        """Create or update the resource `document` describes (in this namespace unless it names one)."""
        metadata = document.get("metadata") or {}
        namespace = metadata.get("namespace") or self.namespace
        path = f"{RESOURCE_API}/namespaces/{namespace}/{document['kind']}/{metadata['name']}"
        return self.request("PUT", path, json=document).json()
