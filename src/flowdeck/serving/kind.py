"""`InferenceService`: KServe's resource (serving.kserve.io/v1beta1), served by local processes.

    apiVersion: serving.kserve.io/v1beta1
    kind: InferenceService
    metadata: {name: iris, namespace: team-a}
    spec:
      predictor:
        minReplicas: 2                       # replica processes (default 1)
        maxReplicas: 4                       # recorded; there is no autoscaling locally
        canaryTrafficPercent: 20             # with a changed model: 20% to the new revision
        batcher: {maxBatchSize: 32, maxLatency: 5}   # adaptive batching (ms)
        model:
          modelFormat: {name: sklearn}       # sklearn, xgboost, lightgbm, pytorch, onnx, custom
          protocolVersion: v2                # v1 (default) or v2: which URL status.modelUrl names
          storageUri: file:///models/iris    # a model directory: a path, file://, or an fsspec URI (s3://...)

      transformer:                           # optional: called before the predictor
        containers:
          - command: [python, transformer.py] # run as a local process; the image is not used
            args: [--scale, "2"]
            workingDir: /work/transformer
            env: [{name: LOG_LEVEL, value: debug}]

The framework shorthand (`predictor: {sklearn: {storageUri: ...}}`) is accepted too. The predictor's
pod-level fields (resources, scaleMetric, logger, nodeSelector...) are accepted and not applied here.
A transformer's one container runs as a process beside each predictor replica, with the arguments
KServe's controller adds (`--model_name NAME --predictor_host 127.0.0.1:PORT --http_port PORT`, plus
`--predictor_protocol` from the model's protocolVersion unless given); a bare `python` is the control
plane's own interpreter, so `flowdeck.serving` imports. The router then sends traffic to the
transformers. Custom predictor `containers` and `explainer` are refused with a clear message: there
is no local container runtime to run an image's entrypoint.

Status follows KServe's: `url`, `address.url`, `components.predictor` (`url`, `latestCreatedRevision`,
`latestReadyRevision`, `latestRolledoutRevision`, `previousRolledoutRevision`, `traffic`), conditions
`PredictorReady`, `IngressReady` and `Ready` (plus `Failed` while the newest revision failed, which is
what ends `flowdeck apply --wait` with the reason), and `modelStatus`. `status.modelUrl` adds the
predict URL (`http://127.0.0.1:PORT/v1/models/NAME:predict`). The controller is in `deployments`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flowdeck.resources.kinds import Kind, KindContext
from flowdeck.resources.model import Resource

API_VERSION = "serving.kserve.io/v1beta1"

#: KServe's modelFormat names for the formats `flowdeck serve` loads, and the name it knows each by.
MODEL_FORMATS = {"sklearn": "sklearn", "scikit-learn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm",
                 "pytorch": "pytorch", "torchscript": "pytorch", "onnx": "onnx", "custom": "custom",
                 "python": "custom"}
#: Predictor keys of KServe's framework shorthand (`predictor: {sklearn: {storageUri: ...}}`).
_SHORTHANDS = ("sklearn", "xgboost", "lightgbm", "pytorch", "onnx")


class ModelFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: str | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value.lower() not in MODEL_FORMATS:
            known = ", ".join(sorted({*MODEL_FORMATS.values()}))
            raise ValueError(f"model format {value!r} is not served locally (use one of: {known})")
        return value


class ModelSpec(BaseModel):
    """`predictor.model`: what to serve. Container-level fields (resources, env, args...) are accepted, unused."""

    model_config = ConfigDict(extra="allow")

    modelFormat: ModelFormat
    storageUri: str = Field(min_length=1)
    protocolVersion: Literal["v1", "v2"] = "v1"
    #: KServe's ServingRuntime name: recorded, there is one local runtime.
    runtime: str | None = None

    @field_validator("protocolVersion", mode="before")
    @classmethod
    def _protocol(cls, value: Any) -> Any:
        if value == "grpc-v2":
            raise ValueError("protocolVersion grpc-v2 is not routed locally yet: use v1 or v2")
        return value

    @field_validator("storageUri")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if "://" not in value and not value.startswith("/"):
            raise ValueError(f"{value!r} is relative: give an absolute path, a file:// URI or an fsspec URI "
                             "(s3://, gs://...)")
        return value

    @property
    def format(self) -> str:
        return MODEL_FORMATS[self.modelFormat.name.lower()]


class Batcher(BaseModel):
    """KServe's batcher: `maxBatchSize` rows, `maxLatency` milliseconds (passed to `flowdeck serve`)."""

    model_config = ConfigDict(extra="forbid")

    maxBatchSize: int = Field(default=32, ge=1)
    maxLatency: float = Field(default=500, ge=0)


class PredictorSpec(BaseModel):
    """`spec.predictor`. Pod-level fields (scaleMetric, resources, logger...) are accepted and not applied."""

    model_config = ConfigDict(extra="allow")

    model: ModelSpec
    minReplicas: int = Field(default=1, ge=0)
    maxReplicas: int | None = Field(default=None, ge=1)
    canaryTrafficPercent: int | None = Field(default=None, ge=0, le=100)
    batcher: Batcher | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """`{sklearn: {storageUri: ...}}` -> `{model: {modelFormat: {name: sklearn}, storageUri: ...}}`."""
        if not isinstance(value, dict):
            return value
        if value.get("containers"):
            raise ValueError("custom predictor containers are not supported locally: give predictor.model "
                             "(modelFormat and storageUri); a custom Python model is modelFormat: custom")
        found = [key for key in _SHORTHANDS if key in value]
        if found and "model" not in value:
            framework = dict(value[found[0]] or {})
            rest = {k: v for k, v in value.items() if k != found[0]}
            return {**rest, "model": {**framework, "modelFormat": {"name": found[0]}}}
        if "model" not in value:
            raise ValueError("give predictor.model with modelFormat and storageUri")
        return value

    @model_validator(mode="after")
    def _replicas(self) -> PredictorSpec:
        if self.minReplicas == 0:
            raise ValueError("minReplicas 0 (scale to zero) is not supported locally: use 1 or more")
        if self.maxReplicas is not None and self.maxReplicas < self.minReplicas:
            raise ValueError(f"maxReplicas ({self.maxReplicas}) is below minReplicas ({self.minReplicas})")
        return self


class EnvVar(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    value: str = ""
    valueFrom: dict[str, Any] | None = None

    @field_validator("valueFrom")
    @classmethod
    def _no_value_from(cls, value: dict[str, Any] | None) -> None:
        if value is not None:
            raise ValueError("valueFrom (secrets, config maps, fields) is not resolved locally: give a value")
        return None


class Container(BaseModel):
    """A transformer container: run locally as `command + args` in `workingDir` with `env`; image, resources,
    ports... are accepted and not used."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    image: str | None = None
    command: list[str] = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    workingDir: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _needs_command(cls, value: Any) -> Any:
        if isinstance(value, dict) and not value.get("command"):
            raise ValueError("command is required locally: an image's entrypoint is not run here "
                             "(e.g. command: [python, transformer.py])")
        return value

    @field_validator("workingDir")
    @classmethod
    def _absolute_dir(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"workingDir {value!r} must be an absolute path")
        return value


class TransformerSpec(BaseModel):
    """`spec.transformer`: one container. Its replica and scaling fields follow the predictor's here."""

    model_config = ConfigDict(extra="allow")

    containers: list[Container] = Field(min_length=1, max_length=1)


class InferenceServiceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    predictor: PredictorSpec
    transformer: TransformerSpec | None = None
    explainer: dict[str, Any] | None = None

    @field_validator("explainer")
    @classmethod
    def _no_explainer(cls, value: dict[str, Any] | None) -> None:
        if value is not None:
            raise ValueError("explainers are not supported locally: a custom model may implement explain")
        return None


# -- hooks -------------------------------------------------------------------------------------------
def reconcile(ctx: KindContext, resource: Resource) -> float | None:
    from flowdeck.serving.deployments import reconcile as run

    return run(ctx, resource, InferenceServiceSpec.model_validate(resource.spec))


def finalize(ctx: KindContext, resource: Resource) -> None:
    from flowdeck.serving.deployments import finalize as run

    run(ctx, resource)


def logs(ctx: KindContext, resource: Resource) -> Iterator[str]:
    from flowdeck.serving.deployments import logs as run

    return run(ctx, resource)


def describe(ctx: KindContext, resource: Resource) -> list[tuple[str, str]]:
    """The model, the replicas, the URLs and how traffic is split."""
    spec = InferenceServiceSpec.model_validate(resource.spec)
    model, predictor = spec.predictor.model, spec.predictor
    status = resource.status
    replicas = f"{predictor.minReplicas}" + (f" (maxReplicas {predictor.maxReplicas}: no autoscaling locally)"
                                            if predictor.maxReplicas else "")
    lines = [("Model", f"{model.modelFormat.name} from {model.storageUri} (protocol {model.protocolVersion})"),
             ("Replicas", replicas)]
    if spec.transformer is not None:
        container = spec.transformer.containers[0]
        lines.append(("Transformer", " ".join([*container.command, *container.args])))
    if predictor.canaryTrafficPercent is not None:
        lines.append(("Canary traffic", f"{predictor.canaryTrafficPercent}%"))
    for label, key in (("URL", "url"), ("Model URL", "modelUrl")):
        if getattr(status, key, None):
            lines.append((label, str(getattr(status, key))))
    traffic = traffic_summary(resource.to_json())
    if traffic:
        lines.append(("Traffic", traffic))
    return lines


def traffic_summary(document: dict[str, Any]) -> str:
    """`iris-predictor-00001 80%, iris-predictor-00002 20% (latest)` from a resource's status."""
    predictor = ((document.get("status") or {}).get("components") or {}).get("predictor") or {}
    return ", ".join(f"{t['revisionName']} {t['percent']}%" + (" (latest)" if t.get("latestRevision") else "")
                     for t in predictor.get("traffic") or [])


INFERENCE_SERVICE = Kind(
    kind="InferenceService",
    api_versions=(API_VERSION,),
    plural="inferenceservices",
    short_names=("isvc",),
    spec_model=InferenceServiceSpec,
    reconcile=reconcile,
    finalize=finalize,
    logs=logs,
    describe=describe,
    columns=(("URL", "status.url"), ("MODEL URL", "status.modelUrl"),
             ("REVISION", "status.components.predictor.latestReadyRevision")),
)
