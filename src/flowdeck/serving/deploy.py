"""Deploying a model from a pipeline: create or update an InferenceService from a Model artifact.

A task of a run that `flowdeck up` executes knows where its control plane is (`FLOWDECK_URL`), which
profile its run belongs to (`FLOWDECK_NAMESPACE`) and, when the control plane requires credentials,
where its run's short-lived token is (`FLOWDECK_TOKEN_PATH`). `deploy_model` uses them to apply an
`InferenceService` serving the artifact and, by default, waits until it is Ready:

    @dsl.component
    def deploy(model: dsl.Input[dsl.Model]) -> str:
        from flowdeck.serving.deploy import deploy_model
        return deploy_model("iris", model.uri, model_format="sklearn")["modelUrl"]

Applying it again with another model makes the new one a canary (`canary_traffic_percent`) or, without
one, replaces the old one once the new one is ready, as `flowdeck apply` would.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from flowdeck.connection import control_plane_url, credentials, profile_namespace

API_VERSION = "serving.kserve.io/v1beta1"


class DeployError(RuntimeError):
    """The InferenceService could not be applied, failed, or did not become Ready in time."""


def deploy_model(name: str, storage_uri: str, *, model_format: str = "sklearn", namespace: str | None = None,
                 min_replicas: int = 1, canary_traffic_percent: int | None = None, wait: bool = True,
                 timeout: float = 300.0) -> dict[str, Any]:
    """Apply InferenceService `name` serving `storage_uri` in `namespace` (default: the run's profile) and
    return its status (`url`, `modelUrl`, conditions...), once Ready when `wait`."""
    url = control_plane_url()
    if not url:
        raise DeployError("no control plane to deploy to: FLOWDECK_URL is not set (run the pipeline with "
                          "`flowdeck up`, or set FLOWDECK_URL)")
    namespace = profile_namespace(namespace)
    predictor: dict[str, Any] = {"minReplicas": min_replicas,
                                 "model": {"modelFormat": {"name": model_format}, "storageUri": storage_uri}}
    if canary_traffic_percent is not None:
        predictor["canaryTrafficPercent"] = canary_traffic_percent
    manifest = {"apiVersion": API_VERSION, "kind": "InferenceService",
                "metadata": {"name": name, "namespace": namespace}, "spec": {"predictor": predictor}}
    path = f"/apis/flowdeck/v1/namespaces/{namespace}/inferenceservices/{name}"
    with httpx.Client(base_url=url, headers=credentials(), timeout=30.0) as client:
        applied = _checked(client.put(path, json=manifest))
        generation = applied.get("metadata", {}).get("generation")
        deadline = time.monotonic() + timeout
        while wait:
            current = _checked(client.get(path))
            status = current.get("status") or {}
            if status.get("observedGeneration") == generation:
                if _condition(status, "Failed"):
                    raise DeployError(f"InferenceService {name}: {_condition(status, 'Failed')}")
                if _condition(status, "Ready") is not None:
                    return status
            if time.monotonic() > deadline:
                raise DeployError(f"InferenceService {name} was not Ready within {timeout:.0f} s")
            time.sleep(0.25)
    return applied.get("status") or {}


def _checked(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise DeployError(f"the control plane refused the InferenceService ({response.status_code}): {message}")
    return response.json()


def _condition(status: dict[str, Any], kind: str) -> str | None:
    """The message of condition `kind` when it is "True" (empty if it has none), else None."""
    for condition in status.get("conditions") or ():
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition.get("message") or ""
    return None
