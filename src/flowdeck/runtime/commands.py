"""How a workload's `python ...` or `torchrun ...` command runs on this machine.

A container's `python` is the control plane's own interpreter (so the workload sees flowdeck's
packages) and `torchrun` is torchrun in it. A script, a `-m module` or a torchrun command goes
through `launch`, which a runtime preloads (`LocalRuntime(preload=(LAUNCH_MODULE,))`) so the process
is forked warm, with torch already imported; training replicas and tuning trials both run this way.
"""

from __future__ import annotations

import sys

#: The module a runtime preloads to start Python workloads warm (it imports torch when installed).
LAUNCH_MODULE = "flowdeck.runtime.launch"


def local_command(command: list[str], args: list[str]) -> list[str]:
    """The container's command as run here: `python` is this interpreter and `torchrun` its torchrun; a script,
    `-m module` or torchrun starts warm, forked through `launch`."""
    program, *rest = [*command, *args]
    if program in ("python", "python3", sys.executable):
        if rest and (rest[0].endswith(".py") or (rest[0] == "-m" and len(rest) > 1)):
            return [sys.executable, "-m", LAUNCH_MODULE, *rest]
        return [sys.executable, *rest]
    if program == "torchrun":
        return [sys.executable, "-m", LAUNCH_MODULE, "--torchrun", *rest]
    return [program, *rest]
