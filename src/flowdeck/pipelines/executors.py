"""Turning a container task into a workload, and reading back what it produced.

`prepare` builds the ExecutorInput (where outputs go, the resolved inputs) and the command: kfp's
own executor for lightweight Python components (warm-forked when possible), or the container's
command/args with placeholders resolved. `collect` reads executor_output.json and output parameter
files after a successful exit, the way the KFP launcher does.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from typing import Any

from flowdeck.artifacts import ArtifactStore, is_local
from flowdeck.pipelines.components import PythonComponent
from flowdeck.pipelines.errors import TaskFailure
from flowdeck.pipelines.placeholders import (
    PlaceholderContext,
    resolve_arguments,
    resolve_parameter_values,
    resolve_string,
)
from flowdeck.pipelines.values import coerce, normalize, parse_output_text

EXECUTOR_MODULE = "kfp.dsl.executor_main"
OUTPUT_FILE = "executor_output.json"


@dataclass
class Prepared:
    command: list[str]
    env: dict[str, str]


def artifact_type(definition: dict[str, Any]) -> dict[str, str]:
    schema = definition.get("artifactType") or {}
    return {"schemaTitle": schema.get("schemaTitle", "system.Artifact"),
            "schemaVersion": schema.get("schemaVersion", "0.0.1")}


def public(artifact: dict[str, Any]) -> dict[str, Any]:
    """An artifact as executors and users see it, without the engine's private keys."""
    return {k: v for k, v in artifact.items() if not k.startswith("_")}


def executor_input(component: dict[str, Any], parameters: dict[str, Any],
                   artifacts: dict[str, list[dict[str, Any]]], task_dir: str) -> dict[str, Any]:
    outputs = component.get("outputDefinitions") or {}
    return {
        "inputs": {
            "parameterValues": normalize(json.loads(json.dumps(parameters, default=str))),
            "artifacts": {k: {"artifacts": [public(a) for a in v]} for k, v in artifacts.items()},
        },
        "outputs": {
            "parameters": {name: {"outputFile": os.path.join(task_dir, name)}
                           for name in outputs.get("parameters") or {}},
            "artifacts": {
                name: {"artifacts": [{"name": name, "uri": os.path.join(task_dir, name), "metadata": {},
                                      "type": artifact_type(definition)}]}
                for name, definition in (outputs.get("artifacts") or {}).items()
            },
            "outputFile": os.path.join(task_dir, OUTPUT_FILE),
        },
    }


def stage_inputs(artifacts: dict[str, list[dict[str, Any]]], staging_dir: str) -> dict[str, list[dict[str, Any]]]:
    """Input artifacts with remote URIs (s3://, gs://, any fsspec URI) downloaded to local copies.

    The KFP launcher downloads every input artifact before each attempt; locally there is no /gcs or
    /s3 mount for kfp's `Artifact.path`, so the executor gets the local copy's path as its URI. Copies
    live in the attempt's own `staging_dir`, fetched afresh each time, so they are never stale.
    """
    if all(is_local(a.get("uri") or "") for items in artifacts.values() for a in items):
        return artifacts  # the common case: nothing to download
    store = ArtifactStore(staging_dir)
    staged: dict[str, list[dict[str, Any]]] = {}
    for name, items in artifacts.items():
        staged[name] = []
        for position, artifact in enumerate(items):
            uri = artifact.get("uri") or ""
            if not uri or is_local(uri):
                staged[name].append(artifact)
                continue
            target = os.path.join(staging_dir, name, str(position), uri.rstrip("/").rsplit("/", 1)[-1] or "artifact")
            shutil.rmtree(os.path.dirname(target), ignore_errors=True)
            try:
                store.get(uri, target)
            except Exception as exc:  # noqa: BLE001 - any fsspec/backend error: the attempt cannot run
                raise TaskFailure(f"cannot download input artifact {name!r} from {uri}: {exc}") from None
            staged[name].append({**artifact, "uri": target})
    return staged


def clear_outputs(component: dict[str, Any], task_dir: str) -> None:
    """Remove what an earlier attempt wrote, so a retry cannot pass off stale outputs as its own."""
    outputs = component.get("outputDefinitions") or {}
    for name in [OUTPUT_FILE, *(outputs.get("parameters") or {}), *(outputs.get("artifacts") or {})]:
        path = os.path.join(task_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)


def prepare(*, component: dict[str, Any], container: dict[str, Any], python_component: PythonComponent | None,
            python: str, parameters: dict[str, Any], artifacts: dict[str, list[dict[str, Any]]], task_dir: str,
            pipeline_values: dict[str, str], staging_dir: str, templates: set[str]) -> Prepared:
    """The command and environment that run one attempt of a container task in `task_dir`.

    `templates` names the parameters whose values are compiler constants that may hold placeholders.
    """
    os.makedirs(task_dir, exist_ok=True)
    clear_outputs(component, task_dir)
    document = executor_input(component, parameters, stage_inputs(artifacts, staging_dir), task_dir)
    context = PlaceholderContext(executor_input=document, pipeline_values=pipeline_values)
    document["inputs"]["parameterValues"] = resolve_parameter_values(
        document["inputs"]["parameterValues"], context, templates)
    env = {"_KFP_RUNTIME": "true", "PYTHONUNBUFFERED": "1"}
    for item in container.get("env") or []:
        env[item["name"]] = resolve_string(str(item.get("value", "")), context)
    if python_component is not None:
        program_dir = os.path.join(task_dir, ".flowdeck")
        os.makedirs(program_dir, exist_ok=True)
        program = os.path.join(program_dir, "ephemeral_component.py")
        with open(program, "w") as handle:
            handle.write(python_component.source)
        command = [python, "-m", EXECUTOR_MODULE, "--component_module_path", program,
                   *resolve_arguments(python_component.extra_args, context)]
    else:
        command = resolve_arguments(list(container.get("command") or []) + list(container.get("args") or []),
                                    context)
        if not command:
            raise TaskFailure("the container has no command or args to run locally")
    return Prepared(command=command, env=env)


def collect(component: dict[str, Any], task_dir: str, artifact_root: str
            ) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Output parameters and artifacts of a finished attempt (every provisioned artifact is kept)."""
    outputs = component.get("outputDefinitions") or {}
    written: dict[str, Any] = {}
    output_file = os.path.join(task_dir, OUTPUT_FILE)
    if os.path.exists(output_file):
        try:
            with open(output_file) as handle:
                written = json.load(handle) or {}
        except ValueError as exc:
            raise TaskFailure(f"{OUTPUT_FILE} is not valid JSON: {exc}") from None
    values = written.get("parameterValues") or {}
    parameters: dict[str, Any] = {}
    for name, definition in (outputs.get("parameters") or {}).items():
        kind = definition.get("parameterType", "STRING")
        if name in values:
            value = values[name]
            try:
                value = coerce(value, kind, name) if value is not None else None
            except ValueError:
                pass
            parameters[name] = value if kind == "NUMBER_DOUBLE" else normalize(value)
        else:
            path = os.path.join(task_dir, name)
            if os.path.isfile(path):
                try:
                    with open(path, encoding="utf-8") as handle:
                        parameters[name] = parse_output_text(handle.read(), kind)
                except (ValueError, TaskFailure) as exc:  # UnicodeDecodeError is a ValueError
                    raise TaskFailure(f"output parameter {name!r}: {exc}") from None
    reported = written.get("artifacts") or {}
    artifacts: dict[str, list[dict[str, Any]]] = {}
    for name, definition in (outputs.get("artifacts") or {}).items():
        default_uri = os.path.join(task_dir, name)
        listed = (reported.get(name) or {}).get("artifacts") or [{"name": name, "uri": default_uri}]
        records = []
        for artifact in listed:
            uri = artifact.get("uri") or default_uri
            custom_path = artifact.get("custom_path") or artifact.get("customPath")
            if custom_path and os.path.exists(custom_path):
                # the component wrote elsewhere (Artifact.set_path): upload it, as the KFP launcher does
                ArtifactStore(artifact_root).put(custom_path, uri)
            records.append({"name": artifact.get("name") or name, "uri": uri,
                            "metadata": normalize(artifact.get("metadata") or {}),
                            "type": artifact_type(definition)})
        artifacts[name] = records
    return parameters, artifacts
