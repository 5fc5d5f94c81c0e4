"""Trial metrics: Katib's TEXT filters and JSON lines read as its collectors read them, summaries by metric
strategy, and `report_metrics` (Push) from inside a trial process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowdeck.tuning import report_metrics
from flowdeck.tuning.metrics import (
    DEFAULT_FILTER,
    METRICS_FILE_ENV,
    Observation,
    parse_json_lines,
    parse_text,
    summarize,
)


def pairs(observations: list[Observation]) -> list[tuple[str, float, int]]:
    return [(o.name, o.value, o.step) for o in observations]


def test_default_filter_reads_katibs_formats() -> None:
    text = "accuracy=0.98\nloss=.3\nScore=-7.53e-05\nlr = 1e-3\n"
    assert pairs(parse_text(text, ["accuracy", "loss", "Score", "lr"])) == [
        ("accuracy", 0.98, 0), ("loss", 0.3, 0), ("Score", -7.53e-05, 0), ("lr", 0.001, 0)]


def test_default_filter_reads_only_configured_names_in_order_of_steps() -> None:
    text = "\n".join([
        "starting training",
        "epoch 1: accuracy=0.5 loss=0.7",
        "epoch 2: accuracy=0.75 loss=0.4 val-accuracy=0.6",
        "lr=0.1 batch=64",  # no configured name on this line
        "epoch 3: accuracy=0.875",
    ])
    assert pairs(parse_text(text, ["accuracy", "loss"])) == [
        ("accuracy", 0.5, 0), ("loss", 0.7, 0), ("accuracy", 0.75, 1), ("loss", 0.4, 1), ("accuracy", 0.875, 2)]
    assert parse_text(text, ["f1"]) == []
    # a name followed by no number is not a value
    assert parse_text("accuracy=n/a\naccuracy=", ["accuracy"]) == []


def test_custom_filters_with_two_groups() -> None:
    text = "epoch 1 {accuracy: 0.5} {loss: 0.9}\nepoch 2 {accuracy: 0.6} {loss: 0.8}\nloss=0.1\n"
    custom = [r"\{(\w+):\s*([+-]?\d*\.?\d+)\}"]
    assert pairs(parse_text(text, ["accuracy", "loss"], custom)) == [
        ("accuracy", 0.5, 0), ("loss", 0.9, 0), ("accuracy", 0.6, 1), ("loss", 0.8, 1)]
    # every filter is applied to every line; an empty list means Katib's default
    both = parse_text(text, ["loss"], [*custom, DEFAULT_FILTER])
    assert [o.value for o in both] == [0.9, 0.8, 0.1]
    assert pairs(parse_text(text, ["loss"], [])) == [("loss", 0.1, 0)]


def test_json_lines_with_string_and_number_values() -> None:
    text = "\n".join([
        json.dumps({"loss": "0.3", "accuracy": "0.8", "timestamp": "2026-11-29T12:00:00Z"}),  # Katib's form
        "not json",
        json.dumps(["loss", 1]),
        json.dumps({"loss": 0.2, "accuracy": 0.85}),
        json.dumps({"loss": "nan", "accuracy": True, "other": 1}),
        json.dumps({"accuracy": "oops"}),
        json.dumps({"accuracy": 9}),
    ])
    assert pairs(parse_json_lines(text, ["accuracy", "loss"])) == [
        ("accuracy", 0.8, 0), ("loss", 0.3, 0), ("accuracy", 0.85, 1), ("loss", 0.2, 1), ("accuracy", 9.0, 2)]


def test_summarize_by_strategy() -> None:
    observations = parse_text("loss=0.5\nloss=0.2\nloss=0.4\naccuracy=0.7", ["loss", "accuracy"])
    assert summarize(observations, "loss", "min") == 0.2
    assert summarize(observations, "loss", "max") == 0.5
    assert summarize(observations, "loss", "latest") == 0.4
    assert summarize(observations, "accuracy", "latest") == 0.7
    assert summarize(observations, "f1", "max") is None
    with pytest.raises(ValueError, match="unknown metric strategy 'mean'"):
        summarize(observations, "loss", "mean")  # type: ignore[arg-type]


TRIAL = """\
import flowdeck.tuning
for epoch in range(3):
    flowdeck.tuning.report_metrics({"loss": 1 / (epoch + 1), "accuracy": "0.%d" % (epoch + 5)})
"""


def test_report_metrics_in_a_trial_appends_json_lines(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    result = subprocess.run([sys.executable, "-c", TRIAL], capture_output=True, text=True,
                            env={**os.environ, METRICS_FILE_ENV: str(metrics)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # prints nothing: a trial's output stays its own
    lines = metrics.read_text().splitlines()
    assert len(lines) == 3
    assert {k: v for k, v in json.loads(lines[0]).items() if k != "timestamp"} == {"loss": "1.0", "accuracy": "0.5"}
    observations = parse_json_lines(metrics.read_text(), ["loss", "accuracy"])
    assert summarize(observations, "loss", "min") == pytest.approx(1 / 3)
    assert [o.step for o in observations if o.name == "accuracy"] == [0, 1, 2]


def test_report_metrics_outside_a_trial_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(METRICS_FILE_ENV, raising=False)
    with pytest.raises(RuntimeError) as caught:
        report_metrics({"loss": 0.1})
    assert str(caught.value) == "report_metrics works only inside a flowdeck trial (FLOWDECK_METRICS_FILE is not set)"


def test_report_metrics_refuses_values_that_are_not_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = tmp_path / "metrics.jsonl"
    monkeypatch.setenv(METRICS_FILE_ENV, str(metrics))
    with pytest.raises(ValueError, match="^metric 'loss' must be a number \\(got 'low'\\)$"):
        report_metrics({"loss": "low"})
    with pytest.raises(ValueError, match="^metric 'ok' must be a number \\(got True\\)$"):
        report_metrics({"ok": True})
    with pytest.raises(ValueError, match="non-empty dict"):
        report_metrics({})
    assert not metrics.exists()
    report_metrics({"loss": "0.25", "step": 3})
    assert pairs(parse_json_lines(metrics.read_text(), ["loss", "step"])) == [("loss", 0.25, 0), ("step", 3.0, 0)]
