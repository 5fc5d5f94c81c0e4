"""Experiment specs: Katib's documented Experiment parses, each invalid one is one line naming the field at fault,
and a trial's document is the template with its placeholders filled in."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from pydantic import ValidationError

from flowdeck.resources import Kind, Registry, ResourceError, parse_resource, read_documents
from flowdeck.resources.loader import describe_error
from flowdeck.tuning import search
from flowdeck.tuning.specs import ALGORITHMS, ExperimentSpec, render_trial

# Katib's random-search example (examples/v1beta1/hp-tuning/random.yaml), a batch Job per trial.
KATIB_RANDOM_YAML = """\
    apiVersion: kubeflow.org/v1beta1
    kind: Experiment
    metadata:
      namespace: kubeflow
      name: random
    spec:
      objective:
        type: maximize
        goal: 0.99
        objectiveMetricName: Validation-accuracy
        additionalMetricNames:
          - Train-accuracy
      algorithm:
        algorithmName: random
      parallelTrialCount: 3
      maxTrialCount: 12
      maxFailedTrialCount: 3
      parameters:
        - name: lr
          parameterType: double
          feasibleSpace:
            min: "0.01"
            max: "0.03"
        - name: num-layers
          parameterType: int
          feasibleSpace:
            min: "2"
            max: "5"
        - name: optimizer
          parameterType: categorical
          feasibleSpace:
            list:
              - sgd
              - adam
              - ftrl
      trialTemplate:
        primaryContainerName: training-container
        trialParameters:
          - name: learningRate
            description: Learning rate for the training model
            reference: lr
          - name: numberLayers
            description: Number of training model layers
            reference: num-layers
          - name: optimizer
            description: Training model optimizer (sdg, adam or ftrl)
            reference: optimizer
        trialSpec:
          apiVersion: batch/v1
          kind: Job
          spec:
            template:
              spec:
                containers:
                  - name: training-container
                    image: docker.io/kubeflowkatib/mxnet-mnist:latest
                    command:
                      - "python3"
                      - "/opt/mxnet-mnist/mnist.py"
                      - "--batch-size=64"
                      - "--lr=${trialParameters.learningRate}"
                      - "--num-layers=${trialParameters.numberLayers}"
                      - "--optimizer=${trialParameters.optimizer}"
                restartPolicy: Never
"""


def experiment_kind() -> Registry:
    """The Experiment kind as the loader sees it (the real Kind object is the controller's)."""
    return Registry([Kind("Experiment", ("kubeflow.org/v1beta1",), "experiments", ExperimentSpec,
                          reconcile=lambda ctx, resource: None)])


def load(text: str) -> ExperimentSpec:
    """Load a YAML document as `flowdeck apply` does, then read its stored spec back as the controller does."""
    _, resource = parse_resource(read_documents(textwrap.dedent(text))[0], experiment_kind())
    return ExperimentSpec.model_validate(resource.spec)


def base() -> dict[str, Any]:
    """A small valid spec: minimize loss over lr and an optimizer, one Job per trial."""
    return {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {"algorithmName": "tpe"},
        "maxTrialCount": 6,
        "parameters": [
            {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.001", "max": "0.1"}},
            {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
        ],
        "trialTemplate": {
            "trialParameters": [{"name": "learningRate", "reference": "lr"},
                                {"name": "optimizer", "reference": "optimizer"}],
            "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"containers": [
                {"name": "training-container", "command": [
                    "python", "train.py", "--lr=${trialParameters.learningRate}",
                    "--optimizer=${trialParameters.optimizer}"]}]}}}},
        },
    }


def error(spec: dict[str, Any]) -> str:
    """The one line `flowdeck apply` shows for an invalid spec."""
    with pytest.raises(ValidationError) as caught:
        ExperimentSpec.model_validate(spec)
    return describe_error(caught.value, ExperimentSpec, prefix="spec")


def with_parameter(parameter_type: str, **space: Any) -> dict[str, Any]:
    spec = base()
    spec["parameters"][0] = {"name": "lr", "parameterType": parameter_type, "feasibleSpace": space}
    return spec


def test_katib_random_example_parses() -> None:
    spec = load(KATIB_RANDOM_YAML)
    assert spec.objective.type == "maximize" and spec.objective.goal == 0.99
    assert spec.objective.metric_names() == ["Validation-accuracy", "Train-accuracy"]
    # Katib's default strategies: max when maximizing
    assert spec.objective.strategy("Validation-accuracy") == "max" and spec.objective.goal_reached(0.995)
    assert spec.algorithm.algorithmName == "random"
    assert (spec.parallelTrialCount, spec.maxTrialCount, spec.maxFailedTrialCount) == (3, 12, 3)
    assert [(p.name, p.parameterType) for p in spec.parameters] == [
        ("lr", "double"), ("num-layers", "int"), ("optimizer", "categorical")]
    assert spec.parameter("optimizer").feasibleSpace.list == ["sgd", "adam", "ftrl"]
    assert spec.metricsCollectorSpec.collector.kind == "StdOut" and spec.metricsCollectorSpec.filters() == []
    assert spec.resumePolicy == "Never" and spec.trialTemplate.primaryContainerName == "training-container"


def test_defaults_and_yaml_numbers() -> None:
    spec = base()
    spec["parameters"][0]["feasibleSpace"] = {"min": 0.001, "max": 1, "distribution": "logUniform"}
    parsed = ExperimentSpec.model_validate(spec)
    # values are strings, as in Katib; the default parallelism (3) and the stored form round-trip
    assert (parsed.parameters[0].feasibleSpace.min, parsed.parameters[0].feasibleSpace.max) == ("0.001", "1")
    assert parsed.parallelTrialCount == 3 and parsed.objective.strategy("loss") == "min"
    stored = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert ExperimentSpec.model_validate(stored) == parsed
    # a maxTrialCount under Katib's default parallelism lowers it rather than being refused
    assert ExperimentSpec.model_validate({**base(), "maxTrialCount": 2}).parallelTrialCount == 2


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s["parameters"][0]["feasibleSpace"].update(min="5", max="1"),
     "spec.parameters[0].feasibleSpace: min (5) is greater than max (1)"),
    (lambda s: s["algorithm"].update(algorithmName="foo"),
     f"spec.algorithm.algorithmName: unknown algorithm 'foo' (known: {', '.join(ALGORITHMS)})"),
    (lambda s: s["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"].append(
        "--momentum=${trialParameters.momentum}"),
     "spec.trialTemplate.trialSpec: ${trialParameters.momentum} is not defined in trialTemplate.trialParameters"),
    (lambda s: s["trialTemplate"]["trialParameters"][1].update(reference="momentum"),
     "spec.trialTemplate.trialParameters[1].reference: 'momentum' is not an experiment parameter"),
    (lambda s: s["trialTemplate"]["trialParameters"].append({"name": "unused", "reference": "lr"}),
     "spec.trialTemplate.trialParameters[2].name: ${trialParameters.unused} is not used in trialTemplate.trialSpec"),
    (lambda s: s["objective"].update(additionalMetricNames=["accuracy", "loss"]),
     "spec.objective.additionalMetricNames[1]: must not contain the objective metric 'loss'"),
    (lambda s: s["objective"].update(metricStrategies=[{"name": "accuracy", "value": "max"}]),
     "spec.objective.metricStrategies[0].name: 'accuracy' is not the objective metric or an additional metric"),
    (lambda s: s["objective"].update(type="maximise"),
     "spec.objective.type: Input should be 'minimize' or 'maximize' (got 'maximise')"),
    (lambda s: s["trialTemplate"]["trialSpec"].update(apiVersion="apps/v1", kind="Deployment"),
     "spec.trialTemplate.trialSpec.kind: unsupported trial kind 'Deployment' (supported: Job (batch/v1), "
     "PyTorchJob, TFJob, XGBoostJob (kubeflow.org/v1), TrainJob (trainer.kubeflow.org/v1alpha1))"),
    (lambda s: s["trialTemplate"]["trialSpec"].update(apiVersion="kubeflow.org/v1"),
     "spec.trialTemplate.trialSpec.apiVersion: must be batch/v1 for a Job (got 'kubeflow.org/v1')"),
    (lambda s: s["trialTemplate"]["trialSpec"].update(metadata={"name": "fixed"}),
     "spec.trialTemplate.trialSpec.metadata.name: must not be set: each trial sets its own"),
    (lambda s: s["trialTemplate"].update(trialSpec=None, configMap={"configMapName": "templates"}),
     "spec.trialTemplate.configMap: not supported locally: give the trial's document inline in trialSpec"),
    (lambda s: s["trialTemplate"].pop("trialSpec"), "spec.trialTemplate.trialSpec: required"),
    (lambda s: s.update(parallelTrialCount=7), "spec.parallelTrialCount: 7 is greater than maxTrialCount (6)"),
    (lambda s: s.update(maxFailedTrialCount=9), "spec.maxFailedTrialCount: 9 is greater than maxTrialCount (6)"),
    (lambda s: s.update(parallelTrialCount=0), "spec.parallelTrialCount: Input should be greater than 0 (got 0)"),
    (lambda s: s.update(maxTrialCount=0), "spec.maxTrialCount: Input should be greater than 0 (got 0)"),
    (lambda s: s.update(nasConfig={"graphConfig": {}}),
     "spec.nasConfig: neural architecture search (ENAS/DARTS) is not supported locally"),
    (lambda s: s.update(parameters=[]), "spec.parameters: give at least one parameter"),
    (lambda s: s["parameters"][1].update(name="lr"), "spec.parameters[1].name: duplicate parameter 'lr'"),
    (lambda s: s.update(resumePolicy="Always"),
     "spec.resumePolicy: Input should be 'Never', 'LongRunning' or 'FromVolume' (got 'Always')"),
    (lambda s: s.update(earlyStopping={"algorithmName": "truncation"}),
     "spec.earlyStopping.algorithmName: Input should be 'medianstop' (got 'truncation')"),
    (lambda s: s.update(maxTrialCounts=3), "spec.maxTrialCounts: unknown field (did you mean 'maxTrialCount'?)"),
])
def test_invalid_experiment_is_one_line_naming_the_field(change: Any, message: str) -> None:
    spec = copy.deepcopy(base())
    change(spec)
    assert error(spec) == message


@pytest.mark.parametrize(("parameter_type", "space", "message"), [
    ("int", {"max": "4"}, "spec.parameters[0].feasibleSpace.min: required for int parameters"),
    ("double", {"min": "0.1"}, "spec.parameters[0].feasibleSpace.max: required for double parameters"),
    ("double", {"min": "0", "max": "1", "list": ["0.5"]},
     "spec.parameters[0].feasibleSpace.list: not allowed for double parameters: give min and max"),
    ("int", {"min": "1.5", "max": "4"}, "spec.parameters[0].feasibleSpace.min: must be an integer (got '1.5')"),
    ("double", {"min": "low", "max": "1"}, "spec.parameters[0].feasibleSpace.min: must be a number (got 'low')"),
    ("int", {"min": "1", "max": "4", "step": "0"},
     "spec.parameters[0].feasibleSpace.step: must be greater than 0 (got '0')"),
    ("double", {"min": "0", "max": "1", "distribution": "logUniform"},
     "spec.parameters[0].feasibleSpace.min: must be greater than 0 for a logUniform distribution (got '0')"),
    ("double", {"min": "-1", "max": "1", "distribution": "logUniform"},
     "spec.parameters[0].feasibleSpace.min: must be greater than 0 for a logUniform distribution (got '-1')"),
    ("double", {"min": "0", "max": "1", "distribution": "gaussian"},
     "spec.parameters[0].feasibleSpace.distribution: "
     "Input should be 'uniform', 'logUniform', 'normal' or 'logNormal' (got 'gaussian')"),
    ("categorical", {}, "spec.parameters[0].feasibleSpace.list: required for categorical parameters "
                        "(the values to choose from)"),
    ("categorical", {"list": []}, "spec.parameters[0].feasibleSpace.list: required for categorical parameters "
                                  "(the values to choose from)"),
    ("categorical", {"list": ["a"], "min": "0"},
     "spec.parameters[0].feasibleSpace.min: not allowed for categorical parameters: give list"),
    ("discrete", {"list": ["1", "2"], "step": "1"},
     "spec.parameters[0].feasibleSpace.step: not allowed for discrete parameters: give list"),
    ("discrete", {"list": ["1", "two"]}, "spec.parameters[0].feasibleSpace.list[1]: must be a number (got 'two')"),
    ("categorical", {"list": ["a", "b", "a"]}, "spec.parameters[0].feasibleSpace.list[2]: duplicate value (got 'a')"),
    ("float", {"min": "0", "max": "1"}, "spec.parameters[0].parameterType: "
                                        "Input should be 'int', 'double', 'categorical' or 'discrete' (got 'float')"),
])
def test_invalid_feasible_space(parameter_type: str, space: dict[str, Any], message: str) -> None:
    assert error(with_parameter(parameter_type, **space)) == message


def test_valid_feasible_spaces() -> None:
    for parameter_type, space in [("int", {"min": "1", "max": "1"}), ("int", {"min": -3, "max": 9, "step": 3}),
                                  ("double", {"min": "1e-5", "max": "0.1", "distribution": "logUniform"}),
                                  ("double", {"min": "0", "max": "1", "step": "0.25", "distribution": "normal"}),
                                  ("discrete", {"list": [1, 2.5, "10"]})]:
        ExperimentSpec.model_validate(with_parameter(parameter_type, **space))


def collector(**collector_spec: Any) -> dict[str, Any]:
    return {**base(), "metricsCollectorSpec": collector_spec}


@pytest.mark.parametrize("kind", ["TensorFlowEvent", "PrometheusMetric", "Custom", "None", "Sidecar"])
def test_collector_kinds_other_than_stdout_file_push_are_refused(kind: str) -> None:
    assert error(collector(collector={"kind": kind})) == (
        f"spec.metricsCollectorSpec.collector.kind: unsupported collector kind {kind!r} "
        "(supported locally: StdOut, File, Push)")


@pytest.mark.parametrize(("collector_spec", "message"), [
    ({"collector": {"kind": "File"}},
     "spec.metricsCollectorSpec.source.fileSystemPath: required for the File collector"),
    ({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/tmp/m", "kind": "Directory"}}},
     "spec.metricsCollectorSpec.source.fileSystemPath.kind: must be File for the File collector (got 'Directory')"),
    ({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/tmp/m", "format": "JSON"},
                                                "filter": {"metricsFormat": ["(\\w+):(\\d+)"]}}},
     "spec.metricsCollectorSpec.source.filter: not used with the JSON format"),
    ({"collector": {"kind": "StdOut"}, "source": {"fileSystemPath": {"path": "/tmp/m"}}},
     "spec.metricsCollectorSpec.source.fileSystemPath: not used by the StdOut collector"),
    ({"collector": {"kind": "Push"}, "source": {"filter": {"metricsFormat": ["(\\w+):(\\d+)"]}}},
     "spec.metricsCollectorSpec.source.filter: not used by the Push collector"),
    ({"source": {"filter": {"metricsFormat": ["(\\w+):(\\d+)", "loss=(\\d+)"]}}},
     "spec.metricsCollectorSpec.source.filter.metricsFormat[1]: must have exactly 2 groups (metric name, value), "
     "has 1 (got 'loss=(\\\\d+)')"),
    ({"source": {"filter": {"metricsFormat": ["([\\w|-]+)\\s*=\\s*([+-]?\\d*(\\.\\d+)?([Ee][+-]?\\d+)?)"]}}},
     "spec.metricsCollectorSpec.source.filter.metricsFormat[0]: must have exactly 2 groups (metric name, value), "
     "has 4 (got '([\\\\w|-]+)\\\\s*=\\\\s*([+-]?\\\\d*(\\\\.\\\\d+)?([Ee][+-]?\\\\d+)?)')"),
    ({"source": {"filter": {"metricsFormat": ["(\\w+=(\\d+)"]}}},
     "spec.metricsCollectorSpec.source.filter.metricsFormat[0]: not a regular expression "
     "(missing ), unterminated subpattern at position 0) (got '(\\\\w+=(\\\\d+)')"),
])
def test_invalid_metrics_collector(collector_spec: dict[str, Any], message: str) -> None:
    assert error(collector(**collector_spec)) == message


def test_valid_metrics_collectors() -> None:
    text = ExperimentSpec.model_validate(collector(source={"filter": {"metricsFormat": ["(\\w+):\\s*(\\d+\\.\\d+)"]}}))
    assert text.metricsCollectorSpec.filters() == ["(\\w+):\\s*(\\d+\\.\\d+)"]
    json_file = ExperimentSpec.model_validate(collector(
        collector={"kind": "File"}, source={"fileSystemPath": {"path": "/tmp/metrics.json", "format": "JSON"}}))
    path = json_file.metricsCollectorSpec.source.fileSystemPath
    assert (path.path, path.kind, path.format) == ("/tmp/metrics.json", "File", "JSON")
    assert ExperimentSpec.model_validate(collector(collector={"kind": "Push"})).metricsCollectorSpec.source is None


def test_yaml_errors_reach_apply_as_one_line() -> None:
    broken = KATIB_RANDOM_YAML.replace('min: "2"', 'min: "7"')
    with pytest.raises(ResourceError) as caught:
        load(broken)
    assert caught.value.message == "spec.parameters[1].feasibleSpace: min (7) is greater than max (5)"


def test_render_trial_substitutes_parameters_and_metadata() -> None:
    spec = base()
    container = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] += ["--out=/runs/${trialSpec.Namespace}/${trialSpec.Name}", "--me=${trialParameters.me}",
                             "--kind=${trialSpec.Kind}.${trialSpec.APIVersion}"]
    spec["trialTemplate"]["trialParameters"].append({"name": "me", "reference": "${trialSpec.Name}"})
    spec["trialTemplate"]["trialSpec"]["metadata"] = {"labels": {"team": "a"}}
    parsed = ExperimentSpec.model_validate(spec)
    document = render_trial(parsed, {"lr": "0.01", "optimizer": 'ad"am'}, "exp-x7k2", "team-a")
    assert document["metadata"] == {"labels": {"team": "a"}, "name": "exp-x7k2", "namespace": "team-a"}
    assert document["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "python", "train.py", "--lr=0.01", '--optimizer=ad"am', "--out=/runs/team-a/exp-x7k2", "--me=exp-x7k2",
        "--kind=Job.batch/v1"]
    # the template itself is untouched, and a parameter without a value is an error, not a literal placeholder
    assert "${trialParameters.learningRate}" in str(parsed.trialTemplate.trialSpec)
    with pytest.raises(ValueError, match="no value assigned to parameter 'optimizer'"):
        render_trial(parsed, {"lr": "0.01"}, "exp-x7k3", "team-a")


def test_render_trial_of_katib_example() -> None:
    document = render_trial(load(KATIB_RANDOM_YAML), {"lr": "0.0217", "num-layers": "4", "optimizer": "ftrl"},
                            "random-abc", "kubeflow")
    assert document["apiVersion"] == "batch/v1" and document["kind"] == "Job"
    assert document["metadata"] == {"name": "random-abc", "namespace": "kubeflow"}
    assert document["spec"]["template"]["spec"]["containers"][0]["command"][2:] == [
        "--batch-size=64", "--lr=0.0217", "--num-layers=4", "--optimizer=ftrl"]


def test_search_helpers_give_parameter_specs() -> None:
    assert search.double(0.01, 0.05) == {"parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.05"}}
    assert search.int(1, 9, step=2) == {"parameterType": "int", "feasibleSpace": {"min": "1", "max": "9", "step": "2"}}
    assert search.categorical(["sgd", 1]) == {"parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "1"]}}
    spec = base()
    spec["parameters"] = [{"name": "lr", **search.double(1e-5, 0.1)}, {"name": "optimizer", **search.categorical(
        ["sgd", "adam"])}]
    assert ExperimentSpec.model_validate(spec).parameters[0].feasibleSpace.min == "1e-05"


def test_the_package_imports_neither_optuna_nor_numpy() -> None:
    code = ("import sys, flowdeck.tuning as t, flowdeck.tuning.specs, flowdeck.tuning.metrics;"
            "assert t.search.int(1, 2) and callable(t.report_metrics);"
            "print(sorted(m for m in ('optuna', 'numpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
