"""flowdeck: Kubeflow's ML platform, local first.

The public Python API lives here; everything else is private to its package.
"""

from flowdeck.pipelines.api import run_pipeline

__all__ = ["run_pipeline"]
__version__ = "0.1.0"
