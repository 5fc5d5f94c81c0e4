"""A pipeline's DAG as the dashboard draws it: nodes and edges read from a compiled pipeline spec.

The spec (KFP IR) lists each DAG's tasks with the tasks they wait for (`dependentTasks`) and the
tasks whose outputs they read (`taskOutputParameter`/`taskOutputArtifact`); both are edges here.
Nodes are named by their task name, which is also the last part of a run task's `path`, so the
run-detail page colours a node with the state of the task at `<dag path>/<name>`. A sub-pipeline,
condition or loop is one node whose own graph is `pipeline_graph(spec, "<its path>")`.
`static/graph.js` lays the result out and draws it.
"""

from __future__ import annotations

import re
from typing import Any

from flowdeck.pipelines.errors import PipelineError

#: A loop iteration's index in a task path (`loop[2]/train`): the spec has one graph for all of them.
_ITERATION = re.compile(r"\[\d+\]")


def pipeline_graph(spec: dict[str, Any], path: str = "") -> dict[str, Any]:
    """`{"nodes": [{"id", "label", "kind", "component"}], "edges": [[from, to], ...]}` of the DAG at `path`
    ("" for the pipeline's root; "outer/inner" for a nested one). Raises `PipelineError` for a path
    that names no DAG."""
    components = spec.get("components", {})
    dag = spec.get("root", {}).get("dag", {})
    for part in filter(None, _ITERATION.sub("", path).split("/")):
        task = dag.get("tasks", {}).get(part)
        component = components.get(task.get("componentRef", {}).get("name", "")) if task else None
        if not component or "dag" not in component:
            raise PipelineError(f"no sub-DAG {path!r} in this pipeline")
        dag = component["dag"]
    tasks = dag.get("tasks", {})
    nodes = [_node(name, task, components, spec) for name, task in tasks.items()]
    edges: list[list[str]] = []
    for name, task in tasks.items():
        for upstream in _upstream(task):
            if upstream in tasks and [upstream, name] not in edges:
                edges.append([upstream, name])
    return {"nodes": nodes, "edges": edges}


def _node(name: str, task: dict[str, Any], components: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    component_name = task.get("componentRef", {}).get("name", "")
    component = components.get(component_name, {})
    if task.get("parameterIterator") or task.get("artifactIterator"):
        kind = "loop"
    elif "dag" in component:
        kind = "dag"
    else:
        executor = spec.get("deploymentSpec", {}).get("executors", {}).get(component.get("executorLabel", ""), {})
        kind = "importer" if "importer" in executor else "container"
    return {"id": name, "label": task.get("taskInfo", {}).get("name") or name, "kind": kind,
            "component": component_name}


def _upstream(task: dict[str, Any]) -> list[str]:
    """The tasks `task` waits for or reads from, in order of appearance."""
    found = list(task.get("dependentTasks", []))
    inputs = task.get("inputs", {})
    for group, reference in (("parameters", "taskOutputParameter"), ("artifacts", "taskOutputArtifact")):
        for value in inputs.get(group, {}).values():
            producer = value.get(reference, {}).get("producerTask")
            if producer:
                found.append(producer)
    return found
