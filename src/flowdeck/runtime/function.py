"""Runs a user's Python function in this process: every rank of a `CustomTrainer` TrainJob, every trial of `tune()`.

    torchrun -m flowdeck.runtime.function --name train --source-b64 B64 --kwargs '{"epochs": 2}'
        [--packages '["tqdm==4.66.1"]' --index-urls '["https://pypi.org/simple"]']
    python -m flowdeck.runtime.function --name objective --source-b64 B64 --argument '{"lr": "0.01"}'

`--kwargs` passes a JSON object as keyword arguments (the Trainer SDK's convention); `--argument` passes
one JSON value as the only positional argument (Katib's `tune()`: the objective gets a dict of parameters).

`TrainerClient.train` puts the function's source (`inspect.getsource`, dedented, base64) and its
`func_args` (JSON) into the TrainJob itself, so the job needs nothing but flowdeck on the nodes and works
against any control plane. Each process decodes the source, executes it in a fresh module namespace and
calls the function with the arguments as **keyword arguments**, as the Kubeflow SDK's Kubernetes backend
does (its local process backend passes the dict positionally: reference/training.md §3.5, not reproduced).
Like the SDK's, the function must be self-contained: its imports inside its body.

`--packages` are installed before the call with `pip install --target` into a directory under
`FLOWDECK_HOME/function-packages` named after the package list and index URLs, once: a file lock makes
the other ranks (and later jobs asking for the same list) wait for and reuse it. That directory goes first
on `sys.path`. The first index URL is pip's `--index-url`, the rest `--extra-index-url`; without any, pip
uses its own configuration.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import json
import subprocess
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The module name the function's source runs under (its `__name__`).
MODULE_NAME = "__flowdeck_trainer__"


def load_function(name: str, source: str) -> Any:
    """Function `name` defined by `source`, executed in a fresh module."""
    module = types.ModuleType(MODULE_NAME)
    module.__dict__["__file__"] = f"<trainer function {name}>"
    # the job's own code, run as torchrun would run its file
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    function = module.__dict__.get(name)
    if not callable(function):
        raise SystemExit(f"the trainer source defines no function {name!r}")
    return function


def install_packages(packages: Sequence[str], index_urls: Sequence[str], root: Path) -> Path:
    """Install `packages` once into a directory under `root` keyed by them (and the indexes); returns it."""
    key = hashlib.sha256(json.dumps([sorted(packages), list(index_urls)]).encode()).hexdigest()[:16]
    target = root / key
    done = target / ".flowdeck-installed"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the node's other ranks wait here while the first one installs
        if not done.exists():
            command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                       "--target", str(target), *packages]
            for number, url in enumerate(index_urls):
                command += ["--index-url" if number == 0 else "--extra-index-url", url]
            result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if result.returncode != 0:
                raise SystemExit(f"pip install {' '.join(packages)} failed (exit {result.returncode}):\n"
                                 f"{result.stdout.strip()}")
            done.touch()
    return target


def _packages_root() -> Path:
    from flowdeck.config import get_settings

    return get_settings().home / "function-packages"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flowdeck.runtime.function",
                                     description="Run a CustomTrainer function in this training process.")
    parser.add_argument("--name", required=True, help="the function's name in its source")
    parser.add_argument("--source-b64", required=True, help="the function's source, base64 (UTF-8)")
    parser.add_argument("--kwargs", default="{}", help="its keyword arguments, a JSON object")
    parser.add_argument("--argument", default=None, help="its one positional argument, as JSON (instead of --kwargs)")
    parser.add_argument("--packages", default="[]", help="packages to pip install first, a JSON list")
    parser.add_argument("--index-urls", default="[]", help="pip index URLs, a JSON list (first: --index-url)")
    options = parser.parse_args(argv)
    kwargs = json.loads(options.kwargs)
    if not isinstance(kwargs, dict):
        parser.error("--kwargs must be a JSON object")
    packages, index_urls = json.loads(options.packages), json.loads(options.index_urls)
    if packages:
        sys.path.insert(0, str(install_packages(packages, index_urls, _packages_root())))
    source = base64.b64decode(options.source_b64).decode("utf-8")
    function = load_function(options.name, source)
    if options.argument is not None:
        function(json.loads(options.argument))
    else:
        function(**kwargs)


if __name__ == "__main__":
    main()
