"""KFP's own compiled test pipelines (../shared/kfp-compat) reach the state their manifest expects.

Every entry whose needs this machine can meet runs; the per-tier pass count is printed at the end of
the session. Exit handlers and `ignore_upstream_failure` tasks must actually run in failing pipelines.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from compat import COMPAT_DIR, SLOW_FILES, arguments_for, manifest, satisfiable

from flowdeck.pipelines.errors import PipelineError
from flowdeck.pipelines.spec import load_pipeline

if not (COMPAT_DIR / "manifest.yaml").exists():
    pytest.skip(f"the KFP compatibility set is not at {COMPAT_DIR}", allow_module_level=True)

MANIFEST = manifest()
ENTRIES = [e for e in MANIFEST["pipelines"] if satisfiable(e)]
RESULTS: Counter[tuple[str, bool]] = Counter()


def _params(entries: list[dict[str, Any]]) -> list[Any]:
    return [
        pytest.param(e, id=e["file"],
                     marks=[pytest.mark.slow, pytest.mark.timeout(900)] if e["file"] in SLOW_FILES else [])
        for e in entries
    ]


def _always_run_tasks(spec: dict[str, Any]) -> set[str]:
    """Names of tasks that must run even when their upstream failed (exit handlers and the like)."""
    names = set()
    for component in [spec["root"], *spec.get("components", {}).values()]:
        for name, task in ((component.get("dag") or {}).get("tasks") or {}).items():
            if (task.get("triggerPolicy") or {}).get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED":
                names.add(name)
    return names


@pytest.mark.parametrize("entry", _params(ENTRIES))
def test_compat_pipeline(entry: dict[str, Any], run, tmp_path: Path) -> None:
    arguments = arguments_for(entry)
    for name in entry.get("input_artifacts") or {}:
        path = tmp_path / f"{name}.txt"
        path.write_text(f"contents of {name}\n")
        arguments[name] = str(path)
    pipeline = load_pipeline(COMPAT_DIR / entry["file"])
    result = run(pipeline, arguments)
    RESULTS[(entry["tier"], result["state"] == entry["expect"])] += 1
    assert result["state"] == entry["expect"], (result["error"], entry.get("notes"))
    must_run = _always_run_tasks(pipeline.spec)
    for task in result["tasks"]:
        if task["name"] in must_run:
            assert task["state"] not in ("SKIPPED", "PENDING", "CANCELED"), task


@pytest.mark.parametrize("entry", MANIFEST["invalid"], ids=lambda e: e["file"])
def test_invalid_pipelines_are_rejected(entry: dict[str, Any]) -> None:
    with pytest.raises(PipelineError) as error:
        load_pipeline(COMPAT_DIR / entry["file"])
    assert entry["file"].split("/")[-1] in str(error.value)


def pytest_terminal_summary_lines() -> list[str]:
    tiers = sorted({tier for tier, _ in RESULTS})
    lines = []
    for tier in tiers:
        passed, failed = RESULTS[(tier, True)], RESULTS[(tier, False)]
        lines.append(f"  {tier:28s} {passed}/{passed + failed}")
    total = sum(RESULTS.values())
    lines.append(f"  {'total':28s} {sum(v for (_, ok), v in RESULTS.items() if ok)}/{total}")
    return lines
