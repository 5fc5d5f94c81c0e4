"""Imported by the fork server (as a preload module) to warm kfp's executor before any task forks.

A forked task inherits everything its parent has imported, compiled and cached. Running one trivial
component through `kfp.dsl.executor_main` here fills those caches (lazy imports, regexes, type
annotations machinery) once, so every task saves that first-run cost (~1.5 ms of ~3 ms). Logging is
reset afterwards, so each task configures its own handlers on its own stdout, as a fresh process would.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import runpy
import sys
import tempfile

_SOURCE = """\
from kfp import dsl
from kfp.dsl import *
from typing import *

def warm(x: int) -> int:
    return x + 1
"""


def _warm() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    saved_argv = sys.argv
    with tempfile.TemporaryDirectory(prefix="flowdeck-warm-") as directory:
        program = os.path.join(directory, "warm_component.py")
        with open(program, "w") as handle:
            handle.write(_SOURCE)
        executor_input = {
            "inputs": {"parameterValues": {"x": 1}},
            "outputs": {"parameters": {"Output": {"outputFile": os.path.join(directory, "Output")}},
                        "outputFile": os.path.join(directory, "executor_output.json")},
        }
        sys.argv = ["executor_main", "--component_module_path", program, "--executor_input",
                    json.dumps(executor_input), "--function_to_execute", "warm"]
        sink = io.StringIO()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                runpy.run_module("kfp.dsl.executor_main", run_name="__main__", alter_sys=False)
        except BaseException:  # noqa: BLE001 - warming is an optimisation: never fail the server for it
            pass
        finally:
            sys.argv = saved_argv
            sys.modules.pop("warm_component", None)
            root.handlers[:] = handlers
            root.setLevel(level)


_warm()
