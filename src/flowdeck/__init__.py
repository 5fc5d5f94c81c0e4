"""flowdeck: Kubeflow's ML platform, local first.

The public Python API lives here; everything else is private to its package. Names are imported
lazily so that `import flowdeck.<part>` (the CLI, the fork server) stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_pipeline"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "run_pipeline":
        from flowdeck.pipelines.api import run_pipeline

        return run_pipeline
    raise AttributeError(f"module 'flowdeck' has no attribute {name!r}")
