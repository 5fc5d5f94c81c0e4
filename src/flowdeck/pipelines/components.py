"""Recognising how a KFP executor should run here.

Lightweight Python components compile to `sh -c "<pip install kfp ...> && $0 $@" sh -ec "<write
$0 to ephemeral_component.py; python3 -m kfp.dsl.executor_main ...>" SOURCE`. Running that verbatim
costs a shell, a pip call and a cold interpreter per task. Instead we extract SOURCE and the
packages the component asks for, and run kfp's own executor directly (in a warm fork when the
packages are already importable, else in a cached virtual environment).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from typing import Any

_PIP_INSTALL = re.compile(r"-m pip install (.*?)(?:&&|\n|$)", re.DOTALL)
_OPTIONS_WITH_VALUE = {"--index-url", "-i", "--extra-index-url", "--trusted-host", "-f", "--find-links"}


@dataclass
class PythonComponent:
    """A lightweight Python component, taken apart."""

    source: str
    extra_args: list[str]
    packages: list[str] = field(default_factory=list)
    pip_options: list[str] = field(default_factory=list)


def parse_python_component(container: dict[str, Any]) -> PythonComponent | None:
    """The Python component inside a compiled container spec, or None if it is not one."""
    command = list(container.get("command") or [])
    for index, element in enumerate(command):
        if "kfp.dsl.executor_main" in element and "ephemeral_component.py" in element:
            if index + 1 >= len(command):
                return None
            install_script = " ".join(command[:index])
            packages, options = _packages_from(install_script)
            packages, options = list(packages), list(options)
            return PythonComponent(
                source=command[index + 1],
                extra_args=command[index + 2:] + list(container.get("args") or []),
                packages=packages,
                pip_options=options,
            )
    return None


@lru_cache(maxsize=256)
def _packages_from(script: str) -> tuple[list[str], list[str]]:
    """Requirements and pip options named in the install script (cached: every task of a pipeline has one)."""
    packages: list[str] = []
    options: list[str] = []
    for match in _PIP_INSTALL.finditer(script):
        try:
            tokens = shlex.split(match.group(1))
        except ValueError:
            continue
        skip_next = False
        for token in tokens:
            if skip_next:
                options.append(token)
                skip_next = False
                continue
            if token in _OPTIONS_WITH_VALUE:
                options.append(token)
                skip_next = True
                continue
            if token.startswith("-"):
                continue
            if _is_kfp(token) or not _applies(token):
                continue
            packages.append(token)
    return packages, options


def _is_kfp(requirement: str) -> bool:
    name = re.split(r"[<>=!~\[;@ ]", requirement.strip(), maxsplit=1)[0].lower()
    return name == "kfp"


def _applies(requirement: str) -> bool:
    """False for requirements whose environment marker excludes this interpreter."""
    try:
        from packaging.requirements import Requirement

        parsed = Requirement(requirement)
    except Exception:  # noqa: BLE001 - a URL or path: let pip judge it
        return True
    return parsed.marker is None or parsed.marker.evaluate()


def satisfied_here(packages: list[str]) -> bool:
    """True when every requirement is already installed in this interpreter's environment."""
    from packaging.requirements import InvalidRequirement, Requirement

    for text in packages:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            return False
        if requirement.url:
            return False
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            return False
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            return False
    return True
