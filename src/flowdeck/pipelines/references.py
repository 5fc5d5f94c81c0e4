"""What a new run refers to: the experiment it joins and the uploaded pipeline version it runs.

The KFP API names them by id, a PipelineRun resource by name; both start runs, so both resolve here,
and the rules are the same for every run: no experiment means the namespace's "Default", an archived
experiment takes no new runs, and a pipeline named without a version runs its newest version.
Failures are the catalogue's `NotFound` and `StateConflict`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowdeck.store import Store
from flowdeck.store.catalog import (
    ARCHIVED,
    AlreadyExists,
    Experiments,
    ListQuery,
    NotFound,
    PipelineVersions,
    Predicate,
    StateConflict,
)


def run_experiment(store: Store, *, namespace: str = "", experiment_id: str | None = None,
                   name: str | None = None, authorize: Callable[[str], None] = lambda _namespace: None) -> Any:
    """The experiment a new run joins: the one with `experiment_id`, else the namespace's experiment called
    `name` (created when missing), else the namespace's "Default" (created on first use).

    `authorize(namespace)` runs once the experiment's namespace is known, before anything about the
    experiment is revealed or created (the KFP API raises a 404 there for a caller not allowed in it).
    """
    experiments = Experiments(store)
    if experiment_id:
        experiment = experiments.get(experiment_id)
        authorize(experiment.namespace)
    elif name is not None:
        authorize(namespace)
        experiment = _named_experiment(experiments, namespace, name)
    else:
        authorize(namespace)
        return experiments.default(namespace=namespace)
    if experiment.storage_state == ARCHIVED:
        raise StateConflict(f"experiment {experiment_id or name!r} is archived; unarchive it before adding runs to it")
    return experiment


def _named_experiment(experiments: Experiments, namespace: str, name: str) -> Any:
    query = ListQuery(predicates=(Predicate("display_name", "EQUALS", name),), namespaces=(namespace,), page_size=1)
    found = experiments.list(query).rows
    if found:
        return found[0]
    try:
        return experiments.create(display_name=name, namespace=namespace)
    except AlreadyExists:  # created meanwhile
        return experiments.list(query).rows[0]


def run_version(store: Store, *, pipeline_id: str | None = None, version: str | None = None) -> Any:
    """The pipeline version (with its spec) a new run runs: `version` (an id, or the name of one of the
    pipeline's versions), or the newest version of the pipeline when `version` is None.

    A version id alone suffices; with `pipeline_id` the version must belong to that pipeline.
    """
    versions = PipelineVersions(store)
    if version is None:
        if pipeline_id is None:
            raise ValueError("run_version needs a pipeline or a version")
        return versions.latest(pipeline_id)
    try:
        return versions.get(version, pipeline_id=pipeline_id)
    except NotFound:
        if pipeline_id is None:
            raise
        named = versions.list(pipeline_id, ListQuery(predicates=(Predicate("name", "EQUALS", version),),
                                                     page_size=1)).rows
        if not named:
            raise
    return versions.get(named[0].id, pipeline_id=pipeline_id)
