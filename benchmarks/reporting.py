"""What every benchmark prints besides its figures: progress, the machine and code it ran on, and tables."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any


def describe_environment(*packages: str) -> dict[str, Any]:
    """Python, flowdeck (version and commit), CPUs, platform, and the versions of `packages`."""
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {"python": platform.python_version(), **{name: metadata.version(name) for name in packages},
            "flowdeck": metadata.version("flowdeck"), "flowdeck_commit": commit or "unknown",
            "cpus": os.cpu_count(), "platform": platform.platform()}


def progress(text: str) -> None:
    """A progress line on stderr (stdout carries the report, or JSON with --json)."""
    print(text, file=sys.stderr, flush=True)


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Lines of an aligned text table: the first row is the header (underlined), the first column left-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def finish(figures: dict[str, Any], started: float, workdir: Path, keep: bool) -> None:
    """Record the load average and total time at the end, and remove the working directory unless kept."""
    figures["load_after"] = [round(v, 2) for v in os.getloadavg()]
    figures["total_s"] = round(time.perf_counter() - started, 1)
    if keep:
        figures["workdir"] = str(workdir)
        progress(f"working directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def emit(text: str, figures: dict[str, Any], as_json: bool) -> None:
    """Print the report; with --json the figures go to stdout as JSON and the report to stderr."""
    if as_json:
        print(text, file=sys.stderr)
        print(json.dumps(figures, indent=2, default=str))
    else:
        print(text)
