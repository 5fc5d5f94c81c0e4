"""The spec of Katib's Experiment (`kubeflow.org/v1beta1`), checked as Katib's webhook checks it.

References `T:n` are lines of shared/reference/training.md (§4, from line 413). Every error carries the path of
the field at fault, so `flowdeck.resources.loader.describe_error` renders one line such as
`spec.parameters[0].feasibleSpace: min (5) is greater than max (1)` (issue 8, acceptance 5). Checks that span
fields raise `field_error`, which pydantic nests under the location of the model that raised it.

As in Katib, every parameter value is a string (YAML numbers are accepted and kept as their text). What runs
locally is narrower than Katib: the trial template is given inline (no ConfigMap), the metrics collector is
StdOut, File or Push, and NAS is not supported; each is refused with one line saying so.

`render_trial` turns the validated spec and one suggestion's assignments into the trial's document.

This module imports neither optuna nor numpy: the Experiment kind registers without them.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flowdeck.resources.loader import field_error

#: `algorithm.algorithmName` values run locally (T:476-486), each backed by an optuna sampler or pruner.
ALGORITHMS = ("random", "grid", "tpe", "multivariate-tpe", "cmaes", "sobol", "bayesianoptimization", "hyperband")
#: A parameter placeholder of the trial template (T:455-456); group 1 is the trial parameter's name.
PLACEHOLDER = re.compile(r"\$\{trialParameters\.(.+?)\}")
#: Trial metadata placeholders (T:457-458) that `render_trial` fills in; a trial parameter may also reference one.
METADATA_PLACEHOLDERS = ("${trialSpec.Name}", "${trialSpec.Namespace}", "${trialSpec.Kind}",
                         "${trialSpec.APIVersion}")
#: Trial kinds, kind -> apiVersion (katib-config's default `trialResources`, T:460-461, less MPIJob).
TRIAL_KINDS = {"Job": "batch/v1", "PyTorchJob": "kubeflow.org/v1", "TFJob": "kubeflow.org/v1",
               "XGBoostJob": "kubeflow.org/v1", "TrainJob": "trainer.kubeflow.org/v1alpha1"}
#: Metrics collector kinds run locally (T:490-494); TensorFlowEvent, PrometheusMetric and Custom are not.
COLLECTOR_KINDS = ("StdOut", "File", "Push")

_TRIAL_KINDS_TEXT = ("Job (batch/v1), PyTorchJob, TFJob, XGBoostJob (kubeflow.org/v1), "
                     "TrainJob (trainer.kubeflow.org/v1alpha1)")
_List = list  # `FeasibleSpace.list` shadows the builtin inside that class


def _text(value: Any) -> Any:
    """Katib's values are strings: a YAML number becomes its text (booleans are left for pydantic to refuse)."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


class MetricStrategy(BaseModel):
    """Which of a metric's reported values is the trial's value for it (T:428)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    value: Literal["min", "max", "latest"]


class Objective(BaseModel):
    """What the experiment optimises (T:428): the objective metric, its direction and an optional goal."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["minimize", "maximize"]
    goal: float | None = None
    objectiveMetricName: str = Field(min_length=1)
    additionalMetricNames: list[str] = Field(default_factory=list)
    metricStrategies: list[MetricStrategy] = Field(default_factory=list)

    @model_validator(mode="after")
    def _metrics(self) -> Objective:
        if self.objectiveMetricName in self.additionalMetricNames:
            index = self.additionalMetricNames.index(self.objectiveMetricName)
            raise field_error(("additionalMetricNames", index),
                              f"must not contain the objective metric {self.objectiveMetricName!r}")
        names = self.metric_names()
        for index, strategy in enumerate(self.metricStrategies):
            if strategy.name not in names:
                raise field_error(("metricStrategies", index, "name"),
                                  f"{strategy.name!r} is not the objective metric or an additional metric")
        return self

    def metric_names(self) -> list[str]:
        """The objective metric, then the additional ones: every metric a trial's collector looks for."""
        return [self.objectiveMetricName, *self.additionalMetricNames]

    def strategy(self, name: str) -> Literal["min", "max", "latest"]:
        """The strategy of metric `name`: the one given, else `min` when minimizing and `max` when maximizing."""
        given = next((s.value for s in self.metricStrategies if s.name == name), None)
        return given or ("min" if self.type == "minimize" else "max")

    def goal_reached(self, value: float) -> bool:
        """Whether an objective value meets the goal (minimize: value <= goal; maximize: value >= goal)."""
        if self.goal is None:
            return False
        return value <= self.goal if self.type == "minimize" else value >= self.goal


class AlgorithmSetting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    value: str

    _value = field_validator("value", mode="before")(_text)


class AlgorithmSpec(BaseModel):
    """The search algorithm (T:429); its settings are checked where the sampler is made."""

    model_config = ConfigDict(extra="forbid")

    algorithmName: str
    algorithmSettings: list[AlgorithmSetting] = Field(default_factory=list)

    @field_validator("algorithmName")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {value!r} (known: {', '.join(ALGORITHMS)})")
        return value

    def settings(self) -> dict[str, str]:
        """The settings by name."""
        return {setting.name: setting.value for setting in self.algorithmSettings}


class EarlyStoppingSpec(BaseModel):
    """Early stopping (T:430, T:487): Katib's medianstop, with settings min_trials_required and start_step."""

    model_config = ConfigDict(extra="forbid")

    algorithmName: Literal["medianstop"]
    algorithmSettings: list[AlgorithmSetting] = Field(default_factory=list)

    def settings(self) -> dict[str, str]:
        """The settings by name."""
        return {setting.name: setting.value for setting in self.algorithmSettings}


class FeasibleSpace(BaseModel):
    """Where a parameter's values lie (T:433): min/max/step for int and double, list for the others."""

    model_config = ConfigDict(extra="forbid")

    min: str | None = None
    max: str | None = None
    step: str | None = None
    list: _List[str] | None = None
    distribution: Literal["uniform", "logUniform", "normal", "logNormal"] | None = None

    _bounds = field_validator("min", "max", "step", mode="before")(_text)

    @field_validator("list", mode="before")
    @classmethod
    def _values(cls, value: Any) -> Any:
        return [_text(item) for item in value] if isinstance(value, _List) else value


class ParameterSpec(BaseModel):
    """One search-space parameter (T:433) and the webhook's rules on its feasible space."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    parameterType: Literal["int", "double", "categorical", "discrete"]
    feasibleSpace: FeasibleSpace

    @model_validator(mode="after")
    def _space(self) -> ParameterSpec:
        if self.parameterType in ("int", "double"):
            self._check_range()
        else:
            self._check_list()
        return self

    def _check_range(self) -> None:
        space, kind = self.feasibleSpace, self.parameterType
        if space.list is not None:
            raise field_error(("feasibleSpace", "list"), f"not allowed for {kind} parameters: give min and max")
        bounds: dict[str, float] = {}
        for name in ("min", "max", "step"):
            text = getattr(space, name)
            if text is None:
                if name != "step":
                    raise field_error(("feasibleSpace", name), f"required for {kind} parameters")
                continue
            value = _number(text)
            if value is None or (kind == "int" and not _is_integer(text)):
                noun = "an integer" if kind == "int" else "a number"
                raise field_error(("feasibleSpace", name), f"must be {noun}", text)
            bounds[name] = value
        if bounds["min"] > bounds["max"]:
            raise field_error(("feasibleSpace",), f"min ({space.min}) is greater than max ({space.max})")
        if "step" in bounds and bounds["step"] <= 0:
            raise field_error(("feasibleSpace", "step"), "must be greater than 0", space.step)
        if space.distribution == "logUniform" and bounds["min"] <= 0:
            raise field_error(("feasibleSpace", "min"), "must be greater than 0 for a logUniform distribution",
                              space.min)

    def _check_list(self) -> None:
        space, kind = self.feasibleSpace, self.parameterType
        for name in ("min", "max", "step"):
            if getattr(space, name) is not None:
                raise field_error(("feasibleSpace", name), f"not allowed for {kind} parameters: give list")
        if not space.list:
            raise field_error(("feasibleSpace", "list"), f"required for {kind} parameters (the values to choose from)")
        seen: set[str] = set()
        for index, value in enumerate(space.list):
            if kind == "discrete" and _number(value) is None:
                raise field_error(("feasibleSpace", "list", index), "must be a number", value)
            if value in seen:
                raise field_error(("feasibleSpace", "list", index), "duplicate value", value)
            seen.add(value)


def _is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


class TrialParameter(BaseModel):
    """A template placeholder `${trialParameters.<name>}` and the parameter (or trial metadata) it stands for."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str | None = None
    reference: str = Field(min_length=1)


class TrialTemplate(BaseModel):
    """What each trial runs (T:434, T:454-468): an inline trialSpec of a supported kind, with placeholders."""

    model_config = ConfigDict(extra="forbid")

    retain: bool = False
    trialSpec: dict[str, Any] | None = None
    configMap: dict[str, Any] | None = None
    trialParameters: list[TrialParameter] = Field(default_factory=list)
    #: Accepted and unused: locally every trial's process is its primary "pod".
    primaryPodLabels: dict[str, str] | None = None
    primaryContainerName: str | None = None
    successCondition: str | None = None
    failureCondition: str | None = None

    @field_validator("configMap")
    @classmethod
    def _no_config_map(cls, value: dict[str, Any] | None) -> None:
        if value is not None:
            raise ValueError("not supported locally: give the trial's document inline in trialSpec")
        return None

    @model_validator(mode="after")
    def _template(self) -> TrialTemplate:
        if self.trialSpec is None:
            raise field_error(("trialSpec",), "required")
        self._check_kind(self.trialSpec)
        names: set[str] = set()
        for index, parameter in enumerate(self.trialParameters):
            if parameter.name in names:
                raise field_error(("trialParameters", index, "name"), f"duplicate trial parameter {parameter.name!r}")
            names.add(parameter.name)
        used = PLACEHOLDER.findall(json.dumps(self.trialSpec))
        missing = [name for name in used if name not in names]
        if missing:
            raise field_error(("trialSpec",),
                              f"${{trialParameters.{missing[0]}}} is not defined in trialTemplate.trialParameters")
        for index, parameter in enumerate(self.trialParameters):
            if parameter.name not in used:
                raise field_error(("trialParameters", index, "name"),
                                  f"${{trialParameters.{parameter.name}}} is not used in trialTemplate.trialSpec")
        return self

    @staticmethod
    def _check_kind(document: dict[str, Any]) -> None:
        kind = document.get("kind")
        if kind not in TRIAL_KINDS:
            raise field_error(("trialSpec", "kind"),
                              f"unsupported trial kind {kind!r} (supported: {_TRIAL_KINDS_TEXT})")
        if document.get("apiVersion") != TRIAL_KINDS[kind]:
            raise field_error(("trialSpec", "apiVersion"), f"must be {TRIAL_KINDS[kind]} for a {kind}",
                              document.get("apiVersion"))
        metadata = document.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise field_error(("trialSpec", "metadata"), "must be a mapping")
        for name in ("name", "namespace"):
            if name in metadata:
                raise field_error(("trialSpec", "metadata", name), "must not be set: each trial sets its own")


class FileSystemPath(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1)
    kind: Literal["File", "Directory"] = "File"
    format: Literal["TEXT", "JSON"] = "TEXT"


class MetricsFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metricsFormat: list[str] = Field(default_factory=list)

    @field_validator("metricsFormat")
    @classmethod
    def _two_groups(cls, value: list[str]) -> list[str]:
        for index, pattern in enumerate(value):
            try:
                groups = re.compile(pattern).groups
            except re.error as exc:
                raise field_error((index,), f"not a regular expression ({exc})", pattern) from None
            if groups != 2:
                raise field_error((index,), f"must have exactly 2 groups (metric name, value), has {groups}", pattern)
        return value


class MetricsSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fileSystemPath: FileSystemPath | None = None
    filter: MetricsFilter | None = None


class Collector(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = "StdOut"

    @field_validator("kind")
    @classmethod
    def _local(cls, value: str) -> str:
        if value not in COLLECTOR_KINDS:
            raise ValueError(f"unsupported collector kind {value!r} (supported locally: {', '.join(COLLECTOR_KINDS)})")
        return value


class MetricsCollectorSpec(BaseModel):
    """How a trial's metrics are collected (T:435, T:488-510): its output, a file, or `report_metrics` (Push)."""

    model_config = ConfigDict(extra="forbid")

    collector: Collector = Field(default_factory=Collector)
    source: MetricsSource | None = None

    @model_validator(mode="after")
    def _source(self) -> MetricsCollectorSpec:
        kind, source = self.collector.kind, self.source or MetricsSource()
        path = source.fileSystemPath
        if kind == "File":
            if path is None:
                raise field_error(("source", "fileSystemPath"), "required for the File collector")
            if path.kind != "File":
                raise field_error(("source", "fileSystemPath", "kind"), "must be File for the File collector",
                                  path.kind)
            if path.format == "JSON" and source.filter is not None:
                raise field_error(("source", "filter"), "not used with the JSON format")
        elif path is not None:
            raise field_error(("source", "fileSystemPath"), f"not used by the {kind} collector")
        if kind == "Push" and source.filter is not None:
            raise field_error(("source", "filter"), "not used by the Push collector")
        return self

    def filters(self) -> list[str]:
        """The TEXT filters: the ones given, else an empty list (meaning Katib's default)."""
        return list(self.source.filter.metricsFormat) if self.source and self.source.filter else []


class ExperimentSpec(BaseModel):
    """Katib's ExperimentSpec (T:425-437) with the webhook's cross-field rules."""

    model_config = ConfigDict(extra="forbid")

    objective: Objective
    algorithm: AlgorithmSpec
    earlyStopping: EarlyStoppingSpec | None = None
    #: Katib's default is 3; when it is not given it is lowered to maxTrialCount rather than refused.
    parallelTrialCount: int | None = Field(default=None, gt=0)
    maxTrialCount: int | None = Field(default=None, gt=0)
    maxFailedTrialCount: int | None = Field(default=None, ge=0)
    parameters: list[ParameterSpec]
    trialTemplate: TrialTemplate
    metricsCollectorSpec: MetricsCollectorSpec = Field(default_factory=MetricsCollectorSpec)
    resumePolicy: Literal["Never", "LongRunning", "FromVolume"] = "Never"
    nasConfig: dict[str, Any] | None = None

    @field_validator("nasConfig")
    @classmethod
    def _no_nas(cls, value: dict[str, Any] | None) -> None:
        if value is not None:
            raise ValueError("neural architecture search (ENAS/DARTS) is not supported locally")
        return None

    @model_validator(mode="after")
    def _experiment(self) -> ExperimentSpec:
        if not self.parameters:
            raise field_error(("parameters",), "give at least one parameter")
        names: set[str] = set()
        for index, parameter in enumerate(self.parameters):
            if parameter.name in names:
                raise field_error(("parameters", index, "name"), f"duplicate parameter {parameter.name!r}")
            names.add(parameter.name)
        for index, trial_parameter in enumerate(self.trialTemplate.trialParameters):
            reference = trial_parameter.reference
            if reference not in names and reference not in METADATA_PLACEHOLDERS:
                raise field_error(("trialTemplate", "trialParameters", index, "reference"),
                                  f"{reference!r} is not an experiment parameter")
        most = self.maxTrialCount
        if self.parallelTrialCount is None:
            self.parallelTrialCount = 3 if most is None else min(3, most)
        elif most is not None and self.parallelTrialCount > most:
            raise field_error(("parallelTrialCount",),
                              f"{self.parallelTrialCount} is greater than maxTrialCount ({most})")
        if most is not None and self.maxFailedTrialCount is not None and self.maxFailedTrialCount > most:
            raise field_error(("maxFailedTrialCount",),
                              f"{self.maxFailedTrialCount} is greater than maxTrialCount ({most})")
        _check_search(self)
        return self

    def parameter(self, name: str) -> ParameterSpec:
        """The parameter called `name`."""
        return next(parameter for parameter in self.parameters if parameter.name == name)


def _check_search(spec: ExperimentSpec) -> None:
    """Refuse what the search itself would (algorithm settings, a grid over a double without a step...) when
    the experiment is applied, not when its first trial is asked for. Needs optuna (the `tuning` extra);
    without it the experiment fails when it starts, saying which extra to install."""
    try:
        from flowdeck.tuning.algorithms import make_pruner, make_sampler
    except ImportError:
        return
    try:
        make_sampler(spec.algorithm, spec.parameters)
        make_pruner(spec.algorithm, spec.earlyStopping)
    except ValueError as exc:
        where, _, message = str(exc).partition(": ")
        loc: list[str | int] = []
        for part in where.removeprefix("spec.").split("."):
            name, _, index = part.partition("[")
            loc.append(name)
            if index:
                loc.append(int(index.rstrip("]")))
        raise field_error(tuple(loc), message) from None


def render_trial(spec: ExperimentSpec, assignments: dict[str, str], trial_name: str, namespace: str) -> dict[str, Any]:
    """The document of one trial: the trialSpec with its placeholders replaced, named `trial_name` in `namespace`.

    As Katib does (T:455-458), placeholders are replaced as text: `${trialParameters.<name>}` by the value assigned
    to the parameter its trial parameter references (or by the trial metadata it references), and
    `${trialSpec.Name}`, `${trialSpec.Namespace}`, `${trialSpec.Kind}`, `${trialSpec.APIVersion}` by the trial's.
    """
    template = spec.trialTemplate.trialSpec
    assert template is not None  # validated
    metadata = {"${trialSpec.Name}": trial_name, "${trialSpec.Namespace}": namespace,
                "${trialSpec.Kind}": template["kind"], "${trialSpec.APIVersion}": template["apiVersion"]}
    values: dict[str, str] = {}
    for trial_parameter in spec.trialTemplate.trialParameters:
        reference = trial_parameter.reference
        if reference in metadata:
            values[f"${{trialParameters.{trial_parameter.name}}}"] = metadata[reference]
        elif reference in assignments:
            values[f"${{trialParameters.{trial_parameter.name}}}"] = str(assignments[reference])
        else:
            raise ValueError(f"no value assigned to parameter {reference!r}")
    text = json.dumps(template)
    for placeholder, value in {**values, **metadata}.items():
        text = text.replace(placeholder, json.dumps(value)[1:-1])
    document: dict[str, Any] = json.loads(text)
    document["metadata"] = {**(document.get("metadata") or {}), "name": trial_name, "namespace": namespace}
    return document
