"""Katib's search algorithms and early stopping, as optuna samplers and pruners.

Katib runs one suggestion service per algorithm (hyperopt, optuna, goptuna, skopt, its own hyperband;
shared/reference/training.md §4.3). Locally every algorithm is an optuna sampler, and early stopping an
optuna pruner, made from the Experiment's `algorithm`/`earlyStopping` with Katib's setting names, whose
string values are converted and checked here: a bad or unknown setting is a ValueError of one line that
names it, e.g. `spec.algorithm.algorithmSettings.random_state: must be an integer >= 0 (got 'x')`.

Algorithm -> optuna (settings):
- random -> RandomSampler (random_state).
- grid -> GridSampler over min..max by step (int: step or 1; double: step required) and the lists (random_state).
- tpe, multivariate-tpe -> TPESampler(multivariate=...) (random_state, gamma, prior_weight, n_startup_trials,
  n_ei_candidates, also spelled n_EI_candidates).
- cmaes -> CmaEsSampler(sigma0=sigma) (random_state, sigma, restart_strategy).
- sobol -> QMCSampler(qmc_type="sobol"), scrambled when seeded (random_state).
- bayesianoptimization -> GPSampler(n_startup_trials=n_initial_points), TPESampler where torch or scipy is
  missing (random_state, n_initial_points, base_estimator: GP only, acq_func, acq_optimizer).
- hyperband -> TPESampler, with HyperbandPruner(min_resource=1, max_resource=r_l, reduction_factor=eta) as the
  pruner (random_state, resource_name, eta, r_l).
- earlyStopping medianstop -> MedianPruner(n_startup_trials=n_min_trials=min_trials_required), pruning from the
  start_step-th reported value on (min_trials_required: default 3, start_step: default 4).
- no early stopping -> NopPruner.

Where optuna differs from Katib's services:
- `gamma` is hyperopt's: the number of "good" trials is ceil(gamma * sqrt(n)), at most 25.
- `restart_strategy` ipop/bipop is accepted, but optuna >= 4.4 no longer restarts CMA-ES (a warning is logged);
  `acq_func`/`acq_optimizer` are accepted and checked, but optuna's GP uses its own acquisition (log EI).
- hyperband stops trials from their intermediate values instead of running brackets of shorter trials; the
  parameter named by `resource_name` is fixed to `r_l` (or its max), the budget each trial may use.
- medianstop compares with optuna's median of completed trials at the same step, where Katib takes the mean of
  their averages.
- `normal`/`logNormal` (which optuna has no distribution for) follow hyperopt's convention in Katib:
  mu = (min+max)/2, sigma = (max-min)/6 (of the logarithms for logNormal). The sampler draws a quantile
  q in [0, 1] (what optuna records as the parameter), the value is mu + sigma * Phi^-1(q) clipped into
  [min, max], then put on the step grid. grid refuses them. logUniform with a step, which optuna
  cannot sample, is sampled log-uniformly and put on the step grid, like hyperopt's `qloguniform`.

A seeded sampler made again for a resumed study starts its random sequence again: call
`study.sampler.reseed_rng()` when the study already has trials, or the first suggestions repeat (grid and sobol
keep their order either way). grid's sampler does not call `study.stop()` when the grid is done (which fails
outside `study.optimize`); ask `exhausted` before `study.ask()`.

`suggest` returns Katib's assignments: strings, with doubles on a step grid computed in decimal (`0.3`,
not `0.30000000000000004`) and categorical/discrete values exactly as listed.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from functools import partial
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, TypeVar

import optuna
from optuna.exceptions import ExperimentalWarning

if TYPE_CHECKING:
    from flowdeck.tuning.specs import AlgorithmSetting, AlgorithmSpec, EarlyStoppingSpec, ParameterSpec

_logger = logging.getLogger(__name__)

_TPE = frozenset({"random_state", "gamma", "prior_weight", "n_ei_candidates", "n_startup_trials"})

#: The settings each algorithm accepts (Katib's names; `random_state` everywhere, for reproducible runs).
SETTINGS: dict[str, frozenset[str]] = {
    "random": frozenset({"random_state"}),
    "grid": frozenset({"random_state"}),
    "tpe": _TPE,
    "multivariate-tpe": _TPE,
    "cmaes": frozenset({"random_state", "sigma", "restart_strategy"}),
    "sobol": frozenset({"random_state"}),
    "bayesianoptimization": frozenset({"random_state", "n_initial_points", "base_estimator", "acq_func",
                                       "acq_optimizer"}),
    "hyperband": frozenset({"random_state", "resource_name", "eta", "r_l"}),
}
MEDIANSTOP_SETTINGS = frozenset({"min_trials_required", "start_step"})

#: Other spellings Katib's services accept for a setting (hyperopt's tpe spells it n_EI_candidates).
_ALIASES = {"n_EI_candidates": "n_ei_candidates"}

#: More grid points than this is a mistake (a step far too small), not a search.
GRID_LIMIT = 1_000_000

_ALGORITHM_FIELD = "spec.algorithm.algorithmSettings"
_EARLY_STOPPING_FIELD = "spec.earlyStopping.algorithmSettings"

_Sampler = TypeVar("_Sampler")


class _Settings:
    """An algorithm's settings by name, converted on request; errors name `<field>.<setting>`."""

    def __init__(self, items: Iterable[AlgorithmSetting], field: str, known: frozenset[str], algorithm: str) -> None:
        self._values: dict[str, str] = {}
        self._fields: dict[str, str] = {}  # name -> `<field>.<name as written>`
        for item in items:
            name = _ALIASES.get(item.name, item.name)
            if name not in known:
                raise ValueError(f"{field}.{item.name}: unknown setting for {algorithm} "
                                 f"(known: {', '.join(sorted(known))})")
            if name in self._values:
                raise ValueError(f"{field}.{item.name}: given more than once")
            self._values[name] = item.value
            self._fields[name] = f"{field}.{item.name}"

    def field(self, name: str) -> str:
        return self._fields[name]

    def text(self, name: str) -> str | None:
        return self._values.get(name)

    def integer(self, name: str, minimum: int) -> int | None:
        text = self._values.get(name)
        if text is None:
            return None
        number = _decimal(text)
        if number is None or number != number.to_integral_value() or number < minimum:
            raise ValueError(f"{self.field(name)}: must be an integer >= {minimum} (got {text!r})")
        return int(number)

    def number(self, name: str, low: float, high: float = math.inf) -> float | None:
        """A float in (low, high]."""
        text = self._values.get(name)
        if text is None:
            return None
        number = _decimal(text)
        if number is None or not low < number <= high:
            bound = f"greater than {low:g}" + ("" if high == math.inf else f" and at most {high:g}")
            raise ValueError(f"{self.field(name)}: must be a number {bound} (got {text!r})")
        return float(number)

    def choice(self, name: str, choices: Sequence[str], fold_case: bool = False) -> str | None:
        text = self._values.get(name)
        if text is None:
            return None
        found = [choice for choice in choices if choice == text or (fold_case and choice.lower() == text.lower())]
        if not found:
            raise ValueError(f"{self.field(name)}: must be one of {', '.join(choices)} (got {text!r})")
        return found[0]


def make_sampler(algorithm: AlgorithmSpec, parameters: Sequence[ParameterSpec]) -> optuna.samplers.BaseSampler:
    """The optuna sampler for the experiment's search algorithm (see the module's table)."""
    name = algorithm.algorithmName
    if name not in SETTINGS:
        raise ValueError(f"spec.algorithm.algorithmName: unknown algorithm {name!r} (known: {', '.join(SETTINGS)})")
    settings = _Settings(algorithm.algorithmSettings, _ALGORITHM_FIELD, SETTINGS[name], name)
    for index, parameter in enumerate(parameters):
        _check_parameter(parameter, f"spec.parameters[{index}]")
    seed = settings.integer("random_state", minimum=0)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return _GridSampler(_grid(parameters), seed=seed)
    if name in ("tpe", "multivariate-tpe"):
        return _tpe(settings, seed, multivariate=name == "multivariate-tpe")
    if name == "cmaes":
        sigma = settings.number("sigma", low=0)
        strategy = settings.choice("restart_strategy", ("none", "ipop", "bipop"))
        if strategy not in (None, "none"):
            _logger.warning("cmaes: restart_strategy %r is not available (optuna >= 4.4 runs CMA-ES without "
                            "restarts); continuing without restarts", strategy)
        return _quiet(optuna.samplers.CmaEsSampler, seed=seed, sigma0=sigma, warn_independent_sampling=False)
    if name == "sobol":
        return _quiet(optuna.samplers.QMCSampler, qmc_type="sobol", scramble=seed is not None, seed=seed,
                      warn_independent_sampling=False)
    if name == "bayesianoptimization":
        return _bayesian(settings, seed)
    return _hyperband_sampler(settings, seed, parameters)


def make_pruner(algorithm: AlgorithmSpec, early_stopping: EarlyStoppingSpec | None) -> optuna.pruners.BasePruner:
    """The pruner that stops trials early: hyperband's, medianstop's, or none."""
    if early_stopping is not None:
        if early_stopping.algorithmName != "medianstop":
            raise ValueError(f"spec.earlyStopping.algorithmName: unknown early stopping algorithm "
                             f"{early_stopping.algorithmName!r} (known: medianstop)")
        if algorithm.algorithmName == "hyperband":
            raise ValueError("spec.earlyStopping: hyperband stops trials itself; it cannot be combined with medianstop")
        settings = _Settings(early_stopping.algorithmSettings, _EARLY_STOPPING_FIELD, MEDIANSTOP_SETTINGS,
                             "medianstop")
        min_trials = settings.integer("min_trials_required", minimum=1) or 3
        start_step = settings.integer("start_step", minimum=1) or 4
        # steps count from 0, so the start_step-th reported value is step start_step - 1
        return optuna.pruners.MedianPruner(n_startup_trials=min_trials, n_warmup_steps=start_step - 1,
                                           n_min_trials=min_trials)
    if algorithm.algorithmName == "hyperband":
        settings = _Settings(algorithm.algorithmSettings, _ALGORITHM_FIELD, SETTINGS["hyperband"], "hyperband")
        eta, max_resource = _hyperband_settings(settings)
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_resource or "auto",
                                              reduction_factor=eta)
    return optuna.pruners.NopPruner()


def suggest(trial: optuna.Trial, parameters: Sequence[ParameterSpec]) -> dict[str, str]:
    """The trial's parameter assignments, as Katib's strings, drawn from its study's sampler."""
    return {parameter.name: _suggest(trial, parameter) for parameter in parameters}


def exhausted(study: optuna.Study, parameters: Sequence[ParameterSpec]) -> bool:
    """Whether every point of a grid search has been handed out to a trial (never true for other searches)."""
    handed_out = {trial.system_attrs["grid_id"] for trial in study.get_trials(deepcopy=False)
                  if "grid_id" in trial.system_attrs}
    return bool(handed_out) and len(handed_out) >= math.prod(len(values) for values in _grid(parameters).values())


# -- samplers ------------------------------------------------------------------------------------------------
def _quiet(factory: Callable[..., _Sampler], **kwargs: Any) -> _Sampler:
    """Build an optuna object without its notes on its own API (deprecated or experimental arguments)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", ExperimentalWarning)
        return factory(**kwargs)


class _GridSampler(optuna.samplers.GridSampler):
    """optuna's GridSampler for ask-and-tell: its `after_trial` calls `study.stop()` once the grid is done, which
    raises RuntimeError outside `study.optimize` (the final `study.tell` would fail); the controller asks
    `exhausted` instead."""

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: optuna.trial.TrialState,
                    values: Sequence[float] | None) -> None:
        return None


def _hyperopt_gamma(gamma: float, n: int) -> int:
    """hyperopt's split of the trials into good and bad (optuna's `hyperopt_default_gamma` for any gamma)."""
    return min(math.ceil(gamma * n**0.5), 25)


def _tpe(settings: _Settings, seed: int | None, multivariate: bool) -> optuna.samplers.BaseSampler:
    kwargs: dict[str, Any] = {"seed": seed, "multivariate": multivariate, "warn_independent_sampling": False}
    gamma = settings.number("gamma", low=0, high=1)
    if gamma is not None:
        kwargs["gamma"] = partial(_hyperopt_gamma, gamma)
    prior_weight = settings.number("prior_weight", low=0)
    if prior_weight is not None:
        kwargs["prior_weight"] = prior_weight
    candidates = settings.integer("n_ei_candidates", minimum=1)
    if candidates is not None:
        kwargs["n_ei_candidates"] = candidates
    startup = settings.integer("n_startup_trials", minimum=0)
    if startup is not None:
        kwargs["n_startup_trials"] = startup
    return _quiet(optuna.samplers.TPESampler, **kwargs)


def _bayesian(settings: _Settings, seed: int | None) -> optuna.samplers.BaseSampler:
    # skopt's names (Katib's bayesianoptimization service); only the Gaussian process exists in optuna
    settings.choice("base_estimator", ("GP",), fold_case=True)
    settings.choice("acq_func", ("gp_hedge", "EI", "PI", "LCB", "EIps", "PIps"))
    settings.choice("acq_optimizer", ("auto", "sampling", "lbfgs"))
    startup = settings.integer("n_initial_points", minimum=1) or 10  # skopt's default
    if all(importlib.util.find_spec(module) is not None for module in ("torch", "scipy")):
        return _quiet(optuna.samplers.GPSampler, seed=seed, n_startup_trials=startup,
                      warn_independent_sampling=False)
    _logger.warning("bayesianoptimization: optuna's GPSampler needs torch and scipy, which are not installed; "
                    "using TPE instead")
    return _quiet(optuna.samplers.TPESampler, seed=seed, n_startup_trials=startup, warn_independent_sampling=False)


def _hyperband_settings(settings: _Settings) -> tuple[int, int | None]:
    """(eta, r_l): optuna's reduction factor must be an integer >= 2."""
    eta = settings.integer("eta", minimum=2) or 3
    return eta, settings.integer("r_l", minimum=1)


def _hyperband_sampler(settings: _Settings, seed: int | None,
                       parameters: Sequence[ParameterSpec]) -> optuna.samplers.BaseSampler:
    _eta, r_l = _hyperband_settings(settings)
    sampler = _quiet(optuna.samplers.TPESampler, seed=seed, warn_independent_sampling=False)
    resource = settings.text("resource_name")
    if resource is None:
        return sampler
    field = settings.field("resource_name")
    found = [parameter for parameter in parameters if parameter.name == resource]
    if not found:
        raise ValueError(f"{field}: {resource!r} is not an experiment parameter")
    parameter = found[0]
    space = parameter.feasibleSpace
    if parameter.parameterType not in ("int", "double") or space.distribution in ("normal", "logNormal"):
        raise ValueError(f"{field}: parameter {resource!r} must be an int or double with a uniform or logUniform "
                         "distribution")
    low, high = _number(space.min, ""), _number(space.max, "")
    budget = Decimal(r_l) if r_l is not None else high
    if not low <= budget <= high:
        raise ValueError(f"{settings.field('r_l')}: {r_l} is outside parameter {resource!r} [{space.min}, {space.max}]")
    value = int(budget) if parameter.parameterType == "int" else float(budget)
    return _quiet(optuna.samplers.PartialFixedSampler, fixed_params={resource: value}, base_sampler=sampler)


# -- search space --------------------------------------------------------------------------------------------
def _decimal(text: str | None) -> Decimal | None:
    try:
        number = Decimal(str(text).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _number(text: str | None, field: str) -> Decimal:
    number = _decimal(text)
    if number is None:
        raise ValueError(f"{field}: must be a number (got {text!r})")
    return number


def _range(parameter: ParameterSpec, field: str) -> tuple[Decimal, Decimal, Decimal | None]:
    """(min, max, step) of an int or double parameter; int steps default to 1."""
    space = parameter.feasibleSpace
    low = _number(space.min, f"{field}.feasibleSpace.min")
    high = _number(space.max, f"{field}.feasibleSpace.max")
    step = None if space.step is None else _number(space.step, f"{field}.feasibleSpace.step")
    if parameter.parameterType == "int" and step is None:
        step = Decimal(1)
    return low, high, step


def _check_parameter(parameter: ParameterSpec, field: str) -> None:
    """What optuna needs beyond the spec's own checks."""
    space = parameter.feasibleSpace
    if parameter.parameterType in ("categorical", "discrete"):
        if not space.list:
            raise ValueError(f"{field}.feasibleSpace.list: required for {parameter.parameterType} parameters")
        return
    low, high, step = _range(parameter, field)
    if low > high:
        raise ValueError(f"{field}.feasibleSpace: min ({space.min}) is greater than max ({space.max})")
    if step is not None and step <= 0:
        raise ValueError(f"{field}.feasibleSpace.step: must be greater than 0 (got {space.step!r})")
    if space.distribution in ("logUniform", "logNormal") and low <= 0:
        raise ValueError(f"{field}.feasibleSpace.min: must be greater than 0 for a {space.distribution} "
                         f"distribution (got {space.min!r})")


def _grid(parameters: Sequence[ParameterSpec]) -> dict[str, list[Any]]:
    """Every value of every parameter: int/double from min to max by step, categorical/discrete as listed."""
    axes: list[tuple[ParameterSpec, Decimal, Decimal, int]] = []  # (parameter, min, step, count); lists: count only
    for index, parameter in enumerate(parameters):
        field = f"spec.parameters[{index}]"
        if parameter.parameterType in ("categorical", "discrete"):
            axes.append((parameter, Decimal(0), Decimal(0), len(parameter.feasibleSpace.list or ())))
            continue
        if parameter.feasibleSpace.distribution in ("normal", "logNormal"):
            raise ValueError(f"{field}.feasibleSpace.distribution: grid does not support "
                             f"{parameter.feasibleSpace.distribution}")
        low, high, step = _range(parameter, field)
        if step is None:
            raise ValueError(f"{field}.feasibleSpace.step: grid needs a step for double parameter {parameter.name!r}")
        axes.append((parameter, low, step, int((high - low) // step) + 1))
    size = math.prod(count for *_, count in axes)
    if size > GRID_LIMIT:
        raise ValueError(f"spec.parameters: the grid has {size} points, more than {GRID_LIMIT}")
    grid: dict[str, list[Any]] = {}
    for parameter, low, step, count in axes:
        if parameter.parameterType in ("categorical", "discrete"):
            grid[parameter.name] = list(parameter.feasibleSpace.list or ())
        else:
            convert = int if parameter.parameterType == "int" else float
            grid[parameter.name] = [convert(low + i * step) for i in range(count)]
    return grid


def _suggest(trial: optuna.Trial, parameter: ParameterSpec) -> str:
    space, name, kind = parameter.feasibleSpace, parameter.name, parameter.parameterType
    if kind in ("categorical", "discrete"):
        return str(trial.suggest_categorical(name, list(space.list or ())))
    low, high, step = _range(parameter, f"parameter {name!r}")
    top = high if step is None else low + ((high - low) // step) * step  # the largest value on the step grid
    distribution = space.distribution or "uniform"
    if distribution in ("normal", "logNormal"):
        quantile = trial.suggest_float(name, 0.0, 1.0)
        value = _normal(quantile, float(low), float(high), log=distribution == "logNormal")
    elif kind == "int":
        int_step = int(step or 1)
        if distribution == "logUniform" and int_step != 1:
            value = trial.suggest_int(name, int(low), int(top), log=True)  # optuna: log excludes step
        else:
            value = trial.suggest_int(name, int(low), int(top), step=int_step, log=distribution == "logUniform")
    elif step is None:
        value = trial.suggest_float(name, float(low), float(high), log=distribution == "logUniform")
    elif distribution == "logUniform":
        value = trial.suggest_float(name, float(low), float(top), log=True)
    else:
        value = trial.suggest_float(name, float(low), float(top), step=float(step))
    if step is None:
        return repr(float(min(max(value, float(low)), float(high))))
    # on the step grid, computed in decimal so that doubles print as written (0.3, not 0.30000000000000004)
    index = min(max(round((value - float(low)) / float(step)), 0), int((top - low) / step))
    point = low + index * step
    return str(int(point)) if kind == "int" else repr(float(point))


def _normal(quantile: float, low: float, high: float, log: bool) -> float:
    """hyperopt's normal (or lognormal) for a [min, max] range in Katib: the value at `quantile`, clipped."""
    a, b = (math.log(low), math.log(high)) if log else (low, high)
    mu, sigma = (a + b) / 2, (b - a) / 6
    if sigma == 0:
        return low
    z = NormalDist().inv_cdf(min(max(quantile, 1e-12), 1 - 1e-12))
    value = mu + sigma * z
    return min(max(math.exp(value) if log else value, low), high)
