"""The KFP compatibility set in ../shared/kfp-compat: which entries can run here, and with what.

Shared by the compatibility test and `python -m tests.pipelines.compat` (a report per tier).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

COMPAT_DIR = Path(os.environ.get("FLOWDECK_KFP_COMPAT", Path(__file__).resolve().parents[3] / "shared" / "kfp-compat"))

#: Needs this machine can meet: `container-image` only for compile-only fixtures (expected to fail).
SLOW_FILES = {"valid/long-running.yaml", "valid/log_streaming_compiled.yaml"}
#: Sleep-tier pipelines whose nap is a parameter: run them with a short nap.
SHORTENED = {
    "valid/take_nap_compiled.yaml": {"naptime_secs": 3},
    "valid/take_nap_pipeline_root_compiled.yaml": {"naptime_secs": 3},
}


def manifest() -> dict[str, Any]:
    return yaml.safe_load((COMPAT_DIR / "manifest.yaml").read_text())


def satisfiable(entry: dict[str, Any]) -> bool:
    needs = set(entry.get("needs") or [])
    if not needs:
        return True
    return needs == {"container-image"} and bool(entry.get("compile_only"))


def arguments_for(entry: dict[str, Any]) -> dict[str, Any]:
    arguments = dict(entry.get("arguments") or {})
    arguments.update(SHORTENED.get(entry["file"], {}))
    return arguments
