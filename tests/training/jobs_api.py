"""A small client for the job resources of a running control plane, and job documents for tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from helpers import ControlPlane, wait_for

PLURALS = {"PyTorchJob": "pytorchjobs", "TFJob": "tfjobs", "XGBoostJob": "xgboostjobs", "JAXJob": "jaxjobs",
           "PaddleJob": "paddlejobs", "TrainJob": "trainjobs"}


class Jobs:
    """Applies job YAML to a running control plane and reads the jobs back."""

    def __init__(self, server: ControlPlane, workdir: Path) -> None:
        self.server = server
        self.workdir = workdir

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
        env.update(FLOWDECK_URL=self.server.url, FLOWDECK_HOME=str(self.server.home))
        return subprocess.run([sys.executable, "-m", "flowdeck.cli.main", *args], env=env, capture_output=True,
                              text=True, timeout=timeout)

    def apply(self, document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        path = self.workdir / f"{document['metadata']['name']}-{len(list(self.workdir.iterdir()))}.yaml"
        path.write_text(yaml.safe_dump(document))
        return self.cli("apply", "-f", str(path))

    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any]:
        answer = httpx.get(f"{self.server.url}/apis/flowdeck/v1/namespaces/{namespace}/{PLURALS[kind]}/{name}")
        answer.raise_for_status()
        return answer.json()

    def exists(self, kind: str, name: str, namespace: str = "default") -> bool:
        url = f"{self.server.url}/apis/flowdeck/v1/namespaces/{namespace}/{PLURALS[kind]}/{name}"
        return httpx.get(url).status_code == 200

    def events(self, kind: str, name: str, namespace: str = "default") -> list[dict[str, Any]]:
        url = f"{self.server.url}/apis/flowdeck/v1/namespaces/{namespace}/{PLURALS[kind]}/{name}/describe"
        return httpx.get(url).json()["events"]

    def wait(self, kind: str, name: str, condition: str, timeout: float = 60.0,
             namespace: str = "default") -> dict[str, Any]:
        """The job once `condition` is True (fails the test, showing the status, if it never is)."""
        def reached() -> dict[str, Any] | None:
            job = self.get(kind, name, namespace)
            found = next((c for c in (job.get("status") or {}).get("conditions", []) if c["type"] == condition), None)
            return job if found and found["status"] == "True" else None

        assert wait_for(reached, timeout=timeout, interval=0.1), (self.get(kind, name, namespace).get("status"),
                                                                  self.server.output[-15:])
        return reached()  # type: ignore[return-value]

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        assert self.cli("delete", kind.lower(), name, "-n", namespace).returncode == 0


def pytorch_job(name: str, script: Path, workers: int = 2, restart: str = "OnFailure", nproc: str = "1",
                run_policy: dict[str, Any] | None = None, namespace: str | None = None,
                cpu: str | None = None) -> dict[str, Any]:
    """A PyTorchJob of a Master and `workers` Workers, each running `python script`."""
    def replicas(count: int) -> dict[str, Any]:
        container: dict[str, Any] = {"name": "pytorch", "image": "docker.io/pytorch/pytorch:2.13.0",
                                     "command": ["python", str(script)], "workingDir": str(script.parent)}
        if cpu:
            container["resources"] = {"requests": {"cpu": cpu}}
        return {"replicas": count, "restartPolicy": restart, "template": {"spec": {"containers": [container]}}}

    specs = {"Master": replicas(1)}
    if workers:
        specs["Worker"] = replicas(workers)
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": metadata,
            "spec": {"nprocPerNode": nproc, "runPolicy": run_policy or {}, "pytorchReplicaSpecs": specs}}
