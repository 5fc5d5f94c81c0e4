"""The metadata store: runs, tasks, attempts, artifacts, lineage and the execution cache.

SQLite (WAL) is the embedded default; PostgreSQL is the production backend. `Store` is the one entry
point; writers batch their changes in a `Batch` and commit it in one transaction per scheduling step.
"""

from flowdeck.store.models import (
    ArtifactRow,
    AttemptRow,
    CacheEntryRow,
    EventRow,
    ExperimentRow,
    PipelineRow,
    PipelineVersionRow,
    RecurringRunRow,
    ResourceEventRow,
    ResourceRow,
    RunRow,
    TaskRow,
)
from flowdeck.store.store import Batch, RunNotFound, Store, open_store

__all__ = [
    "ArtifactRow",
    "AttemptRow",
    "Batch",
    "CacheEntryRow",
    "EventRow",
    "ExperimentRow",
    "PipelineRow",
    "PipelineVersionRow",
    "RecurringRunRow",
    "ResourceEventRow",
    "ResourceRow",
    "RunNotFound",
    "RunRow",
    "Store",
    "TaskRow",
    "open_store",
]
