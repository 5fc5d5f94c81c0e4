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

The framework shorthand (`predictor: {sklearn: {storageUri: ...}}`) is accepted too. The predictor's
pod-level fields (resources, scaleMetric, logger, nodeSelector...) are accepted and not applied here.
Custom predictor `containers`, `transformer` and `explainer` are refused with a clear message: a local
container runtime is out of scope, and transformers are not supported locally yet.

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


class InferenceServiceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    predictor: PredictorSpec
    transformer: dict[str, Any] | None = None
    explainer: dict[str, Any] | None = None

    @field_validator("transformer")
    @classmethod
    def _no_transformer(cls, value: dict[str, Any] | None) -> None:
        if value is not None:
            raise ValueError("transformers are not supported locally yet: put preprocessing in a custom model's "
                             "preprocess (modelFormat: custom)")
        return None

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
