"""The Katib SDK's `KatibClient`, against a flowdeck control plane: `tune()` a Python function, read results.

    from flowdeck.tuning import KatibClient, search

    def objective(parameters):
        x = float(parameters["x"])
        print(f"score={-(x - 2) ** 2}")            # Katib's StdOut collector reads name=value lines

    client = KatibClient()                          # FLOWDECK_URL, else http://127.0.0.1:8080
    client.tune("quadratic", objective=objective, parameters={"x": search.double(-5, 5)},
                objective_metric_name="score", max_trial_count=20, parallel_trial_count=4)
    client.wait_for_experiment_condition("quadratic")
    print(client.get_optimal_hyperparameters("quadratic").parameter_assignments)

Method names and arguments follow `kubeflow-katib`'s (reference/training.md §4.6), so code written for it
runs here by changing the import. As in Katib, the objective takes one dict of parameters (their values
are strings) and must be self-contained (its imports inside); it reports metrics by printing `name=value`
or, with `metrics_collector_config={"kind": "Push"}`, with `flowdeck.tuning.report_metrics`. Each trial
runs `python -m flowdeck.runtime.function` with the function's source in the trial's command, so the
Experiment carries everything it needs. The container image is recorded, not used locally.
"""

from __future__ import annotations

import base64
import inspect
import json
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flowdeck.connection import ControlPlaneError, ResourceClient

API_VERSION = "kubeflow.org/v1beta1"
PLURAL = "experiments"
#: Katib's default trial image for `tune()` (recorded in the trial template; not used locally).
BASE_IMAGE = "docker.io/pytorch/pytorch:2.2.1-cuda12.1-cudnn8-runtime"


class KatibError(ControlPlaneError):
    """The control plane could not be reached, refused the experiment, or it failed: one line saying why."""


@dataclass
class ParameterAssignment:
    name: str
    value: str


@dataclass
class Metric:
    """One metric of a trial: its min, max and latest values, as strings (Katib's `V1beta1Metric`)."""

    name: str
    min: str | None = None
    max: str | None = None
    latest: str | None = None


@dataclass
class Observation:
    metrics: list[Metric] = field(default_factory=list)


@dataclass
class OptimalTrial:
    """The best trial so far (Katib's `V1beta1OptimalTrial`)."""

    best_trial_name: str | None
    parameter_assignments: list[ParameterAssignment] = field(default_factory=list)
    observation: Observation = field(default_factory=Observation)


class KatibClient:
    """Experiments of one namespace of a flowdeck control plane, with the Katib SDK's method names."""

    def __init__(self, url: str | None = None, namespace: str | None = None, token: str | None = None) -> None:
        self._api = ResourceClient(url, namespace, token, error=KatibError)

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> KatibClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- create ---------------------------------------------------------------------------------------------
    def create_experiment(self, experiment: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create (or update) an Experiment from its document; returns it as stored."""
        document = {**experiment, "metadata": {**(experiment.get("metadata") or {})}}
        if namespace:
            document["metadata"]["namespace"] = namespace
        return self._api.apply(document)

    def tune(self, name: str, objective: Callable[[dict[str, Any]], Any] | None = None,
             parameters: dict[str, dict[str, Any]] | None = None, base_image: str = BASE_IMAGE,
             namespace: str | None = None, env_per_trial: dict[str, str] | None = None,
             algorithm_name: str = "random", algorithm_settings: dict[str, Any] | None = None,
             objective_metric_name: str | None = None, additional_metric_names: list[str] | None = None,
             objective_type: str = "maximize", objective_goal: float | None = None,
             max_trial_count: int | None = None, parallel_trial_count: int | None = None,
             max_failed_trial_count: int | None = None, resources_per_trial: dict[str, Any] | None = None,
             retain_trials: bool = False, packages_to_install: list[str] | None = None,
             pip_index_urls: list[str] | None = None,
             metrics_collector_config: dict[str, Any] | None = None,
             trial_active_deadline_seconds: int | None = None, **_unused: Any) -> dict[str, Any]:
        """Create an Experiment that tunes `objective` over `parameters` (from `flowdeck.tuning.search`)."""
        if objective is None or not parameters:
            raise ValueError("tune() needs an objective function and parameters (flowdeck.tuning.search...)")
        if not objective_metric_name:
            raise ValueError("tune() needs objective_metric_name: the metric the objective prints or pushes")
        source = _source(objective)
        placeholders = {key: f"${{trialParameters.{key}}}" for key in parameters}
        args = ["--name", objective.__name__, "--source-b64", base64.b64encode(source.encode()).decode(),
                "--argument", json.dumps(placeholders)]
        if packages_to_install:
            args += ["--packages", json.dumps(packages_to_install), "--index-urls", json.dumps(pip_index_urls or [])]
        container: dict[str, Any] = {"name": "training-container", "image": base_image,
                                     "command": ["python", "-m", "flowdeck.runtime.function"], "args": args,
                                     "env": [{"name": k, "value": str(v)} for k, v in (env_per_trial or {}).items()]}
        if resources_per_trial:
            container["resources"] = {"requests": resources_per_trial, "limits": resources_per_trial}
        job_spec: dict[str, Any] = {"template": {"metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                                                 "spec": {"containers": [container], "restartPolicy": "Never"}}}
        if trial_active_deadline_seconds:
            job_spec["activeDeadlineSeconds"] = trial_active_deadline_seconds
        spec: dict[str, Any] = {
            "objective": {"type": objective_type, "objectiveMetricName": objective_metric_name,
                          "additionalMetricNames": additional_metric_names or []},
            "algorithm": {"algorithmName": algorithm_name, "algorithmSettings": [
                {"name": key, "value": str(value)} for key, value in (algorithm_settings or {}).items()]},
            "parameters": [{"name": key, **value} for key, value in parameters.items()],
            "trialTemplate": {"retain": retain_trials, "primaryContainerName": "training-container",
                              "trialParameters": [{"name": key, "reference": key} for key in parameters],
                              "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": job_spec}},
            "metricsCollectorSpec": {"collector": {"kind": (metrics_collector_config or {}).get("kind", "StdOut")}},
        }
        if objective_goal is not None:
            spec["objective"]["goal"] = objective_goal
        for key, value in (("maxTrialCount", max_trial_count), ("parallelTrialCount", parallel_trial_count),
                           ("maxFailedTrialCount", max_failed_trial_count)):
            if value is not None:
                spec[key] = value
        document = {"apiVersion": API_VERSION, "kind": "Experiment",
                    "metadata": {"name": name, "namespace": namespace or self._api.namespace}, "spec": spec}
        return self._api.apply(document)

    # -- read -----------------------------------------------------------------------------------------------
    def get_experiment(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self._client(namespace).get(PLURAL, name)

    def list_experiments(self, namespace: str | None = None) -> list[dict[str, Any]]:
        api = self._client(namespace)
        return api.request("GET", api.path(PLURAL)).json().get("items", [])

    def get_experiment_conditions(self, name: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return (self.get_experiment(name, namespace).get("status") or {}).get("conditions", [])

    def is_experiment_succeeded(self, name: str, namespace: str | None = None) -> bool:
        return self._is(name, "Succeeded", namespace)

    def is_experiment_failed(self, name: str, namespace: str | None = None) -> bool:
        return self._is(name, "Failed", namespace)

    def is_experiment_running(self, name: str, namespace: str | None = None) -> bool:
        return self._is(name, "Running", namespace)

    def wait_for_experiment_condition(self, name: str, namespace: str | None = None,
                                      expected_condition: str = "Succeeded", timeout: float = 600,
                                      polling_interval: float = 0.2) -> dict[str, Any]:
        """The experiment once `expected_condition` is True; a Failed one (not expected) raises KatibError."""
        deadline = time.monotonic() + timeout
        while True:
            experiment = self.get_experiment(name, namespace)
            conditions = {c["type"]: c for c in (experiment.get("status") or {}).get("conditions", [])
                          if c.get("status") == "True"}
            if expected_condition in conditions:
                return experiment
            if "Failed" in conditions:
                failed = conditions["Failed"]
                raise KatibError(f"Experiment {name} failed ({failed.get('reason')}): {failed.get('message')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Experiment {name} did not reach {expected_condition} within {timeout:g} s")
            time.sleep(polling_interval)

    def get_optimal_hyperparameters(self, name: str, namespace: str | None = None) -> OptimalTrial:
        best = (self.get_experiment(name, namespace).get("status") or {}).get("currentOptimalTrial") or {}
        metrics = [Metric(m["name"], m.get("min"), m.get("max"), m.get("latest"))
                   for m in (best.get("observation") or {}).get("metrics", [])]
        return OptimalTrial(best.get("bestTrialName"),
                            [ParameterAssignment(a["name"], a["value"]) for a in best.get("parameterAssignments", [])],
                            Observation(metrics))

    def list_trials(self, name: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """The experiment's trials: name, parameterAssignments, condition, metrics..."""
        return (self.get_experiment(name, namespace).get("status") or {}).get("trialStatuses", [])

    def delete_experiment(self, name: str, namespace: str | None = None) -> None:
        api = self._client(namespace)
        api.request("DELETE", api.path(PLURAL, name))

    def _is(self, name: str, condition: str, namespace: str | None) -> bool:
        return any(c["type"] == condition and c.get("status") == "True"
                   for c in self.get_experiment_conditions(name, namespace))

    def _client(self, namespace: str | None) -> ResourceClient:
        if namespace is None or namespace == self._api.namespace:
            return self._api
        return ResourceClient(self._api.url, namespace, error=KatibError)


def _source(function: Callable[..., Any]) -> str:
    if function.__name__ == "<lambda>":
        raise ValueError("the objective must be a def, not a lambda (its source is sent to every trial)")
    try:
        return textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError) as exc:
        raise ValueError(f"cannot read the source of {function.__name__}: {exc}") from None
