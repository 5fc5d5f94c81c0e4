"""Loading pipelines: compiled KFP v2 IR (YAML/JSON), or Python files compiled with the real kfp SDK.

A loaded `Pipeline` is validated just enough that the engine can trust its structure: every task
names a defined component, every executor label resolves, the root is a DAG. Mistakes become a
`PipelineError` whose message names the file and the field.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flowdeck.pipelines.errors import PipelineError

#: libyaml's safe loader when PyYAML was built with it (10x faster on large pipelines).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: Where the engine reads a platform spec: each of these must be a mapping, then each executor's settings.
_PLATFORM_PATH = ("platforms", "kubernetes", "deploymentSpec", "executors")


class _AliasUsed(Exception):
    """A YAML alias in a pipeline file (see `_NoAliasLoader`)."""


class _NoAliasLoader(_SAFE_LOADER):
    """The safe loader, refusing YAML aliases.

    An alias makes a node appear again wherever it is used, so a few kilobytes of nested aliases
    expand into gigabytes once the spec is walked or stored as JSON (a "billion laughs" file).
    Compiled KFP pipelines never use anchors or aliases, so refusing aliases costs no real file.
    A node is constructed a second time only when an alias refers to it again.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node in self.constructed_objects or node in self.recursive_objects:
            mark = node.start_mark
            raise _AliasUsed(f"YAML aliases are not allowed in pipeline files (the node anchored at line "
                             f"{mark.line + 1}, column {mark.column + 1} is used again through an alias); "
                             "compiled KFP pipelines never use anchors or aliases")
        return super().construct_object(node, deep)


@dataclass
class Pipeline:
    """A pipeline spec (the IR document) and its optional platform spec."""

    spec: dict[str, Any]
    platform_spec: dict[str, Any] = field(default_factory=dict)
    source: str = "<dict>"

    @property
    def name(self) -> str:
        return self.spec["pipelineInfo"]["name"]

    @property
    def root(self) -> dict[str, Any]:
        return self.spec["root"]

    def component(self, name: str) -> dict[str, Any]:
        return self.spec["components"][name]

    def executor(self, label: str) -> dict[str, Any]:
        return self.spec["deploymentSpec"]["executors"][label]

    @property
    def kubernetes_executors(self) -> dict[str, Any]:
        platforms = self.platform_spec.get("platforms", {})
        return platforms.get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})


def load_pipeline(source: Any, *, function_name: str | None = None) -> Pipeline:
    """Load a pipeline from a path (.yaml/.yml/.json/.py, `file.py:func`), a dict, or a kfp pipeline function."""
    if isinstance(source, Pipeline):
        return source
    if isinstance(source, dict):
        return from_documents([source], "<dict>")
    if callable(source) and not isinstance(source, (str, Path)):
        return compile_function(source, getattr(source, "__name__", "<function>"))
    text = str(source)
    if function_name is None and ":" in text and text.rsplit(":", 1)[0].endswith(".py"):
        text, function_name = text.rsplit(":", 1)
    path = Path(text)
    if not path.exists():
        raise PipelineError(f"{path}: no such file")
    if path.is_dir():
        raise PipelineError(f"{path}: is a directory, not a pipeline file")
    if path.suffix == ".py":
        return from_python_file(path, function_name)
    try:
        raw = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{path}: cannot read: {exc}") from None
    return from_documents(load_documents(raw, str(path)), str(path))


def load_documents(text: str, source: str) -> list[Any]:
    """The non-empty YAML (or JSON) documents of a pipeline file; YAML aliases are refused (`_NoAliasLoader`)."""
    try:
        return [doc for doc in yaml.load_all(text, Loader=_NoAliasLoader) if doc is not None]
    except yaml.YAMLError as exc:
        raise PipelineError(f"{source}: not valid YAML: {_first_line(exc)}") from None
    except _AliasUsed as exc:
        raise PipelineError(f"{source}: {exc}") from None


def spec_document(spec: dict[str, Any], platform_spec: dict[str, Any] | None) -> dict[str, Any]:
    """One document for a spec and its platform spec: `{pipeline_spec, platform_spec}`, or the bare spec.

    This is the shape KFP's `pipeline_spec` Struct takes, and what `load_pipeline` and `from_documents` read.
    """
    if platform_spec:
        return {"pipeline_spec": spec, "platform_spec": platform_spec}
    return spec


def from_documents(documents: list[Any], source: str) -> Pipeline:
    """Build a Pipeline from the parsed YAML documents of a compiled pipeline file (or a `spec_document`)."""
    if not documents:
        raise PipelineError(f"{source}: empty file, no pipeline spec")
    spec = documents[0]
    platform: Any = None
    if isinstance(spec, dict) and "pipeline_spec" in spec and isinstance(spec["pipeline_spec"], dict):
        platform = spec.get("platform_spec")
        spec = spec["pipeline_spec"]
    if len(documents) > 1:
        platform = documents[1]
    validate_spec(spec, source)
    return Pipeline(spec=spec, platform_spec=validate_platform_spec(platform, source), source=source)


def validate_platform_spec(platform: Any, source: str) -> dict[str, Any]:
    """The platform spec ({} when there is none), after checking that what the engine reads is made of mappings."""
    if platform is None:
        return {}
    node, where = platform, "platform_spec"
    for key in _PLATFORM_PATH:
        if not isinstance(node, dict):
            raise PipelineError(f"{source}: {where} must be a mapping, not {_kind(node)}")
        if key not in node:
            return platform
        node, where = node[key], f"{where}.{key}"
    if not isinstance(node, dict):
        raise PipelineError(f"{source}: {where} must be a mapping, not {_kind(node)}")
    for label, settings in node.items():
        if not isinstance(settings, dict):
            raise PipelineError(f"{source}: {where}.{label} must be a mapping, not {_kind(settings)}")
    return platform


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


#: The longest pipeline name the run database stores (runs.pipeline_name).
MAX_NAME_LENGTH = 256


def validate_spec(spec: Any, source: str) -> None:
    """Reject documents that are not a runnable KFP v2 pipeline spec."""

    def fail(message: str) -> None:
        raise PipelineError(f"{source}: {message}")

    if not isinstance(spec, dict):
        fail("not a pipeline spec (expected a mapping at the top level)")
    if "root" not in spec or "pipelineInfo" not in spec:
        missing = [k for k in ("pipelineInfo", "root") if k not in spec]
        fail(f"not a KFP pipeline spec: missing {', '.join(missing)}")
    schema = str(spec.get("schemaVersion", ""))
    if schema and not schema.startswith("2."):
        fail(f"schemaVersion {schema} is not supported (expected 2.x)")
    info = spec.get("pipelineInfo")
    if not isinstance(info, dict) or not info.get("name"):
        fail("pipelineInfo.name is missing or empty")
    name = info["name"]
    if (not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or "\x00" in name or "/" in name
            or name in (".", "..")):
        fail(f"pipelineInfo.name must be a string of at most {MAX_NAME_LENGTH} characters, without '/' "
             "or NUL bytes, and not '.' or '..'")
    components = spec.get("components") or {}
    if not isinstance(components, dict):
        fail("components must be a mapping")
    executors = (spec.get("deploymentSpec") or {}).get("executors") or {}
    root = spec["root"]
    if not isinstance(root, dict) or "dag" not in root:
        fail("root must be a DAG component")

    def check_component(where: str, component: dict[str, Any]) -> None:
        if "dag" in component:
            tasks = (component["dag"] or {}).get("tasks") or {}
            for task_name, task in tasks.items():
                ref = ((task or {}).get("componentRef") or {}).get("name")
                if not ref:
                    fail(f"{where}.dag.tasks.{task_name}.componentRef.name is missing")
                if ref not in components:
                    fail(f"{where}.dag.tasks.{task_name}: component {ref!r} is not defined in components")
                for dep in task.get("dependentTasks") or []:
                    if dep not in tasks:
                        fail(f"{where}.dag.tasks.{task_name}.dependentTasks: unknown task {dep!r}")
            cycle = _cycle(tasks)
            if cycle:
                fail(f"{where}.dag.tasks: dependency cycle {' -> '.join(cycle)}")
        elif "executorLabel" in component:
            label = component["executorLabel"]
            if label not in executors:
                fail(f"{where}.executorLabel: executor {label!r} is not defined in deploymentSpec.executors")
        else:
            fail(f"{where}: a component needs either dag or executorLabel")

    check_component("root", root)
    for name, component in components.items():
        if not isinstance(component, dict):
            fail(f"components.{name} must be a mapping")
        check_component(f"components.{name}", component)


def _cycle(tasks: dict[str, Any]) -> list[str] | None:
    """A dependency cycle among `tasks` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for dep in (tasks[name] or {}).get("dependentTasks") or []:
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep in tasks and dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[name] = 2
        return None

    for name in tasks:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def compile_function(func: Any, label: str) -> Pipeline:
    """Compile a `@dsl.pipeline` (or `@dsl.component`) function with the real kfp compiler."""
    from kfp import compiler

    with tempfile.TemporaryDirectory(prefix="flowdeck-compile-") as tmp:
        out = Path(tmp) / "pipeline.yaml"
        try:
            compiler.Compiler().compile(func, str(out))
        except Exception as exc:  # noqa: BLE001 - any compile error is the user's to fix
            raise PipelineError(f"{label}: kfp could not compile it: {_first_line(exc)}") from None
        documents = load_documents(out.read_text(), label)
    return from_documents(documents, label)


def from_python_file(path: Path, function_name: str | None) -> Pipeline:
    """Import a Python file and compile its one `@dsl.pipeline` (or the one named)."""
    from kfp.dsl import base_component, graph_component

    module_name = f"_flowdeck_user_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PipelineError(f"{path}: cannot import")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        with warnings.catch_warnings():
            # the image of @dsl.component is not used locally, so kfp's warning about its default is noise
            warnings.filterwarnings("ignore", message="The default base_image", category=FutureWarning)
            spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001
        raise PipelineError(f"{path}: importing it failed: {type(exc).__name__}: {_first_line(exc)}") from None
    finally:
        sys.path.remove(str(path.parent.resolve()))
    if function_name:
        func = getattr(module, function_name, None)
        if func is None:
            raise PipelineError(f"{path}: no function named {function_name!r}")
        return compile_function(func, f"{path}:{function_name}")
    defined_here = [
        value for value in vars(module).values()
        if isinstance(value, graph_component.GraphComponent)
        and getattr(value.pipeline_func, "__module__", None) == module_name
    ]
    # a pipeline used inside another one is a component, not the pipeline to run
    used = {name for p in defined_here for name in p.pipeline_spec.components}
    pipelines = [p for p in defined_here if f"comp-{p.name.replace('_', '-')}" not in used]
    if not defined_here:
        components = [v for v in vars(module).values() if isinstance(v, base_component.BaseComponent)
                      and getattr(getattr(v, "python_func", None), "__module__", None) == module_name]
        if len(components) == 1:
            pipelines = components
    if len(pipelines) != 1:
        names = ", ".join(sorted(p.name for p in pipelines)) or "none"
        raise PipelineError(
            f"{path}: expected exactly one @dsl.pipeline, found {len(pipelines)} ({names}); "
            "pick one with FILE.py:FUNCTION"
        )
    return compile_function(pipelines[0], str(path))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
