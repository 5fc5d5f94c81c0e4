"""Katib's search algorithms on optuna: what a user relies on from each (pure, in-memory studies).

grid hands out every grid point exactly once and then reports the space exhausted; a seed makes a search
repeatable; every algorithm keeps its suggestions inside the feasible space (bounds, step grid, lists, log and
normal shapes); medianstop and hyperband stop bad trials early; bad settings are one line naming the setting.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import optuna
import pytest

from flowdeck.tuning.algorithms import exhausted, make_pruner, make_sampler, suggest
from flowdeck.tuning.specs import AlgorithmSpec, EarlyStoppingSpec, ParameterSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)

ALGORITHMS = ("random", "grid", "tpe", "multivariate-tpe", "cmaes", "sobol", "bayesianoptimization", "hyperband")


def param(name: str, kind: str, **space: Any) -> ParameterSpec:
    return ParameterSpec.model_validate({"name": name, "parameterType": kind, "feasibleSpace": space})


def settings_of(settings: dict[str, Any]) -> list[dict[str, str]]:
    return [{"name": name, "value": str(value)} for name, value in settings.items()]


def algorithm(name: str, **settings: Any) -> AlgorithmSpec:
    return AlgorithmSpec.model_validate({"algorithmName": name, "algorithmSettings": settings_of(settings)})


def medianstop(**settings: Any) -> EarlyStoppingSpec:
    return EarlyStoppingSpec.model_validate({"algorithmName": "medianstop", "algorithmSettings": settings_of(settings)})


def search(spec: AlgorithmSpec, parameters: list[ParameterSpec], trials: int,
           objective: Callable[[dict[str, str]], float] | None = None, parallel: int = 1) -> list[dict[str, str]]:
    """Run a study as the controller does: ask (up to `parallel` at once) while not exhausted, then tell."""
    study = optuna.create_study(sampler=make_sampler(spec, parameters), pruner=make_pruner(spec, None))
    suggestions: list[dict[str, str]] = []
    while len(suggestions) < trials:
        batch = []
        for _ in range(min(parallel, trials - len(suggestions))):
            if exhausted(study, parameters):
                break
            trial = study.ask()
            batch.append((trial, suggest(trial, parameters)))
            suggestions.append(batch[-1][1])
        if not batch:
            break
        for trial, assignments in batch:
            study.tell(trial, objective(assignments) if objective else 0.0)
    return suggestions


def numeric_sum(assignments: dict[str, str]) -> float:
    """A smooth objective over every numeric value, so that model-based samplers have something to fit."""
    total = 0.0
    for value in assignments.values():
        try:
            total += (float(value) - 1.0) ** 2
        except ValueError:
            total += 0.5 if value == "relu" else 0.0
    return total


# -- grid --------------------------------------------------------------------------------------------------
GRID = [
    param("layers", "int", min="1", max="3"),
    param("lr", "double", min="0.1", max="0.35", step="0.1"),
    param("act", "categorical", list=["relu", "tanh"]),
    param("batch", "discrete", list=["16", "32.0"]),
    param("units", "int", min="8", max="64", step="24", distribution="logUniform"),
]
GRID_POINTS = set(itertools.product(["1", "2", "3"], ["0.1", "0.2", "0.3"], ["relu", "tanh"], ["16", "32.0"],
                                    ["8", "32", "56"]))


@pytest.mark.parametrize("parallel", [1, 4])
def test_grid_enumerates_every_point_once_then_is_exhausted(parallel: int) -> None:
    suggestions = search(algorithm("grid"), GRID, trials=1000, parallel=parallel)
    points = [tuple(s[p.name] for p in GRID) for s in suggestions]
    assert len(points) == len(GRID_POINTS) == 108
    assert set(points) == GRID_POINTS


def test_grid_refuses_a_double_without_step_and_normal_distributions() -> None:
    with pytest.raises(ValueError, match=r"^spec\.parameters\[1\]\.feasibleSpace\.step: grid needs a step .*'lr'"):
        make_sampler(algorithm("grid"), [GRID[0], param("lr", "double", min="0", max="1")])
    with pytest.raises(ValueError, match=r"^spec\.parameters\[0\]\.feasibleSpace\.distribution: grid does not"):
        make_sampler(algorithm("grid"), [param("x", "double", min="0", max="1", step="0.5", distribution="normal")])
    with pytest.raises(ValueError, match=r"^spec\.parameters: the grid has 10000000001 points"):
        make_sampler(algorithm("grid"), [param("x", "int", min="0", max="10000000000")])


# -- seeds ---------------------------------------------------------------------------------------------------
SEEDED = [
    param("lr", "double", min="0.001", max="1", distribution="logUniform"),
    param("layers", "int", min="1", max="8"),
    param("act", "categorical", list=["relu", "tanh", "gelu"]),
]


@pytest.mark.parametrize("name", [a for a in ALGORITHMS if a != "grid"])
def test_a_seed_makes_the_search_repeatable(name: str) -> None:
    extra = {"n_initial_points": 3} if name == "bayesianoptimization" else {"n_startup_trials": 3} if "tpe" in name \
        else {}
    trials = 5 if name == "bayesianoptimization" else 8  # past the startup trials: the model's own suggestions
    first = search(algorithm(name, random_state=7, **extra), SEEDED, trials=trials, objective=numeric_sum)
    again = search(algorithm(name, random_state=7, **extra), SEEDED, trials=trials, objective=numeric_sum)
    other = search(algorithm(name, random_state=8, **extra), SEEDED, trials=trials, objective=numeric_sum)
    assert first == again
    assert first != other


def test_grid_seed_only_orders_the_grid() -> None:
    one = search(algorithm("grid", random_state=1), GRID, trials=1000)
    two = search(algorithm("grid", random_state=2), GRID, trials=1000)
    assert one != two and sorted(map(str, one)) == sorted(map(str, two))


# -- the feasible space --------------------------------------------------------------------------------------
SPACE = [
    param("i_step", "int", min="-3", max="12", step="4"),
    param("i_log", "int", min="1", max="1000", distribution="logUniform"),
    param("i_log_step", "int", min="5", max="100", step="5", distribution="logUniform"),
    param("i_normal", "int", min="0", max="20", distribution="normal"),
    param("d_uniform", "double", min="-1", max="1"),
    param("d_step", "double", min="0.1", max="1.0", step="0.2"),
    param("d_log", "double", min="0.0001", max="0.1", distribution="logUniform"),
    param("d_normal", "double", min="0", max="60", distribution="normal"),
    param("d_lognormal", "double", min="0.01", max="1", step="0.01", distribution="logNormal"),
    param("act", "categorical", list=["relu", "tanh"]),
    param("batch", "discrete", list=["16", "32", "6.4e1"]),
]
# grid: the parameters with a finite grid (2400 points), i_log left out so that it stays small
GRID_SPACE = [p for p in SPACE if p.feasibleSpace.distribution not in ("normal", "logNormal")
              and (p.parameterType != "double" or p.feasibleSpace.step) and p.name != "i_log"]


def check(parameter: ParameterSpec, value: str) -> None:
    space = parameter.feasibleSpace
    if parameter.parameterType in ("categorical", "discrete"):
        assert value in space.list, (parameter.name, value)
        return
    number = Decimal(value)
    if parameter.parameterType == "int":
        assert value == str(int(value)), (parameter.name, value)
    assert Decimal(space.min) <= number <= Decimal(space.max), (parameter.name, value)
    if space.step:
        assert (number - Decimal(space.min)) % Decimal(space.step) == 0, (parameter.name, value)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_every_suggestion_respects_the_feasible_space(name: str) -> None:
    parameters = GRID_SPACE if name == "grid" else SPACE
    # optuna's Gaussian process takes ~2 s a trial over these 11 mixed parameters: 5 random + 3 GP draws for it
    draws = 8 if name == "bayesianoptimization" else 60
    spec = algorithm(name, random_state=3, **({"n_initial_points": 5} if name == "bayesianoptimization" else {}))
    suggestions = search(spec, parameters, trials=draws, objective=numeric_sum, parallel=3)
    assert len(suggestions) == draws
    for assignments in suggestions:
        assert list(assignments) == [p.name for p in parameters]
        for parameter in parameters:
            check(parameter, assignments[parameter.name])


def test_log_and_normal_distributions_shape_the_draws() -> None:
    suggestions = search(algorithm("random", random_state=5), SPACE, trials=400)
    d_log = [float(s["d_log"]) for s in suggestions]
    # log-uniform on [1e-4, 1e-1]: two thirds below 1e-2 (a uniform draw: 9 %)
    assert 0.55 < sum(v < 0.01 for v in d_log) / len(d_log) < 0.8
    d_normal = [float(s["d_normal"]) for s in suggestions]
    # normal with mu 30, sigma 10: about 68 % within one sigma (a uniform draw: 33 %)
    assert 0.58 < sum(abs(v - 30) < 10 for v in d_normal) / len(d_normal) < 0.78
    assert 25 < sum(d_normal) / len(d_normal) < 35
    lognormal = [math.log(float(s["d_lognormal"])) for s in suggestions]
    # lognormal: the logarithm is centred between log(0.01) and log(1), i.e. the value around 0.1
    assert abs(sum(lognormal) / len(lognormal) - math.log(0.1)) < 0.3


def test_double_steps_print_as_written() -> None:
    suggestions = search(algorithm("random", random_state=1), [param("lr", "double", min="0.1", max="0.7",
                                                                     step="0.1")], trials=60)
    assert {s["lr"] for s in suggestions} == {"0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"}


# -- early stopping -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("settings", "min_trials", "start_step"), [
    ({"min_trials_required": 2, "start_step": 3}, 2, 3),
    ({}, 3, 4),  # Katib's defaults
])
def test_medianstop_prunes_a_clearly_worse_trial_after_start_step_values(
        settings: dict[str, int], min_trials: int, start_step: int) -> None:
    spec = algorithm("random", random_state=0)
    parameters = [param("lr", "double", min="0", max="1")]
    study = optuna.create_study(direction="maximize", sampler=make_sampler(spec, parameters),
                                pruner=make_pruner(spec, medianstop(**settings)))

    def run_trial(value: float) -> int | None:
        """The number of values the trial reported when it was stopped, None when it ran to the end."""
        trial = study.ask()
        suggest(trial, parameters)
        for step in range(8):
            trial.report(value, step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return step + 1
        study.tell(trial, value)
        return None

    for _ in range(min_trials - 1):
        assert run_trial(0.9) is None
    assert run_trial(0.1) is None  # fewer than min_trials_required trials completed: nothing is stopped
    assert run_trial(0.9) is None
    assert run_trial(0.1) == start_step  # stopped at its start_step-th value
    assert run_trial(0.9) is None  # a trial as good as the others runs to the end


def test_no_early_stopping_prunes_nothing() -> None:
    assert isinstance(make_pruner(algorithm("tpe"), None), optuna.pruners.NopPruner)


def test_hyperband_stops_some_trials_early() -> None:
    spec = algorithm("hyperband", random_state=0, eta=3, r_l=9, resource_name="epochs")
    parameters = [param("quality", "double", min="0", max="1"), param("epochs", "int", min="1", max="9")]
    study = optuna.create_study(direction="maximize", sampler=make_sampler(spec, parameters),
                                pruner=make_pruner(spec, None))
    steps_used: dict[str, list[int]] = {"pruned": [], "complete": []}
    for _ in range(40):
        trial = study.ask()
        assignments = suggest(trial, parameters)
        assert assignments["epochs"] == "9"  # every trial gets the full budget r_l; the pruner cuts it short
        quality, state = float(assignments["quality"]), "complete"
        for step in range(int(assignments["epochs"])):
            trial.report(quality * (step + 1) / 9, step)
            if trial.should_prune():
                state = "pruned"
                break
        steps_used[state].append(step + 1)
        if state == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, quality)
    assert steps_used["pruned"], "hyperband pruned nothing"
    assert max(steps_used["pruned"]) < 9 == min(steps_used["complete"])


# -- bad settings --------------------------------------------------------------------------------------------
BAD_SETTINGS = [
    (algorithm("random", seed="1"), r"\.seed: unknown setting for random \(known: random_state\)"),
    (algorithm("random", random_state="x"), r"\.random_state: must be an integer >= 0 \(got 'x'\)"),
    (algorithm("grid", random_state="-1"), r"\.random_state: must be an integer >= 0 \(got '-1'\)"),
    (algorithm("tpe", gamma="1.5"), r"\.gamma: must be a number greater than 0 and at most 1 \(got '1.5'\)"),
    (algorithm("tpe", n_EI_candidates="0"), r"\.n_EI_candidates: must be an integer >= 1"),
    (algorithm("multivariate-tpe", n_startup_trials="2.5"), r"\.n_startup_trials: must be an integer >= 0"),
    (algorithm("tpe", prior_weight="0"), r"\.prior_weight: must be a number greater than 0 \(got '0'\)"),
    (algorithm("cmaes", sigma="-1"), r"\.sigma: must be a number greater than 0"),
    (algorithm("cmaes", restart_strategy="restart"), r"\.restart_strategy: must be one of none, ipop, bipop"),
    (algorithm("sobol", n_startup_trials="3"), r"\.n_startup_trials: unknown setting for sobol"),
    (algorithm("bayesianoptimization", base_estimator="RF"), r"\.base_estimator: must be one of GP \(got 'RF'\)"),
    (algorithm("bayesianoptimization", acq_func="UCB"), r"\.acq_func: must be one of gp_hedge, EI"),
    (algorithm("bayesianoptimization", n_initial_points="0"), r"\.n_initial_points: must be an integer >= 1"),
    (algorithm("hyperband", eta="1"), r"\.eta: must be an integer >= 2 \(got '1'\)"),
    (algorithm("hyperband", r_l="0"), r"\.r_l: must be an integer >= 1"),
    (algorithm("hyperband", resource_name="steps"), r"\.resource_name: 'steps' is not an experiment parameter"),
    (algorithm("hyperband", resource_name="act"), r"\.resource_name: parameter 'act' must be an int or double"),
    (algorithm("hyperband", resource_name="epochs", r_l="50"), r"\.r_l: 50 is outside parameter 'epochs' \[1, 20\]"),
]
SETTINGS_PARAMETERS = [param("epochs", "int", min="1", max="20"), param("act", "categorical", list=["a", "b"])]


@pytest.mark.parametrize(("spec", "message"), BAD_SETTINGS,
                         ids=[f"{s.algorithmName}-{s.algorithmSettings[-1].name}" for s, _ in BAD_SETTINGS])
def test_a_bad_setting_is_one_line_naming_it(spec: AlgorithmSpec, message: str) -> None:
    with pytest.raises(ValueError, match=f"^spec\\.algorithm\\.algorithmSettings{message}") as caught:
        make_sampler(spec, SETTINGS_PARAMETERS)
        make_pruner(spec, None)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("settings", "message"), [
    ({"start_step": "0"}, r"\.start_step: must be an integer >= 1 \(got '0'\)"),
    ({"min_trials_required": "x"}, r"\.min_trials_required: must be an integer >= 1 \(got 'x'\)"),
    ({"min_trials": "3"}, r"\.min_trials: unknown setting for medianstop \(known: min_trials_required, start_step\)"),
], ids=["start_step", "min_trials_required", "unknown"])
def test_a_bad_medianstop_setting_is_one_line_naming_it(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=f"^spec\\.earlyStopping\\.algorithmSettings{message}"):
        make_pruner(algorithm("random"), medianstop(**settings))


def test_other_refusals_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"^spec\.earlyStopping: hyperband stops trials itself"):
        make_pruner(algorithm("hyperband"), medianstop())
    unknown = AlgorithmSpec.model_construct(algorithmName="anneal", algorithmSettings=[])
    with pytest.raises(ValueError, match=r"^spec\.algorithm\.algorithmName: unknown algorithm 'anneal' \(known: "):
        make_sampler(unknown, SETTINGS_PARAMETERS)
    with pytest.raises(ValueError, match=r"^spec\.parameters\[0\]\.feasibleSpace\.min: must be greater than 0 for a "
                                         r"logNormal distribution \(got '0'\)"):
        make_sampler(algorithm("tpe"), [param("lr", "double", min="0", max="1", distribution="logNormal")])
    with pytest.raises(ValueError, match=r"\.random_state: given more than once"):
        make_sampler(AlgorithmSpec.model_validate({"algorithmName": "random", "algorithmSettings": [
            {"name": "random_state", "value": "1"}, {"name": "random_state", "value": "2"}]}), SETTINGS_PARAMETERS)
