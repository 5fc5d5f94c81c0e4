"""The `Experiment` kind (kubeflow.org/v1beta1): Katib's hyperparameter tuning, run by `controller`.

    flowdeck apply -f experiment.yaml --wait     # ends Succeeded (goal, max trials, space exhausted) or Failed
    flowdeck get experiment tune-lr -o json      # Katib's status: trial counters, currentOptimalTrial...
    flowdeck describe experiment tune-lr         # plus a table of the trials

`status.state` (the STATUS column) is the newest true condition, as kubectl shows it.

It registers without optuna: the controller, which needs it (the `tuning` extra), loads on first use.
"""

from __future__ import annotations

from collections.abc import Iterator

from flowdeck.resources.kinds import Kind, KindContext
from flowdeck.resources.loader import ResourceError
from flowdeck.resources.model import Resource
from flowdeck.tuning.specs import ExperimentSpec


def reconcile(ctx: KindContext, resource: Resource) -> float | None:
    from flowdeck.tuning.controller import reconcile as run

    delay = run(ctx, resource, ExperimentSpec.model_validate(resource.spec))
    resource.status.state = resource.status.newest_true()
    return delay


def finalize(ctx: KindContext, resource: Resource) -> None:
    from flowdeck.tuning.controller import finalize as run

    run(ctx, resource)


def logs(ctx: KindContext, resource: Resource) -> Iterator[str]:
    """Each trial's output, under a `==> trial <==` line."""
    from flowdeck.tuning.controller import experiment_dir

    records = getattr(resource.status, "trialStatuses", None) or []
    if not records:
        raise ResourceError(f"{resource.ref} has no trials yet")
    directory = experiment_dir(ctx, resource)
    for record in records:
        yield f"==> {record['name']} ({record['condition']}) <==\n"
        path = directory / record["name"] / "output.log"
        yield path.read_text(errors="replace") if path.exists() else ""


def describe(ctx: KindContext, resource: Resource) -> list[tuple[str, str]]:
    """The objective, the algorithm, the best trial and a table of every trial."""
    from flowdeck.tuning.controller import trial_table

    spec = ExperimentSpec.model_validate(resource.spec)
    objective = spec.objective
    goal = f" (goal {objective.goal:g})" if objective.goal is not None else ""
    lines = [("Objective", f"{objective.type} {objective.objectiveMetricName}{goal}"),
             ("Algorithm", spec.algorithm.algorithmName + (f", early stopping {spec.earlyStopping.algorithmName}"
                                                           if spec.earlyStopping else "")),
             ("Trials", f"{spec.parallelTrialCount} in parallel, at most {spec.maxTrialCount or 'unlimited'}")]
    best = getattr(resource.status, "currentOptimalTrial", None)
    if best:
        assignments = ", ".join(f"{a['name']}={a['value']}" for a in best["parameterAssignments"])
        lines.append(("Best trial", f"{best['bestTrialName']}: {assignments}"))
    return lines + trial_table(resource)


EXPERIMENT = Kind(kind="Experiment", api_versions=("kubeflow.org/v1beta1",), plural="experiments",
                  short_names=("exp",), spec_model=ExperimentSpec, reconcile=reconcile, finalize=finalize, logs=logs,
                  describe=describe,
                  columns=(("STATUS", "status.state"), ("TRIALS", "status.trials"),
                           ("SUCCEEDED", "status.trialsSucceeded"),
                           ("BEST", "status.currentOptimalTrial.bestTrialName")))
