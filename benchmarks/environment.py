"""What machine and code a benchmark ran on, printed with every benchmark's figures."""

from __future__ import annotations

import os
import platform
import subprocess
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
