"""Runs a replica's `python SCRIPT ARGS`, `python -m MODULE ARGS` or `torchrun ...` in processes forked warm.

Importing torch costs a training process 1-3 s before its first line runs, and every rank pays it at
once, on the same cores; torchrun's agent adds its own start and rendezvous on top. The training
runtime's fork server imports this module, and with it torch and `torch.distributed` when they are
installed, once; each replica is forked from it and runs its script as the interpreter would
(`__main__`, `sys.argv`, the script's directory first on `sys.path`), reaching `init_process_group` in
milliseconds. Forking is safe: importing torch starts no threads, and the server never runs a torch
operation (which would start OpenMP's) nor touches CUDA.

`--torchrun ARGS` is a replica whose command is torchrun. Its options are read with torchrun's own
parser (so the operator's `PET_*` variables count exactly as they would), and when they describe a
fixed-size static rendezvous (what the operators and Trainer's torch runtime configure, without
elastic ranges or restarts of its own) this process acts as torchrun's agent: it forks
`nproc_per_node` workers with the environment torchrun gives them (`LOCAL_RANK`, `RANK =
node_rank * nproc + local_rank`, `WORLD_SIZE`, `GROUP_RANK`, `MASTER_ADDR/PORT`, `TORCHELASTIC_*`...),
and like torchrun ends them all and exits 1 as soon as one fails. Anything else runs the real torchrun.
"""

from __future__ import annotations

import atexit
import os
import runpy
import signal
import sys
import threading
import traceback
from collections.abc import Sequence

try:  # preloaded in the fork server: the reason this module exists
    import torch  # noqa: F401
    import torch.distributed  # noqa: F401
except ImportError:  # training without torch (TFJob scripts, XGBoost...) still saves the interpreter start
    pass


def main(argv: Sequence[str] | None = None) -> None:
    """Run `SCRIPT ARGS` or `-m MODULE ARGS` as `python` would, or `--torchrun ARGS` as torchrun would."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        raise SystemExit("usage: python -m flowdeck.runtime.launch (SCRIPT | -m MODULE | --torchrun ...) [ARGS...]")
    if args[0] == "--torchrun":
        torchrun(args[1:])
    elif args[0] == "-m" and len(args) > 1:
        run_python([args[1], *args[2:]], module=True)
    else:
        run_python(args, module=False)


def run_python(argv: list[str], module: bool) -> None:
    """Run a script (`argv[0]`) or a module as `python [-m]` would, in this process."""
    sys.argv = list(argv)
    if module:
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
    runpy.run_path(argv[0], run_name="__main__")


def torchrun(args: list[str]) -> None:
    """Act as torchrun's agent for a static, fixed-size rendezvous; exec the real torchrun otherwise."""
    try:
        from torch.distributed.run import get_args_parser
    except ImportError:
        raise SystemExit("torchrun needs torch: pip install 'flowdeck[torch]'") from None
    options = get_args_parser().parse_args(args)
    nproc = _processes(options.nproc_per_node)
    if (not options.nnodes.isdigit() or options.rdzv_backend != "static" or options.standalone
            or options.max_restarts or options.no_python or options.run_path or nproc is None):
        os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", *args])
    nnodes, node_rank = int(options.nnodes), int(options.node_rank)
    world = nnodes * nproc
    env = {"MASTER_ADDR": options.master_addr, "MASTER_PORT": str(options.master_port or 29500),
           "WORLD_SIZE": str(world), "ROLE_WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(nproc),
           "GROUP_RANK": str(node_rank), "GROUP_WORLD_SIZE": str(nnodes), "ROLE_NAME": options.role,
           "TORCHELASTIC_RESTART_COUNT": "0", "TORCHELASTIC_MAX_RESTARTS": "0",
           "TORCHELASTIC_RUN_ID": options.rdzv_id, "TORCHELASTIC_USE_AGENT_STORE": "False"}
    if nproc > 1 and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = "1"  # as torchrun does, so ranks do not fight over the cores
    target = [options.training_script, *options.training_script_args]
    workers: dict[int, int] = {}
    for local_rank in range(nproc):
        rank = node_rank * nproc + local_rank
        pid = os.fork()
        if pid == 0:
            os.environ.update(env, LOCAL_RANK=str(local_rank), RANK=str(rank), ROLE_RANK=str(rank))
            code = 0
            try:
                run_python(target, module=options.module)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            except BaseException:  # noqa: BLE001 - reported as the interpreter would
                traceback.print_exc()
                code = 1
            threading._shutdown()  # type: ignore[attr-defined]  # joins non-daemon threads, as Py_Finalize does
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        workers[pid] = local_rank
    while workers:
        pid, status = os.wait()
        workers.pop(pid, None)
        if os.waitstatus_to_exitcode(status) != 0:  # like torchrun: the others are stopped, the node fails
            for other in workers:
                os.kill(other, signal.SIGKILL)
            raise SystemExit(1)


def _processes(value: str) -> int | None:
    """torchrun's `--nproc-per-node` on a CPU machine: a number, or `auto`/`cpu` (one per CPU)."""
    if value.isdigit() and int(value) > 0:
        return int(value)
    if value in ("auto", "cpu"):
        return os.cpu_count() or 1
    return None


if __name__ == "__main__":
    main()
