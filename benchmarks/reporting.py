"""What every benchmark prints besides its figures: progress, the machine and code it ran on, and tables."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
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
