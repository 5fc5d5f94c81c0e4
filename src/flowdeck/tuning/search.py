"""The search-space helpers of Katib's SDK (`katib.search`, T:522-523), for `tune(parameters={...})`.

Each returns one parameter of an Experiment's `spec.parameters` without its name (`tune` adds the dictionary key
as the name), values as strings as Katib stores them:

    parameters = {"lr": search.double(1e-4, 1e-1), "opt": search.categorical(["sgd", "adam"])}

`int` shadows the builtin on purpose, as in `katib.search`; import the module, not its names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _space(parameter_type: str, min: Any, max: Any, step: Any) -> dict[str, Any]:
    space = {"min": str(min), "max": str(max)}
    if step is not None:
        space["step"] = str(step)
    return {"parameterType": parameter_type, "feasibleSpace": space}


def double(min: float, max: float, step: float | None = None) -> dict[str, Any]:
    """A real-valued parameter in [min, max], on a grid of `step` when given."""
    return _space("double", min, max, step)


def int(min: int, max: int, step: int | None = None) -> dict[str, Any]:
    """An integer parameter in [min, max], every `step`-th integer when given."""
    return _space("int", min, max, step)


def categorical(list: Sequence[Any]) -> dict[str, Any]:
    """A parameter taking one of the values of `list` (kept as strings)."""
    return {"parameterType": "categorical", "feasibleSpace": {"list": [str(value) for value in list]}}
