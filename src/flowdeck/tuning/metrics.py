"""Trial metrics: read from a trial's output or metrics file as Katib's collectors read them, or pushed by the trial.

Katib parses metrics in a sidecar (T:488-510 of shared/reference/training.md); here the controller parses the
trial's log (StdOut), its metrics file (File, TEXT or JSON) or the file `report_metrics` appends to (Push):

- TEXT: only lines that contain a configured metric name are read; every match of every filter on such a line
  whose first group is a configured name gives an observation (`DEFAULT_FILTER` reads `loss=0.3`, `accuracy=.98`,
  `Score=-7.53e-05`).
- JSON: one JSON object per line; Katib reads values given as strings, flowdeck numbers as well.

The n-th value of a metric is its step n (from 0): what early stopping compares across trials. Values that are
not finite numbers (nan, inf) are dropped. This module imports neither optuna nor numpy.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

#: Katib's default StdOut/File TEXT filter (T:495-496): group 1 the metric name, group 2 its value.
DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
#: The environment variable naming the file `report_metrics` appends to; the controller sets it for each trial.
METRICS_FILE_ENV = "FLOWDECK_METRICS_FILE"


@dataclass(frozen=True)
class Observation:
    """One reported value of a metric; `step` is its order among that metric's values, from 0."""

    name: str
    value: float
    step: int


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_text(text: str, names: Sequence[str], filters: Sequence[str] = (DEFAULT_FILTER,)) -> list[Observation]:
    """The observations of metrics `names` in text output, read with `filters` (regexes of 2 groups: name, value)."""
    wanted = set(names)
    patterns = [re.compile(pattern) for pattern in filters or (DEFAULT_FILTER,)]
    steps: Counter[str] = Counter()
    observations = []
    for line in text.splitlines():
        if not any(name in line for name in wanted):
            continue
        for pattern in patterns:
            for match in pattern.finditer(line):
                name, value = match.group(1).strip(), _finite(match.group(2).strip())
                if name in wanted and value is not None:
                    observations.append(Observation(name, value, steps[name]))
                    steps[name] += 1
    return observations


def parse_json_lines(text: str, names: Sequence[str]) -> list[Observation]:
    """The observations of metrics `names` in JSON lines (`{"loss": "0.3"}` or `{"loss": 0.3}`); others are skipped."""
    steps: Counter[str] = Counter()
    observations = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        for name in names:
            given = record.get(name)
            value = None if isinstance(given, bool) else _finite(given)
            if value is not None:
                observations.append(Observation(name, value, steps[name]))
                steps[name] += 1
    return observations


def summarize(observations: Sequence[Observation], name: str,
              strategy: Literal["min", "max", "latest"]) -> float | None:
    """The value of metric `name` under a metric strategy (T:428): its min, max or latest value; None if never seen."""
    values = [observation.value for observation in observations if observation.name == name]
    if not values:
        return None
    if strategy == "min":
        return min(values)
    if strategy == "max":
        return max(values)
    if strategy == "latest":
        return values[-1]
    raise ValueError(f"unknown metric strategy {strategy!r} (known: min, max, latest)")


def report_metrics(metrics: dict[str, float | int | str]) -> None:
    """Report metrics from inside a trial (the Push collector), as Katib's `katib.report_metrics` does.

    Each call is one observation of every metric given: `report_metrics({"loss": 0.3, "accuracy": 0.9})` once per
    epoch gives early stopping its intermediate values. Values must be numbers or strings that parse as numbers.
    """
    path = os.environ.get(METRICS_FILE_ENV)
    if not path:
        raise RuntimeError(f"report_metrics works only inside a flowdeck trial ({METRICS_FILE_ENV} is not set)")
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError("report_metrics needs a non-empty dict of metric names to values")
    record: dict[str, str] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"metric names must be non-empty strings (got {name!r})")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"metric {name!r} must be a number (got {value!r})")
        try:
            float(value)
        except ValueError:
            raise ValueError(f"metric {name!r} must be a number (got {value!r})") from None
        record[name] = str(value)
    record.setdefault("timestamp", datetime.now(timezone.utc).isoformat())
    line = (json.dumps(record) + "\n").encode()
    # one write of one line with O_APPEND: lines of concurrent processes (ranks of a job) never interleave
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)
