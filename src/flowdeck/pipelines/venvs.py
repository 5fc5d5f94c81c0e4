"""Cached virtual environments for components' `packages_to_install`.

One environment per distinct package set (and pip options), built once with
`--system-site-packages` so kfp and flowdeck's own dependencies come from the host, and reused by
every later task and run. A file lock makes concurrent builders of the same set wait for one another.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path


class VenvError(RuntimeError):
    """Building the environment failed; the message says which package set and where the log is."""


def venv_key(packages: list[str], pip_options: list[str]) -> str:
    payload = json.dumps({"packages": sorted(packages), "options": pip_options,
                          "python": sys.version.split()[0], "prefix": sys.prefix})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _inherit_site_packages(directory: Path) -> None:
    """Let the new venv see flowdeck's own site-packages (kfp among them), after its own packages.

    `--system-site-packages` only reaches the base interpreter's; when flowdeck itself runs in a venv,
    kfp lives in that venv, so its site directories are added through a `.pth` file.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = directory / "lib" / version / "site-packages"
    parents = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    lines = [f"import site; site.addsitedir({path!r})" for path in parents]
    (site_packages / "_flowdeck_parent.pth").write_text("\n".join(lines) + "\n")


def python_for(packages: list[str], pip_options: list[str], cache_dir: Path,
               announce: Callable[[str], None] | None = None) -> str:
    """The interpreter of a venv holding `packages`, building it on first use."""
    directory = cache_dir / venv_key(packages, pip_options)
    python = directory / "bin" / "python"
    ready_marker = directory / ".flowdeck-ready"
    if ready_marker.exists():
        return str(python)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f"{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready_marker.exists():
            return str(python)
        log_path = cache_dir / f"{directory.name}.log"
        if announce:
            announce(f"installing {' '.join(packages)} into a cached environment (first use only; "
                     f"pip's output: {log_path})")
        started = time.monotonic()
        shutil.rmtree(directory, ignore_errors=True)
        with open(log_path, "w") as log:
            steps = [
                [sys.executable, "-m", "venv", "--system-site-packages", str(directory)],
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", *pip_options, *packages],
            ]
            for number, step in enumerate(steps):
                log.write("$ " + " ".join(step) + "\n")
                log.flush()
                code = subprocess.call(step, stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "PIP_NO_INPUT": "1"})
                if code != 0:
                    raise VenvError(f"installing {' '.join(packages)} failed (exit {code}); see {log_path}")
                if number == 0:
                    _inherit_site_packages(directory)
        ready_marker.write_text(json.dumps({"packages": packages, "options": pip_options}))
        if announce:
            announce(f"installed {' '.join(packages)} in {time.monotonic() - started:.1f} s")
    return str(python)
